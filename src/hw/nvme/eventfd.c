/*
 * The NVMe fast paths: doorbells through ioeventfd, MSI-X through irqfd.
 *
 * Doorbells. With KVM_IOEVENTFD a guest write to a doorbell signals an
 * eventfd inside KVM: no exit to a vCPU thread, the vCPU goes on at once and
 * the event loop fetches the commands. The written value is lost on the way,
 * so this is only done for I/O queues while the host uses shadow doorbells
 * (Doorbell Buffer Config, NVMe 1.4 §5.8): the host writes the new tail/head
 * into the shadow buffer before it rings (Linux: nvme_dbbuf_update_and_check_
 * event), and the controller reads it from there. The admin queue, and hosts
 * without shadow doorbells, keep MMIO exits. Writes of another size than 4
 * bytes are not matched by KVM and still arrive as MMIO.
 *
 * Interrupts. Each MSI-X vector that a completion queue uses gets an eventfd
 * bound (irqfd) to its message; writing it injects the MSI inside KVM. Masked
 * vectors keep their binding but are sent through pci_msix_notify, which sets
 * the pending bit as PCI 3.0 §6.8.2.9 wants; the PCI code sends it on unmask.
 *
 * Everything is re-derived by nvme_fast_sync from the controller state, so
 * BAR0 moving, queues coming and going, a reset or a restored checkpoint all
 * take the same path.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "amber/evloop.h"
#include "amber/log.h"
#include "nvme.h"

/* MSI-X Message Control (PCI 3.0 §6.8.2.3): byte cap + 3, bit 6 = Function Mask */
#define NVME_MSIX_FMASK 0x40
#define NVME_MSIX_VEC_MASKED 1		/* Vector Control bit 0 */

void nvme_fast_init(struct nvme_ctrl *c)
{
	const char *env = getenv("AMBER_NVME_EVENTFD");

	/* AMBER_NVME_EVENTFD=0|ioeventfd|irqfd|both (default): see amber/nvme.h */
	c->use_ioeventfd = !env || !strcmp(env, "both") || !strcmp(env, "ioeventfd");
	c->use_irqfd = !env || !strcmp(env, "both") || !strcmp(env, "irqfd");
	if (env && !c->use_ioeventfd && !c->use_irqfd && strcmp(env, "0") != 0)
		log_warn("nvme", "%s: AMBER_NVME_EVENTFD=%s: expected 0, ioeventfd, irqfd or both; "
			 "using neither", c->dev->id, env);
	for (unsigned q = 0; q < NVME_NQ; q++)
		for (unsigned k = 0; k < 2; k++)
			c->dbfd[q][k] = (struct nvme_dbfd){ .ctrl = c, .qid = (uint16_t)q,
							    .cq = k == 1, .fd = -1 };
	for (unsigned v = 0; v < NVME_NVEC; v++)
		c->vecfd[v] = (struct nvme_vecfd){ .fd = -1 };
}

/* ---- doorbells ----------------------------------------------------------- */

/* KVM signalled a doorbell write: read the new value from the shadow buffer. */
static void nvme_dbfd_ready(void *opaque, int fd, uint32_t events)
{
	struct nvme_dbfd *d = opaque;
	struct nvme_ctrl *c = d->ctrl;
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_debug("nvme", "%s: doorbell eventfd: %s", c->dev->id, strerror(errno));
	pthread_mutex_lock(&c->lock);
	if (!d->cq) {
		/* a stale signal for a queue deleted meanwhile finds it invalid */
		if (c->sq[d->qid].valid && c->r.dbbuf_dbs)
			nvme_sq_process(c, &c->sq[d->qid]);
	} else if (c->cq[d->qid].valid) {
		/* a completion that waits for space rings again (nvme_cq_full) */
		nvme_cq_refresh_head(c, d->qid, !pci_msix_enabled(&c->pci));
		nvme_cq_drain_waiting(c, &c->cq[d->qid]);
		nvme_irq_update_intx(c);
	}
	nvme_irq_flush(c);
	pthread_mutex_unlock(&c->lock);
	if (!d->cq)
		nvme_poll_inline(c);
}

static int nvme_dbfd_open(struct nvme_ctrl *c, struct nvme_dbfd *d)
{
	int ret;

	if (d->fd >= 0)
		return 0;
	d->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->fd < 0)
		return -errno;
	ret = evloop_add_fd(c->m->loop, d->fd, EPOLLIN, nvme_dbfd_ready, d);
	if (ret < 0) {
		close(d->fd);
		d->fd = -1;
	}
	return ret;
}

