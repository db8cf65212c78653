/*
 * memory.bin: guest RAM, page aligned, zero pages as holes, with an XXH3-64
 * digest per 2 MiB chunk so `inspect --verify` can check it all while a lazy
 * restore maps it without reading it. Layout: see struct memimg_slot.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <xxhash.h>

#include "amber/clock.h"
#include "amber/log.h"
#include "amber/snapjson.h"
#include "amber/snapshot.h"

#define MEMIMG_PAGE PAGE_SIZE_4K
/* Sanity bounds for a parsed document (a guest's RAM is never bigger). */
#define MEMIMG_MAX_SIZE (1ULL << 46)

void memimg_layout(struct memimg *mi, const struct guest_mem *gm)
{
	uint64_t off = 0;

	memset(mi, 0, sizeof(*mi));
	mi->chunk_size = SNAP_CHUNK_SIZE;
	mi->nslots = gm->nslots;
	for (int i = 0; i < gm->nslots; i++) {
		mi->slots[i] = (struct memimg_slot){ gm->slots[i].gpa, gm->slots[i].size, off };
		off += gm->slots[i].size;
	}
	mi->size = off;
	mi->ndigests = (size_t)((off + mi->chunk_size - 1) / mi->chunk_size);
}

void memimg_free(struct memimg *mi)
{
	free(mi->digests);
	mi->digests = NULL;
	mi->ndigests = 0;
}

/* Host bytes at file offset off, and how many follow contiguously (≤ max). */
static uint8_t *memimg_host_at(const struct memimg *mi, const struct guest_mem *gm, uint64_t off,
			       uint64_t max, uint64_t *len)
{
	for (int i = 0; i < mi->nslots; i++) {
		const struct memimg_slot *s = &mi->slots[i];

		if (off >= s->file_offset && off - s->file_offset < s->size) {
			uint64_t in = off - s->file_offset;

			*len = s->size - in < max ? s->size - in : max;
			return gm->slots[i].host + in;
		}
	}
	return NULL;
}

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *w = (const uint64_t *)p;

	/* Most pages in use differ from zero in their first words: exit early. */
	for (size_t i = 0; i < MEMIMG_PAGE / 8; i += 8)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7])
			return false;
	return true;
}

static int write_full(int fd, const uint8_t *p, uint64_t len, uint64_t off)
{
	while (len) {
		size_t n = len > (1u << 30) ? (1u << 30) : (size_t)len;
		ssize_t w = pwrite(fd, p, n, (off_t)off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -ENOSPC;
		p += w;
		off += (uint64_t)w;
		len -= (uint64_t)w;
	}
	return 0;
}

/* Write the non-zero pages of [p, p+len) at file offset off. */
static int memimg_write_sparse(int fd, const uint8_t *p, uint64_t len, uint64_t off)
{
	uint64_t i = 0;

	while (i < len) {
		uint64_t run;
		int ret;

		while (i < len && page_is_zero(p + i))
			i += MEMIMG_PAGE;
		run = i;
		while (run < len && !page_is_zero(p + run))
			run += MEMIMG_PAGE;
		if (run > i) {
			ret = write_full(fd, p + i, run - i, off + i);
			if (ret)
				return ret;
		}
		i = run;
	}
	return 0;
}

/*
 * RAM backed by a memfd at offset == RAM offset (shared RAM, e.g. for a
 * vhost-user backend; gmem_alloc's anonymous RAM has none): the memfd's holes
 * (pages the guest never touched) can be found with SEEK_DATA instead of
 * reading them, which for shmem would allocate every untouched page.
 */
static bool memimg_memfd_usable(const struct memimg *mi, const struct guest_mem *gm)
{
	if (gm->memfd < 0 || gm->ram_from_file)
		return false;
	for (int i = 0; i < mi->nslots; i++)
		if (gm->slots[i].host != gm->slots[0].host + mi->slots[i].file_offset)
			return false;
	return true;
}

static void digest_zeros(XXH3_state_t *xs, uint64_t len)
{
	static const uint8_t zeros[64 * 1024];

	while (len) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);

		XXH3_64bits_update(xs, zeros, n);
		len -= n;
	}
}

