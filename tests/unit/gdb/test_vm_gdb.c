/*
 * The GDB stub wired into the VM (src/core/vm_gdb.c) without KVM: the VM's
 * pause primitives (vm_pause, vm_hold_vcpus, ...) are replaced by recorders
 * here, the vCPU fds are closed (-1, so register ioctls fail cleanly), and a
 * client talks to the real server over a UNIX socket. What is checked is the
 * wiring: --gdb/--gdb-wait, which vCPUs a gdb resume releases, kill, the
 * QMP-side refusals and the checkpoint check.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "amber/control.h"
#include "amber/vm.h"
#include "amber/vm_gdb.h"
#include "gdb/gdb_proto.h"

#define NCPUS 2

/* ---- the VM side, recorded ----------------------------------------------- */

static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static int rec_pause, rec_unpause, rec_hold, rec_hold_wait, rec_release, rec_exit = -1;
static bool rec_released[NCPUS];

void vm_pause(struct vm *vm)
{
	pthread_mutex_lock(&rec_lock);
	rec_pause++;
	pthread_mutex_unlock(&rec_lock);
}

void vm_unpause(struct vm *vm)
{
	pthread_mutex_lock(&rec_lock);
	rec_unpause++;
	pthread_mutex_unlock(&rec_lock);
}

void vm_hold_vcpus(struct vm *vm, bool wait)
{
	pthread_mutex_lock(&rec_lock);
	rec_hold++;
	rec_hold_wait += wait;
	for (int i = 0; i < vm->ncpus; i++)
		vm->vcpus[i].gdb_hold = true;
	pthread_mutex_unlock(&rec_lock);
}

void vm_release_vcpus(struct vm *vm, const bool *release)
{
	pthread_mutex_lock(&rec_lock);
	rec_release++;
	for (int i = 0; i < vm->ncpus; i++) {
		rec_released[i] = release[i];
		if (release[i])
			vm->vcpus[i].gdb_hold = false;
	}
	pthread_mutex_unlock(&rec_lock);
}

void vm_request_exit(struct vm *vm, int code)
{
	pthread_mutex_lock(&rec_lock);
	rec_exit = code;
	pthread_mutex_unlock(&rec_lock);
}

int control_register(struct control *ctl, const char *name, control_cmd_fn fn, void *opaque)
{
	return 0;
}

static int rec_get(int *v)
{
	int n;

	pthread_mutex_lock(&rec_lock);
	n = *v;
	pthread_mutex_unlock(&rec_lock);
	return n;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

#define WAIT_FOR(cond) do { \
	for (int _i = 0; _i < 500 && !(cond); _i++) \
		sleep_ms(10); \
	assert_true(cond); \
} while (0)

/* ---- fixture: a VM shell with NCPUS vCPUs, no KVM ------------------------ */

struct fixture {
	struct vm vm;
	struct vcpu vcpus[NCPUS];
	struct vm_config cfg;
	char sock[108];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->vm.kvm_fd = -1;
	f->vm.ncpus = NCPUS;
	f->vm.vcpus = f->vcpus;
	f->vm.cfg = &f->cfg;
	f->vm.entry_rip = 0x100000;
	for (int i = 0; i < NCPUS; i++) {
		f->vcpus[i].vm = &f->vm;
		f->vcpus[i].id = i;
		f->vcpus[i].fd = -1;
	}
	snprintf(f->sock, sizeof(f->sock), "/tmp/amber-vm-gdb-test-%d.sock", (int)getpid());
	pthread_mutex_lock(&rec_lock);
	rec_pause = rec_unpause = rec_hold = rec_hold_wait = rec_release = 0;
	rec_exit = -1;
	memset(rec_released, 0, sizeof(rec_released));
	pthread_mutex_unlock(&rec_lock);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	vm_gdb_teardown(&f->vm);
	free(f->cfg.gdb);
	unlink(f->sock);
	free(f);
	return 0;
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void send_pkt(int fd, const char *payload)
{
	uint8_t out[512];
	size_t n = gdb_pkt_encode(out, sizeof(out), payload, strlen(payload));

	assert_int_equal(send(fd, out, n, MSG_NOSIGNAL), (ssize_t)n);
}

static const char *roundtrip(int fd, const char *payload)
{
	static struct gdb_pkt_parser p;
	static char buf[256];

	send_pkt(fd, payload);
	gdb_pkt_init(&p);
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint8_t c;

		assert_true(poll(&pfd, 1, 5000) > 0);
		assert_int_equal(recv(fd, &c, 1, 0), 1);
		if (gdb_pkt_feed(&p, c) == GDB_PKT_PACKET) {
			snprintf(buf, sizeof(buf), "%.200s", (char *)p.buf);
			return buf;
		}
	}
}

