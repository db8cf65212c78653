/*
 * A tiny NVMe host driver for component tests: it owns guest RAM (a buffer),
 * builds queues and PRP lists there, rings doorbells through the MMIO bus and
 * reads completions, like Linux's nvme driver would. No event loop: the test
 * delivers block completions with nvme_poll().
 */
#ifndef AMBER_TEST_NVME_DRV_H
#define AMBER_TEST_NVME_DRV_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../harness.h"
#include "amber/device.h"
#include "amber/nvme.h"
#include "amber/pci.h"
#include "hw/nvme/nvme.h"

#define DRV_RAM       (32u << 20)
#define DRV_PAGE      4096u
#define DRV_IMG_SIZE  (8u << 20)	/* 16384 LBAs */
#define DRV_MAXQ      8

struct drv_q {
	uint64_t sq, cq;		/* gpa */
	uint16_t size, cqsize;
	uint16_t sq_tail, cq_head;
	bool phase;
};

struct drv {
	struct test_machine *t;
	struct device *dev;
	struct nvme_ctrl *c;
	uint64_t bar0, bar4;
	char img[64];
	uint64_t next_page;
	uint16_t cid;
	struct drv_q q[DRV_MAXQ];	/* q[0] admin */
	bool dbbuf;
	uint64_t dbs, eis;
};

static inline uint64_t drv_alloc(struct drv *d, unsigned pages)
{
	uint64_t gpa = d->next_page;

	d->next_page += (uint64_t)pages * DRV_PAGE;
	assert_true(d->next_page <= DRV_RAM);
	memset(d->t->ram + gpa, 0, (size_t)pages * DRV_PAGE);
	return gpa;
}

static inline void *drv_ptr(struct drv *d, uint64_t gpa)
{
	return d->t->ram + gpa;
}

static inline uint32_t drv_rd32(struct drv *d, uint64_t off)
{
	return (uint32_t)mmio_rd(d->t, d->bar0 + off, 4);
}

static inline void drv_wr32(struct drv *d, uint64_t off, uint32_t v)
{
	mmio_wr(d->t, d->bar0 + off, 4, v);
}

