/*
 * amber inspect DIR [--json] [--verify]: what a checkpoint holds, and whether
 * it would restore here. --verify runs every check restore runs (structure,
 * device sections, CPU compatibility, disks, all memory digests) without
 * creating a VM. Exit status: 0 fine, 1 the checkpoint is bad or would not
 * restore on this host, 2 bad command line.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "amber/cli.h"
#include "amber/snapjson.h"
#include "amber/snapshot.h"
#include "amber/x86_state.h"

static const char inspect_usage[] = "usage: amber inspect DIR [--json] [--verify]\n";

/* 1536 MiB -> "1.5 GiB" */
static void human_size(char *buf, size_t len, uint64_t v)
{
	static const char *const unit[] = { "bytes", "KiB", "MiB", "GiB", "TiB" };
	double x = (double)v;
	int u = 0;

	while (x >= 1024 && u < 4) {
		x /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%" PRIu64 " bytes", v);
	else
		snprintf(buf, len, "%.1f %s", x, unit[u]);
}

static const char *str_or(const json_t *obj, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s ? s : dflt;
}

static uint64_t u64_or(const json_t *obj, const char *key)
{
	uint64_t v = 0;

	snap_json_to_u64(json_object_get(obj, key), &v);
	return v;
}

static bool json_true_at(const json_t *obj, const char *key)
{
	return json_is_true(json_object_get(obj, key));
}

static const char *const exc_name[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "", "#TS", "#NP", "#SS",
	"#GP", "#PF", "", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

/* Where the paging structures start (SDM Vol. 3A 4.5: CR3 layout by paging mode). */
static uint64_t cr3_table(uint64_t cr3, uint64_t cr4, bool long_mode)
{
	if (long_mode)
		return cr3 & 0x000ffffffffff000ULL;
	if (cr4 & (1u << 5))		/* PAE: a 32-byte aligned PDPT */
		return cr3 & 0xffffffe0ULL;
	return cr3 & 0xfffff000ULL;
}

/*
 * One line per vCPU, what a developer looks at first in a hung or crashed
 * guest: mode, RIP, the page-table root (flagged when it is not in guest RAM)
 * and the events waiting for delivery.
 */
static void print_vcpu(const json_t *v, size_t i, const struct memimg *mem)
{
	const json_t *regs = json_object_get(v, "regs"), *sregs = json_object_get(v, "sregs");
	const json_t *ev = json_object_get(v, "events"), *cs = json_object_get(sregs, "cs");
	const json_t *exc = json_object_get(ev, "exception"), *nmi = json_object_get(ev, "nmi");
	const json_t *irq = json_object_get(ev, "interrupt");
	uint64_t cr0 = u64_or(sregs, "cr0"), cr3 = u64_or(sregs, "cr3");
	uint64_t cr4 = u64_or(sregs, "cr4"), efer = u64_or(sregs, "efer");
	bool lma = efer & (1u << 10);
	const char *mode;

	if (!(cr0 & 1))
		mode = "real mode";
	else if (lma)
		mode = json_true_at(cs, "l") ? "64-bit" : "compatibility mode";
	else
		mode = json_true_at(cs, "db") ? "32-bit" : "16-bit protected mode";
	printf("  vcpu %-7zu %s, %s, rip 0x%" PRIx64, i, str_or(v, "mp_state", "?"), mode,
	       u64_or(regs, "rip"));
	if (cr0 & (1u << 31))
		printf(", cr3 0x%" PRIx64 "%s", cr3,
		       memimg_contains(mem, cr3_table(cr3, cr4, lma), 1) ? "" : " (outside guest RAM)");
	else
		printf(", paging off");
	if (json_true_at(exc, "injected") || json_true_at(exc, "pending")) {
		uint64_t nr = u64_or(exc, "nr");

		printf(", exception %" PRIu64 " %s pending", nr, nr < 32 ? exc_name[nr] : "");
		if (json_true_at(exc, "has_error_code"))
			printf(" (error code 0x%" PRIx64 ")", u64_or(exc, "error_code"));
		if (nr == 14)
			printf(" at cr2 0x%" PRIx64, u64_or(sregs, "cr2"));
	}
	if (json_true_at(irq, "injected"))
		printf(", interrupt 0x%" PRIx64 " being delivered", u64_or(irq, "nr"));
	if (json_true_at(nmi, "injected") || u64_or(nmi, "pending"))
		printf(", NMI pending");
	if (json_true_at(ev, "triple_fault_pending"))
		printf(", triple fault pending");
	putchar('\n');
}

static void print_summary(const struct snap_doc *d)
{
	const json_t *root = d->root, *host = json_object_get(root, "host");
	const json_t *vcpus = json_object_get(root, "vcpus");
	const json_t *devs = json_object_get(root, "devices");
	const json_t *disks = json_object_get(root, "disks");
	char size[32], stored[32];
	struct stat st;
	uint64_t on_disk = d->mem.stored_bytes;

	/* What the file costs now (st_blocks), not what the writer saw. */
	if (fstat(d->mem_fd, &st) == 0)
		on_disk = (uint64_t)st.st_blocks * 512;
	printf("checkpoint     %s\n", d->dir);
	printf("format         %s version %u\n", SNAP_FORMAT_NAME, d->format_version);
	printf("amber version  %s\n", str_or(root, "amber_version", "?"));
	printf("created        %s\n", str_or(root, "created", "?"));
	printf("host CPU       %s family %" PRIu64 " model %" PRIu64 " stepping %" PRIu64
	       ", TSC %" PRIu64 " kHz\n", str_or(host, "cpu_vendor", "?"), u64_or(host, "family"),
	       u64_or(host, "model"), u64_or(host, "stepping"), u64_or(host, "tsc_khz"));
	printf("vCPUs          %zu (", json_array_size(vcpus));
	for (size_t i = 0; i < json_array_size(vcpus); i++)
		printf("%s%zu: %s", i ? ", " : "", i,
		       str_or(json_array_get(vcpus, i), "mp_state", "?"));
	printf(")\n");
	for (size_t i = 0; i < json_array_size(vcpus); i++)
		print_vcpu(json_array_get(vcpus, i), i, &d->mem);
	human_size(size, sizeof(size), d->mem.size);
	human_size(stored, sizeof(stored), on_disk);
	printf("memory         %s in %d slot%s, %s stored in %s (%zu chunks of %" PRIu64
	       " KiB with digests)\n", size, d->mem.nslots, d->mem.nslots == 1 ? "" : "s", stored,
	       SNAP_MEMORY_BIN, d->mem.ndigests, d->mem.chunk_size / 1024);
	printf("devices        %zu\n", json_array_size(devs));
	for (size_t i = 0; i < json_array_size(devs); i++) {
		const json_t *e = json_array_get(devs, i);

		printf("  %-12s %s, state version %" PRIu64 "\n", str_or(e, "id", "?"),
		       str_or(e, "class", "?"), u64_or(e, "version"));
	}
	printf("disks          %zu\n", json_array_size(disks));
	for (size_t i = 0; i < json_array_size(disks); i++) {
		const json_t *e = json_array_get(disks, i);

		human_size(size, sizeof(size), u64_or(e, "size"));
		printf("  %-12s %s (%s)\n", str_or(e, "id", "?"), str_or(e, "path", "?"), size);
	}
}

static int print_json(const char *dir)
{
	char path[4096];
	json_error_t jerr;
	json_t *root;

	snprintf(path, sizeof(path), "%s/%s", dir, SNAP_VM_JSON);
	root = json_load_file(path, 0, &jerr);
	if (!root) {
		fprintf(stderr, "amber inspect: checkpoint %s: line %d column %d: %s\n", SNAP_VM_JSON,
			jerr.line, jerr.column, jerr.text);
		return 1;
	}
	json_dumpf(root, stdout, JSON_INDENT(2));
	putchar('\n');
	json_decref(root);
	return 0;
}

int cli_inspect_main(int argc, char **argv)
{
	bool as_json = false, verify = false;
	const char *dir = NULL;
	struct snap_doc *d = NULL;
	char err[1024], note[256];
	int ret, status = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			as_json = true;
		} else if (!strcmp(argv[i], "--verify")) {
			verify = true;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(inspect_usage, stdout);
			return 0;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(stderr, "amber inspect: unknown option \"%s\"\n%s", argv[i], inspect_usage);
			return 2;
		} else if (!dir) {
			dir = argv[i];
		} else {
			fprintf(stderr, "amber inspect: one checkpoint directory at a time\n%s",
				inspect_usage);
			return 2;
		}
	}
	if (!dir) {
		fputs(inspect_usage, stderr);
		return 2;
	}
	/* --json shows the document even when it would not pass the checks. */
	if (as_json && print_json(dir))
		return 1;
	ret = snap_open(dir, &d, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "amber inspect: %s\n", err);
		if (verify)
			printf("verify: FAILED: this checkpoint would not restore: %s\n", err);
		return 1;
	}
	if (!as_json)
		print_summary(d);
	if (verify) {
		FILE *out = as_json ? stderr : stdout;

		ret = snap_check_all(d, SNAP_CHECK_DIGESTS, err, sizeof(err), note, sizeof(note));
		if (ret) {
			fprintf(out, "verify: FAILED: this checkpoint would not restore on this host: "
				"%s\n", err);
			status = 1;
		} else {
			fprintf(out, "verify: OK: all checks passed, %zu memory chunks match their "
				"digests; it would restore on this host\n", d->mem.ndigests);
		}
		if (note[0])
			fprintf(out, "note: %s\n", note);
	}
	snap_close(d);
	return status;
}
