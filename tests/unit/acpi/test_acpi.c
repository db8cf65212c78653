/*
 * ACPI tables (src/acpi/): contents of FADT/MADT/DSDT, direct placement, and
 * the fw_cfg table loader run by a reference interpreter written from
 * QEMU's bios-linker-loader format, with both SeaBIOS's and OVMF's
 * checksum semantics and OVMF's table discovery.
 */
#include "acpi_test_util.h"

#include <errno.h>

#include "amber/machine.h"
#include "amber/pci.h"

static void test_placed_tables_have_valid_checksums_and_pointers(void **state)
{
	static const int ncpus[] = { 1, 2, 64, ACPI_MAX_CPUS };

	for (size_t i = 0; i < sizeof(ncpus) / sizeof(ncpus[0]); i++) {
		struct placed p;
		struct acpi_walk w;

		place_ncpus(ncpus[i], &p);
		assert_int_equal(p.rsdp, PLACE_BASE);	/* RSDP first, as x86_boot.h expects */
		acpi_walk(&p.g, p.rsdp, &w);		/* asserts checksums and pointers */
		assert_int_equal(w.nentries, 2);
		assert_string_equal(w.entry_sig[0], "FACP");
		assert_string_equal(w.entry_sig[1], "APIC");
		placed_free(&p);
	}
}

/* Count MADT structures of a type; the structures must tile the table. */
static int madt_count(const uint8_t *madt, uint8_t type)
{
	uint32_t len = (uint32_t)le(madt + 4, 4), off = 44;
	int n = 0;

	while (off < len) {
		assert_true(madt[off + 1] >= 2);
		if (madt[off] == type)
			n++;
		off += madt[off + 1];
	}
	assert_int_equal(off, len);
	return n;
}

static const uint8_t *madt_find(const uint8_t *madt, uint8_t type, int nth)
{
	uint32_t len = (uint32_t)le(madt + 4, 4), off = 44;

	while (off < len) {
		if (madt[off] == type && nth-- == 0)
			return madt + off;
		off += madt[off + 1];
	}
	return NULL;
}

static void test_madt_lists_one_enabled_lapic_per_cpu(void **state)
{
	static const int ncpus[] = { 1, 2, 64 };

	for (size_t i = 0; i < sizeof(ncpus) / sizeof(ncpus[0]); i++) {
		struct placed p;
		struct acpi_walk w;
		const uint8_t *madt;

		place_ncpus(ncpus[i], &p);
		acpi_walk(&p.g, p.rsdp, &w);
		madt = gptr(&p.g, w.madt, 44);
		assert_int_equal(le(madt + 36, 4), MMIO_LAPIC);
		assert_int_equal(le(madt + 40, 4) & 1, 1);	/* PCAT_COMPAT */
		assert_int_equal(madt_count(madt, 0), ncpus[i]);
		assert_int_equal(madt_count(madt, 9), 0);
		for (int c = 0; c < ncpus[i]; c++) {
			const uint8_t *e = madt_find(madt, 0, c);

			assert_int_equal(e[1], 8);
			assert_int_equal(e[2], c);		/* UID */
			assert_int_equal(e[3], c);		/* APIC ID */
			assert_int_equal(le(e + 4, 4) & 1, 1);	/* enabled */
		}
		placed_free(&p);
	}
}

static void test_madt_has_ioapic_overrides_and_lint1_nmi(void **state)
{
	struct placed p;
	struct acpi_walk w;
	const uint8_t *madt, *e;

	place_ncpus(2, &p);
	acpi_walk(&p.g, p.rsdp, &w);
	madt = gptr(&p.g, w.madt, 44);

	assert_int_equal(madt_count(madt, 1), 1);
	e = madt_find(madt, 1, 0);
	assert_int_equal(le(e + 4, 4), MMIO_IOAPIC);
	assert_int_equal(le(e + 8, 4), 0);		/* GSI base */

	assert_int_equal(madt_count(madt, 2), 2);
	e = madt_find(madt, 2, 0);
	assert_int_equal(e[2], 0);			/* ISA */
	assert_int_equal(e[3], 0);			/* IRQ0 ... */
	assert_int_equal(le(e + 4, 4), 2);		/* ... -> GSI 2 */
	assert_int_equal(le(e + 8, 2), 0);		/* edge, bus-conforming */
	e = madt_find(madt, 2, 1);
	assert_int_equal(e[3], IRQ_ACPI_SCI);
	assert_int_equal(le(e + 4, 4), IRQ_ACPI_SCI);
	assert_int_equal(le(e + 8, 2), 0x000d);		/* level, active high */

	assert_int_equal(madt_count(madt, 4), 1);
	e = madt_find(madt, 4, 0);
	assert_int_equal(e[2], 0xff);			/* all processors */
	assert_int_equal(e[5], 1);			/* LINT1 */
	placed_free(&p);
}

