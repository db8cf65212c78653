/*
 * NVMe admin command set (NVMe 1.4 §5): queues, Identify, logs, features,
 * asynchronous events, abort, doorbell buffer config. Admin commands run
 * synchronously under ctrl->lock, except Asynchronous Event Requests (held
 * until an event) and Delete I/O SQ with commands in flight (completed by
 * the last of them). Returned data is copied with the PRP walker.
 */
#include <endian.h>
#include <string.h>

#include "amber/log.h"
#include "amber/machine.h"
#include "nvme.h"

#define NVME_ID_SIZE 4096

static void put16(uint8_t *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }

/* ASCII fields are space padded, not NUL terminated (§1.5). */
static void put_str(uint8_t *p, size_t len, const char *s)
{
	size_t n = strlen(s);

	memset(p, ' ', len);
	memcpy(p, s, n < len ? n : len);
}

/* Copy a data structure to the host through the command's PRPs. */
static uint16_t nvme_admin_reply(struct nvme_ctrl *c, struct nvme_req *req,
				 const void *buf, uint64_t len)
{
	return nvme_prp_copy(c, &req->cmd, len, 0, (void *)buf, len, true);
}

/* ---- asynchronous events (§5.2) ------------------------------------------- */

/*
 * Complete outstanding AERs with queued events whose type is not masked.
 * Runs after the admin command or doorbell write that raised or unmasked an
 * event has completed, so the event's completion comes after it.
 */
void nvme_event_dispatch(struct nvme_ctrl *c)
{
	unsigned i = 0;

	while (c->naer && i < c->nevents) {
		struct nvme_event ev = c->events[i];
		struct nvme_req *req;

		if (c->r.aer_masked & (1u << ev.type)) {
			i++;
			continue;
		}
		memmove(&c->events[i], &c->events[i + 1], (c->nevents - i - 1) * sizeof(ev));
		c->nevents--;
		req = c->aer[0];
		memmove(&c->aer[0], &c->aer[1], (c->naer - 1) * sizeof(c->aer[0]));
		c->naer--;
		/* Further events of this type wait until the host reads the log. */
		c->r.aer_masked |= 1u << ev.type;
		req->dw0 = ev.type | (uint32_t)ev.info << 8 | (uint32_t)ev.log << 16;
		nvme_req_complete(c, req, NVME_SUCCESS);
	}
}

/* Queue an event; nvme_event_dispatch reports it. */
void nvme_event_post(struct nvme_ctrl *c, uint8_t type, uint8_t info, uint8_t log)
{
	for (unsigned i = 0; i < c->nevents; i++)
		if (c->events[i].type == type && c->events[i].info == info)
			return;		/* already pending: report once */
	if (c->nevents < NVME_MAX_EVENTS)
		c->events[c->nevents++] = (struct nvme_event){ type, info, log };
}

void nvme_error_record(struct nvme_ctrl *c, uint16_t sqid, uint16_t cid, uint16_t status)
{
	unsigned n = c->nerrors < NVME_ELPE + 1 ? c->nerrors + 1 : NVME_ELPE + 1;

	memmove(&c->errors[1], &c->errors[0], (n - 1) * sizeof(c->errors[0]));
	c->errors[0] = (struct nvme_error_entry){ ++c->r.error_count, sqid, cid, status };
	c->nerrors = n;
}

static uint16_t nvme_adm_async_event(struct nvme_ctrl *c, struct nvme_req *req)
{
	if (c->naer > NVME_AERL)
		return NVME_AER_LIMIT_EXCEEDED | NVME_DNR;
	c->aer[c->naer++] = req;
	return NVME_SUCCESS;
}

/* SMART critical warning bit 1: a temperature threshold is crossed (§5.14.1.2). */
static bool nvme_temp_warning(const struct nvme_ctrl *c)
{
	return NVME_TEMPERATURE > c->r.temp_over[0] || NVME_TEMPERATURE < c->r.temp_under[0];
}

/* ---- Identify (§5.15) --------------------------------------------------------- */

