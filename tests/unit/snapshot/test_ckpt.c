/*
 * Checkpoint directories: atomic writes, --force, crash leftovers, ENOSPC,
 * and the vm.json loader refusing every kind of damage with a message that
 * names the file, field and reason. Also `amber inspect` on the result.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>

#include "amber/cli.h"
#include "amber/device.h"
#include "amber/snapjson.h"
#include "amber/snapshot.h"
#include "amber/x86_state.h"
#include "snap_fixture.h"

#define MIB (1u << 20)
#define RAM_SIZE (4 * MIB)

/* ---- a device class to restore: a UART-like register file ---------------- */

struct testdev_state {
	uint8_t lsr;
	uint8_t fifo[4];
	uint32_t added_v2;
};

static const struct state_field testdev_fields[] = {
	STATE_U8(struct testdev_state, lsr),
	STATE_ARRAY_U8(struct testdev_state, fifo),
	{ .name = "added_v2", .type = ST_U32, .offset = offsetof(struct testdev_state, added_v2),
	  .count = 1, .since = 2 },
	STATE_END,
};

static int testdev_check(const json_t *obj, uint32_t version, char *err, size_t errlen)
{
	return state_fields_check(testdev_fields, obj, version, err, errlen);
}

static int testdev_load(struct device *dev, const json_t *obj, uint32_t version)
{
	return 0;
}

static const struct device_class testdev_class = {
	.name = "testdev", .state_version = 2, .check = testdev_check, .load = testdev_load,
};
DEVICE_CLASS(testdev_class);

static const struct device_class nosave_class = { .name = "nosave", .state_version = 1 };
DEVICE_CLASS(nosave_class);

/* ---- fixture ----------------------------------------------------------------- */

struct ck {
	char base[64];		/* temp parent directory */
	char dir[96];		/* base/ck */
	uint8_t *ram;
	struct guest_mem gm;
};

static json_t *build_doc(void)
{
	struct snap_host h;
	struct x86_vcpu_state v;
	struct x86_vm_state vm;
	/*
	 * Vendor leaf only: no feature bits, so the CPU check passes on any
	 * host whether or not its /dev/kvm answers (feature comparison is
	 * tested on synthetic structs in test_x86_state.c).
	 */
	struct kvm_cpuid2 *cpuid = fixture_cpuid();
	struct testdev_state ts = { .lsr = 0x60, .fifo = { 'a', 'b' }, .added_v2 = 9 };
	json_t *doc, *vcpus = json_array(), *vmj = json_object(), *dev = json_object();

	snap_host_probe(&h);
	h.tsc_khz = 2000000;
	doc = snap_doc_new(&h);
	assert_non_null(doc);
	json_object_set_new(doc, "config", json_pack("{s:i, s:s, s:s}", "cpus", 2,
						     "memory", "4M", "kernel", "/boot/vmlinuz"));
	cpuid->nent = 1;
	json_object_set_new(doc, "cpuid", x86_cpuid_to_json(cpuid));
	for (uint32_t i = 0; i < 2; i++) {
		json_t *o = json_object();

		fixture_vcpu(&v, i);
		if (i == 1) {
			/* page tables inside the 4 MiB of RAM; a #PF as KVM reports it */
			v.sregs.cr3 = 0x3ff000;
			fixture_pending_pf(&v.events, 0x10);
			v.events.interrupt.injected = 0;
		}
		assert_int_equal(x86_vcpu_state_to_json(&v, 0, o), 0);
		json_array_append_new(vcpus, o);
		x86_vcpu_state_free(&v);
	}
	json_object_set_new(doc, "vcpus", vcpus);
	fixture_vm(&vm, 1000);
	assert_int_equal(x86_vm_state_to_json(&vm, 1000, vmj), 0);
	json_object_set_new(doc, "vm", vmj);
	state_fields_save(testdev_fields, &ts, dev);
	json_object_set_new(doc, "devices", json_pack("[{s:s, s:s, s:i, s:o}]", "id", "dev0",
						      "class", "testdev", "version", 2,
						      "state", dev));
	json_object_set_new(doc, "disks", json_array());
	free(cpuid);
	return doc;
}

static int setup(void **state)
{
	struct ck *c = calloc(1, sizeof(*c));

	snprintf(c->base, sizeof(c->base), "/tmp/amber-ckpt-XXXXXX");
	assert_non_null(mkdtemp(c->base));
	snprintf(c->dir, sizeof(c->dir), "%s/ck", c->base);
	c->ram = aligned_alloc(4096, RAM_SIZE);
	memset(c->ram, 0, RAM_SIZE);
	memcpy(c->ram + 0x1000, "guest kernel text", 17);
	memset(c->ram + 3 * MIB, 0x5a, 8192);
	gmem_init_buffer(&c->gm, c->ram, RAM_SIZE);
	*state = c;
	return 0;
}

