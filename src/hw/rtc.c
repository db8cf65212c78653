/*
 * MC146818 real-time clock and CMOS RAM at ports 0x70 (index; bit 7 = NMI
 * disable) and 0x71 (data), IRQ 8. Follows the Motorola MC146818A data sheet
 * ("MC146818A" below) with the PC's CMOS layout on top (QEMU hw/i386/pc.c
 * pc_cmos_init is what SeaBIOS and OVMF expect).
 *
 * Time: the guest clock is the host's UTC at realize, then runs with the
 * host's monotonic clock. It is kept as "guest time at a monotonic instant",
 * so a checkpoint saves guest time (seconds + ns), never host time, and the
 * guest may set it (SET bit, or writes to the time registers) freely.
 *
 * Interrupts (periodic, alarm, update-ended) raise IRQ 8 and are flagged in
 * register C; reading C clears them and lowers the line. They are driven by
 * event-loop timers when the machine has a loop. Without a loop (unit tests,
 * tools) the flags are still computed when register C is read, but no
 * interrupt is raised by the passage of time.
 *
 * args: mem=BYTES (total RAM, default: the machine's), cpus=N (default: the
 * machine's). Sizes may end in K, M, G or T.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amber/device.h"
#include "amber/evloop.h"
#include "amber/log.h"
#include "amber/machine.h"
#include "amber/mem.h"

#define RTC_CMOS_SIZE	128
#define NS_PER_SEC	1000000000LL

/* Clock registers (MC146818A Figure 4) */
#define RTC_SECONDS		0x00
#define RTC_SECONDS_ALARM	0x01
#define RTC_MINUTES		0x02
#define RTC_MINUTES_ALARM	0x03
#define RTC_HOURS		0x04
#define RTC_HOURS_ALARM		0x05
#define RTC_DAY_OF_WEEK		0x06
#define RTC_DAY_OF_MONTH	0x07
#define RTC_MONTH		0x08
#define RTC_YEAR		0x09
#define RTC_REG_A		0x0a
#define RTC_REG_B		0x0b
#define RTC_REG_C		0x0c
#define RTC_REG_D		0x0d
/* PC CMOS layout */
#define CMOS_SHUTDOWN_STATUS	0x0f
#define CMOS_FLOPPY_TYPE	0x10
#define CMOS_DISK_TYPE		0x12
#define CMOS_EQUIPMENT		0x14
#define CMOS_BASE_MEM_LO	0x15	/* KiB below 1 MiB (max 640) */
#define CMOS_EXT_MEM_LO		0x17	/* KiB above 1 MiB (max 65535) */
#define CMOS_CHECKSUM_HI	0x2e	/* sum of 0x10-0x2d */
#define CMOS_EXT_MEM2_LO	0x30	/* copy of 0x17-0x18 */
#define CMOS_CENTURY		0x32
#define CMOS_MEM_16M_LO		0x34	/* 64 KiB units between 16 MiB and the PCI hole */
#define CMOS_IBM_CENTURY	0x37
#define CMOS_BOOT_FLAG1		0x38	/* 3rd boot device << 4 | no floppy sig check */
#define CMOS_BOOT_FLAG2		0x3d	/* 2nd boot device << 4 | 1st */
#define CMOS_MEM_4G_LO		0x5b	/* 64 KiB units above 4 GiB, 3 bytes */
#define CMOS_NCPUS_M1		0x5f	/* number of CPUs - 1 */

#define REG_A_UIP	0x80
#define REG_A_DV	0x70
#define REG_A_RS	0x0f
#define REG_A_DV_32K	0x20	/* 32.768 kHz time base, normal operation */
#define REG_B_SET	0x80
#define REG_B_PIE	0x40
#define REG_B_AIE	0x20
#define REG_B_UIE	0x10
#define REG_B_SQWE	0x08
#define REG_B_DM	0x04	/* 1: binary, 0: BCD */
#define REG_B_24H	0x02
#define REG_B_DSE	0x01
#define REG_C_IRQF	0x80
#define REG_C_PF	0x40
#define REG_C_AF	0x20
#define REG_C_UF	0x10
#define REG_D_VRT	0x80	/* RAM and time valid */

