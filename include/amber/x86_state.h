/*
 * x86 vCPU and VM state <-> vm.json, as architectural state (DESIGN.md
 * "Architectural state, not implementation state"): registers by name, the
 * LAPIC as its registers (not KVM's page), timers as guest-relative values.
 *
 * Each piece is a pure encode/decode over the KVM structs (testable without
 * KVM) plus a check that validates JSON without any fd, so `inspect --verify`
 * and restore refuse a bad section before a single ioctl. The thin ioctl
 * wrappers at the end (x86_vcpu_state_get/put, x86_vm_state_save/load) use
 * them in the documented order (src/arch/x86/vcpu_state.c).
 *
 * vCPU section:
 *   {"id", "mp_state", "regs", "sregs", "xcrs", "xsave", "msrs", "lapic",
 *    "debugregs", "events"}
 * VM section ("vm" in vm.json):
 *   {"irqchip": {"pic_master", "pic_slave", "ioapic"}, "pit", "clock"}
 */
#ifndef AMBER_X86_STATE_H
#define AMBER_X86_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <linux/kvm.h>

#define X86_STATE_MAX_MSRS 64
#define X86_XSAVE_MIN_SIZE 4096		/* struct kvm_xsave; XSAVE2 may be larger */
#define X86_XSAVE_MAX_SIZE (1u << 20)

/* Flags for the LAPIC codec: the VM enabled KVM_X2APIC_API_USE_32BIT_IDS. */
#define X86_STATE_X2APIC_API 1u

struct x86_vcpu_state {
	uint32_t id;
	uint32_t mp_state;		/* KVM_MP_STATE_* */
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs debugregs;
	struct kvm_vcpu_events events;
	struct kvm_lapic_state lapic;
	uint32_t nmsrs;
	struct kvm_msr_entry msrs[X86_STATE_MAX_MSRS];
	void *xsave;			/* malloc'd, xsave_size bytes */
	size_t xsave_size;
};

void x86_vcpu_state_free(struct x86_vcpu_state *s);

/* ---- pieces (pure) ------------------------------------------------------ */

int x86_regs_to_json(const struct kvm_regs *r, json_t *obj);
int x86_regs_check(const json_t *obj, const char *path, char *err, size_t errlen);
int x86_regs_from_json(const json_t *obj, struct kvm_regs *r);

int x86_segment_to_json(const struct kvm_segment *s, json_t *obj);
int x86_segment_check(const json_t *obj, const char *path, char *err, size_t errlen);
int x86_segment_from_json(const json_t *obj, struct kvm_segment *s);

/* Segments, descriptor tables, CR0/2/3/4/8, EFER, APIC base. The
 * interrupt bitmap is not saved: a pending external interrupt is carried by
 * the vcpu events ("events.interrupt"), which are restored after sregs. */
int x86_sregs_to_json(const struct kvm_sregs *s, json_t *obj);
int x86_sregs_check(const json_t *obj, const char *path, char *err, size_t errlen);
int x86_sregs_from_json(const json_t *obj, struct kvm_sregs *s);

/*
 * LAPIC registers by name: id (the architectural APIC ID), version, tpr,
 * apr, ppr, ldr, dfr, svr, isr/tmr/irr (8 x 32 bits, bit n of word w is
 * vector 32w+n), esr, icr (64 bits: high word is the destination), lvt
 * {cmci, timer, thermal, perf, lint0, lint1, error}, timer_initial_count,
 * timer_current_count, timer_divide. x2apic: the guest is in x2APIC mode
 * (APIC base bit 10); flags: X86_STATE_X2APIC_API. Encoding writes a fresh
 * page; registers not named are zero.
 */
int x86_lapic_to_json(const struct kvm_lapic_state *s, bool x2apic, unsigned flags, json_t *obj);
int x86_lapic_check(const json_t *obj, const char *path, char *err, size_t errlen);
int x86_lapic_from_json(const json_t *obj, bool x2apic, unsigned flags, struct kvm_lapic_state *s);

int x86_events_to_json(const struct kvm_vcpu_events *e, json_t *obj);
int x86_events_check(const json_t *obj, const char *path, char *err, size_t errlen);
/* Sets the KVM_VCPUEVENT_VALID_* flags for the fields present. */
int x86_events_from_json(const json_t *obj, struct kvm_vcpu_events *e);

int x86_debugregs_to_json(const struct kvm_debugregs *d, json_t *obj);
int x86_debugregs_check(const json_t *obj, const char *path, char *err, size_t errlen);
int x86_debugregs_from_json(const json_t *obj, struct kvm_debugregs *d);