/* Where KVM should watch this doorbell now, 0 for nowhere (MMIO exits). */
static uint64_t nvme_dbfd_want(const struct nvme_ctrl *c, const struct nvme_dbfd *d)
{
	const struct pci_bar *bar = &c->pci.bars[0];
	bool valid = d->cq ? c->cq[d->qid].valid : c->sq[d->qid].valid;

	if (!c->use_ioeventfd || !c->m->ioeventfd || !c->m->loop || !d->qid || !valid ||
	    !c->r.dbbuf_dbs ||
	    !c->enabled || c->resetting || !bar->mapped)
		return 0;
	/* CAP.DSTRD = 0: SQ y tail at 0x1000 + 8y, CQ y head 4 bytes later (§3.1.10-11) */
	return bar->addr + NVME_REG_DBS + 8ULL * d->qid + (d->cq ? 4 : 0);
}

static void nvme_dbfd_sync(struct nvme_ctrl *c, struct nvme_dbfd *d)
{
	struct machine *m = c->m;
	uint64_t want = nvme_dbfd_want(c, d);
	int ret;

	if (want == d->addr)
		return;
	if (d->addr) {
		m->ioeventfd(m, d->addr, 4, d->fd, false);
		d->addr = 0;
	}
	if (!want)
		return;
	ret = nvme_dbfd_open(c, d);
	if (!ret)
		ret = m->ioeventfd(m, want, 4, d->fd, true);
	if (ret < 0) {
		log_warn("nvme", "%s: %s %u doorbell stays on MMIO exits: %s", c->dev->id,
			 d->cq ? "CQ" : "SQ", d->qid, strerror(-ret));
		return;
	}
	d->addr = want;
}

/* ---- interrupts ---------------------------------------------------------- */

static void nvme_vecfd_sync(struct nvme_ctrl *c, unsigned v, bool used)
{
	struct nvme_vecfd *f = &c->vecfd[v];
	struct machine *m = c->m;
	const uint32_t *e = c->pci.msix.table[v];
	bool msix = pci_msix_enabled(&c->pci);
	uint64_t addr = e[0] | (uint64_t)e[1] << 32;
	uint32_t data = e[2];
	int ret;

	/*
	 * The table is read without the PCI lock: a concurrent guest write is
	 * followed by msix_changed, which brings us here again.
	 */
	f->live = msix && !(c->pci.cfg[c->pci.msix.cap + 3] & NVME_MSIX_FMASK) &&
		  !(e[3] & NVME_MSIX_VEC_MASKED);
	if (f->bound && (!used || !msix)) {
		m->msi_irqfd(m, f->fd, 0, 0, false);
		f->bound = false;
	}
	if (!c->use_irqfd || !m->msi_irqfd || !used || !f->live ||
	    (f->bound && f->addr == addr && f->data == data))
		return;
	if (f->fd < 0) {
		f->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (f->fd < 0) {
			log_warn("nvme", "%s: eventfd for MSI-X vector %u: %s", c->dev->id, v,
				 strerror(errno));
			return;
		}
	}
	ret = m->msi_irqfd(m, f->fd, addr, data, true);
	f->bound = ret == 0;
	if (ret == 0) {
		f->addr = addr;
		f->data = data;
	}
}

bool nvme_fast_notify(struct nvme_ctrl *c, unsigned vec)
{
	uint64_t one = 1;

	return vec < NVME_NVEC && c->vecfd[vec].bound && c->vecfd[vec].live &&
	       write(c->vecfd[vec].fd, &one, sizeof(one)) == sizeof(one);
}

/* ---- both ------------------------------------------------------------------ */

void nvme_fast_sync(struct nvme_ctrl *c)
{
	uint64_t used[(NVME_NVEC + 63) / 64] = { 0 };

	if (c->m->ioeventfd)
		for (unsigned q = 1; q < NVME_NQ; q++)
			for (unsigned k = 0; k < 2; k++)
				nvme_dbfd_sync(c, &c->dbfd[q][k]);
	if (!c->pci.msix.nvec)
		return;
	for (unsigned q = 0; q < NVME_NQ; q++) {
		const struct nvme_cq *cq = &c->cq[q];

		if (cq->valid && cq->ien && cq->vector < NVME_NVEC)
			used[cq->vector / 64] |= 1ULL << (cq->vector % 64);
	}
	for (unsigned v = 0; v < NVME_NVEC && v < c->pci.msix.nvec; v++)
		nvme_vecfd_sync(c, v, used[v / 64] & (1ULL << (v % 64)));
}

void nvme_fast_free(struct nvme_ctrl *c)
{
	struct machine *m = c->m;

	for (unsigned q = 0; q < NVME_NQ; q++)
		for (unsigned k = 0; k < 2; k++) {
			struct nvme_dbfd *d = &c->dbfd[q][k];

			if (d->addr)
				m->ioeventfd(m, d->addr, 4, d->fd, false);
			d->addr = 0;
			if (d->fd >= 0) {
				evloop_del_fd(m->loop, d->fd);
				close(d->fd);
				d->fd = -1;
			}
		}
	for (unsigned v = 0; v < NVME_NVEC; v++) {
		struct nvme_vecfd *f = &c->vecfd[v];

		if (f->bound)
			m->msi_irqfd(m, f->fd, 0, 0, false);
		f->bound = false;
		if (f->fd >= 0)
			close(f->fd);
		f->fd = -1;
	}
}
