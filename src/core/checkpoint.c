/*
 * Checkpoint and restore of a whole VM. Order and reasons:
 *
 * Save: refuse early what cannot be saved (a device class without save, gdb
 * breakpoints planted in guest memory); park the vCPUs (an in-flight I/O or
 * MMIO exit is completed by KVM first, see vcpu_park_if_requested); quiesce
 * devices in creation order so no DMA changes RAM while it is written; read
 * vCPU state (x86_vcpu_state_get: MP state first, events last), the VM's
 * irqchip/PIT/clock, device sections, disk identities; copy guest RAM into
 * the temporary directory (snap_write_begin). Devices resume; with "then
 * resume" the vCPUs too, before memory.bin and vm.json are fsync'd and
 * renamed into place (snap_write_commit); "stop" and "quit" wait for that.
 *
 * Restore: everything is validated before anything is loaded (snap_open,
 * snap_check_all, and the device list compared with the machine just built);
 * then memory (lazy MAP_PRIVATE or copy), vCPU state (CPUID was set at vCPU
 * creation, before anything else), the VM state (irqchip before the LAPICs
 * deliver anything; the clock last but one), device sections last, because
 * devices may look at guest RAM (NVMe queues) when they load. --clock advance
 * moves the guest TSC, kvmclock and the RTC's time on by the real time since
 * the checkpoint. Lazy restores check memory digests in the background.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>

#include "amber/checkpoint.h"
#include "amber/clock.h"
#include "amber/config.h"
#include "amber/control.h"
#include "amber/device.h"
#include "amber/evloop.h"
#include "amber/log.h"
#include "amber/snapjson.h"
#include "amber/snapshot.h"
#include "amber/vm.h"
#include "amber/vm_stats.h"
#include "amber/x86_kvm.h"
#include "amber/x86_state.h"

#ifndef KVM_CAP_XSAVE2
#define KVM_CAP_XSAVE2 208
#endif

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static size_t vm_xsave2_size(struct vm *vm)
{
	int n = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

	return n > 0 ? (size_t)n : 0;
}

/* The MSRs amber saves that this KVM knows. */
static int vm_msr_list(struct vm *vm, uint32_t *out, size_t max, size_t *n)
{
	struct kvm_msr_list probe = { .nmsrs = 0 }, *list;
	int ret = 0;

	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return -errno;
	list = calloc(1, sizeof(*list) + probe.nmsrs * sizeof(uint32_t));
	if (!list)
		return -ENOMEM;
	list->nmsrs = probe.nmsrs;
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0)
		ret = -errno;
	else
		*n = x86_msr_select(list->indices, list->nmsrs, out, max);
	free(list);
	return ret;
}

static void devices_resume(struct vm *vm, struct device *upto)
{
	for (struct device *d = vm->machine.devices; d && d != upto; d = d->next)
		if (d->cls->resume)
			d->cls->resume(d);
}

static json_t *checkpoint_disks(struct vm *vm, char *err, size_t errlen)
{
	json_t *disks = json_array();
	struct vm_config *cfg = vm->cfg;

	for (int i = 0; i < cfg->ndisks; i++) {
		json_t *id = snap_disk_identity(cfg->disks[i].path);
		char name[64];

		if (!id) {
			snprintf(err, errlen, "disk %s: %s", cfg->disks[i].path, strerror(errno));
			json_decref(disks);
			return NULL;
		}
		snprintf(name, sizeof(name), "%s/%d", cfg->disks[i].ctrl, i);
		json_array_append_new(disks, json_pack("{s:s, s:s, s:O, s:O}", "id", name,
			"path", cfg->disks[i].path, "size", json_object_get(id, "size"),
			"identity", id));
		json_decref(id);
	}
	return disks;
}

