/*
 * The machine configuration: everything `amber run` was told. It is saved
 * whole in a checkpoint, so `amber run --restore DIR` needs no other option.
 */
#ifndef AMBER_CONFIG_H
#define AMBER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define CONFIG_MAX_DISKS   16
#define CONFIG_MAX_FWCFG   16
#define CONFIG_MAX_CPUS    255
#define CONFIG_DEFAULT_MEM (256ULL << 20)

enum on_reboot { ON_REBOOT_EXIT, ON_REBOOT_RESTART };

struct disk_config {
	char *path;
	bool readonly;
	char *serial;
	char *ctrl;		/* controller name, default "nvme0" */
	bool direct;		/* O_DIRECT: bypass the host page cache */
};

struct fwcfg_file_config {
	char *name;		/* "opt/..." */
	char *path;
};

struct vm_config {
	char *name;
	char *kernel;
	char *initrd;
	char *cmdline;
	char *firmware;
	int cpus;
	uint64_t memory;
	char *serial;		/* "stdio" | "file:PATH" | "none" */
	char *control;		/* control socket path or NULL */
	char *debugcon;		/* firmware debug console spec or NULL */
	char *gdb;		/* gdb listen spec or NULL */
	bool gdb_wait;
	enum on_reboot on_reboot;
	int ndisks;
	struct disk_config disks[CONFIG_MAX_DISKS];
	int nfwcfg;
	struct fwcfg_file_config fwcfg[CONFIG_MAX_FWCFG];
	char *boot_order;
	/* restore-only options */
	char *restore;		/* checkpoint DIR or NULL */
	bool clock_advance;	/* --clock advance (default freeze) */
	bool restore_copy;	/* --restore-mode copy (default lazy) */
	char *incoming;		/* live-migration listen spec or NULL */
};

void config_init(struct vm_config *c);
void config_free(struct vm_config *c);
/* "256M", "1G", "4096K", "1048576": 0 or -EINVAL (message in err). */
int config_parse_size(const char *s, uint64_t *out, char *err, size_t errlen);
/*
 * Parse `amber run` arguments (argv[0] is "run"). 0, or -EINVAL with one
 * message for people in err (the caller prints it and exits 2). Checks that
 * files exist and are readable, sizes, CPU count against max_cpus.
 */
int config_parse_run(struct vm_config *c, int argc, char **argv, int max_cpus,
		     char *err, size_t errlen);
/* The configuration as JSON (for vm.json) and back (validated). */
json_t *config_to_json(const struct vm_config *c);
int config_from_json(struct vm_config *c, const json_t *j, char *err, size_t errlen);

#endif