static void test_madt_uses_x2apic_entries_for_large_apic_ids(void **state)
{
	struct acpi_config cfg;
	struct placed p;
	struct acpi_walk w;
	const uint8_t *madt, *e;

	acpi_config_init(&cfg, 3);
	cfg.apic_ids[2] = 300;
	place_cfg(&cfg, &p);
	acpi_walk(&p.g, p.rsdp, &w);
	madt = gptr(&p.g, w.madt, 44);
	assert_int_equal(madt_count(madt, 0), 2);
	assert_int_equal(madt_count(madt, 9), 1);
	e = madt_find(madt, 9, 0);
	assert_int_equal(le(e + 4, 4), 300);
	assert_int_equal(le(e + 12, 4), 2);		/* UID */
	assert_int_equal(madt_count(madt, 10), 1);	/* x2APIC NMI */
	placed_free(&p);
}

static void test_fadt_describes_pm_block_sci_and_reset_register(void **state)
{
	struct placed p;
	struct acpi_walk w;
	const uint8_t *f;
	uint32_t flags;

	place_ncpus(2, &p);
	acpi_walk(&p.g, p.rsdp, &w);
	f = gptr(&p.g, w.fadt, 276);
	assert_int_equal(f[8], 6);				/* revision */
	assert_int_equal(le(f + 46, 2), IRQ_ACPI_SCI);		/* SCI_INT */
	assert_int_equal(le(f + 48, 4), 0);			/* SMI_CMD: ACPI mode only */
	assert_int_equal(le(f + 56, 4), PORT_ACPI_PM_BASE);	/* PM1a_EVT_BLK */
	assert_int_equal(le(f + 64, 4), PORT_ACPI_PM_BASE + 4);	/* PM1a_CNT_BLK */
	assert_int_equal(le(f + 76, 4), PORT_ACPI_PM_BASE + 8);	/* PM_TMR_BLK */
	assert_int_equal(le(f + 80, 4), PORT_ACPI_GPE0);	/* GPE0_BLK */
	assert_int_equal(f[88], 4);
	assert_int_equal(f[89], 2);
	assert_int_equal(f[91], 4);
	assert_int_equal(f[92], 4);
	assert_int_equal(le(f + 109, 2), 0x3);			/* LEGACY_DEVICES | 8042 */
	flags = (uint32_t)le(f + 112, 4);
	assert_true(flags & (1u << 0));				/* WBINVD */
	assert_true(flags & (1u << 2));				/* PROC_C1 */
	assert_false(flags & (1u << 4));			/* fixed power button */
	assert_true(flags & (1u << 5));				/* no sleep button */
	assert_true(flags & (1u << 10));			/* RESET_REG_SUP */
	assert_false(flags & (1u << 20));			/* not HW-reduced */
	/* RESET_REG: SystemIO, 8 bits, port 0xCF9; RESET_VALUE 0x06 */
	assert_int_equal(f[116], 1);
	assert_int_equal(f[117], 8);
	assert_int_equal(le(f + 120, 8), PORT_RESET_CF9);
	assert_int_equal(f[128], 0x06);
	/* X_PM1a_EVT_BLK, X_PM1a_CNT_BLK, X_PM_TMR_BLK, X_GPE0_BLK */
	assert_int_equal(f[148], 1);
	assert_int_equal(f[149], 32);
	assert_int_equal(le(f + 152, 8), PORT_ACPI_PM_BASE);
	assert_int_equal(f[173], 16);
	assert_int_equal(le(f + 176, 8), PORT_ACPI_PM_BASE + 4);
	assert_int_equal(le(f + 212, 8), PORT_ACPI_PM_BASE + 8);
	assert_int_equal(f[221], 32);
	assert_int_equal(le(f + 224, 8), PORT_ACPI_GPE0);
	placed_free(&p);
}

