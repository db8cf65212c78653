/*
 * ACPI tables: configuration defaults, building the fixed tables, linking
 * them with RSDT/XSDT/RSDP (a layout both placements share) and placing
 * them at a fixed guest address for direct kernel boot.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "acpi/acpi_int.h"
#include "amber/acpi_pm.h"
#include "amber/log.h"
#include "amber/machine.h"
#include "amber/pci.h"

_Static_assert(ACPI_PIIX4_PM1_EVT == ACPI_PM1_EVT_OFF && ACPI_PIIX4_PM1_CNT == ACPI_PM1_CNT_OFF &&
	       ACPI_PIIX4_PM_TMR == ACPI_PM_TMR_OFF, "acpi.h and acpi_pm.h disagree on the PM block");

void acpi_config_init(struct acpi_config *cfg, int ncpus)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->ncpus = ncpus;
	for (int i = 0; i < ACPI_MAX_CPUS; i++)
		cfg->apic_ids[i] = (uint32_t)i;
	cfg->lapic_addr = MMIO_LAPIC;
	cfg->ioapic_addr = MMIO_IOAPIC;
	cfg->ioapic_id = 0;		/* KVM's IOAPIC resets its ID register to 0 */
	cfg->pm1a_evt_port = PORT_ACPI_PM_BASE + ACPI_PM1_EVT_OFF;
	cfg->pm1a_cnt_port = PORT_ACPI_PM_BASE + ACPI_PM1_CNT_OFF;
	cfg->pm_tmr_port = PORT_ACPI_PM_BASE + ACPI_PM_TMR_OFF;
	cfg->pm_tmr_32bit = false;	/* the PM timer is 24-bit */
	cfg->gpe0_port = PORT_ACPI_GPE0;
	cfg->gpe0_len = ACPI_GPE0_LEN;
	cfg->sci_irq = IRQ_ACPI_SCI;
	cfg->rtc_century = 0x32;	/* IBM PC/AT CMOS century byte, as QEMU's mc146818 */
	cfg->com1 = cfg->rtc = cfg->i8042 = true;
	cfg->com2 = cfg->ps2_mouse = false;
	cfg->fw_cfg = cfg->fw_cfg_dma = true;
	cfg->pci_mmio32_base = PCI_MMIO32_BASE;
	cfg->pci_mmio32_end = PCI_MMIO32_END;
	cfg->pci_mmio64_base = 1;	/* base > end: no 64-bit window */
	cfg->pci_mmio64_end = 0;
}

uint8_t acpi_checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	while (len--)
		sum = (uint8_t)(sum + *b++);
	return sum;
}

void acpi_header_init(uint8_t *h, const char sig[4], uint32_t len, uint8_t rev)
{
	memcpy(h, sig, 4);
	acpi_put32(h + 4, len);
	h[8] = rev;
	h[ACPI_HDR_CHECKSUM] = 0;
	memcpy(h + 10, ACPI_OEM_ID, 6);
	memcpy(h + 16, ACPI_OEM_TABLE_ID, 8);
	acpi_put32(h + 24, 1);		/* OEM revision */
	memcpy(h + 28, ACPI_CREATOR_ID, 4);
	acpi_put32(h + 32, 1);		/* creator revision */
}

static int acpi_config_check(const struct acpi_config *cfg)
{
	const char *why = NULL;

	if (cfg->ncpus < 1 || cfg->ncpus > ACPI_MAX_CPUS)
		why = "ncpus out of range";
	else if (cfg->pci_mmio32_base > cfg->pci_mmio32_end || cfg->pci_mmio32_end > UINT32_MAX)
		why = "32-bit PCI window is empty or above 4 GiB";
	else if (cfg->pci_mmio64_base <= cfg->pci_mmio64_end && cfg->pci_mmio64_base == 0 &&
		 cfg->pci_mmio64_end == UINT64_MAX)
		why = "64-bit PCI window covers all addresses";
	else if (cfg->lapic_addr > UINT32_MAX || cfg->ioapic_addr > UINT32_MAX)
		why = "APIC address above 4 GiB";
	else if (cfg->gpe0_len & 1)
		why = "GPE0 block length must be even";
	else if (cfg->sci_irq > 15)
		why = "SCI must be an ISA IRQ";
	if (why) {
		log_error("acpi", "configuration (%d CPUs): %s", cfg->ncpus, why);
		return -EINVAL;
	}
	for (int i = 0; i < cfg->ncpus; i++) {
		for (int j = 0; j < i; j++) {
			if (cfg->apic_ids[i] == cfg->apic_ids[j]) {
				log_error("acpi", "configuration: CPUs %d and %d share APIC ID %u",
					  j, i, cfg->apic_ids[i]);
				return -EINVAL;
			}
		}
	}
	return 0;
}

