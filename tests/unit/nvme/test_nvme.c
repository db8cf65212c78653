/*
 * NVMe controller component tests: the test plays the host driver against
 * the register interface, with guest RAM as a buffer and a temp-file image.
 */
#include "nvme_drv.h"

#include <pthread.h>
#include <sys/stat.h>

#include "amber/evloop.h"

#define SC_INVALID_PRP_OFFSET 0x13

/* ---- registers, enable, reset, shutdown ------------------------------------- */

static void test_cap_and_version_describe_the_controller(void **state)
{
	struct drv *d = drv_new();
	uint64_t cap = drv_rd32(d, NVME_REG_CAP) | (uint64_t)drv_rd32(d, NVME_REG_CAP + 4) << 32;

	assert_int_equal(cap & 0xffff, NVME_MQES);
	assert_true(cap & NVME_CAP_CQR);
	assert_int_equal((cap >> 32) & 0xf, 0);		/* DSTRD */
	assert_true(cap & NVME_CAP_CSS_NVM);
	assert_int_equal((cap >> 48) & 0xf, 0);		/* MPSMIN 4 KiB */
	assert_true(((cap >> 24) & 0xff) > 0);		/* TO */
	assert_int_equal(drv_rd32(d, NVME_REG_VS), 0x00010400);
	/* a 64-bit read of CAP returns both halves */
	assert_int_equal(mmio_rd(d->t, d->bar0, 8), cap);
	assert_int_equal(drv_rd32(d, NVME_REG_CSTS), 0);
	drv_free(d);
}

static void test_pci_class_and_bar0_sizing(void **state)
{
	struct drv *d = drv_new();
	struct pci_bus *bus = d->t->m.pci;
	unsigned devfn = (unsigned)d->c->pci.devfn;
	uint32_t lo, hi;

	assert_int_equal(pci_bus_config_read(bus, devfn, PCI_CLASS_PROG, 1), 0x02);
	assert_int_equal(pci_bus_config_read(bus, devfn, PCI_CLASS_DEVICE, 2), 0x0108);
	/* sizing: write all-ones, read back the size mask (PCI 3.0 §6.2.5.1) */
	pci_bus_config_write(bus, devfn, PCI_COMMAND, 0, 2);
	pci_bus_config_write(bus, devfn, PCI_BAR0, 0xffffffff, 4);
	pci_bus_config_write(bus, devfn, PCI_BAR0 + 4, 0xffffffff, 4);
	lo = pci_bus_config_read(bus, devfn, PCI_BAR0, 4);
	hi = pci_bus_config_read(bus, devfn, PCI_BAR0 + 4, 4);
	assert_int_equal(lo, (uint32_t)~(NVME_BAR0_SIZE - 1) | 0x4);	/* 64-bit memory */
	assert_int_equal(hi, 0xffffffff);
	drv_free(d);
}

static void test_enable_sets_ready_and_disable_clears_it(void **state)
{
	struct drv *d = drv_new();

	drv_enable(d, 16);
	assert_true(d->c->sq[0].valid && d->c->cq[0].valid);
	drv_wr32(d, NVME_REG_CC, 0);
	assert_int_equal(drv_rd32(d, NVME_REG_CSTS) & NVME_CSTS_RDY, 0);
	assert_false(d->c->sq[0].valid);
	drv_free(d);
}

static void test_admin_queue_outside_ram_sets_cfs(void **state)
{
	struct drv *d = drv_new();

	drv_wr32(d, NVME_REG_AQA, 0x000f000f);
	drv_wr32(d, NVME_REG_ASQ, 0);
	drv_wr32(d, NVME_REG_ASQ + 4, 0x10);		/* 64 GiB: no RAM there */
	drv_wr32(d, NVME_REG_ACQ, 0x1000);
	drv_wr32(d, NVME_REG_CC, NVME_CC_EN | 6u << 16 | 4u << 20);
	assert_int_equal(drv_rd32(d, NVME_REG_CSTS) & (NVME_CSTS_RDY | NVME_CSTS_CFS),
			 NVME_CSTS_CFS);
	/* a controller reset clears CFS; a good configuration then works */
	drv_wr32(d, NVME_REG_CC, 0);
	assert_int_equal(drv_rd32(d, NVME_REG_CSTS), 0);
	drv_enable(d, 16);
	drv_free(d);
}

static void test_shutdown_notification_sets_shst_complete(void **state)
{
	struct drv *d = drv_ready(16);
	uint32_t cc = drv_rd32(d, NVME_REG_CC);

	drv_wr32(d, NVME_REG_CC, cc | 1u << 14);	/* SHN = normal */
	assert_int_equal(drv_rd32(d, NVME_REG_CSTS) & NVME_CSTS_SHST_MASK,
			 NVME_CSTS_SHST_COMPLETE);
	drv_free(d);
}

static void test_cc_en_0_resets_queues(void **state)
{
	struct drv *d = drv_ready(16);
	struct nvme_cmd cmd;
	struct nvme_cqe e;
	uint64_t buf = drv_alloc(d, 1);

	drv_wr32(d, NVME_REG_CC, 0);
	assert_int_equal(drv_rd32(d, NVME_REG_CSTS) & NVME_CSTS_RDY, 0);
	assert_false(d->c->sq[1].valid);
	assert_false(d->c->cq[1].valid);
	/* a doorbell of the old queue is ignored */
	cmd = drv_rw(NVME_IO_READ, 1, 0, 1, buf, 0);
	drv_submit(d, 1, &cmd);
	nvme_poll(d->dev);
	assert_false(drv_peek(d, 1, &e));
	/* enabled again, queue 1 can be created anew */
	drv_enable(d, 16);
	assert_int_equal(drv_create_cq(d, 1, 16, 1), 0);
	assert_int_equal(drv_create_sq(d, 1, 16, 1), 0);
	drv_free(d);
}

/* ---- Identify ------------------------------------------------------------------ */

static void identify(struct drv *d, uint8_t cns, uint32_t nsid, uint64_t prp1, uint64_t prp2,
		     uint16_t expect)
{
	struct nvme_cmd cmd = { .opc = NVME_ADM_IDENTIFY, .nsid = nsid, .prp1 = prp1,
				.prp2 = prp2, .cdw10 = cns };

	assert_int_equal(drv_admin(d, &cmd, NULL), expect);
}

static void test_identify_controller_fields_a_driver_reads(void **state)
{
	struct drv *d = drv_new_args("serial=SER123");
	uint64_t buf;
	uint8_t *id;

	drv_enable(d, 16);
	buf = drv_alloc(d, 1);
	identify(d, 1, 0, buf, 0, 0);
	id = drv_ptr(d, buf);
	assert_int_equal(id[0] | id[1] << 8, NVME_PCI_VENDOR);
	assert_memory_equal(id + 4, "SER123              ", 20);
	assert_memory_equal(id + 24, "amber NVMe Ctrl", 15);
	assert_int_equal(id[77], NVME_MDTS);
	assert_int_equal(id[80] | id[81] << 8 | id[82] << 16, 0x010400);
	assert_int_equal(id[111], 1);			/* I/O controller */
	assert_true((id[256] | id[257] << 8) & 0x100);	/* doorbell buffer config */
	assert_int_equal(id[259], NVME_AERL);
	assert_int_equal(id[512], 0x66);
	assert_int_equal(id[513], 0x44);
	assert_int_equal(id[516], 1);			/* NN */
	assert_int_equal(id[520] & 0xc, 0xc);		/* DSM, Write Zeroes */
	assert_int_equal(id[525] & 1, 1);		/* VWC */
	assert_memory_equal(id + 768, "nqn.", 4);
	drv_free(d);
}

static void test_identify_crossing_a_page_boundary_uses_prp2(void **state)
{
	struct drv *d = drv_new();
	uint64_t straight, split, second;
	uint8_t *a, expect[4096];

	drv_enable(d, 16);
	straight = drv_alloc(d, 1);
	identify(d, 1, 0, straight, 0, 0);
	memcpy(expect, drv_ptr(d, straight), 4096);
	/* PRP1 at offset 0x800 of its page: the rest goes to PRP2's page */
	split = drv_alloc(d, 1);
	drv_alloc(d, 1);		/* keep the pages apart */
	second = drv_alloc(d, 1);
	memset(drv_ptr(d, split), 0xee, 4096);
	memset(drv_ptr(d, second), 0xee, 4096);
	identify(d, 1, 0, split + 0x800, second, 0);
	a = drv_ptr(d, split);
	assert_memory_equal(a + 0x800, expect, 0x800);
	assert_memory_equal(drv_ptr(d, second), expect + 0x800, 0x800);
	assert_int_equal(a[0x7ff], 0xee);		/* nothing before the offset */
	assert_int_equal(((uint8_t *)drv_ptr(d, second))[0x800], 0xee);
	drv_free(d);
}

static void test_identify_namespace_and_lists(void **state)
{
	struct drv *d = drv_new();
	char err[256], img2[64];
	uint64_t buf;
	uint8_t *id;
	uint64_t nsze;

	drv_make_image(img2, sizeof(img2), 1 << 20);
	assert_int_equal(nvme_add_namespace(d->dev, img2, true, err, sizeof(err)), 0);
	drv_enable(d, 16);
	buf = drv_alloc(d, 1);
	id = drv_ptr(d, buf);

	identify(d, 0, 1, buf, 0, 0);
	memcpy(&nsze, id, 8);
	assert_int_equal(nsze, DRV_IMG_SIZE / 512);
	assert_int_equal(id[25], 0);			/* one LBA format */
	assert_int_equal(id[128 + 2], 9);		/* LBADS: 512 bytes */
	assert_int_equal(id[99], 0);			/* writable */

	identify(d, 0, 2, buf, 0, 0);
	memcpy(&nsze, id, 8);
	assert_int_equal(nsze, (1 << 20) / 512);
	assert_int_equal(id[99], 1);			/* write protected */

	identify(d, 2, 0, buf, 0, 0);			/* active namespace list */
	assert_int_equal(id[0], 1);
	assert_int_equal(id[4], 2);
	assert_int_equal(id[8], 0);
	identify(d, 2, 1, buf, 0, 0);
	assert_int_equal(id[0], 2);

	identify(d, 3, 1, buf, 0, 0);			/* descriptors: NGUID, UUID */
	assert_int_equal(id[0], 2);
	assert_int_equal(id[1], 16);
	assert_int_equal(id[20], 3);

	identify(d, 0, 3, buf, 0, NVME_INVALID_NAMESPACE);
	identify(d, 0, 0, buf, 0, NVME_INVALID_NAMESPACE);
	identify(d, 9, 0, buf, 0, NVME_INVALID_FIELD);
	unlink(img2);
	drv_free(d);
}

