/*
 * Guest page-table walker with hand-built page tables in a RAM buffer:
 * every paging mode, large pages, not-present entries, page crossing.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "amber/x86_mmu.h"

#define RAM_SIZE (8u << 20)

struct env {
	uint8_t *ram;
	struct guest_mem gm;
	struct x86_mmu_state st;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	e->ram = aligned_alloc(4096, RAM_SIZE);
	memset(e->ram, 0, RAM_SIZE);
	gmem_init_buffer(&e->gm, e->ram, RAM_SIZE);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	free(e->ram);
	free(e);
	return 0;
}

static void put64(struct env *e, uint64_t addr, uint64_t v)
{
	memcpy(e->ram + addr, &v, 8);
}

static void put32(struct env *e, uint64_t addr, uint32_t v)
{
	memcpy(e->ram + addr, &v, 4);
}

static void long_mode(struct env *e, uint64_t cr3, bool la57)
{
	e->st.cr0 = X86_CR0_PE | X86_CR0_PG;
	e->st.cr4 = X86_CR4_PAE | (la57 ? X86_CR4_LA57 : 0);
	e->st.efer = X86_EFER_LME | X86_EFER_LMA;
	e->st.cr3 = cr3;
}

static uint64_t xlate(struct env *e, uint64_t va, uint64_t *psize)
{
	uint64_t pa = ~0ULL;

	assert_int_equal(x86_translate(&e->gm, &e->st, va, &pa, psize), 0);
	return pa;
}

static void test_paging_mode_follows_cr0_cr4_efer(void **state)
{
	struct x86_mmu_state st = { 0 };

	assert_int_equal(x86_paging_mode(&st), X86_PAGING_NONE);
	st.cr0 = X86_CR0_PE;
	assert_int_equal(x86_paging_mode(&st), X86_PAGING_NONE);
	st.cr0 |= X86_CR0_PG;
	assert_int_equal(x86_paging_mode(&st), X86_PAGING_32);
	st.cr4 = X86_CR4_PAE;
	assert_int_equal(x86_paging_mode(&st), X86_PAGING_PAE);
	st.efer = X86_EFER_LME;		/* LME alone is not long mode yet */
	assert_int_equal(x86_paging_mode(&st), X86_PAGING_PAE);
	st.efer |= X86_EFER_LMA;
	assert_int_equal(x86_paging_mode(&st), X86_PAGING_4LEVEL);
	st.cr4 |= X86_CR4_LA57;
	assert_int_equal(x86_paging_mode(&st), X86_PAGING_5LEVEL);
}

static void test_without_paging_linear_is_physical(void **state)
{
	struct env *e = *state;
	uint64_t ps;

	e->st.cr0 = 0;	/* real mode */
	assert_int_equal(xlate(e, 0xb8000, &ps), 0xb8000);
	assert_int_equal(ps, 4096);
	e->st.cr0 = X86_CR0_PE;
	assert_int_equal(xlate(e, 0x100000, NULL), 0x100000);
}

static void test_four_level_4k_pages(void **state)
{
	struct env *e = *state;
	uint64_t va = 0x0000123456789abcULL, ps;

	long_mode(e, 0x1000, false);
	put64(e, 0x1000 + ((va >> 39) & 511) * 8, 0x2000 | 3);
	put64(e, 0x2000 + ((va >> 30) & 511) * 8, 0x3000 | 3);
	put64(e, 0x3000 + ((va >> 21) & 511) * 8, 0x4000 | 3);
	/* NX and software bits in the PTE do not leak into the address */
	put64(e, 0x4000 + ((va >> 12) & 511) * 8, (1ULL << 63) | (0x3ULL << 52) | 0x567000 | 1);
	assert_int_equal(xlate(e, va, &ps), 0x567abc);
	assert_int_equal(ps, 4096);
}

static void test_four_level_2m_and_1g_pages(void **state)
{
	struct env *e = *state;
	uint64_t ps;

	long_mode(e, 0x1000, false);
	/* 0xffffffff80000000: PML4[511] -> PDPT[510] -> 1 GiB page at 0x40000000 */
	put64(e, 0x1000 + 511 * 8, 0x2000 | 3);
	put64(e, 0x2000 + 510 * 8, 0x40000000 | 0x80 | 3);
	assert_int_equal(xlate(e, 0xffffffff80123456ULL, &ps), 0x40123456);
	assert_int_equal(ps, 1ULL << 30);
	/* PDPT[511] -> PD with a 2 MiB page at 0x600000 */
	put64(e, 0x2000 + 511 * 8, 0x3000 | 3);
	put64(e, 0x3000 + 1 * 8, 0x600000 | 0x80 | 3);
	assert_int_equal(xlate(e, 0xffffffffc0212345ULL, &ps), 0x612345);
	assert_int_equal(ps, 2ULL << 20);
}