static void rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[512];

	if (!d)
		return;
	while ((e = readdir(d))) {
		struct stat st;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			rm_tree(p);
		else
			unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

static int teardown(void **state)
{
	struct ck *c = *state;

	rm_tree(c->base);
	free(c->ram);
	free(c);
	return 0;
}

static void write_ok(struct ck *c, unsigned flags)
{
	json_t *doc = build_doc();
	char err[512] = "";

	assert_int_equal(snap_write(c->dir, doc, &c->gm, flags, err, sizeof(err)), 0);
	json_decref(doc);
}

static void write_ok_at(struct ck *c, const char *dir, unsigned flags)
{
	json_t *doc = build_doc();
	char err[512] = "";

	assert_int_equal(snap_write(dir, doc, &c->gm, flags, err, sizeof(err)), 0);
	json_decref(doc);
}

/* Entries of base other than "ck" (leftover temp or old directories). */
static int count_leftovers(struct ck *c)
{
	DIR *d = opendir(c->base);
	struct dirent *e;
	int n = 0;

	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "ck"))
			n++;
	closedir(d);
	return n;
}

/* ---- writing ------------------------------------------------------------------ */

static void test_checkpoint_is_written_and_opens_cleanly(void **state)
{
	struct ck *c = *state;
	struct snap_doc *d;
	char err[512] = "", note[256];

	write_ok(c, 0);
	assert_int_equal(count_leftovers(c), 0);
	assert_int_equal(snap_open(c->dir, &d, err, sizeof(err)), 0);
	assert_int_equal(d->ncpus, 2);
	assert_int_equal(d->format_version, 1);
	assert_true(d->mem.size == RAM_SIZE);
	assert_int_equal(snap_check_all(d, SNAP_CHECK_DIGESTS, err, sizeof(err), note,
					sizeof(note)), 0);
	snap_close(d);
}

static void test_restore_memory_reproduces_guest_ram(void **state)
{
	struct ck *c = *state;
	struct snap_doc *d;
	struct guest_mem gm;
	uint8_t *ram = aligned_alloc(4096, RAM_SIZE);
	char err[512] = "";

	write_ok(c, 0);
	memset(ram, 0, RAM_SIZE);
	gmem_init_buffer(&gm, ram, RAM_SIZE);
	assert_int_equal(snap_open(c->dir, &d, err, sizeof(err)), 0);
	assert_int_equal(snap_restore_memory(d, &gm, MEMIMG_COPY, true, err, sizeof(err)), 0);
	assert_memory_equal(ram, c->ram, RAM_SIZE);
	snap_close(d);
	free(ram);
}

static void test_existing_checkpoint_is_refused_without_force(void **state)
{
	struct ck *c = *state;
	json_t *doc = build_doc();
	char err[512] = "", expect[256];

	write_ok(c, 0);
	assert_int_equal(snap_write(c->dir, doc, &c->gm, 0, err, sizeof(err)), -EEXIST);
	snprintf(expect, sizeof(expect), "checkpoint %s: already exists (use --force to replace it)",
		 c->dir);
	assert_string_equal(err, expect);
	assert_int_equal(count_leftovers(c), 0);
	json_decref(doc);
}

static void test_force_replaces_the_checkpoint_atomically(void **state)
{
	struct ck *c = *state;
	struct snap_doc *d;
	char err[512] = "";

	write_ok(c, 0);
	memcpy(c->ram + 0x1000, "changed text", 12);
	write_ok(c, SNAP_FORCE);
	assert_int_equal(count_leftovers(c), 0);	/* the old one was removed */
	assert_int_equal(snap_open(c->dir, &d, err, sizeof(err)), 0);
	assert_int_equal(snap_check_all(d, SNAP_CHECK_DIGESTS | SNAP_CHECK_NO_HOST, err,
					sizeof(err), NULL, 0), 0);
	{
		char buf[12];

		assert_int_equal(pread(d->mem_fd, buf, 12, 0x1000), 12);
		assert_memory_equal(buf, "changed text", 12);
	}
	snap_close(d);
}

static void test_force_never_replaces_a_directory_that_is_not_a_checkpoint(void **state)
{
	struct ck *c = *state;
	json_t *doc = build_doc();
	char err[512] = "", p[160];

	assert_int_equal(mkdir(c->dir, 0755), 0);
	snprintf(p, sizeof(p), "%s/precious.txt", c->dir);
	close(open(p, O_CREAT | O_WRONLY, 0644));
	assert_int_equal(snap_write(c->dir, doc, &c->gm, SNAP_FORCE, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "exists and is not a checkpoint"));
	assert_int_equal(access(p, F_OK), 0);
	json_decref(doc);
}

static void test_crash_leftover_temp_dir_is_never_a_checkpoint(void **state)
{
	struct ck *c = *state;
	struct snap_doc *d;
	char err[512] = "", tmp[160], cmd[1024];

	write_ok(c, 0);
	/* what kill -9 in the middle of a second checkpoint leaves: a full copy even */
	snprintf(tmp, sizeof(tmp), "%s.tmp-Ab12Cd", c->dir);
	snprintf(cmd, sizeof(cmd), "cp -r %s %s", c->dir, tmp);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(snap_open(tmp, &d, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "temporary directory of a checkpoint that was never "
				    "completed"));
	/* the previous checkpoint is intact */
	assert_int_equal(snap_open(c->dir, &d, err, sizeof(err)), 0);
	assert_int_equal(snap_check_all(d, SNAP_CHECK_DIGESTS | SNAP_CHECK_NO_HOST, err,
					sizeof(err), NULL, 0), 0);
	snap_close(d);
}