static void nvme_identify_ctrl(struct nvme_ctrl *c, uint8_t *id)
{
	char subnqn[256];

	put16(id + 0, NVME_PCI_VENDOR);			/* VID */
	put16(id + 2, NVME_PCI_VENDOR);			/* SSVID */
	put_str(id + 4, 20, c->serial);			/* SN */
	put_str(id + 24, 40, "amber NVMe Ctrl");	/* MN */
	put_str(id + 64, 8, AMBER_VERSION);		/* FR */
	id[72] = 6;					/* RAB: 64 commands */
	id[77] = NVME_MDTS;				/* MDTS, units of CAP.MPSMIN */
	put16(id + 78, 0);				/* CNTLID */
	put32(id + 80, NVME_VS_1_4);			/* VER */
	id[111] = 1;					/* CNTRLTYPE: I/O controller */
	put16(id + 256, 1u << 8);			/* OACS: Doorbell Buffer Config */
	id[258] = NVME_ACL;
	id[259] = NVME_AERL;
	id[260] = 0x3;					/* FRMW: 1 slot, read only */
	id[261] = 0x4;					/* LPA: extended data for Get Log Page */
	id[262] = NVME_ELPE;
	id[263] = 0;					/* NPSS: one power state */
	put16(id + 266, NVME_WCTEMP);
	put16(id + 268, NVME_CCTEMP);
	id[512] = 0x66;					/* SQES: 64 bytes */
	id[513] = 0x44;					/* CQES: 16 bytes */
	put32(id + 516, c->nns);			/* NN */
	put16(id + 520, (1u << 2) | (1u << 3) | (1u << 4)); /* ONCS: DSM, WZ, save/select */
	id[525] = 0x1 | (0x2 << 1);			/* VWC present, no broadcast flush */
	snprintf(subnqn, sizeof(subnqn), "nqn.2024-01.org.amber-vmm:nvme:%s", c->serial);
	memcpy(id + 768, subnqn, strlen(subnqn));	/* SUBNQN: NUL padded */
	/* PSD0: 25 W maximum, entry/exit latencies of a few µs */
	put16(id + 2048, 2500);
	put32(id + 2048 + 4, 16);
	put32(id + 2048 + 8, 4);
}

static void nvme_identify_ns(const struct nvme_ns *ns, uint8_t *id)
{
	put64(id + 0, ns->nlba);	/* NSZE */
	put64(id + 8, ns->nlba);	/* NCAP */
	put64(id + 16, ns->nlba);	/* NUSE */
	id[25] = 0;			/* NLBAF: one format */
	id[26] = 0;			/* FLBAS: format 0 */
	/* DLFEAT: deallocated blocks read as zeroes; Write Zeroes may deallocate */
	id[33] = 0x1 | (1u << 3);
	id[99] = ns->ro ? 1 : 0;	/* NSATTR: write protected */
	memcpy(id + 104, ns->nguid, 16);
	put32(id + 128, (uint32_t)NVME_LBA_SHIFT << 16);	/* LBAF0: 512 B, no metadata */
}

static uint16_t nvme_adm_identify(struct nvme_ctrl *c, struct nvme_req *req)
{
	uint8_t id[NVME_ID_SIZE];
	uint32_t nsid = req->cmd.nsid;
	uint8_t cns = req->cmd.cdw10 & 0xff;

	memset(id, 0, sizeof(id));
	switch (cns) {
	case 0x00:	/* namespace */
		if (nsid == 0 || nsid > c->nns)
			return NVME_INVALID_NAMESPACE | NVME_DNR;
		nvme_identify_ns(&c->ns[nsid - 1], id);
		break;
	case 0x01:	/* controller */
		nvme_identify_ctrl(c, id);
		break;
	case 0x02: {	/* active namespace IDs above nsid, ascending */
		unsigned k = 0;

		if (nsid >= 0xfffffffe)
			return NVME_INVALID_NAMESPACE | NVME_DNR;
		for (unsigned i = 0; i < c->nns && k < NVME_ID_SIZE / 4; i++)
			if (c->ns[i].nsid > nsid)
				put32(id + 4 * k++, c->ns[i].nsid);
		break;
	}
	case 0x03: {	/* namespace identification descriptors (§5.15.2.3) */
		const struct nvme_ns *ns;

		if (nsid == 0 || nsid > c->nns)
			return NVME_INVALID_NAMESPACE | NVME_DNR;
		ns = &c->ns[nsid - 1];
		id[0] = 2;		/* NIDT: NGUID */
		id[1] = 16;
		memcpy(id + 4, ns->nguid, 16);
		id[20] = 3;		/* NIDT: UUID */
		id[21] = 16;
		memcpy(id + 24, ns->uuid, 16);
		break;
	}
	case 0x06:	/* NVM command set specific controller data: no extra limits */
		if ((req->cmd.cdw11 >> 24) != 0)	/* CSI: only NVM */
			return NVME_INVALID_FIELD | NVME_DNR;
		break;
	default:
		return NVME_INVALID_FIELD | NVME_DNR;
	}
	return nvme_admin_reply(c, req, id, sizeof(id));
}

