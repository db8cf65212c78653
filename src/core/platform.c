/*
 * Machine assembly. The PC platform is a list of device instances created by
 * class name; nothing here knows a device's internals.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amber/acpi.h"
#include "amber/checkpoint.h"
#include "amber/device.h"
#include "amber/log.h"
#include "amber/nvme.h"
#include "amber/platform.h"
#include "amber/vm.h"
#include "amber/vm_gdb.h"
#include "amber/vm_stats.h"
#include "amber/x86_boot.h"
#include "amber/x86_kvm.h"

struct platform_dev {
	const char *cls;
	const char *id;
	char args[512];
};

static int platform_add(struct vm *vm, const char *cls, const char *id, const char *args,
			char *err, size_t errlen)
{
	return device_create(&vm->machine, cls, id, args, NULL, err, errlen);
}

/* ACPI tables for direct kernel boot, at BOOT_ACPI_ADDR; returns the RSDP address. */
static int platform_acpi(struct vm *vm, uint64_t *rsdp, char *err, size_t errlen)
{
	struct acpi_config *ac = calloc(1, sizeof(*ac));
	struct acpi_tables t;
	uint8_t *dst = gmem_ptr(&vm->machine.mem, BOOT_ACPI_ADDR, BOOT_ACPI_END - BOOT_ACPI_ADDR);
	int ret;

	if (!ac || !dst) {
		free(ac);
		return -ENOMEM;
	}
	memset(&t, 0, sizeof(t));
	acpi_config_init(ac, vm->ncpus);
	ac->com1 = true;
	ac->rtc = true;
	ac->i8042 = true;
	ac->fw_cfg = vm->cfg->firmware != NULL;
	ac->fw_cfg_dma = ac->fw_cfg;
	/*
	 * No ACPI PM timer for direct Linux boot (optional since ACPI 5.0A,
	 * like QEMU microvm and Firecracker): Linux keeps kvm-clock/TSC anyway,
	 * but to register the acpi_pm clocksource it first spins 4.5 ms in
	 * udelay()s and reads the timer ~100 times, each a VM exit to amber
	 * (drivers/clocksource/acpi_pm.c, init_acpi_pm_clocksource). The PM
	 * device still decodes the register, and firmware boots
	 * (platform_fw.c) keep it in their tables: OVMF's timer uses it.
	 */
	ac->pm_tmr_port = 0;
	ret = acpi_build(ac, &t);
	free(ac);
	if (ret < 0) {
		snprintf(err, errlen, "building the ACPI tables: %s", strerror(-ret));
		return ret;
	}
	ret = acpi_place(&t, BOOT_ACPI_ADDR, dst, BOOT_ACPI_END - BOOT_ACPI_ADDR, rsdp);
	acpi_tables_free(&t);
	if (ret < 0)
		snprintf(err, errlen, "placing the ACPI tables: %s", strerror(-ret));
	return ret;
}

/*
 * --disk nvme:PATH[,ro][,serial=S][,ctrl=NAME][,direct]: disks naming the same
 * controller become its namespaces 1..N in command-line order; the first
 * disk of a controller creates it (and gives its serial number).
 */
static int platform_disks(struct vm *vm, char *err, size_t errlen)
{
	struct vm_config *cfg = vm->cfg;

	for (int i = 0; i < cfg->ndisks; i++) {
		struct disk_config *d = &cfg->disks[i];
		struct device *dev = device_find(&vm->machine, d->ctrl);
		char args[1024];
		int ret;

		if (dev) {
			if (strcmp(dev->cls->name, "nvme") != 0) {
				snprintf(err, errlen, "--disk %s: ctrl=%s names a %s device, not an NVMe controller",
					 d->path, d->ctrl, dev->cls->name);
				return -EINVAL;
			}
			ret = nvme_add_namespace_opts(dev, d->path, d->readonly, d->direct, err, errlen);
			if (ret < 0)
				return ret;
			continue;
		}
		if (strchr(d->path, ',')) {
			snprintf(err, errlen, "--disk %s: paths with commas are not supported", d->path);
			return -EINVAL;
		}
		snprintf(args, sizeof(args), "path=%s%s%s%s%s", d->path, d->readonly ? ",ro" : "",
			 d->serial ? ",serial=" : "", d->serial ? d->serial : "",
			 d->direct ? ",direct" : "");
		ret = platform_add(vm, "nvme", d->ctrl, args, err, errlen);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int platform_build(struct vm *vm, char *err, size_t errlen)
{
	struct vm_config *cfg = vm->cfg;
	char args[512];
	struct boot_info bi;
	uint64_t rsdp = 0;
	int ret;

	ret = platform_add(vm, "pci_host", "pci0", NULL, err, errlen);
	if (!ret)
		ret = platform_add(vm, "acpi_pm", "pm", NULL, err, errlen);
	if (!ret) {
		snprintf(args, sizeof(args), "port=0x3f8,irq=4,chardev=%s", cfg->serial ? cfg->serial : "stdio");
		ret = platform_add(vm, "uart16550", "com1", args, err, errlen);
	}
	if (!ret) {
		snprintf(args, sizeof(args), "mem=%llu,cpus=%d", (unsigned long long)cfg->memory, cfg->cpus);
		ret = platform_add(vm, "rtc", "rtc", args, err, errlen);
	}
	if (!ret)
		ret = platform_add(vm, "i8042", "i8042", NULL, err, errlen);
	if (!ret)
		ret = platform_disks(vm, err, errlen);
	if (ret)
		return ret;
	vm_stats_mark("devices");

	/* With --firmware the tables go through fw_cfg (platform_fw.c) only. */
	/* A restored guest's RAM already holds its tables and kernel. */
	ret = cfg->firmware || vm->restore_doc ? 0 : platform_acpi(vm, &rsdp, err, errlen);
	if (ret < 0)
		return ret;
	if (cfg->kernel && !cfg->firmware && !vm->restore_doc) {
		ret = boot_load_linux(&vm->machine.mem, cfg->kernel, cfg->initrd, cfg->cmdline, rsdp,
				      &bi, err, errlen);
		if (ret < 0)
			return ret;
		ret = kvm_setup_boot_regs(vm->vcpus[0].fd, &bi);
		if (ret < 0) {
			snprintf(err, errlen, "setting the boot registers: %s", strerror(-ret));
			return ret;
		}
		vm->entry_rip = bi.entry;
		vm_stats_mark("ACPI, kernel, initrd");
	}
	/*
	 * --firmware (image, fw_cfg, ACPI through the table loader) and
	 * --debugcon: src/core/platform_fw.c. After every device, so the ACPI
	 * tables it builds describe them all.
	 */
	ret = platform_firmware_setup(vm, err, errlen);
	if (ret < 0)
		return ret;
	return 0;
}

void vm_register_extra_commands(struct vm *vm)
{
	vm_gdb_register_commands(vm);	/* "gdbserver": src/core/vm_gdb.c */
	checkpoint_register_commands(vm);	/* "checkpoint": src/core/checkpoint.c */
}
