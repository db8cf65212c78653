/*
 * The control server against real sockets: a loop thread serves a
 * temporary socket, the test plays QMP clients. Fake VM commands stand in
 * for the ones the VM registers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <fcntl.h>
#include <cmocka.h>
#include <sys/stat.h>

#include "amber/control.h"
#include "amber/evloop.h"
#include "testutil.h"

struct fixture {
	struct tdir d;
	struct evloop *loop;
	struct control *ctl;
	bool running;
	int stop_calls;
	/* async "slow" command */
	pthread_t slow_thread;
	bool slow_started;
	struct waiter slow_done;
};

static int fake_query_status(void *opaque, const json_t *args, json_t **ret, char *err, size_t errlen)
{
	struct fixture *f = opaque;

	*ret = json_pack("{s:b,s:s}", "running", f->running, "status",
			 f->running ? "running" : "paused");
	return 0;
}

static int fake_stop(void *opaque, const json_t *args, json_t **ret, char *err, size_t errlen)
{
	struct fixture *f = opaque;

	f->running = false;
	f->stop_calls++;
	/* QEMU emits STOP from inside the command, before its reply. */
	control_emit_event(f->ctl, "STOP", NULL);
	return 0;
}

static int fake_fail(void *opaque, const json_t *args, json_t **ret, char *err, size_t errlen)
{
	snprintf(err, errlen, "checkpoint /nonexistent: No such file or directory");
	return -ENOENT;
}

static int fake_echo(void *opaque, const json_t *args, json_t **ret, char *err, size_t errlen)
{
	*ret = json_deep_copy(args);
	return 0;
}

struct slow_job {
	struct fixture *f;
	struct control_req *req;
};

static void *slow_worker(void *opaque)
{
	struct slow_job *j = opaque;
	struct fixture *f = j->f;

	sleep_ms(100);
	control_req_return(j->req, json_pack("{s:s}", "done", "yes"));
	free(j);
	waiter_signal(&f->slow_done);
	return NULL;
}

static void fake_slow(void *opaque, const json_t *args, struct control_req *req)
{
	struct fixture *f = opaque;
	struct slow_job *j = malloc(sizeof(*j));

	j->f = f;
	j->req = req;
	if (f->slow_started)
		pthread_join(f->slow_thread, NULL);
	f->slow_started = pthread_create(&f->slow_thread, NULL, slow_worker, j) == 0;
}

