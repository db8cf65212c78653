/*
 * GDB stub packet handlers against a fake target: every packet with good and
 * bad input, breakpoints, resume/stop, threads, detach and kill.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "fake_target.h"
#include "gdb/gdb_proto.h"

struct capture {
	uint8_t buf[1 << 18];
	size_t len;
};

static int cap_send(void *io, const void *buf, size_t len)
{
	struct capture *c = io;

	if (len > sizeof(c->buf) - c->len)
		return -ENOSPC;
	memcpy(c->buf + c->len, buf, len);
	c->len += len;
	return 0;
}

struct fixture {
	struct fake_target t;
	struct gdb_session s;
	struct capture cap;
	char reply[GDB_REPLY_MAX + 1];
	size_t rlen;
	int acks;
};

static int setup_n(void **state, int ncpus)
{
	struct fixture *f = calloc(1, sizeof(*f));

	fake_target_init(&f->t, ncpus);
	assert_int_equal(gdb_session_init(&f->s, &fake_ops, &f->t, cap_send, &f->cap), 0);
	assert_int_equal(gdb_session_attach(&f->s), 0);
	*state = f;
	return 0;
}

static int setup1(void **state)
{
	return setup_n(state, 1);
}

static int setup2(void **state)
{
	return setup_n(state, 2);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	gdb_session_destroy(&f->s);
	fake_target_free(&f->t);
	free(f);
	return 0;
}

/*
 * Decode what the stub sent since the last call: count '+' acks, and return
 * the number of packets; the last one's payload lands in f->reply.
 */
static int take_output(struct fixture *f)
{
	static struct gdb_pkt_parser p;
	int npkts = 0;

	gdb_pkt_init(&p);
	f->acks = 0;
	for (size_t i = 0; i < f->cap.len; i++) {
		switch (gdb_pkt_feed(&p, f->cap.buf[i])) {
		case GDB_PKT_ACK:
			f->acks++;
			break;
		case GDB_PKT_PACKET:
			memcpy(f->reply, p.buf, p.len);
			f->reply[p.len] = 0;
			f->rlen = p.len;
			npkts++;
			break;
		case GDB_PKT_BAD:
			fail_msg("stub sent a packet with a bad checksum");
			break;
		default:
			break;
		}
	}
	f->cap.len = 0;
	return npkts;
}

static int send_raw(struct fixture *f, const void *data, size_t len)
{
	return gdb_session_input(&f->s, data, len);
}

static int send_pkt_n(struct fixture *f, const char *payload, size_t len)
{
	static uint8_t out[2 * GDB_PKT_MAX + 8];
	size_t n = gdb_pkt_encode(out, sizeof(out), payload, len);

	assert_true(n > 0);
	return send_raw(f, out, n);
}

/* Send one packet, expect exactly one reply; return it. */
static const char *cmd(struct fixture *f, const char *payload)
{
	f->rlen = 0;
	f->reply[0] = 0;
	send_pkt_n(f, payload, strlen(payload));
	assert_int_equal(take_output(f), 1);
	return f->reply;
}

/* Send a packet that resumes: expect only the ack, no reply. */
static void cmd_resume(struct fixture *f, const char *payload)
{
	send_pkt_n(f, payload, strlen(payload));
	assert_int_equal(take_output(f), 0);
	assert_true(f->s.running);
}

static uint64_t hex_le64(const char *h)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--) {
		unsigned b;

		sscanf(h + 2 * i, "%2x", &b);
		v = v << 8 | b;
	}
	return v;
}

/* ---- queries ---------------------------------------------------------- */

static void test_qsupported_advertises_packet_size_and_features(void **state)
{
	struct fixture *f = *state;
	const char *r = cmd(f, "qSupported:multiprocess+;swbreak+;hwbreak+;xmlRegisters=i386");

	assert_non_null(strstr(r, "PacketSize=4000"));
	assert_non_null(strstr(r, "qXfer:features:read+"));
	assert_non_null(strstr(r, "swbreak+"));
	assert_non_null(strstr(r, "hwbreak+"));
	assert_non_null(strstr(r, "vContSupported+"));
	assert_null(strstr(r, "multiprocess+"));
	assert_int_equal(f->acks, 1);
}

static void read_target_xml(struct fixture *f, char *xml, size_t cap, unsigned chunk)
{
	size_t off = 0;

	for (;;) {
		char q[96];

		snprintf(q, sizeof(q), "qXfer:features:read:target.xml:%zx,%x", off, chunk);
		cmd(f, q);
		assert_true(f->reply[0] == 'm' || f->reply[0] == 'l');
		assert_true(f->rlen - 1 <= chunk);
		assert_true(off + f->rlen - 1 < cap);
		memcpy(xml + off, f->reply + 1, f->rlen - 1);
		off += f->rlen - 1;
		if (f->reply[0] == 'l')
			break;
	}
	xml[off] = 0;
}