static void test_fadt_boot_arch_and_cluster_mode_follow_config(void **state)
{
	struct acpi_config cfg;
	struct placed p;
	struct acpi_walk w;
	const uint8_t *f;

	acpi_config_init(&cfg, 16);
	cfg.i8042 = false;
	cfg.rtc = false;
	place_cfg(&cfg, &p);
	acpi_walk(&p.g, p.rsdp, &w);
	f = gptr(&p.g, w.fadt, 276);
	assert_int_equal(le(f + 109, 2), 0x1 | 0x20);	/* legacy, no 8042, no CMOS RTC */
	assert_int_equal(f[108], 0);			/* no century register */
	assert_true(le(f + 112, 4) & (1u << 18));	/* > 8 CPUs: APIC cluster model */
	placed_free(&p);
}

static void test_fadt_without_pm_timer_has_zero_length_and_no_x_block(void **state)
{
	struct acpi_config cfg;
	struct placed p;
	struct acpi_walk w;
	const uint8_t *f;

	acpi_config_init(&cfg, 1);
	cfg.pm_tmr_port = 0;
	place_cfg(&cfg, &p);
	acpi_walk(&p.g, p.rsdp, &w);
	f = gptr(&p.g, w.fadt, 276);
	assert_int_equal(le(f + 76, 4), 0);		/* PM_TMR_BLK */
	assert_int_equal(f[91], 0);			/* PM_TMR_LEN: no timer (ACPI 5.0A) */
	for (int i = 208; i < 220; i++)			/* X_PM_TMR_BLK: all zero */
		assert_int_equal(f[i], 0);
	assert_false(le(f + 112, 4) & (1u << 15));	/* USE_PLATFORM_CLOCK */
	assert_false(le(f + 112, 4) & (1u << 8));	/* TMR_VAL_EXT */
	/* the rest of the PM block is still there */
	assert_int_equal(le(f + 56, 4), PORT_ACPI_PM_BASE);
	assert_int_equal(le(f + 64, 4), PORT_ACPI_PM_BASE + 4);
	placed_free(&p);
}

static const uint8_t *find_bytes(const uint8_t *hay, size_t n, const void *needle, size_t m)
{
	return memmem(hay, n, needle, m);
}

static void test_dsdt_s5_carries_the_pm_device_slp_typ(void **state)
{
	/* Name (_S5, Package (4) { SLP_TYP, SLP_TYP, 0, 0 }), SLP_TYP = Zero */
	const uint8_t s5[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x06, 0x04,
			       ACPI_SLP_TYP_S5, ACPI_SLP_TYP_S5, 0x00, 0x00 };
	struct placed p;
	struct acpi_walk w;
	const uint8_t *d;

	_Static_assert(ACPI_SLP_TYP_S5 == 0, "a non-zero SLP_TYP needs a BytePrefix here");
	place_ncpus(1, &p);
	acpi_walk(&p.g, p.rsdp, &w);
	d = gptr(&p.g, w.dsdt, 36);
	assert_non_null(find_bytes(d, le(d + 4, 4), s5, sizeof(s5)));
	placed_free(&p);
}

static void test_dsdt_has_fw_cfg_and_com2_only_when_configured(void **state)
{
	const uint8_t fwcfg_io_dma[] = { 0x47, 0x01, 0x10, 0x05, 0x10, 0x05, 0x01, 0x0c };
	struct acpi_config cfg;
	struct placed p;
	struct acpi_walk w;
	const uint8_t *d;

	acpi_config_init(&cfg, 1);
	cfg.com2 = true;
	place_cfg(&cfg, &p);
	acpi_walk(&p.g, p.rsdp, &w);
	d = gptr(&p.g, w.dsdt, 36);
	assert_non_null(find_bytes(d, le(d + 4, 4), "COM2", 4));
	assert_non_null(find_bytes(d, le(d + 4, 4), "QEMU0002", 8));
	assert_non_null(find_bytes(d, le(d + 4, 4), fwcfg_io_dma, sizeof(fwcfg_io_dma)));
	placed_free(&p);

	cfg.fw_cfg = false;
	cfg.com2 = false;
	place_cfg(&cfg, &p);
	acpi_walk(&p.g, p.rsdp, &w);
	d = gptr(&p.g, w.dsdt, 36);
	assert_null(find_bytes(d, le(d + 4, 4), "QEMU0002", 8));
	assert_null(find_bytes(d, le(d + 4, 4), "COM2", 4));
	assert_non_null(find_bytes(d, le(d + 4, 4), "COM1", 4));
	placed_free(&p);
}

