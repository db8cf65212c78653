/*
 * Direct Linux boot: bzImage through the 64-bit boot protocol
 * (Documentation/arch/x86/boot.rst) and ELF vmlinux through PVH
 * (the XEN_ELFNOTE_PHYS32_ENTRY note, hvm_start_info).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
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

/*
 * An open kernel or initrd file. Images are read with pread() straight into
 * guest RAM: no bounce buffer, so amber never holds a second copy of a
 * 10-50 MiB kernel (that copy was most of its peak RSS beyond guest RAM)
 * and the data is copied once, from the page cache.
 */
struct kfile {
	int fd;
	uint64_t size;
	const char *path;
};

static int kfile_open(struct kfile *f, const char *path, char *err, size_t errlen)
{
	struct stat st;
	int ret;

	f->path = path;
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	if (fstat(f->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		close(f->fd);
		f->fd = -1;
		return -EINVAL;
	}
	f->size = (uint64_t)st.st_size;
	return 0;
}

static void kfile_close(struct kfile *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

/* Exactly len bytes at off into dst; -EIO (with a message) if the file is shorter. */
static int kfile_read(const struct kfile *f, uint64_t off, void *dst, uint64_t len,
		      char *err, size_t errlen)
{
	uint8_t *p = dst;

	while (len) {
		ssize_t n = pread(f->fd, p, len > (1u << 30) ? (1u << 30) : len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int ret = n < 0 ? -errno : -EIO;

			snprintf(err, errlen, "%s: read failed: %s", f->path,
				 n < 0 ? strerror(errno) : "unexpected end of file");
			return ret;
		}
		p += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

/*
 * The image reads of one boot (kernel segments, initrd), queued, then done
 * by up to KLOAD_THREADS threads at once in KLOAD_CHUNK pieces. Copying
 * 15-50 MiB from the page cache into fresh guest RAM is most of amber's
 * start-up; it is CPU-bound (page faults, zeroing, copy), so it scales with
 * the host CPUs that are free at that moment.
 */
#define KLOAD_CHUNK   (2u << 20)	/* a transparent huge page of guest RAM */
#define KLOAD_THREADS 4
#define KLOAD_FILES   2		/* kernel and initrd */

struct kload_range {
	const struct kfile *f;
	uint64_t off;
	uint8_t *dst;
	uint64_t len;
};

struct kload {
	struct kfile files[KLOAD_FILES];	/* opened for the loader, closed by kload_free */
	int nfiles;
	struct kload_range *r;
	int n, cap;
	/* work distribution while running */
	pthread_mutex_t lock;
	int next_range;
	uint64_t next_off;
	int ret;
	char err[256];
};

static void kload_init(struct kload *kl)
{
	memset(kl, 0, sizeof(*kl));
	for (int i = 0; i < KLOAD_FILES; i++)
		kl->files[i].fd = -1;
}

static void kload_free(struct kload *kl)
{
	for (int i = 0; i < kl->nfiles; i++)
		kfile_close(&kl->files[i]);
	free(kl->r);
	kl->r = NULL;
	kl->n = kl->cap = kl->nfiles = 0;
}

/* Queue: len bytes of f at off into dst (guest RAM the caller checked). */
static int kload_add(struct kload *kl, const struct kfile *f, uint64_t off, uint8_t *dst, uint64_t len)
{
	if (!len)
		return 0;
	if (kl->n == kl->cap) {
		int cap = kl->cap ? 2 * kl->cap : 8;
		struct kload_range *r = realloc(kl->r, (size_t)cap * sizeof(*r));

		if (!r)
			return -ENOMEM;
		kl->r = r;
		kl->cap = cap;
	}
	kl->r[kl->n++] = (struct kload_range){ f, off, dst, len };
	return 0;
}

/* Claim the next piece: ends on a KLOAD_CHUNK boundary of the destination. */
static bool kload_claim(struct kload *kl, struct kload_range *piece)
{
	bool got = false;

	pthread_mutex_lock(&kl->lock);
	while (kl->ret == 0 && kl->next_range < kl->n) {
		const struct kload_range *r = &kl->r[kl->next_range];
		uint64_t rem = r->len - kl->next_off;
		uint8_t *dst = r->dst + kl->next_off;
		uint64_t room = KLOAD_CHUNK - ((uintptr_t)dst & (KLOAD_CHUNK - 1));

		if (rem == 0) {
			kl->next_range++;
			kl->next_off = 0;
			continue;
		}
		*piece = (struct kload_range){ r->f, r->off + kl->next_off, dst, rem < room ? rem : room };
		kl->next_off += piece->len;
		got = true;
		break;
	}
	pthread_mutex_unlock(&kl->lock);
	return got;
}

static void *kload_worker(void *arg)
{
	struct kload *kl = arg;
	struct kload_range p;
	char err[256];

	while (kload_claim(kl, &p)) {
		int ret = kfile_read(p.f, p.off, p.dst, p.len, err, sizeof(err));

		if (ret < 0) {
			pthread_mutex_lock(&kl->lock);
			if (kl->ret == 0) {
				kl->ret = ret;
				snprintf(kl->err, sizeof(kl->err), "%s", err);
			}
			pthread_mutex_unlock(&kl->lock);
		}
	}
	return NULL;
}

/* Do every queued read; the first failure is returned with its message. */
static int kload_run(struct kload *kl, char *err, size_t errlen)
{
	pthread_t th[KLOAD_THREADS - 1];
	uint64_t total = 0;
	unsigned nthreads = 1, started = 0;
	cpu_set_t cpus;

	for (int i = 0; i < kl->n; i++)
		total += kl->r[i].len;
	if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0)
		nthreads = (unsigned)CPU_COUNT(&cpus);
	if (nthreads > KLOAD_THREADS)
		nthreads = KLOAD_THREADS;
	if (nthreads > total / KLOAD_CHUNK)
		nthreads = total / KLOAD_CHUNK ? (unsigned)(total / KLOAD_CHUNK) : 1;
	pthread_mutex_init(&kl->lock, NULL);
	kl->next_range = 0;
	kl->next_off = 0;
	kl->ret = 0;
	/* The calling thread works too; a thread that cannot start is not needed. */
	for (unsigned i = 0; i + 1 < nthreads; i++)
		if (pthread_create(&th[started], NULL, kload_worker, kl) == 0)
			started++;
	kload_worker(kl);
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&kl->lock);
	if (kl->ret < 0)
		snprintf(err, errlen, "%s", kl->err);
	return kl->ret;
}

static bool is_bzimage(const uint8_t *k, size_t len)
{
	uint32_t magic;

	if (len < 0x1000)
		return false;
	memcpy(&magic, k + 0x202, 4);
	return magic == HDRS_MAGIC;
}

/* ELF notes bigger than this are not kernel notes (vmlinux has a few KiB of them). */
#define PVH_NOTES_MAX (1u << 20)

/* The XEN_ELFNOTE_PHYS32_ENTRY value in one PT_NOTE segment's contents; 0 if absent. */
static uint64_t pvh_entry_in_notes(const uint8_t *notes, uint64_t len)
{
	for (uint64_t off = 0; off + sizeof(Elf64_Nhdr) <= len;) {
		Elf64_Nhdr nh;
		uint64_t name, desc;
		const uint8_t *d;

		memcpy(&nh, notes + off, sizeof(nh));
		name = (nh.n_namesz + 3) & ~3ULL;
		desc = (nh.n_descsz + 3) & ~3ULL;
		if (off + sizeof(nh) + name + desc > len)
			break;
		d = notes + off + sizeof(nh) + name;
		if (nh.n_type == XEN_ELFNOTE_PHYS32_ENTRY && nh.n_namesz == 4 &&
		    memcmp(notes + off + sizeof(nh), "Xen", 4) == 0 && nh.n_descsz >= 4) {
			uint32_t e;

			memcpy(&e, d, 4);
			return e;
		}
		off += sizeof(nh) + name + desc;
	}
	return 0;
}

/*
 * Read and check the ELF64 header and program headers of f (*phdrs: malloc'd,
 * eh->e_phnum entries). -EINVAL if f is not an x86-64 ELF file.
 */
static int elf_read_headers(const struct kfile *f, Elf64_Ehdr *eh, Elf64_Phdr **phdrs)
{
	char err[8];
	uint64_t len;

	*phdrs = NULL;
	if (f->size < sizeof(*eh) || kfile_read(f, 0, eh, sizeof(*eh), err, sizeof(err)) < 0 ||
	    memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_machine != EM_X86_64 || eh->e_phentsize != sizeof(Elf64_Phdr) ||
	    eh->e_phoff > f->size || (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > f->size - eh->e_phoff)
		return -EINVAL;
	len = (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr);
	*phdrs = malloc(len ? len : 1);
	if (!*phdrs)
		return -ENOMEM;
	if (kfile_read(f, eh->e_phoff, *phdrs, len, err, sizeof(err)) < 0) {
		free(*phdrs);
		*phdrs = NULL;
		return -EINVAL;
	}
	return 0;
}

/* Find the PVH entry of an ELF64 kernel file; 0 if none (or not ELF). */
static uint64_t pvh_entry(const struct kfile *f)
{
	Elf64_Ehdr eh;
	Elf64_Phdr *ph;
	uint64_t entry = 0;
	char err[8];

	if (elf_read_headers(f, &eh, &ph) < 0)
		return 0;
	for (int i = 0; i < eh.e_phnum && !entry; i++) {
		uint8_t *notes;

		if (ph[i].p_type != PT_NOTE || ph[i].p_offset > f->size ||
		    ph[i].p_filesz > f->size - ph[i].p_offset || ph[i].p_filesz > PVH_NOTES_MAX)
			continue;
		notes = malloc(ph[i].p_filesz ? ph[i].p_filesz : 1);
		if (!notes)
			break;
		if (kfile_read(f, ph[i].p_offset, notes, ph[i].p_filesz, err, sizeof(err)) == 0)
			entry = pvh_entry_in_notes(notes, ph[i].p_filesz);
		free(notes);
	}
	free(ph);
	return entry;
}

/* The first page of a kernel file: the bzImage setup header lives in it. */
#define KHEAD_LEN 0x1000

/* Reads the head of f into head (zero-filled past the end); true if it is a bzImage. */
static bool kfile_is_bzimage(const struct kfile *f, uint8_t head[KHEAD_LEN])
{
	char err[8];

	memset(head, 0, KHEAD_LEN);
	if (f->size < KHEAD_LEN || kfile_read(f, 0, head, KHEAD_LEN, err, sizeof(err)) < 0)
		return false;
	return is_bzimage(head, KHEAD_LEN);
}

int boot_probe_kernel(const char *path, enum kernel_kind *kind, char *err, size_t errlen)
{
	uint8_t head[KHEAD_LEN];
	struct kfile f;
	int ret = kfile_open(&f, path, err, errlen);

	if (ret < 0)
		return ret;
	/* Only the headers are read: the image itself is read once, into guest RAM. */
	if (kfile_is_bzimage(&f, head)) {
		const struct setup_header *h = (const struct setup_header *)(head + 0x1f1);

		if (h->version < 0x20c || !(h->xloadflags & XLF_KERNEL_64)) {
			snprintf(err, errlen, "kernel %s: bzImage boot protocol %u.%02u without a 64-bit entry "
				 "(2.12 or newer needed)", path, h->version >> 8, h->version & 0xff);
			ret = -EINVAL;
		} else {
			*kind = KERNEL_BZIMAGE;
		}
	} else if (pvh_entry(&f)) {
		*kind = KERNEL_PVH;
	} else {
		snprintf(err, errlen, "kernel %s: not a Linux bzImage nor an ELF vmlinux with a PVH note", path);
		ret = -EINVAL;
	}
	kfile_close(&f);
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

/* Place the initrd as high as allowed below max_addr (inclusive limit); its read is queued on kl. */
static int boot_load_initrd(const struct guest_mem *gm, struct kload *kl, const char *initrd,
			    uint64_t kernel_end, uint64_t max_addr, uint64_t *addr, uint64_t *size,
			    char *err, size_t errlen)
{
	struct kfile *f = &kl->files[kl->nfiles];
	uint64_t top = low_ram_end(gm), at, len;
	uint8_t *dst;
	int ret = kfile_open(f, initrd, err, errlen);

	if (ret < 0)
		return ret;
	kl->nfiles++;		/* closed by kload_free */
	len = f->size;
	if (top > max_addr + 1)
		top = max_addr + 1;
	if (len > top || ((top - len) & ~0xfffULL) < kernel_end) {
		snprintf(err, errlen, "initrd %s (%llu bytes) does not fit in guest memory below %#llx "
			 "with the kernel: give the guest more --memory", initrd, (unsigned long long)len,
			 (unsigned long long)top);
		return -E2BIG;
	}
	at = (top - len) & ~0xfffULL;
	/* In low RAM by construction (kernel_end <= at, at + len <= top). */
	dst = gmem_ptr(gm, at, len);
	if (!dst) {
		snprintf(err, errlen, "initrd %s: no guest RAM at %#llx", initrd, (unsigned long long)at);
		return -E2BIG;
	}
	ret = kload_add(kl, f, 0, dst, len);
	if (ret < 0)
		return ret;
	*addr = at;
	*size = len;
	return 0;
}

static int boot_load_bzimage(const struct guest_mem *gm, struct kload *kl, const struct kfile *f,
			     const uint8_t *k, const char *initrd, const char *cmdline,
			     uint64_t rsdp, struct boot_info *out, char *err, size_t errlen)
{
	const char *path = f->path;
	uint64_t len = f->size;
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
	/* kernel_end <= low RAM end was checked above, so the range is RAM. */
	ret = kload_add(kl, f, setup_len, gmem_ptr(gm, BOOT_KERNEL_ADDR, kernel_size), kernel_size);
	if (ret < 0)
		return ret;

	if (initrd) {
		uint64_t addr, size;

		initrd_max = kh->initrd_addr_max ? kh->initrd_addr_max : 0x37ffffff;
		if (bp.hdr.xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G)
			initrd_max = 0xffffffffULL;
		ret = boot_load_initrd(gm, kl, initrd, kernel_end, initrd_max, &addr, &size, err, errlen);
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

static int boot_load_pvh(const struct guest_mem *gm, struct kload *kl, const struct kfile *f,
			 uint64_t entry, const char *initrd, const char *cmdline,
			 uint64_t rsdp, struct boot_info *out, char *err, size_t errlen)
{
	const char *path = f->path;
	uint64_t len = f->size;
	Elf64_Ehdr ehdr, *eh = &ehdr;
	Elf64_Phdr *phdrs;
	struct hvm_start_info si;
	struct hvm_modlist_entry mod;
	struct e820_entry e820[E820_MAX];
	struct hvm_memmap_table_entry mm[E820_MAX];
	uint64_t kernel_end = 0;
	size_t cl = cmdline ? strlen(cmdline) : 0;
	int n, ret;

	ret = elf_read_headers(f, eh, &phdrs);
	if (ret < 0) {
		snprintf(err, errlen, "kernel %s: unreadable ELF headers", path);
		return ret;
	}
	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = &phdrs[i];
		uint8_t *dst;

		if (ph->p_type != PT_LOAD)
			continue;
		if (ph->p_offset > len || ph->p_filesz > len - ph->p_offset || ph->p_filesz > ph->p_memsz) {
			snprintf(err, errlen, "kernel %s: program header %d lies outside the file", path, i);
			ret = -EINVAL;
			break;
		}
		dst = gmem_ptr(gm, ph->p_paddr, ph->p_memsz);
		if (!dst || ph->p_paddr < BOOT_KERNEL_ADDR) {
			snprintf(err, errlen, "kernel %s: segment at %#llx (+%llu bytes) is outside guest RAM",
				 path, (unsigned long long)ph->p_paddr, (unsigned long long)ph->p_memsz);
			ret = -EINVAL;
			break;
		}
		ret = kload_add(kl, f, ph->p_offset, dst, ph->p_filesz);
		if (ret < 0)
			break;
		memset(dst + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
		if (ph->p_paddr + ph->p_memsz > kernel_end)
			kernel_end = ph->p_paddr + ph->p_memsz;
	}
	free(phdrs);
	if (ret < 0)
		return ret;
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
		ret = boot_load_initrd(gm, kl, initrd, kernel_end, 0xffffffffULL, &addr, &size, err,
				       errlen);

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
	out->entry = entry;
	out->params = BOOT_START_INFO_ADDR;
	return 0;
}

int boot_load_linux(const struct guest_mem *gm, const char *kernel, const char *initrd,
		    const char *cmdline, uint64_t rsdp, struct boot_info *out,
		    char *err, size_t errlen)
{
	uint8_t head[KHEAD_LEN];
	struct kload kl;
	struct kfile *f;
	uint64_t entry;
	int ret;

	kload_init(&kl);
	f = &kl.files[kl.nfiles];
	ret = kfile_open(f, kernel, err, errlen);
	if (ret < 0)
		return ret;
	kl.nfiles++;
	if (kfile_is_bzimage(f, head))
		ret = boot_load_bzimage(gm, &kl, f, head, initrd, cmdline, rsdp, out, err, errlen);
	else if ((entry = pvh_entry(f)) != 0)
		ret = boot_load_pvh(gm, &kl, f, entry, initrd, cmdline, rsdp, out, err, errlen);
	else {
		snprintf(err, errlen, "kernel %s: not a Linux bzImage nor an ELF vmlinux with a PVH note", kernel);
		ret = -EINVAL;
	}
	/* The images themselves: kernel and initrd together, in parallel. */
	if (ret == 0)
		ret = kload_run(&kl, err, errlen);
	kload_free(&kl);
	return ret;
}
