/* memory.bin: sparse writing, digests, verification, lazy and copy restore. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>
#include <xxhash.h>

#include "amber/snapshot.h"

#define MIB (1ULL << 20)
#define SLOT0 (5 * MIB)		/* chunk 2 spans both slots */
#define SLOT1 (3 * MIB)

struct img_fixture {
	char dir[64];
	char path[96];
	struct guest_mem gm;
	uint8_t *ram[2];
};

/* RAM from mmap so lazy restore can map over it. */
static uint8_t *ram_new(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	return p;
}

static void guest_two_slots(struct guest_mem *gm, uint8_t *r0, uint8_t *r1)
{
	memset(gm, 0, sizeof(*gm));
	gm->slots[0] = (struct gmem_slot){ 0, SLOT0, r0 };
	gm->slots[1] = (struct gmem_slot){ GMEM_HIGH_START, SLOT1, r1 };
	gm->nslots = 2;
	gm->ram_size = SLOT0 + SLOT1;
	gm->memfd = -1;
}

static int setup(void **state)
{
	struct img_fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/amber-memimg-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/memory.bin", f->dir);
	f->ram[0] = ram_new(SLOT0);
	f->ram[1] = ram_new(SLOT1);
	/* a few touched pages: first page, one straddling chunk 2, the last one */
	memset(f->ram[0], 0x11, 4096);
	memset(f->ram[0] + 4 * MIB + 8192, 0x22, 3 * 4096);
	f->ram[0][SLOT0 - 1] = 0x33;
	memcpy(f->ram[1], "high memory", 11);
	f->ram[1][SLOT1 - 4096] = 0x44;
	guest_two_slots(&f->gm, f->ram[0], f->ram[1]);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct img_fixture *f = *state;

	unlink(f->path);
	rmdir(f->dir);
	munmap(f->ram[0], SLOT0);
	munmap(f->ram[1], SLOT1);
	free(f);
	return 0;
}

static int write_image(struct img_fixture *f, struct memimg *mi)
{
	int fd = open(f->path, O_RDWR | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(memimg_write(fd, &f->gm, mi), 0);
	return fd;
}

static void test_zero_pages_become_holes(void **state)
{
	struct img_fixture *f = *state;
	struct memimg mi;
	struct stat st;
	int fd = write_image(f, &mi);

	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, SLOT0 + SLOT1);
	/* 6 touched pages of 2048: far below the file size */
	assert_true((uint64_t)st.st_blocks * 512 < 256 * 1024);
	assert_true(mi.stored_bytes < 256 * 1024);
	assert_int_equal(mi.ndigests, 4);
	assert_int_equal(mi.nslots, 2);
	assert_true(mi.slots[1].gpa == GMEM_HIGH_START);
	assert_true(mi.slots[1].file_offset == SLOT0);
	assert_int_equal(memimg_verify(fd, &mi, (char[256]){ 0 }, 256), 0);
	memimg_free(&mi);
	close(fd);
}

static void test_file_is_ram_offset_ordered(void **state)
{
	struct img_fixture *f = *state;
	struct memimg mi;
	char buf[11];
	int fd = write_image(f, &mi);

	/* slot 1 (gpa 4 GiB) starts right after slot 0 */
	assert_int_equal(pread(fd, buf, 11, SLOT0), 11);
	assert_memory_equal(buf, "high memory", 11);
	memimg_free(&mi);
	close(fd);
}

static void test_copy_restore_reproduces_ram_and_zeroes_dirty_pages(void **state)
{
	struct img_fixture *f = *state;
	struct memimg mi;
	struct guest_mem dst;
	uint8_t *r0 = ram_new(SLOT0), *r1 = ram_new(SLOT1);
	char err[256] = "";
	int fd = write_image(f, &mi);

	guest_two_slots(&dst, r0, r1);
	memset(r0 + MIB, 0xee, 4096);	/* stale data where the image has a hole */
	assert_int_equal(memimg_restore(fd, &mi, &dst, MEMIMG_COPY, false, err, sizeof(err)), 0);
	assert_memory_equal(r0, f->ram[0], SLOT0);
	assert_memory_equal(r1, f->ram[1], SLOT1);

	/* fresh RAM: holes skipped, same result */
	memset(r0, 0, SLOT0);
	memset(r1, 0, SLOT1);
	assert_int_equal(memimg_restore(fd, &mi, &dst, MEMIMG_COPY, true, err, sizeof(err)), 0);
	assert_memory_equal(r0, f->ram[0], SLOT0);
	assert_memory_equal(r1, f->ram[1], SLOT1);
	munmap(r0, SLOT0);
	munmap(r1, SLOT1);
	memimg_free(&mi);
	close(fd);
}