/* A directory shaped like a writer's leftover: base/ck.tmp-SUFFIX, with memory.bin or not. */
static void make_temp_dir(struct ck *c, const char *suffix, bool with_memory, char *out,
			  size_t len)
{
	char p[256];

	snprintf(out, len, "%s.tmp-%s", c->dir, suffix);
	assert_int_equal(mkdir(out, 0700), 0);
	if (with_memory) {
		snprintf(p, sizeof(p), "%s/memory.bin", out);
		close(open(p, O_CREAT | O_WRONLY, 0644));
	}
}

static void test_next_checkpoint_removes_what_dead_writers_left(void **state)
{
	struct ck *c = *state;
	char dead[160], alive[160], fresh[160], old[160];
	int lock;

	write_ok(c, 0);
	/* kill -9 in the middle of a write: memory.bin there, nobody holds the lock */
	make_temp_dir(c, "Dead01", true, dead, sizeof(dead));
	/* a writer at work (another process or thread): its directory is locked */
	make_temp_dir(c, "Alive1", true, alive, sizeof(alive));
	lock = open(alive, O_RDONLY | O_DIRECTORY);
	assert_true(lock >= 0);
	assert_int_equal(flock(lock, LOCK_EX), 0);
	/* a writer between mkdtemp and flock: empty and new */
	make_temp_dir(c, "Fresh1", false, fresh, sizeof(fresh));
	/* what a crash during a fallback replace leaves: the good old checkpoint */
	snprintf(old, sizeof(old), "%s.old-Abc123", c->dir);
	assert_int_equal(mkdir(old, 0700), 0);

	write_ok(c, SNAP_FORCE);
	assert_int_equal(access(dead, F_OK), -1);
	assert_int_equal(access(alive, F_OK), 0);
	assert_int_equal(access(fresh, F_OK), 0);
	assert_int_equal(access(old, F_OK), 0);
	assert_int_equal(count_leftovers(c), 3);
	close(lock);
	rmdir(fresh);
	rmdir(old);
	write_ok(c, SNAP_FORCE);	/* the writer is gone now: its directory goes too */
	assert_int_equal(count_leftovers(c), 0);
}

static void test_target_is_checked_before_anything_is_written(void **state)
{
	struct ck *c = *state;
	char err[512] = "", p[160];
	bool exists = true;

	assert_int_equal(snap_check_target(c->dir, 0, &exists, err, sizeof(err)), 0);
	assert_false(exists);
	snprintf(p, sizeof(p), "%s/no/such/ck", c->base);
	assert_int_equal(snap_check_target(p, 0, NULL, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "cannot create it in"));
	write_ok(c, 0);
	assert_int_equal(snap_check_target(c->dir, 0, &exists, err, sizeof(err)), -EEXIST);
	assert_true(exists);
	assert_non_null(strstr(err, "already exists (use --force to replace it)"));
	assert_int_equal(snap_check_target(c->dir, SNAP_FORCE, NULL, err, sizeof(err)), 0);
	snprintf(p, sizeof(p), "%s/plain-file", c->base);
	close(open(p, O_CREAT | O_WRONLY, 0644));
	assert_int_equal(snap_check_target(p, SNAP_FORCE, NULL, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "is not a checkpoint"));
	unlink(p);
	assert_int_equal(count_leftovers(c), 0);
}

static void test_begun_checkpoint_is_not_a_checkpoint_until_commit(void **state)
{
	struct ck *c = *state;
	struct snap_pending *p;
	struct snap_doc *d;
	char err[512] = "";
	uint64_t ram = 0, stored = 0;
	json_t *doc = build_doc();

	assert_int_equal(snap_write_begin(c->dir, doc, &c->gm, 0, &p, err, sizeof(err)), 0);
	snap_pending_sizes(p, &ram, &stored);
	assert_int_equal(ram, RAM_SIZE);
	assert_true(stored > 0 && stored < RAM_SIZE);
	/* RAM may change now: the checkpoint has what it held at begin */
	memset(c->ram, 0xee, 4096);
	assert_int_equal(access(c->dir, F_OK), -1);
	assert_int_equal(count_leftovers(c), 1);	/* ck.tmp-XXXXXX */
	assert_int_equal(snap_write_commit(p, err, sizeof(err)), 0);
	assert_int_equal(count_leftovers(c), 0);
	assert_int_equal(snap_open(c->dir, &d, err, sizeof(err)), 0);
	assert_int_equal(snap_check_all(d, SNAP_CHECK_DIGESTS | SNAP_CHECK_NO_HOST, err,
					sizeof(err), NULL, 0), 0);
	snap_close(d);
	json_decref(doc);

	/* abort: nothing at all is left */
	doc = build_doc();
	assert_int_equal(snap_write_begin(c->dir, doc, &c->gm, SNAP_FORCE, &p, err, sizeof(err)), 0);
	snap_write_abort(p);
	assert_int_equal(count_leftovers(c), 0);
	assert_int_equal(snap_open(c->dir, &d, err, sizeof(err)), 0);
	snap_close(d);
	json_decref(doc);
}

