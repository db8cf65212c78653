/*
 * NVMe fast paths (src/hw/nvme/eventfd.c) against fake KVM hooks: doorbells
 * through ioeventfd (registered only with shadow doorbells, following BAR0),
 * MSI-X vectors through irqfd (masked vectors still set the pending bit).
 * The fakes keep what "KVM" has registered; ring() plays KVM: a 4-byte write
 * to a watched address signals the eventfd instead of reaching the bus.
 */
#include "nvme_drv.h"

#include <pthread.h>
#include <sys/eventfd.h>

#include "amber/evloop.h"

#define FAKE_MAX 64

struct fake_kvm {
	struct { uint64_t addr; int fd; } io[FAKE_MAX];
	unsigned nio;
	unsigned io_errors;		/* deassign of something not assigned, double assign */
	struct { int fd; uint64_t addr; uint32_t data; } msi[FAKE_MAX];
	unsigned nmsi;
	unsigned msi_updates;
};
static struct fake_kvm kvm;

static int fake_ioeventfd(struct machine *m, uint64_t addr, unsigned len, int fd, bool assign)
{
	for (unsigned i = 0; i < kvm.nio; i++)
		if (kvm.io[i].addr == addr) {
			if (assign || kvm.io[i].fd != fd) {
				kvm.io_errors++;
				return -EEXIST;
			}
			kvm.io[i] = kvm.io[--kvm.nio];
			return 0;
		}
	if (!assign || len != 4 || kvm.nio == FAKE_MAX) {
		kvm.io_errors++;
		return -ENOENT;
	}
	kvm.io[kvm.nio].addr = addr;
	kvm.io[kvm.nio].fd = fd;
	kvm.nio++;
	return 0;
}

static int fake_msi_irqfd(struct machine *m, int fd, uint64_t addr, uint32_t data, bool assign)
{
	for (unsigned i = 0; i < kvm.nmsi; i++)
		if (kvm.msi[i].fd == fd) {
			if (!assign) {
				kvm.msi[i] = kvm.msi[--kvm.nmsi];
			} else {
				kvm.msi[i].addr = addr;
				kvm.msi[i].data = data;
				kvm.msi_updates++;
			}
			return 0;
		}
	if (!assign || kvm.nmsi == FAKE_MAX)
		return -ENOENT;
	kvm.msi[kvm.nmsi].fd = fd;
	kvm.msi[kvm.nmsi].addr = addr;
	kvm.msi[kvm.nmsi].data = data;
	kvm.nmsi++;
	return 0;
}

static int watched_fd(uint64_t addr)
{
	for (unsigned i = 0; i < kvm.nio; i++)
		if (kvm.io[i].addr == addr)
			return kvm.io[i].fd;
	return -1;
}

/* The fd bound to MSI data `data`, -1 if none. */
static int msi_fd(uint32_t data)
{
	for (unsigned i = 0; i < kvm.nmsi; i++)
		if (kvm.msi[i].data == data)
			return kvm.msi[i].fd;
	return -1;
}

/* A guest 4-byte doorbell write as KVM handles it. Returns true if it went to an eventfd. */
static bool ring(struct drv *d, uint64_t off, uint32_t v)
{
	int fd = watched_fd(d->bar0 + off);
	uint64_t one = 1;

	if (fd < 0) {
		drv_wr32(d, off, v);
		return false;
	}
	assert_int_equal(write(fd, &one, 8), 8);
	return true;
}

/* Count of writes to eventfd fd since the last call (0 if none). */
static uint64_t drain_count(int fd)
{
	uint64_t n = 0;

	if (read(fd, &n, 8) != 8)
		return 0;
	return n;
}

struct fixture {
	struct evloop *loop;
	struct drv *d;
};

/* A controller on a machine with the fake hooks; doorbell eventfds need a loop. */
static struct drv *fast_drv(struct fixture *f, bool with_loop)
{
	struct drv *d;

	memset(&kvm, 0, sizeof(kvm));
	f->loop = NULL;
	if (with_loop) {
		f->loop = evloop_new();
		assert_non_null(f->loop);
		assert_int_equal(evloop_start_thread(f->loop), 0);
	}
	d = drv_new_loop(NULL, f->loop);
	d->t->m.ioeventfd = fake_ioeventfd;
	d->t->m.msi_irqfd = fake_msi_irqfd;
	f->d = d;
	return d;
}

static void fast_free(struct fixture *f)
{
	drv_free(f->d);
	/* every registration was undone when the device went away */
	assert_int_equal(kvm.nio, 0);
	assert_int_equal(kvm.nmsi, 0);
	assert_int_equal(kvm.io_errors, 0);
	if (f->loop) {
		evloop_stop(f->loop);
		evloop_join(f->loop);
		evloop_free(f->loop);
	}
}

