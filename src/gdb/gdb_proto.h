/*
 * GDB remote serial protocol internals: packet framing (packet.c) and the
 * protocol session (stub.c) that turns packets into target operations. The
 * session does no I/O itself (bytes in through gdb_session_input, bytes out
 * through a send callback), so tests and the fuzzer drive it directly; the
 * socket server in stub.c is a thin loop around it.
 */
#ifndef AMBER_GDB_PROTO_H
#define AMBER_GDB_PROTO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amber/gdb.h"

/*
 * Largest packet payload we accept (advertised as PacketSize in qSupported,
 * so gdb never sends more); larger input is consumed and refused with '-'.
 */
#define GDB_PKT_MAX	0x4000
/* Largest reply payload (hex memory dumps, 'g', target.xml chunks). */
#define GDB_REPLY_MAX	0x4000
/* Bytes one 'm' reply may carry: two hex digits each. */
#define GDB_MEM_MAX	(GDB_REPLY_MAX / 2)
#define GDB_MAX_SW_BP	256

enum gdb_pkt_event {
	GDB_PKT_NONE,		/* byte consumed, nothing complete yet */
	GDB_PKT_PACKET,		/* a packet with a good checksum: parser buf/len */
	GDB_PKT_BAD,		/* bad checksum, malformed or oversized: nack it */
	GDB_PKT_INTERRUPT,	/* 0x03 outside a packet: gdb's Ctrl-C */
	GDB_PKT_ACK,		/* '+' */
	GDB_PKT_NACK,		/* '-': retransmit the last packet */
};

struct gdb_pkt_parser {
	int state;
	uint8_t buf[GDB_PKT_MAX + 1];	/* decoded payload, NUL-terminated */
	size_t len;
	uint8_t sum;			/* modulo-256 sum of the raw bytes */
	uint8_t rx_sum;
	bool overflow;
	bool malformed;
};

void gdb_pkt_init(struct gdb_pkt_parser *p);
/* Feed one received byte. */
enum gdb_pkt_event gdb_pkt_feed(struct gdb_pkt_parser *p, uint8_t c);
/*
 * Frame payload as $<escaped payload>#<checksum> into out. Returns the
 * framed length, or 0 when out (outsz) is too small: 2 * len + 4 always fits.
 */
size_t gdb_pkt_encode(uint8_t *out, size_t outsz, const void *payload, size_t len);
uint8_t gdb_pkt_checksum(const void *data, size_t len);

struct gdb_sw_bp {
	uint64_t addr;
	uint8_t orig;		/* the byte the int3 replaced */
};

typedef int (*gdb_send_fn)(void *io, const void *buf, size_t len);

struct gdb_session {
	const struct gdb_target_ops *ops;
	void *opaque;
	gdb_send_fn send;
	void *io;

	struct gdb_pkt_parser parser;
	bool attached;
	bool no_ack;		/* after QStartNoAckMode */
	bool running;		/* resumed; a stop reply is owed */
	bool closing;		/* D, k or W sent: the connection ends */
	bool killed;
	bool step_block_irq;	/* mask interrupts while stepping (QEMU's default) */
	int ncpus;
	int g_cpu;		/* 'Hg': registers and memory */
	int c_cpu;		/* 'Hc': step/continue; -1 all */
	struct gdb_stop_event last_stop;

	/* sw breakpoints: also read by vCPU threads (gdb_session_owns_sw_bp) */
	pthread_mutex_t bp_lock;
	struct gdb_sw_bp sw[GDB_MAX_SW_BP];
	int nsw;
	struct gdb_hw_slot hw[GDB_HW_SLOTS];

	char *xml;		/* target description */
	size_t xml_len;

	char reply[GDB_REPLY_MAX + 64];
	size_t rlen;
	uint8_t out[2 * (GDB_REPLY_MAX + 64) + 8];	/* last framed packet */
	size_t outlen;
	uint8_t mem[GDB_PKT_MAX];			/* memory staging */
};

int gdb_session_init(struct gdb_session *s, const struct gdb_target_ops *ops, void *opaque,
		     gdb_send_fn send, void *io);
void gdb_session_destroy(struct gdb_session *s);
/* A client connected: stop the guest (gdb expects a stopped target). */
int gdb_session_attach(struct gdb_session *s);
/* Received bytes. Returns 1 when the connection should close, else 0. */
int gdb_session_input(struct gdb_session *s, const void *buf, size_t len);
/* A vCPU stopped for gdb: stop the others and send the stop reply. */
void gdb_session_stop_event(struct gdb_session *s, const struct gdb_stop_event *ev);
/* Client gone or 'D': remove breakpoints, resume the guest (not after 'k'). */
void gdb_session_detach(struct gdb_session *s);
/* Is there a stub-planted int3 at addr? Thread-safe. */
bool gdb_session_owns_sw_bp(struct gdb_session *s, uint64_t addr);

/* The register layout of 'g' and target.xml (exposed for tests). */
struct gdb_reg_desc {
	const char *name;
	uint16_t offset;	/* in struct gdb_x86_regs */
	uint8_t size;		/* bytes */
	uint8_t feature;
	const char *type;
	const char *group;
};
extern const struct gdb_reg_desc gdb_x86_reg_table[];
extern const int gdb_x86_nregs;
/* Bytes of register data in a 'g' reply. */
size_t gdb_x86_regs_size(void);

#endif
