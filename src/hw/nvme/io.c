/*
 * NVM command set I/O commands (NVMe 1.4 §6): Read, Write, Flush, Write
 * Zeroes and Dataset Management (deallocate). Data moves between the backing
 * file and guest RAM through iovecs built by the PRP walker; the block layer
 * completes asynchronously and nvme_io_done posts the completion.
 */
#include <errno.h>
#include <endian.h>
#include <string.h>

#include "amber/log.h"
#include "nvme.h"

#define NVME_CDW12_FUA   (1u << 30)
#define NVME_CDW12_DEAC  (1u << 25)	/* Write Zeroes: deallocate */
#define NVME_DSM_AD      (1u << 2)	/* Dataset Management: deallocate */

/* One Dataset Management range (§6.7, Figure 364) */
struct nvme_dsm_range {
	uint32_t attr;
	uint32_t nlb;			/* 1's based */
	uint64_t slba;
};

static uint16_t nvme_status_of_errno(enum block_op op, int ret)
{
	switch (ret) {
	case -EROFS:
		return NVME_NS_WRITE_PROTECTED | NVME_DNR;
	case -ENOSPC:
		return NVME_CAPACITY_EXCEEDED | NVME_DNR;
	}
	if (op == BLOCK_OP_READ)
		return NVME_UNRECOVERED_READ;
	if (op == BLOCK_OP_WRITE || op == BLOCK_OP_WRITE_ZEROES)
		return NVME_WRITE_FAULT;
	return NVME_INTERNAL_ERROR;
}

/* An I/O's block request finished: account, then post or wait for CQ space. */
static void nvme_io_finished(struct nvme_ctrl *c, struct nvme_req *req, uint16_t status)
{
	struct nvme_sq *sq = req->sq;

	nvme_req_complete(c, req, status);
	if (--sq->inflight == 0 && sq->deleting) {
		/* §5.6: Delete I/O SQ completes once its commands have. */
		struct nvme_req *del = sq->delete_req;

		nvme_sq_free(c, sq);
		nvme_fast_sync(c);
		if (del)
			nvme_req_complete(c, del, NVME_SUCCESS);
	}
	if (--c->inflight == 0)
		nvme_inflight_done(c);
}

static void nvme_io_done(struct block_req *breq, int ret);

/* Hand req to the block layer; a non-zero status means it was refused. */
static uint16_t nvme_io_submit(struct nvme_ctrl *c, struct nvme_req *req)
{
	int ret;

	req->breq.done = nvme_io_done;
	ret = block_submit(req->ns->blk, &req->breq);
	if (ret < 0)
		return ret == -EROFS ? NVME_NS_WRITE_PROTECTED | NVME_DNR : NVME_INTERNAL_ERROR;
	req->in_backend = true;
	req->sq->inflight++;
	c->inflight++;
	return NVME_SUCCESS;
}

/* Read range i of a DSM command from guest memory (through the PRPs). */
static uint16_t nvme_dsm_range(struct nvme_ctrl *c, struct nvme_req *req, unsigned i,
			       struct nvme_dsm_range *r)
{
	uint16_t st = nvme_prp_copy(c, &req->cmd, (uint64_t)req->dsm_nr * sizeof(*r),
				    (uint64_t)i * sizeof(*r), r, sizeof(*r), false);

	r->nlb = le32toh(r->nlb);
	r->slba = le64toh(r->slba);
	return st;
}

static bool nvme_lba_ok(const struct nvme_ns *ns, uint64_t slba, uint64_t nlb)
{
	return slba < ns->nlba && nlb <= ns->nlba - slba;
}

/*
 * Start the next non-empty DSM range from req->dsm_next; returns true when a
 * request was submitted, false when none is left (or on error, *st set).
 */
