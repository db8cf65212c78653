/*
 * Base64 (RFC 4648 §4, standard alphabet, '=' padding), the encoding of
 * binary blobs (XSAVE areas, ST_BYTES fields) in vm.json.
 */
#ifndef AMBER_BASE64_H
#define AMBER_BASE64_H

#include <stddef.h>

/* Characters needed for n bytes, without the terminating NUL. */
size_t base64_encoded_len(size_t n);
/* Largest number of bytes a string of len characters can decode to. */
size_t base64_decoded_max(size_t len);

/*
 * Encode n bytes into dst (NUL-terminated); dstlen must be at least
 * base64_encoded_len(n) + 1. 0 or -ENOSPC.
 */
int base64_encode(const void *src, size_t n, char *dst, size_t dstlen);
/* Same, into a malloc'd string (NULL when out of memory). */
char *base64_encode_alloc(const void *src, size_t n);

/*
 * Decode len characters of src into dst (room for dstlen bytes); *outlen gets
 * the decoded size. Strict: the length must be a multiple of 4, padding only
 * at the end, no whitespace, unused bits of the last symbol zero (so each
 * byte string has exactly one encoding). 0, -EINVAL (not base64) or -ENOSPC.
 */
int base64_decode(const char *src, size_t len, void *dst, size_t dstlen, size_t *outlen);

#endif