/* MC146818A "Update Cycle": UIP is high 244 us before the update. */
#define RTC_UIP_NS	244140LL
#define RTC_ALARM_DONT_CARE 0xc0

/* Saved state: guest time, CMOS (clock registers included), index port. */
struct rtc_state {
	uint64_t time_s;		/* guest UTC, seconds since 1970 */
	uint32_t time_ns;
	uint8_t cmos[RTC_CMOS_SIZE];
	uint8_t index;
	bool nmi_disabled;
};

static const struct state_field rtc_fields[] = {
	STATE_U64_MAX(struct rtc_state, time_s, 1000000000000ULL),
	STATE_U32_MAX(struct rtc_state, time_ns, NS_PER_SEC - 1),
	STATE_BYTES(struct rtc_state, cmos),
	STATE_U8_MAX(struct rtc_state, index, RTC_CMOS_SIZE - 1),
	STATE_BOOL(struct rtc_state, nmi_disabled),
	STATE_END,
};

struct rtc {
	pthread_mutex_t lock;
	struct machine *m;
	uint8_t cmos[RTC_CMOS_SIZE];
	uint8_t index;
	bool nmi_disabled;

	/* Guest clock: base_s/base_ns at host monotonic base_mono, or frozen. */
	int64_t base_s;
	int64_t base_ns;
	int64_t base_mono;
	bool frozen;
	int64_t last_s;			/* guest second up to which UF/AF are counted */
	int64_t last_ticks;		/* 32 kHz tick of the last lazy PF check */

	int periodic_timer;		/* evloop timer ids, 0: none */
	uint64_t periodic_ns;
	int second_timer;
	int irq_level;
};

struct rtc_time {
	int64_t s, ns;			/* s may be negative for years < 1970 */
};

/* ---- calendar (proleptic Gregorian, H. Hinnant's algorithms) ------------ */

static int64_t rtc_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void rtc_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int64_t rtc_floor_div(int64_t a, int64_t b)
{
	return a / b - ((a % b) != 0 && ((a < 0) != (b < 0)));
}

/* ---- guest clock --------------------------------------------------------- */

static int64_t rtc_host_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static struct rtc_time rtc_now(const struct rtc *rt)
{
	struct rtc_time t = { rt->base_s, rt->base_ns };

	if (!rt->frozen) {
		int64_t ns = rt->base_ns + (rtc_host_ns(CLOCK_MONOTONIC) - rt->base_mono);

		t.s += rtc_floor_div(ns, NS_PER_SEC);
		t.ns = ns - rtc_floor_div(ns, NS_PER_SEC) * NS_PER_SEC;
	}
	return t;
}

static void rtc_set_clock(struct rtc *rt, int64_t s, int64_t ns)
{
	rt->base_s = s;
	rt->base_ns = ns;
	rt->base_mono = rtc_host_ns(CLOCK_MONOTONIC);
	rt->last_s = s;
}

/* The divider chain runs (MC146818A Table 3: DV = 000, 001, 010). */
static bool rtc_divider_running(const struct rtc *rt)
{
	return (rt->cmos[RTC_REG_A] & REG_A_DV) <= REG_A_DV_32K;
}

/* Time advances and the registers follow it. */
static bool rtc_running(const struct rtc *rt)
{
	return rtc_divider_running(rt) && !(rt->cmos[RTC_REG_B] & REG_B_SET);
}

/* ---- register encoding ---------------------------------------------------- */

static uint8_t rtc_to_reg(const struct rtc *rt, unsigned v)
{
	if (rt->cmos[RTC_REG_B] & REG_B_DM)
		return (uint8_t)v;
	return (uint8_t)(((v / 10 % 10) << 4) | (v % 10));
}

static unsigned rtc_from_reg(const struct rtc *rt, uint8_t v)
{
	if (rt->cmos[RTC_REG_B] & REG_B_DM)
		return v;
	/* Invalid BCD digits decode to whatever the arithmetic gives, no more. */
	return (v >> 4) * 10 + (v & 0x0f);
}

static uint8_t rtc_hour_to_reg(const struct rtc *rt, unsigned h)
{
	if (rt->cmos[RTC_REG_B] & REG_B_24H)
		return rtc_to_reg(rt, h);
	/* 12-hour mode: 1-12, bit 7 = PM (MC146818A Table 2). */
	return rtc_to_reg(rt, h % 12 ? h % 12 : 12) | (h >= 12 ? 0x80 : 0);
}