/*
 * Copy mode reads memory.bin once: each chunk's digest is checked as it is
 * copied, and a damaged chunk stops the restore naming it (the chunks after it
 * are not copied).
 */
static void test_copy_restore_checks_each_chunk_digest_while_copying(void **state)
{
	struct img_fixture *f = *state;
	struct memimg mi;
	struct guest_mem dst;
	uint8_t *r0 = ram_new(SLOT0), *r1 = ram_new(SLOT1);
	char err[256] = "";
	int fd = write_image(f, &mi), rw = open(f->path, O_RDWR);

	assert_true(rw >= 0);
	assert_int_equal(pwrite(rw, "X", 1, 2 * MIB + 100), 1);	/* chunk 1 */
	close(rw);
	guest_two_slots(&dst, r0, r1);
	assert_int_equal(memimg_restore(fd, &mi, &dst, MEMIMG_COPY, true, err, sizeof(err)),
			 -EBADMSG);
	assert_non_null(strstr(err, "chunk 1 (bytes 0x200000-0x3fffff) does not match its digest"));
	assert_memory_equal(r0, f->ram[0], 2 * MIB);	/* chunk 0 was copied */
	assert_int_equal(r1[SLOT1 - 4096], 0);		/* the last chunk was not */
	munmap(r0, SLOT0);
	munmap(r1, SLOT1);
	memimg_free(&mi);
	close(fd);
}

static void test_lazy_restore_maps_private_at_the_same_host_address(void **state)
{
	struct img_fixture *f = *state;
	struct memimg mi;
	struct guest_mem dst;
	uint8_t *r0 = ram_new(SLOT0), *r1 = ram_new(SLOT1);
	char err[256] = "", b;
	int fd = write_image(f, &mi);

	guest_two_slots(&dst, r0, r1);
	assert_int_equal(memimg_restore(fd, &mi, &dst, MEMIMG_LAZY, true, err, sizeof(err)), 0);
	assert_ptr_equal(dst.slots[0].host, r0);	/* KVM memslots stay valid */
	assert_memory_equal(r0, f->ram[0], SLOT0);
	assert_memory_equal(r1, f->ram[1], SLOT1);
	/* guest writes stay private: the checkpoint is not modified */
	r1[0] = 'H';
	assert_int_equal(pread(fd, &b, 1, SLOT0), 1);
	assert_int_equal(b, 'h');
	assert_int_equal(memimg_verify(fd, &mi, err, sizeof(err)), 0);
	munmap(r0, SLOT0);
	munmap(r1, SLOT1);
	memimg_free(&mi);
	close(fd);
}

static void test_flipped_bit_is_found_and_chunk_named(void **state)
{
	struct img_fixture *f = *state;
	struct memimg mi;
	char err[512] = "", byte = 0x23;
	int fd = write_image(f, &mi);

	/* inside the touched pages of chunk 2 (4 MiB + 8 KiB) */
	assert_int_equal(pwrite(fd, &byte, 1, 4 * MIB + 8192 + 5), 1);
	assert_int_equal(memimg_verify(fd, &mi, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "memory.bin: chunk 2 (bytes 0x400000-0x5fffff) does not match "
				    "its digest: vm.json memory.digests[2] is "));
	memimg_free(&mi);
	close(fd);
}

static void test_data_in_a_hole_is_found(void **state)
{
	struct img_fixture *f = *state;
	struct memimg mi;
	char err[512] = "", byte = 1;
	int fd = write_image(f, &mi);

	/* chunk 1 was all zeros (one hole): a byte written there breaks its digest */
	assert_int_equal(pwrite(fd, &byte, 1, 3 * MIB), 1);
	assert_int_equal(memimg_verify(fd, &mi, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "chunk 1 "));
	memimg_free(&mi);
	close(fd);
}

