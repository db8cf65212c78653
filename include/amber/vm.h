/*
 * A running virtual machine: KVM VM, vCPU threads, the machine's devices,
 * the event loop and the control socket.
 *
 * Pausing (DESIGN.md "Pausing"): vm_pause() sets a flag and kicks every vCPU
 * thread (SIGUSR1 + kvm_run->immediate_exit); each thread parks outside
 * KVM_RUN and acknowledges. No lock is held across KVM_RUN. gdb, checkpoint,
 * migration and stop/cont all use this one mechanism.
 */
#ifndef AMBER_VM_H
#define AMBER_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>

#include "amber/config.h"
#include "amber/machine.h"

struct control;
struct chardev;
struct snap_doc;
struct vm;

/* Exit codes of `amber run` */
#define EXIT_GUEST_POWEROFF  0
#define EXIT_USAGE           2
#define EXIT_VM_ERROR        3	/* could not create or start the VM */
#define EXIT_GUEST_CRASH     4	/* triple fault / shutdown exit */
#define EXIT_KVM_ERROR       5	/* KVM internal error / emulation failure */

enum vm_state { VM_RUNNING, VM_PAUSED, VM_SHUTDOWN };

struct vcpu {
	struct vm *vm;
	int id;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool thread_started;
	/* guarded by vm->pause_lock */
	bool parked;
	/* debug (gdb): set by the stub while the vCPU is parked */
	void *debug;
	/* guarded by vm->pause_lock: gdb holds this vCPU parked (amber/gdb.h) */
	bool gdb_hold;
};

struct vm {
	struct machine machine;		/* devices see this */
	struct vm_config *cfg;
	int kvm_fd, vm_fd;
	int signal_fd;			/* SIGTERM/SIGINT/SIGHUP, read on the loop */
	int ncpus;
	struct vcpu *vcpus;
	struct kvm_cpuid2 *cpuid;	/* what the guest sees */
	struct control *control;
	struct chardev *serial;

	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;
	int pause_depth;		/* >0: vCPUs must stay parked */
	int nparked;			/* vCPU threads parked */
	int nactive;			/* vCPU threads running their loop */
	enum vm_state state;

	/* exit: set once by the first vCPU or request that ends the VM */
	pthread_mutex_t exit_lock;
	pthread_cond_t exit_cond;
	bool exiting;
	int exit_code;
	bool reboot_requested;

	/* KVM_EXIT_DEBUG handler (the gdb stub); true if handled. */
	bool (*debug_exit)(struct vm *vm, struct vcpu *v);
	/* On the vCPU thread before each KVM_RUN (gdb: KVM_SET_GUEST_DEBUG). */
	void (*debug_prepare)(struct vm *vm, struct vcpu *v);
	void *gdb;			/* struct vm_gdb (src/core/vm_gdb.c) */
	/* Checkpoint refused while this says so (gdb breakpoints in RAM). */
	int (*checkpoint_veto)(struct vm *vm, char *err, size_t errlen);
	struct snap_doc *restore_doc;	/* --restore: the opened checkpoint */
	uint64_t entry_rip;		/* where the boot vCPU started (for gdb tests) */
	uint64_t first_run_ns;		/* CLOCK_MONOTONIC of the first KVM_RUN */
};

/*
 * Create the VM from cfg, or restore it from an opened checkpoint (restore;
 * cfg then was filled by checkpoint_open). The caller keeps restore open
 * until vm_destroy (lazy restore maps its memory.bin).
 */
int vm_create(struct vm **out, struct vm_config *cfg, struct snap_doc *restore, char *err,
	      size_t errlen);
/* Start vCPUs and run until the guest powers off or quit; returns exit code. */
int vm_run(struct vm *vm);
void vm_destroy(struct vm *vm);

/* Park every vCPU (nestable); returns when all are parked. */
void vm_pause(struct vm *vm);
void vm_unpause(struct vm *vm);
/*
 * gdb's hold (include/amber/gdb.h): a held vCPU stays parked as during
 * vm_pause(); holds and pause_depth compose, so a checkpoint's
 * vm_pause()/vm_unpause() while gdb holds the VM leaves it held, and a gdb
 * resume during vm_pause() runs nothing until vm_unpause().
 * vm_hold_vcpus: hold every vCPU and kick it; with wait, return once all
 * are parked (never with wait from a vCPU thread).
 * vm_release_vcpus: drop the hold of each vCPU i with release[i].
 */
void vm_hold_vcpus(struct vm *vm, bool wait);
void vm_release_vcpus(struct vm *vm, const bool *release);
/* User-visible stop/cont (QMP), emit STOP/RESUME events. */
int vm_stop(struct vm *vm);
int vm_cont(struct vm *vm);
/* End the VM: vm_run returns code. */
void vm_request_exit(struct vm *vm, int code);

/* Control commands of later features (checkpoint, gdb, ...): platform.c. */
void vm_register_extra_commands(struct vm *vm);

/* Run fn(vcpu, opaque) on each vCPU's own thread while paused (KVM vCPU
 * ioctls that must be issued by the owning thread are not required on x86,
 * but state reads are done while parked). */
int vm_for_each_vcpu(struct vm *vm, int (*fn)(struct vcpu *, void *), void *opaque);

#endif