static void test_not_present_entries_fault_at_every_level(void **state)
{
	struct env *e = *state;
	uint64_t pa;

	long_mode(e, 0x1000, false);
	assert_int_equal(x86_translate(&e->gm, &e->st, 0x400000, &pa, NULL), -EFAULT);	/* PML4E */
	put64(e, 0x1000, 0x2000 | 3);
	assert_int_equal(x86_translate(&e->gm, &e->st, 0x400000, &pa, NULL), -EFAULT);	/* PDPTE */
	put64(e, 0x2000, 0x3000 | 3);
	assert_int_equal(x86_translate(&e->gm, &e->st, 0x400000, &pa, NULL), -EFAULT);	/* PDE */
	put64(e, 0x3000 + 2 * 8, 0x4000 | 3);
	assert_int_equal(x86_translate(&e->gm, &e->st, 0x400000, &pa, NULL), -EFAULT);	/* PTE */
	put64(e, 0x4000, 0x9000 | 2);	/* writable but not present */
	assert_int_equal(x86_translate(&e->gm, &e->st, 0x400000, &pa, NULL), -EFAULT);
	put64(e, 0x4000, 0x9000 | 1);
	assert_int_equal(xlate(e, 0x400000, NULL), 0x9000);
}

static void test_table_outside_ram_and_non_canonical_fault(void **state)
{
	struct env *e = *state;
	uint64_t pa;

	long_mode(e, 0x1000, false);
	put64(e, 0x1000, 0x7fff0000000ULL | 3);	/* PDPT beyond RAM */
	assert_int_equal(x86_translate(&e->gm, &e->st, 0x1000, &pa, NULL), -EFAULT);
	assert_int_equal(x86_translate(&e->gm, &e->st, 0x0000800000000000ULL, &pa, NULL), -EFAULT);
	assert_int_equal(x86_translate(&e->gm, &e->st, 0xfff0000000000000ULL, &pa, NULL), -EFAULT);
	/* CR3 itself outside RAM */
	e->st.cr3 = 0x7fff0000000ULL;
	assert_int_equal(x86_translate(&e->gm, &e->st, 0x1000, &pa, NULL), -EFAULT);
}

static void test_five_level_paging_uses_bits_56_48(void **state)
{
	struct env *e = *state;
	uint64_t va = 0x00ff000000001000ULL;	/* canonical with 57 bits: bit 56 = 0 */

	long_mode(e, 0x1000, true);
	put64(e, 0x1000 + ((va >> 48) & 511) * 8, 0x2000 | 3);
	put64(e, 0x2000 + ((va >> 39) & 511) * 8, 0x3000 | 3);
	put64(e, 0x3000 + ((va >> 30) & 511) * 8, 0x4000 | 3);
	put64(e, 0x4000 + ((va >> 21) & 511) * 8, 0x5000 | 3);
	put64(e, 0x5000 + ((va >> 12) & 511) * 8, 0x77000 | 3);
	assert_int_equal(xlate(e, va + 0x10, NULL), 0x77010);
	/* the same address is not canonical with 4-level paging */
	e->st.cr4 &= ~X86_CR4_LA57;
	uint64_t pa;
	assert_int_equal(x86_translate(&e->gm, &e->st, va, &pa, NULL), -EFAULT);
}

static void test_32bit_paging_4k_and_4m_pages(void **state)
{
	struct env *e = *state;
	uint64_t ps, pa;

	e->st.cr0 = X86_CR0_PE | X86_CR0_PG;
	e->st.cr4 = 0;
	e->st.cr3 = 0x1000;
	/* 0xc0001234: PDE[0x300] -> PT at 0x2000, PTE[1] -> 0x345000 */
	put32(e, 0x1000 + 0x300 * 4, 0x2000 | 3);
	put32(e, 0x2000 + 1 * 4, 0x345000 | 3);
	assert_int_equal(xlate(e, 0xc0001234, &ps), 0x345234);
	assert_int_equal(ps, 4096);
	/* a PS PDE without CR4.PSE is an ordinary table pointer */
	put32(e, 0x1000 + 0x301 * 4, 0x400000 | 0x80 | 3);
	put32(e, 0x400000 + 0 * 4, 0x9000 | 1);
	assert_int_equal(xlate(e, 0xc0400010, NULL), 0x9010);
	/* with CR4.PSE: a 4 MiB page */
	e->st.cr4 = X86_CR4_PSE;
	assert_int_equal(xlate(e, 0xc0512345, &ps), 0x512345);
	assert_int_equal(ps, 4ULL << 20);
	/* PSE-36: PDE bits 20:13 are physical address bits 39:32 */
	put32(e, 0x1000 + 0x302 * 4, 0x00400000 | (0x5u << 13) | 0x80 | 3);
	assert_int_equal(xlate(e, 0xc0800004, NULL), 0x500400004ULL);
	/* not present */
	assert_int_equal(x86_translate(&e->gm, &e->st, 0x1000, &pa, NULL), -EFAULT);
}