static void test_target_xml_describes_exactly_the_g_layout(void **state)
{
	struct fixture *f = *state;
	static char xml[65536];
	static const char *const order[] = {
		"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
		"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
		"rip", "eflags", "cs", "ss", "ds", "es", "fs", "gs",
		"st0", "st1", "st2", "st3", "st4", "st5", "st6", "st7",
		"fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop",
		"xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
		"xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",
		"mxcsr", "fs_base", "gs_base",
	};
	const char *p;
	unsigned bits = 0;
	int n = 0;

	read_target_xml(f, xml, sizeof(xml), 0x100);
	assert_non_null(strstr(xml, "<architecture>i386:x86-64</architecture>"));
	assert_non_null(strstr(xml, "org.gnu.gdb.i386.core"));
	assert_non_null(strstr(xml, "org.gnu.gdb.i386.sse"));
	assert_non_null(strstr(xml, "org.gnu.gdb.i386.segments"));
	/* walk the <reg> elements in order, summing bit sizes */
	for (p = strstr(xml, "<reg "); p; p = strstr(p + 1, "<reg ")) {
		char name[32];
		unsigned bs;
		int regnum;

		assert_int_equal(sscanf(p, "<reg name=\"%31[^\"]\" bitsize=\"%u\"", name, &bs), 2);
		assert_non_null(strstr(p, "regnum=\""));
		sscanf(strstr(p, "regnum=\"") + 8, "%d", &regnum);
		assert_int_equal(regnum, n);
		if (n < (int)(sizeof(order) / sizeof(order[0])))
			assert_string_equal(name, order[n]);
		bits += bs;
		n++;
	}
	assert_int_equal(n, gdb_x86_nregs);
	/* the 'g' reply is exactly that many bits as hex */
	cmd(f, "g");
	assert_int_equal(f->rlen, bits / 4);
	assert_int_equal(f->rlen, 2 * gdb_x86_regs_size());
}

static void test_qxfer_beyond_end_and_unknown_annex(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(cmd(f, "qXfer:features:read:target.xml:100000,10"), "l");
	assert_int_equal(cmd(f, "qXfer:features:read:other.xml:0,10")[0], 'E');
	assert_int_equal(cmd(f, "qXfer:features:read:target.xml:zz,10")[0], 'E');
	assert_int_equal(cmd(f, "qXfer:features:read:target.xml:0")[0], 'E');
}

static void test_stop_reason_after_attach_is_sigtrap_on_thread_1(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(f->t.nstop, 1);	/* attach stopped the VM */
	assert_string_equal(cmd(f, "?"), "T05thread:1;");
}

static void test_unknown_packets_get_empty_reply(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(cmd(f, "vMustReplyEmpty"), "");
	assert_string_equal(cmd(f, "qTStatus"), "");
	assert_string_equal(cmd(f, "!"), "");
	assert_string_equal(cmd(f, "\x7f\x01"), "");
	assert_string_equal(cmd(f, ""), "");
}

static void test_qattached_and_thread_extra_info(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(cmd(f, "qAttached"), "1");
	assert_string_equal(cmd(f, "qAttached:1"), "1");
	/* "vCPU 1" in hex */
	assert_string_equal(cmd(f, "qThreadExtraInfo,2"), "764350552031");
	assert_int_equal(cmd(f, "qThreadExtraInfo,3")[0], 'E');
}

/* ---- threads --------------------------------------------------------- */

static void test_thread_list_has_one_thread_per_vcpu(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(cmd(f, "qfThreadInfo"), "m1,2");
	assert_string_equal(cmd(f, "qsThreadInfo"), "l");
	assert_string_equal(cmd(f, "qC"), "QC1");
	assert_string_equal(cmd(f, "T1"), "OK");
	assert_string_equal(cmd(f, "T2"), "OK");
	assert_int_equal(cmd(f, "T3")[0], 'E');
	assert_int_equal(cmd(f, "T0")[0], 'E');
	assert_int_equal(cmd(f, "Tx")[0], 'E');
}

static void test_hg_selects_the_vcpu_for_registers(void **state)
{
	struct fixture *f = *state;

	f->t.regs[1].rip = 0x1122334455667788ULL;
	assert_string_equal(cmd(f, "Hg2"), "OK");
	cmd(f, "g");
	assert_int_equal(hex_le64(f->reply + 16 * 16), 0x1122334455667788ULL);
	assert_string_equal(cmd(f, "qC"), "QC2");
	assert_string_equal(cmd(f, "Hg0"), "OK");	/* any: keeps vCPU 1 */
	assert_string_equal(cmd(f, "Hc-1"), "OK");
	assert_int_equal(cmd(f, "Hg3")[0], 'E');
	assert_int_equal(cmd(f, "Hx1")[0], 'E');
	assert_int_equal(cmd(f, "Hg")[0], 'E');
	cmd(f, "g");
	assert_int_equal(hex_le64(f->reply + 16 * 16), 0x1122334455667788ULL);
}

/* ---- registers ------------------------------------------------------- */

static void test_g_reports_registers_little_endian_in_gdb_order(void **state)
{
	struct fixture *f = *state;

	f->t.regs[0].rax = 0x0102030405060708ULL;
	f->t.regs[0].rbp = 0xaa;
	f->t.regs[0].rsp = 0xbb;
	f->t.regs[0].eflags = 0x246;
	f->t.regs[0].cs = 0x10;
	f->t.regs[0].fs_base = 0xdeadbeef;
	cmd(f, "g");
	assert_memory_equal(f->reply, "0807060504030201", 16);
	assert_int_equal(hex_le64(f->reply + 6 * 16), 0xaa);	/* rbp before rsp */
	assert_int_equal(hex_le64(f->reply + 7 * 16), 0xbb);
	assert_memory_equal(f->reply + 17 * 16, "46020000", 8);	/* eflags, 32-bit */
	assert_memory_equal(f->reply + 17 * 16 + 8, "10000000", 8);	/* cs */
	/* fs_base is register 57 */
	assert_int_equal(gdb_x86_reg_table[57].offset, offsetof(struct gdb_x86_regs, fs_base));
	assert_string_equal(cmd(f, "p39"), "efbeadde00000000");
}

