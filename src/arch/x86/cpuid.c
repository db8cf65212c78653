/*
 * The CPUID the guest sees. Start from KVM_GET_SUPPORTED_CPUID (what KVM can
 * virtualize on this host), drop what amber does not emulate, and describe
 * the topology: one package of ncpus cores with one thread each.
 */
#include <cpuid.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "amber/x86_kvm.h"

#define CPUID_MAX_ENTRIES 256

/* CPUID.1 bits (Intel SDM Vol. 2A, Table 3-10/3-11) */
#define CPUID1_ECX_VMX        (1u << 5)
#define CPUID1_ECX_SMX        (1u << 6)
#define CPUID1_ECX_EST        (1u << 7)
#define CPUID1_ECX_TM2        (1u << 8)
#define CPUID1_ECX_PDCM       (1u << 15)
#define CPUID1_ECX_X2APIC     (1u << 21)
#define CPUID1_ECX_TSC_DEADLINE (1u << 24)
#define CPUID1_ECX_HYPERVISOR (1u << 31)
#define CPUID1_EDX_HTT        (1u << 28)
#define CPUID_8000_0001_ECX_SVM (1u << 2)
#define CPUID_8000_0001_ECX_CMP_LEGACY (1u << 1)
/* CPUID 0x40000001 EAX, KVM paravirtual features (Documentation/virt/kvm/x86/cpuid.rst) */
#define KVM_FEATURE_BIT_ASYNC_PF        (1u << 4)
#define KVM_FEATURE_BIT_ASYNC_PF_VMEXIT (1u << 10)
#define KVM_FEATURE_BIT_ASYNC_PF_INT    (1u << 14)

static unsigned bits_for(unsigned n)
{
	unsigned b = 0;

	while ((1u << b) < n)
		b++;
	return b;
}

void cpuid_host_info(char vendor[13], unsigned *family, unsigned *model, unsigned *stepping)
{
	unsigned a, b, c, d;

	__cpuid(0, a, b, c, d);
	memcpy(vendor, &b, 4);
	memcpy(vendor + 4, &d, 4);
	memcpy(vendor + 8, &c, 4);
	vendor[12] = '\0';
	__cpuid(1, a, b, c, d);
	*family = (a >> 8) & 0xf;
	*model = (a >> 4) & 0xf;
	if (*family == 0xf)
		*family += (a >> 20) & 0xff;
	if (*family >= 6)
		*model |= ((a >> 16) & 0xf) << 4;
	*stepping = a & 0xf;
}

struct kvm_cpuid2 *cpuid_build(int kvm_fd, int ncpus, char *err, size_t errlen)
{
	struct kvm_cpuid2 *c;
	unsigned caps = 0;

	c = calloc(1, sizeof(*c) + CPUID_MAX_ENTRIES * sizeof(c->entries[0]));
	if (!c)
		return NULL;
	c->nent = CPUID_MAX_ENTRIES;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		free(c);
		return NULL;
	}
	if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0)
		caps |= CPUID_KVM_TSC_DEADLINE;
	cpuid_filter(c, ncpus, caps);
	return c;
}

