/*
 * The virtual machine: assembly from the configuration, vCPU threads, the
 * pause mechanism and the control commands that drive it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>

#include "amber/checkpoint.h"
#include "amber/clock.h"
#include "amber/control.h"
#include "amber/device.h"
#include "amber/evloop.h"
#include "amber/log.h"
#include "amber/platform.h"
#include "amber/vm.h"
#include "amber/vm_gdb.h"
#include "amber/vm_stats.h"
#include "amber/x86_kvm.h"
#include "amber/kvm_irqfd.h"

#define VCPU_KICK_SIGNAL SIGUSR1

/* ---- interrupts ------------------------------------------------------ */

struct vm_irq {
	struct irq_chip chip;
	struct vm *vm;
};

static int vm_irq_set_line(struct irq_chip *chip, unsigned gsi, int level)
{
	struct vm *vm = chip->opaque;
	struct kvm_irq_level l = { .irq = gsi, .level = (uint32_t)level };

	return ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0 ? -errno : 0;
}

static int vm_irq_send_msi(struct irq_chip *chip, uint64_t addr, uint32_t data)
{
	struct vm *vm = chip->opaque;
	struct kvm_msi msi = {
		.address_lo = (uint32_t)addr,
		.address_hi = (uint32_t)(addr >> 32),
		.data = data,
	};

	return ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &msi) < 0 ? -errno : 0;
}

/* ---- exit and pause -------------------------------------------------- */

static void vm_kick_all(struct vm *vm)
{
	for (int i = 0; i < vm->ncpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (!v->run)
			continue;
		v->run->immediate_exit = 1;
		if (v->thread_started)
			pthread_kill(v->thread, VCPU_KICK_SIGNAL);
	}
}

void vm_request_exit(struct vm *vm, int code)
{
	pthread_mutex_lock(&vm->pause_lock);
	if (!vm->exiting) {
		vm->exiting = true;
		vm->exit_code = code;
		vm->state = VM_SHUTDOWN;
	}
	vm_kick_all(vm);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	if (vm->machine.loop)
		evloop_stop(vm->machine.loop);
}

void vm_pause(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	vm->pause_depth++;
	vm_kick_all(vm);
	while (vm->nparked < vm->nactive && !vm->exiting)
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	pthread_mutex_unlock(&vm->pause_lock);
}

void vm_hold_vcpus(struct vm *vm, bool wait)
{
	pthread_mutex_lock(&vm->pause_lock);
	for (int i = 0; i < vm->ncpus; i++)
		vm->vcpus[i].gdb_hold = true;
	vm_kick_all(vm);
	while (wait && vm->nparked < vm->nactive && !vm->exiting)
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	pthread_mutex_unlock(&vm->pause_lock);
}

void vm_release_vcpus(struct vm *vm, const bool *release)
{
	pthread_mutex_lock(&vm->pause_lock);
	for (int i = 0; i < vm->ncpus; i++)
		if (release[i])
			vm->vcpus[i].gdb_hold = false;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

void vm_unpause(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	if (vm->pause_depth > 0)
		vm->pause_depth--;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

int vm_stop(struct vm *vm)
{
	if (vm->state != VM_RUNNING)
		return 0;
	vm_pause(vm);
	vm->state = VM_PAUSED;
	if (vm->control)
		control_emit_event(vm->control, "STOP", NULL);
	return 0;
}

int vm_cont(struct vm *vm)
{
	if (vm->state != VM_PAUSED)
		return 0;
	vm->state = VM_RUNNING;
	vm_unpause(vm);
	if (vm->control)
		control_emit_event(vm->control, "RESUME", NULL);
	return 0;
}

static void vm_shutdown_event(struct vm *vm, bool guest, const char *reason)
{
	if (vm->control) {
		json_t *d = json_pack("{s:b, s:s}", "guest", guest, "reason", reason);

		control_emit_event(vm->control, "SHUTDOWN", d);
	}
}

static void vm_on_machine_event(struct machine *m, int ev)
{
	struct vm *vm = m->vm;

	if (ev == MACHINE_POWEROFF) {
		vm_shutdown_event(vm, true, "guest-shutdown");
		vm_request_exit(vm, EXIT_GUEST_POWEROFF);
	} else if (ev == MACHINE_RESET) {
		vm_shutdown_event(vm, true, "guest-reset");
		pthread_mutex_lock(&vm->pause_lock);
		vm->reboot_requested = true;
		pthread_mutex_unlock(&vm->pause_lock);
		vm_request_exit(vm, EXIT_GUEST_POWEROFF);
	}
}

/* ---- vCPU threads ---------------------------------------------------- */

static void vcpu_kick_handler(int sig)
{
	(void)sig;
}

static void vcpu_handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	struct bus *pio = &v->vm->machine.pio;

	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
		uint64_t val = 0;

		if (run->io.direction == KVM_EXIT_IO_OUT) {
			memcpy(&val, data, run->io.size);
			bus_write(pio, run->io.port, run->io.size, val);
		} else {
			bus_read(pio, run->io.port, run->io.size, &val);
			memcpy(data, &val, run->io.size);
		}
	}
}

