/*
 * Machine assembly: the list of devices a configuration asks for, the ACPI
 * tables that describe them, and the boot image (src/core/platform.c).
 */
#ifndef AMBER_PLATFORM_H
#define AMBER_PLATFORM_H

#include <stddef.h>

struct vm;

int platform_build(struct vm *vm, char *err, size_t errlen);
/*
 * Firmware boot (src/core/platform_fw.c), called by platform_build after
 * every device exists: the --debugcon console whenever asked for; with
 * --firmware the image mapped read-only below 4 GiB (its last 128 KiB also
 * copied to 0xE0000-0xFFFFF), the fw_cfg device with the machine items, the
 * ACPI tables through the table loader, --kernel/--initrd/--cmdline for the
 * firmware to load, the boot order and the --fw-cfg files. The boot vCPU
 * keeps KVM's reset state (the reset vector). 0 or -errno with err set.
 */
int platform_firmware_setup(struct vm *vm, char *err, size_t errlen);

#endif
