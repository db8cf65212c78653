/*
 * Helpers for the ACPI tests: a flat "guest memory" and a walker that
 * follows RSDP -> RSDT/XSDT -> tables -> FADT's FACS/DSDT the way an OS
 * does, asserting every checksum and pointer on the way.
 */
#ifndef ACPI_TEST_UTIL_H
#define ACPI_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "amber/acpi.h"

struct gmem {
	uint8_t *mem;
	uint64_t base;		/* guest address of mem[0] */
	size_t size;
};

static inline uint64_t le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Pointer to len bytes at guest address addr; fails the test if outside. */
static inline uint8_t *gptr(const struct gmem *g, uint64_t addr, size_t len)
{
	assert_true(addr >= g->base);
	assert_true(addr - g->base + len <= g->size);
	return g->mem + (addr - g->base);
}

/* Where the tests place the tables: the BIOS area, as direct boot does. */
#define PLACE_BASE 0xe0000ULL

/* Built tables placed at PLACE_BASE in guest memory g. */
struct placed {
	struct acpi_tables t;
	struct gmem g;
	uint64_t rsdp;
};

/* Place the tables p->t, built already, in new memory p->g. */
static inline void placed_place(struct placed *p)
{
	size_t size = acpi_place_size(&p->t);

	assert_true(size > 0);
	assert_true(size <= 0x20000);	/* fits 0xE0000-0xFFFFF even for many CPUs */
	p->g.mem = calloc(1, size);
	assert_non_null(p->g.mem);
	p->g.base = PLACE_BASE;
	p->g.size = size;
	assert_int_equal(acpi_place(&p->t, PLACE_BASE, p->g.mem, size, &p->rsdp), 0);
}

static inline void place_cfg(const struct acpi_config *cfg, struct placed *p)
{
	assert_int_equal(acpi_build(cfg, &p->t), 0);
	placed_place(p);
}

static inline void place_ncpus(int ncpus, struct placed *p)
{
	struct acpi_config cfg;

	acpi_config_init(&cfg, ncpus);
	place_cfg(&cfg, p);
}

static inline void placed_free(struct placed *p)
{
	acpi_tables_free(&p->t);
	free(p->g.mem);
}

static inline uint8_t sum8(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

/* A table with a standard header at addr: signature, length and checksum. */
static inline uint8_t *table_at(const struct gmem *g, uint64_t addr, const char *sig)
{
	uint8_t *h = gptr(g, addr, 36);
	uint32_t len = (uint32_t)le(h + 4, 4);

	if (sig)
		assert_memory_equal(h, sig, 4);
	assert_true(len >= 36);
	gptr(g, addr, len);
	assert_int_equal(sum8(h, len), 0);
	return h;
}

struct acpi_walk {
	uint64_t rsdt, xsdt, fadt, madt, dsdt, facs;
	int nentries;
	uint64_t entry[ACPI_MAX_TABLES];
	char entry_sig[ACPI_MAX_TABLES][5];
};

/* Follow everything from the RSDP at rsdp_addr, asserting as an OS would. */
static inline void acpi_walk(const struct gmem *g, uint64_t rsdp_addr, struct acpi_walk *w)
{
	uint8_t *rsdp = gptr(g, rsdp_addr, 36), *rsdt, *xsdt, *fadt, *facs;
	int n;

	memset(w, 0, sizeof(*w));
	assert_memory_equal(rsdp, "RSD PTR ", 8);
	assert_int_equal(rsdp_addr & 15, 0);
	assert_int_equal(sum8(rsdp, 20), 0);
	assert_int_equal(rsdp[15], 2);
	assert_int_equal(le(rsdp + 20, 4), 36);
	assert_int_equal(sum8(rsdp, 36), 0);
	w->rsdt = le(rsdp + 16, 4);
	w->xsdt = le(rsdp + 24, 8);
	rsdt = table_at(g, w->rsdt, "RSDT");
	xsdt = table_at(g, w->xsdt, "XSDT");

	n = (int)(le(xsdt + 4, 4) - 36) / 8;
	assert_int_equal(le(xsdt + 4, 4), 36 + 8 * (uint64_t)n);
	assert_int_equal(le(rsdt + 4, 4), 36 + 4 * (uint64_t)n);
	assert_true(n <= ACPI_MAX_TABLES);
	w->nentries = n;
	for (int i = 0; i < n; i++) {
		uint8_t *t;

		w->entry[i] = le(xsdt + 36 + 8 * i, 8);
		/* RSDT and XSDT list the same tables in the same order */
		assert_int_equal(le(rsdt + 36 + 4 * i, 4), w->entry[i]);
		t = table_at(g, w->entry[i], NULL);
		memcpy(w->entry_sig[i], t, 4);
		if (!memcmp(t, "FACP", 4)) {
			assert_int_equal(w->fadt, 0);
			w->fadt = w->entry[i];
		} else if (!memcmp(t, "APIC", 4)) {
			assert_int_equal(w->madt, 0);
			w->madt = w->entry[i];
		}
		/* the FACS and DSDT are reached through the FADT only */
		assert_memory_not_equal(t, "DSDT", 4);
		assert_memory_not_equal(t, "FACS", 4);
	}
	assert_int_not_equal(w->fadt, 0);
	assert_int_not_equal(w->madt, 0);

	fadt = table_at(g, w->fadt, "FACP");
	assert_int_equal(le(fadt + 4, 4), 276);
	w->facs = le(fadt + 36, 4);
	assert_int_equal(le(fadt + 132, 8), 0);	/* X_FIRMWARE_CTRL: exclusive */
	w->dsdt = le(fadt + 40, 4);
	assert_int_equal(le(fadt + 140, 8), w->dsdt);	/* X_DSDT == DSDT */
	table_at(g, w->dsdt, "DSDT");
	facs = gptr(g, w->facs, 64);
	assert_memory_equal(facs, "FACS", 4);
	assert_int_equal(le(facs + 4, 4), 64);
	assert_int_equal(w->facs & 63, 0);	/* §5.2.10: 64-byte aligned */
}

#endif
