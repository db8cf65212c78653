/*
 * The checkpoint directory: atomic writing, opening and validation of
 * vm.json (see include/amber/snapshot.h for the contract).
 *
 * Crash safety: nothing is ever written under DIR's own name. Files go to a
 * fresh DIR.tmp-XXXXXX (same parent, so rename is atomic), memory.bin first
 * and vm.json last, each fsync'd, then the directory itself, then one
 * rename(2) (or renameat2(RENAME_EXCHANGE) with --force) makes it DIR and
 * the parent is fsync'd. kill -9 or ENOSPC at any point leaves DIR as it
 * was; a leftover DIR.tmp-* never counts as a checkpoint (snap_open refuses
 * such names).
 */
#include <cpuid.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>
#include <xxhash.h>

#include "amber/device.h"
#include "amber/log.h"
#include "amber/snapjson.h"
#include "amber/snapshot.h"
#include "amber/x86_state.h"

#ifndef AMBER_VERSION
#define AMBER_VERSION "unknown"
#endif

#define VMJSON_MAX_SIZE (256u << 20)	/* far above any real vm.json */
#define SNAP_MAX_VCPUS 1024

/* ---- document ------------------------------------------------------------- */

void snap_host_probe(struct snap_host *h)
{
	unsigned a = 0, b = 0, c = 0, d = 0;

	memset(h, 0, sizeof(*h));
	__get_cpuid(0, &a, &b, &c, &d);
	memcpy(h->cpu_vendor, &b, 4);
	memcpy(h->cpu_vendor + 4, &d, 4);
	memcpy(h->cpu_vendor + 8, &c, 4);
	__get_cpuid(1, &a, &b, &c, &d);
	/* SDM Vol. 2A CPUID.1.EAX: display family/model */
	h->family = (a >> 8) & 0xf;
	h->model = (a >> 4) & 0xf;
	if (h->family == 0xf)
		h->family += (a >> 20) & 0xff;
	if (h->family >= 6)
		h->model |= ((a >> 16) & 0xf) << 4;
	h->stepping = a & 0xf;
}

json_t *snap_doc_new(const struct snap_host *h)
{
	char created[32];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_pack("{s:s, s:i, s:s, s:s, s:{s:s, s:i, s:i, s:i, s:i}}",
			 "format", SNAP_FORMAT_NAME, "format_version", SNAP_FORMAT_VERSION,
			 "amber_version", AMBER_VERSION, "created", created,
			 "host", "cpu_vendor", h->cpu_vendor, "family", (int)h->family,
			 "model", (int)h->model, "stepping", (int)h->stepping,
			 "tsc_khz", (int)h->tsc_khz);
}

/* ---- writing ----------------------------------------------------------------- */

static int fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* dir + "/" + name; paths too long to join are refused, not truncated. */
static int path_join(char *buf, size_t len, const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);

	if (a + 1 + b + 1 > len)
		return -ENAMETOOLONG;
	memcpy(buf, dir, a);
	buf[a] = '/';
	memcpy(buf + a + 1, name, b + 1);
	return 0;
}

/* "a/b/ck" -> parent "a/b"; "ck" -> "." */
static void parent_of(const char *path, char *buf, size_t len)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(buf, len, ".");
	else if (slash == path)
		snprintf(buf, len, "/");
	else
		snprintf(buf, len, "%.*s", (int)(slash - path), path);
}

/* "ck/" is "ck": the temporary directory goes next to it, never inside. */
static void strip_trailing_slashes(char *path)
{
	for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--)
		path[n - 1] = '\0';
}

/* Remove a checkpoint-shaped directory: its two files, then itself. */
static void remove_ckpt_dir(const char *dir)
{
	char p[PATH_MAX];

	path_join(p, sizeof(p), dir, SNAP_VM_JSON);
	unlink(p);
	path_join(p, sizeof(p), dir, SNAP_MEMORY_BIN);
	unlink(p);
	if (rmdir(dir) < 0 && errno != ENOENT)
		log_warn("snapshot", "could not remove %s: %s", dir, strerror(errno));
}

static int write_file_synced(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	int ret = 0;

	if (fd < 0)
		return -errno;
	while (len) {
		ssize_t w = write(fd, data, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			ret = w < 0 ? -errno : -ENOSPC;
			goto out;
		}
		data += w;
		len -= (size_t)w;
	}
	if (fsync(fd) < 0)
		ret = -errno;
out:
	if (close(fd) < 0 && !ret)
		ret = -errno;	/* NFS-like file systems report write errors here */
	return ret;
}

