/*
 * DSDT (§5.2.11.1): the PCI host bridge with its windows and INTx routing,
 * the legacy ISA devices behind it, fw_cfg, processor devices and \_S5.
 * The AML is produced by src/acpi/aml.c; the equivalent ASL is shown in
 * the comments.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acpi/acpi_int.h"
#include "acpi/aml.h"
#include "amber/acpi_pm.h"
#include "amber/machine.h"
#include "amber/pci.h"

_Static_assert(ACPI_SLP_TYP_S5 == ACPI_PM_SLP_TYP_S5, "acpi.h and acpi_pm.h disagree on S5");

/*
 * Device (COMx) { _HID PNP0501, _UID n,
 *                 _CRS { IO (Decode16, port, port, 1, 8) IRQNoFlags () {irq} } }
 */
static void dsdt_add_uart(struct aml_buf *b, const char *name, unsigned uid, uint16_t port,
			  unsigned irq)
{
	size_t dev = aml_device_begin(b, name), res;

	aml_name_eisaid(b, "_HID", "PNP0501");
	aml_name_integer(b, "_UID", uid);
	aml_name(b, "_CRS");
	res = aml_restemplate_begin(b);
	aml_res_io(b, port, port, 0x01, 0x08);
	aml_res_irq_noflags(b, irq);
	aml_restemplate_end(b, res);
	aml_end(b, dev);
}

static void dsdt_add_isa(const struct acpi_config *cfg, struct aml_buf *b)
{
	size_t dev, res;

	if (cfg->com1)
		dsdt_add_uart(b, "COM1", 1, PORT_COM1, IRQ_COM1);
	if (cfg->com2)
		dsdt_add_uart(b, "COM2", 2, PORT_COM2, IRQ_COM2);

	if (cfg->rtc) {
		/* MC146818 RTC/CMOS: index/data ports 0x70-0x71, IRQ 8 */
		dev = aml_device_begin(b, "RTC");
		aml_name_eisaid(b, "_HID", "PNP0B00");
		aml_name(b, "_CRS");
		res = aml_restemplate_begin(b);
		aml_res_io(b, PORT_RTC, PORT_RTC, 0x01, 0x02);
		aml_res_irq_noflags(b, IRQ_RTC);
		aml_restemplate_end(b, res);
		aml_end(b, dev);
	}

	if (cfg->i8042) {
		/* 8042 keyboard controller: data 0x60, command/status 0x64, IRQ 1 */
		dev = aml_device_begin(b, "KBD");
		aml_name_eisaid(b, "_HID", "PNP0303");
		aml_name(b, "_CRS");
		res = aml_restemplate_begin(b);
		aml_res_io(b, PORT_I8042_DATA, PORT_I8042_DATA, 0x01, 0x01);
		aml_res_io(b, PORT_I8042_CMD, PORT_I8042_CMD, 0x01, 0x01);
		aml_res_irq_noflags(b, 1);
		aml_restemplate_end(b, res);
		aml_end(b, dev);
	}
	if (cfg->i8042 && cfg->ps2_mouse) {
		/* The 8042's auxiliary (mouse) port, IRQ 12 */
		dev = aml_device_begin(b, "MOU");
		aml_name_eisaid(b, "_HID", "PNP0F13");
		aml_name(b, "_CRS");
		res = aml_restemplate_begin(b);
		aml_res_irq_noflags(b, 12);
		aml_restemplate_end(b, res);
		aml_end(b, dev);
	}

	if (cfg->fw_cfg) {
		/*
		 * Like QEMU (hw/nvram/fw_cfg-acpi.c): Linux's qemu_fw_cfg
		 * driver binds to QEMU0002; _STA 0x0B hides it from UIs.
		 */
		dev = aml_device_begin(b, "FWCF");
		aml_name_string(b, "_HID", "QEMU0002");
		aml_name_integer(b, "_STA", 0x0b);
		aml_name(b, "_CRS");
		res = aml_restemplate_begin(b);
		aml_res_io(b, PORT_FW_CFG, PORT_FW_CFG, 0x01,
			   cfg->fw_cfg_dma ? PORT_FW_CFG_DMA + 8 - PORT_FW_CFG : 0x02);
		aml_restemplate_end(b, res);
		aml_end(b, dev);
	}
}

/*
 * _PRT (§6.2.13): every slot and pin routed straight to an IOAPIC input:
 * Package { 0xSSSSFFFF, pin, Zero, gsi } (source Zero = the index is a GSI).
 */