static void test_namespace_size_not_multiple_of_512_is_refused(void **state)
{
	struct drv *d = drv_new();
	char err[256], img2[64];
	int fd;

	drv_make_image(img2, sizeof(img2), 1000);
	assert_int_equal(nvme_add_namespace(d->dev, img2, false, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, img2));
	assert_non_null(strstr(err, "512"));
	fd = open(img2, O_RDONLY);
	close(fd);
	unlink(img2);
	drv_free(d);
}

/* ---- I/O and the PRP walker ---------------------------------------------------------- */

/* Write n blocks from data at lba, checked against the image. */
static void write_blocks(struct drv *d, uint64_t lba, uint32_t nlb, uint64_t prp1,
			 uint64_t prp2)
{
	struct nvme_cmd cmd = drv_rw(NVME_IO_WRITE, 1, lba, nlb, prp1, prp2);

	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), 0);
}

static void read_blocks(struct drv *d, uint64_t lba, uint32_t nlb, uint64_t prp1, uint64_t prp2)
{
	struct nvme_cmd cmd = drv_rw(NVME_IO_READ, 1, lba, nlb, prp1, prp2);

	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), 0);
}

static void test_write_then_read_single_page(void **state)
{
	struct drv *d = drv_ready(16);
	uint64_t w = drv_alloc(d, 1), r = drv_alloc(d, 1);
	uint8_t file[4096];

	drv_fill(drv_ptr(d, w), 4096, 1);
	write_blocks(d, 8, 8, w, 0);
	drv_pread(d, file, 4096, 8 * 512);
	assert_memory_equal(file, drv_ptr(d, w), 4096);
	read_blocks(d, 8, 8, r, 0);
	assert_memory_equal(drv_ptr(d, r), drv_ptr(d, w), 4096);
	drv_free(d);
}

/*
 * An MMIO submission doorbell posts the completions that the backend finished
 * inside io_uring_submit before the write returns (nvme_poll_inline): a read
 * of a page in the page cache needs no event-loop turn and no other thread.
 * io_uring may still hand a read to a worker now and then, so the test tries
 * a few times and needs one inline completion.
 */
static void test_mmio_doorbell_posts_inline_completions(void **state)
{
	struct drv *d = drv_ready(16);
	uint64_t w = drv_alloc(d, 1), r = drv_alloc(d, 1);
	bool inline_seen = false;

	drv_fill(drv_ptr(d, w), 4096, 3);
	write_blocks(d, 8, 8, w, 0);
	for (int i = 0; i < 20 && !inline_seen; i++) {
		struct nvme_cmd cmd = drv_rw(NVME_IO_READ, 1, 8, 8, r, 0);
		struct nvme_cqe e;
		uint16_t cid = drv_submit(d, 1, &cmd);

		inline_seen = drv_peek(d, 1, &e);
		assert_true(drv_wait(d, 1, &e));
		assert_int_equal(e.cid, cid);
		assert_int_equal(drv_status(&e), NVME_SUCCESS);
	}
	assert_true(inline_seen);
	assert_memory_equal(drv_ptr(d, r), drv_ptr(d, w), 4096);
	drv_free(d);
}

static void test_write_then_read_two_pages_prp2_is_data(void **state)
{
	struct drv *d = drv_ready(16);
	uint64_t w1 = drv_alloc(d, 1), gap = drv_alloc(d, 1), w2 = drv_alloc(d, 1);
	uint64_t r1 = drv_alloc(d, 1), r2 = drv_alloc(d, 2) + 4096;
	uint8_t file[8192];

	(void)gap;
	drv_fill(drv_ptr(d, w1), 4096, 2);
	drv_fill(drv_ptr(d, w2), 4096, 3);
	write_blocks(d, 100, 16, w1, w2);
	drv_pread(d, file, 8192, 100 * 512);
	assert_memory_equal(file, drv_ptr(d, w1), 4096);
	assert_memory_equal(file + 4096, drv_ptr(d, w2), 4096);
	read_blocks(d, 100, 16, r1, r2);
	assert_memory_equal(drv_ptr(d, r1), file, 4096);
	assert_memory_equal(drv_ptr(d, r2), file + 4096, 4096);
	drv_free(d);
}

/* n data pages, scattered (every other page), described by a PRP list. */
static void scattered(struct drv *d, unsigned n, uint64_t *pages)
{
	for (unsigned i = 0; i < n; i++) {
		pages[i] = drv_alloc(d, 2);
		drv_fill(drv_ptr(d, pages[i]), 4096, 10 + i);
	}
}

static void test_write_then_read_many_pages_prp2_is_list(void **state)
{
	struct drv *d = drv_ready(16);
	uint64_t pages[32], list = drv_alloc(d, 1), rbuf;
	uint64_t *ent = drv_ptr(d, list);
	uint8_t *file = malloc(32 * 4096);

	scattered(d, 32, pages);
	for (unsigned i = 1; i < 32; i++)
		ent[i - 1] = pages[i];
	write_blocks(d, 256, 256, pages[0], list);
	drv_pread(d, file, 32 * 4096, 256 * 512);
	for (unsigned i = 0; i < 32; i++)
		assert_memory_equal(file + i * 4096, drv_ptr(d, pages[i]), 4096);
	/* read back into one contiguous buffer through a list */
	rbuf = drv_alloc(d, 32);
	for (unsigned i = 1; i < 32; i++)
		ent[i - 1] = rbuf + i * 4096;
	read_blocks(d, 256, 256, rbuf, list);
	assert_memory_equal(drv_ptr(d, rbuf), file, 32 * 4096);
	free(file);
	drv_free(d);
}

static void test_prp_list_chains_to_next_list_page(void **state)
{
	struct drv *d = drv_ready(16);
	uint64_t pages[10], l1 = drv_alloc(d, 1), l2 = drv_alloc(d, 1);
	/* the first list starts 4 entries before the end of its page */
	uint64_t list = l1 + 4096 - 4 * 8;
	uint64_t *e1 = drv_ptr(d, list), *e2 = drv_ptr(d, l2);
	uint8_t file[10 * 4096];

	scattered(d, 10, pages);
	e1[0] = pages[1];
	e1[1] = pages[2];
	e1[2] = pages[3];
	e1[3] = l2;		/* last entry of the page: the next list page */
	for (unsigned i = 4; i < 10; i++)
		e2[i - 4] = pages[i];
	write_blocks(d, 1000, 80, pages[0], list);
	drv_pread(d, file, sizeof(file), 1000 * 512);
	for (unsigned i = 0; i < 10; i++)
		assert_memory_equal(file + i * 4096, drv_ptr(d, pages[i]), 4096);
	drv_free(d);
}

static void test_prp1_with_offset(void **state)
{
	struct drv *d = drv_ready(16);
	uint64_t p1 = drv_alloc(d, 2), p2 = drv_alloc(d, 1);
	uint8_t file[4096], expect[4096];

	/* 4 KiB starting 0x200 into the first page: 3.5 KiB there, 512 B in PRP2 */
	drv_fill(drv_ptr(d, p1 + 0x200), 4096 - 0x200, 4);
	drv_fill(drv_ptr(d, p2), 0x200, 5);
	memcpy(expect, drv_ptr(d, p1 + 0x200), 4096 - 0x200);
	memcpy(expect + 4096 - 0x200, drv_ptr(d, p2), 0x200);
	write_blocks(d, 40, 8, p1 + 0x200, p2);
	drv_pread(d, file, 4096, 40 * 512);
	assert_memory_equal(file, expect, 4096);
	drv_free(d);
}

static void test_prp_list_entry_with_offset_is_invalid_prp_offset(void **state)
{
	struct drv *d = drv_ready(16);
	uint64_t pages[3], list = drv_alloc(d, 1);
	uint64_t *ent = drv_ptr(d, list);
	struct nvme_cmd cmd;

	scattered(d, 3, pages);
	ent[0] = pages[1];
	ent[1] = pages[2] + 0x100;	/* only PRP1 may have an offset */
	cmd = drv_rw(NVME_IO_WRITE, 1, 0, 24, pages[0], list);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), SC_INVALID_PRP_OFFSET);
	/* PRP2 as the second data page must be page aligned too */
	cmd = drv_rw(NVME_IO_WRITE, 1, 0, 16, pages[0], pages[1] + 8);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), SC_INVALID_PRP_OFFSET);
	/* PRP1 not dword aligned */
	cmd = drv_rw(NVME_IO_READ, 1, 0, 1, pages[0] + 2, 0);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), SC_INVALID_PRP_OFFSET);
	drv_free(d);
}

static void test_prp_outside_ram_is_data_transfer_error(void **state)
{
	struct drv *d = drv_ready(16);
	uint64_t p = drv_alloc(d, 1), list = drv_alloc(d, 1);
	uint64_t *ent = drv_ptr(d, list);
	struct nvme_cmd cmd;

	cmd = drv_rw(NVME_IO_READ, 1, 0, 8, 0x40000000ULL, 0);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), NVME_DATA_TRANSFER_ERROR);
	/* a list entry outside RAM */
	ent[0] = p;
	ent[1] = 0x7fff0000000ULL;
	cmd = drv_rw(NVME_IO_READ, 1, 0, 24, p, list);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), NVME_DATA_TRANSFER_ERROR);
	/* the list itself outside RAM */
	cmd = drv_rw(NVME_IO_WRITE, 1, 0, 24, p, 0x7fff0000000ULL);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), NVME_DATA_TRANSFER_ERROR);
	/* an Identify buffer outside RAM: admin data goes through the same walker */
	identify(d, 1, 0, DRV_RAM - 0x800, 0x7fff0000000ULL, NVME_DATA_TRANSFER_ERROR);
	drv_free(d);
}

