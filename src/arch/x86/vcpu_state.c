/*
 * x86 vCPU state <-> vm.json (see include/amber/x86_state.h for the shape).
 *
 * Save order (x86_vcpu_state_get), on a parked vCPU:
 *   1. MP state first: KVM_GET_MP_STATE makes KVM process a pending INIT or
 *      SIPI (kvm_apic_accept_events), which rewrites CS:RIP, the other
 *      registers and clears pending exceptions and NMIs. Reading it first
 *      means everything read after it is the post-INIT/SIPI state. (QEMU's
 *      kvm_arch_get_registers calls kvm_get_mp_state before the registers
 *      for the same reason: "KVM_GET_MPSTATE can modify CS and RIP".)
 *   2. regs, sregs, XSAVE, XCRs, MSRs, LAPIC, debug registers: plain reads.
 *   3. vcpu events last: the pending/injected exception, interrupt and NMI
 *      as they are after every read above (none of which injects anything).
 *
 * Restore order (x86_vcpu_state_put), CPUID already set at vCPU creation
 * (KVM_SET_CPUID2 must precede everything: it defines which MSRs, XSAVE
 * components and CR4 bits are valid):
 *   1. sregs: EFER/CR0/CR4 first, so paging mode and long mode are known
 *      when the rest is checked by KVM; this also sets the APIC base (mode
 *      xAPIC/x2APIC) that KVM_SET_LAPIC interprets the ID register with.
 *      QEMU likewise puts sregs before nested state and MSRs.
 *   2. regs, XSAVE, XCRs (QEMU: kvm_getput_regs, kvm_put_xsave,
 *      kvm_put_xcrs); KVM_SET_XSAVE checks components against what KVM
 *      supports, not against the guest's XCR0, so these two can go in
 *      either order.
 *   3. MSRs except TSC deadline, in table order (TSC_ADJUST before TSC,
 *      ASYNC_PF_INT before ASYNC_PF_EN as KVM requires).
 *   4. LAPIC: after the APIC base (1). QEMU restores the APIC in the APIC
 *      device's post_load, before kvm_arch_put_registers.
 *   5. TSC deadline MSR: KVM ignores it unless the LVT timer is already in
 *      TSC-deadline mode, so it must follow the LAPIC (QEMU's
 *      kvm_put_tscdeadline_msr comes after kvm_put_msrs for this reason).
 *   6. vcpu events: after everything that could queue or clear an event.
 *   7. MP state: after events (QEMU: kvm_put_vcpu_events then
 *      kvm_put_mp_state) so a halted or INIT-received vCPU is not woken by
 *      setting its events.
 *   8. debug registers last (QEMU: kvm_put_debugregs last).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "amber/snapjson.h"
#include "amber/x86_state.h"

#define SECTION_V 1	/* field tables below are all "since 1" */

#define FIELD(T, S, m, name_, mx) \
	{ .name = (name_), .type = (T), .offset = offsetof(S, m), .count = 1, .max = (mx), .since = 1 }

static int check_table(const struct state_field *t, const json_t *obj, const char *path,
		       const char *key, char *err, size_t errlen)
{
	const json_t *sub;
	char p[160];
	int ret = snap_get_object(obj, path, key, &sub, err, errlen);

	if (ret)
		return ret;
	snap_path(p, sizeof(p), path, key);
	return state_fields_check_path(t, sub, SECTION_V, p, err, errlen);
}

static int save_table(const struct state_field *t, const void *base, json_t *obj, const char *key)
{
	json_t *sub = json_object();

	if (!sub || json_object_set_new(obj, key, sub) < 0)
		return -ENOMEM;
	return state_fields_save(t, base, sub);
}

static int load_table(const struct state_field *t, void *base, const json_t *obj, const char *key)
{
	return state_fields_load(t, base, json_object_get(obj, key), SECTION_V);
}

/* ---- general registers ------------------------------------------------- */

#define REG(m) STATE_U64(struct kvm_regs, m)
static const struct state_field regs_fields[] = {
	REG(rax), REG(rbx), REG(rcx), REG(rdx), REG(rsi), REG(rdi), REG(rsp), REG(rbp),
	REG(r8), REG(r9), REG(r10), REG(r11), REG(r12), REG(r13), REG(r14), REG(r15),
	REG(rip), REG(rflags),
	STATE_END,
};

int x86_regs_to_json(const struct kvm_regs *r, json_t *obj)
{
	return state_fields_save(regs_fields, r, obj);
}

int x86_regs_check(const json_t *obj, const char *path, char *err, size_t errlen)
{
	return state_fields_check_path(regs_fields, obj, SECTION_V, path, err, errlen);
}

int x86_regs_from_json(const json_t *obj, struct kvm_regs *r)
{
	memset(r, 0, sizeof(*r));
	return state_fields_load(regs_fields, r, obj, SECTION_V);
}

/* ---- segments and system registers ------------------------------------- */

static const struct state_field seg_fields[] = {
	STATE_U16(struct kvm_segment, selector),
	STATE_U64(struct kvm_segment, base),
	STATE_U32(struct kvm_segment, limit),
	STATE_U8_MAX(struct kvm_segment, type, 15),
	STATE_BOOL(struct kvm_segment, present),
	STATE_U8_MAX(struct kvm_segment, dpl, 3),
	STATE_BOOL(struct kvm_segment, db),
	STATE_BOOL(struct kvm_segment, s),
	STATE_BOOL(struct kvm_segment, l),
	STATE_BOOL(struct kvm_segment, g),
	STATE_BOOL(struct kvm_segment, avl),
	STATE_BOOL(struct kvm_segment, unusable),
	STATE_END,
};

int x86_segment_to_json(const struct kvm_segment *s, json_t *obj)
{
	return state_fields_save(seg_fields, s, obj);
}

int x86_segment_check(const json_t *obj, const char *path, char *err, size_t errlen)
{
	return state_fields_check_path(seg_fields, obj, SECTION_V, path, err, errlen);
}

int x86_segment_from_json(const json_t *obj, struct kvm_segment *s)
{
	memset(s, 0, sizeof(*s));
	return state_fields_load(seg_fields, s, obj, SECTION_V);
}

static const struct state_field dtable_fields[] = {
	STATE_U64(struct kvm_dtable, base),
	STATE_U16(struct kvm_dtable, limit),
	STATE_END,
};

static const struct {
	const char *name;
	size_t off;
} sregs_segs[] = {
	{ "cs", offsetof(struct kvm_sregs, cs) }, { "ds", offsetof(struct kvm_sregs, ds) },
	{ "es", offsetof(struct kvm_sregs, es) }, { "fs", offsetof(struct kvm_sregs, fs) },
	{ "gs", offsetof(struct kvm_sregs, gs) }, { "ss", offsetof(struct kvm_sregs, ss) },
	{ "tr", offsetof(struct kvm_sregs, tr) }, { "ldt", offsetof(struct kvm_sregs, ldt) },
};
#define NSEGS (sizeof(sregs_segs) / sizeof(sregs_segs[0]))

/* CR0 bits 63:32 are reserved (SDM Vol. 3A §2.5); CR8 holds 4 bits (TPR[7:4]). */
static const struct state_field sregs_fields[] = {
	STATE_U64_MAX(struct kvm_sregs, cr0, 0xffffffffULL),
	STATE_U64(struct kvm_sregs, cr2),
	STATE_U64(struct kvm_sregs, cr3),
	STATE_U64(struct kvm_sregs, cr4),
	STATE_U64_MAX(struct kvm_sregs, cr8, 15),
	STATE_U64(struct kvm_sregs, efer),
	STATE_U64(struct kvm_sregs, apic_base),
	STATE_END,
};

#define X86_CR0_PE (1ULL << 0)
#define X86_CR0_NW (1ULL << 29)
#define X86_CR0_CD (1ULL << 30)
#define X86_CR0_PG (1ULL << 31)
#define X86_CR4_PAE (1ULL << 5)
#define X86_EFER_LME (1ULL << 8)
#define X86_EFER_LMA (1ULL << 10)
#define X86_APIC_BASE_EXTD (1ULL << 10)
#define X86_APIC_BASE_EN (1ULL << 11)
/* IA32_APIC_BASE: bits 0-7 and 9 reserved, base up to MAXPHYADDR (<= 52). */
#define X86_APIC_BASE_RESERVED (0x2ffULL | (~0ULL << 52))

int x86_sregs_to_json(const struct kvm_sregs *s, json_t *obj)
{
	int ret = 0;

	for (size_t i = 0; i < NSEGS && !ret; i++)
		ret = save_table(seg_fields, (const uint8_t *)s + sregs_segs[i].off, obj,
				 sregs_segs[i].name);
	if (!ret)
		ret = save_table(dtable_fields, &s->gdt, obj, "gdt");
	if (!ret)
		ret = save_table(dtable_fields, &s->idt, obj, "idt");
	if (!ret)
		ret = state_fields_save(sregs_fields, s, obj);
	return ret;
}

