/*
 * Guest physical memory: up to a few RAM slots (below the PCI hole and above
 * 4 GiB). Device models reach guest RAM only through these helpers so every
 * guest-supplied address is checked (a PRP, a queue base, a DMA address).
 */
#ifndef AMBER_MEM_H
#define AMBER_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GMEM_MAX_SLOTS 4
#define PAGE_SIZE_4K 4096ULL

/* x86 PC layout */
#define GMEM_PCI_HOLE_START 0xC0000000ULL	/* 3 GiB: 32-bit PCI MMIO window */
#define GMEM_HIGH_START     0x100000000ULL	/* RAM above the hole */

struct gmem_slot {
	uint64_t gpa;
	uint64_t size;
	uint8_t *host;
};

struct guest_mem {
	struct gmem_slot slots[GMEM_MAX_SLOTS];
	int nslots;
	uint64_t ram_size;	/* total RAM bytes */
	int memfd;		/* backing memfd or -1 (anonymous / test buffer) */
	/*
	 * RAM was remapped MAP_PRIVATE from a checkpoint's memory.bin (lazy
	 * restore, src/snapshot/memimg.c): memfd no longer holds the guest's
	 * pages, so nothing may read RAM through it.
	 */
	bool ram_from_file;
	void *map_base;		/* gmem_alloc's mapping (2 MiB aligned inside) */
	size_t map_len;
};

/* Host pointer for [gpa, gpa+len) if it lies wholly in one slot, else NULL. */
void *gmem_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len);
/* 0 or -EFAULT when any byte is outside RAM. Ranges may span slots. */
int gmem_read(const struct guest_mem *gm, uint64_t gpa, void *buf, size_t len);
int gmem_write(const struct guest_mem *gm, uint64_t gpa, const void *buf, size_t len);
bool gmem_is_ram(const struct guest_mem *gm, uint64_t gpa, uint64_t len);

/*
 * Lay out ram_size bytes of RAM the PC way: [0, min(ram, hole)) and the rest
 * from 4 GiB. Allocates anonymous memory, 2 MiB aligned and advised for
 * transparent huge pages (one fault maps 2 MiB: far fewer EPT/NPT faults
 * while the guest first touches its RAM); memfd stays -1. Formerly: a memfd-backed mapping (shared, so it can be mapped
 * again for checkpoints). For unit tests: gmem_init_buffer wraps a buffer as
 * one slot at gpa 0.
 */
int gmem_alloc(struct guest_mem *gm, uint64_t ram_size);
void gmem_init_buffer(struct guest_mem *gm, void *buf, uint64_t size);
void gmem_free(struct guest_mem *gm);

#endif
