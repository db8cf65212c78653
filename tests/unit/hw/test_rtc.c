/*
 * MC146818 RTC / CMOS component tests: time as Linux's and SeaBIOS's
 * readers see it, register C semantics, the CMOS memory fields firmware
 * reads, interrupts with and without an event loop, saved state.
 */
#include <jansson.h>

#include "hw_test.h"

static uint8_t cmos_read(struct hw_env *e, uint8_t idx)
{
	pio_out(e->t, 0x70, 1, idx);
	return (uint8_t)pio_in(e->t, 0x71, 1);
}

static void cmos_write(struct hw_env *e, uint8_t idx, uint8_t v)
{
	pio_out(e->t, 0x70, 1, idx);
	pio_out(e->t, 0x71, 1, v);
}

static unsigned bcd(uint8_t v)
{
	return (v >> 4) * 10 + (v & 0x0f);
}

struct rtc_read {
	uint8_t sec, min, hour, wday, mday, mon, year, century;
};

/* mc146818_get_time(): wait for !UIP, read, and retry if seconds moved. */
static struct rtc_read rtc_read_time(struct hw_env *e)
{
	struct rtc_read r;

	for (int tries = 0; tries < 1000; tries++) {
		if (cmos_read(e, 0x0a) & 0x80)
			continue;
		r.sec = cmos_read(e, 0x00);
		r.min = cmos_read(e, 0x02);
		r.hour = cmos_read(e, 0x04);
		r.wday = cmos_read(e, 0x06);
		r.mday = cmos_read(e, 0x07);
		r.mon = cmos_read(e, 0x08);
		r.year = cmos_read(e, 0x09);
		r.century = cmos_read(e, 0x32);
		if (!(cmos_read(e, 0x0a) & 0x80) && cmos_read(e, 0x00) == r.sec)
			return r;
	}
	fail_msg("RTC never settled");
	return r;
}

static time_t tm_to_time(unsigned year, unsigned mon, unsigned mday, unsigned hour,
			 unsigned min, unsigned sec)
{
	struct tm tm = {
		.tm_year = (int)year - 1900, .tm_mon = (int)mon - 1, .tm_mday = (int)mday,
		.tm_hour = (int)hour, .tm_min = (int)min, .tm_sec = (int)sec,
	};

	return timegm(&tm);
}

static void test_rtc_reads_bcd_time_close_to_host(void **state)
{
	struct hw_env *e = hw_env_new(false);
	struct rtc_read r;
	struct tm host;
	time_t now, t;

	hw_create(e, "rtc", "rtc", NULL);
	/* Default: BCD, 24 hour, 32.768 kHz divider. */
	assert_int_equal(cmos_read(e, 0x0b) & 0x06, 0x02);
	assert_int_equal(cmos_read(e, 0x0a) & 0x70, 0x20);
	r = rtc_read_time(e);
	now = time(NULL);
	t = tm_to_time(bcd(r.century) * 100 + bcd(r.year), bcd(r.mon), bcd(r.mday),
		       bcd(r.hour), bcd(r.min), bcd(r.sec));
	assert_true(t >= now - 2 && t <= now + 2);
	gmtime_r(&t, &host);
	assert_int_equal(bcd(r.wday), host.tm_wday + 1);	/* 1 = Sunday */
	assert_int_equal(cmos_read(e, 0x0d), 0x80);		/* VRT */
	hw_env_free(e);
}

static void test_rtc_binary_24h(void **state)
{
	struct hw_env *e = hw_env_new(false);
	struct rtc_read r;
	time_t now, t;

	hw_create(e, "rtc", "rtc", NULL);
	cmos_write(e, 0x0b, 0x06);		/* DM binary, 24 h */
	r = rtc_read_time(e);
	now = time(NULL);
	assert_true(r.hour < 24 && r.min < 60 && r.sec < 60 && r.mon >= 1 && r.mon <= 12);
	t = tm_to_time(r.century * 100u + r.year, r.mon, r.mday, r.hour, r.min, r.sec);
	assert_true(t >= now - 2 && t <= now + 2);
	hw_env_free(e);
}

