/*
 * NVMe controller: private definitions shared by the files of src/hw/nvme/.
 * Citations are to the NVM Express Base Specification, revision 1.4.
 *
 * Threads and locking: register and doorbell writes arrive on vCPU threads,
 * block completions on the event-loop thread (or whoever polls). One mutex,
 * ctrl->lock, guards all controller state; it is never released in the middle
 * of processing, so nothing waits while holding it: work that must wait for
 * in-flight I/O (controller reset, shutdown, Delete I/O SQ) is finished by the
 * completion that brings the in-flight count to zero.
 */
#ifndef AMBER_HW_NVME_H
#define AMBER_HW_NVME_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "amber/block.h"
#include "amber/device.h"
#include "amber/machine.h"
#include "amber/pci.h"

/* ---- limits of this implementation -------------------------------------- */
#define NVME_MAX_IOQ        64		/* I/O queue pairs (Number of Queues feature) */
#define NVME_NQ             (NVME_MAX_IOQ + 1)	/* queue ids 0..64 */
#define NVME_MQES           1023	/* CAP.MQES: 1024 entries (0's based) */
#define NVME_MAX_NS         32
#define NVME_MDTS           7		/* 2^7 * 4 KiB = 512 KiB per command */
#define NVME_MAX_XFER       ((1u << NVME_MDTS) * 4096u)
#define NVME_MAX_IOV        (NVME_MAX_XFER / 4096 + 1)
#define NVME_SQ_SLOTS       128		/* commands in flight per SQ */
#define NVME_AERL           3		/* 4 outstanding AERs (0's based) */
#define NVME_ACL            3		/* Abort Command Limit (0's based) */
#define NVME_ELPE           7		/* error log entries (0's based) */
#define NVME_MAX_EVENTS     8		/* queued asynchronous events */
#define NVME_LBA_SHIFT      9		/* 512-byte LBAs */
#define NVME_BAR0_SIZE      0x4000	/* 16 KiB: Windows refuses smaller */
#define NVME_MSIX_BAR       4
#define NVME_NVEC           NVME_NQ	/* one MSI-X vector per CQ */
#define NVME_PCI_VENDOR     0x1b36	/* Red Hat, as QEMU's emulated devices */
#define NVME_PCI_DEVICE     0x0010

/* ---- controller registers (§3.1) --------------------------------------- */
#define NVME_REG_CAP    0x00
#define NVME_REG_VS     0x08
#define NVME_REG_INTMS  0x0c
#define NVME_REG_INTMC  0x10
#define NVME_REG_CC     0x14
#define NVME_REG_CSTS   0x1c
#define NVME_REG_NSSR   0x20
#define NVME_REG_AQA    0x24
#define NVME_REG_ASQ    0x28
#define NVME_REG_ACQ    0x30
#define NVME_REG_DBS    0x1000		/* doorbells, CAP.DSTRD = 0: 4-byte stride */

#define NVME_CAP_MQES(x)    ((uint64_t)(x) & 0xffff)
#define NVME_CAP_CQR        (1ULL << 16)
#define NVME_CAP_TO(x)      ((uint64_t)(x) << 24)	/* 500 ms units */
#define NVME_CAP_CSS_NVM    (1ULL << 37)
#define NVME_CAP_MPSMIN(x)  ((uint64_t)(x) << 48)
#define NVME_CAP_MPSMAX(x)  ((uint64_t)(x) << 52)
#define NVME_MPSMAX         4		/* page sizes 4 KiB .. 64 KiB */

#define NVME_VS_1_4         0x00010400

#define NVME_CC_EN          (1u << 0)
#define NVME_CC_CSS(cc)     (((cc) >> 4) & 7)
#define NVME_CC_MPS(cc)     (((cc) >> 7) & 0xf)
#define NVME_CC_AMS(cc)     (((cc) >> 11) & 7)
#define NVME_CC_SHN(cc)     (((cc) >> 14) & 3)
#define NVME_CC_IOSQES(cc)  (((cc) >> 16) & 0xf)
#define NVME_CC_IOCQES(cc)  (((cc) >> 20) & 0xf)
#define NVME_CC_WMASK       0x00fffff1u

