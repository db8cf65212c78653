/* The event loop: fd watches, timers, cross-thread calls, stop. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <fcntl.h>
#include <cmocka.h>
#include <sys/epoll.h>

#include "amber/evloop.h"
#include "testutil.h"

struct fdctx {
	struct evloop *loop;
	struct waiter w;
	int fd;
	int other_fd;		/* deleted by the callback, if >= 0 */
	int calls;
	bool on_loop_thread;
	int sleep_ms;
	bool in_cb, cb_done;	/* __atomic: read by the test thread */
};

static void drain_cb(void *opaque, int fd, uint32_t events)
{
	struct fdctx *c = opaque;
	char buf[64];

	__atomic_store_n(&c->in_cb, true, __ATOMIC_SEQ_CST);
	c->on_loop_thread = evloop_on_loop_thread(c->loop);
	if (read(fd, buf, sizeof(buf)) < 0)
		return;
	if (c->sleep_ms)
		sleep_ms(c->sleep_ms);
	c->calls++;
	__atomic_store_n(&c->cb_done, true, __ATOMIC_SEQ_CST);
	waiter_signal(&c->w);
}

static void test_fd_callback_runs_on_loop_thread_when_readable(void **state)
{
	struct evloop *loop = evloop_new();
	struct fdctx c = { .loop = loop };
	int p[2];

	assert_non_null(loop);
	waiter_init(&c.w);
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(evloop_add_fd(loop, p[0], EPOLLIN, drain_cb, &c), 0);
	assert_int_equal(evloop_start_thread(loop), 0);
	assert_false(waiter_wait(&c.w, 1, 50));	/* nothing to read yet */
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_true(waiter_wait(&c.w, 1, TEST_WAIT_MS));
	assert_true(c.on_loop_thread);
	assert_false(evloop_on_loop_thread(loop));
	evloop_stop(loop);
	evloop_join(loop);
	assert_int_equal(evloop_del_fd(loop, p[0]), 0);
	evloop_free(loop);
	close(p[0]);
	close(p[1]);
	waiter_destroy(&c.w);
}

static void test_add_fd_twice_is_eexist_and_unknown_del_is_enoent(void **state)
{
	struct evloop *loop = evloop_new();
	struct fdctx c = { .loop = loop };
	int p[2];

	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(evloop_add_fd(loop, p[0], EPOLLIN, drain_cb, &c), 0);
	assert_int_equal(evloop_add_fd(loop, p[0], EPOLLIN, drain_cb, &c), -EEXIST);
	assert_int_equal(evloop_mod_fd(loop, p[1], EPOLLOUT), -ENOENT);
	assert_int_equal(evloop_del_fd(loop, p[1]), -ENOENT);
	assert_int_equal(evloop_del_fd(loop, p[0]), 0);
	assert_int_equal(evloop_del_fd(loop, p[0]), -ENOENT);
	evloop_free(loop);
	close(p[0]);
	close(p[1]);
}

/* Both pipes readable in the same epoll batch; each callback deletes the other. */
struct pair {
	struct evloop *loop;
	int fds[2];
	int calls[2];
};

static void pair_cb(void *opaque, int fd, uint32_t events)
{
	struct pair *p = opaque;
	int me = fd == p->fds[0] ? 0 : 1;

	p->calls[me]++;
	evloop_del_fd(p->loop, p->fds[!me]);
	evloop_del_fd(p->loop, fd);
	evloop_stop(p->loop);
}

static void test_deleted_fd_callback_never_runs_even_if_in_same_batch(void **state)
{
	struct evloop *loop = evloop_new();
	struct pair pr = { .loop = loop };
	int a[2], b[2];

	assert_int_equal(pipe2(a, O_CLOEXEC), 0);
	assert_int_equal(pipe2(b, O_CLOEXEC), 0);
	pr.fds[0] = a[0];
	pr.fds[1] = b[0];
	assert_int_equal(write(a[1], "x", 1), 1);
	assert_int_equal(write(b[1], "x", 1), 1);
	assert_int_equal(evloop_add_fd(loop, a[0], EPOLLIN, pair_cb, &pr), 0);
	assert_int_equal(evloop_add_fd(loop, b[0], EPOLLIN, pair_cb, &pr), 0);
	assert_int_equal(evloop_run(loop), 0);
	assert_int_equal(pr.calls[0] + pr.calls[1], 1);
	evloop_free(loop);
	close(a[0]); close(a[1]); close(b[0]); close(b[1]);
}