static unsigned rtc_hour_from_reg(const struct rtc *rt, uint8_t v)
{
	unsigned h;

	if (rt->cmos[RTC_REG_B] & REG_B_24H)
		return rtc_from_reg(rt, v);
	h = rtc_from_reg(rt, v & 0x7f) % 12;
	return (v & 0x80) ? h + 12 : h;
}

/* Render time t into the clock registers (the "update cycle"). */
static void rtc_store_time(struct rtc *rt, int64_t s)
{
	int64_t days = rtc_floor_div(s, 86400), sod = s - days * 86400, year;
	unsigned mon, mday, wday = (unsigned)(days + 4 - rtc_floor_div(days + 4, 7) * 7);

	rtc_civil_from_days(days, &year, &mon, &mday);
	if (year < 0)
		year = 0;
	rt->cmos[RTC_SECONDS] = rtc_to_reg(rt, (unsigned)(sod % 60));
	rt->cmos[RTC_MINUTES] = rtc_to_reg(rt, (unsigned)(sod / 60 % 60));
	rt->cmos[RTC_HOURS] = rtc_hour_to_reg(rt, (unsigned)(sod / 3600));
	rt->cmos[RTC_DAY_OF_WEEK] = rtc_to_reg(rt, wday + 1);	/* 1 = Sunday */
	rt->cmos[RTC_DAY_OF_MONTH] = rtc_to_reg(rt, mday);
	rt->cmos[RTC_MONTH] = rtc_to_reg(rt, mon);
	rt->cmos[RTC_YEAR] = rtc_to_reg(rt, (unsigned)(year % 100));
	rt->cmos[CMOS_CENTURY] = rtc_to_reg(rt, (unsigned)(year / 100 % 100));
	rt->cmos[CMOS_IBM_CENTURY] = rt->cmos[CMOS_CENTURY];
}

/* The time the clock registers hold. */
static int64_t rtc_load_time(const struct rtc *rt)
{
	int64_t year = (int64_t)rtc_from_reg(rt, rt->cmos[CMOS_CENTURY]) * 100 +
		       rtc_from_reg(rt, rt->cmos[RTC_YEAR]);
	unsigned mon = rtc_from_reg(rt, rt->cmos[RTC_MONTH]);
	unsigned mday = rtc_from_reg(rt, rt->cmos[RTC_DAY_OF_MONTH]);

	return rtc_days_from_civil(year, mon, mday) * 86400 +
	       (int64_t)rtc_hour_from_reg(rt, rt->cmos[RTC_HOURS]) * 3600 +
	       (int64_t)rtc_from_reg(rt, rt->cmos[RTC_MINUTES]) * 60 +
	       rtc_from_reg(rt, rt->cmos[RTC_SECONDS]);
}

/* Bring the clock registers up to date (only while running). */
static void rtc_refresh(struct rtc *rt)
{
	if (rtc_running(rt))
		rtc_store_time(rt, rtc_now(rt).s);
}

/* ---- interrupts ------------------------------------------------------------- */

static void rtc_update_irq(struct rtc *rt)
{
	uint8_t c = rt->cmos[RTC_REG_C] & (REG_C_PF | REG_C_AF | REG_C_UF);
	uint8_t b = rt->cmos[RTC_REG_B];
	int level;

	/* MC146818A register C: IRQF = PF.PIE + AF.AIE + UF.UIE */
	if (((c & REG_C_PF) && (b & REG_B_PIE)) || ((c & REG_C_AF) && (b & REG_B_AIE)) ||
	    ((c & REG_C_UF) && (b & REG_B_UIE)))
		rt->cmos[RTC_REG_C] |= REG_C_IRQF;
	level = !!(rt->cmos[RTC_REG_C] & REG_C_IRQF);
	if (level != rt->irq_level) {
		rt->irq_level = level;
		irq_set_line(rt->m->irq, IRQ_RTC, level);
	}
}