static void test_g_reports_target_error(void **state)
{
	struct fixture *f = *state;

	f->t.fail_get_regs = -EIO;
	assert_string_equal(cmd(f, "g"), "E05");
	assert_string_equal(cmd(f, "p10"), "E05");
}

static void test_G_writes_all_registers(void **state)
{
	struct fixture *f = *state;
	static char g[4096];

	cmd(f, "g");
	g[0] = 'G';
	memcpy(g + 1, f->reply, f->rlen + 1);
	memcpy(g + 1, "efcdab8967452301", 16);		/* rax */
	memcpy(g + 1 + 16 * 16, "0010000000000000", 16);	/* rip = 0x1000 */
	assert_string_equal(cmd(f, g), "OK");
	assert_int_equal(f->t.regs[0].rax, 0x0123456789abcdefULL);
	assert_int_equal(f->t.regs[0].rip, 0x1000);
}

static void test_G_with_wrong_length_or_bad_hex_is_refused(void **state)
{
	struct fixture *f = *state;
	static char g[4096];
	struct gdb_x86_regs before = f->t.regs[0];

	assert_int_equal(cmd(f, "G0011")[0], 'E');
	cmd(f, "g");
	g[0] = 'G';
	memcpy(g + 1, f->reply, f->rlen + 1);
	g[5] = 'x';
	assert_int_equal(cmd(f, g)[0], 'E');
	assert_memory_equal(&before, &f->t.regs[0], sizeof(before));
}

static void test_p_and_P_read_and_write_one_register(void **state)
{
	struct fixture *f = *state;

	f->t.regs[0].rip = 0xffffffff81000000ULL;
	assert_string_equal(cmd(f, "p10"), "00000081ffffffff");
	assert_string_equal(cmd(f, "P10=0020000000000000"), "OK");
	assert_int_equal(f->t.regs[0].rip, 0x2000);
	assert_string_equal(cmd(f, "P11=00030000"), "OK");	/* eflags: 4 bytes */
	assert_int_equal(f->t.regs[0].eflags, 0x300);
	assert_string_equal(cmd(f, "p11"), "00030000");
	/* st0 is 10 bytes */
	assert_int_equal(strlen(cmd(f, "p18")), 20);
}

static void test_p_and_P_refuse_bad_input(void **state)
{
	struct fixture *f = *state;
	char q[32];

	snprintf(q, sizeof(q), "p%x", gdb_x86_nregs);
	assert_int_equal(cmd(f, q)[0], 'E');
	assert_int_equal(cmd(f, "pffffffffffffffffff")[0], 'E');
	assert_int_equal(cmd(f, "p")[0], 'E');
	assert_int_equal(cmd(f, "p10x")[0], 'E');
	assert_int_equal(cmd(f, "P10=00")[0], 'E');			/* short */
	assert_int_equal(cmd(f, "P10=00200000000000000000")[0], 'E');	/* long */
	assert_int_equal(cmd(f, "P10=zz20000000000000")[0], 'E');
	assert_int_equal(cmd(f, "P10")[0], 'E');
	snprintf(q, sizeof(q), "P%x=00", gdb_x86_nregs + 5);
	assert_int_equal(cmd(f, q)[0], 'E');
	assert_int_equal(f->t.regs[0].rip, 0x100000);
}

/* ---- memory ---------------------------------------------------------- */

static void test_m_reads_guest_virtual_memory(void **state)
{
	struct fixture *f = *state;
	char q[64];

	snprintf(q, sizeof(q), "m%llx,4", FAKE_DATA);
	assert_string_equal(cmd(f, q), "01080f16");
	/* same bytes through the kernel's 1 GiB mapping */
	snprintf(q, sizeof(q), "m%llx,4", FAKE_KERNEL_BASE + FAKE_DATA);
	assert_string_equal(cmd(f, q), "01080f16");
	assert_string_equal(cmd(f, "m10000,0"), "");
}

static void test_m_on_unmapped_page_is_an_error(void **state)
{
	struct fixture *f = *state;
	char q[64];

	snprintf(q, sizeof(q), "m%llx,10", FAKE_UNMAPPED_PAGE + 8);
	assert_string_equal(cmd(f, q), "E14");
	/* mapped but beyond RAM (1 GiB page, 1 MiB RAM) */
	snprintf(q, sizeof(q), "m%llx,1", FAKE_KERNEL_BASE + 0x200000);
	assert_string_equal(cmd(f, q), "E14");
	/* not canonical */
	assert_string_equal(cmd(f, "m800000000000,1"), "E14");
}

static void test_m_crossing_into_unmapped_page_returns_the_readable_part(void **state)
{
	struct fixture *f = *state;
	char q[64];

	f->t.ram[FAKE_UNMAPPED_PAGE - 2] = 0xab;
	f->t.ram[FAKE_UNMAPPED_PAGE - 1] = 0xcd;
	snprintf(q, sizeof(q), "m%llx,8", FAKE_UNMAPPED_PAGE - 2);
	assert_string_equal(cmd(f, q), "abcd");
}