static inline void drv_make_image(char *path, size_t len, uint64_t size)
{
	int fd;

	snprintf(path, len, "/tmp/amber-nvme-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
}

/*
 * A machine with a PCI bus and an nvme controller on an 8 MiB image; with a
 * loop, block completions arrive on the event-loop thread.
 */
static inline struct drv *drv_new_loop(const char *extra, struct evloop *loop)
{
	struct drv *d = calloc(1, sizeof(*d));
	char args[256], err[256];
	unsigned devfn;

	assert_non_null(d);
	d->t = test_machine_new(DRV_RAM);
	d->t->m.pci = pci_bus_new(&d->t->m);
	d->t->m.loop = loop;
	assert_non_null(d->t->m.pci);
	drv_make_image(d->img, sizeof(d->img), DRV_IMG_SIZE);
	snprintf(args, sizeof(args), "path=%s%s%s", d->img, extra ? "," : "", extra ? extra : "");
	assert_int_equal(device_create(&d->t->m, "nvme", "nvme0", args, &d->dev, err,
				       sizeof(err)), 0);
	d->c = d->dev->priv;
	devfn = (unsigned)d->c->pci.devfn;
	/* firmware's job: decode memory, allow bus mastering */
	pci_bus_config_write(d->t->m.pci, devfn, PCI_COMMAND, PCI_COMMAND_MEMORY |
			     PCI_COMMAND_MASTER, 2);
	d->bar0 = d->c->pci.bars[0].addr;
	d->bar4 = d->c->pci.bars[NVME_MSIX_BAR].addr;
	assert_true(d->c->pci.bars[0].mapped);
	d->next_page = 1u << 20;
	return d;
}

static inline struct drv *drv_new_args(const char *extra)
{
	return drv_new_loop(extra, NULL);
}

static inline struct drv *drv_new(void)
{
	return drv_new_args(NULL);
}

static inline void drv_free(struct drv *d)
{
	device_destroy_all(&d->t->m);
	pci_bus_free(d->t->m.pci);
	unlink(d->img);
	test_machine_free(d->t);
	free(d);
}

/* Enable with an admin queue of qsize entries; asserts CSTS.RDY. */
static inline void drv_enable(struct drv *d, uint16_t qsize)
{
	struct drv_q *q = &d->q[0];

	q->size = q->cqsize = qsize;
	q->sq = drv_alloc(d, (qsize * 64 + DRV_PAGE - 1) / DRV_PAGE);
	q->cq = drv_alloc(d, (qsize * 16 + DRV_PAGE - 1) / DRV_PAGE);
	q->sq_tail = q->cq_head = 0;
	q->phase = true;
	drv_wr32(d, NVME_REG_AQA, (uint32_t)(qsize - 1) << 16 | (qsize - 1));
	drv_wr32(d, NVME_REG_ASQ, (uint32_t)q->sq);
	drv_wr32(d, NVME_REG_ASQ + 4, (uint32_t)(q->sq >> 32));
	drv_wr32(d, NVME_REG_ACQ, (uint32_t)q->cq);
	drv_wr32(d, NVME_REG_ACQ + 4, (uint32_t)(q->cq >> 32));
	drv_wr32(d, NVME_REG_CC, NVME_CC_EN | 6u << 16 | 4u << 20);
	assert_int_equal(drv_rd32(d, NVME_REG_CSTS) & (NVME_CSTS_RDY | NVME_CSTS_CFS),
			 NVME_CSTS_RDY);
}

static inline void drv_sq_doorbell(struct drv *d, unsigned qid, uint32_t v)
{
	if (d->dbbuf && qid) {
		uint32_t *shadow = drv_ptr(d, d->dbs + 8 * qid);

		*shadow = v;
	}
	drv_wr32(d, NVME_REG_DBS + 8 * qid, v);
}

static inline void drv_cq_doorbell(struct drv *d, unsigned qid, uint32_t v)
{
	if (d->dbbuf && qid) {
		uint32_t *shadow = drv_ptr(d, d->dbs + 8 * qid + 4);

		*shadow = v;
	}
	drv_wr32(d, NVME_REG_DBS + 8 * qid + 4, v);
}

/* Place cmd in queue qid without ringing; returns its cid. */
static inline uint16_t drv_queue(struct drv *d, unsigned qid, struct nvme_cmd *cmd)
{
	struct drv_q *q = &d->q[qid];

	cmd->cid = ++d->cid;
	memcpy(drv_ptr(d, q->sq + (uint64_t)q->sq_tail * 64), cmd, 64);
	q->sq_tail = (uint16_t)((q->sq_tail + 1) % q->size);
	return cmd->cid;
}

static inline uint16_t drv_submit(struct drv *d, unsigned qid, struct nvme_cmd *cmd)
{
	uint16_t cid = drv_queue(d, qid, cmd);

	drv_sq_doorbell(d, qid, d->q[qid].sq_tail);
	return cid;
}

/* The next completion of CQ qid if posted (phase matches), without consuming it. */
static inline bool drv_peek(struct drv *d, unsigned qid, struct nvme_cqe *out)
{
	struct drv_q *q = &d->q[qid];
	struct nvme_cqe *e = drv_ptr(d, q->cq + (uint64_t)q->cq_head * 16);

	uint32_t last;

	memset(out, 0, sizeof(*out));
	/* the device writes the dword with the phase tag last (release) */
	last = __atomic_load_n((uint32_t *)&e->cid, __ATOMIC_ACQUIRE);
	if (((last >> 16) & 1) != q->phase)
		return false;
	*out = *e;
	return true;
}

static inline void drv_consume(struct drv *d, unsigned qid, bool ring)
{
	struct drv_q *q = &d->q[qid];

	if (++q->cq_head == q->cqsize) {
		q->cq_head = 0;
		q->phase = !q->phase;
	}
	if (ring)
		drv_cq_doorbell(d, qid, q->cq_head);
}

/* Wait (polling block completions) for the next completion on CQ qid. */
static inline bool drv_wait(struct drv *d, unsigned qid, struct nvme_cqe *out)
{
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < 20000; i++) {
		if (drv_peek(d, qid, out)) {
			drv_consume(d, qid, true);
			return true;
		}
		if (nvme_poll(d->dev) == 0)
			usleep(100);
	}
	return false;
}

