/*
 * KVM debug helpers: DR7 encoding (SDM Vol. 3 §17.2.4), KVM_SET_GUEST_DEBUG
 * flags, KVM_EXIT_DEBUG decoding, the interrupt-masking fallback and the
 * register conversion with the x87 tag word.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "amber/x86_kvm_debug.h"

static void test_dr7_is_zero_without_breakpoints(void **state)
{
	struct gdb_hw_slot hw[GDB_HW_SLOTS] = { 0 };

	assert_int_equal(x86_dr7_encode(hw), 0);
}

static void test_dr7_exec_breakpoint_in_slot0(void **state)
{
	struct gdb_hw_slot hw[GDB_HW_SLOTS] = { { GDB_HW_EXEC, 0x1000, 1 } };

	/* G0 (bit 1), GE (bit 9), bit 10 reads as 1; R/W0 = LEN0 = 00 */
	assert_int_equal(x86_dr7_encode(hw), 0x602);
}

static void test_dr7_encodes_type_and_length_per_slot(void **state)
{
	struct gdb_hw_slot hw[GDB_HW_SLOTS] = {
		[1] = { GDB_HW_WRITE, 0x2000, 4 },	/* R/W1=01 LEN1=11 */
		[2] = { GDB_HW_ACCESS, 0x3000, 2 },	/* R/W2=11 LEN2=01 */
		[3] = { GDB_HW_READ, 0x4000, 8 },	/* R/W3=11 (no read-only) LEN3=10 */
	};
	uint64_t dr7 = x86_dr7_encode(hw);

	assert_int_equal(dr7 & 0xff, (1 << 3) | (1 << 5) | (1 << 7));	/* G1 G2 G3 */
	assert_int_equal((dr7 >> 16) & 0xf, 0);		/* slot 0 unused */
	assert_int_equal((dr7 >> 20) & 0xf, 0x1 | 0x3 << 2);
	assert_int_equal((dr7 >> 24) & 0xf, 0x3 | 0x1 << 2);
	assert_int_equal((dr7 >> 28) & 0xf, 0x3 | 0x2 << 2);
	assert_int_equal(dr7 & 0x600, 0x600);
	/* 1-byte watch: LEN=00 */
	struct gdb_hw_slot one[GDB_HW_SLOTS] = { { GDB_HW_WRITE, 0x10, 1 } };
	assert_int_equal(x86_dr7_encode(one), 0x602 | (1 << 16));
}

static void test_build_disabled_state_turns_debugging_off(void **state)
{
	struct gdb_debug_state d = { .enabled = false, .sw_bp = true };
	struct kvm_guest_debug dbg;

	memset(&dbg, 0xff, sizeof(dbg));
	assert_false(x86_kvm_debug_build(&d, true, &dbg));
	assert_int_equal(dbg.control, 0);
	assert_int_equal(dbg.arch.debugreg[7], 0);
}

static void test_build_sets_control_flags_and_debug_registers(void **state)
{
	struct gdb_debug_state d = {
		.enabled = true, .sw_bp = true,
		.hw = { [2] = { GDB_HW_WRITE, 0xffff888000001000ULL, 8 } },
	};
	struct kvm_guest_debug dbg;

	assert_false(x86_kvm_debug_build(&d, false, &dbg));
	assert_int_equal(dbg.control, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_SW_BP |
				      KVM_GUESTDBG_USE_HW_BP);
	assert_int_equal(dbg.arch.debugreg[2], 0xffff888000001000ULL);
	assert_int_equal(dbg.arch.debugreg[0], 0);
	assert_int_equal(dbg.arch.debugreg[7], x86_dr7_encode(d.hw));
}

static void test_build_step_uses_blockirq_when_kvm_has_it(void **state)
{
	struct gdb_debug_state d = { .enabled = true, .single_step = true, .block_irq = true };
	struct kvm_guest_debug dbg;

	assert_false(x86_kvm_debug_build(&d, true, &dbg));
	assert_int_equal(dbg.control, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP |
				      KVM_GUESTDBG_BLOCKIRQ);
	/* without BLOCKIRQ the caller is told to mask IF itself */
	assert_true(x86_kvm_debug_build(&d, false, &dbg));
	assert_int_equal(dbg.control, KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP);
	/* not stepping: nothing to mask */
	d.single_step = false;
	assert_false(x86_kvm_debug_build(&d, false, &dbg));
	assert_int_equal(dbg.control & KVM_GUESTDBG_BLOCKIRQ, 0);
}

static void test_decode_int3_is_a_sw_breakpoint_at_pc(void **state)
{
	struct gdb_debug_state d = { .enabled = true, .sw_bp = true };
	struct kvm_debug_exit_arch a = { .exception = 3, .pc = 0xffffffff81000000ULL };
	struct gdb_stop_event ev;

	assert_int_equal(x86_kvm_debug_decode(&a, &d, 1, &ev), 0);
	assert_int_equal(ev.reason, GDB_STOP_SW_BP);
	assert_int_equal(ev.addr, 0xffffffff81000000ULL);
	assert_int_equal(ev.cpu, 1);
	/* the guest's own int3 when we planted none */
	d.sw_bp = false;
	assert_int_equal(x86_kvm_debug_decode(&a, &d, 1, &ev), -ENOENT);
}

