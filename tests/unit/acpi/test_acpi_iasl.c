/*
 * The tables as ACPICA sees them (acpica-tools): every placed table is
 * disassembled with `iasl -d`, the .dsl is compiled again with no errors or
 * warnings and gives back the same bytes; the RSDP (which this iasl cannot
 * disassemble from a binary) is written as iasl data-table source and must
 * compile to our bytes, checksums included; acpiexec loads the DSDT with the
 * FADT and evaluates \_S5, _PRT and the host bridge _CRS.
 * Without iasl the test exits 77 (skipped), saying so.
 */
#include "acpi_test_util.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define OUT_MAX    (4 << 20)

static char tmpdir[64];

static bool tool_in_path(const char *tool)
{
	const char *path = getenv("PATH");
	char buf[4096];

	if (!path)
		path = "/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, tool);
		if (n && access(buf, X_OK) == 0)
			return true;
		path += n;
		if (*path == ':')
			path++;
	}
	return false;
}

/* Run a shell command in tmpdir; returns its exit status, output in *out. */
static int run(char **out, const char *fmt, ...)
{
	char cmd[1024], head[sizeof(cmd) + sizeof(tmpdir) + 32];
	va_list ap;
	FILE *p;
	size_t n = 0;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(head, sizeof(head), "cd '%s' && %s 2>&1", tmpdir, cmd);
	*out = calloc(1, OUT_MAX + 1);
	assert_non_null(*out);
	p = popen(head, "r");
	assert_non_null(p);
	while (n < OUT_MAX) {
		size_t r = fread(*out + n, 1, OUT_MAX - n, p);

		if (!r)
			break;
		n += r;
	}
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void write_file(const char *name, const void *data, size_t len)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static uint8_t *read_file(const char *name, size_t *len)
{
	char path[256];
	struct stat st;
	uint8_t *buf;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("%s was not produced", path);
	assert_int_equal(fstat(fileno(f), &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)st.st_size, f), (size_t)st.st_size);
	fclose(f);
	*len = (size_t)st.st_size;
	return buf;
}