#define NVME_CSTS_RDY       (1u << 0)
#define NVME_CSTS_CFS       (1u << 1)
#define NVME_CSTS_SHST_MASK (3u << 2)
#define NVME_CSTS_SHST_OCCURRING (1u << 2)
#define NVME_CSTS_SHST_COMPLETE  (2u << 2)

#define NVME_AQA_ASQS(a)    (((a) & 0xfff) + 1)
#define NVME_AQA_ACQS(a)    ((((a) >> 16) & 0xfff) + 1)

/* ---- commands (§4.2) and completions (§4.6) ----------------------------- */
struct nvme_cmd {
	uint8_t opc;
	uint8_t flags;			/* FUSE 1:0, PSDT 7:6 */
	uint16_t cid;
	uint32_t nsid;
	uint64_t rsvd2;
	uint64_t mptr;
	uint64_t prp1;
	uint64_t prp2;
	uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
};
_Static_assert(sizeof(struct nvme_cmd) == 64, "SQ entry is 64 bytes");

struct nvme_cqe {
	uint32_t dw0;
	uint32_t dw1;
	uint16_t sqhd;
	uint16_t sqid;
	uint16_t cid;
	uint16_t status;		/* phase in bit 0 */
};
_Static_assert(sizeof(struct nvme_cqe) == 16, "CQ entry is 16 bytes");

/* Admin opcodes (§5) */
enum {
	NVME_ADM_DELETE_SQ = 0x00,
	NVME_ADM_CREATE_SQ = 0x01,
	NVME_ADM_GET_LOG_PAGE = 0x02,
	NVME_ADM_DELETE_CQ = 0x04,
	NVME_ADM_CREATE_CQ = 0x05,
	NVME_ADM_IDENTIFY = 0x06,
	NVME_ADM_ABORT = 0x08,
	NVME_ADM_SET_FEATURES = 0x09,
	NVME_ADM_GET_FEATURES = 0x0a,
	NVME_ADM_ASYNC_EVENT = 0x0c,
	NVME_ADM_KEEP_ALIVE = 0x18,
	NVME_ADM_DBBUF_CONFIG = 0x7c,
};

/* NVM command set I/O opcodes (§6) */
enum {
	NVME_IO_FLUSH = 0x00,
	NVME_IO_WRITE = 0x01,
	NVME_IO_READ = 0x02,
	NVME_IO_WRITE_ZEROES = 0x08,
	NVME_IO_DSM = 0x09,
};

/*
 * Status: SCT in bits 10:8, SC in bits 7:0, DNR bit 14 — i.e. the 15-bit
 * Status Field of §4.6.1 without the phase tag, shifted right by one.
 */
#define NVME_SCT_GENERIC   0x000
#define NVME_SCT_CMD       0x100
#define NVME_SCT_MEDIA     0x200
#define NVME_DNR           0x4000

enum {
	NVME_SUCCESS = 0x00,
	NVME_INVALID_OPCODE = 0x01,
	NVME_INVALID_FIELD = 0x02,
	NVME_DATA_TRANSFER_ERROR = 0x04,
	NVME_INTERNAL_ERROR = 0x06,
	NVME_ABORT_REQUESTED = 0x07,
	NVME_ABORT_SQ_DELETED = 0x08,
	NVME_INVALID_NAMESPACE = 0x0b,
	NVME_COMMAND_SEQUENCE_ERROR = 0x0c,
	NVME_INVALID_PRP_OFFSET = 0x13,
	NVME_NS_WRITE_PROTECTED = 0x20,
	NVME_LBA_OUT_OF_RANGE = 0x80,
	NVME_CAPACITY_EXCEEDED = 0x81,

