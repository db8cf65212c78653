/* x86 vCPU/VM state codecs: round trips on synthetic KVM structs and refusals. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>

#include "amber/snapjson.h"
#include "amber/x86_state.h"
#include "snap_fixture.h"

/* Through text, as a checkpoint file would carry it. */
static json_t *reparse(json_t *obj)
{
	char *text = json_dumps(obj, 0);
	json_t *again = json_loads(text, 0, NULL);

	assert_non_null(again);
	free(text);
	json_decref(obj);
	return again;
}

static void test_regs_round_trip_keeps_64_bit_values(void **state)
{
	struct x86_vcpu_state v;
	struct kvm_regs back;
	json_t *obj = json_object();
	char err[256];

	fixture_vcpu(&v, 0);
	assert_int_equal(x86_regs_to_json(&v.regs, obj), 0);
	obj = reparse(obj);
	assert_string_equal(json_string_value(json_object_get(obj, "rip")), "18446744071593763250");
	assert_int_equal(x86_regs_check(obj, "vcpus[0].regs", err, sizeof(err)), 0);
	assert_int_equal(x86_regs_from_json(obj, &back), 0);
	assert_memory_equal(&back, &v.regs, sizeof(back));
	json_decref(obj);
	x86_vcpu_state_free(&v);
}

