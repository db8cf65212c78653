/*
 * PCI bus 0: type-0 config space with write and write-1-to-clear masks, BAR
 * sizing and mapping, capability list, INTx and MSI-X, and the config state
 * section. References: PCI Local Bus Specification 3.0 (§6.1 header, §6.2.5
 * BARs, §6.7 capabilities, §6.8.2 MSI-X).
 *
 * Locking: bus->lock (recursive) serializes config transactions, BAR
 * (un)mapping, reset and load; bus->state_lock is a leaf lock over config
 * bytes, INTx and MSI-X state, taken by the paths devices call from their own
 * threads (pci_set_intx, pci_msix_notify, MSI-X table access). No device
 * callback runs with state_lock held, so a device may call pci_set_intx or
 * pci_msix_notify from its callbacks and hold its own lock when it does.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amber/hex.h"
#include "amber/log.h"
#include "amber/machine.h"
#include "amber/pci.h"

#define PCI_STATUS_W1C_HI   0xf9	/* parity, SERR, aborts (status bits 15..11, 8) */
#define PCI_COMMAND_WMASK   (PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | \
			     0x0040 /* parity */ | 0x0100 /* SERR# */ | PCI_COMMAND_INTX_DISABLE)
#define PCI_CACHE_LINE_SIZE  0x0c
#define PCI_LATENCY_TIMER    0x0d
#define PCI_HEADER_MULTIFN   0x80
#define PCI_CAP_START        0x40

/* MSI-X capability (PCI 3.0 §6.8.2.3-6) */
#define MSIX_CTRL            2		/* message control, 16 bits */
#define  MSIX_CTRL_HI_ENABLE 0x80	/* bit 15 */
#define  MSIX_CTRL_HI_FMASK  0x40	/* bit 14: function mask */
#define MSIX_TABLE           4		/* table offset | BIR */
#define MSIX_PBA             8		/* PBA offset | BIR */
#define MSIX_CAP_LEN         12
#define MSIX_ENTRY_SIZE      16
#define MSIX_VEC_CTRL        3		/* dword index of vector control */
#define  MSIX_VEC_MASKED     0x1
#define MSIX_MAX_VECTORS     2048

/* Widest guest-physical address a BAR may be mapped at. */
#define PCI_MEM_ADDR_LIMIT   (1ULL << 52)

struct pci_bus {
	struct machine *m;
	pthread_mutex_t lock;		/* recursive: config transactions */
	pthread_mutex_t state_lock;	/* leaf: cfg bytes, INTx, MSI-X */
	struct pci_dev *devs[PCI_MAX_DEVFN];
	uint8_t reset_cfg[PCI_MAX_DEVFN][PCI_CFG_SPACE_SIZE];
	bool intx_out[PCI_MAX_DEVFN];	/* device currently drives its INTx GSI */
	unsigned intx_count[4];		/* drivers per GSI 16..19 (wired-OR) */
	uint64_t io_next, mmio_next;	/* assignment cursors */
};

/* ---- small helpers ----------------------------------------------------- */

static void pci_intx_update_locked(struct pci_dev *d);

static uint32_t cfg_get32(const uint8_t *c, unsigned off)
{
	return c[off] | c[off + 1] << 8 | c[off + 2] << 16 | (uint32_t)c[off + 3] << 24;
}

static void cfg_set32(uint8_t *c, unsigned off, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		c[off + i] = v >> (8 * i);
}

static uint16_t cfg_get16(const uint8_t *c, unsigned off)
{
	return c[off] | c[off + 1] << 8;
}

static void cfg_set16(uint8_t *c, unsigned off, uint16_t v)
{
	c[off] = v;
	c[off + 1] = v >> 8;
}

static bool ranges_overlap(unsigned a, unsigned alen, unsigned b, unsigned blen)
{
	return a < b + blen && b < a + alen;
}

static void state_lock(const struct pci_dev *d)
{
	if (d->bus)
		pthread_mutex_lock(&d->bus->state_lock);
}

static void state_unlock(const struct pci_dev *d)
{
	if (d->bus)
		pthread_mutex_unlock(&d->bus->state_lock);
}

static bool is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

/* ---- bus --------------------------------------------------------------- */

struct pci_bus *pci_bus_new(struct machine *m)
{
	struct pci_bus *bus = calloc(1, sizeof(*bus));
	pthread_mutexattr_t attr;

	if (!bus)
		return NULL;
	bus->m = m;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&bus->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	pthread_mutex_init(&bus->state_lock, NULL);
	bus->io_next = PCI_IO_WINDOW_BASE;
	bus->mmio_next = PCI_MMIO32_BASE;
	return bus;
}

void pci_bus_free(struct pci_bus *bus)
{
	if (!bus)
		return;
	/* Detach what is left so a later pci_bus_remove is a harmless no-op. */
	for (unsigned i = 0; i < PCI_MAX_DEVFN; i++)
		if (bus->devs[i])
			pci_bus_remove(bus, bus->devs[i]);
	pthread_mutex_destroy(&bus->lock);
	pthread_mutex_destroy(&bus->state_lock);
	free(bus);
}

struct pci_dev *pci_bus_get(struct pci_bus *bus, unsigned devfn)
{
	return bus && devfn < PCI_MAX_DEVFN ? bus->devs[devfn] : NULL;
}

/* ---- header ------------------------------------------------------------ */

