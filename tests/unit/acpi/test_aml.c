/* AML encoder (src/acpi/aml.c): exact bytes for each construct (ACPI 6.4 §20, §6.4). */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "acpi/aml.h"

#define assert_bytes(b, ...) do {					\
	const uint8_t exp_[] = { __VA_ARGS__ };				\
	assert_int_equal((b)->err, 0);					\
	assert_int_equal((b)->len, sizeof(exp_));			\
	assert_memory_equal((b)->data, exp_, sizeof(exp_));		\
} while (0)

/* Decode a PkgLength: returns the encoded value, *n = bytes used. */
static size_t pkglen_decode(const uint8_t *p, int *n)
{
	int follow = p[0] >> 6;
	size_t v;

	*n = 1 + follow;
	if (!follow)
		return p[0] & 0x3f;
	assert_int_equal(p[0] & 0x30, 0);	/* bits 5:4 reserved when followed */
	v = p[0] & 0x0f;
	for (int i = 1; i <= follow; i++)
		v |= (size_t)p[i] << (4 + 8 * (i - 1));
	return v;
}

static void check_pkglen(size_t body, int expect_bytes)
{
	uint8_t out[4];
	int n = aml_pkglen_encode(out, body), used;

	assert_int_equal(n, expect_bytes);
	assert_int_equal(pkglen_decode(out, &used), body + (size_t)n);
	assert_int_equal(used, n);
}

static void test_pkglen_uses_one_byte_up_to_63(void **state)
{
	uint8_t out[4];

	assert_int_equal(aml_pkglen_encode(out, 0), 1);
	assert_int_equal(out[0], 0x01);
	assert_int_equal(aml_pkglen_encode(out, 62), 1);
	assert_int_equal(out[0], 0x3f);
	check_pkglen(10, 1);
}

static void test_pkglen_uses_two_bytes_up_to_4095(void **state)
{
	uint8_t out[4];

	/* body 63 -> 65 = 0x41: lead 0x40 | 0x1, next 0x04 */
	assert_int_equal(aml_pkglen_encode(out, 63), 2);
	assert_int_equal(out[0], 0x41);
	assert_int_equal(out[1], 0x04);
	check_pkglen(64, 2);
	check_pkglen(4093, 2);		/* 4095 total */
}

static void test_pkglen_uses_three_and_four_bytes(void **state)
{
	check_pkglen(4094, 3);		/* 4097 total */
	check_pkglen((1u << 20) - 4, 3);
	check_pkglen((1u << 20) - 3, 4);
	check_pkglen(AML_PKGLEN_MAX - 4, 4);
}

static void test_pkglen_refuses_more_than_28_bits(void **state)
{
	uint8_t out[4];

	assert_int_equal(aml_pkglen_encode(out, AML_PKGLEN_MAX - 3), -E2BIG);
}

static void check_int(uint64_t v, const uint8_t *exp, size_t n)
{
	struct aml_buf b;

	aml_buf_init(&b);
	aml_integer(&b, v);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.len, n);
	assert_memory_equal(b.data, exp, n);
	aml_buf_free(&b);
}

static void test_integer_takes_shortest_encoding(void **state)
{
	check_int(0, (const uint8_t[]){ 0x00 }, 1);
	check_int(1, (const uint8_t[]){ 0x01 }, 1);
	check_int(2, (const uint8_t[]){ 0x0a, 0x02 }, 2);
	check_int(0xff, (const uint8_t[]){ 0x0a, 0xff }, 2);
	check_int(0x100, (const uint8_t[]){ 0x0b, 0x00, 0x01 }, 3);
	check_int(0xffff, (const uint8_t[]){ 0x0b, 0xff, 0xff }, 3);
	check_int(0x10000, (const uint8_t[]){ 0x0c, 0x00, 0x00, 0x01, 0x00 }, 5);
	check_int(0xffffffff, (const uint8_t[]){ 0x0c, 0xff, 0xff, 0xff, 0xff }, 5);
	check_int(0x100000000ULL,
		  (const uint8_t[]){ 0x0e, 0, 0, 0, 0, 1, 0, 0, 0 }, 9);
	check_int(UINT64_MAX, (const uint8_t[]){ 0xff }, 1);	/* Ones */
}

static void test_namestring_encodes_root_dual_and_multi_names(void **state)
{
	struct aml_buf b;

	aml_buf_init(&b);
	aml_namestring(&b, "_HID");
	assert_bytes(&b, '_', 'H', 'I', 'D');
	aml_buf_free(&b);

	aml_namestring(&b, "RTC");
	assert_bytes(&b, 'R', 'T', 'C', '_');
	aml_buf_free(&b);

	aml_namestring(&b, "\\_SB.PCI0");
	assert_bytes(&b, 0x5c, 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0');
	aml_buf_free(&b);

	aml_namestring(&b, "\\_SB.PCI0.COM1");
	assert_bytes(&b, 0x5c, 0x2f, 3, '_', 'S', 'B', '_', 'P', 'C', 'I', '0',
		     'C', 'O', 'M', '1');
	aml_buf_free(&b);

	aml_namestring(&b, "^^FOO");
	assert_bytes(&b, 0x5e, 0x5e, 'F', 'O', 'O', '_');
	aml_buf_free(&b);

	aml_namestring(&b, "\\");
	assert_bytes(&b, 0x5c, 0x00);
	aml_buf_free(&b);
}

static void test_namestring_rejects_invalid_segments(void **state)
{
	const char *bad[] = { "1ABC", "ABCDE", "AB.", "a", "A-B", "\\_SB..X" };
	struct aml_buf b;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		aml_buf_init(&b);
		aml_namestring(&b, bad[i]);
		assert_int_equal(b.err, -EINVAL);
		aml_buf_free(&b);
	}
}

