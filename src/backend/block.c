/*
 * Block backend: raw image file or block device, asynchronous I/O through
 * io_uring, completions delivered on the event loop (eventfd) or by polling.
 *
 * Locking: b->lock guards the ring and the lists. Callbacks run without it,
 * so a callback may submit again; the device's own lock is always taken
 * before b->lock (block_submit under the device lock), never after.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <liburing.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "amber/block.h"
#include "amber/evloop.h"
#include "amber/log.h"

#define BLOCK_RING_ENTRIES 256
#define BLOCK_ZERO_CHUNK   (64 * 1024)

struct block_dev {
	char *path;
	int fd;
	uint64_t size;
	bool ro;
	unsigned dio_align;		/* O_DIRECT: buffer/length alignment; 0 = buffered */
	struct evloop *loop;
	int efd;			/* completion eventfd, -1 without a loop */

	pthread_mutex_t lock;
	pthread_cond_t idle;
	bool have_ring;
	struct io_uring ring;
	unsigned inflight;		/* submitted, callback not yet returned */
	unsigned in_ring;		/* in the ring, CQE not yet reaped */
	unsigned plugged;
	struct block_req *backlog_head, *backlog_tail;	/* waiting for ring space */
	struct block_req *done_head, *done_tail;	/* finished, callback pending */

	void (*batch_fn)(void *opaque);
	void *batch_opaque;
};

static const uint8_t block_zeroes[BLOCK_ZERO_CHUNK];

static void req_list_append(struct block_req **head, struct block_req **tail, struct block_req *r)
{
	r->next = NULL;
	if (*tail)
		(*tail)->next = r;
	else
		*head = r;
	*tail = r;
}

/* Skip the first `skip` bytes of an iovec array (modifies it). */
static void iov_advance(struct iovec **iov, int *cnt, uint64_t skip)
{
	while (*cnt > 0 && skip >= (*iov)->iov_len) {
		skip -= (*iov)->iov_len;
		(*iov)++;
		(*cnt)--;
	}
	if (*cnt > 0 && skip) {
		(*iov)->iov_base = (uint8_t *)(*iov)->iov_base + skip;
		(*iov)->iov_len -= skip;
	}
}

/* ---- synchronous operations (fallbacks and the no-io_uring mode) ------- */