/* ---- Get Log Page (§5.14) -------------------------------------------------- */

static void put128(uint8_t *p, uint64_t v)
{
	put64(p, v);
	put64(p + 8, 0);
}

static size_t nvme_log_error(struct nvme_ctrl *c, uint8_t *buf)
{
	for (unsigned i = 0; i < c->nerrors; i++) {
		uint8_t *e = buf + 64 * i;

		put64(e + 0, c->errors[i].count);
		put16(e + 8, c->errors[i].sqid);
		put16(e + 10, c->errors[i].cid);
		put16(e + 12, (uint16_t)(c->errors[i].status << 1));
		put16(e + 14, 0xffff);	/* parameter error location: n/a */
	}
	return 64 * (NVME_ELPE + 1);
}

static size_t nvme_log_smart(struct nvme_ctrl *c, uint8_t *buf)
{
	buf[0] = nvme_temp_warning(c) ? 1u << 1 : 0;	/* critical warning */
	put16(buf + 1, NVME_TEMPERATURE);
	buf[3] = 100;					/* available spare % */
	buf[4] = 10;					/* spare threshold */
	/* data units: thousands of 512-byte units, rounded up */
	put128(buf + 32, (c->r.sectors_read + 999) / 1000);
	put128(buf + 48, (c->r.sectors_written + 999) / 1000);
	put128(buf + 64, c->r.host_reads);
	put128(buf + 80, c->r.host_writes);
	put128(buf + 112, 1);				/* power cycles */
	put128(buf + 176, c->r.error_count);
	return 512;
}

static size_t nvme_log_fw_slot(uint8_t *buf)
{
	buf[0] = 1;					/* AFI: slot 1 active */
	put_str(buf + 8, 8, AMBER_VERSION);		/* FRS1 */
	return 512;
}

static uint16_t nvme_adm_get_log_page(struct nvme_ctrl *c, struct nvme_req *req)
{
	const struct nvme_cmd *cmd = &req->cmd;
	uint8_t lid = cmd->cdw10 & 0xff;
	bool rae = cmd->cdw10 & (1u << 15);
	uint64_t numd = ((uint64_t)(cmd->cdw11 & 0xffff) << 16 | cmd->cdw10 >> 16) + 1;
	uint64_t len = numd * 4;
	uint64_t off = cmd->cdw12 | (uint64_t)cmd->cdw13 << 32;
	uint8_t buf[512];
	size_t size;
	int type;
	uint16_t st;

	memset(buf, 0, sizeof(buf));
	switch (lid) {
	case NVME_LOG_ERROR:
		size = nvme_log_error(c, buf);
		type = NVME_AER_TYPE_ERROR;
		break;
	case NVME_LOG_SMART:
		size = nvme_log_smart(c, buf);
		type = NVME_AER_TYPE_SMART;
		break;
	case NVME_LOG_FW_SLOT:
		size = nvme_log_fw_slot(buf);
		type = -1;
		break;
	default:
		return NVME_INVALID_LOG_PAGE | NVME_DNR;
	}
	/* §5.14: the offset is in bytes, dword aligned, within the log */
	if ((off & 3) || off > size)
		return NVME_INVALID_FIELD | NVME_DNR;
	st = nvme_prp_copy(c, cmd, len, 0, buf + off, len < size - off ? len : size - off, true);
	if (st)
		return st;
	/* Reading the log (RAE = 0) re-arms events of its type (§5.2). */
	if (!rae && type >= 0)
		c->r.aer_masked &= ~(1u << type);
	return NVME_SUCCESS;
}

/* ---- features (§5.21) -------------------------------------------------------- */