static void test_eisaid_is_compressed_big_endian_dword(void **state)
{
	struct aml_buf b;

	aml_buf_init(&b);
	aml_eisaid(&b, "PNP0A03");
	assert_bytes(&b, 0x0c, 0x41, 0xd0, 0x0a, 0x03);
	aml_buf_free(&b);
	aml_eisaid(&b, "PNP0501");
	assert_bytes(&b, 0x0c, 0x41, 0xd0, 0x05, 0x01);
	aml_buf_free(&b);
	aml_eisaid(&b, "QEMU0002");		/* 4 letters: not an EISA ID */
	assert_int_equal(b.err, -EINVAL);
	aml_buf_free(&b);
}

static void test_name_string_has_prefix_and_nul(void **state)
{
	struct aml_buf b;

	aml_buf_init(&b);
	aml_name_string(&b, "_HID", "QEMU0002");
	assert_bytes(&b, 0x08, '_', 'H', 'I', 'D', 0x0d,
		     'Q', 'E', 'M', 'U', '0', '0', '0', '2', 0x00);
	aml_buf_free(&b);
}

static void test_buffer_carries_size_after_pkglength(void **state)
{
	struct aml_buf b;
	size_t tok;

	aml_buf_init(&b);
	tok = aml_buffer_begin(&b);
	aml_byte(&b, 0xaa);
	aml_byte(&b, 0xbb);
	aml_byte(&b, 0xcc);
	aml_buffer_end(&b, tok);
	/* PkgLength = 1 (itself) + 2 (BytePrefix 3) + 3 bytes */
	assert_bytes(&b, 0x11, 0x06, 0x0a, 0x03, 0xaa, 0xbb, 0xcc);
	aml_buf_free(&b);
}

static void test_restemplate_io_irq_ends_with_end_tag(void **state)
{
	struct aml_buf b;
	size_t tok;

	aml_buf_init(&b);
	tok = aml_restemplate_begin(&b);
	aml_res_io(&b, 0x3f8, 0x3f8, 0x01, 0x08);
	aml_res_irq_noflags(&b, 4);
	aml_restemplate_end(&b, tok);
	assert_bytes(&b, 0x11, 0x10, 0x0a, 0x0d,
		     0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08,
		     0x22, 0x10, 0x00,
		     0x79, 0x00);
	aml_buf_free(&b);
}

static void test_irq_noflags_rejects_irq_above_15(void **state)
{
	struct aml_buf b;

	aml_buf_init(&b);
	aml_res_irq_noflags(&b, 16);
	assert_int_equal(b.err, -EINVAL);
	aml_buf_free(&b);
}

static void test_address_descriptors_have_spec_sizes_and_lengths(void **state)
{
	struct aml_buf b;

	aml_buf_init(&b);
	aml_res_word_io(&b, 0x0d00, 0xffff);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.len, 16);		/* 3 + 13 */
	assert_int_equal(b.data[0], 0x88);
	assert_int_equal(b.data[1], 0x0d);
	assert_int_equal(b.data[3], 1);		/* I/O range */
	assert_int_equal(b.data[4], 0x0c);	/* producer, MinFixed, MaxFixed */
	assert_int_equal(b.data[5], 0x03);	/* EntireRange */
	assert_int_equal(b.data[14] | b.data[15] << 8, 0xf300);
	aml_buf_free(&b);

	aml_res_dword_mem(&b, AML_NONCACHEABLE, 0xc0000000, 0xfebfffff);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.len, 26);		/* 3 + 23 */
	assert_int_equal(b.data[0], 0x87);
	assert_int_equal(b.data[3], 0);		/* memory range */
	assert_int_equal(b.data[5], 0x01);	/* ReadWrite, non-cacheable */
	assert_int_equal(b.data[22] | b.data[23] << 8 | b.data[24] << 16 |
			 (uint32_t)b.data[25] << 24, 0x3ec00000);
	aml_buf_free(&b);

	aml_res_qword_mem(&b, AML_CACHEABLE, 0x8000000000ULL, 0xffffffffffULL);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.len, 46);		/* 3 + 43 */
	assert_int_equal(b.data[0], 0x8a);
	assert_int_equal(b.data[5], 0x03);	/* ReadWrite, cacheable */
	assert_int_equal(b.data[42], 0x80);	/* length 0x8000000000 at 38: byte 4 */
	aml_buf_free(&b);
}

