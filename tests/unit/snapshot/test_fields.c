/* State field tables: save/check/load round trips and every refusal. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>

#include "amber/device.h"
#include "amber/snapjson.h"

struct demo {
	uint8_t lsr;
	uint8_t ier;		/* max 0x0f */
	uint16_t divisor;
	uint32_t count;
	uint64_t big;
	uint64_t small;
	bool thre_pending;
	uint8_t fifo[16];
	uint32_t regs[3];
	uint64_t stamps[2];
	uint8_t blob[5];
	uint32_t added_in_v2;
};

static const struct state_field demo_fields[] = {
	STATE_U8(struct demo, lsr),
	STATE_U8_MAX(struct demo, ier, 0x0f),
	STATE_U16(struct demo, divisor),
	STATE_U32(struct demo, count),
	STATE_U64(struct demo, big),
	STATE_U64(struct demo, small),
	STATE_BOOL(struct demo, thre_pending),
	STATE_ARRAY_U8(struct demo, fifo),
	STATE_ARRAY_U32(struct demo, regs),
	STATE_ARRAY_U64(struct demo, stamps),
	STATE_BYTES(struct demo, blob),
	{ .name = "added_in_v2", .type = ST_U32, .offset = offsetof(struct demo, added_in_v2),
	  .count = 1, .since = 2 },
	STATE_END,
};

static struct demo demo_sample(void)
{
	struct demo d = {
		.lsr = 0x60, .ier = 0x0f, .divisor = 12, .count = 0xdeadbeef,
		.big = 0xfedcba9876543210ULL, .small = 1ULL << 53, .thre_pending = true,
		.regs = { 1, 0xffffffff, 3 }, .stamps = { UINT64_MAX, 0 },
		.blob = { 0, 0xff, 'a', 'b', 0x80 }, .added_in_v2 = 77,
	};

	for (int i = 0; i < 16; i++)
		d.fifo[i] = (uint8_t)(i * 16);
	return d;
}

static json_t *demo_saved(void)
{
	struct demo d = demo_sample();
	json_t *obj = json_object();

	assert_int_equal(state_fields_save(demo_fields, &d, obj), 0);
	return obj;
}

static void test_save_check_load_round_trip_restores_every_field(void **state)
{
	struct demo d = demo_sample(), back;
	json_t *obj = demo_saved();
	char err[256] = "";

	assert_int_equal(state_fields_check(demo_fields, obj, 2, err, sizeof(err)), 0);
	memset(&back, 0, sizeof(back));
	assert_int_equal(state_fields_load(demo_fields, &back, obj, 2), 0);
	assert_memory_equal(&d, &back, sizeof(d));
	json_decref(obj);
}

static void test_round_trip_survives_json_text(void **state)
{
	struct demo d = demo_sample(), back;
	json_t *obj = demo_saved(), *again;
	char *text = json_dumps(obj, 0);

	again = json_loads(text, 0, NULL);
	assert_non_null(again);
	memset(&back, 0, sizeof(back));
	assert_int_equal(state_fields_load(demo_fields, &back, again, 2), 0);
	assert_memory_equal(&d, &back, sizeof(d));
	free(text);
	json_decref(obj);
	json_decref(again);
}

static void test_u64_above_2_pow_53_is_a_decimal_string(void **state)
{
	json_t *obj = demo_saved();

	assert_true(json_is_string(json_object_get(obj, "big")));
	assert_string_equal(json_string_value(json_object_get(obj, "big")),
			    "18364758544493064720");
	/* 2^53 itself is exact as a JSON number */
	assert_true(json_is_integer(json_object_get(obj, "small")));
	assert_string_equal(json_string_value(json_array_get(json_object_get(obj, "stamps"), 0)),
			    "18446744073709551615");
	assert_true(json_is_array(json_object_get(obj, "fifo")));
	assert_int_equal(json_array_size(json_object_get(obj, "fifo")), 16);
	assert_string_equal(json_string_value(json_object_get(obj, "blob")), "AP9hYoA=");
	assert_true(json_is_true(json_object_get(obj, "thre_pending")));
	json_decref(obj);
}

