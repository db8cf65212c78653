/* The E820 memory map of the PC layout amber builds. */
#include <errno.h>

#include "amber/x86_boot.h"

static int e820_add(struct e820_entry *tab, int n, int max, uint64_t addr, uint64_t size, uint32_t type)
{
	if (size == 0)
		return n;
	if (n >= max)
		return -ENOSPC;
	tab[n] = (struct e820_entry){ addr, size, type };
	return n + 1;
}

int e820_build(const struct guest_mem *gm, struct e820_entry *tab, int max)
{
	uint64_t low_end = 0;
	int n = 0;

	for (int i = 0; i < gm->nslots; i++)
		if (gm->slots[i].gpa == 0)
			low_end = gm->slots[i].size;
	if (low_end < BOOT_ACPI_END)
		return -EINVAL;
	n = e820_add(tab, n, max, 0, BOOT_EBDA_START, E820_RAM);
	if (n >= 0)
		n = e820_add(tab, n, max, BOOT_EBDA_START, 0xa0000 - BOOT_EBDA_START, E820_RESERVED);
	/* 0xa0000-0xdffff: VGA hole and option ROMs, not RAM, not listed. */
	if (n >= 0)
		n = e820_add(tab, n, max, BOOT_ACPI_ADDR, BOOT_ACPI_END - BOOT_ACPI_ADDR, E820_RESERVED);
	if (n >= 0)
		n = e820_add(tab, n, max, BOOT_ACPI_END, low_end - BOOT_ACPI_END, E820_RAM);
	for (int i = 0; i < gm->nslots && n >= 0; i++)
		if (gm->slots[i].gpa >= GMEM_HIGH_START)
			n = e820_add(tab, n, max, gm->slots[i].gpa, gm->slots[i].size, E820_RAM);
	return n;
}
