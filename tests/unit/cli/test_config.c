/* `amber run` command-line parsing and its error messages. */
#include "harness.h"

#include <errno.h>
#include <unistd.h>

#include "amber/config.h"

static char kernel_path[64];

static int make_kernel(void **state)
{
	int fd;

	strcpy(kernel_path, "/tmp/amber-cfg-kernel-XXXXXX");
	fd = mkstemp(kernel_path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int remove_kernel(void **state)
{
	unlink(kernel_path);
	return 0;
}

static int parse(struct vm_config *c, char *err, const char *a0, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	const char *a = a0;

	argv[argc++] = "run";
	va_start(ap, a0);
	while (a) {
		argv[argc++] = (char *)a;
		a = va_arg(ap, const char *);
	}
	va_end(ap);
	config_init(c);
	return config_parse_run(c, argc, argv, 8, err, 256);
}

static void test_size_suffixes(void **state)
{
	uint64_t v;
	char err[256];

	assert_int_equal(config_parse_size("256M", &v, err, sizeof(err)), 0);
	assert_int_equal(v, 256ULL << 20);
	assert_int_equal(config_parse_size("2G", &v, err, sizeof(err)), 0);
	assert_int_equal(v, 2ULL << 30);
	assert_int_equal(config_parse_size("4096k", &v, err, sizeof(err)), 0);
	assert_int_equal(v, 4096ULL << 10);
	assert_int_equal(config_parse_size("1GiB", &v, err, sizeof(err)), 0);
	assert_int_equal(v, 1ULL << 30);
	assert_int_equal(config_parse_size("12", &v, err, sizeof(err)), 0);
	assert_int_equal(v, 12);
	assert_int_equal(config_parse_size("12X", &v, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "12X"));
	assert_int_equal(config_parse_size("-1G", &v, err, sizeof(err)), -EINVAL);
	assert_int_equal(config_parse_size("", &v, err, sizeof(err)), -EINVAL);
	assert_int_equal(config_parse_size("99999999999999999999G", &v, err, sizeof(err)), -EINVAL);
}

static void test_defaults_are_one_cpu_256m_and_stdio(void **state)
{
	struct vm_config c;
	char err[256];

	assert_int_equal(parse(&c, err, "--kernel", kernel_path, NULL), 0);
	assert_int_equal(c.cpus, 1);
	assert_int_equal(c.memory, 256ULL << 20);
	assert_string_equal(c.serial, "stdio");
	config_free(&c);
}

static void test_options_with_equals_and_separate_values(void **state)
{
	struct vm_config c;
	char err[256];
	char kopt[96];

	snprintf(kopt, sizeof(kopt), "--kernel=%s", kernel_path);
	assert_int_equal(parse(&c, err, kopt, "--cpus=2", "--memory", "1G", "--cmdline",
			       "console=ttyS0 quiet", "--serial", "none", "--on-reboot", "restart", NULL), 0);
	assert_int_equal(c.cpus, 2);
	assert_int_equal(c.memory, 1ULL << 30);
	assert_string_equal(c.cmdline, "console=ttyS0 quiet");
	assert_string_equal(c.serial, "none");
	assert_int_equal(c.on_reboot, ON_REBOOT_RESTART);
	config_free(&c);
}

static void test_bad_inputs_name_the_problem(void **state)
{
	struct vm_config c;
	char err[256];

	assert_int_equal(parse(&c, err, NULL), -EINVAL);
	assert_non_null(strstr(err, "--kernel"));
	config_free(&c);
	assert_int_equal(parse(&c, err, "--kernel", "/nonexistent/bzImage", NULL), -EINVAL);
	assert_non_null(strstr(err, "/nonexistent/bzImage"));
	config_free(&c);
	assert_int_equal(parse(&c, err, "--kernel", kernel_path, "--cpus", "9", NULL), -EINVAL);
	assert_non_null(strstr(err, "at most 8"));
	config_free(&c);
	assert_int_equal(parse(&c, err, "--kernel", kernel_path, "--cpus", "0", NULL), -EINVAL);
	config_free(&c);
	assert_int_equal(parse(&c, err, "--kernel", kernel_path, "--cpus", "two", NULL), -EINVAL);
	assert_non_null(strstr(err, "two"));
	config_free(&c);
	assert_int_equal(parse(&c, err, "--kernel", kernel_path, "--memory", "3M", NULL), -EINVAL);
	assert_non_null(strstr(err, "--memory"));
	config_free(&c);
	assert_int_equal(parse(&c, err, "--kernel", kernel_path, "--frobnicate", NULL), -EINVAL);
	assert_non_null(strstr(err, "--frobnicate"));
	config_free(&c);
	assert_int_equal(parse(&c, err, "--kernel", kernel_path, "--serial", "tcp:1", NULL), -EINVAL);
	assert_non_null(strstr(err, "--serial"));
	config_free(&c);
	assert_int_equal(parse(&c, err, "--kernel", NULL), -EINVAL);
	assert_non_null(strstr(err, "needs a value"));
	config_free(&c);
	assert_int_equal(parse(&c, err, "--kernel", kernel_path, "--disk", "virtio:/x", NULL), -EINVAL);
	assert_non_null(strstr(err, "nvme:"));
	config_free(&c);
	assert_int_equal(parse(&c, err, "--restore", "/tmp/x", "--cpus", "2", NULL), -EINVAL);
	assert_non_null(strstr(err, "checkpoint"));
	config_free(&c);
}

static void test_disks_parse_flags_and_default_controller(void **state)
{
	struct vm_config c;
	char err[256], d1[128], d2[128];

	snprintf(d1, sizeof(d1), "nvme:%s,ro,serial=ABC", kernel_path);
	snprintf(d2, sizeof(d2), "nvme:%s,ctrl=nvme1", kernel_path);
	assert_int_equal(parse(&c, err, "--kernel", kernel_path, "--disk", d1, "--disk", d2, NULL), 0);
	assert_int_equal(c.ndisks, 2);
	assert_true(c.disks[0].readonly);
	assert_string_equal(c.disks[0].serial, "ABC");
	assert_string_equal(c.disks[0].ctrl, "nvme0");
	assert_string_equal(c.disks[1].ctrl, "nvme1");
	config_free(&c);
}

static void test_config_json_round_trip(void **state)
{
	struct vm_config c, d;
	char err[256];
	json_t *j;

	assert_int_equal(parse(&c, err, "--kernel", kernel_path, "--cpus", "2", "--memory", "512M",
			       "--cmdline", "quiet", NULL), 0);
	j = config_to_json(&c);
	config_init(&d);
	assert_int_equal(config_from_json(&d, j, err, sizeof(err)), 0);
	assert_int_equal(d.cpus, 2);
	assert_int_equal(d.memory, 512ULL << 20);
	assert_string_equal(d.kernel, kernel_path);
	assert_string_equal(d.cmdline, "quiet");
	config_free(&d);
	/* A corrupted memory size is refused with the field named. */
	json_object_set_new(j, "memory", json_string("lots"));
	config_init(&d);
	assert_int_equal(config_from_json(&d, j, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "config.memory"));
	config_free(&d);
	json_decref(j);
	config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size_suffixes),
		cmocka_unit_test(test_defaults_are_one_cpu_256m_and_stdio),
		cmocka_unit_test(test_options_with_equals_and_separate_values),
		cmocka_unit_test(test_bad_inputs_name_the_problem),
		cmocka_unit_test(test_disks_parse_flags_and_default_controller),
		cmocka_unit_test(test_config_json_round_trip),
	};
	return cmocka_run_group_tests(tests, make_kernel, remove_kernel);
}