static void test_dsdt_describes_64bit_window_only_when_configured(void **state)
{
	/* QWordMemory: producer, fixed, cacheable read-write, granularity 0, min */
	const uint8_t qword[] = { 0x8a, 0x2b, 0x00, 0x00, 0x0c, 0x03,
				  0, 0, 0, 0, 0, 0, 0, 0,
				  0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00 };
	struct acpi_config cfg;
	struct placed p;
	struct acpi_walk w;
	const uint8_t *d;

	acpi_config_init(&cfg, 1);
	place_cfg(&cfg, &p);
	acpi_walk(&p.g, p.rsdp, &w);
	d = gptr(&p.g, w.dsdt, 36);
	assert_null(find_bytes(d, le(d + 4, 4), qword, 6));
	placed_free(&p);

	cfg.pci_mmio64_base = 0x8000000000ULL;
	cfg.pci_mmio64_end = 0xffffffffffULL;
	place_cfg(&cfg, &p);
	acpi_walk(&p.g, p.rsdp, &w);
	d = gptr(&p.g, w.dsdt, 36);
	assert_non_null(find_bytes(d, le(d + 4, 4), qword, sizeof(qword)));
	placed_free(&p);
}

/* Decode an AML integer (Zero/One/Byte/Word/DWord) at *p, advancing it. */
static uint64_t aml_int_at(const uint8_t **p)
{
	const uint8_t *q = *p;
	unsigned n;

	switch (q[0]) {
	case 0x00: *p = q + 1; return 0;
	case 0x01: *p = q + 1; return 1;
	case 0x0a: n = 1; break;
	case 0x0b: n = 2; break;
	case 0x0c: n = 4; break;
	default: fail_msg("unexpected AML integer opcode %#x", q[0]); return 0;
	}
	*p = q + 1 + n;
	return le(q + 1, n);
}

static size_t pkglen_skip(const uint8_t **p)
{
	const uint8_t *q = *p;
	int follow = q[0] >> 6;
	size_t v = follow ? (q[0] & 0x0f) : (q[0] & 0x3f);

	for (int i = 1; i <= follow; i++)
		v |= (size_t)q[i] << (4 + 8 * (i - 1));
	*p = q + 1 + follow;
	return v;
}

static void test_dsdt_prt_routes_every_slot_and_pin_to_its_gsi(void **state)
{
	struct placed p;
	struct acpi_walk w;
	const uint8_t *d, *q;

	place_ncpus(1, &p);
	acpi_walk(&p.g, p.rsdp, &w);
	d = gptr(&p.g, w.dsdt, 36);
	q = find_bytes(d, le(d + 4, 4), "\x08_PRT", 5);
	assert_non_null(q);
	q += 5;
	assert_int_equal(*q++, 0x12);
	pkglen_skip(&q);
	assert_int_equal(*q++, PCI_MAX_SLOTS * 4);
	for (unsigned slot = 0; slot < PCI_MAX_SLOTS; slot++) {
		for (unsigned pin = 0; pin < 4; pin++) {
			assert_int_equal(*q++, 0x12);
			pkglen_skip(&q);
			assert_int_equal(*q++, 4);
			assert_int_equal(aml_int_at(&q), ((uint64_t)slot << 16) | 0xffff);
			assert_int_equal(aml_int_at(&q), pin);
			assert_int_equal(aml_int_at(&q), 0);	/* source: GSI */
			assert_int_equal(aml_int_at(&q), PCI_INTX_GSI(slot, pin));
		}
	}
	placed_free(&p);
}