int x86_sregs_check(const json_t *obj, const char *path, char *err, size_t errlen)
{
	struct kvm_sregs s;
	int ret = 0;

	for (size_t i = 0; i < NSEGS && !ret; i++)
		ret = check_table(seg_fields, obj, path, sregs_segs[i].name, err, errlen);
	if (!ret)
		ret = check_table(dtable_fields, obj, path, "gdt", err, errlen);
	if (!ret)
		ret = check_table(dtable_fields, obj, path, "idt", err, errlen);
	if (!ret)
		ret = state_fields_check_path(sregs_fields, obj, SECTION_V, path, err, errlen);
	if (ret)
		return ret;
	x86_sregs_from_json(obj, &s);
	/* What KVM_SET_SREGS refuses (kvm_is_valid_sregs, kvm_is_valid_cr0). */
	if ((s.cr0 & X86_CR0_PG) && !(s.cr0 & X86_CR0_PE)) {
		snprintf(err, errlen, "%s.cr0 = 0x%llx: paging (PG) without protected mode (PE)",
			 path, (unsigned long long)s.cr0);
		return -EINVAL;
	}
	if ((s.cr0 & X86_CR0_NW) && !(s.cr0 & X86_CR0_CD)) {
		snprintf(err, errlen, "%s.cr0 = 0x%llx: not-write-through (NW) without cache "
			 "disable (CD)", path, (unsigned long long)s.cr0);
		return -EINVAL;
	}
	if ((s.efer & X86_EFER_LME) && (s.cr0 & X86_CR0_PG)) {
		if (!(s.cr4 & X86_CR4_PAE) || !(s.efer & X86_EFER_LMA)) {
			snprintf(err, errlen, "%s: long mode paging (efer.LME, cr0.PG) needs cr4.PAE "
				 "and efer.LMA", path);
			return -EINVAL;
		}
	} else if ((s.efer & X86_EFER_LMA) || s.cs.l) {
		snprintf(err, errlen, "%s: %s without long mode paging (efer.LME and cr0.PG)", path,
			 s.efer & X86_EFER_LMA ? "efer.LMA" : "cs.l");
		return -EINVAL;
	}
	/*
	 * In protected mode the task register must hold a busy TSS (SDM Vol. 3C
	 * §27.3.1.2; AMD's reset value is a 16-bit one): KVM takes any value on
	 * AMD, but an interrupt from user mode then finds no kernel stack.
	 */
	if ((s.cr0 & X86_CR0_PE) &&
	    (!s.tr.present || s.tr.unusable || s.tr.s || (s.tr.type != 3 && s.tr.type != 11))) {
		snprintf(err, errlen, "%s.tr: not a present busy TSS (present %u, unusable %u, s %u, "
			 "type %u)", path, s.tr.present, s.tr.unusable, s.tr.s, s.tr.type);
		return -EINVAL;
	}
	if (s.apic_base & X86_APIC_BASE_RESERVED) {
		snprintf(err, errlen, "%s.apic_base = 0x%llx sets reserved bits", path,
			 (unsigned long long)s.apic_base);
		return -EINVAL;
	}
	if ((s.apic_base & X86_APIC_BASE_EXTD) && !(s.apic_base & X86_APIC_BASE_EN)) {
		snprintf(err, errlen, "%s.apic_base = 0x%llx: x2APIC mode with the APIC disabled",
			 path, (unsigned long long)s.apic_base);
		return -EINVAL;
	}
	return 0;
}

int x86_sregs_from_json(const json_t *obj, struct kvm_sregs *s)
{
	int ret = 0;

	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < NSEGS && !ret; i++)
		ret = load_table(seg_fields, (uint8_t *)s + sregs_segs[i].off, obj,
				 sregs_segs[i].name);
	if (!ret)
		ret = load_table(dtable_fields, &s->gdt, obj, "gdt");
	if (!ret)
		ret = load_table(dtable_fields, &s->idt, obj, "idt");
	if (!ret)
		ret = state_fields_load(sregs_fields, s, obj, SECTION_V);
	return ret;
}

/* ---- LAPIC --------------------------------------------------------------- */

/* Register offsets in the xAPIC page (SDM Vol. 3A, Table 10-1). */
#define APIC_ID		0x20
#define APIC_LVR	0x30
#define APIC_TASKPRI	0x80
#define APIC_ARBPRI	0x90
#define APIC_PROCPRI	0xa0
#define APIC_LDR	0xd0
#define APIC_DFR	0xe0
#define APIC_SPIV	0xf0
#define APIC_ISR	0x100
#define APIC_TMR	0x180
#define APIC_IRR	0x200
#define APIC_ESR	0x280
#define APIC_LVTCMCI	0x2f0
#define APIC_ICR	0x300
#define APIC_ICR2	0x310
#define APIC_LVTT	0x320
#define APIC_LVTTHMR	0x330
#define APIC_LVTPC	0x340
#define APIC_LVT0	0x350
#define APIC_LVT1	0x360
#define APIC_LVTERR	0x370
#define APIC_TMICT	0x380
#define APIC_TMCCT	0x390
#define APIC_TDCR	0x3e0

static uint32_t apic_get(const struct kvm_lapic_state *s, unsigned off)
{
	uint32_t v;

	memcpy(&v, s->regs + off, 4);
	return v;
}

static void apic_set(struct kvm_lapic_state *s, unsigned off, uint32_t v)
{
	memcpy(s->regs + off, &v, 4);
}

/* Plain 32-bit registers: name, offset, inclusive max. */
static const struct {
	const char *name;
	unsigned off;
	uint32_t max;
} apic_regs[] = {
	{ "version", APIC_LVR, UINT32_MAX },
	{ "tpr", APIC_TASKPRI, 0xff },
	{ "apr", APIC_ARBPRI, 0xff },
	{ "ppr", APIC_PROCPRI, 0xff },
	{ "ldr", APIC_LDR, UINT32_MAX },
	{ "dfr", APIC_DFR, UINT32_MAX },
	{ "svr", APIC_SPIV, UINT32_MAX },
	{ "esr", APIC_ESR, UINT32_MAX },
	{ "timer_initial_count", APIC_TMICT, UINT32_MAX },
	{ "timer_current_count", APIC_TMCCT, UINT32_MAX },
	{ "timer_divide", APIC_TDCR, 0xb },
};

static const struct {
	const char *name;
	unsigned off;
} apic_lvts[] = {
	{ "cmci", APIC_LVTCMCI }, { "timer", APIC_LVTT }, { "thermal", APIC_LVTTHMR },
	{ "perf", APIC_LVTPC }, { "lint0", APIC_LVT0 }, { "lint1", APIC_LVT1 },
	{ "error", APIC_LVTERR },
};

static const struct {
	const char *name;
	unsigned off;
} apic_vecs[] = { { "isr", APIC_ISR }, { "tmr", APIC_TMR }, { "irr", APIC_IRR } };

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * The ID register holds the ID in bits 31:24 in xAPIC mode; in x2APIC mode
 * KVM shows the full 32-bit x2APIC ID only with KVM_X2APIC_API_USE_32BIT_IDS
 * (kvm_apic_state_fixup), else the xAPIC layout.
 */
static bool apic_id_is_32bit(bool x2apic, unsigned flags)
{
	return x2apic && (flags & X86_STATE_X2APIC_API);
}

int x86_lapic_to_json(const struct kvm_lapic_state *s, bool x2apic, unsigned flags, json_t *obj)
{
	json_t *lvt = json_object();
	uint32_t id = apic_get(s, APIC_ID);
	int bad = 0;

	if (!lvt)
		return -ENOMEM;
	bad |= snap_set_u64(obj, "id", apic_id_is_32bit(x2apic, flags) ? id : id >> 24);
	for (size_t i = 0; i < ARRAY_LEN(apic_regs); i++)
		bad |= snap_set_u64(obj, apic_regs[i].name, apic_get(s, apic_regs[i].off));
	for (size_t i = 0; i < ARRAY_LEN(apic_vecs); i++) {
		json_t *a = json_array();

		/* 8 registers, 16 bytes apart: bit n of word w is vector 32w + n */
		for (unsigned w = 0; a && w < 8; w++)
			bad |= json_array_append_new(a, json_integer(apic_get(s, apic_vecs[i].off +
									      w * 16)));
		bad |= a ? json_object_set_new(obj, apic_vecs[i].name, a) : -1;
	}
	bad |= snap_set_u64(obj, "icr",
			    (uint64_t)apic_get(s, APIC_ICR2) << 32 | apic_get(s, APIC_ICR));
	for (size_t i = 0; i < ARRAY_LEN(apic_lvts); i++)
		bad |= snap_set_u64(lvt, apic_lvts[i].name, apic_get(s, apic_lvts[i].off));
	bad |= json_object_set_new(obj, "lvt", lvt);
	return bad ? -ENOMEM : 0;
}

