/*
 * Booting through unmodified firmware (Debian's OVMF.fd and SeaBIOS
 * bios-256k.bin), the way QEMU's pc machine presents it:
 *
 * - The image is mapped read-only at the top of 4 GiB (KVM_MEM_READONLY:
 *   the guest's writes become MMIO exits that nothing claims, so they are
 *   dropped, as writes to QEMU's "pc.bios" ROM are; OVMF's flash probe then
 *   reports "FD behaves as ROM" and keeps its variables in RAM).
 *
 * - Legacy BIOS area. QEMU also maps the image's last 128 KiB read-only at
 *   0xE0000-0xFFFFF ("isa-bios") and lets the i440FX PAM registers switch
 *   0xC0000-0xFFFFF between that ROM and RAM. SeaBIOS (src/fw/shadow.c)
 *   enables RAM there, copies itself from the high alias and runs from RAM
 *   with its data in 0xE0000-0xFFFFF from then on. amber skips the switch:
 *   0xC0000-0xFFFFF stays ordinary RAM (part of the low memslot) and holds
 *   the image's last 128 KiB from the start, i.e. the state after SeaBIOS
 *   shadowed itself. SeaBIOS's copy is then a copy of identical bytes, and
 *   its final "make read-only" PAM write has no effect (the PAM bytes are
 *   plain registers in pci_host.c): the guest OS may write there, which no
 *   OS relies on either way. The area is RAM, so checkpoints save it.
 *
 * - fw_cfg carries what QEMU's pc gives the firmware: machine items and
 *   etc/e820 (src/hw/fw_cfg_x86.c), the ACPI tables through etc/table-loader
 *   (not also placed in low memory), the kernel items for --kernel, the
 *   linuxboot_dma.bin option ROM SeaBIOS needs for --kernel (Debian's, from
 *   qemu-system-data), bootorder, etc/boot-fail-wait and --fw-cfg files.
 *
 * - The boot vCPU starts at the reset vector in KVM's reset state; APs wait
 *   for INIT-SIPI in the in-kernel LAPIC as on hardware.
 *
 * - Restore (amber run --restore): the same setup runs, so the image is
 *   mapped at 4 GiB - size again and fw_cfg holds the same items, rebuilt
 *   from the saved configuration (the restored guest may read either; fw_cfg
 *   then loads its selector and offset). Only RAM is left alone: it comes
 *   from the checkpoint, loaded after this.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "amber/acpi.h"
#include "amber/device.h"
#include "amber/fw_cfg.h"
#include "amber/log.h"
#include "amber/pci.h"
#include "amber/platform.h"
#include "amber/vm.h"
#include "amber/x86_kvm.h"

/*
 * SeaBIOS loads --kernel through this option ROM (QEMU pc-bios/optionrom/
 * linuxboot_dma.c), which amber does not build: it offers Debian's copy
 * from qemu-system-data. OVMF loads the kernel by itself.
 */
#define LINUXBOOT_DMA_PATH   "/usr/share/qemu/linuxboot_dma.bin"
#define LINUXBOOT_DMA_FWCFG  "genroms/linuxboot_dma.bin"
#define OPTION_ROM_MAX       (1u << 20)
#define FWCFG_USER_FILE_MAX  (64u << 20)
/* "/pci@i0cf8/pci8086,5845@1f,7/namespace@ffffffff,0" and some room */
#define FWCFG_DISK_PATH_MAX  64
/*
 * etc/boot-fail-wait: how long SeaBIOS waits after "No bootable device"
 * before it reboots (default 60 s). amber makes it 5 s, so a VM that cannot
 * boot ends soon (with --on-reboot exit amber then exits).
 */
#define BOOT_FAIL_WAIT_MS    5000
#define RESET_VECTOR         0xfffffff0ULL
#define MSR_MTRR_DEF_TYPE    0x2ff	/* SDM Vol. 3A §11.11.2.1 IA32_MTRR_DEF_TYPE */