static void nvme_features_default(struct nvme_ctrl *c)
{
	c->r.arbitration = 0;
	c->r.power_mgmt = 0;
	c->r.error_recovery = 0;
	c->r.irq_coalesce = 0;
	c->r.write_atomic = 0;
	c->r.async_event_cfg = 0;
	c->r.vwc = true;
	memset(c->r.irq_config, 0, sizeof(c->r.irq_config));
	for (unsigned i = 0; i < 9; i++) {
		c->r.temp_over[i] = NVME_WCTEMP;
		c->r.temp_under[i] = 0;
	}
}

static uint16_t nvme_temp_sel(uint32_t cdw11, unsigned *sel, unsigned *under)
{
	*sel = (cdw11 >> 16) & 0xf;
	*under = (cdw11 >> 20) & 3;
	if (*under > 1 || (*sel > 8 && *sel != 0xf))
		return NVME_INVALID_FIELD | NVME_DNR;
	return NVME_SUCCESS;
}

static bool nvme_feature_known(uint8_t fid)
{
	switch (fid) {
	case NVME_FEAT_ARBITRATION: case NVME_FEAT_POWER_MGMT: case NVME_FEAT_TEMP_THRESH:
	case NVME_FEAT_ERROR_RECOVERY: case NVME_FEAT_VWC: case NVME_FEAT_NUM_QUEUES:
	case NVME_FEAT_IRQ_COALESCE: case NVME_FEAT_IRQ_CONFIG: case NVME_FEAT_WRITE_ATOMIC:
	case NVME_FEAT_ASYNC_EVENT:
		return true;
	}
	return false;
}

static uint16_t nvme_adm_get_features(struct nvme_ctrl *c, struct nvme_req *req)
{
	const struct nvme_cmd *cmd = &req->cmd;
	uint8_t fid = cmd->cdw10 & 0xff;
	unsigned sel = (cmd->cdw10 >> 8) & 7;
	struct nvme_regs saved = c->r;
	unsigned tsel, under;
	uint16_t st = NVME_SUCCESS;

	if (!nvme_feature_known(fid))
		return NVME_INVALID_FIELD | NVME_DNR;
	if (sel == 3) {
		req->dw0 = 1u << 2;	/* changeable, not saveable, not per namespace */
		return NVME_SUCCESS;
	}
	if (sel > 3)
		return NVME_INVALID_FIELD | NVME_DNR;
	if (sel != 0)		/* default and saved values are the defaults */
		nvme_features_default(c);
	switch (fid) {
	case NVME_FEAT_ARBITRATION:
		req->dw0 = c->r.arbitration;
		break;
	case NVME_FEAT_POWER_MGMT:
		req->dw0 = c->r.power_mgmt;
		break;
	case NVME_FEAT_TEMP_THRESH:
		st = nvme_temp_sel(cmd->cdw11, &tsel, &under);
		if (!st && tsel == 0xf)
			st = NVME_INVALID_FIELD | NVME_DNR;
		if (!st)
			req->dw0 = under ? c->r.temp_under[tsel] : c->r.temp_over[tsel];
		break;
	case NVME_FEAT_ERROR_RECOVERY:
		req->dw0 = c->r.error_recovery;
		break;
	case NVME_FEAT_VWC:
		req->dw0 = c->r.vwc;
		break;
	case NVME_FEAT_NUM_QUEUES:
		req->dw0 = (NVME_MAX_IOQ - 1) << 16 | (NVME_MAX_IOQ - 1);
		break;
	case NVME_FEAT_IRQ_COALESCE:
		req->dw0 = c->r.irq_coalesce;
		break;
	case NVME_FEAT_IRQ_CONFIG: {
		uint32_t iv = cmd->cdw11 & 0xffff;

		if (iv >= NVME_NVEC)
			st = NVME_INVALID_FIELD | NVME_DNR;
		else
			req->dw0 = iv | c->r.irq_config[iv];
		break;
	}
	case NVME_FEAT_WRITE_ATOMIC:
		req->dw0 = c->r.write_atomic;
		break;
	case NVME_FEAT_ASYNC_EVENT:
		req->dw0 = c->r.async_event_cfg;
		break;
	}
	if (sel != 0)
		c->r = saved;
	return st;
}