/*
 * Leftovers of writers that died (kill -9, power loss): DIR.tmp-XXXXXX next
 * to DIR. A live writer holds flock(LOCK_EX) on its temporary directory from
 * before it creates memory.bin until it is done, so one with memory.bin in
 * it that can be locked has no writer any more and goes (it would otherwise
 * keep its disk space for ever, and the next checkpoint may need it). One
 * without memory.bin may be a writer between mkdtemp and flock: it goes only
 * when older than a minute (it holds no data anyway). Never DIR.old-*: after
 * a crash in the middle of a fallback replace that is the good checkpoint.
 */
static void remove_stale_temps(const char *dir)
{
	char parent[PATH_MAX], path[PATH_MAX];
	const char *base = strrchr(dir, '/');
	size_t blen, ilen = strlen(SNAP_TMP_INFIX);
	struct dirent *e;
	DIR *d;

	base = base ? base + 1 : dir;
	blen = strlen(base);
	parent_of(dir, parent, sizeof(parent));
	d = opendir(parent);
	if (!d)
		return;
	while ((e = readdir(d))) {
		struct stat st;
		bool has_mem;
		int fd;

		if (strlen(e->d_name) != blen + ilen + 6 || memcmp(e->d_name, base, blen) != 0 ||
		    memcmp(e->d_name + blen, SNAP_TMP_INFIX, ilen) != 0)
			continue;
		if (path_join(path, sizeof(path), parent, e->d_name))
			continue;
		fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &st) == 0) {
			has_mem = faccessat(fd, SNAP_MEMORY_BIN, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
			if (has_mem || time(NULL) - st.st_mtime > 60) {
				log_info("snapshot", "removing %s, left by a checkpoint that was "
					 "interrupted", path);
				remove_ckpt_dir(path);
			}
		}
		close(fd);	/* drops the lock */
	}
	closedir(d);
}

struct snap_pending {
	char dir[PATH_MAX];
	char tmp[PATH_MAX + 16];
	bool exists;
	int lock_fd;		/* the temporary directory, flock'd: a writer is alive */
	int mem_fd;		/* memory.bin, written, not yet fsync'd */
	char *text;		/* vm.json */
	struct memimg mi;
};

void snap_write_abort(struct snap_pending *p)
{
	if (!p)
		return;
	if (p->mem_fd >= 0)
		close(p->mem_fd);
	if (p->tmp[0])
		remove_ckpt_dir(p->tmp);
	if (p->lock_fd >= 0)
		close(p->lock_fd);
	free(p->text);
	memimg_free(&p->mi);
	free(p);
}

void snap_pending_sizes(const struct snap_pending *p, uint64_t *ram_bytes,
			uint64_t *stored_bytes)
{
	if (ram_bytes)
		*ram_bytes = p->mi.size;
	if (stored_bytes)
		*stored_bytes = p->mi.stored_bytes;
}

int snap_check_target(const char *dir, unsigned flags, bool *exists, char *err, size_t errlen)
{
	char path[PATH_MAX], parent[PATH_MAX], self[PATH_MAX];
	struct stat st;
	bool there;
	int e = 0;

	/* Every path used is dir plus a short suffix: check the length once. */
	if (strlen(dir) + 32 >= PATH_MAX) {
		snprintf(err, errlen, "checkpoint %.64s...: path too long", dir);
		return -ENAMETOOLONG;
	}
	snprintf(self, sizeof(self), "%s", dir);
	strip_trailing_slashes(self);
	dir = self;
	there = lstat(dir, &st) == 0;
	if (exists)
		*exists = there;
	if (there && !(flags & SNAP_FORCE)) {
		snprintf(err, errlen, "checkpoint %s: already exists (use --force to replace it)", dir);
		return -EEXIST;
	}
	if (there) {
		/* --force replaces checkpoints, never an unrelated directory. */
		path_join(path, sizeof(path), dir, SNAP_VM_JSON);
		if (!S_ISDIR(st.st_mode) || access(path, F_OK) < 0) {
			snprintf(err, errlen, "checkpoint %s: exists and is not a checkpoint; "
				 "refusing to replace it", dir);
			return -EEXIST;
		}
	}
	parent_of(dir, parent, sizeof(parent));
	if (stat(parent, &st) < 0)
		e = errno;
	else if (!S_ISDIR(st.st_mode))
		e = ENOTDIR;
	else if (access(parent, W_OK | X_OK) < 0)
		e = errno;
	if (e) {
		snprintf(err, errlen, "checkpoint %s: cannot create it in %s: %s", dir, parent,
			 strerror(e));
		return -e;
	}
	return 0;
}

