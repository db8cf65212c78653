/*
 * i8042 component tests: Linux's i8042 driver probe, reboot through the
 * controller, no keyboard/mouse behind it.
 */
#include <jansson.h>

#include "hw_test.h"

#define DATA 0x60
#define CMD  0x64

static uint8_t st(struct hw_env *e)
{
	return (uint8_t)pio_in(e->t, CMD, 1);
}

static uint8_t data(struct hw_env *e)
{
	return (uint8_t)pio_in(e->t, DATA, 1);
}

static void cmd(struct hw_env *e, uint8_t c)
{
	pio_out(e->t, CMD, 1, c);
}

static void put(struct hw_env *e, uint8_t v)
{
	pio_out(e->t, DATA, 1, v);
}

static struct hw_env *i8042_env(struct device **dev)
{
	struct hw_env *e = hw_env_new(false);
	struct device *d = hw_create(e, "i8042", "i8042", NULL);

	if (dev)
		*dev = d;
	return e;
}

static void test_i8042_self_test_returns_0x55(void **state)
{
	struct hw_env *e = i8042_env(NULL);

	assert_int_equal(st(e) & 0x01, 0);		/* nothing to flush */
	assert_int_equal(st(e) & 0x04, 0);		/* cold: SYS clear */
	cmd(e, 0xaa);
	assert_int_equal(st(e) & 0x01, 0x01);
	assert_int_equal(data(e), 0x55);
	assert_int_equal(st(e) & 0x05, 0x04);		/* OBF clear, SYS set */
	hw_env_free(e);
}

static void test_i8042_fe_requests_reset(void **state)
{
	struct hw_env *e = i8042_env(NULL);

	assert_int_equal(e->t->m.last_event, -1);
	/* Linux's kb_wait() then outb(0xfe, 0x64). */
	assert_int_equal(st(e) & 0x02, 0);
	cmd(e, 0xfe);
	assert_int_equal(e->t->m.last_event, MACHINE_RESET);
	hw_env_free(e);
}

static void test_i8042_pulse_without_reset_bit_does_nothing(void **state)
{
	struct hw_env *e = i8042_env(NULL);

	cmd(e, 0xff);					/* pulse no line */
	cmd(e, 0xf1);					/* bit 0 high: not reset */
	assert_int_equal(e->t->m.last_event, -1);
	cmd(e, 0xf0);					/* pulses all, reset too */
	assert_int_equal(e->t->m.last_event, MACHINE_RESET);
	hw_env_free(e);
}

static void test_i8042_output_port_write_can_reset(void **state)
{
	struct hw_env *e = i8042_env(NULL);

	cmd(e, 0xd0);
	assert_int_equal(data(e) & 0x03, 0x03);		/* not in reset, A20 on */
	cmd(e, 0xd1);
	put(e, 0xdf);					/* reset bit still high */
	assert_int_equal(e->t->m.last_event, -1);
	cmd(e, 0xd1);
	put(e, 0xde);
	assert_int_equal(e->t->m.last_event, MACHINE_RESET);
	hw_env_free(e);
}

static void test_i8042_command_byte_read_write(void **state)
{
	struct hw_env *e = i8042_env(NULL);

	cmd(e, 0x20);
	assert_int_equal(data(e), 0x03);		/* KBDINT | AUXINT */
	cmd(e, 0x60);
	assert_int_equal(st(e) & 0x08, 0x08);		/* last write: command */
	put(e, 0x47);
	assert_int_equal(st(e) & 0x08, 0);
	assert_int_equal(st(e) & 0x04, 0x04);		/* SYS follows CTR bit 2 */
	cmd(e, 0x20);
	assert_int_equal(data(e), 0x47);
	cmd(e, 0xad);					/* disable keyboard */
	cmd(e, 0xa7);					/* disable aux */
	cmd(e, 0x20);
	assert_int_equal(data(e), 0x77);
	cmd(e, 0xae);
	cmd(e, 0xa8);
	cmd(e, 0x20);
	assert_int_equal(data(e), 0x47);
	/* Other controller RAM bytes. */
	cmd(e, 0x65);
	put(e, 0x99);
	cmd(e, 0x25);
	assert_int_equal(data(e), 0x99);
	hw_env_free(e);
}