static void test_m_huge_length_is_bounded(void **state)
{
	struct fixture *f = *state;

	cmd(f, "m10000,ffffffffffffffff");
	assert_true(f->rlen > 0 && f->rlen <= GDB_REPLY_MAX);
	assert_int_equal(f->rlen, 2 * GDB_MEM_MAX);
	assert_memory_equal(f->reply, "01080f16", 8);
	assert_int_equal(cmd(f, "m10000,1ffffffffffffffff")[0], 'E');	/* 17 digits */
}

static void test_m_malformed_is_an_error(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(cmd(f, "m")[0], 'E');
	assert_int_equal(cmd(f, "m10000")[0], 'E');
	assert_int_equal(cmd(f, "m10000,")[0], 'E');
	assert_int_equal(cmd(f, "m,4")[0], 'E');
	assert_int_equal(cmd(f, "m10000,4;")[0], 'E');
	assert_int_equal(cmd(f, "mxyz,4")[0], 'E');
}

static void test_M_writes_guest_memory(void **state)
{
	struct fixture *f = *state;
	char q[64];

	snprintf(q, sizeof(q), "M%llx,3:a1b2c3", FAKE_KERNEL_BASE + 0x20000);
	assert_string_equal(cmd(f, q), "OK");
	assert_memory_equal(f->t.ram + 0x20000, "\xa1\xb2\xc3", 3);
	assert_string_equal(cmd(f, "M20000,0:"), "OK");
}

static void test_M_refuses_bad_input_and_unmapped_pages(void **state)
{
	struct fixture *f = *state;
	char q[64];

	assert_int_equal(cmd(f, "M20000,3:a1b2")[0], 'E');		/* short data */
	assert_int_equal(cmd(f, "M20000,1:a1b2")[0], 'E');		/* long data */
	assert_int_equal(cmd(f, "M20000,1:zz")[0], 'E');
	assert_int_equal(cmd(f, "M20000,1a1")[0], 'E');
	assert_int_equal(cmd(f, "M20000,ffffffffffffffff:00")[0], 'E');
	/* a write straddling into the unmapped page changes nothing */
	snprintf(q, sizeof(q), "M%llx,2:eeee", FAKE_UNMAPPED_PAGE - 1);
	assert_string_equal(cmd(f, q), "E14");
	assert_int_equal(f->t.ram[FAKE_UNMAPPED_PAGE - 1], 0);
	assert_int_equal(f->t.ram[0x20000], 0);
}

static void test_X_writes_escaped_binary_data(void **state)
{
	struct fixture *f = *state;
	const char pkt[] = "X20000,6:\x00\x01}#$*";	/* encode escapes } # $ * */

	send_pkt_n(f, pkt, sizeof(pkt) - 1);
	assert_int_equal(take_output(f), 1);
	assert_string_equal(f->reply, "OK");
	assert_memory_equal(f->t.ram + 0x20000, "\x00\x01}#$*", 6);
	/* the probe gdb sends to learn whether X works */
	assert_string_equal(cmd(f, "X20000,0:"), "OK");
	assert_int_equal(cmd(f, "X20000,4:ab")[0], 'E');
	assert_string_equal(cmd(f, "X80000,1:a"), "E14");
}

/* ---- breakpoints ----------------------------------------------------- */

static void test_sw_breakpoint_plants_int3_and_hides_it_from_reads(void **state)
{
	struct fixture *f = *state;
	uint64_t a = FAKE_DATA + 0x10;
	char q[64];
	uint8_t orig = f->t.ram[a];

	snprintf(q, sizeof(q), "Z0,%llx,1", (unsigned long long)a);
	assert_string_equal(cmd(f, q), "OK");
	assert_int_equal(f->t.ram[a], 0xcc);
	assert_true(gdb_session_owns_sw_bp(&f->s, a));
	assert_false(gdb_session_owns_sw_bp(&f->s, a + 1));
	/* inserting again keeps the original byte */
	assert_string_equal(cmd(f, q), "OK");
	/* reads show the original instruction byte */
	snprintf(q, sizeof(q), "m%llx,1", (unsigned long long)a);
	char expect[3];
	snprintf(expect, sizeof(expect), "%02x", orig);
	assert_string_equal(cmd(f, q), expect);
	/* remove: original byte back */
	snprintf(q, sizeof(q), "z0,%llx,1", (unsigned long long)a);
	assert_string_equal(cmd(f, q), "OK");
	assert_int_equal(f->t.ram[a], orig);
	assert_int_equal(cmd(f, q)[0], 'E');	/* not there any more */
}

static void test_memory_write_over_sw_breakpoint_keeps_the_int3(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(cmd(f, "Z0,20001,1"), "OK");
	assert_string_equal(cmd(f, "M20000,3:112233"), "OK");
	assert_memory_equal(f->t.ram + 0x20000, "\x11\xcc\x33", 3);
	assert_string_equal(cmd(f, "m20000,3"), "112233");
	assert_string_equal(cmd(f, "z0,20001,1"), "OK");
	assert_memory_equal(f->t.ram + 0x20000, "\x11\x22\x33", 3);
}