int snap_write_begin(const char *dir, json_t *doc, const struct guest_mem *gm, unsigned flags,
		     struct snap_pending **out, char *err, size_t errlen)
{
	struct snap_pending *p;
	char path[PATH_MAX];
	json_t *mem;
	int ret;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->lock_fd = p->mem_fd = -1;
	ret = snap_check_target(dir, flags, &p->exists, err, errlen);
	if (ret)
		goto fail;
	snprintf(p->dir, sizeof(p->dir), "%s", dir);
	strip_trailing_slashes(p->dir);
	dir = p->dir;
	remove_stale_temps(dir);
	snprintf(p->tmp, sizeof(p->tmp), "%s" SNAP_TMP_INFIX "XXXXXX", dir);
	if (!mkdtemp(p->tmp)) {
		ret = -errno;
		p->tmp[0] = '\0';
		snprintf(err, errlen, "checkpoint %s: creating a temporary directory: %s", dir,
			 strerror(-ret));
		goto fail;
	}
	/* Best effort: a file system without flock only loses the stale-temp cleanup. */
	p->lock_fd = open(p->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p->lock_fd >= 0)
		flock(p->lock_fd, LOCK_EX | LOCK_NB);

	path_join(path, sizeof(path), p->tmp, SNAP_MEMORY_BIN);
	p->mem_fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (p->mem_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "checkpoint %s: creating %s: %s", dir, SNAP_MEMORY_BIN,
			 strerror(-ret));
		goto fail;
	}
	ret = memimg_write(p->mem_fd, gm, &p->mi);
	if (ret) {
		snprintf(err, errlen, "checkpoint %s: writing %s: %s", dir, SNAP_MEMORY_BIN,
			 strerror(-ret));
		goto fail;
	}
	mem = memimg_to_json(&p->mi);
	if (!mem || json_object_set_new(doc, "memory", mem) < 0) {
		ret = -ENOMEM;
		snprintf(err, errlen, "checkpoint %s: out of memory", dir);
		goto fail;
	}
	p->text = json_dumps(doc, JSON_INDENT(1) | JSON_ENSURE_ASCII);
	if (!p->text) {
		ret = -ENOMEM;
		snprintf(err, errlen, "checkpoint %s: cannot encode vm.json", dir);
		goto fail;
	}
	*out = p;
	return 0;
fail:
	snap_write_abort(p);
	return ret;
}

int snap_write_commit(struct snap_pending *p, char *err, size_t errlen)
{
	char path[PATH_MAX], parent[PATH_MAX];
	const char *dir = p->dir;
	bool swapped = false;
	int ret = 0;

	if (fsync(p->mem_fd) < 0)
		ret = -errno;
	if (close(p->mem_fd) < 0 && !ret)
		ret = -errno;	/* NFS-like file systems report write errors here */
	p->mem_fd = -1;
	if (ret) {
		snprintf(err, errlen, "checkpoint %s: writing %s: %s", dir, SNAP_MEMORY_BIN,
			 strerror(-ret));
		goto fail;
	}
	path_join(path, sizeof(path), p->tmp, SNAP_VM_JSON);
	ret = write_file_synced(path, p->text, strlen(p->text));
	if (!ret)
		ret = fsync_path(p->tmp);
	if (ret) {
		snprintf(err, errlen, "checkpoint %s: writing %s: %s", dir, SNAP_VM_JSON,
			 strerror(-ret));
		goto fail;
	}

	if (!p->exists) {
		/* Fails with EEXIST/ENOTEMPTY if DIR appeared meanwhile: never clobber. */
		if (renameat2(AT_FDCWD, p->tmp, AT_FDCWD, dir, RENAME_NOREPLACE) < 0) {
			ret = -errno;
			snprintf(err, errlen, "checkpoint %s: %s", dir, strerror(-ret));
			goto fail;
		}
	} else if (renameat2(AT_FDCWD, p->tmp, AT_FDCWD, dir, RENAME_EXCHANGE) == 0) {
		/* Atomic: DIR was the old checkpoint, then the new one, never absent. */
		swapped = true;
	} else {
		/*
		 * No RENAME_EXCHANGE (some FUSE servers): move the old one
		 * aside, then the new one in. A crash between the two leaves
		 * the old checkpoint complete under DIR.old-XXXXXX.
		 */
		char old[sizeof(p->dir) + 16];

		snprintf(old, sizeof(old), "%s" SNAP_OLD_INFIX "XXXXXX", dir);
		if (!mkdtemp(old) || rename(dir, old) < 0) {
			ret = -errno;
			snprintf(err, errlen, "checkpoint %s: moving the old checkpoint aside: %s",
				 dir, strerror(-ret));
			rmdir(old);
			goto fail;
		}
		if (rename(p->tmp, dir) < 0) {
			ret = -errno;
			snprintf(err, errlen, "checkpoint %s: %s", dir, strerror(-ret));
			rename(old, dir);	/* put the old one back */
			goto fail;
		}
		snprintf(p->tmp, sizeof(p->tmp), "%s", old);
		swapped = true;
	}
	parent_of(dir, parent, sizeof(parent));
	ret = fsync_path(parent);
	if (ret)
		log_warn("snapshot", "fsync of %s: %s", parent, strerror(-ret));
	if (!swapped)
		p->tmp[0] = '\0';	/* it is DIR now: nothing to remove */
	snap_write_abort(p);	/* removes the replaced checkpoint, frees */
	return 0;
fail:
	snap_write_abort(p);
	return ret;
}

