/*
 * KVM eventfd plumbing for devices (src/arch/x86/kvm_irqfd.c):
 *
 *  - machine->ioeventfd: a guest write to an MMIO address signals an eventfd
 *    inside KVM (KVM_IOEVENTFD) instead of exiting to a vCPU thread;
 *  - machine->msi_irqfd: writing an eventfd injects an MSI inside KVM
 *    (KVM_IRQFD on a GSI routed to the message with KVM_SET_GSI_ROUTING).
 *
 * Devices use them when they are set and fall back to MMIO exits and
 * irq_send_msi when they are NULL (unit tests, no KVM support) or fail.
 */
#ifndef AMBER_KVM_IRQFD_H
#define AMBER_KVM_IRQFD_H

struct machine;

/*
 * Install the hooks on m for the VM vm_fd, whose in-kernel irqchip exists
 * already. Hooks whose KVM capability is missing stay NULL.
 * 0 or -errno (out of memory).
 */
int kvm_irqfd_setup(struct machine *m, int vm_fd);
/* Remove the hooks and free their state (after the devices are gone). */
void kvm_irqfd_teardown(struct machine *m);

#endif
