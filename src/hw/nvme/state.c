/*
 * NVMe controller saved state (version 1): registers and features as one
 * field table, queues, completions waiting for CQ space, outstanding AERs,
 * queued events and the error log as JSON arrays. Saved after quiesce, so
 * no block request is in flight; after load, work continues with whatever the
 * host left between SQ head and tail.
 *
 * {
 *   "regs": { "cc": ..., "csts": ..., "dbbuf_dbs": ..., ... },
 *   "enabled": true, "shutting_down": false,
 *   "namespaces": [ { "nsid": 1, "nlba": 2048, "ro": false } ],
 *   "cq": [ { "qid": 0, "base": ..., "size": 32, "head": 3, "tail": 3, "phase": true,
 *             "ien": true, "vector": 0, "waiting": [ { "sqid", "cid", "status",
 *             "dw0", "sqhd" } ] } ],
 *   "sq": [ { "qid": 0, "base": ..., "size": 32, "head": 3, "tail": 3, "cqid": 0,
 *             "prio": 0 } ],
 *   "aer": [ cid, ... ], "events": [ { "type", "info", "log" } ],
 *   "errors": [ { "count", "sqid", "cid", "status" } ],
 *   "pci": { config space, BARs, MSI-X }
 * }
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "amber/log.h"
#include "amber/snapjson.h"
#include "nvme.h"

#define U16_ARRAY(S, m) STATE_FIELD_(ST_U16, S, m, sizeof(((S *)0)->m) / 2, 0)

static const struct state_field nvme_regs_fields[] = {
	STATE_U32_MAX(struct nvme_regs, cc, NVME_CC_WMASK),
	STATE_U32_MAX(struct nvme_regs, csts, 0xf),
	STATE_U32(struct nvme_regs, intms),
	STATE_U32_MAX(struct nvme_regs, aqa, 0x0fff0fff),
	STATE_U64(struct nvme_regs, asq),
	STATE_U64(struct nvme_regs, acq),
	STATE_U32(struct nvme_regs, arbitration),
	STATE_U32(struct nvme_regs, power_mgmt),
	STATE_U32(struct nvme_regs, error_recovery),
	STATE_U32(struct nvme_regs, irq_coalesce),
	STATE_U32(struct nvme_regs, write_atomic),
	STATE_U32(struct nvme_regs, async_event_cfg),
	STATE_ARRAY_U32(struct nvme_regs, irq_config),
	U16_ARRAY(struct nvme_regs, temp_over),
	U16_ARRAY(struct nvme_regs, temp_under),
	STATE_BOOL(struct nvme_regs, vwc),
	STATE_U64(struct nvme_regs, dbbuf_dbs),
	STATE_U64(struct nvme_regs, dbbuf_eis),
	STATE_U32_MAX(struct nvme_regs, aer_masked, 0xff),
	STATE_U64(struct nvme_regs, error_count),
	STATE_U64(struct nvme_regs, sectors_read),
	STATE_U64(struct nvme_regs, sectors_written),
	STATE_U64(struct nvme_regs, host_reads),
	STATE_U64(struct nvme_regs, host_writes),
	STATE_END
};

/* Command slots of a queue of this size (queue.c: nvme_sq_init). */
static unsigned nvme_slots_for(unsigned qid, unsigned size)
{
	return (size < NVME_SQ_SLOTS ? size : NVME_SQ_SLOTS) + (qid == 0 ? NVME_AERL + 1 : 0);
}

/* ---- save ------------------------------------------------------------------- */

static int nvme_set(json_t *obj, const char *key, json_t *v)
{
	return v && json_object_set_new(obj, key, v) == 0 ? 0 : -ENOMEM;
}