/*
 * Digest and write [off, off+len) (host bytes p). With the memfd, ranges it
 * reports as holes are digested as zeros and skipped; data ranges are
 * scanned page by page as without it.
 */
static int memimg_write_segment(int fd, XXH3_state_t *xs, const uint8_t *p, uint64_t off,
				uint64_t len, int memfd)
{
	uint64_t pos = 0;

	while (pos < len) {
		uint64_t data = pos, hole = len;

		if (memfd >= 0) {
			off_t d = lseek(memfd, (off_t)(off + pos), SEEK_DATA);

			/* ENXIO: no data after pos; other errors: treat it all as data */
			data = d < 0 ? (errno == ENXIO ? len : pos) :
			       (uint64_t)d - off > len ? len : (uint64_t)d - off;
			if (data > pos)
				digest_zeros(xs, data - pos);
			if (data >= len)
				break;
			d = lseek(memfd, (off_t)(off + data), SEEK_HOLE);
			hole = d < 0 || (uint64_t)d - off > len ? len : (uint64_t)d - off;
		}
		XXH3_64bits_update(xs, p + data, (size_t)(hole - data));
		{
			int ret = memimg_write_sparse(fd, p + data, hole - data, off + data);

			if (ret)
				return ret;
		}
		pos = hole;
	}
	return 0;
}

/* Every page of [off, end) is zero (pages the guest never wrote read as zero). */
static bool memimg_chunk_is_zero(const struct memimg *mi, const struct guest_mem *gm,
				 uint64_t off, uint64_t end)
{
	while (off < end) {
		uint64_t len;
		const uint8_t *p = memimg_host_at(mi, gm, off, end - off, &len);

		if (!p)
			return false;	/* let the slow path report it */
		for (uint64_t i = 0; i < len; i += MEMIMG_PAGE)
			if (!page_is_zero(p + i))
				return false;
		off += len;
	}
	return true;
}

int memimg_write(int fd, const struct guest_mem *gm, struct memimg *mi)
{
	XXH3_state_t *xs = NULL;
	struct stat st;
	uint64_t zero_len = 0, zero_digest = 0;
	int ret = 0, memfd;

	memimg_layout(mi, gm);
	for (int i = 0; i < mi->nslots; i++)
		if (mi->slots[i].size % MEMIMG_PAGE || mi->slots[i].gpa % MEMIMG_PAGE)
			return -EINVAL;
	memfd = memimg_memfd_usable(mi, gm) ? gm->memfd : -1;
	mi->digests = calloc(mi->ndigests ? mi->ndigests : 1, sizeof(uint64_t));
	xs = XXH3_createState();
	if (!mi->digests || !xs) {
		ret = -ENOMEM;
		goto fail;
	}
	for (size_t c = 0; c < mi->ndigests; c++) {
		uint64_t off = c * mi->chunk_size;
		uint64_t end = off + mi->chunk_size < mi->size ? off + mi->chunk_size : mi->size;

		/*
		 * A chunk of zero pages (most of a guest that has not touched its
		 * RAM) is neither written nor hashed: its digest is the zeros'.
		 */
		if (memfd < 0 && memimg_chunk_is_zero(mi, gm, off, end)) {
			if (end - off != zero_len) {
				zero_len = end - off;
				XXH3_64bits_reset(xs);
				digest_zeros(xs, zero_len);
				zero_digest = XXH3_64bits_digest(xs);
			}
			mi->digests[c] = zero_digest;
			continue;
		}
		XXH3_64bits_reset(xs);
		/* A chunk may span two slots when a slot is not a chunk multiple. */
		while (off < end) {
			uint64_t len;
			uint8_t *p = memimg_host_at(mi, gm, off, end - off, &len);

			if (!p) {
				ret = -EINVAL;
				goto fail;
			}
			ret = memimg_write_segment(fd, xs, p, off, len, memfd);
			if (ret)
				goto fail;
			off += len;
		}
		mi->digests[c] = XXH3_64bits_digest(xs);
	}
	/* The trailing zero pages are a hole too: extend the file without writing. */
	if (ftruncate(fd, (off_t)mi->size) < 0) {
		ret = -errno;
		goto fail;
	}
	if (fstat(fd, &st) == 0)
		mi->stored_bytes = (uint64_t)st.st_blocks * 512;
	XXH3_freeState(xs);
	return 0;
fail:
	XXH3_freeState(xs);
	memimg_free(mi);
	return ret;
}