static void test_rtc_12h_mode_encodes_pm_in_bit7(void **state)
{
	struct hw_env *e = hw_env_new(false);
	struct rtc_read r;
	struct tm host;
	time_t now;
	unsigned h, h24;

	hw_create(e, "rtc", "rtc", NULL);
	cmos_write(e, 0x0b, 0x04);		/* binary, 12 h */
	do {
		r = rtc_read_time(e);
		now = time(NULL);
		gmtime_r(&now, &host);
	} while ((unsigned)host.tm_min != r.min);	/* retry across a minute change */
	h = r.hour & 0x7f;
	assert_true(h >= 1 && h <= 12);
	h24 = (h % 12) + ((r.hour & 0x80) ? 12 : 0);
	assert_int_equal(h24, host.tm_hour);
	/* BCD 12 h: the same hour, BCD digits, PM still in bit 7. */
	cmos_write(e, 0x0b, 0x00);
	r = rtc_read_time(e);
	assert_int_equal(bcd(r.hour & 0x7f) % 12 + ((r.hour & 0x80) ? 12 : 0),
			 (h24 + (r.min < host.tm_min ? 1 : 0)) % 24);
	hw_env_free(e);
}

static void test_rtc_set_bit_freezes_and_sets_time(void **state)
{
	struct hw_env *e = hw_env_new(false);
	struct device *dev;
	json_t *obj = json_object();
	json_int_t saved;

	dev = hw_create(e, "rtc", "rtc", NULL);
	/* SeaBIOS/Linux set_rtc: SET, write registers, clear SET. */
	cmos_write(e, 0x0b, 0x80 | 0x02);
	cmos_write(e, 0x00, 0x58);
	cmos_write(e, 0x02, 0x59);
	cmos_write(e, 0x04, 0x23);
	cmos_write(e, 0x07, 0x31);
	cmos_write(e, 0x08, 0x12);
	cmos_write(e, 0x09, 0x99);
	cmos_write(e, 0x32, 0x19);
	/* While SET, updates are halted and UIP stays clear. */
	assert_int_equal(cmos_read(e, 0x00), 0x58);
	assert_int_equal(cmos_read(e, 0x0a) & 0x80, 0);
	cmos_write(e, 0x0b, 0x02);
	assert_int_equal(cmos_read(e, 0x09), 0x99);
	assert_int_equal(cmos_read(e, 0x32), 0x19);
	assert_int_equal(cmos_read(e, 0x08), 0x12);
	assert_int_equal(cmos_read(e, 0x06), 0x06);	/* Friday */
	assert_int_equal(dev->cls->save(dev, obj), 0);
	saved = json_integer_value(json_object_get(obj, "time_s"));
	/* 1999-12-31 23:59:58 UTC */
	assert_true(saved >= 946684798 && saved <= 946684799);
	json_decref(obj);
	hw_env_free(e);
}

static void test_rtc_write_time_register_while_running_sets_clock(void **state)
{
	struct hw_env *e = hw_env_new(false);

	hw_create(e, "rtc", "rtc", NULL);
	cmos_write(e, 0x09, 0x42);
	assert_int_equal(cmos_read(e, 0x09), 0x42);
	cmos_write(e, 0x32, 0x21);
	assert_int_equal(cmos_read(e, 0x32), 0x21);
	assert_int_equal(cmos_read(e, 0x09), 0x42);
	hw_env_free(e);
}

static void test_rtc_cmos_memory_fields_for_5g(void **state)
{
	struct hw_env *e = hw_env_new(false);

	hw_create(e, "rtc", "rtc", "mem=5G,cpus=4");
	/* Base memory 640 KiB. */
	assert_int_equal(cmos_read(e, 0x15) | cmos_read(e, 0x16) << 8, 640);
	/* Extended memory above 1 MiB in KiB, saturated at 0xffff. */
	assert_int_equal(cmos_read(e, 0x17) | cmos_read(e, 0x18) << 8, 0xffff);
	assert_int_equal(cmos_read(e, 0x30) | cmos_read(e, 0x31) << 8, 0xffff);
	/* 16 MiB .. 3 GiB in 64 KiB units: (3072 - 16) MiB / 64 KiB. */
	assert_int_equal(cmos_read(e, 0x34) | cmos_read(e, 0x35) << 8, 48896);
	/* 2 GiB above 4 GiB in 64 KiB units. */
	assert_int_equal(cmos_read(e, 0x5b) | cmos_read(e, 0x5c) << 8 | cmos_read(e, 0x5d) << 16,
			 32768);
	assert_int_equal(cmos_read(e, 0x5f), 3);
	assert_int_equal(cmos_read(e, 0x14) & 0x02, 0x02);	/* FPU */
	assert_int_equal(cmos_read(e, 0x32), 0x20);		/* 21st century, BCD */
	hw_env_free(e);
}