static void test_place_rejects_misaligned_small_or_high_areas(void **state)
{
	struct acpi_config cfg;
	struct acpi_tables t;
	uint64_t rsdp = 0;
	size_t size;
	uint8_t *buf;

	acpi_config_init(&cfg, 2);
	assert_int_equal(acpi_build(&cfg, &t), 0);
	size = acpi_place_size(&t);
	buf = calloc(1, size);
	assert_non_null(buf);
	assert_int_equal(acpi_place(&t, PLACE_BASE + 16, buf, size, &rsdp), -EINVAL);
	assert_int_equal(acpi_place(&t, PLACE_BASE, buf, size - 1, &rsdp), -ENOSPC);
	assert_int_equal(acpi_place(&t, 0x100000000ULL - 64, buf, size, &rsdp), -ERANGE);
	assert_int_equal(rsdp, 0);
	assert_int_equal(acpi_place(&t, PLACE_BASE, buf, size, &rsdp), 0);
	free(buf);
	acpi_tables_free(&t);
}

static void test_build_rejects_impossible_configs(void **state)
{
	struct acpi_config cfg;
	struct acpi_tables t;

	acpi_config_init(&cfg, 0);
	assert_int_equal(acpi_build(&cfg, &t), -EINVAL);
	acpi_config_init(&cfg, ACPI_MAX_CPUS + 1);
	assert_int_equal(acpi_build(&cfg, &t), -EINVAL);
	acpi_config_init(&cfg, 4);
	cfg.apic_ids[3] = 1;
	assert_int_equal(acpi_build(&cfg, &t), -EINVAL);
	acpi_config_init(&cfg, 4);
	cfg.pci_mmio32_end = 0x100000000ULL;
	assert_int_equal(acpi_build(&cfg, &t), -EINVAL);
}

static void test_extra_table_is_listed_and_checksummed(void **state)
{
	struct acpi_config cfg;
	struct placed p;
	struct acpi_walk w;
	uint8_t extra[40];

	memset(extra, 0x5a, sizeof(extra));
	acpi_header_init(extra, "TEST", sizeof(extra), 1);
	extra[9] = 0x77;			/* wrong checksum: placement fixes it */

	acpi_config_init(&cfg, 1);
	assert_int_equal(acpi_build(&cfg, &p.t), 0);
	assert_int_equal(acpi_tables_add(&p.t, extra, 39), -EINVAL);	/* length mismatch */
	assert_int_equal(acpi_tables_add(&p.t, extra, sizeof(extra)), 0);
	placed_place(&p);
	acpi_walk(&p.g, p.rsdp, &w);
	assert_int_equal(w.nentries, 3);
	assert_string_equal(w.entry_sig[2], "TEST");
	assert_int_equal(gptr(&p.g, w.entry[2], 40)[38], 0x5a);	/* body kept */
	placed_free(&p);
}

/* ---- fw_cfg table loader: a reference interpreter ---- */

struct ldr_file {
	const struct acpi_fwcfg_file *src;
	uint64_t addr;			/* 0 until allocated */
};

enum cksum_mode { CKSUM_SEABIOS, CKSUM_OVMF };

struct ldr {
	struct gmem g;			/* guest memory the loader allocates from */
	uint64_t high_next, fseg_next;
	struct ldr_file file[ACPI_FWCFG_NFILES];
	enum cksum_mode mode;
};

static struct ldr_file *ldr_find(struct ldr *l, const uint8_t *name)
{
	/* Names must be NUL-terminated inside their 56 bytes (OVMF, SeaBIOS). */
	assert_int_equal(name[ACPI_LOADER_FILESZ - 1], 0);
	for (int i = 0; i < ACPI_FWCFG_NFILES; i++)
		if (!strcmp((const char *)name, l->file[i].src->name))
			return &l->file[i];
	fail_msg("loader names unknown file \"%s\"", name);
	return NULL;
}

