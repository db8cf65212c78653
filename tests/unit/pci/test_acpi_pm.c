/*
 * ACPI PM (PIIX4 function 3): S5 through PM1a_CNT, the PM timer, the power
 * button and SCI, PMBA relocation, GPE0, and its state section.
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "../harness.h"
#include "amber/acpi_pm.h"
#include "amber/device.h"
#include "amber/pci.h"

#define CFG_EN   0x80000000u
#define PM       PORT_ACPI_PM_BASE
#define PM_DEVFN PCI_DEVFN(1, 3)

struct fix {
	struct test_machine *t;
	struct device *pm;
};

static int setup_with(void **state, bool pci)
{
	struct fix *f = calloc(1, sizeof(*f));
	char err[256];

	assert_non_null(f);
	f->t = test_machine_new(1 << 16);
	f->t->m.last_event = -1;
	if (pci)
		assert_int_equal(device_create(&f->t->m, "pci_host", "pci0", NULL, NULL, err,
					       sizeof(err)), 0);
	assert_int_equal(device_create(&f->t->m, "acpi_pm", "pm", NULL, &f->pm, err,
				       sizeof(err)), 0);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_with(state, true);
}

static int setup_nopci(void **state)
{
	return setup_with(state, false);
}

static int teardown(void **state)
{
	struct fix *f = *state;

	device_destroy_all(&f->t->m);
	assert_int_equal(f->t->m.pio.n, 0);	/* every port range given back */
	test_machine_free(f->t);
	free(f);
	return 0;
}

static uint32_t cfg_rd(struct test_machine *t, unsigned devfn, unsigned off, unsigned size)
{
	pio_out(t, 0xcf8, 4, CFG_EN | devfn << 8 | (off & 0xfc));
	return (uint32_t)pio_in(t, 0xcfc + (off & 3), size);
}

