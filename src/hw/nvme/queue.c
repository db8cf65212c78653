/*
 * NVMe submission and completion queues (NVMe 1.4 §4.1, §4.6, §5.8):
 * creating and freeing them, fetching commands, posting completions with the
 * phase tag, doorbells (MMIO and shadow), and what happens when a queue is
 * full. All functions here run with ctrl->lock held.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "amber/log.h"
#include "nvme.h"

/* ---- creation ------------------------------------------------------------ */

int nvme_sq_init(struct nvme_ctrl *c, uint16_t qid, uint64_t base, uint16_t size,
		 uint16_t cqid, uint8_t prio)
{
	struct nvme_sq *sq = &c->sq[qid];
	unsigned n = size < NVME_SQ_SLOTS ? size : NVME_SQ_SLOTS;

	/* The admin SQ also holds the outstanding Asynchronous Event Requests. */
	if (qid == 0)
		n += NVME_AERL + 1;
	memset(sq, 0, sizeof(*sq));
	sq->slots = calloc(n, sizeof(*sq->slots));
	if (!sq->slots)
		return -ENOMEM;
	if (qid) {
		sq->iov_pool = calloc((size_t)n * NVME_MAX_IOV, sizeof(struct iovec));
		if (!sq->iov_pool) {
			free(sq->slots);
			sq->slots = NULL;
			return -ENOMEM;
		}
	}
	sq->valid = true;
	sq->qid = qid;
	sq->base = base;
	sq->size = size;
	sq->cqid = cqid;
	sq->prio = prio;
	sq->nslots = n;
	for (unsigned i = n; i-- > 0;) {
		struct nvme_req *r = &sq->slots[i];

		r->ctrl = c;
		r->sq = sq;
		r->iov = sq->iov_pool ? &sq->iov_pool[(size_t)i * NVME_MAX_IOV] : NULL;
		r->next = sq->free;
		sq->free = r;
	}
	c->cq[cqid].nsq++;
	return 0;
}

/* Remove sq's completions from its CQ's wait list (they are dropped). */
static void nvme_cq_unlink_sq(struct nvme_cq *cq, struct nvme_sq *sq)
{
	struct nvme_req **pp = &cq->wait_head;

	cq->wait_tail = NULL;
	while (*pp) {
		if ((*pp)->sq == sq) {
			*pp = (*pp)->next;
		} else {
			cq->wait_tail = *pp;
			pp = &(*pp)->next;
		}
	}
}

void nvme_sq_free(struct nvme_ctrl *c, struct nvme_sq *sq)
{
	if (!sq->valid)
		return;
	nvme_cq_unlink_sq(&c->cq[sq->cqid], sq);
	if (c->cq[sq->cqid].nsq)
		c->cq[sq->cqid].nsq--;
	free(sq->slots);
	free(sq->iov_pool);
	memset(sq, 0, sizeof(*sq));
}

void nvme_cq_init(struct nvme_ctrl *c, uint16_t qid, uint64_t base, uint16_t size,
		  bool ien, uint16_t vector)
{
	struct nvme_cq *cq = &c->cq[qid];

	memset(cq, 0, sizeof(*cq));
	cq->valid = true;
	cq->base = base;
	cq->size = size;
	cq->phase = true;	/* §4.6: the first pass posts with phase 1 */
	cq->pc = true;
	cq->ien = ien;
	cq->vector = vector;
}

void nvme_cq_free(struct nvme_ctrl *c, struct nvme_cq *cq)
{
	memset(cq, 0, sizeof(*cq));
}

/* ---- shadow doorbells (§5.8) --------------------------------------------- */

static uint64_t nvme_dbbuf_off(uint16_t qid, bool cq)
{
	return (2ULL * qid + (cq ? 1 : 0)) * 4;	/* CAP.DSTRD = 0 */
}

/*
 * The value the host wrote into the shadow doorbell of a queue, or fallback
 * when none is configured or the value is not a valid index.
 */