/* ---- vm.json "memory" ---------------------------------------------------- */

json_t *memimg_to_json(const struct memimg *mi)
{
	json_t *obj = json_object(), *slots = json_array(), *dig = json_array();
	char hex[17];
	int bad = 0;

	if (!obj || !slots || !dig)
		goto fail;
	for (int i = 0; i < mi->nslots; i++) {
		json_t *s = json_object();

		if (!s || json_array_append_new(slots, s) < 0 ||
		    snap_set_u64(s, "gpa", mi->slots[i].gpa) ||
		    snap_set_u64(s, "size", mi->slots[i].size) ||
		    snap_set_u64(s, "file_offset", mi->slots[i].file_offset))
			goto fail;
	}
	for (size_t c = 0; c < mi->ndigests; c++) {
		snprintf(hex, sizeof(hex), "%016" PRIx64, mi->digests[c]);
		if (json_array_append_new(dig, json_string(hex)) < 0)
			goto fail;
	}
	bad |= snap_set_u64(obj, "size", mi->size);
	/* set_new takes the reference whether or not it succeeds */
	bad |= json_object_set_new(obj, "slots", slots);
	slots = NULL;
	bad |= snap_set_u64(obj, "chunk_size", mi->chunk_size);
	bad |= json_object_set_new(obj, "digest", json_string("xxh3-64"));
	bad |= json_object_set_new(obj, "digests", dig);
	dig = NULL;
	bad |= snap_set_u64(obj, "stored_bytes", mi->stored_bytes);
	if (bad)
		goto fail;
	return obj;
fail:
	json_decref(slots);
	json_decref(dig);
	json_decref(obj);
	return NULL;
}

static int parse_hex64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len != 16)
		return -EINVAL;
	for (size_t i = 0; i < 16; i++) {
		char c = s[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return -EINVAL;
		v = v << 4 | d;
	}
	*out = v;
	return 0;
}

