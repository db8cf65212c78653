/* Bus dispatch: registration, overlap rejection, lookups, unclaimed access. */
#include "harness.h"

#include <errno.h>

#include "amber/bus.h"

struct rec {
	uint64_t last_off;
	uint64_t last_val;
	unsigned last_size;
	int writes;
};

static uint64_t rec_read(void *opaque, uint64_t off, unsigned size)
{
	struct rec *r = opaque;

	r->last_off = off;
	r->last_size = size;
	return 0x1122334455667788ULL;
}

static void rec_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	struct rec *r = opaque;

	r->last_off = off;
	r->last_val = val;
	r->last_size = size;
	r->writes++;
}

static const struct bus_ops rec_ops = { rec_read, rec_write };

static void test_bus_dispatches_with_offset_relative_to_base(void **state)
{
	struct bus b;
	struct rec a = { 0 }, c = { 0 };
	uint64_t v;

	bus_init(&b, "pio");
	assert_int_equal(bus_register(&b, 0x3f8, 8, &rec_ops, &a, "com1"), 0);
	assert_int_equal(bus_register(&b, 0x2f8, 8, &rec_ops, &c, "com2"), 0);
	assert_true(bus_write(&b, 0x3fb, 1, 0x83));
	assert_int_equal(a.last_off, 3);
	assert_int_equal(a.last_val, 0x83);
	assert_int_equal(c.writes, 0);
	assert_true(bus_read(&b, 0x2f8, 1, &v));
	assert_int_equal(v, 0x88);	/* truncated to the access size */
	assert_int_equal(c.last_off, 0);
	bus_destroy(&b);
}

static void test_bus_rejects_overlapping_regions(void **state)
{
	struct bus b;
	struct rec a = { 0 };

	bus_init(&b, "mmio");
	assert_int_equal(bus_register(&b, 0x1000, 0x100, &rec_ops, &a, "a"), 0);
	assert_int_equal(bus_register(&b, 0x10ff, 1, &rec_ops, &a, "end"), -EEXIST);
	assert_int_equal(bus_register(&b, 0xf00, 0x101, &rec_ops, &a, "start"), -EEXIST);
	assert_int_equal(bus_register(&b, 0x1080, 0x10, &rec_ops, &a, "inside"), -EEXIST);
	assert_int_equal(bus_register(&b, 0x0, 0x10000, &rec_ops, &a, "around"), -EEXIST);
	assert_int_equal(bus_register(&b, 0x1100, 0x10, &rec_ops, &a, "after"), 0);
	assert_int_equal(bus_register(&b, 0xff0, 0x10, &rec_ops, &a, "before"), 0);
	assert_int_equal(bus_register(&b, 0x5000, 0, &rec_ops, &a, "empty"), -EINVAL);
	assert_int_equal(bus_register(&b, ~0ULL, 2, &rec_ops, &a, "wraps"), -EINVAL);
	bus_destroy(&b);
}

static void test_bus_unclaimed_read_returns_all_ones(void **state)
{
	struct bus b;
	uint64_t v = 0;

	bus_init(&b, "pio");
	assert_false(bus_read(&b, 0x80, 2, &v));
	assert_int_equal(v, 0xffff);
	assert_false(bus_read(&b, 0x80, 8, &v));
	assert_int_equal(v, ~0ULL);
	assert_false(bus_write(&b, 0x80, 1, 0));
	bus_destroy(&b);
}

static void test_bus_lookup_finds_each_of_many_regions(void **state)
{
	struct bus b;
	struct rec r[64];
	struct bus_region out;

	bus_init(&b, "mmio");
	/* Register in a scrambled order so the sorted insert is exercised. */
	for (int i = 0; i < 64; i++) {
		int k = (i * 37) % 64;

		assert_int_equal(bus_register(&b, 0x10000 + k * 0x100, 0x80, &rec_ops, &r[k], "r"), 0);
	}
	for (int k = 0; k < 64; k++) {
		assert_true(bus_lookup(&b, 0x10000 + k * 0x100 + 0x7f, &out));
		assert_ptr_equal(out.opaque, &r[k]);
		assert_false(bus_lookup(&b, 0x10000 + k * 0x100 + 0x80, &out));
	}
	bus_destroy(&b);
}

static void test_bus_unregister_frees_the_range(void **state)
{
	struct bus b;
	struct rec a = { 0 }, c = { 0 };
	struct bus_region out;

	bus_init(&b, "mmio");
	assert_int_equal(bus_register(&b, 0xc0000000, 0x4000, &rec_ops, &a, "bar0"), 0);
	assert_int_equal(bus_unregister(&b, 0xc0000000, &c), -ENOENT);
	assert_int_equal(bus_unregister(&b, 0xc0000000, &a), 0);
	assert_false(bus_lookup(&b, 0xc0000000, &out));
	assert_int_equal(bus_register(&b, 0xc0000000, 0x4000, &rec_ops, &c, "moved"), 0);
	bus_destroy(&b);
}

static void test_gmem_rejects_ranges_outside_ram(void **state)
{
	struct test_machine *t = test_machine_new(64 * 1024);
	uint8_t buf[16];

	assert_non_null(gmem_ptr(&t->m.mem, 0, 64 * 1024));
	assert_null(gmem_ptr(&t->m.mem, 64 * 1024 - 8, 16));
	assert_null(gmem_ptr(&t->m.mem, ~0ULL - 4, 16));
	assert_int_equal(gmem_read(&t->m.mem, 64 * 1024 - 8, buf, 16), -EFAULT);
	assert_int_equal(gmem_write(&t->m.mem, 64 * 1024 - 16, buf, 16), 0);
	test_machine_free(t);
}

static void test_gmem_alloc_places_ram_above_4g_past_the_hole(void **state)
{
	struct guest_mem gm;

	assert_int_equal(gmem_alloc(&gm, 4ULL << 30), 0);
	assert_int_equal(gm.nslots, 2);
	assert_int_equal(gm.slots[0].size, GMEM_PCI_HOLE_START);
	assert_int_equal(gm.slots[1].gpa, GMEM_HIGH_START);
	assert_int_equal(gm.slots[1].size, (4ULL << 30) - GMEM_PCI_HOLE_START);
	assert_false(gmem_is_ram(&gm, GMEM_PCI_HOLE_START, 1));
	assert_true(gmem_is_ram(&gm, GMEM_HIGH_START, 4096));
	gmem_free(&gm);
	assert_int_equal(gmem_alloc(&gm, 4095), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bus_dispatches_with_offset_relative_to_base),
		cmocka_unit_test(test_bus_rejects_overlapping_regions),
		cmocka_unit_test(test_bus_unclaimed_read_returns_all_ones),
		cmocka_unit_test(test_bus_lookup_finds_each_of_many_regions),
		cmocka_unit_test(test_bus_unregister_frees_the_range),
		cmocka_unit_test(test_gmem_rejects_ranges_outside_ram),
		cmocka_unit_test(test_gmem_alloc_places_ram_above_4g_past_the_hole),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