static bool nvme_dsm_next(struct nvme_ctrl *c, struct nvme_req *req, uint16_t *st)
{
	struct nvme_dsm_range r;

	for (; req->dsm_next < req->dsm_nr; req->dsm_next++) {
		*st = nvme_dsm_range(c, req, req->dsm_next, &r);
		if (*st)
			return false;
		if (!r.nlb)
			continue;
		/* Checked at submission; the host may have changed the list since. */
		if (!nvme_lba_ok(req->ns, r.slba, r.nlb)) {
			*st = NVME_LBA_OUT_OF_RANGE | NVME_DNR;
			return false;
		}
		req->breq.op = BLOCK_OP_DISCARD;
		req->breq.flags = 0;
		req->breq.offset = r.slba << NVME_LBA_SHIFT;
		req->breq.len = (uint64_t)r.nlb << NVME_LBA_SHIFT;
		req->breq.iov = NULL;
		req->breq.iovcnt = 0;
		return true;
	}
	*st = NVME_SUCCESS;
	return false;
}

static void nvme_io_done(struct block_req *breq, int ret)
{
	struct nvme_req *req = (struct nvme_req *)breq;
	struct nvme_ctrl *c = req->ctrl;
	uint16_t st = NVME_SUCCESS;

	pthread_mutex_lock(&c->lock);
	req->in_backend = false;
	if (ret == 0 && req->cmd.opc == NVME_IO_DSM && !c->resetting) {
		req->dsm_next++;
		if (nvme_dsm_next(c, req, &st)) {
			ret = block_submit(req->ns->blk, &req->breq);
			if (ret == 0) {
				req->in_backend = true;
				goto out;
			}
		}
	}
	if (ret < 0) {
		st = nvme_status_of_errno(breq->op, ret);
		log_debug("nvme", "%s: nsid %u: %s", c->dev->id, req->ns->nsid, strerror(-ret));
	} else if (req->cmd.opc == NVME_IO_READ) {
		c->r.host_reads++;
		c->r.sectors_read += breq->len >> NVME_LBA_SHIFT;
	} else if (req->cmd.opc == NVME_IO_WRITE) {
		c->r.host_writes++;
		c->r.sectors_written += breq->len >> NVME_LBA_SHIFT;
	}
	/* The interrupt goes out once per batch of completions (nvme_batch_done). */
	nvme_io_finished(c, req, st);
out:
	pthread_mutex_unlock(&c->lock);
}

static uint16_t nvme_io_rw(struct nvme_ctrl *c, struct nvme_req *req, bool write)
{
	const struct nvme_cmd *cmd = &req->cmd;
	uint64_t slba = cmd->cdw10 | (uint64_t)cmd->cdw11 << 32;
	uint64_t nlb = (cmd->cdw12 & 0xffff) + 1;
	uint64_t len = nlb << NVME_LBA_SHIFT;
	unsigned niov;
	uint16_t st;

	if (write && req->ns->ro)
		return NVME_NS_WRITE_PROTECTED | NVME_DNR;
	if (!nvme_lba_ok(req->ns, slba, nlb))
		return NVME_LBA_OUT_OF_RANGE | NVME_DNR;
	/* §5.15.2.1 MDTS */
	if (len > NVME_MAX_XFER)
		return NVME_INVALID_FIELD | NVME_DNR;
	st = nvme_prp_map(c, cmd, len, req->iov, NVME_MAX_IOV, &niov);
	if (st)
		return st;
	req->breq.op = write ? BLOCK_OP_WRITE : BLOCK_OP_READ;
	/* FUA, or the volatile write cache is off: durable before completion */
	req->breq.flags = write && ((cmd->cdw12 & NVME_CDW12_FUA) || !c->r.vwc) ? BLOCK_REQ_FUA : 0;
	req->breq.offset = slba << NVME_LBA_SHIFT;
	req->breq.iov = req->iov;
	req->breq.iovcnt = (int)niov;
	return nvme_io_submit(c, req);
}