static void fake_async_fails_at_once(void *opaque, const json_t *args, struct control_req *req)
{
	control_req_error(req, "async failure %d", 42);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	waiter_init(&f->slow_done);
	f->running = true;
	f->ctl = tserver_new(&f->d, &f->loop);
	assert_int_equal(control_register(f->ctl, "query-status", fake_query_status, f), 0);
	assert_int_equal(control_register(f->ctl, "stop", fake_stop, f), 0);
	assert_int_equal(control_register(f->ctl, "checkpoint", fake_fail, f), 0);
	assert_int_equal(control_register(f->ctl, "echo", fake_echo, f), 0);
	assert_int_equal(control_register_async(f->ctl, "slow", fake_slow, f), 0);
	assert_int_equal(control_register_async(f->ctl, "async-fail", fake_async_fails_at_once, f), 0);
	assert_int_equal(evloop_start_thread(f->loop), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	struct stat st;

	evloop_stop(f->loop);
	evloop_join(f->loop);
	if (f->slow_started)
		pthread_join(f->slow_thread, NULL);
	control_free(f->ctl);
	/* control_free unlinks the socket it created. */
	assert_int_equal(stat(f->d.sock, &st), -1);
	evloop_free(f->loop);
	tdir_remove(&f->d);
	waiter_destroy(&f->slow_done);
	free(f);
	return 0;
}

static void negotiate(struct tclient *t, const char *path)
{
	json_t *m;

	assert_int_equal(tc_connect(t, path), 0);
	m = tc_recv(t);
	assert_non_null(m);
	assert_non_null(json_object_get(m, "QMP"));
	json_decref(m);
	assert_int_equal(tc_send(t, "{\"execute\": \"qmp_capabilities\"}"), 0);
	m = tc_reply(t);
	assert_non_null(m);
	assert_true(json_is_object(json_object_get(m, "return")));
	json_decref(m);
}

static void assert_error(json_t *m, const char *cls, const char *desc_prefix)
{
	const char *desc;

	assert_non_null(m);
	assert_string_equal(json_path_str(m, "error", "class"), cls);
	desc = json_path_str(m, "error", "desc");
	assert_non_null(desc);
	if (strncmp(desc, desc_prefix, strlen(desc_prefix)))
		fail_msg("desc \"%s\" does not start with \"%s\"", desc, desc_prefix);
}

/* ---- count clients on the loop thread ---- */

struct countq {
	struct control *ctl;
	struct waiter w;
	unsigned n;
};

static void count_fn(void *opaque)
{
	struct countq *q = opaque;

	q->n = control_client_count(q->ctl);
	waiter_signal(&q->w);
}

static unsigned client_count(struct fixture *f)
{
	struct countq q = { .ctl = f->ctl };

	waiter_init(&q.w);
	assert_int_equal(evloop_call(f->loop, count_fn, &q), 0);
	assert_true(waiter_wait(&q.w, 1, TEST_WAIT_MS));
	waiter_destroy(&q.w);
	return q.n;
}

static bool wait_client_count(struct fixture *f, unsigned n)
{
	int i;

	for (i = 0; i < TEST_WAIT_MS / 10; i++) {
		if (client_count(f) == n)
			return true;
		sleep_ms(10);
	}
	return false;
}

/* ---- tests ---- */

static void test_greeting_is_qemu_format_exactly(void **state)
{
	struct fixture *f = *state;
	struct tclient t;
	char buf[512];

	assert_int_equal(tc_connect(&t, f->d.sock), 0);
	tc_read_raw(&t, buf, sizeof(buf), "\r\n", TEST_WAIT_MS);
	assert_string_equal(buf,
		"{\"QMP\": {\"version\": {\"qemu\": {\"major\": 0, \"minor\": 1, \"micro\": 0}, "
		"\"package\": \"amber 0.1.0\"}, \"capabilities\": []}}\r\n");
	tc_close(&t);
}

static void test_commands_before_negotiation_are_command_not_found(void **state)
{
	struct fixture *f = *state;
	struct tclient t;
	json_t *m;

	assert_int_equal(tc_connect(&t, f->d.sock), 0);
	json_decref(tc_recv(&t));
	assert_int_equal(tc_send(&t, "{\"execute\": \"query-status\", \"id\": 7}"), 0);
	m = tc_reply(&t);
	assert_error(m, "CommandNotFound", "Expecting capabilities negotiation");
	assert_int_equal(json_integer_value(json_object_get(m, "id")), 7);
	json_decref(m);
	assert_int_equal(tc_send(&t, "{\"execute\": \"qmp_capabilities\"}"), 0);
	m = tc_reply(&t);
	assert_non_null(json_object_get(m, "return"));
	json_decref(m);
	/* A second negotiation is refused like QEMU does. */
	assert_int_equal(tc_send(&t, "{\"execute\": \"qmp_capabilities\"}"), 0);
	m = tc_reply(&t);
	assert_error(m, "CommandNotFound", "Capabilities negotiation is already complete");
	json_decref(m);
	assert_int_equal(tc_send(&t, "{\"execute\": \"query-status\"}"), 0);
	m = tc_reply(&t);
	assert_string_equal(json_path_str(m, "return", "status"), "running");
	assert_true(json_is_true(json_object_get(json_object_get(m, "return"), "running")));
	json_decref(m);
	tc_close(&t);
}

static void test_unknown_capability_is_refused(void **state)
{
	struct fixture *f = *state;
	struct tclient t;
	json_t *m;

	assert_int_equal(tc_connect(&t, f->d.sock), 0);
	json_decref(tc_recv(&t));
	assert_int_equal(tc_send(&t, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": [\"oob\"]}}"), 0);
	m = tc_reply(&t);
	assert_error(m, "GenericError", "Capability 'oob' not available");
	json_decref(m);
	tc_close(&t);
}

static void test_reply_echoes_any_id_and_arguments_reach_command(void **state)
{
	struct fixture *f = *state;
	struct tclient t;
	json_t *m, *want;

	negotiate(&t, f->d.sock);
	assert_int_equal(tc_send(&t, "{\"execute\": \"echo\", \"arguments\": {\"x\": [1, \"two\"]}, "
				     "\"id\": {\"seq\": [3, \"abc\"]}}"), 0);
	m = tc_reply(&t);
	assert_non_null(m);
	want = json_pack("{s:[i,s]}", "seq", 3, "abc");
	assert_true(json_equal(json_object_get(m, "id"), want));
	json_decref(want);
	want = json_pack("{s:[i,s]}", "x", 1, "two");
	assert_true(json_equal(json_object_get(m, "return"), want));
	json_decref(want);
	json_decref(m);
	/* No arguments: the command sees an empty object. */
	assert_int_equal(tc_send(&t, "{\"execute\": \"echo\", \"id\": \"s\"}"), 0);
	m = tc_reply(&t);
	assert_true(json_is_object(json_object_get(m, "return")));
	assert_int_equal(json_object_size(json_object_get(m, "return")), 0);
	assert_string_equal(json_path_str(m, "id", NULL), "s");
	json_decref(m);
	tc_close(&t);
}

static void test_unknown_command_is_command_not_found(void **state)
{
	struct fixture *f = *state;
	struct tclient t;
	json_t *m;

	negotiate(&t, f->d.sock);
	assert_int_equal(tc_send(&t, "{\"execute\": \"no-such-thing\", \"id\": 1}"), 0);
	m = tc_reply(&t);
	assert_error(m, "CommandNotFound", "The command no-such-thing has not been found");
	assert_int_equal(json_integer_value(json_object_get(m, "id")), 1);
	json_decref(m);
	tc_close(&t);
}

static void test_failed_command_is_generic_error_with_its_message(void **state)
{
	struct fixture *f = *state;
	struct tclient t;
	json_t *m;

	negotiate(&t, f->d.sock);
	assert_int_equal(tc_send(&t, "{\"execute\": \"checkpoint\", \"id\": 2}"), 0);
	m = tc_reply(&t);
	assert_error(m, "GenericError", "checkpoint /nonexistent: No such file or directory");
	assert_int_equal(json_integer_value(json_object_get(m, "id")), 2);
	json_decref(m);
	assert_int_equal(tc_send(&t, "{\"execute\": \"async-fail\", \"id\": 3}"), 0);
	m = tc_reply(&t);
	assert_error(m, "GenericError", "async failure 42");
	assert_int_equal(json_integer_value(json_object_get(m, "id")), 3);
	json_decref(m);
	tc_close(&t);
}

static void test_malformed_json_gets_error_and_connection_stays_usable(void **state)
{
	struct fixture *f = *state;
	struct tclient t;
	json_t *m;

	negotiate(&t, f->d.sock);
	assert_int_equal(tc_send(&t, "{\"execute\": }\n"), 0);
	m = tc_reply(&t);
	assert_error(m, "GenericError", "JSON parse error");
	json_decref(m);
	assert_int_equal(tc_send(&t, "[1, 2]"), 0);
	m = tc_reply(&t);
	assert_error(m, "GenericError", "QMP input must be a JSON object");
	json_decref(m);
	assert_int_equal(tc_send(&t, "{\"arguments\": {}}"), 0);
	m = tc_reply(&t);
	assert_error(m, "GenericError", "QMP input lacks member 'execute'");
	json_decref(m);
	assert_int_equal(tc_send(&t, "{\"execute\": \"echo\", \"bogus\": 1, \"id\": 4}"), 0);
	m = tc_reply(&t);
	assert_error(m, "GenericError", "QMP input member 'bogus' is unexpected");
	assert_int_equal(json_integer_value(json_object_get(m, "id")), 4);
	json_decref(m);
	assert_int_equal(tc_send(&t, "{\"execute\": \"echo\", \"arguments\": [1]}"), 0);
	m = tc_reply(&t);
	assert_error(m, "GenericError", "QMP input member 'arguments' must be an object");
	json_decref(m);
	assert_int_equal(tc_send(&t, "{\"execute\": \"query-status\", \"id\": 5}"), 0);
	m = tc_reply(&t);
	assert_string_equal(json_path_str(m, "return", "status"), "running");
	assert_int_equal(json_integer_value(json_object_get(m, "id")), 5);
	json_decref(m);
	tc_close(&t);
}

static void test_two_commands_in_one_write_get_two_replies_in_order(void **state)
{
	struct fixture *f = *state;
	struct tclient t;
	json_t *m;

	negotiate(&t, f->d.sock);
	assert_int_equal(tc_send(&t, "{\"execute\": \"query-status\", \"id\": 1}"
				     "{\"execute\": \"query-version\", \"id\": 2}\n"), 0);
	m = tc_reply(&t);
	assert_int_equal(json_integer_value(json_object_get(m, "id")), 1);
	assert_string_equal(json_path_str(m, "return", "status"), "running");
	json_decref(m);
	m = tc_reply(&t);
	assert_int_equal(json_integer_value(json_object_get(m, "id")), 2);
	assert_string_equal(json_path_str(m, "return", "package"), "amber 0.1.0");
	json_decref(m);
	tc_close(&t);
}

static void test_command_split_over_writes_is_answered_once_complete(void **state)
{
	struct fixture *f = *state;
	struct tclient t;
	json_t *m;
	bool eof;

	negotiate(&t, f->d.sock);
	/* The split falls inside a string holding braces, which must not count. */
	assert_int_equal(tc_send(&t, "{\"execute\": \"echo\", \"arguments\": {\"s\": \"{{\\\""), 0);
	sleep_ms(30);
	assert_null(tc_recv_eof(&t, 50, &eof));
	assert_false(eof);
	assert_int_equal(tc_send(&t, "}}\"}, \"i"), 0);
	sleep_ms(30);
	assert_int_equal(tc_send(&t, "d\": 9}"), 0);
	m = tc_reply(&t);
	assert_non_null(m);
	assert_int_equal(json_integer_value(json_object_get(m, "id")), 9);
	assert_string_equal(json_path_str(m, "return", "s"), "{{\"}}");
	json_decref(m);
	tc_close(&t);
}

static void test_event_reaches_every_negotiated_client_only(void **state)
{
	struct fixture *f = *state;
	struct tclient a, b, raw;
	json_t *m;
	bool eof;

	negotiate(&a, f->d.sock);
	negotiate(&b, f->d.sock);
	assert_int_equal(tc_connect(&raw, f->d.sock), 0);
	json_decref(tc_recv(&raw));	/* greeting; this one never negotiates */
	/* From this (non-loop) thread: the event hops to the loop. */
	control_emit_event(f->ctl, "RESUME", json_pack("{s:i}", "n", 1));
	m = tc_recv(&a);
	assert_non_null(m);
	assert_string_equal(json_path_str(m, "event", NULL), "RESUME");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(m, "data"), "n")), 1);
	assert_true(json_is_integer(json_object_get(json_object_get(m, "timestamp"), "seconds")));
	assert_true(json_integer_value(json_object_get(json_object_get(m, "timestamp"), "seconds")) > 1600000000);
	assert_true(json_is_integer(json_object_get(json_object_get(m, "timestamp"), "microseconds")));
	json_decref(m);
	m = tc_recv(&b);
	assert_string_equal(json_path_str(m, "event", NULL), "RESUME");
	json_decref(m);
	assert_null(tc_recv_eof(&raw, 100, &eof));
	assert_false(eof);
	tc_close(&a);
	tc_close(&b);
	tc_close(&raw);
}