static bool rtc_alarm_field_matches(const struct rtc *rt, uint8_t alarm, unsigned v, bool hour)
{
	if ((alarm & RTC_ALARM_DONT_CARE) == RTC_ALARM_DONT_CARE)
		return true;
	return (hour ? rtc_hour_from_reg(rt, alarm) : rtc_from_reg(rt, alarm)) == v;
}

static bool rtc_alarm_matches(const struct rtc *rt, int64_t s)
{
	int64_t sod = s - rtc_floor_div(s, 86400) * 86400;

	return rtc_alarm_field_matches(rt, rt->cmos[RTC_SECONDS_ALARM], (unsigned)(sod % 60), false) &&
	       rtc_alarm_field_matches(rt, rt->cmos[RTC_MINUTES_ALARM], (unsigned)(sod / 60 % 60), false) &&
	       rtc_alarm_field_matches(rt, rt->cmos[RTC_HOURS_ALARM], (unsigned)(sod / 3600), true);
}

/* Periodic interrupt period in 32.768 kHz ticks (MC146818A Table 5), 0: off. */
static uint64_t rtc_period_ticks(const struct rtc *rt)
{
	unsigned rs = rt->cmos[RTC_REG_A] & REG_A_RS;

	if (rs == 0 || !rtc_divider_running(rt))
		return 0;
	/* RS 1 and 2 repeat the 256 Hz and 128 Hz rates of RS 8 and 9. */
	return rs <= 2 ? 1ULL << (rs + 6) : 1ULL << (rs - 1);
}

/*
 * Account the update cycles (UF, AF) that happened since the last call, and
 * PF when no periodic timer counts it. Then recompute IRQF and the line.
 */
static void rtc_account(struct rtc *rt)
{
	struct rtc_time now = rtc_now(rt);
	uint64_t period = rtc_period_ticks(rt);

	if (rtc_running(rt) && now.s > rt->last_s) {
		int64_t from = rt->last_s + 1;

		rt->cmos[RTC_REG_C] |= REG_C_UF;
		/* Every h:m:s combination occurs within a day. */
		if (now.s - from >= 86400)
			from = now.s - 86399;
		for (int64_t s = from; s <= now.s; s++)
			if (rtc_alarm_matches(rt, s)) {
				rt->cmos[RTC_REG_C] |= REG_C_AF;
				break;
			}
	}
	if (now.s > rt->last_s || !rtc_running(rt))
		rt->last_s = now.s;
	if (period && !rt->periodic_timer) {
		int64_t ticks = now.s * 32768 + now.ns * 32768 / NS_PER_SEC;

		if (rtc_floor_div(ticks, (int64_t)period) != rtc_floor_div(rt->last_ticks, (int64_t)period))
			rt->cmos[RTC_REG_C] |= REG_C_PF;
		rt->last_ticks = ticks;
	}
	rtc_update_irq(rt);
}

static void rtc_periodic_fire(void *opaque)
{
	struct rtc *rt = opaque;

	pthread_mutex_lock(&rt->lock);
	/* A stale timer being deleted may still fire once: harmless, as a PF. */
	if (rt->periodic_timer) {
		rt->cmos[RTC_REG_C] |= REG_C_PF;
		rtc_update_irq(rt);
	}
	pthread_mutex_unlock(&rt->lock);
}

static void rtc_second_fire(void *opaque)
{
	struct rtc *rt = opaque;

	pthread_mutex_lock(&rt->lock);
	rtc_account(rt);
	pthread_mutex_unlock(&rt->lock);
}

/*
 * Make the evloop timers match the registers. Called with the lock held;
 * timers to delete are returned in old[] and deleted by rtc_timers_drop()
 * after unlocking: evloop_del_timer waits for a running callback, which may
 * be waiting for our lock.
 */
struct rtc_old_timers {
	int id[4];
	int n;
};

