/*
 * GDB stub: the protocol session (packet handlers against struct
 * gdb_target_ops) and the socket server around it.
 *
 * References: gdb manual, appendix "Remote Protocol" (packets, stop reply
 * packets, qXfer target descriptions, vCont) and "Target Descriptions"
 * (i386 features: org.gnu.gdb.i386.core/.sse/.segments/.avx). The register
 * layout of 'g' is the order of the registers in the target description we
 * send, so both come from one table (gdb_x86_reg_table).
 */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "amber/hex.h"
#include "amber/gdb.h"
#include "amber/log.h"
#include "gdb/gdb_proto.h"

#define SUBSYS "gdb"

/* ------------------------------------------------------------------ */
/* Register layout and target description                             */
/* ------------------------------------------------------------------ */

enum { FEAT_CORE, FEAT_SSE, FEAT_SEGMENTS, FEAT_AVX, FEAT_SYS, FEAT_COUNT };

#define FLD_SIZE(f) sizeof(((struct gdb_x86_regs *)0)->f)
#define REG(n, f, feat, t, g) { n, offsetof(struct gdb_x86_regs, f), FLD_SIZE(f), feat, t, g }
#define CORE(n, f, t) REG(n, f, FEAT_CORE, t, NULL)
#define FPU(n, f) REG(n, f, FEAT_CORE, "int", "float")
#define XMM(i) REG("xmm" #i, xmm[i], FEAT_SSE, "vec128", NULL)
#define YMMH(i) REG("ymm" #i "h", ymmh[i], FEAT_AVX, "uint128", NULL)
#define ST(i) REG("st" #i, st[i], FEAT_CORE, "i387_ext", NULL)
#define SYS(n, f) REG(n, f, FEAT_SYS, "int64", "system")

const struct gdb_reg_desc gdb_x86_reg_table[] = {
	CORE("rax", rax, "int64"), CORE("rbx", rbx, "int64"),
	CORE("rcx", rcx, "int64"), CORE("rdx", rdx, "int64"),
	CORE("rsi", rsi, "int64"), CORE("rdi", rdi, "int64"),
	CORE("rbp", rbp, "data_ptr"), CORE("rsp", rsp, "data_ptr"),
	CORE("r8", r8, "int64"), CORE("r9", r9, "int64"),
	CORE("r10", r10, "int64"), CORE("r11", r11, "int64"),
	CORE("r12", r12, "int64"), CORE("r13", r13, "int64"),
	CORE("r14", r14, "int64"), CORE("r15", r15, "int64"),
	CORE("rip", rip, "code_ptr"), CORE("eflags", eflags, "i386_eflags"),
	CORE("cs", cs, "int32"), CORE("ss", ss, "int32"), CORE("ds", ds, "int32"),
	CORE("es", es, "int32"), CORE("fs", fs, "int32"), CORE("gs", gs, "int32"),
	ST(0), ST(1), ST(2), ST(3), ST(4), ST(5), ST(6), ST(7),
	FPU("fctrl", fctrl), FPU("fstat", fstat), FPU("ftag", ftag), FPU("fiseg", fiseg),
	FPU("fioff", fioff), FPU("foseg", foseg), FPU("fooff", fooff), FPU("fop", fop),
	XMM(0), XMM(1), XMM(2), XMM(3), XMM(4), XMM(5), XMM(6), XMM(7),
	XMM(8), XMM(9), XMM(10), XMM(11), XMM(12), XMM(13), XMM(14), XMM(15),
	REG("mxcsr", mxcsr, FEAT_SSE, "i386_mxcsr", "vector"),
	REG("fs_base", fs_base, FEAT_SEGMENTS, "int", NULL),
	REG("gs_base", gs_base, FEAT_SEGMENTS, "int", NULL),
	YMMH(0), YMMH(1), YMMH(2), YMMH(3), YMMH(4), YMMH(5), YMMH(6), YMMH(7),
	YMMH(8), YMMH(9), YMMH(10), YMMH(11), YMMH(12), YMMH(13), YMMH(14), YMMH(15),
	SYS("cr0", cr0), SYS("cr2", cr2), SYS("cr3", cr3), SYS("cr4", cr4),
	SYS("cr8", cr8), SYS("efer", efer),
};
const int gdb_x86_nregs = sizeof(gdb_x86_reg_table) / sizeof(gdb_x86_reg_table[0]);

size_t gdb_x86_regs_size(void)
{
	size_t n = 0;

	for (int i = 0; i < gdb_x86_nregs; i++)
		n += gdb_x86_reg_table[i].size;
	return n;
}

/* Feature names and the types each defines (gdb/features/i386/64bit-*.xml). */
static const char *const feature_name[FEAT_COUNT] = {
	[FEAT_CORE] = "org.gnu.gdb.i386.core",
	[FEAT_SSE] = "org.gnu.gdb.i386.sse",
	[FEAT_SEGMENTS] = "org.gnu.gdb.i386.segments",
	[FEAT_AVX] = "org.gnu.gdb.i386.avx",
	[FEAT_SYS] = "org.amber.x86.sys",
};

static const char *const feature_types[FEAT_COUNT] = {
	[FEAT_CORE] =
		"<flags id=\"i386_eflags\" size=\"4\">"
		"<field name=\"CF\" start=\"0\" end=\"0\"/>"
		"<field name=\"\" start=\"1\" end=\"1\"/>"
		"<field name=\"PF\" start=\"2\" end=\"2\"/>"
		"<field name=\"AF\" start=\"4\" end=\"4\"/>"
		"<field name=\"ZF\" start=\"6\" end=\"6\"/>"
		"<field name=\"SF\" start=\"7\" end=\"7\"/>"
		"<field name=\"TF\" start=\"8\" end=\"8\"/>"
		"<field name=\"IF\" start=\"9\" end=\"9\"/>"
		"<field name=\"DF\" start=\"10\" end=\"10\"/>"
		"<field name=\"OF\" start=\"11\" end=\"11\"/>"
		"<field name=\"NT\" start=\"14\" end=\"14\"/>"
		"<field name=\"RF\" start=\"16\" end=\"16\"/>"
		"<field name=\"VM\" start=\"17\" end=\"17\"/>"
		"<field name=\"AC\" start=\"18\" end=\"18\"/>"
		"<field name=\"VIF\" start=\"19\" end=\"19\"/>"
		"<field name=\"VIP\" start=\"20\" end=\"20\"/>"
		"<field name=\"ID\" start=\"21\" end=\"21\"/>"
		"</flags>",
	[FEAT_SSE] =
		"<vector id=\"v4f\" type=\"ieee_single\" count=\"4\"/>"
		"<vector id=\"v2d\" type=\"ieee_double\" count=\"2\"/>"
		"<vector id=\"v16i8\" type=\"int8\" count=\"16\"/>"
		"<vector id=\"v8i16\" type=\"int16\" count=\"8\"/>"
		"<vector id=\"v4i32\" type=\"int32\" count=\"4\"/>"
		"<vector id=\"v2i64\" type=\"int64\" count=\"2\"/>"
		"<union id=\"vec128\">"
		"<field name=\"v4_float\" type=\"v4f\"/>"
		"<field name=\"v2_double\" type=\"v2d\"/>"
		"<field name=\"v16_int8\" type=\"v16i8\"/>"
		"<field name=\"v8_int16\" type=\"v8i16\"/>"
		"<field name=\"v4_int32\" type=\"v4i32\"/>"
		"<field name=\"v2_int64\" type=\"v2i64\"/>"
		"<field name=\"uint128\" type=\"uint128\"/>"
		"</union>"
		"<flags id=\"i386_mxcsr\" size=\"4\">"
		"<field name=\"IE\" start=\"0\" end=\"0\"/>"
		"<field name=\"DE\" start=\"1\" end=\"1\"/>"
		"<field name=\"ZE\" start=\"2\" end=\"2\"/>"
		"<field name=\"OE\" start=\"3\" end=\"3\"/>"
		"<field name=\"UE\" start=\"4\" end=\"4\"/>"
		"<field name=\"PE\" start=\"5\" end=\"5\"/>"
		"<field name=\"DAZ\" start=\"6\" end=\"6\"/>"
		"<field name=\"IM\" start=\"7\" end=\"7\"/>"
		"<field name=\"DM\" start=\"8\" end=\"8\"/>"
		"<field name=\"ZM\" start=\"9\" end=\"9\"/>"
		"<field name=\"OM\" start=\"10\" end=\"10\"/>"
		"<field name=\"UM\" start=\"11\" end=\"11\"/>"
		"<field name=\"PM\" start=\"12\" end=\"12\"/>"
		"<field name=\"FZ\" start=\"15\" end=\"15\"/>"
		"</flags>",
};