int memimg_from_json(const json_t *obj, const char *path, struct memimg *mi,
		     char *err, size_t errlen)
{
	const json_t *slots, *dig;
	const char *algo;
	char p[64];
	uint64_t off = 0, prev_end = 0;
	int ret;

	memset(mi, 0, sizeof(*mi));
	if ((ret = snap_get_u64(obj, path, "size", MEMIMG_MAX_SIZE, &mi->size, err, errlen)) ||
	    (ret = snap_get_u64(obj, path, "chunk_size", 1ULL << 30, &mi->chunk_size, err, errlen)) ||
	    (ret = snap_get_string(obj, path, "digest", &algo, err, errlen)) ||
	    (ret = snap_get_u64(obj, path, "stored_bytes", UINT64_MAX, &mi->stored_bytes, err,
				errlen)) ||
	    (ret = snap_get_array(obj, path, "slots", &slots, err, errlen)) ||
	    (ret = snap_get_array(obj, path, "digests", &dig, err, errlen)))
		return ret;
	if (mi->size == 0 || mi->size % MEMIMG_PAGE) {
		snprintf(err, errlen, "%s.size = %" PRIu64 " is not a positive multiple of 4096",
			 path, mi->size);
		return -EINVAL;
	}
	if (mi->chunk_size < MEMIMG_PAGE || (mi->chunk_size & (mi->chunk_size - 1))) {
		snprintf(err, errlen, "%s.chunk_size = %" PRIu64 " is not a power of two >= 4096",
			 path, mi->chunk_size);
		return -EINVAL;
	}
	if (strcmp(algo, "xxh3-64") != 0) {
		snprintf(err, errlen, "%s.digest: unknown digest \"%s\" (expected \"xxh3-64\")",
			 path, algo);
		return -EINVAL;
	}
	if (json_array_size(slots) < 1 || json_array_size(slots) > GMEM_MAX_SLOTS) {
		snprintf(err, errlen, "%s.slots: %zu slots, expected 1 to %d", path,
			 json_array_size(slots), GMEM_MAX_SLOTS);
		return -EINVAL;
	}
	mi->nslots = (int)json_array_size(slots);
	for (int i = 0; i < mi->nslots; i++) {
		struct memimg_slot *s = &mi->slots[i];

		snprintf(p, sizeof(p), "%s.slots[%d]", path, i);
		if ((ret = snap_get_u64(json_array_get(slots, (size_t)i), p, "gpa", MEMIMG_MAX_SIZE * 2,
					&s->gpa, err, errlen)) ||
		    (ret = snap_get_u64(json_array_get(slots, (size_t)i), p, "size", MEMIMG_MAX_SIZE,
					&s->size, err, errlen)) ||
		    (ret = snap_get_u64(json_array_get(slots, (size_t)i), p, "file_offset",
					MEMIMG_MAX_SIZE, &s->file_offset, err, errlen)))
			return ret;
		if (s->size == 0 || s->size % MEMIMG_PAGE || s->gpa % MEMIMG_PAGE) {
			snprintf(err, errlen, "%s: gpa and size must be page aligned and size > 0", p);
			return -EINVAL;
		}
		if (i > 0 && s->gpa < prev_end) {
			snprintf(err, errlen, "%s: gpa 0x%" PRIx64 " overlaps or precedes slot %d",
				 p, s->gpa, i - 1);
			return -EINVAL;
		}
		if (s->file_offset != off) {
			snprintf(err, errlen, "%s.file_offset = %" PRIu64 ", expected %" PRIu64
				 " (slots are stored one after the other)", p, s->file_offset, off);
			return -EINVAL;
		}
		prev_end = s->gpa + s->size;
		off += s->size;
	}
	if (off != mi->size) {
		snprintf(err, errlen, "%s: slots add up to %" PRIu64 " bytes but size is %" PRIu64,
			 path, off, mi->size);
		return -EINVAL;
	}
	mi->ndigests = (size_t)((mi->size + mi->chunk_size - 1) / mi->chunk_size);
	if (json_array_size(dig) != mi->ndigests) {
		snprintf(err, errlen, "%s.digests: %zu digests, expected %zu (one per %" PRIu64
			 "-byte chunk)", path, json_array_size(dig), mi->ndigests, mi->chunk_size);
		return -EINVAL;
	}
	mi->digests = calloc(mi->ndigests, sizeof(uint64_t));
	if (!mi->digests)
		return -ENOMEM;
	for (size_t c = 0; c < mi->ndigests; c++) {
		const json_t *d = json_array_get(dig, c);

		if (!json_is_string(d) ||
		    parse_hex64(json_string_value(d), json_string_length(d), &mi->digests[c])) {
			snprintf(err, errlen, "%s.digests[%zu]: expected 16 hex digits", path, c);
			memimg_free(mi);
			return -EINVAL;
		}
	}
	return 0;
}

bool memimg_contains(const struct memimg *mi, uint64_t gpa, uint64_t len)
{
	for (int i = 0; i < mi->nslots; i++)
		if (gpa >= mi->slots[i].gpa && gpa - mi->slots[i].gpa <= mi->slots[i].size &&
		    len <= mi->slots[i].size - (gpa - mi->slots[i].gpa))
			return true;
	return false;
}

int memimg_check_file(int fd, const struct memimg *mi, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", SNAP_MEMORY_BIN, strerror(errno));
		return -errno;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", SNAP_MEMORY_BIN);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size != mi->size) {
		snprintf(err, errlen, "%s: %" PRIu64 " bytes, but vm.json memory.size is %" PRIu64
			 "%s", SNAP_MEMORY_BIN, (uint64_t)st.st_size, mi->size,
			 (uint64_t)st.st_size < mi->size ? " (truncated)" : "");
		return -EINVAL;
	}
	return 0;
}