void pci_dev_init(struct pci_dev *d, const char *name, uint16_t vendor, uint16_t device,
		  uint32_t class_code, uint8_t revision)
{
	const struct pci_dev_ops *ops = d->ops;
	void *opaque = d->opaque;

	memset(d, 0, sizeof(*d));
	d->ops = ops;
	d->opaque = opaque;
	d->name = name;
	d->devfn = -1;
	d->msix.bar = -1;
	d->next_cap = PCI_CAP_START;

	cfg_set16(d->cfg, PCI_VENDOR_ID, vendor);
	cfg_set16(d->cfg, PCI_DEVICE_ID, device);
	d->cfg[PCI_REVISION_ID] = revision;
	d->cfg[PCI_CLASS_PROG] = class_code & 0xff;
	cfg_set16(d->cfg, PCI_CLASS_DEVICE, class_code >> 8);
	d->cfg[PCI_HEADER_TYPE] = 0;
	d->cfg[PCI_INTERRUPT_PIN] = 1;	/* INTA#; a device without INTx sets 0 */

	cfg_set16(d->wmask, PCI_COMMAND, PCI_COMMAND_WMASK);
	d->w1cmask[PCI_STATUS + 1] = PCI_STATUS_W1C_HI;
	d->wmask[PCI_CACHE_LINE_SIZE] = 0xff;
	d->wmask[PCI_LATENCY_TIMER] = 0xff;
	d->wmask[PCI_INTERRUPT_LINE] = 0xff;
}

int pci_dev_set_bar(struct pci_dev *d, int bar, uint64_t size, unsigned flags,
		    const struct bus_ops *ops, void *opaque)
{
	bool io = flags & PCI_BAR_IO, mem64 = !io && (flags & PCI_BAR_MEM64);
	unsigned off = PCI_BAR0 + 4 * bar;
	uint64_t mask = ~(size - 1);
	uint32_t type;

	if (bar < 0 || bar >= PCI_NUM_BARS || (mem64 && bar == PCI_NUM_BARS - 1) || !ops ||
	    !is_pow2(size) || size < (io ? 4 : 16) || (io && size > 0x10000) ||
	    (!mem64 && !io && size > (1ULL << 31))) {
		log_error("pci", "%s: BAR%d: invalid size %#" PRIx64 " or flags %#x",
			  d->name, bar, size, flags);
		return -EINVAL;
	}
	if (d->bus || d->bars[bar].size || (bar > 0 && (d->bars[bar - 1].flags & PCI_BAR_MEM64) &&
					   d->bars[bar - 1].size) ||
	    (mem64 && d->bars[bar + 1].size)) {
		log_error("pci", "%s: BAR%d: already declared, or the device is on the bus",
			  d->name, bar);
		return -EBUSY;
	}
	d->bars[bar] = (struct pci_bar){ .size = size, .flags = flags, .ops = ops, .opaque = opaque };
	if (io) {
		type = 0x1;
		cfg_set32(d->wmask, off, (uint32_t)mask & ~0x3u);
	} else {
		/* PCI 3.0 §6.2.5.1: bits 2:1 type (10b = 64-bit), bit 3 prefetchable */
		type = (mem64 ? 0x4 : 0) | (flags & PCI_BAR_PREFETCH ? 0x8 : 0);
		cfg_set32(d->wmask, off, (uint32_t)mask & ~0xfu);
		if (mem64)
			cfg_set32(d->wmask, off + 4, mask >> 32);
	}
	cfg_set32(d->cfg, off, type);
	if (mem64)
		cfg_set32(d->cfg, off + 4, 0);
	return 0;
}

/* Address the BAR currently holds in config space. */
static uint64_t bar_cfg_addr(const struct pci_dev *d, int i)
{
	const struct pci_bar *b = &d->bars[i];
	uint32_t lo = cfg_get32(d->cfg, PCI_BAR0 + 4 * i);

	if (b->flags & PCI_BAR_IO)
		return lo & ~0x3u;
	if (b->flags & PCI_BAR_MEM64)
		return (lo & ~0xfull) | (uint64_t)cfg_get32(d->cfg, PCI_BAR0 + 4 * i + 4) << 32;
	return lo & ~0xfu;
}

/*
 * Whether the BAR may be on the bus at addr: decode enabled and an address
 * that is not 0, not the all-ones pattern left by sizing, and not wrapping
 * (QEMU's pci_bar_address() applies the same rules).
 */
static bool bar_addr_valid(const struct pci_dev *d, int i, uint64_t addr)
{
	const struct pci_bar *b = &d->bars[i];
	uint16_t cmd = cfg_get16(d->cfg, PCI_COMMAND);
	uint64_t last = addr + b->size - 1;

	if (addr == 0 || last < addr)
		return false;
	if (b->flags & PCI_BAR_IO)
		return (cmd & PCI_COMMAND_IO) && last <= 0xffff;
	if (!(cmd & PCI_COMMAND_MEMORY))
		return false;
	if (last >= PCI_MEM_ADDR_LIMIT)
		return false;
	return addr > 0xffffffffull || last < 0xffffffffull;
}