static int checkpoint_build(struct vm *vm, json_t *doc, char *err, size_t errlen)
{
	uint32_t msrs[X86_STATE_MAX_MSRS];
	size_t nmsrs = 0, xs = vm_xsave2_size(vm);
	json_t *vcpus = json_array(), *vmobj = json_object(), *devs = json_array(), *disks;
	int ret;

	json_object_set_new(doc, "config", config_to_json(vm->cfg));
	json_object_set_new(doc, "cpuid", x86_cpuid_to_json(vm->cpuid));
	json_object_set_new(doc, "vcpus", vcpus);
	json_object_set_new(doc, "vm", vmobj);
	json_object_set_new(doc, "devices", devs);
	json_object_set_new(doc, "saved_at_realtime_ns", snap_json_u64(realtime_ns()));

	ret = vm_msr_list(vm, msrs, X86_STATE_MAX_MSRS, &nmsrs);
	if (ret < 0) {
		snprintf(err, errlen, "KVM_GET_MSR_INDEX_LIST: %s", strerror(-ret));
		return ret;
	}
	for (int i = 0; i < vm->ncpus; i++) {
		json_t *o = json_object();

		json_array_append_new(vcpus, o);
		ret = x86_vcpu_state_save(vm->vcpus[i].fd, (uint32_t)i, msrs, nmsrs, xs, 0, o);
		if (ret < 0) {
			snprintf(err, errlen, "reading the state of vCPU %d: %s", i, strerror(-ret));
			return ret;
		}
	}
	ret = x86_vm_state_save(vm->vm_fd, vmobj);
	if (ret < 0) {
		snprintf(err, errlen, "reading the irqchip/PIT/clock state: %s", strerror(-ret));
		return ret;
	}
	for (struct device *d = vm->machine.devices; d; d = d->next) {
		json_t *state = json_object();

		ret = d->cls->save(d, state);
		if (ret < 0) {
			json_decref(state);
			snprintf(err, errlen, "device %s (%s): saving its state: %s", d->id, d->cls->name,
				 strerror(-ret));
			return ret;
		}
		json_array_append_new(devs, json_pack("{s:s, s:s, s:i, s:o}", "id", d->id,
			"class", d->cls->name, "version", (int)d->cls->state_version, "state", state));
	}
	disks = checkpoint_disks(vm, err, errlen);
	if (!disks)
		return -EIO;
	json_object_set_new(doc, "disks", disks);
	return 0;
}

/* What became of the VM after a failed checkpoint, for the message. */
static void append_vm_fate(struct vm *vm, enum checkpoint_then then, char *err, size_t errlen)
{
	size_t n = strlen(err);
	const char *fate = vm->state == VM_PAUSED ?
		(then == CKPT_THEN_STOP ? "the VM is stopped, as asked" : "the VM stays stopped") :
		(then == CKPT_THEN_QUIT ? "the VM keeps running, it was not quit" :
		 "the VM keeps running");

	if (n + 4 < errlen)
		snprintf(err + n, errlen - n, " (%s)", fate);
}

int vm_checkpoint(struct vm *vm, const char *dir, bool force, enum checkpoint_then then,
		  struct checkpoint_stats *stats, char *err, size_t errlen)
{
	struct snap_host host;
	struct snap_pending *pending = NULL;
	struct device *d, *failed = NULL;
	json_t *doc = NULL;
	uint64_t t0 = mono_ns(), tp, tm = 0, tr = 0, ram_bytes = 0, stored_bytes = 0;
	bool early = false;
	int ret = 0, tsc_khz;

	if (stats)
		memset(stats, 0, sizeof(*stats));
	for (d = vm->machine.devices; d; d = d->next) {
		if (!d->cls->save) {
			snprintf(err, errlen, "device %s (%s) cannot be checkpointed", d->id, d->cls->name);
			return -ENOTSUP;
		}
	}
	if (vm->checkpoint_veto && (ret = vm->checkpoint_veto(vm, err, errlen)) < 0)
		return ret;
	/* An existing DIR without --force, a missing parent: refused before any pause. */
	ret = snap_check_target(dir, force ? SNAP_FORCE : 0, NULL, err, errlen);
	if (ret < 0)
		return ret;