static void test_rtc_cmos_memory_fields_default_to_machine_ram(void **state)
{
	struct hw_env *e = hw_env_new(false);
	unsigned sum = 0;

	/* The harness machine has 1 MiB of RAM and 1 CPU. */
	hw_create(e, "rtc", "rtc", NULL);
	assert_int_equal(cmos_read(e, 0x15) | cmos_read(e, 0x16) << 8, 640);
	assert_int_equal(cmos_read(e, 0x17) | cmos_read(e, 0x18) << 8, 0);
	assert_int_equal(cmos_read(e, 0x34) | cmos_read(e, 0x35) << 8, 0);
	assert_int_equal(cmos_read(e, 0x5b) | cmos_read(e, 0x5c) | cmos_read(e, 0x5d), 0);
	assert_int_equal(cmos_read(e, 0x5f), 0);
	for (unsigned i = 0x10; i <= 0x2d; i++)
		sum += cmos_read(e, (uint8_t)i);
	assert_int_equal(cmos_read(e, 0x2e) << 8 | cmos_read(e, 0x2f), sum & 0xffff);
	hw_env_free(e);
}

static void test_rtc_cmos_memory_fields_for_512m(void **state)
{
	struct hw_env *e = hw_env_new(false);

	hw_create(e, "rtc", "rtc", "mem=512M");
	assert_int_equal(cmos_read(e, 0x17) | cmos_read(e, 0x18) << 8, 0xffff);
	assert_int_equal(cmos_read(e, 0x34) | cmos_read(e, 0x35) << 8, (512 - 16) * 16);
	assert_int_equal(cmos_read(e, 0x5b) | cmos_read(e, 0x5c) | cmos_read(e, 0x5d), 0);
	hw_env_free(e);
}

static void test_rtc_reg_c_clears_on_read(void **state)
{
	struct hw_env *e = hw_env_new(false);
	uint8_t c;

	hw_create(e, "rtc", "rtc", NULL);
	cmos_write(e, 0x0a, 0x20);		/* no periodic flag */
	cmos_write(e, 0x0b, 0x02 | 0x10);	/* UIE */
	cmos_read(e, 0x0c);
	hw_sleep_ms(1100);			/* at least one update cycle */
	c = cmos_read(e, 0x0c);
	assert_int_equal(c & 0x90, 0x90);	/* IRQF + UF */
	/* The line was raised for it and lowered by the read. */
	assert_true(e->t->irq.raised[8] >= 1);
	assert_int_equal(e->t->irq.level[8], 0);
	/* Freeze the clock so no new update can happen, then C reads 0. */
	cmos_write(e, 0x0b, 0x82);
	assert_int_equal(cmos_read(e, 0x0c), 0);
	hw_env_free(e);
}