static int block_write_zeroes_sync(struct block_dev *b, uint64_t off, uint64_t len)
{
	while (len) {
		size_t n = len < BLOCK_ZERO_CHUNK ? len : BLOCK_ZERO_CHUNK;
		ssize_t w = pwrite(b->fd, block_zeroes, n, (off_t)off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		off += (uint64_t)w;
		len -= (uint64_t)w;
	}
	return 0;
}

static int block_fallocate(struct block_dev *b, int mode, uint64_t off, uint64_t len)
{
	return fallocate(b->fd, mode, (off_t)off, (off_t)len) < 0 ? -errno : 0;
}

static bool block_unsupported(int ret)
{
	return ret == -EOPNOTSUPP || ret == -EINVAL || ret == -ENOSYS || ret == -ENOTTY;
}

/*
 * Zeroing a range: prefer ZERO_RANGE (keeps blocks allocated), then punching
 * (reads as zeroes too), then writing zeroes. DISCARD prefers the punch.
 */
static int block_zero_sync(struct block_dev *b, enum block_op op, uint64_t off, uint64_t len)
{
	const int punch = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	const int zero = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
	int ret;

	ret = block_fallocate(b, op == BLOCK_OP_DISCARD ? punch : zero, off, len);
	if (!block_unsupported(ret))
		return ret;
	ret = block_fallocate(b, op == BLOCK_OP_DISCARD ? zero : punch, off, len);
	if (!block_unsupported(ret))
		return ret;
	return block_write_zeroes_sync(b, off, len);
}

/* Finish a READ/WRITE from req->done_bytes on. */
static int block_rw_sync(struct block_dev *b, struct block_req *req)
{
	struct iovec *iov = req->iov;
	int cnt = req->iovcnt;

	iov_advance(&iov, &cnt, req->done_bytes);
	while (req->done_bytes < req->len && cnt > 0) {
		off_t off = (off_t)(req->offset + req->done_bytes);
		ssize_t n;

		if (req->op == BLOCK_OP_READ)
			n = preadv(b->fd, iov, cnt, off);
		else
			n = pwritev2(b->fd, iov, cnt, off, req->flags & BLOCK_REQ_FUA ? RWF_DSYNC : 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;	/* the image shrank under us */
		req->done_bytes += (uint64_t)n;
		iov_advance(&iov, &cnt, (uint64_t)n);
	}
	return 0;
}

static int block_exec_sync(struct block_dev *b, struct block_req *req)
{
	switch (req->op) {
	case BLOCK_OP_READ:
	case BLOCK_OP_WRITE:
		return block_rw_sync(b, req);
	case BLOCK_OP_FLUSH:
		return fdatasync(b->fd) < 0 ? -errno : 0;
	case BLOCK_OP_DISCARD:
	case BLOCK_OP_WRITE_ZEROES:
		return block_zero_sync(b, req->op, req->offset, req->len);
	}
	return -EINVAL;
}

/*
 * Turn an io_uring result into the request's final result, finishing short
 * transfers and unsupported zeroing synchronously (rare; runs on the
 * completing thread without b->lock).
 */
static int block_finish(struct block_dev *b, struct block_req *req, int res)
{
	switch (req->op) {
	case BLOCK_OP_READ:
	case BLOCK_OP_WRITE:
		if (res < 0)
			return res;
		if (res == 0 && req->len)
			return -EIO;
		req->done_bytes += (uint64_t)res;
		return req->done_bytes < req->len ? block_rw_sync(b, req) : 0;
	case BLOCK_OP_DISCARD:
	case BLOCK_OP_WRITE_ZEROES:
		if (block_unsupported(res))
			return block_zero_sync(b, req->op, req->offset, req->len);
		return res;
	case BLOCK_OP_FLUSH:
		return res;
	}
	return res;
}

/* ---- the ring ----------------------------------------------------------- */

/* Put req into the ring; false when it is full. Caller holds b->lock. */
static bool block_ring_queue(struct block_dev *b, struct block_req *req)
{
	struct io_uring_sqe *sqe;

	if (b->in_ring >= BLOCK_RING_ENTRIES)
		return false;
	sqe = io_uring_get_sqe(&b->ring);
	if (!sqe)
		return false;
	switch (req->op) {
	case BLOCK_OP_READ:
		io_uring_prep_readv(sqe, b->fd, req->iov, (unsigned)req->iovcnt, req->offset);
		break;
	case BLOCK_OP_WRITE:
		io_uring_prep_writev2(sqe, b->fd, req->iov, (unsigned)req->iovcnt, req->offset,
				      req->flags & BLOCK_REQ_FUA ? RWF_DSYNC : 0);
		break;
	case BLOCK_OP_FLUSH:
		io_uring_prep_fsync(sqe, b->fd, IORING_FSYNC_DATASYNC);
		break;
	case BLOCK_OP_DISCARD:
		io_uring_prep_fallocate(sqe, b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					req->offset, req->len);
		break;
	case BLOCK_OP_WRITE_ZEROES:
		io_uring_prep_fallocate(sqe, b->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
					req->offset, req->len);
		break;
	}
	io_uring_sqe_set_data(sqe, req);
	b->in_ring++;
	return true;
}

static void block_ring_submit(struct block_dev *b)
{
	int ret;

	if (b->plugged || !io_uring_sq_ready(&b->ring))
		return;
	ret = io_uring_submit(&b->ring);
	/* Entries left in the SQ ring are retried at the next submit or poll. */
	if (ret < 0 && ret != -EAGAIN && ret != -EBUSY && ret != -EINTR)
		log_error("block", "%s: io_uring_submit: %s", b->path, strerror(-ret));
}

static void block_signal(struct block_dev *b)
{
	uint64_t one = 1;

	if (b->efd >= 0 && write(b->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_error("block", "%s: eventfd write: %s", b->path, strerror(errno));
}

/* ---- O_DIRECT with unaligned buffers ------------------------------------ */

static bool block_iov_aligned(const struct block_dev *b, const struct block_req *req)
{
	uintptr_t mask = b->dio_align - 1, bits = 0;

	for (int i = 0; i < req->iovcnt; i++)
		bits |= (uintptr_t)req->iov[i].iov_base | req->iov[i].iov_len;
	return !(bits & mask);
}

/*
 * O_DIRECT refuses (EINVAL) buffers and lengths that are not aligned to the
 * device's direct I/O alignment, but an NVMe PRP1 may point at any dword:
 * such a request moves through one aligned buffer instead (like QEMU's
 * bounce buffers). Only unusual guests pay for it; Linux's own I/O is
 * page aligned.
 */
static int block_bounce_begin(struct block_dev *b, struct block_req *req)
{
	uint8_t *p;

	if (posix_memalign(&req->bounce, b->dio_align, req->len ? req->len : b->dio_align))
		return -ENOMEM;
	req->orig_iov = req->iov;
	req->orig_iovcnt = req->iovcnt;
	p = req->bounce;
	if (req->op == BLOCK_OP_WRITE)
		for (int i = 0; i < req->iovcnt; i++) {
			memcpy(p, req->iov[i].iov_base, req->iov[i].iov_len);
			p += req->iov[i].iov_len;
		}
	req->bounce_iov = (struct iovec){ req->bounce, req->len };
	req->iov = &req->bounce_iov;
	req->iovcnt = 1;
	return 0;
}

/* Before the callback: reads copy out, and the caller's iovecs come back. */
static void block_bounce_end(struct block_req *req, int res)
{
	const uint8_t *p = req->bounce;

	if (req->op == BLOCK_OP_READ && res == 0)
		for (int i = 0; i < req->orig_iovcnt; i++) {
			memcpy(req->orig_iov[i].iov_base, p, req->orig_iov[i].iov_len);
			p += req->orig_iov[i].iov_len;
		}
	free(req->bounce);
	req->bounce = NULL;
	req->iov = req->orig_iov;
	req->iovcnt = req->orig_iovcnt;
}

int block_submit(struct block_dev *b, struct block_req *req)
{
	int ret;

	req->bounce = NULL;
	if (req->op == BLOCK_OP_READ || req->op == BLOCK_OP_WRITE) {
		if (req->iovcnt < 0 || (req->iovcnt && !req->iov))
			return -EINVAL;
		req->len = 0;
		for (int i = 0; i < req->iovcnt; i++)
			req->len += req->iov[i].iov_len;
	}
	if (req->op != BLOCK_OP_FLUSH &&
	    (req->offset > b->size || req->len > b->size - req->offset))
		return -EINVAL;
	if (b->ro && req->op != BLOCK_OP_READ && req->op != BLOCK_OP_FLUSH)
		return -EROFS;
	if (b->dio_align && (req->op == BLOCK_OP_READ || req->op == BLOCK_OP_WRITE) &&
	    !block_iov_aligned(b, req) && (ret = block_bounce_begin(b, req)) < 0)
		return ret;
	req->result = 0;
	req->done_bytes = 0;

	pthread_mutex_lock(&b->lock);
	b->inflight++;
	if (b->have_ring) {
		if (b->backlog_head || !block_ring_queue(b, req))
			req_list_append(&b->backlog_head, &b->backlog_tail, req);
		else
			block_ring_submit(b);
		pthread_mutex_unlock(&b->lock);
		return 0;
	}
	pthread_mutex_unlock(&b->lock);

	/* No io_uring: do it now, deliver the completion later like the ring would. */
	ret = block_exec_sync(b, req);
	pthread_mutex_lock(&b->lock);
	req->result = ret;
	req_list_append(&b->done_head, &b->done_tail, req);
	pthread_mutex_unlock(&b->lock);
	block_signal(b);
	return 0;
}

void block_plug(struct block_dev *b)
{
	pthread_mutex_lock(&b->lock);
	b->plugged++;
	pthread_mutex_unlock(&b->lock);
}

void block_unplug(struct block_dev *b)
{
	pthread_mutex_lock(&b->lock);
	if (b->plugged && --b->plugged == 0 && b->have_ring)
		block_ring_submit(b);
	pthread_mutex_unlock(&b->lock);
}

/* Move finished requests to *list. Caller holds b->lock. */
static void block_reap_locked(struct block_dev *b, bool wait,
			      struct block_req **head, struct block_req **tail)
{
	struct io_uring_cqe *cqe;
	bool got = false;

	if (b->done_head) {
		if (*tail)
			(*tail)->next = b->done_head;
		else
			*head = b->done_head;
		*tail = b->done_tail;
		b->done_head = b->done_tail = NULL;
		got = true;
	}
	if (!b->have_ring)
		return;
	for (;;) {
		int ret = io_uring_peek_cqe(&b->ring, &cqe);

		if (ret == -EAGAIN && wait && !got && b->in_ring) {
			block_ring_submit(b);
			ret = io_uring_wait_cqe(&b->ring, &cqe);
			if (ret == -EINTR)
				continue;
		}
		if (ret < 0)
			break;
		struct block_req *req = io_uring_cqe_get_data(cqe);

		req->result = cqe->res;
		io_uring_cqe_seen(&b->ring, cqe);
		b->in_ring--;
		req_list_append(head, tail, req);
		got = true;
	}
	/* Space freed in the ring: move the backlog in. */
	while (b->backlog_head && block_ring_queue(b, b->backlog_head)) {
		b->backlog_head = b->backlog_head->next;
		if (!b->backlog_head)
			b->backlog_tail = NULL;
	}
	block_ring_submit(b);
}

int block_poll(struct block_dev *b, bool wait)
{
	struct block_req *head = NULL, *tail = NULL;
	int n = 0;

	pthread_mutex_lock(&b->lock);
	block_reap_locked(b, wait, &head, &tail);
	pthread_mutex_unlock(&b->lock);

	while (head) {
		struct block_req *req = head;
		int res = req->result;

		head = req->next;
		if (b->have_ring)
			res = block_finish(b, req, res);
		if (req->bounce)
			block_bounce_end(req, res);
		req->result = res;
		req->done(req, res);
		n++;
	}
	if (n && b->batch_fn)
		b->batch_fn(b->batch_opaque);
	if (n) {
		pthread_mutex_lock(&b->lock);
		b->inflight -= (unsigned)n;
		if (!b->inflight)
			pthread_cond_broadcast(&b->idle);
		pthread_mutex_unlock(&b->lock);
	}
	return n;
}

void block_drain(struct block_dev *b)
{
	pthread_mutex_lock(&b->lock);
	while (b->inflight) {
		if (b->in_ring || b->done_head || b->backlog_head) {
			pthread_mutex_unlock(&b->lock);
			block_poll(b, true);
			pthread_mutex_lock(&b->lock);
		} else {
			/* Another thread is running the last callbacks. */
			pthread_cond_wait(&b->idle, &b->lock);
		}
	}
	pthread_mutex_unlock(&b->lock);
}

unsigned block_inflight(struct block_dev *b)
{
	unsigned n;

	pthread_mutex_lock(&b->lock);
	n = b->inflight;
	pthread_mutex_unlock(&b->lock);
	return n;
}

int block_flush(struct block_dev *b)
{
	return b->ro || fdatasync(b->fd) == 0 ? 0 : -errno;
}

void block_set_batch_hook(struct block_dev *b, void (*fn)(void *opaque), void *opaque)
{
	b->batch_fn = fn;
	b->batch_opaque = opaque;
}

static void block_efd_ready(void *opaque, int fd, uint32_t events)
{
	struct block_dev *b = opaque;
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_error("block", "%s: eventfd read: %s", b->path, strerror(errno));
	block_poll(b, false);
}

/* ---- open/close --------------------------------------------------------- */

static int block_get_size(struct block_dev *b, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(b->fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", b->path, strerror(errno));
		return -errno;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(b->fd, BLKGETSIZE64, &b->size) < 0) {
			snprintf(err, errlen, "%s: cannot read the device size: %s", b->path,
				 strerror(errno));
			return -errno;
		}
	} else if (S_ISREG(st.st_mode)) {
		b->size = (uint64_t)st.st_size;
	} else {
		snprintf(err, errlen, "%s: not a regular file or block device", b->path);
		return -EINVAL;
	}
	return 0;
}

/*
 * O_DIRECT alignment of buffers and lengths: the logical block size of a
 * block device, what statx reports for a file, at least 512.
 */
static unsigned block_dio_align(struct block_dev *b)
{
	unsigned align = 512;
	struct stat st;
	int ssz;

	if (fstat(b->fd, &st) == 0 && S_ISBLK(st.st_mode)) {
		if (ioctl(b->fd, BLKSSZGET, &ssz) == 0 && ssz > 0 && (unsigned)ssz > align)
			align = (unsigned)ssz;
	} else {
#ifdef STATX_DIOALIGN
		struct statx sx;

		if (statx(b->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
		    (sx.stx_mask & STATX_DIOALIGN)) {
			if (sx.stx_dio_mem_align > align)
				align = sx.stx_dio_mem_align;
			if (sx.stx_dio_offset_align > align)
				align = sx.stx_dio_offset_align;
		}
#endif
	}
	return align;
}

int block_open(struct block_dev **out, const char *path, unsigned flags, unsigned block_size,
	       struct evloop *loop, char *err, size_t errlen)
{
	struct block_dev *b;
	int oflags = O_CLOEXEC | ((flags & BLOCK_RDONLY) ? O_RDONLY : O_RDWR);
	int ret;

	if (flags & BLOCK_DIRECT)
		oflags |= O_DIRECT;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->fd = b->efd = -1;
	b->ro = flags & BLOCK_RDONLY;
	b->loop = loop;
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->idle, NULL);
	b->path = strdup(path);
	if (!b->path) {
		ret = -ENOMEM;
		goto fail;
	}
	b->fd = open(path, oflags);
	if (b->fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	ret = block_get_size(b, err, errlen);
	if (ret < 0)
		goto fail;
	if (flags & BLOCK_DIRECT)
		b->dio_align = block_dio_align(b);
	if (b->size == 0 || (block_size && b->size % block_size)) {
		snprintf(err, errlen, "%s: size %" PRIu64 " bytes is not a positive multiple of "
			 "the %u-byte block size", path, b->size, block_size);
		ret = -EINVAL;
		goto fail;
	}
	b->have_ring = io_uring_queue_init(BLOCK_RING_ENTRIES, &b->ring, 0) == 0;
	if (!b->have_ring)
		log_info("block", "%s: io_uring unavailable, using synchronous I/O", path);
	if (loop) {
		b->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (b->efd < 0) {
			ret = -errno;
			snprintf(err, errlen, "%s: eventfd: %s", path, strerror(errno));
			goto fail_ring;
		}
		if (b->have_ring && (ret = io_uring_register_eventfd(&b->ring, b->efd)) < 0) {
			snprintf(err, errlen, "%s: io_uring eventfd: %s", path, strerror(-ret));
			goto fail_efd;
		}
		ret = evloop_add_fd(loop, b->efd, EPOLLIN, block_efd_ready, b);
		if (ret < 0) {
			snprintf(err, errlen, "%s: event loop: %s", path, strerror(-ret));
			goto fail_efd;
		}
	}
	*out = b;
	return 0;
fail_efd:
	close(b->efd);
fail_ring:
	if (b->have_ring)
		io_uring_queue_exit(&b->ring);
fail:
	if (b->fd >= 0)
		close(b->fd);
	pthread_cond_destroy(&b->idle);
	pthread_mutex_destroy(&b->lock);
	free(b->path);
	free(b);
	return ret;
}

void block_close(struct block_dev *b)
{
	if (!b)
		return;
	block_drain(b);
	if (b->efd >= 0) {
		evloop_del_fd(b->loop, b->efd);
		close(b->efd);
	}
	if (b->have_ring)
		io_uring_queue_exit(&b->ring);
	close(b->fd);
	pthread_cond_destroy(&b->idle);
	pthread_mutex_destroy(&b->lock);
	free(b->path);
	free(b);
}

uint64_t block_size(const struct block_dev *b)
{
	return b->size;
}

bool block_read_only(const struct block_dev *b)
{
	return b->ro;
}

const char *block_path(const struct block_dev *b)
{
	return b->path;
}
