/*
 * GDB remote protocol framing (gdb manual, "Remote Protocol" > "Overview"):
 *
 *   $<data>#<two hex digits: modulo-256 sum of the data bytes as sent>
 *
 * In <data>, '}' escapes the next byte (sent xor 0x20), and "<c>*<n>"
 * repeats c n-29 more times (run-length encoding). The receiver acks each
 * packet with '+' or asks for it again with '-' (until QStartNoAckMode).
 * A bare 0x03 between packets is gdb's interrupt request.
 *
 * The parser is a byte-at-a-time state machine with a fixed buffer: any
 * input, however long or garbled, costs bounded memory and yields either a
 * packet or a nack.
 */
#include <string.h>

#include "amber/hex.h"
#include "gdb/gdb_proto.h"

enum {
	PS_IDLE,	/* between packets */
	PS_DATA,
	PS_ESCAPE,	/* after '}' */
	PS_REPEAT,	/* after '*': the count byte */
	PS_SUM1,	/* after '#' */
	PS_SUM2,
};

void gdb_pkt_init(struct gdb_pkt_parser *p)
{
	p->state = PS_IDLE;
	p->len = 0;
	p->sum = 0;
	p->rx_sum = 0;
	p->overflow = false;
	p->malformed = false;
	p->buf[0] = 0;
}

static void pkt_start(struct gdb_pkt_parser *p)
{
	p->state = PS_DATA;
	p->len = 0;
	p->sum = 0;
	p->overflow = false;
	p->malformed = false;
}

static void pkt_put(struct gdb_pkt_parser *p, uint8_t c)
{
	if (p->len >= GDB_PKT_MAX) {
		p->overflow = true;
		return;
	}
	p->buf[p->len++] = c;
}

enum gdb_pkt_event gdb_pkt_feed(struct gdb_pkt_parser *p, uint8_t c)
{
	int v;

	switch (p->state) {
	case PS_IDLE:
		switch (c) {
		case '$':
			pkt_start(p);
			return GDB_PKT_NONE;
		case '+':
			return GDB_PKT_ACK;
		case '-':
			return GDB_PKT_NACK;
		case 0x03:
			return GDB_PKT_INTERRUPT;
		default:
			return GDB_PKT_NONE;	/* line noise between packets */
		}
	case PS_DATA:
		if (c == '$') {
			/* A new start inside a packet: the old one was cut off. */
			pkt_start(p);
			return GDB_PKT_NONE;
		}
		if (c == '#') {
			p->state = PS_SUM1;
			return GDB_PKT_NONE;
		}
		p->sum += c;
		if (c == '}')
			p->state = PS_ESCAPE;
		else if (c == '*')
			p->state = PS_REPEAT;
		else
			pkt_put(p, c);
		return GDB_PKT_NONE;
	case PS_ESCAPE:
	case PS_REPEAT:
		if (c == '$') {
			pkt_start(p);
			return GDB_PKT_NONE;
		}
		if (c == '#') {
			/* '}' or '*' right before the end: nothing to unescape or repeat. */
			p->malformed = true;
			p->state = PS_SUM1;
			return GDB_PKT_NONE;
		}
		p->sum += c;
		if (p->state == PS_ESCAPE) {
			pkt_put(p, c ^ 0x20);
		} else if (c < 32 || c > 126 || p->len == 0) {
			/*
			 * Count byte n repeats the previous character n - 29 times;
			 * only printable counts are valid and there must be a
			 * character to repeat.
			 */
			p->malformed = true;
		} else if (!p->overflow) {
			uint8_t prev = p->buf[p->len - 1];

			for (int i = 0; i < c - 29; i++)
				pkt_put(p, prev);
		}
		p->state = PS_DATA;
		return GDB_PKT_NONE;
	case PS_SUM1:
		v = hex_digit_value(c);
		if (v < 0) {
			p->state = c == '$' ? PS_DATA : PS_IDLE;
			if (c == '$')
				pkt_start(p);
			return c == '$' ? GDB_PKT_NONE : GDB_PKT_BAD;
		}
		p->rx_sum = (uint8_t)(v << 4);
		p->state = PS_SUM2;
		return GDB_PKT_NONE;
	case PS_SUM2:
		v = hex_digit_value(c);
		p->state = PS_IDLE;
		if (v < 0) {
			if (c == '$') {
				pkt_start(p);
				return GDB_PKT_NONE;
			}
			return GDB_PKT_BAD;
		}
		p->rx_sum |= (uint8_t)v;
		if (p->rx_sum != p->sum || p->overflow || p->malformed)
			return GDB_PKT_BAD;
		p->buf[p->len] = 0;
		return GDB_PKT_PACKET;
	}
	p->state = PS_IDLE;
	return GDB_PKT_NONE;
}

uint8_t gdb_pkt_checksum(const void *data, size_t len)
{
	const uint8_t *d = data;
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += d[i];
	return sum;
}

size_t gdb_pkt_encode(uint8_t *out, size_t outsz, const void *payload, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *d = payload;
	uint8_t sum = 0;
	size_t o = 0;

	if (outsz < 4)
		return 0;
	out[o++] = '$';
	for (size_t i = 0; i < len; i++) {
		uint8_t c = d[i];

		if (o + 2 > outsz - 3)
			return 0;
		/* Binary data: '$', '#', '}' and '*' must be escaped. */
		if (c == '$' || c == '#' || c == '}' || c == '*') {
			out[o++] = '}';
			sum += '}';
			c ^= 0x20;
		}
		out[o++] = c;
		sum += c;
	}
	out[o++] = '#';
	out[o++] = hex[sum >> 4];
	out[o++] = hex[sum & 15];
	return o;
}
