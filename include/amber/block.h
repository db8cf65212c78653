/*
 * Block backend: a raw image file or a block device, with asynchronous I/O
 * through io_uring. The device model owns every struct block_req (e.g. one
 * per queue slot, so the hot path never allocates) and the iovecs, which
 * point straight into guest RAM (no bounce copy).
 *
 * Completion: req->done runs on the event-loop thread (io_uring signals an
 * eventfd registered with evloop_add_fd), or, when the backend was opened
 * without a loop, from block_poll()/block_drain() on the calling thread.
 * It never runs from inside block_submit(), so a device may submit while
 * holding its own lock. When io_uring is unavailable the operation runs
 * synchronously inside block_submit() but its completion is still delivered
 * later, the same way.
 */
#ifndef AMBER_BLOCK_H
#define AMBER_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct evloop;
struct block_dev;

enum block_op {
	BLOCK_OP_READ,
	BLOCK_OP_WRITE,
	BLOCK_OP_FLUSH,		/* fdatasync */
	BLOCK_OP_DISCARD,	/* punch a hole; reads of the range then return zeroes */
	BLOCK_OP_WRITE_ZEROES,	/* zero the range, keeping it allocated */
};

/* Request flags */
#define BLOCK_REQ_FUA  0x1	/* write: durable before completion (RWF_DSYNC) */

struct block_req {
	/* Filled by the caller */
	enum block_op op;
	unsigned flags;
	uint64_t offset;		/* bytes */
	uint64_t len;			/* DISCARD/WRITE_ZEROES; READ/WRITE use iov */
	struct iovec *iov;		/* READ/WRITE; may be modified by the backend */
	int iovcnt;
	void (*done)(struct block_req *req, int ret);	/* ret: 0 or -errno */
	/* Backend bookkeeping */
	int result;
	uint64_t done_bytes;		/* progress of a short transfer */
	struct block_req *next;
	/* O_DIRECT with buffers it cannot take: an aligned copy replaces iov */
	void *bounce;
	struct iovec bounce_iov;
	struct iovec *orig_iov;
	int orig_iovcnt;
};

/* block_open flags */
#define BLOCK_RDONLY  0x1
#define BLOCK_DIRECT  0x2	/* O_DIRECT; buffers that are not aligned as the host
				 * needs go through an aligned copy (slower) */

/*
 * Open path. loop may be NULL (completions then come from block_poll).
 * Refuses sizes that are not a multiple of block_size (with a message naming
 * the file in err). 0 or -errno.
 */
int block_open(struct block_dev **out, const char *path, unsigned flags, unsigned block_size,
	       struct evloop *loop, char *err, size_t errlen);
/* Drains in-flight requests (their callbacks run) and closes. */
void block_close(struct block_dev *b);

uint64_t block_size(const struct block_dev *b);
bool block_read_only(const struct block_dev *b);
const char *block_path(const struct block_dev *b);

/*
 * Start req. Returns 0 (req->done will run exactly once) or -EINVAL for a
 * malformed request (done will not run). Never calls req->done itself.
 */
int block_submit(struct block_dev *b, struct block_req *req);
/*
 * Batch submissions: between plug and unplug, block_submit only queues and
 * unplug hands everything to the kernel with one system call.
 */
void block_plug(struct block_dev *b);
void block_unplug(struct block_dev *b);

/*
 * Deliver finished requests on the calling thread. With wait, block until at
 * least one request finished (if any is in flight). Returns the number of
 * callbacks run.
 */
int block_poll(struct block_dev *b, bool wait);
/* Wait until no request is in flight, running callbacks as needed. */
void block_drain(struct block_dev *b);
unsigned block_inflight(struct block_dev *b);
/* Synchronous fdatasync (shutdown, close). 0 or -errno. */
int block_flush(struct block_dev *b);

/*
 * Optional: called after each batch of completions (e.g. to send one
 * interrupt per batch rather than per request), on the completing thread.
 */
void block_set_batch_hook(struct block_dev *b, void (*fn)(void *opaque), void *opaque);

#endif