static json_t *nvme_save_cq(const struct nvme_ctrl *c, unsigned q)
{
	const struct nvme_cq *cq = &c->cq[q];
	json_t *o = json_object(), *w = json_array();
	int ret = 0;

	if (!o || !w)
		goto fail;
	for (const struct nvme_req *r = cq->wait_head; r; r = r->next) {
		json_t *e = json_object();

		ret |= e ? 0 : -ENOMEM;
		ret |= nvme_set(e, "sqid", json_integer(r->sq->qid));
		ret |= nvme_set(e, "cid", json_integer(r->cmd.cid));
		ret |= nvme_set(e, "status", json_integer(r->status));
		ret |= nvme_set(e, "dw0", json_integer(r->dw0));
		ret |= nvme_set(e, "sqhd", json_integer(r->sqhd));
		ret |= e && json_array_append_new(w, e) == 0 ? 0 : -ENOMEM;
	}
	ret |= nvme_set(o, "qid", json_integer(q));
	ret |= nvme_set(o, "base", snap_json_u64(cq->base));
	ret |= nvme_set(o, "size", json_integer(cq->size));
	ret |= nvme_set(o, "head", json_integer(cq->head));
	ret |= nvme_set(o, "tail", json_integer(cq->tail));
	ret |= nvme_set(o, "phase", json_boolean(cq->phase));
	ret |= nvme_set(o, "ien", json_boolean(cq->ien));
	ret |= nvme_set(o, "vector", json_integer(cq->vector));
	ret |= nvme_set(o, "waiting", w);
	if (ret)
		goto fail_o;
	return o;
fail:
	json_decref(w);
fail_o:
	json_decref(o);
	return NULL;
}