/* Bring the bus mappings in line with COMMAND and the BAR registers. */
static void pci_update_mappings(struct pci_dev *d)
{
	struct machine *m = d->bus->m;

	for (int i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &d->bars[i];
		struct bus *bus = b->flags & PCI_BAR_IO ? &m->pio : &m->mmio;
		uint64_t addr;
		bool valid;

		if (!b->size)
			continue;
		addr = bar_cfg_addr(d, i);
		valid = bar_addr_valid(d, i, addr);
		if (b->mapped && (!valid || addr != b->addr)) {
			bus_unregister(bus, b->addr, b->opaque);
			b->mapped = false;
		}
		b->addr = addr;
		if (valid && !b->mapped) {
			int r = bus_register(bus, addr, b->size, b->ops, b->opaque, d->name);

			if (r < 0)
				log_warn("pci", "%s: BAR%d at %#" PRIx64 " (size %#" PRIx64
					 ") not mapped: %s", d->name, i, addr, b->size,
					 r == -EEXIST ? "overlaps another region" : strerror(-r));
			else
				b->mapped = true;
		}
	}
}

static void pci_unmap_all(struct pci_dev *d)
{
	struct machine *m = d->bus->m;

	for (int i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &d->bars[i];

		if (b->mapped) {
			bus_unregister(b->flags & PCI_BAR_IO ? &m->pio : &m->mmio, b->addr, b->opaque);
			b->mapped = false;
		}
	}
}

/* Place every declared BAR in its window, naturally aligned. */
static int pci_assign_bars(struct pci_bus *bus, struct pci_dev *d)
{
	uint64_t io = bus->io_next, mmio = bus->mmio_next;

	for (int i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &d->bars[i];
		unsigned off = PCI_BAR0 + 4 * i;
		uint64_t *next = b->flags & PCI_BAR_IO ? &io : &mmio;
		uint64_t end = b->flags & PCI_BAR_IO ? PCI_IO_WINDOW_END : PCI_MMIO32_END;
		uint64_t addr;

		if (!b->size)
			continue;
		addr = (*next + b->size - 1) & ~(b->size - 1);
		if (addr + b->size - 1 > end || addr + b->size - 1 < addr) {
			log_error("pci", "%s: no room for BAR%d (%#" PRIx64 " bytes) in the %s window",
				  d->name, i, b->size, b->flags & PCI_BAR_IO ? "I/O" : "32-bit MMIO");
			return -ENOSPC;
		}
		*next = addr + b->size;
		b->addr = addr;
		cfg_set32(d->cfg, off, (cfg_get32(d->cfg, off) & (b->flags & PCI_BAR_IO ? 0x3 : 0xf)) |
			  (uint32_t)addr);
		if (b->flags & PCI_BAR_MEM64)
			cfg_set32(d->cfg, off + 4, addr >> 32);
	}
	bus->io_next = io;
	bus->mmio_next = mmio;
	return 0;
}

int pci_bus_add(struct pci_bus *bus, struct pci_dev *d, int devfn)
{
	struct pci_dev *fn0;
	int ret = 0;

	if (!bus || d->bus)
		return -EINVAL;
	pthread_mutex_lock(&bus->lock);
	if (devfn < 0) {
		for (unsigned s = 0; s < PCI_MAX_SLOTS && devfn < 0; s++) {
			bool used = false;

			for (unsigned f = 0; f < 8; f++)
				used |= bus->devs[PCI_DEVFN(s, f)] != NULL;
			if (!used)
				devfn = PCI_DEVFN(s, 0);
		}
		if (devfn < 0) {
			log_error("pci", "%s: no free slot on bus 0", d->name);
			ret = -ENOSPC;
			goto out;
		}
	}
	if (devfn >= PCI_MAX_DEVFN) {
		ret = -EINVAL;
		goto out;
	}
	if (bus->devs[devfn]) {
		log_error("pci", "%s: %02x.%x is taken by %s", d->name, devfn >> 3, devfn & 7,
			  bus->devs[devfn]->name);
		ret = -EEXIST;
		goto out;
	}
	fn0 = bus->devs[devfn & ~7];
	if ((devfn & 7) && !fn0) {
		/* Linux scans functions 1-7 only when function 0 says multi-function. */
		log_error("pci", "%s: %02x.%x: function 0 of the slot must be added first",
			  d->name, devfn >> 3, devfn & 7);
		ret = -EINVAL;
		goto out;
	}
	ret = pci_assign_bars(bus, d);
	if (ret < 0)
		goto out;
	if (devfn & 7) {
		fn0->cfg[PCI_HEADER_TYPE] |= PCI_HEADER_MULTIFN;
		bus->reset_cfg[devfn & ~7][PCI_HEADER_TYPE] |= PCI_HEADER_MULTIFN;
		d->cfg[PCI_HEADER_TYPE] |= PCI_HEADER_MULTIFN;
	}
	/* Firmware rewrites it; a guest without firmware finds the GSI here. */
	if (d->cfg[PCI_INTERRUPT_PIN])
		d->cfg[PCI_INTERRUPT_LINE] = PCI_INTX_GSI(devfn >> 3, d->cfg[PCI_INTERRUPT_PIN] - 1);
	d->devfn = devfn;
	d->bus = bus;
	bus->devs[devfn] = d;
	bus->intx_out[devfn] = false;
	memcpy(bus->reset_cfg[devfn], d->cfg, PCI_CFG_SPACE_SIZE);
	pthread_mutex_lock(&bus->state_lock);
	pci_intx_update_locked(d);	/* a level set before the device was added */
	pthread_mutex_unlock(&bus->state_lock);
	pci_update_mappings(d);
out:
	pthread_mutex_unlock(&bus->lock);
	return ret;
}

/* ---- INTx -------------------------------------------------------------- */

/*
 * Drive the GSI from the device's level, unless INTX_DISABLE is set or MSI-X
 * is enabled (PCI 3.0 §6.8.2: a function using MSI-X must not use INTx#).
 * Several devices share each GSI; the line is their wired-OR. state_lock held.
 */