static void test_sw_breakpoint_on_unmapped_page_is_refused(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(cmd(f, "Z0,80010,1"), "E14");
	assert_int_equal(f->s.nsw, 0);
	assert_int_equal(cmd(f, "Z0,zz,1")[0], 'E');
	assert_int_equal(cmd(f, "Z0,20000")[0], 'E');
	assert_string_equal(cmd(f, "Z9,20000,1"), "");	/* unknown type: unsupported */
}

static void test_hw_breakpoint_slots_are_four_and_full_is_an_error(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(cmd(f, "Z1,1000,1"), "OK");
	assert_string_equal(cmd(f, "Z2,2000,4"), "OK");
	assert_string_equal(cmd(f, "Z3,3000,8"), "OK");
	assert_string_equal(cmd(f, "Z4,4002,2"), "OK");
	assert_string_equal(cmd(f, "Z1,5000,1"), "E28");	/* ENOSPC: all DRs used */
	assert_string_equal(cmd(f, "Z2,6000,4"), "E28");
	assert_string_equal(cmd(f, "Z2,2000,4"), "OK");	/* same one again: fine */
	assert_string_equal(cmd(f, "z2,2000,4"), "OK");
	assert_string_equal(cmd(f, "Z1,5000,1"), "OK");	/* slot free again */
	assert_int_equal(cmd(f, "z2,2000,4")[0], 'E');
	/* the debug state handed to the target on resume */
	cmd_resume(f, "c");
	const struct gdb_debug_state *d = &f->t.dbg[0];
	assert_true(d->enabled);
	assert_false(d->sw_bp);
	assert_int_equal(d->hw[0].type, GDB_HW_EXEC);
	assert_int_equal(d->hw[0].addr, 0x1000);
	assert_int_equal(d->hw[1].type, GDB_HW_EXEC);
	assert_int_equal(d->hw[1].addr, 0x5000);
	assert_int_equal(d->hw[2].type, GDB_HW_READ);
	assert_int_equal(d->hw[2].len, 8);
	assert_int_equal(d->hw[3].type, GDB_HW_ACCESS);
	assert_int_equal(d->hw[3].addr, 0x4002);
}

static void test_watchpoint_length_and_alignment_are_checked(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(cmd(f, "Z2,2001,4"), "E22");	/* unaligned */
	assert_string_equal(cmd(f, "Z2,2000,3"), "E22");	/* no such length */
	assert_string_equal(cmd(f, "Z2,2000,10"), "E22");
	assert_string_equal(cmd(f, "Z4,2000,0"), "E22");
	assert_string_equal(cmd(f, "Z2,2000,8"), "OK");
}

/* ---- resume and stop ------------------------------------------------- */

static void test_continue_resumes_all_and_swbreak_stop_is_reported(void **state)
{
	struct fixture *f = *state;
	struct gdb_stop_event ev = { .cpu = 1, .reason = GDB_STOP_SW_BP, .addr = 0x20000 };
	int nstop;

	assert_string_equal(cmd(f, "Z0,20000,1"), "OK");
	cmd_resume(f, "c");
	assert_int_equal(f->t.nresume, 1);
	assert_int_equal(f->t.actions[0], GDB_CPU_CONTINUE);
	assert_int_equal(f->t.actions[1], GDB_CPU_CONTINUE);
	assert_true(f->t.dbg[0].sw_bp && f->t.dbg[1].sw_bp);
	assert_false(f->t.dbg[0].single_step);
	nstop = f->t.nstop;
	gdb_session_stop_event(&f->s, &ev);
	assert_int_equal(take_output(f), 1);
	assert_string_equal(f->reply, "T05thread:2;swbreak:;");
	assert_int_equal(f->t.nstop, nstop + 1);	/* all-stop */
	assert_false(f->s.running);
	/* the reporting vCPU becomes the current thread */
	assert_string_equal(cmd(f, "qC"), "QC2");
	assert_string_equal(cmd(f, "?"), "T05thread:2;swbreak:;");
	/* a second stop racing in is dropped: nothing sent */
	gdb_session_stop_event(&f->s, &ev);
	assert_int_equal(take_output(f), 0);
}

static void test_continue_with_address_sets_rip(void **state)
{
	struct fixture *f = *state;

	cmd_resume(f, "c3000");
	assert_int_equal(f->t.regs[0].rip, 0x3000);
}

static void test_continue_with_signal_ignores_the_signal(void **state)
{
	struct fixture *f = *state;

	cmd_resume(f, "C0b;4000");
	assert_int_equal(f->t.regs[0].rip, 0x4000);
}

static void test_bad_continue_and_step_are_refused(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(cmd(f, "cxyz")[0], 'E');
	assert_int_equal(cmd(f, "C")[0], 'E');
	assert_int_equal(cmd(f, "S05x")[0], 'E');
	assert_int_equal(f->t.nresume, 0);
}

static void test_step_steps_the_current_vcpu_with_irqs_blocked(void **state)
{
	struct fixture *f = *state;
	struct gdb_stop_event ev = { .cpu = 0, .reason = GDB_STOP_STEP };

	cmd_resume(f, "s");
	assert_int_equal(f->t.actions[0], GDB_CPU_STEP);
	assert_int_equal(f->t.actions[1], GDB_CPU_STAY);
	assert_true(f->t.dbg[0].enabled);
	assert_true(f->t.dbg[0].single_step);
	assert_true(f->t.dbg[0].block_irq);
	assert_false(f->t.dbg[1].single_step);
	gdb_session_stop_event(&f->s, &ev);
	assert_int_equal(take_output(f), 1);
	assert_string_equal(f->reply, "T05thread:1;");
}

