/*
 * The fw_cfg ACPI table loader, in the format of QEMU's
 * hw/acpi/bios-linker-loader.c, as consumed by OVMF
 * (OvmfPkg/AcpiPlatformDxe/QemuFwCfgAcpi.c) and SeaBIOS
 * (src/fw/romfile_loader.c):
 *
 *   "etc/acpi/tables"   FACS, DSDT, FADT, MADT, ..., RSDT, XSDT
 *   "etc/acpi/rsdp"     the RSDP (allocated in the F segment for SeaBIOS,
 *                       which finds it by scanning 0xE0000-0xFFFFF)
 *   "etc/table-loader"  128-byte commands:
 *       ALLOCATE     file[56], align u32, zone u8
 *       ADD_POINTER  dest_file[56], src_file[56], offset u32, size u8:
 *                    dest[offset..+size] += address of src_file
 *       ADD_CHECKSUM file[56], offset u32, start u32, length u32:
 *                    file[offset] -= sum(file[start..+length])
 *
 * Constraints from the consumers: every pointer value before relocation is
 * an offset inside the source file (OVMF rejects others); checksum fields
 * are 0 in the files (OVMF stores the checksum of the range, counting the
 * field); files are allocated before any command names them; OVMF installs
 * whatever an ADD_POINTER targets that looks like a table with a valid
 * checksum (or a FACS), skipping RSDT/XSDT, so the FADT's FACS/DSDT
 * pointers must be ADD_POINTER commands too.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "acpi/acpi_int.h"

static const char *const loader_file_name[] = {
	[ACPI_FILE_TABLES] = ACPI_FWCFG_TABLES,
	[ACPI_FILE_RSDP] = ACPI_FWCFG_RSDP,
};

/* Entry layout (little endian, packed). */
#define LE_COMMAND           0
#define LE_ALLOC_FILE        4
#define LE_ALLOC_ALIGN       60
#define LE_ALLOC_ZONE        64
#define LE_PTR_DEST_FILE     4
#define LE_PTR_SRC_FILE      60
#define LE_PTR_OFFSET        116
#define LE_PTR_SIZE          120
#define LE_CKSUM_FILE        4
#define LE_CKSUM_OFFSET      60
#define LE_CKSUM_START       64
#define LE_CKSUM_LENGTH      68

static void loader_put_name(uint8_t *p, const char *name)
{
	/* zero-filled entry: at most 55 characters keeps it NUL-terminated */
	strncpy((char *)p, name, ACPI_LOADER_FILESZ - 1);
}

static void loader_allocate(uint8_t *e, const char *file, uint32_t align, uint8_t zone)
{
	acpi_put32(e + LE_COMMAND, ACPI_LOADER_ALLOCATE);
	loader_put_name(e + LE_ALLOC_FILE, file);
	acpi_put32(e + LE_ALLOC_ALIGN, align);
	e[LE_ALLOC_ZONE] = zone;
}

static void loader_command(uint8_t *e, const struct acpi_link_cmd *c)
{
	acpi_put32(e + LE_COMMAND, c->kind);
	if (c->kind == ACPI_LOADER_ADD_POINTER) {
		loader_put_name(e + LE_PTR_DEST_FILE, loader_file_name[c->file]);
		loader_put_name(e + LE_PTR_SRC_FILE, loader_file_name[c->src_file]);
		acpi_put32(e + LE_PTR_OFFSET, c->off);
		e[LE_PTR_SIZE] = c->size;
	} else {
		loader_put_name(e + LE_CKSUM_FILE, loader_file_name[c->file]);
		acpi_put32(e + LE_CKSUM_OFFSET, c->off);
		acpi_put32(e + LE_CKSUM_START, c->start);
		acpi_put32(e + LE_CKSUM_LENGTH, c->len);
	}
}

int acpi_build_fwcfg(const struct acpi_tables *t, struct acpi_fwcfg_files *out)
{
	struct acpi_fwcfg_file *ld = &out->f[ACPI_FWCFG_FILE_LOADER];
	struct acpi_layout l;
	size_t n = 0;
	uint8_t *e;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = acpi_layout_build(t, &l);
	if (ret)
		return ret;
	e = calloc(2 + l.ncmd, ACPI_LOADER_ENTRY_SIZE);
	if (!e) {
		acpi_layout_free(&l);
		return -ENOMEM;
	}
	/*
	 * The tables go anywhere below 4 GiB (64-aligned for the FACS at
	 * offset 0); the RSDP in the F segment where SeaBIOS and legacy OSes
	 * scan for it. OVMF ignores the zone and builds its own RSDP.
	 */
	loader_allocate(e + ACPI_LOADER_ENTRY_SIZE * n++, ACPI_FWCFG_TABLES, 64,
			ACPI_LOADER_ZONE_HIGH);
	loader_allocate(e + ACPI_LOADER_ENTRY_SIZE * n++, ACPI_FWCFG_RSDP, 16,
			ACPI_LOADER_ZONE_FSEG);
	for (size_t i = 0; i < l.ncmd; i++)
		loader_command(e + ACPI_LOADER_ENTRY_SIZE * n++, &l.cmd[i]);

	for (int i = ACPI_FILE_TABLES; i <= ACPI_FILE_RSDP; i++) {
		strcpy(out->f[i].name, loader_file_name[i]);
		out->f[i].data = l.file[i];
		out->f[i].size = l.size[i];
		l.file[i] = NULL;	/* ownership moves to out */
	}
	strcpy(ld->name, ACPI_FWCFG_LOADER);
	ld->data = e;
	ld->size = n * ACPI_LOADER_ENTRY_SIZE;
	acpi_layout_free(&l);
	return 0;
}

void acpi_fwcfg_files_free(struct acpi_fwcfg_files *f)
{
	for (int i = 0; i < ACPI_FWCFG_NFILES; i++)
		free(f->f[i].data);
	memset(f, 0, sizeof(*f));
}
