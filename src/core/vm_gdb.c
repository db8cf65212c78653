/*
 * The GDB stub wired into the VM: struct gdb_target_ops over struct vm
 * (include/amber/gdb.h, "How the VM plugs in"), the vCPU-loop hooks for
 * KVM_SET_GUEST_DEBUG and KVM_EXIT_DEBUG, --gdb/--gdb-wait and the QMP
 * command "gdbserver".
 *
 * Stop and resume are the pause machinery of vm.c: each vCPU has a gdb hold
 * merged into its park condition (vm_hold_vcpus/vm_release_vcpus), so gdb
 * and vm_pause() (stop/cont, checkpoint, migration) compose.
 *
 * Threads: the ops run on the stub's thread while the vCPUs they touch are
 * parked (gdb only reads state when the VM is stopped). The debug state the
 * stub sets is applied by the vCPU's own thread before its next KVM_RUN;
 * exits are decoded with the state the vCPU ran with.
 * Linux Documentation/virt/kvm/api.rst: KVM_SET_GUEST_DEBUG, KVM_EXIT_DEBUG,
 * KVM_CAP_SET_GUEST_DEBUG2, KVM_SET_VCPU_EVENTS.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "amber/control.h"
#include "amber/gdb.h"
#include "amber/log.h"
#include "amber/vm.h"
#include "amber/vm_gdb.h"
#include "amber/x86_kvm_debug.h"
#include "amber/x86_mmu.h"

#define SUBSYS "gdb"

struct vcpu_gdb {
	pthread_mutex_t lock;		/* want, pending */
	struct gdb_debug_state want;	/* set by the stub while parked */
	atomic_bool pending;		/* want not yet given to KVM */
	/* the vCPU's thread, or the stub while the vCPU is parked */
	struct gdb_debug_state ran;	/* what KVM has: exits decode with it */
	bool if_masked;			/* we cleared RFLAGS.IF for this step */
};

struct vm_gdb {
	struct vm *vm;
	struct gdb_server *gs;		/* read by vCPU threads: atomics */
	bool have_blockirq;		/* KVM_GUESTDBG_BLOCKIRQ */
	bool have_xsave;
	struct vcpu_gdb *cpus;
};

static struct gdb_server *vm_gdb_server(struct vm_gdb *g)
{
	return __atomic_load_n(&g->gs, __ATOMIC_ACQUIRE);
}

/* ---- registers and memory -------------------------------------------- */

static int vcpu_ioctl(struct vm *vm, int cpu, unsigned long req, void *arg)
{
	if (cpu < 0 || cpu >= vm->ncpus)
		return -EINVAL;
	return ioctl(vm->vcpus[cpu].fd, req, arg) < 0 ? -errno : 0;
}

struct vcpu_regs {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	bool have_xsave;
	struct kvm_xsave xsave;	/* last: newer headers end it with extra[] */
};

static int vcpu_regs_get(struct vm_gdb *g, int cpu, struct vcpu_regs *r)
{
	int rc;

	memset(r, 0, sizeof(*r));
	rc = vcpu_ioctl(g->vm, cpu, KVM_GET_REGS, &r->regs);
	if (!rc)
		rc = vcpu_ioctl(g->vm, cpu, KVM_GET_SREGS, &r->sregs);
	if (!rc)
		rc = vcpu_ioctl(g->vm, cpu, KVM_GET_FPU, &r->fpu);
	if (!rc && g->have_xsave)
		r->have_xsave = vcpu_ioctl(g->vm, cpu, KVM_GET_XSAVE, &r->xsave) == 0;
	return rc;
}

/* RFLAGS.IF back after a step we ran with interrupts masked (fallback). */
static void vcpu_gdb_restore_if(struct vm_gdb *g, int cpu)
{
	struct kvm_regs regs;

	if (!g->cpus[cpu].if_masked)
		return;
	g->cpus[cpu].if_masked = false;
	if (vcpu_ioctl(g->vm, cpu, KVM_GET_REGS, &regs) == 0) {
		regs.rflags |= X86_RFLAGS_IF;
		vcpu_ioctl(g->vm, cpu, KVM_SET_REGS, &regs);
	}
}

static int op_get_regs(void *opaque, int cpu, struct gdb_x86_regs *out)
{
	struct vm_gdb *g = opaque;
	struct vcpu_regs *r = malloc(sizeof(*r));
	int rc;

	if (!r)
		return -ENOMEM;
	rc = vcpu_regs_get(g, cpu, r);
	if (!rc)
		x86_gdb_regs_from_kvm(&r->regs, &r->sregs, &r->fpu,
				      r->have_xsave ? r->xsave.region : NULL, out);
	free(r);
	return rc;
}

