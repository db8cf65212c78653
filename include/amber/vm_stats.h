/* Exit statistics, enabled by AMBER_STATS=1 (src/core/vm_stats.c). */
#ifndef AMBER_VM_STATS_H
#define AMBER_VM_STATS_H

#include <stdbool.h>
#include <stdint.h>

void vm_stats_init(void);
bool vm_stats_enabled(void);
void vm_stats_pio(uint16_t port);
void vm_stats_mmio(uint64_t addr);
void vm_stats_other(void);
void vm_stats_print(void);
/* CLOCK_MONOTONIC of the boot vCPU's first KVM_RUN. */
void vm_stats_first_run(uint64_t mono_ns);
/*
 * End of a start-up phase (a string literal, e.g. "kernel loaded"): with
 * AMBER_STATS=1 the start-up time is printed split into these phases.
 */
void vm_stats_mark(const char *phase);

#endif