static int read_full(int fd, uint8_t *p, size_t len, uint64_t off)
{
	while (len) {
		ssize_t r = pread(fd, p, len, (off_t)off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -ENODATA;	/* shorter than vm.json says */
		p += r;
		off += (uint64_t)r;
		len -= (size_t)r;
	}
	return 0;
}

/* True when [off, off+len) is one hole (SEEK_DATA says no data starts there). */
static bool range_is_hole(int fd, uint64_t off, uint64_t len)
{
	off_t d = lseek(fd, (off_t)off, SEEK_DATA);

	if (d < 0)
		return errno == ENXIO;	/* no data after off at all */
	return (uint64_t)d >= off + len;
}

/* The message for chunk c (bytes off..off+len-1) whose data digests to d. -EBADMSG. */
static int digest_mismatch(const struct memimg *mi, size_t c, uint64_t off, uint64_t len,
			   uint64_t d, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: chunk %zu (bytes 0x%" PRIx64 "-0x%" PRIx64
		 ") does not match its digest: vm.json memory.digests[%zu] is %016"
		 PRIx64 ", the data gives %016" PRIx64, SNAP_MEMORY_BIN, c, off,
		 off + len - 1, c, mi->digests[c], d);
	return -EBADMSG;
}

/* Chunk c's length: chunk_size, or what is left of memory.bin for the last one. */
static uint64_t chunk_len(const struct memimg *mi, size_t c)
{
	uint64_t off = c * mi->chunk_size;

	return mi->size - off < mi->chunk_size ? mi->size - off : mi->chunk_size;
}

/*
 * Read chunk c of memory.bin into buf and check it against its digest. A hole
 * is not read (most of a fresh guest): it digests like zeros, *hole says so and
 * buf's contents are then meaningless; *zero caches the zero digest once
 * *have_zero. 0, -EBADMSG (digest), -ENODATA (file truncated) or -errno, with
 * err set.
 */
static int chunk_read_checked(int fd, const struct memimg *mi, size_t c, uint8_t *buf,
			      bool *have_zero, uint64_t *zero, bool *hole, char *err,
			      size_t errlen)
{
	uint64_t off = c * mi->chunk_size, len = chunk_len(mi, c);
	uint64_t d;
	int ret;

	*hole = len == mi->chunk_size && range_is_hole(fd, off, len);
	if (*hole) {
		if (!*have_zero) {
			memset(buf, 0, (size_t)len);
			*zero = XXH3_64bits(buf, (size_t)len);
			*have_zero = true;
		}
		d = *zero;
	} else {
		ret = read_full(fd, buf, (size_t)len, off);
		if (ret) {
			snprintf(err, errlen, "%s: reading chunk %zu: %s", SNAP_MEMORY_BIN, c,
				 ret == -ENODATA ? "file is truncated" : strerror(-ret));
			return ret;
		}
		d = XXH3_64bits(buf, (size_t)len);
	}
	return d == mi->digests[c] ? 0 : digest_mismatch(mi, c, off, len, d, err, errlen);
}

/* memimg_verify, stopping early (-ECANCELED) once *cancel is set. */
static int memimg_verify_cancellable(int fd, const struct memimg *mi, const bool *cancel,
				     char *err, size_t errlen)
{
	uint8_t *buf = malloc(mi->chunk_size);
	uint64_t zero_digest = 0;
	bool have_zero = false;
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	ret = memimg_check_file(fd, mi, err, errlen);
	if (ret)
		goto out;
	for (size_t c = 0; c < mi->ndigests; c++) {
		bool hole;

		if (cancel && __atomic_load_n(cancel, __ATOMIC_RELAXED)) {
			snprintf(err, errlen, "verification cancelled");
			ret = -ECANCELED;
			goto out;
		}
		ret = chunk_read_checked(fd, mi, c, buf, &have_zero, &zero_digest, &hole, err,
					 errlen);
		if (ret)
			goto out;
	}
out:
	free(buf);
	return ret;
}

int memimg_verify(int fd, const struct memimg *mi, char *err, size_t errlen)
{
	return memimg_verify_cancellable(fd, mi, NULL, err, errlen);
}

/* ---- background verification (lazy restore) --------------------------------------- */

struct memimg_verifier {
	pthread_t thread;
	int fd;
	const struct memimg *mi;
	void (*done)(void *opaque);
	void *opaque;
	bool cancel;
	int ret;
	uint64_t elapsed_ns;
	char msg[512];
};

static void *memimg_verifier_main(void *arg)
{
	struct memimg_verifier *v = arg;
	uint64_t t0 = mono_ns();

	/*
	 * The guest runs meanwhile, and what a lazy restore is for is that it
	 * runs at once: this thread takes only CPU time nothing else wants
	 * (SCHED_IDLE; else nice 19, which Linux applies per thread). Reading
	 * memory.bin also warms the page cache the guest's pages come from.
	 */
	{
		struct sched_param sp = { .sched_priority = 0 };

		if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) != 0)
			setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19);
	}
	v->ret = memimg_verify_cancellable(v->fd, v->mi, &v->cancel, v->msg, sizeof(v->msg));
	v->elapsed_ns = mono_ns() - t0;
	if (v->ret != -ECANCELED && v->done)
		v->done(v->opaque);
	return NULL;
}

