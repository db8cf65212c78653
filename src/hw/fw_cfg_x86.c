/*
 * The fw_cfg items of an x86 PC, filled the way QEMU fills them for its pc
 * machine (hw/i386/fw_cfg.c fw_cfg_arch_create(), hw/i386/x86.c
 * x86_load_linux(), hw/i386/pc.c), so that OVMF and SeaBIOS, which read
 * them without knowing amber, find exactly what QEMU would give them. Also
 * the checks on a firmware image.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "amber/fw_cfg.h"

/* ---- host files --------------------------------------------------------- */

int fw_cfg_read_host_file(const char *what, const char *path, size_t max, void **data,
			  size_t *len, char *err, size_t errlen)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t done = 0;
	int fd, ret;

	*data = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s %s: cannot open: %s", what, path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		snprintf(err, errlen, "%s %s: not a regular file", what, path);
		goto fail;
	}
	if ((uint64_t)st.st_size > max) {
		ret = -EFBIG;
		snprintf(err, errlen, "%s %s: %lld bytes, more than the %zu bytes allowed", what, path,
			 (long long)st.st_size, max);
		goto fail;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		ret = -ENOMEM;
		snprintf(err, errlen, "%s %s: out of memory for %lld bytes", what, path,
			 (long long)st.st_size);
		goto fail;
	}
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			snprintf(err, errlen, "%s %s: read failed: %s", what, path,
				 n < 0 ? strerror(errno) : "file shrank while reading");
			goto fail;
		}
		done += (size_t)n;
	}
	close(fd);
	*data = buf;
	*len = done;
	return 0;
fail:
	free(buf);
	close(fd);
	return ret;
}

int firmware_image_load(const char *path, void **data, size_t *size, char *err, size_t errlen)
{
	struct stat st;

	*data = NULL;
	*size = 0;
	if (stat(path, &st) < 0) {
		int ret = -errno;

		snprintf(err, errlen, "firmware %s: %s", path, strerror(errno));
		return ret;
	}
	/* QEMU x86_bios_rom_init(): "bios_size % 65536 != 0" is refused too. */
	if (st.st_size <= 0 || st.st_size % FIRMWARE_SIZE_ALIGN) {
		snprintf(err, errlen,
			 "firmware %s: size %lld bytes is not a non-zero multiple of 64 KiB "
			 "(expected a flash image such as OVMF.fd or bios-256k.bin)",
			 path, (long long)st.st_size);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size > FIRMWARE_MAX_SIZE) {
		snprintf(err, errlen,
			 "firmware %s: %lld bytes, larger than the 16 MiB that fit below 4 GiB "
			 "above KVM's reserved pages at %#llx", path, (long long)st.st_size,
			 FW_CFG_X86_KVM_RESERVED_BASE);
		return -EFBIG;
	}
	return fw_cfg_read_host_file("firmware", path, FIRMWARE_MAX_SIZE, data, size, err, errlen);
}

/* ---- machine items ------------------------------------------------------ */

static int e820_put(struct e820_entry *tab, int n, int max, uint64_t addr, uint64_t size, uint32_t type)
{
	if (n < 0 || size == 0)
		return n;
	if (n >= max)
		return -ENOSPC;
	tab[n] = (struct e820_entry){ htole64(addr), htole64(size), htole32(type) };
	return n + 1;
}

int fw_cfg_x86_e820(const struct guest_mem *gm, struct e820_entry *tab, int max)
{
	int n = 0;

	n = e820_put(tab, n, max, FW_CFG_X86_KVM_RESERVED_BASE, FW_CFG_X86_KVM_RESERVED_SIZE,
		     E820_RESERVED);
	for (int i = 0; i < gm->nslots; i++)
		if (gm->slots[i].gpa < GMEM_HIGH_START)
			n = e820_put(tab, n, max, gm->slots[i].gpa, gm->slots[i].size, E820_RAM);
	for (int i = 0; i < gm->nslots; i++)
		if (gm->slots[i].gpa >= GMEM_HIGH_START)
			n = e820_put(tab, n, max, gm->slots[i].gpa, gm->slots[i].size, E820_RAM);
	return n;
}