	vm_pause(vm);
	tp = mono_ns();
	for (d = vm->machine.devices; d; d = d->next) {
		if (d->cls->quiesce && (ret = d->cls->quiesce(d)) < 0) {
			snprintf(err, errlen, "device %s (%s): could not finish its I/O: %s",
				 d->id, d->cls->name, strerror(-ret));
			failed = d;
			goto release;
		}
	}
	snap_host_probe(&host);
	tsc_khz = ioctl(vm->vcpus[0].fd, KVM_GET_TSC_KHZ, 0);
	host.tsc_khz = tsc_khz > 0 ? (uint32_t)tsc_khz : 0;
	doc = snap_doc_new(&host);
	if (!doc) {
		ret = -ENOMEM;
		goto release;
	}
	ret = checkpoint_build(vm, doc, err, errlen);
	if (ret == 0) {
		uint64_t tb = mono_ns();

		ret = snap_write_begin(dir, doc, &vm->machine.mem, force ? SNAP_FORCE : 0, &pending,
				       err, errlen);
		tm = mono_ns() - tb;
		if (ret == 0)
			snap_pending_sizes(pending, &ram_bytes, &stored_bytes);
	}
release:
	/*
	 * "quit": nothing may run past the checkpoint, devices included (a
	 * resumed NVMe controller would fetch queued commands and write the
	 * disk the checkpoint recorded).
	 */
	if (ret != 0 || then != CKPT_THEN_QUIT)
		devices_resume(vm, failed);
	/*
	 * Guest RAM and every state are copied out: with "then resume" the
	 * guest runs again while the files are fsync'd and renamed into place.
	 * "stop" and "quit" keep it parked until the checkpoint is complete:
	 * it must not run on (and write its disks) past a checkpoint that is
	 * meant to be where it continues.
	 */
	if (ret == 0 && then == CKPT_THEN_RESUME) {
		vm_unpause(vm);
		early = true;
		tr = mono_ns();
	}
	if (ret == 0) {
		uint64_t tc = mono_ns();

		ret = snap_write_commit(pending, err, errlen);
		if (stats)
			stats->commit_ns = mono_ns() - tc;
	}
	json_decref(doc);
	if (!early) {
		if (then == CKPT_THEN_STOP) {
			/*
			 * Stopped as asked, whether or not the checkpoint worked
			 * (after a failure the user can try again elsewhere with
			 * the guest exactly where it was). A VM that was stopped
			 * already keeps its own stop; ours goes.
			 */
			if (vm->state == VM_RUNNING) {
				vm->state = VM_PAUSED;
				if (vm->control)
					control_emit_event(vm->control, "STOP", NULL);
			} else {
				vm_unpause(vm);
			}
		} else {
			/* exiting before the vCPUs are released: they leave, not run */
			if (ret == 0 && then == CKPT_THEN_QUIT)
				vm_request_exit(vm, EXIT_GUEST_POWEROFF);
			vm_unpause(vm);
		}
		tr = mono_ns();
	}
	if (stats) {
		stats->pause_ns = tr - tp;
		stats->memory_ns = tm;
		stats->total_ns = mono_ns() - t0;
		stats->ram_bytes = ram_bytes;
		stats->stored_bytes = stored_bytes;
	}
	if (ret == 0) {
		log_info("checkpoint", "wrote %s (paused %.1f ms)", dir, (double)(tr - tp) / 1e6);
	} else {
		append_vm_fate(vm, then, err, errlen);
		log_warn("checkpoint", "%s", err);
	}
	return ret;
}

/* ---- restore ------------------------------------------------------------ */

int checkpoint_open(const char *dir, struct vm_config *cfg, struct snap_doc **out,
		    char *err, size_t errlen)
{
	struct snap_doc *doc = NULL;
	char msg[512], note[256] = "";
	int ret;

	ret = snap_open(dir, &doc, msg, sizeof(msg));
	if (ret < 0) {
		snprintf(err, errlen, "checkpoint %s: %s", dir, msg);
		return ret;
	}
	/*
	 * memory.bin's digests: copy mode checks each chunk as it copies it
	 * (memimg_restore: one pass over the file, a damaged chunk refused
	 * before any vCPU runs); lazy mode checks them in the background once
	 * the guest runs (restore_verify_*).
	 */
	ret = snap_check_all(doc, 0, msg, sizeof(msg), note, sizeof(note));
	if (ret < 0) {
		snprintf(err, errlen, "checkpoint %s cannot be restored here: %s", dir, msg);
		snap_close(doc);
		return ret;
	}
	if (note[0])
		log_info("restore", "%s", note);
	ret = config_from_json(cfg, json_object_get(doc->root, "config"), msg, sizeof(msg));
	if (ret < 0) {
		snprintf(err, errlen, "checkpoint %s: vm.json: %s", dir, msg);
		snap_close(doc);
		return ret;
	}
	if (!cfg->serial)
		cfg->serial = strdup("stdio");
	*out = doc;
	return 0;
}

