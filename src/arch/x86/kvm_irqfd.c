/*
 * ioeventfd and irqfd for devices (amber/kvm_irqfd.h): doorbell writes that
 * KVM turns into eventfd signals without leaving the kernel, and MSIs that a
 * write to an eventfd injects.
 *
 * KVM_SET_GSI_ROUTING replaces the whole routing table, so the table we set
 * is KVM's default for an in-kernel PIC + IOAPIC (GSI 0-15 to both, 16-23 to
 * the IOAPIC: virt/kvm/irqchip.c, arch/x86/kvm/irq_comm.c default_routing)
 * followed by one MSI route per bound eventfd, on GSIs from 24 up.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "amber/kvm_irqfd.h"
#include "amber/log.h"
#include "amber/machine.h"

#define IRQFD_FIRST_GSI   24		/* after the IOAPIC's pins */
#define IRQFD_PIC_GSIS    16
#define IRQFD_IOAPIC_GSIS 24

struct irqfd_route {
	int fd;
	uint32_t gsi;
	uint64_t addr;
	uint32_t data;
};

struct kvm_irqfd_state {
	pthread_mutex_t lock;		/* routes, and the routing table in KVM */
	int vm_fd;
	uint32_t max_gsi;		/* KVM_CAP_IRQ_ROUTING: routes KVM accepts */
	struct irqfd_route *routes;
	unsigned nroutes, cap;
};

static int kvm_ioeventfd(struct machine *m, uint64_t addr, unsigned len, int fd, bool assign)
{
	struct kvm_ioeventfd io = {
		.addr = addr,
		.len = len,
		.fd = fd,
		.flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
	};

	if (ioctl(m->irqfd->vm_fd, KVM_IOEVENTFD, &io) < 0) {
		int err = errno;

		log_warn("kvm", "KVM_IOEVENTFD %s at %#llx (%u bytes): %s",
			 assign ? "assign" : "deassign", (unsigned long long)addr, len,
			 strerror(err));
		return -err;
	}
	return 0;
}

/* Push the routing table: KVM's defaults, then our MSI routes. Lock held. */
static int irqfd_set_routing(struct kvm_irqfd_state *s)
{
	unsigned n = IRQFD_PIC_GSIS + IRQFD_IOAPIC_GSIS + s->nroutes, k = 0;
	struct kvm_irq_routing *r;
	int ret = 0;

	r = calloc(1, sizeof(*r) + n * sizeof(r->entries[0]));
	if (!r)
		return -ENOMEM;
	for (uint32_t gsi = 0; gsi < IRQFD_IOAPIC_GSIS; gsi++) {
		r->entries[k++] = (struct kvm_irq_routing_entry){
			.gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = { .irqchip = KVM_IRQCHIP_IOAPIC, .pin = gsi },
		};
		if (gsi < IRQFD_PIC_GSIS)
			r->entries[k++] = (struct kvm_irq_routing_entry){
				.gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
				.u.irqchip = { .irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER :
					       KVM_IRQCHIP_PIC_SLAVE, .pin = gsi % 8 },
			};
	}
	for (unsigned i = 0; i < s->nroutes; i++)
		r->entries[k++] = (struct kvm_irq_routing_entry){
			.gsi = s->routes[i].gsi, .type = KVM_IRQ_ROUTING_MSI,
			.u.msi = { .address_lo = (uint32_t)s->routes[i].addr,
				   .address_hi = (uint32_t)(s->routes[i].addr >> 32),
				   .data = s->routes[i].data },
		};
	r->nr = k;
	if (ioctl(s->vm_fd, KVM_SET_GSI_ROUTING, r) < 0) {
		ret = -errno;
		log_warn("kvm", "KVM_SET_GSI_ROUTING (%u routes): %s", k, strerror(errno));
	}
	free(r);
	return ret;
}