/* The firmware image at 4 GiB - size, and its last 128 KiB at 1 MiB - 128 KiB. */
static int platform_fw_map_image(struct vm *vm, char *err, size_t errlen)
{
	const char *path = vm->cfg->firmware;
	void *img, *rom;
	size_t size, isa;
	int ret;

	ret = firmware_image_load(path, &img, &size, err, errlen);
	if (ret < 0)
		return ret;
	rom = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (rom == MAP_FAILED) {
		ret = -errno;
		snprintf(err, errlen, "firmware %s: cannot map %zu bytes: %s", path, size, strerror(errno));
		free(img);
		return ret;
	}
	memcpy(rom, img, size);
	mprotect(rom, size, PROT_READ);
	/* The mapping lives as long as the process: KVM reads it until the VM ends. */
	ret = kvm_map_rom(vm->kvm_fd, vm->vm_fd, KVM_SLOT_FIRMWARE, GMEM_HIGH_START - size, rom, size,
			  err, errlen);
	if (ret < 0)
		goto out;
	/*
	 * A restored guest's legacy BIOS area is the RAM in its checkpoint,
	 * whatever the firmware or the OS made of it. Writing the image there
	 * first would show through wherever that RAM was zero: those pages are
	 * holes in memory.bin, which --restore-mode copy does not write.
	 */
	if (vm->restore_doc)
		goto out;
	isa = size < FIRMWARE_ISA_BIOS_SIZE ? size : FIRMWARE_ISA_BIOS_SIZE;
	ret = gmem_write(&vm->machine.mem, 0x100000 - isa, (uint8_t *)img + size - isa, isa);
	if (ret < 0)
		snprintf(err, errlen, "firmware %s: no RAM below 1 MiB for the legacy BIOS area", path);
out:
	free(img);
	return ret;
}

/*
 * The same tables as direct boot (platform.c platform_acpi builds them with
 * these settings), handed to the firmware's table loader instead.
 */
static int platform_fw_acpi(struct vm *vm, struct device *fw, char *err, size_t errlen)
{
	struct acpi_config *ac = calloc(1, sizeof(*ac));
	struct acpi_fwcfg_files files;
	struct acpi_tables t;
	int ret;

	memset(&t, 0, sizeof(t));
	memset(&files, 0, sizeof(files));
	if (!ac)
		return -ENOMEM;
	acpi_config_init(ac, vm->ncpus);
	ac->com1 = true;
	ac->rtc = true;
	ac->i8042 = true;
	ac->fw_cfg = true;
	ac->fw_cfg_dma = true;
	/* Where the firmware puts BARs (QEMU's _CRS covers the same). */
	fw_cfg_x86_pci_windows(&vm->machine.mem, &ac->pci_mmio32_base, &ac->pci_mmio64_base,
			       &ac->pci_mmio64_end);
	ret = acpi_build(ac, &t);
	if (ret < 0) {
		snprintf(err, errlen, "building the ACPI tables: %s", strerror(-ret));
		goto out;
	}
	ret = acpi_build_fwcfg(&t, &files);
	if (ret < 0) {
		snprintf(err, errlen, "building the ACPI table loader: %s", strerror(-ret));
		goto out;
	}
	for (int i = 0; i < ACPI_FWCFG_NFILES && ret == 0; i++) {
		ret = fw_cfg_add_file_take(fw, files.f[i].name, files.f[i].data, files.f[i].size);
		files.f[i].data = NULL;
		if (ret < 0)
			snprintf(err, errlen, "fw_cfg file %s: %s", files.f[i].name, strerror(-ret));
	}
out:
	acpi_fwcfg_files_free(&files);
	acpi_tables_free(&t);
	free(ac);
	return ret;
}

/* A host file as an fw_cfg file. */
static int platform_fw_add_host_file(struct device *fw, const char *what, const char *name,
				     const char *path, size_t max, char *err, size_t errlen)
{
	void *data;
	size_t len;
	int ret;

	ret = fw_cfg_read_host_file(what, path, max, &data, &len, err, errlen);
	if (ret < 0)
		return ret;
	ret = fw_cfg_add_file_take(fw, name, data, len);
	if (ret < 0)
		snprintf(err, errlen, "%s %s: fw_cfg file %s: %s", what, path, name,
			 ret == -EEXIST ? "name already used" :
			 ret == -ENOSPC ? "no free fw_cfg file slot" : strerror(-ret));
	return ret;
}

/*
 * A --boot-order element naming an NVMe controller, "CTRL" or "CTRL:NSID"
 * (the ctrl= name of --disk, default nvme0; namespace 1 by default), as the
 * OpenFirmware path both firmwares match (QEMU's bootindex form):
 *
 *   /pci@i0cf8/pci8086,5845@SLOT[,FN]/namespace@NSID,0
 *
 * SeaBIOS (boot.c bootprio_find_pci_device) matches the prefix
 * "/pci@i0cf8/\*@SLOT" whatever the node name. OVMF (QemuBootOrderLib
 * TranslatePciOfwNodes) translates NVMe only under the node name of QEMU's
 * Intel-ID controller, pci8086,5845, to PciRoot(0x0)/Pci(SLOT,FN)/
 * NVMe(NSID,EUI-64); the unit address after the NSID is the EUI-64, which
 * amber's namespaces report as 0. Neither firmware compares PCI IDs, so the
 * name fits amber's 1b36:0010 controller too. Returns the length written.
 */