static int op_set_regs(void *opaque, int cpu, const struct gdb_x86_regs *in)
{
	struct vm_gdb *g = opaque;
	struct vcpu_regs *r = malloc(sizeof(*r));
	int rc;

	if (!r)
		return -ENOMEM;
	rc = vcpu_regs_get(g, cpu, r);
	if (rc)
		goto out;
	x86_gdb_regs_to_kvm(in, &r->regs, &r->sregs, &r->fpu,
			    r->have_xsave ? r->xsave.region : NULL);
	rc = vcpu_ioctl(g->vm, cpu, KVM_SET_SREGS, &r->sregs);
	if (!rc)
		rc = vcpu_ioctl(g->vm, cpu, KVM_SET_REGS, &r->regs);
	/* the XSAVE image holds the x87/SSE state too (kept consistent) */
	if (!rc)
		rc = r->have_xsave ? vcpu_ioctl(g->vm, cpu, KVM_SET_XSAVE, &r->xsave)
				   : vcpu_ioctl(g->vm, cpu, KVM_SET_FPU, &r->fpu);
out:
	free(r);
	return rc;
}

static int vcpu_mmu_state(struct vm *vm, int cpu, struct x86_mmu_state *st)
{
	struct kvm_sregs sregs;
	int rc = vcpu_ioctl(vm, cpu, KVM_GET_SREGS, &sregs);

	if (rc)
		return rc;
	st->cr0 = sregs.cr0;
	st->cr3 = sregs.cr3;
	st->cr4 = sregs.cr4;
	st->efer = sregs.efer;
	return 0;
}

static int op_read_virt(void *opaque, int cpu, uint64_t gva, void *buf, size_t len)
{
	struct vm_gdb *g = opaque;
	struct x86_mmu_state st;
	int rc = vcpu_mmu_state(g->vm, cpu, &st);

	return rc ? rc : x86_read_virt(&g->vm->machine.mem, &st, gva, buf, len);
}

static int op_write_virt(void *opaque, int cpu, uint64_t gva, const void *buf, size_t len)
{
	struct vm_gdb *g = opaque;
	struct x86_mmu_state st;
	int rc = vcpu_mmu_state(g->vm, cpu, &st);

	return rc ? rc : x86_write_virt(&g->vm->machine.mem, &st, gva, buf, len);
}

/* ---- run control ---------------------------------------------------------- */

static int op_ncpus(void *opaque)
{
	struct vm_gdb *g = opaque;

	return g->vm->ncpus;
}

static int op_stop(void *opaque)
{
	struct vm_gdb *g = opaque;

	vm_hold_vcpus(g->vm, true);
	/* all parked: a step cut short by this stop gives IF back now */
	for (int i = 0; i < g->vm->ncpus; i++)
		vcpu_gdb_restore_if(g, i);
	return 0;
}

static int op_resume(void *opaque, const enum gdb_cpu_action *actions)
{
	struct vm_gdb *g = opaque;
	bool *release = calloc((size_t)g->vm->ncpus, sizeof(*release));

	if (!release)
		return -ENOMEM;
	for (int i = 0; i < g->vm->ncpus; i++)
		release[i] = actions[i] != GDB_CPU_STAY;
	vm_release_vcpus(g->vm, release);
	free(release);
	return 0;
}

