/*
 * NVMe controller, PCI function 01:08:02 (NVM Express 1.4): the device class,
 * the PCI side (BAR0 registers + doorbells, MSI-X in BAR4, INTx), controller
 * registers and their enable/reset/shutdown semantics (§3.1, §7.6), the
 * interrupt logic (§7.5) and the namespaces' block backends.
 *
 * The files of this folder: nvme.c (this), queue.c (queues, doorbells),
 * admin.c (admin commands), io.c (NVM I/O commands), prp.c (the PRP walker),
 * state.c (save/check/load), coalesce.c (interrupt coalescing).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amber/log.h"
#include "amber/machine.h"
#include "amber/nvme.h"
#include "nvme.h"

static struct nvme_ctrl *nvme_of(struct device *dev)
{
	return dev->priv;
}

/* ---- interrupts (§7.5) ----------------------------------------------------- */

/*
 * INTx is a level: asserted while a CQ with interrupts enabled holds entries
 * the host has not consumed and its vector is not masked in INTMS (§7.5.1.1).
 */
void nvme_irq_update_intx(struct nvme_ctrl *c)
{
	bool level = false;

	if (!pci_msix_enabled(&c->pci)) {
		for (unsigned q = 0; q < NVME_NQ && !level; q++) {
			const struct nvme_cq *cq = &c->cq[q];

			if (!cq->valid || !cq->ien || (c->r.intms & (1u << (cq->vector & 31))))
				continue;
			/* with shadow doorbells the host may not ring for every head move */
			if (cq->head != cq->tail)
				nvme_cq_refresh_head(c, (uint16_t)q, true);
			level = cq->head != cq->tail;
		}
	}
	if (level != c->intx) {
		c->intx = level;
		pci_set_intx(&c->pci, level);
	}
}

/* Send the interrupts of the CQs that got entries, one message per vector. */
void nvme_irq_flush(struct nvme_ctrl *c)
{
	uint64_t sent[(NVME_NVEC + 63) / 64] = { 0 };
	bool msix = pci_msix_enabled(&c->pci);
	uint64_t now = nvme_coal_now(c);

	for (unsigned w = 0; w < 2; w++) {
		uint64_t bits = c->irq_pending[w];

		c->irq_pending[w] = 0;
		while (msix && bits) {
			unsigned q = w * 64 + (unsigned)__builtin_ctzll(bits);
			const struct nvme_cq *cq = &c->cq[q];

			bits &= bits - 1;
			if (q >= NVME_NQ || !cq->valid || !cq->ien || cq->vector >= NVME_NVEC)
				continue;
			if (sent[cq->vector / 64] & (1ULL << (cq->vector % 64)))
				continue;
			sent[cq->vector / 64] |= 1ULL << (cq->vector % 64);
			nvme_coal_vector(c, cq->vector, now);
		}
	}
	nvme_irq_update_intx(c);
}

/*
 * After submission-queue doorbells: backends that finish inside io_uring_submit
 * (page cache hits, RAM disks) have their completions ready now. Post them
 * (and send the interrupt) on this pass rather than on the event loop's next
 * turn, which for an MMIO doorbell is another thread. Called without c->lock,
 * which the completions take.
 */
void nvme_poll_inline(struct nvme_ctrl *c)
{
	for (unsigned i = 0; i < c->nns; i++)
		block_poll(c->ns[i].blk, false);
}

/* §9.5: a condition the controller cannot recover from sets CSTS.CFS. */
void nvme_fatal(struct nvme_ctrl *c, const char *why)
{
	if (!(c->r.csts & NVME_CSTS_CFS))
		log_warn("nvme", "%s: controller fatal status: %s", c->dev->id, why);
	c->r.csts |= NVME_CSTS_CFS;
}

/* ---- enable, reset, shutdown (§7.6) ------------------------------------------ */

