/*
 * GDB stub: gdb's remote serial protocol (RSP) for an x86-64 guest.
 *
 *   amber run ... --gdb tcp:127.0.0.1:1234 [--gdb-wait]     (or unix:PATH)
 *   gdb vmlinux -ex 'target remote :1234'
 *
 * All-stop mode: gdb threads are vCPUs (thread ids 1..N for vCPUs 0..N-1);
 * any stop (breakpoint, step, Ctrl-C) stops every vCPU. The stub runs on its
 * own thread (it blocks in ops->stop() while vCPUs park, so it must not sit on
 * the event loop that devices need) and serves one client at a time. A client
 * that disconnects detaches: breakpoints are removed and the guest runs on.
 *
 * The VM is reached only through struct gdb_target_ops, so the stub is tested
 * against a fake target (tests/unit/gdb) and fuzzed (fuzz/gdb_packet_fuzz.c).
 *
 * How the VM plugs in (see also include/amber/x86_kvm_debug.h):
 *  - ops->stop/resume use the userland pause machinery (DESIGN.md "Pausing").
 *  - Before each resume the stub calls ops->set_debug() for every vCPU; the
 *    VM turns it into KVM_SET_GUEST_DEBUG with x86_kvm_debug_build().
 *  - On KVM_EXIT_DEBUG the vCPU thread decodes the exit with
 *    x86_kvm_debug_decode() and calls gdb_server_notify_stop(). When that
 *    returns 1 the stop belongs to gdb: the vCPU must park (raise the VM's
 *    pause request itself, then park) and must not enter KVM_RUN again until
 *    ops->resume() releases it. When it returns 0 the exit is the guest's own
 *    (#BP from an int3 the guest wrote, #DB from the guest's own debug
 *    registers): re-inject the exception (KVM_SET_VCPU_EVENTS) and go on.
 *  - --gdb-wait: the VM creates its vCPUs parked and starts the server; the
 *    stub's first ops->stop() then returns at once, and the guest's first
 *    instruction runs when gdb continues (or detaches).
 *
 * A recipe with the nestable vm_pause() of include/amber/vm.h: give each
 * vCPU a `gdb_hold` flag (under pause_lock) and let the park loop wait while
 * pause_depth > 0 || gdb_hold. Then
 *    stop():    set every gdb_hold, kick the vCPUs, wait until all are parked;
 *    resume():  gdb_hold = (actions[i] == GDB_CPU_STAY), broadcast;
 *    vCPU on a debug exit that notify_stop() takes: set every gdb_hold
 *               itself (so no vCPU re-enters KVM_RUN — a single-step would
 *               otherwise step twice), then park.
 * Holds merge, so the vCPU's own hold and the stub's stop() never count
 * twice, and a checkpoint's vm_pause()/vm_unpause() while gdb holds the VM
 * leaves it held. set_debug() is called while the vCPU is parked: store the
 * state and issue KVM_SET_GUEST_DEBUG from the vCPU thread before KVM_RUN.
 */
#ifndef AMBER_GDB_H
#define AMBER_GDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GDB_MAX_CPUS	1024	/* KVM_MAX_VCPUS on x86; more: gdb refused */
#define GDB_HW_SLOTS	4	/* DR0-DR3 (Intel SDM Vol. 3 §17.2) */

/*
 * Register file as gdb sees it, in the order of the target description the
 * stub sends (features core, sse, segments, avx, then amber's system
 * registers); the 'g' packet is these registers, little endian, in that order.
 * Segment selectors, eflags and the x87 control words are 32-bit as in gdb.
 */
struct gdb_x86_regs {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp;	/* gdb's order, not KVM's */
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rip;
	uint32_t eflags;
	uint32_t cs, ss, ds, es, fs, gs;			/* selectors */
	uint8_t st[8][10];					/* ST(i), 80-bit */
	uint32_t fctrl, fstat;
	uint32_t ftag;		/* full 16-bit x87 tag word, not FXSAVE's abridged one */
	uint32_t fiseg, fioff, foseg, fooff, fop;
	uint8_t xmm[16][16];
	uint32_t mxcsr;
	uint64_t fs_base, gs_base;
	uint8_t ymmh[16][16];	/* upper halves of ymm0-15 (XSAVE component 2) */
	uint64_t cr0, cr2, cr3, cr4, cr8, efer;
};

/* Hardware breakpoint / watchpoint kinds (gdb's Z1..Z4). */
enum gdb_hw_type {
	GDB_HW_NONE = 0,
	GDB_HW_EXEC,		/* Z1 */
	GDB_HW_WRITE,		/* Z2 */
	GDB_HW_READ,		/* Z3: x86 has no read-only watch; armed as access */
	GDB_HW_ACCESS,		/* Z4 */
};

struct gdb_hw_slot {
	enum gdb_hw_type type;	/* GDB_HW_NONE: slot free */
	uint64_t addr;		/* linear address, aligned to len */
	unsigned len;		/* 1, 2, 4 or 8 (exec: 1) */
};

/*
 * What a vCPU should trap on when it runs next. The VM maps it to
 * KVM_SET_GUEST_DEBUG (x86_kvm_debug_build()).
 */