int memimg_verify_start(int fd, const struct memimg *mi, void (*done)(void *opaque),
			void *opaque, struct memimg_verifier **out)
{
	struct memimg_verifier *v = calloc(1, sizeof(*v));
	int ret;

	*out = NULL;
	if (!v)
		return -ENOMEM;
	v->fd = fd;
	v->mi = mi;
	v->done = done;
	v->opaque = opaque;
	ret = pthread_create(&v->thread, NULL, memimg_verifier_main, v);
	if (ret) {
		free(v);
		return -ret;
	}
	*out = v;
	return 0;
}

int memimg_verify_result(const struct memimg_verifier *v, char *msg, size_t len,
			 uint64_t *elapsed_ns)
{
	if (msg && len)
		snprintf(msg, len, "%s", v->msg);
	if (elapsed_ns)
		*elapsed_ns = v->elapsed_ns;
	return v->ret;
}

void memimg_verify_stop(struct memimg_verifier *v)
{
	if (!v)
		return;
	__atomic_store_n(&v->cancel, true, __ATOMIC_RELAXED);
	pthread_join(v->thread, NULL);
	free(v);
}

int memimg_check_guest(const struct memimg *mi, const struct guest_mem *gm,
		       char *err, size_t errlen)
{
	if (mi->nslots != gm->nslots) {
		snprintf(err, errlen, "memory: checkpoint has %d RAM slots, this VM %d",
			 mi->nslots, gm->nslots);
		return -EINVAL;
	}
	for (int i = 0; i < mi->nslots; i++)
		if (mi->slots[i].gpa != gm->slots[i].gpa || mi->slots[i].size != gm->slots[i].size) {
			snprintf(err, errlen, "memory.slots[%d]: checkpoint has gpa 0x%" PRIx64
				 " size 0x%" PRIx64 ", this VM gpa 0x%" PRIx64 " size 0x%" PRIx64,
				 i, mi->slots[i].gpa, mi->slots[i].size, gm->slots[i].gpa,
				 gm->slots[i].size);
			return -EINVAL;
		}
	return 0;
}

/*
 * Copy into RAM bytes [lo, hi) of memory.bin whose data (NULL: a hole, zeros)
 * is at src; fresh RAM (ram_is_zero) gets only its non-zero pages, so zero
 * pages of the guest are never touched.
 */