static void rtc_timers_update(struct rtc *rt, bool realign, struct rtc_old_timers *old)
{
	struct evloop *loop = rt->m->loop;
	uint64_t ticks = rtc_period_ticks(rt);
	uint64_t period_ns = ticks * (uint64_t)NS_PER_SEC / 32768;
	bool want_periodic = loop && ticks && (rt->cmos[RTC_REG_B] & REG_B_PIE);
	bool want_second = loop && rtc_running(rt) &&
			   (rt->cmos[RTC_REG_B] & (REG_B_UIE | REG_B_AIE));

	if (rt->periodic_timer && (!want_periodic || period_ns != rt->periodic_ns)) {
		old->id[old->n++] = rt->periodic_timer;
		rt->periodic_timer = 0;
	}
	if (want_periodic && !rt->periodic_timer) {
		int id = evloop_add_timer(loop, period_ns, period_ns, rtc_periodic_fire, rt);

		if (id > 0) {
			rt->periodic_timer = id;
			rt->periodic_ns = period_ns;
		} else {
			log_warn("rtc", "periodic interrupt timer: %s", strerror(-id));
		}
	}
	if (rt->second_timer && (!want_second || realign)) {
		old->id[old->n++] = rt->second_timer;
		rt->second_timer = 0;
	}
	if (want_second && !rt->second_timer) {
		/* Fire just after each guest second boundary (1 ms margin). */
		struct rtc_time now = rtc_now(rt);
		uint64_t first = (uint64_t)(NS_PER_SEC - now.ns) + 1000000;
		int id = evloop_add_timer(loop, first, NS_PER_SEC, rtc_second_fire, rt);

		if (id > 0)
			rt->second_timer = id;
		else
			log_warn("rtc", "update interrupt timer: %s", strerror(-id));
	}
}

static void rtc_timers_drop(struct rtc *rt, struct rtc_old_timers *old)
{
	for (int i = 0; i < old->n; i++)
		evloop_del_timer(rt->m->loop, old->id[i]);
	old->n = 0;
}

/* ---- registers --------------------------------------------------------------- */

/* The registers that hold the running clock (the alarms do not). */
static bool rtc_is_clock_reg(unsigned idx)
{
	switch (idx) {
	case RTC_SECONDS:
	case RTC_MINUTES:
	case RTC_HOURS:
	case RTC_DAY_OF_WEEK:
	case RTC_DAY_OF_MONTH:
	case RTC_MONTH:
	case RTC_YEAR:
	case CMOS_CENTURY:
	case CMOS_IBM_CENTURY:
		return true;
	default:
		return false;
	}
}

static uint8_t rtc_read_data(struct rtc *rt)
{
	unsigned idx = rt->index;
	uint8_t v;

	if (rtc_is_clock_reg(idx)) {
		rtc_refresh(rt);
		return rt->cmos[idx];
	}
	switch (idx) {
	case RTC_REG_A: {
		struct rtc_time now = rtc_now(rt);

		v = rt->cmos[RTC_REG_A] & ~REG_A_UIP;
		/*
		 * UIP in the last 244 us before each update, as QEMU does:
		 * Linux's and SeaBIOS's readers wait for it to clear and then
		 * have >= 244 us to read the time consistently.
		 */
		if (rtc_running(rt) && now.ns >= NS_PER_SEC - RTC_UIP_NS)
			v |= REG_A_UIP;
		return v;
	}
	case RTC_REG_C:
		rtc_account(rt);
		v = rt->cmos[RTC_REG_C];
		/* MC146818A: reading C clears all its flags and the IRQ. */
		rt->cmos[RTC_REG_C] = 0;
		rtc_update_irq(rt);
		return v;
	case RTC_REG_D:
		return REG_D_VRT;
	default:
		return rt->cmos[idx];
	}
}