/* drivers/input/serio/i8042.c: check, selftest, ctr, check_aux, mux. */
static void test_i8042_linux_probe_sequence(void **state)
{
	struct hw_env *e = i8042_env(NULL);
	uint8_t ctr;

	/* i8042_flush: status is not 0xff (a controller is there). */
	assert_int_not_equal(st(e), 0xff);
	cmd(e, 0xaa);
	assert_int_equal(data(e), 0x55);
	/* CTR read twice must agree. */
	cmd(e, 0x20);
	ctr = data(e);
	cmd(e, 0x20);
	assert_int_equal(data(e), ctr);
	/* Disable both ports and their interrupts. */
	cmd(e, 0x60);
	put(e, (uint8_t)((ctr | 0x30) & ~0x03));
	/* AUX loopback: the byte comes back flagged as mouse data. */
	cmd(e, 0xd3);
	put(e, 0x5a);
	assert_int_equal(st(e) & 0x21, 0x21);
	assert_int_equal(data(e), 0x5a);
	/* Not an active multiplexer: 0xa4 comes back unchanged. */
	cmd(e, 0xd3);
	put(e, 0xa4);
	assert_int_equal(data(e), 0xa4);
	/* AUX IRQ test: with AUXINT set, loopback data raises IRQ 12. */
	cmd(e, 0x60);
	put(e, 0x02);
	cmd(e, 0xd3);
	put(e, 0xa5);
	assert_int_equal(e->t->irq.level[12], 1);
	assert_int_equal(e->t->irq.level[1], 0);
	assert_int_equal(data(e), 0xa5);
	assert_int_equal(e->t->irq.level[12], 0);
	/* Interface tests pass. */
	cmd(e, 0xab);
	assert_int_equal(data(e), 0x00);
	cmd(e, 0xa9);
	assert_int_equal(data(e), 0x00);
	hw_env_free(e);
}

static void test_i8042_keyboard_answers_reset_identify_and_leds(void **state)
{
	struct hw_env *e = i8042_env(NULL);

	/* atkbd's GETID with translation on: an MF2 keyboard, ID ab 41 */
	cmd(e, 0x60);
	put(e, 0x47);			/* KBDINT | SYS | XLATE */
	put(e, 0xf2);
	assert_int_equal(st(e) & 0x61, 0x01);		/* OBF, no time-out */
	assert_int_equal(e->t->irq.level[1], 1);
	assert_int_equal(data(e), 0xfa);
	assert_int_equal(data(e), 0xab);
	assert_int_equal(data(e), 0x41);
	assert_int_equal(st(e) & 0x41, 0);
	assert_int_equal(e->t->irq.level[1], 0);
	/* reset: ACK then self-test passed */
	put(e, 0xff);
	assert_int_equal(data(e), 0xfa);
	assert_int_equal(data(e), 0xaa);
	/* set LEDs takes an argument: two ACKs */
	put(e, 0xed);
	assert_int_equal(data(e), 0xfa);
	put(e, 0x07);
	assert_int_equal(data(e), 0xfa);
	/* scan code set 0 asks for the current one */
	put(e, 0xf0);
	assert_int_equal(data(e), 0xfa);
	put(e, 0x00);
	assert_int_equal(data(e), 0xfa);
	assert_int_equal(data(e), 0x02);
	/* an unknown command is answered "resend" */
	put(e, 0x42);
	assert_int_equal(data(e), 0xfe);
	hw_env_free(e);
}

/*
 * Linux's i8042_interrupt reads one byte per edge-triggered IRQ 1: every byte
 * of a multi-byte answer must come with its own rising edge, as on a real
 * controller where reading a byte drops OBF and the next one raises it.
 */
static void test_i8042_each_queued_byte_raises_its_own_irq_edge(void **state)
{
	struct hw_env *e = i8042_env(NULL);
	unsigned before;

	cmd(e, 0x60);
	put(e, 0x47);			/* KBDINT | SYS | XLATE */
	before = e->t->irq.raised[1];
	put(e, 0xf2);			/* GETID: fa ab 41 */
	assert_int_equal(e->t->irq.raised[1], before + 1);
	assert_int_equal(data(e), 0xfa);
	assert_int_equal(e->t->irq.level[1], 1);
	assert_int_equal(e->t->irq.raised[1], before + 2);	/* edge for 0xab */
	assert_int_equal(data(e), 0xab);
	assert_int_equal(e->t->irq.raised[1], before + 3);	/* edge for 0x41 */
	assert_int_equal(data(e), 0x41);
	assert_int_equal(e->t->irq.level[1], 0);
	assert_int_equal(e->t->irq.raised[1], before + 3);	/* empty: no more */
	/* a status read does not pulse the line */
	put(e, 0xf2);
	before = e->t->irq.raised[1];
	st(e);
	st(e);
	assert_int_equal(e->t->irq.raised[1], before);
	hw_env_free(e);
}

