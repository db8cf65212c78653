/*
 * MADT (§5.2.12): one local APIC per CPU, the IOAPIC at GSI 0, QEMU's
 * interrupt source overrides and the LINT1 NMI.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "acpi/acpi_int.h"

/* Interrupt Controller Structure types (§5.2.12 Table 5.21) */
#define MADT_LOCAL_APIC      0
#define MADT_IO_APIC         1
#define MADT_INT_OVERRIDE    2
#define MADT_LOCAL_APIC_NMI  4
#define MADT_LOCAL_X2APIC    9
#define MADT_LOCAL_X2APIC_NMI 10

#define MADT_PCAT_COMPAT     1	/* dual 8259s are present (masked by the OS) */
#define MADT_LAPIC_ENABLED   1

/* MPS INTI flags (§5.2.12.5 Table 5.26) */
#define MPS_POLARITY_HIGH    0x1
#define MPS_TRIGGER_LEVEL    0xc

/* UID 0xff / 0xffffffff in an NMI structure means all processors. */
#define MADT_ALL_CPUS_UID    0xff

/*
 * A CPU needs a Local x2APIC structure if its APIC ID does not fit the 8-bit
 * field (0xff is the broadcast ID) or its UID would collide with "all".
 */
static bool madt_cpu_is_x2apic(const struct acpi_config *cfg, int i)
{
	return cfg->apic_ids[i] >= 0xff || i >= MADT_ALL_CPUS_UID;
}

int acpi_build_madt(const struct acpi_config *cfg, struct acpi_table *out)
{
	size_t len = ACPI_HEADER_LEN + 8;
	bool any_x2apic = false;
	uint8_t *t, *p;

	for (int i = 0; i < cfg->ncpus; i++) {
		if (madt_cpu_is_x2apic(cfg, i)) {
			len += 16;
			any_x2apic = true;
		} else {
			len += 8;
		}
	}
	len += 12 + 2 * 10 + 6 + (any_x2apic ? 12 : 0);
	t = calloc(1, len);
	if (!t)
		return -ENOMEM;
	acpi_header_init(t, "APIC", (uint32_t)len, 5);
	acpi_put32(t + 36, (uint32_t)cfg->lapic_addr);
	acpi_put32(t + 40, MADT_PCAT_COMPAT);
	p = t + 44;

	for (int i = 0; i < cfg->ncpus; i++) {
		if (madt_cpu_is_x2apic(cfg, i)) {
			/* §5.2.12.12 Processor Local x2APIC Structure */
			p[0] = MADT_LOCAL_X2APIC;
			p[1] = 16;
			acpi_put32(p + 4, cfg->apic_ids[i]);
			acpi_put32(p + 8, MADT_LAPIC_ENABLED);
			acpi_put32(p + 12, (uint32_t)i);
			p += 16;
		} else {
			/* §5.2.12.2 Processor Local APIC Structure */
			p[0] = MADT_LOCAL_APIC;
			p[1] = 8;
			p[2] = (uint8_t)i;		/* ACPI processor UID */
			p[3] = (uint8_t)cfg->apic_ids[i];
			acpi_put32(p + 4, MADT_LAPIC_ENABLED);
			p += 8;
		}
	}

	/* §5.2.12.3 I/O APIC Structure */
	p[0] = MADT_IO_APIC;
	p[1] = 12;
	p[2] = cfg->ioapic_id;
	acpi_put32(p + 4, (uint32_t)cfg->ioapic_addr);
	acpi_put32(p + 8, 0);			/* GSI base */
	p += 12;

	/*
	 * §5.2.12.5 Interrupt Source Overrides, as on QEMU's pc: the PIT
	 * (ISA IRQ 0) is wired to IOAPIC pin 2, edge, bus-conforming polarity;
	 * the SCI is level-triggered, active high.
	 */
	p[0] = MADT_INT_OVERRIDE;
	p[1] = 10;
	p[2] = 0;				/* bus: ISA */
	p[3] = 0;				/* source IRQ */
	acpi_put32(p + 4, 2);			/* GSI */
	acpi_put16(p + 8, 0);			/* conforms to the bus: edge, high */
	p += 10;
	p[0] = MADT_INT_OVERRIDE;
	p[1] = 10;
	p[2] = 0;
	p[3] = cfg->sci_irq;
	acpi_put32(p + 4, cfg->sci_irq);
	acpi_put16(p + 8, MPS_POLARITY_HIGH | MPS_TRIGGER_LEVEL);
	p += 10;

	/* §5.2.12.7 Local APIC NMI: LINT1 of every CPU, bus-conforming flags. */
	p[0] = MADT_LOCAL_APIC_NMI;
	p[1] = 6;
	p[2] = MADT_ALL_CPUS_UID;
	acpi_put16(p + 3, 0);
	p[5] = 1;				/* LINT1 */
	p += 6;
	if (any_x2apic) {
		/* §5.2.12.13 Local x2APIC NMI for the CPUs listed as x2APIC */
		p[0] = MADT_LOCAL_X2APIC_NMI;
		p[1] = 12;
		acpi_put16(p + 2, 0);
		acpi_put32(p + 4, 0xffffffff);
		p[8] = 1;			/* LINT1 */
		p += 12;
	}
	out->data = t;
	out->len = len;
	return 0;
}