int fw_cfg_x86_add_machine(struct device *dev, const struct guest_mem *gm, int ncpus)
{
	struct e820_entry tab[GMEM_MAX_SLOTS + 1];
	size_t numa_len = (size_t)(1 + ncpus) * 8;
	uint8_t *numa;
	int n, ret;

	if (ncpus < 1 || ncpus > 0xffff)
		return -EINVAL;
	n = fw_cfg_x86_e820(gm, tab, GMEM_MAX_SLOTS + 1);
	if (n < 0)
		return n;
	/* No NUMA nodes: node count 0, one zero per possible CPU (QEMU numa_fw_cfg). */
	numa = calloc(1, numa_len);
	if (!numa)
		return -ENOMEM;
	ret = fw_cfg_add_bytes_take(dev, FW_CFG_NUMA, numa, numa_len);
	if (!ret)
		ret = fw_cfg_add_i64(dev, FW_CFG_RAM_SIZE, gm->ram_size);
	/* APIC IDs are 0..ncpus-1, so QEMU's apic_id_limit is ncpus. */
	if (!ret)
		ret = fw_cfg_add_i16(dev, FW_CFG_NB_CPUS, (uint16_t)ncpus);
	if (!ret)
		ret = fw_cfg_add_i16(dev, FW_CFG_MAX_CPUS, (uint16_t)ncpus);
	if (!ret)
		ret = fw_cfg_add_i16(dev, FW_CFG_NOGRAPHIC, 1);
	/* SeaBIOS reads this as etc/show-boot-menu: 0 = no menu, no 2.5 s wait. */
	if (!ret)
		ret = fw_cfg_add_i16(dev, FW_CFG_BOOT_MENU, 0);
	/* KVM's in-kernel PIT/IOAPIC route IRQ0 to GSI 2 (an override). */
	if (!ret)
		ret = fw_cfg_add_i32(dev, FW_CFG_IRQ0_OVERRIDE, 1);
	if (!ret)
		ret = fw_cfg_add_file(dev, "etc/e820", tab, (size_t)n * sizeof(tab[0]));
	return ret;
}

#define SIZE_1G              (1ULL << 30)
#define OVMF_PCI64_SIZE      (32ULL << 30)	/* OVMF's default PcdPciMmio64Size */
#define ALIGN_UP(x, a)       (((x) + (a) - 1) & ~((a) - 1))

void fw_cfg_x86_pci_windows(const struct guest_mem *gm, uint64_t *mmio32_base,
			    uint64_t *mmio64_base, uint64_t *mmio64_end)
{
	uint64_t low_end = 0, high_end = GMEM_HIGH_START;

	for (int i = 0; i < gm->nslots; i++) {
		const struct gmem_slot *s = &gm->slots[i];

		if (s->gpa == 0)
			low_end = s->size;
		if (s->gpa >= GMEM_HIGH_START && s->gpa + s->size > high_end)
			high_end = s->gpa + s->size;
	}
	/* SeaBIOS i440fx_mem_addr_setup(): 2 or 3 GiB; OVMF: max(2 GiB, low RAM end). */
	*mmio32_base = low_end;
	/* SeaBIOS: RAM end rounded up to 1 GiB; OVMF: that, aligned to its aperture size. */
	*mmio64_base = ALIGN_UP(high_end, SIZE_1G);
	*mmio64_end = ALIGN_UP(*mmio64_base, OVMF_PCI64_SIZE) + OVMF_PCI64_SIZE - 1;
}

/* ---- Linux kernel for the firmware to load ------------------------------ */

/* Boot protocol header offsets (Documentation/arch/x86/boot.rst) */
#define HDR_SETUP_SECTS      0x1f1
#define HDR_VID_MODE         0x1fa
#define HDR_MAGIC            0x202	/* "HdrS" */
#define HDR_VERSION          0x206
#define HDR_TYPE_OF_LOADER   0x210
#define HDR_LOADFLAGS        0x211
#define  LOADED_HIGH         0x01
#define  CAN_USE_HEAP        0x80
#define HDR_RAMDISK_IMAGE    0x218
#define HDR_RAMDISK_SIZE     0x21c
#define HDR_HEAP_END_PTR     0x224
#define HDR_CMD_LINE_PTR     0x228
#define HDR_INITRD_ADDR_MAX  0x22c
#define HDR_XLOADFLAGS       0x236
#define  XLF_CAN_BE_LOADED_ABOVE_4G 0x02
#define HDR_OLD_CL_MAGIC     0x20
#define HDR_OLD_CL_OFFSET    0x22
#define HDR_SIZE             8192	/* what QEMU reads and patches */

#define KERNEL_FILE_MAX      (512ULL << 20)

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p) { return get16(p) | (uint32_t)get16(p + 2) << 16; }
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)v); put16(p + 2, (uint16_t)(v >> 16)); }

