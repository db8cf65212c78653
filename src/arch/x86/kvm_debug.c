/*
 * KVM guest debugging for the GDB stub: debug registers, exit decoding and
 * register conversion. Intel SDM Vol. 3 §17.2 (debug registers), Vol. 1
 * §10.5.1 (FXSAVE layout), Vol. 1 §13.4 (XSAVE area); Linux
 * Documentation/virt/kvm/api.rst (KVM_SET_GUEST_DEBUG, KVM_EXIT_DEBUG).
 */
#include <errno.h>
#include <string.h>

#include "amber/x86_kvm_debug.h"
#include "amber/x86_mmu.h"

/* §17.2.4 R/Wn encodings */
#define DR7_RW_EXEC	0u
#define DR7_RW_WRITE	1u
#define DR7_RW_ACCESS	3u	/* read or write; x86 has no read-only watch */

/* §17.2.4 LENn encodings: 1, 2, 8 (IA-32e), 4 bytes */
static unsigned dr7_len(unsigned len)
{
	switch (len) {
	case 2:
		return 1;
	case 8:
		return 2;
	case 4:
		return 3;
	default:
		return 0;
	}
}

uint64_t x86_dr7_encode(const struct gdb_hw_slot *hw)
{
	uint64_t dr7 = 0;

	for (int i = 0; i < GDB_HW_SLOTS; i++) {
		unsigned rw;

		switch (hw[i].type) {
		case GDB_HW_EXEC:
			rw = DR7_RW_EXEC;
			break;
		case GDB_HW_WRITE:
			rw = DR7_RW_WRITE;
			break;
		case GDB_HW_READ:
		case GDB_HW_ACCESS:
			rw = DR7_RW_ACCESS;
			break;
		default:
			continue;
		}
		/*
		 * Global enable Gn (bit 2n+1): the breakpoint stays armed
		 * across guest task switches, as gdb means it.
		 */
		dr7 |= 2ULL << (i * 2);
		dr7 |= (uint64_t)rw << (16 + i * 4);
		/* exec breakpoints need LEN=00 (§17.2.5) */
		if (hw[i].type != GDB_HW_EXEC)
			dr7 |= (uint64_t)dr7_len(hw[i].len) << (18 + i * 4);
	}
	if (dr7)
		dr7 |= X86_DR7_GE | X86_DR7_FIXED1;	/* GE: exact data breakpoints, like QEMU */
	return dr7;
}

bool x86_kvm_debug_build(const struct gdb_debug_state *d, bool have_blockirq,
			 struct kvm_guest_debug *dbg)
{
	bool need_if_mask = false;
	bool any_hw = false;

	memset(dbg, 0, sizeof(*dbg));
	if (!d->enabled)
		return false;	/* control 0: KVM debugging off */
	dbg->control = KVM_GUESTDBG_ENABLE;
	if (d->sw_bp)
		dbg->control |= KVM_GUESTDBG_USE_SW_BP;
	if (d->single_step) {
		dbg->control |= KVM_GUESTDBG_SINGLESTEP;
		if (d->block_irq) {
			if (have_blockirq)
				dbg->control |= KVM_GUESTDBG_BLOCKIRQ;
			else
				need_if_mask = true;
		}
	}
	for (int i = 0; i < GDB_HW_SLOTS; i++) {
		if (d->hw[i].type == GDB_HW_NONE)
			continue;
		dbg->arch.debugreg[i] = d->hw[i].addr;
		any_hw = true;
	}
	if (any_hw) {
		dbg->control |= KVM_GUESTDBG_USE_HW_BP;
		dbg->arch.debugreg[7] = x86_dr7_encode(d->hw);
	}
	return need_if_mask;
}