/* Status without the phase bit: SCT << 8 | SC (plus DNR, masked off here). */
static inline uint16_t drv_status(const struct nvme_cqe *e)
{
	return (e->status >> 1) & 0x7ff;
}

/* Submit and wait; returns the status, dw0 in *dw0 when not NULL. */
static inline uint16_t drv_cmd(struct drv *d, unsigned qid, struct nvme_cmd *cmd, uint32_t *dw0)
{
	struct nvme_cqe e;
	uint16_t cid = drv_submit(d, qid, cmd);

	assert_true(drv_wait(d, qid, &e));
	assert_int_equal(e.cid, cid);
	assert_int_equal(e.sqid, qid);
	if (dw0)
		*dw0 = e.dw0;
	return drv_status(&e);
}

static inline uint16_t drv_admin(struct drv *d, struct nvme_cmd *cmd, uint32_t *dw0)
{
	return drv_cmd(d, 0, cmd, dw0);
}

static inline uint16_t drv_create_cq(struct drv *d, uint16_t qid, uint16_t size, uint16_t iv)
{
	struct drv_q *q = &d->q[qid];
	struct nvme_cmd cmd = { .opc = NVME_ADM_CREATE_CQ };

	q->cqsize = size;
	q->cq = drv_alloc(d, (size * 16 + DRV_PAGE - 1) / DRV_PAGE);
	q->cq_head = 0;
	q->phase = true;
	cmd.prp1 = q->cq;
	cmd.cdw10 = (uint32_t)(size - 1) << 16 | qid;
	cmd.cdw11 = (uint32_t)iv << 16 | 0x3;	/* IEN | PC */
	return drv_admin(d, &cmd, NULL);
}

/* SQ qid completing into CQ cqid (its drv_q must be the CQ's for drv_wait). */
static inline uint16_t drv_create_sq(struct drv *d, uint16_t qid, uint16_t size, uint16_t cqid)
{
	struct drv_q *q = &d->q[qid];
	struct nvme_cmd cmd = { .opc = NVME_ADM_CREATE_SQ };

	q->size = size;
	q->sq = drv_alloc(d, (size * 64 + DRV_PAGE - 1) / DRV_PAGE);
	q->sq_tail = 0;
	cmd.prp1 = q->sq;
	cmd.cdw10 = (uint32_t)(size - 1) << 16 | qid;
	cmd.cdw11 = (uint32_t)cqid << 16 | 0x1;
	return drv_admin(d, &cmd, NULL);
}

/* Doorbell Buffer Config (NVMe 1.3): shadow doorbells in d->dbs, event indexes in d->eis. */
static inline void drv_dbbuf_config(struct drv *d)
{
	struct nvme_cmd cmd = { .opc = NVME_ADM_DBBUF_CONFIG };

	d->dbs = drv_alloc(d, 1);
	d->eis = drv_alloc(d, 1);
	cmd.prp1 = d->dbs;
	cmd.prp2 = d->eis;
	assert_int_equal(drv_admin(d, &cmd, NULL), 0);
	d->dbbuf = true;
}

/* Admin queue of 32, I/O queue pair 1 of `size` entries on vector 1. */
static inline struct drv *drv_ready(uint16_t size)
{
	struct drv *d = drv_new();

	drv_enable(d, 32);
	assert_int_equal(drv_create_cq(d, 1, size, 1), 0);
	assert_int_equal(drv_create_sq(d, 1, size, 1), 0);
	return d;
}

static inline struct nvme_cmd drv_rw(uint8_t opc, uint32_t nsid, uint64_t slba, uint32_t nlb,
				     uint64_t prp1, uint64_t prp2)
{
	struct nvme_cmd c = { .opc = opc, .nsid = nsid, .prp1 = prp1, .prp2 = prp2 };

	c.cdw10 = (uint32_t)slba;
	c.cdw11 = (uint32_t)(slba >> 32);
	c.cdw12 = nlb - 1;
	return c;
}

static inline void drv_fill(void *p, size_t n, uint32_t seed)
{
	uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)((i * 131 + seed * 7 + (i >> 9)) ^ seed);
}

static inline void drv_pread(struct drv *d, void *buf, size_t n, uint64_t off)
{
	int fd = open(d->img, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, n, (off_t)off), (ssize_t)n);
	close(fd);
}

#endif