static void dsdt_add_prt(struct aml_buf *b)
{
	size_t prt;

	aml_name(b, "_PRT");
	prt = aml_package_begin(b, PCI_MAX_SLOTS * 4);
	for (unsigned slot = 0; slot < PCI_MAX_SLOTS; slot++) {
		for (unsigned pin = 0; pin < 4; pin++) {
			size_t e = aml_package_begin(b, 4);

			aml_integer(b, ((uint64_t)slot << 16) | 0xffff);
			aml_integer(b, pin);
			aml_integer(b, 0);
			aml_integer(b, PCI_INTX_GSI(slot, pin));
			aml_end(b, e);
		}
	}
	aml_end(b, prt);
}

static void dsdt_add_pci0(const struct acpi_config *cfg, struct aml_buf *b)
{
	size_t dev = aml_device_begin(b, "PCI0"), res;

	/*
	 * No _ADR next to the _HID (QEMU has both): §6.1 allows a device one
	 * or the other, and iasl warns about it.
	 */
	aml_name_eisaid(b, "_HID", "PNP0A03");
	aml_name_integer(b, "_BBN", 0);
	aml_name_integer(b, "_UID", 0);

	/*
	 * What the host bridge decodes (like QEMU's pc): bus 0-255, its own
	 * config ports, all I/O ports but those, the legacy VGA hole and the
	 * 32-bit (and optional 64-bit) BAR windows.
	 */
	aml_name(b, "_CRS");
	res = aml_restemplate_begin(b);
	aml_res_word_bus(b, 0x00, 0xff);
	aml_res_io(b, PORT_PCI_CONFIG, PORT_PCI_CONFIG, 0x01, 0x08);
	aml_res_word_io(b, 0x0000, PORT_PCI_CONFIG - 1);
	aml_res_word_io(b, PORT_PCI_CONFIG + 8, 0xffff);
	aml_res_dword_mem(b, AML_CACHEABLE, 0x000a0000, 0x000bffff);
	aml_res_dword_mem(b, AML_NONCACHEABLE, (uint32_t)cfg->pci_mmio32_base,
			  (uint32_t)cfg->pci_mmio32_end);
	if (cfg->pci_mmio64_base <= cfg->pci_mmio64_end)
		aml_res_qword_mem(b, AML_CACHEABLE, cfg->pci_mmio64_base, cfg->pci_mmio64_end);
	aml_restemplate_end(b, res);

	dsdt_add_prt(b);
	dsdt_add_isa(cfg, b);
	aml_end(b, dev);
}

/*
 * Device (Cnnn) { Name (_HID, "ACPI0007") Name (_UID, n) } (§8.4): the
 * processor objects whose _UID matches the MADT's processor UIDs.
 */
static void dsdt_add_cpus(const struct acpi_config *cfg, struct aml_buf *b)
{
	for (int i = 0; i < cfg->ncpus; i++) {
		char name[8];
		size_t dev;

		snprintf(name, sizeof(name), "C%03X", (unsigned)i & 0xfff);
		dev = aml_device_begin(b, name);
		aml_name_string(b, "_HID", "ACPI0007");
		aml_name_integer(b, "_UID", (uint64_t)i);
		aml_end(b, dev);
	}
}

int acpi_build_dsdt(const struct acpi_config *cfg, struct acpi_table *out)
{
	struct aml_buf b;
	uint8_t hdr[ACPI_HEADER_LEN] = { 0 };
	size_t sb, pkg;
	int ret;

	aml_buf_init(&b);
	aml_append(&b, hdr, sizeof(hdr));	/* filled in once the length is known */

	sb = aml_scope_begin(&b, "_SB");	/* \_SB, from the root scope */
	dsdt_add_pci0(cfg, &b);
	dsdt_add_cpus(cfg, &b);
	aml_end(&b, sb);

	/*
	 * §7.4.2.5 \_S5: SLP_TYPa, SLP_TYPb and two reserved values. PM1_CNT
	 * writes with this SLP_TYP and SLP_EN power the machine off.
	 */
	aml_name(&b, "_S5");	/* at the root scope */
	pkg = aml_package_begin(&b, 4);
	aml_integer(&b, ACPI_SLP_TYP_S5);
	aml_integer(&b, ACPI_SLP_TYP_S5);
	aml_integer(&b, 0);
	aml_integer(&b, 0);
	aml_end(&b, pkg);

	if (b.err) {
		ret = b.err;
		goto fail;
	}
	if (b.len > UINT32_MAX) {
		ret = -E2BIG;
		goto fail;
	}
	/* Revision 2: integers are 64 bits wide (§5.2.11.1). */
	acpi_header_init(b.data, "DSDT", (uint32_t)b.len, 2);
	out->data = aml_buf_steal(&b, &out->len);
	return 0;
fail:
	aml_buf_free(&b);
	return ret;
}