uint16_t nvme_shadow_read(struct nvme_ctrl *c, uint16_t qid, bool cq, uint16_t fallback)
{
	uint16_t size = cq ? c->cq[qid].size : c->sq[qid].size;
	uint32_t v;

	if (!c->r.dbbuf_dbs)
		return fallback;
	if (gmem_read(&c->m->mem, c->r.dbbuf_dbs + nvme_dbbuf_off(qid, cq), &v, 4) < 0)
		return fallback;
	return v < size ? (uint16_t)v : fallback;
}

static void nvme_shadow_write(struct nvme_ctrl *c, uint64_t buf, uint16_t qid, bool cq,
			      uint32_t v)
{
	if (buf)
		gmem_write(&c->m->mem, buf + nvme_dbbuf_off(qid, cq), &v, 4);
}

/* Is new_head a legal CQ head: at most up to the tail (§4.1)? */
static bool nvme_cq_head_ok(const struct nvme_cq *cq, uint32_t new_head)
{
	uint32_t used = (cq->tail + cq->size - cq->head) % cq->size;
	uint32_t adv = (new_head + cq->size - cq->head) % cq->size;

	return new_head < cq->size && adv <= used;
}

/* Take the CQ head from the shadow doorbell when it holds a legal one. */
static void nvme_cq_shadow_head(struct nvme_ctrl *c, uint16_t qid)
{
	struct nvme_cq *cq = &c->cq[qid];
	uint16_t h = nvme_shadow_read(c, qid, true, cq->head);

	if (nvme_cq_head_ok(cq, h))
		cq->head = h;
}

/*
 * Refresh the CQ head from the shadow doorbell, if the host uses one, and
 * publish the CQ's event index (§5.8). ring: the controller must hear of the
 * host's next head update (a completion waits for space, or INTx must follow
 * the head): EventIdx = head, so that update rings the MMIO doorbell; reading
 * the shadow again after the barrier closes the race with a host that updated
 * it before seeing the new event index. Otherwise EventIdx = head - 1: the
 * host rings only after a whole lap, not after every pass of its completion
 * handler (each ring is an exit and a wake-up of the event loop).
 */
void nvme_cq_refresh_head(struct nvme_ctrl *c, uint16_t qid, bool ring)
{
	struct nvme_cq *cq = &c->cq[qid];

	if (!c->r.dbbuf_dbs)
		return;
	nvme_cq_shadow_head(c, qid);
	nvme_shadow_write(c, c->r.dbbuf_eis, qid, true,
			  ring ? cq->head : (uint16_t)((cq->head + cq->size - 1) % cq->size));
	if (!ring)
		return;
	atomic_thread_fence(memory_order_seq_cst);
	nvme_cq_shadow_head(c, qid);
}

/*
 * Has the host consumed every entry of CQ qid? The head comes from the shadow
 * doorbell when the host uses one (read only: the event index stays), else
 * from its last MMIO write.
 */
bool nvme_cq_consumed(struct nvme_ctrl *c, uint16_t qid)
{
	struct nvme_cq *cq = &c->cq[qid];

	if (cq->head != cq->tail && c->r.dbbuf_dbs)
		nvme_cq_shadow_head(c, qid);
	return cq->head == cq->tail;
}

/* ---- completion ----------------------------------------------------------- */

static bool nvme_cq_full(struct nvme_ctrl *c, uint16_t qid)
{
	struct nvme_cq *cq = &c->cq[qid];

	if ((cq->tail + 1) % cq->size != cq->head)
		return false;
	nvme_cq_refresh_head(c, qid, true);
	return (cq->tail + 1) % cq->size == cq->head;
}

static void nvme_req_release(struct nvme_sq *sq, struct nvme_req *req)
{
	req->state = NVME_REQ_FREE;
	req->next = sq->free;
	sq->free = req;
	sq->active--;
}

