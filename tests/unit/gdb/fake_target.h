/*
 * A fake gdb target for the stub's component tests and the fuzzer: N vCPUs
 * with register files, guest memory in a RAM buffer reached through real
 * 4-level page tables (x86_read_virt), and a record of every stop, resume
 * and debug-state call.
 *
 * Virtual layout (identity mapped 4 KiB pages over the first 1 MiB of RAM):
 *   0x000000-0x0fffff  mapped, except FAKE_UNMAPPED_PAGE (not present)
 *   0xffffffff80000000 1 GiB page -> physical 0 (only 1 MiB of it is RAM)
 * Page tables live at 0x1000 (PML4), 0x2000 (PDPT), 0x3000 (PD), 0x4000 (PT),
 * 0x5000 (high PDPT). Test data goes at FAKE_DATA.
 */
#ifndef AMBER_TEST_GDB_FAKE_TARGET_H
#define AMBER_TEST_GDB_FAKE_TARGET_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "amber/gdb.h"
#include "amber/mem.h"
#include "amber/x86_mmu.h"

#define FAKE_RAM_SIZE		(1u << 20)
#define FAKE_DATA		0x10000ULL
#define FAKE_UNMAPPED_PAGE	0x80000ULL
#define FAKE_KERNEL_BASE	0xffffffff80000000ULL
#define FAKE_MAX_CPUS		8

struct fake_target {
	uint8_t *ram;
	struct guest_mem mem;
	struct x86_mmu_state mmu;
	int ncpus;
	struct gdb_x86_regs regs[FAKE_MAX_CPUS];
	struct gdb_debug_state dbg[FAKE_MAX_CPUS];

	pthread_mutex_t lock;
	bool running;
	int nstop, nresume, nset_debug, nkill;
	enum gdb_cpu_action actions[FAKE_MAX_CPUS];
	int fail_get_regs;	/* -errno to return from get_regs, or 0 */
};

static inline void fake_pte(struct fake_target *t, uint64_t table, unsigned idx, uint64_t val)
{
	memcpy(t->ram + table + idx * 8, &val, 8);
}

static inline void fake_target_init(struct fake_target *t, int ncpus)
{
	memset(t, 0, sizeof(*t));
	t->ram = aligned_alloc(4096, FAKE_RAM_SIZE);
	memset(t->ram, 0, FAKE_RAM_SIZE);
	gmem_init_buffer(&t->mem, t->ram, FAKE_RAM_SIZE);
	t->ncpus = ncpus;
	pthread_mutex_init(&t->lock, NULL);
	/* 4-level paging, P|RW */
	fake_pte(t, 0x1000, 0, 0x2000 | 3);
	fake_pte(t, 0x2000, 0, 0x3000 | 3);
	fake_pte(t, 0x3000, 0, 0x4000 | 3);
	for (unsigned i = 0; i < 256; i++)
		if (i * 4096ULL != FAKE_UNMAPPED_PAGE)
			fake_pte(t, 0x4000, i, i * 4096ULL | 3);
	fake_pte(t, 0x1000, 511, 0x5000 | 3);
	fake_pte(t, 0x5000, 510, 0x0 | 0x83);	/* 1 GiB page at phys 0 */
	t->mmu.cr0 = X86_CR0_PE | X86_CR0_PG;
	t->mmu.cr3 = 0x1000;
	t->mmu.cr4 = X86_CR4_PAE;
	t->mmu.efer = X86_EFER_LME | X86_EFER_LMA;
	for (int i = 0; i < ncpus; i++) {
		t->regs[i].rip = 0x100000 + (uint64_t)i * 0x10;
		t->regs[i].eflags = 0x202;
		t->regs[i].cs = 0x10;
		t->regs[i].cr3 = 0x1000;
	}
	for (unsigned i = 0; i < 4096; i++)
		t->ram[FAKE_DATA + i] = (uint8_t)(i * 7 + 1);
}

static inline void fake_target_free(struct fake_target *t)
{
	pthread_mutex_destroy(&t->lock);
	free(t->ram);
}

static int fake_ncpus(void *o)
{
	return ((struct fake_target *)o)->ncpus;
}

static int fake_stop(void *o)
{
	struct fake_target *t = o;

	pthread_mutex_lock(&t->lock);
	t->nstop++;
	t->running = false;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

static int fake_resume(void *o, const enum gdb_cpu_action *a)
{
	struct fake_target *t = o;

	pthread_mutex_lock(&t->lock);
	t->nresume++;
	memcpy(t->actions, a, sizeof(a[0]) * (size_t)t->ncpus);
	t->running = true;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

static int fake_get_regs(void *o, int cpu, struct gdb_x86_regs *r)
{
	struct fake_target *t = o;

	if (cpu < 0 || cpu >= t->ncpus)
		return -EINVAL;
	if (t->fail_get_regs)
		return t->fail_get_regs;
	*r = t->regs[cpu];
	return 0;
}

static int fake_set_regs(void *o, int cpu, const struct gdb_x86_regs *r)
{
	struct fake_target *t = o;

	if (cpu < 0 || cpu >= t->ncpus)
		return -EINVAL;
	t->regs[cpu] = *r;
	return 0;
}

static int fake_read_virt(void *o, int cpu, uint64_t gva, void *buf, size_t len)
{
	struct fake_target *t = o;

	return x86_read_virt(&t->mem, &t->mmu, gva, buf, len);
}

static int fake_write_virt(void *o, int cpu, uint64_t gva, const void *buf, size_t len)
{
	struct fake_target *t = o;

	return x86_write_virt(&t->mem, &t->mmu, gva, buf, len);
}

static int fake_set_debug(void *o, int cpu, const struct gdb_debug_state *d)
{
	struct fake_target *t = o;

	if (cpu < 0 || cpu >= t->ncpus)
		return -EINVAL;
	t->dbg[cpu] = *d;
	t->nset_debug++;
	return 0;
}

static void fake_kill(void *o)
{
	((struct fake_target *)o)->nkill++;
}

static const struct gdb_target_ops fake_ops = {
	.ncpus = fake_ncpus,
	.stop = fake_stop,
	.resume = fake_resume,
	.get_regs = fake_get_regs,
	.set_regs = fake_set_regs,
	.read_virt = fake_read_virt,
	.write_virt = fake_write_virt,
	.set_debug = fake_set_debug,
	.kill = fake_kill,
};

#endif