static void cfg_wr(struct test_machine *t, unsigned devfn, unsigned off, unsigned size,
		   uint32_t v)
{
	pio_out(t, 0xcf8, 4, CFG_EN | devfn << 8 | (off & 0xfc));
	pio_out(t, 0xcfc + (off & 3), size, v);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void test_pm_function_is_piix4_at_01_3_with_pmba_0x600(void **state)
{
	struct fix *f = *state;

	assert_int_equal(cfg_rd(f->t, PM_DEVFN, 0, 4), 0x71138086);
	assert_int_equal(cfg_rd(f->t, PM_DEVFN, 0x08, 4), 0x06800003);
	/* 01.0 announces its other functions. */
	assert_int_equal(cfg_rd(f->t, PCI_DEVFN(1, 0), PCI_HEADER_TYPE, 1) & 0x80, 0x80);
	assert_int_equal(cfg_rd(f->t, PM_DEVFN, 0x40, 4), PM | 1);
	assert_int_equal(cfg_rd(f->t, PM_DEVFN, 0x80, 1), 1);
	/* SMM marked as set up so SeaBIOS leaves it alone. */
	assert_int_equal(cfg_rd(f->t, PM_DEVFN, 0x5b, 1) & 0x02, 0x02);
	/* Always in ACPI mode. */
	assert_int_equal(pio_in(f->t, PM + ACPI_PM1_CNT_OFF, 2) & ACPI_PM1_CNT_SCI_EN, 1);
}

static void test_s5_via_pm1a_cnt_requests_poweroff(void **state)
{
	struct fix *f = *state;

	/* Linux writes SLP_TYP first, then SLP_TYP | SLP_EN. */
	pio_out(f->t, PM + ACPI_PM1_CNT_OFF, 2, ACPI_PM1_CNT_SCI_EN |
		ACPI_PM_SLP_TYP_S5 << ACPI_PM1_CNT_SLP_TYP_SHIFT);
	assert_int_equal(f->t->m.last_event, -1);
	/* An unsupported sleep type is ignored. */
	pio_out(f->t, PM + ACPI_PM1_CNT_OFF, 2, 1 | 1 << 10 | ACPI_PM1_CNT_SLP_EN);
	assert_int_equal(f->t->m.last_event, -1);
	/* SLP_EN is write-only and SCI_EN cannot be cleared. */
	assert_int_equal(pio_in(f->t, PM + ACPI_PM1_CNT_OFF, 2), 1 | 1 << 10);
	pio_out(f->t, PM + ACPI_PM1_CNT_OFF, 2,
		ACPI_PM_SLP_TYP_S5 << ACPI_PM1_CNT_SLP_TYP_SHIFT | ACPI_PM1_CNT_SLP_EN);
	assert_int_equal(f->t->m.last_event, MACHINE_POWEROFF);
}

static void test_s5_by_byte_write_of_pm1_cnt_high_byte(void **state)
{
	struct fix *f = *state;

	pio_out(f->t, PM + ACPI_PM1_CNT_OFF + 1, 1, ACPI_PM1_CNT_SLP_EN >> 8);
	assert_int_equal(f->t->m.last_event, MACHINE_POWEROFF);
}

static void test_pm_timer_advances_at_3_58_mhz(void **state)
{
	struct fix *f = *state;
	uint64_t a0, a1, b0, b1, lo, hi;
	uint32_t t0, t1, delta;

	a0 = now_ns();
	t0 = (uint32_t)pio_in(f->t, PM + ACPI_PM_TMR_OFF, 4);
	a1 = now_ns();
	sleep_ms(20);
	b0 = now_ns();
	t1 = (uint32_t)pio_in(f->t, PM + ACPI_PM_TMR_OFF, 4);
	b1 = now_ns();

	assert_true(t0 <= 0xffffff && t1 <= 0xffffff);
	delta = (t1 - t0) & 0xffffff;
	/* The two reads happened between these bounds, +-1 tick of rounding. */
	lo = (b0 - a1) * ACPI_PM_TMR_HZ / 1000000000ull;
	hi = (b1 - a0) * ACPI_PM_TMR_HZ / 1000000000ull + 1;
	if (delta + 1 < lo || delta > hi)
		fail_msg("PM timer advanced %u ticks, expected %llu..%llu", delta,
			 (unsigned long long)lo, (unsigned long long)hi);
	assert_true(delta > 20 * 3579);	/* at least 20 ms worth */
}

static void test_power_button_sets_pwrbtn_sts_and_raises_sci_only_when_enabled(void **state)
{
	struct fix *f = *state;

	machine_press_powerbutton(&f->t->m);
	assert_true(pio_in(f->t, PM, 2) & ACPI_PM1_PWRBTN_STS);
	assert_int_equal(f->t->irq.level[IRQ_ACPI_SCI], 0);
	pio_out(f->t, PM, 2, ACPI_PM1_PWRBTN_STS);	/* write 1 to clear */
	assert_false(pio_in(f->t, PM, 2) & ACPI_PM1_PWRBTN_STS);

	pio_out(f->t, PM + 2, 2, ACPI_PM1_PWRBTN_EN);
	assert_int_equal(pio_in(f->t, PM + 2, 2), ACPI_PM1_PWRBTN_EN);
	assert_int_equal(f->t->irq.level[IRQ_ACPI_SCI], 0);
	machine_press_powerbutton(&f->t->m);
	assert_int_equal(f->t->irq.level[IRQ_ACPI_SCI], 1);
	/* Writing 0 clears nothing; writing the bit clears it and the SCI. */
	pio_out(f->t, PM, 2, 0);
	assert_int_equal(f->t->irq.level[IRQ_ACPI_SCI], 1);
	pio_out(f->t, PM, 2, ACPI_PM1_PWRBTN_STS);
	assert_int_equal(f->t->irq.level[IRQ_ACPI_SCI], 0);
	/* Status set while disabled raises the SCI once enabled. */
	pio_out(f->t, PM + 2, 2, 0);
	machine_press_powerbutton(&f->t->m);
	assert_int_equal(f->t->irq.level[IRQ_ACPI_SCI], 0);
	pio_out(f->t, PM + 2, 2, ACPI_PM1_PWRBTN_EN);
	assert_int_equal(f->t->irq.level[IRQ_ACPI_SCI], 1);
	/* Dword access to PM1_EVT: STS and EN at once. */
	pio_out(f->t, PM, 4, ACPI_PM1_PWRBTN_STS);
	assert_int_equal(f->t->irq.level[IRQ_ACPI_SCI], 0);
	assert_int_equal(pio_in(f->t, PM, 4) >> 16, 0);
}

static void test_pmba_relocation_moves_the_block(void **state)
{
	struct fix *f = *state;

	/* OVMF's value: PMBA = 0xb000 */
	cfg_wr(f->t, PM_DEVFN, 0x40, 4, 0xb000);
	assert_int_equal(cfg_rd(f->t, PM_DEVFN, 0x40, 4), 0xb001);
	assert_int_equal(pio_in(f->t, 0xb000 + ACPI_PM1_CNT_OFF, 2), ACPI_PM1_CNT_SCI_EN);
	assert_int_equal(pio_in(f->t, PM + ACPI_PM1_CNT_OFF, 2), 0xffff);
	pio_out(f->t, 0xb000 + ACPI_PM1_CNT_OFF, 2, ACPI_PM1_CNT_SLP_EN);
	assert_int_equal(f->t->m.last_event, MACHINE_POWEROFF);

	/* PMREGMISC.PMIOSE off: the block is gone. */
	cfg_wr(f->t, PM_DEVFN, 0x80, 1, 0);
	assert_int_equal(pio_in(f->t, 0xb000 + ACPI_PM1_CNT_OFF, 2), 0xffff);
	/* Move while disabled, then enable: appears at the new base only. */
	cfg_wr(f->t, PM_DEVFN, 0x40, 2, 0x0700);
	assert_int_equal(pio_in(f->t, 0x704, 2), 0xffff);
	cfg_wr(f->t, PM_DEVFN, 0x80, 1, 1);
	assert_int_equal(pio_in(f->t, 0x704, 2), ACPI_PM1_CNT_SCI_EN);
	assert_int_equal(pio_in(f->t, 0xb004, 2), 0xffff);
	/* Bits 5:0 of the base are not writable (64-byte block). */
	cfg_wr(f->t, PM_DEVFN, 0x40, 2, 0x0725);
	assert_int_equal(cfg_rd(f->t, PM_DEVFN, 0x40, 2), 0x0701);

	/* Reset puts it back at 0x600. */
	f->pm->cls->reset(f->pm);
	assert_int_equal(pio_in(f->t, PM + ACPI_PM1_CNT_OFF, 2), ACPI_PM1_CNT_SCI_EN);
	assert_int_equal(pio_in(f->t, 0x704, 2), 0xffff);
}

static void test_gpe0_status_raises_sci_when_enabled(void **state)
{
	struct fix *f = *state;

	assert_int_equal(acpi_pm_raise_gpe(f->pm, 1), 0);
	assert_int_equal(pio_in(f->t, PORT_ACPI_GPE0, 2), 0x2);
	assert_int_equal(f->t->irq.level[IRQ_ACPI_SCI], 0);
	pio_out(f->t, PORT_ACPI_GPE0 + 2, 1, 0x2);
	assert_int_equal(f->t->irq.level[IRQ_ACPI_SCI], 1);
	pio_out(f->t, PORT_ACPI_GPE0, 1, 0x2);
	assert_int_equal(pio_in(f->t, PORT_ACPI_GPE0, 4), 0x00020000);
	assert_int_equal(f->t->irq.level[IRQ_ACPI_SCI], 0);
	assert_int_equal(acpi_pm_raise_gpe(f->pm, 16), -EINVAL);
}

static void test_state_round_trip_keeps_registers_pmba_and_timer(void **state)
{
	struct fix *f = *state, *g;
	const struct device_class *cls = f->pm->cls;
	json_t *o = json_object();
	char err[256] = "";
	uint32_t saved_tmr, t;

	cfg_wr(f->t, PM_DEVFN, 0x40, 4, 0xb000);
	pio_out(f->t, 0xb002, 2, ACPI_PM1_PWRBTN_EN);
	machine_press_powerbutton(&f->t->m);
	assert_int_equal(f->t->irq.level[IRQ_ACPI_SCI], 1);
	assert_int_equal(cls->save(f->pm, o), 0);
	assert_int_equal(cls->check(o, cls->state_version, err, sizeof(err)), 0);
	saved_tmr = (uint32_t)json_integer_value(json_object_get(o, "pm_tmr"));

	setup((void **)&g);
	sleep_ms(5);	/* the timer must continue from the saved value, not run on */
	assert_int_equal(cls->load(g->pm, o, cls->state_version), 0);
	assert_int_equal(pio_in(g->t, PM + 4, 2), 0xffff);
	assert_int_equal(pio_in(g->t, 0xb002, 2), ACPI_PM1_PWRBTN_EN);
	assert_true(pio_in(g->t, 0xb000, 2) & ACPI_PM1_PWRBTN_STS);
	assert_int_equal(g->t->irq.level[IRQ_ACPI_SCI], 1);
	t = (uint32_t)pio_in(g->t, 0xb008, 4);
	assert_true(((t - saved_tmr) & 0xffffff) < 3579545 / 1000 * 3);	/* < 3 ms on */
	json_decref(o);
	teardown((void **)&g);
}

static void test_tmr_sts_set_when_timer_bit_23_toggles(void **state)
{
	struct fix *f = *state;
	const struct device_class *cls = f->pm->cls;
	json_t *o = json_object();

	assert_int_equal(cls->save(f->pm, o), 0);
	/* 100 ticks (28 us) before bit 23 flips */
	json_object_set_new(o, "pm_tmr", json_integer(0x7fffff - 100));
	json_object_set_new(o, "pm1_sts", json_integer(0));
	assert_int_equal(cls->load(f->pm, o, cls->state_version), 0);
	sleep_ms(2);
	assert_true(pio_in(f->t, PM, 2) & ACPI_PM1_TMR_STS);
	assert_int_equal(f->t->irq.level[IRQ_ACPI_SCI], 0);	/* TMR_EN clear */
	pio_out(f->t, PM, 2, ACPI_PM1_TMR_STS);
	assert_false(pio_in(f->t, PM, 2) & ACPI_PM1_TMR_STS);
	json_decref(o);
}

static void test_check_rejects_bad_state_naming_the_field(void **state)
{
	struct fix *f = *state;
	const struct device_class *cls = f->pm->cls;
	json_t *o = json_object(), *c;
	char err[256] = "";

	assert_int_equal(cls->save(f->pm, o), 0);
	c = json_deep_copy(o);
	json_object_set_new(c, "pm_tmr", json_integer(0x1000000));
	assert_int_equal(cls->check(c, cls->state_version, err, sizeof(err)), -EINVAL);
	if (!strstr(err, "pm_tmr"))
		fail_msg("error \"%s\" does not name pm_tmr", err);
	json_decref(c);

	c = json_deep_copy(o);
	json_object_set_new(json_object_get(c, "pci"), "config", json_string("zz"));
	assert_int_equal(cls->check(c, cls->state_version, err, sizeof(err)), -EINVAL);
	if (!strstr(err, "pci") || !strstr(err, "config"))
		fail_msg("error \"%s\" does not name pci.config", err);
	json_decref(c);
	json_decref(o);
}

static void test_without_pci_bus_block_sits_at_0x600(void **state)
{
	struct fix *f = *state;

	assert_null(f->t->m.pci);
	assert_int_equal(pio_in(f->t, PM + ACPI_PM1_CNT_OFF, 2), ACPI_PM1_CNT_SCI_EN);
	pio_out(f->t, PM + ACPI_PM1_CNT_OFF, 2, ACPI_PM1_CNT_SLP_EN);
	assert_int_equal(f->t->m.last_event, MACHINE_POWEROFF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pm_function_is_piix4_at_01_3_with_pmba_0x600, setup, teardown),
		cmocka_unit_test_setup_teardown(test_s5_via_pm1a_cnt_requests_poweroff, setup, teardown),
		cmocka_unit_test_setup_teardown(test_s5_by_byte_write_of_pm1_cnt_high_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pm_timer_advances_at_3_58_mhz, setup, teardown),
		cmocka_unit_test_setup_teardown(test_power_button_sets_pwrbtn_sts_and_raises_sci_only_when_enabled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pmba_relocation_moves_the_block, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gpe0_status_raises_sci_when_enabled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_round_trip_keeps_registers_pmba_and_timer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tmr_sts_set_when_timer_bit_23_toggles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_rejects_bad_state_naming_the_field, setup, teardown),
		cmocka_unit_test_setup_teardown(test_without_pci_bus_block_sits_at_0x600, setup_nopci, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
