/*
 * PCI: config space model, BARs, INTx, capabilities and MSI-X, shared by the
 * host bridge (src/hw/pci_host.c) and every PCI device.
 *
 * For direct kernel boot there is no firmware to assign BARs, so the bus
 * assigns them at pci_bus_add() time (like kvmtool/Firecracker) from the
 * windows below; firmware may move them later. A BAR is on the bus (mapped)
 * only while its COMMAND decode bit is set and its address is valid.
 */
#ifndef AMBER_PCI_H
#define AMBER_PCI_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

#include "amber/bus.h"

struct machine;

#define PCI_CFG_SPACE_SIZE   256
#define PCI_MAX_SLOTS        32
#define PCI_MAX_DEVFN        256		/* slot << 3 | function */
#define PCI_DEVFN(slot, fn)  (((slot) << 3) | (fn))
#define PCI_NUM_BARS         6

/* Windows the bus assigns from and that the DSDT _CRS describes. */
#define PCI_IO_WINDOW_BASE    0xc000
#define PCI_IO_WINDOW_END     0xffff		/* inclusive */
#define PCI_MMIO32_BASE       0xc0000000ULL
#define PCI_MMIO32_END        0xfebfffffULL	/* inclusive, below the IOAPIC */

/* INTx routing: slot s pin p (0 = INTA) -> GSI 16 + ((s + p) & 3), level,
 * active high at the IOAPIC (KVM's IOAPIC does not model polarity). */
#define PCI_INTX_GSI_BASE     16
#define PCI_INTX_GSI(slot, pin) (PCI_INTX_GSI_BASE + (((slot) + (pin)) & 3))

/* Standard config registers (PCI Local Bus 3.0 §6.1) */
#define PCI_VENDOR_ID        0x00
#define PCI_DEVICE_ID        0x02
#define PCI_COMMAND          0x04
#define  PCI_COMMAND_IO      0x1
#define  PCI_COMMAND_MEMORY  0x2
#define  PCI_COMMAND_MASTER  0x4
#define  PCI_COMMAND_INTX_DISABLE 0x400
#define PCI_STATUS           0x06
#define  PCI_STATUS_INTERRUPT 0x08
#define  PCI_STATUS_CAP_LIST 0x10
#define PCI_REVISION_ID      0x08
#define PCI_CLASS_PROG       0x09
#define PCI_CLASS_DEVICE     0x0a
#define PCI_HEADER_TYPE      0x0e
#define PCI_BAR0             0x10
#define PCI_SUBSYSTEM_VENDOR_ID 0x2c
#define PCI_SUBSYSTEM_ID     0x2e
#define PCI_CAPABILITY_LIST  0x34
#define PCI_INTERRUPT_LINE   0x3c
#define PCI_INTERRUPT_PIN    0x3d

#define PCI_CAP_ID_MSI       0x05
#define PCI_CAP_ID_MSIX      0x11
#define PCI_CAP_ID_EXP       0x10
#define PCI_CAP_ID_PM        0x01

/* BAR flags */
#define PCI_BAR_IO           0x1
#define PCI_BAR_MEM64        0x2
#define PCI_BAR_PREFETCH     0x4

struct pci_dev;

struct pci_bar {
	uint64_t size;			/* power of two, 0 = unused */
	unsigned flags;
	const struct bus_ops *ops;	/* offsets are relative to the BAR */
	void *opaque;
	uint64_t addr;			/* current address from config space */
	bool mapped;			/* registered on the pio/mmio bus */
};

struct pci_msix {
	unsigned nvec;
	int bar;			/* BAR holding table (offset 0) and PBA */
	uint32_t table_off, pba_off;
	uint8_t cap;			/* config offset of the capability */
	/* per vector: addr lo, addr hi, data, vector control (PCI 3.0 §6.8.2) */
	uint32_t (*table)[4];
	uint64_t *pba;
};

/*
 * Callbacks run on the thread doing the access (a vCPU, or the loader) with
 * no PCI lock held that pci_set_intx/pci_msix_notify need: they may call
 * those, and may hold the device's own lock when doing so.
 */
struct pci_dev_ops {
	/* Called after the generic code has applied a config write. */
	void (*config_write)(struct pci_dev *d, unsigned off, uint32_t val, unsigned size);
	/* MSI-X enable/mask changed, e.g. to (re)program irqfds. */
	void (*msix_changed)(struct pci_dev *d);
};