static void test_lba_out_of_range(void **state)
{
	struct drv *d = drv_ready(16);
	uint64_t p = drv_alloc(d, 1);
	uint64_t nlba = DRV_IMG_SIZE / 512;
	struct nvme_cmd cmd;

	cmd = drv_rw(NVME_IO_READ, 1, nlba - 1, 2, p, 0);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), NVME_LBA_OUT_OF_RANGE);
	cmd = drv_rw(NVME_IO_WRITE, 1, ~0ULL - 1, 8, p, 0);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), NVME_LBA_OUT_OF_RANGE);
	cmd = drv_rw(NVME_IO_READ, 1, nlba - 1, 1, p, 0);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), 0);
	cmd = drv_rw(NVME_IO_READ, 2, 0, 1, p, 0);	/* no namespace 2 */
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), NVME_INVALID_NAMESPACE);
	cmd = drv_rw(0x7f, 1, 0, 1, p, 0);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), NVME_INVALID_OPCODE);
	drv_free(d);
}

static void test_write_zeroes_really_zeroes(void **state)
{
	struct drv *d = drv_ready(16);
	uint64_t w = drv_alloc(d, 4);
	uint8_t file[16384], zero[16384] = { 0 };
	struct nvme_cmd cmd;

	drv_fill(drv_ptr(d, w), 16384, 6);
	cmd = drv_rw(NVME_IO_WRITE, 1, 64, 8, w, 0);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), 0);
	cmd = drv_rw(NVME_IO_WRITE, 1, 72, 8, w + 4096, 0);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), 0);
	cmd = drv_rw(NVME_IO_WRITE_ZEROES, 1, 66, 12, 0, 0);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), 0);
	drv_pread(d, file, 8192, 64 * 512);
	assert_memory_equal(file, drv_ptr(d, w), 1024);			/* 64, 65 kept */
	assert_memory_equal(file + 1024, zero, 12 * 512);		/* 66..77 zero */
	assert_memory_equal(file + 78 * 512 - 64 * 512,
			    (uint8_t *)drv_ptr(d, w + 4096) + 6 * 512, 2 * 512);
	/* with DEAC: deallocate, still reads as zeroes */
	cmd = drv_rw(NVME_IO_WRITE_ZEROES, 1, 64, 2, 0, 0);
	cmd.cdw12 |= 1u << 25;
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), 0);
	drv_pread(d, file, 1024, 64 * 512);
	assert_memory_equal(file, zero, 1024);
	drv_free(d);
}

static void test_dsm_deallocate_punches_holes(void **state)
{
	struct drv *d = drv_ready(16);
	uint64_t w = drv_alloc(d, 128), rng = drv_alloc(d, 1), pages[127];
	uint64_t list = drv_alloc(d, 1), *ent = drv_ptr(d, list);
	struct nvme_dsm_r { uint32_t attr, nlb; uint64_t slba; } *r = drv_ptr(d, rng);
	struct nvme_cmd cmd;
	struct stat st;
	uint8_t file[4096], zero[4096] = { 0 };
	blkcnt_t before;

	/* 512 KiB of data at LBA 0, then 512 KiB at 1024 */
	drv_fill(drv_ptr(d, w), 128 * 4096, 7);
	for (unsigned i = 0; i < 127; i++)
		ent[i] = pages[i] = w + (i + 1) * 4096ULL;
	cmd = drv_rw(NVME_IO_WRITE, 1, 0, 1024, w, list);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), 0);
	cmd = drv_rw(NVME_IO_WRITE, 1, 1024, 1024, w, list);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), 0);
	cmd = (struct nvme_cmd){ .opc = NVME_IO_FLUSH, .nsid = 1 };
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), 0);
	assert_int_equal(stat(d->img, &st), 0);
	before = st.st_blocks;
	assert_true(before >= 2048);

	/* two ranges, one of them empty, deallocating both halves */
	r[0] = (struct nvme_dsm_r){ 0, 1024, 0 };
	r[1] = (struct nvme_dsm_r){ 0, 0, 5 };
	r[2] = (struct nvme_dsm_r){ 0, 1024, 1024 };
	cmd = (struct nvme_cmd){ .opc = NVME_IO_DSM, .nsid = 1, .prp1 = rng };
	cmd.cdw10 = 2;			/* 3 ranges */
	cmd.cdw11 = 1u << 2;		/* AD */
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), 0);
	assert_int_equal(stat(d->img, &st), 0);
	assert_true(st.st_blocks + 2048 <= before);
	drv_pread(d, file, sizeof(file), 1024 * 512);
	assert_memory_equal(file, zero, sizeof(file));

	/* a range beyond the namespace: nothing is deallocated */
	r[0] = (struct nvme_dsm_r){ 0, 8, DRV_IMG_SIZE / 512 - 4 };
	cmd.cdw10 = 0;
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), NVME_LBA_OUT_OF_RANGE);
	(void)pages;
	drv_free(d);
}

static void test_read_only_namespace_refuses_writes(void **state)
{
	struct drv *d = drv_new_args("ro");
	uint64_t p;
	struct nvme_cmd cmd;

	drv_enable(d, 16);
	assert_int_equal(drv_create_cq(d, 1, 16, 1), 0);
	assert_int_equal(drv_create_sq(d, 1, 16, 1), 0);
	p = drv_alloc(d, 1);
	cmd = drv_rw(NVME_IO_WRITE, 1, 0, 1, p, 0);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), NVME_NS_WRITE_PROTECTED);
	cmd = drv_rw(NVME_IO_READ, 1, 0, 1, p, 0);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), 0);
	drv_free(d);
}

/* ---- queue management ------------------------------------------------------------ */

/* An admin command from its opcode, PRP1, CDW10 and CDW11: the status, dw0 in *dw0. */
static uint16_t admin_raw(struct drv *d, uint8_t opc, uint64_t prp1, uint32_t cdw10,
			  uint32_t cdw11, uint32_t *dw0)
{
	struct nvme_cmd cmd = { .opc = opc, .prp1 = prp1, .cdw10 = cdw10, .cdw11 = cdw11 };

	return drv_admin(d, &cmd, dw0);
}

static uint16_t create_cq_raw(struct drv *d, uint32_t cdw10, uint32_t cdw11, uint64_t base)
{
	return admin_raw(d, NVME_ADM_CREATE_CQ, base, cdw10, cdw11, NULL);
}

static uint16_t create_sq_raw(struct drv *d, uint32_t cdw10, uint32_t cdw11, uint64_t base)
{
	return admin_raw(d, NVME_ADM_CREATE_SQ, base, cdw10, cdw11, NULL);
}

static void test_create_queue_errors(void **state)
{
	struct drv *d = drv_new();
	uint64_t mem;
	struct nvme_cmd cmd;

	drv_enable(d, 16);
	mem = drv_alloc(d, 64);
	/* CQ: qid 0, qid above the maximum */
	assert_int_equal(create_cq_raw(d, 15u << 16 | 0, 3, mem), NVME_INVALID_QID);
	assert_int_equal(create_cq_raw(d, 15u << 16 | (NVME_MAX_IOQ + 1), 3, mem),
			 NVME_INVALID_QID);
	/* size 1 (QSIZE 0) and above MQES */
	assert_int_equal(create_cq_raw(d, 0u << 16 | 1, 3, mem), NVME_INVALID_QSIZE);
	assert_int_equal(create_cq_raw(d, (uint32_t)(NVME_MQES + 1) << 16 | 1, 3, mem),
			 NVME_INVALID_QSIZE);
	/* not physically contiguous while CAP.CQR = 1 */
	assert_int_equal(create_cq_raw(d, 15u << 16 | 1, 2, mem), NVME_INVALID_FIELD);
	/* interrupt vector beyond the MSI-X table */
	assert_int_equal(create_cq_raw(d, 15u << 16 | 1, (uint32_t)NVME_NVEC << 16 | 3, mem),
			 NVME_INVALID_VECTOR);
	/* base outside RAM */
	assert_int_equal(create_cq_raw(d, 15u << 16 | 1, 3, 0x40000000ULL), NVME_INVALID_FIELD);
	/* good one; then the same qid again */
	assert_int_equal(create_cq_raw(d, 15u << 16 | 1, 1u << 16 | 3, mem), 0);
	assert_int_equal(create_cq_raw(d, 15u << 16 | 1, 1u << 16 | 3, mem), NVME_INVALID_QID);
	/* SQ: on a CQ that does not exist, on the admin CQ */
	assert_int_equal(create_sq_raw(d, 15u << 16 | 1, 2u << 16 | 1, mem + 8192),
			 NVME_CQ_INVALID);
	assert_int_equal(create_sq_raw(d, 15u << 16 | 1, 0u << 16 | 1, mem + 8192),
			 NVME_CQ_INVALID);
	assert_int_equal(create_sq_raw(d, 15u << 16 | 0, 1u << 16 | 1, mem + 8192),
			 NVME_INVALID_QID);
	assert_int_equal(create_sq_raw(d, 0u << 16 | 1, 1u << 16 | 1, mem + 8192),
			 NVME_INVALID_QSIZE);
	assert_int_equal(create_sq_raw(d, 15u << 16 | 1, 1u << 16 | 0, mem + 8192),
			 NVME_INVALID_FIELD);
	assert_int_equal(create_sq_raw(d, 15u << 16 | 1, 1u << 16 | 1, mem + 8192), 0);
	/* deleting a CQ still in use */
	cmd = (struct nvme_cmd){ .opc = NVME_ADM_DELETE_CQ, .cdw10 = 1 };
	assert_int_equal(drv_admin(d, &cmd, NULL), NVME_INVALID_QUEUE_DELETION);
	cmd = (struct nvme_cmd){ .opc = NVME_ADM_DELETE_SQ, .cdw10 = 2 };
	assert_int_equal(drv_admin(d, &cmd, NULL), NVME_INVALID_QID);
	cmd = (struct nvme_cmd){ .opc = NVME_ADM_DELETE_SQ, .cdw10 = 1 };
	assert_int_equal(drv_admin(d, &cmd, NULL), 0);
	cmd = (struct nvme_cmd){ .opc = NVME_ADM_DELETE_CQ, .cdw10 = 1 };
	assert_int_equal(drv_admin(d, &cmd, NULL), 0);
	cmd = (struct nvme_cmd){ .opc = NVME_ADM_DELETE_CQ, .cdw10 = 1 };
	assert_int_equal(drv_admin(d, &cmd, NULL), NVME_INVALID_QID);
	cmd = (struct nvme_cmd){ .opc = 0x7e };
	assert_int_equal(drv_admin(d, &cmd, NULL), NVME_INVALID_OPCODE);
	drv_free(d);
}