static const char *nvme_enable_check(struct nvme_ctrl *c, uint64_t ps)
{
	uint32_t cc = c->r.cc;
	uint64_t asq = c->r.asq, acq = c->r.acq;

	if (NVME_CC_CSS(cc) != 0)
		return "CC.CSS selects a command set other than NVM";
	if (NVME_CC_MPS(cc) > NVME_MPSMAX)
		return "CC.MPS is above CAP.MPSMAX";
	if (NVME_CC_AMS(cc) != 0)
		return "CC.AMS selects an unsupported arbitration mechanism";
	if (NVME_AQA_ASQS(c->r.aqa) < 2 || NVME_AQA_ACQS(c->r.aqa) < 2)
		return "AQA gives an admin queue of fewer than 2 entries";
	if ((asq & (ps - 1)) || (acq & (ps - 1)))
		return "ASQ or ACQ is not aligned to the memory page size";
	if (!gmem_ptr(&c->m->mem, asq, NVME_AQA_ASQS(c->r.aqa) * sizeof(struct nvme_cmd)))
		return "the admin submission queue (ASQ) is not in guest RAM";
	if (!gmem_ptr(&c->m->mem, acq, NVME_AQA_ACQS(c->r.aqa) * sizeof(struct nvme_cqe)))
		return "the admin completion queue (ACQ) is not in guest RAM";
	return NULL;
}

/* CC.EN 0 -> 1: set up the admin queues and report ready (§7.6.1). */
static void nvme_enable(struct nvme_ctrl *c)
{
	uint64_t ps = 4096ULL << NVME_CC_MPS(c->r.cc);
	const char *why = nvme_enable_check(c, ps);

	if (!why) {
		c->page_size = ps;
		nvme_cq_init(c, 0, c->r.acq, (uint16_t)NVME_AQA_ACQS(c->r.aqa), true, 0);
		if (nvme_sq_init(c, 0, c->r.asq, (uint16_t)NVME_AQA_ASQS(c->r.aqa), 0, 0) < 0)
			why = "out of memory for the admin queue";
	}
	if (why) {
		nvme_queues_reset(c);
		nvme_fatal(c, why);
		return;
	}
	c->enabled = true;
	c->shutting_down = false;
	c->r.csts = (c->r.csts & ~NVME_CSTS_SHST_MASK) | NVME_CSTS_RDY;
}

/* Controller level reset completes: everything but AQA/ASQ/ACQ/CC (§7.3.2). */
static void nvme_reset_finish(struct nvme_ctrl *c)
{
	nvme_queues_reset(c);
	nvme_admin_features_reset(c);
	c->resetting = false;
	c->enabled = false;
	c->shutting_down = false;
	c->r.csts = 0;
	c->r.intms = 0;
	c->nerrors = 0;
	nvme_coal_reset(c);
	nvme_irq_update_intx(c);
	/* The host may have set EN again while in-flight I/O drained. */
	if (c->r.cc & NVME_CC_EN)
		nvme_enable(c);
	nvme_fast_sync(c);
}

/* Cached data reaches the media before the shutdown is reported complete. */
static void nvme_shutdown_finish(struct nvme_ctrl *c)
{
	for (unsigned i = 0; i < c->nns; i++)
		block_flush(c->ns[i].blk);
	c->r.csts = (c->r.csts & ~NVME_CSTS_SHST_MASK) | NVME_CSTS_SHST_COMPLETE;
}

/* The last in-flight block request finished: finish what waited for it. */
void nvme_inflight_done(struct nvme_ctrl *c)
{
	if (c->resetting)
		nvme_reset_finish(c);
	else if (c->shutting_down && (c->r.csts & NVME_CSTS_SHST_MASK) == NVME_CSTS_SHST_OCCURRING)
		nvme_shutdown_finish(c);
}