int snap_write(const char *dir, json_t *doc, const struct guest_mem *gm, unsigned flags,
	       char *err, size_t errlen)
{
	struct snap_pending *p;
	int ret = snap_write_begin(dir, doc, gm, flags, &p, err, errlen);

	return ret ? ret : snap_write_commit(p, err, errlen);
}

/* ---- disks ----------------------------------------------------------------------- */

/* XXH3-64 of len bytes at off (short files: what there is). */
static int digest_range(int fd, uint64_t off, size_t len, uint64_t *out)
{
	uint8_t *buf = malloc(len ? len : 1);
	size_t got = 0;

	if (!buf)
		return -ENOMEM;
	while (got < len) {
		ssize_t r = pread(fd, buf + got, len - got, (off_t)(off + got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = -errno;

			free(buf);
			return e;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	*out = XXH3_64bits(buf, got);
	free(buf);
	return 0;
}

static int disk_facts(const char *path, struct stat *st, uint64_t *size, uint64_t *head,
		      uint64_t *tail)
{
	const size_t mib = 1u << 20;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		ret = -errno;
		goto out;
	}
	*size = (uint64_t)st->st_size;
	if (S_ISBLK(st->st_mode) && ioctl(fd, BLKGETSIZE64, size) < 0) {
		ret = -errno;
		goto out;
	}
	ret = digest_range(fd, 0, *size < mib ? (size_t)*size : mib, head);
	if (!ret)
		ret = digest_range(fd, *size < mib ? 0 : *size - mib, *size < mib ? (size_t)*size : mib,
				   tail);
out:
	close(fd);
	return ret;
}

static uint64_t mtime_ns(const struct stat *st)
{
	return (uint64_t)st->st_mtim.tv_sec * 1000000000ULL + (uint64_t)st->st_mtim.tv_nsec;
}

static void hex64(char out[17], uint64_t v)
{
	snprintf(out, 17, "%016" PRIx64, v);
}

json_t *snap_disk_identity(const char *path)
{
	struct stat st;
	uint64_t size, head, tail;
	char h[17], t[17];
	int ret = disk_facts(path, &st, &size, &head, &tail);

	if (ret) {
		errno = -ret;
		return NULL;
	}
	hex64(h, head);
	hex64(t, tail);
	return json_pack("{s:o, s:o, s:o, s:o, s:s, s:s}",
			 "dev", snap_json_u64(st.st_dev), "ino", snap_json_u64(st.st_ino),
			 "size", snap_json_u64(size),
			 "mtime_ns", snap_json_u64(mtime_ns(&st)),
			 "head_digest", h, "tail_digest", t);
}

/* ---- opening and checking ----------------------------------------------------------- */

static int check_disks_shape(const json_t *disks, char *err, size_t errlen)
{
	char p[64], ip[80];
	int ret;

	for (size_t i = 0; i < json_array_size(disks); i++) {
		const json_t *d = json_array_get(disks, i), *id;
		const char *s;

		snprintf(p, sizeof(p), "disks[%zu]", i);
		if ((ret = snap_get_string(d, p, "id", &s, err, errlen)) ||
		    (ret = snap_get_string(d, p, "path", &s, err, errlen)) ||
		    (ret = snap_get_u64(d, p, "size", UINT64_MAX, NULL, err, errlen)) ||
		    (ret = snap_get_object(d, p, "identity", &id, err, errlen)))
			return ret;
		snprintf(ip, sizeof(ip), "%s.identity", p);
		if ((ret = snap_get_u64(id, ip, "dev", UINT64_MAX, NULL, err, errlen)) ||
		    (ret = snap_get_u64(id, ip, "ino", UINT64_MAX, NULL, err, errlen)) ||
		    (ret = snap_get_u64(id, ip, "size", UINT64_MAX, NULL, err, errlen)) ||
		    (ret = snap_get_u64(id, ip, "mtime_ns", UINT64_MAX, NULL, err, errlen)) ||
		    (ret = snap_get_string(id, ip, "head_digest", &s, err, errlen)) ||
		    (ret = snap_get_string(id, ip, "tail_digest", &s, err, errlen)))
			return ret;
	}
	return 0;
}

static int check_devices_shape(const json_t *devs, char *err, size_t errlen)
{
	char p[64];
	int ret;

	for (size_t i = 0; i < json_array_size(devs); i++) {
		const json_t *d = json_array_get(devs, i);
		const char *id, *cls;

		snprintf(p, sizeof(p), "devices[%zu]", i);
		if ((ret = snap_get_string(d, p, "id", &id, err, errlen)) ||
		    (ret = snap_get_string(d, p, "class", &cls, err, errlen)) ||
		    (ret = snap_get_u32(d, p, "version", UINT32_MAX, NULL, err, errlen)) ||
		    (ret = snap_get_object(d, p, "state", NULL, err, errlen)))
			return ret;
		for (size_t j = 0; j < i; j++)
			if (strcmp(json_string_value(json_object_get(json_array_get(devs, j), "id")),
				   id) == 0) {
				snprintf(err, errlen, "%s: device id \"%s\" is used twice", p, id);
				return -EINVAL;
			}
	}
	return 0;
}

/* Everything in vm.json that needs no host facts. Messages without a prefix. */
static bool mem_has(const void *opaque, uint64_t gpa, uint64_t len)
{
	return memimg_contains(opaque, gpa, len);
}

/* MSR values against the guest's CPUID and RAM: needs both, so after the rest is checked. */
static int check_msr_values(const json_t *cpuid, const json_t *vcpus, const struct memimg *mem,
			    char *err, size_t errlen)
{
	struct kvm_cpuid2 *c = x86_cpuid_from_json(cpuid);
	char p[32];
	int ret = 0;

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < json_array_size(vcpus) && !ret; i++) {
		snprintf(p, sizeof(p), "vcpus[%zu]", i);
		ret = x86_vcpu_check_values(json_array_get(vcpus, i), c, mem_has, mem, p, err,
					    errlen);
	}
	free(c);
	return ret;
}

static int check_document(const json_t *root, struct snap_doc *d, char *err, size_t errlen)
{
	const json_t *host, *cfg, *cpuid, *vcpus, *vm, *devs, *mem, *disks, *v;
	const char *s;
	char p[64];
	uint64_t ver, ncfg;
	int ret;

	if (!json_is_object(root)) {
		snprintf(err, errlen, "expected an object at the top, got %s", snap_json_kind(root));
		return -EINVAL;
	}
	if ((ret = snap_get_string(root, NULL, "format", &s, err, errlen)))
		return ret;
	if (strcmp(s, SNAP_FORMAT_NAME) != 0) {
		snprintf(err, errlen, "format: \"%.64s\" is not \"%s\"", s, SNAP_FORMAT_NAME);
		return -EINVAL;
	}
	if ((ret = snap_get_u64(root, NULL, "format_version", UINT32_MAX, &ver, err, errlen)))
		return ret;
	if (ver > SNAP_FORMAT_VERSION) {
		snprintf(err, errlen, "checkpoint format version %" PRIu64 " is newer than this amber "
			 "supports (%d)", ver, SNAP_FORMAT_VERSION);
		return -ENOTSUP;
	}
	if (ver < 1) {
		snprintf(err, errlen, "format_version = 0 is not a valid version");
		return -EINVAL;
	}
	d->format_version = (uint32_t)ver;
	if ((ret = snap_get_string(root, NULL, "amber_version", NULL, err, errlen)) ||
	    (ret = snap_get_string(root, NULL, "created", NULL, err, errlen)) ||
	    (ret = snap_get_object(root, NULL, "host", &host, err, errlen)) ||
	    (ret = snap_get_string(host, "host", "cpu_vendor", NULL, err, errlen)) ||
	    (ret = snap_get_u32(host, "host", "family", UINT32_MAX, NULL, err, errlen)) ||
	    (ret = snap_get_u32(host, "host", "model", UINT32_MAX, NULL, err, errlen)) ||
	    (ret = snap_get_u32(host, "host", "stepping", UINT32_MAX, NULL, err, errlen)) ||
	    (ret = snap_get_u32(host, "host", "tsc_khz", UINT32_MAX, NULL, err, errlen)) ||
	    (ret = snap_get_object(root, NULL, "config", &cfg, err, errlen)) ||
	    (ret = snap_get_array(root, NULL, "cpuid", &cpuid, err, errlen)) ||
	    (ret = x86_cpuid_check(cpuid, "cpuid", err, errlen)) ||
	    (ret = snap_get_array(root, NULL, "vcpus", &vcpus, err, errlen)))
		return ret;
	if (json_array_size(vcpus) < 1 || json_array_size(vcpus) > SNAP_MAX_VCPUS) {
		snprintf(err, errlen, "vcpus: %zu vCPUs, expected 1 to %d", json_array_size(vcpus),
			 SNAP_MAX_VCPUS);
		return -EINVAL;
	}
	/* The configuration's CPU count, when it states one, must agree. */
	v = json_object_get(cfg, "cpus");
	if (v && !snap_json_to_u64(v, &ncfg) && ncfg != json_array_size(vcpus)) {
		snprintf(err, errlen, "vcpus: %zu vCPUs but config.cpus is %" PRIu64,
			 json_array_size(vcpus), ncfg);
		return -EINVAL;
	}
	d->ncpus = (int)json_array_size(vcpus);
	for (size_t i = 0; i < json_array_size(vcpus); i++) {
		uint64_t id;

		snprintf(p, sizeof(p), "vcpus[%zu]", i);
		if ((ret = x86_vcpu_state_check(json_array_get(vcpus, i), p, err, errlen)))
			return ret;
		snap_json_to_u64(json_object_get(json_array_get(vcpus, i), "id"), &id);
		if (id != i) {
			snprintf(err, errlen, "%s.id = %" PRIu64 ", expected %zu", p, id, i);
			return -EINVAL;
		}
	}
	if ((ret = snap_get_object(root, NULL, "vm", &vm, err, errlen)) ||
	    (ret = x86_vm_state_check(vm, "vm", err, errlen)) ||
	    (ret = snap_get_array(root, NULL, "devices", &devs, err, errlen)) ||
	    (ret = check_devices_shape(devs, err, errlen)) ||
	    (ret = snap_get_object(root, NULL, "memory", &mem, err, errlen)) ||
	    (ret = memimg_from_json(mem, "memory", &d->mem, err, errlen)) ||
	    (ret = snap_get_array(root, NULL, "disks", &disks, err, errlen)) ||
	    (ret = check_disks_shape(disks, err, errlen)))
		return ret;
	return check_msr_values(cpuid, vcpus, &d->mem, err, errlen);
}

int snap_check_document(const json_t *root, char *err, size_t errlen)
{
	struct snap_doc d = { .mem_fd = -1 };
	int ret = check_document(root, &d, err, errlen);

	memimg_free(&d.mem);
	return ret;
}

/* "x/ck.tmp-AbC123": the name of an interrupted write, never a checkpoint. */
static bool is_temp_name(const char *dir)
{
	size_t n = strlen(dir), infix = strlen(SNAP_TMP_INFIX);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	/* mkdtemp's XXXXXX: six characters after the infix, at the end */
	return n >= infix + 6 + 1 && memcmp(dir + n - 6 - infix, SNAP_TMP_INFIX, infix) == 0 &&
	       !memchr(dir + n - 6, '/', 6);
}

static int read_vm_json(const char *dir, json_t **out, char *err, size_t errlen)
{
	char path[PATH_MAX];
	json_error_t jerr;
	struct stat st;
	int fd;

	path_join(path, sizeof(path), dir, SNAP_VM_JSON);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "checkpoint %s: %s: %s", dir, SNAP_VM_JSON, strerror(e));
		return -e;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > VMJSON_MAX_SIZE) {
		close(fd);
		snprintf(err, errlen, "checkpoint %s: %s is not a regular file of at most %u bytes",
			 dir, SNAP_VM_JSON, VMJSON_MAX_SIZE);
		return -EINVAL;
	}
	/* Whole file at once: json_loadfd reads one byte per system call. */
	{
		size_t len = (size_t)st.st_size, got = 0;
		char *buf = malloc(len ? len : 1);

		while (buf && got < len) {
			ssize_t r = read(fd, buf + got, len - got);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		close(fd);
		if (!buf)
			return -ENOMEM;
		*out = json_loadb(buf, got, JSON_REJECT_DUPLICATES, &jerr);
		free(buf);
	}
	if (!*out) {
		snprintf(err, errlen, "checkpoint %s: line %d column %d: %s", SNAP_VM_JSON,
			 jerr.line, jerr.column, jerr.text);
		return -EINVAL;
	}
	return 0;
}