static void test_delete_sq_waits_for_in_flight_io(void **state)
{
	struct drv *d = drv_ready(16);
	uint64_t p = drv_alloc(d, 1);
	struct nvme_cmd cmd = drv_rw(NVME_IO_WRITE, 1, 0, 8, p, 0);
	struct nvme_cqe e;
	uint16_t io_cid, del_cid;

	io_cid = drv_submit(d, 1, &cmd);
	cmd = (struct nvme_cmd){ .opc = NVME_ADM_DELETE_SQ, .cdw10 = 1 };
	del_cid = drv_submit(d, 0, &cmd);
	if (d->c->inflight) {
		/* the delete is held until the write is back */
		assert_false(drv_peek(d, 0, &e));
	}
	assert_true(drv_wait(d, 1, &e));
	assert_int_equal(e.cid, io_cid);
	assert_int_equal(drv_status(&e), 0);
	assert_true(drv_wait(d, 0, &e));
	assert_int_equal(e.cid, del_cid);
	assert_int_equal(drv_status(&e), 0);
	assert_false(d->c->sq[1].valid);
	drv_free(d);
}

/* ---- features, logs, events --------------------------------------------------------- */

static uint16_t get_feature(struct drv *d, uint8_t fid, uint32_t cdw11, uint32_t *dw0)
{
	return admin_raw(d, NVME_ADM_GET_FEATURES, 0, fid, cdw11, dw0);
}

static uint16_t set_feature(struct drv *d, uint8_t fid, uint32_t cdw11, uint32_t *dw0)
{
	return admin_raw(d, NVME_ADM_SET_FEATURES, 0, fid, cdw11, dw0);
}

static void test_features_get_and_set(void **state)
{
	struct drv *d = drv_new();
	uint32_t dw0;
	struct nvme_cmd cmd;

	drv_enable(d, 16);
	assert_int_equal(set_feature(d, NVME_FEAT_NUM_QUEUES, 3u << 16 | 3, &dw0), 0);
	assert_int_equal(dw0, (NVME_MAX_IOQ - 1) << 16 | (NVME_MAX_IOQ - 1));
	assert_int_equal(set_feature(d, NVME_FEAT_NUM_QUEUES, 0xffff, &dw0), NVME_INVALID_FIELD);
	assert_int_equal(get_feature(d, NVME_FEAT_VWC, 0, &dw0), 0);
	assert_int_equal(dw0, 1);
	assert_int_equal(set_feature(d, NVME_FEAT_VWC, 0, NULL), 0);
	assert_int_equal(get_feature(d, NVME_FEAT_VWC, 0, &dw0), 0);
	assert_int_equal(dw0, 0);
	assert_int_equal(set_feature(d, NVME_FEAT_IRQ_COALESCE, 0x0a05, NULL), 0);
	assert_int_equal(get_feature(d, NVME_FEAT_IRQ_COALESCE, 0, &dw0), 0);
	assert_int_equal(dw0, 0x0a05);
	assert_int_equal(set_feature(d, NVME_FEAT_ARBITRATION, 0x3, NULL), 0);
	assert_int_equal(get_feature(d, NVME_FEAT_ARBITRATION, 0, &dw0), 0);
	assert_int_equal(dw0, 3);
	assert_int_equal(set_feature(d, NVME_FEAT_ASYNC_EVENT, 0x2, NULL), 0);
	assert_int_equal(get_feature(d, NVME_FEAT_TEMP_THRESH, 0, &dw0), 0);
	assert_int_equal(dw0, NVME_WCTEMP);
	/* default value (SEL = 1) of a changed feature */
	cmd = (struct nvme_cmd){ .opc = NVME_ADM_GET_FEATURES, .cdw10 = 1u << 8 | NVME_FEAT_VWC };
	assert_int_equal(drv_admin(d, &cmd, &dw0), 0);
	assert_int_equal(dw0, 1);
	/* SV: nothing can be saved */
	cmd = (struct nvme_cmd){ .opc = NVME_ADM_SET_FEATURES, .cdw10 = 1u << 31 | NVME_FEAT_VWC };
	assert_int_equal(drv_admin(d, &cmd, NULL), NVME_FEAT_NOT_SAVEABLE);
	assert_int_equal(get_feature(d, 0x7f, 0, NULL), NVME_INVALID_FIELD);
	/* number of queues only before I/O queues exist */
	assert_int_equal(drv_create_cq(d, 1, 16, 1), 0);
	assert_int_equal(set_feature(d, NVME_FEAT_NUM_QUEUES, 0, NULL),
			 NVME_COMMAND_SEQUENCE_ERROR);
	drv_free(d);
}

static uint16_t get_log(struct drv *d, uint8_t lid, uint32_t bytes, uint64_t prp1, bool rae)
{
	struct nvme_cmd cmd = { .opc = NVME_ADM_GET_LOG_PAGE, .nsid = 0xffffffff, .prp1 = prp1 };

	cmd.cdw10 = lid | (rae ? 1u << 15 : 0) | ((bytes / 4 - 1) & 0xffff) << 16;
	return drv_admin(d, &cmd, NULL);
}

static void test_smart_and_firmware_logs(void **state)
{
	struct drv *d = drv_ready(16);
	uint64_t buf = drv_alloc(d, 1), p = drv_alloc(d, 1);
	uint8_t *log = drv_ptr(d, buf);
	struct nvme_cmd cmd = drv_rw(NVME_IO_WRITE, 1, 0, 8, p, 0);
	uint64_t v;

	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), 0);
	cmd = drv_rw(NVME_IO_READ, 1, 0, 8, p, 0);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), 0);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), 0);
	assert_int_equal(get_log(d, NVME_LOG_SMART, 512, buf, false), 0);
	assert_int_equal(log[1] | log[2] << 8, NVME_TEMPERATURE);
	memcpy(&v, log + 64, 8);
	assert_int_equal(v, 2);				/* host read commands */
	memcpy(&v, log + 80, 8);
	assert_int_equal(v, 1);				/* host write commands */
	memcpy(&v, log + 32, 8);
	assert_int_equal(v, 1);				/* 16 sectors -> 1 unit */
	assert_int_equal(get_log(d, NVME_LOG_FW_SLOT, 512, buf, false), 0);
	assert_int_equal(log[0], 1);
	assert_int_equal(get_log(d, 0x70, 512, buf, false), NVME_INVALID_LOG_PAGE);
	drv_free(d);
}

static void test_bad_sq_doorbell_raises_async_event_with_error_log(void **state)
{
	struct drv *d = drv_ready(16);
	struct nvme_cmd aer = { .opc = NVME_ADM_ASYNC_EVENT };
	uint64_t buf = drv_alloc(d, 1);
	uint8_t *log = drv_ptr(d, buf);
	struct nvme_cqe e;
	uint16_t cid;

	cid = drv_submit(d, 0, &aer);
	assert_false(drv_peek(d, 0, &e));		/* held */
	drv_wr32(d, NVME_REG_DBS + 8, 16);		/* SQ 1 tail = its size */
	assert_true(drv_wait(d, 0, &e));
	assert_int_equal(e.cid, cid);
	assert_int_equal(drv_status(&e), 0);
	assert_int_equal(e.dw0 & 7, NVME_AER_TYPE_ERROR);
	assert_int_equal((e.dw0 >> 8) & 0xff, NVME_AER_INFO_INVALID_DB_VALUE);
	assert_int_equal((e.dw0 >> 16) & 0xff, NVME_LOG_ERROR);
	assert_int_equal(d->c->sq[1].tail, 0);		/* the write was ignored */

	/* masked until the log is read: a second event waits */
	cid = drv_submit(d, 0, &aer);
	drv_wr32(d, NVME_REG_DBS + 8 * 9, 1);		/* SQ 9 does not exist */
	assert_false(drv_peek(d, 0, &e));
	assert_int_equal(get_log(d, NVME_LOG_ERROR, 128, buf, false), 0);
	assert_int_equal(log[0], 2);			/* error count of the newest */
	assert_int_equal(log[8], 9);			/* its SQID */
	assert_int_equal(log[64 + 8], 1);		/* the older one: SQ 1 */
	assert_true(drv_wait(d, 0, &e));
	assert_int_equal(e.cid, cid);
	assert_int_equal((e.dw0 >> 8) & 0xff, NVME_AER_INFO_INVALID_DB_REG);

	/* AERL + 1 outstanding at most */
	for (unsigned i = 0; i <= NVME_AERL; i++)
		drv_submit(d, 0, &aer);
	cid = drv_submit(d, 0, &aer);
	assert_true(drv_wait(d, 0, &e));
	assert_int_equal(e.cid, cid);
	assert_int_equal(drv_status(&e), NVME_AER_LIMIT_EXCEEDED);
	drv_free(d);
}

static void test_temperature_threshold_raises_smart_event(void **state)
{
	struct drv *d = drv_new();
	struct nvme_cmd aer = { .opc = NVME_ADM_ASYNC_EVENT };
	uint64_t buf;
	struct nvme_cqe e;

	drv_enable(d, 16);
	buf = drv_alloc(d, 1);
	assert_int_equal(set_feature(d, NVME_FEAT_ASYNC_EVENT, 0x2, NULL), 0);
	drv_submit(d, 0, &aer);
	assert_int_equal(set_feature(d, NVME_FEAT_TEMP_THRESH, NVME_TEMPERATURE - 10, NULL), 0);
	assert_true(drv_wait(d, 0, &e));
	assert_int_equal(e.dw0 & 7, NVME_AER_TYPE_SMART);
	assert_int_equal(get_log(d, NVME_LOG_SMART, 512, buf, false), 0);
	assert_int_equal(((uint8_t *)drv_ptr(d, buf))[0] & 2, 2);
	drv_free(d);
}