static uint16_t nvme_io_write_zeroes(struct nvme_ctrl *c, struct nvme_req *req)
{
	const struct nvme_cmd *cmd = &req->cmd;
	uint64_t slba = cmd->cdw10 | (uint64_t)cmd->cdw11 << 32;
	uint64_t nlb = (cmd->cdw12 & 0xffff) + 1;

	if (req->ns->ro)
		return NVME_NS_WRITE_PROTECTED | NVME_DNR;
	if (!nvme_lba_ok(req->ns, slba, nlb))
		return NVME_LBA_OUT_OF_RANGE | NVME_DNR;
	/* §6.16: DEAC asks to deallocate; deallocated blocks read as zeroes (DLFEAT) */
	req->breq.op = (cmd->cdw12 & NVME_CDW12_DEAC) ? BLOCK_OP_DISCARD : BLOCK_OP_WRITE_ZEROES;
	req->breq.flags = 0;
	req->breq.offset = slba << NVME_LBA_SHIFT;
	req->breq.len = nlb << NVME_LBA_SHIFT;
	req->breq.iov = NULL;
	req->breq.iovcnt = 0;
	return nvme_io_submit(c, req);
}

static uint16_t nvme_io_dsm(struct nvme_ctrl *c, struct nvme_req *req)
{
	const struct nvme_cmd *cmd = &req->cmd;
	struct nvme_dsm_range r;
	uint16_t st;

	/* Without AD the attributes are hints only (§6.7). */
	if (!(cmd->cdw11 & NVME_DSM_AD))
		return NVME_SUCCESS;
	if (req->ns->ro)
		return NVME_NS_WRITE_PROTECTED | NVME_DNR;
	req->dsm_nr = (uint16_t)((cmd->cdw10 & 0xff) + 1);
	/* Check every range before deallocating any. */
	for (unsigned i = 0; i < req->dsm_nr; i++) {
		st = nvme_dsm_range(c, req, i, &r);
		if (st)
			return st;
		if (r.nlb && !nvme_lba_ok(req->ns, r.slba, r.nlb))
			return NVME_LBA_OUT_OF_RANGE | NVME_DNR;
	}
	req->dsm_next = 0;
	if (!nvme_dsm_next(c, req, &st))
		return st;
	return nvme_io_submit(c, req);
}

void nvme_io_exec(struct nvme_ctrl *c, struct nvme_req *req)
{
	const struct nvme_cmd *cmd = &req->cmd;
	uint16_t st;

	/* No fused operations (FUSES = 0) and no SGLs (SGLS = 0): §4.2 */
	if (cmd->flags & 0xc3) {
		st = NVME_INVALID_FIELD | NVME_DNR;
		goto done;
	}
	if (cmd->nsid == 0 || cmd->nsid > c->nns) {
		/* VWC bits 2:1 = 10b: a broadcast Flush is not supported */
		st = NVME_INVALID_NAMESPACE | NVME_DNR;
		goto done;
	}
	req->ns = &c->ns[cmd->nsid - 1];
	switch (cmd->opc) {
	case NVME_IO_READ:
		st = nvme_io_rw(c, req, false);
		break;
	case NVME_IO_WRITE:
		st = nvme_io_rw(c, req, true);
		break;
	case NVME_IO_FLUSH:
		req->breq.op = BLOCK_OP_FLUSH;
		req->breq.flags = 0;
		req->breq.offset = req->breq.len = 0;
		req->breq.iov = NULL;
		req->breq.iovcnt = 0;
		st = nvme_io_submit(c, req);
		break;
	case NVME_IO_WRITE_ZEROES:
		st = nvme_io_write_zeroes(c, req);
		break;
	case NVME_IO_DSM:
		st = nvme_io_dsm(c, req);
		break;
	default:
		st = NVME_INVALID_OPCODE | NVME_DNR;
		break;
	}
	if (req->in_backend)
		return;		/* nvme_io_done completes it */
done:
	nvme_req_complete(c, req, st);
}