	NVME_CQ_INVALID = NVME_SCT_CMD | 0x00,
	NVME_INVALID_QID = NVME_SCT_CMD | 0x01,
	NVME_INVALID_QSIZE = NVME_SCT_CMD | 0x02,
	NVME_AER_LIMIT_EXCEEDED = NVME_SCT_CMD | 0x05,
	NVME_INVALID_VECTOR = NVME_SCT_CMD | 0x08,
	NVME_INVALID_LOG_PAGE = NVME_SCT_CMD | 0x09,
	NVME_INVALID_QUEUE_DELETION = NVME_SCT_CMD | 0x0c,
	NVME_FEAT_NOT_SAVEABLE = NVME_SCT_CMD | 0x0d,

	NVME_WRITE_FAULT = NVME_SCT_MEDIA | 0x80,
	NVME_UNRECOVERED_READ = NVME_SCT_MEDIA | 0x81,
};

/* Asynchronous events (§5.2): type in dw0 bits 2:0, info 15:8, log id 23:16 */
#define NVME_AER_TYPE_ERROR   0
#define NVME_AER_TYPE_SMART   1
#define NVME_AER_INFO_INVALID_DB_REG   0x00
#define NVME_AER_INFO_INVALID_DB_VALUE 0x01
#define NVME_AER_INFO_SMART_TEMP       0x01
#define NVME_LOG_ERROR        0x01
#define NVME_LOG_SMART        0x02
#define NVME_LOG_FW_SLOT      0x03

/* Feature identifiers (§5.21.1) */
enum {
	NVME_FEAT_ARBITRATION = 0x01,
	NVME_FEAT_POWER_MGMT = 0x02,
	NVME_FEAT_TEMP_THRESH = 0x04,
	NVME_FEAT_ERROR_RECOVERY = 0x05,
	NVME_FEAT_VWC = 0x06,
	NVME_FEAT_NUM_QUEUES = 0x07,
	NVME_FEAT_IRQ_COALESCE = 0x08,
	NVME_FEAT_IRQ_CONFIG = 0x09,
	NVME_FEAT_WRITE_ATOMIC = 0x0a,
	NVME_FEAT_ASYNC_EVENT = 0x0b,
};

/* Composite temperature reported in SMART, Kelvin (20 °C). */
#define NVME_TEMPERATURE    293
#define NVME_WCTEMP         343
#define NVME_CCTEMP         373

/* ---- state --------------------------------------------------------------- */
struct nvme_ctrl;
struct nvme_sq;

struct nvme_ns {
	uint32_t nsid;
	struct block_dev *blk;
	uint64_t nlba;
	bool ro;
	char path[256];
	uint8_t nguid[16];
	uint8_t uuid[16];
};

enum nvme_req_state { NVME_REQ_FREE, NVME_REQ_ACTIVE, NVME_REQ_CQ_WAIT };

/* One command slot; preallocated per SQ so the hot path never allocates. */
struct nvme_req {
	struct block_req breq;		/* first: completions find the slot from it */
	struct nvme_ctrl *ctrl;
	struct nvme_sq *sq;
	struct nvme_ns *ns;
	struct nvme_cmd cmd;
	enum nvme_req_state state;
	bool in_backend;		/* a block request is in flight */
	uint16_t status;
	uint32_t dw0;
	uint16_t sqhd;			/* SQ head reported with the completion */
	/* DSM deallocate: next range to process, number of ranges */
	uint16_t dsm_next, dsm_nr;
	struct iovec *iov;		/* NVME_MAX_IOV entries (I/O queues) */
	struct nvme_req *next;		/* free list or CQ wait list */
};

struct nvme_cq {
	bool valid;
	uint64_t base;
	uint16_t size, head, tail;
	bool phase;			/* phase tag of the next entry posted */
	bool ien;
	bool pc;
	uint16_t vector;
	unsigned nsq;			/* SQs using this CQ */
	struct nvme_req *wait_head, *wait_tail;	/* completions waiting for space */
};