static void vcpu_handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct bus *mmio = &v->vm->machine.mmio;
	unsigned len = run->mmio.len;
	uint64_t val = 0;

	if (len == 0 || len > 8)
		return;
	if (run->mmio.is_write) {
		memcpy(&val, run->mmio.data, len);
		bus_write(mmio, run->mmio.phys_addr, len, val);
	} else {
		bus_read(mmio, run->mmio.phys_addr, len, &val);
		memcpy(run->mmio.data, &val, len);
	}
}

/*
 * Park while a pause is requested or gdb holds this vCPU. An I/O or MMIO exit is completed by KVM
 * on the next KVM_RUN; with immediate_exit set that run completes it and
 * returns at once, so the vCPU's state is architecturally clean when parked.
 * Returns false when the VM is exiting.
 */
static bool vcpu_park_if_requested(struct vcpu *v, bool *io_pending)
{
	struct vm *vm = v->vm;
	bool keep_running;

	pthread_mutex_lock(&vm->pause_lock);
	if ((vm->pause_depth > 0 || v->gdb_hold) && *io_pending && !vm->exiting) {
		pthread_mutex_unlock(&vm->pause_lock);
		v->run->immediate_exit = 1;
		ioctl(v->fd, KVM_RUN, 0);
		*io_pending = false;
		pthread_mutex_lock(&vm->pause_lock);
	}
	while ((vm->pause_depth > 0 || v->gdb_hold) && !vm->exiting) {
		if (!v->parked) {
			v->parked = true;
			vm->nparked++;
			pthread_cond_broadcast(&vm->pause_cond);
		}
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	}
	if (v->parked) {
		v->parked = false;
		vm->nparked--;
	}
	keep_running = !vm->exiting;
	if (keep_running)
		v->run->immediate_exit = 0;
	pthread_mutex_unlock(&vm->pause_lock);
	return keep_running;
}

