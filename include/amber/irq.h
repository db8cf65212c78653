/*
 * Interrupt delivery from devices. The VM provides an irq_chip that raises a
 * GSI line (in-kernel PIC/IOAPIC) or sends an MSI; unit tests provide a fake.
 */
#ifndef AMBER_IRQ_H
#define AMBER_IRQ_H

#include <stdint.h>

struct irq_chip {
	/* level: 1 assert, 0 deassert. Edge devices pulse 1 then 0. */
	int (*set_line)(struct irq_chip *chip, unsigned gsi, int level);
	int (*send_msi)(struct irq_chip *chip, uint64_t addr, uint32_t data);
	/*
	 * Optional: an eventfd that raises gsi (or the MSI) when written, for
	 * irqfd; returns the fd or -errno. NULL in unit tests.
	 */
	int (*msi_irqfd)(struct irq_chip *chip, uint64_t addr, uint32_t data);
	void *opaque;
};

static inline int irq_set_line(struct irq_chip *c, unsigned gsi, int level)
{
	return c && c->set_line ? c->set_line(c, gsi, level) : 0;
}

static inline int irq_pulse(struct irq_chip *c, unsigned gsi)
{
	int r = irq_set_line(c, gsi, 1);
	return r ? r : irq_set_line(c, gsi, 0);
}

static inline int irq_send_msi(struct irq_chip *c, uint64_t addr, uint32_t data)
{
	return c && c->send_msi ? c->send_msi(c, addr, data) : 0;
}

#endif