static void test_truncated_image_is_refused(void **state)
{
	struct img_fixture *f = *state;
	struct memimg mi;
	char err[256] = "";
	int fd = write_image(f, &mi);

	assert_int_equal(ftruncate(fd, 2 * MIB), 0);
	assert_int_equal(memimg_check_file(fd, &mi, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "memory.bin: 2097152 bytes, but vm.json memory.size is 8388608 "
			    "(truncated)");
	assert_int_equal(memimg_verify(fd, &mi, err, sizeof(err)), -EINVAL);
	memimg_free(&mi);
	close(fd);
}

static void test_restore_refuses_a_different_ram_layout(void **state)
{
	struct img_fixture *f = *state;
	struct memimg mi;
	struct guest_mem dst;
	uint8_t *r0 = ram_new(SLOT0 + SLOT1);
	char err[256] = "";
	int fd = write_image(f, &mi);

	gmem_init_buffer(&dst, r0, SLOT0 + SLOT1);
	assert_int_equal(memimg_restore(fd, &mi, &dst, MEMIMG_COPY, true, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "memory: checkpoint has 2 RAM slots, this VM 1");
	munmap(r0, SLOT0 + SLOT1);
	memimg_free(&mi);
	close(fd);
}

static json_t *image_json(struct img_fixture *f, struct memimg *mi)
{
	int fd = write_image(f, mi);
	json_t *j = memimg_to_json(mi);

	close(fd);
	assert_non_null(j);
	return j;
}

static void test_memory_json_round_trip(void **state)
{
	struct img_fixture *f = *state;
	struct memimg mi, back;
	json_t *j = image_json(f, &mi);
	char err[256] = "";

	assert_int_equal(json_array_size(json_object_get(j, "digests")), 4);
	assert_int_equal(strlen(json_string_value(json_array_get(json_object_get(j, "digests"), 0))),
			 16);
	assert_int_equal(memimg_from_json(j, "memory", &back, err, sizeof(err)), 0);
	assert_true(back.size == mi.size);
	assert_int_equal(back.nslots, 2);
	assert_memory_equal(back.slots, mi.slots, sizeof(mi.slots));
	assert_memory_equal(back.digests, mi.digests, 4 * sizeof(uint64_t));
	memimg_free(&back);
	memimg_free(&mi);
	json_decref(j);
}

static void expect_memory_refused(struct img_fixture *f, void (*edit)(json_t *), const char *msg)
{
	struct memimg mi, back;
	json_t *j = image_json(f, &mi);
	char err[256] = "";

	edit(j);
	assert_int_equal(memimg_from_json(j, "memory", &back, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, msg);
	memimg_free(&mi);
	json_decref(j);
}

static void edit_size(json_t *j) { json_object_set_new(j, "size", json_integer(16 * MIB)); }
static void edit_offset(json_t *j)
{
	json_object_set_new(json_array_get(json_object_get(j, "slots"), 1), "file_offset",
			    json_integer(0));
}
static void edit_digest_count(json_t *j) { json_array_remove(json_object_get(j, "digests"), 0); }
static void edit_digest_hex(json_t *j)
{
	json_array_set_new(json_object_get(j, "digests"), 3, json_string("xyz"));
}
static void edit_chunk(json_t *j) { json_object_set_new(j, "chunk_size", json_integer(3000)); }
static void edit_unaligned(json_t *j)
{
	json_object_set_new(json_array_get(json_object_get(j, "slots"), 0), "size",
			    json_integer(SLOT0 - 100));
}

static void test_memory_json_inconsistencies_are_named(void **state)
{
	struct img_fixture *f = *state;

	expect_memory_refused(f, edit_size,
			      "memory: slots add up to 8388608 bytes but size is 16777216");
	expect_memory_refused(f, edit_offset, "memory.slots[1].file_offset = 0, expected 5242880 "
			      "(slots are stored one after the other)");
	expect_memory_refused(f, edit_digest_count, "memory.digests: 3 digests, expected 4 (one "
			      "per 2097152-byte chunk)");
	expect_memory_refused(f, edit_digest_hex, "memory.digests[3]: expected 16 hex digits");
	expect_memory_refused(f, edit_chunk, "memory.chunk_size = 3000 is not a power of two >= "
			      "4096");
	expect_memory_refused(f, edit_unaligned, "memory.slots[0]: gpa and size must be page "
			      "aligned and size > 0");
}

static int write_gm(const char *path, const struct guest_mem *gm, struct memimg *mi)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(memimg_write(fd, gm, mi), 0);
	return fd;
}

static void test_memfd_ram_untouched_pages_are_not_read(void **state)
{
	struct img_fixture *f = *state;
	struct guest_mem gm, buf;
	struct memimg a, b;
	struct stat before, after;
	uint8_t *copy = aligned_alloc(4096, 8 * MIB);
	char path2[128];
	int fa, fb;

	/* shared RAM in a memfd, as a vhost-user setup would have it */
	memset(&gm, 0, sizeof(gm));
	gm.memfd = memfd_create("test-ram", MFD_CLOEXEC);
	assert_true(gm.memfd >= 0);
	assert_int_equal(ftruncate(gm.memfd, 8 * MIB), 0);
	gm.slots[0].size = 8 * MIB;
	gm.slots[0].host = mmap(NULL, 8 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED, gm.memfd, 0);
	assert_true(gm.slots[0].host != MAP_FAILED);
	gm.nslots = 1;
	gm.ram_size = 8 * MIB;
	memset(gm.slots[0].host + 3 * MIB, 0x42, 5 * 4096);
	gm.slots[0].host[8 * MIB - 1] = 9;
	assert_int_equal(fstat(gm.memfd, &before), 0);
	fa = write_gm(f->path, &gm, &a);
	assert_int_equal(fstat(gm.memfd, &after), 0);
	/* the memfd's holes were skipped, not read (reading would allocate them) */
	assert_int_equal(after.st_blocks, before.st_blocks);
	/* the same bytes from a plain buffer give the same digests */
	memcpy(copy, gm.slots[0].host, 8 * MIB);
	gmem_init_buffer(&buf, copy, 8 * MIB);
	snprintf(path2, sizeof(path2), "%s/plain.bin", f->dir);
	fb = write_gm(path2, &buf, &b);
	assert_memory_equal(a.digests, b.digests, a.ndigests * sizeof(uint64_t));
	assert_int_equal(memimg_verify(fa, &a, (char[256]){ 0 }, 256), 0);
	close(fa);
	close(fb);
	unlink(path2);
	memimg_free(&a);
	memimg_free(&b);
	free(copy);
	munmap(gm.slots[0].host, 8 * MIB);
	close(gm.memfd);
}

static void test_checkpoint_after_lazy_restore_keeps_the_data(void **state)
{
	struct img_fixture *f = *state;
	struct guest_mem src, dst;
	struct memimg a, b;
	char path2[128], err[256] = "";
	int fa, fb;

	assert_int_equal(gmem_alloc(&src, 4 * MIB), 0);
	memset(src.slots[0].host + MIB, 0x61, 3 * 4096);
	fa = write_gm(f->path, &src, &a);
	assert_int_equal(gmem_alloc(&dst, 4 * MIB), 0);
	assert_int_equal(memimg_restore(fa, &a, &dst, MEMIMG_LAZY, true, err, sizeof(err)), 0);
	assert_true(dst.ram_from_file);
	dst.slots[0].host[2 * MIB] = 0x7e;	/* the guest runs on */
	src.slots[0].host[2 * MIB] = 0x7e;
	/* the memfd of dst is all holes now: it must not be trusted */
	snprintf(path2, sizeof(path2), "%s/second.bin", f->dir);
	fb = write_gm(path2, &dst, &b);
	memimg_free(&a);
	close(fa);
	fa = write_gm(f->path, &src, &a);
	assert_memory_equal(a.digests, b.digests, a.ndigests * sizeof(uint64_t));
	close(fa);
	close(fb);
	unlink(path2);
	memimg_free(&a);
	memimg_free(&b);
	gmem_free(&src);
	gmem_free(&dst);
}

/* ---- background verification (lazy restore) ---------------------------------- */

struct done_flag {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int calls;
};

static void verifier_done(void *opaque)
{
	struct done_flag *d = opaque;

	pthread_mutex_lock(&d->lock);
	d->calls++;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

static void wait_done(struct done_flag *d)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&d->lock);
	while (d->calls == 0 && pthread_cond_timedwait(&d->cond, &d->lock, &until) == 0)
		;
	pthread_mutex_unlock(&d->lock);
	assert_int_equal(d->calls, 1);
}

static void test_background_verifier_passes_a_good_image(void **state)
{
	struct img_fixture *f = *state;
	struct done_flag d = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
	struct memimg_verifier *v;
	struct memimg mi;
	char msg[512] = "x";
	uint64_t ns = 0;
	int fd = write_image(f, &mi);

	assert_int_equal(memimg_verify_start(fd, &mi, verifier_done, &d, &v), 0);
	wait_done(&d);
	assert_int_equal(memimg_verify_result(v, msg, sizeof(msg), &ns), 0);
	assert_string_equal(msg, "");
	assert_true(ns > 0);
	memimg_verify_stop(v);
	assert_int_equal(d.calls, 1);
	memimg_free(&mi);
	close(fd);
}

static void test_background_verifier_names_the_corrupt_chunk(void **state)
{
	struct img_fixture *f = *state;
	struct done_flag d = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
	struct memimg_verifier *v;
	struct memimg mi;
	char msg[512] = "", byte = 0x5a;
	int fd = write_image(f, &mi);

	assert_int_equal(pwrite(fd, &byte, 1, SLOT0 + 100), 1);	/* chunk 2 (slot 1) */
	assert_int_equal(memimg_verify_start(fd, &mi, verifier_done, &d, &v), 0);
	wait_done(&d);
	assert_int_equal(memimg_verify_result(v, msg, sizeof(msg), NULL), -EBADMSG);
	assert_non_null(strstr(msg, "memory.bin: chunk 2 (bytes 0x400000-0x5fffff) does not "
				    "match its digest"));
	memimg_verify_stop(v);
	memimg_free(&mi);
	close(fd);
}

static void test_background_verifier_stop_cancels_without_calling_back(void **state)
{
	struct img_fixture *f = *state;
	struct done_flag d = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
	struct memimg_verifier *v;
	struct memimg mi, big;
	int fd = write_image(f, &mi);

	/*
	 * The image followed by 8 TiB of holes, all digests right: a verifier
	 * that is not stopped takes seconds, then calls back (with success).
	 */
	uint8_t *zeros = calloc(1, mi.chunk_size);
	uint64_t zd;

	assert_non_null(zeros);
	zd = XXH3_64bits(zeros, mi.chunk_size);
	free(zeros);
	big = mi;
	big.size = 1ULL << 43;
	big.ndigests = (size_t)(big.size / big.chunk_size);
	big.digests = calloc(big.ndigests, sizeof(uint64_t));
	assert_non_null(big.digests);
	for (size_t c = 0; c < big.ndigests; c++)
		big.digests[c] = c < mi.ndigests ? mi.digests[c] : zd;
	assert_int_equal(ftruncate(fd, (off_t)big.size), 0);
	assert_int_equal(memimg_verify_start(fd, &big, verifier_done, &d, &v), 0);
	usleep(20000);
	memimg_verify_stop(v);
	assert_int_equal(d.calls, 0);
	free(big.digests);
	memimg_free(&mi);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_zero_pages_become_holes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_is_ram_offset_ordered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_restore_checks_each_chunk_digest_while_copying,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_restore_reproduces_ram_and_zeroes_dirty_pages,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_lazy_restore_maps_private_at_the_same_host_address,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_flipped_bit_is_found_and_chunk_named, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_data_in_a_hole_is_found, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_image_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_refuses_a_different_ram_layout, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_memory_json_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory_json_inconsistencies_are_named, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_memfd_ram_untouched_pages_are_not_read,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoint_after_lazy_restore_keeps_the_data,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_background_verifier_passes_a_good_image,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_background_verifier_names_the_corrupt_chunk,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_background_verifier_stop_cancels_without_calling_back, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