static void vcpu_fatal(struct vcpu *v, const char *what, int code)
{
	log_error("vcpu", "vCPU %d: %s", v->id, what);
	kvm_dump_regs(v->fd, v->id);
	vm_shutdown_event(v->vm, false, "guest-panic");
	vm_request_exit(v->vm, code);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	bool io_pending = false;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%d", v->id);
	pthread_setname_np(pthread_self(), name);
	for (;;) {
		int ret;

		if (!vcpu_park_if_requested(v, &io_pending))
			break;
		if (vm->debug_prepare)
			vm->debug_prepare(vm, v);
		if (v->id == 0 && !vm->first_run_ns) {
			vm->first_run_ns = mono_ns();
			vm_stats_first_run(vm->first_run_ns);
		}
		ret = ioctl(v->fd, KVM_RUN, 0);
		io_pending = false;
		if (ret < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			vcpu_fatal(v, strerror(errno), EXIT_KVM_ERROR);
			break;
		}
		switch (v->run->exit_reason) {
		case KVM_EXIT_IO:
			vm_stats_pio(v->run->io.port);
			vcpu_handle_io(v);
			io_pending = true;
			break;
		case KVM_EXIT_MMIO:
			vm_stats_mmio(v->run->mmio.phys_addr);
			vcpu_handle_mmio(v);
			io_pending = true;
			break;
		case KVM_EXIT_HLT:
		case KVM_EXIT_INTR:
			vm_stats_other();
		case KVM_EXIT_IRQ_WINDOW_OPEN:
			break;
		case KVM_EXIT_SHUTDOWN: {
			struct kvm_regs r;
			struct kvm_sregs sr;

			vcpu_fatal(v, "the guest triple-faulted (shutdown exit)", EXIT_GUEST_CRASH);
			/* svm.c shutdown_interception: "INIT the vCPU to put the VMCB in a known state" */
			if (!ioctl(v->fd, KVM_GET_REGS, &r) && !ioctl(v->fd, KVM_GET_SREGS, &sr) &&
			    r.rip == 0xfff0 && sr.cs.base == 0xffff0000)
				log_info("vcpu", "vCPU %d: these are its INIT values: KVM on AMD resets a "
					 "vCPU that shuts down, the state at the fault is gone", v->id);
			break;
		}
		case KVM_EXIT_SYSTEM_EVENT:
			switch (v->run->system_event.type) {
			case KVM_SYSTEM_EVENT_SHUTDOWN:
				machine_request(&vm->machine, MACHINE_POWEROFF);
				break;
			case KVM_SYSTEM_EVENT_RESET:
				machine_request(&vm->machine, MACHINE_RESET);
				break;
			default:
				vcpu_fatal(v, "the guest reported a crash (system event)", EXIT_GUEST_CRASH);
			}
			break;
		case KVM_EXIT_DEBUG:
			if (vm->debug_exit && vm->debug_exit(vm, v))
				break;
			break;
		case KVM_EXIT_FAIL_ENTRY: {
			char msg[96];

			snprintf(msg, sizeof(msg), "KVM could not enter the guest (hardware reason %#llx)",
				 (unsigned long long)v->run->fail_entry.hardware_entry_failure_reason);
			vcpu_fatal(v, msg, EXIT_KVM_ERROR);
			break;
		}
		case KVM_EXIT_INTERNAL_ERROR: {
			char msg[96];

			snprintf(msg, sizeof(msg), "KVM internal error (suberror %u)",
				 v->run->internal.suberror);
			vcpu_fatal(v, msg, EXIT_KVM_ERROR);
			break;
		}
		default: {
			char msg[64];

			snprintf(msg, sizeof(msg), "unexpected KVM exit reason %u", v->run->exit_reason);
			vcpu_fatal(v, msg, EXIT_KVM_ERROR);
		}
		}
	}
	pthread_mutex_lock(&vm->pause_lock);
	vm->nactive--;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	return NULL;
}

/* ---- control commands ------------------------------------------------- */

static int cmd_query_status(void *opaque, const json_t *args, json_t **ret, char *err, size_t errlen)
{
	struct vm *vm = opaque;
	const char *s = vm->state == VM_RUNNING ? "running" :
			vm->state == VM_PAUSED ? "paused" : "shutdown";

	*ret = json_pack("{s:b, s:s, s:b}", "running", vm->state == VM_RUNNING, "status", s,
			 "singlestep", 0);
	return 0;
}

static int cmd_stop(void *opaque, const json_t *args, json_t **ret, char *err, size_t errlen)
{
	return vm_stop(opaque);
}

static int cmd_cont(void *opaque, const json_t *args, json_t **ret, char *err, size_t errlen)
{
	return vm_cont(opaque);
}

static int cmd_system_powerdown(void *opaque, const json_t *args, json_t **ret, char *err, size_t errlen)
{
	struct vm *vm = opaque;

	machine_press_powerbutton(&vm->machine);
	return 0;
}

static int cmd_quit(void *opaque, const json_t *args, json_t **ret, char *err, size_t errlen)
{
	struct vm *vm = opaque;

	vm_shutdown_event(vm, false, "host-qmp-quit");
	vm_request_exit(vm, EXIT_GUEST_POWEROFF);
	return 0;
}

static int vm_setup_control(struct vm *vm, char *err, size_t errlen)
{
	vm->control = control_new(vm->machine.loop, vm->cfg->control, err, errlen);
	if (!vm->control)
		return -EINVAL;
	if (control_register(vm->control, "query-status", cmd_query_status, vm) ||
	    control_register(vm->control, "stop", cmd_stop, vm) ||
	    control_register(vm->control, "cont", cmd_cont, vm) ||
	    control_register(vm->control, "system_powerdown", cmd_system_powerdown, vm) ||
	    control_register(vm->control, "quit", cmd_quit, vm)) {
		snprintf(err, errlen, "control socket: cannot register commands");
		return -EINVAL;
	}
	vm_register_extra_commands(vm);
	return 0;
}