int x86_kvm_debug_decode(const struct kvm_debug_exit_arch *arch, const struct gdb_debug_state *d,
			 int cpu, struct gdb_stop_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->cpu = cpu;
	ev->signal = 5;
	if (!d->enabled)
		return -ENOENT;
	if (arch->exception == 3) {
		/* #BP: KVM leaves rip (pc) on the int3 itself */
		if (!d->sw_bp)
			return -ENOENT;
		ev->reason = GDB_STOP_SW_BP;
		ev->addr = arch->pc;
		return 0;
	}
	if (arch->exception != 1)
		return -ENOENT;
	/* #DB: DR6 B0-B3 name the slot that matched (§17.2.3) */
	for (int i = 0; i < GDB_HW_SLOTS; i++) {
		if (!(arch->dr6 & (1ULL << i)) || d->hw[i].type == GDB_HW_NONE)
			continue;
		ev->slot = i;
		ev->addr = d->hw[i].addr;
		if (d->hw[i].type == GDB_HW_EXEC) {
			ev->reason = GDB_STOP_HW_BP;
		} else {
			ev->reason = GDB_STOP_WATCH;
			ev->watch_type = d->hw[i].type;
		}
		return 0;
	}
	if ((arch->dr6 & X86_DR6_BS) && d->single_step) {
		ev->reason = GDB_STOP_STEP;
		return 0;
	}
	return -ENOENT;
}

bool x86_step_insn_touches_if(const uint8_t *insn, size_t n, bool long_mode)
{
	size_t i = 0;

	/* skip legacy prefixes, then (64-bit mode) one REX prefix */
	while (i < n) {
		uint8_t b = insn[i];

		if (b == 0x66 || b == 0x67 || b == 0xf0 || b == 0xf2 || b == 0xf3 ||
		    b == 0x2e || b == 0x36 || b == 0x3e || b == 0x26 || b == 0x64 || b == 0x65)
			i++;
		else
			break;
	}
	if (i < n && long_mode && (insn[i] & 0xf0) == 0x40)
		i++;
	if (i >= n)
		return true;	/* unknown: do not mask */
	switch (insn[i]) {
	case 0xfa:	/* cli */
	case 0xfb:	/* sti */
	case 0x9c:	/* pushf: would push IF=0 */
	case 0x9d:	/* popf */
	case 0xcf:	/* iret */
	case 0xcc:	/* int3 */
	case 0xcd:	/* int n: pushes RFLAGS */
	case 0xce:	/* into */
	case 0xf1:	/* int1 */
	case 0xf4:	/* hlt: with IF=0 it would never wake */
		return true;
	case 0x0f:
		if (i + 1 >= n)
			return true;
		switch (insn[i + 1]) {
		case 0x05:	/* syscall: saves RFLAGS in r11 */
		case 0x07:	/* sysret */
		case 0x34:	/* sysenter */
		case 0x35:	/* sysexit */
			return true;
		}
		return false;
	default:
		return false;
	}
}

/* x87 tag values (SDM Vol. 1 §8.1.7) */
#define TAG_VALID	0u
#define TAG_ZERO	1u
#define TAG_SPECIAL	2u
#define TAG_EMPTY	3u

static unsigned fpu_classify(const uint8_t *v)
{
	uint64_t mant;
	unsigned exp;

	memcpy(&mant, v, 8);
	exp = (v[8] | (unsigned)v[9] << 8) & 0x7fff;
	if (exp == 0x7fff)
		return TAG_SPECIAL;	/* infinity, NaN */
	if (exp == 0)
		return mant == 0 ? TAG_ZERO : TAG_SPECIAL;	/* zero / denormal */
	return (mant >> 63) ? TAG_VALID : TAG_SPECIAL;		/* unnormal */
}

uint16_t x86_fpu_tag_full(uint8_t ftwx, uint16_t fsw, const uint8_t st[8][16])
{
	unsigned top = (fsw >> 11) & 7;
	uint16_t tag = 0;

	/* the abridged tag is per physical register; FXSAVE stores ST(i) */
	for (unsigned phys = 0; phys < 8; phys++) {
		unsigned t = TAG_EMPTY;

		if (ftwx & (1u << phys))
			t = fpu_classify(st[(phys - top) & 7]);
		tag |= (uint16_t)(t << (2 * phys));
	}
	return tag;
}

