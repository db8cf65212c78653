/*
 * Guest page-table walker (Intel SDM Vol. 3 chapter 4; AMD APM Vol. 2 §5).
 *
 * Software walk of the paging structures as they are in guest RAM: it sees
 * what a stopped vCPU would see, except that PAE's PDPTEs are re-read from
 * memory instead of the copies loaded at the last CR3 write (§4.4.1), which
 * only differs if the guest edited its PDPT without reloading CR3.
 */
#include <errno.h>

#include "amber/x86_mmu.h"

#define PTE_P		(1ULL << 0)
#define PTE_PS		(1ULL << 7)
#define ADDR_MASK	0x000ffffffffff000ULL	/* bits 51:12, MAXPHYADDR <= 52 */

enum x86_paging_mode x86_paging_mode(const struct x86_mmu_state *st)
{
	if (!(st->cr0 & X86_CR0_PG))
		return X86_PAGING_NONE;
	if (!(st->cr4 & X86_CR4_PAE))
		return X86_PAGING_32;
	if (!(st->efer & X86_EFER_LMA))
		return X86_PAGING_PAE;
	return (st->cr4 & X86_CR4_LA57) ? X86_PAGING_5LEVEL : X86_PAGING_4LEVEL;
}

static int read_pte32(const struct guest_mem *gm, uint64_t addr, uint32_t *e)
{
	return gmem_read(gm, addr, e, sizeof(*e));
}

static int read_pte64(const struct guest_mem *gm, uint64_t addr, uint64_t *e)
{
	return gmem_read(gm, addr, e, sizeof(*e));
}

/* §4.3: 32-bit paging. */
static int walk_32(const struct guest_mem *gm, const struct x86_mmu_state *st, uint32_t va,
		   uint64_t *gpa, uint64_t *psize)
{
	uint32_t pde, pte;

	if (read_pte32(gm, (st->cr3 & 0xfffff000u) + (va >> 22) * 4, &pde) < 0 || !(pde & PTE_P))
		return -EFAULT;
	if ((pde & PTE_PS) && (st->cr4 & X86_CR4_PSE)) {
		/* 4 MiB page; PDE bits 20:13 are physical bits 39:32 (PSE-36) */
		*gpa = (pde & 0xffc00000u) | ((uint64_t)((pde >> 13) & 0xff) << 32) |
		       (va & 0x3fffffu);
		*psize = 4ULL << 20;
		return 0;
	}
	if (read_pte32(gm, (pde & 0xfffff000u) + ((va >> 12) & 0x3ff) * 4, &pte) < 0 ||
	    !(pte & PTE_P))
		return -EFAULT;
	*gpa = (pte & 0xfffff000u) | (va & 0xfffu);
	*psize = 4096;
	return 0;
}

/*
 * PAE (§4.4) and IA-32e (§4.5) share the 8-byte entry format. levels: 3
 * (PAE: a 4-entry PDPT indexed by bits 31:30), 4 or 5. The root is CR3.
 */
static int walk_64(const struct guest_mem *gm, uint64_t root, int levels, uint64_t va,
		   uint64_t *gpa, uint64_t *psize)
{
	uint64_t table = root, e;

	for (int level = levels; level >= 1; level--) {
		unsigned shift = 12 + 9 * (level - 1);
		uint64_t idx = (va >> shift) & (levels == 3 && level == 3 ? 3 : 511);

		if (read_pte64(gm, table + idx * 8, &e) < 0 || !(e & PTE_P))
			return -EFAULT;
		/*
		 * PS in a PDE (2 MiB) or, in IA-32e mode, a PDPTE (1 GiB);
		 * PAE PDPTEs have no PS bit (§4.4.1).
		 */
		if (level == 1 || ((e & PTE_PS) && (level == 2 || (level == 3 && levels > 3)))) {
			uint64_t size = 1ULL << shift;

			*gpa = (e & ADDR_MASK & ~(size - 1)) | (va & (size - 1));
			*psize = size;
			return 0;
		}
		table = e & ADDR_MASK;
	}
	return -EFAULT;		/* not reached: level 1 always returns */
}

int x86_translate(const struct guest_mem *gm, const struct x86_mmu_state *st, uint64_t gva,
		  uint64_t *gpa, uint64_t *page_size)
{
	uint64_t psize = 4096, pa = 0;
	unsigned vbits;
	int rc;

	switch (x86_paging_mode(st)) {
	case X86_PAGING_NONE:
		/* linear = physical, 32-bit (real mode ends near 1 MiB anyway) */
		pa = gva & 0xffffffffu;
		rc = 0;
		break;
	case X86_PAGING_32:
		rc = walk_32(gm, st, (uint32_t)gva, &pa, &psize);
		break;
	case X86_PAGING_PAE:
		rc = walk_64(gm, st->cr3 & 0xffffffe0u, 3, gva & 0xffffffffu, &pa, &psize);
		break;
	case X86_PAGING_4LEVEL:
	case X86_PAGING_5LEVEL:
		/* §4.5: linear addresses must be canonical (sign-extended) */
		vbits = x86_paging_mode(st) == X86_PAGING_5LEVEL ? 57 : 48;
		if ((uint64_t)((int64_t)(gva << (64 - vbits)) >> (64 - vbits)) != gva)
			return -EFAULT;
		rc = walk_64(gm, st->cr3 & ADDR_MASK, vbits == 57 ? 5 : 4, gva, &pa, &psize);
		break;
	default:
		return -EFAULT;
	}
	if (rc < 0)
		return rc;
	*gpa = pa;
	if (page_size)
		*page_size = psize;
	return 0;
}

/* The piece of [gva, gva+len) that lies in gva's page, translated. */
static int virt_chunk(const struct guest_mem *gm, const struct x86_mmu_state *st, uint64_t gva,
		      size_t len, uint64_t *gpa, size_t *n)
{
	uint64_t psize, room;
	int rc = x86_translate(gm, st, gva, gpa, &psize);

	if (rc < 0)
		return rc;
	room = psize - (*gpa & (psize - 1));
	*n = len < room ? len : (size_t)room;
	if (!gmem_is_ram(gm, *gpa, *n))
		return -EFAULT;
	return 0;
}

int x86_read_virt(const struct guest_mem *gm, const struct x86_mmu_state *st, uint64_t gva,
		  void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		uint64_t gpa;
		size_t n;
		int rc = virt_chunk(gm, st, gva, len, &gpa, &n);

		if (rc < 0)
			return rc;
		if (gmem_read(gm, gpa, p, n) < 0)
			return -EFAULT;
		gva += n;
		p += n;
		len -= n;
	}
	return 0;
}

int x86_write_virt(const struct guest_mem *gm, const struct x86_mmu_state *st, uint64_t gva,
		   const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t va = gva;
	size_t left = len;

	/* First check every page, so a fault leaves memory untouched. */
	while (left) {
		uint64_t gpa;
		size_t n;
		int rc = virt_chunk(gm, st, va, left, &gpa, &n);

		if (rc < 0)
			return rc;
		va += n;
		left -= n;
	}
	while (len) {
		uint64_t gpa;
		size_t n;
		int rc = virt_chunk(gm, st, gva, len, &gpa, &n);

		if (rc < 0 || gmem_write(gm, gpa, p, n) < 0)
			return -EFAULT;
		gva += n;
		p += n;
		len -= n;
	}
	return 0;
}