static void nvme_cc_write(struct nvme_ctrl *c, uint32_t val)
{
	uint32_t old = c->r.cc, cc = val & NVME_CC_WMASK;

	/* CSS, MPS and AMS may only change while disabled (§3.1.5). */
	if ((old & NVME_CC_EN) && (cc & NVME_CC_EN))
		cc = (cc & ~0x3ff0u) | (old & 0x3ff0u);
	c->r.cc = cc;

	if ((old & NVME_CC_EN) && !(cc & NVME_CC_EN)) {
		/* Stop now; finish once in-flight I/O is back (io.c). */
		c->resetting = true;
		c->enabled = false;
		if (!c->inflight)
			nvme_reset_finish(c);
	} else if (!(old & NVME_CC_EN) && (cc & NVME_CC_EN) && !c->resetting) {
		if (!(c->r.csts & NVME_CSTS_CFS))
			nvme_enable(c);
	}

	if (NVME_CC_SHN(cc) && !NVME_CC_SHN(old)) {
		/* §7.6.2: stop fetching, finish outstanding commands, flush */
		c->shutting_down = true;
		c->r.csts = (c->r.csts & ~NVME_CSTS_SHST_MASK) | NVME_CSTS_SHST_OCCURRING;
		if (!c->inflight)
			nvme_shutdown_finish(c);
	} else if (!NVME_CC_SHN(cc) && NVME_CC_SHN(old)) {
		c->r.csts &= ~NVME_CSTS_SHST_MASK;
	}
	nvme_fast_sync(c);	/* the admin CQ's vector, or nothing after a disable */
}

/* ---- BAR0: registers and doorbells (§3.1) ------------------------------------- */

static uint32_t nvme_reg_read32(struct nvme_ctrl *c, uint64_t off)
{
	switch (off) {
	case NVME_REG_CAP:      return (uint32_t)c->cap;
	case NVME_REG_CAP + 4:  return (uint32_t)(c->cap >> 32);
	case NVME_REG_VS:       return NVME_VS_1_4;
	case NVME_REG_INTMS:
	case NVME_REG_INTMC:    return c->r.intms;
	case NVME_REG_CC:       return c->r.cc;
	case NVME_REG_CSTS:     return c->r.csts;
	case NVME_REG_AQA:      return c->r.aqa;
	case NVME_REG_ASQ:      return (uint32_t)c->r.asq;
	case NVME_REG_ASQ + 4:  return (uint32_t)(c->r.asq >> 32);
	case NVME_REG_ACQ:      return (uint32_t)c->r.acq;
	case NVME_REG_ACQ + 4:  return (uint32_t)(c->r.acq >> 32);
	default:                return 0;	/* reserved, optional, doorbells */
	}
}

static void nvme_reg_write32(struct nvme_ctrl *c, uint64_t off, uint32_t val)
{
	switch (off) {
	case NVME_REG_INTMS:
	case NVME_REG_INTMC:
		/* §3.1.3-4: only for pin-based and MSI interrupts */
		if (pci_msix_enabled(&c->pci))
			break;
		if (off == NVME_REG_INTMS)
			c->r.intms |= val;
		else
			c->r.intms &= ~val;
		nvme_irq_update_intx(c);
		break;
	case NVME_REG_CC:
		nvme_cc_write(c, val);
		break;
	case NVME_REG_AQA:
		c->r.aqa = val & 0x0fff0fff;
		break;
	case NVME_REG_ASQ:
		c->r.asq = (c->r.asq & ~0xffffffffULL) | (val & ~0xfffu);
		break;
	case NVME_REG_ASQ + 4:
		c->r.asq = (c->r.asq & 0xffffffffULL) | (uint64_t)val << 32;
		break;
	case NVME_REG_ACQ:
		c->r.acq = (c->r.acq & ~0xffffffffULL) | (val & ~0xfffu);
		break;
	case NVME_REG_ACQ + 4:
		c->r.acq = (c->r.acq & 0xffffffffULL) | (uint64_t)val << 32;
		break;
	default:
		/* CAP, VS, CSTS are read-only; NSSR is not supported (CAP.NSSRS = 0) */
		break;
	}
}

static uint64_t nvme_bar0_read(void *opaque, uint64_t off, unsigned size)
{
	struct nvme_ctrl *c = opaque;
	uint64_t v;

	if (off >= NVME_REG_DBS)
		return 0;	/* doorbells are write-only */
	pthread_mutex_lock(&c->lock);
	if (size == 8 && !(off & 7))
		v = nvme_reg_read32(c, off) | (uint64_t)nvme_reg_read32(c, off + 4) << 32;
	else
		v = nvme_reg_read32(c, off & ~3ULL) >> (8 * (off & 3));
	pthread_mutex_unlock(&c->lock);
	return v;
}