static void test_word_descriptor_rejects_length_that_does_not_fit(void **state)
{
	struct aml_buf b;

	aml_buf_init(&b);
	aml_res_word_io(&b, 0x0000, 0xffff);	/* length 0x10000 */
	assert_int_equal(b.err, -EINVAL);
	aml_buf_free(&b);
}

static void test_interrupt_and_mem32_fixed_descriptors(void **state)
{
	struct aml_buf b;

	aml_buf_init(&b);
	aml_res_interrupt(&b, AML_INT_CONSUMER | AML_INT_SHARED, 0x10);
	aml_res_mem32_fixed(&b, true, 0xfed00000, 0x400);
	assert_bytes(&b, 0x89, 0x06, 0x00, 0x09, 0x01, 0x10, 0x00, 0x00, 0x00,
		     0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0xd0, 0xfe, 0x00, 0x04, 0x00, 0x00);
	aml_buf_free(&b);
}

static void test_package_over_255_elements_is_varpackage(void **state)
{
	struct aml_buf b;
	size_t tok;

	aml_buf_init(&b);
	tok = aml_package_begin(&b, 300);
	for (int i = 0; i < 300; i++)
		aml_integer(&b, 0);
	aml_end(&b, tok);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.data[0], 0x13);
	/* 300 zeros + WordPrefix 300 = 303 body bytes: 2-byte PkgLength */
	assert_int_equal(b.len, 1 + 2 + 3 + 300);
	assert_int_equal(b.data[3], 0x0b);
	aml_buf_free(&b);

	tok = aml_package_begin(&b, 2);
	aml_integer(&b, 7);
	aml_integer(&b, 1);
	aml_end(&b, tok);
	assert_bytes(&b, 0x12, 0x05, 0x02, 0x0a, 0x07, 0x01);
	aml_buf_free(&b);
}

/* Nested objects whose inner bodies cross the 1-byte PkgLength limit. */
static void test_nested_scope_device_lengths_are_consistent(void **state)
{
	struct aml_buf b;
	size_t sc, dev, inner_len;
	int n1, n2;

	aml_buf_init(&b);
	sc = aml_scope_begin(&b, "\\_SB");
	dev = aml_device_begin(&b, "DEV0");
	for (int i = 0; i < 20; i++)
		aml_name_integer(&b, "_UID", 0x1000 + i);	/* 8 bytes each */
	aml_end(&b, dev);
	aml_end(&b, sc);
	assert_int_equal(b.err, 0);

	assert_int_equal(b.data[0], 0x10);
	assert_int_equal(pkglen_decode(&b.data[1], &n1), b.len - 1);
	assert_int_equal(n1, 2);
	/* after Scope's PkgLength and "\_SB_": ExtOp Device PkgLength "DEV0" */
	assert_int_equal(b.data[1 + n1 + 5], 0x5b);
	assert_int_equal(b.data[1 + n1 + 6], 0x82);
	inner_len = pkglen_decode(&b.data[1 + n1 + 7], &n2);
	assert_int_equal(n2, 2);
	assert_int_equal(inner_len, b.len - (1 + n1 + 7));
	assert_memory_equal(&b.data[1 + n1 + 7 + n2], "DEV0", 4);
	aml_buf_free(&b);
}

static void test_buf_steal_hands_over_bytes(void **state)
{
	struct aml_buf b;
	uint8_t *p;
	size_t len;

	aml_buf_init(&b);
	aml_integer(&b, 0x1234);
	p = aml_buf_steal(&b, &len);
	assert_non_null(p);
	assert_int_equal(len, 3);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pkglen_uses_one_byte_up_to_63),
		cmocka_unit_test(test_pkglen_uses_two_bytes_up_to_4095),
		cmocka_unit_test(test_pkglen_uses_three_and_four_bytes),
		cmocka_unit_test(test_pkglen_refuses_more_than_28_bits),
		cmocka_unit_test(test_integer_takes_shortest_encoding),
		cmocka_unit_test(test_namestring_encodes_root_dual_and_multi_names),
		cmocka_unit_test(test_namestring_rejects_invalid_segments),
		cmocka_unit_test(test_eisaid_is_compressed_big_endian_dword),
		cmocka_unit_test(test_name_string_has_prefix_and_nul),
		cmocka_unit_test(test_buffer_carries_size_after_pkglength),
		cmocka_unit_test(test_restemplate_io_irq_ends_with_end_tag),
		cmocka_unit_test(test_irq_noflags_rejects_irq_above_15),
		cmocka_unit_test(test_address_descriptors_have_spec_sizes_and_lengths),
		cmocka_unit_test(test_word_descriptor_rejects_length_that_does_not_fit),
		cmocka_unit_test(test_interrupt_and_mem32_fixed_descriptors),
		cmocka_unit_test(test_package_over_255_elements_is_varpackage),
		cmocka_unit_test(test_nested_scope_device_lengths_are_consistent),
		cmocka_unit_test(test_buf_steal_hands_over_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