static void memimg_scatter(const struct memimg *mi, struct guest_mem *gm, uint64_t lo,
			   uint64_t hi, const uint8_t *src, bool ram_is_zero)
{
	for (int i = 0; i < mi->nslots; i++) {
		const struct memimg_slot *s = &mi->slots[i];
		uint64_t a = lo > s->file_offset ? lo : s->file_offset;
		uint64_t b = hi < s->file_offset + s->size ? hi : s->file_offset + s->size;
		uint8_t *host;

		if (a >= b)
			continue;
		host = gm->slots[i].host + (a - s->file_offset);
		if (!src) {
			if (!ram_is_zero)
				memset(host, 0, (size_t)(b - a));
			continue;
		}
		if (!ram_is_zero) {
			memcpy(host, src + (a - lo), (size_t)(b - a));
			continue;
		}
		for (uint64_t p = a; p < b; p += MEMIMG_PAGE) {
			size_t n = b - p < MEMIMG_PAGE ? (size_t)(b - p) : MEMIMG_PAGE;

			if (n < MEMIMG_PAGE || !page_is_zero(src + (p - lo)))
				memcpy(host + (p - a), src + (p - lo), n);
		}
	}
}

/*
 * Copy mode, one pass over memory.bin: every chunk is read once, its digest
 * checked, and only then copied into RAM. A damaged chunk stops the restore
 * (-EBADMSG, the chunk named) before any vCPU has run; the RAM it was filling
 * belongs to a VM that is then thrown away.
 */
static int memimg_copy_verified(int fd, const struct memimg *mi, struct guest_mem *gm,
				bool ram_is_zero, char *err, size_t errlen)
{
	uint8_t *buf = malloc(mi->chunk_size);
	uint64_t zero_digest = 0;
	bool have_zero = false;
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	for (size_t c = 0; c < mi->ndigests; c++) {
		uint64_t off = c * mi->chunk_size;
		bool hole;

		ret = chunk_read_checked(fd, mi, c, buf, &have_zero, &zero_digest, &hole, err,
					 errlen);
		if (ret) {
			ret = ret == -ENODATA ? -EINVAL : ret;
			break;
		}
		memimg_scatter(mi, gm, off, off + chunk_len(mi, c), hole ? NULL : buf, ram_is_zero);
	}
	free(buf);
	return ret;
}

int memimg_restore(int fd, const struct memimg *mi, struct guest_mem *gm,
		   enum memimg_mode mode, bool ram_is_zero, char *err, size_t errlen)
{
	int ret = memimg_check_guest(mi, gm, err, errlen);

	if (ret)
		return ret;
	ret = memimg_check_file(fd, mi, err, errlen);
	if (ret)
		return ret;
	if (mode == MEMIMG_LAZY) {
		/*
		 * Probe first: a failed mmap(MAP_FIXED) may already have unmapped
		 * the old range (the kernel unmaps before asking the file system),
		 * so only map over RAM once the file is known to be mappable.
		 * virtiofs without DAX maps MAP_PRIVATE through the page cache.
		 */
		void *probe = mmap(NULL, MEMIMG_PAGE, PROT_READ, MAP_PRIVATE, fd, 0);

		if (probe == MAP_FAILED) {
			log_warn("snapshot", "cannot map %s (%s); restoring memory by copying",
				 SNAP_MEMORY_BIN, strerror(errno));
			mode = MEMIMG_COPY;
		} else {
			munmap(probe, MEMIMG_PAGE);
		}
	}
	if (mode == MEMIMG_COPY)
		return memimg_copy_verified(fd, mi, gm, ram_is_zero, err, errlen);
	for (int i = 0; i < mi->nslots; i++) {
		const struct memimg_slot *s = &mi->slots[i];
		uint8_t *host = gm->slots[i].host;
		void *p = mmap(host, s->size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, fd, (off_t)s->file_offset);

		if (p == MAP_FAILED) {
			ret = -errno;
			snprintf(err, errlen, "%s: mapping slot %d: %s", SNAP_MEMORY_BIN, i,
				 strerror(-ret));
			return ret;
		}
		/* The new mapping does not inherit gmem_alloc's advice. */
		madvise(host, s->size, MADV_DONTDUMP);
		madvise(host, s->size, MADV_DONTFORK);
		gm->ram_from_file = true;
	}
	return 0;
}