static void test_decode_db_names_the_slot_or_the_step(void **state)
{
	struct gdb_debug_state d = {
		.enabled = true, .single_step = true,
		.hw = { [0] = { GDB_HW_EXEC, 0x1000, 1 }, [2] = { GDB_HW_ACCESS, 0x2000, 4 } },
	};
	struct kvm_debug_exit_arch a = { .exception = 1, .dr6 = 0xffff0ff0 | 0x4 };
	struct gdb_stop_event ev;

	assert_int_equal(x86_kvm_debug_decode(&a, &d, 0, &ev), 0);
	assert_int_equal(ev.reason, GDB_STOP_WATCH);
	assert_int_equal(ev.slot, 2);
	assert_int_equal(ev.watch_type, GDB_HW_ACCESS);
	assert_int_equal(ev.addr, 0x2000);
	a.dr6 = 0xffff0ff0 | 0x1;
	assert_int_equal(x86_kvm_debug_decode(&a, &d, 0, &ev), 0);
	assert_int_equal(ev.reason, GDB_STOP_HW_BP);
	assert_int_equal(ev.addr, 0x1000);
	a.dr6 = 0xffff0ff0 | X86_DR6_BS;
	assert_int_equal(x86_kvm_debug_decode(&a, &d, 0, &ev), 0);
	assert_int_equal(ev.reason, GDB_STOP_STEP);
	/* a DR6 bit of a slot we do not use, or BS when not stepping: the guest's */
	a.dr6 = 0xffff0ff0 | 0x2;
	assert_int_equal(x86_kvm_debug_decode(&a, &d, 0, &ev), -ENOENT);
	d.single_step = false;
	a.dr6 = 0xffff0ff0 | X86_DR6_BS;
	assert_int_equal(x86_kvm_debug_decode(&a, &d, 0, &ev), -ENOENT);
	/* other vectors, or debugging off */
	a.exception = 14;
	assert_int_equal(x86_kvm_debug_decode(&a, &d, 0, &ev), -ENOENT);
	a.exception = 1;
	a.dr6 = 0x1;
	d.enabled = false;
	assert_int_equal(x86_kvm_debug_decode(&a, &d, 0, &ev), -ENOENT);
}

