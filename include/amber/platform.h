/*
 * Machine assembly: the list of devices a configuration asks for, the ACPI
 * tables that describe them, and the boot image (src/core/platform.c).
 */
#ifndef AMBER_PLATFORM_H
#define AMBER_PLATFORM_H

#include <stddef.h>

struct vm;

int platform_build(struct vm *vm, char *err, size_t errlen);

#endif
