/*
 * FADT (§5.2.9) and FACS (§5.2.10): the fixed ACPI hardware of a PIIX4-like
 * PM block, always in ACPI mode (SMI_CMD = 0), reset through port 0xCF9.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "acpi/acpi_int.h"
#include "amber/acpi_pm.h"
#include "amber/machine.h"

/* FADT Flags (§5.2.9 Table 5.10) */
#define FADT_F_WBINVD                 (1u << 0)
#define FADT_F_PROC_C1                (1u << 2)
#define FADT_F_PWR_BUTTON             (1u << 4)	/* 1 = control method / none */
#define FADT_F_SLP_BUTTON             (1u << 5)	/* 1 = control method / none */
#define FADT_F_TMR_VAL_EXT            (1u << 8)
#define FADT_F_RESET_REG_SUP          (1u << 10)
#define FADT_F_USE_PLATFORM_CLOCK     (1u << 15)
#define FADT_F_FORCE_APIC_CLUSTER     (1u << 18)

/* IA-PC boot architecture flags (§5.2.9.3 Table 5.11) */
#define FADT_BOOT_LEGACY_DEVICES      (1u << 0)
#define FADT_BOOT_8042                (1u << 1)
#define FADT_BOOT_CMOS_RTC_NOT_PRESENT (1u << 5)

/* Generic Address Structure (§5.2.3.2) */
#define GAS_SPACE_IO   1
#define GAS_ACCESS_BYTE  1
#define GAS_ACCESS_WORD  2
#define GAS_ACCESS_DWORD 3

static void acpi_put_gas(uint8_t *p, uint8_t space, uint8_t bits, uint8_t access, uint64_t addr)
{
	p[0] = space;
	p[1] = bits;
	p[2] = 0;		/* bit offset */
	p[3] = access;
	acpi_put64(p + 4, addr);
}

int acpi_build_facs(struct acpi_table *out)
{
	uint8_t *f = calloc(1, ACPI_FACS_LEN);

	if (!f)
		return -ENOMEM;
	memcpy(f, "FACS", 4);
	acpi_put32(f + 4, ACPI_FACS_LEN);
	/* hardware signature, waking vectors, global lock, flags: 0 */
	f[32] = 2;		/* version (§5.2.10 Table 5.14) */
	out->data = f;
	out->len = ACPI_FACS_LEN;
	return 0;
}

int acpi_build_fadt(const struct acpi_config *cfg, struct acpi_table *out)
{
	uint8_t *f = calloc(1, ACPI_FADT_LEN);
	uint32_t flags;
	uint16_t boot = 0;

	if (!f)
		return -ENOMEM;
	acpi_header_init(f, "FACP", ACPI_FADT_LEN, 6);
	/* 36 FIRMWARE_CTRL, 40 DSDT: filled by the linker */
	f[45] = 0;				/* Preferred_PM_Profile: unspecified */
	acpi_put16(f + 46, cfg->sci_irq);	/* SCI_INT */
	/*
	 * 48 SMI_CMD = 0 and ACPI_ENABLE/ACPI_DISABLE = 0: "the system does
	 * not support a transition to legacy mode", i.e. the PM device starts
	 * in ACPI mode with SCI_EN set (§4.8.2.1, §5.2.9).
	 */
	acpi_put32(f + 56, cfg->pm1a_evt_port);	/* PM1a_EVT_BLK */
	acpi_put32(f + 64, cfg->pm1a_cnt_port);	/* PM1a_CNT_BLK */
	acpi_put32(f + 76, cfg->pm_tmr_port);	/* PM_TMR_BLK */
	acpi_put32(f + 80, cfg->gpe0_port);	/* GPE0_BLK */
	f[88] = ACPI_PM1_EVT_LEN;		/* PM1_EVT_LEN */
	f[89] = ACPI_PM1_CNT_LEN;		/* PM1_CNT_LEN */
	/* PM_TMR_LEN: 0 = no PM timer (optional since ACPI 5.0A, §5.2.9: pm_tmr_port 0) */
	f[91] = cfg->pm_tmr_port ? ACPI_PM_TMR_LEN : 0;
	f[92] = cfg->gpe0_len;			/* GPE0_BLK_LEN */
	acpi_put16(f + 96, 0x0fff);		/* P_LVL2_LAT > 100: no C2 */
	acpi_put16(f + 98, 0x0fff);		/* P_LVL3_LAT > 1000: no C3 */
	f[108] = cfg->rtc ? cfg->rtc_century : 0;	/* CENTURY */

	if (cfg->com1 || cfg->com2 || cfg->rtc || cfg->i8042)
		boot |= FADT_BOOT_LEGACY_DEVICES;
	if (cfg->i8042)
		boot |= FADT_BOOT_8042;
	if (!cfg->rtc)
		boot |= FADT_BOOT_CMOS_RTC_NOT_PRESENT;
	acpi_put16(f + 109, boot);		/* IAPC_BOOT_ARCH */

	/*
	 * Power button is a fixed feature (PWR_BUTTON clear: PWRBTN_STS in
	 * PM1_STS); there is no sleep button. Like QEMU: C1 via HLT, WBINVD
	 * works, the OS may use the platform clock; with more than 8 CPUs
	 * flat logical APIC mode does not fit, so ask for cluster mode.
	 */
	flags = FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_SLP_BUTTON | FADT_F_RESET_REG_SUP;
	if (cfg->pm_tmr_port)
		flags |= FADT_F_USE_PLATFORM_CLOCK;	/* the PM timer is that clock */
	if (cfg->pm_tmr_port && cfg->pm_tmr_32bit)
		flags |= FADT_F_TMR_VAL_EXT;
	if (cfg->ncpus > 8)
		flags |= FADT_F_FORCE_APIC_CLUSTER;
	acpi_put32(f + 112, flags);

	/* RESET_REG: write 0x06 (SYS_RST | RST_CPU) to the PIIX 0xCF9 register. */
	acpi_put_gas(f + 116, GAS_SPACE_IO, 8, GAS_ACCESS_BYTE, PORT_RESET_CF9);
	f[128] = 0x06;				/* RESET_VALUE */
	f[131] = 0;				/* FADT minor version: 6.0 */
	/* 132 X_FIRMWARE_CTRL stays 0: FIRMWARE_CTRL is used (the FACS is below 4 GiB). */
	/* 140 X_DSDT: filled by the linker */
	/* X_ blocks: the same registers; PM1 registers are 16-bit, the timer 32-bit */
	acpi_put_gas(f + 148, GAS_SPACE_IO, ACPI_PM1_EVT_LEN * 8, GAS_ACCESS_WORD,
		     cfg->pm1a_evt_port);
	acpi_put_gas(f + 172, GAS_SPACE_IO, ACPI_PM1_CNT_LEN * 8, GAS_ACCESS_WORD,
		     cfg->pm1a_cnt_port);
	if (cfg->pm_tmr_port)	/* else an all-zero X_PM_TMR_BLK: no timer */
		acpi_put_gas(f + 208, GAS_SPACE_IO, ACPI_PM_TMR_LEN * 8, GAS_ACCESS_DWORD,
			     cfg->pm_tmr_port);
	acpi_put_gas(f + 220, GAS_SPACE_IO, (uint8_t)(cfg->gpe0_len * 8), GAS_ACCESS_BYTE,
		     cfg->gpe0_port);
	/* 244 SLEEP_CONTROL_REG, 256 SLEEP_STATUS_REG: hardware-reduced only */
	out->data = f;
	out->len = ACPI_FADT_LEN;
	return 0;
}