static void rtc_write_data(struct rtc *rt, uint8_t val, struct rtc_old_timers *old)
{
	unsigned idx = rt->index;
	bool was_running = rtc_running(rt);

	if (rtc_is_clock_reg(idx)) {
		/*
		 * Running: the write sets the clock at once, keeping the phase.
		 * In SET mode (or divider held) the value is taken over when it ends.
		 */
		if (was_running)
			rtc_refresh(rt);
		rt->cmos[idx] = val;
		if (idx == CMOS_IBM_CENTURY)
			rt->cmos[CMOS_CENTURY] = val;
		if (was_running) {
			rtc_set_clock(rt, rtc_load_time(rt), rtc_now(rt).ns);
			rtc_timers_update(rt, true, old);
		}
		return;
	}
	switch (idx) {
	case RTC_REG_A: {
		bool was_reset = (rt->cmos[RTC_REG_A] & REG_A_DV) >= 0x60;

		rt->cmos[RTC_REG_A] = val & ~REG_A_UIP;	/* UIP is read-only */
		if (was_running && !rtc_running(rt)) {
			rtc_store_time(rt, rtc_now(rt).s);
			rt->base_s = rtc_now(rt).s;
			rt->frozen = true;
		} else if (!was_running && rtc_running(rt)) {
			/*
			 * MC146818A "Divider Control": leaving divider reset, the
			 * first update comes 500 ms later.
			 */
			rt->frozen = false;
			rtc_set_clock(rt, rtc_load_time(rt), was_reset ? NS_PER_SEC / 2 : 0);
		}
		rtc_timers_update(rt, true, old);
		break;
	}
	case RTC_REG_B:
		if (val & REG_B_SET) {
			/* MC146818A register B: SET = 1 also clears UIE. */
			val &= ~REG_B_UIE;
			if (was_running) {
				struct rtc_time now = rtc_now(rt);

				rtc_store_time(rt, now.s);
				rt->base_s = now.s;
				rt->base_ns = 0;
				rt->frozen = true;
			}
		}
		rt->cmos[RTC_REG_B] = val;
		if (!was_running && rtc_running(rt)) {
			/* End of SET: the guest's register values become the time. */
			rt->frozen = false;
			rtc_set_clock(rt, rtc_load_time(rt), 0);
		}
		rtc_timers_update(rt, !was_running && rtc_running(rt), old);
		rtc_update_irq(rt);
		break;
	case RTC_REG_C:
	case RTC_REG_D:
		/* Read-only status registers. */
		log_debug("rtc", "ignored write %#x to register %s", val, idx == RTC_REG_C ? "C" : "D");
		break;
	default:
		rt->cmos[idx] = val;
		break;
	}
}

static uint64_t rtc_pio_read(void *opaque, uint64_t off, unsigned size)
{
	struct rtc *rt = opaque;
	uint64_t v = 0;

	pthread_mutex_lock(&rt->lock);
	for (unsigned i = 0; i < size; i++) {
		/* The index port is write-only; reads float high, as on QEMU. */
		uint8_t b = off + i == 1 ? rtc_read_data(rt) : 0xff;

		v |= (uint64_t)b << (8 * i);
	}
	pthread_mutex_unlock(&rt->lock);
	return v;
}

static void rtc_pio_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	struct rtc *rt = opaque;
	struct rtc_old_timers old = { .n = 0 };

	pthread_mutex_lock(&rt->lock);
	for (unsigned i = 0; i < size && off + i < 2; i++) {
		uint8_t b = (uint8_t)(val >> (8 * i));

		if (off + i == 0) {
			/* Bit 7 of the index port gates NMI on PCs; 7 bits of index. */
			rt->nmi_disabled = b & 0x80;
			rt->index = b & 0x7f;
		} else {
			rtc_write_data(rt, b, &old);
		}
	}
	pthread_mutex_unlock(&rt->lock);
	rtc_timers_drop(rt, &old);
}

static const struct bus_ops rtc_ops = {
	.read = rtc_pio_read,
	.write = rtc_pio_write,
};

/* ---- CMOS contents ------------------------------------------------------------- */

static void cmos_set16(uint8_t *cmos, unsigned off, uint64_t v)
{
	if (v > 0xffff)
		v = 0xffff;
	cmos[off] = (uint8_t)v;
	cmos[off + 1] = (uint8_t)(v >> 8);
}