static void test_event_emitted_by_command_precedes_its_reply(void **state)
{
	struct fixture *f = *state;
	struct tclient a, b;
	json_t *m;

	negotiate(&a, f->d.sock);
	negotiate(&b, f->d.sock);
	assert_int_equal(tc_send(&a, "{\"execute\": \"stop\", \"id\": 1}"), 0);
	m = tc_recv(&a);
	assert_string_equal(json_path_str(m, "event", NULL), "STOP");
	assert_int_equal(json_object_size(json_object_get(m, "data")), 0);
	json_decref(m);
	m = tc_recv(&a);
	assert_non_null(json_object_get(m, "return"));
	json_decref(m);
	m = tc_recv(&b);
	assert_string_equal(json_path_str(m, "event", NULL), "STOP");
	json_decref(m);
	assert_int_equal(f->stop_calls, 1);
	tc_close(&a);
	tc_close(&b);
}

static void test_async_command_holds_later_commands_until_it_answers(void **state)
{
	struct fixture *f = *state;
	struct tclient t;
	json_t *m;

	negotiate(&t, f->d.sock);
	assert_int_equal(tc_send(&t, "{\"execute\": \"slow\", \"id\": 1}"
				     "{\"execute\": \"query-status\", \"id\": 2}"), 0);
	m = tc_reply(&t);
	assert_int_equal(json_integer_value(json_object_get(m, "id")), 1);
	assert_string_equal(json_path_str(m, "return", "done"), "yes");
	json_decref(m);
	m = tc_reply(&t);
	assert_int_equal(json_integer_value(json_object_get(m, "id")), 2);
	json_decref(m);
	tc_close(&t);
}