int snap_open(const char *dir, struct snap_doc **out, char *err, size_t errlen)
{
	struct snap_doc *d;
	char path[PATH_MAX], msg[512];
	struct stat st;
	int ret;

	*out = NULL;
	if (strlen(dir) + 32 >= PATH_MAX) {
		snprintf(err, errlen, "checkpoint %.64s...: path too long", dir);
		return -ENAMETOOLONG;
	}
	if (is_temp_name(dir)) {
		snprintf(err, errlen, "checkpoint %s: this is the temporary directory of a checkpoint "
			 "that was never completed; it cannot be restored", dir);
		return -EINVAL;
	}
	if (stat(dir, &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "checkpoint %s: %s", dir, strerror(-ret));
		return ret;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "checkpoint %s: not a directory", dir);
		return -ENOTDIR;
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->mem_fd = -1;
	d->dir = strdup(dir);
	if (!d->dir) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = read_vm_json(dir, &d->root, err, errlen);
	if (ret)
		goto fail;
	ret = check_document(d->root, d, msg, sizeof(msg));
	if (ret) {
		snprintf(err, errlen, "checkpoint %s: %s", SNAP_VM_JSON, msg);
		goto fail;
	}
	path_join(path, sizeof(path), dir, SNAP_MEMORY_BIN);
	d->mem_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (d->mem_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "checkpoint %s: %s", SNAP_MEMORY_BIN, strerror(-ret));
		goto fail;
	}
	ret = memimg_check_file(d->mem_fd, &d->mem, msg, sizeof(msg));
	if (ret) {
		snprintf(err, errlen, "checkpoint %s", msg);
		goto fail;
	}
	*out = d;
	return 0;
