/*
 * PCI core and host: config mechanism #1 through ports 0xcf8-0xcff, BAR
 * sizing and mapping, INTx, capabilities, MSI-X, reset control at 0xcf9, and
 * the config state section.
 */
#include <errno.h>
#include <stdio.h>

#include "../harness.h"
#include "amber/device.h"
#include "amber/pci.h"

#define CFG_EN 0x80000000u

/* ---- a test device with three BARs that records accesses ---------------- */

struct tdev {
	struct pci_dev pci;
	unsigned nread, nwrite;
	uint64_t last_off, last_val;
	unsigned msix_changed;
	unsigned config_writes;
};

static uint64_t tdev_read(void *opaque, uint64_t off, unsigned size)
{
	struct tdev *t = opaque;

	t->nread++;
	t->last_off = off;
	return 0x5a5a0000u | off;
}

static void tdev_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	struct tdev *t = opaque;

	t->nwrite++;
	t->last_off = off;
	t->last_val = val;
}

static const struct bus_ops tdev_ops = { .read = tdev_read, .write = tdev_write };

static void tdev_msix_changed(struct pci_dev *d)
{
	((struct tdev *)d->opaque)->msix_changed++;
}

static void tdev_config_write(struct pci_dev *d, unsigned off, uint32_t val, unsigned size)
{
	((struct tdev *)d->opaque)->config_writes++;
}

static const struct pci_dev_ops tdev_pci_ops = {
	.config_write = tdev_config_write,
	.msix_changed = tdev_msix_changed,
};

/* BAR0: 4 KiB mem32, BAR1: MSI-X (4 vectors) if msix, BAR2-3: 16 KiB mem64,
 * BAR4: 32 bytes of I/O. */
static struct tdev *tdev_new(bool msix)
{
	struct tdev *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->pci.ops = &tdev_pci_ops;
	t->pci.opaque = t;
	pci_dev_init(&t->pci, "tdev", 0x1af4, 0x1234, 0x010802, 0x01);
	assert_int_equal(pci_dev_set_bar(&t->pci, 0, 4096, 0, &tdev_ops, t), 0);
	assert_int_equal(pci_dev_set_bar(&t->pci, 2, 16384, PCI_BAR_MEM64 | PCI_BAR_PREFETCH,
					 &tdev_ops, t), 0);
	assert_int_equal(pci_dev_set_bar(&t->pci, 4, 32, PCI_BAR_IO, &tdev_ops, t), 0);
	if (msix)
		assert_int_equal(pci_msix_init(&t->pci, 4, 1), 0);
	return t;
}

struct fix {
	struct test_machine *t;
	struct device *host;
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	char err[256];

	assert_non_null(f);
	f->t = test_machine_new(1 << 20);
	f->t->m.last_event = -1;
	assert_int_equal(device_create(&f->t->m, "pci_host", "pci0", NULL, &f->host, err,
				       sizeof(err)), 0);
	assert_non_null(f->t->m.pci);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	device_destroy_all(&f->t->m);
	assert_null(f->t->m.pci);
	test_machine_free(f->t);
	free(f);
	return 0;
}

static uint32_t cfg_rd(struct test_machine *t, unsigned bus, unsigned devfn, unsigned off,
		       unsigned size)
{
	pio_out(t, 0xcf8, 4, CFG_EN | bus << 16 | devfn << 8 | (off & 0xfc));
	return (uint32_t)pio_in(t, 0xcfc + (off & 3), size);
}

static void cfg_wr(struct test_machine *t, unsigned devfn, unsigned off, unsigned size,
		   uint32_t v)
{
	pio_out(t, 0xcf8, 4, CFG_EN | devfn << 8 | (off & 0xfc));
	pio_out(t, 0xcfc + (off & 3), size, v);
}

static struct tdev *add_tdev(struct fix *f, int devfn, bool msix)
{
	struct tdev *d = tdev_new(msix);

	assert_int_equal(pci_bus_add(f->t->m.pci, &d->pci, devfn), 0);
	return d;
}

static void free_tdev(struct tdev *d)
{
	pci_bus_remove(d->pci.bus, &d->pci);
	free(d);
}

/* ---- config mechanism #1 ------------------------------------------------ */

static void test_config_mechanism1_reads_440fx_and_piix3_ids(void **state)
{
	struct fix *f = *state;

	assert_int_equal(cfg_rd(f->t, 0, PCI_DEVFN(0, 0), 0, 4), 0x12378086);
	assert_int_equal(cfg_rd(f->t, 0, PCI_DEVFN(0, 0), 0x08, 4) >> 8, 0x060000);
	assert_int_equal(cfg_rd(f->t, 0, PCI_DEVFN(1, 0), 0, 4), 0x70008086);
	assert_int_equal(cfg_rd(f->t, 0, PCI_DEVFN(1, 0), 0x08, 4) >> 8, 0x060100);
	/* QEMU's subsystem IDs on the host bridge: SeaBIOS's qemu_detect() needs them. */
	assert_int_equal(cfg_rd(f->t, 0, PCI_DEVFN(0, 0), 0x2c, 4), 0x11001af4);
	/* Word and byte reads at the data port's inner offsets. */
	assert_int_equal(cfg_rd(f->t, 0, PCI_DEVFN(0, 0), 2, 2), 0x1237);
	assert_int_equal(cfg_rd(f->t, 0, PCI_DEVFN(0, 0), 3, 1), 0x12);
	/* CONFIG_ADDRESS reads back, reserved bits as 0. */
	pio_out(f->t, 0xcf8, 4, 0xff00ab07);
	assert_int_equal(pio_in(f->t, 0xcf8, 4), 0x8000ab04);
}