static int count_lines_with(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

/*
 * Disassemble name.dat, compile name.dsl again, and compare. Compiling sets
 * iasl's own creator ID and so its own checksum: those bytes are skipped.
 * Returns the .dsl text (caller frees).
 */
static char *iasl_round_trip(const char *name, const uint8_t *table, size_t len)
{
	char file[64], *out, *dsl;
	uint8_t *re;
	size_t relen, dsllen;
	int rc;

	snprintf(file, sizeof(file), "%s.dat", name);
	write_file(file, table, len);
	rc = run(&out, "iasl -d %s.dat", name);
	if (rc != 0)
		fail_msg("iasl -d %s.dat: exit %d\n%s", name, rc, out);
	free(out);
	snprintf(file, sizeof(file), "%s.dsl", name);
	dsl = (char *)read_file(file, &dsllen);
	dsl[dsllen] = 0;
	/* the disassembler flags what it cannot decode with "****" */
	if (strstr(dsl, "****"))
		fail_msg("iasl -d %s.dat reports a problem:\n%s", name, dsl);

	rc = run(&out, "iasl -p re_%s %s.dsl", name, name);
	if (rc != 0 || !strstr(out, "Compilation successful. 0 Errors, 0 Warnings"))
		fail_msg("iasl %s.dsl: exit %d\n%s", name, rc, out);
	free(out);
	snprintf(file, sizeof(file), "re_%s.aml", name);
	re = read_file(file, &relen);
	assert_int_equal(relen, len);
	assert_memory_equal(re, table, 9);			/* sig, length, revision */
	assert_memory_equal(re + 10, table + 10, 18);		/* OEM fields */
	assert_memory_equal(re + 36, table + 36, len - 36);	/* body */
	free(re);
	return dsl;
}

/*
 * Write the DSDT and FADT of g as dsdt<suffix>.dat and facp<suffix>.dat, and
 * when acpiexec is there, run it on them with the batch commands cmds: it must
 * exit 0 with no ACPI error or warning and print every string of expect
 * (NULL-terminated).
 */
static void acpiexec_check(const struct gmem *g, const struct acpi_walk *w, const char *suffix,
			   const char *cmds, const char *const *expect)
{
	char name[2][32], *out;
	bool ok;
	int rc;

	snprintf(name[0], sizeof(name[0]), "dsdt%s.dat", suffix);
	snprintf(name[1], sizeof(name[1]), "facp%s.dat", suffix);
	write_file(name[0], gptr(g, w->dsdt, 36), le(gptr(g, w->dsdt, 8) + 4, 4));
	write_file(name[1], gptr(g, w->fadt, 276), 276);
	if (!tool_in_path("acpiexec"))
		return;
	rc = run(&out, "acpiexec -b '%s' %s %s", cmds, name[0], name[1]);
	ok = rc == 0 && !strstr(out, "ACPI Error") && !strstr(out, "ACPI Warning");
	for (; ok && *expect; expect++)
		ok = strstr(out, *expect) != NULL;
	if (!ok)
		fail_msg("acpiexec: exit %d\n%s", rc, out);
	free(out);
}

static void check_placed_tables(int ncpus)
{
	static const char *const expect[] = {
		"Evaluation of \\_S5 returned object",
		"[Package] Contains 128 Elements",
		"Resource Type : Bus Number Range",
		"Address Maximum : FEBFFFFF",
		"2 regs on interrupt 0x9 (SCI)",
		NULL
	};
	struct placed p;
	struct gmem *g = &p.g;
	struct acpi_walk w;
	char *dsl;

	place_ncpus(ncpus, &p);
	acpi_walk(g, p.rsdp, &w);

	free(iasl_round_trip("rsdt", gptr(g, w.rsdt, 36), le(gptr(g, w.rsdt, 8) + 4, 4)));
	free(iasl_round_trip("xsdt", gptr(g, w.xsdt, 36), le(gptr(g, w.xsdt, 8) + 4, 4)));
	free(iasl_round_trip("facs", gptr(g, w.facs, 64), 64));
	free(iasl_round_trip("facp", gptr(g, w.fadt, 276), 276));
	dsl = iasl_round_trip("dsdt", gptr(g, w.dsdt, 36), le(gptr(g, w.dsdt, 8) + 4, 4));
	/*
	 * Every _CRS decodes as a resource template (a malformed one would be
	 * shown as a plain Buffer): PCI0, COM1, RTC, KBD, FWCF by default.
	 */
	assert_int_equal(count_lines_with(dsl, "Name (_CRS, ResourceTemplate ()"), 5);
	assert_int_equal(count_lines_with(dsl, "Name (_HID, \"ACPI0007\""), ncpus);
	free(dsl);

	dsl = iasl_round_trip("apic", gptr(g, w.madt, 36), le(gptr(g, w.madt, 8) + 4, 4));
	/* iasl's own reading of the MADT: exactly ncpus local APICs, all enabled */
	assert_int_equal(count_lines_with(dsl, "Subtable Type : 00 [Processor Local APIC]"),
			 ncpus);
	assert_int_equal(count_lines_with(dsl, "Processor Enabled : 1"), ncpus);
	assert_int_equal(count_lines_with(dsl, "Subtable Type : 01 [I/O APIC]"), 1);
	assert_int_equal(count_lines_with(dsl, "Subtable Type : 02 [Interrupt Source Override]"), 2);
	free(dsl);

	/* acpiexec: the namespace loads and the objects evaluate */
	acpiexec_check(g, &w, "", "evaluate _S5; evaluate \\_SB.PCI0._PRT; resources \\_SB.PCI0",
		       expect);
	placed_free(&p);
}

static void test_iasl_accepts_tables_for_1_cpu(void **state)
{
	check_placed_tables(1);
}

static void test_iasl_accepts_tables_for_2_cpus(void **state)
{
	check_placed_tables(2);
}

static void test_iasl_accepts_tables_for_64_cpus(void **state)
{
	check_placed_tables(64);
}

/*
 * Direct Linux boot leaves the PM timer out of the FADT (src/core/platform.c):
 * iasl still decodes it cleanly, and ACPICA's own loader takes it without an
 * error or warning (the timer is optional since ACPI 5.0A).
 */
static void test_iasl_and_acpiexec_accept_a_fadt_without_pm_timer(void **state)
{
	static const char *const expect[] = { "Evaluation of \\_S5 returned object", NULL };
	struct acpi_config cfg;
	struct acpi_walk w;
	struct placed p;
	char *dsl;

	acpi_config_init(&cfg, 1);
	cfg.pm_tmr_port = 0;
	place_cfg(&cfg, &p);
	acpi_walk(&p.g, p.rsdp, &w);
	dsl = iasl_round_trip("facp_notmr", gptr(&p.g, w.fadt, 276), 276);
	if (!strstr(dsl, "PM Timer Block Length : 00"))
		fail_msg("iasl does not show a zero PM timer length:\n%s", dsl);
	free(dsl);
	acpiexec_check(&p.g, &w, "_notmr", "evaluate _S5", expect);
	placed_free(&p);
}

/* The RSDP written as iasl data-table source compiles to exactly our bytes. */
static void test_iasl_compiles_rsdp_source_to_our_bytes(void **state)
{
	struct placed p;
	uint8_t *mem, *re;
	size_t relen;
	char src[1024], *out;
	int rc;

	place_ncpus(2, &p);
	mem = gptr(&p.g, p.rsdp, 36);
	snprintf(src, sizeof(src),
		 "[0008]                          Signature : \"RSD PTR \"\n"
		 "[0001]                           Checksum : 00\n"
		 "[0006]                             Oem ID : \"%.6s\"\n"
		 "[0001]                           Revision : %02X\n"
		 "[0004]                       RSDT Address : %08llX\n"
		 "[0004]                             Length : %08llX\n"
		 "[0008]                       XSDT Address : %016llX\n"
		 "[0001]                  Extended Checksum : 00\n"
		 "[0003]                           Reserved : 000000\n",
		 (const char *)mem + 9, mem[15],
		 (unsigned long long)le(mem + 16, 4), (unsigned long long)le(mem + 20, 4),
		 (unsigned long long)le(mem + 24, 8));
	write_file("rsdp.asl", src, strlen(src));
	rc = run(&out, "iasl rsdp.asl");
	if (rc != 0 || !strstr(out, "Compilation successful. 0 Errors, 0 Warnings"))
		fail_msg("iasl rsdp.asl: exit %d\n%s", rc, out);
	free(out);
	re = read_file("rsdp.aml", &relen);
	assert_int_equal(relen, 36);
	assert_memory_equal(re, mem, 36);	/* including both checksums */
	free(re);
	placed_free(&p);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_iasl_accepts_tables_for_1_cpu),
		cmocka_unit_test(test_iasl_accepts_tables_for_2_cpus),
		cmocka_unit_test(test_iasl_accepts_tables_for_64_cpus),
		cmocka_unit_test(test_iasl_compiles_rsdp_source_to_our_bytes),
		cmocka_unit_test(test_iasl_and_acpiexec_accept_a_fadt_without_pm_timer),
	};
	int ret;

	if (!tool_in_path("iasl")) {
		fprintf(stderr, "SKIP: iasl not found in PATH (install acpica-tools)\n");
		return 77;
	}
	if (!tool_in_path("acpiexec"))
		fprintf(stderr, "note: acpiexec not found, namespace evaluation not checked\n");
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/amber-acpi-iasl-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	if (getenv("AMBER_KEEP_TMP"))
		fprintf(stderr, "kept %s\n", tmpdir);
	else
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return ret;
}
