/* debugcon component tests: QEMU's isa-debugcon readback and output. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "../harness.h"
#include "amber/device.h"

static struct test_machine *with_debugcon(const char *args, struct device **dev)
{
	struct test_machine *t = test_machine_new(1 << 16);
	char err[256] = "";

	if (device_create(&t->m, "debugcon", "debugcon", args, dev, err, sizeof(err)) < 0)
		fail_msg("device_create: %s", err);
	return t;
}

static void test_read_returns_e9_so_firmware_detects_it(void **state)
{
	struct device *dev;
	struct test_machine *t = with_debugcon("chardev=none", &dev);

	assert_int_equal(pio_in(t, PORT_DEBUGCON, 1), 0xe9);
	device_destroy_all(&t->m);
	/* Without the device the port floats: SeaBIOS and OVMF stay silent. */
	assert_int_equal(pio_in(t, PORT_DEBUGCON, 1), 0xff);
	test_machine_free(t);
}

static void test_bytes_written_reach_the_chardev(void **state)
{
	struct device *dev;
	struct test_machine *t;
	char args[64], buf[16] = "";
	int p[2];

	assert_int_equal(pipe(p), 0);
	snprintf(args, sizeof(args), "chardev=fd:-1:%d", p[1]);
	t = with_debugcon(args, &dev);
	close(p[1]);
	pio_out(t, PORT_DEBUGCON, 1, 'o');
	pio_out(t, PORT_DEBUGCON, 1, 'k');
	pio_out(t, PORT_DEBUGCON, 2, 0x0a21);	/* only the low byte, as QEMU */
	device_destroy_all(&t->m);		/* closes its copy of the pipe */
	assert_int_equal(read(p[0], buf, sizeof(buf) - 1), 3);
	assert_string_equal(buf, "ok!");
	close(p[0]);
	test_machine_free(t);
}

static void test_bad_options_are_refused(void **state)
{
	struct test_machine *t = test_machine_new(1 << 16);
	char err[256] = "";

	assert_int_equal(device_create(&t->m, "debugcon", "d1", "colour=red", NULL, err, sizeof(err)), -EINVAL);
	assert_int_equal(device_create(&t->m, "debugcon", "d2", "port=0x10000", NULL, err, sizeof(err)), -EINVAL);
	assert_int_equal(device_create(&t->m, "debugcon", "d3", "chardev=bogus:x", NULL, err, sizeof(err)), -EINVAL);
	/* Another port works. */
	assert_int_equal(device_create(&t->m, "debugcon", "d4", "port=0xe9", NULL, err, sizeof(err)), 0);
	assert_int_equal(pio_in(t, 0xe9, 1), 0xe9);
	device_destroy_all(&t->m);
	test_machine_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_returns_e9_so_firmware_detects_it),
		cmocka_unit_test(test_bytes_written_reach_the_chardev),
		cmocka_unit_test(test_bad_options_are_refused),
	};

	return cmocka_run_group_tests_name("debugcon", tests, NULL, NULL);
}