/* ---- completion queue full, interrupts ------------------------------------------------ */

static void test_full_cq_holds_completions_until_head_moves(void **state)
{
	struct drv *d = drv_new();
	uint64_t p;
	struct nvme_cmd cmd;
	struct nvme_cqe e;
	uint16_t cids[3];

	drv_enable(d, 16);
	assert_int_equal(drv_create_cq(d, 1, 2, 1), 0);	/* room for one entry */
	assert_int_equal(drv_create_sq(d, 1, 8, 1), 0);
	p = drv_alloc(d, 1);
	for (int i = 0; i < 3; i++) {
		cmd = drv_rw(NVME_IO_READ, 1, (uint64_t)i, 1, p, 0);
		cids[i] = drv_queue(d, 1, &cmd);
	}
	drv_sq_doorbell(d, 1, d->q[1].sq_tail);
	for (int i = 0; i < 200 && d->c->inflight; i++) {
		nvme_poll(d->dev);
		usleep(500);
	}
	for (int i = 0; i < 3; i++) {
		assert_true(drv_peek(d, 1, &e));
		assert_int_equal(e.cid, cids[i]);
		drv_consume(d, 1, false);
		/* nothing more until the host frees the entry */
		assert_false(drv_peek(d, 1, &e));
		drv_cq_doorbell(d, 1, d->q[1].cq_head);
	}
	drv_free(d);
}

static void test_cq_head_beyond_tail_is_invalid_doorbell(void **state)
{
	struct drv *d = drv_ready(16);
	struct nvme_cmd aer = { .opc = NVME_ADM_ASYNC_EVENT };
	struct nvme_cqe e;

	drv_submit(d, 0, &aer);
	drv_wr32(d, NVME_REG_DBS + 8 + 4, 5);		/* nothing was posted on CQ 1 */
	assert_true(drv_wait(d, 0, &e));
	assert_int_equal((e.dw0 >> 8) & 0xff, NVME_AER_INFO_INVALID_DB_VALUE);
	assert_int_equal(d->c->cq[1].head, 0);
	drv_free(d);
}

static void msix_setup(struct drv *d, unsigned nvec)
{
	unsigned devfn = (unsigned)d->c->pci.devfn;
	uint8_t cap = d->c->pci.msix.cap;

	for (unsigned v = 0; v < nvec; v++) {
		mmio_wr(d->t, d->bar4 + 16 * v, 4, 0xfee00000);
		mmio_wr(d->t, d->bar4 + 16 * v + 4, 4, 0);
		mmio_wr(d->t, d->bar4 + 16 * v + 8, 4, 0x40 + v);
		mmio_wr(d->t, d->bar4 + 16 * v + 12, 4, 0);	/* unmask */
	}
	pci_bus_config_write(d->t->m.pci, devfn, cap + 2, 0x8000 | (NVME_NVEC - 1), 2);
	assert_true(pci_msix_enabled(&d->c->pci));
}

static void test_msix_vector_per_completion_queue(void **state)
{
	struct drv *d = drv_new();
	struct fake_irq *irq = &d->t->irq;
	uint64_t p;
	struct nvme_cmd cmd;
	unsigned n;

	msix_setup(d, 4);
	drv_enable(d, 16);
	assert_int_equal(drv_create_cq(d, 1, 16, 1), 0);
	assert_true(irq->nmsi >= 1);
	assert_int_equal(irq->msi[irq->nmsi - 1].data, 0x40);	/* admin: vector 0 */
	assert_int_equal(drv_create_sq(d, 1, 16, 1), 0);
	assert_int_equal(drv_create_cq(d, 2, 16, 3), 0);
	assert_int_equal(drv_create_sq(d, 2, 16, 2), 0);
	p = drv_alloc(d, 1);
	n = irq->nmsi;
	cmd = drv_rw(NVME_IO_READ, 1, 0, 1, p, 0);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), 0);
	assert_int_equal(irq->nmsi, n + 1);
	assert_int_equal(irq->msi[n].data, 0x41);
	assert_int_equal(irq->msi[n].addr, 0xfee00000);
	cmd = drv_rw(NVME_IO_READ, 1, 0, 1, p, 0);
	assert_int_equal(drv_cmd(d, 2, &cmd, NULL), 0);
	assert_int_equal(irq->nmsi, n + 2);
	assert_int_equal(irq->msi[n + 1].data, 0x43);
	/* INTx stays quiet while MSI-X is on */
	assert_int_equal(irq->raised[PCI_INTX_GSI(d->c->pci.devfn >> 3, 0)], 0);
	drv_free(d);
}

/*
 * With MSI-X the CQ event index asks the host to ring the CQ head doorbell
 * only when the controller needs the news: a completion waiting for space
 * (EventIdx = head: the next head update rings). Otherwise EventIdx sits just
 * behind the head, so the host rings once a lap rather than after every pass
 * of its interrupt handler (an exit and an event-loop wake-up each).
 */
static void test_cq_event_index_asks_for_a_ring_only_when_needed(void **state)
{
	struct drv *d = drv_new();
	uint32_t *dbs, *eis;
	uint64_t p;
	struct nvme_cmd cmd;

	msix_setup(d, 4);
	drv_enable(d, 16);
	drv_dbbuf_config(d);
	dbs = drv_ptr(d, d->dbs);
	eis = drv_ptr(d, d->eis);
	assert_int_equal(drv_create_cq(d, 1, 16, 1), 0);
	assert_int_equal(drv_create_sq(d, 1, 16, 1), 0);
	p = drv_alloc(d, 1);
	for (int i = 0; i < 3; i++) {
		cmd = drv_rw(NVME_IO_READ, 1, 0, 1, p, 0);
		assert_int_equal(drv_cmd(d, 1, &cmd, NULL), 0);
	}
	/* the host's head (3) came through the shadow: the next ring is a lap away */
	dbs[3] = 3;
	pthread_mutex_lock(&d->c->lock);
	nvme_cq_refresh_head(d->c, 1, false);
	pthread_mutex_unlock(&d->c->lock);
	assert_int_equal(d->c->cq[1].head, 3);
	assert_int_equal(eis[3], 2);

	/* a CQ with room for one entry: the second completion waits, EventIdx = head */
	assert_int_equal(drv_create_cq(d, 2, 2, 2), 0);
	assert_int_equal(drv_create_sq(d, 2, 8, 2), 0);
	for (int i = 0; i < 2; i++) {
		cmd = drv_rw(NVME_IO_READ, 1, 0, 1, p, 0);
		drv_queue(d, 2, &cmd);
	}
	drv_sq_doorbell(d, 2, d->q[2].sq_tail);
	for (int i = 0; i < 2000 && d->c->inflight; i++)
		if (nvme_poll(d->dev) == 0)
			usleep(100);
	assert_non_null(d->c->cq[2].wait_head);
	assert_int_equal(eis[5], d->c->cq[2].head);
	drv_free(d);
}

/* ---- interrupt coalescing (coalesce.c) ------------------------------------------ */

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static unsigned nmsi(struct drv *d)
{
	return __atomic_load_n(&d->t->irq.nmsi, __ATOMIC_ACQUIRE);
}

/* Up to 5 s for the MSI count to reach n. */
static bool wait_nmsi(struct drv *d, unsigned n)
{
	for (int i = 0; i < 5000 && nmsi(d) < n; i++)
		usleep(1000);
	return nmsi(d) >= n;
}

/* A controller on an event loop with AMBER_NVME_COALESCE=mode, I/O queue 1 on vector 1. */
static struct drv *coal_drv(const char *mode, struct evloop **loop)
{
	struct drv *d;

	*loop = evloop_new();
	assert_non_null(*loop);
	assert_int_equal(evloop_start_thread(*loop), 0);
	if (mode)
		setenv("AMBER_NVME_COALESCE", mode, 1);
	d = drv_new_loop(NULL, *loop);
	unsetenv("AMBER_NVME_COALESCE");
	msix_setup(d, 4);
	drv_enable(d, 16);
	assert_int_equal(drv_create_cq(d, 1, 16, 1), 0);
	assert_int_equal(drv_create_sq(d, 1, 16, 1), 0);
	return d;
}

static void coal_free(struct drv *d, struct evloop *loop)
{
	drv_free(d);
	evloop_stop(loop);
	evloop_join(loop);
	evloop_free(loop);
}

/*
 * Read one block on queue 1 and wait (polling memory, as a busy host would) for
 * its entry; ring: tell the controller the new CQ head.
 */
static void coal_read(struct drv *d, uint64_t buf, bool ring)
{
	struct nvme_cmd cmd = drv_rw(NVME_IO_READ, 1, 0, 1, buf, 0);
	struct nvme_cqe e;
	int i;

	drv_submit(d, 1, &cmd);
	for (i = 0; i < 5000 && !drv_peek(d, 1, &e); i++)
		usleep(1000);
	assert_true(i < 5000);
	assert_int_equal(drv_status(&e), 0);
	drv_consume(d, 1, ring);
}

/*
 * A vector that fired less than a window ago waits: the completion is in the
 * CQ at once, its interrupt comes when the window has passed, never lost.
 */
static void test_coalescing_defers_a_quick_second_interrupt_and_sends_it(void **state)
{
	struct evloop *loop;
	struct drv *d = coal_drv("200000", &loop);	/* 200 ms */
	uint64_t buf = drv_alloc(d, 1), t1, t2;
	unsigned n = nmsi(d);

	coal_read(d, buf, true);
	assert_true(wait_nmsi(d, n + 1));	/* a quiet vector fires at once */
	t1 = mono_ms();
	assert_int_equal(d->t->irq.msi[n].data, 0x41);
	coal_read(d, buf, false);		/* the host has not said it read it */
	if (mono_ms() - t1 < 150)
		assert_int_equal(nmsi(d), n + 1);	/* posted, interrupt held back */
	assert_true(wait_nmsi(d, n + 2));
	t2 = mono_ms();
	assert_true(t2 - t1 >= 150);
	assert_int_equal(d->t->irq.msi[n + 1].data, 0x41);
	coal_free(d, loop);
}

