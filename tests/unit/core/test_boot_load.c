/* Direct Linux boot: images read from their files straight into guest RAM. */
#include "harness.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <asm/bootparam.h>

#include "amber/x86_boot.h"

#define RAM_SIZE (64ULL << 20)
#define SETUP_SECTS 4
#define PAYLOAD_LEN 8192
#define INITRD_LEN 5000		/* not a multiple of the page size */

struct boot_fixture {
	struct guest_mem gm;
	uint8_t *ram;
	char kernel[64];
	char initrd[64];
};

static void write_file(char *path, const void *data, size_t len)
{
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static uint8_t pattern(size_t i, unsigned seed)
{
	return (uint8_t)(i * 7 + seed + (i >> 9));
}

/* A bzImage with a 2.15 header, 64-bit entry, and a recognisable protected-mode payload. */
static void make_bzimage(char *path, uint32_t init_size)
{
	size_t setup_len = (SETUP_SECTS + 1) * 512;
	static uint8_t img[(SETUP_SECTS + 1) * 512 + PAYLOAD_LEN];
	uint16_t ver = 0x20f, xlf = XLF_KERNEL_64;
	uint32_t initrd_max = 0x7fffffff, cmdline_size = 2047;

	memset(img, 0, sizeof(img));
	img[0x1f1] = SETUP_SECTS;
	img[0x201] = 0x6a;			/* header ends at 0x26c */
	memcpy(img + 0x202, "HdrS", 4);
	memcpy(img + 0x206, &ver, 2);
	memcpy(img + 0x22c, &initrd_max, 4);
	memcpy(img + 0x236, &xlf, 2);
	memcpy(img + 0x238, &cmdline_size, 4);
	memcpy(img + 0x260, &init_size, 4);
	for (size_t i = 0; i < PAYLOAD_LEN; i++)
		img[setup_len + i] = pattern(i, 1);
	write_file(path, img, sizeof(img));
}

/* Like make_bzimage with a payload of payload_len bytes, written without a big buffer. */
static void make_big_bzimage(char *path, size_t payload_len)
{
	uint8_t hdr[(SETUP_SECTS + 1) * 512], buf[65536];
	uint16_t ver = 0x20f, xlf = XLF_KERNEL_64;
	uint32_t init_size = (uint32_t)payload_len;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	memset(hdr, 0, sizeof(hdr));
	hdr[0x1f1] = SETUP_SECTS;
	hdr[0x201] = 0x6a;
	memcpy(hdr + 0x202, "HdrS", 4);
	memcpy(hdr + 0x206, &ver, 2);
	memcpy(hdr + 0x236, &xlf, 2);
	memcpy(hdr + 0x260, &init_size, 4);
	assert_int_equal(write(fd, hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
	for (size_t done = 0; done < payload_len;) {
		size_t n = payload_len - done < sizeof(buf) ? payload_len - done : sizeof(buf);

		for (size_t i = 0; i < n; i++)
			buf[i] = pattern(done + i, 4);
		assert_int_equal(write(fd, buf, n), (ssize_t)n);
		done += n;
	}
	close(fd);
}

static int setup(void **state)
{
	struct boot_fixture *f = calloc(1, sizeof(*f));
	static uint8_t initrd[INITRD_LEN];

	f->ram = malloc(RAM_SIZE);
	assert_non_null(f->ram);
	memset(f->ram, 0xaa, RAM_SIZE);
	gmem_init_buffer(&f->gm, f->ram, RAM_SIZE);
	strcpy(f->kernel, "/tmp/amber-bzimage-XXXXXX");
	strcpy(f->initrd, "/tmp/amber-initrd-XXXXXX");
	make_bzimage(f->kernel, 1 << 20);
	for (size_t i = 0; i < INITRD_LEN; i++)
		initrd[i] = pattern(i, 2);
	write_file(f->initrd, initrd, INITRD_LEN);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct boot_fixture *f = *state;

	unlink(f->kernel);
	unlink(f->initrd);
	free(f->ram);
	free(f);
	return 0;
}

static void test_bzimage_payload_and_initrd_land_in_guest_ram(void **state)
{
	struct boot_fixture *f = *state;
	struct boot_params *bp = (struct boot_params *)(f->ram + BOOT_PARAMS_ADDR);
	struct boot_info bi;
	char err[256] = "";
	uint32_t at;

	assert_int_equal(boot_load_linux(&f->gm, f->kernel, f->initrd, "console=ttyS0", BOOT_ACPI_ADDR,
					 &bi, err, sizeof(err)), 0);
	assert_int_equal(bi.kind, KERNEL_BZIMAGE);
	assert_int_equal(bi.entry, BOOT_KERNEL_ADDR + 0x200);
	assert_int_equal(bi.params, BOOT_PARAMS_ADDR);
	for (size_t i = 0; i < PAYLOAD_LEN; i++)
		if (f->ram[BOOT_KERNEL_ADDR + i] != pattern(i, 1))
			fail_msg("kernel byte %zu differs", i);
	at = bp->hdr.ramdisk_image;
	assert_int_equal(bp->hdr.ramdisk_size, INITRD_LEN);
	assert_int_equal(at & 0xfff, 0);
	assert_true(at + INITRD_LEN <= RAM_SIZE);
	assert_true(at >= BOOT_KERNEL_ADDR + (1 << 20));	/* above init_size */
	for (size_t i = 0; i < INITRD_LEN; i++)
		if (f->ram[at + i] != pattern(i, 2))
			fail_msg("initrd byte %zu differs", i);
	assert_int_equal(bp->hdr.cmd_line_ptr, BOOT_CMDLINE_ADDR);
	assert_string_equal((char *)f->ram + BOOT_CMDLINE_ADDR, "console=ttyS0");
	assert_int_equal(bp->acpi_rsdp_addr, BOOT_ACPI_ADDR);
	assert_int_equal(bp->hdr.type_of_loader, 0xff);
}

/* Images of several 2 MiB pieces are read by several threads: every byte still lands right. */
static void test_multi_chunk_kernel_and_initrd_load_completely(void **state)
{
	struct boot_fixture *f = *state;
	struct boot_params *bp = (struct boot_params *)(f->ram + BOOT_PARAMS_ADDR);
	size_t klen = (9u << 20) + 12345;	/* not a multiple of the piece or page size */
	struct boot_info bi;
	char err[256] = "";

	unlink(f->kernel);
	strcpy(f->kernel, "/tmp/amber-bzimage-XXXXXX");
	make_big_bzimage(f->kernel, klen);
	assert_int_equal(boot_load_linux(&f->gm, f->kernel, f->initrd, NULL, 0, &bi, err, sizeof(err)), 0);
	for (size_t i = 0; i < klen; i++)
		if (f->ram[BOOT_KERNEL_ADDR + i] != pattern(i, 4))
			fail_msg("kernel byte %zu differs", i);
	assert_int_equal(f->ram[BOOT_KERNEL_ADDR + klen], 0xaa);	/* nothing past the end */
	for (size_t i = 0; i < INITRD_LEN; i++)
		if (f->ram[bp->hdr.ramdisk_image + i] != pattern(i, 2))
			fail_msg("initrd byte %zu differs", i);
}

static void test_bzimage_too_big_for_ram_is_refused_with_the_reason(void **state)
{
	struct boot_fixture *f = *state;
	struct boot_info bi;
	char err[256] = "";

	unlink(f->kernel);
	strcpy(f->kernel, "/tmp/amber-bzimage-XXXXXX");
	make_bzimage(f->kernel, 128u << 20);	/* unpacks to more than the 64 MiB of RAM */
	assert_int_equal(boot_load_linux(&f->gm, f->kernel, NULL, NULL, 0, &bi, err, sizeof(err)),
			 -E2BIG);
	assert_non_null(strstr(err, "more --memory"));
}

static void test_initrd_that_does_not_fit_is_refused_with_the_reason(void **state)
{
	struct boot_fixture *f = *state;
	struct boot_info bi;
	char err[256] = "";
	int fd = open(f->initrd, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, RAM_SIZE), 0);	/* sparse: as big as all of RAM */
	close(fd);
	assert_int_equal(boot_load_linux(&f->gm, f->kernel, f->initrd, NULL, 0, &bi, err, sizeof(err)),
			 -E2BIG);
	assert_non_null(strstr(err, "does not fit"));
}

static void test_missing_initrd_is_named_in_the_error(void **state)
{
	struct boot_fixture *f = *state;
	struct boot_info bi;
	char err[256] = "";

	assert_true(boot_load_linux(&f->gm, f->kernel, "/nonexistent/initrd", NULL, 0, &bi, err,
				    sizeof(err)) < 0);
	assert_non_null(strstr(err, "/nonexistent/initrd"));
}

/* ELF64 vmlinux: one PT_LOAD (file part + bss) and a PT_NOTE with the Xen PVH entry. */
struct pvh_image {
	Elf64_Ehdr eh;
	Elf64_Phdr ph[2];
	Elf64_Nhdr nh;
	char name[4];
	uint32_t entry;
	uint8_t seg[4096];
};

static void test_pvh_segments_load_with_bss_zeroed_and_entry_from_the_note(void **state)
{
	struct boot_fixture *f = *state;
	struct pvh_image img;
	struct boot_info bi;
	char path[] = "/tmp/amber-vmlinux-XXXXXX", err[256] = "";
	uint32_t magic;

	memset(&img, 0, sizeof(img));
	memcpy(img.eh.e_ident, ELFMAG, SELFMAG);
	img.eh.e_ident[EI_CLASS] = ELFCLASS64;
	img.eh.e_machine = EM_X86_64;
	img.eh.e_phoff = offsetof(struct pvh_image, ph);
	img.eh.e_phentsize = sizeof(Elf64_Phdr);
	img.eh.e_phnum = 2;
	img.ph[0].p_type = PT_NOTE;
	img.ph[0].p_offset = offsetof(struct pvh_image, nh);
	img.ph[0].p_filesz = sizeof(img.nh) + 4 + 4;
	img.nh.n_namesz = 4;
	img.nh.n_descsz = 4;
	img.nh.n_type = 18;			/* XEN_ELFNOTE_PHYS32_ENTRY */
	memcpy(img.name, "Xen", 4);
	img.entry = 0x200040;
	img.ph[1].p_type = PT_LOAD;
	img.ph[1].p_offset = offsetof(struct pvh_image, seg);
	img.ph[1].p_paddr = 0x200000;
	img.ph[1].p_filesz = sizeof(img.seg);
	img.ph[1].p_memsz = 3 * sizeof(img.seg);
	for (size_t i = 0; i < sizeof(img.seg); i++)
		img.seg[i] = pattern(i, 3);
	write_file(path, &img, sizeof(img));

	assert_int_equal(boot_load_linux(&f->gm, path, f->initrd, "quiet", 0, &bi, err, sizeof(err)), 0);
	unlink(path);
	assert_int_equal(bi.kind, KERNEL_PVH);
	assert_int_equal(bi.entry, 0x200040);
	assert_int_equal(bi.params, BOOT_START_INFO_ADDR);
	assert_memory_equal(f->ram + 0x200000, img.seg, sizeof(img.seg));
	for (size_t i = sizeof(img.seg); i < 3 * sizeof(img.seg); i++)
		if (f->ram[0x200000 + i] != 0)
			fail_msg("bss byte %zu is not zero", i);
	memcpy(&magic, f->ram + BOOT_START_INFO_ADDR, 4);
	assert_int_equal(magic, 0x336ec578);
}

static void test_probe_reads_a_huge_sparse_kernel_without_loading_it(void **state)
{
	struct boot_fixture *f = *state;
	enum kernel_kind k = KERNEL_PVH;
	char err[256] = "";
	int fd = open(f->kernel, O_WRONLY);

	/* 64 GiB: only the header is read (reading it all would fail or take minutes). */
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 64LL << 30), 0);
	close(fd);
	assert_int_equal(boot_probe_kernel(f->kernel, &k, err, sizeof(err)), 0);
	assert_int_equal(k, KERNEL_BZIMAGE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bzimage_payload_and_initrd_land_in_guest_ram, setup, teardown),
		cmocka_unit_test_setup_teardown(test_multi_chunk_kernel_and_initrd_load_completely, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bzimage_too_big_for_ram_is_refused_with_the_reason, setup, teardown),
		cmocka_unit_test_setup_teardown(test_initrd_that_does_not_fit_is_refused_with_the_reason, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_initrd_is_named_in_the_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pvh_segments_load_with_bss_zeroed_and_entry_from_the_note, setup, teardown),
		cmocka_unit_test_setup_teardown(test_probe_reads_a_huge_sparse_kernel_without_loading_it, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