static json_t *nvme_save_sq(const struct nvme_ctrl *c, unsigned q)
{
	const struct nvme_sq *sq = &c->sq[q];
	json_t *o = json_object();
	int ret = o ? 0 : -ENOMEM;

	ret |= nvme_set(o, "qid", json_integer(q));
	ret |= nvme_set(o, "base", snap_json_u64(sq->base));
	ret |= nvme_set(o, "size", json_integer(sq->size));
	ret |= nvme_set(o, "head", json_integer(sq->head));
	ret |= nvme_set(o, "tail", json_integer(sq->tail));
	ret |= nvme_set(o, "cqid", json_integer(sq->cqid));
	ret |= nvme_set(o, "prio", json_integer(sq->prio));
	if (ret) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int nvme_save_locked(struct nvme_ctrl *c, json_t *obj)
{
	json_t *regs = json_object(), *nss = json_array(), *cqs = json_array();
	json_t *sqs = json_array(), *aer = json_array(), *evs = json_array();
	json_t *errs = json_array(), *pci = json_object();
	int ret = 0;

	if (!regs || !nss || !cqs || !sqs || !aer || !evs || !errs || !pci) {
		ret = -ENOMEM;
		goto out;
	}
	ret |= state_fields_save(nvme_regs_fields, &c->r, regs);
	for (unsigned i = 0; i < c->nns; i++) {
		json_t *n = json_object();

		ret |= n ? 0 : -ENOMEM;
		ret |= nvme_set(n, "nsid", json_integer(c->ns[i].nsid));
		ret |= nvme_set(n, "nlba", snap_json_u64(c->ns[i].nlba));
		ret |= nvme_set(n, "ro", json_boolean(c->ns[i].ro));
		ret |= n && json_array_append_new(nss, n) == 0 ? 0 : -ENOMEM;
	}
	for (unsigned q = 0; q < NVME_NQ; q++) {
		if (c->cq[q].valid) {
			json_t *o = nvme_save_cq(c, q);

			ret |= o && json_array_append_new(cqs, o) == 0 ? 0 : -ENOMEM;
		}
		if (c->sq[q].valid) {
			json_t *o = nvme_save_sq(c, q);

			ret |= o && json_array_append_new(sqs, o) == 0 ? 0 : -ENOMEM;
		}
	}
	for (unsigned i = 0; i < c->naer; i++)
		ret |= json_array_append_new(aer, json_integer(c->aer[i]->cmd.cid)) ? -ENOMEM : 0;
	for (unsigned i = 0; i < c->nevents; i++) {
		json_t *e = json_object();

		ret |= e ? 0 : -ENOMEM;
		ret |= nvme_set(e, "type", json_integer(c->events[i].type));
		ret |= nvme_set(e, "info", json_integer(c->events[i].info));
		ret |= nvme_set(e, "log", json_integer(c->events[i].log));
		ret |= e && json_array_append_new(evs, e) == 0 ? 0 : -ENOMEM;
	}
	for (unsigned i = 0; i < c->nerrors; i++) {
		json_t *e = json_object();

		ret |= e ? 0 : -ENOMEM;
		ret |= nvme_set(e, "count", snap_json_u64(c->errors[i].count));
		ret |= nvme_set(e, "sqid", json_integer(c->errors[i].sqid));
		ret |= nvme_set(e, "cid", json_integer(c->errors[i].cid));
		ret |= nvme_set(e, "status", json_integer(c->errors[i].status));
		ret |= e && json_array_append_new(errs, e) == 0 ? 0 : -ENOMEM;
	}
	ret |= pci_dev_save(&c->pci, pci);
	if (ret) {
		ret = -ENOMEM;
		goto out;
	}
	ret |= nvme_set(obj, "regs", regs);
	ret |= nvme_set(obj, "enabled", json_boolean(c->enabled));
	ret |= nvme_set(obj, "shutting_down", json_boolean(c->shutting_down));
	ret |= nvme_set(obj, "namespaces", nss);
	ret |= nvme_set(obj, "cq", cqs);
	ret |= nvme_set(obj, "sq", sqs);
	ret |= nvme_set(obj, "aer", aer);
	ret |= nvme_set(obj, "events", evs);
	ret |= nvme_set(obj, "errors", errs);
	ret |= nvme_set(obj, "pci", pci);
	return ret ? -ENOMEM : 0;
out:
	json_decref(regs);
	json_decref(nss);
	json_decref(cqs);
	json_decref(sqs);
	json_decref(aer);
	json_decref(evs);
	json_decref(errs);
	json_decref(pci);
	return ret;
}

int nvme_save(struct device *dev, json_t *obj)
{
	struct nvme_ctrl *c = dev->priv;
	int ret;

	pthread_mutex_lock(&c->lock);
	if (c->inflight) {
		log_error("nvme", "%s: cannot save with %u I/O requests in flight (not quiesced)",
			  dev->id, c->inflight);
		ret = -EBUSY;
	} else {
		ret = nvme_save_locked(c, obj);
	}
	pthread_mutex_unlock(&c->lock);
	return ret;
}

/* ---- check ---------------------------------------------------------------------- */

struct nvme_qinfo {
	bool sq, cq;
	uint32_t sq_size, cq_size, cqid, waiting;
};

static int nvme_check_u32(const json_t *o, const char *path, const char *key, uint32_t max,
			  uint32_t *out, char *err, size_t errlen)
{
	return snap_get_u32(o, path, key, max, out, err, errlen);
}

/* head and tail of a queue lie inside it */
static int nvme_check_ring(const json_t *o, const char *path, uint32_t qid, uint32_t size,
			   char *err, size_t errlen)
{
	static const char *const keys[] = { "head", "tail" };

	for (unsigned k = 0; k < 2; k++) {
		uint32_t v;
		int ret = nvme_check_u32(o, path, keys[k], UINT16_MAX, &v, err, errlen);

		if (ret)
			return ret;
		if (v >= size) {
			snprintf(err, errlen, "%s.%s = %u exceeds queue size %u (qid %u)",
				 path, keys[k], v, size, qid);
			return -EINVAL;
		}
	}
	return 0;
}

static int nvme_check_queue(const json_t *o, const char *path, bool cq, struct nvme_qinfo *qi,
			    uint32_t *qid_out, char *err, size_t errlen)
{
	uint32_t qid, size, v;
	uint64_t base;
	bool b;
	int ret;

	if ((ret = nvme_check_u32(o, path, "qid", NVME_MAX_IOQ, &qid, err, errlen)) ||
	    (ret = nvme_check_u32(o, path, "size", NVME_MQES + 1, &size, err, errlen)) ||
	    (ret = snap_get_u64(o, path, "base", UINT64_MAX, &base, err, errlen)))
		return ret;
	if (size < 2) {
		snprintf(err, errlen, "%s.size = %u is below 2", path, size);
		return -EINVAL;
	}
	if (qid == 0 && size > 4096) {
		snprintf(err, errlen, "%s.size = %u exceeds 4096 for the admin queue",
			 path, size);
		return -EINVAL;
	}
	if (cq ? qi[qid].cq : qi[qid].sq) {
		snprintf(err, errlen, "%s.qid: queue %u appears twice", path, qid);
		return -EINVAL;
	}
	ret = nvme_check_ring(o, path, qid, size, err, errlen);
	if (ret)
		return ret;
	if (cq) {
		if ((ret = snap_get_bool(o, path, "phase", &b, err, errlen)) ||
		    (ret = snap_get_bool(o, path, "ien", &b, err, errlen)) ||
		    (ret = nvme_check_u32(o, path, "vector", NVME_NVEC - 1, &v, err, errlen)))
			return ret;
		qi[qid].cq = true;
		qi[qid].cq_size = size;
	} else {
		uint32_t prio;

		if ((ret = nvme_check_u32(o, path, "cqid", NVME_MAX_IOQ, &v, err, errlen)) ||
		    (ret = nvme_check_u32(o, path, "prio", 3, &prio, err, errlen)))
			return ret;
		qi[qid].sq = true;
		qi[qid].sq_size = size;
		qi[qid].cqid = v;
	}
	*qid_out = qid;
	return 0;
}

static int nvme_check_waiting(const json_t *cqo, const char *path, struct nvme_qinfo *qi,
			      char *err, size_t errlen)
{
	const json_t *w;
	char p[96];
	size_t i;
	json_t *e;
	int ret = snap_get_array(cqo, path, "waiting", &w, err, errlen);

	if (ret)
		return ret;
	json_array_foreach(w, i, e) {
		uint32_t sqid, v;

		char wp[80];

		snap_path(wp, sizeof(wp), path, "waiting");
		snap_path_index(p, sizeof(p), wp, i);
		if ((ret = nvme_check_u32(e, p, "sqid", NVME_MAX_IOQ, &sqid, err, errlen)) ||
		    (ret = nvme_check_u32(e, p, "cid", UINT16_MAX, &v, err, errlen)) ||
		    (ret = nvme_check_u32(e, p, "status", 0x7fff, &v, err, errlen)) ||
		    (ret = nvme_check_u32(e, p, "dw0", UINT32_MAX, &v, err, errlen)) ||
		    (ret = nvme_check_u32(e, p, "sqhd", UINT16_MAX, &v, err, errlen)))
			return ret;
		qi[sqid].waiting++;
	}
	return 0;
}

static int nvme_check_locked(const json_t *obj, uint32_t version, struct nvme_qinfo *qi,
			     char *err, size_t errlen)
{
	const json_t *regs, *arr, *pci;
	char p[64];
	size_t i;
	json_t *e;
	bool b;
	int ret;

	if (version < 1 || version > NVME_STATE_VERSION) {
		snprintf(err, errlen, "state version %u is not supported (this amber knows 1 to %u)",
			 version, NVME_STATE_VERSION);
		return -EINVAL;
	}
	if ((ret = snap_get_object(obj, "", "regs", &regs, err, errlen)) ||
	    (ret = state_fields_check_path(nvme_regs_fields, regs, version, "regs", err, errlen)) ||
	    (ret = snap_get_bool(obj, "", "enabled", &b, err, errlen)) ||
	    (ret = snap_get_bool(obj, "", "shutting_down", &b, err, errlen)) ||
	    (ret = snap_get_object(obj, "", "pci", &pci, err, errlen)) ||
	    (ret = pci_dev_check(pci, err, errlen)))
		return ret;

	if ((ret = snap_get_array(obj, "", "namespaces", &arr, err, errlen)))
		return ret;
	json_array_foreach(arr, i, e) {
		uint64_t nlba;
		uint32_t nsid;

		snap_path_index(p, sizeof(p), "namespaces", i);
		if ((ret = nvme_check_u32(e, p, "nsid", NVME_MAX_NS, &nsid, err, errlen)) ||
		    (ret = snap_get_u64(e, p, "nlba", UINT64_MAX, &nlba, err, errlen)) ||
		    (ret = snap_get_bool(e, p, "ro", &b, err, errlen)))
			return ret;
	}

	if ((ret = snap_get_array(obj, "", "cq", &arr, err, errlen)))
		return ret;
	json_array_foreach(arr, i, e) {
		uint32_t qid;

		snap_path_index(p, sizeof(p), "cq", i);
		if ((ret = nvme_check_queue(e, p, true, qi, &qid, err, errlen)) ||
		    (ret = nvme_check_waiting(e, p, qi, err, errlen)))
			return ret;
	}
	if ((ret = snap_get_array(obj, "", "sq", &arr, err, errlen)))
		return ret;
	json_array_foreach(arr, i, e) {
		uint32_t qid;

		snap_path_index(p, sizeof(p), "sq", i);
		if ((ret = nvme_check_queue(e, p, false, qi, &qid, err, errlen)))
			return ret;
		if (!qi[qi[qid].cqid].cq || (qid == 0) != (qi[qid].cqid == 0)) {
			snprintf(err, errlen, "%s.cqid = %u: no such completion queue",
				 p, qi[qid].cqid);
			return -EINVAL;
		}
	}

	if ((ret = snap_get_array(obj, "", "aer", &arr, err, errlen)))
		return ret;
	if (json_array_size(arr) > NVME_AERL + 1) {
		snprintf(err, errlen, "aer: %zu entries, at most %u", json_array_size(arr),
			 NVME_AERL + 1);
		return -EINVAL;
	}
	json_array_foreach(arr, i, e) {
		json_int_t v = json_is_integer(e) ? json_integer_value(e) : -1;

		if (v < 0 || v > UINT16_MAX) {
			snprintf(err, errlen, "aer[%zu]: not a command id", i);
			return -EINVAL;
		}
	}
	if (json_array_size(arr) && !qi[0].sq) {
		snprintf(err, errlen, "aer: asynchronous event requests without an admin queue");
		return -EINVAL;
	}
	qi[0].waiting += (uint32_t)json_array_size(arr);
	for (unsigned q = 0; q < NVME_NQ; q++) {
		if (qi[q].waiting && (!qi[q].sq || qi[q].waiting > nvme_slots_for(q, qi[q].sq_size))) {
			snprintf(err, errlen, "%u completions wait for submission queue %u, which %s",
				 qi[q].waiting, q, qi[q].sq ? "has fewer command slots" : "does not exist");
			return -EINVAL;
		}
	}

	if ((ret = snap_get_array(obj, "", "events", &arr, err, errlen)))
		return ret;
	if (json_array_size(arr) > NVME_MAX_EVENTS) {
		snprintf(err, errlen, "events: %zu entries, at most %u",
			 json_array_size(arr), NVME_MAX_EVENTS);
		return -EINVAL;
	}
	json_array_foreach(arr, i, e) {
		uint32_t v;

		snap_path_index(p, sizeof(p), "events", i);
		if ((ret = nvme_check_u32(e, p, "type", 7, &v, err, errlen)) ||
		    (ret = nvme_check_u32(e, p, "info", 0xff, &v, err, errlen)) ||
		    (ret = nvme_check_u32(e, p, "log", 0xff, &v, err, errlen)))
			return ret;
	}

	if ((ret = snap_get_array(obj, "", "errors", &arr, err, errlen)))
		return ret;
	if (json_array_size(arr) > NVME_ELPE + 1) {
		snprintf(err, errlen, "errors: %zu entries, at most %u",
			 json_array_size(arr), NVME_ELPE + 1);
		return -EINVAL;
	}
	json_array_foreach(arr, i, e) {
		uint64_t cnt;
		uint32_t v;

		snap_path_index(p, sizeof(p), "errors", i);
		if ((ret = snap_get_u64(e, p, "count", UINT64_MAX, &cnt, err, errlen)) ||
		    (ret = nvme_check_u32(e, p, "sqid", UINT16_MAX, &v, err, errlen)) ||
		    (ret = nvme_check_u32(e, p, "cid", UINT16_MAX, &v, err, errlen)) ||
		    (ret = nvme_check_u32(e, p, "status", 0x7fff, &v, err, errlen)))
			return ret;
	}
	return 0;
}

int nvme_check(const json_t *obj, uint32_t version, char *err, size_t errlen)
{
	struct nvme_qinfo qi[NVME_NQ];

	memset(qi, 0, sizeof(qi));
	if (!json_is_object(obj)) {
		snprintf(err, errlen, "the nvme state is not a JSON object");
		return -EINVAL;
	}
	return nvme_check_locked(obj, version, qi, err, errlen);
}

/* ---- load ------------------------------------------------------------------------ */

static uint32_t jget(const json_t *o, const char *key)
{
	return (uint32_t)json_integer_value(json_object_get(o, key));
}

static uint64_t jget64(const json_t *o, const char *key)
{
	uint64_t v = 0;

	snap_json_to_u64(json_object_get(o, key), &v);
	return v;
}

/* Take a free slot of sq for a command restored in some state. */
static struct nvme_req *nvme_load_slot(struct nvme_sq *sq, uint16_t cid)
{
	struct nvme_req *r = sq->free;

	sq->free = r->next;
	sq->active++;
	memset(&r->cmd, 0, sizeof(r->cmd));
	r->cmd.cid = cid;
	r->next = NULL;
	return r;
}

/* The disks are the machine's configuration: the saved namespaces must be them. */
static int nvme_match_namespaces(const struct nvme_ctrl *c, const json_t *obj, char *err,
				 size_t errlen)
{
	const json_t *arr = json_object_get(obj, "namespaces");
	size_t i;
	json_t *e;

	if (json_array_size(arr) != c->nns) {
		snprintf(err, errlen, "namespaces: %zu saved, this controller has %u",
			 json_array_size(arr), c->nns);
		return -EINVAL;
	}
	json_array_foreach(arr, i, e) {
		if (jget64(e, "nlba") != c->ns[i].nlba) {
			snprintf(err, errlen, "namespaces[%zu].nlba = %" PRIu64 ", but %s has %" PRIu64
				 " blocks", i, jget64(e, "nlba"), c->ns[i].path, c->ns[i].nlba);
			return -EINVAL;
		}
	}
	return 0;
}

int nvme_match(struct device *dev, const json_t *obj, char *err, size_t errlen)
{
	struct nvme_ctrl *c = dev->priv;
	char sub[200];

	if (pci_dev_match(&c->pci, json_object_get(obj, "pci"), sub, sizeof(sub)) < 0) {
		snprintf(err, errlen, "pci.%s", sub);
		return -EINVAL;
	}
	return nvme_match_namespaces(c, obj, err, errlen);
}

static int nvme_load_locked(struct nvme_ctrl *c, const json_t *obj, uint32_t version)
{
	char err[200];
	size_t i;
	json_t *e;

	if (nvme_match_namespaces(c, obj, err, sizeof(err)) < 0) {
		log_error("nvme", "%s: %s", c->dev->id, err);
		return -EINVAL;
	}

	nvme_queues_reset(c);
	state_fields_load(nvme_regs_fields, &c->r, json_object_get(obj, "regs"), version);
	c->enabled = json_is_true(json_object_get(obj, "enabled"));
	c->shutting_down = json_is_true(json_object_get(obj, "shutting_down"));
	c->resetting = false;
	c->inflight = 0;
	c->page_size = 4096ULL << NVME_CC_MPS(c->r.cc);

	json_array_foreach(json_object_get(obj, "cq"), i, e) {
		uint16_t q = (uint16_t)jget(e, "qid");
		struct nvme_cq *cq = &c->cq[q];

		nvme_cq_init(c, q, jget64(e, "base"), (uint16_t)jget(e, "size"),
			     json_is_true(json_object_get(e, "ien")), (uint16_t)jget(e, "vector"));
		cq->head = (uint16_t)jget(e, "head");
		cq->tail = (uint16_t)jget(e, "tail");
		cq->phase = json_is_true(json_object_get(e, "phase"));
	}
	json_array_foreach(json_object_get(obj, "sq"), i, e) {
		uint16_t q = (uint16_t)jget(e, "qid");

		if (nvme_sq_init(c, q, jget64(e, "base"), (uint16_t)jget(e, "size"),
				 (uint16_t)jget(e, "cqid"), (uint8_t)jget(e, "prio")) < 0)
			return -ENOMEM;
		c->sq[q].head = (uint16_t)jget(e, "head");
		c->sq[q].tail = (uint16_t)jget(e, "tail");
	}
	/* Completions that were waiting for CQ space, in their order. */
	json_array_foreach(json_object_get(obj, "cq"), i, e) {
		struct nvme_cq *cq = &c->cq[jget(e, "qid")];
		size_t k;
		json_t *w;

		json_array_foreach(json_object_get(e, "waiting"), k, w) {
			struct nvme_sq *sq = &c->sq[jget(w, "sqid")];
			struct nvme_req *r = nvme_load_slot(sq, (uint16_t)jget(w, "cid"));

			r->status = (uint16_t)jget(w, "status");
			r->dw0 = jget(w, "dw0");
			r->sqhd = (uint16_t)jget(w, "sqhd");
			r->state = NVME_REQ_CQ_WAIT;
			if (cq->wait_tail)
				cq->wait_tail->next = r;
			else
				cq->wait_head = r;
			cq->wait_tail = r;
		}
	}
	c->naer = 0;
	json_array_foreach(json_object_get(obj, "aer"), i, e) {
		struct nvme_req *r = nvme_load_slot(&c->sq[0], (uint16_t)json_integer_value(e));

		r->cmd.opc = NVME_ADM_ASYNC_EVENT;
		r->state = NVME_REQ_ACTIVE;
		c->aer[c->naer++] = r;
	}
	c->nevents = 0;
	json_array_foreach(json_object_get(obj, "events"), i, e)
		c->events[c->nevents++] = (struct nvme_event){ (uint8_t)jget(e, "type"),
			(uint8_t)jget(e, "info"), (uint8_t)jget(e, "log") };
	c->nerrors = 0;
	json_array_foreach(json_object_get(obj, "errors"), i, e)
		c->errors[c->nerrors++] = (struct nvme_error_entry){ jget64(e, "count"),
			(uint16_t)jget(e, "sqid"), (uint16_t)jget(e, "cid"),
			(uint16_t)jget(e, "status") };
	return 0;
}

int nvme_load(struct device *dev, const json_t *obj, uint32_t version)
{
	struct nvme_ctrl *c = dev->priv;
	int ret;

	ret = pci_dev_load(&c->pci, json_object_get(obj, "pci"));
	if (ret < 0) {
		log_error("nvme", "%s: PCI state: %s", dev->id, strerror(-ret));
		return ret;
	}
	pthread_mutex_lock(&c->lock);
	ret = nvme_load_locked(c, obj, version);
	if (ret < 0) {
		nvme_queues_reset(c);
		c->enabled = false;
		nvme_fast_sync(c);
	} else {
		c->intx = false;
		nvme_irq_update_intx(c);
		nvme_fast_sync(c);
		/* Commands the host queued before the checkpoint run now. */
		if (!c->quiesced)
			nvme_process_all(c);
	}
	pthread_mutex_unlock(&c->lock);
	return ret;
}