static int platform_fw_disk_path(struct vm *vm, const char *elem, size_t n, char *out,
				 size_t outlen, char *err, size_t errlen)
{
	char name[sizeof(((struct device *)0)->id)];
	const char *colon = memchr(elem, ':', n);
	size_t nlen = colon ? (size_t)(colon - elem) : n;
	unsigned long nsid = 1;
	struct device *dev;
	struct pci_dev *pd = NULL;
	int nns = 0;

	if (nlen == 0 || nlen >= sizeof(name))
		goto bad;
	memcpy(name, elem, nlen);
	name[nlen] = '\0';
	if (colon) {
		char num[12], *end;
		size_t len = n - nlen - 1;

		if (len == 0 || len >= sizeof(num))
			goto bad;
		memcpy(num, colon + 1, len);
		num[len] = '\0';
		nsid = strtoul(num, &end, 10);
		if (*end || nsid == 0)
			goto bad;
	}
	dev = device_find(&vm->machine, name);
	if (!dev || strcmp(dev->cls->name, "nvme") != 0) {
		snprintf(err, errlen, "--boot-order %.*s: %s is not an NVMe controller of --disk "
			 "(ctrl=NAME, default nvme0), and not an OpenFirmware path (/...)",
			 (int)n, elem, name);
		return -EINVAL;
	}
	for (int i = 0; i < vm->cfg->ndisks; i++)
		nns += !strcmp(vm->cfg->disks[i].ctrl, name);
	if (nsid > (unsigned long)nns) {
		snprintf(err, errlen, "--boot-order %.*s: controller %s has %d namespace%s",
			 (int)n, elem, name, nns, nns == 1 ? "" : "s");
		return -EINVAL;
	}
	for (unsigned devfn = 0; devfn < PCI_MAX_DEVFN && !pd; devfn++) {
		struct pci_dev *d = pci_bus_get(vm->machine.pci, devfn);

		if (d && d->name && !strcmp(d->name, dev->id))
			pd = d;
	}
	if (!pd) {
		snprintf(err, errlen, "--boot-order %.*s: %s is on no PCI slot", (int)n, elem, name);
		return -ENODEV;
	}
	if (pd->devfn & 7)
		return snprintf(out, outlen, "/pci@i0cf8/pci8086,5845@%x,%x/namespace@%lx,0",
				pd->devfn >> 3, pd->devfn & 7, nsid);
	return snprintf(out, outlen, "/pci@i0cf8/pci8086,5845@%x/namespace@%lx,0", pd->devfn >> 3,
			nsid);
bad:
	snprintf(err, errlen, "--boot-order %.*s: expected an NVMe controller name with an "
		 "optional namespace number (nvme0, nvme0:2) or an OpenFirmware path (/...)",
		 (int)n, elem);
	return -EINVAL;
}

/*
 * "bootorder": OpenFirmware device paths separated by newlines, NUL at the
 * end (QEMU get_boot_devices_list). --kernel puts the linuxboot ROM first,
 * as QEMU does (bootindex 0); --boot-order adds its comma-separated
 * elements after it: OpenFirmware paths (starting with '/') as they are,
 * NVMe controller names as platform_fw_disk_path() spells them. With a
 * bootorder file, OVMF drops the PCI boot options it does not name, and
 * SeaBIOS tries the named ones first.
 */
static int platform_fw_bootorder(struct vm *vm, struct device *fw, bool linuxboot,
				 char *err, size_t errlen)
{
	const char *user = vm->cfg->boot_order;
	size_t cap = 64, len = 0;
	char *list;
	int ret;

	/* Each element at most once its length plus a translated disk path. */
	for (const char *p = user; p && *p; p++)
		cap += *p == ',' ? 2 * FWCFG_DISK_PATH_MAX : 1;
	cap += user ? FWCFG_DISK_PATH_MAX : 0;
	list = calloc(1, cap);
	if (!list)
		return -ENOMEM;
	if (linuxboot)
		len += (size_t)snprintf(list, cap, "/rom@%s", LINUXBOOT_DMA_FWCFG);
	for (const char *p = user; p && *p;) {
		size_t n = strcspn(p, ",");

		if (n) {
			if (len)
				list[len++] = '\n';
			if (p[0] == '/') {
				memcpy(list + len, p, n);
				len += n;
			} else {
				ret = platform_fw_disk_path(vm, p, n, list + len, cap - len, err, errlen);
				if (ret >= 0 && (size_t)ret >= cap - len) {
					snprintf(err, errlen, "--boot-order: list too long");
					ret = -ENOSPC;
				}
				if (ret < 0) {
					free(list);
					return ret;
				}
				len += (size_t)ret;
			}
		}
		p += n + (p[n] == ',');
	}
	if (!len) {
		free(list);
		return 0;
	}
	list[len++] = '\0';
	ret = fw_cfg_add_file_take(fw, "bootorder", list, len);
	if (ret < 0)
		snprintf(err, errlen, "fw_cfg file bootorder: %s", strerror(-ret));
	return ret;
}