fail:
	snap_close(d);
	return ret;
}

void snap_close(struct snap_doc *d)
{
	if (!d)
		return;
	memimg_verify_stop(d->verifier);	/* before the fd it reads goes */
	if (d->mem_fd >= 0)
		close(d->mem_fd);
	memimg_free(&d->mem);
	json_decref(d->root);
	free(d->dir);
	free(d);
}

int snap_check_devices(const json_t *doc, char *err, size_t errlen)
{
	const json_t *devs = json_object_get(doc, "devices");
	char msg[384];

	if (!json_is_array(devs)) {
		snprintf(err, errlen, "devices: expected an array");
		return -EINVAL;
	}
	for (size_t i = 0; i < json_array_size(devs); i++) {
		const json_t *e = json_array_get(devs, i);
		const char *id = json_string_value(json_object_get(e, "id"));
		const char *name = json_string_value(json_object_get(e, "class"));
		const struct device_class *cls;
		uint64_t ver = 0;
		int ret;

		if (!id || !name || snap_json_to_u64(json_object_get(e, "version"), &ver)) {
			snprintf(err, errlen, "devices[%zu]: needs \"id\", \"class\" and \"version\"", i);
			return -EINVAL;
		}
		cls = device_class_find(name);
		if (!cls) {
			snprintf(err, errlen, "devices[%zu] (%s): device type \"%s\" is not in this amber",
				 i, id, name);
			return -ENOENT;
		}
		if (ver == 0 || ver > cls->state_version) {
			snprintf(err, errlen, "devices[%zu] (%s): %s state version %" PRIu64 " is %s "
				 "(this amber supports 1 to %u)", i, id, name, ver,
				 ver ? "newer than this amber supports" : "not valid",
				 cls->state_version);
			return -ENOTSUP;
		}
		if (!cls->load || !cls->check) {
			snprintf(err, errlen, "devices[%zu] (%s): device type \"%s\" cannot be restored",
				 i, id, name);
			return -ENOTSUP;
		}
		msg[0] = '\0';
		ret = cls->check(json_object_get(e, "state"), (uint32_t)ver, msg, sizeof(msg));
		if (ret) {
			snprintf(err, errlen, "devices[%zu] (%s): %s", i, id,
				 msg[0] ? msg : "state refused by the device");
			return ret < 0 ? ret : -EINVAL;
		}
	}
	return 0;
}