static void test_i8042_mouse_write_times_out(void **state)
{
	struct hw_env *e = i8042_env(NULL);

	/* No mouse via 0xd4. */
	cmd(e, 0xd4);
	put(e, 0xff);
	assert_int_equal(st(e) & 0x61, 0x61);
	assert_int_equal(e->t->irq.level[12], 1);
	assert_int_equal(data(e), 0xfe);
	hw_env_free(e);
}

static void test_i8042_output_queue_overflow_is_bounded(void **state)
{
	struct hw_env *e = i8042_env(NULL);
	int n = 0;

	for (int i = 0; i < 100; i++)
		cmd(e, 0x20);
	while ((st(e) & 0x01) && n < 1000) {
		data(e);
		n++;
	}
	assert_int_equal(n, 16);
	/* With nothing new, the data port repeats the last byte. */
	assert_int_equal(data(e), 0x03);
	hw_env_free(e);
}

static void test_i8042_does_not_claim_ports_0x61_or_0x402(void **state)
{
	struct hw_env *e = i8042_env(NULL);
	struct bus_region r;

	for (uint16_t p = 0x61; p <= 0x63; p++)
		assert_false(bus_lookup(&e->t->m.pio, p, &r));
	assert_false(bus_lookup(&e->t->m.pio, 0x402, &r));
	assert_true(bus_lookup(&e->t->m.pio, 0x60, &r));
	assert_true(bus_lookup(&e->t->m.pio, 0x64, &r));
	hw_env_free(e);
}

static void test_i8042_unknown_command_ignored(void **state)
{
	struct hw_env *e = i8042_env(NULL);

	cmd(e, 0x90);				/* MUX prefix: unsupported */
	cmd(e, 0xc8);
	cmd(e, 0x00);
	assert_int_equal(st(e) & 0x01, 0);
	assert_int_equal(e->t->m.last_event, -1);
	hw_env_free(e);
}

static void test_i8042_rejects_args(void **state)
{
	struct hw_env *e = hw_env_new(false);
	char err[256];

	assert_int_equal(device_create(&e->t->m, "i8042", "kbc", "irq=1", NULL, err, sizeof(err)),
			 -EINVAL);
	hw_create(e, "i8042", "kbc", NULL);
	assert_int_equal(device_create(&e->t->m, "i8042", "kbc2", NULL, NULL, err, sizeof(err)),
			 -EEXIST);
	hw_env_free(e);
}

static void test_i8042_state_round_trip(void **state)
{
	struct device *da, *db;
	struct hw_env *a = i8042_env(&da), *b = i8042_env(&db);
	json_t *obj = json_object();
	char err[256];

	cmd(a, 0x60);
	put(a, 0x61);
	cmd(a, 0xaa);
	cmd(a, 0xd3);
	put(a, 0x12);
	cmd(a, 0x60);				/* pending: waits for its data byte */
	assert_int_equal(da->cls->save(da, obj), 0);
	assert_int_equal(da->cls->check(obj, 1, err, sizeof(err)), 0);
	assert_int_equal(db->cls->load(db, obj, 1), 0);
	assert_int_equal(st(b), st(a));
	put(b, 0x43);
	put(a, 0x43);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(st(b), st(a));
		assert_int_equal(data(b), data(a));
	}
	cmd(b, 0x20);
	assert_int_equal(data(b), 0x43);
	json_object_set_new(obj, "qlen", json_integer(17));
	assert_int_equal(da->cls->check(obj, 1, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "qlen"));
	json_decref(obj);
	hw_env_free(a);
	hw_env_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_i8042_self_test_returns_0x55),
		cmocka_unit_test(test_i8042_fe_requests_reset),
		cmocka_unit_test(test_i8042_pulse_without_reset_bit_does_nothing),
		cmocka_unit_test(test_i8042_output_port_write_can_reset),
		cmocka_unit_test(test_i8042_command_byte_read_write),
		cmocka_unit_test(test_i8042_linux_probe_sequence),
		cmocka_unit_test(test_i8042_keyboard_answers_reset_identify_and_leds),
		cmocka_unit_test(test_i8042_each_queued_byte_raises_its_own_irq_edge),
		cmocka_unit_test(test_i8042_mouse_write_times_out),
		cmocka_unit_test(test_i8042_output_queue_overflow_is_bounded),
		cmocka_unit_test(test_i8042_does_not_claim_ports_0x61_or_0x402),
		cmocka_unit_test(test_i8042_unknown_command_ignored),
		cmocka_unit_test(test_i8042_rejects_args),
		cmocka_unit_test(test_i8042_state_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
