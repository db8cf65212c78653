/*
 * Helpers for the control tests: a waiter with bounded waits, a temporary
 * directory for sockets, and a minimal QMP test client with timeouts.
 */
#ifndef AMBER_TEST_CONTROL_UTIL_H
#define AMBER_TEST_CONTROL_UTIL_H

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "amber/control.h"
#include "amber/evloop.h"
#include "control/jsonstream.h"

/* Every wait in these tests ends; none should ever come close. */
#define TEST_WAIT_MS 5000

struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int count;
};

static inline void waiter_init(struct waiter *w)
{
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->count = 0;
}

static inline void waiter_destroy(struct waiter *w)
{
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
}

static inline void waiter_signal(struct waiter *w)
{
	pthread_mutex_lock(&w->lock);
	w->count++;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static inline int waiter_count(struct waiter *w)
{
	int n;

	pthread_mutex_lock(&w->lock);
	n = w->count;
	pthread_mutex_unlock(&w->lock);
	return n;
}

/* true once count >= n; false after ms milliseconds. */
static inline bool waiter_wait(struct waiter *w, int n, int ms)
{
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&w->lock);
	while (w->count < n)
		if (pthread_cond_timedwait(&w->cond, &w->lock, &ts) == ETIMEDOUT)
			break;
	ok = w->count >= n;
	pthread_mutex_unlock(&w->lock);
	return ok;
}

static inline void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- QMP test client ---- */

struct tclient {
	int fd;
	struct json_stream in;
};

/* Fill sa for path; paths in these tests always fit sun_path. */
static inline void sun_set(struct sockaddr_un *sa, const char *path)
{
	size_t len = strlen(path);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (len >= sizeof(sa->sun_path))
		len = sizeof(sa->sun_path) - 1;
	memcpy(sa->sun_path, path, len);
}

static inline int unix_connect(const char *path)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	sun_set(&sa, path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

static inline int tc_connect(struct tclient *t, const char *path)
{
	t->fd = unix_connect(path);
	json_stream_init(&t->in, 64u << 20);
	return t->fd < 0 ? t->fd : 0;
}

static inline void tc_close(struct tclient *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	json_stream_destroy(&t->in);
}

static inline int tc_send(struct tclient *t, const char *text)
{
	size_t len = strlen(text), done = 0;

	while (done < len) {
		ssize_t n = send(t->fd, text + done, len - done, MSG_NOSIGNAL);

		if (n < 0)
			return -errno;
		done += n;
	}
	return 0;
}

/* Raw bytes as they arrive, up to len-1, within ms: for exact wire checks. */
static inline ssize_t tc_read_raw(struct tclient *t, char *buf, size_t len, const char *until, int ms)
{
	size_t got = 0;

	buf[0] = 0;
	while (got + 1 < len && !strstr(buf, until)) {
		struct pollfd pfd = { .fd = t->fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, ms) <= 0)
			break;
		n = recv(t->fd, buf + got, len - 1 - got, 0);
		if (n <= 0)
			break;
		got += n;
		buf[got] = 0;
	}
	return got;
}

/* Next JSON message, or NULL on timeout/EOF; *eof tells which. */
static inline json_t *tc_recv_eof(struct tclient *t, int ms, bool *eof)
{
	char buf[65536], err[256];

	if (eof)
		*eof = false;
	for (;;) {
		struct pollfd pfd = { .fd = t->fd, .events = POLLIN };
		json_t *val;
		ssize_t n;
		int r = json_stream_next(&t->in, &val, err, sizeof(err));

		if (r > 0)
			return val;
		if (r < 0 || poll(&pfd, 1, ms) <= 0)
			return NULL;
		n = recv(t->fd, buf, sizeof(buf), 0);
		if (n <= 0) {
			if (eof)
				*eof = true;
			return NULL;
		}
		json_stream_feed(&t->in, buf, n);
	}
}

static inline json_t *tc_recv(struct tclient *t)
{
	return tc_recv_eof(t, TEST_WAIT_MS, NULL);
}

/* Next message that is not an event. */
static inline json_t *tc_reply(struct tclient *t)
{
	for (;;) {
		json_t *m = tc_recv(t);

		if (!m || !json_object_get(m, "event"))
			return m;
		json_decref(m);
	}
}

static inline const char *json_path_str(json_t *m, const char *a, const char *b)
{
	json_t *v = json_object_get(m, a);

	if (b)
		v = json_object_get(v, b);
	return json_string_value(v);
}

/* temp dir + socket path inside it */
struct tdir {
	char dir[64];
	char sock[128];
};

static inline int tdir_make(struct tdir *d)
{
	snprintf(d->dir, sizeof(d->dir), "/tmp/amber-ctl-test.XXXXXX");
	if (!mkdtemp(d->dir))
		return -errno;
	snprintf(d->sock, sizeof(d->sock), "%s/qmp.sock", d->dir);
	return 0;
}

static inline void tdir_remove(struct tdir *d)
{
	unlink(d->sock);
	rmdir(d->dir);
}

/*
 * A control server on a socket in a new temporary directory d, with a new
 * *loop that is not yet running: commands are registered first.
 */
static inline struct control *tserver_new(struct tdir *d, struct evloop **loop)
{
	char err[256] = "";
	struct control *ctl;

	assert_int_equal(tdir_make(d), 0);
	*loop = evloop_new();
	assert_non_null(*loop);
	ctl = control_new(*loop, d->sock, err, sizeof(err));
	if (!ctl)
		fail_msg("control_new: %s", err);
	return ctl;
}

#endif