/* Write one entry; the dword holding the phase tag goes last (§4.6). */
static void nvme_cq_post(struct nvme_ctrl *c, uint16_t qid, struct nvme_req *req)
{
	struct nvme_cq *cq = &c->cq[qid];
	uint64_t gpa = cq->base + (uint64_t)cq->tail * sizeof(struct nvme_cqe);
	struct nvme_cqe *e = gmem_ptr(&c->m->mem, gpa, sizeof(*e));
	uint32_t last;

	if (!e) {
		/* Checked when the queue was created; RAM cannot vanish, but be safe. */
		nvme_fatal(c, "completion queue entry outside guest RAM");
		return;
	}
	e->dw0 = htole32(req->dw0);
	e->dw1 = 0;
	e->sqhd = htole16(req->sqhd);
	e->sqid = htole16(req->sq->qid);
	last = (uint32_t)req->cmd.cid | (uint32_t)((req->status << 1) | cq->phase) << 16;
	atomic_store_explicit((_Atomic uint32_t *)&e->cid, htole32(last), memory_order_release);
	if (++cq->tail == cq->size) {
		cq->tail = 0;
		cq->phase = !cq->phase;
	}
	if (cq->ien) {
		c->irq_pending[qid / 64] |= 1ULL << (qid % 64);
		nvme_coal_posted(c, cq->vector);
	}
}

static void nvme_sq_kick(struct nvme_ctrl *c, struct nvme_sq *sq);

void nvme_req_complete(struct nvme_ctrl *c, struct nvme_req *req, uint16_t status)
{
	struct nvme_sq *sq = req->sq;
	uint16_t qid = sq->cqid;
	struct nvme_cq *cq = &c->cq[qid];

	req->status = status;
	req->sqhd = sq->head;
	if ((status & 0x7ff) == NVME_DATA_TRANSFER_ERROR)
		nvme_error_record(c, sq->qid, req->cmd.cid, status);
	/* After CC.EN = 0 nothing more is written into host memory (§7.3.2). */
	if (c->resetting || !cq->valid) {
		nvme_req_release(sq, req);
		return;
	}
	if (cq->wait_head || nvme_cq_full(c, qid)) {
		/* CQ full: the completion waits for the host to free entries. */
		req->state = NVME_REQ_CQ_WAIT;
		req->next = NULL;
		if (cq->wait_tail)
			cq->wait_tail->next = req;
		else
			cq->wait_head = req;
		cq->wait_tail = req;
		return;
	}
	nvme_cq_post(c, qid, req);
	nvme_req_release(sq, req);
	nvme_sq_kick(c, sq);
}

/* Post completions that waited for space; their SQs may fetch again. */
void nvme_cq_drain_waiting(struct nvme_ctrl *c, struct nvme_cq *cq)
{
	uint16_t qid = (uint16_t)(cq - c->cq);

	while (cq->wait_head && !nvme_cq_full(c, qid)) {
		struct nvme_req *req = cq->wait_head;

		cq->wait_head = req->next;
		if (!cq->wait_head)
			cq->wait_tail = NULL;
		nvme_cq_post(c, qid, req);
		nvme_req_release(req->sq, req);
		nvme_sq_kick(c, req->sq);
	}
}

/* ---- fetching --------------------------------------------------------------- */

/*
 * While the vector an SQ completes to holds an interrupt back (coalesce.c),
 * the host need not ring that SQ's doorbell: the coalescing timer fetches
 * the SQ before it sends the interrupt, and the commands it finds complete
 * in the same message. Every ring is an exit the guest pays for (with an
 * instruction emulated, on AMD) and a wake-up of the event loop; at high
 * queue depths the host submits between most of its interrupts.
 */
static bool nvme_sq_muted(const struct nvme_ctrl *c, const struct nvme_sq *sq)
{
	const struct nvme_cq *cq = &c->cq[sq->cqid];

	return sq->qid && cq->valid && cq->ien && nvme_coal_muted(c, cq->vector);
}

