/*
 * Component-test harness: a struct machine around a plain RAM buffer, with a
 * fake interrupt controller that records line levels and MSIs, so a test can
 * play the guest driver against a device's register interface.
 */
#ifndef AMBER_TEST_HARNESS_H
#define AMBER_TEST_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "amber/machine.h"
#include "amber/irq.h"

#define FAKE_IRQ_LINES 24
#define FAKE_MSI_MAX   256

struct fake_irq {
	struct irq_chip chip;
	int level[FAKE_IRQ_LINES];
	unsigned raised[FAKE_IRQ_LINES];	/* 0 -> 1 transitions */
	unsigned nmsi;
	struct { uint64_t addr; uint32_t data; } msi[FAKE_MSI_MAX];
};

static inline int fake_irq_set_line(struct irq_chip *c, unsigned gsi, int level)
{
	struct fake_irq *f = (struct fake_irq *)c;
	if (gsi >= FAKE_IRQ_LINES)
		return -22;
	if (level && !f->level[gsi])
		f->raised[gsi]++;
	f->level[gsi] = level;
	return 0;
}

static inline int fake_irq_send_msi(struct irq_chip *c, uint64_t addr, uint32_t data)
{
	struct fake_irq *f = (struct fake_irq *)c;
	if (f->nmsi < FAKE_MSI_MAX) {
		f->msi[f->nmsi].addr = addr;
		f->msi[f->nmsi].data = data;
	}
	f->nmsi++;
	return 0;
}

struct test_machine {
	struct machine m;
	struct fake_irq irq;
	uint8_t *ram;
	size_t ram_size;
};

/* ram_size bytes of guest RAM at gpa 0, zeroed. */
static inline struct test_machine *test_machine_new(size_t ram_size)
{
	struct test_machine *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	t->ram = aligned_alloc(4096, ram_size);
	assert_non_null(t->ram);
	memset(t->ram, 0, ram_size);
	t->ram_size = ram_size;
	bus_init(&t->m.pio, "pio");
	bus_init(&t->m.mmio, "mmio");
	gmem_init_buffer(&t->m.mem, t->ram, ram_size);
	t->irq.chip.set_line = fake_irq_set_line;
	t->irq.chip.send_msi = fake_irq_send_msi;
	t->m.irq = &t->irq.chip;
	t->m.ncpus = 1;
	return t;
}

static inline void test_machine_free(struct test_machine *t)
{
	bus_destroy(&t->m.pio);
	bus_destroy(&t->m.mmio);
	free(t->ram);
	free(t);
}

static inline uint64_t pio_in(struct test_machine *t, uint16_t port, unsigned size)
{
	uint64_t v = 0;
	bus_read(&t->m.pio, port, size, &v);
	return v;
}

static inline void pio_out(struct test_machine *t, uint16_t port, unsigned size, uint64_t v)
{
	bus_write(&t->m.pio, port, size, v);
}

static inline uint64_t mmio_rd(struct test_machine *t, uint64_t addr, unsigned size)
{
	uint64_t v = 0;
	bus_read(&t->m.mmio, addr, size, &v);
	return v;
}

static inline void mmio_wr(struct test_machine *t, uint64_t addr, unsigned size, uint64_t v)
{
	bus_write(&t->m.mmio, addr, size, v);
}

#endif
