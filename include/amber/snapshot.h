/*
 * Checkpoints (DESIGN.md "State and the checkpoint format"): a directory with
 * vm.json (the state document) and memory.bin (guest RAM, sparse).
 *
 * Writing: the VM pauses and quiesces, builds the document with
 * snap_doc_new() and fills "config", "cpuid", "vcpus", "vm", "devices",
 * "disks"; snap_write() adds "memory", writes both files into DIR.tmp-XXXXXX,
 * fsyncs them and the directory and renames it to DIR.
 *
 * Restoring: snap_open() parses and checks every structural thing (format,
 * versions, types, ranges, memory layout vs memory.bin's size, vCPU and VM
 * sections); snap_check_all() adds what needs the host (device classes, CPU
 * compatibility, disks) and, with SNAP_CHECK_DIGESTS, every memory digest.
 * Only then does the VM load anything; snap_restore_memory() maps or copies
 * memory.bin into guest RAM.
 */
#ifndef AMBER_SNAPSHOT_H
#define AMBER_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "amber/mem.h"

#define SNAP_FORMAT_NAME	"amber-checkpoint"
#define SNAP_FORMAT_VERSION	1
#define SNAP_VM_JSON		"vm.json"
#define SNAP_MEMORY_BIN		"memory.bin"
#define SNAP_CHUNK_SIZE		(2ULL << 20)	/* digest granularity of memory.bin */
#define SNAP_TMP_INFIX		".tmp-"		/* DIR.tmp-XXXXXX: never a checkpoint */
#define SNAP_OLD_INFIX		".old-"		/* DIR.old-XXXXXX: replaced by --force */

/* ---- memory image (src/snapshot/memimg.c) ------------------------------ */

/*
 * memory.bin layout: RAM offset order, not guest-physical address. Slot 0
 * (gpa 0) at file offset 0, slot 1 (gpa 4 GiB) right after it, and so on:
 * file_offset(slot i) = sum of the sizes of slots before it. A file indexed
 * by gpa would carry a 1 GiB hole for the PCI window and make the file
 * longer than RAM; the slot table in vm.json ("memory.slots") maps it back.
 * Every slot is page aligned, so each can be mmap'd on its own.
 */
struct memimg_slot {
	uint64_t gpa;
	uint64_t size;
	uint64_t file_offset;
};

struct memimg {
	uint64_t size;			/* RAM bytes == memory.bin length */
	uint64_t chunk_size;
	int nslots;
	struct memimg_slot slots[GMEM_MAX_SLOTS];
	size_t ndigests;		/* ceil(size / chunk_size) */
	uint64_t *digests;		/* XXH3-64 of each chunk, malloc'd */
	uint64_t stored_bytes;		/* st_blocks * 512 after writing */
};

/* Fill mi's layout (size, slots, chunk size) from guest memory. */
void memimg_layout(struct memimg *mi, const struct guest_mem *gm);
/*
 * Write guest RAM to fd (an empty regular file) per memimg_layout, leaving
 * all-zero pages as holes, and compute every chunk digest on the way. RAM
 * backed by a memfd (gm->memfd) is walked with SEEK_DATA so untouched pages
 * are neither read nor allocated; anonymous RAM reads untouched pages as
 * the shared zero page, which costs no memory either. The caller fsyncs. 0 or -errno (-ENOSPC when
 * the disk is full).
 */
int memimg_write(int fd, const struct guest_mem *gm, struct memimg *mi);
void memimg_free(struct memimg *mi);

/* The "memory" object of vm.json. */
json_t *memimg_to_json(const struct memimg *mi);
/* Parse and check a "memory" object (path names it in messages). */
int memimg_from_json(const json_t *obj, const char *path, struct memimg *mi,
		     char *err, size_t errlen);