static void pci_intx_update_locked(struct pci_dev *d)
{
	struct pci_bus *bus = d->bus;
	uint8_t pin = d->cfg[PCI_INTERRUPT_PIN];
	bool out;
	unsigned gsi;

	if (d->intx_level)
		d->cfg[PCI_STATUS] |= PCI_STATUS_INTERRUPT;
	else
		d->cfg[PCI_STATUS] &= ~PCI_STATUS_INTERRUPT;
	if (!bus || pin < 1 || pin > 4)
		return;
	out = d->intx_level && !(cfg_get16(d->cfg, PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE) &&
	      !pci_msix_enabled(d);
	if (out == bus->intx_out[d->devfn])
		return;
	bus->intx_out[d->devfn] = out;
	gsi = PCI_INTX_GSI(d->devfn >> 3, pin - 1);
	if (out) {
		if (bus->intx_count[gsi - PCI_INTX_GSI_BASE]++ == 0)
			irq_set_line(bus->m->irq, gsi, 1);
	} else {
		if (--bus->intx_count[gsi - PCI_INTX_GSI_BASE] == 0)
			irq_set_line(bus->m->irq, gsi, 0);
	}
}

void pci_set_intx(struct pci_dev *d, int level)
{
	state_lock(d);
	d->intx_level = !!level;
	pci_intx_update_locked(d);
	state_unlock(d);
}

/* ---- MSI-X ------------------------------------------------------------- */

bool pci_msix_enabled(const struct pci_dev *d)
{
	return d->msix.nvec && (d->cfg[d->msix.cap + MSIX_CTRL + 1] & MSIX_CTRL_HI_ENABLE);
}

static bool msix_fmasked(const struct pci_dev *d)
{
	return d->cfg[d->msix.cap + MSIX_CTRL + 1] & MSIX_CTRL_HI_FMASK;
}

static bool msix_vec_masked(const struct pci_dev *d, unsigned v)
{
	return msix_fmasked(d) || (d->msix.table[v][MSIX_VEC_CTRL] & MSIX_VEC_MASKED);
}

static bool msix_pending(const struct pci_dev *d, unsigned v)
{
	return d->msix.pba[v / 64] & (1ULL << (v % 64));
}

static void msix_send_locked(struct pci_dev *d, unsigned v)
{
	uint64_t addr = d->msix.table[v][0] | (uint64_t)d->msix.table[v][1] << 32;

	d->msix.pba[v / 64] &= ~(1ULL << (v % 64));
	if (d->bus)
		irq_send_msi(d->bus->m->irq, addr, d->msix.table[v][2]);
}

/* Deliver pending vectors that are no longer masked (PCI 3.0 §6.8.2.9). */
static void msix_flush_pending_locked(struct pci_dev *d)
{
	if (!pci_msix_enabled(d) || msix_fmasked(d))
		return;
	for (unsigned v = 0; v < d->msix.nvec; v++)
		if (msix_pending(d, v) && !msix_vec_masked(d, v))
			msix_send_locked(d, v);
}

static uint64_t msix_bar_read(void *opaque, uint64_t off, unsigned size)
{
	return pci_msix_read(opaque, off, size);
}

static void msix_bar_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	pci_msix_write(opaque, off, val, size);
}

static const struct bus_ops msix_bar_ops = { .read = msix_bar_read, .write = msix_bar_write };

int pci_msix_init(struct pci_dev *d, unsigned nvec, int bar)
{
	uint32_t table_len = nvec * MSIX_ENTRY_SIZE, pba_len = (nvec + 63) / 64 * 8;
	uint64_t need = table_len + pba_len;
	uint8_t cap;
	int ret;

	if (nvec < 1 || nvec > MSIX_MAX_VECTORS || bar < 0 || bar >= PCI_NUM_BARS ||
	    d->msix.nvec || d->bus) {
		log_error("pci", "%s: MSI-X: bad vector count %u or BAR%d, or already set up",
			  d->name, nvec, bar);
		return -EINVAL;
	}
	if (!d->bars[bar].size) {
		uint64_t size = 4096;

		while (size < need)
			size <<= 1;
		ret = pci_dev_set_bar(d, bar, size, 0, &msix_bar_ops, d);
		if (ret < 0)
			return ret;
	} else if ((d->bars[bar].flags & PCI_BAR_IO) || d->bars[bar].size < need) {
		log_error("pci", "%s: MSI-X needs %#" PRIx64 " bytes of memory BAR%d", d->name,
			  need, bar);
		return -EINVAL;
	}
	d->msix.table = calloc(nvec, sizeof(*d->msix.table));
	d->msix.pba = calloc(pba_len / 8, sizeof(uint64_t));
	cap = pci_add_cap(d, PCI_CAP_ID_MSIX, MSIX_CAP_LEN);
	if (!d->msix.table || !d->msix.pba || !cap) {
		ret = d->msix.table && d->msix.pba ? -ENOSPC : -ENOMEM;
		goto fail;
	}
	for (unsigned v = 0; v < nvec; v++)
		d->msix.table[v][MSIX_VEC_CTRL] = MSIX_VEC_MASKED;	/* §6.8.2.9: reset masked */
	d->msix.nvec = nvec;
	d->msix.bar = bar;
	d->msix.table_off = 0;
	d->msix.pba_off = table_len;
	d->msix.cap = cap;
	cfg_set16(d->cfg, cap + MSIX_CTRL, nvec - 1);
	d->wmask[cap + MSIX_CTRL + 1] = MSIX_CTRL_HI_ENABLE | MSIX_CTRL_HI_FMASK;
	cfg_set32(d->cfg, cap + MSIX_TABLE, d->msix.table_off | bar);
	cfg_set32(d->cfg, cap + MSIX_PBA, d->msix.pba_off | bar);
	return 0;
fail:
	free(d->msix.table);
	free(d->msix.pba);
	d->msix.table = NULL;
	d->msix.pba = NULL;
	return ret;
}