struct kvm_cpuid2 *checkpoint_cpuid(struct snap_doc *doc)
{
	return x86_cpuid_from_json(json_object_get(doc->root, "cpuid"));
}

/* The machine just built must have exactly the checkpoint's devices. */
static int restore_match_devices(struct vm *vm, const json_t *devs, char *err, size_t errlen)
{
	char msg[300];
	size_t i, n = 0;
	json_t *e;

	for (struct device *d = vm->machine.devices; d; d = d->next)
		n++;
	json_array_foreach(devs, i, e) {
		const char *id = json_string_value(json_object_get(e, "id"));
		const char *cls = json_string_value(json_object_get(e, "class"));
		struct device *d = device_find(&vm->machine, id);

		if (!d) {
			snprintf(err, errlen, "vm.json: devices[%zu] (%s): no such device in the restored machine",
				 i, id);
			return -EINVAL;
		}
		if (strcmp(d->cls->name, cls) != 0) {
			snprintf(err, errlen, "vm.json: devices[%zu] (%s): class %s, but the machine has a %s",
				 i, id, cls, d->cls->name);
			return -EINVAL;
		}
		if (d->cls->match && d->cls->match(d, json_object_get(e, "state"), msg,
						   sizeof(msg)) < 0) {
			snprintf(err, errlen, "vm.json: devices[%zu] (%s).state.%s", i, id, msg);
			return -EINVAL;
		}
	}
	if (json_array_size(devs) != n) {
		snprintf(err, errlen, "vm.json: %zu device sections for a machine with %zu devices",
			 json_array_size(devs), n);
		return -EINVAL;
	}
	return 0;
}

static int restore_tsc(struct vm *vm, struct snap_doc *doc, char *err, size_t errlen)
{
	uint64_t saved = 0;
	int host = ioctl(vm->vcpus[0].fd, KVM_GET_TSC_KHZ, 0);
	bool can_scale = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_CONTROL) > 0, need = false;
	int ret;

	snap_json_to_u64(json_object_get(json_object_get(doc->root, "host"), "tsc_khz"), &saved);
	if (!saved || host <= 0)
		return 0;
	ret = x86_tsc_khz_check((uint32_t)saved, (uint32_t)host, can_scale, &need, err, errlen);
	if (ret < 0 || !need)
		return ret;
	for (int i = 0; i < vm->ncpus; i++) {
		if (ioctl(vm->vcpus[i].fd, KVM_SET_TSC_KHZ, (unsigned long)saved) < 0) {
			snprintf(err, errlen, "KVM_SET_TSC_KHZ %llu: %s", (unsigned long long)saved,
				 strerror(errno));
			return -errno;
		}
	}
	return 0;
}

/* On the loop thread, once the background check of memory.bin is over. */
static void restore_verify_report(void *opaque)
{
	struct vm *vm = opaque;
	struct snap_doc *doc = vm->restore_doc;
	char msg[512];
	uint64_t ns = 0;
	int ret;

	if (!doc || !doc->verifier)
		return;
	ret = memimg_verify_result(doc->verifier, msg, sizeof(msg), &ns);
	if (ret == 0) {
		log_info("restore", "%s: all %zu memory digests match (checked in %.1f s while the "
			 "guest ran)", doc->dir, doc->mem.ndigests, (double)ns / 1e9);
		return;
	}
	log_error("restore", "checkpoint %s: %s; the guest may have read corrupt memory: %s",
		  doc->dir, msg, vm->control ? "stopping it" : "ending it");
	if (vm->control) {
		vm_stop(vm);
		control_emit_event(vm->control, "CHECKPOINT_CORRUPT",
				   json_pack("{s:s, s:s}", "path", doc->dir, "error", msg));
	} else {
		vm_request_exit(vm, EXIT_VM_ERROR);
	}
}

/* On the verifier's thread. */
static void restore_verify_done(void *opaque)
{
	struct vm *vm = opaque;

	if (evloop_call(vm->machine.loop, restore_verify_report, vm) < 0)
		log_error("restore", "cannot report the result of the memory check");
}