/* Wait for a completion on CQ qid that the event loop posts. */
static bool wait_posted(struct drv *d, unsigned qid, struct nvme_cqe *e)
{
	for (int i = 0; i < 20000; i++) {
		if (drv_peek(d, qid, e))
			return true;
		usleep(100);
	}
	return false;
}

/* CQ qid's head as the controller sees it, once it reaches want (or after 1 s). */
static uint16_t cq_head_wait(struct drv *d, unsigned qid, uint16_t want)
{
	uint16_t h = 0;

	for (int i = 0; i < 2000; i++) {
		pthread_mutex_lock(&d->c->lock);
		h = d->c->cq[qid].head;
		pthread_mutex_unlock(&d->c->lock);
		if (h == want)
			break;
		usleep(500);
	}
	return h;
}

/* ---- doorbells ----------------------------------------------------------------------------- */

static void test_io_doorbells_use_ioeventfd_only_with_shadow_doorbells(void **state)
{
	struct fixture f;
	struct drv *d = fast_drv(&f, true);
	struct nvme_cqe e;
	struct nvme_cmd cmd;
	uint32_t *dbs;
	uint64_t p;

	drv_enable(d, 16);
	assert_int_equal(drv_create_cq(d, 1, 16, 1), 0);
	assert_int_equal(drv_create_sq(d, 1, 16, 1), 0);
	/* without shadow doorbells the written value is needed: MMIO exits */
	assert_int_equal(kvm.nio, 0);
	drv_dbbuf_config(d);
	assert_int_equal(kvm.nio, 2);
	assert_true(watched_fd(d->bar0 + NVME_REG_DBS + 8) >= 0);	/* SQ 1 tail */
	assert_true(watched_fd(d->bar0 + NVME_REG_DBS + 12) >= 0);	/* CQ 1 head */
	assert_int_equal(watched_fd(d->bar0 + NVME_REG_DBS), -1);	/* admin: never */

	/* a write the way Linux does it: shadow first, then the doorbell KVM catches */
	p = drv_alloc(d, 1);
	drv_fill(drv_ptr(d, p), 4096, 5);
	cmd = drv_rw(NVME_IO_WRITE, 1, 8, 8, p, 0);
	cmd.cid = 77;
	memcpy(drv_ptr(d, d->q[1].sq), &cmd, 64);
	d->q[1].sq_tail = 1;
	dbs = drv_ptr(d, d->dbs);
	__atomic_store_n(&dbs[2], 1, __ATOMIC_SEQ_CST);
	assert_true(ring(d, NVME_REG_DBS + 8, 1));
	assert_true(wait_posted(d, 1, &e));
	assert_int_equal(e.cid, 77);
	assert_int_equal(drv_status(&e), 0);
	/* the CQ head doorbell also goes through KVM; the head comes from the shadow */
	drv_consume(d, 1, false);
	__atomic_store_n(&dbs[3], 1, __ATOMIC_SEQ_CST);
	assert_true(ring(d, NVME_REG_DBS + 12, 1));
	assert_int_equal(cq_head_wait(d, 1, 1), 1);

	/* deleting the queues drops their doorbells */
	cmd = (struct nvme_cmd){ .opc = NVME_ADM_DELETE_SQ, .cdw10 = 1 };
	assert_int_equal(drv_admin(d, &cmd, NULL), 0);
	assert_int_equal(watched_fd(d->bar0 + NVME_REG_DBS + 8), -1);
	assert_true(watched_fd(d->bar0 + NVME_REG_DBS + 12) >= 0);
	cmd = (struct nvme_cmd){ .opc = NVME_ADM_DELETE_CQ, .cdw10 = 1 };
	assert_int_equal(drv_admin(d, &cmd, NULL), 0);
	assert_int_equal(kvm.nio, 0);
	fast_free(&f);
}

static void test_doorbell_ioeventfds_follow_bar0_and_go_away_on_disable(void **state)
{
	struct fixture f;
	struct drv *d = fast_drv(&f, true);
	unsigned devfn = (unsigned)d->c->pci.devfn;
	uint64_t old = d->bar0, moved = d->bar0 + 0x100000;

	drv_enable(d, 16);
	drv_dbbuf_config(d);
	assert_int_equal(drv_create_cq(d, 1, 16, 1), 0);
	assert_int_equal(drv_create_sq(d, 1, 16, 1), 0);
	assert_int_equal(kvm.nio, 2);
	/* memory decoding off: nothing may be caught at the old address */
	pci_bus_config_write(d->t->m.pci, devfn, PCI_COMMAND, PCI_COMMAND_MASTER, 2);
	assert_int_equal(kvm.nio, 0);
	/* BAR0 moves (low dword; the BAR is 64-bit) and decoding comes back */
	pci_bus_config_write(d->t->m.pci, devfn, PCI_BAR0, (uint32_t)moved | 0x4, 4);
	pci_bus_config_write(d->t->m.pci, devfn, PCI_COMMAND, PCI_COMMAND_MEMORY |
			     PCI_COMMAND_MASTER, 2);
	assert_int_equal(kvm.nio, 2);
	assert_int_equal(watched_fd(old + NVME_REG_DBS + 8), -1);
	assert_true(watched_fd(moved + NVME_REG_DBS + 8) >= 0);
	assert_true(watched_fd(moved + NVME_REG_DBS + 12) >= 0);
	/* moving it while decoding stays on */
	pci_bus_config_write(d->t->m.pci, devfn, PCI_BAR0, (uint32_t)old | 0x4, 4);
	assert_int_equal(kvm.nio, 2);
	assert_true(watched_fd(old + NVME_REG_DBS + 8) >= 0);
	/* CC.EN = 0: queues are gone, so are their doorbells */
	drv_wr32(d, NVME_REG_CC, 0);
	assert_int_equal(kvm.nio, 0);
	fast_free(&f);
}