/* memory.bin's length must equal mi->size. */
int memimg_check_file(int fd, const struct memimg *mi, char *err, size_t errlen);
/* Is [gpa, gpa + len) inside one of the image's RAM slots? */
bool memimg_contains(const struct memimg *mi, uint64_t gpa, uint64_t len);
/* Read the whole file and compare every chunk digest; names the first bad chunk. */
int memimg_verify(int fd, const struct memimg *mi, char *err, size_t errlen);
/*
 * Background verification, for lazy restore (the guest runs on pages mapped
 * from memory.bin while every chunk digest is checked): a thread (SCHED_IDLE)
 * reads memory.bin (fd, mi stay valid until memimg_verify_stop) and calls
 * done(opaque) on that thread when it is finished, whatever the outcome;
 * memimg_verify_result then gives memimg_verify's return value and message
 * and the time it took. memimg_verify_stop cancels an unfinished check
 * (done is then never called), waits for the thread and frees v.
 */
struct memimg_verifier;
int memimg_verify_start(int fd, const struct memimg *mi, void (*done)(void *opaque),
			void *opaque, struct memimg_verifier **out);
int memimg_verify_result(const struct memimg_verifier *v, char *msg, size_t len,
			 uint64_t *elapsed_ns);
void memimg_verify_stop(struct memimg_verifier *v);
/* The VM's RAM slots must be the image's (same gpa and size, in order). */
int memimg_check_guest(const struct memimg *mi, const struct guest_mem *gm,
		       char *err, size_t errlen);

enum memimg_mode {
	/*
	 * mmap(MAP_PRIVATE | MAP_FIXED) memory.bin over each slot's host
	 * range. The host addresses do not change, so KVM memslots registered
	 * for them stay valid (KVM's MMU notifier drops the old pages); guest
	 * writes become private copies, the file is never written. Contract:
	 * call before any vCPU runs; afterwards RAM is no longer backed by
	 * gm->memfd (if any) and gm->ram_from_file is set (anything sharing RAM
	 * through a memfd, e.g. a vhost-user backend, needs copy mode; gmem_free
	 * still unmaps as usual), and memory.bin must stay in place, which
	 * snap_write guarantees by only ever renaming directories (a replaced
	 * checkpoint's file lives on while mapped).
	 */
	MEMIMG_LAZY,
	/* Read memory.bin into the existing RAM mapping. */
	MEMIMG_COPY,
};

/*
 * Put the image into guest RAM. ram_is_zero: RAM is freshly allocated, so
 * zero pages need not be written (copy mode then leaves them untouched).
 * Lazy mode falls back to copy when the file system cannot mmap the file.
 */
int memimg_restore(int fd, const struct memimg *mi, struct guest_mem *gm,
		   enum memimg_mode mode, bool ram_is_zero, char *err, size_t errlen);

/* ---- checkpoint directory and document (src/snapshot/ckpt.c) ----------- */

struct snap_host {
	char cpu_vendor[13];		/* "GenuineIntel", "AuthenticAMD" */
	uint32_t family, model, stepping;	/* CPUID.1 display family/model */
	uint32_t tsc_khz;		/* KVM_GET_TSC_KHZ of a vCPU; 0 unknown */
};

/* CPUID facts of this host (tsc_khz left 0: the VM knows it from KVM). */
void snap_host_probe(struct snap_host *h);

/*
 * A new document with "format", "format_version", "amber_version",
 * "created" (ISO-8601 UTC) and "host". NULL when out of memory.
 */
json_t *snap_doc_new(const struct snap_host *h);

#define SNAP_FORCE 1u	/* replace an existing DIR (atomically) */

/*
 * Write the checkpoint: memory.bin from gm (adds doc["memory"]) and vm.json
 * from doc. Crash safe: everything goes to DIR.tmp-XXXXXX next to DIR, is
 * fsync'd (files, then the directory) and renamed to DIR; the parent is
 * fsync'd. An existing DIR is refused unless SNAP_FORCE: then it is renamed
 * to DIR.old-XXXXXX, the new one renamed in, the old one removed. On any
 * error (ENOSPC included) the temporary directory is removed and the
 * previous checkpoint is untouched. err names the file and reason.
 */
int snap_write(const char *dir, json_t *doc, const struct guest_mem *gm, unsigned flags,
	       char *err, size_t errlen);