static bool nvme_any_io_queue(const struct nvme_ctrl *c)
{
	for (unsigned q = 1; q < NVME_NQ; q++)
		if (c->sq[q].valid || c->cq[q].valid)
			return true;
	return false;
}

static uint16_t nvme_adm_set_features(struct nvme_ctrl *c, struct nvme_req *req)
{
	const struct nvme_cmd *cmd = &req->cmd;
	uint8_t fid = cmd->cdw10 & 0xff;
	uint32_t v = cmd->cdw11;
	unsigned tsel, under;
	uint16_t st;

	if (!nvme_feature_known(fid))
		return NVME_INVALID_FIELD | NVME_DNR;
	if (cmd->cdw10 & (1u << 31))	/* SV: nothing is saveable */
		return NVME_FEAT_NOT_SAVEABLE | NVME_DNR;
	switch (fid) {
	case NVME_FEAT_ARBITRATION:
		c->r.arbitration = v;
		break;
	case NVME_FEAT_POWER_MGMT:
		if ((v & 0x1f) > 0)	/* only power state 0 (NPSS = 0) */
			return NVME_INVALID_FIELD | NVME_DNR;
		c->r.power_mgmt = v & 0xff;
		break;
	case NVME_FEAT_TEMP_THRESH:
		st = nvme_temp_sel(v, &tsel, &under);
		if (st)
			return st;
		for (unsigned i = 0; i < 9; i++) {
			if (tsel != 0xf && i != tsel)
				continue;
			if (under)
				c->r.temp_under[i] = v & 0xffff;
			else
				c->r.temp_over[i] = v & 0xffff;
		}
		/* §5.21.1.4: crossing the threshold raises a SMART event if enabled */
		if (nvme_temp_warning(c) && (c->r.async_event_cfg & (1u << 1)))
			nvme_event_post(c, NVME_AER_TYPE_SMART, NVME_AER_INFO_SMART_TEMP,
					NVME_LOG_SMART);
		break;
	case NVME_FEAT_ERROR_RECOVERY:
		if (v & (1u << 16))	/* DULBE needs NSFEAT.DAE, which is 0 */
			return NVME_INVALID_FIELD | NVME_DNR;
		c->r.error_recovery = v & 0xffff;
		break;
	case NVME_FEAT_VWC:
		c->r.vwc = v & 1;
		break;
	case NVME_FEAT_NUM_QUEUES:
		if ((v & 0xffff) == 0xffff || (v >> 16) == 0xffff)
			return NVME_INVALID_FIELD | NVME_DNR;
		/* §5.21.1.7: only before I/O queues exist */
		if (nvme_any_io_queue(c))
			return NVME_COMMAND_SEQUENCE_ERROR | NVME_DNR;
		req->dw0 = (NVME_MAX_IOQ - 1) << 16 | (NVME_MAX_IOQ - 1);
		break;
	case NVME_FEAT_IRQ_COALESCE:
		c->r.irq_coalesce = v & 0xffff;
		break;
	case NVME_FEAT_IRQ_CONFIG:
		if ((v & 0xffff) >= NVME_NVEC)
			return NVME_INVALID_FIELD | NVME_DNR;
		c->r.irq_config[v & 0xffff] = v & (1u << 16);
		break;
	case NVME_FEAT_WRITE_ATOMIC:
		c->r.write_atomic = v & 1;
		break;
	case NVME_FEAT_ASYNC_EVENT:
		c->r.async_event_cfg = v;
		break;
	}
	return NVME_SUCCESS;
}

/* ---- queue management (§5.3-§5.6) ------------------------------------------------ */

static uint16_t nvme_queue_base_check(struct nvme_ctrl *c, uint64_t base, uint64_t bytes,
				      const char *what)
{
	if (!base || (base & (c->page_size - 1)))
		return NVME_INVALID_FIELD | NVME_DNR;
	if (!gmem_ptr(&c->m->mem, base, bytes)) {
		log_warn("nvme", "%s: %s at %#llx (%llu bytes) is not in guest RAM", c->dev->id,
			 what, (unsigned long long)base, (unsigned long long)bytes);
		return NVME_INVALID_FIELD | NVME_DNR;
	}
	return NVME_SUCCESS;
}

