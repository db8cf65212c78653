/*
 * A tiny AML encoder (ACPI 6.4 §20 "ACPI Machine Language Specification"
 * and §6.4 "Resource Data Types for ACPI") for building a DSDT by code.
 *
 * Everything appends to a growable byte buffer. Nested objects (Scope,
 * Device, Package, Buffer, resource templates) are opened with *_begin(),
 * which returns a token, and closed with the matching *_end(token) in LIFO
 * order; the PkgLength is inserted when the object is closed, so its size
 * (1-4 bytes) can always be the shortest one. Errors (allocation failure, a
 * name that cannot be encoded, an object too large) are sticky: check
 * b->err once at the end.
 */
#ifndef AMBER_ACPI_AML_H
#define AMBER_ACPI_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct aml_buf {
	uint8_t *data;
	size_t len, cap;
	int err;			/* first error (-errno), sticky */
};

/* AML opcodes used by the encoder and its tests (§20.3). */
#define AML_ZERO_OP          0x00
#define AML_ONE_OP           0x01
#define AML_NAME_OP          0x08
#define AML_BYTE_PREFIX      0x0a
#define AML_WORD_PREFIX      0x0b
#define AML_DWORD_PREFIX     0x0c
#define AML_STRING_PREFIX    0x0d
#define AML_QWORD_PREFIX     0x0e
#define AML_SCOPE_OP         0x10
#define AML_BUFFER_OP        0x11
#define AML_PACKAGE_OP       0x12
#define AML_VAR_PACKAGE_OP   0x13
#define AML_DUAL_NAME_PREFIX 0x2e
#define AML_MULTI_NAME_PREFIX 0x2f
#define AML_EXT_OP_PREFIX    0x5b
#define AML_DEVICE_OP        0x82	/* after AML_EXT_OP_PREFIX */
#define AML_ROOT_CHAR        0x5c
#define AML_PARENT_CHAR      0x5e
#define AML_ONES_OP          0xff

/* Largest value a PkgLength can encode (4 bytes, 28 bits). */
#define AML_PKGLEN_MAX       0x0fffffff

void aml_buf_init(struct aml_buf *b);
void aml_buf_free(struct aml_buf *b);
/* Hand the bytes over to the caller (who frees them); b is left empty. */
uint8_t *aml_buf_steal(struct aml_buf *b, size_t *len);

void aml_append(struct aml_buf *b, const void *p, size_t n);
void aml_byte(struct aml_buf *b, uint8_t v);
void aml_le(struct aml_buf *b, uint64_t v, unsigned nbytes);	/* little endian */

/*
 * PkgLength (§20.2.4) for an object whose body (what follows the PkgLength)
 * is body_len bytes: writes 1-4 bytes to out and returns how many, or
 * -E2BIG if it cannot be encoded. The encoded value counts itself.
 */
int aml_pkglen_encode(uint8_t out[4], size_t body_len);

/* Integer in its shortest form: Zero, One, Ones, Byte/Word/DWord/QWord. */
void aml_integer(struct aml_buf *b, uint64_t v);
/* String: StringPrefix, ASCII (0x01-0x7f), NUL. */
void aml_string(struct aml_buf *b, const char *s);
/* Compressed EISA ID (e.g. "PNP0A03") as a DWord constant, like EisaId(). */
void aml_eisaid(struct aml_buf *b, const char *id);
/*
 * NameString (§20.2.2) from ASL syntax: "\\_SB.PCI0", "^FOO", "_HID".
 * Segments shorter than 4 characters are padded with '_'.
 */
void aml_namestring(struct aml_buf *b, const char *path);

/* Name(name, ...): NameOp and the NameString; the caller appends the value. */
void aml_name(struct aml_buf *b, const char *name);
void aml_name_integer(struct aml_buf *b, const char *name, uint64_t v);
void aml_name_string(struct aml_buf *b, const char *name, const char *s);
void aml_name_eisaid(struct aml_buf *b, const char *name, const char *id);

/* Nested objects; close each with aml_end() (buffers with aml_buffer_end()). */
size_t aml_scope_begin(struct aml_buf *b, const char *path);
size_t aml_device_begin(struct aml_buf *b, const char *name);
/* Package(nelem) for nelem <= 255, VarPackage otherwise. */
size_t aml_package_begin(struct aml_buf *b, unsigned nelem);
void aml_end(struct aml_buf *b, size_t tok);
size_t aml_buffer_begin(struct aml_buf *b);
void aml_buffer_end(struct aml_buf *b, size_t tok);

/* ResourceTemplate(): a Buffer whose bytes end with an End Tag (§6.4.2.9). */
size_t aml_restemplate_begin(struct aml_buf *b);
void aml_restemplate_end(struct aml_buf *b, size_t tok);

/* Resource descriptors (§6.4). */
/* IO(Decode16, min, max, align, len) — §6.4.2.5 */
void aml_res_io(struct aml_buf *b, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
/* IRQNoFlags(){irq} — §6.4.2.1, irq 0-15 */
void aml_res_irq_noflags(struct aml_buf *b, unsigned irq);
/* Memory32Fixed(ReadWrite/ReadOnly, base, len) — §6.4.3.4 */
void aml_res_mem32_fixed(struct aml_buf *b, bool rw, uint32_t base, uint32_t len);

/* Extended Interrupt descriptor flags (§6.4.3.6) */
#define AML_INT_CONSUMER     0x01
#define AML_INT_EDGE         0x02
#define AML_INT_ACTIVE_LOW   0x04
#define AML_INT_SHARED       0x08
#define AML_INT_WAKE         0x10
/* Interrupt(ResourceConsumer, ...){gsi} — §6.4.3.6 */
void aml_res_interrupt(struct aml_buf *b, uint8_t flags, uint32_t gsi);

/* Address space descriptors (§6.4.3.5): ResourceProducer, MinFixed, MaxFixed, PosDecode. */
enum aml_mem_cache {
	AML_NONCACHEABLE = 0,
	AML_CACHEABLE = 1,
	AML_WRITECOMBINING = 2,
	AML_PREFETCHABLE = 3,
};
/* WordBusNumber(..., min, max) */
void aml_res_word_bus(struct aml_buf *b, uint16_t min, uint16_t max);
/* WordIO(..., EntireRange, min, max) */
void aml_res_word_io(struct aml_buf *b, uint16_t min, uint16_t max);
/* DWordIO(..., EntireRange, min, max) */
void aml_res_dword_io(struct aml_buf *b, uint32_t min, uint32_t max);
/* DWordMemory(..., cache, ReadWrite, min, max) */
void aml_res_dword_mem(struct aml_buf *b, enum aml_mem_cache cache, uint32_t min, uint32_t max);
/* QWordMemory(..., cache, ReadWrite, min, max) */
void aml_res_qword_mem(struct aml_buf *b, enum aml_mem_cache cache, uint64_t min, uint64_t max);

#endif