/*
 * A held-back interrupt whose entries the host consumed meanwhile (its CQ head
 * doorbell says so: a handler still running read them) is not sent; one whose
 * entry is still unread is, and so is the next one after a quiet window.
 */
static void test_coalescing_drops_interrupts_the_host_no_longer_needs(void **state)
{
	struct evloop *loop;
	struct drv *d = coal_drv("200000", &loop);	/* 200 ms */
	uint64_t buf = drv_alloc(d, 1), t1;
	unsigned n = nmsi(d);

	coal_read(d, buf, true);
	assert_true(wait_nmsi(d, n + 1));
	t1 = mono_ms();
	coal_read(d, buf, true);		/* posted, held back, read and acknowledged */
	if (mono_ms() - t1 >= 150)
		skip();				/* too slow a machine to tell */
	usleep(400 * 1000);			/* two windows */
	assert_int_equal(nmsi(d), n + 1);
	assert_int_equal(d->c->coal.deferred[0], 0);
	assert_int_equal(d->c->coal.dropped, 1);
	/* quiet for a window: the next fires at once */
	coal_read(d, buf, false);
	assert_true(wait_nmsi(d, n + 2));
	t1 = mono_ms();
	/* unread (no head written): the held-back one is sent */
	coal_read(d, buf, false);
	assert_true(wait_nmsi(d, n + 3));
	assert_true(mono_ms() - t1 >= 150);
	assert_int_equal(d->c->coal.dropped, 1);
	coal_free(d, loop);
}

/*
 * While a vector holds an interrupt back, the host need not ring the doorbell
 * of the SQ that completes to it (EventIdx = tail - 1); the timer fetches what
 * the host queued meanwhile, and then asks for rings again (EventIdx = tail).
 */
static void test_coalescing_leaves_doorbells_to_the_timer(void **state)
{
	struct evloop *loop;
	struct drv *d = coal_drv("200000", &loop);	/* 200 ms */
	uint64_t buf = drv_alloc(d, 1), t1;
	struct nvme_cmd cmd = drv_rw(NVME_IO_READ, 1, 0, 1, buf, 0);
	unsigned n;
	uint16_t old, tail, ei;
	volatile uint32_t *dbs, *eis;
	struct nvme_cqe e;
	int i;

	drv_dbbuf_config(d);
	dbs = drv_ptr(d, d->dbs);
	eis = drv_ptr(d, d->eis);
	n = nmsi(d);			/* after the admin command's own */
	coal_read(d, buf, true);
	assert_true(wait_nmsi(d, n + 1));
	t1 = mono_ms();
	assert_int_equal(eis[2], 1);			/* ring for the next one */
	coal_read(d, buf, false);			/* held back */
	if (mono_ms() - t1 >= 150)
		skip();					/* too slow a machine to tell */
	assert_int_equal(eis[2], 1);			/* tail 2: EventIdx 1, muted */
	/* the host queues a third command; EventIdx tells it not to ring (§5.8) */
	old = (uint16_t)dbs[2];
	drv_queue(d, 1, &cmd);
	tail = d->q[1].sq_tail;
	dbs[2] = tail;
	ei = (uint16_t)eis[2];
	assert_false((uint16_t)(tail - ei - 1) < (uint16_t)(tail - old));
	assert_int_equal(d->c->sq[1].head, 2);
	/* the timer: the second interrupt, and the third command fetched and done */
	assert_true(wait_nmsi(d, n + 2));
	assert_true(mono_ms() - t1 >= 150);
	for (i = 0; i < 5000 && d->c->sq[1].head != 3; i++)
		usleep(1000);
	assert_int_equal(d->c->sq[1].head, 3);
	assert_int_equal(eis[2], 3);			/* rings are wanted again */
	for (i = 0; i < 5000 && !drv_peek(d, 1, &e); i++)	/* the third one's entry */
		usleep(1000);
	assert_true(i < 5000);
	assert_int_equal(drv_status(&e), 0);
	drv_consume(d, 1, true);
	coal_free(d, loop);
}

/* A checkpoint reads no state while an interrupt is held back: quiesce sends it. */
static void test_quiesce_sends_deferred_interrupts(void **state)
{
	struct evloop *loop;
	struct drv *d = coal_drv("1000000", &loop);	/* 1 s */
	uint64_t buf = drv_alloc(d, 1), t1;
	unsigned n = nmsi(d);

	coal_read(d, buf, true);
	assert_true(wait_nmsi(d, n + 1));
	t1 = mono_ms();
	coal_read(d, buf, false);
	assert_int_equal(d->dev->cls->quiesce(d->dev), 0);
	if (mono_ms() - t1 < 900)
		assert_int_equal(nmsi(d), n + 2);
	assert_int_equal(d->c->coal.deferred[0], 0);
	assert_int_equal(d->dev->cls->resume(d->dev), 0);
	coal_free(d, loop);
}

/*
 * The decision with the clock in the test's hands (the lock keeps the timer
 * out): the admin vector and a vector with Coalescing Disable never wait; the
 * host's Interrupt Coalescing feature sets the window (TIME x 100 us) and the
 * threshold (THR + 1 entries).
 */
static void test_coalescing_follows_the_features(void **state)
{
	struct evloop *loop;
	struct drv *d = coal_drv("200000", &loop);
	struct nvme_ctrl *c = d->c;
	uint64_t t;
	unsigned n;

	assert_int_equal(set_feature(d, NVME_FEAT_IRQ_CONFIG, 1u << 16 | 2, NULL), 0);
	pthread_mutex_lock(&c->lock);
	t = nvme_coal_now(c) + 10000000;
	n = d->t->irq.nmsi;
	/* admin (vector 0) and vector 2 (CD): every call sends */
	for (unsigned v = 0; v <= 2; v += 2) {
		nvme_coal_vector(c, v, t);
		nvme_coal_vector(c, v, t + 1000);
	}
	assert_int_equal(d->t->irq.nmsi, n + 4);
	/* vector 1, 200 ms fixed: the second within the window waits */
	nvme_coal_vector(c, 1, t);
	nvme_coal_vector(c, 1, t + 1000000);
	assert_int_equal(d->t->irq.nmsi, n + 5);
	assert_true(c->coal.deferred[0] & 2);
	nvme_coal_vector(c, 1, t + 200000000);	/* window passed */
	assert_int_equal(d->t->irq.nmsi, n + 6);
	assert_false(c->coal.deferred[0] & 2);
	pthread_mutex_unlock(&c->lock);

	/* host feature: TIME 5 (500 us), THR 2 (3 entries) */
	assert_int_equal(set_feature(d, NVME_FEAT_IRQ_COALESCE, 5u << 8 | 2, NULL), 0);
	pthread_mutex_lock(&c->lock);
	t += 1000000000;	/* a second after the calls above */
	n = d->t->irq.nmsi;
	nvme_coal_vector(c, 1, t);
	nvme_coal_posted(c, 1);
	nvme_coal_vector(c, 1, t + 100000);		/* 1 entry: waits */
	nvme_coal_posted(c, 1);
	nvme_coal_vector(c, 1, t + 200000);		/* 2 entries: waits */
	assert_int_equal(d->t->irq.nmsi, n + 1);
	nvme_coal_posted(c, 1);
	nvme_coal_vector(c, 1, t + 300000);		/* 3 entries: threshold */
	assert_int_equal(d->t->irq.nmsi, n + 2);
	nvme_coal_posted(c, 1);
	nvme_coal_vector(c, 1, t + 400000);		/* 1 entry, within 500 us: waits */
	assert_int_equal(d->t->irq.nmsi, n + 2);
	nvme_coal_vector(c, 1, t + 800000);		/* 500 us after the last */
	assert_int_equal(d->t->irq.nmsi, n + 3);
	pthread_mutex_unlock(&c->lock);
	coal_free(d, loop);
}

static void test_coalescing_setting_is_checked(void **state)
{
	struct test_machine *t = test_machine_new(DRV_RAM);
	struct device *dev;
	char err[256];

	t->m.pci = pci_bus_new(&t->m);
	setenv("AMBER_NVME_COALESCE", "fast", 1);
	assert_true(device_create(&t->m, "nvme", "nvme0", "", &dev, err, sizeof(err)) < 0);
	unsetenv("AMBER_NVME_COALESCE");
	pci_bus_free(t->m.pci);
	test_machine_free(t);
}

/*
 * The adaptive walk against models of a workload: rate(level) completions/s,
 * and whether the window of that level delays anything.
 */
static unsigned dim_run(struct nvme_dim *d, const uint64_t *rate, const bool *binds,
			const bool *starves, unsigned epochs, unsigned *above0)
{
	for (unsigned i = 0; i < epochs; i++) {
		unsigned l = d->level;

		if (above0 && l > 0)
			(*above0)++;
		nvme_dim_epoch(d, rate[l], 64, binds[l] ? 32 : 0, starves && starves[l] ? 30 : 0);
	}
	return d->level;
}

static void test_dim_climbs_while_waiting_pays_and_parks_at_the_best(void **state)
{
	/* a busy queue on an expensive interrupt path: 512 us gathers best */
	static const uint64_t rate[NVME_DIM_LEVELS] = { 3800, 3800, 3800, 3800, 4200, 4800, 5600, 4500 };
	static const bool binds[NVME_DIM_LEVELS] = { 0, 0, 0, 0, 1, 1, 1, 1 };
	struct nvme_dim d = { 0 };

	assert_int_equal(dim_run(&d, rate, binds, NULL, 30, NULL), 6);
	assert_true(d.parked);
}