void pci_msix_uninit(struct pci_dev *d)
{
	free(d->msix.table);
	free(d->msix.pba);
	d->msix.table = NULL;
	d->msix.pba = NULL;
	d->msix.nvec = 0;
}

void pci_msix_notify(struct pci_dev *d, unsigned vec)
{
	state_lock(d);
	if (vec >= d->msix.nvec) {
		log_warn("pci", "%s: MSI-X vector %u of %u", d->name, vec, d->msix.nvec);
		goto out;
	}
	if (!pci_msix_enabled(d))
		goto out;
	if (msix_vec_masked(d, vec))
		d->msix.pba[vec / 64] |= 1ULL << (vec % 64);
	else
		msix_send_locked(d, vec);
out:
	state_unlock(d);
}

/* Byte b of the table/PBA view at BAR offset off, or -1 outside both. */
static int msix_byte(const struct pci_dev *d, uint64_t off)
{
	const struct pci_msix *x = &d->msix;
	uint64_t t = off - x->table_off, p = off - x->pba_off;

	if (off >= x->table_off && t < (uint64_t)x->nvec * MSIX_ENTRY_SIZE)
		return (x->table[t / 16][(t % 16) / 4] >> (8 * (t % 4))) & 0xff;
	if (off >= x->pba_off && p < (x->nvec + 63) / 64 * 8ull)
		return (x->pba[p / 8] >> (8 * (p % 8))) & 0xff;
	return -1;
}

uint64_t pci_msix_read(struct pci_dev *d, uint64_t off, unsigned size)
{
	uint64_t v = 0;

	if (!d->msix.nvec || size > 8)
		return 0;
	state_lock(d);
	for (unsigned i = 0; i < size; i++) {
		int b = msix_byte(d, off + i);

		v |= (uint64_t)(b < 0 ? 0 : b) << (8 * i);
	}
	state_unlock(d);
	return v;
}

void pci_msix_write(struct pci_dev *d, uint64_t off, uint64_t val, unsigned size)
{
	struct pci_msix *x = &d->msix;
	bool changed = false;

	if (!x->nvec || size > 8)
		return;
	state_lock(d);
	/* Table entries are written byte by byte; the PBA is read-only (§6.8.2.7). */
	for (unsigned i = 0; i < size; i++) {
		uint64_t t = off + i - x->table_off;
		unsigned v, w, sh;
		uint32_t old;

		if (off + i < x->table_off || t >= (uint64_t)x->nvec * MSIX_ENTRY_SIZE)
			continue;
		v = t / 16;
		w = (t % 16) / 4;
		sh = 8 * (t % 4);
		old = x->table[v][w];
		x->table[v][w] = (old & ~(0xffu << sh)) | (uint32_t)((val >> (8 * i)) & 0xff) << sh;
		if (w == MSIX_VEC_CTRL)
			x->table[v][w] &= MSIX_VEC_MASKED;	/* other bits reserved */
		/* Mask changes, and address/data changes of a live vector, matter to irqfds. */
		if (x->table[v][w] != old &&
		    (w == MSIX_VEC_CTRL || !(x->table[v][MSIX_VEC_CTRL] & MSIX_VEC_MASKED)))
			changed = true;
	}
	msix_flush_pending_locked(d);
	state_unlock(d);
	if (changed && d->ops && d->ops->msix_changed)
		d->ops->msix_changed(d);
}

/* ---- capabilities ------------------------------------------------------ */

uint8_t pci_add_cap(struct pci_dev *d, uint8_t id, uint8_t len)
{
	unsigned off = (d->next_cap + 3) & ~3u, last;

	if (off < PCI_CAP_START)
		off = PCI_CAP_START;
	if (len < 2 || off + len > PCI_CFG_SPACE_SIZE) {
		log_error("pci", "%s: no room for capability %#x (%u bytes)", d->name, id, len);
		return 0;
	}
	d->cfg[off] = id;
	d->cfg[off + 1] = 0;
	if (!d->cfg[PCI_CAPABILITY_LIST]) {
		d->cfg[PCI_CAPABILITY_LIST] = off;
	} else {
		last = d->cfg[PCI_CAPABILITY_LIST];
		for (int n = 0; d->cfg[last + 1] && n < 64; n++)
			last = d->cfg[last + 1];
		d->cfg[last + 1] = off;
	}
	d->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	d->next_cap = off + len;
	return off;
}

/* ---- config access ----------------------------------------------------- */

static bool cfg_access_ok(unsigned off, unsigned size)
{
	return (size == 1 || size == 2 || size == 4) && off + size <= PCI_CFG_SPACE_SIZE;
}

