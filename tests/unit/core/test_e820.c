/* The E820 map and the bzImage loader's checks. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "amber/x86_boot.h"

static void test_e820_for_256m_has_low_ram_reserved_bios_and_ram_from_1m(void **state)
{
	struct guest_mem gm;
	struct e820_entry e[E820_MAX];
	int n;

	memset(&gm, 0, sizeof(gm));
	gm.slots[0] = (struct gmem_slot){ 0, 256ULL << 20, NULL };
	gm.nslots = 1;
	n = e820_build(&gm, e, E820_MAX);
	assert_int_equal(n, 4);
	assert_int_equal(e[0].addr, 0);
	assert_int_equal(e[0].size, BOOT_EBDA_START);
	assert_int_equal(e[0].type, E820_RAM);
	assert_int_equal(e[1].type, E820_RESERVED);
	assert_int_equal(e[2].addr, BOOT_ACPI_ADDR);
	assert_int_equal(e[2].type, E820_RESERVED);
	assert_int_equal(e[3].addr, 0x100000);
	assert_int_equal(e[3].addr + e[3].size, 256ULL << 20);
	assert_int_equal(e[3].type, E820_RAM);
}

static void test_e820_for_5g_lists_ram_above_4g(void **state)
{
	struct guest_mem gm;
	struct e820_entry e[E820_MAX];
	uint64_t ram = 0;
	int n;

	memset(&gm, 0, sizeof(gm));
	gm.slots[0] = (struct gmem_slot){ 0, GMEM_PCI_HOLE_START, NULL };
	gm.slots[1] = (struct gmem_slot){ GMEM_HIGH_START, (5ULL << 30) - GMEM_PCI_HOLE_START, NULL };
	gm.nslots = 2;
	n = e820_build(&gm, e, E820_MAX);
	assert_int_equal(n, 5);
	assert_int_equal(e[4].addr, GMEM_HIGH_START);
	for (int i = 0; i < n; i++) {
		if (e[i].type == E820_RAM)
			ram += e[i].size;
		/* nothing may claim the PCI hole */
		assert_false(e[i].addr < 0x100000000ULL && e[i].addr + e[i].size > GMEM_PCI_HOLE_START);
	}
	assert_int_equal(ram, (5ULL << 30) - (0x100000 - BOOT_EBDA_START));
}

static void test_e820_reports_a_table_too_small(void **state)
{
	struct guest_mem gm;
	struct e820_entry e[2];

	memset(&gm, 0, sizeof(gm));
	gm.slots[0] = (struct gmem_slot){ 0, 256ULL << 20, NULL };
	gm.nslots = 1;
	assert_int_equal(e820_build(&gm, e, 2), -ENOSPC);
}

static void test_probe_rejects_a_file_that_is_not_a_kernel(void **state)
{
	char path[] = "/tmp/amber-notkernel-XXXXXX";
	char err[256];
	enum kernel_kind k;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hello, not a kernel\n", 20), 20);
	close(fd);
	assert_int_equal(boot_probe_kernel(path, &k, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not a Linux bzImage"));
	unlink(path);
	assert_true(boot_probe_kernel("/nonexistent/kernel", &k, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "/nonexistent/kernel"));
}

static void test_probe_accepts_a_minimal_bzimage_header(void **state)
{
	char path[] = "/tmp/amber-bz-XXXXXX";
	char err[256];
	enum kernel_kind k = KERNEL_PVH;
	static uint8_t img[0x3000];
	int fd = mkstemp(path);
	uint16_t ver = 0x20f;

	memset(img, 0, sizeof(img));
	img[0x1f1] = 4;			/* setup_sects */
	memcpy(img + 0x202, "HdrS", 4);
	memcpy(img + 0x206, &ver, 2);
	img[0x236] = 1;			/* xloadflags: XLF_KERNEL_64 */
	assert_true(fd >= 0);
	assert_int_equal(write(fd, img, sizeof(img)), (ssize_t)sizeof(img));
	close(fd);
	assert_int_equal(boot_probe_kernel(path, &k, err, sizeof(err)), 0);
	assert_int_equal(k, KERNEL_BZIMAGE);
	/* Without the 64-bit entry flag, the kernel is refused with the reason. */
	img[0x236] = 0;
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, img, sizeof(img)), (ssize_t)sizeof(img));
	close(fd);
	assert_int_equal(boot_probe_kernel(path, &k, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "64-bit entry"));
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_e820_for_256m_has_low_ram_reserved_bios_and_ram_from_1m),
		cmocka_unit_test(test_e820_for_5g_lists_ram_above_4g),
		cmocka_unit_test(test_e820_reports_a_table_too_small),
		cmocka_unit_test(test_probe_rejects_a_file_that_is_not_a_kernel),
		cmocka_unit_test(test_probe_accepts_a_minimal_bzimage_header),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
