/* A tiny AML encoder: see aml.h. Section numbers are ACPI 6.4. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "acpi/aml.h"

void aml_buf_init(struct aml_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void aml_buf_free(struct aml_buf *b)
{
	free(b->data);
	aml_buf_init(b);
}

uint8_t *aml_buf_steal(struct aml_buf *b, size_t *len)
{
	uint8_t *p = b->data;

	*len = b->len;
	aml_buf_init(b);
	return p;
}

static void aml_fail(struct aml_buf *b, int err)
{
	if (!b->err)
		b->err = err;
}

static bool aml_reserve(struct aml_buf *b, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (b->err)
		return false;
	if (b->len + n <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + n)
		cap *= 2;
	p = realloc(b->data, cap);
	if (!p) {
		aml_fail(b, -ENOMEM);
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

void aml_append(struct aml_buf *b, const void *p, size_t n)
{
	if (!n || !aml_reserve(b, n))
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

/* Insert n bytes at pos, moving what follows. */
static void aml_insert(struct aml_buf *b, size_t pos, const void *p, size_t n)
{
	if (!aml_reserve(b, n))
		return;
	if (pos > b->len) {
		aml_fail(b, -EINVAL);
		return;
	}
	memmove(b->data + pos + n, b->data + pos, b->len - pos);
	memcpy(b->data + pos, p, n);
	b->len += n;
}

void aml_byte(struct aml_buf *b, uint8_t v)
{
	aml_append(b, &v, 1);
}

void aml_le(struct aml_buf *b, uint64_t v, unsigned nbytes)
{
	uint8_t tmp[8];

	for (unsigned i = 0; i < nbytes && i < 8; i++)
		tmp[i] = (uint8_t)(v >> (8 * i));
	aml_append(b, tmp, nbytes < 8 ? nbytes : 8);
}

/*
 * §20.2.4: one byte holds lengths up to 63 (bits 5:0). Longer ones use 1-3
 * more bytes: the lead byte has the count in bits 7:6 and the low nibble in
 * bits 3:0, the following bytes the rest, 8 bits each.
 */