int acpi_build(const struct acpi_config *cfg, struct acpi_tables *out)
{
	int ret;

	memset(out, 0, sizeof(*out));
	ret = acpi_config_check(cfg);
	if (ret)
		return ret;
	ret = acpi_build_facs(&out->t[ACPI_FACS]);
	if (ret)
		goto fail;
	ret = acpi_build_dsdt(cfg, &out->t[ACPI_DSDT]);
	if (ret)
		goto fail;
	ret = acpi_build_fadt(cfg, &out->t[ACPI_FADT]);
	if (ret)
		goto fail;
	ret = acpi_build_madt(cfg, &out->t[ACPI_MADT]);
	if (ret)
		goto fail;
	out->n = ACPI_NUM_FIXED;
	return 0;
fail:
	acpi_tables_free(out);
	return ret;
}

int acpi_tables_add(struct acpi_tables *t, const void *table, size_t len)
{
	uint8_t *p;

	if (len < ACPI_HEADER_LEN || acpi_get((const uint8_t *)table + 4, 4) != len)
		return -EINVAL;
	if (t->n >= ACPI_MAX_TABLES)
		return -ENOSPC;
	p = malloc(len);
	if (!p)
		return -ENOMEM;
	memcpy(p, table, len);
	t->t[t->n].data = p;
	t->t[t->n].len = len;
	t->n++;
	return 0;
}

void acpi_tables_free(struct acpi_tables *t)
{
	for (int i = 0; i < ACPI_MAX_TABLES; i++)
		free(t->t[i].data);
	memset(t, 0, sizeof(*t));
}

static void layout_ptr(struct acpi_layout *l, uint8_t file, uint32_t off, uint8_t size,
		       uint8_t src_file, uint32_t target)
{
	struct acpi_link_cmd *c = &l->cmd[l->ncmd++];

	*c = (struct acpi_link_cmd){ .kind = ACPI_LOADER_ADD_POINTER, .file = file,
				     .src_file = src_file, .size = size, .off = off };
	if (size == 8)
		acpi_put64(l->file[file] + off, target);
	else
		acpi_put32(l->file[file] + off, target);
}

static void layout_csum(struct acpi_layout *l, uint8_t file, uint32_t off, uint32_t start,
			uint32_t len)
{
	struct acpi_link_cmd *c = &l->cmd[l->ncmd++];

	*c = (struct acpi_link_cmd){ .kind = ACPI_LOADER_ADD_CHECKSUM, .file = file,
				     .off = off, .start = start, .len = len };
	l->file[file][off] = 0;
}