/* The fields SeaBIOS/OVMF read, as QEMU's pc_cmos_init fills them. */
static void rtc_fill_cmos(struct rtc *rt, uint64_t mem, unsigned cpus)
{
	uint64_t below = mem < GMEM_PCI_HOLE_START ? mem : GMEM_PCI_HOLE_START;
	uint64_t above = mem - below, v;
	unsigned sum = 0;

	rt->cmos[RTC_REG_A] = REG_A_DV_32K | 0x06;	/* 1024 Hz periodic rate */
	rt->cmos[RTC_REG_B] = REG_B_24H;		/* BCD, 24 h */
	rt->cmos[RTC_REG_C] = 0;
	rt->cmos[RTC_REG_D] = REG_D_VRT;
	rt->cmos[CMOS_FLOPPY_TYPE] = 0;			/* no floppy drives */
	rt->cmos[CMOS_DISK_TYPE] = 0;			/* no IDE disks */
	rt->cmos[CMOS_EQUIPMENT] = 0x02;		/* FPU; no floppy, no mouse */
	v = below / 1024 < 640 ? below / 1024 : 640;
	cmos_set16(rt->cmos, CMOS_BASE_MEM_LO, v);
	v = below > (1 << 20) ? (below - (1 << 20)) / 1024 : 0;
	cmos_set16(rt->cmos, CMOS_EXT_MEM_LO, v);
	cmos_set16(rt->cmos, CMOS_EXT_MEM2_LO, v);
	v = below > (16 << 20) ? (below - (16 << 20)) / 65536 : 0;
	cmos_set16(rt->cmos, CMOS_MEM_16M_LO, v);
	v = above / 65536;
	if (v > 0xffffff)
		v = 0xffffff;
	rt->cmos[CMOS_MEM_4G_LO] = (uint8_t)v;
	rt->cmos[CMOS_MEM_4G_LO + 1] = (uint8_t)(v >> 8);
	rt->cmos[CMOS_MEM_4G_LO + 2] = (uint8_t)(v >> 16);
	rt->cmos[CMOS_NCPUS_M1] = (uint8_t)(cpus - 1);
	/* Boot order for the legacy path: disk, then CD-ROM (2 = hd, 3 = cd). */
	rt->cmos[CMOS_BOOT_FLAG2] = 0x32;
	rt->cmos[CMOS_BOOT_FLAG1] = 0x00;
	/* Standard AT checksum over 0x10-0x2d, big-endian at 0x2e. */
	for (unsigned i = 0x10; i <= 0x2d; i++)
		sum += rt->cmos[i];
	rt->cmos[CMOS_CHECKSUM_HI] = (uint8_t)(sum >> 8);
	rt->cmos[CMOS_CHECKSUM_HI + 1] = (uint8_t)sum;
}

/* ---- device ------------------------------------------------------------------- */

static int rtc_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

static int rtc_realize(struct device *dev, struct machine *m, const char *args)
{
	static const char *const keys[] = { "mem", "cpus", NULL };
	uint64_t mem = m->mem.ram_size;
	unsigned long cpus = m->ncpus > 0 ? (unsigned long)m->ncpus : 1;
	char buf[64], err[128], *end;
	struct rtc *rt;
	int ret;

	ret = opt_check_keys(args, keys, err, sizeof(err));
	if (ret < 0) {
		log_error(dev->id, "%s (known: mem, cpus)", err);
		return ret;
	}
	ret = opt_get(args, "mem", buf, sizeof(buf));
	if (ret > 0 && rtc_parse_size(buf, &mem) < 0) {
		log_error(dev->id, "mem=%s: want a size in bytes (suffix K, M, G or T allowed)", buf);
		return -EINVAL;
	}
	if (ret < 0) {
		log_error(dev->id, "mem: value too long");
		return -EINVAL;
	}
	ret = opt_get(args, "cpus", buf, sizeof(buf));
	if (ret > 0) {
		errno = 0;
		cpus = strtoul(buf, &end, 10);
		if (!*buf || *end || errno || cpus < 1 || cpus > 256 || buf[0] == '-') {
			log_error(dev->id, "cpus=%s: want a number from 1 to 256", buf);
			return -EINVAL;
		}
	} else if (ret < 0) {
		log_error(dev->id, "cpus: value too long");
		return -EINVAL;
	}

	rt = calloc(1, sizeof(*rt));
	if (!rt)
		return -ENOMEM;
	pthread_mutex_init(&rt->lock, NULL);
	rt->m = m;
	rtc_fill_cmos(rt, mem, (unsigned)cpus);
	{
		int64_t host = rtc_host_ns(CLOCK_REALTIME);

		rtc_set_clock(rt, host / NS_PER_SEC, host % NS_PER_SEC);
	}
	rtc_store_time(rt, rt->base_s);
	ret = bus_register(&m->pio, PORT_RTC, 2, &rtc_ops, rt, "rtc");
	if (ret < 0) {
		log_error(dev->id, "ports %#x-%#x: %s", PORT_RTC, PORT_RTC + 1,
			  ret == -EEXIST ? "already used by another device" : strerror(-ret));
		pthread_mutex_destroy(&rt->lock);
		free(rt);
		return ret;
	}
	dev->priv = rt;
	return 0;
}