static void nvme_bar0_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	struct nvme_ctrl *c = opaque;

	if ((size != 4 && size != 8) || (off & (size - 1))) {
		log_debug("nvme", "%s: ignored %u-byte write at BAR0+%#llx", c->dev->id, size,
			  (unsigned long long)off);
		return;
	}
	pthread_mutex_lock(&c->lock);
	if (off >= NVME_REG_DBS) {
		nvme_doorbell_write(c, off, (uint32_t)val);
		if (size == 8)
			nvme_doorbell_write(c, off + 4, (uint32_t)(val >> 32));
	} else {
		nvme_reg_write32(c, off, (uint32_t)val);
		if (size == 8)
			nvme_reg_write32(c, off + 4, (uint32_t)(val >> 32));
	}
	pthread_mutex_unlock(&c->lock);
	/* an I/O submission-queue tail doorbell (even index, queue id > 0) */
	if (off >= NVME_REG_DBS + 8 && !((off - NVME_REG_DBS) & 4))
		nvme_poll_inline(c);
}

static const struct bus_ops nvme_bar0_ops = {
	.read = nvme_bar0_read,
	.write = nvme_bar0_write,
};

static void nvme_msix_changed(struct pci_dev *d)
{
	struct nvme_ctrl *c = d->opaque;

	pthread_mutex_lock(&c->lock);
	nvme_irq_update_intx(c);
	nvme_fast_sync(c);	/* irqfd messages follow the table */
	pthread_mutex_unlock(&c->lock);
}

/* BAR0 moved or its decoding changed: doorbell ioeventfds follow it. */
static void nvme_config_write(struct pci_dev *d, unsigned off, uint32_t val, unsigned size)
{
	struct nvme_ctrl *c = d->opaque;

	pthread_mutex_lock(&c->lock);
	nvme_fast_sync(c);
	pthread_mutex_unlock(&c->lock);
}

static const struct pci_dev_ops nvme_pci_ops = {
	.config_write = nvme_config_write,
	.msix_changed = nvme_msix_changed,
};

/* ---- namespaces --------------------------------------------------------------- */

/* FNV-1a, to derive stable namespace identifiers from serial and nsid. */
static uint64_t nvme_hash(const char *s, uint32_t nsid, uint64_t salt)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ salt;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
	for (unsigned i = 0; i < 4; i++)
		h = (h ^ ((nsid >> (8 * i)) & 0xff)) * 0x100000001b3ULL;
	return h;
}

static void nvme_ns_ids(const char *serial, struct nvme_ns *ns)
{
	uint64_t a = nvme_hash(serial, ns->nsid, 1), b = nvme_hash(serial, ns->nsid, 2);
	uint64_t u = nvme_hash(serial, ns->nsid, 3), v = nvme_hash(serial, ns->nsid, 4);

	memcpy(ns->nguid, &a, 8);
	memcpy(ns->nguid + 8, &b, 8);
	memcpy(ns->uuid, &u, 8);
	memcpy(ns->uuid + 8, &v, 8);
	ns->uuid[6] = (ns->uuid[6] & 0x0f) | 0x80;	/* RFC 9562 version 8 */
	ns->uuid[8] = (ns->uuid[8] & 0x3f) | 0x80;	/* variant */
}

static void nvme_batch_done(void *opaque)
{
	struct nvme_ctrl *c = opaque;

	pthread_mutex_lock(&c->lock);
	nvme_irq_flush(c);
	pthread_mutex_unlock(&c->lock);
}