int aml_pkglen_encode(uint8_t out[4], size_t body_len)
{
	size_t total;
	int n;

	if (body_len + 1 <= 0x3f) {
		out[0] = (uint8_t)(body_len + 1);
		return 1;
	}
	for (n = 2; n <= 4; n++) {
		total = body_len + (size_t)n;
		if (total < ((size_t)1 << (4 + 8 * (n - 1))))
			break;
	}
	if (n > 4)
		return -E2BIG;
	out[0] = (uint8_t)(((n - 1) << 6) | (total & 0x0f));
	for (int i = 1; i < n; i++)
		out[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	return n;
}

void aml_integer(struct aml_buf *b, uint64_t v)
{
	if (v == 0) {
		aml_byte(b, AML_ZERO_OP);
	} else if (v == 1) {
		aml_byte(b, AML_ONE_OP);
	} else if (v == UINT64_MAX) {
		/* Ones is all bits set for DSDT revision >= 2 (64-bit integers). */
		aml_byte(b, AML_ONES_OP);
	} else if (v <= 0xff) {
		aml_byte(b, AML_BYTE_PREFIX);
		aml_le(b, v, 1);
	} else if (v <= 0xffff) {
		aml_byte(b, AML_WORD_PREFIX);
		aml_le(b, v, 2);
	} else if (v <= 0xffffffff) {
		aml_byte(b, AML_DWORD_PREFIX);
		aml_le(b, v, 4);
	} else {
		aml_byte(b, AML_QWORD_PREFIX);
		aml_le(b, v, 8);
	}
}

void aml_string(struct aml_buf *b, const char *s)
{
	/* §20.2.3: AsciiCharList is 0x01-0x7F. */
	for (const char *c = s; *c; c++) {
		if ((unsigned char)*c > 0x7f) {
			aml_fail(b, -EINVAL);
			return;
		}
	}
	aml_byte(b, AML_STRING_PREFIX);
	aml_append(b, s, strlen(s) + 1);
}

static int aml_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * §6.1.5 _HID: a compressed EISA ID is three 5-bit letters ('A' = 1) and
 * four hex digits, stored big-endian in a 32-bit integer.
 */
void aml_eisaid(struct aml_buf *b, const char *id)
{
	uint32_t v = 0;

	if (strlen(id) != 7)
		goto bad;
	for (int i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z')
			goto bad;
		v |= (uint32_t)(id[i] - 0x40) << (26 - 5 * i);
	}
	for (int i = 3; i < 7; i++) {
		int h = aml_hexval(id[i]);

		if (h < 0)
			goto bad;
		v |= (uint32_t)h << (12 - 4 * (i - 3));
	}
	aml_byte(b, AML_DWORD_PREFIX);
	aml_le(b, __builtin_bswap32(v), 4);
	return;
bad:
	aml_fail(b, -EINVAL);
}

static bool aml_is_lead(char c)
{
	return (c >= 'A' && c <= 'Z') || c == '_';
}

static bool aml_is_namechar(char c)
{
	return aml_is_lead(c) || (c >= '0' && c <= '9');
}

/* §20.2.2: NameSeg is a lead char and three name chars, '_'-padded here. */
void aml_namestring(struct aml_buf *b, const char *path)
{
	uint8_t segs[255][4];
	unsigned nseg = 0;
	const char *p = path;

	if (*p == '\\') {
		aml_byte(b, AML_ROOT_CHAR);
		p++;
	} else {
		while (*p == '^') {
			aml_byte(b, AML_PARENT_CHAR);
			p++;
		}
	}
	while (*p) {
		unsigned n = 0;

		if (nseg == 255 || !aml_is_lead(*p))
			goto bad;
		memset(segs[nseg], '_', 4);
		while (*p && *p != '.') {
			if (n == 4 || !aml_is_namechar(*p))
				goto bad;
			segs[nseg][n++] = (uint8_t)*p++;
		}
		nseg++;
		if (*p == '.') {
			p++;
			if (!*p)
				goto bad;
		}
	}
	if (nseg == 0) {
		aml_byte(b, 0x00);	/* NullName */
		return;
	}
	if (nseg == 2) {
		aml_byte(b, AML_DUAL_NAME_PREFIX);
	} else if (nseg > 2) {
		aml_byte(b, AML_MULTI_NAME_PREFIX);
		aml_byte(b, (uint8_t)nseg);
	}
	aml_append(b, segs, 4 * (size_t)nseg);
	return;
bad:
	aml_fail(b, -EINVAL);
}

void aml_name(struct aml_buf *b, const char *name)
{
	aml_byte(b, AML_NAME_OP);
	aml_namestring(b, name);
}

void aml_name_integer(struct aml_buf *b, const char *name, uint64_t v)
{
	aml_name(b, name);
	aml_integer(b, v);
}

void aml_name_string(struct aml_buf *b, const char *name, const char *s)
{
	aml_name(b, name);
	aml_string(b, s);
}

void aml_name_eisaid(struct aml_buf *b, const char *name, const char *id)
{
	aml_name(b, name);
	aml_eisaid(b, id);
}

/* Everything from tok to the end is the body; put its PkgLength at tok. */
void aml_end(struct aml_buf *b, size_t tok)
{
	uint8_t pl[4];
	int n;

	if (b->err)
		return;
	if (tok > b->len) {
		aml_fail(b, -EINVAL);
		return;
	}
	n = aml_pkglen_encode(pl, b->len - tok);
	if (n < 0) {
		aml_fail(b, n);
		return;
	}
	aml_insert(b, tok, pl, (size_t)n);
}

size_t aml_scope_begin(struct aml_buf *b, const char *path)
{
	size_t tok;

	aml_byte(b, AML_SCOPE_OP);
	tok = b->len;
	aml_namestring(b, path);
	return tok;
}

size_t aml_device_begin(struct aml_buf *b, const char *name)
{
	size_t tok;

	aml_byte(b, AML_EXT_OP_PREFIX);
	aml_byte(b, AML_DEVICE_OP);
	tok = b->len;
	aml_namestring(b, name);
	return tok;
}

/* §20.2.5.4: DefPackage has a one-byte NumElements; VarPackage a TermArg. */
size_t aml_package_begin(struct aml_buf *b, unsigned nelem)
{
	size_t tok;

	if (nelem <= 255) {
		aml_byte(b, AML_PACKAGE_OP);
		tok = b->len;
		aml_byte(b, (uint8_t)nelem);
	} else {
		aml_byte(b, AML_VAR_PACKAGE_OP);
		tok = b->len;
		aml_integer(b, nelem);
	}
	return tok;
}

size_t aml_buffer_begin(struct aml_buf *b)
{
	aml_byte(b, AML_BUFFER_OP);
	return b->len;
}

/* DefBuffer := BufferOp PkgLength BufferSize ByteList (§20.2.5.4). */
void aml_buffer_end(struct aml_buf *b, size_t tok)
{
	struct aml_buf size;

	if (b->err)
		return;
	if (tok > b->len) {
		aml_fail(b, -EINVAL);
		return;
	}
	aml_buf_init(&size);
	aml_integer(&size, b->len - tok);
	if (size.err) {
		aml_fail(b, size.err);
	} else {
		aml_insert(b, tok, size.data, size.len);
		aml_end(b, tok);
	}
	aml_buf_free(&size);
}

size_t aml_restemplate_begin(struct aml_buf *b)
{
	return aml_buffer_begin(b);
}

void aml_restemplate_end(struct aml_buf *b, size_t tok)
{
	/* §6.4.2.9 End Tag; checksum 0 means "treat as correct". */
	aml_byte(b, 0x79);
	aml_byte(b, 0x00);
	aml_buffer_end(b, tok);
}

void aml_res_io(struct aml_buf *b, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
	aml_byte(b, 0x47);		/* small item 0x08, length 7 */
	aml_byte(b, 0x01);		/* decodes 16-bit addresses */
	aml_le(b, min, 2);
	aml_le(b, max, 2);
	aml_byte(b, align);
	aml_byte(b, len);
}

void aml_res_irq_noflags(struct aml_buf *b, unsigned irq)
{
	if (irq > 15) {
		aml_fail(b, -EINVAL);
		return;
	}
	aml_byte(b, 0x22);		/* small item 0x04, length 2: no flags byte */
	aml_le(b, 1u << irq, 2);
}

void aml_res_mem32_fixed(struct aml_buf *b, bool rw, uint32_t base, uint32_t len)
{
	aml_byte(b, 0x86);		/* large item 0x06 */
	aml_le(b, 9, 2);
	aml_byte(b, rw ? 1 : 0);
	aml_le(b, base, 4);
	aml_le(b, len, 4);
}

void aml_res_interrupt(struct aml_buf *b, uint8_t flags, uint32_t gsi)
{
	aml_byte(b, 0x89);		/* large item 0x09 */
	aml_le(b, 6, 2);
	aml_byte(b, flags);
	aml_byte(b, 1);			/* interrupt table length */
	aml_le(b, gsi, 4);
}

/* §6.4.3.5 Table 6.44: resource type, general and type-specific flags. */
#define AML_RT_MEM   0
#define AML_RT_IO    1
#define AML_RT_BUS   2
#define AML_GF_PRODUCER_FIXED 0x0c	/* producer, PosDecode, MinFixed, MaxFixed */
#define AML_IO_ENTIRE_RANGE   0x03

static void aml_res_addr(struct aml_buf *b, unsigned width, uint8_t type, uint8_t tflags,
			 uint64_t min, uint64_t max)
{
	static const uint8_t tag[] = { [2] = 0x88, [4] = 0x87, [8] = 0x8a };

	/* The length field has the same width as the addresses. */
	if (max < min || (width < 8 && ((max - min + 1) >> (8 * width)) != 0)) {
		aml_fail(b, -EINVAL);
		return;
	}
	aml_byte(b, tag[width]);
	aml_le(b, 3 + 5 * width, 2);
	aml_byte(b, type);
	aml_byte(b, AML_GF_PRODUCER_FIXED);
	aml_byte(b, tflags);
	aml_le(b, 0, width);		/* granularity */
	aml_le(b, min, width);
	aml_le(b, max, width);
	aml_le(b, 0, width);		/* translation offset */
	aml_le(b, max - min + 1, width);
}

void aml_res_word_bus(struct aml_buf *b, uint16_t min, uint16_t max)
{
	aml_res_addr(b, 2, AML_RT_BUS, 0, min, max);
}

void aml_res_word_io(struct aml_buf *b, uint16_t min, uint16_t max)
{
	aml_res_addr(b, 2, AML_RT_IO, AML_IO_ENTIRE_RANGE, min, max);
}

void aml_res_dword_io(struct aml_buf *b, uint32_t min, uint32_t max)
{
	aml_res_addr(b, 4, AML_RT_IO, AML_IO_ENTIRE_RANGE, min, max);
}

void aml_res_dword_mem(struct aml_buf *b, enum aml_mem_cache cache, uint32_t min, uint32_t max)
{
	aml_res_addr(b, 4, AML_RT_MEM, (uint8_t)(0x01 | (cache << 1)), min, max);
}

void aml_res_qword_mem(struct aml_buf *b, enum aml_mem_cache cache, uint64_t min, uint64_t max)
{
	/* A window covering all 2^64 addresses has no length: refuse it. */
	if (min == 0 && max == UINT64_MAX) {
		aml_fail(b, -EINVAL);
		return;
	}
	aml_res_addr(b, 8, AML_RT_MEM, (uint8_t)(0x01 | (cache << 1)), min, max);
}
