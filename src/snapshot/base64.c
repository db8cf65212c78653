/* Base64, RFC 4648 §4: 3 bytes -> 4 symbols of 6 bits, '=' pads the last group. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "amber/base64.h"

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encoded_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

size_t base64_decoded_max(size_t len)
{
	return len / 4 * 3;
}

int base64_encode(const void *src, size_t n, char *dst, size_t dstlen)
{
	const uint8_t *s = src;
	size_t i, o = 0;

	if (dstlen < base64_encoded_len(n) + 1)
		return -ENOSPC;
	for (i = 0; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];

		dst[o++] = b64_alphabet[v >> 18];
		dst[o++] = b64_alphabet[(v >> 12) & 63];
		dst[o++] = b64_alphabet[(v >> 6) & 63];
		dst[o++] = b64_alphabet[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)s[i] << 16;

		dst[o++] = b64_alphabet[v >> 18];
		dst[o++] = b64_alphabet[(v >> 12) & 63];
		dst[o++] = '=';
		dst[o++] = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;

		dst[o++] = b64_alphabet[v >> 18];
		dst[o++] = b64_alphabet[(v >> 12) & 63];
		dst[o++] = b64_alphabet[(v >> 6) & 63];
		dst[o++] = '=';
	}
	dst[o] = '\0';
	return 0;
}

char *base64_encode_alloc(const void *src, size_t n)
{
	size_t len = base64_encoded_len(n) + 1;
	char *dst = malloc(len);

	if (dst && base64_encode(src, n, dst, len) < 0) {
		free(dst);
		dst = NULL;
	}
	return dst;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int base64_decode(const char *src, size_t len, void *dst, size_t dstlen, size_t *outlen)
{
	uint8_t *d = dst;
	size_t o = 0;

	if (len % 4)
		return -EINVAL;
	for (size_t i = 0; i < len; i += 4) {
		bool last = i + 4 == len;
		int pad = 0, v[4];
		uint32_t w;

		for (int k = 0; k < 4; k++) {
			char c = src[i + k];

			if (c == '=' && last && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			/* A symbol after '=' or '=' anywhere else is not base64. */
			if (pad)
				return -EINVAL;
			v[k] = b64_value(c);
			if (v[k] < 0)
				return -EINVAL;
		}
		w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
		/* RFC 4648 §3.5: pad bits must be zero for a canonical encoding. */
		if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))
			return -EINVAL;
		if (o + 3 - pad > dstlen)
			return -ENOSPC;
		d[o++] = (uint8_t)(w >> 16);
		if (pad < 2)
			d[o++] = (uint8_t)(w >> 8);
		if (pad < 1)
			d[o++] = (uint8_t)w;
	}
	*outlen = o;
	return 0;
}