static void ldr_run(struct ldr *l, const struct acpi_fwcfg_files *ff)
{
	const struct acpi_fwcfg_file *lf = &ff->f[ACPI_FWCFG_FILE_LOADER];

	for (int i = 0; i < ACPI_FWCFG_NFILES; i++)
		l->file[i] = (struct ldr_file){ .src = &ff->f[i] };
	assert_string_equal(lf->name, ACPI_FWCFG_LOADER);
	assert_int_equal(lf->size % ACPI_LOADER_ENTRY_SIZE, 0);
	assert_true(lf->size >= 2 * ACPI_LOADER_ENTRY_SIZE);

	for (size_t off = 0; off < lf->size; off += ACPI_LOADER_ENTRY_SIZE) {
		const uint8_t *e = lf->data + off;
		struct ldr_file *f, *s;
		uint32_t cmd = (uint32_t)le(e, 4);

		if (cmd == ACPI_LOADER_ALLOCATE) {
			uint32_t align = (uint32_t)le(e + 60, 4);
			uint64_t *next;

			f = ldr_find(l, e + 4);
			assert_int_equal(f->addr, 0);		/* exactly once */
			assert_true(align && !(align & (align - 1)) && align <= 4096);
			assert_true(e[64] == ACPI_LOADER_ZONE_FSEG || e[64] == ACPI_LOADER_ZONE_HIGH);
			next = e[64] == ACPI_LOADER_ZONE_FSEG ? &l->fseg_next : &l->high_next;
			*next = (*next + align - 1) & ~(uint64_t)(align - 1);
			f->addr = *next;
			*next += f->src->size;
			memcpy(gptr(&l->g, f->addr, f->src->size), f->src->data, f->src->size);
			if (e[64] == ACPI_LOADER_ZONE_FSEG)
				assert_true(f->addr >= 0xe0000 && *next <= 0x100000);
		} else if (cmd == ACPI_LOADER_ADD_POINTER) {
			uint32_t poff = (uint32_t)le(e + 116, 4);
			uint8_t size = e[120];
			uint64_t v;
			uint8_t *p;

			f = ldr_find(l, e + 4);
			s = ldr_find(l, e + 60);
			assert_int_not_equal(f->addr, 0);	/* allocated before use */
			assert_int_not_equal(s->addr, 0);
			assert_true(size == 1 || size == 2 || size == 4 || size == 8);
			assert_true(poff + size <= f->src->size);
			p = gptr(&l->g, f->addr + poff, size);
			v = le(p, size);
			assert_true(v < s->src->size);	/* OVMF: an offset into the source */
			v += s->addr;
			if (size < 8)
				assert_int_equal(v >> (8 * size), 0);
			for (unsigned k = 0; k < size; k++)
				p[k] = (uint8_t)(v >> (8 * k));
		} else if (cmd == ACPI_LOADER_ADD_CHECKSUM) {
			uint32_t coff = (uint32_t)le(e + 60, 4);
			uint32_t start = (uint32_t)le(e + 64, 4), len = (uint32_t)le(e + 68, 4);
			uint8_t *base;

			f = ldr_find(l, e + 4);
			assert_int_not_equal(f->addr, 0);
			assert_true(coff < f->src->size);
			assert_true(start + len <= f->src->size && start + len >= start);
			base = gptr(&l->g, f->addr, f->src->size);
			if (l->mode == CKSUM_SEABIOS)
				base[coff] = (uint8_t)(base[coff] - sum8(base + start, len));
			else	/* OVMF: CalculateCheckSum8 over the range, field included */
				base[coff] = (uint8_t)(0x100 - sum8(base + start, len));
		} else {
			fail_msg("unknown loader command %u", cmd);
		}
	}
	for (int i = 0; i < ACPI_FWCFG_NFILES - 1; i++)
		assert_int_not_equal(l->file[i].addr, 0);
}

static void ldr_init(struct ldr *l, enum cksum_mode mode)
{
	memset(l, 0, sizeof(*l));
	l->g.base = 0;
	l->g.size = 0x200000;
	l->g.mem = calloc(1, l->g.size);
	assert_non_null(l->g.mem);
	l->high_next = 0x100000 + 8;	/* deliberately misaligned: align must apply */
	l->fseg_next = 0xf0000;
	l->mode = mode;
}

static void build_fwcfg(int ncpus, struct acpi_fwcfg_files *ff)
{
	struct acpi_config cfg;
	struct acpi_tables t;

	acpi_config_init(&cfg, ncpus);
	assert_int_equal(acpi_build(&cfg, &t), 0);
	assert_int_equal(acpi_build_fwcfg(&t, ff), 0);
	acpi_tables_free(&t);
}

