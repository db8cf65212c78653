/* GDB remote protocol framing: checksum, escaping, run-length, acks, limits. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "gdb/gdb_proto.h"

/* Feed a string; return the last non-NONE event (or NONE). */
static enum gdb_pkt_event feed(struct gdb_pkt_parser *p, const char *s, size_t n)
{
	enum gdb_pkt_event last = GDB_PKT_NONE, e;

	for (size_t i = 0; i < n; i++) {
		e = gdb_pkt_feed(p, (uint8_t)s[i]);
		if (e != GDB_PKT_NONE)
			last = e;
	}
	return last;
}

static enum gdb_pkt_event feed_str(struct gdb_pkt_parser *p, const char *s)
{
	return feed(p, s, strlen(s));
}

static void test_packet_with_good_checksum_is_accepted(void **state)
{
	static struct gdb_pkt_parser p;

	gdb_pkt_init(&p);
	assert_int_equal(feed_str(&p, "$g#67"), GDB_PKT_PACKET);
	assert_int_equal(p.len, 1);
	assert_string_equal((char *)p.buf, "g");
	/* upper-case checksum digits are fine too */
	assert_int_equal(feed_str(&p, "$qC#B4"), GDB_PKT_PACKET);
	assert_string_equal((char *)p.buf, "qC");
}

static void test_packet_with_bad_checksum_is_refused(void **state)
{
	static struct gdb_pkt_parser p;

	gdb_pkt_init(&p);
	assert_int_equal(feed_str(&p, "$g#68"), GDB_PKT_BAD);
	assert_int_equal(feed_str(&p, "$g#6z"), GDB_PKT_BAD);
	assert_int_equal(feed_str(&p, "$g#x7"), GDB_PKT_BAD);
	/* and the parser recovers for the retransmission */
	assert_int_equal(feed_str(&p, "$g#67"), GDB_PKT_PACKET);
}

static void test_checksum_is_sum_of_bytes_modulo_256(void **state)
{
	assert_int_equal(gdb_pkt_checksum("g", 1), 0x67);
	assert_int_equal(gdb_pkt_checksum("OK", 2), 0x9a);
	assert_int_equal(gdb_pkt_checksum("", 0), 0);
	assert_int_equal(gdb_pkt_checksum("\xff\xff", 2), 0xfe);
}

static void test_escaped_bytes_are_unescaped_and_summed_as_sent(void **state)
{
	static struct gdb_pkt_parser p;
	/* X packet data: '}' 0x5d -> 0x7d, '}' 0x03 -> 0x23 ('#'), '}' 0x04 -> '$', '}' 0x0a -> '*' */
	const char body[] = "X0,4:}]}\x03}\x04}\x0a";
	char pkt[64];
	int n;

	n = snprintf(pkt, sizeof(pkt), "$%s#%02x", body, gdb_pkt_checksum(body, strlen(body)));
	gdb_pkt_init(&p);
	assert_int_equal(feed(&p, pkt, (size_t)n), GDB_PKT_PACKET);
	assert_int_equal(p.len, 9);
	assert_memory_equal(p.buf, "X0,4:}#$*", 9);
}

static void test_run_length_repeats_previous_character(void **state)
{
	static struct gdb_pkt_parser p;
	const char body[] = "m0* ";	/* ' ' = 32: three more '0' */
	char pkt[32];
	int n;

	n = snprintf(pkt, sizeof(pkt), "$%s#%02x", body, gdb_pkt_checksum(body, strlen(body)));
	gdb_pkt_init(&p);
	assert_int_equal(feed(&p, pkt, (size_t)n), GDB_PKT_PACKET);
	assert_string_equal((char *)p.buf, "m0000");
}

static void test_run_length_without_previous_character_is_refused(void **state)
{
	static struct gdb_pkt_parser p;
	const char *bodies[] = { "* ", "a*\x01" };

	for (unsigned i = 0; i < 2; i++) {
		char pkt[32];
		int n = snprintf(pkt, sizeof(pkt), "$%s#%02x", bodies[i],
				 gdb_pkt_checksum(bodies[i], strlen(bodies[i])));

		gdb_pkt_init(&p);
		assert_int_equal(feed(&p, pkt, (size_t)n), GDB_PKT_BAD);
	}
	/* a run-length or escape cut by the end marker */
	gdb_pkt_init(&p);
	assert_int_equal(feed_str(&p, "$a*#8b"), GDB_PKT_BAD);
	assert_int_equal(feed_str(&p, "$a}#de"), GDB_PKT_BAD);
}