static int platform_fw_kernel(struct vm *vm, struct device *fw, bool *linuxboot,
			      char *err, size_t errlen)
{
	const struct vm_config *cfg = vm->cfg;
	uint64_t below_4g = 0;
	int ret;

	*linuxboot = false;
	for (int i = 0; i < vm->machine.mem.nslots; i++)
		if (vm->machine.mem.slots[i].gpa == 0)
			below_4g = vm->machine.mem.slots[i].size;
	ret = fw_cfg_x86_add_linux(fw, cfg->kernel, cfg->initrd, cfg->cmdline, below_4g, err, errlen);
	if (ret < 0)
		return ret;
	if (access(LINUXBOOT_DMA_PATH, R_OK) < 0) {
		log_warn("firmware", "%s: %s; SeaBIOS cannot boot --kernel without it "
			 "(Debian package qemu-system-data); OVMF does not need it",
			 LINUXBOOT_DMA_PATH, strerror(errno));
		return 0;
	}
	ret = platform_fw_add_host_file(fw, "option ROM", LINUXBOOT_DMA_FWCFG, LINUXBOOT_DMA_PATH,
					OPTION_ROM_MAX, err, errlen);
	*linuxboot = ret == 0;
	return ret;
}

int platform_firmware_setup(struct vm *vm, char *err, size_t errlen)
{
	struct vm_config *cfg = vm->cfg;
	struct machine *m = &vm->machine;
	struct device *fw;
	bool linuxboot = false;
	uint32_t wait = BOOT_FAIL_WAIT_MS;
	char args[512];
	int ret;

	if (cfg->debugcon) {
		snprintf(args, sizeof(args), "chardev=%s", cfg->debugcon);
		ret = device_create(m, "debugcon", "debugcon", args, NULL, err, errlen);
		if (ret < 0)
			return ret;
	}
	if (!cfg->firmware)
		return 0;

	ret = platform_fw_map_image(vm, err, errlen);
	if (ret < 0)
		return ret;
	ret = device_create(m, "fw_cfg", "fw_cfg", NULL, &fw, err, errlen);
	if (ret < 0)
		return ret;
	ret = fw_cfg_x86_add_machine(fw, &m->mem, vm->ncpus);
	if (ret < 0) {
		snprintf(err, errlen, "fw_cfg machine items: %s", strerror(-ret));
		return ret;
	}
	ret = platform_fw_acpi(vm, fw, err, errlen);
	if (ret < 0)
		return ret;
	if (cfg->kernel) {
		ret = platform_fw_kernel(vm, fw, &linuxboot, err, errlen);
		if (ret < 0)
			return ret;
	}
	ret = platform_fw_bootorder(vm, fw, linuxboot, err, errlen);
	if (ret < 0)
		return ret;
	wait = htole32(wait);
	ret = fw_cfg_add_file(fw, "etc/boot-fail-wait", &wait, sizeof(wait));
	if (ret < 0) {
		snprintf(err, errlen, "fw_cfg file etc/boot-fail-wait: %s", strerror(-ret));
		return ret;
	}
	for (int i = 0; i < cfg->nfwcfg; i++) {
		ret = platform_fw_add_host_file(fw, "--fw-cfg file", cfg->fwcfg[i].name,
						cfg->fwcfg[i].path, FWCFG_USER_FILE_MAX, err, errlen);
		if (ret < 0)
			return ret;
	}
	/*
	 * KVM's reset state: CS base 0xffff0000, IP 0xfff0. MTRRs as at power-on
	 * (disabled, default UC: OVMF asserts it), not as firmware leaves them
	 * for a direct kernel boot (kvm_create_vcpu).
	 */
	for (int i = 0; i < vm->ncpus; i++) {
		ret = kvm_set_msr(vm->vcpus[i].fd, MSR_MTRR_DEF_TYPE, 0);
		if (ret < 0) {
			snprintf(err, errlen, "vCPU %d: resetting IA32_MTRR_DEF_TYPE: %s", i, strerror(-ret));
			return ret;
		}
	}
	vm->entry_rip = RESET_VECTOR;
	return 0;
}