static void test_loader_files_have_qemu_names_and_entry_format(void **state)
{
	struct acpi_fwcfg_files ff;
	const uint8_t *e;

	build_fwcfg(2, &ff);
	assert_string_equal(ff.f[ACPI_FWCFG_FILE_TABLES].name, "etc/acpi/tables");
	assert_string_equal(ff.f[ACPI_FWCFG_FILE_RSDP].name, "etc/acpi/rsdp");
	assert_string_equal(ff.f[ACPI_FWCFG_FILE_LOADER].name, "etc/table-loader");
	assert_int_equal(ff.f[ACPI_FWCFG_FILE_RSDP].size, 36);
	assert_int_equal(ff.f[ACPI_FWCFG_FILE_LOADER].size % 128, 0);

	/* first: ALLOCATE etc/acpi/tables, align 64, HIGH; then the RSDP in FSEG */
	e = ff.f[ACPI_FWCFG_FILE_LOADER].data;
	assert_int_equal(le(e, 4), ACPI_LOADER_ALLOCATE);
	assert_string_equal((const char *)e + 4, "etc/acpi/tables");
	assert_int_equal(le(e + 60, 4), 64);
	assert_int_equal(e[64], ACPI_LOADER_ZONE_HIGH);
	e += 128;
	assert_int_equal(le(e, 4), ACPI_LOADER_ALLOCATE);
	assert_string_equal((const char *)e + 4, "etc/acpi/rsdp");
	assert_int_equal(le(e + 60, 4), 16);
	assert_int_equal(e[64], ACPI_LOADER_ZONE_FSEG);
	/* unused bytes of every entry are zero */
	for (size_t off = 0; off < ff.f[ACPI_FWCFG_FILE_LOADER].size; off += 128) {
		e = ff.f[ACPI_FWCFG_FILE_LOADER].data + off;
		switch (le(e, 4)) {
		case ACPI_LOADER_ALLOCATE:
			for (int i = 65; i < 128; i++)
				assert_int_equal(e[i], 0);
			break;
		case ACPI_LOADER_ADD_POINTER:
			for (int i = 121; i < 128; i++)
				assert_int_equal(e[i], 0);
			break;
		case ACPI_LOADER_ADD_CHECKSUM:
			for (int i = 72; i < 128; i++)
				assert_int_equal(e[i], 0);
			break;
		default:
			fail_msg("unknown command");
		}
	}
	acpi_fwcfg_files_free(&ff);
}

static void check_loader_result(int ncpus, enum cksum_mode mode)
{
	struct acpi_fwcfg_files ff;
	struct acpi_walk w;
	struct ldr l;
	const uint8_t *madt;

	build_fwcfg(ncpus, &ff);
	ldr_init(&l, mode);
	ldr_run(&l, &ff);
	assert_int_equal(l.file[ACPI_FWCFG_FILE_TABLES].addr & 63, 0);
	acpi_walk(&l.g, l.file[ACPI_FWCFG_FILE_RSDP].addr, &w);
	madt = gptr(&l.g, w.madt, 44);
	assert_int_equal(madt_count(madt, 0), ncpus);
	acpi_fwcfg_files_free(&ff);
	free(l.g.mem);
}

static void test_loader_seabios_semantics_yield_valid_linked_tables(void **state)
{
	check_loader_result(1, CKSUM_SEABIOS);
	check_loader_result(64, CKSUM_SEABIOS);
}

static void test_loader_ovmf_semantics_yield_valid_linked_tables(void **state)
{
	check_loader_result(2, CKSUM_OVMF);
}

/*
 * OVMF's second pass (Process2ndPassCmdAddPointer): each ADD_POINTER target
 * that is a FACS, or a table with a valid checksum other than RSDT/XSDT,
 * is installed (once per address). Exactly FACS, DSDT, FADT and MADT must be.
 */
static void test_loader_ovmf_discovers_each_table_once(void **state)
{
	struct acpi_fwcfg_files ff;
	struct ldr l;
	uint64_t seen[32];
	char sigs[5 * 32] = "";
	int nseen = 0;
	const struct acpi_fwcfg_file *lf;

	build_fwcfg(4, &ff);
	ldr_init(&l, CKSUM_OVMF);
	ldr_run(&l, &ff);
	lf = &ff.f[ACPI_FWCFG_FILE_LOADER];
	for (size_t off = 0; off < lf->size; off += ACPI_LOADER_ENTRY_SIZE) {
		const uint8_t *e = lf->data + off;
		struct ldr_file *f, *s;
		uint64_t ptr;
		const uint8_t *t;
		bool dup = false;

		if (le(e, 4) != ACPI_LOADER_ADD_POINTER)
			continue;
		f = ldr_find(&l, e + 4);
		s = ldr_find(&l, e + 60);
		ptr = le(gptr(&l.g, f->addr + le(e + 116, 4), e[120]), e[120]);
		assert_true(ptr >= s->addr && ptr < s->addr + s->src->size);
		t = gptr(&l.g, ptr, 8);
		if (memcmp(t, "FACS", 4)) {
			uint32_t len = (uint32_t)le(t + 4, 4);

			assert_true(ptr + len <= s->addr + s->src->size);
			if (sum8(t, len) != 0)
				continue;	/* OVMF would treat it as opaque data */
			if (!memcmp(t, "RSDT", 4) || !memcmp(t, "XSDT", 4))
				continue;
		}
		for (int i = 0; i < nseen; i++)
			dup |= seen[i] == ptr;
		if (dup)
			continue;
		seen[nseen++] = ptr;
		strncat(sigs, (const char *)t, 4);
		strcat(sigs, " ");
	}
	/* FADT's pointers come first, so OVMF sees FACS and DSDT before the FADT */
	assert_string_equal(sigs, "FACS DSDT FACP APIC ");
	acpi_fwcfg_files_free(&ff);
	free(l.g.mem);
}