static void test_client_vanishing_mid_command_is_cleaned_up(void **state)
{
	struct fixture *f = *state;
	struct tclient t;
	json_t *m;

	negotiate(&t, f->d.sock);
	assert_true(wait_client_count(f, 1));
	assert_int_equal(tc_send(&t, "{\"execute\": \"slow\", \"id\": 1}"), 0);
	sleep_ms(20);
	tc_close(&t);
	assert_true(waiter_wait(&f->slow_done, 1, TEST_WAIT_MS));
	assert_true(wait_client_count(f, 0));
	/* A client gone mid-way through a command also leaves the server healthy. */
	negotiate(&t, f->d.sock);
	assert_int_equal(tc_send(&t, "{\"execute\": \"echo\", \"arg"), 0);
	tc_close(&t);
	assert_true(wait_client_count(f, 0));
	negotiate(&t, f->d.sock);
	assert_int_equal(tc_send(&t, "{\"execute\": \"query-status\"}"), 0);
	m = tc_reply(&t);
	assert_non_null(json_object_get(m, "return"));
	json_decref(m);
	tc_close(&t);
}

static void test_half_closed_client_gets_its_replies_then_eof(void **state)
{
	struct fixture *f = *state;
	struct tclient t;
	json_t *m;
	bool eof;

	/* `echo '...' | socat - UNIX-CONNECT:path` sends, shuts down writing, then reads. */
	assert_int_equal(tc_connect(&t, f->d.sock), 0);
	assert_int_equal(tc_send(&t, "{\"execute\": \"qmp_capabilities\"}\n"
				     "{\"execute\": \"slow\", \"id\": 1}\n"
				     "{\"execute\": \"query-status\", \"id\": 2}\n"), 0);
	shutdown(t.fd, SHUT_WR);
	json_decref(tc_recv(&t));	/* greeting */
	json_decref(tc_recv(&t));	/* capabilities */
	m = tc_reply(&t);
	assert_int_equal(json_integer_value(json_object_get(m, "id")), 1);
	json_decref(m);
	m = tc_reply(&t);
	assert_int_equal(json_integer_value(json_object_get(m, "id")), 2);
	json_decref(m);
	assert_null(tc_recv_eof(&t, TEST_WAIT_MS, &eof));
	assert_true(eof);
	tc_close(&t);
	assert_true(wait_client_count(f, 0));
}