static void test_dim_comes_back_to_no_wait_where_waiting_costs(void **state)
{
	/* one command at a time on a fast disk: any binding window only slows it */
	static const uint64_t rate[NVME_DIM_LEVELS] = { 100000, 60000, 40000, 25000, 15000, 8000, 4000, 2000 };
	static const bool binds[NVME_DIM_LEVELS] = { 0, 1, 1, 1, 1, 1, 1, 1 };
	struct nvme_dim d = { 0 };
	unsigned above0 = 0;

	assert_int_equal(dim_run(&d, rate, binds, NULL, 50, &above0), 0);
	assert_true(d.parked);
	assert_true(above0 <= 2);	/* one probe, then parked */
	/* the load grows (more in flight): the walk leaves level 0 to look again */
	static const uint64_t busy[NVME_DIM_LEVELS] = { 300000, 400000, 450000, 450000, 450000,
							420000, 300000, 200000 };
	static const bool busy_binds[NVME_DIM_LEVELS] = { 0, 1, 1, 1, 1, 1, 1, 1 };
	assert_true(dim_run(&d, busy, busy_binds, NULL, 30, NULL) >= 2);
	assert_true(d.parked);
}

/*
 * A fast guest with everything submitted: large windows hold completions while
 * it submits nothing, and the rate does not show it (parked, steady). The
 * idle waits alone bring the window down to where the host keeps working.
 */
static void test_dim_shrinks_a_window_the_host_waits_through(void **state)
{
	static const uint64_t rate[NVME_DIM_LEVELS] = { 200000, 200000, 200000, 200000, 200000,
							200000, 200000, 200000 };
	static const bool binds[NVME_DIM_LEVELS] = { 0, 0, 1, 1, 1, 1, 1, 1 };
	static const bool starves[NVME_DIM_LEVELS] = { 0, 0, 0, 0, 1, 1, 1, 1 };
	struct nvme_dim d = { .level = NVME_DIM_LEVELS - 1, .parked = true, .dir = 1,
			      .park_rate = 200000 };

	assert_true(dim_run(&d, rate, binds, starves, 20, NULL) <= 3);
	assert_false(starves[d.level]);
}

/*
 * One job at queue depth 32 on a disk that completes at once, where an
 * interrupt costs more than a wait (nested): the host idles while completions
 * wait, yet the rate rises with the window. The rate wins over the idle waits.
 */
static void test_dim_keeps_a_window_that_pays_though_the_host_waits(void **state)
{
	static const uint64_t rate[NVME_DIM_LEVELS] = { 3400, 3400, 3400, 3900, 4500, 5200, 4400, 3000 };
	static const bool binds[NVME_DIM_LEVELS] = { 0, 0, 0, 1, 1, 1, 1, 1 };
	static const bool starves[NVME_DIM_LEVELS] = { 0, 0, 0, 1, 1, 1, 1, 1 };
	struct nvme_dim d = { 0 };
	unsigned at5 = 0;

	dim_run(&d, rate, binds, starves, 20, NULL);
	for (int i = 0; i < 40; i++)
		at5 += dim_run(&d, rate, binds, starves, 1, NULL) == 5;
	assert_true(at5 >= 32);		/* short probes below, back at the best */
}

static void test_intx_follows_unconsumed_completions(void **state)
{
	struct drv *d = drv_new();
	unsigned gsi = PCI_INTX_GSI(d->c->pci.devfn >> 3, 0);
	struct nvme_cmd cmd = { .opc = NVME_ADM_IDENTIFY, .cdw10 = 1 };
	struct nvme_cqe e;

	drv_enable(d, 16);
	cmd.prp1 = drv_alloc(d, 1);
	drv_submit(d, 0, &cmd);
	assert_int_equal(d->t->irq.level[gsi], 1);
	/* masked through INTMS, unmasked through INTMC */
	drv_wr32(d, NVME_REG_INTMS, 1);
	assert_int_equal(d->t->irq.level[gsi], 0);
	drv_wr32(d, NVME_REG_INTMC, 1);
	assert_int_equal(d->t->irq.level[gsi], 1);
	assert_true(drv_wait(d, 0, &e));		/* consumes, rings CQ head */
	assert_int_equal(d->t->irq.level[gsi], 0);
	drv_free(d);
}

/* ---- shadow doorbells -------------------------------------------------------------------- */

static void test_shadow_doorbell_updates_are_read_from_the_buffer(void **state)
{
	struct drv *d = drv_new();
	struct nvme_cmd cmd;
	uint64_t p;
	uint32_t *dbs, *eis;
	struct nvme_cqe e;

	drv_enable(d, 16);
	drv_dbbuf_config(d);
	dbs = drv_ptr(d, d->dbs);
	eis = drv_ptr(d, d->eis);
	/* admin queue still works through MMIO (Linux never uses its shadow) */
	assert_int_equal(drv_create_cq(d, 1, 16, 1), 0);
	assert_int_equal(drv_create_sq(d, 1, 16, 1), 0);

	p = drv_alloc(d, 1);
	cmd = drv_rw(NVME_IO_READ, 1, 0, 1, p, 0);
	drv_queue(d, 1, &cmd);
	drv_queue(d, 1, &cmd);
	drv_queue(d, 1, &cmd);
	/* the shadow says 3, the MMIO doorbell only 1: all three are fetched */
	dbs[2] = 3;
	drv_wr32(d, NVME_REG_DBS + 8, 1);
	assert_int_equal(d->c->sq[1].head, 3);
	assert_int_equal(eis[2], 3);			/* event index: consumed up to 3 */
	for (int i = 0; i < 3; i++)
		assert_true(drv_wait(d, 1, &e));
	/* CQ head read from the shadow */
	assert_int_equal(d->c->cq[1].head, 3);

	/* bad buffers are refused */
	cmd = (struct nvme_cmd){ .opc = NVME_ADM_DBBUF_CONFIG, .prp1 = d->dbs + 8, .prp2 = d->eis };
	assert_int_equal(drv_admin(d, &cmd, NULL), NVME_INVALID_FIELD);
	drv_free(d);
}

/* ---- quiesce, save, load ----------------------------------------------------------------- */

static void test_quiesce_completes_in_flight_io_before_returning(void **state)
{
	struct drv *d = drv_ready(64);
	uint64_t p = drv_alloc(d, 32), list = drv_alloc(d, 1), *ent = drv_ptr(d, list);
	struct nvme_cmd cmd;
	struct nvme_cqe e;

	for (unsigned i = 1; i < 32; i++)
		ent[i - 1] = p + 4096ULL * i;
	for (unsigned i = 0; i < 16; i++) {
		cmd = drv_rw(NVME_IO_WRITE, 1, 256ULL * i, 256, p, list);
		drv_queue(d, 1, &cmd);
	}
	drv_sq_doorbell(d, 1, d->q[1].sq_tail);
	assert_int_equal(d->dev->cls->quiesce(d->dev), 0);
	assert_int_equal(d->c->inflight, 0);
	for (unsigned i = 0; i < 16; i++) {
		assert_true(drv_peek(d, 1, &e));
		assert_int_equal(drv_status(&e), 0);
		drv_consume(d, 1, true);
	}
	/* quiesced: a new command is not fetched until resume */
	cmd = drv_rw(NVME_IO_READ, 1, 0, 1, p, 0);
	drv_submit(d, 1, &cmd);
	assert_int_equal(d->c->sq[1].head, 16);
	assert_int_equal(d->dev->cls->resume(d->dev), 0);
	assert_true(drv_wait(d, 1, &e));
	assert_int_equal(drv_status(&e), 0);
	drv_free(d);
}

/* A second machine with a copy of d's RAM and a controller on the same image. */
static struct drv *drv_clone_ram(struct drv *d)
{
	struct drv *n = calloc(1, sizeof(*n));
	char args[128], err[256];

	*n = *d;
	n->t = test_machine_new(DRV_RAM);
	n->t->m.pci = pci_bus_new(&n->t->m);
	memcpy(n->t->ram, d->t->ram, DRV_RAM);
	snprintf(args, sizeof(args), "path=%s", d->img);
	assert_int_equal(device_create(&n->t->m, "nvme", "nvme0", args, &n->dev, err,
				       sizeof(err)), 0);
	n->c = n->dev->priv;
	return n;
}

/* Save d (quiesced) into obj, check it and load it into a new controller on a copy of RAM. */
static struct drv *drv_save_and_load(struct drv *d, json_t *obj)
{
	struct drv *n;
	char err[256];

	assert_int_equal(d->dev->cls->save(d->dev, obj), 0);
	if (nvme_check(obj, NVME_STATE_VERSION, err, sizeof(err)))
		fail_msg("nvme_check: %s", err);
	n = drv_clone_ram(d);
	assert_int_equal(n->dev->cls->load(n->dev, obj, NVME_STATE_VERSION), 0);
	return n;
}

/* A clone shares the image file of its original. */
static void drv_clone_free(struct drv *n)
{
	device_destroy_all(&n->t->m);
	pci_bus_free(n->t->m.pci);
	test_machine_free(n->t);
	free(n);
}

static void test_save_check_load_continues_io(void **state)
{
	struct drv *d = drv_ready(16), *n;
	uint64_t w = drv_alloc(d, 1), r = drv_alloc(d, 1);
	struct nvme_cmd cmd, aer = { .opc = NVME_ADM_ASYNC_EVENT };
	struct nvme_cqe e;
	json_t *obj = json_object();
	uint16_t cid, aer_cid;

	drv_fill(drv_ptr(d, w), 4096, 9);
	cmd = drv_rw(NVME_IO_WRITE, 1, 16, 8, w, 0);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), 0);
	aer_cid = drv_submit(d, 0, &aer);
	/* quiesce, then the host queues a read that has not run at save time */
	assert_int_equal(d->dev->cls->quiesce(d->dev), 0);
	cmd = drv_rw(NVME_IO_READ, 1, 16, 8, r, 0);
	cid = drv_submit(d, 1, &cmd);
	assert_false(drv_peek(d, 1, &e));

	/* load: the queued read runs on the new controller */
	n = drv_save_and_load(d, obj);
	assert_true(drv_wait(n, 1, &e));
	assert_int_equal(e.cid, cid);
	assert_int_equal(drv_status(&e), 0);
	assert_memory_equal(drv_ptr(n, r), drv_ptr(n, w), 4096);
	assert_int_equal(drv_rd32(n, NVME_REG_CSTS) & NVME_CSTS_RDY, NVME_CSTS_RDY);
	/* and I/O continues */
	cmd = drv_rw(NVME_IO_WRITE, 1, 32, 8, w, 0);
	assert_int_equal(drv_cmd(n, 1, &cmd, NULL), 0);
	/* the outstanding AER came along */
	drv_wr32(n, NVME_REG_DBS + 8 * 7, 1);
	assert_true(drv_wait(n, 0, &e));
	assert_int_equal(e.cid, aer_cid);

	json_decref(obj);
	drv_clone_free(n);
	drv_free(d);
}

