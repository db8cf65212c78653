#include <stdio.h>
#include <stdarg.h>
#include <pthread.h>

#include "amber/log.h"

enum log_level log_threshold = LOG_INFO;

static const char *const level_name[] = { "error", "warning", "info", "debug" };

void log_msg(enum log_level lvl, const char *subsys, const char *fmt, ...)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	va_list ap;

	if (lvl > log_threshold)
		return;
	pthread_mutex_lock(&lock);
	/* A terminal in raw mode needs \r\n; stderr lines start at column 0. */
	fprintf(stderr, "amber: %s%s%s: ", subsys ? subsys : "", subsys ? ": " : "",
		level_name[lvl]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\r\n", stderr);
	pthread_mutex_unlock(&lock);
}