int snap_check_host(const json_t *doc, char *err, size_t errlen, char *note, size_t notelen)
{
	const json_t *host = json_object_get(doc, "host");
	const char *vendor = json_string_value(json_object_get(host, "cpu_vendor"));
	struct kvm_cpuid2 *sup = NULL;
	struct snap_host h;
	int ret;

	if (note && notelen)
		note[0] = '\0';
	snap_host_probe(&h);
	if (!vendor || strcmp(vendor, h.cpu_vendor) != 0) {
		snprintf(err, errlen, "host.cpu_vendor: the checkpoint was taken on a %s CPU, this "
			 "host has a %s CPU", vendor ? vendor : "(unknown)", h.cpu_vendor);
		return -ENOTSUP;
	}
	ret = x86_kvm_supported_cpuid(&sup);
	if (ret) {
		if (note)
			snprintf(note, notelen, "CPU features not compared: /dev/kvm is not usable "
				 "here (%s)", strerror(-ret));
		return 0;
	}
	ret = x86_cpuid_check_host(json_object_get(doc, "cpuid"), sup, err, errlen);
	free(sup);
	return ret;
}

int snap_check_disks(const json_t *doc, char *err, size_t errlen)
{
	const json_t *disks = json_object_get(doc, "disks");

	for (size_t i = 0; i < json_array_size(disks); i++) {
		const json_t *e = json_array_get(disks, i), *id = json_object_get(e, "identity");
		const char *name = json_string_value(json_object_get(e, "id"));
		const char *path = json_string_value(json_object_get(e, "path"));
		uint64_t size = 0, dev = 0, ino = 0, mtime = 0, hsz, head, tail;
		char h[17], t[17];
		struct stat st;
		int ret;

		if (!path || !name) {
			snprintf(err, errlen, "disks[%zu]: needs \"id\" and \"path\"", i);
			return -EINVAL;
		}
		ret = disk_facts(path, &st, &hsz, &head, &tail);
		if (ret) {
			snprintf(err, errlen, "disks[%zu] (%s): %s: %s", i, name, path, strerror(-ret));
			return ret;
		}
		snap_json_to_u64(json_object_get(e, "size"), &size);
		if (hsz != size) {
			snprintf(err, errlen, "disks[%zu] (%s): %s is %" PRIu64 " bytes, the checkpoint "
				 "recorded %" PRIu64, i, name, path, hsz, size);
			return -EINVAL;
		}
		/*
		 * The same file (device, inode and modification time: an inode
		 * number alone is reused after a delete) or, for a copy on
		 * another host, the same content at both ends.
		 */
		snap_json_to_u64(json_object_get(id, "dev"), &dev);
		snap_json_to_u64(json_object_get(id, "ino"), &ino);
		snap_json_to_u64(json_object_get(id, "mtime_ns"), &mtime);
		hex64(h, head);
		hex64(t, tail);
		if (!(dev == st.st_dev && ino == st.st_ino && mtime == mtime_ns(&st)) &&
		    !(strcmp(json_string_value(json_object_get(id, "head_digest")) ?: "", h) == 0 &&
		      strcmp(json_string_value(json_object_get(id, "tail_digest")) ?: "", t) == 0)) {
			snprintf(err, errlen, "disks[%zu] (%s): %s is not the disk the checkpoint was "
				 "taken with, or it was written since (another file or modification "
				 "time, and its first and last MiB differ)", i, name, path);
			return -EINVAL;
		}
	}
	return 0;
}