void checkpoint_vm_destroy(struct vm *vm)
{
	if (vm->restore_doc && vm->restore_doc->verifier) {
		memimg_verify_stop(vm->restore_doc->verifier);
		vm->restore_doc->verifier = NULL;
	}
}

/*
 * --clock advance for the CMOS RTC: its saved state holds the guest's UTC as
 * "time_s" + "time_ns" (src/hw/rtc.c, the architectural time, not a host
 * timestamp); a copy with that time moved on by ns. NULL: use the original.
 */
static json_t *rtc_state_advanced(const json_t *state, uint64_t ns)
{
	uint64_t s = 0, sub = 0;
	json_t *copy;

	if (snap_json_to_u64(json_object_get(state, "time_s"), &s) ||
	    snap_json_to_u64(json_object_get(state, "time_ns"), &sub) || sub >= 1000000000ULL)
		return NULL;
	copy = json_deep_copy(state);
	if (!copy)
		return NULL;
	sub += ns % 1000000000ULL;
	s += ns / 1000000000ULL + sub / 1000000000ULL;
	sub %= 1000000000ULL;
	if (json_object_set_new(copy, "time_s", snap_json_u64(s)) ||
	    json_object_set_new(copy, "time_ns", snap_json_u64(sub))) {
		json_decref(copy);
		return NULL;
	}
	return copy;
}

int checkpoint_restore(struct vm *vm, struct snap_doc *doc, char *err, size_t errlen)
{
	const json_t *vcpus = json_object_get(doc->root, "vcpus");
	const json_t *devs = json_object_get(doc->root, "devices");
	size_t xs = vm_xsave2_size(vm);
	uint64_t saved_at = 0, elapsed = 0;
	char msg[512];
	size_t i;
	json_t *e;
	int ret;

	if (json_array_size(vcpus) != (size_t)vm->ncpus) {
		snprintf(err, errlen, "vm.json: %zu vCPU sections for %d vCPUs", json_array_size(vcpus),
			 vm->ncpus);
		return -EBADMSG;
	}
	/* a checkpoint that does not fit this machine is bad input (exit 2), like any other */
	ret = restore_match_devices(vm, devs, err, errlen);
	if (ret < 0)
		return -EBADMSG;
	/* Validation is over: from here on, state is loaded. */
	ret = snap_restore_memory(doc, &vm->machine.mem,
				  vm->cfg->restore_copy ? MEMIMG_COPY : MEMIMG_LAZY, true, msg, sizeof(msg));
	if (ret < 0) {
		snprintf(err, errlen, "restoring guest memory: %s", msg);
		return ret;
	}
	vm_stats_mark(vm->cfg->restore_copy ? "memory copied" : "memory mapped");
	ret = restore_tsc(vm, doc, err, errlen);
	if (ret < 0)
		return ret;
	if (vm->cfg->clock_advance &&
	    !snap_json_to_u64(json_object_get(doc->root, "saved_at_realtime_ns"), &saved_at) &&
	    realtime_ns() > saved_at)
		elapsed = realtime_ns() - saved_at;
	for (i = 0; i < (size_t)vm->ncpus; i++) {
		struct x86_vcpu_state s;

		memset(&s, 0, sizeof(s));
		ret = x86_vcpu_state_from_json(json_array_get(vcpus, i), 0, &s, msg, sizeof(msg));
		if (ret == 0) {
			if (elapsed) {
				int khz = ioctl(vm->vcpus[i].fd, KVM_GET_TSC_KHZ, 0);

				x86_vcpu_state_advance_tsc(&s, elapsed, khz > 0 ? (uint32_t)khz : 0);
			}
			ret = x86_vcpu_state_put(vm->vcpus[i].fd, xs, &s, msg, sizeof(msg));
			/*
			 * A state that passed validation and that this host's KVM
			 * still refuses is bad input too, found before any vCPU ran
			 * (exit 2 like the other checkpoint errors).
			 */
			if (ret == -EINVAL) {
				snprintf(err, errlen, "checkpoint %s: %s: vcpus[%zu].%s",
					 vm->cfg->restore, SNAP_VM_JSON, i, msg);
				x86_vcpu_state_free(&s);
				return -EBADMSG;
			}
		}
		x86_vcpu_state_free(&s);
		if (ret < 0) {
			snprintf(err, errlen, "loading vCPU %zu: %s", i, msg);
			return ret;
		}
	}
	ret = x86_vm_state_load(vm->vm_fd, json_object_get(doc->root, "vm"), vm->cfg->clock_advance,
				msg, sizeof(msg));
	if (ret < 0) {
		snprintf(err, errlen, "loading the irqchip/PIT/clock state: %s", msg);
		return ret;
	}
	json_array_foreach(devs, i, e) {
		struct device *d = device_find(&vm->machine, json_string_value(json_object_get(e, "id")));
		json_t *state = json_object_get(e, "state"), *moved = NULL;
		uint64_t ver = 0;

		snap_json_to_u64(json_object_get(e, "version"), &ver);
		if (elapsed && !strcmp(d->cls->name, "rtc")) {
			moved = rtc_state_advanced(state, elapsed);
			if (moved)
				state = moved;
		}
		ret = d->cls->load(d, state, (uint32_t)ver);
		json_decref(moved);
		if (ret < 0) {
			snprintf(err, errlen, "loading device %s (%s): %s", d->id, d->cls->name, strerror(-ret));
			return ret;
		}
	}
	if (!vm->cfg->restore_copy) {
		/*
		 * Lazy: the guest runs on pages mapped from memory.bin before
		 * their digests are known. A thread checks them all meanwhile;
		 * a mismatch stops the VM (or ends it without a control socket).
		 */
		ret = memimg_verify_start(doc->mem_fd, &doc->mem, restore_verify_done, vm,
					  &doc->verifier);
		if (ret < 0)
			log_warn("restore", "%s: memory digests not checked: %s", doc->dir,
				 strerror(-ret));
	}
	log_info("restore", "restored %s (%d vCPUs, %llu MiB, %s)", doc->dir, vm->ncpus,
		 (unsigned long long)(vm->cfg->memory >> 20),
		 vm->cfg->restore_copy ? "memory copied" : "memory mapped lazily");
	return 0;
}