static void test_insn_touching_if_is_recognized(void **state)
{
	static const struct { const char *b; size_t n; bool lm; bool touches; } cases[] = {
		{ "\xfa", 1, true, true },		/* cli */
		{ "\xfb", 1, true, true },		/* sti */
		{ "\x9c", 1, true, true },		/* pushf */
		{ "\x66\x9d", 2, true, true },		/* popfw */
		{ "\x48\xcf", 2, true, true },		/* iretq */
		{ "\xcd\x80", 2, false, true },		/* int 0x80 */
		{ "\x0f\x05", 2, true, true },		/* syscall */
		{ "\xf4", 1, true, true },		/* hlt */
		{ "\x90", 1, true, false },		/* nop */
		{ "\x48\x89\xe5", 3, true, false },	/* mov rbp, rsp */
		{ "\x0f\xa2", 2, true, false },		/* cpuid */
		{ "\x48", 1, false, false },		/* dec eax in 32-bit mode */
		{ "\x66", 1, true, true },		/* cut short: do not mask */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(x86_step_insn_touches_if((const uint8_t *)cases[i].b, cases[i].n,
							  cases[i].lm), cases[i].touches);
}

static void test_fpu_tag_word_conversion(void **state)
{
	uint8_t st[8][16] = { { 0 } };

	/* all empty */
	assert_int_equal(x86_fpu_tag_full(0, 0, st), 0xffff);
	/* TOP=7 and physical register 7 (= ST0) holds 1.0: valid */
	st[0][7] = 0x80;
	st[0][8] = 0xff;
	st[0][9] = 0x3f;
	assert_int_equal(x86_fpu_tag_full(0x80, 7 << 11, st), 0x3fff);
	/* physical 6 (= ST7 with TOP=7) holds zero: tag 01 */
	assert_int_equal(x86_fpu_tag_full(0xc0, 7 << 11, st), 0x1fff);
	/* infinity is special */
	memset(st[7], 0, 16);
	st[7][7] = 0x80;
	st[7][8] = 0xff;
	st[7][9] = 0x7f;
	assert_int_equal(x86_fpu_tag_full(0xc0, 7 << 11, st), 0x2fff);
	assert_int_equal(x86_fpu_tag_abridged(0xffff), 0);
	assert_int_equal(x86_fpu_tag_abridged(0x2fff), 0xc0);
	assert_int_equal(x86_fpu_tag_abridged(0x0000), 0xff);
}

static void test_regs_round_trip_through_kvm_structures(void **state)
{
	struct kvm_regs regs = { 0 };
	struct kvm_sregs sregs = { 0 };
	struct kvm_fpu fpu = { 0 };
	static uint8_t xsave[4096];
	struct gdb_x86_regs r, r2;

	regs.rax = 1; regs.rsp = 0x7000; regs.rbp = 0x8000; regs.r15 = 15;
	regs.rip = 0xffffffff81000000ULL; regs.rflags = 0x246;
	sregs.cs.selector = 0x10; sregs.ss.selector = 0x18;
	sregs.fs.base = 0x1234; sregs.gs.base = 0xffff888000000000ULL;
	sregs.cr0 = 0x80050033; sregs.cr3 = 0x1000; sregs.cr4 = 0x20; sregs.efer = 0x500;
	fpu.fcw = 0x37f; fpu.fsw = 0; fpu.ftwx = 0;
	fpu.last_ip = 0x0000123400005678ULL; fpu.last_opcode = 0x7ff;
	fpu.mxcsr = 0x1f80; fpu.xmm[3][0] = 0xaa;
	uint64_t bv = 1ULL << 2;
	memcpy(xsave + 512, &bv, 8);
	xsave[576 + 16 * 5] = 0x55;

	x86_gdb_regs_from_kvm(&regs, &sregs, &fpu, xsave, &r);
	assert_int_equal(r.rsp, 0x7000);
	assert_int_equal(r.rbp, 0x8000);
	assert_int_equal(r.rip, 0xffffffff81000000ULL);
	assert_int_equal(r.eflags, 0x246);
	assert_int_equal(r.cs, 0x10);
	assert_int_equal(r.fs_base, 0x1234);
	assert_int_equal(r.gs_base, 0xffff888000000000ULL);
	assert_int_equal(r.cr3, 0x1000);
	assert_int_equal(r.ftag, 0xffff);
	assert_int_equal(r.fioff, 0x5678);
	assert_int_equal(r.fiseg, 0x1234);
	assert_int_equal(r.xmm[3][0], 0xaa);
	assert_int_equal(r.ymmh[5][0], 0x55);

	r.rip = 0x1000;
	r.ss = 0x2b;
	r.ymmh[1][15] = 0x77;
	x86_gdb_regs_to_kvm(&r, &regs, &sregs, &fpu, xsave);
	assert_int_equal(regs.rip, 0x1000);
	assert_int_equal(sregs.ss.selector, 0x2b);
	assert_int_equal(sregs.cs.selector, 0x10);
	assert_int_equal(sregs.ss.base, 0);	/* protected mode: base untouched */
	assert_int_equal(fpu.last_ip, 0x0000123400005678ULL);
	assert_int_equal(xsave[576 + 16 + 15], 0x77);
	x86_gdb_regs_from_kvm(&regs, &sregs, &fpu, xsave, &r2);
	assert_memory_equal(&r, &r2, sizeof(r));
}

static void test_real_mode_selector_write_moves_the_base(void **state)
{
	struct kvm_regs regs = { 0 };
	struct kvm_sregs sregs = { 0 };
	struct kvm_fpu fpu = { 0 };
	struct gdb_x86_regs r;

	sregs.cs.selector = 0xf000;
	sregs.cs.base = 0xf0000;
	x86_gdb_regs_from_kvm(&regs, &sregs, &fpu, NULL, &r);
	r.ds = 0x1234;
	x86_gdb_regs_to_kvm(&r, &regs, &sregs, &fpu, NULL);
	assert_int_equal(sregs.ds.base, 0x12340);
	assert_int_equal(sregs.cs.base, 0xf0000);
}

static void test_no_avx_state_is_not_invented(void **state)
{
	struct kvm_regs regs = { 0 };
	struct kvm_sregs sregs = { 0 };
	struct kvm_fpu fpu = { 0 };
	static uint8_t xsave[4096];
	struct gdb_x86_regs r;
	uint64_t bv;

	x86_gdb_regs_from_kvm(&regs, &sregs, &fpu, xsave, &r);
	x86_gdb_regs_to_kvm(&r, &regs, &sregs, &fpu, xsave);
	memcpy(&bv, xsave + 512, 8);
	assert_int_equal(bv, 3);	/* x87 + SSE, not AVX */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dr7_is_zero_without_breakpoints),
		cmocka_unit_test(test_dr7_exec_breakpoint_in_slot0),
		cmocka_unit_test(test_dr7_encodes_type_and_length_per_slot),
		cmocka_unit_test(test_build_disabled_state_turns_debugging_off),
		cmocka_unit_test(test_build_sets_control_flags_and_debug_registers),
		cmocka_unit_test(test_build_step_uses_blockirq_when_kvm_has_it),
		cmocka_unit_test(test_decode_int3_is_a_sw_breakpoint_at_pc),
		cmocka_unit_test(test_decode_db_names_the_slot_or_the_step),
		cmocka_unit_test(test_insn_touching_if_is_recognized),
		cmocka_unit_test(test_fpu_tag_word_conversion),
		cmocka_unit_test(test_regs_round_trip_through_kvm_structures),
		cmocka_unit_test(test_real_mode_selector_write_moves_the_base),
		cmocka_unit_test(test_no_avx_state_is_not_invented),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