/* QEMU's "vga=" handling: normal, ext, ask or a number into vid_mode. */
static int linux_vga_mode(const char *cmdline, uint8_t *hdr, char *err, size_t errlen)
{
	const char *v = strstr(cmdline, "vga=");
	unsigned long mode;
	char *end;

	if (!v)
		return 0;
	v += 4;
	if (!strncmp(v, "normal", 6)) {
		mode = 0xffff;
	} else if (!strncmp(v, "ext", 3)) {
		mode = 0xfffe;
	} else if (!strncmp(v, "ask", 3)) {
		mode = 0xfffd;
	} else {
		errno = 0;
		mode = strtoul(v, &end, 0);
		if (end == v || errno || mode > 0xffff || (*end && *end != ' ')) {
			snprintf(err, errlen, "kernel command line: invalid vga= value");
			return -EINVAL;
		}
	}
	put16(hdr + HDR_VID_MODE, (uint16_t)mode);
	return 0;
}

/*
 * One part of the kernel (setup, kernel, initrd) as the linuxboot option ROM
 * reads it: load address, size and data under three keys. data is taken,
 * also on failure.
 */
static int fw_cfg_x86_add_part(struct device *dev, uint16_t addr_key, uint16_t size_key,
			       uint16_t data_key, uint32_t addr, void *data, size_t size)
{
	int ret = fw_cfg_add_i32(dev, addr_key, addr);

	if (!ret)
		ret = fw_cfg_add_i32(dev, size_key, (uint32_t)size);
	if (!ret)
		return fw_cfg_add_bytes_take(dev, data_key, data, size);
	free(data);
	return ret;
}