struct nvme_sq {
	bool valid;
	uint16_t qid;
	uint64_t base;
	uint16_t size, head, tail;
	uint16_t cqid;
	uint8_t prio;
	bool processing;		/* nvme_sq_process is running (re-entry guard) */
	bool deleting;			/* Delete I/O SQ waits for in-flight commands */
	struct nvme_req *delete_req;	/* the admin command to complete then */
	struct nvme_req *slots;
	unsigned nslots, active;	/* active: slots not free */
	unsigned inflight;		/* slots with a block request in flight */
	struct nvme_req *free;
	struct iovec *iov_pool;
};

struct nvme_event {
	uint8_t type, info, log;
};

/* One Error Information log entry (§5.14.1.1), kept in host order. */
struct nvme_error_entry {
	uint64_t count;
	uint16_t sqid, cid, status;
};

/*
 * Features and other flat state: one struct so the saved state is one
 * state_field table (see state.c).
 */
struct nvme_regs {
	uint32_t cc, csts, intms, aqa;
	uint64_t asq, acq;
	/* features (§5.21.1) */
	uint32_t arbitration, power_mgmt, error_recovery, irq_coalesce, write_atomic;
	uint32_t async_event_cfg;
	uint32_t irq_config[NVME_NVEC];
	uint16_t temp_over[9], temp_under[9];
	bool vwc;
	/* Doorbell Buffer Config (§5.8): 0 when not configured */
	uint64_t dbbuf_dbs, dbbuf_eis;
	/* Asynchronous events */
	uint32_t aer_masked;		/* bit per event type: reported, log not read */
	uint64_t error_count;
	/* SMART counters (§5.14.1.2), in 512-byte units and commands */
	uint64_t sectors_read, sectors_written, host_reads, host_writes;
};

/*
 * eventfd.c: a doorbell KVM signals through an eventfd (ioeventfd) instead of
 * an MMIO exit, read on the event loop; one per I/O queue and kind.
 */
struct nvme_dbfd {
	struct nvme_ctrl *ctrl;
	uint16_t qid;
	bool cq;			/* CQ head doorbell, else SQ tail */
	int fd;				/* -1 until first needed */
	uint64_t addr;			/* guest address KVM watches, 0 = none */
};

/* An MSI-X vector sent by writing an eventfd KVM injects from (irqfd). */
struct nvme_vecfd {
	int fd;				/* -1 until first needed */
	bool bound;			/* KVM routes fd to (addr, data) */
	bool live;			/* MSI-X on and the vector unmasked */
	uint64_t addr;
	uint32_t data;
};

/* Interrupt coalescing (coalesce.c): the adaptive walk of one vector. */
#define NVME_DIM_LEVELS 8
#define NVME_DIM_EPOCH  64		/* messages per measurement */
#define NVME_DIM_HOLD   8		/* epochs parked after coming back */

struct nvme_dim {
	uint8_t level;			/* index into the window sizes */
	int8_t dir;			/* +1 larger windows, -1 smaller */
	bool parked, reversed, have_prev;
	uint8_t hold;			/* parked epochs left before an idle-wait probe */
	uint64_t prev_rate;		/* completions/s in the last epoch */
	uint64_t park_rate;		/* ... when it parked */
};

struct nvme_coal_vec {
	uint64_t last;			/* when it last fired (ns) */
	uint32_t pending;		/* entries posted since */
	uint64_t wait_fetched;		/* coal.fetched when it began to wait */
	uint64_t epoch_start;
	uint32_t epoch_irqs, epoch_deferred, epoch_starved;
	uint32_t epoch_dropped;		/* deferred, then found consumed: not sent */
	uint64_t epoch_cpls;
	struct nvme_dim dim;
};

enum nvme_coal_mode { NVME_COAL_ADAPTIVE, NVME_COAL_OFF, NVME_COAL_FIXED };

struct nvme_ctrl {
	struct device *dev;
	struct machine *m;
	struct pci_dev pci;
	pthread_mutex_t lock;

	char serial[21];
	struct nvme_ns ns[NVME_MAX_NS];
	unsigned nns;