static void test_vcont_query_lists_actions(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(cmd(f, "vCont?"), "vCont;c;C;s;S;t");
}

static void test_vcont_steps_one_thread_and_continues_others(void **state)
{
	struct fixture *f = *state;

	cmd_resume(f, "vCont;s:2;c");
	assert_int_equal(f->t.actions[0], GDB_CPU_CONTINUE);
	assert_int_equal(f->t.actions[1], GDB_CPU_STEP);
	assert_true(f->t.dbg[1].single_step);
	assert_false(f->t.dbg[0].single_step);
}

static void test_vcont_leftmost_action_wins_and_unnamed_threads_stay(void **state)
{
	struct fixture *f = *state;

	cmd_resume(f, "vCont;s:1;c:1");
	assert_int_equal(f->t.actions[0], GDB_CPU_STEP);
	assert_int_equal(f->t.actions[1], GDB_CPU_STAY);
	f->s.running = false;
	cmd_resume(f, "vCont;C05:2;t");
	assert_int_equal(f->t.actions[0], GDB_CPU_STAY);
	assert_int_equal(f->t.actions[1], GDB_CPU_CONTINUE);
	f->s.running = false;
	cmd_resume(f, "vCont;c:-1");
	assert_int_equal(f->t.actions[0], GDB_CPU_CONTINUE);
	assert_int_equal(f->t.actions[1], GDB_CPU_CONTINUE);
}

static void test_vcont_refuses_bad_actions_and_threads(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(cmd(f, "vCont;x"), "E22");
	assert_string_equal(cmd(f, "vCont;r1000,2000"), "E22");
	assert_int_equal(cmd(f, "vCont;s:3")[0], 'E');
	assert_int_equal(cmd(f, "vCont;s:")[0], 'E');
	assert_int_equal(cmd(f, "vCont;")[0], 'E');
	assert_int_equal(cmd(f, "vCont;c;")[0], 'E');
	assert_int_equal(cmd(f, "vCont;C:1")[0], 'E');
	assert_int_equal(cmd(f, "vCont;c:1junk")[0], 'E');
	assert_int_equal(f->t.nresume, 0);
	/* only 't': nothing runs, answered with the current stop */
	assert_string_equal(cmd(f, "vCont;t"), "T05thread:1;");
	assert_int_equal(f->t.nresume, 0);
}

static void test_ctrl_c_while_running_stops_and_reports_sigint(void **state)
{
	struct fixture *f = *state;
	int nstop;

	cmd_resume(f, "vCont;c");
	nstop = f->t.nstop;
	assert_int_equal(send_raw(f, "\x03", 1), 0);
	assert_int_equal(take_output(f), 1);
	assert_string_equal(f->reply, "T02thread:1;");
	assert_int_equal(f->t.nstop, nstop + 1);
	assert_false(f->s.running);
}

static void test_ctrl_c_while_stopped_is_ignored(void **state)
{
	struct fixture *f = *state;
	int nstop = f->t.nstop;

	send_raw(f, "\x03", 1);
	assert_int_equal(take_output(f), 0);
	assert_int_equal(f->t.nstop, nstop);
}

static void test_packets_while_running_are_refused(void **state)
{
	struct fixture *f = *state;

	cmd_resume(f, "c");
	assert_string_equal(cmd(f, "g"), "E16");	/* EBUSY */
	assert_string_equal(cmd(f, "c"), "E16");
	assert_int_equal(f->t.nresume, 1);
}

static void test_watchpoint_and_hwbreak_stop_replies(void **state)
{
	struct fixture *f = *state;
	struct gdb_stop_event w = { .cpu = 0, .reason = GDB_STOP_WATCH, .slot = 0,
				    .watch_type = GDB_HW_WRITE, .addr = 0x2000 };
	struct gdb_stop_event a = { .cpu = 0, .reason = GDB_STOP_WATCH, .slot = 1,
				    .watch_type = GDB_HW_ACCESS, .addr = 0x3000 };
	struct gdb_stop_event r = { .cpu = 1, .reason = GDB_STOP_WATCH, .slot = 1,
				    .watch_type = GDB_HW_READ, .addr = 0x3008 };
	struct gdb_stop_event h = { .cpu = 1, .reason = GDB_STOP_HW_BP, .addr = 0x1000 };

	cmd_resume(f, "c");
	gdb_session_stop_event(&f->s, &w);
	take_output(f);
	assert_string_equal(f->reply, "T05thread:1;watch:2000;");
	cmd_resume(f, "c");
	gdb_session_stop_event(&f->s, &a);
	take_output(f);
	assert_string_equal(f->reply, "T05thread:1;awatch:3000;");
	cmd_resume(f, "c");
	gdb_session_stop_event(&f->s, &r);
	take_output(f);
	assert_string_equal(f->reply, "T05thread:2;rwatch:3008;");
	cmd_resume(f, "c");
	gdb_session_stop_event(&f->s, &h);
	take_output(f);
	assert_string_equal(f->reply, "T05thread:2;hwbreak:;");
}

