/*
 * Framing of a byte stream into top-level JSON values (RFC 8259 text, one
 * value after another, as QMP sends them). The framer tracks only nesting
 * depth and string/escape state, the way QEMU's JSON lexer/streamer does, so
 * a value split over reads or several values in one read come out one by
 * one; each complete value is then parsed by jansson. A malformed value is
 * reported and skipped: the stream stays usable for the next one.
 */
#ifndef AMBER_CONTROL_JSONSTREAM_H
#define AMBER_CONTROL_JSONSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

/* Nesting deeper than this is treated like oversized input (QEMU: 1024). */
#define JSON_STREAM_MAX_DEPTH 1024

struct json_stream {
	char *buf;
	size_t len, cap;
	size_t pos;		/* next byte to scan */
	size_t start;		/* first byte of the value being framed */
	size_t limit;		/* max bytes of one incomplete value */
	int depth;
	bool in_str, esc, in_scalar, in_value;
};

void json_stream_init(struct json_stream *s, size_t limit);
void json_stream_destroy(struct json_stream *s);
/* Append received bytes. 0 or -ENOMEM. */
int json_stream_feed(struct json_stream *s, const void *data, size_t n);
/*
 * Frame the next value. Returns 1 with *val set (a new reference) for a
 * complete value; 1 with *val == NULL and err filled for a malformed one
 * (skipped); 0 if no complete value is buffered; -EMSGSIZE when more than
 * limit bytes (or JSON_STREAM_MAX_DEPTH levels) are buffered without a
 * complete value: the stream cannot resynchronise and should be dropped.
 */
int json_stream_next(struct json_stream *s, json_t **val, char *err, size_t errlen);
/* Bytes buffered that do not yet form a complete value (whitespace excluded). */
size_t json_stream_pending(const struct json_stream *s);

#endif