static void test_del_fd_from_other_thread_waits_for_running_callback(void **state)
{
	struct evloop *loop = evloop_new();
	struct fdctx c = { .loop = loop, .sleep_ms = 150 };
	int p[2], i;

	waiter_init(&c.w);
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(evloop_add_fd(loop, p[0], EPOLLIN, drain_cb, &c), 0);
	assert_int_equal(evloop_start_thread(loop), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	for (i = 0; i < TEST_WAIT_MS && !__atomic_load_n(&c.in_cb, __ATOMIC_SEQ_CST); i++)
		sleep_ms(1);
	assert_true(__atomic_load_n(&c.in_cb, __ATOMIC_SEQ_CST));
	assert_int_equal(evloop_del_fd(loop, p[0]), 0);
	/* The callback was mid-sleep when del started; it must have finished. */
	assert_true(__atomic_load_n(&c.cb_done, __ATOMIC_SEQ_CST));
	assert_int_equal(write(p[1], "y", 1), 1);
	sleep_ms(50);
	assert_int_equal(c.calls, 1);
	evloop_free(loop);
	close(p[0]);
	close(p[1]);
	waiter_destroy(&c.w);
}

struct tctx {
	struct waiter w;
};

static void timer_cb(void *opaque)
{
	waiter_signal(&((struct tctx *)opaque)->w);
}

static void test_oneshot_timer_fires_once_then_is_gone(void **state)
{
	struct evloop *loop = evloop_new();
	struct tctx t;
	int id;

	waiter_init(&t.w);
	assert_int_equal(evloop_start_thread(loop), 0);
	id = evloop_add_timer(loop, 10 * 1000000ull, 0, timer_cb, &t);
	assert_true(id > 0);
	assert_true(waiter_wait(&t.w, 1, TEST_WAIT_MS));
	sleep_ms(50);
	assert_int_equal(waiter_count(&t.w), 1);
	assert_int_equal(evloop_del_timer(loop, id), -ENOENT);
	evloop_free(loop);
	waiter_destroy(&t.w);
}

/* Regression: add_timer read the timer after arming it, when it may be gone. */
static void test_immediate_oneshot_timer_may_fire_before_add_returns(void **state)
{
	struct evloop *loop = evloop_new();
	struct tctx t;
	int i, id;

	waiter_init(&t.w);
	assert_int_equal(evloop_start_thread(loop), 0);
	for (i = 0; i < 200; i++) {
		id = evloop_add_timer(loop, 0, 0, timer_cb, &t);
		assert_true(id > 0);
	}
	assert_true(waiter_wait(&t.w, 200, TEST_WAIT_MS));
	evloop_free(loop);
	waiter_destroy(&t.w);
}

static void test_timer_does_not_fire_before_its_time(void **state)
{
	struct evloop *loop = evloop_new();
	struct tctx t;
	int id;

	waiter_init(&t.w);
	assert_int_equal(evloop_start_thread(loop), 0);
	id = evloop_add_timer(loop, 300 * 1000000ull, 0, timer_cb, &t);
	assert_true(id > 0);
	assert_false(waiter_wait(&t.w, 1, 100));
	assert_int_equal(evloop_del_timer(loop, id), 0);
	sleep_ms(300);
	assert_int_equal(waiter_count(&t.w), 0);
	evloop_free(loop);
	waiter_destroy(&t.w);
}

static void test_periodic_timer_repeats_until_deleted(void **state)
{
	struct evloop *loop = evloop_new();
	struct tctx t;
	int id, n;

	waiter_init(&t.w);
	assert_int_equal(evloop_start_thread(loop), 0);
	id = evloop_add_timer(loop, 1000000ull, 5 * 1000000ull, timer_cb, &t);
	assert_true(id > 0);
	assert_true(waiter_wait(&t.w, 3, TEST_WAIT_MS));
	assert_int_equal(evloop_del_timer(loop, id), 0);
	n = waiter_count(&t.w);
	sleep_ms(50);
	assert_int_equal(waiter_count(&t.w), n);
	evloop_free(loop);
	waiter_destroy(&t.w);
}

struct callctx {
	struct evloop *loop;
	struct waiter w;
	pthread_mutex_t lock;
	int order[8];
	int n;
	bool on_loop[8];
};

struct callarg {
	struct callctx *c;
	int v;
};

static void call_fn(void *opaque)
{
	struct callarg *a = opaque;
	struct callctx *c = a->c;

	pthread_mutex_lock(&c->lock);
	c->on_loop[c->n] = evloop_on_loop_thread(c->loop);
	c->order[c->n++] = a->v;
	pthread_mutex_unlock(&c->lock);
	waiter_signal(&c->w);
}

static struct callarg call_args[8];

static void *caller_thread(void *opaque)
{
	struct callctx *c = opaque;
	int i;

	for (i = 0; i < 8; i++) {
		call_args[i].c = c;
		call_args[i].v = i;
		if (evloop_call(c->loop, call_fn, &call_args[i]) < 0)
			return NULL;
	}
	return NULL;
}

static void test_call_from_other_thread_runs_on_loop_thread_in_order(void **state)
{
	struct callctx c = { .loop = evloop_new() };
	pthread_t th;
	int i;

	waiter_init(&c.w);
	pthread_mutex_init(&c.lock, NULL);
	assert_int_equal(evloop_start_thread(c.loop), 0);
	assert_int_equal(pthread_create(&th, NULL, caller_thread, &c), 0);
	pthread_join(th, NULL);
	assert_true(waiter_wait(&c.w, 8, TEST_WAIT_MS));
	for (i = 0; i < 8; i++) {
		assert_int_equal(c.order[i], i);
		assert_true(c.on_loop[i]);
	}
	evloop_free(c.loop);
	pthread_mutex_destroy(&c.lock);
	waiter_destroy(&c.w);
}

static void *stopper_thread(void *opaque)
{
	sleep_ms(30);
	evloop_stop(opaque);
	return NULL;
}

static void test_stop_from_other_thread_wakes_idle_run(void **state)
{
	struct evloop *loop = evloop_new();
	struct timespec a, b;
	pthread_t th;

	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(pthread_create(&th, NULL, stopper_thread, loop), 0);
	/* Nothing watched: only the stop can end this. */
	assert_int_equal(evloop_run(loop), 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	pthread_join(th, NULL);
	assert_true(b.tv_sec - a.tv_sec < 5);
	evloop_free(loop);
}

static void test_stop_before_run_makes_run_return(void **state)
{
	struct evloop *loop = evloop_new();

	evloop_stop(loop);
	assert_int_equal(evloop_run(loop), 0);
	/* The stop was consumed: a second thread run needs its own stop. */
	assert_int_equal(evloop_start_thread(loop), 0);
	evloop_stop(loop);
	evloop_join(loop);
	evloop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fd_callback_runs_on_loop_thread_when_readable),
		cmocka_unit_test(test_add_fd_twice_is_eexist_and_unknown_del_is_enoent),
		cmocka_unit_test(test_deleted_fd_callback_never_runs_even_if_in_same_batch),
		cmocka_unit_test(test_del_fd_from_other_thread_waits_for_running_callback),
		cmocka_unit_test(test_oneshot_timer_fires_once_then_is_gone),
		cmocka_unit_test(test_immediate_oneshot_timer_may_fire_before_add_returns),
		cmocka_unit_test(test_timer_does_not_fire_before_its_time),
		cmocka_unit_test(test_periodic_timer_repeats_until_deleted),
		cmocka_unit_test(test_call_from_other_thread_runs_on_loop_thread_in_order),
		cmocka_unit_test(test_stop_from_other_thread_wakes_idle_run),
		cmocka_unit_test(test_stop_before_run_makes_run_return),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