/*
 * snap_write in two steps, so a VM can run again as soon as its RAM has been
 * copied out: snap_write_begin writes memory.bin into DIR.tmp-XXXXXX (the
 * page cache holds it; guest RAM is not read after it returns) and encodes
 * vm.json; snap_write_commit fsyncs memory.bin, writes and fsyncs vm.json
 * and the directory, renames it into place (as snap_write) and frees p
 * whatever happens; snap_write_abort removes the temporary directory
 * instead. Both free p. Before mkdtemp, begin removes temporary directories
 * of DIR left by dead writers (each writer flock()s its own while it runs).
 */
struct snap_pending;
/*
 * What snap_write_begin refuses before writing anything: a path too long, an
 * existing DIR without SNAP_FORCE (or one that is not a checkpoint), a parent
 * directory that is missing or not writable. *exists (may be NULL) says
 * whether DIR exists. For callers that want to refuse before pausing a VM.
 */
int snap_check_target(const char *dir, unsigned flags, bool *exists, char *err, size_t errlen);
int snap_write_begin(const char *dir, json_t *doc, const struct guest_mem *gm, unsigned flags,
		     struct snap_pending **out, char *err, size_t errlen);
int snap_write_commit(struct snap_pending *p, char *err, size_t errlen);
void snap_write_abort(struct snap_pending *p);
/* RAM size and bytes memory.bin occupies (st_blocks) of a begun write. */
void snap_pending_sizes(const struct snap_pending *p, uint64_t *ram_bytes,
			uint64_t *stored_bytes);

/* Disk identity recorded in "disks[i].identity": dev, ino, size, mtime and
 * the XXH3-64 of the first and last MiB. NULL on error (errno set). */
json_t *snap_disk_identity(const char *path);

/* An opened, structurally checked checkpoint. */
struct snap_doc {
	char *dir;
	json_t *root;			/* vm.json */
	struct memimg mem;		/* parsed "memory" */
	int mem_fd;			/* memory.bin, O_RDONLY */
	uint32_t format_version;
	int ncpus;
	struct memimg_verifier *verifier;	/* lazy restore's digest check, or NULL */
};

/*
 * Open DIR and check everything that needs nothing but the files: JSON
 * syntax, format name and version, required keys and their types, vCPU and
 * VM sections, device entries' shape, memory layout and digests' shape,
 * memory.bin's length. Messages: `checkpoint vm.json: vcpus[1].regs.rip:
 * expected an integer, got a string`. 0 or -errno.
 */
int snap_open(const char *dir, struct snap_doc **out, char *err, size_t errlen);
void snap_close(struct snap_doc *d);
/*
 * The document checks of snap_open on a parsed vm.json alone (no files):
 * for a state document received over a migration stream, and fuzzing.
 * Messages have no "checkpoint vm.json: " prefix.
 */
int snap_check_document(const json_t *root, char *err, size_t errlen);

/*
 * Each device section through its class's check hook: unknown classes,
 * versions newer than the class's state_version and classes that cannot
 * load are refused. doc is the vm.json root.
 */
int snap_check_devices(const json_t *doc, char *err, size_t errlen);
/*
 * CPU compatibility: vendor must match; every CPUID feature bit the guest
 * saw must be offered by this host's KVM (KVM_GET_SUPPORTED_CPUID). Without
 * a usable /dev/kvm the feature check is skipped and *note says so
 * (note may be NULL).
 */
int snap_check_host(const json_t *doc, char *err, size_t errlen, char *note, size_t notelen);
/* Every disk present with the recorded size and the same identity. */
int snap_check_disks(const json_t *doc, char *err, size_t errlen);

#define SNAP_CHECK_DIGESTS 1u	/* also read memory.bin and verify every chunk */
#define SNAP_CHECK_NO_HOST 2u	/* skip CPU and disk checks (restore elsewhere) */

/* Everything restore checks, in order; the first failure is in err. */
int snap_check_all(struct snap_doc *d, unsigned flags, char *err, size_t errlen,
		   char *note, size_t notelen);

/* memimg_check_guest + memimg_restore on the opened checkpoint. */
int snap_restore_memory(struct snap_doc *d, struct guest_mem *gm, enum memimg_mode mode,
			bool ram_is_zero, char *err, size_t errlen);

#endif