static void test_rtc_flags_set_without_enable_but_no_irqf(void **state)
{
	struct hw_env *e = hw_env_new(false);
	uint8_t c;

	hw_create(e, "rtc", "rtc", NULL);
	cmos_write(e, 0x01, 0xc0);		/* alarm: any second */
	cmos_write(e, 0x03, 0xc0);
	cmos_write(e, 0x05, 0xc0);
	cmos_read(e, 0x0c);
	hw_sleep_ms(1100);
	c = cmos_read(e, 0x0c);
	/* MC146818A: AF and UF are set regardless of AIE/UIE; IRQF is not. */
	assert_int_equal(c & 0xb0, 0x30);
	assert_int_equal(e->t->irq.raised[8], 0);
	hw_env_free(e);
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * UIP is high in the last 244 us before each update and the seconds change
 * when it falls. The guest clock is started at a known instant T0 (end of
 * SET: fraction 0), then sampled; a sample counts only when its whole time
 * span, widened by the uncertainty of T0, is certainly inside a UIP window or
 * certainly outside one. So a loaded host makes the test slower, never wrong.
 */
static void test_rtc_uip_falls_just_before_seconds_change(void **state)
{
	const int64_t uip_ns = 244140, sec_ns = 1000000000;
	struct hw_env *e = hw_env_new(false);
	bool seen_in = false, seen_out = false;
	int64_t t0a, t0b, end;

	hw_create(e, "rtc", "rtc", NULL);
	cmos_write(e, 0x0b, 0x82 | 0x04);	/* SET, binary */
	cmos_write(e, 0x00, 0);
	cmos_write(e, 0x02, 0);
	cmos_write(e, 0x04, 0);
	pio_out(e->t, 0x70, 1, 0x0b);
	t0a = mono_ns();
	pio_out(e->t, 0x71, 1, 0x06);		/* clock starts at 00:00:00.000 */
	t0b = mono_ns();
	end = t0b + 8 * sec_ns;
	while (mono_ns() < end && !(seen_in && seen_out)) {
		int64_t sa, sb, lo, hi, k;
		uint8_t a, sec;

		/* Sleep until shortly before the next window, then spin. */
		lo = mono_ns() - t0a;
		k = lo / sec_ns + 1;
		if (seen_out && k * sec_ns - uip_ns - lo > 3000000)
			hw_sleep_ms((unsigned)((k * sec_ns - uip_ns - lo) / 1000000) - 2);
		sa = mono_ns();
		pio_out(e->t, 0x70, 1, 0x0a);
		a = (uint8_t)pio_in(e->t, 0x71, 1);
		pio_out(e->t, 0x70, 1, 0x00);
		sec = (uint8_t)pio_in(e->t, 0x71, 1);
		sb = mono_ns();
		lo = sa - t0b;			/* earliest possible guest time */
		hi = sb - t0a;			/* latest possible guest time */
		k = hi / sec_ns;		/* second the latest instant is in */
		if (lo >= k * sec_ns + 0 && hi < (k + 1) * sec_ns - uip_ns) {
			/* Certainly between windows: second k, UIP low. */
			assert_int_equal(a & 0x80, 0);
			assert_int_equal(sec, k % 60);
			seen_out = true;
		} else if (lo >= (k + 1) * sec_ns - uip_ns && hi < (k + 1) * sec_ns) {
			/* Certainly in the window before second k + 1. */
			assert_int_equal(a & 0x80, 0x80);
			assert_int_equal(sec, k % 60);
			seen_in = true;
		}
	}
	assert_true(seen_out);
	if (!seen_in) {
		hw_env_free(e);
		skip();				/* host too loaded to hit a 244 us window */
	}
	hw_env_free(e);
}

static void test_rtc_divider_reset_halts_clock(void **state)
{
	struct hw_env *e = hw_env_new(false);
	uint8_t s1, s2;

	hw_create(e, "rtc", "rtc", NULL);
	cmos_write(e, 0x0a, 0x70 | 0x06);	/* divider held in reset */
	s1 = cmos_read(e, 0x00);
	hw_sleep_ms(1100);
	s2 = cmos_read(e, 0x00);
	assert_int_equal(s1, s2);
	assert_int_equal(cmos_read(e, 0x0a) & 0x80, 0);
	cmos_write(e, 0x0a, 0x26);		/* running again from that time */
	assert_int_equal(cmos_read(e, 0x00), s1);
	hw_env_free(e);
}

static void test_rtc_periodic_interrupt_with_loop(void **state)
{
	struct hw_env *e = hw_env_new(true);
	uint64_t end;

	hw_create(e, "rtc", "rtc", NULL);
	cmos_read(e, 0x0c);
	cmos_write(e, 0x0a, 0x26);		/* 1024 Hz */
	cmos_write(e, 0x0b, 0x02 | 0x40);	/* PIE */
	end = hw_now_ms() + 2000;
	while (!e->t->irq.level[8] && hw_now_ms() < end)
		hw_sleep_ms(1);
	assert_int_equal(e->t->irq.level[8], 1);
	assert_int_equal(cmos_read(e, 0x0c) & 0xc0, 0xc0);	/* IRQF + PF */
	/* The timer keeps running: another interrupt follows. */
	end = hw_now_ms() + 2000;
	while (!e->t->irq.level[8] && hw_now_ms() < end)
		hw_sleep_ms(1);
	assert_true(e->t->irq.raised[8] >= 2);
	/* PIE off: the line stays low after the next read of C. */
	cmos_write(e, 0x0b, 0x02);
	cmos_read(e, 0x0c);
	hw_sleep_ms(20);
	assert_int_equal(e->t->irq.level[8], 0);
	hw_env_free(e);
}

static void test_rtc_update_interrupt_with_loop(void **state)
{
	struct hw_env *e = hw_env_new(true);
	uint64_t end;

	hw_create(e, "rtc", "rtc", NULL);
	cmos_read(e, 0x0c);
	cmos_write(e, 0x0b, 0x02 | 0x10);	/* UIE */
	end = hw_now_ms() + 2500;
	while (!e->t->irq.level[8] && hw_now_ms() < end)
		hw_sleep_ms(5);
	assert_int_equal(e->t->irq.level[8], 1);
	assert_int_equal(cmos_read(e, 0x0c) & 0x90, 0x90);
	hw_env_free(e);
}

static void test_rtc_nmi_bit_is_not_part_of_index(void **state)
{
	struct hw_env *e = hw_env_new(false);

	hw_create(e, "rtc", "rtc", NULL);
	pio_out(e->t, 0x70, 1, 0x80 | 0x40);
	pio_out(e->t, 0x71, 1, 0x5a);
	assert_int_equal(cmos_read(e, 0x40), 0x5a);
	/* Index 0xff selects byte 0x7f: no out-of-range access. */
	pio_out(e->t, 0x70, 1, 0xff);
	pio_out(e->t, 0x71, 1, 0xa5);
	assert_int_equal(cmos_read(e, 0x7f), 0xa5);
	/* The index port is write-only. */
	assert_int_equal(pio_in(e->t, 0x70, 1), 0xff);
	hw_env_free(e);
}

static void test_rtc_status_registers_c_d_read_only(void **state)
{
	struct hw_env *e = hw_env_new(false);

	hw_create(e, "rtc", "rtc", NULL);
	cmos_write(e, 0x0b, 0x82);		/* frozen: no flags from time */
	cmos_read(e, 0x0c);
	cmos_write(e, 0x0c, 0xf0);
	cmos_write(e, 0x0d, 0x00);
	assert_int_equal(cmos_read(e, 0x0c), 0);
	assert_int_equal(cmos_read(e, 0x0d), 0x80);
	assert_int_equal(e->t->irq.level[8], 0);
	/* UIP is read-only. */
	cmos_write(e, 0x0a, 0xa6);
	assert_int_equal(cmos_read(e, 0x0a), 0x26);
	hw_env_free(e);
}

static void test_rtc_garbage_time_registers_do_not_crash(void **state)
{
	struct hw_env *e = hw_env_new(false);

	hw_create(e, "rtc", "rtc", NULL);
	cmos_write(e, 0x0b, 0x82);
	for (uint8_t r = 0; r <= 0x09; r++)
		cmos_write(e, r, 0xff);
	cmos_write(e, 0x32, 0xff);
	cmos_write(e, 0x0b, 0x02);
	rtc_read_time(e);
	cmos_write(e, 0x0b, 0x06);
	rtc_read_time(e);
	cmos_write(e, 0x0b, 0x00);		/* 12 h BCD with garbage */
	rtc_read_time(e);
	hw_env_free(e);
}

static void test_rtc_rejects_bad_args(void **state)
{
	static const char *const bad[] = { "mem=abc", "mem=-1", "mem=5Q", "cpus=0", "cpus=x",
					   "cpus=1000", "base=0x70" };
	struct hw_env *e = hw_env_new(false);
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = device_create(&e->t->m, "rtc", "rtc", bad[i], NULL, err, sizeof(err));

		if (ret != -EINVAL)
			fail_msg("args \"%s\": got %d, want -EINVAL", bad[i], ret);
	}
	hw_env_free(e);
}

