/*
 * Synthetic x86 state and checkpoint documents for the snapshot tests: what
 * a 64-bit Linux guest's vCPU looks like, without KVM.
 */
#ifndef SNAP_FIXTURE_H
#define SNAP_FIXTURE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "amber/x86_state.h"

static inline void fixture_lapic_set(struct kvm_lapic_state *l, unsigned off, uint32_t v)
{
	memcpy(l->regs + off, &v, 4);
}

static inline uint32_t fixture_lapic_get(const struct kvm_lapic_state *l, unsigned off)
{
	uint32_t v;

	memcpy(&v, l->regs + off, 4);
	return v;
}

static inline void fixture_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->base = 0;
	s->limit = 0xffffffff;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->l = code;
	s->db = !code;
	s->g = 1;
}

/* A vCPU of a 64-bit guest, vcpu id `id`, with recognisable values everywhere. */
static inline void fixture_vcpu(struct x86_vcpu_state *s, uint32_t id)
{
	memset(s, 0, sizeof(*s));
	s->id = id;
	s->mp_state = id ? KVM_MP_STATE_HALTED : KVM_MP_STATE_RUNNABLE;
	s->regs.rax = 0x1122334455667788ULL;
	s->regs.rbx = 1;
	s->regs.rsp = 0xffffc90000013f00ULL;
	s->regs.rip = 0xffffffff81e3a1b2ULL;	/* above 2^53: a string in JSON */
	s->regs.rflags = 0x246;
	s->regs.r15 = 15;
	fixture_seg(&s->sregs.cs, 0x10, 11, true);
	fixture_seg(&s->sregs.ds, 0x18, 3, false);
	fixture_seg(&s->sregs.es, 0x18, 3, false);
	fixture_seg(&s->sregs.ss, 0x18, 3, false);
	fixture_seg(&s->sregs.fs, 0, 3, false);
	fixture_seg(&s->sregs.gs, 0, 3, false);
	s->sregs.gs.base = 0xffff88807fc00000ULL;
	s->sregs.fs.unusable = 1;
	fixture_seg(&s->sregs.tr, 0x40, 11, false);
	s->sregs.tr.s = 0;
	s->sregs.ldt.unusable = 1;
	s->sregs.gdt.base = 0xfffffe0000001000ULL;
	s->sregs.gdt.limit = 0x7f;
	s->sregs.idt.base = 0xfffffe0000000000ULL;
	s->sregs.idt.limit = 0xfff;
	s->sregs.cr0 = 0x80050033;
	s->sregs.cr2 = 0x7f0000001000ULL;
	s->sregs.cr3 = 0x2a0e000;
	s->sregs.cr4 = 0x6f0;	/* PSE PAE MCE PGE OSFXSR OSXMMEXCPT: no CPUID feature needed */
	s->sregs.cr8 = 0;
	s->sregs.efer = 0xd01;
	s->sregs.apic_base = 0xfee00000ULL | (1u << 11) | (id ? 0 : 1u << 8);
	s->xcrs.nr_xcrs = 1;
	s->xcrs.xcrs[0].xcr = 0;
	s->xcrs.xcrs[0].value = 3;
	s->debugregs.db[0] = 0xffffffff81000000ULL;
	s->debugregs.dr6 = 0xffff0ff0;
	s->debugregs.dr7 = 0x400;
	s->events.interrupt.injected = 1;
	s->events.interrupt.nr = 0xec;
	s->events.nmi.masked = 1;
	s->events.sipi_vector = 0x9a;
	s->events.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
			  KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM;
	fixture_lapic_set(&s->lapic, 0x20, id << 24);		/* ID */
	fixture_lapic_set(&s->lapic, 0x30, 0x50014);		/* version */
	fixture_lapic_set(&s->lapic, 0x80, 0x10);		/* TPR */
	fixture_lapic_set(&s->lapic, 0xa0, 0x10);		/* PPR */
	fixture_lapic_set(&s->lapic, 0xd0, 1u << (24 + id));	/* LDR */
	fixture_lapic_set(&s->lapic, 0xe0, 0xffffffff);		/* DFR flat */
	fixture_lapic_set(&s->lapic, 0xf0, 0x1ff);		/* SVR: enabled, vector ff */
	fixture_lapic_set(&s->lapic, 0x100 + 7 * 16, 1u << 12);	/* ISR: vector 0xec */
	fixture_lapic_set(&s->lapic, 0x200 + 1 * 16, 1u << 1);	/* IRR: vector 0x21 */
	fixture_lapic_set(&s->lapic, 0x180 + 2 * 16, 0x80000000);	/* TMR: vector 0x5f */
	fixture_lapic_set(&s->lapic, 0x300, 0x000c4500);		/* ICR low */
	fixture_lapic_set(&s->lapic, 0x310, 0x01000000);		/* ICR high */
	fixture_lapic_set(&s->lapic, 0x320, 0x000200ec);		/* LVT timer periodic */
	fixture_lapic_set(&s->lapic, 0x350, 0x700);		/* LINT0 ExtINT */
	fixture_lapic_set(&s->lapic, 0x360, 0x400);		/* LINT1 NMI */
	fixture_lapic_set(&s->lapic, 0x370, 0x10000);		/* error masked */
	fixture_lapic_set(&s->lapic, 0x380, 1000000);		/* initial count */
	fixture_lapic_set(&s->lapic, 0x390, 123456);		/* current count */
	fixture_lapic_set(&s->lapic, 0x3e0, 0xb);		/* divide by 1 */
	s->nmsrs = 5;
	s->msrs[0] = (struct kvm_msr_entry){ .index = 0x3b, .data = 0 };
	s->msrs[1] = (struct kvm_msr_entry){ .index = 0x10, .data = 0xfedcba9876543210ULL };
	s->msrs[2] = (struct kvm_msr_entry){ .index = 0xc0000082, .data = 0xffffffff82000080ULL };
	s->msrs[3] = (struct kvm_msr_entry){ .index = 0x277, .data = 0x0007040600070406ULL };
	s->msrs[4] = (struct kvm_msr_entry){ .index = 0x4b564d01, .data = 0x7fe1001 };
	s->xsave_size = 4096;
	s->xsave = malloc(4096);
	for (int i = 0; i < 4096; i++)
		((uint8_t *)s->xsave)[i] = (uint8_t)(i * 7 + id);
	/* a valid header: MXCSR 0x1f80, XSTATE_BV = x87|SSE (what XCR0 enables), no XCOMP_BV */
	memcpy((uint8_t *)s->xsave + 24, &(uint32_t){ 0x1f80 }, 4);
	memset((uint8_t *)s->xsave + 512, 0, 64);
	((uint8_t *)s->xsave)[512] = 3;
}

