/*
 * Direct Linux boot: bzImage through the 64-bit boot protocol
 * (Documentation/arch/x86/boot.rst) and ELF vmlinux through PVH
 * (the XEN_ELFNOTE_PHYS32_ENTRY note, hvm_start_info).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <asm/bootparam.h>

#include "amber/x86_boot.h"

#define HDRS_MAGIC          0x53726448	/* "HdrS" */
#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define HVM_START_MAGIC     0x336ec578

/* xen/include/public/arch-x86/hvm/start_info.h, version 1 */
struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

static int read_file(const char *path, uint8_t **buf, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	uint8_t *p = NULL;
	size_t off = 0;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		ret = -EINVAL;
		goto fail;
	}
	p = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!p) {
		ret = -ENOMEM;
		goto fail;
	}
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, p + off, (size_t)st.st_size - off);

		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			snprintf(err, errlen, "%s: read failed", path);
			goto fail;
		}
		off += (size_t)n;
	}
	close(fd);
	*buf = p;
	*len = off;
	return 0;
fail:
	free(p);
	close(fd);
	return ret;
}

static bool is_bzimage(const uint8_t *k, size_t len)
{
	uint32_t magic;

	if (len < 0x1000)
		return false;
	memcpy(&magic, k + 0x202, 4);
	return magic == HDRS_MAGIC;
}

/* Find the PVH entry in an ELF64 image; 0 if none. */
static uint64_t pvh_entry(const uint8_t *k, size_t len)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)k;

	if (len < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != EM_X86_64 ||
	    eh->e_phentsize != sizeof(Elf64_Phdr) ||
	    eh->e_phoff > len || (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > len - eh->e_phoff)
		return 0;
	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const Elf64_Phdr *)(k + eh->e_phoff) + i;
		uint64_t off;

		if (ph->p_type != PT_NOTE || ph->p_offset > len || ph->p_filesz > len - ph->p_offset)
			continue;
		for (off = 0; off + sizeof(Elf64_Nhdr) <= ph->p_filesz;) {
			const Elf64_Nhdr *nh = (const Elf64_Nhdr *)(k + ph->p_offset + off);
			uint64_t name = (nh->n_namesz + 3) & ~3ULL, desc = (nh->n_descsz + 3) & ~3ULL;
			const uint8_t *d = (const uint8_t *)(nh + 1) + name;

			if (off + sizeof(*nh) + name + desc > ph->p_filesz)
				break;
			if (nh->n_type == XEN_ELFNOTE_PHYS32_ENTRY && nh->n_namesz == 4 &&
			    memcmp(nh + 1, "Xen", 4) == 0 && nh->n_descsz >= 4) {
				uint32_t e;

				memcpy(&e, d, 4);
				return e;
			}
			off += sizeof(*nh) + name + desc;
		}
	}
	return 0;
}

int boot_probe_kernel(const char *path, enum kernel_kind *kind, char *err, size_t errlen)
{
	uint8_t *k;
	size_t len;
	int ret = read_file(path, &k, &len, err, errlen);

	if (ret < 0)
		return ret;
	if (is_bzimage(k, len)) {
		const struct setup_header *h = (const struct setup_header *)(k + 0x1f1);

		if (h->version < 0x20c || !(h->xloadflags & XLF_KERNEL_64)) {
			snprintf(err, errlen, "kernel %s: bzImage boot protocol %u.%02u without a 64-bit entry "
				 "(2.12 or newer needed)", path, h->version >> 8, h->version & 0xff);
			ret = -EINVAL;
		} else {
			*kind = KERNEL_BZIMAGE;
		}
	} else if (pvh_entry(k, len)) {
		*kind = KERNEL_PVH;
	} else {
		snprintf(err, errlen, "kernel %s: not a Linux bzImage nor an ELF vmlinux with a PVH note", path);
		ret = -EINVAL;
	}
	free(k);
	return ret;
}

/* GDT: null, null, 64-bit code (0x10), data (0x18), 32-bit code (0x8 for PVH). */
static void boot_write_gdt(const struct guest_mem *gm)
{
	uint64_t gdt[4] = {
		0,
		0x00cf9b000000ffffULL,	/* 0x08: 32-bit code, flat */
		0x00af9b000000ffffULL,	/* 0x10: 64-bit code */
		0x00cf93000000ffffULL,	/* 0x18: data, flat */
	};

	gmem_write(gm, BOOT_GDT_ADDR, gdt, sizeof(gdt));
}

/* Identity map of the first 4 GiB with 2 MiB pages, for the 64-bit entry. */
static void boot_write_pagetables(const struct guest_mem *gm)
{
	uint64_t pml4 = BOOT_PDPT_ADDR | 0x3, pdpt[4], pd[512];

	gmem_write(gm, BOOT_PML4_ADDR, &pml4, sizeof(pml4));
	for (int i = 0; i < 4; i++)
		pdpt[i] = (BOOT_PD_ADDR + i * 0x1000ULL) | 0x3;
	gmem_write(gm, BOOT_PDPT_ADDR, pdpt, sizeof(pdpt));
	for (int t = 0; t < 4; t++) {
		for (int i = 0; i < 512; i++)
			pd[i] = (((uint64_t)t << 30) + ((uint64_t)i << 21)) | 0x83;
		gmem_write(gm, BOOT_PD_ADDR + t * 0x1000ULL, pd, sizeof(pd));
	}
}