static uint16_t nvme_adm_create_cq(struct nvme_ctrl *c, struct nvme_req *req)
{
	const struct nvme_cmd *cmd = &req->cmd;
	uint32_t qid = cmd->cdw10 & 0xffff;
	uint32_t size = (cmd->cdw10 >> 16) + 1;
	bool pc = cmd->cdw11 & 1, ien = cmd->cdw11 & 2;
	uint32_t iv = cmd->cdw11 >> 16;
	uint16_t st;

	if (qid == 0 || qid > NVME_MAX_IOQ || c->cq[qid].valid)
		return NVME_INVALID_QID | NVME_DNR;
	if (size < 2 || size > NVME_MQES + 1)
		return NVME_INVALID_QSIZE | NVME_DNR;
	if (!pc)		/* CAP.CQR = 1: queues must be physically contiguous */
		return NVME_INVALID_FIELD | NVME_DNR;
	if (iv >= NVME_NVEC)
		return NVME_INVALID_VECTOR | NVME_DNR;
	if (NVME_CC_IOCQES(c->r.cc) != 4)
		return NVME_INVALID_FIELD | NVME_DNR;
	st = nvme_queue_base_check(c, cmd->prp1, (uint64_t)size * sizeof(struct nvme_cqe),
				   "completion queue");
	if (st)
		return st;
	nvme_cq_init(c, (uint16_t)qid, cmd->prp1, (uint16_t)size, ien, (uint16_t)iv);
	return NVME_SUCCESS;
}

static uint16_t nvme_adm_create_sq(struct nvme_ctrl *c, struct nvme_req *req)
{
	const struct nvme_cmd *cmd = &req->cmd;
	uint32_t qid = cmd->cdw10 & 0xffff;
	uint32_t size = (cmd->cdw10 >> 16) + 1;
	bool pc = cmd->cdw11 & 1;
	uint8_t prio = (cmd->cdw11 >> 1) & 3;
	uint32_t cqid = cmd->cdw11 >> 16;
	uint16_t st;

	if (qid == 0 || qid > NVME_MAX_IOQ || c->sq[qid].valid)
		return NVME_INVALID_QID | NVME_DNR;
	if (cqid == 0 || cqid > NVME_MAX_IOQ || !c->cq[cqid].valid)
		return NVME_CQ_INVALID | NVME_DNR;
	if (size < 2 || size > NVME_MQES + 1)
		return NVME_INVALID_QSIZE | NVME_DNR;
	if (!pc)
		return NVME_INVALID_FIELD | NVME_DNR;
	if (NVME_CC_IOSQES(c->r.cc) != 6)
		return NVME_INVALID_FIELD | NVME_DNR;
	st = nvme_queue_base_check(c, cmd->prp1, (uint64_t)size * sizeof(struct nvme_cmd),
				   "submission queue");
	if (st)
		return st;
	if (nvme_sq_init(c, (uint16_t)qid, cmd->prp1, (uint16_t)size, (uint16_t)cqid, prio) < 0)
		return NVME_INTERNAL_ERROR;
	return NVME_SUCCESS;
}

static uint16_t nvme_adm_delete_sq(struct nvme_ctrl *c, struct nvme_req *req)
{
	uint32_t qid = req->cmd.cdw10 & 0xffff;
	struct nvme_sq *sq;

	if (qid == 0 || qid > NVME_MAX_IOQ || !c->sq[qid].valid || c->sq[qid].deleting)
		return NVME_INVALID_QID | NVME_DNR;
	sq = &c->sq[qid];
	if (sq->inflight) {
		/* Completed by the last in-flight command (io.c). */
		sq->deleting = true;
		sq->delete_req = req;
		return NVME_SUCCESS;
	}
	nvme_sq_free(c, sq);
	nvme_req_complete(c, req, NVME_SUCCESS);
	return NVME_SUCCESS;
}

static uint16_t nvme_adm_delete_cq(struct nvme_ctrl *c, struct nvme_req *req)
{
	uint32_t qid = req->cmd.cdw10 & 0xffff;

	if (qid == 0 || qid > NVME_MAX_IOQ || !c->cq[qid].valid)
		return NVME_INVALID_QID | NVME_DNR;
	if (c->cq[qid].nsq)	/* §5.5: delete its SQs first */
		return NVME_INVALID_QUEUE_DELETION | NVME_DNR;
	nvme_cq_free(c, &c->cq[qid]);
	return NVME_SUCCESS;
}