static void test_config_read_of_bus_1_or_absent_device_returns_all_ones(void **state)
{
	struct fix *f = *state;

	assert_int_equal(cfg_rd(f->t, 1, PCI_DEVFN(0, 0), 0, 4), 0xffffffff);
	assert_int_equal(cfg_rd(f->t, 0, PCI_DEVFN(7, 0), 0, 4), 0xffffffff);
	assert_int_equal(cfg_rd(f->t, 0, PCI_DEVFN(7, 0), 0, 2), 0xffff);
	/* Enable bit clear: no config cycle. */
	pio_out(f->t, 0xcf8, 4, 0);
	assert_int_equal(pio_in(f->t, 0xcfc, 4), 0xffffffff);
}

static void test_chipset_registers_are_writable_bytes(void **state)
{
	struct fix *f = *state;

	cfg_wr(f->t, PCI_DEVFN(0, 0), 0x5a, 1, 0x33);	/* PAM1 */
	cfg_wr(f->t, PCI_DEVFN(0, 0), 0x72, 1, 0x0a);	/* SMRAM */
	cfg_wr(f->t, PCI_DEVFN(1, 0), 0x60, 4, 0x0b0b0a0a);	/* PIRQRC */
	assert_int_equal(cfg_rd(f->t, 0, PCI_DEVFN(0, 0), 0x5a, 1), 0x33);
	assert_int_equal(cfg_rd(f->t, 0, PCI_DEVFN(0, 0), 0x72, 1), 0x0a);
	assert_int_equal(cfg_rd(f->t, 0, PCI_DEVFN(1, 0), 0x60, 4), 0x0b0b0a0a);
	/* IDs stay read-only. */
	cfg_wr(f->t, PCI_DEVFN(0, 0), 0, 4, 0);
	assert_int_equal(cfg_rd(f->t, 0, PCI_DEVFN(0, 0), 0, 4), 0x12378086);
}

/* ---- reset control register ----------------------------------------------- */

static void test_cf9_rst_cpu_with_sys_rst_requests_machine_reset(void **state)
{
	struct fix *f = *state;

	/* A dword CONFIG_ADDRESS write whose second byte has bit 2 is not RCR. */
	pio_out(f->t, 0xcf8, 4, CFG_EN | 0x0600);
	assert_int_equal(f->t->m.last_event, -1);
	pio_out(f->t, 0xcf9, 1, 0x02);
	assert_int_equal(f->t->m.last_event, -1);
	assert_int_equal(pio_in(f->t, 0xcf9, 1), 0x02);
	/* CONFIG_ADDRESS kept its value across the RCR byte access. */
	assert_int_equal(pio_in(f->t, 0xcf8, 4), CFG_EN | 0x0600);
	pio_out(f->t, 0xcf9, 1, 0x06);
	assert_int_equal(f->t->m.last_event, MACHINE_RESET);
}

/* ---- BARs ------------------------------------------------------------------ */

static void test_bars_assigned_naturally_aligned_in_windows(void **state)
{
	struct fix *f = *state;
	struct tdev *a = add_tdev(f, PCI_DEVFN(3, 0), false);
	struct tdev *b = add_tdev(f, -1, false);

	assert_int_equal(b->pci.devfn, PCI_DEVFN(2, 0));	/* first free slot */
	for (int i = 0; i < 2; i++) {
		struct tdev *d = i ? b : a;

		assert_true(d->pci.bars[0].addr >= PCI_MMIO32_BASE);
		assert_int_equal(d->pci.bars[0].addr & 4095, 0);
		assert_true(d->pci.bars[2].addr >= PCI_MMIO32_BASE);
		assert_int_equal(d->pci.bars[2].addr & 16383, 0);
		assert_true(d->pci.bars[4].addr >= PCI_IO_WINDOW_BASE &&
			    d->pci.bars[4].addr <= PCI_IO_WINDOW_END);
		assert_int_equal(d->pci.bars[4].addr & 31, 0);
		assert_int_equal(cfg_rd(f->t, 0, d->pci.devfn, 0x10, 4), d->pci.bars[0].addr);
		assert_int_equal(cfg_rd(f->t, 0, d->pci.devfn, 0x20, 4),
				 d->pci.bars[4].addr | 1);
	}
	assert_true(a->pci.bars[0].addr != b->pci.bars[0].addr);
	assert_true(a->pci.bars[4].addr != b->pci.bars[4].addr);
	/* INTERRUPT_LINE preset to the routed GSI for guests without firmware. */
	assert_int_equal(cfg_rd(f->t, 0, a->pci.devfn, PCI_INTERRUPT_LINE, 1),
			 PCI_INTX_GSI(3, 0));
	free_tdev(a);
	free_tdev(b);
}