static void test_save_keeps_completions_waiting_for_cq_space(void **state)
{
	struct drv *d = drv_new(), *n;
	uint64_t p;
	struct nvme_cmd cmd;
	struct nvme_cqe e;
	json_t *obj = json_object();
	uint16_t cids[2];

	drv_enable(d, 16);
	assert_int_equal(drv_create_cq(d, 1, 2, 1), 0);
	assert_int_equal(drv_create_sq(d, 1, 8, 1), 0);
	p = drv_alloc(d, 1);
	for (int i = 0; i < 2; i++) {
		cmd = drv_rw(NVME_IO_READ, 1, 0, 1, p, 0);
		cids[i] = drv_queue(d, 1, &cmd);
	}
	drv_sq_doorbell(d, 1, d->q[1].sq_tail);
	assert_int_equal(d->dev->cls->quiesce(d->dev), 0);
	n = drv_save_and_load(d, obj);
	assert_true(drv_wait(n, 1, &e));
	assert_int_equal(e.cid, cids[0]);
	assert_true(drv_wait(n, 1, &e));		/* posted after the head moved */
	assert_int_equal(e.cid, cids[1]);
	json_decref(obj);
	drv_clone_free(n);
	drv_free(d);
}

static void test_corrupted_state_names_the_field(void **state)
{
	struct drv *d = drv_ready(16);
	json_t *obj = json_object(), *cqs, *cq;
	char err[256];

	assert_int_equal(d->dev->cls->save(d->dev, obj), 0);
	cqs = json_object_get(obj, "cq");
	cq = json_array_get(cqs, 1);
	assert_int_equal(json_integer_value(json_object_get(cq, "qid")), 1);
	json_object_set_new(cq, "head", json_integer(9000));
	assert_int_equal(nvme_check(obj, NVME_STATE_VERSION, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cq[1].head"));
	assert_non_null(strstr(err, "9000"));
	/* a newer version is refused */
	json_object_set_new(cq, "head", json_integer(0));
	assert_int_equal(nvme_check(obj, NVME_STATE_VERSION, err, sizeof(err)), 0);
	assert_int_equal(nvme_check(obj, NVME_STATE_VERSION + 1, err, sizeof(err)), -EINVAL);
	/* an SQ pointing at a CQ that is not there */
	json_object_set_new(json_array_get(json_object_get(obj, "sq"), 1), "cqid",
			    json_integer(5));
	assert_int_equal(nvme_check(obj, NVME_STATE_VERSION, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "sq[1].cqid"));
	json_decref(obj);
	drv_free(d);
}

/* ---- threads: doorbells from several "vCPUs", completions on the loop ---------- */

#define THREADS   4
#define ROUNDS    150

struct worker {
	struct drv *d;
	unsigned qid;
	uint64_t buf;		/* 8 pages: 4 to write, 4 to read back */
	int errors;
};

/* Submit on the worker's own queue and spin until its completion appears. */
static uint16_t worker_cmd(struct worker *w, struct nvme_cmd *cmd, uint16_t cid)
{
	struct drv *d = w->d;
	struct drv_q *q = &d->q[w->qid];
	struct nvme_cqe e;

	cmd->cid = cid;
	memcpy(drv_ptr(d, q->sq + (uint64_t)q->sq_tail * 64), cmd, 64);
	q->sq_tail = (uint16_t)((q->sq_tail + 1) % q->size);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	drv_wr32(d, NVME_REG_DBS + 8 * w->qid, q->sq_tail);
	for (int i = 0; i < 1000000; i++) {
		if (drv_peek(d, w->qid, &e)) {
			drv_consume(d, w->qid, true);
			if (e.cid != cid || e.sqid != w->qid)
				w->errors++;
			return drv_status(&e);
		}
		usleep(20);
	}
	w->errors++;
	return 0xffff;
}

static void *worker_run(void *opaque)
{
	struct worker *w = opaque;
	struct drv *d = w->d;
	uint64_t list = w->buf + 8 * 4096;
	uint64_t *ent = drv_ptr(d, list);

	for (unsigned r = 0; r < ROUNDS; r++) {
		uint64_t lba = (w->qid - 1) * 4096ULL + (r % 16) * 32;
		struct nvme_cmd cmd;

		drv_fill(drv_ptr(d, w->buf), 4 * 4096, w->qid * 1000 + r);
		for (unsigned k = 0; k < 3; k++)
			ent[k] = w->buf + (1 + k) * 4096ULL;
		cmd = drv_rw(NVME_IO_WRITE, 1, lba, 32, w->buf, list);
		if (worker_cmd(w, &cmd, (uint16_t)(2 * r)))
			w->errors++;
		for (unsigned k = 0; k < 3; k++)
			ent[k] = w->buf + (5 + k) * 4096ULL;
		cmd = drv_rw(NVME_IO_READ, 1, lba, 32, w->buf + 4 * 4096, list);
		if (worker_cmd(w, &cmd, (uint16_t)(2 * r + 1)))
			w->errors++;
		if (memcmp(drv_ptr(d, w->buf), drv_ptr(d, w->buf + 4 * 4096), 4 * 4096))
			w->errors++;
	}
	return NULL;
}

static void test_queues_on_several_threads_complete_on_the_event_loop(void **state)
{
	struct evloop *loop = evloop_new();
	struct drv *d;
	struct worker w[THREADS];
	pthread_t th[THREADS];

	assert_non_null(loop);
	assert_int_equal(evloop_start_thread(loop), 0);
	d = drv_new_loop(NULL, loop);
	drv_enable(d, 16);
	for (unsigned i = 0; i < THREADS; i++) {
		unsigned qid = i + 1;

		assert_int_equal(drv_create_cq(d, (uint16_t)qid, 32, (uint16_t)qid), 0);
		assert_int_equal(drv_create_sq(d, (uint16_t)qid, 32, (uint16_t)qid), 0);
		w[i] = (struct worker){ .d = d, .qid = qid, .buf = drv_alloc(d, 9) };
	}
	for (unsigned i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
	for (unsigned i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].errors, 0);
	}
	drv_free(d);
	evloop_stop(loop);
	evloop_join(loop);
	evloop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cap_and_version_describe_the_controller),
		cmocka_unit_test(test_pci_class_and_bar0_sizing),
		cmocka_unit_test(test_enable_sets_ready_and_disable_clears_it),
		cmocka_unit_test(test_admin_queue_outside_ram_sets_cfs),
		cmocka_unit_test(test_shutdown_notification_sets_shst_complete),
		cmocka_unit_test(test_cc_en_0_resets_queues),
		cmocka_unit_test(test_identify_controller_fields_a_driver_reads),
		cmocka_unit_test(test_identify_crossing_a_page_boundary_uses_prp2),
		cmocka_unit_test(test_identify_namespace_and_lists),
		cmocka_unit_test(test_namespace_size_not_multiple_of_512_is_refused),
		cmocka_unit_test(test_write_then_read_single_page),
		cmocka_unit_test(test_mmio_doorbell_posts_inline_completions),
		cmocka_unit_test(test_write_then_read_two_pages_prp2_is_data),
		cmocka_unit_test(test_write_then_read_many_pages_prp2_is_list),
		cmocka_unit_test(test_prp_list_chains_to_next_list_page),
		cmocka_unit_test(test_prp1_with_offset),
		cmocka_unit_test(test_prp_list_entry_with_offset_is_invalid_prp_offset),
		cmocka_unit_test(test_prp_outside_ram_is_data_transfer_error),
		cmocka_unit_test(test_lba_out_of_range),
		cmocka_unit_test(test_write_zeroes_really_zeroes),
		cmocka_unit_test(test_dsm_deallocate_punches_holes),
		cmocka_unit_test(test_read_only_namespace_refuses_writes),
		cmocka_unit_test(test_create_queue_errors),
		cmocka_unit_test(test_delete_sq_waits_for_in_flight_io),
		cmocka_unit_test(test_features_get_and_set),
		cmocka_unit_test(test_smart_and_firmware_logs),
		cmocka_unit_test(test_bad_sq_doorbell_raises_async_event_with_error_log),
		cmocka_unit_test(test_temperature_threshold_raises_smart_event),
		cmocka_unit_test(test_full_cq_holds_completions_until_head_moves),
		cmocka_unit_test(test_cq_head_beyond_tail_is_invalid_doorbell),
		cmocka_unit_test(test_msix_vector_per_completion_queue),
		cmocka_unit_test(test_cq_event_index_asks_for_a_ring_only_when_needed),
		cmocka_unit_test(test_coalescing_defers_a_quick_second_interrupt_and_sends_it),
		cmocka_unit_test(test_coalescing_drops_interrupts_the_host_no_longer_needs),
		cmocka_unit_test(test_coalescing_leaves_doorbells_to_the_timer),
		cmocka_unit_test(test_quiesce_sends_deferred_interrupts),
		cmocka_unit_test(test_coalescing_follows_the_features),
		cmocka_unit_test(test_coalescing_setting_is_checked),
		cmocka_unit_test(test_dim_climbs_while_waiting_pays_and_parks_at_the_best),
		cmocka_unit_test(test_dim_comes_back_to_no_wait_where_waiting_costs),
		cmocka_unit_test(test_dim_shrinks_a_window_the_host_waits_through),
		cmocka_unit_test(test_dim_keeps_a_window_that_pays_though_the_host_waits),
		cmocka_unit_test(test_intx_follows_unconsumed_completions),
		cmocka_unit_test(test_shadow_doorbell_updates_are_read_from_the_buffer),
		cmocka_unit_test(test_quiesce_completes_in_flight_io_before_returning),
		cmocka_unit_test(test_save_check_load_continues_io),
		cmocka_unit_test(test_save_keeps_completions_waiting_for_cq_space),
		cmocka_unit_test(test_corrupted_state_names_the_field),
		cmocka_unit_test(test_queues_on_several_threads_complete_on_the_event_loop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