uint32_t pci_bus_config_read(struct pci_bus *bus, unsigned devfn, unsigned off, unsigned size)
{
	struct pci_dev *d = pci_bus_get(bus, devfn);
	uint32_t v = 0;

	if (!d || !cfg_access_ok(off, size))
		return size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
	pthread_mutex_lock(&bus->state_lock);
	for (unsigned i = 0; i < size; i++)
		v |= (uint32_t)d->cfg[off + i] << (8 * i);
	pthread_mutex_unlock(&bus->state_lock);
	return v;
}

void pci_bus_config_write(struct pci_bus *bus, unsigned devfn, unsigned off, uint32_t val,
			  unsigned size)
{
	struct pci_dev *d;
	bool msix_changed = false;
	uint8_t old_ctrl_hi;

	if (!bus || !cfg_access_ok(off, size))
		return;
	pthread_mutex_lock(&bus->lock);
	d = pci_bus_get(bus, devfn);
	if (!d)
		goto out;

	pthread_mutex_lock(&bus->state_lock);
	old_ctrl_hi = d->msix.nvec ? d->cfg[d->msix.cap + MSIX_CTRL + 1] : 0;
	for (unsigned i = 0; i < size; i++) {
		unsigned o = off + i;
		uint8_t b = val >> (8 * i), wm = d->wmask[o], w1c = d->w1cmask[o];

		/* Bytes with no writable bit are left alone: devices update some
		 * read-only bits (STATUS.INTERRUPT) under state_lock only. */
		if (!wm && !w1c)
			continue;
		d->cfg[o] = ((d->cfg[o] & ~wm) | (b & wm)) & ~(b & w1c);
	}
	/* Enable or function mask changed: unmasked pending vectors go out now
	 * (PCI 3.0 §6.8.2.3), and INTx stops while MSI-X is enabled. */
	if (d->msix.nvec && d->cfg[d->msix.cap + MSIX_CTRL + 1] != old_ctrl_hi) {
		msix_changed = true;
		msix_flush_pending_locked(d);
	}
	if (msix_changed || ranges_overlap(off, size, PCI_COMMAND, 2))
		pci_intx_update_locked(d);
	pthread_mutex_unlock(&bus->state_lock);

	if (ranges_overlap(off, size, PCI_COMMAND, 1) ||
	    ranges_overlap(off, size, PCI_BAR0, 4 * PCI_NUM_BARS))
		pci_update_mappings(d);
	if (msix_changed && d->ops && d->ops->msix_changed)
		d->ops->msix_changed(d);
	if (d->ops && d->ops->config_write)
		d->ops->config_write(d, off, val, size);
out:
	pthread_mutex_unlock(&bus->lock);
}

/* ---- removal and reset ------------------------------------------------- */

void pci_bus_remove(struct pci_bus *bus, struct pci_dev *d)
{
	bus = d->bus;
	if (!bus) {
		pci_msix_uninit(d);
		return;
	}
	pthread_mutex_lock(&bus->lock);
	pci_unmap_all(d);
	pthread_mutex_lock(&bus->state_lock);
	d->intx_level = 0;
	pci_intx_update_locked(d);
	pthread_mutex_unlock(&bus->state_lock);
	bus->devs[d->devfn] = NULL;
	d->bus = NULL;
	d->devfn = -1;
	pthread_mutex_unlock(&bus->lock);
	pci_msix_uninit(d);
}

void pci_dev_reset(struct pci_dev *d)
{
	struct pci_bus *bus = d->bus;

	if (!bus)
		return;
	pthread_mutex_lock(&bus->lock);
	pci_unmap_all(d);
	pthread_mutex_lock(&bus->state_lock);
	memcpy(d->cfg, bus->reset_cfg[d->devfn], PCI_CFG_SPACE_SIZE);
	for (unsigned v = 0; v < d->msix.nvec; v++) {
		memset(d->msix.table[v], 0, sizeof(d->msix.table[v]));
		d->msix.table[v][MSIX_VEC_CTRL] = MSIX_VEC_MASKED;
	}
	if (d->msix.nvec)
		memset(d->msix.pba, 0, (d->msix.nvec + 63) / 64 * 8);
	d->intx_level = 0;
	pci_intx_update_locked(d);
	pthread_mutex_unlock(&bus->state_lock);
	pci_update_mappings(d);
	pthread_mutex_unlock(&bus->lock);
	if (d->msix.nvec && d->ops && d->ops->msix_changed)
		d->ops->msix_changed(d);
}

/* ---- state ------------------------------------------------------------- */

static json_t *json_u64(uint64_t v)
{
	char buf[24];

	if (v <= (1ULL << 53))
		return json_integer((json_int_t)v);
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return json_string(buf);
}

/*
 * Section layout:
 *   "config":     256 bytes as 512 hex digits (the whole type-0 config space)
 *   "bars":       6 addresses as the BAR registers hold them (0 for unused and
 *                 for the upper half of a 64-bit BAR), cross-checked with config
 *   "intx_level": 0 or 1, the device's INTA# output
 *   "msix":       only for MSI-X devices: "table" [[addr_lo, addr_hi, data,
 *                 vector_control] per vector], "pending" [vector numbers]
 */