static int irqfd_assign(struct kvm_irqfd_state *s, int fd, uint32_t gsi, bool assign)
{
	struct kvm_irqfd req = {
		.fd = (uint32_t)fd,
		.gsi = gsi,
		.flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};

	if (ioctl(s->vm_fd, KVM_IRQFD, &req) < 0) {
		int err = errno;

		log_warn("kvm", "KVM_IRQFD %s fd %d on GSI %u: %s", assign ? "assign" : "deassign",
			 fd, gsi, strerror(err));
		return -err;
	}
	return 0;
}

/* The lowest GSI from IRQFD_FIRST_GSI up that no route uses (few routes: a scan is fine). */
static int irqfd_free_gsi(const struct kvm_irqfd_state *s, uint32_t *gsi)
{
	for (uint32_t g = IRQFD_FIRST_GSI; g < s->max_gsi; g++) {
		bool used = false;

		for (unsigned i = 0; i < s->nroutes && !used; i++)
			used = s->routes[i].gsi == g;
		if (!used) {
			*gsi = g;
			return 0;
		}
	}
	return -ENOSPC;
}

static int kvm_msi_irqfd(struct machine *m, int fd, uint64_t addr, uint32_t data, bool assign)
{
	struct kvm_irqfd_state *s = m->irqfd;
	struct irqfd_route *rt = NULL;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < s->nroutes; i++)
		if (s->routes[i].fd == fd)
			rt = &s->routes[i];
	if (!assign) {
		if (rt) {
			ret = irqfd_assign(s, fd, rt->gsi, false);
			*rt = s->routes[--s->nroutes];
			/* the stale route is harmless; it goes with the next change */
		}
		goto out;
	}
	if (rt) {
		/* a new message for a bound fd: only the route changes */
		if (rt->addr != addr || rt->data != data) {
			rt->addr = addr;
			rt->data = data;
			ret = irqfd_set_routing(s);
		}
		goto out;
	}
	if (s->nroutes == s->cap) {
		unsigned cap = s->cap ? 2 * s->cap : 16;
		struct irqfd_route *p = realloc(s->routes, cap * sizeof(*p));

		if (!p) {
			ret = -ENOMEM;
			goto out;
		}
		s->routes = p;
		s->cap = cap;
	}
	rt = &s->routes[s->nroutes];
	*rt = (struct irqfd_route){ .fd = fd, .addr = addr, .data = data };
	ret = irqfd_free_gsi(s, &rt->gsi);
	if (ret < 0)
		goto out;
	s->nroutes++;
	ret = irqfd_set_routing(s);
	if (!ret)
		ret = irqfd_assign(s, fd, rt->gsi, true);
	if (ret < 0)
		s->nroutes--;
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int kvm_irqfd_setup(struct machine *m, int vm_fd)
{
	struct kvm_irqfd_state *s = calloc(1, sizeof(*s));
	int max;

	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	s->vm_fd = vm_fd;
	m->irqfd = s;
	if (ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD) > 0)
		m->ioeventfd = kvm_ioeventfd;
	max = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQ_ROUTING);
	if (max > IRQFD_FIRST_GSI && ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQFD) > 0) {
		s->max_gsi = (uint32_t)max;
		m->msi_irqfd = kvm_msi_irqfd;
	}
	if (!m->ioeventfd || !m->msi_irqfd)
		log_info("kvm", "no %s%s%s: devices use MMIO exits and KVM_SIGNAL_MSI",
			 m->ioeventfd ? "" : "KVM_CAP_IOEVENTFD", !m->ioeventfd && !m->msi_irqfd ?
			 " or " : "", m->msi_irqfd ? "" : "irqfd routing");
	return 0;
}

void kvm_irqfd_teardown(struct machine *m)
{
	struct kvm_irqfd_state *s = m->irqfd;

	if (!s)
		return;
	m->ioeventfd = NULL;
	m->msi_irqfd = NULL;
	m->irqfd = NULL;
	free(s->routes);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