/* §5.8: EventIdx one behind the tail asks the host for no ring until a lap. */
static void nvme_sq_mute(struct nvme_ctrl *c, struct nvme_sq *sq)
{
	nvme_shadow_write(c, c->r.dbbuf_eis, sq->qid, false,
			  (uint16_t)((sq->tail + sq->size - 1) % sq->size));
}

/* Vector v now holds an interrupt back: mute the doorbells of its SQs. */
void nvme_sqs_mute(struct nvme_ctrl *c, unsigned v)
{
	if (!c->r.dbbuf_dbs)
		return;
	for (unsigned q = 1; q < NVME_NQ; q++) {
		struct nvme_sq *sq = &c->sq[q];

		if (sq->valid && !sq->deleting && c->cq[sq->cqid].vector == v)
			nvme_sq_mute(c, sq);
	}
}

/*
 * The coalescing timer fires for these vectors (already unmuted): fetch their
 * SQs, which also asks the host to ring again. True if commands were fetched.
 */
bool nvme_sqs_fetch(struct nvme_ctrl *c, const uint64_t *vectors)
{
	uint64_t before = c->coal.fetched;

	for (unsigned q = 1; q < NVME_NQ; q++) {
		struct nvme_sq *sq = &c->sq[q];
		unsigned v = c->cq[sq->cqid].vector;

		if (sq->valid && v < NVME_NVEC && (vectors[v / 64] & (1ULL << (v % 64))))
			nvme_sq_process(c, sq);
	}
	return c->coal.fetched != before;
}

static bool nvme_can_fetch(const struct nvme_ctrl *c, const struct nvme_sq *sq)
{
	return c->enabled && !c->resetting && !c->shutting_down && !c->quiesced &&
	       !(c->r.csts & NVME_CSTS_CFS) && sq->valid && !sq->deleting;
}

/*
 * Fetch and start commands from head to tail while command slots are free.
 * Re-entry (a command completing immediately frees a slot and kicks its SQ)
 * is harmless: the loop re-reads head and tail.
 */
void nvme_sq_process(struct nvme_ctrl *c, struct nvme_sq *sq)
{
	if (sq->processing || !nvme_can_fetch(c, sq))
		return;
	sq->processing = true;
	for (unsigned i = 0; i < c->nns; i++)
		block_plug(c->ns[i].blk);
	/* A host rewriting the shadow doorbell without end cannot keep us here. */
	for (unsigned pass = 0; pass < 64; pass++) {
		if (c->r.dbbuf_dbs)
			sq->tail = nvme_shadow_read(c, sq->qid, false, sq->tail);
		while (sq->head != sq->tail && sq->free && nvme_can_fetch(c, sq)) {
			struct nvme_req *req = sq->free;
			uint64_t gpa = sq->base + (uint64_t)sq->head * sizeof(struct nvme_cmd);

			if (gmem_read(&c->m->mem, gpa, &req->cmd, sizeof(req->cmd)) < 0) {
				nvme_fatal(c, "submission queue entry outside guest RAM");
				break;
			}
			sq->free = req->next;
			sq->active++;
			c->coal.fetched++;
			req->state = NVME_REQ_ACTIVE;
			req->next = NULL;
			req->dw0 = 0;
			req->ns = NULL;
			req->in_backend = false;
			sq->head = (uint16_t)((sq->head + 1) % sq->size);
			if (sq->qid == 0)
				nvme_admin_exec(c, req);
			else
				nvme_io_exec(c, req);
		}
		if (!c->r.dbbuf_dbs || !nvme_can_fetch(c, sq))
			break;
		if (nvme_sq_muted(c, sq)) {
			/* its vector's timer fetches what comes meanwhile */
			nvme_sq_mute(c, sq);
			break;
		}
		/*
		 * §5.8: tell the host how far we have read (EventIdx), then look
		 * again, since it may have written the shadow meanwhile without
		 * ringing the MMIO doorbell.
		 */
		nvme_shadow_write(c, c->r.dbbuf_eis, sq->qid, false, sq->tail);
		atomic_thread_fence(memory_order_seq_cst);
		if (nvme_shadow_read(c, sq->qid, false, sq->tail) == sq->tail || !sq->free)
			break;
	}
	for (unsigned i = 0; i < c->nns; i++)
		block_unplug(c->ns[i].blk);
	sq->processing = false;
	nvme_irq_flush(c);
}