static void test_u64_accepts_small_values_written_as_strings(void **state)
{
	json_t *obj = demo_saved();
	struct demo back;

	json_object_set_new(obj, "small", json_string("42"));
	assert_int_equal(state_fields_load(demo_fields, &back, obj, 2), 0);
	assert_int_equal(back.small, 42);
	json_decref(obj);
}

/* Apply one edit, expect check to fail with exactly msg and load to change nothing. */
static void expect_refused(json_t *obj, uint32_t version, const char *msg)
{
	char err[256] = "";
	struct demo back, before;

	memset(&back, 0xa5, sizeof(back));
	before = back;
	assert_int_equal(state_fields_check(demo_fields, obj, version, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, msg);
	assert_int_equal(state_fields_load(demo_fields, &back, obj, version), -EINVAL);
	assert_memory_equal(&back, &before, sizeof(back));
	json_decref(obj);
}

static void test_out_of_range_u8_names_the_field(void **state)
{
	json_t *obj = demo_saved();

	json_object_set_new(obj, "lsr", json_integer(300));
	expect_refused(obj, 2, "field \"lsr\" = 300 exceeds 255");
}

static void test_value_above_declared_max_is_refused(void **state)
{
	json_t *obj = demo_saved();

	json_object_set_new(obj, "ier", json_integer(16));
	expect_refused(obj, 2, "field \"ier\" = 16 exceeds 15");
}

static void test_out_of_range_array_element_names_the_index(void **state)
{
	json_t *obj = demo_saved();

	json_array_set_new(json_object_get(obj, "fifo"), 3, json_integer(256));
	expect_refused(obj, 2, "field \"fifo[3]\" = 256 exceeds 255");
}

static void test_u16_and_u32_ranges_are_checked(void **state)
{
	json_t *obj = demo_saved();

	json_object_set_new(obj, "divisor", json_integer(65536));
	expect_refused(obj, 2, "field \"divisor\" = 65536 exceeds 65535");
	obj = demo_saved();
	json_array_set_new(json_object_get(obj, "regs"), 1, json_integer(0x100000000LL));
	expect_refused(obj, 2, "field \"regs[1]\" = 4294967296 exceeds 4294967295");
}

static void test_negative_value_is_refused(void **state)
{
	json_t *obj = demo_saved();

	json_object_set_new(obj, "count", json_integer(-1));
	expect_refused(obj, 2, "field \"count\" = -1 is negative");
}

static void test_missing_field_is_named(void **state)
{
	json_t *obj = demo_saved();

	json_object_del(obj, "divisor");
	expect_refused(obj, 2, "field \"divisor\": missing");
}

static void test_wrong_types_are_named(void **state)
{
	json_t *obj = demo_saved();

	json_object_set_new(obj, "lsr", json_string("96"));
	expect_refused(obj, 2, "field \"lsr\": expected an integer, got a string");
	obj = demo_saved();
	json_object_set_new(obj, "count", json_real(1.5));
	expect_refused(obj, 2, "field \"count\": expected an integer, got a real number");
	obj = demo_saved();
	json_object_set_new(obj, "thre_pending", json_integer(1));
	expect_refused(obj, 2, "field \"thre_pending\": expected a boolean, got an integer");
	obj = demo_saved();
	json_object_set_new(obj, "fifo", json_integer(1));
	expect_refused(obj, 2, "field \"fifo\": expected an array of 16, got an integer");
	obj = demo_saved();
	json_array_remove(json_object_get(obj, "fifo"), 0);
	expect_refused(obj, 2, "field \"fifo\": 15 elements, expected 16");
	obj = demo_saved();
	json_object_set_new(obj, "blob", json_integer(5));
	expect_refused(obj, 2, "field \"blob\": expected a base64 string, got an integer");
	obj = demo_saved();
	json_object_set_new(obj, "blob", json_string("AP9h"));
	expect_refused(obj, 2, "field \"blob\": 3 bytes, expected 5");
	obj = demo_saved();
	json_object_set_new(obj, "blob", json_string("AP9hYoA"));
	expect_refused(obj, 2, "field \"blob\": not valid base64");
	obj = demo_saved();
	json_object_set_new(obj, "big", json_string("12x"));
	expect_refused(obj, 2, "field \"big\": \"12x\" is not a decimal integer");
	obj = demo_saved();
	json_object_set_new(obj, "big", json_string("18446744073709551616"));
	expect_refused(obj, 2, "field \"big\": \"18446744073709551616\" is not a decimal integer");
	expect_refused(json_array(), 2, "state: expected an object, got an array");
}

static void test_field_newer_than_section_version_is_skipped(void **state)
{
	json_t *obj = demo_saved();
	struct demo back;
	char err[256] = "";

	json_object_del(obj, "added_in_v2");
	/* a version-1 section has no added_in_v2: accepted, value kept */
	assert_int_equal(state_fields_check(demo_fields, obj, 1, err, sizeof(err)), 0);
	memset(&back, 0, sizeof(back));
	back.added_in_v2 = 1234;
	assert_int_equal(state_fields_load(demo_fields, &back, obj, 1), 0);
	assert_int_equal(back.added_in_v2, 1234);
	assert_int_equal(back.divisor, 12);
	/* a version-2 section must have it */
	expect_refused(obj, 2, "field \"added_in_v2\": missing");
}

static void test_path_style_messages_for_state_codecs(void **state)
{
	json_t *obj = demo_saved();
	char err[256] = "";

	json_object_set_new(obj, "lsr", json_integer(300));
	assert_int_equal(state_fields_check_path(demo_fields, obj, 2, "devices[2].state", err,
						 sizeof(err)), -EINVAL);
	assert_string_equal(err, "devices[2].state.lsr = 300 exceeds 255");
	json_decref(obj);
}

static void test_typed_getters_name_path_and_reason(void **state)
{
	json_t *obj = json_pack("{s:I, s:s, s:b, s:o}", "rip", (json_int_t)5, "s", "x",
				"b", 1, "o", json_object());
	char err[256] = "";
	uint64_t v;

	assert_int_equal(snap_get_u64(obj, "vcpus[1].regs", "rip", UINT64_MAX, &v, err,
				      sizeof(err)), 0);
	assert_int_equal(v, 5);
	assert_int_equal(snap_get_u64(obj, "vcpus[1].regs", "s", UINT64_MAX, &v, err,
				      sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[1].regs.s: \"x\" is not a decimal integer");
	assert_int_equal(snap_get_u64(obj, "vcpus[1].regs", "b", UINT64_MAX, &v, err,
				      sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[1].regs.b: expected an integer, got a boolean");
	assert_int_equal(snap_get_u64(obj, "vcpus[1].regs", "rsp", UINT64_MAX, &v, err,
				      sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[1].regs.rsp: missing");
	assert_int_equal(snap_get_u32(obj, "", "rip", 4, NULL, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "rip = 5 exceeds 4");
	assert_int_equal(snap_get_object(obj, NULL, "s", NULL, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "s: expected an object, got a string");
	json_decref(obj);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_save_check_load_round_trip_restores_every_field),
		cmocka_unit_test(test_round_trip_survives_json_text),
		cmocka_unit_test(test_u64_above_2_pow_53_is_a_decimal_string),
		cmocka_unit_test(test_u64_accepts_small_values_written_as_strings),
		cmocka_unit_test(test_out_of_range_u8_names_the_field),
		cmocka_unit_test(test_value_above_declared_max_is_refused),
		cmocka_unit_test(test_out_of_range_array_element_names_the_index),
		cmocka_unit_test(test_u16_and_u32_ranges_are_checked),
		cmocka_unit_test(test_negative_value_is_refused),
		cmocka_unit_test(test_missing_field_is_named),
		cmocka_unit_test(test_wrong_types_are_named),
		cmocka_unit_test(test_field_newer_than_section_version_is_skipped),
		cmocka_unit_test(test_path_style_messages_for_state_codecs),
		cmocka_unit_test(test_typed_getters_name_path_and_reason),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