static uint64_t low_ram_end(const struct guest_mem *gm)
{
	for (int i = 0; i < gm->nslots; i++)
		if (gm->slots[i].gpa == 0)
			return gm->slots[i].size;
	return 0;
}

/* Place the initrd as high as allowed below max_addr (inclusive limit). */
static int boot_load_initrd(const struct guest_mem *gm, const char *initrd, uint64_t kernel_end,
			    uint64_t max_addr, uint64_t *addr, uint64_t *size, char *err, size_t errlen)
{
	uint8_t *buf;
	size_t len;
	uint64_t top = low_ram_end(gm), at;
	int ret = read_file(initrd, &buf, &len, err, errlen);

	if (ret < 0)
		return ret;
	if (top > max_addr + 1)
		top = max_addr + 1;
	if (len > top || ((top - len) & ~0xfffULL) < kernel_end) {
		snprintf(err, errlen, "initrd %s (%zu bytes) does not fit in guest memory below %#llx "
			 "with the kernel: give the guest more --memory", initrd, len,
			 (unsigned long long)top);
		free(buf);
		return -E2BIG;
	}
	at = (top - len) & ~0xfffULL;
	gmem_write(gm, at, buf, len);
	free(buf);
	*addr = at;
	*size = len;
	return 0;
}

static int boot_load_bzimage(const struct guest_mem *gm, const uint8_t *k, size_t len,
			     const char *path, const char *initrd, const char *cmdline,
			     uint64_t rsdp, struct boot_info *out, char *err, size_t errlen)
{
	struct boot_params bp;
	const struct setup_header *kh = (const struct setup_header *)(k + 0x1f1);
	struct e820_entry e820[E820_MAX];
	unsigned setup_sects = kh->setup_sects ? kh->setup_sects : 4;
	size_t setup_len = (setup_sects + 1) * 512ULL, hdr_end = 0x202 + k[0x201];
	uint64_t kernel_size, kernel_end, initrd_max;
	size_t cl = cmdline ? strlen(cmdline) : 0;
	int n, ret;

	if (setup_len >= len || hdr_end > sizeof(bp) || hdr_end > len) {
		snprintf(err, errlen, "kernel %s: setup header is inconsistent with the file size", path);
		return -EINVAL;
	}
	kernel_size = len - setup_len;
	kernel_end = BOOT_KERNEL_ADDR + (kh->init_size > kernel_size ? kh->init_size : kernel_size);
	if (kernel_end > low_ram_end(gm)) {
		snprintf(err, errlen, "kernel %s needs %llu MiB of RAM to unpack: give the guest more --memory",
			 path, (unsigned long long)(kernel_end >> 20) + 1);
		return -E2BIG;
	}
	if (cl >= BOOT_CMDLINE_MAX || (kh->cmdline_size && cl > kh->cmdline_size)) {
		snprintf(err, errlen, "--cmdline is %zu bytes; this kernel accepts at most %u", cl,
			 kh->cmdline_size);
		return -EINVAL;
	}

	memset(&bp, 0, sizeof(bp));
	memcpy(&bp.hdr, kh, hdr_end - 0x1f1);
	bp.hdr.type_of_loader = 0xff;
	bp.hdr.loadflags |= LOADED_HIGH | CAN_USE_HEAP | KEEP_SEGMENTS;
	bp.hdr.loadflags &= ~QUIET_FLAG;
	bp.hdr.heap_end_ptr = 0xfe00;
	bp.hdr.code32_start = BOOT_KERNEL_ADDR;
	bp.hdr.cmd_line_ptr = BOOT_CMDLINE_ADDR;
	bp.hdr.vid_mode = 0xffff;
	gmem_write(gm, BOOT_CMDLINE_ADDR, cmdline ? cmdline : "", cl + 1);
	gmem_write(gm, BOOT_KERNEL_ADDR, k + setup_len, kernel_size);

	if (initrd) {
		uint64_t addr, size;

		initrd_max = kh->initrd_addr_max ? kh->initrd_addr_max : 0x37ffffff;
		if (bp.hdr.xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G)
			initrd_max = 0xffffffffULL;
		ret = boot_load_initrd(gm, initrd, kernel_end, initrd_max, &addr, &size, err, errlen);
		if (ret < 0)
			return ret;
		bp.hdr.ramdisk_image = (uint32_t)addr;
		bp.hdr.ramdisk_size = (uint32_t)size;
	}
	bp.acpi_rsdp_addr = rsdp;
	n = e820_build(gm, e820, E820_MAX_ENTRIES_ZEROPAGE);
	if (n < 0) {
		snprintf(err, errlen, "guest memory map does not fit the boot protocol's E820 table");
		return n;
	}
	memcpy(bp.e820_table, e820, n * sizeof(e820[0]));
	bp.e820_entries = (uint8_t)n;
	gmem_write(gm, BOOT_PARAMS_ADDR, &bp, sizeof(bp));

	boot_write_gdt(gm);
	boot_write_pagetables(gm);
	out->kind = KERNEL_BZIMAGE;
	out->entry = BOOT_KERNEL_ADDR + 0x200;	/* 64-bit entry point */
	out->params = BOOT_PARAMS_ADDR;
	return 0;
}