static void start_with(struct fixture *f, bool wait)
{
	char spec[128], err[256] = "";

	snprintf(spec, sizeof(spec), "unix:%s", f->sock);
	f->cfg.gdb = strdup(spec);
	f->cfg.gdb_wait = wait;
	if (vm_gdb_setup(&f->vm, err, sizeof(err)) < 0)
		fail_msg("vm_gdb_setup: %s", err);
}

/* ---- tests ----------------------------------------------------------------- */

static void test_gdb_wait_without_gdb_is_refused(void **state)
{
	struct fixture *f = *state;
	char err[256] = "";

	f->cfg.gdb_wait = true;
	assert_int_equal(vm_gdb_setup(&f->vm, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "--gdb-wait needs --gdb"));
	assert_null(f->vm.gdb);
}

static void test_no_gdb_option_installs_nothing(void **state)
{
	struct fixture *f = *state;
	char err[256] = "";

	assert_int_equal(vm_gdb_setup(&f->vm, err, sizeof(err)), 0);
	assert_null(f->vm.gdb);
	assert_null(f->vm.debug_exit);
	assert_null(f->vm.debug_prepare);
}

static void test_gdb_wait_holds_every_vcpu_before_the_first_run(void **state)
{
	struct fixture *f = *state;

	start_with(f, true);
	assert_non_null(f->vm.debug_exit);
	assert_non_null(f->vm.debug_prepare);
	assert_int_equal(rec_get(&rec_hold), 1);
	assert_int_equal(rec_get(&rec_hold_wait), 0);	/* no vCPU thread runs yet */
	for (int i = 0; i < NCPUS; i++)
		assert_true(f->vcpus[i].gdb_hold);
	/* the hooks went in while the VM was paused */
	assert_int_equal(rec_get(&rec_pause), 1);
	assert_int_equal(rec_get(&rec_unpause), 1);
}

static void test_gdb_wait_applies_to_the_first_boot_only(void **state)
{
	struct fixture *f = *state;
	char err[256] = "";

	start_with(f, true);
	assert_false(f->cfg.gdb_wait);
	/* --on-reboot restart: the VM is created again from the same config */
	vm_gdb_teardown(&f->vm);
	for (int i = 0; i < NCPUS; i++)
		f->vcpus[i].gdb_hold = false;
	assert_int_equal(vm_gdb_setup(&f->vm, err, sizeof(err)), 0);
	assert_int_equal(rec_get(&rec_hold), 1);
	assert_false(f->vcpus[0].gdb_hold);
}

static void test_without_gdb_wait_the_vcpus_run(void **state)
{
	struct fixture *f = *state;

	start_with(f, false);
	assert_int_equal(rec_get(&rec_hold), 0);
	assert_false(f->vcpus[0].gdb_hold);
}

static void test_connect_holds_and_waits_for_all_vcpus(void **state)
{
	struct fixture *f = *state;
	int fd;

	start_with(f, false);
	fd = connect_unix(f->sock);
	assert_string_equal(roundtrip(fd, "?"), "T05thread:1;");
	assert_true(rec_get(&rec_hold_wait) >= 1);
	assert_string_equal(roundtrip(fd, "qfThreadInfo"), "m1,2");
	close(fd);
}

static void test_step_of_one_vcpu_releases_only_that_vcpu(void **state)
{
	struct fixture *f = *state;
	int fd;

	start_with(f, true);
	fd = connect_unix(f->sock);
	assert_string_equal(roundtrip(fd, "?"), "T05thread:1;");
	send_pkt(fd, "vCont;s:2");
	WAIT_FOR(rec_get(&rec_release) == 1);
	pthread_mutex_lock(&rec_lock);
	assert_false(rec_released[0]);
	assert_true(rec_released[1]);
	pthread_mutex_unlock(&rec_lock);
	assert_true(f->vcpus[0].gdb_hold);
	assert_false(f->vcpus[1].gdb_hold);
	close(fd);
}

static void test_registers_of_a_vcpu_kvm_refuses_are_an_error_reply(void **state)
{
	struct fixture *f = *state;
	int fd;

	start_with(f, false);
	fd = connect_unix(f->sock);
	/* the vCPU fds are -1: KVM_GET_REGS fails with EBADF (9) */
	assert_string_equal(roundtrip(fd, "g"), "E09");
	assert_string_equal(roundtrip(fd, "m100000,4"), "E14");	/* nothing readable: EFAULT */
	close(fd);
}

