/*
 * Exit statistics (AMBER_STATS=1): how many VM exits reached userspace and
 * where, printed when amber ends. This is how the benchmark counts exits to
 * userspace and how slow paths (a chatty port, a polled register) are found.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amber/clock.h"
#include "amber/vm_stats.h"

#define STATS_MMIO_SLOTS 256

static bool stats_on;
static uint64_t start_ns, first_run_ns;
static _Atomic uint32_t pio_count[65536];
static struct {
	_Atomic uint64_t page;
	_Atomic uint32_t count;
} mmio_count[STATS_MMIO_SLOTS];
static _Atomic uint64_t total_pio, total_mmio, total_other;

#define STATS_MARKS 16
static struct {
	const char *phase;
	uint64_t ns;
} marks[STATS_MARKS];
static unsigned nmarks;

void vm_stats_init(void)
{
	const char *e = getenv("AMBER_STATS");

	struct timespec ts;

	stats_on = e && *e && strcmp(e, "0") != 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	start_ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Called from the main thread only, before the vCPUs run. */
void vm_stats_mark(const char *phase)
{
	if (!stats_on || nmarks == STATS_MARKS)
		return;
	marks[nmarks].phase = phase;
	marks[nmarks].ns = mono_ns();
	nmarks++;
}

void vm_stats_first_run(uint64_t mono_ns)
{
	if (!first_run_ns)
		first_run_ns = mono_ns;
}

bool vm_stats_enabled(void)
{
	return stats_on;
}

void vm_stats_pio(uint16_t port)
{
	if (!stats_on)
		return;
	atomic_fetch_add_explicit(&pio_count[port], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&total_pio, 1, memory_order_relaxed);
}

void vm_stats_mmio(uint64_t addr)
{
	uint64_t page = addr & ~0xfffULL;
	unsigned h = (unsigned)((page >> 12) * 2654435761u) % STATS_MMIO_SLOTS;

	if (!stats_on)
		return;
	atomic_fetch_add_explicit(&total_mmio, 1, memory_order_relaxed);
	for (unsigned i = 0; i < STATS_MMIO_SLOTS; i++) {
		unsigned s = (h + i) % STATS_MMIO_SLOTS;
		uint64_t expect = 0;

		if (atomic_load(&mmio_count[s].page) == page + 1 ||
		    atomic_compare_exchange_strong(&mmio_count[s].page, &expect, page + 1)) {
			atomic_fetch_add_explicit(&mmio_count[s].count, 1, memory_order_relaxed);
			return;
		}
	}
}

void vm_stats_other(void)
{
	if (stats_on)
		atomic_fetch_add_explicit(&total_other, 1, memory_order_relaxed);
}

void vm_stats_print(void)
{
	if (!stats_on)
		return;
	if (first_run_ns) {
		uint64_t prev = start_ns;

		fprintf(stderr, "amber: start-up (main to first KVM_RUN): %llu us\r\n",
			(unsigned long long)((first_run_ns - start_ns) / 1000));
		for (unsigned i = 0; i < nmarks; i++) {
			fprintf(stderr, "amber:   %-22s +%llu us\r\n", marks[i].phase,
				(unsigned long long)((marks[i].ns - prev) / 1000));
			prev = marks[i].ns;
		}
		if (nmarks)
			fprintf(stderr, "amber:   %-22s +%llu us\r\n", "first KVM_RUN",
				(unsigned long long)((first_run_ns - prev) / 1000));
	}
	fprintf(stderr, "amber: exits to userspace: %llu (port I/O %llu, MMIO %llu, other %llu)\r\n",
		(unsigned long long)(total_pio + total_mmio + total_other),
		(unsigned long long)total_pio, (unsigned long long)total_mmio,
		(unsigned long long)total_other);
	for (int shown = 0; shown < 12; shown++) {
		uint32_t best = 0;
		int port = -1;

		for (int p = 0; p < 65536; p++)
			if (pio_count[p] > best) {
				best = pio_count[p];
				port = p;
			}
		if (port < 0)
			break;
		fprintf(stderr, "amber:   port %#06x: %u\r\n", port, best);
		pio_count[port] = 0;
	}
	for (unsigned s = 0; s < STATS_MMIO_SLOTS; s++)
		if (mmio_count[s].page)
			fprintf(stderr, "amber:   mmio page %#llx: %u\r\n",
				(unsigned long long)(mmio_count[s].page - 1), (unsigned)mmio_count[s].count);
}