static void test_oversized_input_gets_error_and_disconnect(void **state)
{
	struct fixture *f = *state;
	static const char head[] = "{\"execute\": \"echo\", \"arguments\": {\"s\": \"";
	size_t big = CONTROL_MAX_INPUT + 4096;
	char *buf = malloc(big + 1);
	struct tclient t;
	json_t *m;
	bool eof;

	negotiate(&t, f->d.sock);
	memset(buf, 'x', big);
	memcpy(buf, head, sizeof(head) - 1);
	buf[big] = 0;
	/* The server may hang up before it has read all of it: that is fine. */
	tc_send(&t, buf);
	free(buf);
	m = tc_reply(&t);
	assert_error(m, "GenericError", "QMP input exceeds 1048576 bytes");
	json_decref(m);
	assert_null(tc_recv_eof(&t, TEST_WAIT_MS, &eof));
	assert_true(eof);
	tc_close(&t);
	assert_true(wait_client_count(f, 0));
}

static void test_query_commands_lists_builtin_and_registered(void **state)
{
	struct fixture *f = *state;
	bool seen_caps = false, seen_stop = false, seen_qc = false;
	struct tclient t;
	json_t *m, *e;
	size_t i;

	negotiate(&t, f->d.sock);
	assert_int_equal(tc_send(&t, "{\"execute\": \"query-commands\"}"), 0);
	m = tc_reply(&t);
	assert_true(json_is_array(json_object_get(m, "return")));
	json_array_foreach(json_object_get(m, "return"), i, e) {
		const char *n = json_string_value(json_object_get(e, "name"));

		seen_caps |= !strcmp(n, "qmp_capabilities");
		seen_stop |= !strcmp(n, "stop");
		seen_qc |= !strcmp(n, "query-commands");
	}
	assert_true(seen_caps && seen_stop && seen_qc);
	json_decref(m);
	tc_close(&t);
	assert_int_equal(control_register(f->ctl, "stop", fake_stop, f), -EEXIST);
}