static size_t align_up(size_t v, size_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/*
 * Tables file: FACS at offset 0 (64-byte aligned, §5.2.10, with the file
 * allocated 64-aligned, like QEMU), DSDT, FADT, MADT, extras, RSDT, XSDT,
 * each 8-aligned. Commands come in QEMU's order: a table's pointers, then
 * its checksum; RSDT/XSDT after the tables they list; the RSDP last.
 */
int acpi_layout_build(const struct acpi_tables *t, struct acpi_layout *l)
{
	int nsdt = t->n - 2;		/* every table but FACS and DSDT */
	size_t off = 0, rsdt_len, xsdt_len;
	uint8_t *tb, *rsdp;

	memset(l, 0, sizeof(*l));
	if (t->n < ACPI_NUM_FIXED || t->n > ACPI_MAX_TABLES ||
	    t->t[ACPI_FACS].len < ACPI_FACS_LEN || t->t[ACPI_FADT].len < ACPI_FADT_LEN)
		return -EINVAL;
	for (int i = 0; i < t->n; i++) {
		if (!t->t[i].data || t->t[i].len < ACPI_HEADER_LEN)
			return -EINVAL;
		l->table_off[i] = (uint32_t)off;
		off = align_up(off + t->t[i].len, 8);
	}
	rsdt_len = ACPI_HEADER_LEN + 4 * (size_t)nsdt;
	xsdt_len = ACPI_HEADER_LEN + 8 * (size_t)nsdt;
	l->rsdt_off = (uint32_t)off;
	off = align_up(off + rsdt_len, 8);
	l->xsdt_off = (uint32_t)off;
	off += xsdt_len;
	if (off > UINT32_MAX)
		return -E2BIG;

	tb = calloc(1, off);
	rsdp = calloc(1, ACPI_RSDP_LEN);
	if (!tb || !rsdp) {
		free(tb);
		free(rsdp);
		return -ENOMEM;
	}
	l->file[ACPI_FILE_TABLES] = tb;
	l->size[ACPI_FILE_TABLES] = off;
	l->file[ACPI_FILE_RSDP] = rsdp;
	l->size[ACPI_FILE_RSDP] = ACPI_RSDP_LEN;

	for (int i = 0; i < t->n; i++) {
		uint32_t o = l->table_off[i];

		memcpy(tb + o, t->t[i].data, t->t[i].len);
		if (i == ACPI_FACS)
			continue;	/* no checksum */
		if (i == ACPI_FADT) {
			/* §5.2.9: FIRMWARE_CTRL and X_FIRMWARE_CTRL are exclusive. */
			acpi_put64(tb + o + FADT_X_FIRMWARE_CTRL, 0);
			layout_ptr(l, ACPI_FILE_TABLES, o + FADT_FIRMWARE_CTRL, 4,
				   ACPI_FILE_TABLES, l->table_off[ACPI_FACS]);
			layout_ptr(l, ACPI_FILE_TABLES, o + FADT_DSDT, 4,
				   ACPI_FILE_TABLES, l->table_off[ACPI_DSDT]);
			layout_ptr(l, ACPI_FILE_TABLES, o + FADT_X_DSDT, 8,
				   ACPI_FILE_TABLES, l->table_off[ACPI_DSDT]);
		}
		layout_csum(l, ACPI_FILE_TABLES, o + ACPI_HDR_CHECKSUM, o, (uint32_t)t->t[i].len);
	}

	/* §5.2.7 RSDT and §5.2.8 XSDT: everything but the FACS and the DSDT. */
	acpi_header_init(tb + l->rsdt_off, "RSDT", (uint32_t)rsdt_len, 1);
	acpi_header_init(tb + l->xsdt_off, "XSDT", (uint32_t)xsdt_len, 1);
	for (int k = 0, i = ACPI_FADT; i < t->n; i++, k++)
		layout_ptr(l, ACPI_FILE_TABLES, l->rsdt_off + ACPI_HEADER_LEN + 4 * k, 4,
			   ACPI_FILE_TABLES, l->table_off[i]);
	layout_csum(l, ACPI_FILE_TABLES, l->rsdt_off + ACPI_HDR_CHECKSUM, l->rsdt_off,
		    (uint32_t)rsdt_len);
	for (int k = 0, i = ACPI_FADT; i < t->n; i++, k++)
		layout_ptr(l, ACPI_FILE_TABLES, l->xsdt_off + ACPI_HEADER_LEN + 8 * k, 8,
			   ACPI_FILE_TABLES, l->table_off[i]);
	layout_csum(l, ACPI_FILE_TABLES, l->xsdt_off + ACPI_HDR_CHECKSUM, l->xsdt_off,
		    (uint32_t)xsdt_len);

	/* §5.2.5.3 RSDP, revision 2: checksum over 20 bytes, then over all 36. */
	memcpy(rsdp, "RSD PTR ", 8);
	memcpy(rsdp + 9, ACPI_OEM_ID, 6);
	rsdp[15] = 2;
	acpi_put32(rsdp + 20, ACPI_RSDP_LEN);
	layout_ptr(l, ACPI_FILE_RSDP, RSDP_RSDT, 4, ACPI_FILE_TABLES, l->rsdt_off);
	layout_ptr(l, ACPI_FILE_RSDP, RSDP_XSDT, 8, ACPI_FILE_TABLES, l->xsdt_off);
	layout_csum(l, ACPI_FILE_RSDP, RSDP_CHECKSUM, 0, RSDP_V1_LEN);
	layout_csum(l, ACPI_FILE_RSDP, RSDP_EXT_CHECKSUM, 0, ACPI_RSDP_LEN);
	return 0;
}

void acpi_layout_free(struct acpi_layout *l)
{
	free(l->file[0]);
	free(l->file[1]);
	memset(l, 0, sizeof(*l));
}

/* Direct placement: RSDP at base, the tables file at base + 64. */
#define ACPI_PLACE_TABLES_OFF 64

size_t acpi_place_size(const struct acpi_tables *t)
{
	struct acpi_layout l;
	size_t size;

	if (acpi_layout_build(t, &l))
		return 0;
	size = ACPI_PLACE_TABLES_OFF + l.size[ACPI_FILE_TABLES];
	acpi_layout_free(&l);
	return size;
}

int acpi_place(const struct acpi_tables *t, uint64_t base_gpa, uint8_t *dst, size_t dstlen,
	       uint64_t *rsdp_gpa)
{
	struct acpi_layout l;
	uint8_t *file[2];
	uint64_t base[2];
	size_t size;
	int ret;

	if (base_gpa & 63) {
		log_error("acpi", "table area at %#llx: must be 64-byte aligned for the FACS",
			  (unsigned long long)base_gpa);
		return -EINVAL;
	}
	ret = acpi_layout_build(t, &l);
	if (ret)
		return ret;
	size = ACPI_PLACE_TABLES_OFF + l.size[ACPI_FILE_TABLES];
	if (size > dstlen) {
		log_error("acpi", "table area at %#llx: %zu bytes needed, %zu available",
			  (unsigned long long)base_gpa, size, dstlen);
		ret = -ENOSPC;
		goto out;
	}
	/* RSDT entries, FIRMWARE_CTRL and DSDT are 32-bit pointers. */
	if (base_gpa + size > 0x100000000ULL) {
		log_error("acpi", "table area at %#llx: must end below 4 GiB",
			  (unsigned long long)base_gpa);
		ret = -ERANGE;
		goto out;
	}
	memset(dst, 0, ACPI_PLACE_TABLES_OFF);
	memcpy(dst, l.file[ACPI_FILE_RSDP], ACPI_RSDP_LEN);
	memcpy(dst + ACPI_PLACE_TABLES_OFF, l.file[ACPI_FILE_TABLES], l.size[ACPI_FILE_TABLES]);
	file[ACPI_FILE_RSDP] = dst;
	base[ACPI_FILE_RSDP] = base_gpa;
	file[ACPI_FILE_TABLES] = dst + ACPI_PLACE_TABLES_OFF;
	base[ACPI_FILE_TABLES] = base_gpa + ACPI_PLACE_TABLES_OFF;

	/* The same relocation the firmware's loader performs (see loader.c). */
	for (size_t i = 0; i < l.ncmd; i++) {
		const struct acpi_link_cmd *c = &l.cmd[i];
		uint8_t *p = file[c->file] + c->off;

		if (c->kind == ACPI_LOADER_ADD_POINTER) {
			uint64_t v = acpi_get(p, c->size) + base[c->src_file];

			for (unsigned k = 0; k < c->size; k++)
				p[k] = (uint8_t)(v >> (8 * k));
		} else {
			*p = (uint8_t)(*p - acpi_checksum(file[c->file] + c->start, c->len));
		}
	}
	*rsdp_gpa = base_gpa;
out:
	acpi_layout_free(&l);
	return ret;
}
