/*
 * Helpers shared by the legacy-device component tests: a test machine with
 * an optional running event loop, pipes with timed reads, polling waits.
 */
#ifndef AMBER_TEST_HW_H
#define AMBER_TEST_HW_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "amber/device.h"
#include "amber/evloop.h"
#include "../harness.h"

struct hw_env {
	struct test_machine *t;
	struct evloop *loop;		/* running on its own thread, or NULL */
};

static inline struct hw_env *hw_env_new(bool with_loop)
{
	struct hw_env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	e->t = test_machine_new(1 << 20);
	e->t->m.last_event = -1;
	if (with_loop) {
		e->loop = evloop_new();
		assert_non_null(e->loop);
		assert_int_equal(evloop_start_thread(e->loop), 0);
		e->t->m.loop = e->loop;
	}
	return e;
}

static inline void hw_env_free(struct hw_env *e)
{
	device_destroy_all(&e->t->m);
	if (e->loop) {
		evloop_stop(e->loop);
		evloop_join(e->loop);
		evloop_free(e->loop);
	}
	test_machine_free(e->t);
	free(e);
}

static inline struct device *hw_create(struct hw_env *e, const char *cls, const char *id,
				       const char *args)
{
	struct device *dev = NULL;
	char err[256];
	int ret = device_create(&e->t->m, cls, id, args, &dev, err, sizeof(err));

	if (ret < 0)
		fail_msg("device_create(%s, %s): %s", cls, args ? args : "", err);
	return dev;
}

static inline uint64_t hw_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline void hw_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Read exactly n bytes from fd within timeout_ms; returns bytes read. */
static inline size_t hw_read_timeout(int fd, void *buf, size_t n, int timeout_ms)
{
	uint64_t end = hw_now_ms() + (uint64_t)timeout_ms;
	size_t got = 0;

	while (got < n) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint64_t now = hw_now_ms();
		ssize_t r;

		if (now >= end || poll(&p, 1, (int)(end - now)) <= 0)
			break;
		r = read(fd, (char *)buf + got, n - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return got;
}

/* true if fd has nothing to read within timeout_ms */
static inline bool hw_fd_quiet(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, timeout_ms) == 0;
}

#endif