static int nvme_ns_open(struct nvme_ctrl *c, const char *path, bool ro, bool direct,
			char *err, size_t errlen)
{
	struct nvme_ns *ns;
	struct block_dev *blk;
	unsigned flags = (ro ? BLOCK_RDONLY : 0) | (direct ? BLOCK_DIRECT : 0);
	int ret;

	if (c->nns == NVME_MAX_NS) {
		snprintf(err, errlen, "%s: %s: more than %d namespaces", c->dev->id, path,
			 NVME_MAX_NS);
		return -ENOSPC;
	}
	ret = block_open(&blk, path, flags, 1u << NVME_LBA_SHIFT, c->m->loop, err, errlen);
	if (ret < 0)
		return ret;
	block_set_batch_hook(blk, nvme_batch_done, c);
	pthread_mutex_lock(&c->lock);
	ns = &c->ns[c->nns];
	memset(ns, 0, sizeof(*ns));
	ns->nsid = c->nns + 1;
	ns->blk = blk;
	ns->ro = ro;
	ns->nlba = block_size(blk) >> NVME_LBA_SHIFT;
	snprintf(ns->path, sizeof(ns->path), "%s", path);
	nvme_ns_ids(c->serial, ns);
	c->nns++;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

int nvme_add_namespace_opts(struct device *dev, const char *path, bool ro, bool direct,
			    char *err, size_t errlen)
{
	if (!dev || !dev->cls || strcmp(dev->cls->name, "nvme") != 0 || !dev->priv) {
		snprintf(err, errlen, "%s is not an NVMe controller", dev ? dev->id : "(null)");
		return -EINVAL;
	}
	return nvme_ns_open(nvme_of(dev), path, ro, direct, err, errlen);
}

int nvme_add_namespace(struct device *dev, const char *path, bool ro, char *err, size_t errlen)
{
	struct nvme_ctrl *c = dev && dev->cls && !strcmp(dev->cls->name, "nvme") ? dev->priv : NULL;

	return nvme_add_namespace_opts(dev, path, ro, c && c->direct, err, errlen);
}

/* ---- device class ----------------------------------------------------------------- */

int nvme_poll(struct device *dev)
{
	struct nvme_ctrl *c = nvme_of(dev);
	int n = 0;

	for (unsigned i = 0; i < c->nns; i++)
		n += block_poll(c->ns[i].blk, false);
	return n;
}

static void nvme_drain(struct nvme_ctrl *c)
{
	for (unsigned i = 0; i < c->nns; i++)
		block_drain(c->ns[i].blk);
}

static void nvme_free(struct nvme_ctrl *c)
{
	nvme_coal_free(c);
	nvme_fast_free(c);
	nvme_drain(c);
	nvme_queues_reset(c);
	for (unsigned i = 0; i < c->nns; i++)
		block_close(c->ns[i].blk);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static int nvme_realize(struct device *dev, struct machine *m, const char *args)
{
	static const char *const keys[] = { "path", "ro", "serial", "direct", NULL };
	char path[4096], err[512];
	struct nvme_ctrl *c;
	int ret;

	if (opt_check_keys(args, keys, err, sizeof(err)) < 0) {
		log_error("nvme", "%s: %s (known: path, ro, serial, direct)", dev->id, err);
		return -EINVAL;
	}
	if (!m->pci) {
		log_error("nvme", "%s: the machine has no PCI bus", dev->id);
		return -ENODEV;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	c->dev = dev;
	c->m = m;
	dev->priv = c;
	nvme_fast_init(c);
	ret = nvme_coal_init(c);
	if (ret < 0)
		goto fail;
	c->direct = opt_get(args, "direct", path, sizeof(path)) == 1;
	ret = opt_get(args, "serial", c->serial, sizeof(c->serial));
	if (ret < 0) {
		log_error("nvme", "%s: serial is longer than 20 characters", dev->id);
		ret = -EINVAL;
		goto fail;
	}
	if (ret == 0)
		snprintf(c->serial, sizeof(c->serial), "AMBER-%.14s", dev->id);

	/* §3.1.1: 1024-entry queues, contiguous, 7.5 s timeout, NVM, 4-64 KiB pages */
	c->cap = NVME_CAP_MQES(NVME_MQES) | NVME_CAP_CQR | NVME_CAP_TO(15) | NVME_CAP_CSS_NVM |
		 NVME_CAP_MPSMIN(0) | NVME_CAP_MPSMAX(NVME_MPSMAX);
	c->page_size = 4096;
	nvme_admin_features_reset(c);

	ret = opt_get(args, "path", path, sizeof(path));
	if (ret == 1) {
		ret = nvme_ns_open(c, path, opt_get(args, "ro", err, sizeof(err)) == 1, c->direct,
				   err, sizeof(err));
		if (ret < 0) {
			log_error("nvme", "%s: %s", dev->id, err);
			goto fail;
		}
	} else if (ret < 0) {
		log_error("nvme", "%s: path is too long", dev->id);
		ret = -ENAMETOOLONG;
		goto fail;
	}

	c->pci.ops = &nvme_pci_ops;
	c->pci.opaque = c;
	pci_dev_init(&c->pci, dev->id, NVME_PCI_VENDOR, NVME_PCI_DEVICE, 0x010802, 0);
	ret = pci_dev_set_bar(&c->pci, 0, NVME_BAR0_SIZE, PCI_BAR_MEM64, &nvme_bar0_ops, c);
	if (ret < 0)
		goto fail;
	ret = pci_msix_init(&c->pci, NVME_NVEC, NVME_MSIX_BAR);
	if (ret < 0)
		goto fail;
	ret = pci_bus_add(m->pci, &c->pci, -1);
	if (ret < 0)
		goto fail_msix;
	return 0;
fail_msix:
	pci_msix_uninit(&c->pci);
fail:
	dev->priv = NULL;
	nvme_free(c);
	return ret;
}

static void nvme_unrealize(struct device *dev)
{
	struct nvme_ctrl *c = nvme_of(dev);

	if (!c)
		return;
	pci_bus_remove(c->pci.bus, &c->pci);
	nvme_free(c);
	dev->priv = NULL;
}

/* Machine reset: power-on state, after in-flight I/O has come back. */
static void nvme_reset(struct device *dev)
{
	struct nvme_ctrl *c = nvme_of(dev);

	pthread_mutex_lock(&c->lock);
	c->resetting = true;
	c->enabled = false;
	pthread_mutex_unlock(&c->lock);
	nvme_drain(c);
	pthread_mutex_lock(&c->lock);
	c->r.cc = c->r.aqa = 0;
	c->r.asq = c->r.acq = 0;
	nvme_reset_finish(c);
	pthread_mutex_unlock(&c->lock);
	pci_dev_reset(&c->pci);
	pthread_mutex_lock(&c->lock);
	nvme_fast_sync(c);	/* BAR0 unmapped, MSI-X off: nothing stays registered */
	pthread_mutex_unlock(&c->lock);
}

/*
 * Quiesce: fetch no new commands, wait for every in-flight block request to
 * complete (their completions are posted, or wait in a full CQ and are part
 * of the saved state). A pending reset or shutdown finishes on the way.
 */
static int nvme_quiesce(struct device *dev)
{
	struct nvme_ctrl *c = nvme_of(dev);

	pthread_mutex_lock(&c->lock);
	c->quiesced = true;
	pthread_mutex_unlock(&c->lock);
	nvme_drain(c);
	pthread_mutex_lock(&c->lock);
	nvme_coal_flush(c, true);	/* before the LAPICs are read */
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* Resume: fetch again, starting with commands the host queued meanwhile. */
static int nvme_resume(struct device *dev)
{
	struct nvme_ctrl *c = nvme_of(dev);

	pthread_mutex_lock(&c->lock);
	c->quiesced = false;
	nvme_process_all(c);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static const struct device_class nvme_class = {
	.name = "nvme",
	.state_version = NVME_STATE_VERSION,
	.realize = nvme_realize,
	.unrealize = nvme_unrealize,
	.reset = nvme_reset,
	.quiesce = nvme_quiesce,
	.resume = nvme_resume,
	.save = nvme_save,
	.check = nvme_check,
	.match = nvme_match,
	.load = nvme_load,
};
DEVICE_CLASS(nvme_class);