/* A slot was freed: fetch more if commands were waiting for one. */
static void nvme_sq_kick(struct nvme_ctrl *c, struct nvme_sq *sq)
{
	if (sq->valid && sq->head != sq->tail)
		nvme_sq_process(c, sq);
}

void nvme_process_all(struct nvme_ctrl *c)
{
	for (unsigned q = 0; q < NVME_NQ; q++)
		if (c->sq[q].valid)
			nvme_sq_process(c, &c->sq[q]);
	nvme_irq_flush(c);
}

/* ---- doorbells (§3.1.10, §3.1.11) ---------------------------------------- */

static void nvme_doorbell_error(struct nvme_ctrl *c, uint16_t qid, uint8_t info)
{
	log_debug("nvme", "%s: invalid doorbell write for queue %u (%s)", c->dev->id, qid,
		  info == NVME_AER_INFO_INVALID_DB_REG ? "no such queue" : "bad value");
	nvme_error_record(c, qid, 0xffff, NVME_INVALID_FIELD);
	nvme_event_post(c, NVME_AER_TYPE_ERROR, info, NVME_LOG_ERROR);
	nvme_event_dispatch(c);
}

void nvme_doorbell_write(struct nvme_ctrl *c, uint64_t off, uint32_t val)
{
	uint64_t idx = (off - NVME_REG_DBS) / 4;
	uint16_t qid = (uint16_t)(idx / 2);
	bool is_cq = idx & 1;

	/* Doorbells of a controller that is not ready are ignored. */
	if (!c->enabled || c->resetting || (c->r.csts & NVME_CSTS_CFS))
		return;
	if (idx / 2 >= NVME_NQ || !(is_cq ? c->cq[qid].valid : c->sq[qid].valid)) {
		nvme_doorbell_error(c, qid, NVME_AER_INFO_INVALID_DB_REG);
		goto out;
	}
	if (!is_cq) {
		struct nvme_sq *sq = &c->sq[qid];

		if (val >= sq->size) {
			nvme_doorbell_error(c, qid, NVME_AER_INFO_INVALID_DB_VALUE);
			goto out;
		}
		sq->tail = (uint16_t)val;
		/*
		 * Linux never writes the admin queue's shadow doorbell; mirror the
		 * MMIO value there so reading the shadow stays correct for it.
		 */
		if (qid == 0)
			nvme_shadow_write(c, c->r.dbbuf_dbs, 0, false, val);
		nvme_sq_process(c, sq);
	} else {
		struct nvme_cq *cq = &c->cq[qid];

		if (!nvme_cq_head_ok(cq, val)) {
			nvme_doorbell_error(c, qid, NVME_AER_INFO_INVALID_DB_VALUE);
			goto out;
		}
		cq->head = (uint16_t)val;
		if (qid == 0)
			nvme_shadow_write(c, c->r.dbbuf_dbs, 0, true, val);
		nvme_cq_drain_waiting(c, cq);
		nvme_irq_update_intx(c);
	}
out:
	nvme_irq_flush(c);
}

/* ---- reset ------------------------------------------------------------------ */

/* Controller level reset of the queues (§7.3.2): delete all, drop AERs. */
void nvme_queues_reset(struct nvme_ctrl *c)
{
	for (unsigned q = 0; q < NVME_NQ; q++)
		nvme_sq_free(c, &c->sq[q]);
	for (unsigned q = 0; q < NVME_NQ; q++)
		nvme_cq_free(c, &c->cq[q]);
	c->naer = 0;
	c->nevents = 0;
	c->r.aer_masked = 0;
	c->r.dbbuf_dbs = c->r.dbbuf_eis = 0;
	c->irq_pending[0] = c->irq_pending[1] = 0;
}