int fw_cfg_x86_add_linux(struct device *dev, const char *kernel, const char *initrd,
			 const char *cmdline, uint64_t below_4g_mem, char *err, size_t errlen)
{
	uint8_t *file = NULL, *setup = NULL, *kdata = NULL;
	void *fbuf = NULL, *ibuf = NULL;
	size_t fsize, isize = 0, setup_size, ksize, cmdline_size;
	uint32_t real_addr, prot_addr, cmdline_addr, initrd_max, initrd_addr = 0;
	uint16_t protocol = 0;
	uint8_t hdr[HDR_SIZE];
	int ret;

	if (!cmdline)
		cmdline = "";
	if (below_4g_mem <= FW_CFG_X86_ACPI_DATA_SIZE + (1 << 20) || below_4g_mem > GMEM_HIGH_START)
		return -EINVAL;
	ret = fw_cfg_read_host_file("kernel", kernel, KERNEL_FILE_MAX, &fbuf, &fsize, err, errlen);
	if (ret < 0)
		return ret;
	file = fbuf;
	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, file, fsize < sizeof(hdr) ? fsize : sizeof(hdr));
	if (fsize >= HDR_MAGIC + 4 && !memcmp(hdr + HDR_MAGIC, "HdrS", 4))
		protocol = get16(hdr + HDR_VERSION);
	if (!protocol) {
		/* QEMU would try multiboot and PVH ELF here; amber hands firmware bzImages only. */
		snprintf(err, errlen, "kernel %s: not a bzImage (no \"HdrS\" setup header); "
			 "with --firmware the kernel must be a bzImage", kernel);
		ret = -EINVAL;
		goto out;
	}

	/* Command line length rounded up to 16 bytes, as a paranoia measure (QEMU). */
	cmdline_size = (strlen(cmdline) + 16) & ~(size_t)15;
	if (protocol < 0x200 || !(hdr[HDR_LOADFLAGS] & LOADED_HIGH)) {
		/* Low kernel */
		real_addr = 0x90000;
		cmdline_addr = 0x9a000 - (uint32_t)cmdline_size;
		prot_addr = 0x10000;
	} else if (protocol < 0x202) {
		/* High but ancient kernel */
		real_addr = 0x90000;
		cmdline_addr = 0x9a000 - (uint32_t)cmdline_size;
		prot_addr = 0x100000;
	} else {
		/* High and recent kernel */
		real_addr = 0x10000;
		cmdline_addr = 0x20000;
		prot_addr = 0x100000;
	}
	if (cmdline_size > 0x9a000 - 0x90000 - 0x200 && real_addr == 0x90000) {
		snprintf(err, errlen, "kernel %s: command line too long for this old boot protocol", kernel);
		ret = -EINVAL;
		goto out;
	}

	/* Highest address for the initrd */
	if (protocol >= 0x20c && (get16(hdr + HDR_XLOADFLAGS) & XLF_CAN_BE_LOADED_ABOVE_4G))
		initrd_max = UINT32_MAX;
	else if (protocol >= 0x203)
		initrd_max = get32(hdr + HDR_INITRD_ADDR_MAX);
	else
		initrd_max = 0x37ffffff;
	if (initrd_max >= below_4g_mem - FW_CFG_X86_ACPI_DATA_SIZE)
		initrd_max = (uint32_t)(below_4g_mem - FW_CFG_X86_ACPI_DATA_SIZE - 1);

	ret = fw_cfg_add_i32(dev, FW_CFG_CMDLINE_ADDR, cmdline_addr);
	if (!ret)
		ret = fw_cfg_add_i32(dev, FW_CFG_CMDLINE_SIZE, (uint32_t)strlen(cmdline) + 1);
	if (!ret)
		ret = fw_cfg_add_string(dev, FW_CFG_CMDLINE_DATA, cmdline);
	if (ret < 0)
		goto fwcfg_fail;

	if (protocol >= 0x202) {
		put32(hdr + HDR_CMD_LINE_PTR, cmdline_addr);
	} else {
		put16(hdr + HDR_OLD_CL_MAGIC, 0xa33f);
		put16(hdr + HDR_OLD_CL_OFFSET, (uint16_t)(cmdline_addr - real_addr));
	}
	ret = linux_vga_mode(cmdline, hdr, err, errlen);
	if (ret < 0)
		goto out;
	/* Loader type: high nybble 0xB is QEMU's (boot.rst "type_of_loader"). */
	if (protocol >= 0x200)
		hdr[HDR_TYPE_OF_LOADER] = 0xb0;
	if (protocol >= 0x201) {
		hdr[HDR_LOADFLAGS] |= CAN_USE_HEAP;
		put16(hdr + HDR_HEAP_END_PTR, (uint16_t)(cmdline_addr - real_addr - 0x200));
	}

	if (initrd) {
		if (protocol < 0x200) {
			snprintf(err, errlen, "kernel %s: too old to load an initrd (boot protocol %#x)",
				 kernel, protocol);
			ret = -EINVAL;
			goto out;
		}
		ret = fw_cfg_read_host_file("initrd", initrd, initrd_max, &ibuf, &isize, err, errlen);
		if (ret < 0)
			goto out;
		if (isize >= initrd_max) {
			snprintf(err, errlen, "initrd %s: %zu bytes do not fit below %#x", initrd, isize,
				 initrd_max);
			ret = -EFBIG;
			goto out;
		}
		initrd_addr = (uint32_t)((initrd_max - isize) & ~4095ULL);
		ret = fw_cfg_x86_add_part(dev, FW_CFG_INITRD_ADDR, FW_CFG_INITRD_SIZE,
					  FW_CFG_INITRD_DATA, initrd_addr, ibuf, isize);
		ibuf = NULL;
		if (ret < 0)
			goto fwcfg_fail;
		put32(hdr + HDR_RAMDISK_IMAGE, initrd_addr);
		put32(hdr + HDR_RAMDISK_SIZE, (uint32_t)isize);
	}

	/* The setup code: setup_sects (0 means 4) + the boot sector. */
	setup_size = hdr[HDR_SETUP_SECTS] ? hdr[HDR_SETUP_SECTS] : 4;
	setup_size = (setup_size + 1) * 512;
	if (setup_size > fsize) {
		snprintf(err, errlen, "kernel %s: invalid setup header (%zu setup bytes, file has %zu)",
			 kernel, setup_size, fsize);
		ret = -EINVAL;
		goto out;
	}
	ksize = fsize - setup_size;
	setup = malloc(setup_size);
	kdata = malloc(ksize ? ksize : 1);
	if (!setup || !kdata) {
		ret = -ENOMEM;
		goto fwcfg_fail;
	}
	memcpy(setup, file, setup_size);
	memcpy(setup, hdr, setup_size < sizeof(hdr) ? setup_size : sizeof(hdr));
	memcpy(kdata, file + setup_size, ksize);
	free(fbuf);
	fbuf = NULL;

	ret = fw_cfg_x86_add_part(dev, FW_CFG_KERNEL_ADDR, FW_CFG_KERNEL_SIZE, FW_CFG_KERNEL_DATA,
				  prot_addr, kdata, ksize);
	kdata = NULL;
	if (!ret) {
		ret = fw_cfg_x86_add_part(dev, FW_CFG_SETUP_ADDR, FW_CFG_SETUP_SIZE,
					  FW_CFG_SETUP_DATA, real_addr, setup, setup_size);
		setup = NULL;
	}
	if (ret < 0)
		goto fwcfg_fail;
	goto out;
fwcfg_fail:
	snprintf(err, errlen, "kernel %s: adding it to fw_cfg: %s", kernel, strerror(-ret));
out:
	free(setup);
	free(kdata);
	free(ibuf);
	free(fbuf);
	return ret;
}