/* Loaded at the addresses acpi_place() uses, the loader gives the same bytes. */
static void test_loader_and_direct_placement_agree(void **state)
{
	struct acpi_config cfg;
	struct acpi_tables t;
	struct acpi_fwcfg_files ff;
	struct ldr l;
	uint8_t *placed;
	uint64_t rsdp;
	size_t size;

	acpi_config_init(&cfg, 8);
	assert_int_equal(acpi_build(&cfg, &t), 0);
	assert_int_equal(acpi_build_fwcfg(&t, &ff), 0);
	size = acpi_place_size(&t);
	placed = calloc(1, size);
	assert_int_equal(acpi_place(&t, PLACE_BASE, placed, size, &rsdp), 0);

	ldr_init(&l, CKSUM_SEABIOS);
	l.fseg_next = PLACE_BASE;		/* RSDP at base ... */
	l.high_next = PLACE_BASE + 64;		/* ... tables at base + 64 */
	/* run with the zones swapped in address order: tables first in the loader */
	ldr_run(&l, &ff);
	assert_int_equal(l.file[ACPI_FWCFG_FILE_RSDP].addr, PLACE_BASE);
	assert_int_equal(l.file[ACPI_FWCFG_FILE_TABLES].addr, PLACE_BASE + 64);
	assert_memory_equal(gptr(&l.g, PLACE_BASE, 36), placed, 36);
	assert_memory_equal(gptr(&l.g, PLACE_BASE + 64, size - 64), placed + 64, size - 64);

	free(placed);
	free(l.g.mem);
	acpi_fwcfg_files_free(&ff);
	acpi_tables_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_placed_tables_have_valid_checksums_and_pointers),
		cmocka_unit_test(test_madt_lists_one_enabled_lapic_per_cpu),
		cmocka_unit_test(test_madt_has_ioapic_overrides_and_lint1_nmi),
		cmocka_unit_test(test_madt_uses_x2apic_entries_for_large_apic_ids),
		cmocka_unit_test(test_fadt_describes_pm_block_sci_and_reset_register),
		cmocka_unit_test(test_fadt_boot_arch_and_cluster_mode_follow_config),
		cmocka_unit_test(test_fadt_without_pm_timer_has_zero_length_and_no_x_block),
		cmocka_unit_test(test_dsdt_s5_carries_the_pm_device_slp_typ),
		cmocka_unit_test(test_dsdt_has_fw_cfg_and_com2_only_when_configured),
		cmocka_unit_test(test_dsdt_describes_64bit_window_only_when_configured),
		cmocka_unit_test(test_dsdt_prt_routes_every_slot_and_pin_to_its_gsi),
		cmocka_unit_test(test_place_rejects_misaligned_small_or_high_areas),
		cmocka_unit_test(test_build_rejects_impossible_configs),
		cmocka_unit_test(test_extra_table_is_listed_and_checksummed),
		cmocka_unit_test(test_loader_files_have_qemu_names_and_entry_format),
		cmocka_unit_test(test_loader_seabios_semantics_yield_valid_linked_tables),
		cmocka_unit_test(test_loader_ovmf_semantics_yield_valid_linked_tables),
		cmocka_unit_test(test_loader_ovmf_discovers_each_table_once),
		cmocka_unit_test(test_loader_and_direct_placement_agree),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