/* ---- host signals -------------------------------------------------------- */

/*
 * SIGTERM, SIGINT and SIGHUP end the VM cleanly (terminal restored, control
 * socket removed, SHUTDOWN event sent), like QEMU's "terminating on signal".
 * They are blocked in every thread and read from a signalfd on the loop.
 */
static void vm_on_signal(void *opaque, int fd, uint32_t events)
{
	struct vm *vm = opaque;
	struct signalfd_siginfo si;

	if (read(fd, &si, sizeof(si)) != sizeof(si))
		return;
	log_info("vm", "terminating on signal %u", si.ssi_signo);
	vm_shutdown_event(vm, false, "host-signal");
	vm_request_exit(vm, EXIT_GUEST_POWEROFF);
}

static int vm_setup_signals(struct vm *vm, char *err, size_t errlen)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	vm->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (vm->signal_fd < 0 ||
	    evloop_add_fd(vm->machine.loop, vm->signal_fd, EPOLLIN, vm_on_signal, vm) < 0) {
		snprintf(err, errlen, "cannot watch for signals: %s", strerror(errno));
		return -EINVAL;
	}
	return 0;
}

/* ---- creation ---------------------------------------------------------- */

static int vm_create_vcpus(struct vm *vm, char *err, size_t errlen)
{
	int ret;

	vm->vcpus = calloc((size_t)vm->ncpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return -ENOMEM;
	for (int i = 0; i < vm->ncpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		v->vm = vm;
		v->id = i;
		v->fd = -1;
		ret = kvm_create_vcpu(vm->kvm_fd, vm->vm_fd, i, vm->cpuid, vm->ncpus, &v->fd,
				      &v->run, &v->run_size, err, errlen);
		if (ret < 0)
			return ret;
		ret = kvm_setup_lapic(v->fd);
		if (ret < 0) {
			snprintf(err, errlen, "vCPU %d: LAPIC setup: %s", i, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

int vm_create(struct vm **out, struct vm_config *cfg, struct snap_doc *restore, char *err,
	      size_t errlen)
{
	struct vm *vm;
	struct vm_irq *irq;
	struct sigaction sa;
	int ret;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = vcpu_kick_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(VCPU_KICK_SIGNAL, &sa, NULL);

	vm = calloc(1, sizeof(*vm));
	irq = calloc(1, sizeof(*irq));
	if (!vm || !irq) {
		free(vm);
		free(irq);
		return -ENOMEM;
	}
	vm->cfg = cfg;
	vm->restore_doc = restore;
	vm->kvm_fd = vm->vm_fd = vm->signal_fd = -1;
	vm->ncpus = cfg->cpus;
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	vm->state = VM_RUNNING;
	bus_init(&vm->machine.pio, "pio");
	bus_init(&vm->machine.mmio, "mmio");
	vm->machine.vm = vm;
	vm->machine.ncpus = cfg->cpus;
	vm->machine.on_event = vm_on_machine_event;
	vm->machine.last_event = -1;
	vm->machine.mem.memfd = -1;
	irq->chip.set_line = vm_irq_set_line;
	irq->chip.send_msi = vm_irq_send_msi;
	irq->chip.opaque = vm;
	irq->vm = vm;
	vm->machine.irq = &irq->chip;
	*out = vm;

	ret = kvm_open(&vm->kvm_fd, err, errlen);
	if (ret < 0)
		return ret;
	ret = kvm_create_vm(vm->kvm_fd, &vm->vm_fd, err, errlen);
	if (ret < 0)
		return ret;
	vm_stats_mark("KVM VM created");
	ret = kvm_irqfd_setup(&vm->machine, vm->vm_fd);	/* ioeventfd/irqfd hooks */
	if (ret < 0)
		return ret;
	if (vm->restore_doc) {
		/* The guest keeps the CPUID it was checkpointed with (checked against this host). */
		vm->cpuid = checkpoint_cpuid(vm->restore_doc);
		if (!vm->cpuid) {
			snprintf(err, errlen, "checkpoint: unusable cpuid section");
			return -EINVAL;
		}
	} else {
		vm->cpuid = cpuid_build(vm->kvm_fd, vm->ncpus, err, errlen);
		if (!vm->cpuid)
			return -EINVAL;
	}
	ret = gmem_alloc(&vm->machine.mem, cfg->memory);
	if (ret < 0) {
		snprintf(err, errlen, "cannot allocate %llu MiB of guest memory: %s",
			 (unsigned long long)(cfg->memory >> 20), strerror(-ret));
		return ret;
	}
	ret = kvm_set_memory(vm->vm_fd, &vm->machine.mem, err, errlen);
	if (ret < 0)
		return ret;
	vm->machine.loop = evloop_new();
	if (!vm->machine.loop) {
		snprintf(err, errlen, "cannot create the event loop");
		return -ENOMEM;
	}
	ret = vm_setup_signals(vm, err, errlen);
	if (ret < 0)
		return ret;
	ret = vm_create_vcpus(vm, err, errlen);
	if (ret < 0)
		return ret;
	vm_stats_mark("RAM, loop, vCPUs");
	/* Devices, ACPI tables and the boot image: src/core/platform.c */
	ret = platform_build(vm, err, errlen);
	if (ret < 0)
		return ret;
	if (vm->restore_doc) {
		ret = checkpoint_restore(vm, vm->restore_doc, err, errlen);
		if (ret < 0)
			return ret;
		vm_stats_mark("state restored");
	}
	/* --gdb: src/core/vm_gdb.c; with --gdb-wait the vCPUs start held */
	ret = vm_gdb_setup(vm, err, errlen);
	if (ret < 0)
		return ret;
	if (cfg->control) {
		ret = vm_setup_control(vm, err, errlen);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int vm_run(struct vm *vm)
{
	for (int i = 0; i < vm->ncpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		pthread_mutex_lock(&vm->pause_lock);
		vm->nactive++;
		pthread_mutex_unlock(&vm->pause_lock);
		if (pthread_create(&v->thread, NULL, vcpu_thread, v) != 0) {
			pthread_mutex_lock(&vm->pause_lock);
			vm->nactive--;
			pthread_mutex_unlock(&vm->pause_lock);
			log_error("vm", "cannot start the thread of vCPU %d", i);
			vm_request_exit(vm, EXIT_VM_ERROR);
			break;
		}
		v->thread_started = true;
	}
	/* The calling thread is the event loop until the VM ends. */
	if (!vm->exiting)
		evloop_run(vm->machine.loop);
	vm_request_exit(vm, EXIT_GUEST_POWEROFF);
	for (int i = 0; i < vm->ncpus; i++)
		if (vm->vcpus[i].thread_started) {
			pthread_join(vm->vcpus[i].thread, NULL);
			vm->vcpus[i].thread_started = false;
		}
	return vm->exit_code;
}

void vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	checkpoint_vm_destroy(vm);	/* a lazy restore's digest check reports to this VM */
	/* while the vCPUs still exist: a gdb client gets its 'W' and is let go */
	vm_gdb_teardown(vm);
	if (vm->control)
		control_free(vm->control);
	device_destroy_all(&vm->machine);
	kvm_irqfd_teardown(&vm->machine);
	if (vm->signal_fd >= 0) {
		if (vm->machine.loop)
			evloop_del_fd(vm->machine.loop, vm->signal_fd);
		close(vm->signal_fd);
	}
	if (vm->machine.loop)
		evloop_free(vm->machine.loop);
	for (int i = 0; vm->vcpus && i < vm->ncpus; i++) {
		if (vm->vcpus[i].run)
			munmap(vm->vcpus[i].run, vm->vcpus[i].run_size);
		if (vm->vcpus[i].fd >= 0)
			close(vm->vcpus[i].fd);
	}
	free(vm->vcpus);
	free(vm->cpuid);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	gmem_free(&vm->machine.mem);
	bus_destroy(&vm->machine.pio);
	bus_destroy(&vm->machine.mmio);
	free(vm->machine.irq);
	free(vm);
}

int vm_for_each_vcpu(struct vm *vm, int (*fn)(struct vcpu *, void *), void *opaque)
{
	for (int i = 0; i < vm->ncpus; i++) {
		int ret = fn(&vm->vcpus[i], opaque);

		if (ret < 0)
			return ret;
	}
	return 0;
}