static void test_regs_wrong_type_names_vcpu_and_register(void **state)
{
	json_t *obj = json_object();
	struct kvm_regs r = { .rip = 5 };
	char err[256];

	x86_regs_to_json(&r, obj);
	json_object_set_new(obj, "rip", json_true());
	assert_int_equal(x86_regs_check(obj, "vcpus[1].regs", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[1].regs.rip: expected an integer, got a boolean");
	json_object_del(obj, "rip");
	assert_int_equal(x86_regs_check(obj, "vcpus[1].regs", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[1].regs.rip: missing");
	json_decref(obj);
}

static void test_segment_round_trip_keeps_every_attribute(void **state)
{
	struct kvm_segment s, back;
	json_t *obj = json_object();
	char err[256];

	fixture_seg(&s, 0x33, 11, true);
	s.dpl = 3;
	s.avl = 1;
	s.unusable = 0;
	s.base = 0x7fff00000000ULL;
	assert_int_equal(x86_segment_to_json(&s, obj), 0);
	obj = reparse(obj);
	assert_true(json_is_true(json_object_get(obj, "l")));
	assert_int_equal(json_integer_value(json_object_get(obj, "dpl")), 3);
	assert_int_equal(x86_segment_check(obj, "cs", err, sizeof(err)), 0);
	assert_int_equal(x86_segment_from_json(obj, &back), 0);
	assert_memory_equal(&back, &s, sizeof(s));
	json_object_set_new(obj, "dpl", json_integer(4));
	assert_int_equal(x86_segment_check(obj, "vcpus[0].sregs.cs", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[0].sregs.cs.dpl = 4 exceeds 3");
	json_decref(obj);
}

static void test_sregs_round_trip_and_long_mode_consistency(void **state)
{
	struct x86_vcpu_state v;
	struct kvm_sregs back;
	json_t *obj = json_object();
	char err[256];

	fixture_vcpu(&v, 0);
	assert_int_equal(x86_sregs_to_json(&v.sregs, obj), 0);
	obj = reparse(obj);
	assert_int_equal(x86_sregs_check(obj, "s", err, sizeof(err)), 0);
	assert_int_equal(x86_sregs_from_json(obj, &back), 0);
	/* interrupt_bitmap is not saved: events carry the pending interrupt */
	assert_memory_equal(&back, &v.sregs, offsetof(struct kvm_sregs, interrupt_bitmap));

	/* LMA without paging: KVM_SET_SREGS would refuse it */
	json_object_set_new(obj, "cr0", json_integer(0x11));
	assert_int_equal(x86_sregs_check(obj, "vcpus[0].sregs", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[0].sregs: efer.LMA without long mode paging "
			    "(efer.LME and cr0.PG)");
	json_object_set_new(obj, "cr0", json_integer(0x80000000));
	assert_int_equal(x86_sregs_check(obj, "vcpus[0].sregs", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[0].sregs.cr0 = 0x80000000: paging (PG) without "
			    "protected mode (PE)");
	json_object_set_new(obj, "cr0", json_integer(0x80050033));
	/* a task register without a present busy TSS (found restoring mutations on KVM) */
	json_object_set_new(json_object_get(obj, "tr"), "present", json_false());
	assert_int_equal(x86_sregs_check(obj, "vcpus[0].sregs", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[0].sregs.tr: not a present busy TSS (present 0, "
			    "unusable 0, s 0, type 11)");
	json_object_set_new(json_object_get(obj, "tr"), "present", json_true());
	json_object_set_new(json_object_get(obj, "tr"), "type", json_integer(9));
	assert_int_equal(x86_sregs_check(obj, "vcpus[0].sregs", err, sizeof(err)), -EINVAL);
	json_object_set_new(json_object_get(obj, "tr"), "type", json_integer(3));
	assert_int_equal(x86_sregs_check(obj, "vcpus[0].sregs", err, sizeof(err)), 0);
	json_object_set_new(obj, "apic_base", json_integer(0xfee00400));
	assert_int_equal(x86_sregs_check(obj, "vcpus[0].sregs", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[0].sregs.apic_base = 0xfee00400: x2APIC mode with the "
			    "APIC disabled");
	json_object_set_new(obj, "cr8", json_integer(16));
	assert_int_equal(x86_sregs_check(obj, "vcpus[0].sregs", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[0].sregs.cr8 = 16 exceeds 15");
	json_decref(obj);
	x86_vcpu_state_free(&v);
}

static void test_lapic_registers_are_named_and_round_trip(void **state)
{
	struct x86_vcpu_state v;
	struct kvm_lapic_state back;
	json_t *obj = json_object(), *lvt;
	char err[256];

	fixture_vcpu(&v, 1);
	assert_int_equal(x86_lapic_to_json(&v.lapic, false, 0, obj), 0);
	obj = reparse(obj);
	/* architectural values, not KVM's page layout */
	assert_int_equal(json_integer_value(json_object_get(obj, "id")), 1);
	assert_int_equal(json_integer_value(json_object_get(obj, "timer_current_count")), 123456);
	assert_int_equal(json_integer_value(json_object_get(obj, "timer_initial_count")), 1000000);
	assert_int_equal(json_integer_value(json_array_get(json_object_get(obj, "isr"), 7)),
			 1 << 12);
	assert_string_equal(json_string_value(json_object_get(obj, "icr")), "72057594038732032");
	lvt = json_object_get(obj, "lvt");
	assert_int_equal(json_integer_value(json_object_get(lvt, "timer")), 0x200ec);
	assert_int_equal(json_integer_value(json_object_get(lvt, "lint0")), 0x700);
	assert_int_equal(x86_lapic_check(obj, "lapic", err, sizeof(err)), 0);
	assert_int_equal(x86_lapic_from_json(obj, false, 0, &back), 0);
	assert_memory_equal(&back, &v.lapic, sizeof(back));
	json_decref(obj);
	x86_vcpu_state_free(&v);
}

static void test_lapic_x2apic_id_uses_32_bits_with_x2apic_api(void **state)
{
	struct kvm_lapic_state l, back;
	json_t *obj = json_object();

	memset(&l, 0, sizeof(l));
	fixture_lapic_set(&l, 0x20, 0x12345);
	assert_int_equal(x86_lapic_to_json(&l, true, X86_STATE_X2APIC_API, obj), 0);
	assert_int_equal(json_integer_value(json_object_get(obj, "id")), 0x12345);
	assert_int_equal(x86_lapic_from_json(obj, true, X86_STATE_X2APIC_API, &back), 0);
	assert_int_equal(fixture_lapic_get(&back, 0x20), 0x12345);
	/* without the API KVM shows x2APIC IDs in the xAPIC layout */
	assert_int_equal(x86_lapic_from_json(obj, true, 0, &back), 0);
	assert_int_equal(fixture_lapic_get(&back, 0x20), 0x12345u << 24);
	json_decref(obj);
}

static void test_lapic_refuses_bad_registers(void **state)
{
	struct x86_vcpu_state v;
	json_t *obj = json_object();
	char err[256];

	fixture_vcpu(&v, 0);
	x86_lapic_to_json(&v.lapic, false, 0, obj);
	json_object_set_new(obj, "tpr", json_integer(256));
	assert_int_equal(x86_lapic_check(obj, "vcpus[0].lapic", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[0].lapic.tpr = 256 exceeds 255");
	json_object_set_new(obj, "tpr", json_integer(0));
	json_object_set_new(obj, "timer_divide", json_integer(4));
	assert_int_equal(x86_lapic_check(obj, "vcpus[0].lapic", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[0].lapic.timer_divide = 4 sets reserved bit 2");
	json_object_set_new(obj, "timer_divide", json_integer(3));
	json_array_remove(json_object_get(obj, "irr"), 0);
	assert_int_equal(x86_lapic_check(obj, "vcpus[0].lapic", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[0].lapic.irr: 7 elements, expected 8");
	json_decref(obj);
	x86_vcpu_state_free(&v);
}

static void test_events_round_trip_and_nmi_vector_refused(void **state)
{
	struct x86_vcpu_state v;
	struct kvm_vcpu_events back;
	json_t *obj = json_object(), *exc;
	char err[256];

	fixture_vcpu(&v, 0);
	fixture_pending_pf(&v.events, 2);	/* injected and pending both set */
	v.events.smi.latched_init = 1;
	assert_int_equal(x86_events_to_json(&v.events, obj), 0);
	obj = reparse(obj);
	assert_int_equal(x86_events_check(obj, "e", err, sizeof(err)), 0);
	assert_int_equal(x86_events_from_json(obj, &back), 0);
	assert_memory_equal(&back, &v.events, sizeof(back));
	exc = json_object_get(obj, "exception");
	/* pending alone would be dropped by KVM_SET_VCPU_EVENTS: it is restored as injected */
	json_object_set_new(exc, "injected", json_false());
	assert_int_equal(x86_events_check(obj, "e", err, sizeof(err)), 0);
	assert_int_equal(x86_events_from_json(obj, &back), 0);
	assert_true(back.exception.injected);
	json_object_set_new(exc, "has_payload", json_true());
	assert_int_equal(x86_events_check(obj, "vcpus[1].events", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[1].events.exception.has_payload: amber does not enable "
			    "KVM's exception payload interface, so a payload cannot be restored");
	json_object_set_new(exc, "has_payload", json_false());
	json_object_set_new(obj, "triple_fault_pending", json_true());
	assert_int_equal(x86_events_check(obj, "vcpus[1].events", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[1].events.triple_fault_pending: amber does not enable "
			    "KVM's triple-fault event, so it cannot be restored");
	json_object_set_new(obj, "triple_fault_pending", json_false());
	json_object_set_new(exc, "nr", json_integer(2));
	assert_int_equal(x86_events_check(obj, "vcpus[0].events", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[0].events.exception.nr = 2 is the NMI vector, not an "
			    "exception");
	json_object_set_new(exc, "nr", json_integer(32));
	assert_int_equal(x86_events_check(obj, "vcpus[0].events", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[0].events.exception.nr = 32 exceeds 31");
	json_decref(obj);
	x86_vcpu_state_free(&v);
}

static void test_xcrs_and_debugregs_validation(void **state)
{
	struct kvm_xcrs x = { .nr_xcrs = 1, .xcrs = { { .xcr = 0, .value = 0x2e7 } } }, xb;
	struct kvm_debugregs d = { .dr6 = 0xffff0ff0, .dr7 = 0x400 }, db;
	json_t *arr = x86_xcrs_to_json(&x), *obj = json_object();
	char err[256];

	assert_int_equal(x86_xcrs_check(arr, "x", err, sizeof(err)), 0);
	x86_xcrs_from_json(arr, &xb);
	assert_memory_equal(&xb, &x, sizeof(x));
	json_object_set_new(json_array_get(arr, 0), "value", json_integer(6));
	assert_int_equal(x86_xcrs_check(arr, "vcpus[0].xcrs", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[0].xcrs[0].value = 0x6: XCR0 bit 0 (x87) must be set");
	json_object_set_new(json_array_get(arr, 0), "value", json_integer(5));
	assert_int_equal(x86_xcrs_check(arr, "vcpus[0].xcrs", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[0].xcrs[0].value = 0x5: AVX (bit 2) without SSE (bit 1)");
	json_decref(arr);

	assert_int_equal(x86_debugregs_to_json(&d, obj), 0);
	assert_int_equal(x86_debugregs_from_json(obj, &db), 0);
	assert_memory_equal(&db, &d, sizeof(d));
	json_object_set_new(obj, "dr7", json_integer(0x100000000LL));
	assert_int_equal(x86_debugregs_check(obj, "vcpus[0].debugregs", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[0].debugregs.dr7 = 4294967296 exceeds 4294967295");
	json_decref(obj);
}

static void test_msrs_by_name_and_index_in_restore_order(void **state)
{
	struct kvm_msr_entry in[3] = {
		{ .index = 0x6e0, .data = 99 },		/* TSC deadline: last */
		{ .index = 0x10, .data = 1ULL << 60 },	/* TSC */
		{ .index = 0x3b, .data = 7 },		/* TSC adjust: before TSC */
	}, out[8];
	json_t *arr = x86_msrs_to_json(in, 3);
	uint32_t n = 0;
	char err[256];

	assert_non_null(arr);
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "name")),
			    "IA32_TSC_DEADLINE");
	assert_int_equal(x86_msrs_check(arr, "m", err, sizeof(err)), 0);
	assert_int_equal(x86_msrs_from_json(arr, out, 8, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(out[0].index, 0x3b);
	assert_int_equal(out[1].index, 0x10);
	assert_true(out[1].data == 1ULL << 60);
	assert_int_equal(out[2].index, 0x6e0);
	assert_true(x86_msr_find(0x6e0)->flags & X86_MSR_AFTER_LAPIC);

	json_object_set_new(json_array_get(arr, 1), "name", json_string("IA32_PAT"));
	assert_int_equal(x86_msrs_check(arr, "vcpus[0].msrs", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[0].msrs[1]: MSR 0x10 is IA32_TSC, not \"IA32_PAT\"");
	json_object_set_new(json_array_get(arr, 1), "name", json_string("IA32_TSC"));
	json_object_set_new(json_array_get(arr, 1), "index", json_integer(0x6e0));
	assert_int_equal(x86_msrs_check(arr, "vcpus[0].msrs", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[0].msrs[1]: MSR 0x6e0 is IA32_TSC_DEADLINE, not "
			    "\"IA32_TSC\"");
	json_decref(arr);
}

/* Guest RAM for the value checks: the first 16 MiB. */
static bool low_16m(const void *opaque, uint64_t gpa, uint64_t len)
{
	(void)opaque;
	return gpa < (16u << 20) && len <= (16u << 20) - gpa;
}

/* Check one MSR value of a vCPU with the given CR4, against an AMD guest with 40 PA bits. */
static int msr_value(uint32_t index, uint64_t value, uint64_t cr4, char *err, size_t errlen)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 3 * sizeof(c->entries[0]));
	struct kvm_msr_entry m = { .index = index, .data = value };
	json_t *vcpu = json_object(), *xs;
	int ret;

	c->nent = 3;
	c->entries[0] = (struct kvm_cpuid_entry2){ .function = 0, .eax = 0xd, .ebx = 0x68747541 };
	c->entries[1] = (struct kvm_cpuid_entry2){ .function = 0x80000008, .eax = 0x3028 };
	c->entries[2] = (struct kvm_cpuid_entry2){ .function = 7, .ecx = 1u << 16,	/* LA57 */
		.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
	json_object_set_new(vcpu, "sregs", json_pack("{s:I}", "cr4", (json_int_t)cr4));
	json_object_set_new(vcpu, "xcrs", json_pack("[{s:i, s:i}]", "index", 0, "value", 3));
	/* 576 bytes: the legacy area and an XSAVE header, all zero */
	xs = json_pack("{s:i}", "size", 576);
	snap_set_bytes(xs, "data", (uint8_t[576]){ 0 }, 576);
	json_object_set_new(vcpu, "xsave", xs);
	json_object_set_new(vcpu, "msrs", x86_msrs_to_json(&m, 1));
	ret = x86_vcpu_check_values(vcpu, c, low_16m, NULL, "vcpus[1]", err, errlen);
	json_decref(vcpu);
	free(c);
	return ret;
}

/* Values KVM_SET_MSRS refuses are refused before loading, named (found by restoring
 * mutated checkpoints on KVM: tests/guest/amber_ckpt_kvm_mutations.sh). */
static void test_msr_values_kvm_would_refuse(void **state)
{
	const uint64_t la57 = 1u << 12;
	char err[256];

	assert_int_equal(msr_value(0xc0000082, 0xffffffff81000000ULL, 0, err, sizeof(err)), 0);
	assert_int_equal(msr_value(0xc0000082, 0xfdffffffbbe00080ULL, 0, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "vcpus[1].msrs[0]: LSTAR = 0xfdffffffbbe00080: not a canonical "
			    "address");
	/* canonical with 57-bit addresses only */
	assert_int_equal(msr_value(0xc0000102, 0xff7fffff00000000ULL, 0, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(msr_value(0xc0000102, 0xff7fffff00000000ULL, la57, err, sizeof(err)), 0);
	/* variable MTRRs: mask bits 10:0 and bits above the 40-bit physical width reserved */
	assert_int_equal(msr_value(0x20b, 0xff00000800ULL, 0, err, sizeof(err)), 0);
	assert_int_equal(msr_value(0x20b, 1, 0, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[1].msrs[0]: IA32_MTRR_PHYSMASK5 = 0x1: reserved bits set");
	assert_int_equal(msr_value(0x20b, 0x10000000800ULL, 0, err, sizeof(err)), -EINVAL);
	assert_int_equal(msr_value(0x20a, 0x80000006ULL, 0, err, sizeof(err)), 0);
	assert_int_equal(msr_value(0x20a, 0x80000002ULL, 0, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[1].msrs[0]: IA32_MTRR_PHYSBASE5 = 0x80000002: invalid "
			    "memory type");
	assert_int_equal(msr_value(0x26c, 0x0505050506060606ULL, 0, err, sizeof(err)), 0);
	assert_int_equal(msr_value(0x26c, 0x800, 0, err, sizeof(err)), -EINVAL);
	assert_int_equal(msr_value(0x2ff, 0xc06, 0, err, sizeof(err)), 0);
	assert_int_equal(msr_value(0x2ff, 0x1c06, 0, err, sizeof(err)), -EINVAL);
	/* paravirtual MSRs: reserved bits, and addresses KVM maps must be guest RAM */
	assert_int_equal(msr_value(0x4b564d02, 0x1009, 0, err, sizeof(err)), 0);
	assert_int_equal(msr_value(0x4b564d02, 0xffffffff, 0, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[1].msrs[0]: KVM_ASYNC_PF_EN = 0xffffffff: reserved bits "
			    "5:4 set");
	assert_int_equal(msr_value(0x4b564d02, 0x40000009ULL, 0, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[1].msrs[0]: KVM_ASYNC_PF_EN = 0x40000009: the address is "
			    "not in guest RAM");
	assert_int_equal(msr_value(0x4b564d04, 0x2001, 0, err, sizeof(err)), 0);
	assert_int_equal(msr_value(0x4b564d04, 0x2003, 0, err, sizeof(err)), -EINVAL);
	assert_int_equal(msr_value(0x4b564d03, 0x2001, 0, err, sizeof(err)), 0);
	assert_int_equal(msr_value(0x4b564d03, 0x2003, 0, err, sizeof(err)), -EINVAL);
	assert_int_equal(msr_value(0x4b564d05, 2, 0, err, sizeof(err)), -EINVAL);
	assert_int_equal(msr_value(0x4b564d06, 0xec, 0, err, sizeof(err)), 0);
	assert_int_equal(msr_value(0x4b564d06, 0x1ec, 0, err, sizeof(err)), -EINVAL);
	/* CPUID-dependent: nothing offered in this guest's CPUID */
	assert_int_equal(msr_value(0x03a, 0, 0, err, sizeof(err)), 0);
	assert_int_equal(msr_value(0x03a, 1, 0, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[1].msrs[0]: IA32_FEATURE_CONTROL = 0x1: AMD CPUs have no "
			    "IA32_FEATURE_CONTROL");
	assert_int_equal(msr_value(0x048, 0, 0, err, sizeof(err)), 0);
	assert_int_equal(msr_value(0x048, 1, 0, err, sizeof(err)), -EINVAL);
	assert_int_equal(msr_value(0xda0, 0x100, 0, err, sizeof(err)), -EINVAL);
	assert_int_equal(msr_value(0xc0000103, 1ULL << 32, 0, err, sizeof(err)), -EINVAL);
	assert_int_equal(msr_value(0xc0000103, 3, 0, err, sizeof(err)), 0);
	/* CR4: LA57 is offered by this CPUID, SMEP (bit 20) and bit 28 are not */
	assert_int_equal(msr_value(0x10, 0, 0x10f0 | la57, err, sizeof(err)), 0);
	assert_int_equal(msr_value(0x10, 0, 0x1006f0 | la57, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[1].sregs.cr4 = 0x1016f0: bits 0x100000 are reserved or "
			    "need a feature the guest's CPUID does not offer");
	assert_int_equal(msr_value(0x10, 0, 1ULL << 28, err, sizeof(err)), -EINVAL);
}

/* XCR0 and the XSAVE header as KVM_SET_XCRS / KVM_SET_XSAVE judge them. */
static void test_xstate_against_the_guest_cpuid(void **state)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + sizeof(c->entries[0]));
	uint8_t area[576] = { 0 };
	json_t *vcpu = json_object(), *xs = json_pack("{s:i}", "size", 576);
	char err[256];

	c->nent = 1;	/* leaf 0xd: x87, SSE, AVX */
	c->entries[0] = (struct kvm_cpuid_entry2){ .function = 0xd, .eax = 7,
		.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX };
	json_object_set_new(vcpu, "sregs", json_object());
	json_object_set_new(vcpu, "msrs", json_array());
	json_object_set_new(vcpu, "xcrs", json_pack("[{s:i, s:i}]", "index", 0, "value", 7));
	json_object_set_new(vcpu, "xsave", xs);
#define CHECK() x86_vcpu_check_values(vcpu, c, low_16m, NULL, "vcpus[0]", err, sizeof(err))
	memcpy(area + 24, &(uint32_t){ 0x1f80 }, 4);
	area[512] = 7;
	snap_set_bytes(xs, "data", area, sizeof(area));
	assert_int_equal(CHECK(), 0);
	area[512] = 0x0f;	/* MPX state: not offered */
	snap_set_bytes(xs, "data", area, sizeof(area));
	assert_int_equal(CHECK(), -EINVAL);
	assert_string_equal(err, "vcpus[0].xsave.data: XSTATE_BV = 0xf names state components "
			    "the guest's CPUID does not offer (0x7)");
	area[512] = 7;
	area[527] = 0x80;	/* compacted format */
	snap_set_bytes(xs, "data", area, sizeof(area));
	assert_int_equal(CHECK(), -EINVAL);
	area[527] = 0;
	area[540] = 1;
	snap_set_bytes(xs, "data", area, sizeof(area));
	assert_int_equal(CHECK(), -EINVAL);
	assert_string_equal(err, "vcpus[0].xsave.data: reserved byte 540 of the XSAVE header is "
			    "not zero");
	area[540] = 0;
	area[26] = 1;		/* MXCSR bit 16 */
	snap_set_bytes(xs, "data", area, sizeof(area));
	assert_int_equal(CHECK(), -EINVAL);
	assert_string_equal(err, "vcpus[0].xsave.data: MXCSR = 0x11f80 sets reserved bits 31:16");
	area[26] = 0;
	snap_set_bytes(xs, "data", area, sizeof(area));
	json_object_set_new(vcpu, "xcrs", json_pack("[{s:i, s:i}]", "index", 0, "value", 0x207));
	assert_int_equal(CHECK(), -EINVAL);
	assert_string_equal(err, "vcpus[0].xcrs[0].value = 0x207: sets state components the "
			    "guest's CPUID does not offer (0x7)");
#undef CHECK
	json_decref(vcpu);
	free(c);
}

static void test_msr_select_intersects_kvm_list_and_keeps_mtrrs(void **state)
{
	const uint32_t kvm_list[] = { 0x10, 0xc0000082, 0x12345, 0x4b564d01 };
	uint32_t out[X86_STATE_MAX_MSRS];
	size_t n = x86_msr_select(kvm_list, 4, out, X86_STATE_MAX_MSRS);
	bool tsc = false, lstar = false, mtrr = false, unknown = false, deadline = false;

	for (size_t i = 0; i < n; i++) {
		tsc |= out[i] == 0x10;
		lstar |= out[i] == 0xc0000082;
		mtrr |= out[i] == 0x2ff;
		unknown |= out[i] == 0x12345;
		deadline |= out[i] == 0x6e0;
	}
	assert_true(tsc && lstar && mtrr);
	assert_false(unknown);
	assert_false(deadline);	/* not in KVM's list here */
	assert_true(n <= X86_STATE_MAX_MSRS);
}

static void test_whole_vcpu_round_trip(void **state)
{
	struct x86_vcpu_state v, back;
	json_t *obj = json_object();
	char err[256] = "";

	fixture_vcpu(&v, 1);
	assert_int_equal(x86_vcpu_state_to_json(&v, 0, obj), 0);
	obj = reparse(obj);
	assert_string_equal(json_string_value(json_object_get(obj, "mp_state")), "halted");
	assert_int_equal(x86_vcpu_state_check(obj, "vcpus[1]", err, sizeof(err)), 0);
	assert_int_equal(x86_vcpu_state_from_json(obj, 0, &back, err, sizeof(err)), 0);
	assert_int_equal(back.id, 1);
	assert_int_equal(back.mp_state, KVM_MP_STATE_HALTED);
	assert_memory_equal(&back.regs, &v.regs, sizeof(v.regs));
	assert_memory_equal(&back.lapic, &v.lapic, sizeof(v.lapic));
	assert_memory_equal(&back.events, &v.events, sizeof(v.events));
	assert_memory_equal(&back.debugregs, &v.debugregs, sizeof(v.debugregs));
	assert_memory_equal(&back.xcrs, &v.xcrs, sizeof(v.xcrs));
	assert_int_equal(back.nmsrs, v.nmsrs);
	assert_int_equal(back.xsave_size, 4096);
	assert_memory_equal(back.xsave, v.xsave, 4096);
	x86_vcpu_state_free(&back);

	/* a corrupted XSAVE blob is named */
	json_object_set_new(json_object_get(obj, "xsave"), "data", json_string("AAAA"));
	assert_int_equal(x86_vcpu_state_check(obj, "vcpus[1]", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[1].xsave.data: 3 bytes, expected 4096");
	json_object_set_new(obj, "mp_state", json_string("dancing"));
	assert_int_equal(x86_vcpu_state_check(obj, "vcpus[1]", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vcpus[1].mp_state: unknown state \"dancing\"");
	json_decref(obj);
	x86_vcpu_state_free(&v);
}

static void test_advance_tsc_adds_elapsed_ticks(void **state)
{
	struct x86_vcpu_state v;

	fixture_vcpu(&v, 0);
	v.msrs[1].data = 1000;
	/* 2.5 s at 2 GHz */
	x86_vcpu_state_advance_tsc(&v, 2500000000ULL, 2000000);
	assert_true(v.msrs[1].data == 1000 + 5000000000ULL);
	x86_vcpu_state_free(&v);
}

static void test_pic_round_trip_and_irq_base_check(void **state)
{
	struct x86_vm_state s;
	struct kvm_pic_state back;
	json_t *obj = json_object();
	char err[256];

	fixture_vm(&s, 0);
	assert_int_equal(x86_pic_to_json(&s.pic[0], obj), 0);
	obj = reparse(obj);
	assert_int_equal(json_integer_value(json_object_get(obj, "imr")), 0xb8);
	assert_int_equal(x86_pic_check(obj, "p", err, sizeof(err)), 0);
	assert_int_equal(x86_pic_from_json(obj, &back), 0);
	assert_memory_equal(&back, &s.pic[0], sizeof(back));
	json_object_set_new(obj, "irq_base", json_integer(0x31));
	assert_int_equal(x86_pic_check(obj, "vm.irqchip.pic_master", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vm.irqchip.pic_master.irq_base = 49 is not a multiple of 8");
	json_object_set_new(obj, "irq_base", json_integer(0x30));
	json_object_set_new(obj, "init_state", json_integer(4));
	assert_int_equal(x86_pic_check(obj, "vm.irqchip.pic_master", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vm.irqchip.pic_master.init_state = 4 exceeds 3");
	json_decref(obj);
}

static void test_ioapic_redirection_entries_decode_and_round_trip(void **state)
{
	struct x86_vm_state s;
	struct kvm_ioapic_state back;
	json_t *obj = json_object(), *e9;
	char err[256];

	fixture_vm(&s, 0);
	assert_int_equal(x86_ioapic_to_json(&s.ioapic, obj), 0);
	obj = reparse(obj);
	e9 = json_array_get(json_object_get(obj, "redirtbl"), 9);
	assert_int_equal(json_integer_value(json_object_get(e9, "vector")), 0x29);
	assert_int_equal(json_integer_value(json_object_get(e9, "trig_mode")), 1);
	assert_int_equal(json_integer_value(json_object_get(e9, "polarity")), 1);
	assert_int_equal(json_integer_value(json_object_get(e9, "remote_irr")), 1);
	assert_int_equal(json_integer_value(json_object_get(e9, "mask")), 0);
	assert_int_equal(json_integer_value(json_object_get(
		json_array_get(json_object_get(obj, "redirtbl"), 4), "dest_id")), 1);
	assert_int_equal(x86_ioapic_check(obj, "io", err, sizeof(err)), 0);
	assert_int_equal(x86_ioapic_from_json(obj, &back), 0);
	assert_memory_equal(&back, &s.ioapic, sizeof(back));
	json_object_set_new(e9, "delivery_mode", json_integer(8));
	assert_int_equal(x86_ioapic_check(obj, "vm.irqchip.ioapic", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vm.irqchip.ioapic.redirtbl[9].delivery_mode = 8 exceeds 7");
	json_object_set_new(e9, "delivery_mode", json_integer(0));
	json_object_set_new(obj, "base_address", json_integer(0xfed00000));
	assert_int_equal(x86_ioapic_check(obj, "vm.irqchip.ioapic", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vm.irqchip.ioapic.base_address = 0xfed00000, expected 0xfec00000");
	json_decref(obj);
}

static void test_pit_load_time_is_saved_as_age_not_host_time(void **state)
{
	const int64_t save_now = 1000000000000LL, restore_now = 7000000000000LL;
	struct x86_vm_state s;
	struct kvm_pit_state2 back;
	json_t *obj = json_object(), *c0;
	char err[256];

	fixture_vm(&s, save_now);
	assert_int_equal(x86_pit_to_json(&s.pit, save_now, obj), 0);
	obj = reparse(obj);
	c0 = json_array_get(json_object_get(obj, "channels"), 0);
	assert_null(json_object_get(c0, "count_load_time"));
	assert_int_equal(json_integer_value(json_object_get(c0, "count_load_age_ns")), 5000000);
	assert_int_equal(json_integer_value(json_object_get(c0, "count")), 65536);
	assert_int_equal(x86_pit_check(obj, "pit", err, sizeof(err)), 0);
	assert_int_equal(x86_pit_from_json(obj, restore_now, &back), 0);
	assert_true(back.channels[0].count_load_time == restore_now - 5000000);
	assert_true(back.channels[2].count_load_time == restore_now - 70000000000LL);
	assert_int_equal(back.flags, KVM_PIT_FLAGS_SPEAKER_DATA_ON);
	s.pit.channels[0].count_load_time = back.channels[0].count_load_time;
	s.pit.channels[1].count_load_time = back.channels[1].count_load_time;
	s.pit.channels[2].count_load_time = back.channels[2].count_load_time;
	assert_memory_equal(&back, &s.pit, sizeof(back));
	json_object_set_new(c0, "mode", json_integer(6));
	assert_int_equal(x86_pit_check(obj, "vm.pit", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vm.pit.channels[0].mode = 6: expected 0 to 5, or 255 (never programmed)");
	/* KVM's reset value for a channel the guest never programmed */
	json_object_set_new(c0, "mode", json_integer(0xff));
	assert_int_equal(x86_pit_check(obj, "vm.pit", err, sizeof(err)), 0);
	json_object_set_new(c0, "mode", json_integer(2));
	json_object_set_new(c0, "count", json_integer(65537));
	assert_int_equal(x86_pit_check(obj, "vm.pit", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vm.pit.channels[0].count = 65537 exceeds 65536");
	json_decref(obj);
}

static void test_clock_freeze_keeps_and_advance_adds_wall_time(void **state)
{
	struct x86_vm_state s;
	struct kvm_clock_data c;
	json_t *obj = json_object();
	uint64_t later = 1700000000000000000ULL + 3000000000ULL;

	fixture_vm(&s, 0);
	assert_int_equal(x86_clock_to_json(&s.clock, obj), 0);
	assert_int_equal(x86_clock_from_json(obj, false, later, &c), 0);
	assert_true(c.clock == 12345678901234ULL);
	assert_int_equal(x86_clock_from_json(obj, true, later, &c), 0);
	assert_true(c.clock == 12345678901234ULL + 3000000000ULL);
	/* a wall clock behind the saved one never moves guest time back */
	assert_int_equal(x86_clock_from_json(obj, true, 5, &c), 0);
	assert_true(c.clock == 12345678901234ULL);
	json_decref(obj);
}

static void test_vm_section_round_trip(void **state)
{
	struct x86_vm_state s, back;
	json_t *obj = json_object();
	char err[256] = "";

	fixture_vm(&s, 1000);
	assert_int_equal(x86_vm_state_to_json(&s, 1000, obj), 0);
	obj = reparse(obj);
	assert_int_equal(x86_vm_state_check(obj, "vm", err, sizeof(err)), 0);
	assert_int_equal(x86_vm_state_from_json(obj, 1000, false, 0, &back), 0);
	assert_memory_equal(&back.pic, &s.pic, sizeof(s.pic));
	assert_memory_equal(&back.ioapic, &s.ioapic, sizeof(s.ioapic));
	assert_true(back.clock.clock == s.clock.clock);
	json_object_del(json_object_get(obj, "irqchip"), "pic_slave");
	assert_int_equal(x86_vm_state_check(obj, "vm", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "vm.irqchip.pic_slave: missing");
	json_decref(obj);
}

static void test_cpuid_compat_names_the_missing_feature(void **state)
{
	struct kvm_cpuid2 *guest = fixture_cpuid(), *host = fixture_cpuid();
	json_t *arr = x86_cpuid_to_json(guest);
	char err[256] = "";

	assert_int_equal(x86_cpuid_check(arr, "cpuid", err, sizeof(err)), 0);
	/* hypervisor bit is the VMM's, not the host's */
	host->entries[1].ecx &= ~(1u << 31);
	assert_int_equal(x86_cpuid_check_host(arr, host, err, sizeof(err)), 0);
	host->entries[2].ebx &= ~(1u << 5);	/* this host has no AVX2 */
	assert_int_equal(x86_cpuid_check_host(arr, host, err, sizeof(err)), -ENOTSUP);
	assert_string_equal(err, "cpuid: the guest saw CPUID.0x7.0:ebx bit 5 (avx2), which this "
			    "host's KVM does not offer");
	json_object_set_new(json_array_get(arr, 1), "ecx", json_string("x"));
	assert_int_equal(x86_cpuid_check(arr, "cpuid", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "cpuid[1].ecx: \"x\" is not a decimal integer");
	json_decref(arr);
	free(guest);
	free(host);
}

static void test_tsc_frequency_within_tolerance_needs_nothing(void **state)
{
	bool set;
	char err[256];

	assert_int_equal(x86_tsc_khz_check(2000000, 2000400, false, &set, err, sizeof(err)), 0);
	assert_false(set);
	assert_int_equal(x86_tsc_khz_check(2000000, 2400000, true, &set, err, sizeof(err)), 0);
	assert_true(set);
	assert_int_equal(x86_tsc_khz_check(2000000, 2400000, false, &set, err, sizeof(err)),
			 -ENOTSUP);
	assert_string_equal(err, "host.tsc_khz: the guest ran with a 2000000 kHz TSC, this host's "
			    "is 2400000 kHz and KVM cannot scale it (no TSC scaling)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_regs_round_trip_keeps_64_bit_values),
		cmocka_unit_test(test_regs_wrong_type_names_vcpu_and_register),
		cmocka_unit_test(test_segment_round_trip_keeps_every_attribute),
		cmocka_unit_test(test_sregs_round_trip_and_long_mode_consistency),
		cmocka_unit_test(test_lapic_registers_are_named_and_round_trip),
		cmocka_unit_test(test_lapic_x2apic_id_uses_32_bits_with_x2apic_api),
		cmocka_unit_test(test_lapic_refuses_bad_registers),
		cmocka_unit_test(test_events_round_trip_and_nmi_vector_refused),
		cmocka_unit_test(test_xcrs_and_debugregs_validation),
		cmocka_unit_test(test_msrs_by_name_and_index_in_restore_order),
		cmocka_unit_test(test_msr_values_kvm_would_refuse),
		cmocka_unit_test(test_xstate_against_the_guest_cpuid),
		cmocka_unit_test(test_msr_select_intersects_kvm_list_and_keeps_mtrrs),
		cmocka_unit_test(test_whole_vcpu_round_trip),
		cmocka_unit_test(test_advance_tsc_adds_elapsed_ticks),
		cmocka_unit_test(test_pic_round_trip_and_irq_base_check),
		cmocka_unit_test(test_ioapic_redirection_entries_decode_and_round_trip),
		cmocka_unit_test(test_pit_load_time_is_saved_as_age_not_host_time),
		cmocka_unit_test(test_clock_freeze_keeps_and_advance_adds_wall_time),
		cmocka_unit_test(test_vm_section_round_trip),
		cmocka_unit_test(test_cpuid_compat_names_the_missing_feature),
		cmocka_unit_test(test_tsc_frequency_within_tolerance_needs_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