	uint64_t cap;
	struct nvme_regs r;
	uint64_t page_size;		/* from CC.MPS at enable */
	bool enabled;			/* CSTS.RDY set, queues usable */
	bool resetting;			/* CC.EN 1->0 waiting for in-flight I/O */
	bool shutting_down;		/* CC.SHN waiting for in-flight I/O */
	bool quiesced;
	bool direct;			/* open namespaces with O_DIRECT */
	bool intx;			/* INTx pin level */

	struct nvme_sq sq[NVME_NQ];
	struct nvme_cq cq[NVME_NQ];
	unsigned inflight;		/* block requests in flight, all SQs */

	struct nvme_req *aer[NVME_AERL + 1];	/* outstanding AERs, oldest first */
	unsigned naer;
	struct nvme_event events[NVME_MAX_EVENTS];
	unsigned nevents;
	struct nvme_error_entry errors[NVME_ELPE + 1];
	unsigned nerrors;		/* valid entries, newest first */

	uint64_t irq_pending[2];	/* CQs whose vector should fire */
	struct {
		enum nvme_coal_mode mode;	/* AMBER_NVME_COALESCE */
		uint64_t fixed_ns;		/* NVME_COAL_FIXED's window */
		int fd;				/* timerfd on the event loop, or -1 */
		uint64_t deadline;		/* the timer is armed for, 0 if not */
		uint64_t deferred[2];		/* vectors waiting for the timer */
		uint64_t muted[2];		/* vectors whose SQs the timer fetches */
		uint64_t fetched;		/* commands fetched, all SQs */
		uint64_t dropped;		/* deferred messages found not needed */
		struct nvme_coal_vec v[NVME_NVEC];
	} coal;				/* coalesce.c */

	struct nvme_dbfd dbfd[NVME_NQ][2];	/* [qid][0 SQ tail, 1 CQ head] */
	struct nvme_vecfd vecfd[NVME_NVEC];
	bool use_ioeventfd, use_irqfd;		/* AMBER_NVME_EVENTFD */
};

static inline uint16_t nvme_status_sc(uint16_t st)
{
	return st & 0xff;
}

/* nvme.c: registers, interrupts */
void nvme_irq_flush(struct nvme_ctrl *c);
void nvme_poll_inline(struct nvme_ctrl *c);
void nvme_irq_update_intx(struct nvme_ctrl *c);
/* coalesce.c */
int nvme_coal_init(struct nvme_ctrl *c);
void nvme_coal_free(struct nvme_ctrl *c);
void nvme_coal_posted(struct nvme_ctrl *c, unsigned v);
void nvme_coal_vector(struct nvme_ctrl *c, unsigned v, uint64_t now);
void nvme_coal_flush(struct nvme_ctrl *c, bool force);
bool nvme_coal_muted(const struct nvme_ctrl *c, unsigned v);
void nvme_coal_reset(struct nvme_ctrl *c);
uint64_t nvme_coal_now(const struct nvme_ctrl *c);
unsigned nvme_dim_epoch(struct nvme_dim *d, uint64_t cpl_rate, unsigned irqs, unsigned deferred,
			unsigned starved);
void nvme_fatal(struct nvme_ctrl *c, const char *why);

/* queue.c: SQ/CQ mechanics */
int nvme_sq_init(struct nvme_ctrl *c, uint16_t qid, uint64_t base, uint16_t size,
		 uint16_t cqid, uint8_t prio);
void nvme_sq_free(struct nvme_ctrl *c, struct nvme_sq *sq);
void nvme_cq_init(struct nvme_ctrl *c, uint16_t qid, uint64_t base, uint16_t size,
		  bool ien, uint16_t vector);