static void test_trailing_slash_names_the_same_checkpoint(void **state)
{
	struct ck *c = *state;
	struct snap_doc *d;
	char slash[128], err[512] = "";

	snprintf(slash, sizeof(slash), "%s/", c->dir);
	write_ok_at(c, slash, 0);
	write_ok_at(c, slash, SNAP_FORCE);	/* the new one goes next to it, not inside */
	assert_int_equal(count_leftovers(c), 0);
	assert_int_equal(snap_open(c->dir, &d, err, sizeof(err)), 0);
	snap_close(d);
	snprintf(slash, sizeof(slash), "%s/ck", c->dir);
	assert_int_equal(access(slash, F_OK), -1);
}

static void test_disk_full_keeps_the_previous_checkpoint(void **state)
{
	struct ck *c = *state;
	struct snap_doc *d;
	char mnt[96], err[512] = "";
	json_t *doc;

	if (geteuid() != 0) {
		print_message("skipped: needs root to mount a small tmpfs\n");
		skip();
	}
	snprintf(mnt, sizeof(mnt), "%s/small", c->base);
	assert_int_equal(mkdir(mnt, 0755), 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=1m") < 0) {
		print_message("skipped: cannot mount tmpfs: %s\n", strerror(errno));
		rmdir(mnt);
		skip();
	}
	snprintf(c->dir, sizeof(c->dir), "%s/small/ck", c->base);
	write_ok(c, 0);		/* 16 KiB of data: fits */
	memset(c->ram, 0x77, 2 * MIB);	/* now 2 MiB: does not */
	doc = build_doc();
	assert_int_equal(snap_write(c->dir, doc, &c->gm, SNAP_FORCE, err, sizeof(err)), -ENOSPC);
	assert_non_null(strstr(err, "writing memory.bin: No space left on device"));
	json_decref(doc);
	{
		DIR *dd = opendir(mnt);
		struct dirent *e;
		int n = 0;

		while ((e = readdir(dd)))
			n += e->d_name[0] != '.';
		closedir(dd);
		assert_int_equal(n, 1);	/* only ck: the temp directory was removed */
	}
	assert_int_equal(snap_open(c->dir, &d, err, sizeof(err)), 0);
	assert_int_equal(snap_check_all(d, SNAP_CHECK_DIGESTS | SNAP_CHECK_NO_HOST, err,
					sizeof(err), NULL, 0), 0);
	snap_close(d);
	umount(mnt);
	rmdir(mnt);
}

/* ---- loading damaged checkpoints ------------------------------------------------ */

static void edit_vm_json(struct ck *c, void (*edit)(json_t *))
{
	char p[160];
	json_t *root;

	snprintf(p, sizeof(p), "%s/vm.json", c->dir);
	root = json_load_file(p, 0, NULL);
	assert_non_null(root);
	edit(root);
	assert_int_equal(json_dump_file(root, p, JSON_INDENT(1)), 0);
	json_decref(root);
}

static void expect_open_fails(struct ck *c, const char *msg)
{
	struct snap_doc *d = NULL;
	char err[512] = "";

	assert_true(snap_open(c->dir, &d, err, sizeof(err)) < 0);
	assert_null(d);
	assert_string_equal(err, msg);
}

static void expect_check_fails(struct ck *c, unsigned flags, const char *msg)
{
	struct snap_doc *d = NULL;
	char err[512] = "";

	assert_int_equal(snap_open(c->dir, &d, err, sizeof(err)), 0);
	assert_true(snap_check_all(d, flags, err, sizeof(err), NULL, 0) < 0);
	assert_string_equal(err, msg);
	snap_close(d);
}

static void e_newer_format(json_t *r) { json_object_set_new(r, "format_version", json_integer(2)); }
static void e_format_name(json_t *r) { json_object_set_new(r, "format", json_string("qemu")); }
static void e_rip_bool(json_t *r)
{
	json_object_set_new(json_object_get(json_array_get(json_object_get(r, "vcpus"), 1), "regs"),
			    "rip", json_false());
}
static void e_vcpus_object(json_t *r) { json_object_set_new(r, "vcpus", json_object()); }
static void e_cpu_count(json_t *r)
{
	json_object_set_new(json_object_get(r, "config"), "cpus", json_integer(3));
}
static void e_mem_size(json_t *r)
{
	json_object_set_new(json_object_get(r, "memory"), "size", json_integer(8 * MIB));
}
static void e_pit_mode(json_t *r)
{
	json_t *ch = json_array_get(json_object_get(json_object_get(json_object_get(r, "vm"), "pit"),
						    "channels"), 0);

	json_object_set_new(ch, "mode", json_integer(9));
}
static void e_dup_device(json_t *r)
{
	json_t *devs = json_object_get(r, "devices");

	json_array_append(devs, json_array_get(devs, 0));
}