int snap_check_all(struct snap_doc *d, unsigned flags, char *err, size_t errlen,
		   char *note, size_t notelen)
{
	char msg[512];
	int ret;

	if (note && notelen)
		note[0] = '\0';
	ret = snap_check_devices(d->root, msg, sizeof(msg));
	if (!ret && !(flags & SNAP_CHECK_NO_HOST))
		ret = snap_check_host(d->root, msg, sizeof(msg), note, notelen);
	if (!ret && !(flags & SNAP_CHECK_NO_HOST))
		ret = snap_check_disks(d->root, msg, sizeof(msg));
	if (ret) {
		snprintf(err, errlen, "checkpoint %s: %s", SNAP_VM_JSON, msg);
		return ret;
	}
	if (flags & SNAP_CHECK_DIGESTS) {
		ret = memimg_verify(d->mem_fd, &d->mem, msg, sizeof(msg));
		if (ret) {
			snprintf(err, errlen, "checkpoint %s", msg);
			return ret;
		}
	}
	return 0;
}

int snap_restore_memory(struct snap_doc *d, struct guest_mem *gm, enum memimg_mode mode,
			bool ram_is_zero, char *err, size_t errlen)
{
	char msg[512];
	int ret = memimg_restore(d->mem_fd, &d->mem, gm, mode, ram_is_zero, msg, sizeof(msg));

	if (ret)
		snprintf(err, errlen, "checkpoint %s", msg);
	return ret;
}
