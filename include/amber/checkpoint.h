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

struct vm;
struct vm_config;
struct snap_doc;

enum checkpoint_then { CKPT_THEN_RESUME, CKPT_THEN_STOP, CKPT_THEN_QUIT };

int vm_checkpoint(struct vm *vm, const char *dir, bool force, enum checkpoint_then then,
		  char *err, size_t errlen);

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
/* QMP "checkpoint" {"path", "then", "force"}. */
void checkpoint_register_commands(struct vm *vm);

#endif