static void test_damaged_documents_are_refused_with_named_fields(void **state)
{
	struct ck *c = *state;
	static const struct {
		void (*edit)(json_t *);
		const char *msg;
	} cases[] = {
		{ e_newer_format, "checkpoint vm.json: checkpoint format version 2 is newer than "
				  "this amber supports (1)" },
		{ e_format_name, "checkpoint vm.json: format: \"qemu\" is not \"amber-checkpoint\"" },
		{ e_rip_bool, "checkpoint vm.json: vcpus[1].regs.rip: expected an integer, got a "
			      "boolean" },
		{ e_vcpus_object, "checkpoint vm.json: vcpus: expected an array, got an object" },
		{ e_cpu_count, "checkpoint vm.json: vcpus: 2 vCPUs but config.cpus is 3" },
		{ e_mem_size, "checkpoint vm.json: memory: slots add up to 4194304 bytes but size "
			      "is 8388608" },
		{ e_pit_mode, "checkpoint vm.json: vm.pit.channels[0].mode = 9: expected 0 to 5, or 255 (never programmed)" },
		{ e_dup_device, "checkpoint vm.json: devices[1]: device id \"dev0\" is used twice" },
	};

	write_ok(c, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char p[160], save[160], cmd[1024];

		/* edit a copy so each case starts from the good document */
		snprintf(p, sizeof(p), "%s/vm.json", c->dir);
		snprintf(save, sizeof(save), "%s/vm.json.good", c->base);
		snprintf(cmd, sizeof(cmd), "cp %s %s", p, save);
		assert_int_equal(system(cmd), 0);
		edit_vm_json(c, cases[i].edit);
		expect_open_fails(c, cases[i].msg);
		assert_int_equal(rename(save, p), 0);
	}
}

static void test_every_top_level_field_missing_is_named(void **state)
{
	static const char *const keys[] = { "format", "format_version", "amber_version", "created",
					    "host", "config", "cpuid", "vcpus", "vm", "devices",
					    "memory", "disks" };
	struct ck *c = *state;
	char p[160], msg[160];
	json_t *good;

	write_ok(c, 0);
	snprintf(p, sizeof(p), "%s/vm.json", c->dir);
	good = json_load_file(p, 0, NULL);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		json_t *doc = json_deep_copy(good);

		json_object_del(doc, keys[i]);
		json_dump_file(doc, p, 0);
		snprintf(msg, sizeof(msg), "checkpoint vm.json: %s: missing", keys[i]);
		expect_open_fails(c, msg);
		json_decref(doc);
	}
	json_decref(good);
}

static void test_truncated_vm_json_is_a_parse_error(void **state)
{
	struct ck *c = *state;
	struct snap_doc *d = NULL;
	char p[160], err[512] = "";
	struct stat st;

	write_ok(c, 0);
	snprintf(p, sizeof(p), "%s/vm.json", c->dir);
	stat(p, &st);
	assert_int_equal(truncate(p, st.st_size / 2), 0);
	assert_int_equal(snap_open(c->dir, &d, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "checkpoint vm.json: line "));
}

static void test_truncated_memory_bin_is_refused_at_open(void **state)
{
	struct ck *c = *state;
	char p[160];

	write_ok(c, 0);
	snprintf(p, sizeof(p), "%s/memory.bin", c->dir);
	assert_int_equal(truncate(p, 2 * MIB), 0);
	expect_open_fails(c, "checkpoint memory.bin: 2097152 bytes, but vm.json memory.size is "
			  "4194304 (truncated)");
}

static void test_bit_flip_in_memory_bin_fails_verification(void **state)
{
	struct ck *c = *state;
	char p[160];
	int fd;

	write_ok(c, 0);
	snprintf(p, sizeof(p), "%s/memory.bin", c->dir);
	fd = open(p, O_WRONLY);
	assert_int_equal(pwrite(fd, "G", 1, 0x1000), 1);
	close(fd);
	{
		struct snap_doc *d;
		char err[512] = "";

		assert_int_equal(snap_open(c->dir, &d, err, sizeof(err)), 0);
		/* without digests the damage is not seen (lazy restore stays lazy) */
		assert_int_equal(snap_check_all(d, SNAP_CHECK_NO_HOST, err, sizeof(err), NULL, 0), 0);
		assert_int_equal(snap_check_all(d, SNAP_CHECK_DIGESTS, err, sizeof(err), NULL, 0),
				 -EBADMSG);
		assert_non_null(strstr(err, "checkpoint memory.bin: chunk 0 (bytes 0x0-0x1fffff) "
					    "does not match its digest"));
		snap_close(d);
	}
}

static void e_unknown_class(json_t *r)
{
	json_object_set_new(json_array_get(json_object_get(r, "devices"), 0), "class",
			    json_string("frobnicator"));
}
static void e_newer_device(json_t *r)
{
	json_object_set_new(json_array_get(json_object_get(r, "devices"), 0), "version",
			    json_integer(3));
}
static void e_device_field(json_t *r)
{
	json_object_set_new(json_object_get(json_array_get(json_object_get(r, "devices"), 0),
					    "state"), "lsr", json_integer(300));
}
static void e_nosave_device(json_t *r)
{
	json_object_set_new(json_array_get(json_object_get(r, "devices"), 0), "class",
			    json_string("nosave"));
	json_object_set_new(json_array_get(json_object_get(r, "devices"), 0), "version",
			    json_integer(1));
}
static void e_old_device_version(json_t *r)
{
	json_t *dev = json_array_get(json_object_get(r, "devices"), 0);

	json_object_set_new(dev, "version", json_integer(1));
	json_object_del(json_object_get(dev, "state"), "added_v2");
}
static void e_vendor(json_t *r)
{
	json_t *host = json_object_get(r, "host");

	json_object_set_new(host, "cpu_vendor", json_string(
		strcmp(json_string_value(json_object_get(host, "cpu_vendor")), "AuthenticAMD") ?
		"AuthenticAMD" : "GenuineIntel"));
}

