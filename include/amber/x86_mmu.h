/*
 * Guest virtual (linear) to guest physical translation by walking the
 * guest's page tables in guest RAM, for debuggers (the GDB stub) and for
 * tools that read a stopped guest. The walk ignores access rights (a
 * debugger writes breakpoints into read-only kernel text) and sets no
 * accessed/dirty bits. Intel SDM Vol. 3 chapter 4 (Paging).
 */
#ifndef AMBER_X86_MMU_H
#define AMBER_X86_MMU_H

#include <stddef.h>
#include <stdint.h>

#include "amber/mem.h"

#define X86_CR0_PE	(1ULL << 0)
#define X86_CR0_PG	(1ULL << 31)
#define X86_CR4_PSE	(1ULL << 4)
#define X86_CR4_PAE	(1ULL << 5)
#define X86_CR4_LA57	(1ULL << 12)
#define X86_EFER_LME	(1ULL << 8)
#define X86_EFER_LMA	(1ULL << 10)

/* The control registers that select and locate the paging structures. */
struct x86_mmu_state {
	uint64_t cr0, cr3, cr4, efer;
};

enum x86_paging_mode {
	X86_PAGING_NONE,	/* real mode, or protected mode with CR0.PG=0 */
	X86_PAGING_32,		/* 2-level, 4 KiB and (CR4.PSE) 4 MiB pages, §4.3 */
	X86_PAGING_PAE,		/* 3-level, 4 KiB and 2 MiB pages, §4.4 */
	X86_PAGING_4LEVEL,	/* IA-32e, 4 KiB, 2 MiB and 1 GiB pages, §4.5 */
	X86_PAGING_5LEVEL,	/* IA-32e with CR4.LA57 */
};

enum x86_paging_mode x86_paging_mode(const struct x86_mmu_state *st);

/*
 * Translate gva. On success *gpa is the physical address and, if page_size
 * is not NULL, *page_size the size of the page mapping it (4 KiB for
 * unpaged modes). -EFAULT when a paging entry is not present, lies outside
 * RAM, or gva is not canonical.
 */
int x86_translate(const struct guest_mem *gm, const struct x86_mmu_state *st, uint64_t gva,
		  uint64_t *gpa, uint64_t *page_size);

/*
 * Copy guest-virtual memory, page by page (contiguous virtual pages need not
 * be contiguous in physical memory). All or nothing: -EFAULT when any byte
 * is unmapped or not RAM; a write then changes nothing.
 */
int x86_read_virt(const struct guest_mem *gm, const struct x86_mmu_state *st, uint64_t gva,
		  void *buf, size_t len);
int x86_write_virt(const struct guest_mem *gm, const struct x86_mmu_state *st, uint64_t gva,
		   const void *buf, size_t len);

#endif