static void test_pae_paging_4k_and_2m_pages(void **state)
{
	struct env *e = *state;
	uint64_t ps;

	e->st.cr0 = X86_CR0_PE | X86_CR0_PG;
	e->st.cr4 = X86_CR4_PAE;
	e->st.efer = 0;
	e->st.cr3 = 0x1020;	/* PDPT is 32-byte aligned */
	put64(e, 0x1020 + 3 * 8, 0x2000 | 1);		/* 0xc0000000-0xffffffff */
	put64(e, 0x2000 + 0 * 8, 0x3000 | 3);		/* PDE[0] -> PT */
	put64(e, 0x3000 + 5 * 8, 0x7000 | 3);		/* 0xc0005000 */
	assert_int_equal(xlate(e, 0xc0005678, &ps), 0x7678);
	assert_int_equal(ps, 4096);
	put64(e, 0x2000 + 1 * 8, 0x200000 | 0x80 | 3);	/* 2 MiB at 0xc0200000 */
	assert_int_equal(xlate(e, 0xc0312345, &ps), 0x312345);
	assert_int_equal(ps, 2ULL << 20);
	/* PDPTE 0 not present */
	uint64_t pa;
	assert_int_equal(x86_translate(&e->gm, &e->st, 0x1000, &pa, NULL), -EFAULT);
}

/* Two virtually adjacent pages mapped to physically distant frames. */
static void map_two_pages(struct env *e)
{
	long_mode(e, 0x1000, false);
	put64(e, 0x1000, 0x2000 | 3);
	put64(e, 0x2000, 0x3000 | 3);
	put64(e, 0x3000, 0x4000 | 3);
	put64(e, 0x4000 + 0x10 * 8, 0x50000 | 3);	/* va 0x10000 */
	put64(e, 0x4000 + 0x11 * 8, 0x30000 | 3);	/* va 0x11000 */
	/* va 0x12000: not present */
}

static void test_read_crossing_a_page_boundary_follows_each_page(void **state)
{
	struct env *e = *state;
	uint8_t buf[8];

	map_two_pages(e);
	memcpy(e->ram + 0x50ffc, "ABCD", 4);
	memcpy(e->ram + 0x30000, "EFGH", 4);
	assert_int_equal(x86_read_virt(&e->gm, &e->st, 0x10ffc, buf, 8), 0);
	assert_memory_equal(buf, "ABCDEFGH", 8);
}

static void test_write_crossing_pages_and_all_or_nothing_on_fault(void **state)
{
	struct env *e = *state;

	map_two_pages(e);
	assert_int_equal(x86_write_virt(&e->gm, &e->st, 0x10ffe, "wxyz", 4), 0);
	assert_memory_equal(e->ram + 0x50ffe, "wx", 2);
	assert_memory_equal(e->ram + 0x30000, "yz", 2);
	/* crossing into the unmapped page: fails, nothing written */
	assert_int_equal(x86_write_virt(&e->gm, &e->st, 0x11ffe, "1234", 4), -EFAULT);
	assert_int_equal(e->ram[0x30ffe], 0);
	assert_int_equal(e->ram[0x30fff], 0);
	uint8_t b[4];
	assert_int_equal(x86_read_virt(&e->gm, &e->st, 0x11ffe, b, 4), -EFAULT);
	assert_int_equal(x86_read_virt(&e->gm, &e->st, 0x11ffe, b, 2), 0);
}

static void test_mapping_to_non_ram_faults(void **state)
{
	struct env *e = *state;
	uint8_t b;

	map_two_pages(e);
	put64(e, 0x4000 + 0x12 * 8, 0xfee00000ULL | 3);	/* LAPIC MMIO, not RAM */
	assert_int_equal(x86_read_virt(&e->gm, &e->st, 0x12000, &b, 1), -EFAULT);
	assert_int_equal(x86_write_virt(&e->gm, &e->st, 0x12000, &b, 1), -EFAULT);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_paging_mode_follows_cr0_cr4_efer),
		T(test_without_paging_linear_is_physical),
		T(test_four_level_4k_pages),
		T(test_four_level_2m_and_1g_pages),
		T(test_not_present_entries_fault_at_every_level),
		T(test_table_outside_ram_and_non_canonical_fault),
		T(test_five_level_paging_uses_bits_56_48),
		T(test_32bit_paging_4k_and_4m_pages),
		T(test_pae_paging_4k_and_2m_pages),
		T(test_read_crossing_a_page_boundary_follows_each_page),
		T(test_write_crossing_pages_and_all_or_nothing_on_fault),
		T(test_mapping_to_non_ram_faults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