static char *build_target_xml(size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	int reg = 0;

	if (!f)
		return NULL;
	fputs("<?xml version=\"1.0\"?>"
	      "<!DOCTYPE target SYSTEM \"gdb-target.dtd\">"
	      "<target version=\"1.0\"><architecture>i386:x86-64</architecture>", f);
	for (int feat = 0; feat < FEAT_COUNT; feat++) {
		fprintf(f, "<feature name=\"%s\">", feature_name[feat]);
		if (feature_types[feat])
			fputs(feature_types[feat], f);
		for (; reg < gdb_x86_nregs && gdb_x86_reg_table[reg].feature == feat; reg++) {
			const struct gdb_reg_desc *r = &gdb_x86_reg_table[reg];

			/* regnum pins the 'g'/'p' numbering to this table */
			fprintf(f, "<reg name=\"%s\" bitsize=\"%u\" type=\"%s\" regnum=\"%d\"",
				r->name, r->size * 8u, r->type, reg);
			if (r->group)
				fprintf(f, " group=\"%s\"", r->group);
			fputs("/>", f);
		}
		fputs("</feature>", f);
	}
	fputs("</target>", f);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ------------------------------------------------------------------ */
/* Small parsing and reply helpers                                    */
/* ------------------------------------------------------------------ */

/* Parse hex digits at *p into *v (at most 16 digits); advance *p. */
static int parse_hex(const char **p, uint64_t *v)
{
	const char *s = *p;
	uint64_t x = 0;
	int n = 0, d;

	while ((d = hex_digit_value((unsigned char)*s)) >= 0) {
		if (++n > 16)
			return -EINVAL;
		x = x << 4 | (unsigned)d;
		s++;
	}
	if (n == 0)
		return -EINVAL;
	*v = x;
	*p = s;
	return 0;
}

static int expect(const char **p, char c)
{
	if (**p != c)
		return -EINVAL;
	(*p)++;
	return 0;
}

/* Decode 2*n hex chars into out; -EINVAL on a non-hex char. */
static int hex_decode(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int hi = hex_digit_value((unsigned char)s[2 * i]), lo;

		if (hi < 0)
			return -EINVAL;
		lo = hex_digit_value((unsigned char)s[2 * i + 1]);
		if (lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static void reply_reset(struct gdb_session *s)
{
	s->rlen = 0;
	s->reply[0] = 0;
}

static void reply_raw(struct gdb_session *s, const void *data, size_t len)
{
	if (len > GDB_REPLY_MAX - s->rlen)
		len = GDB_REPLY_MAX - s->rlen;
	memcpy(s->reply + s->rlen, data, len);
	s->rlen += len;
}

static void reply_str(struct gdb_session *s, const char *str)
{
	reply_raw(s, str, strlen(str));
}

static __attribute__((format(printf, 2, 3))) void reply_fmt(struct gdb_session *s,
							    const char *fmt, ...)
{
	size_t room = GDB_REPLY_MAX - s->rlen;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(s->reply + s->rlen, room + 1, fmt, ap);
	va_end(ap);
	if (n > 0)
		s->rlen += (size_t)n > room ? room : (size_t)n;
}

static void reply_hex(struct gdb_session *s, const void *data, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *d = data;

	for (size_t i = 0; i < len && s->rlen + 2 <= GDB_REPLY_MAX; i++) {
		s->reply[s->rlen++] = hex[d[i] >> 4];
		s->reply[s->rlen++] = hex[d[i] & 15];
	}
}

/* gdb reads 'E' + two hex digits; we put the errno there (as QEMU does). */
static void reply_error(struct gdb_session *s, int err)
{
	reply_reset(s);
	if (err < 0)
		err = -err;
	reply_fmt(s, "E%02d", err % 100);
}

static void reply_ok(struct gdb_session *s)
{
	reply_reset(s);
	reply_str(s, "OK");
}

static int session_send(struct gdb_session *s, const void *payload, size_t len)
{
	size_t n = gdb_pkt_encode(s->out, sizeof(s->out), payload, len);

	if (n == 0)
		return -EMSGSIZE;
	s->outlen = n;
	if (s->send(s->io, s->out, n) < 0) {
		s->closing = true;
		return -EPIPE;
	}
	return 0;
}

static void send_reply(struct gdb_session *s)
{
	session_send(s, s->reply, s->rlen);
}

/* ------------------------------------------------------------------ */
/* Target helpers                                                     */
/* ------------------------------------------------------------------ */

static int stop_cpu_for(struct gdb_session *s)
{
	if (s->c_cpu >= 0 && s->c_cpu < s->ncpus)
		return s->c_cpu;
	if (s->last_stop.cpu >= 0 && s->last_stop.cpu < s->ncpus)
		return s->last_stop.cpu;
	return 0;
}

static bool any_hw(const struct gdb_session *s)
{
	for (int i = 0; i < GDB_HW_SLOTS; i++)
		if (s->hw[i].type != GDB_HW_NONE)
			return true;
	return false;
}

static void debug_state_for(const struct gdb_session *s, bool step, struct gdb_debug_state *d)
{
	memset(d, 0, sizeof(*d));
	d->sw_bp = s->nsw > 0;
	d->single_step = step;
	d->block_irq = step && s->step_block_irq;
	memcpy(d->hw, s->hw, sizeof(d->hw));
	d->enabled = d->sw_bp || d->single_step || any_hw(s);
}

/* Program every vCPU's debug state, then release them per actions. */
static int session_resume(struct gdb_session *s, const enum gdb_cpu_action *actions)
{
	struct gdb_debug_state d;
	bool any = false;
	int rc;

	for (int i = 0; i < s->ncpus; i++) {
		debug_state_for(s, actions[i] == GDB_CPU_STEP, &d);
		rc = s->ops->set_debug(s->opaque, i, &d);
		if (rc < 0)
			return rc;
		any |= actions[i] != GDB_CPU_STAY;
	}
	if (!any)
		return -EINVAL;
	rc = s->ops->resume(s->opaque, actions);
	if (rc < 0)
		return rc;
	s->running = true;
	return 0;
}

/*
 * Read guest memory for gdb: all of it, or the longest readable prefix cut
 * at a page boundary (gdb accepts short 'm' replies), with the stub's own
 * int3 bytes shown as the original instruction bytes.
 * Returns the byte count or -errno when nothing is readable.
 */
static long mem_read(struct gdb_session *s, uint64_t addr, uint8_t *buf, size_t len)
{
	size_t done = 0;

	if (s->ops->read_virt(s->opaque, s->g_cpu, addr, buf, len) == 0) {
		done = len;
	} else {
		while (done < len) {
			uint64_t a = addr + done;
			size_t n = 4096 - (a & 4095);

			if (n > len - done)
				n = len - done;
			if (s->ops->read_virt(s->opaque, s->g_cpu, a, buf + done, n) < 0)
				break;
			done += n;
		}
		if (done == 0)
			return -EFAULT;
	}
	pthread_mutex_lock(&s->bp_lock);
	for (int i = 0; i < s->nsw; i++) {
		uint64_t off = s->sw[i].addr - addr;

		if (off < done)
			buf[off] = s->sw[i].orig;
	}
	pthread_mutex_unlock(&s->bp_lock);
	return (long)done;
}

/*
 * Write guest memory for gdb. Where the stub has an int3 planted, the new
 * byte becomes the breakpoint's saved byte and the int3 stays.
 */
static int mem_write(struct gdb_session *s, uint64_t addr, uint8_t *buf, size_t len)
{
	uint8_t newb[GDB_MAX_SW_BP];
	int rc;

	/* sw[] only changes on this thread; the lock is for vCPU readers */
	for (int i = 0; i < s->nsw; i++) {
		uint64_t off = s->sw[i].addr - addr;

		if (off < len) {
			newb[i] = buf[off];
			buf[off] = 0xcc;
		}
	}
	rc = s->ops->write_virt(s->opaque, s->g_cpu, addr, buf, len);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&s->bp_lock);
	for (int i = 0; i < s->nsw; i++)
		if (s->sw[i].addr - addr < len)
			s->sw[i].orig = newb[i];
	pthread_mutex_unlock(&s->bp_lock);
	return 0;
}

static int sw_find(struct gdb_session *s, uint64_t addr)
{
	for (int i = 0; i < s->nsw; i++)
		if (s->sw[i].addr == addr)
			return i;
	return -1;
}

static int sw_insert(struct gdb_session *s, uint64_t addr)
{
	static const uint8_t int3 = 0xcc;
	uint8_t orig;
	int rc;

	if (sw_find(s, addr) >= 0)
		return 0;		/* gdb may insert again: idempotent */
	if (s->nsw >= GDB_MAX_SW_BP)
		return -ENOSPC;
	rc = s->ops->read_virt(s->opaque, s->g_cpu, addr, &orig, 1);
	if (rc < 0)
		return rc;
	rc = s->ops->write_virt(s->opaque, s->g_cpu, addr, &int3, 1);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&s->bp_lock);
	s->sw[s->nsw].addr = addr;
	s->sw[s->nsw].orig = orig;
	s->nsw++;
	pthread_mutex_unlock(&s->bp_lock);
	return 0;
}

static int sw_remove_at(struct gdb_session *s, int i)
{
	struct gdb_sw_bp bp = s->sw[i];
	uint8_t cur;
	int rc = 0;

	pthread_mutex_lock(&s->bp_lock);
	s->sw[i] = s->sw[--s->nsw];
	pthread_mutex_unlock(&s->bp_lock);
	/*
	 * Put the original byte back only if our int3 is still there: the
	 * guest may have reused that memory since (as QEMU's KVM code checks).
	 */
	if (s->ops->read_virt(s->opaque, s->g_cpu, bp.addr, &cur, 1) == 0 && cur == 0xcc)
		rc = s->ops->write_virt(s->opaque, s->g_cpu, bp.addr, &bp.orig, 1);
	return rc;
}

static int sw_remove(struct gdb_session *s, uint64_t addr)
{
	int i = sw_find(s, addr);

	if (i < 0)
		return -ENOENT;
	return sw_remove_at(s, i);
}

bool gdb_session_owns_sw_bp(struct gdb_session *s, uint64_t addr)
{
	bool found = false;

	pthread_mutex_lock(&s->bp_lock);
	for (int i = 0; i < s->nsw && !found; i++)
		found = s->sw[i].addr == addr;
	pthread_mutex_unlock(&s->bp_lock);
	return found;
}

static int hw_insert(struct gdb_session *s, enum gdb_hw_type type, uint64_t addr, uint64_t len)
{
	int free_slot = -1;

	if (type == GDB_HW_EXEC) {
		len = 1;	/* Intel SDM Vol. 3 §17.2.5: exec breakpoints use LEN=00 */
	} else {
		/* §17.2.5: 1, 2, 4 or 8 bytes, aligned to the length */
		if (len != 1 && len != 2 && len != 4 && len != 8)
			return -EINVAL;
		if (addr & (len - 1))
			return -EINVAL;
	}
	for (int i = 0; i < GDB_HW_SLOTS; i++) {
		if (s->hw[i].type == type && s->hw[i].addr == addr && s->hw[i].len == len)
			return 0;
		if (s->hw[i].type == GDB_HW_NONE && free_slot < 0)
			free_slot = i;
	}
	if (free_slot < 0)
		return -ENOSPC;		/* all four debug registers in use */
	s->hw[free_slot].type = type;
	s->hw[free_slot].addr = addr;
	s->hw[free_slot].len = (unsigned)len;
	return 0;
}

static int hw_remove(struct gdb_session *s, enum gdb_hw_type type, uint64_t addr, uint64_t len)
{
	if (type == GDB_HW_EXEC)
		len = 1;
	for (int i = 0; i < GDB_HW_SLOTS; i++) {
		if (s->hw[i].type == type && s->hw[i].addr == addr && s->hw[i].len == len) {
			memset(&s->hw[i], 0, sizeof(s->hw[i]));
			return 0;
		}
	}
	return -ENOENT;
}

/* ------------------------------------------------------------------ */
/* Stop replies                                                       */
/* ------------------------------------------------------------------ */

static void reply_stop(struct gdb_session *s, const struct gdb_stop_event *ev)
{
	int sig = GDB_SIGTRAP;

	reply_reset(s);
	if (ev->reason == GDB_STOP_EXITED) {
		reply_fmt(s, "W%02x", ev->exit_code & 0xff);
		return;
	}
	if (ev->reason == GDB_STOP_SIGNAL)
		sig = ev->signal;
	reply_fmt(s, "T%02xthread:%x;", sig & 0xff, ev->cpu + 1);
	switch (ev->reason) {
	case GDB_STOP_SW_BP:
		reply_str(s, "swbreak:;");
		break;
	case GDB_STOP_HW_BP:
		reply_str(s, "hwbreak:;");
		break;
	case GDB_STOP_WATCH:
		reply_fmt(s, "%s:%" PRIx64 ";",
			  ev->watch_type == GDB_HW_READ ? "rwatch" :
			  ev->watch_type == GDB_HW_ACCESS ? "awatch" : "watch", ev->addr);
		break;
	default:
		break;
	}
}

void gdb_session_stop_event(struct gdb_session *s, const struct gdb_stop_event *ev)
{
	struct gdb_stop_event e = *ev;

	if (!s->attached || !s->running)
		return;		/* a late second stop: the VM is already stopped */
	if (e.cpu < 0 || e.cpu >= s->ncpus)
		e.cpu = 0;
	if (e.reason != GDB_STOP_EXITED)
		s->ops->stop(s->opaque);	/* all-stop: park everyone */
	s->running = false;
	s->last_stop = e;
	s->g_cpu = s->c_cpu = e.cpu;
	reply_stop(s, &e);
	send_reply(s);
	if (e.reason == GDB_STOP_EXITED) {
		s->closing = true;
		s->killed = true;	/* nothing left to resume */
	}
}

/* ------------------------------------------------------------------ */
/* Packet handlers                                                    */
/* ------------------------------------------------------------------ */

/* Thread id: hex N (vCPU N-1), 0 (any), -1 (all). */
static int parse_thread(struct gdb_session *s, const char **p, int *cpu)
{
	uint64_t v;

	if ((*p)[0] == '-' && (*p)[1] == '1') {
		*p += 2;
		*cpu = -1;
		return 0;
	}
	if (parse_hex(p, &v) < 0)
		return -EINVAL;
	if (v == 0) {
		*cpu = -2;	/* any */
		return 0;
	}
	if (v > (uint64_t)s->ncpus)
		return -ESRCH;
	*cpu = (int)v - 1;
	return 0;
}

static void handle_g(struct gdb_session *s)
{
	struct gdb_x86_regs r;
	int rc = s->ops->get_regs(s->opaque, s->g_cpu, &r);

	if (rc < 0)
		return reply_error(s, rc);
	reply_reset(s);
	for (int i = 0; i < gdb_x86_nregs; i++)
		reply_hex(s, (uint8_t *)&r + gdb_x86_reg_table[i].offset, gdb_x86_reg_table[i].size);
}

static void handle_G(struct gdb_session *s, const char *p, size_t len)
{
	struct gdb_x86_regs r;
	size_t need = 2 * gdb_x86_regs_size();
	int rc;

	if (len != need)
		return reply_error(s, EINVAL);
	rc = s->ops->get_regs(s->opaque, s->g_cpu, &r);
	if (rc < 0)
		return reply_error(s, rc);
	for (int i = 0; i < gdb_x86_nregs; i++) {
		const struct gdb_reg_desc *d = &gdb_x86_reg_table[i];

		if (hex_decode(p, (uint8_t *)&r + d->offset, d->size) < 0)
			return reply_error(s, EINVAL);
		p += 2 * d->size;
	}
	rc = s->ops->set_regs(s->opaque, s->g_cpu, &r);
	if (rc < 0)
		return reply_error(s, rc);
	reply_ok(s);
}

static void handle_p(struct gdb_session *s, const char *p)
{
	struct gdb_x86_regs r;
	uint64_t n;
	int rc;

	if (parse_hex(&p, &n) < 0 || *p)
		return reply_error(s, EINVAL);
	if (n >= (uint64_t)gdb_x86_nregs)
		return reply_error(s, EINVAL);
	rc = s->ops->get_regs(s->opaque, s->g_cpu, &r);
	if (rc < 0)
		return reply_error(s, rc);
	reply_reset(s);
	reply_hex(s, (uint8_t *)&r + gdb_x86_reg_table[n].offset, gdb_x86_reg_table[n].size);
}

static void handle_P(struct gdb_session *s, const char *p, size_t len)
{
	const char *end = p + len;
	const struct gdb_reg_desc *d;
	struct gdb_x86_regs r;
	uint64_t n;
	int rc;

	if (parse_hex(&p, &n) < 0 || expect(&p, '=') < 0)
		return reply_error(s, EINVAL);
	if (n >= (uint64_t)gdb_x86_nregs)
		return reply_error(s, EINVAL);
	d = &gdb_x86_reg_table[n];
	if ((size_t)(end - p) != 2u * d->size)
		return reply_error(s, EINVAL);
	rc = s->ops->get_regs(s->opaque, s->g_cpu, &r);
	if (rc < 0)
		return reply_error(s, rc);
	if (hex_decode(p, (uint8_t *)&r + d->offset, d->size) < 0)
		return reply_error(s, EINVAL);
	rc = s->ops->set_regs(s->opaque, s->g_cpu, &r);
	if (rc < 0)
		return reply_error(s, rc);
	reply_ok(s);
}

/* "addr,len" */
static int parse_addr_len(const char **p, uint64_t *addr, uint64_t *len)
{
	if (parse_hex(p, addr) < 0 || expect(p, ',') < 0 || parse_hex(p, len) < 0)
		return -EINVAL;
	return 0;
}

static void handle_m(struct gdb_session *s, const char *p)
{
	uint64_t addr, len;
	long n;

	if (parse_addr_len(&p, &addr, &len) < 0 || *p)
		return reply_error(s, EINVAL);
	if (len == 0) {
		reply_reset(s);
		return;
	}
	/* Huge requests get a short reply: the protocol allows fewer bytes. */
	if (len > GDB_MEM_MAX)
		len = GDB_MEM_MAX;
	n = mem_read(s, addr, s->mem, len);
	if (n < 0)
		return reply_error(s, n);
	reply_reset(s);
	reply_hex(s, s->mem, (size_t)n);
}

static void handle_M(struct gdb_session *s, const char *p, size_t plen)
{
	const char *end = p + plen;
	uint64_t addr, len;
	int rc;

	if (parse_addr_len(&p, &addr, &len) < 0 || expect(&p, ':') < 0)
		return reply_error(s, EINVAL);
	/* The data must be exactly len bytes; that also bounds len. */
	if (len > sizeof(s->mem) || (uint64_t)(end - p) != 2 * len)
		return reply_error(s, EINVAL);
	if (hex_decode(p, s->mem, len) < 0)
		return reply_error(s, EINVAL);
	if (len) {
		rc = mem_write(s, addr, s->mem, len);
		if (rc < 0)
			return reply_error(s, rc);
	}
	reply_ok(s);
}

/* X addr,len:<binary, already unescaped by the framing> */
static void handle_X(struct gdb_session *s, const char *p, size_t plen)
{
	const char *end = p + plen;
	uint64_t addr, len;
	int rc;

	if (parse_addr_len(&p, &addr, &len) < 0 || expect(&p, ':') < 0)
		return reply_error(s, EINVAL);
	if (len > sizeof(s->mem) || (uint64_t)(end - p) != len)
		return reply_error(s, EINVAL);
	memcpy(s->mem, p, len);
	if (len) {	/* "X addr,0:" is gdb probing for X support */
		rc = mem_write(s, addr, s->mem, len);
		if (rc < 0)
			return reply_error(s, rc);
	}
	reply_ok(s);
}

/* c/s/C/S [sig;][addr]: returns true when the target was resumed. */
static bool handle_resume(struct gdb_session *s, char cmd, const char *p)
{
	enum gdb_cpu_action actions[GDB_MAX_CPUS];
	bool step = cmd == 's' || cmd == 'S';
	int cpu = stop_cpu_for(s);
	uint64_t v, addr = 0;
	bool have_addr = false;
	int rc;

	if (cmd == 'C' || cmd == 'S') {
		/* A signal for the "process": a VM has none to deliver; ignore. */
		if (parse_hex(&p, &v) < 0) {
			reply_error(s, EINVAL);
			return false;
		}
		if (*p == ';')
			p++;
		else if (*p) {
			reply_error(s, EINVAL);
			return false;
		}
	}
	if (*p) {
		if (parse_hex(&p, &addr) < 0 || *p) {
			reply_error(s, EINVAL);
			return false;
		}
		have_addr = true;
	}
	if (have_addr) {
		struct gdb_x86_regs r;

		rc = s->ops->get_regs(s->opaque, cpu, &r);
		if (rc == 0) {
			r.rip = addr;
			rc = s->ops->set_regs(s->opaque, cpu, &r);
		}
		if (rc < 0) {
			reply_error(s, rc);
			return false;
		}
	}
	for (int i = 0; i < s->ncpus; i++)
		actions[i] = step ? GDB_CPU_STAY : GDB_CPU_CONTINUE;
	if (step)
		actions[cpu] = GDB_CPU_STEP;
	rc = session_resume(s, actions);
	if (rc < 0) {
		reply_error(s, rc);
		return false;
	}
	return true;
}

/*
 * vCont;action[:thread-id]...: for each vCPU the leftmost action that names
 * it (or names no thread) applies; vCPUs no action names stay stopped.
 */
static bool handle_vcont(struct gdb_session *s, const char *p)
{
	enum gdb_cpu_action actions[GDB_MAX_CPUS];
	bool set[GDB_MAX_CPUS] = { false };
	uint64_t sig;
	int rc;

	while (*p == ';') {
		enum gdb_cpu_action a;
		char c = *++p;
		int cpu = -1;

		p++;
		switch (c) {
		case 'c': case 'C':
			a = GDB_CPU_CONTINUE;
			break;
		case 's': case 'S':
			a = GDB_CPU_STEP;
			break;
		case 't':
			a = GDB_CPU_STAY;
			break;
		default:
			goto bad;
		}
		if ((c == 'C' || c == 'S') && parse_hex(&p, &sig) < 0)
			goto bad;
		if (*p == ':') {
			p++;
			if (parse_thread(s, &p, &cpu) < 0)
				goto bad;
			if (cpu == -2)
				cpu = stop_cpu_for(s);
		}
		for (int i = 0; i < s->ncpus; i++) {
			if ((cpu == -1 || cpu == i) && !set[i]) {
				actions[i] = a;
				set[i] = true;
			}
		}
	}
	if (*p)
		goto bad;
	for (int i = 0; i < s->ncpus; i++)
		if (!set[i])
			actions[i] = GDB_CPU_STAY;
	rc = session_resume(s, actions);
	if (rc == -EINVAL) {
		/* Nothing to run (only 't'): already stopped, say so. */
		reply_stop(s, &s->last_stop);
		return false;
	}
	if (rc < 0) {
		reply_error(s, rc);
		return false;
	}
	return true;
bad:
	reply_error(s, EINVAL);
	return false;
}

static void handle_z(struct gdb_session *s, bool insert, const char *p)
{
	uint64_t type, addr, kind;
	int rc;

	if (parse_hex(&p, &type) < 0 || expect(&p, ',') < 0 || parse_addr_len(&p, &addr, &kind) < 0)
		return reply_error(s, EINVAL);
	/* ";cond..." / ";cmds..." need ConditionalBreakpoints, not offered */
	if (*p && *p != ';')
		return reply_error(s, EINVAL);
	switch (type) {
	case 0:
		rc = insert ? sw_insert(s, addr) : sw_remove(s, addr);
		break;
	case 1: case 2: case 3: case 4: {
		static const enum gdb_hw_type map[] = {
			0, GDB_HW_EXEC, GDB_HW_WRITE, GDB_HW_READ, GDB_HW_ACCESS };

		rc = insert ? hw_insert(s, map[type], addr, kind) : hw_remove(s, map[type], addr, kind);
		break;
	}
	default:
		reply_reset(s);		/* unsupported type: empty reply */
		return;
	}
	if (rc < 0)
		return reply_error(s, rc);
	reply_ok(s);
}

static void handle_H(struct gdb_session *s, const char *p)
{
	char op = *p++;
	int cpu;

	if ((op != 'g' && op != 'c') || parse_thread(s, &p, &cpu) < 0 || *p)
		return reply_error(s, EINVAL);
	if (op == 'g') {
		/* registers come from one vCPU: "all" and "any" mean the current */
		if (cpu >= 0)
			s->g_cpu = cpu;
	} else {
		s->c_cpu = cpu == -2 ? s->c_cpu : cpu;
	}
	reply_ok(s);
}

static void handle_T(struct gdb_session *s, const char *p)
{
	int cpu;

	if (parse_thread(s, &p, &cpu) < 0 || *p || cpu < 0)
		return reply_error(s, ESRCH);
	reply_ok(s);
}

static void handle_qxfer_features(struct gdb_session *s, const char *p)
{
	static const char annex[] = "target.xml:";
	uint64_t off, len;

	if (strncmp(p, annex, sizeof(annex) - 1) != 0) {
		reply_error(s, ENOENT);
		return;
	}
	p += sizeof(annex) - 1;
	if (parse_addr_len(&p, &off, &len) < 0 || *p)
		return reply_error(s, EINVAL);
	reply_reset(s);
	if (off >= s->xml_len) {
		reply_str(s, "l");
		return;
	}
	if (len > GDB_REPLY_MAX - 1)
		len = GDB_REPLY_MAX - 1;
	if (len >= s->xml_len - off) {
		reply_str(s, "l");
		reply_raw(s, s->xml + off, s->xml_len - off);
	} else {
		reply_str(s, "m");
		reply_raw(s, s->xml + off, len);
	}
}

/*
 * "monitor ..." (qRcmd, hex-encoded command). One knob: whether a step may
 * enter an interrupt handler ("step-irqs on"); by default interrupts are
 * masked while stepping, as in QEMU's gdbstub.
 */
static void handle_monitor(struct gdb_session *s, const char *hex)
{
	char cmd[64], text[160];
	size_t n = strlen(hex) / 2;

	if (strlen(hex) % 2 || n >= sizeof(cmd) || hex_decode(hex, (uint8_t *)cmd, n) < 0)
		return reply_error(s, EINVAL);
	cmd[n] = 0;
	if (strcmp(cmd, "step-irqs on") == 0)
		s->step_block_irq = false;
	else if (strcmp(cmd, "step-irqs off") == 0)
		s->step_block_irq = true;
	else if (strcmp(cmd, "step-irqs") != 0 && strcmp(cmd, "help") != 0) {
		snprintf(text, sizeof(text), "unknown monitor command \"%s\"; try \"help\"\n", cmd);
		reply_reset(s);
		reply_hex(s, text, strlen(text));
		return;
	}
	if (strcmp(cmd, "help") == 0)
		snprintf(text, sizeof(text),
			 "step-irqs [on|off]: let a single step enter interrupt handlers (default off)\n");
	else
		snprintf(text, sizeof(text), "interrupts while stepping: %s\n",
			 s->step_block_irq ? "masked" : "delivered");
	reply_reset(s);
	reply_hex(s, text, strlen(text));
}

static void handle_q(struct gdb_session *s, const char *p)
{
	if (strncmp(p, "qSupported", 10) == 0 && (p[10] == 0 || p[10] == ':')) {
		reply_reset(s);
		reply_fmt(s, "PacketSize=%x;qXfer:features:read+;swbreak+;hwbreak+;"
			  "vContSupported+;QStartNoAckMode+", GDB_PKT_MAX);
	} else if (strncmp(p, "qXfer:features:read:", 20) == 0) {
		handle_qxfer_features(s, p + 20);
	} else if (strcmp(p, "qfThreadInfo") == 0) {
		reply_reset(s);
		reply_str(s, "m");
		for (int i = 0; i < s->ncpus; i++)
			reply_fmt(s, i ? ",%x" : "%x", i + 1);
	} else if (strcmp(p, "qsThreadInfo") == 0) {
		reply_reset(s);
		reply_str(s, "l");
	} else if (strcmp(p, "qC") == 0) {
		reply_reset(s);
		reply_fmt(s, "QC%x", s->g_cpu + 1);
	} else if (strncmp(p, "qAttached", 9) == 0) {
		reply_reset(s);
		reply_str(s, "1");	/* we attached to a running VM: 'quit' detaches */
	} else if (strncmp(p, "qThreadExtraInfo,", 17) == 0) {
		const char *q = p + 17;
		char text[32];
		int cpu;

		if (parse_thread(s, &q, &cpu) < 0 || *q || cpu < 0)
			return reply_error(s, ESRCH);
		snprintf(text, sizeof(text), "vCPU %d", cpu);
		reply_reset(s);
		reply_hex(s, text, strlen(text));
	} else if (strncmp(p, "qRcmd,", 6) == 0) {
		handle_monitor(s, p + 6);
	} else {
		reply_reset(s);		/* unknown: empty reply */
	}
}

/* Returns true when the packet resumed the target (no reply now). */
static bool handle_packet(struct gdb_session *s, const char *p, size_t len)
{
	reply_reset(s);
	if (s->running) {
		/* all-stop: gdb only sends packets while the target is stopped */
		reply_error(s, EBUSY);
		return false;
	}
	switch (p[0]) {
	case '?':
		reply_stop(s, &s->last_stop);
		break;
	case 'g':
		handle_g(s);
		break;
	case 'G':
		handle_G(s, p + 1, len - 1);
		break;
	case 'p':
		handle_p(s, p + 1);
		break;
	case 'P':
		handle_P(s, p + 1, len - 1);
		break;
	case 'm':
		handle_m(s, p + 1);
		break;
	case 'M':
		handle_M(s, p + 1, len - 1);
		break;
	case 'X':
		handle_X(s, p + 1, len - 1);
		break;
	case 'c': case 'C': case 's': case 'S':
		return handle_resume(s, p[0], p + 1);
	case 'v':
		if (strcmp(p, "vCont?") == 0) {
			reply_str(s, "vCont;c;C;s;S;t");
		} else if (strncmp(p, "vCont;", 6) == 0) {
			return handle_vcont(s, p + 5);
		}
		break;	/* vMustReplyEmpty, vKill, ...: empty */
	case 'Z': case 'z':
		handle_z(s, p[0] == 'Z', p + 1);
		break;
	case 'H':
		handle_H(s, p + 1);
		break;
	case 'T':
		handle_T(s, p + 1);
		break;
	case 'q':
		handle_q(s, p);
		break;
	case 'Q':
		if (strcmp(p, "QStartNoAckMode") == 0)
			reply_ok(s);
		break;
	case 'D':
		reply_ok(s);
		break;
	default:
		break;		/* unknown packet: empty reply */
	}
	return false;
}

static void session_packet(struct gdb_session *s)
{
	const char *p = (const char *)s->parser.buf;
	size_t len = s->parser.len;

	if (!s->no_ack && s->send(s->io, "+", 1) < 0) {
		s->closing = true;
		return;
	}
	if (len == 0) {
		reply_reset(s);
		send_reply(s);
		return;
	}
	if (p[0] == 'k' && !s->running) {
		/* kill: no reply; the target decides (amber quits the VM) */
		log_info(SUBSYS, "gdb sent kill: stopping the VM");
		s->killed = true;
		s->closing = true;
		if (s->ops->kill)
			s->ops->kill(s->opaque);
		return;
	}
	if (handle_packet(s, p, len))
		return;		/* resumed: the stop reply comes later */
	send_reply(s);
	if (strcmp(p, "QStartNoAckMode") == 0)
		s->no_ack = true;	/* from the packet after our OK on */
	else if (p[0] == 'D')
		s->closing = true;	/* the caller detaches */
}

static void session_interrupt(struct gdb_session *s)
{
	struct gdb_stop_event ev = {
		.cpu = stop_cpu_for(s),
		.reason = GDB_STOP_SIGNAL,
		.signal = GDB_SIGINT,
	};

	if (!s->running)
		return;		/* already stopped: nothing to interrupt */
	gdb_session_stop_event(s, &ev);
}

int gdb_session_input(struct gdb_session *s, const void *buf, size_t len)
{
	const uint8_t *b = buf;

	for (size_t i = 0; i < len && !s->closing; i++) {
		switch (gdb_pkt_feed(&s->parser, b[i])) {
		case GDB_PKT_PACKET:
			session_packet(s);
			break;
		case GDB_PKT_BAD:
			if (!s->no_ack && s->send(s->io, "-", 1) < 0)
				s->closing = true;
			break;
		case GDB_PKT_INTERRUPT:
			session_interrupt(s);
			break;
		case GDB_PKT_NACK:
			if (!s->no_ack && s->outlen && s->send(s->io, s->out, s->outlen) < 0)
				s->closing = true;
			break;
		case GDB_PKT_ACK:
		case GDB_PKT_NONE:
			break;
		}
	}
	return s->closing ? 1 : 0;
}

int gdb_session_init(struct gdb_session *s, const struct gdb_target_ops *ops, void *opaque,
		     gdb_send_fn send, void *io)
{
	memset(s, 0, sizeof(*s));
	s->ops = ops;
	s->opaque = opaque;
	s->send = send;
	s->io = io;
	s->step_block_irq = true;
	s->xml = build_target_xml(&s->xml_len);
	if (!s->xml)
		return -ENOMEM;
	pthread_mutex_init(&s->bp_lock, NULL);
	gdb_pkt_init(&s->parser);
	return 0;
}

void gdb_session_destroy(struct gdb_session *s)
{
	free(s->xml);
	s->xml = NULL;
	pthread_mutex_destroy(&s->bp_lock);
}

int gdb_session_attach(struct gdb_session *s)
{
	int n = s->ops->ncpus(s->opaque);
	int rc;

	if (n <= 0 || n > GDB_MAX_CPUS)
		return -ENODEV;
	/* gdb expects a stopped target on connect (QEMU stops the VM too) */
	rc = s->ops->stop(s->opaque);
	if (rc < 0)
		return rc;
	gdb_pkt_init(&s->parser);
	s->ncpus = n;
	s->attached = true;
	s->no_ack = false;
	s->running = false;
	s->closing = false;
	s->killed = false;
	s->g_cpu = s->c_cpu = 0;
	pthread_mutex_lock(&s->bp_lock);
	s->nsw = 0;
	pthread_mutex_unlock(&s->bp_lock);
	s->outlen = 0;
	memset(s->hw, 0, sizeof(s->hw));
	memset(&s->last_stop, 0, sizeof(s->last_stop));
	s->last_stop.reason = GDB_STOP_SIGNAL;
	s->last_stop.signal = GDB_SIGTRAP;
	return 0;
}

void gdb_session_detach(struct gdb_session *s)
{
	enum gdb_cpu_action actions[GDB_MAX_CPUS];
	struct gdb_debug_state off = { .enabled = false };

	if (!s->attached)
		return;
	s->attached = false;
	if (s->killed)
		return;
	/* Breakpoints come out with every vCPU parked, so none runs into one. */
	if (s->running)
		s->ops->stop(s->opaque);
	s->running = false;
	while (s->nsw > 0)
		sw_remove_at(s, s->nsw - 1);
	memset(s->hw, 0, sizeof(s->hw));
	for (int i = 0; i < s->ncpus; i++) {
		s->ops->set_debug(s->opaque, i, &off);
		actions[i] = GDB_CPU_CONTINUE;
	}
	s->ops->resume(s->opaque, actions);
}

/* ------------------------------------------------------------------ */
/* Socket server                                                      */
/* ------------------------------------------------------------------ */

struct gdb_server {
	const struct gdb_target_ops *ops;
	void *opaque;
	struct gdb_target_ops wrap;	/* ops as the session sees them */
	int listen_fd;
	int client_fd;
	int wake_fd;			/* eventfd: stop events, shutdown */
	int port;
	char *unix_path;
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t lock;		/* guards the fields below */
	bool connected;
	bool quit;
	bool have_pending;
	struct gdb_stop_event pending;

	struct gdb_session sess;
};

/*
 * The session sees the target through these wrappers so that a resume
 * drops stop events reported before it: they were raised by vCPUs that have
 * parked since, and that stop was already reported (all-stop).
 */
static int srv_ncpus(void *o)
{
	struct gdb_server *gs = o;
	return gs->ops->ncpus(gs->opaque);
}

static int srv_stop(void *o)
{
	struct gdb_server *gs = o;
	return gs->ops->stop(gs->opaque);
}

static int srv_resume(void *o, const enum gdb_cpu_action *a)
{
	struct gdb_server *gs = o;

	pthread_mutex_lock(&gs->lock);
	gs->have_pending = false;
	pthread_mutex_unlock(&gs->lock);
	return gs->ops->resume(gs->opaque, a);
}

static int srv_get_regs(void *o, int cpu, struct gdb_x86_regs *r)
{
	struct gdb_server *gs = o;
	return gs->ops->get_regs(gs->opaque, cpu, r);
}

static int srv_set_regs(void *o, int cpu, const struct gdb_x86_regs *r)
{
	struct gdb_server *gs = o;
	return gs->ops->set_regs(gs->opaque, cpu, r);
}

static int srv_read_virt(void *o, int cpu, uint64_t gva, void *buf, size_t len)
{
	struct gdb_server *gs = o;
	return gs->ops->read_virt(gs->opaque, cpu, gva, buf, len);
}

static int srv_write_virt(void *o, int cpu, uint64_t gva, const void *buf, size_t len)
{
	struct gdb_server *gs = o;
	return gs->ops->write_virt(gs->opaque, cpu, gva, buf, len);
}

static int srv_set_debug(void *o, int cpu, const struct gdb_debug_state *d)
{
	struct gdb_server *gs = o;
	return gs->ops->set_debug(gs->opaque, cpu, d);
}

static void srv_kill(void *o)
{
	struct gdb_server *gs = o;

	if (gs->ops->kill)
		gs->ops->kill(gs->opaque);
}

static int srv_send(void *io, const void *buf, size_t len)
{
	struct gdb_server *gs = io;
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(gs->client_fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pfd = { .fd = gs->client_fd, .events = POLLOUT };

			/* a client that stops reading for 10 s is gone */
			if (poll(&pfd, 1, 10000) <= 0)
				return -ETIMEDOUT;
			continue;
		}
		if (n <= 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void srv_drop_client(struct gdb_server *gs)
{
	/* Detach while still "connected" so vCPUs hitting our int3 park. */
	gdb_session_detach(&gs->sess);
	pthread_mutex_lock(&gs->lock);
	gs->connected = false;
	gs->have_pending = false;
	pthread_mutex_unlock(&gs->lock);
	close(gs->client_fd);
	gs->client_fd = -1;
	log_info(SUBSYS, "gdb client disconnected; the guest runs on");
}

static void srv_accept(struct gdb_server *gs)
{
	int one = 1;
	int fd = accept4(gs->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	int rc;

	if (fd < 0)
		return;
	if (gs->client_fd >= 0) {
		log_warn(SUBSYS, "refusing a second gdb connection: one client at a time");
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));	/* fails on UNIX: fine */
	gs->client_fd = fd;
	pthread_mutex_lock(&gs->lock);
	gs->connected = true;
	gs->have_pending = false;
	pthread_mutex_unlock(&gs->lock);
	rc = gdb_session_attach(&gs->sess);
	if (rc < 0) {
		log_error(SUBSYS, "gdb client: cannot stop the VM: %s", strerror(-rc));
		pthread_mutex_lock(&gs->lock);
		gs->connected = false;
		pthread_mutex_unlock(&gs->lock);
		close(fd);
		gs->client_fd = -1;
		return;
	}
	log_info(SUBSYS, "gdb client connected; the VM is stopped");
}

static void *srv_thread(void *arg)
{
	struct gdb_server *gs = arg;
	uint8_t buf[4096];

	for (;;) {
		struct pollfd pfd[3] = {
			{ .fd = gs->wake_fd, .events = POLLIN },
			{ .fd = gs->listen_fd, .events = POLLIN },
			{ .fd = gs->client_fd, .events = POLLIN },
		};
		int nfds = gs->client_fd >= 0 ? 3 : 2;
		struct gdb_stop_event ev;
		bool have = false, quit;

		if (poll(pfd, nfds, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error(SUBSYS, "poll: %s", strerror(errno));
			break;
		}
		if (pfd[0].revents & POLLIN) {
			uint64_t v;

			if (read(gs->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				break;
		}
		pthread_mutex_lock(&gs->lock);
		quit = gs->quit;
		if (gs->have_pending) {
			ev = gs->pending;
			gs->have_pending = false;
			have = true;
		}
		pthread_mutex_unlock(&gs->lock);
		/*
		 * A stop reported just before the server is freed still goes
		 * out: the VM's exit ('W') is notified right before
		 * gdb_server_free().
		 */
		if (have && gs->client_fd >= 0) {
			gdb_session_stop_event(&gs->sess, &ev);
			if (gs->sess.closing) {
				srv_drop_client(gs);
				if (quit)
					break;
				continue;
			}
		}
		if (quit)
			break;
		if (nfds == 3 && (pfd[2].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t n = recv(gs->client_fd, buf, sizeof(buf), 0);

			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n <= 0 || gdb_session_input(&gs->sess, buf, (size_t)n)) {
				srv_drop_client(gs);
				continue;
			}
		}
		if (pfd[1].revents & POLLIN)
			srv_accept(gs);
	}
	if (gs->client_fd >= 0)
		srv_drop_client(gs);
	return NULL;
}

static int srv_listen_unix(struct gdb_server *gs, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "gdb: socket path %s: longer than %zu bytes", path,
			 sizeof(sa.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	/* a socket left by an earlier run would make bind fail; nothing else is removed */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0)
		goto fail;
	gs->listen_fd = fd;
	gs->port = -1;
	gs->unix_path = strdup(path);
	return 0;
fail:
	snprintf(err, errlen, "gdb: cannot listen on unix:%s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -errno;
}

static int srv_listen_tcp(struct gdb_server *gs, const char *spec, char *err, size_t errlen)
{
	char host[256] = "127.0.0.1";	/* loopback unless another address is written */
	const char *port, *colon = strrchr(spec, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	char *end;
	long pn;
	int fd = -1, one = 1, rc;

	if (colon) {
		size_t hl = (size_t)(colon - spec);

		if (hl > 0) {
			if (spec[0] == '[' && hl >= 2 && spec[hl - 1] == ']') {
				spec++;
				hl -= 2;
			}
			if (hl >= sizeof(host)) {
				snprintf(err, errlen, "gdb: listen address too long");
				return -EINVAL;
			}
			memcpy(host, spec, hl);
			host[hl] = 0;
		}
		port = colon + 1;
	} else {
		port = spec;
	}
	pn = strtol(port, &end, 10);
	if (!*port || *end || pn < 0 || pn > 65535) {
		snprintf(err, errlen, "gdb: listen spec %s: port \"%s\" is not a number 0-65535",
			 spec, port);
		return -EINVAL;
	}
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "gdb: listen address %s: %s", host, gai_strerror(rc));
		return -EINVAL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1) < 0)
		goto fail;
	{
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
			goto fail;
		gs->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
						    : ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	freeaddrinfo(res);
	gs->listen_fd = fd;
	return 0;
fail:
	rc = -errno;
	snprintf(err, errlen, "gdb: cannot listen on %s:%s: %s", host, port, strerror(errno));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return rc;
}

struct gdb_server *gdb_server_new(const char *spec, const struct gdb_target_ops *ops,
				  void *opaque, char *err, size_t errlen)
{
	struct gdb_server *gs = calloc(1, sizeof(*gs));
	int rc;

	if (!gs) {
		snprintf(err, errlen, "gdb: out of memory");
		return NULL;
	}
	gs->ops = ops;
	gs->opaque = opaque;
	gs->listen_fd = gs->client_fd = gs->wake_fd = -1;
	pthread_mutex_init(&gs->lock, NULL);
	gs->wrap = (struct gdb_target_ops) {
		.ncpus = srv_ncpus, .stop = srv_stop, .resume = srv_resume,
		.get_regs = srv_get_regs, .set_regs = srv_set_regs,
		.read_virt = srv_read_virt, .write_virt = srv_write_virt,
		.set_debug = srv_set_debug, .kill = srv_kill,
	};
	if (gdb_session_init(&gs->sess, &gs->wrap, gs, srv_send, gs) < 0) {
		snprintf(err, errlen, "gdb: out of memory");
		goto fail_sess;
	}
	if (strncmp(spec, "unix:", 5) == 0)
		rc = srv_listen_unix(gs, spec + 5, err, errlen);
	else
		rc = srv_listen_tcp(gs, strncmp(spec, "tcp:", 4) == 0 ? spec + 4 : spec, err, errlen);
	if (rc < 0)
		goto fail_listen;
	gs->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (gs->wake_fd < 0) {
		snprintf(err, errlen, "gdb: eventfd: %s", strerror(errno));
		goto fail_wake;
	}
	rc = pthread_create(&gs->thread, NULL, srv_thread, gs);
	if (rc != 0) {
		snprintf(err, errlen, "gdb: cannot start the server thread: %s", strerror(rc));
		goto fail_thread;
	}
	gs->thread_started = true;
	return gs;

fail_thread:
	close(gs->wake_fd);
fail_wake:
	close(gs->listen_fd);
	if (gs->unix_path)
		unlink(gs->unix_path);
	free(gs->unix_path);
fail_listen:
	gdb_session_destroy(&gs->sess);
fail_sess:
	pthread_mutex_destroy(&gs->lock);
	free(gs);
	return NULL;
}

void gdb_server_free(struct gdb_server *gs)
{
	uint64_t one = 1;

	if (!gs)
		return;
	pthread_mutex_lock(&gs->lock);
	gs->quit = true;
	pthread_mutex_unlock(&gs->lock);
	if (write(gs->wake_fd, &one, sizeof(one)) < 0)
		log_warn(SUBSYS, "waking the server thread: %s", strerror(errno));
	if (gs->thread_started)
		pthread_join(gs->thread, NULL);
	close(gs->wake_fd);
	close(gs->listen_fd);
	if (gs->unix_path)
		unlink(gs->unix_path);
	free(gs->unix_path);
	gdb_session_destroy(&gs->sess);
	pthread_mutex_destroy(&gs->lock);
	free(gs);
}

int gdb_server_port(const struct gdb_server *gs)
{
	return gs->port;
}

bool gdb_server_connected(struct gdb_server *gs)
{
	bool c;

	pthread_mutex_lock(&gs->lock);
	c = gs->connected;
	pthread_mutex_unlock(&gs->lock);
	return c;
}

int gdb_server_count_sw_breakpoints(struct gdb_server *gs)
{
	int n = 0;

	if (!gs)
		return 0;
	pthread_mutex_lock(&gs->lock);
	if (gs->connected) {
		pthread_mutex_lock(&gs->sess.bp_lock);
		n = gs->sess.nsw;
		pthread_mutex_unlock(&gs->sess.bp_lock);
	}
	pthread_mutex_unlock(&gs->lock);
	return n;
}

int gdb_server_notify_stop(struct gdb_server *gs, const struct gdb_stop_event *ev)
{
	uint64_t one = 1;
	int taken = 0;

	if (!gs)
		return 0;
	pthread_mutex_lock(&gs->lock);
	if (!gs->connected)
		goto out;
	if (ev->reason == GDB_STOP_SW_BP && !gdb_session_owns_sw_bp(&gs->sess, ev->addr))
		goto out;	/* the guest's own int3: re-inject #BP */
	taken = 1;
	if (!gs->have_pending) {
		/* all-stop: the first stop wins; later ones are re-hit after resume */
		gs->pending = *ev;
		gs->have_pending = true;
		/* cannot fail: the counter is far from overflowing */
		(void)!write(gs->wake_fd, &one, sizeof(one));
	}
out:
	pthread_mutex_unlock(&gs->lock);
	return taken;
}