static void test_bar_sizing_32bit_mem_64bit_mem_and_io(void **state)
{
	struct fix *f = *state;
	struct tdev *d = add_tdev(f, PCI_DEVFN(3, 0), false);
	unsigned fn = d->pci.devfn;

	cfg_wr(f->t, fn, 0x10, 4, 0xffffffff);
	assert_int_equal(cfg_rd(f->t, 0, fn, 0x10, 4), 0xfffff000);
	/* 64-bit prefetchable: type bits 0xc in the low dword, upper dword all writable */
	cfg_wr(f->t, fn, 0x18, 4, 0xffffffff);
	cfg_wr(f->t, fn, 0x1c, 4, 0xffffffff);
	assert_int_equal(cfg_rd(f->t, 0, fn, 0x18, 4), 0xffffc00c);
	assert_int_equal(cfg_rd(f->t, 0, fn, 0x1c, 4), 0xffffffff);
	cfg_wr(f->t, fn, 0x20, 4, 0xffffffff);
	assert_int_equal(cfg_rd(f->t, 0, fn, 0x20, 4), 0xffffffe1);
	/* Unused BARs and the ROM BAR read 0: nothing to size. */
	cfg_wr(f->t, fn, 0x24, 4, 0xffffffff);
	assert_int_equal(cfg_rd(f->t, 0, fn, 0x24, 4), 0);
	cfg_wr(f->t, fn, 0x30, 4, 0xffffffff);
	assert_int_equal(cfg_rd(f->t, 0, fn, 0x30, 4), 0);
	free_tdev(d);
}