static void test_device_sections_go_through_their_class(void **state)
{
	struct ck *c = *state;
	struct snap_doc *d;
	char err[512] = "";

	write_ok(c, 0);
	edit_vm_json(c, e_unknown_class);
	expect_check_fails(c, SNAP_CHECK_NO_HOST, "checkpoint vm.json: devices[0] (dev0): device "
			   "type \"frobnicator\" is not in this amber");
	edit_vm_json(c, e_nosave_device);
	expect_check_fails(c, SNAP_CHECK_NO_HOST, "checkpoint vm.json: devices[0] (dev0): device "
			   "type \"nosave\" cannot be restored");
	write_ok(c, SNAP_FORCE);
	edit_vm_json(c, e_newer_device);
	expect_check_fails(c, SNAP_CHECK_NO_HOST, "checkpoint vm.json: devices[0] (dev0): testdev "
			   "state version 3 is newer than this amber supports (this amber "
			   "supports 1 to 2)");
	write_ok(c, SNAP_FORCE);
	edit_vm_json(c, e_device_field);
	expect_check_fails(c, SNAP_CHECK_NO_HOST, "checkpoint vm.json: devices[0] (dev0): field "
			   "\"lsr\" = 300 exceeds 255");
	/* an older section without the newer field is accepted */
	write_ok(c, SNAP_FORCE);
	edit_vm_json(c, e_old_device_version);
	assert_int_equal(snap_open(c->dir, &d, err, sizeof(err)), 0);
	assert_int_equal(snap_check_all(d, SNAP_CHECK_NO_HOST, err, sizeof(err), NULL, 0), 0);
	snap_close(d);
}

static void test_other_cpu_vendor_is_refused(void **state)
{
	struct ck *c = *state;
	struct snap_doc *d;
	char err[512] = "";

	write_ok(c, 0);
	edit_vm_json(c, e_vendor);
	assert_int_equal(snap_open(c->dir, &d, err, sizeof(err)), 0);
	assert_int_equal(snap_check_all(d, 0, err, sizeof(err), NULL, 0), -ENOTSUP);
	assert_non_null(strstr(err, "checkpoint vm.json: host.cpu_vendor: the checkpoint was "
				    "taken on a "));
	/* restore elsewhere on purpose: host checks can be skipped */
	assert_int_equal(snap_check_all(d, SNAP_CHECK_NO_HOST, err, sizeof(err), NULL, 0), 0);
	snap_close(d);
}

static void test_disks_must_be_present_same_size_and_same_disk(void **state)
{
	struct ck *c = *state;
	char disk[160], other[160], msg[1024], err[1024] = "";
	json_t *doc = build_doc(), *id;
	struct snap_doc *d;
	int fd;

	snprintf(disk, sizeof(disk), "%s/disk.img", c->base);
	fd = open(disk, O_CREAT | O_RDWR, 0644);
	assert_int_equal(ftruncate(fd, 3 * MIB), 0);
	assert_int_equal(pwrite(fd, "MBR!", 4, 510), 4);
	close(fd);
	id = snap_disk_identity(disk);
	assert_non_null(id);
	json_array_append_new(json_object_get(doc, "disks"),
			      json_pack("{s:s, s:s, s:i, s:o}", "id", "disk0", "path", disk,
					"size", 3 * MIB, "identity", id));
	assert_int_equal(snap_write(c->dir, doc, &c->gm, 0, err, sizeof(err)), 0);
	json_decref(doc);
	assert_int_equal(snap_open(c->dir, &d, err, sizeof(err)), 0);
	assert_int_equal(snap_check_disks(d->root, err, sizeof(err)), 0);

	/* the same content copied elsewhere (restore on another host) is the same disk */
	snprintf(other, sizeof(other), "%s/disk2.img", c->base);
	{
		char cmd[1024];

		snprintf(cmd, sizeof(cmd), "cp %s %s && rm %s && mv %s %s", disk, other, disk,
			 other, disk);
		assert_int_equal(system(cmd), 0);
	}
	assert_int_equal(snap_check_disks(d->root, err, sizeof(err)), 0);

	/* another disk under the same name */
	fd = open(disk, O_WRONLY);
	assert_int_equal(pwrite(fd, "GPT!", 4, 512), 4);
	close(fd);
	{
		char cmd[1024];

		snprintf(cmd, sizeof(cmd), "cp %s %s && rm %s && mv %s %s", disk, other, disk,
			 other, disk);
		assert_int_equal(system(cmd), 0);
	}
	assert_int_equal(snap_check_disks(d->root, err, sizeof(err)), -EINVAL);
	snprintf(msg, sizeof(msg), "disks[0] (disk0): %s is not the disk the checkpoint was taken "
		 "with, or it was written since (another file or modification time, and its "
		 "first and last MiB differ)", disk);
	assert_string_equal(err, msg);

	assert_int_equal(truncate(disk, 2 * MIB), 0);
	assert_int_equal(snap_check_disks(d->root, err, sizeof(err)), -EINVAL);
	snprintf(msg, sizeof(msg), "disks[0] (disk0): %s is 2097152 bytes, the checkpoint recorded "
		 "3145728", disk);
	assert_string_equal(err, msg);
	unlink(disk);
	assert_int_equal(snap_check_disks(d->root, err, sizeof(err)), -ENOENT);
	snprintf(msg, sizeof(msg), "disks[0] (disk0): %s: No such file or directory", disk);
	assert_string_equal(err, msg);
	snap_close(d);
}

