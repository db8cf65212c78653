/*
 * The KVM layer: the only code that issues KVM ioctls for VM and vCPU
 * creation, CPUID and boot register setup (src/arch/x86/kvm.c, cpuid.c).
 */
#ifndef AMBER_X86_KVM_H
#define AMBER_X86_KVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "amber/mem.h"
#include "amber/x86_boot.h"

/* Open /dev/kvm and check the API and capabilities amber needs. */
int kvm_open(int *kvm_fd, char *err, size_t errlen);
int kvm_max_vcpus(int kvm_fd);
/* VM with in-kernel irqchip and PIT, TSS/identity-map pages set. */
int kvm_create_vm(int kvm_fd, int *vm_fd, char *err, size_t errlen);
/* Register every RAM slot of gm as a KVM memslot. */
int kvm_set_memory(int vm_fd, const struct guest_mem *gm, char *err, size_t errlen);
/*
 * Map host[0, size) read-only at gpa as KVM memslot `slot` (slots below
 * GMEM_MAX_SLOTS belong to RAM): guest writes become KVM_EXIT_MMIO exits,
 * which the MMIO bus ignores when nothing claims them (a ROM).
 */
#define KVM_SLOT_FIRMWARE 8
int kvm_map_rom(int kvm_fd, int vm_fd, uint32_t slot, uint64_t gpa, void *host, uint64_t size,
		char *err, size_t errlen);

/*
 * The CPUID the guest sees: KVM_GET_SUPPORTED_CPUID filtered to what amber
 * emulates, with topology for ncpus (one socket, ncpus cores, one thread
 * each) and the KVM paravirtual leaves. The per-vCPU APIC ID fields are
 * patched by cpuid_for_vcpu.
 */
struct kvm_cpuid2 *cpuid_build(int kvm_fd, int ncpus, char *err, size_t errlen);
struct kvm_cpuid2 *cpuid_for_vcpu(const struct kvm_cpuid2 *base, int vcpu_id, int ncpus);
/* KVM abilities cpuid_filter needs besides KVM_GET_SUPPORTED_CPUID (KVM_CHECK_EXTENSION). */
#define CPUID_KVM_TSC_DEADLINE (1u << 0)	/* KVM_CAP_TSC_DEADLINE_TIMER */
/* cpuid_build's work on a KVM_GET_SUPPORTED_CPUID result, in place (testable without KVM). */
void cpuid_filter(struct kvm_cpuid2 *c, int ncpus, unsigned kvm_caps);
/* Host CPU vendor/family/model/stepping from the CPUID instruction. */
void cpuid_host_info(char vendor[13], unsigned *family, unsigned *model, unsigned *stepping);

/* Create vCPU id, map its kvm_run, set CPUID and the MSRs Linux expects. */
int kvm_create_vcpu(int kvm_fd, int vm_fd, int id, const struct kvm_cpuid2 *cpuid, int ncpus,
		    int *fd, struct kvm_run **run, size_t *run_size, char *err, size_t errlen);
/* Write one MSR of a vCPU: 0 or -errno (-EINVAL when KVM refused it). */
int kvm_set_msr(int vcpu_fd, uint32_t index, uint64_t value);
/* Registers for the boot vCPU to enter the kernel as boot_info says. */
int kvm_setup_boot_regs(int vcpu_fd, const struct boot_info *bi);
/* LAPIC LINT0 = ExtINT, LINT1 = NMI (virtual wire, as the MP spec's BIOS leaves it). */
int kvm_setup_lapic(int vcpu_fd);
/* Print the vCPU's registers for a crash report. */
void kvm_dump_regs(int vcpu_fd, int id);

#endif
