/* Base64 codec: RFC 4648 §10 test vectors, round trips, strict decoding. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>

#include "amber/base64.h"

static void test_encode_matches_rfc4648_vectors(void **state)
{
	static const char *const in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const out[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
					   "Zm9vYmFy" };
	char buf[32];

	for (size_t i = 0; i < 7; i++) {
		assert_int_equal(base64_encode(in[i], strlen(in[i]), buf, sizeof(buf)), 0);
		assert_string_equal(buf, out[i]);
		assert_int_equal(base64_encoded_len(strlen(in[i])), strlen(out[i]));
	}
}

static void test_decode_matches_rfc4648_vectors(void **state)
{
	static const char *const in[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
					  "Zm9vYmFy" };
	static const char *const out[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	char buf[32];
	size_t n;

	for (size_t i = 0; i < 7; i++) {
		assert_int_equal(base64_decode(in[i], strlen(in[i]), buf, sizeof(buf), &n), 0);
		assert_int_equal(n, strlen(out[i]));
		assert_memory_equal(buf, out[i], n);
	}
}

static void test_round_trip_of_all_byte_values_and_lengths(void **state)
{
	uint8_t src[300], dst[300];

	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(i * 37 + 11);
	for (size_t len = 0; len <= sizeof(src); len++) {
		char *enc = base64_encode_alloc(src, len);
		size_t n = 0;

		assert_non_null(enc);
		assert_int_equal(base64_decode(enc, strlen(enc), dst, sizeof(dst), &n), 0);
		assert_int_equal(n, len);
		assert_memory_equal(src, dst, len);
		free(enc);
	}
}

static void test_decode_rejects_malformed_input(void **state)
{
	static const char *const bad[] = {
		"Zg=",		/* length not a multiple of 4 */
		"Zg===",
		"Z===",		/* three pads */
		"Zm9v!A==",	/* bad symbol */
		"Zg==Zm9v",	/* padding in the middle */
		"Z=g=",		/* symbol after a pad */
		"Zh==",		/* non-zero pad bits: not canonical */
		"Zm9=",
		"Zm 9",		/* whitespace */
	};
	char buf[32];
	size_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(base64_decode(bad[i], strlen(bad[i]), buf, sizeof(buf), &n),
				 -EINVAL);
}

static void test_buffers_too_small_are_refused(void **state)
{
	char out[8];
	uint8_t dst[2];
	size_t n;

	assert_int_equal(base64_encode("foobar", 6, out, 8), -ENOSPC);	/* needs 9 */
	assert_int_equal(base64_decode("Zm9v", 4, dst, sizeof(dst), &n), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_matches_rfc4648_vectors),
		cmocka_unit_test(test_decode_matches_rfc4648_vectors),
		cmocka_unit_test(test_round_trip_of_all_byte_values_and_lengths),
		cmocka_unit_test(test_decode_rejects_malformed_input),
		cmocka_unit_test(test_buffers_too_small_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