static void test_kill_quits_the_vm(void **state)
{
	struct fixture *f = *state;
	int fd;

	start_with(f, false);
	fd = connect_unix(f->sock);
	assert_string_equal(roundtrip(fd, "?"), "T05thread:1;");
	send_pkt(fd, "k");
	WAIT_FOR(rec_get(&rec_exit) == EXIT_GUEST_POWEROFF);
	close(fd);
}

static void test_second_server_is_refused_with_a_reason(void **state)
{
	struct fixture *f = *state;
	char err[256] = "";

	start_with(f, false);
	assert_int_equal(vm_gdb_start(&f->vm, "unix:/tmp/amber-vm-gdb-other.sock", false, err,
				      sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "already listening"));
}

static void test_bad_listen_spec_fails_setup_with_a_message(void **state)
{
	struct fixture *f = *state;
	char err[256] = "";

	f->cfg.gdb = strdup("tcp:127.0.0.1:99999");
	assert_true(vm_gdb_setup(&f->vm, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "99999"));
	/* the pause taken to install the hooks is given back */
	assert_int_equal(rec_get(&rec_pause), rec_get(&rec_unpause));
}

static void test_stop_frees_the_server_and_a_new_one_can_start(void **state)
{
	struct fixture *f = *state;
	char err[256] = "";
	int fd;

	start_with(f, false);
	fd = connect_unix(f->sock);
	assert_string_equal(roundtrip(fd, "?"), "T05thread:1;");
	vm_gdb_stop(&f->vm);
	/* the client was detached: every vCPU released */
	pthread_mutex_lock(&rec_lock);
	assert_true(rec_released[0] && rec_released[1]);
	pthread_mutex_unlock(&rec_lock);
	close(fd);
	assert_int_equal(vm_gdb_start(&f->vm, f->cfg.gdb, false, err, sizeof(err)), 0);
}

static void test_checkpoint_veto_allows_a_checkpoint_without_breakpoints(void **state)
{
	struct fixture *f = *state;
	char err[256] = "";

	assert_int_equal(vm_gdb_check_checkpoint(&f->vm, err, sizeof(err)), 0);	/* no gdb */
	start_with(f, false);
	/* the checkpoint code asks through the VM's veto hook */
	assert_ptr_equal(f->vm.checkpoint_veto, vm_gdb_check_checkpoint);
	assert_int_equal(f->vm.checkpoint_veto(&f->vm, err, sizeof(err)), 0);
	vm_gdb_teardown(&f->vm);
	assert_null(f->vm.checkpoint_veto);
}

static void test_exit_is_reported_to_a_waiting_client(void **state)
{
	struct fixture *f = *state;
	char buf[64];
	struct gdb_pkt_parser p;
	int fd;

	start_with(f, false);
	fd = connect_unix(f->sock);
	assert_string_equal(roundtrip(fd, "?"), "T05thread:1;");
	send_pkt(fd, "vCont;c");
	WAIT_FOR(rec_get(&rec_release) == 1);
	/* the guest powered off: vm_destroy tears gdb down */
	f->vm.exiting = true;
	f->vm.exit_code = 0;
	vm_gdb_teardown(&f->vm);
	gdb_pkt_init(&p);
	buf[0] = 0;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint8_t c;

		assert_true(poll(&pfd, 1, 5000) > 0);
		if (recv(fd, &c, 1, 0) != 1)
			break;
		if (gdb_pkt_feed(&p, c) == GDB_PKT_PACKET) {
			snprintf(buf, sizeof(buf), "%.60s", (char *)p.buf);
			break;
		}
	}
	assert_string_equal(buf, "W00");
	close(fd);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_gdb_wait_without_gdb_is_refused),
		T(test_no_gdb_option_installs_nothing),
		T(test_gdb_wait_holds_every_vcpu_before_the_first_run),
		T(test_gdb_wait_applies_to_the_first_boot_only),
		T(test_without_gdb_wait_the_vcpus_run),
		T(test_connect_holds_and_waits_for_all_vcpus),
		T(test_step_of_one_vcpu_releases_only_that_vcpu),
		T(test_registers_of_a_vcpu_kvm_refuses_are_an_error_reply),
		T(test_kill_quits_the_vm),
		T(test_second_server_is_refused_with_a_reason),
		T(test_bad_listen_spec_fails_setup_with_a_message),
		T(test_stop_frees_the_server_and_a_new_one_can_start),
		T(test_checkpoint_veto_allows_a_checkpoint_without_breakpoints),
		T(test_exit_is_reported_to_a_waiting_client),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
