/*
 * ACPI power management: the PIIX4 PM function (PCI 00:01.3, 8086:7113) with
 * the ACPI fixed hardware registers (ACPI 6.x §4.8) and the GPE0 block.
 * These are the facts the ACPI tables (FADT, DSDT, MADT) must state so the
 * guest and the device model agree.
 */
#ifndef AMBER_ACPI_PM_H
#define AMBER_ACPI_PM_H

#include <stdint.h>

#include "amber/machine.h"

struct device;

/*
 * Register block at PMBA (PORT_ACPI_PM_BASE = 0x600 from power-on, also
 * with firmware: SeaBIOS writes 0x600 again and OVMF keeps a PMBA that is
 * already enabled, so a FADT saying 0x600 stays right). ACPI_PM_LEN bytes.
 */
#define ACPI_PM1_EVT_OFF     0x00	/* PM1a_EVT_BLK: PM1_STS (2) + PM1_EN (2) */
#define ACPI_PM1_EVT_LEN     4
#define ACPI_PM1_CNT_OFF     0x04	/* PM1a_CNT_BLK */
#define ACPI_PM1_CNT_LEN     2
#define ACPI_PM_TMR_OFF      0x08	/* PM_TMR_BLK: 24-bit (FADT TMR_VAL_EXT = 0) */
#define ACPI_PM_TMR_LEN      4
#define ACPI_PM_TMR_HZ       3579545
#define ACPI_GPE0_LEN        4		/* at PORT_ACPI_GPE0: GPE0_STS (2) + GPE0_EN (2) */

/* PM1_STS / PM1_EN bits (ACPI 6.x §4.8.3.1) */
#define ACPI_PM1_TMR_STS     0x0001
#define ACPI_PM1_BM_STS      0x0010
#define ACPI_PM1_GBL_STS     0x0020
#define ACPI_PM1_PWRBTN_STS  0x0100
#define ACPI_PM1_SLPBTN_STS  0x0200
#define ACPI_PM1_RTC_STS     0x0400
#define ACPI_PM1_WAK_STS     0x8000
#define ACPI_PM1_TMR_EN      0x0001
#define ACPI_PM1_GBL_EN      0x0020
#define ACPI_PM1_PWRBTN_EN   0x0100
#define ACPI_PM1_RTC_EN      0x0400

/* PM1_CNT bits (ACPI 6.x §4.8.3.2.1) */
#define ACPI_PM1_CNT_SCI_EN  0x0001	/* always set: FADT SMI_CMD = 0, no legacy mode */
#define ACPI_PM1_CNT_SLP_TYP_SHIFT 10
#define ACPI_PM1_CNT_SLP_TYP_MASK  (7 << 10)
#define ACPI_PM1_CNT_SLP_EN  0x2000

/*
 * Sleep type that powers off: the DSDT's \_S5 must be Package {0, 0, 0, 0}
 * (QEMU's PIIX4 value). Writing SLP_EN with this SLP_TYP requests
 * MACHINE_POWEROFF. Other sleep types (S1-S4) are not offered: the DSDT has
 * no _S1.._S4, and such a write is logged and ignored.
 */
#define ACPI_PM_SLP_TYP_S5   0

/*
 * SCI: GSI IRQ_ACPI_SCI (9), level triggered, active high (the MADT needs an
 * interrupt source override for IRQ 9 saying so; FADT SCI_INT = 9). It is
 * asserted while (PM1_STS & PM1_EN) or (GPE0_STS & GPE0_EN) has a bit set.
 */

/*
 * Set GPE0_STS bit `bit` (0..15) of the acpi_pm device and raise the SCI if
 * the guest enabled it (hotplug notifications). 0 or -EINVAL.
 */
int acpi_pm_raise_gpe(struct device *dev, unsigned bit);

#endif