/* ---- socket path checks (no server fixture) ---- */

static void test_check_path_reports_live_stale_and_non_socket(void **state)
{
	struct evloop *loop = evloop_new();
	struct control *ctl;
	struct tdir d;
	char err[256] = "", path2[160];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	assert_int_equal(tdir_make(&d), 0);
	/* Nothing there. */
	assert_int_equal(control_check_path(d.sock, err, sizeof(err)), 0);
	/* A live server. */
	ctl = control_new(loop, d.sock, err, sizeof(err));
	assert_non_null(ctl);
	assert_int_equal(control_check_path(d.sock, err, sizeof(err)), -EADDRINUSE);
	assert_non_null(strstr(err, "is in use by a running process"));
	assert_non_null(strstr(err, d.sock));
	/* A second server on the same path is refused, and leaves the first intact. */
	assert_null(control_new(loop, d.sock, err, sizeof(err)));
	assert_non_null(strstr(err, "is in use by a running process"));
	assert_int_equal(stat(d.sock, &st), 0);
	control_free(ctl);
	assert_int_equal(stat(d.sock, &st), -1);
	/* A stale socket: bound, then its process "died". */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	sun_set(&sa, d.sock);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(stat(d.sock, &st), 0);
	assert_int_equal(control_check_path(d.sock, err, sizeof(err)), 0);
	assert_int_equal(stat(d.sock, &st), -1);
	/* control_new does the same cleanup itself. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	ctl = control_new(loop, d.sock, err, sizeof(err));
	assert_non_null(ctl);
	control_free(ctl);
	/* A regular file is never removed. */
	snprintf(path2, sizeof(path2), "%s/file", d.dir);
	fd = open(path2, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(control_check_path(path2, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "is not a socket"));
	assert_null(control_new(loop, path2, err, sizeof(err)));
	assert_int_equal(stat(path2, &st), 0);
	unlink(path2);
	/* Longer than sun_path. */
	memset(path2, 'a', sizeof(path2) - 1);
	path2[0] = '/';
	path2[sizeof(path2) - 1] = 0;
	assert_int_equal(control_check_path(path2, err, sizeof(err)), -ENAMETOOLONG);
	evloop_free(loop);
	tdir_remove(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_greeting_is_qemu_format_exactly),
		T(test_commands_before_negotiation_are_command_not_found),
		T(test_unknown_capability_is_refused),
		T(test_reply_echoes_any_id_and_arguments_reach_command),
		T(test_unknown_command_is_command_not_found),
		T(test_failed_command_is_generic_error_with_its_message),
		T(test_malformed_json_gets_error_and_connection_stays_usable),
		T(test_two_commands_in_one_write_get_two_replies_in_order),
		T(test_command_split_over_writes_is_answered_once_complete),
		T(test_event_reaches_every_negotiated_client_only),
		T(test_event_emitted_by_command_precedes_its_reply),
		T(test_async_command_holds_later_commands_until_it_answers),
		T(test_client_vanishing_mid_command_is_cleaned_up),
		T(test_half_closed_client_gets_its_replies_then_eof),
		T(test_oversized_input_gets_error_and_disconnect),
		T(test_query_commands_lists_builtin_and_registered),
#undef T
		cmocka_unit_test(test_check_path_reports_live_stale_and_non_socket),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