static void test_rtc_state_round_trip(void **state)
{
	struct hw_env *a = hw_env_new(false), *b = hw_env_new(false);
	struct device *da, *db;
	json_t *obj = json_object();
	char err[256];

	da = hw_create(a, "rtc", "rtc", "mem=2G,cpus=2");
	db = hw_create(b, "rtc", "rtc", NULL);
	/* Guest time far from host time, binary mode, some CMOS RAM. */
	cmos_write(a, 0x0b, 0x86);
	cmos_write(a, 0x09, 30);
	cmos_write(a, 0x32, 20);
	cmos_write(a, 0x08, 6);
	cmos_write(a, 0x07, 15);		/* all of the date: the old one is BCD */
	cmos_write(a, 0x04, 12);
	cmos_write(a, 0x02, 0);
	cmos_write(a, 0x0b, 0x06);
	cmos_write(a, 0x50, 0x77);
	pio_out(a->t, 0x70, 1, 0x80 | 0x0f);

	assert_int_equal(da->cls->save(da, obj), 0);
	assert_int_equal(da->cls->check(obj, 1, err, sizeof(err)), 0);
	assert_int_equal(db->cls->load(db, obj, 1), 0);

	assert_int_equal(cmos_read(b, 0x09), 30);
	assert_int_equal(cmos_read(b, 0x08), 6);
	assert_int_equal(cmos_read(b, 0x07), 15);
	assert_int_equal(cmos_read(b, 0x04), 12);
	assert_int_equal(cmos_read(b, 0x32), 20);
	assert_int_equal(cmos_read(b, 0x0b), 0x06);
	assert_int_equal(cmos_read(b, 0x50), 0x77);
	assert_int_equal(cmos_read(b, 0x5f), 1);
	assert_int_equal(cmos_read(b, 0x34) | cmos_read(b, 0x35) << 8, (2048 - 16) * 16);
	json_decref(obj);
	hw_env_free(a);
	hw_env_free(b);
}