int x86_lapic_check(const json_t *obj, const char *path, char *err, size_t errlen)
{
	const json_t *lvt, *a;
	char p[160];
	uint32_t v;
	int ret;

	if ((ret = snap_get_u32(obj, path, "id", UINT32_MAX, NULL, err, errlen)))
		return ret;
	for (size_t i = 0; i < ARRAY_LEN(apic_regs); i++)
		if ((ret = snap_get_u32(obj, path, apic_regs[i].name, apic_regs[i].max, &v, err,
					errlen)))
			return ret;
	/* SDM Vol. 3A §10.5.4: divide configuration uses bits 0, 1 and 3 only */
	snap_get_u32(obj, path, "timer_divide", 0xb, &v, err, errlen);
	if (v & 0x4) {
		snprintf(err, errlen, "%s.timer_divide = %u sets reserved bit 2", path, v);
		return -EINVAL;
	}
	for (size_t i = 0; i < ARRAY_LEN(apic_vecs); i++) {
		if ((ret = snap_get_array(obj, path, apic_vecs[i].name, &a, err, errlen)))
			return ret;
		snap_path(p, sizeof(p), path, apic_vecs[i].name);
		if (json_array_size(a) != 8) {
			snprintf(err, errlen, "%s: %zu elements, expected 8", p, json_array_size(a));
			return -EINVAL;
		}
		for (size_t w = 0; w < 8; w++) {
			uint64_t x;

			if (snap_json_to_u64(json_array_get(a, w), &x) || x > UINT32_MAX) {
				snprintf(err, errlen, "%s[%zu]: expected a 32-bit integer", p, w);
				return -EINVAL;
			}
		}
	}
	if ((ret = snap_get_u64(obj, path, "icr", UINT64_MAX, NULL, err, errlen)) ||
	    (ret = snap_get_object(obj, path, "lvt", &lvt, err, errlen)))
		return ret;
	snap_path(p, sizeof(p), path, "lvt");
	for (size_t i = 0; i < ARRAY_LEN(apic_lvts); i++)
		if ((ret = snap_get_u32(lvt, p, apic_lvts[i].name, UINT32_MAX, NULL, err, errlen)))
			return ret;
	return 0;
}

int x86_lapic_from_json(const json_t *obj, bool x2apic, unsigned flags, struct kvm_lapic_state *s)
{
	const json_t *lvt = json_object_get(obj, "lvt");
	char err[128];
	uint64_t icr = 0;
	uint32_t v = 0;

	if (x86_lapic_check(obj, "lapic", err, sizeof(err)))
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	snap_get_u32(obj, NULL, "id", UINT32_MAX, &v, err, sizeof(err));
	apic_set(s, APIC_ID, apic_id_is_32bit(x2apic, flags) ? v : v << 24);
	for (size_t i = 0; i < ARRAY_LEN(apic_regs); i++) {
		snap_get_u32(obj, NULL, apic_regs[i].name, UINT32_MAX, &v, err, sizeof(err));
		apic_set(s, apic_regs[i].off, v);
	}
	for (size_t i = 0; i < ARRAY_LEN(apic_vecs); i++) {
		const json_t *a = json_object_get(obj, apic_vecs[i].name);

		for (unsigned w = 0; w < 8; w++) {
			uint64_t x = 0;

			snap_json_to_u64(json_array_get(a, w), &x);
			apic_set(s, apic_vecs[i].off + w * 16, (uint32_t)x);
		}
	}
	snap_get_u64(obj, NULL, "icr", UINT64_MAX, &icr, err, sizeof(err));
	apic_set(s, APIC_ICR, (uint32_t)icr);
	apic_set(s, APIC_ICR2, (uint32_t)(icr >> 32));
	for (size_t i = 0; i < ARRAY_LEN(apic_lvts); i++) {
		snap_get_u32(lvt, NULL, apic_lvts[i].name, UINT32_MAX, &v, err, sizeof(err));
		apic_set(s, apic_lvts[i].off, v);
	}
	return 0;
}

/* ---- vcpu events --------------------------------------------------------- */

#define EV(T, m, name_, mx) FIELD(T, struct kvm_vcpu_events, m, name_, mx)
static const struct state_field ev_exception[] = {
	EV(ST_BOOL, exception.injected, "injected", 0),
	EV(ST_BOOL, exception.pending, "pending", 0),
	EV(ST_U8, exception.nr, "nr", 31),
	EV(ST_BOOL, exception.has_error_code, "has_error_code", 0),
	EV(ST_U32, exception.error_code, "error_code", 0),
	EV(ST_BOOL, exception_has_payload, "has_payload", 0),
	EV(ST_U64, exception_payload, "payload", 0),
	STATE_END,
};
static const struct state_field ev_interrupt[] = {
	EV(ST_BOOL, interrupt.injected, "injected", 0),
	EV(ST_U8, interrupt.nr, "nr", 0),
	EV(ST_BOOL, interrupt.soft, "soft", 0),
	/* KVM_X86_SHADOW_INT_MOV_SS | KVM_X86_SHADOW_INT_STI */
	EV(ST_U8, interrupt.shadow, "shadow", 3),
	STATE_END,
};
static const struct state_field ev_nmi[] = {
	EV(ST_BOOL, nmi.injected, "injected", 0),
	/* a count: KVM keeps up to two NMIs pending (one in service, one latched) */
	EV(ST_U8, nmi.pending, "pending", 2),
	EV(ST_BOOL, nmi.masked, "masked", 0),
	STATE_END,
};
static const struct state_field ev_smi[] = {
	EV(ST_BOOL, smi.smm, "smm", 0),
	EV(ST_BOOL, smi.pending, "pending", 0),
	EV(ST_BOOL, smi.smm_inside_nmi, "smm_inside_nmi", 0),
	EV(ST_BOOL, smi.latched_init, "latched_init", 0),
	STATE_END,
};
static const struct state_field ev_top[] = {
	EV(ST_U32, sipi_vector, "sipi_vector", 0xff),
	EV(ST_BOOL, triple_fault.pending, "triple_fault_pending", 0),
	STATE_END,
};

int x86_events_to_json(const struct kvm_vcpu_events *e, json_t *obj)
{
	int ret = save_table(ev_exception, e, obj, "exception");

	if (!ret)
		ret = save_table(ev_interrupt, e, obj, "interrupt");
	if (!ret)
		ret = save_table(ev_nmi, e, obj, "nmi");
	if (!ret)
		ret = save_table(ev_smi, e, obj, "smi");
	if (!ret)
		ret = state_fields_save(ev_top, e, obj);
	return ret;
}

int x86_events_check(const json_t *obj, const char *path, char *err, size_t errlen)
{
	struct kvm_vcpu_events e;
	int ret = check_table(ev_exception, obj, path, "exception", err, errlen);

	if (!ret)
		ret = check_table(ev_interrupt, obj, path, "interrupt", err, errlen);
	if (!ret)
		ret = check_table(ev_nmi, obj, path, "nmi", err, errlen);
	if (!ret)
		ret = check_table(ev_smi, obj, path, "smi", err, errlen);
	if (!ret)
		ret = state_fields_check_path(ev_top, obj, SECTION_V, path, err, errlen);
	if (ret)
		return ret;
	x86_events_from_json(obj, &e);
	/* kvm_vcpu_ioctl_x86_set_vcpu_events: vector 2 is the NMI, not an exception */
	if ((e.exception.injected || e.exception.pending) && e.exception.nr == 2) {
		snprintf(err, errlen, "%s.exception.nr = 2 is the NMI vector, not an exception",
			 path);
		return -EINVAL;
	}
	/* KVM reports it only with KVM_CAP_X86_TRIPLE_FAULT_EVENT, which amber leaves off */
	if (e.triple_fault.pending) {
		snprintf(err, errlen, "%s.triple_fault_pending: amber does not enable KVM's "
			 "triple-fault event, so it cannot be restored", path);
		return -EINVAL;
	}
	/*
	 * Injected and pending together is what KVM reports for a pending exception when
	 * KVM_CAP_EXCEPTION_PAYLOAD is off (it "deliberately conflates" the two); amber never
	 * enables that capability, so a payload cannot be restored.
	 */
	if (e.exception_has_payload) {
		snprintf(err, errlen, "%s.exception.has_payload: amber does not enable KVM's "
			 "exception payload interface, so a payload cannot be restored", path);
		return -EINVAL;
	}
	return 0;
}

int x86_events_from_json(const json_t *obj, struct kvm_vcpu_events *e)
{
	int ret;

	memset(e, 0, sizeof(*e));
	ret = load_table(ev_exception, e, obj, "exception");
	if (!ret)
		ret = load_table(ev_interrupt, e, obj, "interrupt");
	if (!ret)
		ret = load_table(ev_nmi, e, obj, "nmi");
	if (!ret)
		ret = load_table(ev_smi, e, obj, "smi");
	if (!ret)
		ret = state_fields_load(ev_top, e, obj, SECTION_V);
	if (ret)
		return ret;
	e->flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
		   KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM;
	/*
	 * Without KVM_VCPUEVENT_VALID_PAYLOAD, KVM_SET_VCPU_EVENTS drops "pending" and delivers
	 * the exception only if "injected" is set: a pending exception (reported by KVM as
	 * both) is restored as injected, never lost.
	 */
	if (e->exception.pending)
		e->exception.injected = 1;
	return 0;
}

/* ---- debug registers ------------------------------------------------------ */