static int op_set_debug(void *opaque, int cpu, const struct gdb_debug_state *d)
{
	struct vm_gdb *g = opaque;
	struct vcpu_gdb *c;

	if (cpu < 0 || cpu >= g->vm->ncpus)
		return -EINVAL;
	c = &g->cpus[cpu];
	pthread_mutex_lock(&c->lock);
	c->want = *d;
	atomic_store_explicit(&c->pending, true, memory_order_release);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static void op_kill(void *opaque)
{
	struct vm_gdb *g = opaque;

	log_info(SUBSYS, "gdb killed the VM");
	vm_request_exit(g->vm, EXIT_GUEST_POWEROFF);
}

static const struct gdb_target_ops vm_gdb_ops = {
	.ncpus = op_ncpus,
	.stop = op_stop,
	.resume = op_resume,
	.get_regs = op_get_regs,
	.set_regs = op_set_regs,
	.read_virt = op_read_virt,
	.write_virt = op_write_virt,
	.set_debug = op_set_debug,
	.kill = op_kill,
};

/* ---- vCPU thread hooks ---------------------------------------------------- */

/*
 * Without KVM_GUESTDBG_BLOCKIRQ, mask interrupts for one step by clearing
 * RFLAGS.IF, unless the instruction itself reads or writes IF
 * (include/amber/x86_kvm_debug.h).
 */
static void vcpu_gdb_mask_if(struct vm_gdb *g, struct vcpu *v)
{
	struct vcpu_gdb *c = &g->cpus[v->id];
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct x86_mmu_state st;
	uint8_t insn[16];
	size_t n;

	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0 || ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return;
	if (!(regs.rflags & X86_RFLAGS_IF))
		return;
	st = (struct x86_mmu_state) { sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer };
	/* the instruction may end at an unmapped page: take what reads */
	for (n = sizeof(insn); n > 0; n--)
		if (x86_read_virt(&g->vm->machine.mem, &st, sregs.cs.base + regs.rip, insn, n) == 0)
			break;
	if (x86_step_insn_touches_if(insn, n, sregs.cs.l))
		return;
	regs.rflags &= ~X86_RFLAGS_IF;
	if (ioctl(v->fd, KVM_SET_REGS, &regs) == 0)
		c->if_masked = true;
}

/* Before KVM_RUN: give KVM the debug state the stub set while we were parked. */
static void vm_gdb_prepare(struct vm *vm, struct vcpu *v)
{
	struct vm_gdb *g = vm->gdb;
	struct vcpu_gdb *c = &g->cpus[v->id];
	struct kvm_guest_debug dbg;
	struct gdb_debug_state d;

	if (!atomic_load_explicit(&c->pending, memory_order_acquire))
		return;
	pthread_mutex_lock(&c->lock);
	d = c->want;
	atomic_store_explicit(&c->pending, false, memory_order_relaxed);
	pthread_mutex_unlock(&c->lock);
	vcpu_gdb_restore_if(g, v->id);
	if (x86_kvm_debug_build(&d, g->have_blockirq, &dbg))
		vcpu_gdb_mask_if(g, v);
	log_debug(SUBSYS, "vCPU %d: KVM_SET_GUEST_DEBUG control %#x dr7 %#llx", v->id, dbg.control,
		  (unsigned long long)dbg.arch.debugreg[7]);
	if (ioctl(v->fd, KVM_SET_GUEST_DEBUG, &dbg) < 0) {
		log_warn(SUBSYS, "vCPU %d: KVM_SET_GUEST_DEBUG: %s", v->id, strerror(errno));
		vcpu_gdb_restore_if(g, v->id);
		memset(&d, 0, sizeof(d));
	}
	c->ran = d;
}

/*
 * Give the guest the #BP or #DB it caused itself (an int3 it wrote, its own
 * debug registers) and that KVM handed us because guest debugging is on,
 * as QEMU's kvm_handle_debug does. KVM left rip on the int3 and knows the
 * instruction length to deliver the soft exception with.
 */
static void vcpu_gdb_reinject(struct vcpu *v, const struct kvm_debug_exit_arch *a)
{
	struct kvm_vcpu_events ev;

	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		goto fail;
	if (a->exception == 1) {
		struct kvm_debugregs dr;

		/* Intel SDM Vol. 3 §17.2.3: the handler reads the cause in DR6 */
		if (ioctl(v->fd, KVM_GET_DEBUGREGS, &dr) == 0) {
			dr.dr6 = a->dr6;
			ioctl(v->fd, KVM_SET_DEBUGREGS, &dr);
		}
	}
	ev.exception.injected = 1;
	ev.exception.nr = (uint8_t)a->exception;
	ev.exception.has_error_code = 0;
	ev.exception.error_code = 0;
	ev.flags = 0;	/* change nothing but the exception */
	if (ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		goto fail;
	return;
fail:
	log_warn(SUBSYS, "vCPU %d: cannot give the guest its exception %u: %s", v->id,
		 a->exception, strerror(errno));
}

/* KVM_EXIT_DEBUG. Always handled: a debug exit never ends the VM. */
static bool vm_gdb_debug_exit(struct vm *vm, struct vcpu *v)
{
	struct vm_gdb *g = vm->gdb;
	struct vcpu_gdb *c = &g->cpus[v->id];
	const struct kvm_debug_exit_arch *a = &v->run->debug.arch;
	struct gdb_server *gs = vm_gdb_server(g);
	struct gdb_stop_event ev;

	log_debug(SUBSYS, "vCPU %d: debug exit: exception %u pc %#llx dr6 %#llx dr7 %#llx",
		  v->id, a->exception, (unsigned long long)a->pc, (unsigned long long)a->dr6,
		  (unsigned long long)a->dr7);
	if (x86_kvm_debug_decode(a, &c->ran, v->id, &ev) < 0) {
		vcpu_gdb_reinject(v, a);
		return true;
	}
	/* any stop of ours ends a step */
	vcpu_gdb_restore_if(g, v->id);
	if (gs && gdb_server_notify_stop(gs, &ev) == 1) {
		/* all-stop: nobody enters KVM_RUN again until gdb resumes */
		vm_hold_vcpus(vm, false);
		return true;
	}
	/*
	 * Not taken: an int3 the stub did not plant is the guest's. A step or
	 * debug-register hit without a client is a leftover of a detach; the
	 * next KVM_RUN runs with debugging off.
	 */
	if (ev.reason == GDB_STOP_SW_BP)
		vcpu_gdb_reinject(v, a);
	return true;
}

/* ---- setup --------------------------------------------------------------- */

/* The per-vCPU state and the hooks; installed while no vCPU runs. */
static int vm_gdb_init(struct vm *vm)
{
	struct vm_gdb *g;
	int caps;

	if (vm->gdb)
		return 0;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->cpus = calloc((size_t)vm->ncpus, sizeof(*g->cpus));
	if (!g->cpus) {
		free(g);
		return -ENOMEM;
	}
	g->vm = vm;
	for (int i = 0; i < vm->ncpus; i++) {
		pthread_mutex_init(&g->cpus[i].lock, NULL);
		vm->vcpus[i].debug = &g->cpus[i];
	}
	/* KVM_CAP_SET_GUEST_DEBUG2 returns the supported control flags (Linux 5.15+) */
	caps = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_GUEST_DEBUG2);
	g->have_blockirq = caps > 0 && (caps & KVM_GUESTDBG_BLOCKIRQ);
	g->have_xsave = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0;
	if (!g->have_blockirq)
		log_info(SUBSYS, "KVM lacks KVM_GUESTDBG_BLOCKIRQ: stepping masks RFLAGS.IF instead");
	vm->gdb = g;
	vm->debug_prepare = vm_gdb_prepare;
	vm->debug_exit = vm_gdb_debug_exit;
	vm->checkpoint_veto = vm_gdb_check_checkpoint;	/* src/core/checkpoint.c */
	return 0;
}

int vm_gdb_start(struct vm *vm, const char *spec, bool wait, char *err, size_t errlen)
{
	struct vm_gdb *g;
	struct gdb_server *gs;
	int rc;

	if (vm->gdb && vm_gdb_server(vm->gdb)) {
		snprintf(err, errlen, "gdb: a server is already listening (gdbserver none stops it)");
		return -EBUSY;
	}
	/* no vCPU may be in the hooks while they are installed */
	vm_pause(vm);
	rc = vm_gdb_init(vm);
	if (rc < 0) {
		snprintf(err, errlen, "gdb: out of memory");
		goto out;
	}
	g = vm->gdb;
	gs = gdb_server_new(spec, &vm_gdb_ops, g, err, errlen);
	if (!gs) {
		rc = -EINVAL;
		goto out;
	}
	__atomic_store_n(&g->gs, gs, __ATOMIC_RELEASE);
	if (gdb_server_port(gs) >= 0)
		log_info(SUBSYS, "listening for gdb on %s (port %d)", spec, gdb_server_port(gs));
	else
		log_info(SUBSYS, "listening for gdb on %s", spec);
	if (wait) {
		vm_hold_vcpus(vm, false);
		log_info(SUBSYS, "vCPUs held until gdb continues (boot vCPU at %#llx)",
			 (unsigned long long)vm->entry_rip);
	}
out:
	vm_unpause(vm);
	return rc;
}

int vm_gdb_setup(struct vm *vm, char *err, size_t errlen)
{
	struct vm_config *cfg = vm->cfg;
	bool wait = cfg->gdb_wait;

	if (wait && !cfg->gdb) {
		snprintf(err, errlen, "--gdb-wait needs --gdb tcp:HOST:PORT or --gdb unix:PATH");
		return -EINVAL;
	}
	if (!cfg->gdb)
		return 0;
	/*
	 * --gdb-wait holds the guest's first instruction only: a VM created
	 * again after a guest reboot (--on-reboot restart) runs at once.
	 */
	cfg->gdb_wait = false;
	return vm_gdb_start(vm, cfg->gdb, wait, err, errlen);
}

void vm_gdb_stop(struct vm *vm)
{
	struct vm_gdb *g = vm->gdb;
	struct gdb_server *gs;

	if (!g || !(gs = vm_gdb_server(g)))
		return;
	/*
	 * Parked, no vCPU runs into an int3 while the client detaches (which
	 * takes them out) or holds the server pointer while it goes.
	 */
	vm_pause(vm);
	gdb_server_free(gs);
	__atomic_store_n(&g->gs, NULL, __ATOMIC_RELEASE);
	vm_unpause(vm);
}

void vm_gdb_teardown(struct vm *vm)
{
	struct vm_gdb *g = vm->gdb;
	struct gdb_server *gs;

	if (!g)
		return;
	gs = vm_gdb_server(g);
	if (gs && vm->exiting && !vm->reboot_requested) {
		struct gdb_stop_event ev = {
			.reason = GDB_STOP_EXITED,
			.exit_code = vm->exit_code,
		};

		gdb_server_notify_stop(gs, &ev);
	}
	vm_gdb_stop(vm);
	for (int i = 0; i < vm->ncpus; i++) {
		pthread_mutex_destroy(&g->cpus[i].lock);
		vm->vcpus[i].debug = NULL;
	}
	vm->debug_prepare = NULL;
	vm->debug_exit = NULL;
	vm->checkpoint_veto = NULL;
	vm->gdb = NULL;
	free(g->cpus);
	free(g);
}

int vm_gdb_check_checkpoint(struct vm *vm, char *err, size_t errlen)
{
	struct vm_gdb *g = vm->gdb;
	int n = g ? gdb_server_count_sw_breakpoints(vm_gdb_server(g)) : 0;

	if (n <= 0)
		return 0;
	snprintf(err, errlen, "gdb has %d software breakpoint%s planted in guest memory: "
		 "remove them or detach before checkpointing", n, n == 1 ? "" : "s");
	return -EBUSY;
}

/* ---- QMP ------------------------------------------------------------------- */

static int cmd_gdbserver(void *opaque, const json_t *args, json_t **ret, char *err, size_t errlen)
{
	struct vm *vm = opaque;
	const char *dev = json_string_value(json_object_get(args, "device"));
	struct gdb_server *gs;
	int rc;

	if (!dev || !*dev) {
		snprintf(err, errlen, "gdbserver: argument \"device\" is required "
			 "(tcp:HOST:PORT, tcp::PORT, unix:PATH or none)");
		return -EINVAL;
	}
	if (strcmp(dev, "none") == 0) {
		vm_gdb_stop(vm);
		return 0;
	}
	rc = vm_gdb_start(vm, dev, false, err, errlen);
	if (rc < 0)
		return rc;
	gs = vm_gdb_server(vm->gdb);
	if (gdb_server_port(gs) >= 0)
		*ret = json_pack("{s:i}", "port", gdb_server_port(gs));
	else
		*ret = json_pack("{s:s}", "path", dev + strlen("unix:"));
	return 0;
}

/*
 * {"listening": B, "connected": B, "sw-breakpoints": N} and, when a
 * checkpoint would be refused because of gdb, "checkpoint-refusal": why.
 */
static int cmd_query_gdbserver(void *opaque, const json_t *args, json_t **ret, char *err,
			       size_t errlen)
{
	struct vm *vm = opaque;
	struct gdb_server *gs = vm->gdb ? vm_gdb_server(vm->gdb) : NULL;
	char why[160];

	*ret = json_pack("{s:b, s:b, s:i}", "listening", gs != NULL,
			 "connected", gs && gdb_server_connected(gs),
			 "sw-breakpoints", gdb_server_count_sw_breakpoints(gs));
	if (*ret && vm_gdb_check_checkpoint(vm, why, sizeof(why)) < 0)
		json_object_set_new(*ret, "checkpoint-refusal", json_string(why));
	return *ret ? 0 : -ENOMEM;
}

void vm_gdb_register_commands(struct vm *vm)
{
	if (vm->control && (control_register(vm->control, "gdbserver", cmd_gdbserver, vm) < 0 ||
			    control_register(vm->control, "query-gdbserver", cmd_query_gdbserver, vm) < 0))
		log_warn(SUBSYS, "control socket: cannot register gdbserver");
}
