/* The JSON stream framer used by the control server and amber ctl. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <errno.h>
#include <string.h>
#include <cmocka.h>

#include "control/jsonstream.h"

static json_t *next_ok(struct json_stream *s)
{
	char err[256] = "";
	json_t *v = NULL;
	int r = json_stream_next(s, &v, err, sizeof(err));

	if (r != 1 || !v)
		fail_msg("expected a value, got r=%d err=%s", r, err);
	return v;
}

static void test_values_split_byte_by_byte_come_out_whole(void **state)
{
	const char *text = " {\"a\": \"}\\\"{\", \"b\": [1, {\"c\": []}]}\r\n[true] \"str\" 42 ";
	struct json_stream s;
	json_t *err_v;
	char err[256];
	size_t i;
	int n = 0;

	json_stream_init(&s, 1 << 20);
	for (i = 0; i < strlen(text); i++) {
		assert_int_equal(json_stream_feed(&s, text + i, 1), 0);
		for (;;) {
			int r = json_stream_next(&s, &err_v, err, sizeof(err));

			if (r == 0)
				break;
			assert_int_equal(r, 1);
			assert_non_null(err_v);
			switch (n++) {
			case 0:
				assert_string_equal(json_string_value(json_object_get(err_v, "a")), "}\"{");
				break;
			case 1:
				assert_true(json_is_array(err_v));
				break;
			case 2:
				assert_string_equal(json_string_value(err_v), "str");
				break;
			case 3:
				assert_int_equal(json_integer_value(err_v), 42);
				break;
			}
			json_decref(err_v);
		}
	}
	assert_int_equal(n, 4);
	assert_int_equal(json_stream_pending(&s), 0);
	json_stream_destroy(&s);
}

static void test_malformed_value_is_reported_and_skipped(void **state)
{
	struct json_stream s;
	char err[256] = "";
	json_t *v;
	const char *text = "{\"a\" 1} } {\"a\": 1, \"a\": 2} {\"ok\": 1}";

	json_stream_init(&s, 1 << 20);
	assert_int_equal(json_stream_feed(&s, text, strlen(text)), 0);
	assert_int_equal(json_stream_next(&s, &v, err, sizeof(err)), 1);
	assert_null(v);
	assert_non_null(strstr(err, "JSON parse error"));
	err[0] = 0;
	assert_int_equal(json_stream_next(&s, &v, err, sizeof(err)), 1);
	assert_null(v);
	assert_non_null(strstr(err, "unexpected '}'"));
	/* Duplicate keys are refused, as QEMU's parser does. */
	assert_int_equal(json_stream_next(&s, &v, err, sizeof(err)), 1);
	assert_null(v);
	v = next_ok(&s);
	assert_int_equal(json_integer_value(json_object_get(v, "ok")), 1);
	json_decref(v);
	json_stream_destroy(&s);
}

static void test_incomplete_value_over_limit_is_emsgsize(void **state)
{
	struct json_stream s;
	char buf[100], err[64];
	json_t *v;

	json_stream_init(&s, 64);
	memset(buf, ' ', sizeof(buf));
	/* Whitespace between values does not count. */
	assert_int_equal(json_stream_feed(&s, buf, sizeof(buf)), 0);
	assert_int_equal(json_stream_next(&s, &v, err, sizeof(err)), 0);
	buf[0] = '[';
	assert_int_equal(json_stream_feed(&s, buf, 60), 0);
	assert_int_equal(json_stream_next(&s, &v, err, sizeof(err)), 0);
	assert_int_equal(json_stream_feed(&s, buf + 1, 10), 0);
	assert_int_equal(json_stream_next(&s, &v, err, sizeof(err)), -EMSGSIZE);
	json_stream_destroy(&s);
}

static void test_nesting_beyond_max_depth_is_emsgsize(void **state)
{
	struct json_stream s;
	char buf[JSON_STREAM_MAX_DEPTH + 1], err[64];
	json_t *v;

	json_stream_init(&s, 1 << 20);
	memset(buf, '[', sizeof(buf));
	assert_int_equal(json_stream_feed(&s, buf, sizeof(buf)), 0);
	assert_int_equal(json_stream_next(&s, &v, err, sizeof(err)), -EMSGSIZE);
	json_stream_destroy(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values_split_byte_by_byte_come_out_whole),
		cmocka_unit_test(test_malformed_value_is_reported_and_skipped),
		cmocka_unit_test(test_incomplete_value_over_limit_is_emsgsize),
		cmocka_unit_test(test_nesting_beyond_max_depth_is_emsgsize),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
