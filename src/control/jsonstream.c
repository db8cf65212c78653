/* Top-level JSON value framing over a byte stream (see jsonstream.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/jsonstream.h"

void json_stream_init(struct json_stream *s, size_t limit)
{
	memset(s, 0, sizeof(*s));
	s->limit = limit;
}

void json_stream_destroy(struct json_stream *s)
{
	free(s->buf);
	memset(s, 0, sizeof(*s));
}

int json_stream_feed(struct json_stream *s, const void *data, size_t n)
{
	/* Bytes before start belong to values already returned: drop them. */
	if (s->start > 0) {
		memmove(s->buf, s->buf + s->start, s->len - s->start);
		s->len -= s->start;
		s->pos -= s->start;
		s->start = 0;
	}
	if (s->len + n > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		char *p;

		while (cap < s->len + n)
			cap *= 2;
		p = realloc(s->buf, cap);
		if (!p)
			return -ENOMEM;
		s->buf = p;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, data, n);
	s->len += n;
	return 0;
}

static bool json_stream_space(char c)
{
	/* RFC 8259 §2: insignificant whitespace. */
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int json_stream_complete(struct json_stream *s, size_t end, json_t **val,
				char *err, size_t errlen)
{
	json_error_t jerr;

	/* QEMU's parser rejects duplicate keys too (qobject/json-parser.c). */
	*val = json_loadb(s->buf + s->start, end - s->start,
			  JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (!*val)
		snprintf(err, errlen, "JSON parse error, %s", jerr.text);
	s->pos = end;
	s->start = end;
	s->depth = 0;
	s->in_value = s->in_str = s->esc = s->in_scalar = false;
	return 1;
}

int json_stream_next(struct json_stream *s, json_t **val, char *err, size_t errlen)
{
	*val = NULL;
	while (s->pos < s->len) {
		char c = s->buf[s->pos];

		if (!s->in_value) {
			if (json_stream_space(c)) {
				s->start = ++s->pos;
				continue;
			}
			s->in_value = true;
			s->start = s->pos++;
			if (c == '{' || c == '[') {
				s->depth = 1;
			} else if (c == '"') {
				s->in_str = true;
			} else if (c == '}' || c == ']') {
				s->in_value = false;
				s->start = s->pos;
				snprintf(err, errlen, "JSON parse error, unexpected '%c'", c);
				return 1;
			} else {
				s->in_scalar = true;
			}
			continue;
		}
		if (s->in_str) {
			s->pos++;
			if (s->esc)
				s->esc = false;
			else if (c == '\\')
				s->esc = true;
			else if (c == '"') {
				s->in_str = false;
				if (s->depth == 0)
					return json_stream_complete(s, s->pos, val, err, errlen);
			}
			continue;
		}
		if (s->in_scalar) {
			/* A bare literal or number ends where a token that cannot continue it starts. */
			if (json_stream_space(c) || c == '{' || c == '[' || c == '}' || c == ']' || c == '"')
				return json_stream_complete(s, s->pos, val, err, errlen);
			s->pos++;
			continue;
		}
		s->pos++;
		switch (c) {
		case '"':
			s->in_str = true;
			break;
		case '{':
		case '[':
			if (++s->depth > JSON_STREAM_MAX_DEPTH)
				return -EMSGSIZE;
			break;
		case '}':
		case ']':
			if (--s->depth == 0)
				return json_stream_complete(s, s->pos, val, err, errlen);
			break;
		}
	}
	if (s->in_value && s->len - s->start > s->limit)
		return -EMSGSIZE;
	return 0;
}

size_t json_stream_pending(const struct json_stream *s)
{
	return s->in_value ? s->len - s->start : 0;
}
