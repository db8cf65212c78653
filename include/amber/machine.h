/*
 * What devices see of the machine: buses, guest memory, interrupts, the
 * event loop and the PCI bus. A real VM (struct vm, src/core/vm.c) embeds one;
 * unit tests build one around a plain buffer (tests/unit/harness.h).
 */
#ifndef AMBER_MACHINE_H
#define AMBER_MACHINE_H

#include <stdbool.h>

#include "amber/bus.h"
#include "amber/irq.h"
#include "amber/mem.h"

struct evloop;
struct pci_bus;
struct device;
struct vm;
struct kvm_irqfd_state;

/*
 * Fixed platform resources, QEMU-pc-like, so firmware and guests find
 * what they expect. ACPI tables and device models use these names.
 */
#define PORT_COM1          0x3f8
#define IRQ_COM1           4
#define PORT_COM2          0x2f8
#define IRQ_COM2           3
#define PORT_RTC           0x70		/* 0x70-0x71 */
#define IRQ_RTC            8
#define PORT_I8042_DATA    0x60
#define PORT_I8042_CMD     0x64
#define PORT_PCI_CONFIG    0xcf8	/* 0xcf8-0xcff, mechanism #1 */
#define PORT_RESET_CF9     0xcf9
#define PORT_ACPI_PM_BASE  0x600	/* PIIX4 PM default PMBA, like QEMU */
#define ACPI_PM_LEN        0x40
#define PORT_ACPI_GPE0     0xafe0	/* 4 bytes, like QEMU's PIIX4 */
#define IRQ_ACPI_SCI       9
#define PORT_FW_CFG        0x510	/* 0x510-0x511, DMA at 0x514-0x51b */
#define PORT_FW_CFG_DMA    0x514
#define PORT_DEBUGCON      0x402	/* firmware debug console: nothing else here */
#define MMIO_IOAPIC        0xfec00000ULL
#define MMIO_LAPIC         0xfee00000ULL
#define MMIO_HPET          0xfed00000ULL

struct machine {
	struct bus pio;
	struct bus mmio;
	struct guest_mem mem;
	struct irq_chip *irq;
	struct evloop *loop;		/* NULL in most unit tests */
	struct pci_bus *pci;		/* NULL until the PCI host is realized */
	struct device *devices;		/* creation order */
	struct vm *vm;			/* NULL in unit tests */
	int ncpus;
	/* Power events: the VM installs a handler; tests read last_event. */
	void (*on_event)(struct machine *m, int ev);
	int last_event;			/* -1 none, else enum machine_event */
	void (*powerbutton)(void *opaque);
	void *powerbutton_opaque;
	/*
	 * Optional (NULL in unit tests and without KVM support): from now on a
	 * guest write of len bytes to MMIO address addr, whatever its value,
	 * signals eventfd fd inside KVM instead of reaching the mmio bus
	 * (KVM_IOEVENTFD); assign false undoes it. Writes of another length
	 * still reach the bus. 0 or -errno. See amber/kvm_irqfd.h.
	 */
	int (*ioeventfd)(struct machine *m, uint64_t addr, unsigned len, int fd, bool assign);
	/*
	 * Optional (NULL in unit tests): with assign, a write to eventfd fd sends
	 * the MSI (addr, data) inside KVM (irqfd); binding a bound fd again
	 * changes its message; !assign unbinds it. 0 or -errno (the device keeps
	 * using irq_send_msi then).
	 */
	int (*msi_irqfd)(struct machine *m, int fd, uint64_t addr, uint32_t data, bool assign);
	struct kvm_irqfd_state *irqfd;	/* state of the hooks (kvm_irqfd.c) */
};

/* Request a guest-initiated power event (ACPI S5, reset via 0xcf9/i8042). */
enum machine_event { MACHINE_POWEROFF, MACHINE_RESET };
void machine_request(struct machine *m, enum machine_event ev);

/*
 * Register a hook that makes a "power button" press visible to the guest
 * (ACPI PM sets PWRBTN_STS and raises the SCI). Used by system_powerdown.
 */
void machine_set_powerbutton(struct machine *m, void (*press)(void *), void *opaque);
void machine_press_powerbutton(struct machine *m);

#endif