static void test_rtc_state_check_rejects_bad_fields(void **state)
{
	struct hw_env *e = hw_env_new(false);
	struct device *dev = hw_create(e, "rtc", "rtc", NULL);
	json_t *obj = json_object();
	char err[256] = "";

	assert_int_equal(dev->cls->save(dev, obj), 0);
	json_object_set_new(obj, "time_ns", json_integer(1000000000));
	assert_int_equal(dev->cls->check(obj, 1, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "time_ns"));
	json_object_set_new(obj, "time_ns", json_integer(0));
	json_object_set_new(obj, "cmos", json_string("AAAA"));
	assert_int_equal(dev->cls->check(obj, 1, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cmos"));
	json_decref(obj);
	hw_env_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rtc_reads_bcd_time_close_to_host),
		cmocka_unit_test(test_rtc_binary_24h),
		cmocka_unit_test(test_rtc_12h_mode_encodes_pm_in_bit7),
		cmocka_unit_test(test_rtc_set_bit_freezes_and_sets_time),
		cmocka_unit_test(test_rtc_write_time_register_while_running_sets_clock),
		cmocka_unit_test(test_rtc_cmos_memory_fields_for_5g),
		cmocka_unit_test(test_rtc_cmos_memory_fields_default_to_machine_ram),
		cmocka_unit_test(test_rtc_cmos_memory_fields_for_512m),
		cmocka_unit_test(test_rtc_reg_c_clears_on_read),
		cmocka_unit_test(test_rtc_flags_set_without_enable_but_no_irqf),
		cmocka_unit_test(test_rtc_uip_falls_just_before_seconds_change),
		cmocka_unit_test(test_rtc_divider_reset_halts_clock),
		cmocka_unit_test(test_rtc_periodic_interrupt_with_loop),
		cmocka_unit_test(test_rtc_update_interrupt_with_loop),
		cmocka_unit_test(test_rtc_nmi_bit_is_not_part_of_index),
		cmocka_unit_test(test_rtc_status_registers_c_d_read_only),
		cmocka_unit_test(test_rtc_garbage_time_registers_do_not_crash),
		cmocka_unit_test(test_rtc_rejects_bad_args),
		cmocka_unit_test(test_rtc_state_round_trip),
		cmocka_unit_test(test_rtc_state_check_rejects_bad_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
