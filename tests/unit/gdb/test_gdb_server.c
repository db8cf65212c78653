/*
 * The GDB server over real sockets: listen specs, connect/attach, stop
 * notifications from another thread, Ctrl-C, one client at a time, a
 * client vanishing mid-packet (detach semantics), and — when Debian's gdb is
 * installed — stock gdb in batch mode against a fake 2-vCPU target.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "fake_target.h"
#include "gdb/gdb_proto.h"

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Poll cond for up to 5 s. */
#define WAIT_FOR(cond) do { \
	for (int _i = 0; _i < 500 && !(cond); _i++) \
		sleep_ms(10); \
	assert_true(cond); \
} while (0)

static int connect_tcp(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void send_str(int fd, const char *s)
{
	assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

static void send_pkt(int fd, const char *payload)
{
	uint8_t out[1024];
	size_t n = gdb_pkt_encode(out, sizeof(out), payload, strlen(payload));

	assert_int_equal(send(fd, out, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Read until one packet arrives (skipping acks); its payload into buf. */
static int recv_pkt(int fd, char *buf, size_t cap, int timeout_ms)
{
	static struct gdb_pkt_parser p;

	gdb_pkt_init(&p);
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint8_t c;

		if (poll(&pfd, 1, timeout_ms) <= 0)
			return -ETIMEDOUT;
		if (recv(fd, &c, 1, 0) != 1)
			return -EPIPE;
		if (gdb_pkt_feed(&p, c) == GDB_PKT_PACKET) {
			snprintf(buf, cap, "%s", (char *)p.buf);
			return 0;
		}
	}
}

static const char *roundtrip(int fd, const char *payload)
{
	static char buf[GDB_REPLY_MAX + 1];

	send_pkt(fd, payload);
	assert_int_equal(recv_pkt(fd, buf, sizeof(buf), 5000), 0);
	return buf;
}

struct fixture {
	struct fake_target t;
	struct gdb_server *gs;
	int port;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	fake_target_init(&f->t, 2);
	f->gs = gdb_server_new("tcp:127.0.0.1:0", &fake_ops, &f->t, err, sizeof(err));
	if (!f->gs)
		fail_msg("%s", err);
	f->port = gdb_server_port(f->gs);
	assert_true(f->port > 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	gdb_server_free(f->gs);
	fake_target_free(&f->t);
	free(f);
	return 0;
}

static int fake_nstop(struct fake_target *t)
{
	int n;

	pthread_mutex_lock(&t->lock);
	n = t->nstop;
	pthread_mutex_unlock(&t->lock);
	return n;
}

static int fake_nresume(struct fake_target *t)
{
	int n;

	pthread_mutex_lock(&t->lock);
	n = t->nresume;
	pthread_mutex_unlock(&t->lock);
	return n;
}

static void test_listen_spec_errors_are_reported(void **state)
{
	char err[256] = "";

	assert_null(gdb_server_new("tcp:127.0.0.1:99999", &fake_ops, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "99999"));
	assert_null(gdb_server_new("tcp:127.0.0.1:http", &fake_ops, NULL, err, sizeof(err)));
	assert_null(gdb_server_new("tcp:no.such.host.invalid:1234", &fake_ops, NULL, err,
				   sizeof(err)));
	assert_null(gdb_server_new("unix:/nonexistent-dir/x/gdb.sock", &fake_ops, NULL, err,
				   sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent-dir/x/gdb.sock"));
}

static void test_default_listen_address_is_loopback(void **state)
{
	struct fake_target t;
	struct gdb_server *gs;
	char err[256];

	fake_target_init(&t, 1);
	gs = gdb_server_new(":0", &fake_ops, &t, err, sizeof(err));
	assert_non_null(gs);
	int fd = connect_tcp(gdb_server_port(gs));	/* reachable on 127.0.0.1 */
	WAIT_FOR(gdb_server_connected(gs));
	close(fd);
	gdb_server_free(gs);
	fake_target_free(&t);
}

static void test_unix_socket_serves_gdb(void **state)
{
	struct fake_target t;
	struct gdb_server *gs;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char err[256], path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/amber-gdb-test-%d.sock", (int)getpid());
	fake_target_init(&t, 1);
	gs = gdb_server_new(strcat(strcpy(err, "unix:"), path), &fake_ops, &t, err, sizeof(err));
	assert_non_null(gs);
	assert_int_equal(gdb_server_port(gs), -1);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_string_equal(roundtrip(fd, "qC"), "QC1");
	close(fd);
	gdb_server_free(gs);
	assert_int_not_equal(access(path, F_OK), 0);	/* socket file removed */
	fake_target_free(&t);
}

static void test_connect_stops_the_vm_and_answers(void **state)
{
	struct fixture *f = *state;
	int fd = connect_tcp(f->port);

	assert_string_equal(roundtrip(fd, "?"), "T05thread:1;");
	assert_true(fake_nstop(&f->t) >= 1);
	assert_true(gdb_server_connected(f->gs));
	assert_string_equal(roundtrip(fd, "qfThreadInfo"), "m1,2");
	close(fd);
}

static void test_notify_stop_is_ignored_without_client(void **state)
{
	struct fixture *f = *state;
	struct gdb_stop_event ev = { .cpu = 0, .reason = GDB_STOP_STEP };

	assert_int_equal(gdb_server_notify_stop(f->gs, &ev), 0);
	assert_int_equal(gdb_server_notify_stop(NULL, &ev), 0);
}

static void test_breakpoint_hit_from_vcpu_thread_is_reported(void **state)
{
	struct fixture *f = *state;
	struct gdb_stop_event ev = { .cpu = 1, .reason = GDB_STOP_SW_BP, .addr = 0x20000 };
	struct gdb_stop_event foreign = { .cpu = 1, .reason = GDB_STOP_SW_BP, .addr = 0x20010 };
	char buf[256];
	int fd = connect_tcp(f->port);

	assert_string_equal(roundtrip(fd, "Z0,20000,1"), "OK");
	send_pkt(fd, "vCont;c");
	WAIT_FOR(fake_nresume(&f->t) == 1);
	/* an int3 the stub did not plant is the guest's */
	assert_int_equal(gdb_server_notify_stop(f->gs, &foreign), 0);
	assert_int_equal(gdb_server_notify_stop(f->gs, &ev), 1);
	assert_int_equal(recv_pkt(fd, buf, sizeof(buf), 5000), 0);
	assert_string_equal(buf, "T05thread:2;swbreak:;");
	close(fd);
}

/*
 * The VM reports its exit right before it frees the server
 * (vm_gdb_teardown): the client must still get its 'W', not a bare close.
 */
static void test_exit_notified_right_before_free_reaches_the_client(void **state)
{
	struct fixture *f = *state;
	struct gdb_stop_event ev = { .reason = GDB_STOP_EXITED, .exit_code = 4 };
	char buf[256];
	int fd = connect_tcp(f->port);

	assert_string_equal(roundtrip(fd, "?"), "T05thread:1;");
	send_pkt(fd, "vCont;c");
	WAIT_FOR(fake_nresume(&f->t) == 1);
	assert_int_equal(gdb_server_notify_stop(f->gs, &ev), 1);
	gdb_server_free(f->gs);
	f->gs = NULL;
	assert_int_equal(recv_pkt(fd, buf, sizeof(buf), 5000), 0);
	assert_string_equal(buf, "W04");
	close(fd);
}

static void test_ctrl_c_over_the_socket_stops_a_running_guest(void **state)
{
	struct fixture *f = *state;
	char buf[256];
	int fd = connect_tcp(f->port);
	int nstop;

	assert_string_equal(roundtrip(fd, "qC"), "QC1");
	send_pkt(fd, "c");
	WAIT_FOR(fake_nresume(&f->t) == 1);
	nstop = fake_nstop(&f->t);
	send_str(fd, "\x03");
	assert_int_equal(recv_pkt(fd, buf, sizeof(buf), 5000), 0);
	assert_string_equal(buf, "T02thread:1;");
	assert_int_equal(fake_nstop(&f->t), nstop + 1);
	close(fd);
}

static void test_client_vanishing_mid_packet_detaches_and_guest_runs(void **state)
{
	struct fixture *f = *state;
	int fd = connect_tcp(f->port);

	assert_int_equal(gdb_server_count_sw_breakpoints(f->gs), 0);
	assert_string_equal(roundtrip(fd, "Z0,20000,1"), "OK");
	assert_int_equal(f->t.ram[0x20000], 0xcc);
	assert_int_equal(gdb_server_count_sw_breakpoints(f->gs), 1);
	send_str(fd, "$m20000,1");	/* no end: the client dies here */
	close(fd);
	WAIT_FOR(!gdb_server_connected(f->gs));
	WAIT_FOR(fake_nresume(&f->t) == 1);
	assert_int_equal(f->t.ram[0x20000], 0);	/* int3 removed */
	assert_false(f->t.dbg[0].enabled);
	assert_int_equal(gdb_server_count_sw_breakpoints(f->gs), 0);
	assert_int_equal(f->t.actions[0], GDB_CPU_CONTINUE);
	assert_int_equal(f->t.actions[1], GDB_CPU_CONTINUE);
	/* and a new client can attach */
	fd = connect_tcp(f->port);
	assert_string_equal(roundtrip(fd, "qC"), "QC1");
	close(fd);
}

static void test_second_client_is_refused_while_one_is_attached(void **state)
{
	struct fixture *f = *state;
	int fd = connect_tcp(f->port), fd2;
	char c;

	assert_string_equal(roundtrip(fd, "qC"), "QC1");
	fd2 = connect_tcp(f->port);
	struct pollfd pfd = { .fd = fd2, .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(recv(fd2, &c, 1, 0), 0);	/* closed by the server */
	close(fd2);
	assert_string_equal(roundtrip(fd, "qC"), "QC1");	/* the first is unaffected */
	close(fd);
}

static void test_detach_packet_resumes_and_closes(void **state)
{
	struct fixture *f = *state;
	int fd = connect_tcp(f->port);
	char c;

	assert_string_equal(roundtrip(fd, "D"), "OK");
	WAIT_FOR(fake_nresume(&f->t) == 1);
	/* the server hangs up after D */
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(recv(fd, &c, 1, 0), 0);
	close(fd);
	WAIT_FOR(!gdb_server_connected(f->gs));
}

static void test_server_free_with_client_attached_resumes_guest(void **state)
{
	struct fixture *f = *state;
	int fd = connect_tcp(f->port);

	assert_string_equal(roundtrip(fd, "qC"), "QC1");
	gdb_server_free(f->gs);
	f->gs = NULL;
	assert_int_equal(fake_nresume(&f->t), 1);
	close(fd);
	/* teardown must not free twice */
	char err[256];
	f->gs = gdb_server_new("tcp:127.0.0.1:0", &fake_ops, &f->t, err, sizeof(err));
	assert_non_null(f->gs);
}

/* ---- stock gdb against a fake target that "executes" ----------------- */

/*
 * A runner thread plays the vCPUs: a step advances rip by one instruction
 * (the fake's code is 1-byte nops) and reports GDB_STOP_STEP; a continue
 * runs to the first int3 the stub planted in the code page and reports it.
 */
#define CODE_VA 0x30000ULL

struct runner {
	struct fixture *f;
	pthread_t thread;
	bool quit;
};

/* vCPU 0 runs: the first debug register or int3 that would fire does. */
static bool runner_continue(struct fake_target *t, struct gdb_stop_event *ev)
{
	const struct gdb_debug_state *d = &t->dbg[0];
	uint64_t pc = t->regs[0].rip;

	for (int i = 0; i < GDB_HW_SLOTS; i++) {
		if (d->hw[i].type == GDB_HW_WRITE) {
			t->ram[d->hw[i].addr]++;	/* the guest writes there */
			*ev = (struct gdb_stop_event){ .cpu = 0, .reason = GDB_STOP_WATCH,
				.slot = i, .watch_type = GDB_HW_WRITE, .addr = d->hw[i].addr };
			return true;
		}
		if (d->hw[i].type == GDB_HW_EXEC) {
			t->regs[0].rip = d->hw[i].addr;
			*ev = (struct gdb_stop_event){ .cpu = 0, .reason = GDB_STOP_HW_BP,
				.slot = i, .addr = d->hw[i].addr };
			return true;
		}
	}
	while (pc < CODE_VA + 0x1000 && t->ram[pc] != 0xcc)
		pc++;
	if (pc >= CODE_VA + 0x1000)
		return false;
	t->regs[0].rip = pc;
	*ev = (struct gdb_stop_event){ .cpu = 0, .reason = GDB_STOP_SW_BP, .addr = pc };
	return true;
}

static void *runner_main(void *arg)
{
	struct runner *r = arg;
	struct fake_target *t = &r->f->t;

	while (!__atomic_load_n(&r->quit, __ATOMIC_ACQUIRE)) {
		struct gdb_stop_event ev = { 0 };
		bool fire = false;

		pthread_mutex_lock(&t->lock);
		if (t->running) {
			for (int c = 0; c < t->ncpus && !fire; c++) {
				if (t->actions[c] == GDB_CPU_STEP) {
					t->regs[c].rip++;
					ev = (struct gdb_stop_event){ .cpu = c, .reason = GDB_STOP_STEP };
					fire = true;
				} else if (t->actions[c] == GDB_CPU_CONTINUE && c == 0) {
					fire = runner_continue(t, &ev);
				}
			}
			if (fire)
				t->running = false;	/* the reporting vCPU parks */
		}
		pthread_mutex_unlock(&t->lock);
		if (fire)
			gdb_server_notify_stop(r->f->gs, &ev);
		sleep_ms(5);
	}
	return NULL;
}

/* Run gdb in batch mode with the given -ex commands against the fixture. */
static int run_gdb(struct fixture *f, const char *cmds, char *out, size_t cap)
{
	struct runner r = { .f = f };
	char cmdline[4096];
	size_t n;
	FILE *p;
	int status;

	memset(f->t.ram + CODE_VA, 0x90, 0x1000);	/* nops */
	f->t.regs[0].rip = CODE_VA;
	f->t.regs[0].rax = 0x1234abcd;
	memcpy(f->t.ram + FAKE_DATA, "\x11\x22\x33\x44", 4);
	pthread_create(&r.thread, NULL, runner_main, &r);
	snprintf(cmdline, sizeof(cmdline),
		 "timeout 60 gdb -nx -batch -ex 'set confirm off' "
		 "-ex 'target remote 127.0.0.1:%d' %s -ex 'detach' 2>&1", f->port, cmds);
	p = popen(cmdline, "r");
	assert_non_null(p);
	n = fread(out, 1, cap - 1, p);
	out[n] = 0;
	status = pclose(p);
	__atomic_store_n(&r.quit, true, __ATOMIC_RELEASE);
	pthread_join(r.thread, NULL);
	print_message("%s", out);
	return status;
}

static void skip_without_gdb(void)
{
	if (access("/usr/bin/gdb", X_OK) != 0) {
		print_message("skipped: /usr/bin/gdb not installed\n");
		skip();
	}
}

static void test_stock_gdb_reads_registers_steps_and_hits_breakpoint(void **state)
{
	struct fixture *f = *state;
	char cmds[1024], out[8192];
	int status;

	skip_without_gdb();
	snprintf(cmds, sizeof(cmds),
		 "-ex 'printf \"RIP=%%lx\\n\", $rip' "
		 "-ex 'printf \"RAX=%%lx\\n\", $rax' "
		 "-ex 'x/4xb 0x%llx' "
		 "-ex 'info threads' "
		 "-ex 'stepi' "
		 "-ex 'printf \"STEP=%%lx\\n\", $rip' "
		 "-ex 'break *0x%llx' "
		 "-ex 'continue' "
		 "-ex 'printf \"BP=%%lx\\n\", $rip' "
		 "-ex 'info registers fs_base'",
		 FAKE_DATA, CODE_VA + 0x40);
	status = run_gdb(f, cmds, out, sizeof(out));
	assert_true(WIFEXITED(status));
	assert_non_null(strstr(out, "RIP=30000"));
	assert_non_null(strstr(out, "RAX=1234abcd"));
	assert_non_null(strstr(out, "0x11\t0x22\t0x33\t0x44"));
	assert_non_null(strstr(out, "Thread 2"));
	assert_non_null(strstr(out, "STEP=30001"));
	assert_non_null(strstr(out, "BP=30040"));
	assert_non_null(strstr(out, "fs_base"));
	/* detached: the int3 is gone and the guest runs */
	WAIT_FOR(!gdb_server_connected(f->gs));
	assert_int_equal(f->t.ram[CODE_VA + 0x40], 0x90);
	assert_true(f->t.running);
}

static void test_stock_gdb_hardware_breakpoint_and_watchpoint(void **state)
{
	struct fixture *f = *state;
	char cmds[1024], out[8192];
	int status;

	skip_without_gdb();
	snprintf(cmds, sizeof(cmds),
		 "-ex 'hbreak *0x%llx' "
		 "-ex 'continue' "
		 "-ex 'printf \"HB=%%lx\\n\", $rip' "
		 "-ex 'delete' "
		 "-ex 'watch *(int *)0x%llx' "
		 "-ex 'continue' "
		 "-ex 'delete'",
		 CODE_VA + 0x80, FAKE_DATA);
	status = run_gdb(f, cmds, out, sizeof(out));
	assert_true(WIFEXITED(status));
	assert_non_null(strstr(out, "Hardware assisted breakpoint 1"));
	assert_non_null(strstr(out, "HB=30080"));
	assert_non_null(strstr(out, "Hardware watchpoint 2"));
	assert_non_null(strstr(out, "New value = 1144201746"));	/* 0x44332212 */
	WAIT_FOR(!gdb_server_connected(f->gs));
	assert_false(f->t.dbg[0].enabled);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listen_spec_errors_are_reported),
		cmocka_unit_test(test_default_listen_address_is_loopback),
		cmocka_unit_test(test_unix_socket_serves_gdb),
		T(test_connect_stops_the_vm_and_answers),
		T(test_notify_stop_is_ignored_without_client),
		T(test_breakpoint_hit_from_vcpu_thread_is_reported),
		T(test_exit_notified_right_before_free_reaches_the_client),
		T(test_ctrl_c_over_the_socket_stops_a_running_guest),
		T(test_client_vanishing_mid_packet_detaches_and_guest_runs),
		T(test_second_client_is_refused_while_one_is_attached),
		T(test_detach_packet_resumes_and_closes),
		T(test_server_free_with_client_attached_resumes_guest),
		T(test_stock_gdb_reads_registers_steps_and_hits_breakpoint),
		T(test_stock_gdb_hardware_breakpoint_and_watchpoint),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