struct pci_dev {
	const char *name;
	int devfn;			/* slot << 3 | function on bus 0, -1 until added */
	uint8_t cfg[PCI_CFG_SPACE_SIZE];
	uint8_t wmask[PCI_CFG_SPACE_SIZE];	/* bits the guest may write */
	uint8_t w1cmask[PCI_CFG_SPACE_SIZE];	/* write-1-to-clear bits */
	struct pci_bar bars[PCI_NUM_BARS];
	const struct pci_dev_ops *ops;
	void *opaque;
	struct pci_bus *bus;
	int intx_level;
	struct pci_msix msix;
	uint8_t next_cap;		/* allocation pointer for capabilities */
};

struct pci_bus;

/* The host bridge creates the bus; devices add themselves to m->pci. */
struct pci_bus *pci_bus_new(struct machine *m);
void pci_bus_free(struct pci_bus *bus);
/* Config mechanism #1 / ECAM style access: bus 0 only. */
uint32_t pci_bus_config_read(struct pci_bus *bus, unsigned devfn, unsigned off, unsigned size);
void pci_bus_config_write(struct pci_bus *bus, unsigned devfn, unsigned off, uint32_t val, unsigned size);
struct pci_dev *pci_bus_get(struct pci_bus *bus, unsigned devfn);

/*
 * Fill the header (type 0), wmasks; class_code = base<<16 | sub<<8 | prog-if.
 * Clears everything else in *d except d->ops and d->opaque, so call it first.
 * INTERRUPT_PIN starts as 1 (INTA#); set cfg[PCI_INTERRUPT_PIN] = 0 for none.
 */
void pci_dev_init(struct pci_dev *d, const char *name, uint16_t vendor, uint16_t device,
		  uint32_t class_code, uint8_t revision);
/* Declare a BAR before pci_bus_add. size: power of two >= 16 (mem) / 4 (io). */
int pci_dev_set_bar(struct pci_dev *d, int bar, uint64_t size, unsigned flags,
		    const struct bus_ops *ops, void *opaque);
/*
 * Add at devfn (or function 0 of the first free slot if devfn < 0); assigns
 * BAR addresses from the windows. Multi-function: add function 0 first.
 */
int pci_bus_add(struct pci_bus *bus, struct pci_dev *d, int devfn);
/* Unmap the BARs, drop INTx, free MSI-X. After pci_bus_free only frees MSI-X. */
void pci_bus_remove(struct pci_bus *bus, struct pci_dev *d);
/*
 * Device reset (machine reset): config space back to its state at
 * pci_bus_add (COMMAND 0, BARs at their assigned addresses but unmapped),
 * MSI-X disabled with every vector masked and nothing pending, INTx low.
 */
void pci_dev_reset(struct pci_dev *d);
/* Append a capability of len bytes; returns its config offset or 0. */
uint8_t pci_add_cap(struct pci_dev *d, uint8_t id, uint8_t len);

/* INTx (pin A): level-triggered, honours COMMAND.INTX_DISABLE, STATUS.INTERRUPT. */
void pci_set_intx(struct pci_dev *d, int level);

/*
 * MSI-X with nvec vectors (1..2048), table at offset 0 of `bar` and PBA after
 * it (d->msix.pba_off). If `bar` is not declared yet it is declared here as a
 * 32-bit memory BAR whose accesses go to pci_msix_read/write; a BAR the
 * device declared itself must be large enough and forward to them.
 */
int pci_msix_init(struct pci_dev *d, unsigned nvec, int bar);
/* Free the table of a device that was never added (pci_bus_remove frees it). */
void pci_msix_uninit(struct pci_dev *d);
bool pci_msix_enabled(const struct pci_dev *d);
/*
 * Send vector vec (or set its pending bit if masked). Does nothing while
 * MSI-X is disabled: the device then uses pci_set_intx.
 */
void pci_msix_notify(struct pci_dev *d, unsigned vec);
/* The bus_ops a device forwards its MSI-X BAR accesses to. */
uint64_t pci_msix_read(struct pci_dev *d, uint64_t off, unsigned size);
void pci_msix_write(struct pci_dev *d, uint64_t off, uint64_t val, unsigned size);

/*
 * Config space, BAR addresses, MSI-X table/PBA as a state section:
 * {"config": 512 hex digits, "bars": [6 addresses], "intx_level": 0|1,
 *  "msix": {"table": [[addr_lo, addr_hi, data, ctrl], ...], "pending": [vec...]}}
 * pci_dev_check validates a section alone (err names the field); pci_dev_load
 * also refuses (-EINVAL, logged) a section of another device (IDs) or with
 * another MSI-X vector count, before changing anything.
 */
int pci_dev_save(const struct pci_dev *d, json_t *obj);
int pci_dev_check(const json_t *obj, char *err, size_t errlen);
/* Would pci_dev_load take this checked section? 0, or -EINVAL with err naming why. */
int pci_dev_match(const struct pci_dev *d, const json_t *obj, char *err, size_t errlen);
int pci_dev_load(struct pci_dev *d, const json_t *obj);

#endif
