/*
 * Checkpoint and restore of a whole VM (src/core/checkpoint.c), on top of the
 * format in include/amber/snapshot.h and the x86 state codecs.
 *
 * Checkpoint: every device must be able to save (else the checkpoint fails
 * naming it, before anything is paused); vCPUs are parked (vm_pause), devices
 * quiesced (in-flight I/O completed), then vCPU, VM, device and disk
 * sections are written with memory.bin, atomically (snap_write).
 *
 * Restore: `amber run --restore DIR` opens and checks the whole checkpoint
 * (checkpoint_open) before a VM exists, takes the machine configuration from
 * it, creates the same machine without a boot image, then loads memory,
 * vCPUs, the in-kernel irqchip/PIT/clock and every device section.
 */
#ifndef AMBER_CHECKPOINT_H
#define AMBER_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;
struct vm_config;
struct snap_doc;

enum checkpoint_then { CKPT_THEN_RESUME, CKPT_THEN_STOP, CKPT_THEN_QUIT };

/* Where a checkpoint's time went (the QMP reply carries them in ms). */
struct checkpoint_stats {
	uint64_t pause_ns;	/* vCPUs parked: vm_pause until they may run again */
	uint64_t memory_ns;	/* copying guest RAM to memory.bin (part of the pause) */
	uint64_t commit_ns;	/* fsyncs, vm.json, rename (after the pause with "resume") */
	uint64_t total_ns;
	uint64_t ram_bytes, stored_bytes;	/* RAM size, memory.bin's allocated bytes */
};

/*
 * Checkpoint the VM into dir, then resume, stay stopped or quit. With
 * "resume" the vCPUs run again as soon as RAM has been copied to the page
 * cache (snap_write_begin); the fsyncs and the rename follow. With "stop"
 * and "quit" they stay parked until the checkpoint is complete. On failure
 * nothing of dir changed, a previous checkpoint there is intact, and the VM
 * keeps running ("resume", "quit") or stays stopped ("stop", or a VM that
 * was stopped before); err says which. stats may be NULL.
 */
int vm_checkpoint(struct vm *vm, const char *dir, bool force, enum checkpoint_then then,
		  struct checkpoint_stats *stats, char *err, size_t errlen);

/*
 * Open DIR, run every check restore needs (structure, devices, host CPU,
 * disks) and fill cfg's machine options from it (host-side options already
 * in cfg — serial, control — are kept). *doc stays open for vm_create.
 */
int checkpoint_open(const char *dir, struct vm_config *cfg, struct snap_doc **doc,
		    char *err, size_t errlen);
/* The CPUID of the checkpointed guest (malloc'd), for vCPU creation. */
struct kvm_cpuid2 *checkpoint_cpuid(struct snap_doc *doc);
/*
 * After the machine's devices exist: check the device list matches the
 * checkpoint's, then load memory, vCPUs, VM state and devices.
 */
int checkpoint_restore(struct vm *vm, struct snap_doc *doc, char *err, size_t errlen);
/*
 * Digests (DESIGN.md "Validation"): copy mode checks every chunk digest in
 * checkpoint_open, before anything is loaded (exit 2 on a mismatch). Lazy
 * mode cannot without reading all of memory.bin first, which is what it
 * avoids: checkpoint_restore starts a thread that checks every chunk while
 * the guest runs, on CPU time nothing else wants (SCHED_IDLE: on a host whose
 * CPUs are all busy the check ends late); a mismatch is logged with the
 * chunk named and stops the
 * VM (STOP and CHECKPOINT_CORRUPT events) when there is a control socket,
 * else ends amber with exit code 3. checkpoint_vm_destroy stops that thread
 * (vm_destroy calls it first).
 */
void checkpoint_vm_destroy(struct vm *vm);
/* QMP "checkpoint" {"path", "then", "force"}. */
void checkpoint_register_commands(struct vm *vm);

#endif