/* ---- interrupts ------------------------------------------------------------------------------ */

static void msix_program(struct drv *d, unsigned v, uint32_t data, bool masked)
{
	mmio_wr(d->t, d->bar4 + 16 * v, 4, 0xfee00000);
	mmio_wr(d->t, d->bar4 + 16 * v + 4, 4, 0);
	mmio_wr(d->t, d->bar4 + 16 * v + 8, 4, data);
	mmio_wr(d->t, d->bar4 + 16 * v + 12, 4, masked);
}

static void test_msix_vectors_go_through_irqfd_and_masking_still_pends(void **state)
{
	struct fixture f;
	struct drv *d = fast_drv(&f, false);
	struct fake_irq *irq = &d->t->irq;
	unsigned devfn = (unsigned)d->c->pci.devfn;
	struct nvme_cmd cmd;
	int fd0, fd1;
	unsigned n;
	uint64_t p;

	for (unsigned v = 0; v < 3; v++)
		msix_program(d, v, 0x40 + v, false);
	pci_bus_config_write(d->t->m.pci, devfn, d->c->pci.msix.cap + 2, 0x8000, 2);
	/* the admin CQ's vector is bound once the controller is enabled */
	assert_int_equal(kvm.nmsi, 0);
	drv_enable(d, 16);
	fd0 = msi_fd(0x40);
	assert_true(fd0 >= 0);
	assert_int_equal(kvm.nmsi, 1);
	assert_int_equal(drv_create_cq(d, 1, 16, 1), 0);
	assert_int_equal(drv_create_sq(d, 1, 16, 1), 0);
	fd1 = msi_fd(0x41);
	assert_true(fd1 >= 0);
	assert_int_equal(kvm.nmsi, 2);		/* vector 2 is not used by any CQ */
	drain_count(fd0);

	/* an I/O completion interrupts through the eventfd, not KVM_SIGNAL_MSI */
	n = irq->nmsi;
	p = drv_alloc(d, 1);
	cmd = drv_rw(NVME_IO_READ, 1, 0, 1, p, 0);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), 0);
	assert_int_equal(drain_count(fd1), 1);
	assert_int_equal(irq->nmsi, n);

	/* masked: no eventfd write, the pending bit instead; unmasking sends it */
	mmio_wr(d->t, d->bar4 + 16 + 12, 4, 1);
	cmd = drv_rw(NVME_IO_READ, 1, 0, 1, p, 0);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), 0);
	assert_int_equal(drain_count(fd1), 0);
	assert_true(mmio_rd(d->t, d->bar4 + d->c->pci.msix.pba_off, 8) & 2);
	mmio_wr(d->t, d->bar4 + 16 + 12, 4, 0);
	assert_int_equal(irq->nmsi, n + 1);
	assert_int_equal(irq->msi[n].data, 0x41);
	assert_false(mmio_rd(d->t, d->bar4 + d->c->pci.msix.pba_off, 8) & 2);

	/* a new message (the guest moved the interrupt): the route follows */
	msix_program(d, 1, 0x51, true);
	msix_program(d, 1, 0x51, false);
	assert_int_equal(msi_fd(0x51), fd1);
	assert_int_equal(msi_fd(0x41), -1);
	cmd = drv_rw(NVME_IO_READ, 1, 0, 1, p, 0);
	assert_int_equal(drv_cmd(d, 1, &cmd, NULL), 0);
	assert_int_equal(drain_count(fd1), 1);

	/* MSI-X off: unbound, and INTx takes over */
	pci_bus_config_write(d->t->m.pci, devfn, d->c->pci.msix.cap + 2, 0, 2);
	assert_int_equal(kvm.nmsi, 0);
	fast_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_io_doorbells_use_ioeventfd_only_with_shadow_doorbells),
		cmocka_unit_test(test_doorbell_ioeventfds_follow_bar0_and_go_away_on_disable),
		cmocka_unit_test(test_msix_vectors_go_through_irqfd_and_masking_still_pends),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