uint8_t x86_fpu_tag_abridged(uint16_t ftag)
{
	uint8_t a = 0;

	for (unsigned phys = 0; phys < 8; phys++)
		if (((ftag >> (2 * phys)) & 3) != TAG_EMPTY)
			a |= (uint8_t)(1u << phys);
	return a;
}

/* XSAVE standard format: XSTATE_BV at 512, YMM_Hi128 (component 2) at 576 */
#define XSAVE_XSTATE_BV	512
#define XSAVE_YMMH	576
#define XSTATE_YMM	(1ULL << 2)

void x86_gdb_regs_from_kvm(const struct kvm_regs *regs, const struct kvm_sregs *sregs,
			   const struct kvm_fpu *fpu, const void *xsave, struct gdb_x86_regs *r)
{
	memset(r, 0, sizeof(*r));
	r->rax = regs->rax; r->rbx = regs->rbx; r->rcx = regs->rcx; r->rdx = regs->rdx;
	r->rsi = regs->rsi; r->rdi = regs->rdi; r->rbp = regs->rbp; r->rsp = regs->rsp;
	r->r8 = regs->r8; r->r9 = regs->r9; r->r10 = regs->r10; r->r11 = regs->r11;
	r->r12 = regs->r12; r->r13 = regs->r13; r->r14 = regs->r14; r->r15 = regs->r15;
	r->rip = regs->rip;
	r->eflags = (uint32_t)regs->rflags;
	r->cs = sregs->cs.selector; r->ss = sregs->ss.selector; r->ds = sregs->ds.selector;
	r->es = sregs->es.selector; r->fs = sregs->fs.selector; r->gs = sregs->gs.selector;
	r->fs_base = sregs->fs.base;
	r->gs_base = sregs->gs.base;
	r->cr0 = sregs->cr0; r->cr2 = sregs->cr2; r->cr3 = sregs->cr3;
	r->cr4 = sregs->cr4; r->cr8 = sregs->cr8; r->efer = sregs->efer;
	for (int i = 0; i < 8; i++)
		memcpy(r->st[i], fpu->fpr[i], 10);
	r->fctrl = fpu->fcw;
	r->fstat = fpu->fsw;
	r->ftag = x86_fpu_tag_full(fpu->ftwx, fpu->fsw, fpu->fpr);
	/* 64-bit FXSAVE: FIP/FDP are 64-bit; gdb splits them as seg:off */
	r->fioff = (uint32_t)fpu->last_ip;
	r->fiseg = (uint32_t)(fpu->last_ip >> 32) & 0xffff;
	r->fooff = (uint32_t)fpu->last_dp;
	r->foseg = (uint32_t)(fpu->last_dp >> 32) & 0xffff;
	r->fop = fpu->last_opcode & 0x7ff;
	memcpy(r->xmm, fpu->xmm, sizeof(r->xmm));
	r->mxcsr = fpu->mxcsr;
	if (xsave) {
		const uint8_t *x = xsave;
		uint64_t bv;

		memcpy(&bv, x + XSAVE_XSTATE_BV, sizeof(bv));
		/* a component not in XSTATE_BV is in its init state: zero */
		if (bv & XSTATE_YMM)
			memcpy(r->ymmh, x + XSAVE_YMMH, sizeof(r->ymmh));
	}
}

static void seg_update(struct kvm_segment *seg, uint32_t sel, bool real_mode)
{
	if (seg->selector == (uint16_t)sel)
		return;
	seg->selector = (uint16_t)sel;
	if (real_mode)
		seg->base = (uint64_t)(uint16_t)sel << 4;
}