/* A #PF waiting for delivery, as KVM reports it without KVM_CAP_EXCEPTION_PAYLOAD. */
static inline void fixture_pending_pf(struct kvm_vcpu_events *e, uint32_t error_code)
{
	e->exception.injected = 1;
	e->exception.pending = 1;
	e->exception.nr = 14;
	e->exception.has_error_code = 1;
	e->exception.error_code = error_code;
	e->nmi.pending = 1;
}

static inline void fixture_vm(struct x86_vm_state *s, int64_t mono_now)
{
	memset(s, 0, sizeof(*s));
	s->pic[0] = (struct kvm_pic_state){ .irr = 1, .imr = 0xb8, .isr = 0, .irq_base = 0x30,
					    .init4 = 1, .elcr = 0x00, .elcr_mask = 0xf8,
					    .priority_add = 3 };
	s->pic[1] = (struct kvm_pic_state){ .imr = 0xff, .irq_base = 0x38, .init4 = 1,
					    .elcr = 0x0c, .elcr_mask = 0xde };
	s->ioapic.base_address = 0xfec00000ULL;
	s->ioapic.id = 0;
	s->ioapic.irr = 0x10;
	for (int i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
		s->ioapic.redirtbl[i].bits = 1ULL << 16;	/* masked */
	s->ioapic.redirtbl[4].bits = 0x24ULL | (1ULL << 56);	/* COM1 -> vector 0x24, CPU 1 */
	s->ioapic.redirtbl[9].bits = 0x29ULL | (1ULL << 13) | (1ULL << 15) | (1ULL << 14);
	s->pit.channels[0].count = 65536;
	s->pit.channels[0].mode = 2;
	s->pit.channels[0].rw_mode = 3;
	s->pit.channels[0].read_state = 3;
	s->pit.channels[0].write_state = 3;
	s->pit.channels[0].gate = 1;
	s->pit.channels[0].count_load_time = mono_now - 5000000;
	s->pit.channels[2].count = 1193;
	s->pit.channels[2].mode = 3;
	s->pit.channels[2].count_load_time = mono_now - 70000000000LL;
	s->pit.flags = KVM_PIT_FLAGS_SPEAKER_DATA_ON;
	s->clock.clock = 12345678901234ULL;
	s->clock.realtime = 1700000000000000000ULL;
	s->clock.flags = KVM_CLOCK_TSC_STABLE;
}

/* Two CPUID leaves that matter for compatibility. */
static inline struct kvm_cpuid2 *fixture_cpuid(void)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 3 * sizeof(c->entries[0]));

	c->nent = 3;
	c->entries[0] = (struct kvm_cpuid_entry2){ .function = 0, .eax = 0xd,
						   .ebx = 0x756e6547, .ecx = 0x6c65746e,
						   .edx = 0x49656e69 };
	/* leaf 1: sse3 | ssse3 | avx | hypervisor ; edx: fpu..sse2 */
	c->entries[1] = (struct kvm_cpuid_entry2){ .function = 1, .eax = 0x50657,
						   .ecx = 1u | (1u << 9) | (1u << 28) | (1u << 31),
						   .edx = 0x178bfbff };
	/* leaf 7.0: avx2, bmi2 */
	c->entries[2] = (struct kvm_cpuid_entry2){ .function = 7, .index = 0,
						   .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
						   .ebx = (1u << 5) | (1u << 8) };
	return c;
}

#endif