json_t *x86_xcrs_to_json(const struct kvm_xcrs *x);
int x86_xcrs_check(const json_t *arr, const char *path, char *err, size_t errlen);
int x86_xcrs_from_json(const json_t *arr, struct kvm_xcrs *x);

/* "runnable", "halted", ... */
const char *x86_mp_state_name(uint32_t mp_state);
int x86_mp_state_from_name(const char *name, uint32_t *mp_state);

/* MSRs amber saves, in restore order. */
struct x86_msr_desc {
	uint32_t index;
	const char *name;
	unsigned flags;
};
#define X86_MSR_ALWAYS      1u	/* emulated by KVM for every vCPU, not in its index list */
#define X86_MSR_AFTER_LAPIC 2u	/* restore after KVM_SET_LAPIC (TSC deadline) */
const struct x86_msr_desc *x86_msr_find(uint32_t index);
/* Indexes of amber's list that KVM offers (kvm_list from KVM_GET_MSR_INDEX_LIST). */
size_t x86_msr_select(const uint32_t *kvm_list, size_t n, uint32_t *out, size_t max);
/* [{"name", "index", "value"}, ...] */
json_t *x86_msrs_to_json(const struct kvm_msr_entry *m, uint32_t n);
int x86_msrs_check(const json_t *arr, const char *path, char *err, size_t errlen);
int x86_msrs_from_json(const json_t *arr, struct kvm_msr_entry *m, uint32_t max, uint32_t *n);
/*
 * What the vCPU's MSR values must satisfy for KVM_SET_MSRS to take them, given
 * the guest's CPUID and RAM (in_ram(opaque, gpa, len): the range is guest RAM):
 * canonical LSTAR/CSTAR/KERNEL_GS_BASE (48 or 57 bits by the saved CR4.LA57),
 * MTRR memory types and reserved bits (above the guest's physical address
 * width), SPEC_CTRL/XSS/FEATURE_CONTROL bits the guest's CPUID allows, and the
 * reserved bits and guest addresses of KVM's paravirtual MSRs; XCR0 and the
 * XSAVE header (XSTATE_BV, XCOMP_BV, reserved bytes, MXCSR) against the
 * guest's CPUID. vcpu: one checked "vcpus[i]" object. Names field and reason.
 */
int x86_vcpu_check_values(const json_t *vcpu, const struct kvm_cpuid2 *cpuid,
			  bool (*in_ram)(const void *opaque, uint64_t gpa, uint64_t len),
			  const void *opaque, const char *path, char *err, size_t errlen);

/* The whole vCPU section. */
int x86_vcpu_state_to_json(const struct x86_vcpu_state *s, unsigned flags, json_t *obj);
int x86_vcpu_state_check(const json_t *obj, const char *path, char *err, size_t errlen);
int x86_vcpu_state_from_json(const json_t *obj, unsigned flags, struct x86_vcpu_state *s,
			     char *err, size_t errlen);
/* --clock advance: move the guest TSC (MSR IA32_TSC) on by ns at tsc_khz. */
void x86_vcpu_state_advance_tsc(struct x86_vcpu_state *s, uint64_t ns, uint32_t tsc_khz);

/* ---- CPUID ------------------------------------------------------------- */

/* [{"function", "index", "flags", "eax", "ebx", "ecx", "edx"}, ...] */
json_t *x86_cpuid_to_json(const struct kvm_cpuid2 *c);
int x86_cpuid_check(const json_t *arr, const char *path, char *err, size_t errlen);
/* malloc'd kvm_cpuid2 (free()) from a checked array. */
struct kvm_cpuid2 *x86_cpuid_from_json(const json_t *arr);
/*
 * Every feature bit the guest saw (leaves 1, 6, 7, 0xd, 0x80000001,
 * 0x80000007/8, 0x40000001) must be in supported (KVM_GET_SUPPORTED_CPUID),
 * except bits the VMM or the guest's own state set (OSXSAVE, OSPKE,
 * HYPERVISOR, TSC-deadline, HTT). Names the first missing feature.
 */
int x86_cpuid_check_host(const json_t *guest, const struct kvm_cpuid2 *supported,
			 char *err, size_t errlen);
/* The entry for leaf fn (subleaf idx where it matters), or NULL. */
const struct kvm_cpuid_entry2 *x86_cpuid_entry(const struct kvm_cpuid2 *c, uint32_t fn,
					       uint32_t idx);
/* KVM_GET_SUPPORTED_CPUID from /dev/kvm; -errno when KVM is not usable. */
int x86_kvm_supported_cpuid(struct kvm_cpuid2 **out);