static void hex_encode(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* Decode exactly n bytes; -1 on a bad digit or length. */
static int hex_decode(const char *s, uint8_t *out, size_t n)
{
	if (strlen(s) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int hi = hex_digit_value(s[2 * i]), lo = hex_digit_value(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = hi << 4 | lo;
	}
	return 0;
}

/* BAR addresses as config space holds them, from the type bits alone. */
static void cfg_bar_addrs(const uint8_t *cfg, uint64_t addrs[PCI_NUM_BARS])
{
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		uint32_t lo = cfg_get32(cfg, PCI_BAR0 + 4 * i);

		addrs[i] = 0;
		if (lo & 1) {
			addrs[i] = lo & ~0x3u;
		} else if (((lo >> 1) & 3) == 2 && i + 1 < PCI_NUM_BARS) {
			addrs[i] = (lo & ~0xfull) | (uint64_t)cfg_get32(cfg, PCI_BAR0 + 4 * i + 4) << 32;
			addrs[++i] = 0;
		} else {
			addrs[i] = lo & ~0xfu;
		}
	}
}

int pci_dev_save(const struct pci_dev *d, json_t *obj)
{
	char hex[2 * PCI_CFG_SPACE_SIZE + 1];
	uint64_t addrs[PCI_NUM_BARS];
	json_t *bars = NULL, *msix = NULL, *table = NULL, *pending = NULL;
	int ret = -ENOMEM;

	state_lock(d);
	hex_encode(d->cfg, PCI_CFG_SPACE_SIZE, hex);
	cfg_bar_addrs(d->cfg, addrs);
	bars = json_array();
	if (!bars)
		goto out;
	for (int i = 0; i < PCI_NUM_BARS; i++)
		if (json_array_append_new(bars, json_u64(addrs[i])))
			goto out;
	if (json_object_set_new(obj, "config", json_string(hex)) ||
	    json_object_set(obj, "bars", bars) ||
	    json_object_set_new(obj, "intx_level", json_integer(d->intx_level ? 1 : 0)))
		goto out;
	if (d->msix.nvec) {
		msix = json_object();
		table = json_array();
		pending = json_array();
		if (!msix || !table || !pending)
			goto out;
		for (unsigned v = 0; v < d->msix.nvec; v++) {
			json_t *e = json_pack("[IIII]", (json_int_t)d->msix.table[v][0],
					      (json_int_t)d->msix.table[v][1],
					      (json_int_t)d->msix.table[v][2],
					      (json_int_t)d->msix.table[v][3]);

			if (!e || json_array_append_new(table, e))
				goto out;
			if (msix_pending(d, v) && json_array_append_new(pending, json_integer(v)))
				goto out;
		}
		if (json_object_set(msix, "table", table) ||
		    json_object_set(msix, "pending", pending) ||
		    json_object_set(obj, "msix", msix))
			goto out;
	}
	ret = 0;
out:
	state_unlock(d);
	json_decref(bars);
	json_decref(msix);
	json_decref(table);
	json_decref(pending);
	return ret;
}

/* Unsigned integer up to max; above 2^53 also as a decimal string, the
 * convention of the state format (src/snapshot/fields.c). */
static bool json_uint_max(const json_t *v, uint64_t max, uint64_t *out)
{
	uint64_t x = 0;

	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return false;
		x = (uint64_t)json_integer_value(v);
	} else if (json_is_string(v)) {
		const char *p = json_string_value(v);

		if (!*p || strlen(p) > 20)
			return false;
		for (; *p; p++) {
			if (*p < '0' || *p > '9' || x > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
				return false;
			x = x * 10 + (uint64_t)(*p - '0');
		}
	} else {
		return false;
	}
	if (x > max)
		return false;
	if (out)
		*out = x;
	return true;
}

int pci_dev_check(const json_t *obj, char *err, size_t errlen)
{
	const json_t *cfg_j = json_object_get(obj, "config");
	const json_t *bars = json_object_get(obj, "bars");
	const json_t *intx = json_object_get(obj, "intx_level");
	const json_t *msix = json_object_get(obj, "msix");
	uint8_t cfg[PCI_CFG_SPACE_SIZE];
	uint64_t addrs[PCI_NUM_BARS], a;

	if (!json_is_object(obj)) {
		snprintf(err, errlen, "PCI state is not an object");
		return -EINVAL;
	}
	if (!json_is_string(cfg_j) ||
	    hex_decode(json_string_value(cfg_j), cfg, PCI_CFG_SPACE_SIZE) < 0) {
		snprintf(err, errlen, "field \"config\": expected %d hex digits (%d bytes)",
			 2 * PCI_CFG_SPACE_SIZE, PCI_CFG_SPACE_SIZE);
		return -EINVAL;
	}
	if (!json_is_array(bars) || json_array_size(bars) != PCI_NUM_BARS) {
		snprintf(err, errlen, "field \"bars\": expected an array of %d addresses",
			 PCI_NUM_BARS);
		return -EINVAL;
	}
	cfg_bar_addrs(cfg, addrs);
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		if (!json_uint_max(json_array_get(bars, i), UINT64_MAX, &a)) {
			snprintf(err, errlen, "field \"bars[%d]\": not an address", i);
			return -EINVAL;
		}
		if (a != addrs[i]) {
			snprintf(err, errlen, "field \"bars[%d]\" = %#" PRIx64
				 " does not match config space (%#" PRIx64 ")", i, a, addrs[i]);
			return -EINVAL;
		}
	}
	if (!json_uint_max(intx, 1, NULL)) {
		snprintf(err, errlen, "field \"intx_level\": expected 0 or 1");
		return -EINVAL;
	}
	if (msix) {
		const json_t *table = json_object_get(msix, "table");
		const json_t *pending = json_object_get(msix, "pending");
		size_t n, i;
		const json_t *e;

		if (!json_is_array(table) || json_array_size(table) < 1 ||
		    json_array_size(table) > MSIX_MAX_VECTORS) {
			snprintf(err, errlen, "field \"msix.table\": expected 1 to %d vectors",
				 MSIX_MAX_VECTORS);
			return -EINVAL;
		}
		n = json_array_size(table);
		json_array_foreach(table, i, e) {
			if (!json_is_array(e) || json_array_size(e) != 4) {
				snprintf(err, errlen, "field \"msix.table[%zu]\": expected "
					 "[addr_lo, addr_hi, data, vector_control]", i);
				return -EINVAL;
			}
			for (size_t k = 0; k < 4; k++)
				if (!json_uint_max(json_array_get(e, k), UINT32_MAX, NULL)) {
					snprintf(err, errlen, "field \"msix.table[%zu][%zu]\": not a "
						 "32-bit value", i, k);
					return -EINVAL;
				}
		}
		if (!json_is_array(pending)) {
			snprintf(err, errlen, "field \"msix.pending\": expected an array");
			return -EINVAL;
		}
		json_array_foreach(pending, i, e) {
			if (!json_uint_max(e, n - 1, NULL)) {
				snprintf(err, errlen, "field \"msix.pending[%zu]\": not a vector "
					 "below %zu", i, n);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/*
 * Registers that say which device this is: a mismatch means the section of
 * another device. NULL, or the register that differs.
 */
static const char *cfg_identity_differs(const uint8_t *a, const uint8_t *b)
{
	if (memcmp(a, b, 4))
		return "vendor and device ID";
	if (memcmp(a + PCI_REVISION_ID, b + PCI_REVISION_ID, 4))
		return "revision and class code";
	if ((a[PCI_HEADER_TYPE] & 0x7f) != (b[PCI_HEADER_TYPE] & 0x7f))
		return "header type";
	if (a[PCI_CAPABILITY_LIST] != b[PCI_CAPABILITY_LIST])
		return "capabilities pointer";
	return NULL;
}

int pci_dev_match(const struct pci_dev *d, const json_t *obj, char *err, size_t errlen)
{
	const json_t *msix = json_object_get(obj, "msix");
	const json_t *table = msix ? json_object_get(msix, "table") : NULL;
	uint8_t cfg[PCI_CFG_SPACE_SIZE];
	const char *what;

	if (pci_dev_check(obj, err, errlen) < 0)
		return -EINVAL;
	hex_decode(json_string_value(json_object_get(obj, "config")), cfg, sizeof(cfg));
	what = cfg_identity_differs(cfg, d->cfg);
	if (what) {
		snprintf(err, errlen, "config: the saved %s (%04x:%04x rev %02x class %02x%02x%02x) "
			 "are not this device's (%04x:%04x rev %02x class %02x%02x%02x)",
			 what, cfg_get16(cfg, 0), cfg_get16(cfg, 2), cfg[PCI_REVISION_ID],
			 cfg[PCI_REVISION_ID + 3], cfg[PCI_REVISION_ID + 2], cfg[PCI_REVISION_ID + 1],
			 cfg_get16(d->cfg, 0), cfg_get16(d->cfg, 2), d->cfg[PCI_REVISION_ID],
			 d->cfg[PCI_REVISION_ID + 3], d->cfg[PCI_REVISION_ID + 2],
			 d->cfg[PCI_REVISION_ID + 1]);
		return -EINVAL;
	}
	if ((table ? json_array_size(table) : 0) != d->msix.nvec) {
		snprintf(err, errlen, "msix.table: %zu MSI-X vectors, the device has %u",
			 table ? json_array_size(table) : 0, d->msix.nvec);
		return -EINVAL;
	}
	return 0;
}

int pci_dev_load(struct pci_dev *d, const json_t *obj)
{
	struct pci_bus *bus = d->bus;
	uint8_t cfg[PCI_CFG_SPACE_SIZE];
	const json_t *msix = json_object_get(obj, "msix"), *table, *e;
	char err[200];
	size_t i;

	if (pci_dev_match(d, obj, err, sizeof(err)) < 0) {
		log_error("pci", "%s: %s", d->name, err);
		return -EINVAL;
	}
	hex_decode(json_string_value(json_object_get(obj, "config")), cfg, sizeof(cfg));
	table = msix ? json_object_get(msix, "table") : NULL;
	if (bus) {
		pthread_mutex_lock(&bus->lock);
		pci_unmap_all(d);
	}
	state_lock(d);
	memcpy(d->cfg, cfg, sizeof(cfg));
	if (d->msix.nvec) {
		json_array_foreach(table, i, e)
			for (size_t k = 0; k < 4; k++)
				d->msix.table[i][k] = json_integer_value(json_array_get(e, k));
		memset(d->msix.pba, 0, (d->msix.nvec + 63) / 64 * 8);
		json_array_foreach(json_object_get(msix, "pending"), i, e) {
			json_int_t v = json_integer_value(e);

			d->msix.pba[v / 64] |= 1ULL << (v % 64);
		}
	}
	d->intx_level = (int)json_integer_value(json_object_get(obj, "intx_level"));
	if (bus)
		pci_intx_update_locked(d);
	state_unlock(d);
	for (int b = 0; b < PCI_NUM_BARS; b++)
		if (d->bars[b].size)
			d->bars[b].addr = bar_cfg_addr(d, b);
	if (bus) {
		pci_update_mappings(d);
		pthread_mutex_unlock(&bus->lock);
	}
	if (d->msix.nvec && d->ops && d->ops->msix_changed)
		d->ops->msix_changed(d);
	return 0;
}
