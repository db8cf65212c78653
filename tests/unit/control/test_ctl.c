/*
 * `amber ctl` against the real control server (loop thread, temporary
 * socket, fake VM commands), against a server that never answers, and
 * against no server at all. stdout/stderr of cli_ctl_main are captured.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <fcntl.h>
#include <cmocka.h>

#include "amber/control.h"
#include "amber/evloop.h"
#include "amber/cli.h"
#include "testutil.h"

struct fixture {
	struct tdir d;
	struct evloop *loop;
	struct control *ctl;
	bool running;
	int quit_calls, powerdown_calls;
	json_t *checkpoint_args;
	char out[8192], err[8192];
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
	control_emit_event(f->ctl, "STOP", NULL);
	return 0;
}

static int fake_cont(void *opaque, const json_t *args, json_t **ret, char *err, size_t errlen)
{
	snprintf(err, errlen, "cannot resume: a checkpoint is being written");
	return -EBUSY;
}

static int fake_quit(void *opaque, const json_t *args, json_t **ret, char *err, size_t errlen)
{
	((struct fixture *)opaque)->quit_calls++;
	return 0;
}

static int fake_powerdown(void *opaque, const json_t *args, json_t **ret, char *err, size_t errlen)
{
	((struct fixture *)opaque)->powerdown_calls++;
	return 0;
}

static int fake_checkpoint(void *opaque, const json_t *args, json_t **ret, char *err, size_t errlen)
{
	struct fixture *f = opaque;

	json_decref(f->checkpoint_args);
	f->checkpoint_args = json_deep_copy(args);
	return 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->running = true;
	f->ctl = tserver_new(&f->d, &f->loop);
	assert_int_equal(control_register(f->ctl, "query-status", fake_query_status, f), 0);
	assert_int_equal(control_register(f->ctl, "stop", fake_stop, f), 0);
	assert_int_equal(control_register(f->ctl, "cont", fake_cont, f), 0);
	assert_int_equal(control_register(f->ctl, "quit", fake_quit, f), 0);
	assert_int_equal(control_register(f->ctl, "system_powerdown", fake_powerdown, f), 0);
	assert_int_equal(control_register(f->ctl, "checkpoint", fake_checkpoint, f), 0);
	assert_int_equal(evloop_start_thread(f->loop), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	evloop_stop(f->loop);
	evloop_join(f->loop);
	control_free(f->ctl);
	evloop_free(f->loop);
	json_decref(f->checkpoint_args);
	tdir_remove(&f->d);
	free(f);
	return 0;
}

static void slurp(int fd, char *buf, size_t len)
{
	ssize_t n;

	lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, len - 1);
	buf[n > 0 ? n : 0] = 0;
	close(fd);
}

/* Run `amber ctl ARGS...` (NULL-terminated) capturing stdout and stderr. */
static int run_ctl(struct fixture *f, ...)
{
	char *argv[16], tmpl[2][160];
	int fds[2], saved[2], i, argc = 0, status;
	va_list ap;

	argv[argc++] = "ctl";
	va_start(ap, f);
	while (argc < 15 && (argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	for (i = 0; i < 2; i++) {
		snprintf(tmpl[i], sizeof(tmpl[i]), "%s/out.XXXXXX", f->d.dir);
		fds[i] = mkstemp(tmpl[i]);
		assert_true(fds[i] >= 0);
		unlink(tmpl[i]);
	}
	fflush(stdout);
	fflush(stderr);
	saved[0] = dup(1);
	saved[1] = dup(2);
	dup2(fds[0], 1);
	dup2(fds[1], 2);
	status = cli_ctl_main(argc, argv);
	fflush(stdout);
	fflush(stderr);
	dup2(saved[0], 1);
	dup2(saved[1], 2);
	close(saved[0]);
	close(saved[1]);
	slurp(fds[0], f->out, sizeof(f->out));
	slurp(fds[1], f->err, sizeof(f->err));
	return status;
}

static void test_status_prints_running(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(run_ctl(f, f->d.sock, "status", NULL), 0);
	assert_string_equal(f->out, "running\n");
	assert_string_equal(f->err, "");
}

static void test_pause_then_status_prints_paused(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(run_ctl(f, f->d.sock, "pause", NULL), 0);
	assert_string_equal(f->out, "");
	assert_false(f->running);
	assert_int_equal(run_ctl(f, "--timeout", "3", f->d.sock, "status", NULL), 0);
	assert_string_equal(f->out, "paused\n");
}

static void test_qmp_error_exits_1_with_its_desc(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(run_ctl(f, f->d.sock, "resume", NULL), 1);
	assert_non_null(strstr(f->err, "cannot resume: a checkpoint is being written"));
	assert_string_equal(f->out, "");
}

static void test_quit_and_powerdown_reach_their_commands(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(run_ctl(f, f->d.sock, "powerdown", NULL), 0);
	assert_int_equal(f->powerdown_calls, 1);
	assert_int_equal(run_ctl(f, f->d.sock, "quit", NULL), 0);
	assert_int_equal(f->quit_calls, 1);
}

static void test_checkpoint_sends_absolute_path_then_and_force(void **state)
{
	struct fixture *f = *state;
	char *cwd = getcwd(NULL, 0), want[4096];

	assert_int_equal(run_ctl(f, f->d.sock, "checkpoint", "ck1", "--then", "stop", "--force", NULL), 0);
	assert_non_null(f->checkpoint_args);
	snprintf(want, sizeof(want), "%s/ck1", cwd);
	assert_string_equal(json_string_value(json_object_get(f->checkpoint_args, "path")), want);
	assert_string_equal(json_string_value(json_object_get(f->checkpoint_args, "then")), "stop");
	assert_true(json_is_true(json_object_get(f->checkpoint_args, "force")));
	assert_int_equal(run_ctl(f, f->d.sock, "checkpoint", "/abs/dir", NULL), 0);
	assert_string_equal(json_string_value(json_object_get(f->checkpoint_args, "path")), "/abs/dir");
	assert_null(json_object_get(f->checkpoint_args, "then"));
	assert_true(json_is_false(json_object_get(f->checkpoint_args, "force")));
	free(cwd);
}

static void test_checkpoint_bad_then_is_usage_error(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(run_ctl(f, f->d.sock, "checkpoint", "d", "--then", "explode", NULL), 2);
	assert_non_null(strstr(f->err, "explode"));
	assert_int_equal(run_ctl(f, f->d.sock, "checkpoint", NULL), 2);
	assert_null(f->checkpoint_args);
}

static void test_raw_qmp_prints_return_value(void **state)
{
	struct fixture *f = *state;
	json_t *ret;

	assert_int_equal(run_ctl(f, f->d.sock, "qmp", "{\"execute\": \"query-version\"}", NULL), 0);
	ret = json_loads(f->out, 0, NULL);
	assert_non_null(ret);
	assert_string_equal(json_string_value(json_object_get(ret, "package")), "amber 0.1.0");
	json_decref(ret);
	assert_int_equal(run_ctl(f, f->d.sock, "qmp", "{\"execute\": \"nope\"}", NULL), 1);
	assert_non_null(strstr(f->err, "The command nope has not been found"));
	assert_int_equal(run_ctl(f, f->d.sock, "qmp", "{not json", NULL), 2);
}

static void test_usage_errors_exit_2(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(run_ctl(f, NULL), 2);
	assert_non_null(strstr(f->err, "usage: amber ctl"));
	assert_int_equal(run_ctl(f, f->d.sock, NULL), 2);
	assert_int_equal(run_ctl(f, f->d.sock, "frobnicate", NULL), 2);
	assert_non_null(strstr(f->err, "unknown command frobnicate"));
	assert_int_equal(run_ctl(f, f->d.sock, "status", "extra", NULL), 2);
	assert_int_equal(run_ctl(f, "--timeout", "-1", f->d.sock, "status", NULL), 2);
	assert_int_equal(run_ctl(f, "--timeout", "abc", f->d.sock, "status", NULL), 2);
}

static void test_missing_socket_exits_1_naming_path_and_reason(void **state)
{
	struct fixture *f = *state;
	char path[200], want[300];

	snprintf(path, sizeof(path), "%s/absent.sock", f->d.dir);
	assert_int_equal(run_ctl(f, path, "status", NULL), 1);
	snprintf(want, sizeof(want), "amber ctl: cannot connect to control socket %s: "
		 "No such file or directory\n", path);
	assert_string_equal(f->err, want);
}

static void test_dead_socket_exits_1_connection_refused(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char path[200];
	int fd;

	snprintf(path, sizeof(path), "%s/dead.sock", f->d.dir);
	sun_set(&sa, path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(run_ctl(f, path, "status", NULL), 1);
	assert_non_null(strstr(f->err, "cannot connect to control socket"));
	assert_non_null(strstr(f->err, "Connection refused"));
	unlink(path);
}

static void test_silent_server_times_out(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timespec a, b;
	char path[200];
	double secs;
	int fd;

	/* Listens but never accepts nor greets. */
	snprintf(path, sizeof(path), "%s/mute.sock", f->d.dir);
	sun_set(&sa, path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(run_ctl(f, "--timeout=0.3", path, "status", NULL), 1);
	clock_gettime(CLOCK_MONOTONIC, &b);
	secs = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	assert_true(secs >= 0.25 && secs < 3);
	assert_non_null(strstr(f->err, "no answer"));
	close(fd);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_status_prints_running),
		T(test_pause_then_status_prints_paused),
		T(test_qmp_error_exits_1_with_its_desc),
		T(test_quit_and_powerdown_reach_their_commands),
		T(test_checkpoint_sends_absolute_path_then_and_force),
		T(test_checkpoint_bad_then_is_usage_error),
		T(test_raw_qmp_prints_return_value),
		T(test_usage_errors_exit_2),
		T(test_missing_socket_exits_1_naming_path_and_reason),
		T(test_dead_socket_exits_1_connection_refused),
		T(test_silent_server_times_out),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
