/*
 * Character backend tests: file output, input through the event loop with
 * flow control, Ctrl-A escapes, a stalled reader never blocking forever.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "amber/chardev.h"
#include "hw_test.h"

struct rx_sink {
	pthread_mutex_t lock;
	uint8_t buf[4096];
	size_t len;
	size_t limit;		/* accept at most this many in total */
	atomic_int quits;
};

static size_t sink_rx(void *opaque, const uint8_t *buf, size_t len)
{
	struct rx_sink *s = opaque;
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->limit > s->len ? s->limit - s->len : 0;
	if (n > len)
		n = len;
	memcpy(s->buf + s->len, buf, n);
	s->len += n;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static size_t sink_len(struct rx_sink *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->len;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static void sink_quit(void *opaque)
{
	struct rx_sink *s = opaque;

	atomic_fetch_add(&s->quits, 1);
}

static bool wait_len(struct rx_sink *s, size_t want, int timeout_ms)
{
	uint64_t end = hw_now_ms() + (uint64_t)timeout_ms;

	while (hw_now_ms() < end) {
		if (sink_len(s) >= want)
			return true;
		hw_sleep_ms(1);
	}
	return sink_len(s) >= want;
}

static void sink_init(struct rx_sink *s, size_t limit)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->limit = limit;
}

/* A chardev reading a pipe on a running event loop, delivering to a sink. */
struct pipe_input {
	struct evloop *loop;
	struct chardev *c;
	int p[2];	/* the test writes to p[1] */
};

static void pipe_input_open(struct pipe_input *in, struct rx_sink *s)
{
	char err[256];

	in->loop = evloop_new();
	assert_non_null(in->loop);
	assert_int_equal(pipe(in->p), 0);
	assert_int_equal(evloop_start_thread(in->loop), 0);
	in->c = chardev_open_fd(in->p[0], -1, in->loop, err, sizeof(err));
	assert_non_null(in->c);
	chardev_set_receiver(in->c, sink_rx, s);
}

static void pipe_input_close(struct pipe_input *in)
{
	chardev_close(in->c);
	close(in->p[0]);
	close(in->p[1]);
	evloop_stop(in->loop);
	evloop_join(in->loop);
	evloop_free(in->loop);
}

static char *tmp_path(const char *name)
{
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char *p;

	assert_true(asprintf(&p, "%s/amber-chardev-%d-%s", dir, (int)getpid(), name) > 0);
	return p;
}

static size_t slurp(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
	return n;
}

static void test_chardev_file_truncates_and_append_appends(void **state)
{
	char *path = tmp_path("out");
	char err[256], buf[64];
	struct chardev *c;
	char spec[300];

	snprintf(spec, sizeof(spec), "file:%s", path);
	c = chardev_open(spec, NULL, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(chardev_write(c, "hello ", 6), 6);
	assert_int_equal(chardev_write(c, "world", 5), 5);
	chardev_close(c);
	assert_int_equal(slurp(path, buf, sizeof(buf)), 11);
	assert_string_equal(buf, "hello world");

	c = chardev_open(spec, NULL, err, sizeof(err));	/* truncates */
	assert_int_equal(chardev_write(c, "a", 1), 1);
	chardev_close(c);
	snprintf(spec, sizeof(spec), "append:%s", path);
	c = chardev_open(spec, NULL, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(chardev_write(c, "b", 1), 1);
	chardev_close(c);
	slurp(path, buf, sizeof(buf));
	assert_string_equal(buf, "ab");
	unlink(path);
	free(path);
}

static void test_chardev_none_discards_output(void **state)
{
	char err[256];
	struct chardev *c = chardev_open("none", NULL, err, sizeof(err));

	assert_non_null(c);
	assert_int_equal(chardev_write(c, "xyz", 3), 3);
	/* No input: injecting with no receiver drops quietly. */
	assert_int_equal(chardev_inject(c, (const uint8_t *)"q", 1), 1);
	chardev_close(c);
}

static void test_chardev_bad_specs_fail_with_message(void **state)
{
	static const char *const bad[] = {
		"", "tcp:1", "file:", "append:", "fd:", "fd:1", "fd:1:", "fd:a:b", "fd:-2:1",
		"file:/nonexistent-dir-amber/x",
	};
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (chardev_open(bad[i], NULL, err, sizeof(err)))
			fail_msg("spec \"%s\" was accepted", bad[i]);
		assert_true(strlen(err) > 10);
		assert_non_null(strstr(err, "chardev"));
	}
	/* The missing directory is named as the reason. */
	assert_non_null(strstr(err, "No such file"));
}

static void test_chardev_fd_input_reaches_receiver_on_loop(void **state)
{
	struct pipe_input in;
	struct rx_sink s;

	sink_init(&s, sizeof(s.buf));
	pipe_input_open(&in, &s);
	assert_int_equal(write(in.p[1], "ping", 4), 4);
	assert_true(wait_len(&s, 4, 2000));
	assert_memory_equal(s.buf, "ping", 4);
	/* Escapes are off by default for fd backends. */
	assert_int_equal(write(in.p[1], "\x01x", 2), 2);
	assert_true(wait_len(&s, 6, 2000));
	assert_int_equal(atomic_load(&s.quits), 0);
	pipe_input_close(&in);
}

static void test_chardev_flow_control_holds_back_input(void **state)
{
	struct pipe_input in;
	struct rx_sink s;
	char data[1000];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)(i * 7);
	sink_init(&s, 10);
	pipe_input_open(&in, &s);
	assert_int_equal(write(in.p[1], data, sizeof(data)), (ssize_t)sizeof(data));
	assert_true(wait_len(&s, 10, 2000));
	hw_sleep_ms(50);
	assert_int_equal(sink_len(&s), 10);	/* full: the rest is held back */
	/* Room for everything, then tell the chardev. */
	pthread_mutex_lock(&s.lock);
	s.limit = sizeof(s.buf);
	pthread_mutex_unlock(&s.lock);
	chardev_accept_input(in.c, true);
	assert_true(wait_len(&s, sizeof(data), 2000));
	assert_memory_equal(s.buf, data, sizeof(data));
	/* Explicit stop: nothing delivered until resumed. */
	chardev_accept_input(in.c, false);
	hw_sleep_ms(20);
	assert_int_equal(write(in.p[1], "later", 5), 5);
	hw_sleep_ms(100);
	assert_int_equal(sink_len(&s), sizeof(data));
	chardev_accept_input(in.c, true);
	assert_true(wait_len(&s, sizeof(data) + 5, 2000));
	assert_memory_equal(s.buf + sizeof(data), "later", 5);
	pipe_input_close(&in);
}

static void test_chardev_escape_ctrl_a(void **state)
{
	char err[256];
	struct chardev *c = chardev_open("none", NULL, err, sizeof(err));
	struct rx_sink s;

	sink_init(&s, sizeof(s.buf));
	chardev_set_receiver(c, sink_rx, &s);
	chardev_set_quit_handler(c, sink_quit, &s);
	chardev_set_escape(c, true);
	/* Ctrl-A Ctrl-A sends one Ctrl-A; Ctrl-A c passes both bytes. */
	chardev_inject(c, (const uint8_t *)"a\x01\x01" "b\x01" "c", 6);
	assert_int_equal(s.len, 5);
	assert_memory_equal(s.buf, "a\x01" "b\x01" "c", 5);
	/* The prefix carries across reads. */
	chardev_inject(c, (const uint8_t *)"\x01", 1);
	assert_int_equal(atomic_load(&s.quits), 0);
	chardev_inject(c, (const uint8_t *)"x", 1);
	assert_int_equal(atomic_load(&s.quits), 1);
	assert_int_equal(s.len, 5);
	chardev_close(c);
}

static void test_chardev_write_to_stalled_reader_times_out(void **state)
{
	char err[256], buf[65536];
	struct chardev *c;
	uint64_t t0;
	ssize_t r;
	int p[2];

	memset(buf, 'x', sizeof(buf));
	assert_int_equal(pipe(p), 0);
	c = chardev_open_fd(-1, p[1], NULL, err, sizeof(err));
	assert_non_null(c);
	/* Fill the pipe; nobody reads. */
	t0 = hw_now_ms();
	r = chardev_write(c, buf, sizeof(buf));
	while (r > 0)
		r = chardev_write(c, buf, sizeof(buf));
	assert_int_equal(r, -ETIMEDOUT);
	assert_true(hw_now_ms() - t0 >= CHARDEV_WRITE_TIMEOUT_MS - 100);
	assert_true(hw_now_ms() - t0 < 3 * CHARDEV_WRITE_TIMEOUT_MS);
	/* While stalled, further output is dropped at once. */
	t0 = hw_now_ms();
	assert_int_equal(chardev_write(c, "y", 1), -ETIMEDOUT);
	assert_true(hw_now_ms() - t0 < 100);
	assert_true(chardev_dropped_bytes(c) > 0);
	/* The reader catches up: output flows again. */
	while (!hw_fd_quiet(p[0], 0))
		assert_true(read(p[0], buf, sizeof(buf)) > 0);
	assert_int_equal(chardev_write(c, "z", 1), 1);
	assert_int_equal(hw_read_timeout(p[0], buf, 1, 1000), 1);
	assert_int_equal(buf[0], 'z');
	chardev_close(c);
	close(p[0]);
	close(p[1]);
}

static void test_chardev_closed_reader_gives_epipe_not_sigpipe(void **state)
{
	char err[256];
	struct chardev *c;
	int p[2];

	assert_int_equal(pipe(p), 0);
	c = chardev_open_fd(-1, p[1], NULL, err, sizeof(err));
	assert_non_null(c);
	close(p[0]);
	assert_int_equal(chardev_write(c, "x", 1), -EPIPE);
	chardev_close(c);
	close(p[1]);
}

static void test_chardev_fd_spec_does_not_change_callers_fd_flags(void **state)
{
	char err[256], spec[64];
	struct chardev *c;
	int p[2];

	assert_int_equal(pipe(p), 0);
	snprintf(spec, sizeof(spec), "fd:-1:%d", p[1]);
	c = chardev_open(spec, NULL, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(fcntl(p[1], F_GETFL) & O_NONBLOCK, 0);
	chardev_close(c);
	/* The caller's descriptor is still open and usable. */
	assert_int_equal(write(p[1], "k", 1), 1);
	close(p[0]);
	close(p[1]);
}

static void test_chardev_second_stdio_is_output_only(void **state)
{
	struct evloop *loop = evloop_new();
	char err[256];
	struct chardev *a, *b, *c;
	struct rx_sink s;

	sink_init(&s, sizeof(s.buf));
	assert_int_equal(evloop_start_thread(loop), 0);
	a = chardev_open("stdio", loop, err, sizeof(err));
	assert_non_null(a);
	/* A second stdio (debug console next to the serial port) shares stdout. */
	b = chardev_open("stdio", loop, err, sizeof(err));
	assert_non_null(b);
	chardev_set_receiver(b, sink_rx, &s);
	assert_int_equal(chardev_write(b, "", 0), 0);
	chardev_close(a);
	/* Once the first is gone, stdin can be claimed again. */
	c = chardev_open("stdio", NULL, err, sizeof(err));
	assert_non_null(c);
	chardev_close(c);
	chardev_close(b);
	assert_int_equal(sink_len(&s), 0);
	/* Restoring with nothing saved is a no-op. */
	chardev_restore_terminal();
	evloop_stop(loop);
	evloop_join(loop);
	evloop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chardev_file_truncates_and_append_appends),
		cmocka_unit_test(test_chardev_none_discards_output),
		cmocka_unit_test(test_chardev_bad_specs_fail_with_message),
		cmocka_unit_test(test_chardev_fd_input_reaches_receiver_on_loop),
		cmocka_unit_test(test_chardev_flow_control_holds_back_input),
		cmocka_unit_test(test_chardev_escape_ctrl_a),
		cmocka_unit_test(test_chardev_write_to_stalled_reader_times_out),
		cmocka_unit_test(test_chardev_closed_reader_gives_epipe_not_sigpipe),
		cmocka_unit_test(test_chardev_fd_spec_does_not_change_callers_fd_flags),
		cmocka_unit_test(test_chardev_second_stdio_is_output_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