void cpuid_filter(struct kvm_cpuid2 *c, int ncpus, unsigned kvm_caps)
{
	unsigned core_bits = bits_for((unsigned)ncpus);
	unsigned n = 0;

	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			e->ecx &= ~(CPUID1_ECX_VMX | CPUID1_ECX_SMX | CPUID1_ECX_EST |
				    CPUID1_ECX_TM2 | CPUID1_ECX_PDCM);
			e->ecx |= CPUID1_ECX_HYPERVISOR;
			/*
			 * KVM_GET_SUPPORTED_CPUID never reports the TSC-deadline
			 * timer: the in-kernel LAPIC emulates it when
			 * KVM_CAP_TSC_DEADLINE_TIMER is there (api.rst, "KVM_GET_
			 * SUPPORTED_CPUID"; QEMU adds it the same way). Without it
			 * Linux spends 100 ms of every boot calibrating the LAPIC
			 * timer against the tick (calibrate_APIC_clock,
			 * LAPIC_CAL_LOOPS) and keeps the PIT running.
			 */
			if (kvm_caps & CPUID_KVM_TSC_DEADLINE)
				e->ecx |= CPUID1_ECX_TSC_DEADLINE;
			else
				e->ecx &= ~CPUID1_ECX_TSC_DEADLINE;
			/* EBX[23:16]: addressable logical processor IDs in the package */
			e->ebx &= 0x0000ffff;
			e->ebx |= (1u << core_bits) << 16;
			if (ncpus > 1)
				e->edx |= CPUID1_EDX_HTT;
			break;
		case 4:
			/* Deterministic cache parameters: EAX[31:26] = cores - 1 */
			e->eax &= 0x03ffffff;
			e->eax |= ((1u << core_bits) - 1) << 26;
			/* EAX[25:14]: threads sharing this cache: all cores for L3, one otherwise */
			e->eax &= ~(0xfffu << 14);
			if (((e->eax >> 5) & 7) == 3)
				e->eax |= ((1u << core_bits) - 1) << 14;
			break;
		case 0xa:
			/* No virtual PMU: keeps guests portable across hosts (checkpoints). */
			e->eax = e->ebx = e->ecx = e->edx = 0;
			break;
		case 0xb:
		case 0x1f:
			/* Extended topology (SDM Vol. 3A §9.6): SMT level then core level. */
			if (e->index == 0) {
				e->eax = 0;
				e->ebx = 1;
				e->ecx = (1u << 8) | 0;
			} else if (e->index == 1) {
				e->eax = core_bits;
				e->ebx = (unsigned)ncpus;
				e->ecx = (2u << 8) | 1;
			} else {
				e->eax = e->ebx = 0;
				e->ecx = e->index;
			}
			break;
		case 0x40000001:
			/*
			 * No asynchronous page faults. With them, a guest access to
			 * RAM the host must first read (a lazy restore maps memory.bin)
			 * becomes a "page not present" event for the guest, which
			 * parks the task until KVM sends a "page ready" interrupt. A
			 * restored guest whose memory-heavy tasks stopped at once and
			 * never woke (issue 5) had hundreds of these in flight; copy
			 * restores, which never fault on I/O, never stalled. Cloud
			 * Hypervisor hides ASYNC_PF_INT for its own hangs and libkrun
			 * boots guests with no-kvmapf. Without it the vCPU simply waits
			 * in the host for the page, as it does for any other fault.
			 */
			e->eax &= ~(KVM_FEATURE_BIT_ASYNC_PF | KVM_FEATURE_BIT_ASYNC_PF_VMEXIT |
				    KVM_FEATURE_BIT_ASYNC_PF_INT);
			break;
		case 0x80000001:
			e->ecx &= ~CPUID_8000_0001_ECX_SVM;
			if (ncpus > 1)
				e->ecx |= CPUID_8000_0001_ECX_CMP_LEGACY;
			break;
		case 0x80000008:
			/* AMD: ECX[15:12] APIC ID size, ECX[7:0] cores - 1 */
			e->ecx = (core_bits << 12) | (unsigned)(ncpus - 1);
			break;
		default:
			break;
		}
		/* Leaves amber does not offer: SGX, PT, AMD SEV/extended topology. */
		if (e->function == 0x12 || e->function == 0x14 || e->function == 0x8000001e ||
		    e->function == 0x8000001f)
			continue;
		c->entries[n++] = *e;
	}
	c->nent = n;
}

struct kvm_cpuid2 *cpuid_for_vcpu(const struct kvm_cpuid2 *base, int vcpu_id, int ncpus)
{
	size_t sz = sizeof(*base) + base->nent * sizeof(base->entries[0]);
	struct kvm_cpuid2 *c = malloc(sz);

	(void)ncpus;
	if (!c)
		return NULL;
	memcpy(c, base, sz);
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		if (e->function == 1) {
			e->ebx &= 0x00ffffff;
			e->ebx |= (unsigned)vcpu_id << 24;
		} else if (e->function == 0xb || e->function == 0x1f) {
			e->edx = (unsigned)vcpu_id;	/* x2APIC ID */
		}
	}
	return c;
}