static void test_vm_exit_sends_W_and_ends_the_session(void **state)
{
	struct fixture *f = *state;
	struct gdb_stop_event ev = { .cpu = 0, .reason = GDB_STOP_EXITED, .exit_code = 0 };
	int nresume;

	cmd_resume(f, "c");
	nresume = f->t.nresume;
	gdb_session_stop_event(&f->s, &ev);
	assert_int_equal(take_output(f), 1);
	assert_string_equal(f->reply, "W00");
	assert_true(f->s.closing);
	gdb_session_detach(&f->s);
	assert_int_equal(f->t.nresume, nresume);	/* nothing to resume */
}

/* ---- acks, errors on the wire --------------------------------------- */

static void test_bad_checksum_is_nacked_and_not_executed(void **state)
{
	struct fixture *f = *state;

	send_raw(f, "$c#00", 5);
	assert_int_equal(f->cap.len, 1);
	assert_int_equal(f->cap.buf[0], '-');
	f->cap.len = 0;
	assert_int_equal(f->t.nresume, 0);
	assert_false(f->s.running);
}

static void test_nack_retransmits_the_last_reply(void **state)
{
	struct fixture *f = *state;

	cmd(f, "qC");
	send_raw(f, "-", 1);
	assert_int_equal(take_output(f), 1);
	assert_string_equal(f->reply, "QC1");
	assert_int_equal(f->acks, 0);
}

static void test_no_ack_mode_stops_acks(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(cmd(f, "QStartNoAckMode"), "OK");
	assert_int_equal(f->acks, 1);	/* that packet is still acked */
	send_raw(f, "+", 1);
	assert_string_equal(cmd(f, "qC"), "QC1");
	assert_int_equal(f->acks, 0);
	/* bad checksums are no longer nacked either */
	send_raw(f, "$qC#00", 6);
	assert_int_equal(f->cap.len, 0);
}

static void test_garbage_and_huge_input_is_bounded(void **state)
{
	struct fixture *f = *state;
	static uint8_t junk[1 << 20];
	uint32_t x = 12345;

	for (size_t i = 0; i < sizeof(junk); i++) {
		x = x * 1103515245 + 12345;
		junk[i] = (uint8_t)(x >> 16);
		if (junk[i] == 0x03)	/* keep Ctrl-C out: the target is stopped anyway */
			junk[i] = 0;
	}
	send_raw(f, junk, sizeof(junk));
	/* whatever happened, the session still answers a clean packet */
	f->cap.len = 0;
	f->s.running = false;
	f->s.no_ack = false;
	f->s.closing = false;
	gdb_pkt_init(&f->s.parser);
	assert_string_equal(cmd(f, "qC"), "QC1");
}

/* ---- detach and kill ------------------------------------------------- */

static void test_detach_removes_breakpoints_and_resumes(void **state)
{
	struct fixture *f = *state;
	uint8_t orig = f->t.ram[0x20000];

	assert_string_equal(cmd(f, "Z0,20000,1"), "OK");
	assert_string_equal(cmd(f, "Z1,1000,1"), "OK");
	send_pkt_n(f, "D", 1);
	assert_int_equal(take_output(f), 1);
	assert_string_equal(f->reply, "OK");
	assert_true(f->s.closing);
	gdb_session_detach(&f->s);
	assert_int_equal(f->t.ram[0x20000], orig);
	assert_false(f->t.dbg[0].enabled);
	assert_false(f->t.dbg[1].enabled);
	assert_int_equal(f->t.dbg[0].hw[0].type, GDB_HW_NONE);
	assert_int_equal(f->t.nresume, 1);
	assert_int_equal(f->t.actions[0], GDB_CPU_CONTINUE);
	assert_int_equal(f->t.actions[1], GDB_CPU_CONTINUE);
	assert_false(gdb_session_owns_sw_bp(&f->s, 0x20000));
}

static void test_detach_while_running_stops_before_removing_breakpoints(void **state)
{
	struct fixture *f = *state;
	int nstop;

	assert_string_equal(cmd(f, "Z0,20000,1"), "OK");
	cmd_resume(f, "c");
	nstop = f->t.nstop;
	gdb_session_detach(&f->s);	/* client vanished while the guest ran */
	assert_int_equal(f->t.nstop, nstop + 1);
	assert_int_not_equal(f->t.ram[0x20000], 0xcc);
	assert_int_equal(f->t.nresume, 2);
	assert_true(f->t.running);
}

static void test_breakpoint_removal_leaves_memory_the_guest_rewrote(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(cmd(f, "Z0,20000,1"), "OK");
	f->t.ram[0x20000] = 0x90;	/* the guest reused that memory */
	gdb_session_detach(&f->s);
	assert_int_equal(f->t.ram[0x20000], 0x90);
}

static void test_kill_asks_the_target_and_does_not_resume(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(send_pkt_n(f, "k", 1), 1);
	assert_int_equal(take_output(f), 0);	/* no reply to k */
	assert_int_equal(f->t.nkill, 1);
	gdb_session_detach(&f->s);
	assert_int_equal(f->t.nresume, 0);
}

static const char *hex_of(const char *txt)
{
	static char h[256];

	for (size_t i = 0; txt[i] && i < 120; i++)
		sprintf(h + 2 * i, "%02x", (unsigned char)txt[i]);
	h[2 * strlen(txt)] = 0;
	return h;
}