/* ---- QMP ------------------------------------------------------------------ */

static int cmd_checkpoint(void *opaque, const json_t *args, json_t **ret, char *err, size_t errlen)
{
	struct vm *vm = opaque;
	const char *path = json_string_value(json_object_get(args, "path"));
	const char *then = json_string_value(json_object_get(args, "then"));
	const json_t *force = json_object_get(args, "force");
	enum checkpoint_then t = CKPT_THEN_RESUME;
	struct checkpoint_stats st;
	int rc;

	if (!path || !*path) {
		snprintf(err, errlen, "checkpoint: argument \"path\" (a directory) is required");
		return -EINVAL;
	}
	if (force && !json_is_boolean(force)) {
		snprintf(err, errlen, "checkpoint: \"force\" must be a boolean");
		return -EINVAL;
	}
	if (then) {
		if (!strcmp(then, "resume"))
			t = CKPT_THEN_RESUME;
		else if (!strcmp(then, "stop"))
			t = CKPT_THEN_STOP;
		else if (!strcmp(then, "quit"))
			t = CKPT_THEN_QUIT;
		else {
			snprintf(err, errlen, "checkpoint: \"then\" must be resume, stop or quit, not \"%s\"", then);
			return -EINVAL;
		}
	}
	if (vm->state == VM_PAUSED && t == CKPT_THEN_RESUME)
		t = CKPT_THEN_STOP;	/* a stopped VM stays stopped unless cont */
	rc = vm_checkpoint(vm, path, force && json_is_true(force), t, &st, err, errlen);
	if (rc == 0)
		*ret = json_pack("{s:s, s:f, s:f, s:f, s:f, s:I, s:I}", "path", path,
				 "pause_ms", (double)st.pause_ns / 1e6,
				 "memory_ms", (double)st.memory_ns / 1e6,
				 "commit_ms", (double)st.commit_ns / 1e6,
				 "total_ms", (double)st.total_ns / 1e6,
				 "ram_bytes", (json_int_t)st.ram_bytes,
				 "stored_bytes", (json_int_t)st.stored_bytes);
	return rc;
}

void checkpoint_register_commands(struct vm *vm)
{
	control_register(vm->control, "checkpoint", cmd_checkpoint, vm);
}
