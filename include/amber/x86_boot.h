/*
 * Direct Linux boot on x86: the E820 map, the bzImage 64-bit boot protocol
 * (Documentation/arch/x86/boot.rst) and PVH ELF kernels (xen/arch-x86/hvm/start_info.h).
 */
#ifndef AMBER_X86_BOOT_H
#define AMBER_X86_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amber/mem.h"

#define E820_RAM      1
#define E820_RESERVED 2
#define E820_ACPI     3
#define E820_NVS      4
#define E820_MAX      128

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

/* Low-memory layout used for direct boot (all below 1 MiB). */
#define BOOT_GDT_ADDR        0x500
#define BOOT_START_INFO_ADDR 0x6000	/* PVH hvm_start_info + memmap */
#define BOOT_PARAMS_ADDR     0x7000	/* Linux "zero page" */
#define BOOT_PML4_ADDR       0x9000
#define BOOT_PDPT_ADDR       0xa000
#define BOOT_PD_ADDR         0xb000	/* 4 pages: identity map of 4 GiB */
#define BOOT_CMDLINE_ADDR    0x20000
#define BOOT_CMDLINE_MAX     0x10000
#define BOOT_EBDA_START      0x9fc00
#define BOOT_ACPI_ADDR       0xe0000	/* ACPI tables, RSDP first (BIOS scan area) */
#define BOOT_ACPI_END        0x100000
#define BOOT_KERNEL_ADDR     0x100000

/*
 * Standard PC map for gm: low RAM to the EBDA, reserved EBDA + BIOS area
 * (ACPI tables live there), RAM from 1 MiB to the PCI hole, RAM above
 * 4 GiB. Returns the number of entries or -ENOSPC.
 */
int e820_build(const struct guest_mem *gm, struct e820_entry *tab, int max);

enum kernel_kind { KERNEL_BZIMAGE, KERNEL_PVH };

/* Identify a kernel file; 0 with *kind set, or -EINVAL with a reason. */
int boot_probe_kernel(const char *path, enum kernel_kind *kind, char *err, size_t errlen);

struct boot_info {
	enum kernel_kind kind;
	uint64_t entry;		/* 64-bit entry (bzImage) or 32-bit PVH entry */
	uint64_t params;	/* boot_params (rsi) or hvm_start_info (ebx) */
};

/*
 * Load kernel (+ initrd, cmdline) into guest RAM and build boot_params /
 * start_info, the E820 map and, for 64-bit entry, GDT and identity page
 * tables. rsdp: guest address of the ACPI RSDP (0 if none).
 */
int boot_load_linux(const struct guest_mem *gm, const char *kernel, const char *initrd,
		    const char *cmdline, uint64_t rsdp, struct boot_info *out,
		    char *err, size_t errlen);

#endif