/* ---- Doorbell Buffer Config (§5.8) -------------------------------------------- */

static uint16_t nvme_adm_dbbuf_config(struct nvme_ctrl *c, struct nvme_req *req)
{
	uint64_t dbs = req->cmd.prp1, eis = req->cmd.prp2;
	uint64_t mask = c->page_size - 1;

	if (!dbs || !eis || (dbs & mask) || (eis & mask) ||
	    !gmem_is_ram(&c->m->mem, dbs, c->page_size) ||
	    !gmem_is_ram(&c->m->mem, eis, c->page_size))
		return NVME_INVALID_FIELD | NVME_DNR;
	c->r.dbbuf_dbs = dbs;
	c->r.dbbuf_eis = eis;
	/*
	 * Existing queues (the admin queue) keep their positions: seed the
	 * shadow doorbells and event indexes with them.
	 */
	for (uint16_t q = 0; q < NVME_NQ; q++) {
		if (c->sq[q].valid) {
			uint32_t t = htole32(c->sq[q].tail);

			gmem_write(&c->m->mem, dbs + 8ULL * q, &t, 4);
			gmem_write(&c->m->mem, eis + 8ULL * q, &t, 4);
		}
		if (c->cq[q].valid) {
			uint32_t h = htole32(c->cq[q].head);

			gmem_write(&c->m->mem, dbs + 8ULL * q + 4, &h, 4);
			gmem_write(&c->m->mem, eis + 8ULL * q + 4, &h, 4);
		}
	}
	return NVME_SUCCESS;
}

/* ---- dispatch ------------------------------------------------------------------ */

void nvme_admin_exec(struct nvme_ctrl *c, struct nvme_req *req)
{
	const struct nvme_cmd *cmd = &req->cmd;
	uint16_t st;

	if (cmd->flags & 0xc3) {	/* no fused operations, no SGLs */
		nvme_req_complete(c, req, NVME_INVALID_FIELD | NVME_DNR);
		return;
	}
	switch (cmd->opc) {
	case NVME_ADM_ASYNC_EVENT:
		st = nvme_adm_async_event(c, req);
		if (st)
			nvme_req_complete(c, req, st);
		nvme_event_dispatch(c);
		return;		/* held until an event */
	case NVME_ADM_DELETE_SQ:
		st = nvme_adm_delete_sq(c, req);
		if (st)
			nvme_req_complete(c, req, st);
		nvme_fast_sync(c);	/* its doorbell, if it is gone already */
		return;		/* completed when the SQ is gone */
	case NVME_ADM_CREATE_SQ:
		st = nvme_adm_create_sq(c, req);
		break;
	case NVME_ADM_GET_LOG_PAGE:
		st = nvme_adm_get_log_page(c, req);
		break;
	case NVME_ADM_DELETE_CQ:
		st = nvme_adm_delete_cq(c, req);
		break;
	case NVME_ADM_CREATE_CQ:
		st = nvme_adm_create_cq(c, req);
		break;
	case NVME_ADM_IDENTIFY:
		st = nvme_adm_identify(c, req);
		break;
	case NVME_ADM_ABORT:
		/* §5.1: completing the command normally is allowed; dw0 bit 0 = not aborted */
		req->dw0 = 1;
		st = NVME_SUCCESS;
		break;
	case NVME_ADM_SET_FEATURES:
		st = nvme_adm_set_features(c, req);
		break;
	case NVME_ADM_GET_FEATURES:
		st = nvme_adm_get_features(c, req);
		break;
	case NVME_ADM_DBBUF_CONFIG:
		st = nvme_adm_dbbuf_config(c, req);
		break;
	default:
		st = NVME_INVALID_OPCODE | NVME_DNR;
		break;
	}
	nvme_req_complete(c, req, st);
	nvme_event_dispatch(c);
	/* queues, shadow doorbells: doorbell ioeventfds and vector irqfds follow */
	nvme_fast_sync(c);
}

void nvme_admin_features_reset(struct nvme_ctrl *c)
{
	nvme_features_default(c);
}