/* ---- mutation: thousands of damaged documents ------------------------------------ */

struct node_ref {
	json_t *parent;		/* object or array holding the node */
	const char *key;	/* object member, or NULL for an array index */
	size_t index;
};

static void collect(json_t *v, struct node_ref *refs, size_t *n, size_t max)
{
	if (json_is_object(v)) {
		const char *k;
		json_t *m;

		json_object_foreach(v, k, m) {
			if (*n < max)
				refs[(*n)++] = (struct node_ref){ v, k, 0 };
			collect(m, refs, n, max);
		}
	} else if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++) {
			if (*n < max)
				refs[(*n)++] = (struct node_ref){ v, NULL, i };
			collect(json_array_get(v, i), refs, n, max);
		}
	}
}

static json_t *random_value(unsigned *seed)
{
	switch (rand_r(seed) % 11) {
	case 0: return json_integer(-1);
	case 1: return json_integer((json_int_t)rand_r(seed) << 20);
	case 2: return json_string("18446744073709551616");
	case 3: return json_string("x");
	case 4: return json_real(1.5);
	case 5: return json_null();
	case 6: return json_true();
	case 7: return json_object();
	case 8: return json_array();
	case 9: return json_integer(0);
	default: return json_integer(rand_r(seed) % 300);
	}
}

/* One structural change at a random place: new value, deletion or duplication. */
static void mutate(json_t *root, unsigned *seed)
{
	static struct node_ref refs[8192];
	size_t n = 0;
	struct node_ref *r;

	collect(root, refs, &n, 8192);
	if (!n)
		return;
	r = &refs[(size_t)rand_r(seed) % n];
	switch (rand_r(seed) % 4) {
	case 0:
		if (r->key)
			json_object_del(r->parent, r->key);
		else
			json_array_remove(r->parent, r->index);
		break;
	case 1:
		if (!r->key)
			json_array_append(r->parent, json_array_get(r->parent, r->index));
		break;
	default:
		if (r->key)
			json_object_set_new(r->parent, r->key, random_value(seed));
		else
			json_array_set_new(r->parent, r->index, random_value(seed));
		break;
	}
}

/* After every check passed, decoding for load must succeed: no partial restore. */
static void load_must_succeed(const struct snap_doc *d)
{
	const json_t *vcpus = json_object_get(d->root, "vcpus");
	char err[512] = "";

	for (size_t i = 0; i < json_array_size(vcpus); i++) {
		struct x86_vcpu_state v;

		assert_int_equal(x86_vcpu_state_from_json(json_array_get(vcpus, i), 0, &v, err,
							  sizeof(err)), 0);
		x86_vcpu_state_free(&v);
	}
	{
		struct x86_vm_state vm;

		assert_int_equal(x86_vm_state_from_json(json_object_get(d->root, "vm"), 0, false, 0,
							&vm), 0);
	}
}

static void test_thousands_of_mutated_documents_never_crash_or_half_load(void **state)
{
	struct ck *c = *state;
	unsigned seed = 12345, refused = 0, accepted = 0;
	char p[160];
	json_t *good;

	write_ok(c, 0);
	snprintf(p, sizeof(p), "%s/vm.json", c->dir);
	good = json_load_file(p, 0, NULL);
	assert_non_null(good);
	for (int i = 0; i < 3000; i++) {
		json_t *doc = json_deep_copy(good);
		struct snap_doc *d = NULL;
		char err[512] = "";
		int k = 1 + rand_r(&seed) % 3;

		while (k--)
			mutate(doc, &seed);
		/* a new file each time: ext4 flushes files truncated and rewritten */
		unlink(p);
		assert_int_equal(json_dump_file(doc, p, 0), 0);
		json_decref(doc);
		if (snap_open(c->dir, &d, err, sizeof(err)) == 0 &&
		    snap_check_all(d, SNAP_CHECK_NO_HOST | SNAP_CHECK_DIGESTS, err, sizeof(err),
				   NULL, 0) == 0) {
			load_must_succeed(d);
			accepted++;
		} else {
			/* every refusal says where */
			assert_true(strncmp(err, "checkpoint ", 11) == 0);
			refused++;
		}
		snap_close(d);
	}
	/* byte-level damage of the text as well */
	{
		char *text = json_dumps(good, 0);
		size_t len = strlen(text);

		for (int i = 0; i < 1000; i++) {
			char *t = strdup(text);
			struct snap_doc *d = NULL;
			char err[512] = "";
			FILE *fp;

			for (int k = 0; k < 4; k++)
				t[(size_t)rand_r(&seed) % len] = (char)(rand_r(&seed) % 256);
			unlink(p);
			fp = fopen(p, "w");
			fwrite(t, 1, (size_t)rand_r(&seed) % (len + 1), fp);	/* and truncated */
			fclose(fp);
			if (snap_open(c->dir, &d, err, sizeof(err)) == 0 &&
			    snap_check_all(d, SNAP_CHECK_NO_HOST, err, sizeof(err), NULL, 0) == 0) {
				load_must_succeed(d);
				accepted++;
			} else {
				refused++;
			}
			snap_close(d);
			free(t);
		}
		free(text);
	}
	print_message("mutations: %u refused, %u accepted and loaded\n", refused, accepted);
	assert_true(refused > 2000);
	json_decref(good);
}