struct gdb_debug_state {
	bool enabled;		/* false: no guest debugging at all (detached) */
	bool sw_bp;		/* intercept #BP: the stub has int3s in guest memory */
	bool single_step;	/* this vCPU executes one instruction, then stops */
	bool block_irq;		/* while stepping, do not deliver interrupts */
	struct gdb_hw_slot hw[GDB_HW_SLOTS];
};

enum gdb_stop_reason {
	GDB_STOP_SIGNAL,	/* interrupted (Ctrl-C), attach: signal 'signal' */
	GDB_STOP_STEP,		/* single step done */
	GDB_STOP_SW_BP,		/* int3 at addr (rip points at the int3) */
	GDB_STOP_HW_BP,		/* execute breakpoint in a debug register */
	GDB_STOP_WATCH,		/* data breakpoint: slot 'slot', address addr */
	GDB_STOP_EXITED,	/* the VM is gone (poweroff): 'W' reply */
};

struct gdb_stop_event {
	int cpu;			/* vCPU index, 0-based */
	enum gdb_stop_reason reason;
	int signal;			/* GDB_STOP_SIGNAL: gdb signal number (2 INT, 5 TRAP) */
	int slot;			/* HW_BP / WATCH: which DRn fired */
	enum gdb_hw_type watch_type;	/* WATCH: as inserted */
	uint64_t addr;			/* SW_BP: pc; HW_BP/WATCH: slot address */
	int exit_code;			/* EXITED */
};

#define GDB_SIGINT  2
#define GDB_SIGTRAP 5

/* What each vCPU does on resume (vCont actions, 's' and 'c'). */
enum gdb_cpu_action {
	GDB_CPU_STAY = 0,	/* stays parked */
	GDB_CPU_CONTINUE,
	GDB_CPU_STEP,		/* its gdb_debug_state has single_step set */
};

/*
 * The target: implemented by the VM (src/core/vm.c), by a fake in the tests.
 * Every callback is called from the stub's thread and returns 0 or -errno
 * (ncpus: the count). cpu arguments are 0-based vCPU indexes < ncpus.
 */
struct gdb_target_ops {
	int (*ncpus)(void *opaque);
	/* Park every vCPU; return once all are parked. Idempotent. */
	int (*stop)(void *opaque);
	/*
	 * Release the vCPUs: actions[i] for vCPU i (ncpus entries). A VM that
	 * cannot keep some vCPUs parked while others run may run the STAY ones
	 * too (QEMU does); stepping one vCPU while the others stay parked is
	 * what gdb's scheduler-locking asks for.
	 */
	int (*resume)(void *opaque, const enum gdb_cpu_action *actions);
	int (*get_regs)(void *opaque, int cpu, struct gdb_x86_regs *r);
	int (*set_regs)(void *opaque, int cpu, const struct gdb_x86_regs *r);
	/*
	 * Guest-virtual (linear) memory through that vCPU's page tables
	 * (x86_read_virt/x86_write_virt, include/amber/x86_mmu.h). All or
	 * nothing: -EFAULT when any byte is unmapped or not RAM.
	 */
	int (*read_virt)(void *opaque, int cpu, uint64_t gva, void *buf, size_t len);
	int (*write_virt)(void *opaque, int cpu, uint64_t gva, const void *buf, size_t len);
	/* Debug traps for that vCPU from its next run on. */
	int (*set_debug)(void *opaque, int cpu, const struct gdb_debug_state *d);
	/* 'k': gdb asked to kill; amber quits the VM. May be NULL (ignored). */
	void (*kill)(void *opaque);
};

struct gdb_server;

/*
 * Listen on spec and serve gdb on a new thread.
 *   "tcp:HOST:PORT", "tcp:[V6ADDR]:PORT", "tcp::PORT", ":PORT", "PORT"
 *   (no host: 127.0.0.1 — other addresses only when written), "unix:PATH".
 * Port 0 picks a free port (gdb_server_port()). NULL and a message in err on
 * failure.
 */
struct gdb_server *gdb_server_new(const char *listen_spec, const struct gdb_target_ops *ops,
				  void *opaque, char *err, size_t errlen);
/* Detach any client (breakpoints removed, guest resumed), stop the thread. */
void gdb_server_free(struct gdb_server *gs);
/* TCP port actually bound, or -1 for a UNIX socket. */
int gdb_server_port(const struct gdb_server *gs);
bool gdb_server_connected(struct gdb_server *gs);

/*
 * Software breakpoints the stub has planted (int3 bytes in guest RAM), 0
 * without a client. A checkpoint taken now would save those int3s into
 * memory.bin: checkpoint/migration refuse while this is > 0 ("gdb has N
 * software breakpoints in guest memory: delete them or detach gdb").
 * gdb's default (breakpoint always-inserted off) removes them whenever the
 * VM is stopped, so a checkpoint while gdb holds the VM stopped works.
 * Thread-safe.
 */
int gdb_server_count_sw_breakpoints(struct gdb_server *gs);

/*
 * From a vCPU thread after a debug exit (or from the VM when it powers off:
 * GDB_STOP_EXITED). 1: the stop is gdb's, park this vCPU (see above);
 * 0: not gdb's (no client, or an int3 the stub did not plant), re-inject.
 * Thread-safe; never blocks on the stub thread.
 */
int gdb_server_notify_stop(struct gdb_server *gs, const struct gdb_stop_event *ev);

#endif
