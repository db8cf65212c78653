/*
 * KVM side of the GDB stub: struct gdb_debug_state -> KVM_SET_GUEST_DEBUG,
 * KVM_EXIT_DEBUG -> struct gdb_stop_event, and gdb's register file <-> KVM's
 * register structures. Pure functions: the VM does the ioctls.
 *
 * How the VM uses them (per vCPU, on its own thread):
 *   before KVM_RUN after a resume:
 *       x86_kvm_debug_build(&d, have_blockirq, &dbg);  ioctl(KVM_SET_GUEST_DEBUG, &dbg)
 *   on KVM_EXIT_DEBUG:
 *       if (x86_kvm_debug_decode(&run->debug.arch, &d, cpu, &ev) == 0 &&
 *           gdb_server_notify_stop(gs, &ev) == 1)  -> park (see amber/gdb.h)
 *       else re-inject run->debug.arch.exception (KVM_SET_VCPU_EVENTS)
 *
 * Single-step works the same on Intel and AMD: KVM_GUESTDBG_SINGLESTEP sets
 * RFLAGS.TF (KVM hides it from the guest) and the #DB trap arrives with
 * DR6.BS; no monitor trap flag is needed.
 *
 * Interrupts while stepping (gdb_debug_state.block_irq): with
 * KVM_GUESTDBG_BLOCKIRQ (Linux 5.15+; KVM_CHECK_EXTENSION(KVM_CAP_SET_GUEST_DEBUG2)
 * returns the supported flags and includes it), KVM delivers no interrupt
 * during the step. Without it, x86_kvm_debug_build reports need_if_mask and
 * the VM clears RFLAGS.IF for the step and restores it after, unless
 * x86_step_insn_touches_if() says the instruction reads or writes IF (cli,
 * sti, pushf, popf, iret, int n, syscall ...), in which case that one step
 * runs with interrupts unmasked. (If the stepped instruction faults, the
 * exception frame holds IF=0; BLOCKIRQ has no such gap.)
 */
#ifndef AMBER_X86_KVM_DEBUG_H
#define AMBER_X86_KVM_DEBUG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "amber/gdb.h"

#define X86_DR6_BS	(1ULL << 14)	/* single step (SDM Vol. 3 §17.2.3) */
#define X86_DR7_GE	(1ULL << 9)
#define X86_DR7_FIXED1	(1ULL << 10)	/* reads as 1 */
#define X86_RFLAGS_IF	(1ULL << 9)
#define X86_RFLAGS_TF	(1ULL << 8)

/* DR7 for the slots in use (SDM Vol. 3 §17.2.4): G bits, R/W and LEN fields. */
uint64_t x86_dr7_encode(const struct gdb_hw_slot *hw);	/* GDB_HW_SLOTS entries */

/*
 * Fill dbg for KVM_SET_GUEST_DEBUG. have_blockirq: KVM supports
 * KVM_GUESTDBG_BLOCKIRQ. Returns true when the caller must mask interrupts
 * itself for this step (stepping, block_irq wanted, no BLOCKIRQ).
 */
bool x86_kvm_debug_build(const struct gdb_debug_state *d, bool have_blockirq,
			 struct kvm_guest_debug *dbg);

/*
 * Decode a KVM_EXIT_DEBUG for vCPU cpu, given the debug state it ran with.
 * 0 and *ev filled when the exit is the stub's (int3 while sw_bp is on, a
 * slot's DR6 bit, the single-step bit); -ENOENT when it belongs to the
 * guest (re-inject the exception).
 */
int x86_kvm_debug_decode(const struct kvm_debug_exit_arch *arch, const struct gdb_debug_state *d,
			 int cpu, struct gdb_stop_event *ev);

/*
 * Fallback interrupt masking: does the instruction at insn (n bytes read at
 * rip; long_mode for REX prefixes) read or write RFLAGS.IF?
 */
bool x86_step_insn_touches_if(const uint8_t *insn, size_t n, bool long_mode);

/*
 * gdb's register file from KVM's (xsave: the KVM_GET_XSAVE region, standard
 * format, or NULL for no AVX state), and back. to_kvm updates the
 * structures in place (fill them with KVM_GET_* first); it changes a segment
 * only when gdb changed its selector (in real mode the base follows the
 * selector).
 */
void x86_gdb_regs_from_kvm(const struct kvm_regs *regs, const struct kvm_sregs *sregs,
			   const struct kvm_fpu *fpu, const void *xsave, struct gdb_x86_regs *r);
void x86_gdb_regs_to_kvm(const struct gdb_x86_regs *r, struct kvm_regs *regs,
			 struct kvm_sregs *sregs, struct kvm_fpu *fpu, void *xsave);

/* x87 tag word: FXSAVE's abridged form <-> the full one gdb shows. */
uint16_t x86_fpu_tag_full(uint8_t ftwx, uint16_t fsw, const uint8_t st[8][16]);
uint8_t x86_fpu_tag_abridged(uint16_t ftag);

#endif