/*
 * TSC frequency on restore: KVM tolerates 250 ppm (tsc_tolerance_ppm);
 * beyond it the frequency must be set with KVM_SET_TSC_KHZ, which needs
 * TSC scaling (KVM_CAP_TSC_CONTROL + hardware). *need_set tells whether to
 * set it; -ENOTSUP with a message when it would be needed but cannot.
 */
int x86_tsc_khz_check(uint32_t saved_khz, uint32_t host_khz, bool can_scale, bool *need_set,
		      char *err, size_t errlen);

/* ---- VM: PIC pair, IOAPIC, PIT, kvmclock --------------------------------- */

struct x86_vm_state {
	struct kvm_pic_state pic[2];	/* master, slave */
	struct kvm_ioapic_state ioapic;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;	/* clock: guest ns; realtime: host wall ns */
};

int x86_pic_to_json(const struct kvm_pic_state *p, json_t *obj);
int x86_pic_check(const json_t *obj, const char *path, char *err, size_t errlen);
int x86_pic_from_json(const json_t *obj, struct kvm_pic_state *p);

/* {"id", "ioregsel", "irr", "base_address", "redirtbl": [24 x {vector,
 *  delivery_mode, dest_mode, delivery_status, polarity, remote_irr,
 *  trig_mode, mask, dest_id}]} */
int x86_ioapic_to_json(const struct kvm_ioapic_state *io, json_t *obj);
int x86_ioapic_check(const json_t *obj, const char *path, char *err, size_t errlen);
int x86_ioapic_from_json(const json_t *obj, struct kvm_ioapic_state *io);

/*
 * PIT channels; the host-time count_load_time becomes count_load_age_ns (how
 * long before the capture the count was loaded), relative to mono_now_ns
 * (CLOCK_MONOTONIC, KVM's ktime_get()). Note: KVM_SET_PIT2 reloads each
 * channel's counter at "now" (kvm_pit_load_count), so the phase inside the
 * current period is not restored by current kernels.
 */
int x86_pit_to_json(const struct kvm_pit_state2 *p, int64_t mono_now_ns, json_t *obj);
int x86_pit_check(const json_t *obj, const char *path, char *err, size_t errlen);
int x86_pit_from_json(const json_t *obj, int64_t mono_now_ns, struct kvm_pit_state2 *p);

/*
 * kvmclock: {"clock_ns": guest time, "realtime_ns": host wall clock when it
 * was read, "tsc_stable"}. Restore: freeze sets clock_ns; advance adds the
 * wall-clock time passed since realtime_ns (never negative).
 */
int x86_clock_to_json(const struct kvm_clock_data *c, json_t *obj);
int x86_clock_check(const json_t *obj, const char *path, char *err, size_t errlen);
int x86_clock_from_json(const json_t *obj, bool advance, uint64_t realtime_now_ns,
			struct kvm_clock_data *c);

int x86_vm_state_to_json(const struct x86_vm_state *s, int64_t mono_now_ns, json_t *obj);
int x86_vm_state_check(const json_t *obj, const char *path, char *err, size_t errlen);
int x86_vm_state_from_json(const json_t *obj, int64_t mono_now_ns, bool clock_advance,
			   uint64_t realtime_now_ns, struct x86_vm_state *s);

/* ---- ioctl wrappers (need KVM; tested in the nested machine) ------------- */

/*
 * Read a parked vCPU's state in the save order (see vcpu_state.c).
 * msr_index: x86_msr_select()'s result. xsave2_size: KVM_CHECK_EXTENSION
 * (KVM_CAP_XSAVE2) on the VM, 0 if unsupported.
 */
int x86_vcpu_state_get(int vcpu_fd, uint32_t id, const uint32_t *msr_index, size_t nmsrs,
		       size_t xsave2_size, struct x86_vcpu_state *s);
/*
 * Write it back in the restore order; CPUID must already be set.
 * xsave2_size: this host's KVM_CAP_XSAVE2 value (0 if unsupported).
 * On failure err names the section (and MSR) KVM refused: "msrs: KVM refuses ...".
 */
int x86_vcpu_state_put(int vcpu_fd, size_t xsave2_size, const struct x86_vcpu_state *s,
		       char *err, size_t errlen);
/* Convenience: get + to_json / check + from_json + put. */
int x86_vcpu_state_save(int vcpu_fd, uint32_t id, const uint32_t *msr_index, size_t nmsrs,
			size_t xsave2_size, unsigned flags, json_t *obj);
int x86_vcpu_state_load(int vcpu_fd, size_t xsave2_size, const json_t *obj, unsigned flags,
			char *err, size_t errlen);

int x86_vm_state_save(int vm_fd, json_t *obj);
int x86_vm_state_load(int vm_fd, const json_t *obj, bool clock_advance, char *err, size_t errlen);

#endif