static int boot_load_pvh(const struct guest_mem *gm, const uint8_t *k, size_t len,
			 const char *path, const char *initrd, const char *cmdline,
			 uint64_t rsdp, struct boot_info *out, char *err, size_t errlen)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)k;
	struct hvm_start_info si;
	struct hvm_modlist_entry mod;
	struct e820_entry e820[E820_MAX];
	struct hvm_memmap_table_entry mm[E820_MAX];
	uint64_t kernel_end = 0;
	size_t cl = cmdline ? strlen(cmdline) : 0;
	int n;

	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const Elf64_Phdr *)(k + eh->e_phoff) + i;
		uint8_t *dst;

		if (ph->p_type != PT_LOAD)
			continue;
		if (ph->p_offset > len || ph->p_filesz > len - ph->p_offset || ph->p_filesz > ph->p_memsz) {
			snprintf(err, errlen, "kernel %s: program header %d lies outside the file", path, i);
			return -EINVAL;
		}
		dst = gmem_ptr(gm, ph->p_paddr, ph->p_memsz);
		if (!dst || ph->p_paddr < BOOT_KERNEL_ADDR) {
			snprintf(err, errlen, "kernel %s: segment at %#llx (+%llu bytes) is outside guest RAM",
				 path, (unsigned long long)ph->p_paddr, (unsigned long long)ph->p_memsz);
			return -EINVAL;
		}
		memcpy(dst, k + ph->p_offset, ph->p_filesz);
		memset(dst + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
		if (ph->p_paddr + ph->p_memsz > kernel_end)
			kernel_end = ph->p_paddr + ph->p_memsz;
	}
	if (cl >= BOOT_CMDLINE_MAX) {
		snprintf(err, errlen, "--cmdline is longer than %d bytes", BOOT_CMDLINE_MAX - 1);
		return -EINVAL;
	}
	memset(&si, 0, sizeof(si));
	si.magic = HVM_START_MAGIC;
	si.version = 1;
	si.cmdline_paddr = BOOT_CMDLINE_ADDR;
	si.rsdp_paddr = rsdp;
	gmem_write(gm, BOOT_CMDLINE_ADDR, cmdline ? cmdline : "", cl + 1);
	if (initrd) {
		uint64_t addr, size;
		int ret = boot_load_initrd(gm, initrd, kernel_end, 0xffffffffULL, &addr, &size, err, errlen);

		if (ret < 0)
			return ret;
		memset(&mod, 0, sizeof(mod));
		mod.paddr = addr;
		mod.size = size;
		si.nr_modules = 1;
		si.modlist_paddr = BOOT_START_INFO_ADDR + sizeof(si);
		gmem_write(gm, si.modlist_paddr, &mod, sizeof(mod));
	}
	n = e820_build(gm, e820, E820_MAX);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++)
		mm[i] = (struct hvm_memmap_table_entry){ e820[i].addr, e820[i].size, e820[i].type, 0 };
	si.memmap_paddr = BOOT_START_INFO_ADDR + sizeof(si) + sizeof(mod);
	si.memmap_entries = (uint32_t)n;
	gmem_write(gm, si.memmap_paddr, mm, n * sizeof(mm[0]));
	gmem_write(gm, BOOT_START_INFO_ADDR, &si, sizeof(si));
	boot_write_gdt(gm);
	out->kind = KERNEL_PVH;
	out->entry = pvh_entry(k, len);
	out->params = BOOT_START_INFO_ADDR;
	return 0;
}

int boot_load_linux(const struct guest_mem *gm, const char *kernel, const char *initrd,
		    const char *cmdline, uint64_t rsdp, struct boot_info *out,
		    char *err, size_t errlen)
{
	uint8_t *k;
	size_t len;
	int ret = read_file(kernel, &k, &len, err, errlen);

	if (ret < 0)
		return ret;
	if (is_bzimage(k, len))
		ret = boot_load_bzimage(gm, k, len, kernel, initrd, cmdline, rsdp, out, err, errlen);
	else if (pvh_entry(k, len))
		ret = boot_load_pvh(gm, k, len, kernel, initrd, cmdline, rsdp, out, err, errlen);
	else {
		snprintf(err, errlen, "kernel %s: not a Linux bzImage nor an ELF vmlinux with a PVH note", kernel);
		ret = -EINVAL;
	}
	free(k);
	return ret;
}
