/*
 * The GDB stub (include/amber/gdb.h) wired into the VM (src/core/vm_gdb.c):
 * struct gdb_target_ops over struct vm, the KVM_EXIT_DEBUG and pre-KVM_RUN
 * hooks of the vCPU loop, --gdb/--gdb-wait, and the QMP command
 *
 *   {"execute": "gdbserver", "arguments": {"device": "tcp::1234"}}
 *
 * (QEMU's HMP gdbserver: start the stub on demand; "none" stops it). It
 * returns {"port": N} for TCP (N is the bound port, so "tcp::0" picks one)
 * or {"path": P} for "unix:P". "query-gdbserver" returns {"listening": B,
 * "connected": B, "sw-breakpoints": N} plus "checkpoint-refusal": MESSAGE
 * while vm_gdb_check_checkpoint() would refuse.
 */
#ifndef AMBER_VM_GDB_H
#define AMBER_VM_GDB_H

#include <stdbool.h>
#include <stddef.h>

struct vm;

/*
 * From vm_create(), after the platform is built and before any vCPU runs:
 * start the server when cfg->gdb is set; with cfg->gdb_wait hold every
 * vCPU until gdb continues. 0 or -errno with a message in err.
 */
int vm_gdb_setup(struct vm *vm, char *err, size_t errlen);
/*
 * Start the server on listen_spec (see gdb_server_new) on a VM that may be
 * running; wait: hold the vCPUs until gdb continues. -EBUSY if one runs.
 */
int vm_gdb_start(struct vm *vm, const char *listen_spec, bool wait, char *err, size_t errlen);
/* Stop the server (the client detaches: breakpoints out, guest resumed). */
void vm_gdb_stop(struct vm *vm);
/*
 * From vm_destroy(), while the vCPUs exist: tell a client waiting for the
 * guest that it exited ('W' with the exit code; not on reboot), then stop.
 */
void vm_gdb_teardown(struct vm *vm);
/*
 * For checkpoint and migration, before anything is written: 0, or -EBUSY
 * and "gdb has N software breakpoints planted in guest memory: remove them
 * or detach before checkpointing" in err. (gdb removes its breakpoints
 * whenever it has the VM stopped, so this refuses only while the guest
 * runs under gdb with breakpoints inserted.)
 */
int vm_gdb_check_checkpoint(struct vm *vm, char *err, size_t errlen);
/* Register "gdbserver" on the VM's control socket (vm_register_extra_commands). */
void vm_gdb_register_commands(struct vm *vm);

#endif