/* KVM_SET_DEBUGREGS refuses DR6/DR7 with bits 63:32 set (SDM Vol. 3B §17.2). */
static const struct state_field debugregs_fields[] = {
	STATE_ARRAY_U64(struct kvm_debugregs, db),
	STATE_U64_MAX(struct kvm_debugregs, dr6, 0xffffffffULL),
	STATE_U64_MAX(struct kvm_debugregs, dr7, 0xffffffffULL),
	STATE_END,
};

int x86_debugregs_to_json(const struct kvm_debugregs *d, json_t *obj)
{
	return state_fields_save(debugregs_fields, d, obj);
}

int x86_debugregs_check(const json_t *obj, const char *path, char *err, size_t errlen)
{
	return state_fields_check_path(debugregs_fields, obj, SECTION_V, path, err, errlen);
}

int x86_debugregs_from_json(const json_t *obj, struct kvm_debugregs *d)
{
	memset(d, 0, sizeof(*d));
	return state_fields_load(debugregs_fields, d, obj, SECTION_V);
}

/* ---- XCRs ------------------------------------------------------------------ */

json_t *x86_xcrs_to_json(const struct kvm_xcrs *x)
{
	json_t *arr = json_array();

	for (uint32_t i = 0; arr && i < x->nr_xcrs && i < KVM_MAX_XCRS; i++) {
		json_t *e = json_object();

		if (!e || json_array_append_new(arr, e) < 0 ||
		    snap_set_u64(e, "index", x->xcrs[i].xcr) ||
		    snap_set_u64(e, "value", x->xcrs[i].value)) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

int x86_xcrs_check(const json_t *arr, const char *path, char *err, size_t errlen)
{
	char p[160];
	uint64_t v;
	uint32_t idx;
	int ret;

	ret = snap_json_expect(arr, JSON_ARRAY, path, err, errlen);
	if (ret)
		return ret;
	if (json_array_size(arr) > 1) {
		snprintf(err, errlen, "%s: %zu entries, KVM has only XCR0", path,
			 json_array_size(arr));
		return -EINVAL;
	}
	for (size_t i = 0; i < json_array_size(arr); i++) {
		snap_path_index(p, sizeof(p), path, i);
		if ((ret = snap_get_u32(json_array_get(arr, i), p, "index", 0, &idx, err, errlen)) ||
		    (ret = snap_get_u64(json_array_get(arr, i), p, "value", UINT64_MAX, &v, err,
					errlen)))
			return ret;
		/* SDM Vol. 1 §13.3: what XSETBV refuses, and so does KVM (__kvm_set_xcr). */
		if (!(v & 1)) {
			snprintf(err, errlen, "%s.value = 0x%" PRIx64 ": XCR0 bit 0 (x87) must be set",
				 p, v);
			return -EINVAL;
		}
		if ((v & 4) && !(v & 2)) {
			snprintf(err, errlen, "%s.value = 0x%" PRIx64 ": AVX (bit 2) without SSE (bit 1)",
				 p, v);
			return -EINVAL;
		}
		if ((v & 0xe0) && ((v & 0xe0) != 0xe0 || !(v & 4))) {
			snprintf(err, errlen, "%s.value = 0x%" PRIx64 ": AVX-512 bits 5-7 must be set "
				 "together and with AVX", p, v);
			return -EINVAL;
		}
		if (((v >> 3) & 3) == 1 || ((v >> 3) & 3) == 2) {
			snprintf(err, errlen, "%s.value = 0x%" PRIx64 ": MPX bits 3 and 4 must be set "
				 "together", p, v);
			return -EINVAL;
		}
	}
	return 0;
}

int x86_xcrs_from_json(const json_t *arr, struct kvm_xcrs *x)
{
	memset(x, 0, sizeof(*x));
	for (size_t i = 0; i < json_array_size(arr) && i < KVM_MAX_XCRS; i++) {
		uint64_t idx = 0, v = 0;

		snap_json_to_u64(json_object_get(json_array_get(arr, i), "index"), &idx);
		snap_json_to_u64(json_object_get(json_array_get(arr, i), "value"), &v);
		x->xcrs[i].xcr = (uint32_t)idx;
		x->xcrs[i].value = v;
		x->nr_xcrs++;
	}
	return 0;
}

/* ---- MP state --------------------------------------------------------------- */

static const char *const mp_state_names[] = {
	[KVM_MP_STATE_RUNNABLE] = "runnable",
	[KVM_MP_STATE_UNINITIALIZED] = "uninitialized",
	[KVM_MP_STATE_INIT_RECEIVED] = "init_received",
	[KVM_MP_STATE_HALTED] = "halted",
	[KVM_MP_STATE_SIPI_RECEIVED] = "sipi_received",
	[KVM_MP_STATE_AP_RESET_HOLD] = "ap_reset_hold",
	[KVM_MP_STATE_SUSPENDED] = "suspended",
};

const char *x86_mp_state_name(uint32_t mp_state)
{
	if (mp_state < ARRAY_LEN(mp_state_names) && mp_state_names[mp_state])
		return mp_state_names[mp_state];
	return NULL;
}

int x86_mp_state_from_name(const char *name, uint32_t *mp_state)
{
	for (uint32_t i = 0; i < ARRAY_LEN(mp_state_names); i++)
		if (mp_state_names[i] && strcmp(mp_state_names[i], name) == 0) {
			*mp_state = i;
			return 0;
		}
	return -EINVAL;
}

/* ---- MSRs ------------------------------------------------------------------- */

#define MTRR(i, n) { i, n, X86_MSR_ALWAYS }
/*
 * The MSRs amber saves, in restore order. Architectural ones by their SDM
 * names (Vol. 4), KVM's paravirtual ones (Documentation/virt/kvm/x86/msr.rst)
 * by theirs. Saved: those KVM lists in KVM_GET_MSR_INDEX_LIST, plus MTRRs,
 * which KVM emulates for every vCPU without listing them.
 */
static const struct x86_msr_desc x86_msrs[] = {
	{ 0x1a0, "IA32_MISC_ENABLE", 0 },
	{ 0x03a, "IA32_FEATURE_CONTROL", 0 },
	{ 0x03b, "IA32_TSC_ADJUST", 0 },	/* before IA32_TSC: writing TSC adjusts it */
	{ 0x010, "IA32_TSC", 0 },
	{ 0x174, "IA32_SYSENTER_CS", 0 },
	{ 0x175, "IA32_SYSENTER_ESP", 0 },
	{ 0x176, "IA32_SYSENTER_EIP", 0 },
	{ 0xc0000081, "STAR", 0 },
	{ 0xc0000082, "LSTAR", 0 },
	{ 0xc0000083, "CSTAR", 0 },
	{ 0xc0000084, "SFMASK", 0 },
	{ 0xc0000102, "KERNEL_GS_BASE", 0 },
	{ 0xc0000103, "TSC_AUX", 0 },
	{ 0x277, "IA32_PAT", 0 },
	{ 0x048, "IA32_SPEC_CTRL", 0 },
	{ 0xda0, "IA32_XSS", 0 },
	MTRR(0x2ff, "IA32_MTRR_DEF_TYPE"),
	MTRR(0x250, "IA32_MTRR_FIX64K_00000"),
	MTRR(0x258, "IA32_MTRR_FIX16K_80000"),
	MTRR(0x259, "IA32_MTRR_FIX16K_A0000"),
	MTRR(0x268, "IA32_MTRR_FIX4K_C0000"),
	MTRR(0x269, "IA32_MTRR_FIX4K_C8000"),
	MTRR(0x26a, "IA32_MTRR_FIX4K_D0000"),
	MTRR(0x26b, "IA32_MTRR_FIX4K_D8000"),
	MTRR(0x26c, "IA32_MTRR_FIX4K_E0000"),
	MTRR(0x26d, "IA32_MTRR_FIX4K_E8000"),
	MTRR(0x26e, "IA32_MTRR_FIX4K_F0000"),
	MTRR(0x26f, "IA32_MTRR_FIX4K_F8000"),
	MTRR(0x200, "IA32_MTRR_PHYSBASE0"), MTRR(0x201, "IA32_MTRR_PHYSMASK0"),
	MTRR(0x202, "IA32_MTRR_PHYSBASE1"), MTRR(0x203, "IA32_MTRR_PHYSMASK1"),
	MTRR(0x204, "IA32_MTRR_PHYSBASE2"), MTRR(0x205, "IA32_MTRR_PHYSMASK2"),
	MTRR(0x206, "IA32_MTRR_PHYSBASE3"), MTRR(0x207, "IA32_MTRR_PHYSMASK3"),
	MTRR(0x208, "IA32_MTRR_PHYSBASE4"), MTRR(0x209, "IA32_MTRR_PHYSMASK4"),
	MTRR(0x20a, "IA32_MTRR_PHYSBASE5"), MTRR(0x20b, "IA32_MTRR_PHYSMASK5"),
	MTRR(0x20c, "IA32_MTRR_PHYSBASE6"), MTRR(0x20d, "IA32_MTRR_PHYSMASK6"),
	MTRR(0x20e, "IA32_MTRR_PHYSBASE7"), MTRR(0x20f, "IA32_MTRR_PHYSMASK7"),
	{ 0x011, "KVM_WALL_CLOCK", 0 },
	{ 0x012, "KVM_SYSTEM_TIME", 0 },
	{ 0x4b564d00, "KVM_WALL_CLOCK_NEW", 0 },
	{ 0x4b564d01, "KVM_SYSTEM_TIME_NEW", 0 },
	{ 0x4b564d06, "KVM_ASYNC_PF_INT", 0 },	/* before ASYNC_PF_EN */
	{ 0x4b564d02, "KVM_ASYNC_PF_EN", 0 },
	{ 0x4b564d03, "KVM_STEAL_TIME", 0 },
	{ 0x4b564d04, "KVM_PV_EOI_EN", 0 },
	{ 0x4b564d05, "KVM_POLL_CONTROL", 0 },
	{ 0x6e0, "IA32_TSC_DEADLINE", X86_MSR_AFTER_LAPIC },
};

const struct x86_msr_desc *x86_msr_find(uint32_t index)
{
	for (size_t i = 0; i < ARRAY_LEN(x86_msrs); i++)
		if (x86_msrs[i].index == index)
			return &x86_msrs[i];
	return NULL;
}

static size_t x86_msr_order(uint32_t index)
{
	const struct x86_msr_desc *d = x86_msr_find(index);

	return d ? (size_t)(d - x86_msrs) : ARRAY_LEN(x86_msrs);
}

size_t x86_msr_select(const uint32_t *kvm_list, size_t n, uint32_t *out, size_t max)
{
	size_t k = 0;

	for (size_t i = 0; i < ARRAY_LEN(x86_msrs) && k < max; i++) {
		bool listed = x86_msrs[i].flags & X86_MSR_ALWAYS;

		for (size_t j = 0; j < n && !listed; j++)
			listed = kvm_list[j] == x86_msrs[i].index;
		if (listed)
			out[k++] = x86_msrs[i].index;
	}
	return k;
}

json_t *x86_msrs_to_json(const struct kvm_msr_entry *m, uint32_t n)
{
	json_t *arr = json_array();

	for (uint32_t i = 0; arr && i < n; i++) {
		const struct x86_msr_desc *d = x86_msr_find(m[i].index);
		json_t *e = json_object();

		if (!d || !e || json_array_append_new(arr, e) < 0 ||
		    json_object_set_new(e, "name", json_string(d->name)) < 0 ||
		    snap_set_u64(e, "index", m[i].index) || snap_set_u64(e, "value", m[i].data)) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* SDM Vol. 3A §11.12.2: PAT entries are memory types 0, 1, 4, 5, 6 or 7. */
static bool pat_is_valid(uint64_t v)
{
	for (int i = 0; i < 8; i++) {
		unsigned t = (v >> (8 * i)) & 0xff;

		if (t > 7 || t == 2 || t == 3)
			return false;
	}
	return true;
}

int x86_msrs_check(const json_t *arr, const char *path, char *err, size_t errlen)
{
	char p[160];
	int ret;

	ret = snap_json_expect(arr, JSON_ARRAY, path, err, errlen);
	if (ret)
		return ret;
	if (json_array_size(arr) > X86_STATE_MAX_MSRS) {
		snprintf(err, errlen, "%s: %zu MSRs, at most %d", path, json_array_size(arr),
			 X86_STATE_MAX_MSRS);
		return -EINVAL;
	}
	for (size_t i = 0; i < json_array_size(arr); i++) {
		const json_t *e = json_array_get(arr, i);
		const struct x86_msr_desc *d;
		const char *name;
		uint32_t idx;
		uint64_t v;

		snap_path_index(p, sizeof(p), path, i);
		if ((ret = snap_get_string(e, p, "name", &name, err, errlen)) ||
		    (ret = snap_get_u32(e, p, "index", UINT32_MAX, &idx, err, errlen)) ||
		    (ret = snap_get_u64(e, p, "value", UINT64_MAX, &v, err, errlen)))
			return ret;
		d = x86_msr_find(idx);
		if (!d) {
			snprintf(err, errlen, "%s: MSR 0x%x (%s) is not one amber restores", p, idx,
				 name);
			return -EINVAL;
		}
		if (strcmp(d->name, name) != 0) {
			snprintf(err, errlen, "%s: MSR 0x%x is %s, not \"%s\"", p, idx, d->name, name);
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++) {
			uint64_t other;

			if (!snap_json_to_u64(json_object_get(json_array_get(arr, j), "index"),
					      &other) && other == idx) {
				snprintf(err, errlen, "%s: MSR %s appears twice", p, d->name);
				return -EINVAL;
			}
		}
		if (idx == 0x277 && !pat_is_valid(v)) {
			snprintf(err, errlen, "%s: IA32_PAT = 0x%" PRIx64 " has an invalid memory type",
				 p, v);
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- MSR values KVM refuses (arch/x86/kvm/x86.c, mtrr.c, lapic.c, svm/vmx) ------------ */

struct msr_ctx {
	const struct kvm_cpuid2 *cpuid;
	bool (*in_ram)(const void *opaque, uint64_t gpa, uint64_t len);
	const void *opaque;
	unsigned va_bits;	/* 48, or 57 with CR4.LA57 */
	unsigned pa_bits;	/* CPUID 0x80000008 EAX[7:0] */
};

static bool cpuid_bit(const struct msr_ctx *c, uint32_t fn, uint32_t idx, int reg, int bit)
{
	const struct kvm_cpuid_entry2 *e = x86_cpuid_entry(c->cpuid, fn, idx);
	uint32_t r[4];

	if (!e)
		return false;
	r[0] = e->eax, r[1] = e->ebx, r[2] = e->ecx, r[3] = e->edx;
	return (r[reg] >> bit) & 1;
}

enum { EAX, EBX, ECX, EDX };

static bool is_canonical(uint64_t v, unsigned bits)
{
	return (uint64_t)((int64_t)(v << (64 - bits)) >> (64 - bits)) == v;
}

/* SDM Vol. 3A §11.11: UC, WC, WT, WP, WB */
static bool mtrr_type_ok(unsigned t)
{
	return t == 0 || t == 1 || t == 4 || t == 5 || t == 6;
}

/* IA32_SPEC_CTRL bits the guest's CPUID offers (kvm_spec_ctrl_valid_bits and later ones). */
static uint64_t spec_ctrl_bits(const struct msr_ctx *c)
{
	uint64_t ok = 0;

	if (cpuid_bit(c, 7, 0, EDX, 26) || cpuid_bit(c, 0x80000008, 0, EBX, 14))
		ok |= 1u << 0;					/* IBRS */
	if (cpuid_bit(c, 7, 0, EDX, 27) || cpuid_bit(c, 0x80000008, 0, EBX, 15))
		ok |= 1u << 1;					/* STIBP */
	if (cpuid_bit(c, 7, 0, EDX, 31) || cpuid_bit(c, 0x80000008, 0, EBX, 24) ||
	    cpuid_bit(c, 0x80000008, 0, EBX, 25))
		ok |= 1u << 2;					/* SSBD */
	if (cpuid_bit(c, 7, 2, EDX, 1))
		ok |= 3u << 3;					/* IPRED_DIS_U/S */
	if (cpuid_bit(c, 7, 2, EDX, 2))
		ok |= 3u << 5;					/* RRSBA_DIS_U/S */
	if (cpuid_bit(c, 7, 2, EDX, 4))
		ok |= 1u << 10;					/* BHI_DIS_S */
	return ok;
}

/* NULL if KVM takes v for MSR idx, else why not. */
static const char *msr_value_problem(uint32_t idx, uint64_t v, const struct msr_ctx *c)
{
	uint64_t above_pa = c->pa_bits < 64 ? ~0ULL << c->pa_bits : 0;

	switch (idx) {
	case 0xc0000082: case 0xc0000083: case 0xc0000102:	/* LSTAR, CSTAR, KERNEL_GS_BASE */
		return is_canonical(v, c->va_bits) ? NULL : "not a canonical address";
	case 0xc0000103:					/* TSC_AUX */
		return v >> 32 ? "bits 63:32 are reserved" : NULL;
	case 0x2ff:						/* MTRR_DEF_TYPE */
		if (v & ~0xcffULL)
			return "reserved bits set";
		return mtrr_type_ok(v & 0xff) ? NULL : "invalid memory type";
	case 0x250: case 0x258: case 0x259:
	case 0x268: case 0x269: case 0x26a: case 0x26b:
	case 0x26c: case 0x26d: case 0x26e: case 0x26f:		/* fixed-range MTRRs */
		for (int i = 0; i < 8; i++)
			if (!mtrr_type_ok((v >> (8 * i)) & 0xff))
				return "invalid memory type";
		return NULL;
	case 0x048:						/* SPEC_CTRL */
		return v & ~spec_ctrl_bits(c) ? "sets bits the guest's CPUID does not offer" : NULL;
	case 0xda0: {						/* XSS */
		const struct kvm_cpuid_entry2 *e = x86_cpuid_entry(c->cpuid, 0xd, 1);
		uint64_t ok = e ? e->ecx | (uint64_t)e->edx << 32 : 0;

		return v & ~ok ? "sets state components the guest's CPUID does not offer" : NULL;
	}
	case 0x03a: {						/* FEATURE_CONTROL */
		const struct kvm_cpuid_entry2 *e0 = x86_cpuid_entry(c->cpuid, 0, 0);
		uint64_t ok = 1;				/* lock */

		/* "Auth"enticAMD, "Hygo"nGenuine: KVM takes only a zero */
		if (e0 && (e0->ebx == 0x68747541 || e0->ebx == 0x6f677948))
			return v ? "AMD CPUs have no IA32_FEATURE_CONTROL" : NULL;
		if (cpuid_bit(c, 1, 0, ECX, 5))
			ok |= 6;				/* VMX in/outside SMX */
		if (cpuid_bit(c, 7, 0, EBX, 2))
			ok |= 3u << 17;				/* SGX */
		ok |= 1u << 20;					/* LMCE */
		return v & ~ok ? "sets bits the guest's CPUID does not offer" : NULL;
	}
	case 0x4b564d06:					/* KVM_ASYNC_PF_INT */
		return v >> 8 ? "only bits 7:0 (the vector) may be set" : NULL;
	case 0x4b564d02:					/* KVM_ASYNC_PF_EN */
		if (v & 0x30)
			return "reserved bits 5:4 set";
		/* enabled with interrupt delivery: KVM maps the 64-bit token at the address */
		if ((v & 9) == 9 && !c->in_ram(c->opaque, v & ~0x3fULL, 8))
			return "the address is not in guest RAM";
		return NULL;
	case 0x4b564d03:					/* KVM_STEAL_TIME */
		return v & 0x3e ? "reserved bits 5:1 set" : NULL;
	case 0x4b564d04:					/* KVM_PV_EOI_EN */
		if (v & 2)
			return "the address is not 4-byte aligned";
		if ((v & 1) && !c->in_ram(c->opaque, v & ~1ULL, 1))
			return "the address is not in guest RAM";
		return NULL;
	case 0x4b564d05:					/* KVM_POLL_CONTROL */
		return v >> 1 ? "only bit 0 may be set" : NULL;
	default:
		break;
	}
	if (idx >= 0x200 && idx <= 0x20f) {			/* variable-range MTRRs */
		if (idx & 1)
			return v & (above_pa | 0x7ff) ? "reserved bits set" : NULL;
		if (v & (above_pa | 0xf00))
			return "reserved bits set";
		return mtrr_type_ok(v & 0xff) ? NULL : "invalid memory type";
	}
	return NULL;
}

/*
 * XCR0 and the XSAVE header against the guest's CPUID (what __kvm_set_xcr and
 * KVM_SET_XSAVE's validate_user_xstate_header refuse; SDM Vol. 1 §13.4.2).
 */
static int check_xstate(const json_t *vcpu, const struct kvm_cpuid2 *cpuid, const char *path,
			char *err, size_t errlen)
{
	const struct kvm_cpuid_entry2 *d0 = x86_cpuid_entry(cpuid, 0xd, 0);
	uint64_t offered = d0 ? d0->eax | (uint64_t)d0->edx << 32 : 3;
	const json_t *xs = json_object_get(vcpu, "xsave"), *xcrs = json_object_get(vcpu, "xcrs");
	uint64_t size = 0, xcr0 = 0, bv, comp;
	uint32_t mxcsr;
	uint8_t *buf;
	char p[160];
	int ret = 0;

	offered |= 3;			/* x87 and SSE state exist without XSAVE */
	snap_json_to_u64(json_object_get(json_array_get(xcrs, 0), "value"), &xcr0);
	if (xcr0 & ~offered) {
		snprintf(err, errlen, "%s.xcrs[0].value = 0x%" PRIx64 ": sets state components "
			 "the guest's CPUID does not offer (0x%" PRIx64 ")", path, xcr0, offered);
		return -EINVAL;
	}
	snap_json_to_u64(json_object_get(xs, "size"), &size);
	if (size < 576 || size > X86_XSAVE_MAX_SIZE) {	/* legacy area + header */
		snprintf(err, errlen, "%s.xsave.size = %" PRIu64 ": no room for the XSAVE header",
			 path, size);
		return -EINVAL;
	}
	buf = calloc(1, size);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snap_path(p, sizeof(p), path, "xsave");
	ret = snap_get_bytes(xs, p, "data", buf, size, NULL, err, errlen);
	if (ret)
		goto out;
	memcpy(&mxcsr, buf + 24, 4);
	memcpy(&bv, buf + 512, 8);
	memcpy(&comp, buf + 520, 8);
	if (bv & ~offered) {
		snprintf(err, errlen, "%s.data: XSTATE_BV = 0x%" PRIx64 " names state components the "
			 "guest's CPUID does not offer (0x%" PRIx64 ")", p, bv, offered);
		ret = -EINVAL;
	} else if (comp) {
		snprintf(err, errlen, "%s.data: XCOMP_BV = 0x%" PRIx64 ": KVM takes only the "
			 "standard (not compacted) format", p, comp);
		ret = -EINVAL;
	} else {
		for (int i = 528; i < 576 && !ret; i++)
			if (buf[i]) {
				snprintf(err, errlen, "%s.data: reserved byte %d of the XSAVE header "
					 "is not zero", p, i);
				ret = -EINVAL;
			}
	}
	/* MXCSR bits 31:16 are reserved (and DAZ, bit 6, exists on every 64-bit CPU) */
	if (!ret && (bv & 7) && (mxcsr >> 16)) {
		snprintf(err, errlen, "%s.data: MXCSR = 0x%x sets reserved bits 31:16", p, mxcsr);
		ret = -EINVAL;
	}
out:
	free(buf);
	return ret;
}

/* CR4 bits that exist only with a CPUID feature (KVM's __cr4_reserved_bits). */
static const struct {
	int bit;
	uint32_t fn, idx;
	int reg, fbit;
} cr4_features[] = {
	{ 11, 7, 0, ECX, 2 },	/* UMIP */
	{ 12, 7, 0, ECX, 16 },	/* LA57 */
	{ 13, 1, 0, ECX, 5 },	/* VMXE: VMX */
	{ 16, 7, 0, EBX, 0 },	/* FSGSBASE */
	{ 17, 1, 0, ECX, 17 },	/* PCIDE: PCID */
	{ 18, 1, 0, ECX, 26 },	/* OSXSAVE: XSAVE */
	{ 20, 7, 0, EBX, 7 },	/* SMEP */
	{ 21, 7, 0, EBX, 20 },	/* SMAP */
	{ 22, 7, 0, ECX, 3 },	/* PKE: PKU */
	{ 23, 7, 0, ECX, 7 },	/* CET: shadow stacks ... */
	{ 23, 7, 0, EDX, 20 },	/* ... or indirect branch tracking */
	{ 27, 7, 1, EAX, 26 },	/* LAM_SUP: LAM */
};

/* CR0, CR3 and CR4 as kvm_is_valid_sregs judges them, given the guest's CPUID. */
static int check_control_regs(const json_t *vcpu, const struct msr_ctx *c, const char *path,
			      char *err, size_t errlen)
{
	const json_t *sregs = json_object_get(vcpu, "sregs");
	uint64_t cr0 = 0, cr3 = 0, cr4 = 0, efer = 0, ok = 0x7ff;	/* VME .. OSXMMEXCPT */

	snap_json_to_u64(json_object_get(sregs, "cr0"), &cr0);
	snap_json_to_u64(json_object_get(sregs, "cr3"), &cr3);
	snap_json_to_u64(json_object_get(sregs, "cr4"), &cr4);
	snap_json_to_u64(json_object_get(sregs, "efer"), &efer);
	for (size_t i = 0; i < ARRAY_LEN(cr4_features); i++)
		if (cpuid_bit(c, cr4_features[i].fn, cr4_features[i].idx, cr4_features[i].reg,
			      cr4_features[i].fbit))
			ok |= 1ULL << cr4_features[i].bit;
	if (cr4 & ~ok) {
		snprintf(err, errlen, "%s.sregs.cr4 = 0x%" PRIx64 ": bits 0x%" PRIx64 " are reserved "
			 "or need a feature the guest's CPUID does not offer", path, cr4, cr4 & ~ok);
		return -EINVAL;
	}
	if (cr0 >> 32) {
		snprintf(err, errlen, "%s.sregs.cr0 = 0x%" PRIx64 ": bits 63:32 are reserved", path,
			 cr0);
		return -EINVAL;
	}
	if ((efer & X86_EFER_LME) && (cr0 & X86_CR0_PG) && c->pa_bits < 64 && cr3 >> c->pa_bits) {
		snprintf(err, errlen, "%s.sregs.cr3 = 0x%" PRIx64 ": beyond the guest's %u-bit "
			 "physical addresses", path, cr3, c->pa_bits);
		return -EINVAL;
	}
	return 0;
}

int x86_vcpu_check_values(const json_t *vcpu, const struct kvm_cpuid2 *cpuid,
			  bool (*in_ram)(const void *opaque, uint64_t gpa, uint64_t len),
			  const void *opaque, const char *path, char *err, size_t errlen)
{
	const json_t *arr = json_object_get(vcpu, "msrs");
	const struct kvm_cpuid_entry2 *e = x86_cpuid_entry(cpuid, 0x80000008, 0);
	struct msr_ctx c = { .cpuid = cpuid, .in_ram = in_ram, .opaque = opaque,
			     .va_bits = 48, .pa_bits = e && (e->eax & 0xff) ? e->eax & 0xff : 36 };
	uint64_t cr4 = 0;

	snap_json_to_u64(json_object_get(json_object_get(vcpu, "sregs"), "cr4"), &cr4);
	if (cr4 & (1u << 12))					/* LA57 */
		c.va_bits = 57;
	if (check_control_regs(vcpu, &c, path, err, errlen) ||
	    check_xstate(vcpu, cpuid, path, err, errlen))
		return -EINVAL;
	for (size_t i = 0; i < json_array_size(arr); i++) {
		const json_t *m = json_array_get(arr, i);
		uint64_t idx = 0, v = 0;
		const char *why;

		snap_json_to_u64(json_object_get(m, "index"), &idx);
		snap_json_to_u64(json_object_get(m, "value"), &v);
		why = msr_value_problem((uint32_t)idx, v, &c);
		if (why) {
			snprintf(err, errlen, "%s.msrs[%zu]: %s = 0x%" PRIx64 ": %s", path, i,
				 json_string_value(json_object_get(m, "name")), v, why);
			return -EINVAL;
		}
	}
	return 0;
}

int x86_msrs_from_json(const json_t *arr, struct kvm_msr_entry *m, uint32_t max, uint32_t *n)
{
	uint32_t k = 0;

	for (size_t i = 0; i < json_array_size(arr); i++) {
		uint64_t idx = 0, v = 0;

		if (k == max)
			return -E2BIG;
		if (snap_json_to_u64(json_object_get(json_array_get(arr, i), "index"), &idx) ||
		    snap_json_to_u64(json_object_get(json_array_get(arr, i), "value"), &v) ||
		    !x86_msr_find((uint32_t)idx))
			return -EINVAL;
		memset(&m[k], 0, sizeof(m[k]));
		m[k].index = (uint32_t)idx;
		m[k].data = v;
		k++;
	}
	/* Restore in amber's table order whatever order the file lists them in. */
	for (uint32_t i = 1; i < k; i++)
		for (uint32_t j = i; j > 0 && x86_msr_order(m[j - 1].index) > x86_msr_order(m[j].index); j--) {
			struct kvm_msr_entry t = m[j];

			m[j] = m[j - 1];
			m[j - 1] = t;
		}
	*n = k;
	return 0;
}

/* ---- the whole vCPU --------------------------------------------------------- */

void x86_vcpu_state_free(struct x86_vcpu_state *s)
{
	free(s->xsave);
	s->xsave = NULL;
	s->xsave_size = 0;
}

static int set_obj(json_t *obj, const char *key, json_t *v)
{
	return v && json_object_set_new(obj, key, v) == 0 ? 0 : -ENOMEM;
}

int x86_vcpu_state_to_json(const struct x86_vcpu_state *s, unsigned flags, json_t *obj)
{
	bool x2apic = s->sregs.apic_base & X86_APIC_BASE_EXTD;
	const char *mp = x86_mp_state_name(s->mp_state);
	json_t *regs = json_object(), *sregs = json_object(), *lapic = json_object();
	json_t *dbg = json_object(), *ev = json_object(), *xs = json_object();
	int ret = -ENOMEM;

	if (!mp)
		ret = -EINVAL;	/* an MP state this amber cannot name: never save blindly */
	else if (regs && sregs && lapic && dbg && ev && xs &&
		 !x86_regs_to_json(&s->regs, regs) && !x86_sregs_to_json(&s->sregs, sregs) &&
		 !x86_lapic_to_json(&s->lapic, x2apic, flags, lapic) &&
		 !x86_debugregs_to_json(&s->debugregs, dbg) && !x86_events_to_json(&s->events, ev) &&
		 !snap_set_u64(xs, "size", s->xsave_size) &&
		 !snap_set_bytes(xs, "data", s->xsave, s->xsave_size) &&
		 !snap_set_u64(obj, "id", s->id) &&
		 !set_obj(obj, "mp_state", json_string(mp))) {
		ret = set_obj(obj, "regs", regs);
		ret |= set_obj(obj, "sregs", sregs);
		ret |= set_obj(obj, "xcrs", x86_xcrs_to_json(&s->xcrs));
		ret |= set_obj(obj, "xsave", xs);
		ret |= set_obj(obj, "msrs", x86_msrs_to_json(s->msrs, s->nmsrs));
		ret |= set_obj(obj, "lapic", lapic);
		ret |= set_obj(obj, "debugregs", dbg);
		ret |= set_obj(obj, "events", ev);
		return ret ? -ENOMEM : 0;
	}
	json_decref(regs);
	json_decref(sregs);
	json_decref(lapic);
	json_decref(dbg);
	json_decref(ev);
	json_decref(xs);
	return ret;
}

int x86_vcpu_state_check(const json_t *obj, const char *path, char *err, size_t errlen)
{
	const json_t *o, *xs;
	const char *mp;
	char p[160];
	uint64_t size, apic_base, id;
	uint32_t st;
	int ret;

	ret = snap_json_expect(obj, JSON_OBJECT, path, err, errlen);
	if (ret)
		return ret;
	if ((ret = snap_get_u32(obj, path, "id", 4095, NULL, err, errlen)) ||
	    (ret = snap_get_string(obj, path, "mp_state", &mp, err, errlen)))
		return ret;
	if (x86_mp_state_from_name(mp, &st)) {
		snprintf(err, errlen, "%s.mp_state: unknown state \"%s\"", path, mp);
		return -EINVAL;
	}
#define SUB(key, getter, fn) do {						\
		if ((ret = getter(obj, path, key, &o, err, errlen)))		\
			return ret;						\
		snap_path(p, sizeof(p), path, key);				\
		if ((ret = fn(o, p, err, errlen)))				\
			return ret;						\
	} while (0)
	SUB("regs", snap_get_object, x86_regs_check);
	SUB("sregs", snap_get_object, x86_sregs_check);
	SUB("xcrs", snap_get_array, x86_xcrs_check);
	SUB("msrs", snap_get_array, x86_msrs_check);
	SUB("lapic", snap_get_object, x86_lapic_check);
	SUB("debugregs", snap_get_object, x86_debugregs_check);
	SUB("events", snap_get_object, x86_events_check);
#undef SUB
	if ((ret = snap_get_object(obj, path, "xsave", &xs, err, errlen)))
		return ret;
	snap_path(p, sizeof(p), path, "xsave");
	if ((ret = snap_get_u64(xs, p, "size", X86_XSAVE_MAX_SIZE, &size, err, errlen)))
		return ret;
	if (size < X86_XSAVE_MIN_SIZE) {
		snprintf(err, errlen, "%s.size = %" PRIu64 " is below the %d-byte XSAVE area", p,
			 size, X86_XSAVE_MIN_SIZE);
		return -EINVAL;
	}
	if ((ret = snap_get_bytes(xs, p, "data", NULL, (size_t)size, NULL, err, errlen)))
		return ret;
	/* An xAPIC has an 8-bit ID (SDM Vol. 3A §10.4.6). */
	snap_json_to_u64(json_object_get(json_object_get(obj, "sregs"), "apic_base"), &apic_base);
	snap_json_to_u64(json_object_get(json_object_get(obj, "lapic"), "id"), &id);
	if (!(apic_base & X86_APIC_BASE_EXTD) && id > 0xff) {
		snprintf(err, errlen, "%s.lapic.id = %" PRIu64 " exceeds 255 in xAPIC mode", path, id);
		return -EINVAL;
	}
	return 0;
}

int x86_vcpu_state_from_json(const json_t *obj, unsigned flags, struct x86_vcpu_state *s,
			     char *err, size_t errlen)
{
	const json_t *xs;
	uint64_t v = 0;
	int ret;

	memset(s, 0, sizeof(*s));
	ret = x86_vcpu_state_check(obj, "vcpu", err, errlen);
	if (ret)
		return ret;
	snap_json_to_u64(json_object_get(obj, "id"), &v);
	s->id = (uint32_t)v;
	x86_mp_state_from_name(json_string_value(json_object_get(obj, "mp_state")), &s->mp_state);
	x86_regs_from_json(json_object_get(obj, "regs"), &s->regs);
	x86_sregs_from_json(json_object_get(obj, "sregs"), &s->sregs);
	x86_xcrs_from_json(json_object_get(obj, "xcrs"), &s->xcrs);
	x86_lapic_from_json(json_object_get(obj, "lapic"), s->sregs.apic_base & X86_APIC_BASE_EXTD,
			    flags, &s->lapic);
	x86_debugregs_from_json(json_object_get(obj, "debugregs"), &s->debugregs);
	x86_events_from_json(json_object_get(obj, "events"), &s->events);
	ret = x86_msrs_from_json(json_object_get(obj, "msrs"), s->msrs, X86_STATE_MAX_MSRS,
				 &s->nmsrs);
	if (ret) {
		snprintf(err, errlen, "vcpu.msrs: cannot load");
		return ret;
	}
	xs = json_object_get(obj, "xsave");
	snap_json_to_u64(json_object_get(xs, "size"), &v);
	s->xsave = calloc(1, (size_t)v);
	if (!s->xsave)
		return -ENOMEM;
	s->xsave_size = (size_t)v;
	ret = snap_get_bytes(xs, "vcpu.xsave", "data", s->xsave, s->xsave_size, NULL, err, errlen);
	if (ret)
		x86_vcpu_state_free(s);
	return ret;
}

void x86_vcpu_state_advance_tsc(struct x86_vcpu_state *s, uint64_t ns, uint32_t tsc_khz)
{
	/* ticks = ns * kHz / 10^6, split to avoid overflowing 64 bits */
	uint64_t ticks = ns / 1000000 * tsc_khz + ns % 1000000 * tsc_khz / 1000000;

	for (uint32_t i = 0; i < s->nmsrs; i++)
		if (s->msrs[i].index == 0x10)
			s->msrs[i].data += ticks;
}

/* ---- ioctl wrappers ------------------------------------------------------------ */

static int xioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) < 0 ? -errno : 0;
}

/* KVM_GET/SET_MSRS take a header followed by entries. */
static struct kvm_msrs *msr_buf_new(void)
{
	return calloc(1, sizeof(struct kvm_msrs) + X86_STATE_MAX_MSRS * sizeof(struct kvm_msr_entry));
}

int x86_vcpu_state_get(int vcpu_fd, uint32_t id, const uint32_t *msr_index, size_t nmsrs,
		       size_t xsave2_size, struct x86_vcpu_state *s)
{
	struct kvm_mp_state mp;
	struct kvm_msrs *mb = NULL;
	int ret, n;

	memset(s, 0, sizeof(*s));
	s->id = id;
	/* Order: see the comment at the top of this file. */
	if ((ret = xioctl(vcpu_fd, KVM_GET_MP_STATE, &mp)))
		return ret;
	s->mp_state = mp.mp_state;
	if ((ret = xioctl(vcpu_fd, KVM_GET_REGS, &s->regs)) ||
	    (ret = xioctl(vcpu_fd, KVM_GET_SREGS, &s->sregs)))
		return ret;
	s->xsave_size = xsave2_size > X86_XSAVE_MIN_SIZE ? xsave2_size : X86_XSAVE_MIN_SIZE;
	s->xsave = calloc(1, s->xsave_size);
	if (!s->xsave)
		return -ENOMEM;
	ret = xioctl(vcpu_fd, xsave2_size ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, s->xsave);
	if (ret || (ret = xioctl(vcpu_fd, KVM_GET_XCRS, &s->xcrs)))
		goto fail;
	mb = msr_buf_new();
	if (!mb) {
		ret = -ENOMEM;
		goto fail;
	}
	if (nmsrs > X86_STATE_MAX_MSRS)
		nmsrs = X86_STATE_MAX_MSRS;
	for (size_t i = 0; i < nmsrs; i++)
		mb->entries[i].index = msr_index[i];
	mb->nmsrs = (uint32_t)nmsrs;
	n = ioctl(vcpu_fd, KVM_GET_MSRS, mb);
	if (n < 0 || (size_t)n != nmsrs) {
		/* KVM stops at the first MSR it cannot read: never save a partial list. */
		ret = n < 0 ? -errno : -EIO;
		goto fail;
	}
	memcpy(s->msrs, mb->entries, nmsrs * sizeof(mb->entries[0]));
	s->nmsrs = (uint32_t)nmsrs;
	if ((ret = xioctl(vcpu_fd, KVM_GET_LAPIC, &s->lapic)) ||
	    (ret = xioctl(vcpu_fd, KVM_GET_DEBUGREGS, &s->debugregs)) ||
	    (ret = xioctl(vcpu_fd, KVM_GET_VCPU_EVENTS, &s->events)))
		goto fail;
	free(mb);
	return 0;
fail:
	free(mb);
	x86_vcpu_state_free(s);
	return ret;
}

static int put_msrs(int vcpu_fd, const struct x86_vcpu_state *s, bool after_lapic, char *err,
		    size_t errlen)
{
	struct kvm_msrs *mb = msr_buf_new();
	uint32_t k = 0;
	int n, ret;

	if (!mb)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->nmsrs && i < X86_STATE_MAX_MSRS; i++) {
		const struct x86_msr_desc *d = x86_msr_find(s->msrs[i].index);

		if (d && !!(d->flags & X86_MSR_AFTER_LAPIC) == after_lapic)
			mb->entries[k++] = s->msrs[i];
	}
	mb->nmsrs = k;
	n = k ? ioctl(vcpu_fd, KVM_SET_MSRS, mb) : 0;
	/* n: how many entries KVM accepted; it stops at the first refusal */
	ret = n < 0 ? -errno : (uint32_t)n == k ? 0 : -EINVAL;
	if (n < 0)
		snprintf(err, errlen, "msrs: KVM_SET_MSRS failed: %s", strerror(errno));
	else if (ret) {
		const struct x86_msr_desc *d = x86_msr_find(mb->entries[n].index);

		snprintf(err, errlen, "msrs: KVM refuses %s = 0x%llx", d ? d->name : "?",
			 (unsigned long long)mb->entries[n].data);
	}
	free(mb);
	return ret;
}

/* put_step: one KVM_SET_* of the restore order; on failure err names the section. */
static int put_step(int vcpu_fd, unsigned long req, void *arg, const char *what, char *err,
		    size_t errlen)
{
	int ret = xioctl(vcpu_fd, req, arg);

	if (ret)
		snprintf(err, errlen, "%s: KVM refuses them (%s)", what, strerror(-ret));
	return ret;
}

int x86_vcpu_state_put(int vcpu_fd, size_t xsave2_size, const struct x86_vcpu_state *s,
		       char *err, size_t errlen)
{
	struct kvm_mp_state mp = { .mp_state = s->mp_state };
	struct kvm_vcpu_events ev = s->events;
	size_t len = s->xsave_size > xsave2_size ? s->xsave_size : xsave2_size;
	void *xsave;
	int ret;

	/*
	 * KVM_SET_XSAVE reads this host's full XSAVE size (the KVM_CAP_XSAVE2
	 * value), which may exceed what the source saved: pad with zeros (the
	 * header's XSTATE_BV says which components are present).
	 */
	if (len < X86_XSAVE_MIN_SIZE)
		len = X86_XSAVE_MIN_SIZE;
	xsave = calloc(1, len);
	if (!xsave) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (s->xsave_size)
		memcpy(xsave, s->xsave, s->xsave_size);

	/* Order: see the comment at the top of this file. */
	ret = put_step(vcpu_fd, KVM_SET_SREGS, (void *)&s->sregs, "sregs", err, errlen);
	if (!ret)
		ret = put_step(vcpu_fd, KVM_SET_REGS, (void *)&s->regs, "regs", err, errlen);
	if (!ret)
		ret = put_step(vcpu_fd, KVM_SET_XSAVE, xsave, "xsave", err, errlen);
	if (!ret)
		ret = put_step(vcpu_fd, KVM_SET_XCRS, (void *)&s->xcrs, "xcrs", err, errlen);
	if (!ret)
		ret = put_msrs(vcpu_fd, s, false, err, errlen);
	if (!ret)
		ret = put_step(vcpu_fd, KVM_SET_LAPIC, (void *)&s->lapic, "lapic", err, errlen);
	if (!ret)
		ret = put_msrs(vcpu_fd, s, true, err, errlen);
	if (!ret)
		ret = put_step(vcpu_fd, KVM_SET_VCPU_EVENTS, &ev, "events", err, errlen);
	if (!ret)
		ret = put_step(vcpu_fd, KVM_SET_MP_STATE, &mp, "mp_state", err, errlen);
	if (!ret)
		ret = put_step(vcpu_fd, KVM_SET_DEBUGREGS, (void *)&s->debugregs, "debugregs", err,
			       errlen);
	free(xsave);
	return ret;
}

int x86_vcpu_state_save(int vcpu_fd, uint32_t id, const uint32_t *msr_index, size_t nmsrs,
			size_t xsave2_size, unsigned flags, json_t *obj)
{
	struct x86_vcpu_state s;
	int ret = x86_vcpu_state_get(vcpu_fd, id, msr_index, nmsrs, xsave2_size, &s);

	if (ret)
		return ret;
	ret = x86_vcpu_state_to_json(&s, flags, obj);
	x86_vcpu_state_free(&s);
	return ret;
}

int x86_vcpu_state_load(int vcpu_fd, size_t xsave2_size, const json_t *obj, unsigned flags,
			char *err, size_t errlen)
{
	struct x86_vcpu_state s;
	int ret = x86_vcpu_state_from_json(obj, flags, &s, err, errlen);

	if (!ret)
		ret = x86_vcpu_state_put(vcpu_fd, xsave2_size, &s, err, errlen);
	x86_vcpu_state_free(&s);
	return ret;
}