static void test_acks_nacks_and_interrupt_between_packets(void **state)
{
	static struct gdb_pkt_parser p;

	gdb_pkt_init(&p);
	assert_int_equal(gdb_pkt_feed(&p, '+'), GDB_PKT_ACK);
	assert_int_equal(gdb_pkt_feed(&p, '-'), GDB_PKT_NACK);
	assert_int_equal(gdb_pkt_feed(&p, 0x03), GDB_PKT_INTERRUPT);
	assert_int_equal(gdb_pkt_feed(&p, 'x'), GDB_PKT_NONE);	/* noise */
	/* inside a packet, 0x03 and '+' are data */
	assert_int_equal(feed_str(&p, "$+\x03#2e"), GDB_PKT_PACKET);
	assert_memory_equal(p.buf, "+\x03", 2);
}

static void test_dollar_inside_packet_restarts_it(void **state)
{
	static struct gdb_pkt_parser p;

	gdb_pkt_init(&p);
	assert_int_equal(feed_str(&p, "$garbage$g#67"), GDB_PKT_PACKET);
	assert_string_equal((char *)p.buf, "g");
}

static void test_oversized_packet_is_refused_with_bounded_memory(void **state)
{
	static struct gdb_pkt_parser p;
	static char big[GDB_PKT_MAX * 4];
	uint8_t sum;

	memset(big, 'a', sizeof(big));
	sum = gdb_pkt_checksum(big, sizeof(big));
	gdb_pkt_init(&p);
	assert_int_equal(gdb_pkt_feed(&p, '$'), GDB_PKT_NONE);
	assert_int_equal(feed(&p, big, sizeof(big)), GDB_PKT_NONE);
	assert_true(p.len <= GDB_PKT_MAX);
	char tail[4];
	snprintf(tail, sizeof(tail), "#%02x", sum);
	assert_int_equal(feed_str(&p, tail), GDB_PKT_BAD);
	/* run-length expansion past the limit as well */
	gdb_pkt_init(&p);
	gdb_pkt_feed(&p, '$');
	for (int i = 0; i < GDB_PKT_MAX; i++)
		feed_str(&p, "a*~");
	assert_true(p.len <= GDB_PKT_MAX);
	assert_true(p.overflow);
	/* next packet is fine */
	gdb_pkt_init(&p);
	assert_int_equal(feed_str(&p, "$g#67"), GDB_PKT_PACKET);
}

static void test_encode_escapes_special_bytes_and_round_trips(void **state)
{
	static struct gdb_pkt_parser p;
	const uint8_t data[] = { 'a', '$', '#', '}', '*', 0, 0xff, 0x03 };
	uint8_t out[2 * sizeof(data) + 4];
	size_t n = gdb_pkt_encode(out, sizeof(out), data, sizeof(data));

	assert_true(n > 0);
	assert_int_equal(out[0], '$');
	/* no raw '$', '#' or '*' between the markers */
	for (size_t i = 1; i < n - 3; i++) {
		assert_true(out[i] != '$' && out[i] != '#' && out[i] != '*');
	}
	gdb_pkt_init(&p);
	assert_int_equal(feed(&p, (char *)out, n), GDB_PKT_PACKET);
	assert_int_equal(p.len, sizeof(data));
	assert_memory_equal(p.buf, data, sizeof(data));
	/* too small a buffer is refused, not overrun */
	assert_int_equal(gdb_pkt_encode(out, 6, data, sizeof(data)), 0);
}

static void test_encode_ok_matches_known_framing(void **state)
{
	uint8_t out[16];
	size_t n = gdb_pkt_encode(out, sizeof(out), "OK", 2);

	assert_int_equal(n, 6);
	assert_memory_equal(out, "$OK#9a", 6);
	n = gdb_pkt_encode(out, sizeof(out), "", 0);
	assert_memory_equal(out, "$#00", n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_packet_with_good_checksum_is_accepted),
		cmocka_unit_test(test_packet_with_bad_checksum_is_refused),
		cmocka_unit_test(test_checksum_is_sum_of_bytes_modulo_256),
		cmocka_unit_test(test_escaped_bytes_are_unescaped_and_summed_as_sent),
		cmocka_unit_test(test_run_length_repeats_previous_character),
		cmocka_unit_test(test_run_length_without_previous_character_is_refused),
		cmocka_unit_test(test_acks_nacks_and_interrupt_between_packets),
		cmocka_unit_test(test_dollar_inside_packet_restarts_it),
		cmocka_unit_test(test_oversized_packet_is_refused_with_bounded_memory),
		cmocka_unit_test(test_encode_escapes_special_bytes_and_round_trips),
		cmocka_unit_test(test_encode_ok_matches_known_framing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