void nvme_cq_free(struct nvme_ctrl *c, struct nvme_cq *cq);
void nvme_sq_process(struct nvme_ctrl *c, struct nvme_sq *sq);
void nvme_process_all(struct nvme_ctrl *c);
void nvme_req_complete(struct nvme_ctrl *c, struct nvme_req *req, uint16_t status);
void nvme_cq_drain_waiting(struct nvme_ctrl *c, struct nvme_cq *cq);
void nvme_doorbell_write(struct nvme_ctrl *c, uint64_t off, uint32_t val);
void nvme_queues_reset(struct nvme_ctrl *c);
void nvme_inflight_done(struct nvme_ctrl *c);
uint16_t nvme_shadow_read(struct nvme_ctrl *c, uint16_t qid, bool cq, uint16_t fallback);
void nvme_cq_refresh_head(struct nvme_ctrl *c, uint16_t qid, bool ring);
bool nvme_cq_consumed(struct nvme_ctrl *c, uint16_t qid);
void nvme_sqs_mute(struct nvme_ctrl *c, unsigned v);
bool nvme_sqs_fetch(struct nvme_ctrl *c, const uint64_t *vectors);

/* admin.c */
void nvme_admin_exec(struct nvme_ctrl *c, struct nvme_req *req);
void nvme_event_post(struct nvme_ctrl *c, uint8_t type, uint8_t info, uint8_t log);
void nvme_event_dispatch(struct nvme_ctrl *c);
void nvme_error_record(struct nvme_ctrl *c, uint16_t sqid, uint16_t cid, uint16_t status);
void nvme_admin_features_reset(struct nvme_ctrl *c);

/* io.c */
void nvme_io_exec(struct nvme_ctrl *c, struct nvme_req *req);

/* prp.c: the one PRP walker (§4.3) */
struct nvme_prp_iter {
	const struct guest_mem *gm;
	uint64_t ps;			/* memory page size */
	uint64_t prp2;
	uint64_t remaining;		/* bytes not yet returned */
	unsigned index;			/* segments returned so far */
	uint64_t list;			/* gpa of the next PRP list entry */
	uint64_t list_left;		/* entries left in the current list page */
};
uint16_t nvme_prp_begin(struct nvme_prp_iter *it, const struct guest_mem *gm, uint64_t ps,
			uint64_t prp1, uint64_t prp2, uint64_t len);
/* Next guest-physical segment; *len 0 at the end. Returns an NVMe status. */
uint16_t nvme_prp_next(struct nvme_prp_iter *it, uint64_t *gpa, uint64_t *len);
/* Map the transfer as host iovecs into guest RAM (merged when contiguous). */
uint16_t nvme_prp_map(struct nvme_ctrl *c, const struct nvme_cmd *cmd, uint64_t len,
		      struct iovec *iov, unsigned max, unsigned *niov);
/*
 * Copy between buf and bytes [off, off + n) of a transfer of len bytes
 * described by the command's PRPs (admin data, DSM ranges).
 */
uint16_t nvme_prp_copy(struct nvme_ctrl *c, const struct nvme_cmd *cmd, uint64_t len,
		       uint64_t off, void *buf, uint64_t n, bool to_guest);

/*
 * eventfd.c: doorbells through ioeventfd and MSI-X through irqfd when the
 * machine offers them (m->ioeventfd, m->msi_irqfd), else MMIO exits and
 * pci_msix_notify. nvme_fast_sync (lock held) brings the registrations in
 * line with the controller's state (queues, shadow doorbells, BAR0, MSI-X
 * table); call it after anything that changes those.
 */
void nvme_fast_init(struct nvme_ctrl *c);
void nvme_fast_sync(struct nvme_ctrl *c);
bool nvme_fast_notify(struct nvme_ctrl *c, unsigned vec);
void nvme_fast_free(struct nvme_ctrl *c);

/* state.c */
int nvme_save(struct device *dev, json_t *obj);
int nvme_check(const json_t *obj, uint32_t version, char *err, size_t errlen);
int nvme_match(struct device *dev, const json_t *obj, char *err, size_t errlen);
int nvme_load(struct device *dev, const json_t *obj, uint32_t version);
#define NVME_STATE_VERSION 1

/* Test hook: deliver finished block I/O of every namespace (no event loop). */
int nvme_poll(struct device *dev);

#endif
