/* Internals shared by the files of src/acpi/ (and its unit tests). */
#ifndef AMBER_ACPI_INT_H
#define AMBER_ACPI_INT_H

#include <stddef.h>
#include <stdint.h>

#include "amber/acpi.h"

#define ACPI_HEADER_LEN      36
#define ACPI_RSDP_LEN        36	/* revision 2 (§5.2.5.3) */
#define ACPI_FACS_LEN        64
#define ACPI_FADT_LEN        276	/* revision 6 (§5.2.9) */

/* FADT fields the linker fills (§5.2.9 Table 5.9). */
#define FADT_FIRMWARE_CTRL   36
#define FADT_DSDT            40
#define FADT_X_FIRMWARE_CTRL 132
#define FADT_X_DSDT          140

/* RSDP fields (§5.2.5.3). */
#define RSDP_CHECKSUM        8
#define RSDP_RSDT            16
#define RSDP_XSDT            24
#define RSDP_EXT_CHECKSUM    32
#define RSDP_V1_LEN          20

#define ACPI_HDR_CHECKSUM    9

int acpi_build_facs(struct acpi_table *out);
int acpi_build_fadt(const struct acpi_config *cfg, struct acpi_table *out);
int acpi_build_madt(const struct acpi_config *cfg, struct acpi_table *out);
int acpi_build_dsdt(const struct acpi_config *cfg, struct acpi_table *out);

static inline void acpi_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void acpi_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void acpi_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t acpi_get(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/*
 * The tables linked together, independent of where they end up: two files
 * (the tables blob and the RSDP) in which every pointer holds the offset of
 * its target inside the target's file and every checksum field is 0, and
 * the list of commands that relocate pointers and compute checksums, in the
 * order they must run. acpi_place() runs them for a fixed address; the
 * fw_cfg loader hands them to the firmware as ADD_POINTER/ADD_CHECKSUM.
 */
enum { ACPI_FILE_TABLES = ACPI_FWCFG_FILE_TABLES, ACPI_FILE_RSDP = ACPI_FWCFG_FILE_RSDP };

struct acpi_link_cmd {
	uint8_t kind;			/* ACPI_LOADER_ADD_POINTER or _ADD_CHECKSUM */
	uint8_t file;			/* file patched */
	uint8_t src_file;		/* pointer: file pointed into */
	uint8_t size;			/* pointer: 1, 2, 4 or 8 bytes */
	uint32_t off;			/* pointer field or checksum byte */
	uint32_t start, len;		/* checksum range */
};

#define ACPI_LINK_MAX_CMDS   (8 + 4 * ACPI_MAX_TABLES)

struct acpi_layout {
	uint8_t *file[2];
	size_t size[2];
	uint32_t table_off[ACPI_MAX_TABLES];	/* offset of each table in the tables file */
	uint32_t rsdt_off, xsdt_off;
	struct acpi_link_cmd cmd[ACPI_LINK_MAX_CMDS];
	size_t ncmd;
};

int acpi_layout_build(const struct acpi_tables *t, struct acpi_layout *l);
void acpi_layout_free(struct acpi_layout *l);

#endif