static void test_bar_mapped_only_after_command_decode_bits(void **state)
{
	struct fix *f = *state;
	struct tdev *d = add_tdev(f, PCI_DEVFN(3, 0), false);
	uint64_t mem = d->pci.bars[0].addr, io = d->pci.bars[4].addr;

	assert_int_equal(mmio_rd(f->t, mem + 8, 4), 0xffffffff);
	assert_int_equal(pio_in(f->t, io, 2), 0xffff);
	assert_int_equal(d->nread, 0);

	cfg_wr(f->t, d->pci.devfn, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	assert_int_equal(mmio_rd(f->t, mem + 8, 4), 0x5a5a0008);
	assert_int_equal(pio_in(f->t, io, 2), 0xffff);	/* I/O still off */
	cfg_wr(f->t, d->pci.devfn, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_IO);
	assert_int_equal(pio_in(f->t, io + 4, 2), 0x0004);
	assert_int_equal(d->nread, 2);
	assert_true(d->pci.bars[0].mapped && d->pci.bars[2].mapped && d->pci.bars[4].mapped);

	cfg_wr(f->t, d->pci.devfn, PCI_COMMAND, 2, 0);
	assert_false(d->pci.bars[0].mapped || d->pci.bars[2].mapped || d->pci.bars[4].mapped);
	assert_int_equal(mmio_rd(f->t, mem + 8, 4), 0xffffffff);
	free_tdev(d);
}

static void test_bar_moves_when_rewritten(void **state)
{
	struct fix *f = *state;
	struct tdev *d = add_tdev(f, PCI_DEVFN(3, 0), false);
	uint64_t old = d->pci.bars[0].addr, new = 0xd0000000;

	cfg_wr(f->t, d->pci.devfn, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	cfg_wr(f->t, d->pci.devfn, 0x10, 4, (uint32_t)new);
	assert_int_equal(d->pci.bars[0].addr, new);

	mmio_wr(f->t, new + 0x10, 4, 0x1234);
	assert_int_equal(d->nwrite, 1);
	assert_int_equal(d->last_off, 0x10);
	assert_int_equal(d->last_val, 0x1234);
	mmio_wr(f->t, old + 0x10, 4, 0x9999);
	assert_int_equal(d->nwrite, 1);
	assert_int_equal(mmio_rd(f->t, old, 4), 0xffffffff);

	/* A 64-bit BAR moves above 4 GiB when both halves are written. */
	cfg_wr(f->t, d->pci.devfn, 0x18, 4, 0x00000000);
	cfg_wr(f->t, d->pci.devfn, 0x1c, 4, 0x00000008);
	assert_int_equal(d->pci.bars[2].addr, 0x800000000ull);
	assert_true(d->pci.bars[2].mapped);
	assert_int_equal(mmio_rd(f->t, 0x800000000ull + 0x20, 4), 0x5a5a0020);
	free_tdev(d);
}

static void test_bar_sizing_with_decode_on_never_maps_all_ones(void **state)
{
	struct fix *f = *state;
	struct tdev *d = add_tdev(f, PCI_DEVFN(3, 0), false);
	uint64_t addr = d->pci.bars[0].addr;

	cfg_wr(f->t, d->pci.devfn, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	cfg_wr(f->t, d->pci.devfn, 0x10, 4, 0xffffffff);
	assert_false(d->pci.bars[0].mapped);
	assert_int_equal(mmio_rd(f->t, 0xfffff000, 4), 0xffffffff);
	assert_int_equal(d->nread, 0);
	cfg_wr(f->t, d->pci.devfn, 0x10, 4, (uint32_t)addr);
	assert_true(d->pci.bars[0].mapped);
	/* Address 0 is never mapped either. */
	cfg_wr(f->t, d->pci.devfn, 0x10, 4, 0);
	assert_false(d->pci.bars[0].mapped);
	free_tdev(d);
}

static void test_bar_overlapping_another_is_left_unmapped(void **state)
{
	struct fix *f = *state;
	struct tdev *a = add_tdev(f, PCI_DEVFN(3, 0), false);
	struct tdev *b = add_tdev(f, PCI_DEVFN(4, 0), false);
	uint64_t at = a->pci.bars[0].addr;

	cfg_wr(f->t, a->pci.devfn, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	cfg_wr(f->t, b->pci.devfn, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	cfg_wr(f->t, b->pci.devfn, 0x10, 4, (uint32_t)at);
	assert_false(b->pci.bars[0].mapped);
	assert_true(a->pci.bars[0].mapped);
	mmio_rd(f->t, at, 4);
	assert_int_equal(a->nread, 1);
	assert_int_equal(b->nread, 0);
	/* Moving it somewhere free maps it. */
	cfg_wr(f->t, b->pci.devfn, 0x10, 4, 0xd0100000);
	assert_true(b->pci.bars[0].mapped);
	free_tdev(a);
	free_tdev(b);
}

static void test_set_bar_rejects_bad_sizes(void **state)
{
	struct pci_dev d = { 0 };

	pci_dev_init(&d, "bad", 1, 2, 0, 0);
	assert_int_equal(pci_dev_set_bar(&d, 0, 3000, 0, &tdev_ops, NULL), -EINVAL);
	assert_int_equal(pci_dev_set_bar(&d, 0, 8, 0, &tdev_ops, NULL), -EINVAL);
	assert_int_equal(pci_dev_set_bar(&d, 5, 4096, PCI_BAR_MEM64, &tdev_ops, NULL), -EINVAL);
	assert_int_equal(pci_dev_set_bar(&d, 6, 4096, 0, &tdev_ops, NULL), -EINVAL);
	assert_int_equal(pci_dev_set_bar(&d, 0, 4096, PCI_BAR_MEM64, &tdev_ops, NULL), 0);
	/* The upper half of a 64-bit BAR is taken. */
	assert_int_equal(pci_dev_set_bar(&d, 1, 4096, 0, &tdev_ops, NULL), -EBUSY);
	(void)state;
}

/* ---- multi-function and capabilities --------------------------------------- */

static void test_function_above_0_sets_multifunction_bit_of_function_0(void **state)
{
	struct fix *f = *state;
	struct tdev *fn0 = add_tdev(f, PCI_DEVFN(5, 0), false);
	struct tdev *orphan = tdev_new(false);
	struct tdev *fn2;

	assert_int_equal(cfg_rd(f->t, 0, PCI_DEVFN(5, 0), PCI_HEADER_TYPE, 1), 0x00);
	fn2 = add_tdev(f, PCI_DEVFN(5, 2), false);
	assert_int_equal(cfg_rd(f->t, 0, PCI_DEVFN(5, 0), PCI_HEADER_TYPE, 1), 0x80);
	assert_int_equal(cfg_rd(f->t, 0, PCI_DEVFN(5, 2), 0, 2), 0x1af4);
	/* Function 1 of an empty slot is refused: no guest would find it. */
	assert_int_equal(pci_bus_add(f->t->m.pci, &orphan->pci, PCI_DEVFN(9, 1)), -EINVAL);
	/* Taken devfn */
	assert_int_equal(pci_bus_add(f->t->m.pci, &orphan->pci, PCI_DEVFN(5, 0)), -EEXIST);
	free_tdev(fn2);
	free_tdev(fn0);
	free(orphan);
}

static void test_capability_list_walk_finds_every_capability(void **state)
{
	struct fix *f = *state;
	struct tdev *d = tdev_new(false);
	uint8_t pm, ids[8], n = 0;
	unsigned ptr;

	pm = pci_add_cap(&d->pci, PCI_CAP_ID_PM, 8);
	assert_int_equal(pm, 0x40);
	assert_int_equal(pci_msix_init(&d->pci, 4, 1), 0);
	assert_int_equal(pci_bus_add(f->t->m.pci, &d->pci, PCI_DEVFN(3, 0)), 0);

	assert_true(cfg_rd(f->t, 0, d->pci.devfn, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	ptr = cfg_rd(f->t, 0, d->pci.devfn, PCI_CAPABILITY_LIST, 1);
	while (ptr && n < 8) {
		assert_true(ptr >= 0x40 && (ptr & 3) == 0);
		ids[n++] = cfg_rd(f->t, 0, d->pci.devfn, ptr, 1);
		ptr = cfg_rd(f->t, 0, d->pci.devfn, ptr + 1, 1);
	}
	assert_int_equal(n, 2);
	assert_int_equal(ids[0], PCI_CAP_ID_PM);
	assert_int_equal(ids[1], PCI_CAP_ID_MSIX);
	/* MSI-X capability: table size N-1, table and PBA in BAR1. */
	assert_int_equal(cfg_rd(f->t, 0, d->pci.devfn, d->pci.msix.cap + 2, 2) & 0x7ff, 3);
	assert_int_equal(cfg_rd(f->t, 0, d->pci.devfn, d->pci.msix.cap + 4, 4), 0 | 1);
	assert_int_equal(cfg_rd(f->t, 0, d->pci.devfn, d->pci.msix.cap + 8, 4),
			 d->pci.msix.pba_off | 1);
	free_tdev(d);
}

/* ---- INTx ------------------------------------------------------------------ */

static void test_intx_disable_bit_gates_line_but_not_status(void **state)
{
	struct fix *f = *state;
	struct tdev *d = add_tdev(f, PCI_DEVFN(3, 0), false);
	unsigned gsi = PCI_INTX_GSI(3, 0);

	assert_int_equal(cfg_rd(f->t, 0, d->pci.devfn, PCI_INTERRUPT_PIN, 1), 1);
	pci_set_intx(&d->pci, 1);
	assert_int_equal(f->t->irq.level[gsi], 1);
	assert_true(cfg_rd(f->t, 0, d->pci.devfn, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);

	cfg_wr(f->t, d->pci.devfn, PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
	assert_int_equal(f->t->irq.level[gsi], 0);
	assert_true(cfg_rd(f->t, 0, d->pci.devfn, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);

	cfg_wr(f->t, d->pci.devfn, PCI_COMMAND, 2, 0);
	assert_int_equal(f->t->irq.level[gsi], 1);
	pci_set_intx(&d->pci, 0);
	assert_int_equal(f->t->irq.level[gsi], 0);
	assert_false(cfg_rd(f->t, 0, d->pci.devfn, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	/* STATUS.INTERRUPT is read-only to the guest. */
	cfg_wr(f->t, d->pci.devfn, PCI_STATUS, 2, 0xffff);
	assert_false(cfg_rd(f->t, 0, d->pci.devfn, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	free_tdev(d);
}

static void test_intx_of_devices_sharing_a_gsi_is_wired_or(void **state)
{
	struct fix *f = *state;
	struct tdev *a = add_tdev(f, PCI_DEVFN(2, 0), false);
	struct tdev *b = add_tdev(f, PCI_DEVFN(6, 0), false);
	unsigned gsi = PCI_INTX_GSI(2, 0);

	assert_int_equal(gsi, PCI_INTX_GSI(6, 0));
	pci_set_intx(&a->pci, 1);
	pci_set_intx(&b->pci, 1);
	pci_set_intx(&a->pci, 0);
	assert_int_equal(f->t->irq.level[gsi], 1);
	pci_set_intx(&b->pci, 0);
	assert_int_equal(f->t->irq.level[gsi], 0);
	/* Removing an asserting device drops its share. */
	pci_set_intx(&a->pci, 1);
	free_tdev(a);
	assert_int_equal(f->t->irq.level[gsi], 0);
	free_tdev(b);
}

/* ---- MSI-X ----------------------------------------------------------------- */

struct msix_fix {
	struct tdev *d;
	uint64_t bar;		/* BAR1 address */
};

static struct msix_fix msix_setup(struct fix *f)
{
	struct msix_fix x;

	x.d = add_tdev(f, PCI_DEVFN(3, 0), true);
	x.bar = x.d->pci.bars[1].addr;
	cfg_wr(f->t, x.d->pci.devfn, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	for (unsigned v = 0; v < 4; v++) {
		mmio_wr(f->t, x.bar + 16 * v + 0, 4, 0xfee00000 | v << 12);
		mmio_wr(f->t, x.bar + 16 * v + 4, 4, 0);
		mmio_wr(f->t, x.bar + 16 * v + 8, 4, 0x40 + v);
	}
	return x;
}

static void msix_ctrl(struct fix *f, struct tdev *d, uint16_t bits)
{
	cfg_wr(f->t, d->pci.devfn, d->pci.msix.cap + 2, 2, bits);
}

static uint64_t msix_pba(struct fix *f, struct msix_fix *x)
{
	return mmio_rd(f->t, x->bar + x->d->pci.msix.pba_off, 8);
}

static void test_msix_masked_vector_sets_pba_and_fires_on_unmask(void **state)
{
	struct fix *f = *state;
	struct msix_fix x = msix_setup(f);

	msix_ctrl(f, x.d, 0x8000);
	assert_true(pci_msix_enabled(&x.d->pci));
	/* Vectors come out of reset masked (PCI 3.0 §6.8.2.9). */
	assert_int_equal(mmio_rd(f->t, x.bar + 16 * 2 + 12, 4), 1);
	pci_msix_notify(&x.d->pci, 2);
	assert_int_equal(f->t->irq.nmsi, 0);
	assert_int_equal(msix_pba(f, &x), 1u << 2);

	x.d->msix_changed = 0;
	mmio_wr(f->t, x.bar + 16 * 2 + 12, 4, 0);
	assert_int_equal(f->t->irq.nmsi, 1);
	assert_int_equal(f->t->irq.msi[0].addr, 0xfee02000);
	assert_int_equal(f->t->irq.msi[0].data, 0x42);
	assert_int_equal(msix_pba(f, &x), 0);
	assert_int_equal(x.d->msix_changed, 1);

	/* Unmasked now: delivered at once. */
	pci_msix_notify(&x.d->pci, 2);
	assert_int_equal(f->t->irq.nmsi, 2);
	/* PBA is read-only. */
	mmio_wr(f->t, x.bar + x.d->pci.msix.pba_off, 8, ~0ull);
	assert_int_equal(msix_pba(f, &x), 0);
	free_tdev(x.d);
}

static void test_msix_function_mask_holds_every_vector(void **state)
{
	struct fix *f = *state;
	struct msix_fix x = msix_setup(f);

	mmio_wr(f->t, x.bar + 16 * 0 + 12, 4, 0);
	mmio_wr(f->t, x.bar + 16 * 3 + 12, 4, 0);
	x.d->msix_changed = 0;
	msix_ctrl(f, x.d, 0xc000);		/* enable + function mask */
	assert_int_equal(x.d->msix_changed, 1);
	pci_msix_notify(&x.d->pci, 0);
	pci_msix_notify(&x.d->pci, 3);
	assert_int_equal(f->t->irq.nmsi, 0);
	assert_int_equal(msix_pba(f, &x), 0x9);

	msix_ctrl(f, x.d, 0x8000);		/* function mask off */
	assert_int_equal(x.d->msix_changed, 2);
	assert_int_equal(f->t->irq.nmsi, 2);
	assert_int_equal(f->t->irq.msi[0].data, 0x40);
	assert_int_equal(f->t->irq.msi[1].data, 0x43);
	assert_int_equal(msix_pba(f, &x), 0);
	free_tdev(x.d);
}

static void test_msix_disabled_device_uses_intx(void **state)
{
	struct fix *f = *state;
	struct msix_fix x = msix_setup(f);
	unsigned gsi = PCI_INTX_GSI(3, 0);

	mmio_wr(f->t, x.bar + 12, 4, 0);
	assert_false(pci_msix_enabled(&x.d->pci));
	pci_msix_notify(&x.d->pci, 0);
	assert_int_equal(f->t->irq.nmsi, 0);
	assert_int_equal(msix_pba(f, &x), 0);
	pci_set_intx(&x.d->pci, 1);
	assert_int_equal(f->t->irq.level[gsi], 1);

	/* Enabling MSI-X takes the function off INTx# (PCI 3.0 §6.8.2). */
	msix_ctrl(f, x.d, 0x8000);
	assert_int_equal(f->t->irq.level[gsi], 0);
	pci_msix_notify(&x.d->pci, 0);
	assert_int_equal(f->t->irq.nmsi, 1);
	msix_ctrl(f, x.d, 0);
	assert_int_equal(f->t->irq.level[gsi], 1);
	pci_set_intx(&x.d->pci, 0);
	free_tdev(x.d);
}

static void test_msix_table_takes_4_and_8_byte_accesses(void **state)
{
	struct fix *f = *state;
	struct msix_fix x = msix_setup(f);

	mmio_wr(f->t, x.bar + 16, 8, 0x0000000100002000ull | 0xfee00000ull);
	assert_int_equal(mmio_rd(f->t, x.bar + 16, 4), 0xfee02000);
	assert_int_equal(mmio_rd(f->t, x.bar + 20, 4), 0x1);
	assert_int_equal(mmio_rd(f->t, x.bar + 16, 8), 0x00000001fee02000ull);
	/* data + vector control in one qword; reserved control bits stay 0 */
	mmio_wr(f->t, x.bar + 24, 8, 0xfffffffe00000077ull);
	assert_int_equal(mmio_rd(f->t, x.bar + 24, 4), 0x77);
	assert_int_equal(mmio_rd(f->t, x.bar + 28, 4), 0);
	msix_ctrl(f, x.d, 0x8000);
	pci_msix_notify(&x.d->pci, 1);
	assert_int_equal(f->t->irq.nmsi, 1);
	assert_int_equal(f->t->irq.msi[0].addr, 0x1fee02000ull);
	assert_int_equal(f->t->irq.msi[0].data, 0x77);
	/* Out-of-range vector: ignored. */
	pci_msix_notify(&x.d->pci, 4);
	assert_int_equal(f->t->irq.nmsi, 1);
	free_tdev(x.d);
}

/* ---- reset ----------------------------------------------------------------- */

static void test_dev_reset_unmaps_bars_and_masks_msix(void **state)
{
	struct fix *f = *state;
	struct msix_fix x = msix_setup(f);
	uint64_t bar0 = x.d->pci.bars[0].addr;

	cfg_wr(f->t, x.d->pci.devfn, 0x10, 4, 0xd0000000);
	mmio_wr(f->t, x.bar + 12, 4, 0);
	msix_ctrl(f, x.d, 0x8000);
	pci_dev_reset(&x.d->pci);
	assert_int_equal(cfg_rd(f->t, 0, x.d->pci.devfn, PCI_COMMAND, 2), 0);
	assert_false(x.d->pci.bars[0].mapped);
	assert_int_equal(x.d->pci.bars[0].addr, bar0);
	assert_false(pci_msix_enabled(&x.d->pci));
	assert_int_equal(x.d->pci.msix.table[0][3], 1);
	free_tdev(x.d);
}

/* ---- state ----------------------------------------------------------------- */

static json_t *roundtrip_json(json_t *o)
{
	char *s = json_dumps(o, 0);
	json_t *r;

	assert_non_null(s);
	r = json_loads(s, 0, NULL);
	free(s);
	assert_non_null(r);
	return r;
}

static void test_save_load_round_trip_restores_config_bars_and_msix(void **state)
{
	struct fix *f = *state, *g;
	struct msix_fix x = msix_setup(f);
	struct tdev *d2;
	json_t *o = json_object(), *o2;
	char err[256];

	cfg_wr(f->t, x.d->pci.devfn, 0x10, 4, 0xd0000000);
	mmio_wr(f->t, x.bar + 16 * 1 + 12, 4, 0);	/* vector 1 unmasked */
	msix_ctrl(f, x.d, 0x8000);
	pci_msix_notify(&x.d->pci, 3);			/* vector 3 masked: pending */
	pci_set_intx(&x.d->pci, 1);			/* level kept, gated by MSI-X */
	assert_int_equal(pci_dev_save(&x.d->pci, o), 0);
	o2 = roundtrip_json(o);
	assert_int_equal(pci_dev_check(o2, err, sizeof(err)), 0);

	/* A second machine with the same device, freshly added. */
	setup((void **)&g);
	d2 = add_tdev(g, PCI_DEVFN(3, 0), true);
	assert_int_equal(pci_dev_load(&d2->pci, o2), 0);
	assert_memory_equal(d2->pci.cfg, x.d->pci.cfg, PCI_CFG_SPACE_SIZE);
	assert_true(d2->pci.bars[0].mapped);
	assert_int_equal(d2->pci.bars[0].addr, 0xd0000000);
	assert_int_equal(mmio_rd(g->t, 0xd0000000 + 4, 4), 0x5a5a0004);
	assert_true(pci_msix_enabled(&d2->pci));
	assert_int_equal(d2->msix_changed, 1);
	assert_int_equal(mmio_rd(g->t, d2->pci.bars[1].addr + d2->pci.msix.pba_off, 8), 1u << 3);
	assert_int_equal(d2->pci.intx_level, 1);
	assert_int_equal(g->t->irq.level[PCI_INTX_GSI(3, 0)], 0);
	/* The pending vector fires when the guest unmasks it on the new machine. */
	mmio_wr(g->t, d2->pci.bars[1].addr + 16 * 3 + 12, 4, 0);
	assert_int_equal(g->t->irq.nmsi, 1);
	assert_int_equal(g->t->irq.msi[0].data, 0x43);

	json_decref(o);
	json_decref(o2);
	pci_set_intx(&x.d->pci, 0);
	free_tdev(x.d);
	free_tdev(d2);
	teardown((void **)&g);
}

static void test_state_saved_mid_sizing_of_64bit_bar_checks_and_loads(void **state)
{
	struct fix *f = *state;
	struct tdev *d = add_tdev(f, PCI_DEVFN(3, 0), false);
	json_t *o = json_object(), *o2;
	const json_t *b2;
	char err[256] = "";

	/* The guest was sizing BAR2/3: both halves hold all ones. */
	cfg_wr(f->t, d->pci.devfn, 0x18, 4, 0xffffffff);
	cfg_wr(f->t, d->pci.devfn, 0x1c, 4, 0xffffffff);
	assert_int_equal(pci_dev_save(&d->pci, o), 0);
	o2 = roundtrip_json(o);
	b2 = json_array_get(json_object_get(o2, "bars"), 2);
	assert_true(json_is_string(b2));	/* above 2^53: decimal string */
	assert_string_equal(json_string_value(b2), "18446744073709535232");
	if (pci_dev_check(o2, err, sizeof(err)) != 0)
		fail_msg("check: %s", err);
	cfg_wr(f->t, d->pci.devfn, 0x1c, 4, 0);
	assert_int_equal(pci_dev_load(&d->pci, o2), 0);
	assert_int_equal(cfg_rd(f->t, 0, d->pci.devfn, 0x1c, 4), 0xffffffff);
	json_decref(o);
	json_decref(o2);
	free_tdev(d);
}

static void test_intx_level_set_before_add_is_driven_once_added(void **state)
{
	struct fix *f = *state;
	struct tdev *d = tdev_new(false);

	pci_set_intx(&d->pci, 1);
	assert_int_equal(pci_bus_add(f->t->m.pci, &d->pci, PCI_DEVFN(3, 0)), 0);
	assert_int_equal(f->t->irq.level[PCI_INTX_GSI(3, 0)], 1);
	free_tdev(d);
	assert_int_equal(f->t->irq.level[PCI_INTX_GSI(3, 0)], 0);
}

static void expect_check_error(json_t *o, const char *needle)
{
	char err[256] = "";

	assert_int_equal(pci_dev_check(o, err, sizeof(err)), -EINVAL);
	if (!strstr(err, needle))
		fail_msg("error \"%s\" does not name \"%s\"", err, needle);
}

static void test_check_names_the_corrupted_field(void **state)
{
	struct fix *f = *state;
	struct msix_fix x = msix_setup(f);
	json_t *o = json_object(), *c;
	char hex[600];

	assert_int_equal(pci_dev_save(&x.d->pci, o), 0);

	c = json_deep_copy(o);
	json_object_set_new(c, "config", json_string("8086"));
	expect_check_error(c, "\"config\"");
	json_decref(c);

	c = json_deep_copy(o);
	snprintf(hex, sizeof(hex), "%s", json_string_value(json_object_get(o, "config")));
	hex[7] = 'g';
	json_object_set_new(c, "config", json_string(hex));
	expect_check_error(c, "\"config\"");
	json_decref(c);

	c = json_deep_copy(o);
	json_array_remove(json_object_get(c, "bars"), 5);
	expect_check_error(c, "\"bars\"");
	json_decref(c);

	c = json_deep_copy(o);
	json_array_set_new(json_object_get(c, "bars"), 0, json_integer(0xe0000000));
	expect_check_error(c, "bars[0]");
	json_decref(c);

	c = json_deep_copy(o);
	json_object_set_new(c, "intx_level", json_integer(2));
	expect_check_error(c, "intx_level");
	json_decref(c);

	c = json_deep_copy(o);
	json_array_remove(json_array_get(json_object_get(json_object_get(c, "msix"), "table"), 1), 3);
	expect_check_error(c, "msix.table[1]");
	json_decref(c);

	c = json_deep_copy(o);
	json_array_set_new(json_array_get(json_object_get(json_object_get(c, "msix"), "table"), 2),
			   0, json_integer(0x100000000ll));
	expect_check_error(c, "msix.table[2][0]");
	json_decref(c);

	c = json_deep_copy(o);
	json_array_append_new(json_object_get(json_object_get(c, "msix"), "pending"),
			      json_integer(4));
	expect_check_error(c, "msix.pending[0]");
	json_decref(c);

	/* Loading into a different device is refused and changes nothing. */
	{
		struct tdev *other = tdev_new(false);

		pci_dev_init(&other->pci, "other", 0x8086, 0x1111, 0, 0);
		assert_int_equal(pci_bus_add(f->t->m.pci, &other->pci, PCI_DEVFN(4, 0)), 0);
		assert_int_equal(pci_dev_load(&other->pci, o), -EINVAL);
		assert_int_equal(other->pci.cfg[2], 0x11);
		free_tdev(other);
	}
	json_decref(o);
	free_tdev(x.d);
}

static void test_pci_host_state_round_trips_and_check_names_section(void **state)
{
	struct fix *f = *state;
	const struct device_class *cls = f->host->cls;
	json_t *o = json_object(), *c;
	char err[256] = "";

	cfg_wr(f->t, PCI_DEVFN(0, 0), 0x59, 1, 0x30);
	pio_out(f->t, 0xcf9, 1, 0x02);
	pio_out(f->t, 0xcf8, 4, CFG_EN | 0x0800);
	assert_int_equal(cls->save(f->host, o), 0);
	assert_int_equal(cls->check(o, cls->state_version, err, sizeof(err)), 0);

	cfg_wr(f->t, PCI_DEVFN(0, 0), 0x59, 1, 0x00);
	pio_out(f->t, 0xcf9, 1, 0x00);
	assert_int_equal(cls->load(f->host, o, cls->state_version), 0);
	assert_int_equal(cfg_rd(f->t, 0, PCI_DEVFN(0, 0), 0x59, 1), 0x30);
	assert_int_equal(pio_in(f->t, 0xcf9, 1), 0x02);

	c = json_deep_copy(o);
	json_object_set_new(json_object_get(c, "isa_bridge"), "config", json_string("00"));
	assert_int_equal(cls->check(c, cls->state_version, err, sizeof(err)), -EINVAL);
	if (!strstr(err, "isa_bridge") || !strstr(err, "config"))
		fail_msg("error \"%s\" does not name isa_bridge.config", err);
	json_decref(c);

	c = json_deep_copy(o);
	json_object_set_new(c, "rcr", json_integer(7));
	assert_int_equal(cls->check(c, cls->state_version, err, sizeof(err)), -EINVAL);
	if (!strstr(err, "rcr"))
		fail_msg("error \"%s\" does not name rcr", err);
	json_decref(c);

	/*
	 * A PIIX3 section whose class code changed passes check() (it is a
	 * well-formed config space) but is not this device: match() says so
	 * before restore loads anything (it used to fail only in load()).
	 */
	assert_non_null(cls->match);
	assert_int_equal(cls->match(f->host, o, err, sizeof(err)), 0);
	c = json_deep_copy(o);
	{
		json_t *isa = json_object_get(c, "isa_bridge");
		char *hex = strdup(json_string_value(json_object_get(isa, "config")));

		hex[2 * PCI_REVISION_ID + 4] ^= 1;	/* sub-class byte, high nibble */
		json_object_set_new(isa, "config", json_string(hex));
		free(hex);
	}
	assert_int_equal(cls->check(c, cls->state_version, err, sizeof(err)), 0);
	assert_int_equal(cls->match(f->host, c, err, sizeof(err)), -EINVAL);
	if (!strstr(err, "isa_bridge.config: the saved revision and class code"))
		fail_msg("error \"%s\" does not name isa_bridge's class code", err);
	json_decref(c);
	json_decref(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config_mechanism1_reads_440fx_and_piix3_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_read_of_bus_1_or_absent_device_returns_all_ones, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chipset_registers_are_writable_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cf9_rst_cpu_with_sys_rst_requests_machine_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bars_assigned_naturally_aligned_in_windows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_sizing_32bit_mem_64bit_mem_and_io, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_mapped_only_after_command_decode_bits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_moves_when_rewritten, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_sizing_with_decode_on_never_maps_all_ones, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bar_overlapping_another_is_left_unmapped, setup, teardown),
		cmocka_unit_test(test_set_bar_rejects_bad_sizes),
		cmocka_unit_test_setup_teardown(test_function_above_0_sets_multifunction_bit_of_function_0, setup, teardown),
		cmocka_unit_test_setup_teardown(test_capability_list_walk_finds_every_capability, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intx_disable_bit_gates_line_but_not_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intx_of_devices_sharing_a_gsi_is_wired_or, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msix_masked_vector_sets_pba_and_fires_on_unmask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msix_function_mask_holds_every_vector, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msix_disabled_device_uses_intx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msix_table_takes_4_and_8_byte_accesses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dev_reset_unmaps_bars_and_masks_msix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_load_round_trip_restores_config_bars_and_msix, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_names_the_corrupted_field, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_saved_mid_sizing_of_64bit_bar_checks_and_loads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intx_level_set_before_add_is_driven_once_added, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pci_host_state_round_trips_and_check_names_section, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