static void rtc_unrealize(struct device *dev)
{
	struct rtc *rt = dev->priv;
	struct rtc_old_timers old = { .n = 0 };

	if (!rt)
		return;
	bus_unregister(&rt->m->pio, PORT_RTC, rt);
	pthread_mutex_lock(&rt->lock);
	if (rt->periodic_timer)
		old.id[old.n++] = rt->periodic_timer;
	if (rt->second_timer)
		old.id[old.n++] = rt->second_timer;
	rt->periodic_timer = rt->second_timer = 0;
	pthread_mutex_unlock(&rt->lock);
	rtc_timers_drop(rt, &old);
	pthread_mutex_destroy(&rt->lock);
	free(rt);
	dev->priv = NULL;
}

/*
 * System reset: the clock and CMOS RAM are battery-backed and survive; the
 * RESET pin clears PIE, AIE, UIE, SQWE and the flags (MC146818A "RESET").
 */
static void rtc_reset(struct device *dev)
{
	struct rtc *rt = dev->priv;
	struct rtc_old_timers old = { .n = 0 };

	pthread_mutex_lock(&rt->lock);
	rt->cmos[RTC_REG_B] &= ~(REG_B_PIE | REG_B_AIE | REG_B_UIE | REG_B_SQWE);
	rt->cmos[RTC_REG_C] = 0;
	rtc_update_irq(rt);
	rtc_timers_update(rt, false, &old);
	pthread_mutex_unlock(&rt->lock);
	rtc_timers_drop(rt, &old);
}

static int rtc_save(struct device *dev, json_t *obj)
{
	struct rtc *rt = dev->priv;
	struct rtc_state st;
	struct rtc_time now;
	int ret;

	pthread_mutex_lock(&rt->lock);
	/* Flags due by now belong to the saved state. */
	rtc_account(rt);
	rtc_refresh(rt);
	now = rtc_now(rt);
	if (now.s < 0) {
		log_warn(dev->id, "guest clock is before 1970; saved as 1970-01-01");
		now.s = 0;
		now.ns = 0;
	}
	st.time_s = (uint64_t)now.s;
	st.time_ns = (uint32_t)now.ns;
	memcpy(st.cmos, rt->cmos, sizeof(st.cmos));
	st.index = rt->index;
	st.nmi_disabled = rt->nmi_disabled;
	pthread_mutex_unlock(&rt->lock);
	ret = state_fields_save(rtc_fields, &st, obj);
	return ret;
}

static int rtc_check(const json_t *obj, uint32_t version, char *err, size_t errlen)
{
	return state_fields_check(rtc_fields, obj, version, err, errlen);
}

static int rtc_load(struct device *dev, const json_t *obj, uint32_t version)
{
	struct rtc *rt = dev->priv;
	struct rtc_old_timers old = { .n = 0 };
	struct rtc_state st;
	int ret;

	memset(&st, 0, sizeof(st));
	ret = state_fields_load(rtc_fields, &st, obj, version);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&rt->lock);
	memcpy(rt->cmos, st.cmos, sizeof(rt->cmos));
	rt->cmos[RTC_REG_A] &= ~REG_A_UIP;
	rt->cmos[RTC_REG_D] = REG_D_VRT;
	rt->index = st.index & 0x7f;
	rt->nmi_disabled = st.nmi_disabled;
	rtc_set_clock(rt, (int64_t)st.time_s, st.time_ns);
	rt->frozen = !rtc_running(rt);
	rt->irq_level = -1;
	rtc_update_irq(rt);
	rtc_timers_update(rt, true, &old);
	pthread_mutex_unlock(&rt->lock);
	rtc_timers_drop(rt, &old);
	return 0;
}

static const struct device_class rtc_class = {
	.name = "rtc",
	.state_version = 1,
	.realize = rtc_realize,
	.unrealize = rtc_unrealize,
	.reset = rtc_reset,
	.save = rtc_save,
	.check = rtc_check,
	.load = rtc_load,
};
DEVICE_CLASS(rtc_class);