void x86_gdb_regs_to_kvm(const struct gdb_x86_regs *r, struct kvm_regs *regs,
			 struct kvm_sregs *sregs, struct kvm_fpu *fpu, void *xsave)
{
	bool real = !(sregs->cr0 & X86_CR0_PE);

	regs->rax = r->rax; regs->rbx = r->rbx; regs->rcx = r->rcx; regs->rdx = r->rdx;
	regs->rsi = r->rsi; regs->rdi = r->rdi; regs->rbp = r->rbp; regs->rsp = r->rsp;
	regs->r8 = r->r8; regs->r9 = r->r9; regs->r10 = r->r10; regs->r11 = r->r11;
	regs->r12 = r->r12; regs->r13 = r->r13; regs->r14 = r->r14; regs->r15 = r->r15;
	regs->rip = r->rip;
	regs->rflags = r->eflags | 2;	/* bit 1 is always 1 */
	seg_update(&sregs->cs, r->cs, real);
	seg_update(&sregs->ss, r->ss, real);
	seg_update(&sregs->ds, r->ds, real);
	seg_update(&sregs->es, r->es, real);
	seg_update(&sregs->fs, r->fs, real);
	seg_update(&sregs->gs, r->gs, real);
	sregs->fs.base = r->fs_base;
	sregs->gs.base = r->gs_base;
	sregs->cr0 = r->cr0; sregs->cr2 = r->cr2; sregs->cr3 = r->cr3;
	sregs->cr4 = r->cr4; sregs->cr8 = r->cr8; sregs->efer = r->efer;
	for (int i = 0; i < 8; i++)
		memcpy(fpu->fpr[i], r->st[i], 10);
	fpu->fcw = (uint16_t)r->fctrl;
	fpu->fsw = (uint16_t)r->fstat;
	fpu->ftwx = x86_fpu_tag_abridged((uint16_t)r->ftag);
	fpu->last_ip = (uint64_t)(r->fiseg & 0xffff) << 32 | r->fioff;
	fpu->last_dp = (uint64_t)(r->foseg & 0xffff) << 32 | r->fooff;
	fpu->last_opcode = (uint16_t)(r->fop & 0x7ff);
	memcpy(fpu->xmm, r->xmm, sizeof(fpu->xmm));
	fpu->mxcsr = r->mxcsr;
	if (xsave) {
		uint8_t *x = xsave;
		uint64_t bv;
		bool ymm_zero = true;

		/*
		 * Keep the XSAVE image consistent with kvm_fpu, so the VM may
		 * load either: the legacy FXSAVE region (Vol. 1 §10.5.1),
		 * then the AVX upper halves.
		 */
		memcpy(x + 0, &fpu->fcw, 2);
		memcpy(x + 2, &fpu->fsw, 2);
		x[4] = fpu->ftwx;
		memcpy(x + 6, &fpu->last_opcode, 2);
		memcpy(x + 8, &fpu->last_ip, 8);
		memcpy(x + 16, &fpu->last_dp, 8);
		memcpy(x + 24, &fpu->mxcsr, 4);
		memcpy(x + 32, fpu->fpr, sizeof(fpu->fpr));
		memcpy(x + 160, fpu->xmm, sizeof(fpu->xmm));
		memcpy(&bv, x + XSAVE_XSTATE_BV, sizeof(bv));
		bv |= 3;	/* x87 and SSE state present */
		for (size_t i = 0; i < sizeof(r->ymmh); i++)
			ymm_zero &= ((const uint8_t *)r->ymmh)[i] == 0;
		/*
		 * Only claim the AVX component when it holds something or was
		 * already there: a guest without AVX in XCR0 must not get it.
		 */
		if ((bv & XSTATE_YMM) || !ymm_zero) {
			memcpy(x + XSAVE_YMMH, r->ymmh, sizeof(r->ymmh));
			bv |= XSTATE_YMM;
		}
		memcpy(x + XSAVE_XSTATE_BV, &bv, sizeof(bv));
	}
}
