/* `amber run`: parse, validate everything, then create and run the VM. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amber/chardev.h"
#include "amber/checkpoint.h"
#include "amber/snapshot.h"
#include "amber/cli.h"
#include "amber/config.h"
#include "amber/control.h"
#include "amber/log.h"
#include "amber/vm.h"
#include "amber/vm_stats.h"
#include "amber/x86_boot.h"
#include "amber/x86_kvm.h"

/* Host vCPU limit without creating a VM; 0 when /dev/kvm is unusable. */
static int host_max_cpus(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC), n;

	if (fd < 0)
		return CONFIG_MAX_CPUS;
	n = kvm_max_vcpus(fd);
	close(fd);
	return n;
}

int cli_run_main(int argc, char **argv)
{
	struct vm_config cfg;
	struct vm *vm = NULL;
	struct snap_doc *doc = NULL;
	char err[512] = "";
	int ret;

	config_init(&cfg);
	if (config_parse_run(&cfg, argc, argv, host_max_cpus(), err, sizeof(err)) < 0) {
		fprintf(stderr, "amber run: %s\n", err);
		config_free(&cfg);
		return EXIT_USAGE;
	}
	if (cfg.kernel) {
		enum kernel_kind kind;

		if (boot_probe_kernel(cfg.kernel, &kind, err, sizeof(err)) < 0) {
			fprintf(stderr, "amber run: %s\n", err);
			config_free(&cfg);
			return EXIT_USAGE;
		}
	}
	vm_stats_mark("options checked");
	if (cfg.control && control_check_path(cfg.control, err, sizeof(err)) < 0) {
		fprintf(stderr, "amber run: --control %s: %s\n", cfg.control,
			err[0] ? err : "in use by a running process");
		config_free(&cfg);
		return EXIT_USAGE;
	}

	if (cfg.restore && checkpoint_open(cfg.restore, &cfg, &doc, err, sizeof(err)) < 0) {
		fprintf(stderr, "amber run: %s\n", err);
		config_free(&cfg);
		return EXIT_USAGE;
	}
	if (cfg.restore)
		vm_stats_mark("checkpoint read and checked");
	for (;;) {
		ret = vm_create(&vm, &cfg, doc, err, sizeof(err));
		if (ret < 0) {
			fprintf(stderr, "amber run: %s\n", err);
			vm_destroy(vm);
			/*
			 * A damaged memory.bin is bad input like any other
			 * checkpoint error, though copy mode finds it only
			 * while loading (before any vCPU ran).
			 */
			ret = doc && ret == -EBADMSG ? EXIT_USAGE : EXIT_VM_ERROR;
			break;
		}
		ret = vm_run(vm);
		if (vm->reboot_requested) {
			fprintf(stderr, "amber: the guest rebooted%s\r\n",
				cfg.on_reboot == ON_REBOOT_RESTART ? ": restarting it" : "");
			if (cfg.on_reboot == ON_REBOOT_RESTART) {
				vm_destroy(vm);
				vm = NULL;
				/* A reboot after a restore boots the configuration afresh. */
				if (doc) {
					snap_close(doc);
					doc = NULL;
				}
				continue;
			}
		}
		vm_destroy(vm);
		break;
	}
	if (doc)
		snap_close(doc);
	chardev_restore_terminal();
	vm_stats_print();
	config_free(&cfg);
	return ret;
}