static void test_monitor_step_irqs_toggles_interrupt_masking(void **state)
{
	struct fixture *f = *state;
	char q[300];

	snprintf(q, sizeof(q), "qRcmd,%s", hex_of("step-irqs on"));
	assert_string_equal(cmd(f, q), hex_of("interrupts while stepping: delivered\n"));
	cmd_resume(f, "s");
	assert_true(f->t.dbg[0].single_step);
	assert_false(f->t.dbg[0].block_irq);
	f->s.running = false;
	snprintf(q, sizeof(q), "qRcmd,%s", hex_of("step-irqs off"));
	assert_string_equal(cmd(f, q), hex_of("interrupts while stepping: masked\n"));
	cmd_resume(f, "s");
	assert_true(f->t.dbg[0].block_irq);
	f->s.running = false;
	snprintf(q, sizeof(q), "qRcmd,%s", hex_of("frobnicate"));
	assert_non_null(strstr(cmd(f, q), hex_of("unknown monitor command")));
	assert_int_equal(cmd(f, "qRcmd,7")[0], 'E');
	assert_int_equal(cmd(f, "qRcmd,zz")[0], 'E');
}

static void test_attach_refuses_a_target_without_vcpus(void **state)
{
	struct fake_target t;
	struct gdb_session s;
	struct capture *c = calloc(1, sizeof(*c));

	fake_target_init(&t, 1);
	t.ncpus = 0;
	assert_int_equal(gdb_session_init(&s, &fake_ops, &t, cap_send, c), 0);
	assert_int_equal(gdb_session_attach(&s), -ENODEV);
	t.ncpus = GDB_MAX_CPUS + 1;
	assert_int_equal(gdb_session_attach(&s), -ENODEV);
	gdb_session_destroy(&s);
	fake_target_free(&t);
	free(c);
}

#define T1(fn) cmocka_unit_test_setup_teardown(fn, setup1, teardown)
#define T2(fn) cmocka_unit_test_setup_teardown(fn, setup2, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T1(test_qsupported_advertises_packet_size_and_features),
		T1(test_target_xml_describes_exactly_the_g_layout),
		T1(test_qxfer_beyond_end_and_unknown_annex),
		T1(test_stop_reason_after_attach_is_sigtrap_on_thread_1),
		T1(test_unknown_packets_get_empty_reply),
		T2(test_qattached_and_thread_extra_info),
		T2(test_thread_list_has_one_thread_per_vcpu),
		T2(test_hg_selects_the_vcpu_for_registers),
		T1(test_g_reports_registers_little_endian_in_gdb_order),
		T1(test_g_reports_target_error),
		T1(test_G_writes_all_registers),
		T1(test_G_with_wrong_length_or_bad_hex_is_refused),
		T1(test_p_and_P_read_and_write_one_register),
		T1(test_p_and_P_refuse_bad_input),
		T1(test_m_reads_guest_virtual_memory),
		T1(test_m_on_unmapped_page_is_an_error),
		T1(test_m_crossing_into_unmapped_page_returns_the_readable_part),
		T1(test_m_huge_length_is_bounded),
		T1(test_m_malformed_is_an_error),
		T1(test_M_writes_guest_memory),
		T1(test_M_refuses_bad_input_and_unmapped_pages),
		T1(test_X_writes_escaped_binary_data),
		T1(test_sw_breakpoint_plants_int3_and_hides_it_from_reads),
		T1(test_memory_write_over_sw_breakpoint_keeps_the_int3),
		T1(test_sw_breakpoint_on_unmapped_page_is_refused),
		T1(test_hw_breakpoint_slots_are_four_and_full_is_an_error),
		T1(test_watchpoint_length_and_alignment_are_checked),
		T2(test_continue_resumes_all_and_swbreak_stop_is_reported),
		T1(test_continue_with_address_sets_rip),
		T1(test_continue_with_signal_ignores_the_signal),
		T1(test_bad_continue_and_step_are_refused),
		T2(test_step_steps_the_current_vcpu_with_irqs_blocked),
		T1(test_vcont_query_lists_actions),
		T2(test_vcont_steps_one_thread_and_continues_others),
		T2(test_vcont_leftmost_action_wins_and_unnamed_threads_stay),
		T2(test_vcont_refuses_bad_actions_and_threads),
		T2(test_ctrl_c_while_running_stops_and_reports_sigint),
		T1(test_ctrl_c_while_stopped_is_ignored),
		T1(test_packets_while_running_are_refused),
		T2(test_watchpoint_and_hwbreak_stop_replies),
		T1(test_vm_exit_sends_W_and_ends_the_session),
		T1(test_bad_checksum_is_nacked_and_not_executed),
		T1(test_nack_retransmits_the_last_reply),
		T1(test_no_ack_mode_stops_acks),
		T1(test_garbage_and_huge_input_is_bounded),
		T2(test_detach_removes_breakpoints_and_resumes),
		T1(test_detach_while_running_stops_before_removing_breakpoints),
		T1(test_breakpoint_removal_leaves_memory_the_guest_rewrote),
		T1(test_kill_asks_the_target_and_does_not_resume),
		T1(test_monitor_step_irqs_toggles_interrupt_masking),
		cmocka_unit_test(test_attach_refuses_a_target_without_vcpus),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