/* ---- amber inspect ------------------------------------------------------------------ */

/* Run cli_inspect_main with stdout captured into out. */
static int run_inspect(struct ck *c, const char *opt1, const char *opt2, char *out, size_t len)
{
	char *argv[5] = { "inspect", c->dir, (char *)opt1, (char *)opt2, NULL };
	int argc = 2 + !!opt1 + !!opt2, saved, fd, ret;
	char path[160];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/inspect.out", c->base);
	fflush(stdout);
	saved = dup(1);
	fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0644);
	dup2(fd, 1);
	ret = cli_inspect_main(argc, argv);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	n = pread(fd, out, len - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
	return ret;
}

static void test_inspect_summarizes_the_checkpoint(void **state)
{
	struct ck *c = *state;
	static char out[16384];

	write_ok(c, 0);
	assert_int_equal(run_inspect(c, NULL, NULL, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "format         amber-checkpoint version 1\n"));
	assert_non_null(strstr(out, "amber version  " AMBER_VERSION "\n"));
	assert_non_null(strstr(out, "vCPUs          2 (0: runnable, 1: halted)\n"));
	assert_non_null(strstr(out, "  vcpu 0       runnable, 64-bit, rip 0xffffffff81e3a1b2, "
			       "cr3 0x2a0e000 (outside guest RAM), interrupt 0xec being "
			       "delivered\n"));
	assert_non_null(strstr(out, "  vcpu 1       halted, 64-bit, rip 0xffffffff81e3a1b2, "
			       "cr3 0x3ff000, exception 14 #PF pending (error code 0x10) at cr2 "
			       "0x7f0000001000, NMI pending\n"));
	assert_non_null(strstr(out, "memory         4.0 MiB in 1 slot, "));
	assert_non_null(strstr(out, "  dev0         testdev, state version 2\n"));
	assert_non_null(strstr(out, "TSC 2000000 kHz"));
	assert_null(strstr(out, "verify"));
}

static void test_inspect_verify_says_whether_it_would_restore(void **state)
{
	struct ck *c = *state;
	static char out[16384];
	char p[160];
	int fd;

	write_ok(c, 0);
	assert_int_equal(run_inspect(c, "--verify", NULL, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "verify: OK: all checks passed, 2 memory chunks match their "
				    "digests; it would restore on this host\n"));
	snprintf(p, sizeof(p), "%s/memory.bin", c->dir);
	fd = open(p, O_WRONLY);
	assert_int_equal(pwrite(fd, "x", 1, 3 * MIB + 5), 1);
	close(fd);
	assert_int_equal(run_inspect(c, "--verify", NULL, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "verify: FAILED: this checkpoint would not restore on this host: "
				    "checkpoint memory.bin: chunk 1 (bytes 0x200000-0x3fffff)"));
}

static void test_inspect_json_prints_vm_json(void **state)
{
	struct ck *c = *state;
	static char out[1 << 20];
	json_t *printed, *file;
	char p[160];

	write_ok(c, 0);
	assert_int_equal(run_inspect(c, "--json", NULL, out, sizeof(out)), 0);
	printed = json_loads(out, 0, NULL);
	assert_non_null(printed);
	snprintf(p, sizeof(p), "%s/vm.json", c->dir);
	file = json_load_file(p, 0, NULL);
	assert_true(json_equal(printed, file));
	json_decref(printed);
	json_decref(file);
}

static void test_inspect_bad_usage_exits_2(void **state)
{
	char *argv[] = { "inspect", "--frobnicate", NULL };

	assert_int_equal(cli_inspect_main(2, argv), 2);
	assert_int_equal(cli_inspect_main(1, argv), 2);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_checkpoint_is_written_and_opens_cleanly),
		T(test_restore_memory_reproduces_guest_ram),
		T(test_existing_checkpoint_is_refused_without_force),
		T(test_force_replaces_the_checkpoint_atomically),
		T(test_force_never_replaces_a_directory_that_is_not_a_checkpoint),
		T(test_crash_leftover_temp_dir_is_never_a_checkpoint),
		T(test_next_checkpoint_removes_what_dead_writers_left),
		T(test_target_is_checked_before_anything_is_written),
		T(test_begun_checkpoint_is_not_a_checkpoint_until_commit),
		T(test_trailing_slash_names_the_same_checkpoint),
		T(test_disk_full_keeps_the_previous_checkpoint),
		T(test_damaged_documents_are_refused_with_named_fields),
		T(test_every_top_level_field_missing_is_named),
		T(test_truncated_vm_json_is_a_parse_error),
		T(test_truncated_memory_bin_is_refused_at_open),
		T(test_bit_flip_in_memory_bin_fails_verification),
		T(test_device_sections_go_through_their_class),
		T(test_other_cpu_vendor_is_refused),
		T(test_disks_must_be_present_same_size_and_same_disk),
		T(test_thousands_of_mutated_documents_never_crash_or_half_load),
		T(test_inspect_summarizes_the_checkpoint),
		T(test_inspect_verify_says_whether_it_would_restore),
		T(test_inspect_json_prints_vm_json),
		T(test_inspect_bad_usage_exits_2),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
