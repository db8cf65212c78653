/*
 * 16550A UART component tests: the registers as Linux's 8250 driver sees
 * them, output through a pipe chardev, input through a pipe on a running
 * event loop.
 */
#include "hw_test.h"

#define COM1 0x3f8
#define RBR (COM1 + 0)
#define THR (COM1 + 0)
#define IER (COM1 + 1)
#define IIR (COM1 + 2)
#define FCR (COM1 + 2)
#define LCR (COM1 + 3)
#define MCR (COM1 + 4)
#define LSR (COM1 + 5)
#define MSR (COM1 + 6)
#define SCR (COM1 + 7)

struct uart_env {
	struct hw_env *e;
	struct device *dev;
	int in_w;		/* test writes guest input here */
	int out_r;		/* test reads guest output here */
};

static struct uart_env *uart_env_new(bool with_loop)
{
	struct uart_env *u = calloc(1, sizeof(*u));
	int in[2], out[2];
	char args[96];

	assert_non_null(u);
	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	u->e = hw_env_new(with_loop);
	snprintf(args, sizeof(args), "port=0x3f8,irq=4,chardev=fd:%d:%d", in[0], out[1]);
	u->dev = hw_create(u->e, "uart16550", "com1", args);
	/* The chardev holds its own descriptors. */
	close(in[0]);
	close(out[1]);
	u->in_w = in[1];
	u->out_r = out[0];
	return u;
}

static void uart_env_free(struct uart_env *u)
{
	hw_env_free(u->e);
	close(u->in_w);
	close(u->out_r);
	free(u);
}

static uint8_t in8(struct uart_env *u, uint16_t port)
{
	return (uint8_t)pio_in(u->e->t, port, 1);
}

static void out8(struct uart_env *u, uint16_t port, uint8_t v)
{
	pio_out(u->e->t, port, 1, v);
}

static int irq4(struct uart_env *u)
{
	return u->e->t->irq.level[4];
}

/* Wait until LSR.DR (input arrived through the loop thread). */
static bool wait_data_ready(struct uart_env *u, int timeout_ms)
{
	uint64_t end = hw_now_ms() + (uint64_t)timeout_ms;

	while (hw_now_ms() < end) {
		if (in8(u, LSR) & 0x01)
			return true;
		hw_sleep_ms(1);
	}
	return false;
}

/* drivers/tty/serial/8250/8250_port.c autoconfig(), step by step. */
static void test_uart_detected_as_16550a_by_fcr_iir(void **state)
{
	struct uart_env *u = uart_env_new(false);

	/* IER probe: bits 0-3 stick, 4-7 read 0 (also no XScale UUE bit). */
	out8(u, IER, 0);
	assert_int_equal(in8(u, IER), 0);
	out8(u, IER, 0x0f);
	assert_int_equal(in8(u, IER) & 0x0f, 0x0f);
	out8(u, IER, 0xff);
	assert_int_equal(in8(u, IER), 0x0f);
	out8(u, IER, 0);
	/* Loopback probe: MCR = LOOP | OUT2 | RTS must read MSR & 0xf0 == 0x90. */
	out8(u, MCR, 0x10 | 0x0a);
	assert_int_equal(in8(u, MSR) & 0xf0, 0x90);
	out8(u, MCR, 0);
	/* EFR probe writes offset 2 under LCR 0xbf: on a 16550A that is FCR. */
	out8(u, LCR, 0xbf);
	out8(u, FCR, 0);
	out8(u, LCR, 0);
	out8(u, FCR, 0x01);
	assert_int_equal(in8(u, IIR) >> 6, 3);		/* 16550A FIFOs */
	/* 16750 probe: 64-byte bit must not stick. */
	out8(u, FCR, 0x01 | 0x20);
	assert_int_equal(in8(u, IIR) & 0x20, 0);
	/* FIFO off: IIR reports no FIFOs, no interrupt pending. */
	out8(u, FCR, 0);
	assert_int_equal(in8(u, IIR), 0x01);
	/* Scratch register and a sane LSR (not 0xff: "no UART"). */
	out8(u, SCR, 0xa5);
	assert_int_equal(in8(u, SCR), 0xa5);
	assert_int_equal(in8(u, LSR), 0x60);
	uart_env_free(u);
}

static void test_uart_thr_write_reaches_chardev(void **state)
{
	struct uart_env *u = uart_env_new(false);
	const char msg[] = "Linux version 6.1\r\n";
	char got[sizeof(msg)] = { 0 };

	out8(u, LCR, 0x03);
	for (size_t i = 0; i < sizeof(msg) - 1; i++) {
		/* The console driver polls THRE before each byte. */
		assert_true(in8(u, LSR) & 0x20);
		out8(u, THR, (uint8_t)msg[i]);
	}
	assert_int_equal(hw_read_timeout(u->out_r, got, sizeof(msg) - 1, 1000), sizeof(msg) - 1);
	assert_string_equal(got, msg);
	/* Transmitter empty again at once. */
	assert_int_equal(in8(u, LSR) & 0x60, 0x60);
	uart_env_free(u);
}

static void test_uart_thre_interrupt_reasserted_when_thri_enabled(void **state)
{
	struct uart_env *u = uart_env_new(false);

	out8(u, MCR, 0x08);			/* OUT2 */
	/* Linux's UART_BUG_THRE check in serial8250_do_startup. */
	out8(u, IER, 0x02);
	assert_int_equal(in8(u, IIR) & 0x0f, 0x02);
	assert_int_equal(in8(u, IIR) & 0x0f, 0x01);	/* reading IIR acked it */
	out8(u, IER, 0);
	out8(u, IER, 0x02);
	assert_int_equal(irq4(u), 1);
	assert_int_equal(in8(u, IIR) & 0x0f, 0x02);
	assert_int_equal(irq4(u), 0);
	/* Each THR write empties at once and raises THRE again. */
	out8(u, THR, 'x');
	assert_int_equal(irq4(u), 1);
	assert_int_equal(in8(u, IIR) & 0x0f, 0x02);
	uart_env_free(u);
}

static void test_uart_rx_fifo_raises_irq_and_lsr_dr(void **state)
{
	struct uart_env *u = uart_env_new(true);
	unsigned raised;

	out8(u, FCR, 0x07);			/* FIFO on, cleared, trigger 1 */
	out8(u, IER, 0x01);
	out8(u, MCR, 0x0b);			/* DTR RTS OUT2 */
	assert_int_equal(in8(u, LSR) & 0x01, 0);
	assert_int_equal(irq4(u), 0);
	raised = u->e->t->irq.raised[4];
	assert_int_equal(write(u->in_w, "ok", 2), 2);
	assert_true(wait_data_ready(u, 2000));
	/* Both bytes arrive in one burst; give the second a moment anyway. */
	hw_sleep_ms(20);
	assert_int_equal(irq4(u), 1);
	assert_true(u->e->t->irq.raised[4] > raised);
	assert_int_equal(in8(u, IIR), 0xc4);		/* FIFO, received data */
	assert_int_equal(in8(u, RBR), 'o');
	assert_int_equal(in8(u, RBR), 'k');
	assert_int_equal(in8(u, LSR) & 0x01, 0);
	assert_int_equal(in8(u, IIR), 0xc1);
	assert_int_equal(irq4(u), 0);
	uart_env_free(u);
}

static void test_uart_rx_below_trigger_reports_character_timeout(void **state)
{
	struct uart_env *u = uart_env_new(true);

	out8(u, FCR, 0x81);			/* FIFO on, trigger 8 (Linux's choice) */
	out8(u, IER, 0x01);
	assert_int_equal(write(u->in_w, "abc", 3), 3);
	assert_true(wait_data_ready(u, 2000));
	hw_sleep_ms(20);
	assert_int_equal(in8(u, IIR), 0xcc);
	assert_int_equal(in8(u, RBR), 'a');
	uart_env_free(u);
}

static void test_uart_rx_flow_control_keeps_excess_input(void **state)
{
	struct uart_env *u = uart_env_new(true);
	char sent[100], got[100];
	size_t n = 0;
	uint64_t end;

	for (size_t i = 0; i < sizeof(sent); i++)
		sent[i] = (char)('!' + i % 90);
	out8(u, FCR, 0x01);
	assert_int_equal(write(u->in_w, sent, sizeof(sent)), (ssize_t)sizeof(sent));
	assert_true(wait_data_ready(u, 2000));
	hw_sleep_ms(50);
	/* The FIFO is full but nothing was lost: no overrun. */
	assert_int_equal(in8(u, LSR) & 0x02, 0);
	end = hw_now_ms() + 3000;
	while (n < sizeof(sent) && hw_now_ms() < end) {
		uint8_t lsr = in8(u, LSR);

		assert_int_equal(lsr & 0x02, 0);
		if (lsr & 0x01)
			got[n++] = (char)in8(u, RBR);
		else
			hw_sleep_ms(1);
	}
	assert_int_equal(n, sizeof(sent));
	assert_memory_equal(got, sent, sizeof(sent));
	uart_env_free(u);
}

static void test_uart_overrun_sets_oe(void **state)
{
	struct uart_env *u = uart_env_new(false);

	out8(u, FCR, 0x01);
	out8(u, IER, 0x05);			/* RDI + RLSI */
	out8(u, MCR, 0x10 | 0x08);		/* loopback + OUT2 */
	for (int i = 0; i < 17; i++)
		out8(u, THR, (uint8_t)('A' + i));
	/* Line status has the highest priority. */
	assert_int_equal(in8(u, IIR), 0xc6);
	assert_int_equal(in8(u, LSR) & 0x03, 0x03);	/* OE + DR */
	assert_int_equal(in8(u, LSR) & 0x02, 0);	/* read cleared OE */
	assert_int_equal(in8(u, IIR), 0xc4);
	/* The FIFO kept the first 16 bytes; the 17th was lost. */
	for (int i = 0; i < 16; i++)
		assert_int_equal(in8(u, RBR), 'A' + i);
	assert_int_equal(in8(u, LSR) & 0x01, 0);
	uart_env_free(u);
}

static void test_uart_overrun_without_fifo_after_one_byte(void **state)
{
	struct uart_env *u = uart_env_new(false);

	out8(u, MCR, 0x10);			/* 16450 mode (FIFO off), loopback */
	out8(u, THR, '1');
	assert_int_equal(in8(u, LSR) & 0x03, 0x01);
	out8(u, THR, '2');
	assert_int_equal(in8(u, LSR) & 0x03, 0x03);
	assert_int_equal(in8(u, RBR), '1');
	uart_env_free(u);
}

static void test_uart_loopback(void **state)
{
	struct uart_env *u = uart_env_new(false);
	uint8_t msr;

	in8(u, MSR);				/* clear deltas */
	out8(u, FCR, 0x01);
	out8(u, MCR, 0x10 | 0x01 | 0x04);	/* LOOP, DTR, OUT1 */
	msr = in8(u, MSR);
	/* DTR->DSR, OUT1->RI; CTS and DCD dropped from the idle cable state. */
	assert_int_equal(msr & 0xf0, 0x20 | 0x40);
	assert_int_equal(msr & 0x0f, 0x01 | 0x08);	/* DCTS, DDCD */
	assert_int_equal(in8(u, MSR) & 0x0f, 0);	/* deltas clear on read */
	out8(u, MCR, 0x10 | 0x01);		/* RI falls: TERI */
	assert_int_equal(in8(u, MSR) & 0x04, 0x04);
	out8(u, THR, 0x42);
	assert_true(in8(u, LSR) & 0x01);
	assert_int_equal(in8(u, RBR), 0x42);
	/* Nothing went out on the line. */
	assert_true(hw_fd_quiet(u->out_r, 50));
	uart_env_free(u);
}

static void test_uart_loopback_ignores_host_input(void **state)
{
	struct uart_env *u = uart_env_new(true);

	out8(u, MCR, 0x10);
	assert_int_equal(write(u->in_w, "z", 1), 1);
	hw_sleep_ms(100);
	assert_int_equal(in8(u, LSR) & 0x01, 0);
	uart_env_free(u);
}

static void test_uart_irq_gated_by_out2(void **state)
{
	struct uart_env *u = uart_env_new(false);

	out8(u, IER, 0x02);			/* THRE pending, OUT2 low */
	assert_int_equal(in8(u, IIR) & 0x01, 0);
	out8(u, IER, 0);
	out8(u, IER, 0x02);
	assert_int_equal(irq4(u), 0);
	out8(u, MCR, 0x08);
	assert_int_equal(irq4(u), 1);
	out8(u, MCR, 0x00);
	assert_int_equal(irq4(u), 0);
	out8(u, MCR, 0x08);
	assert_int_equal(irq4(u), 1);
	out8(u, IER, 0);
	assert_int_equal(irq4(u), 0);
	uart_env_free(u);
}

static void test_uart_modem_status_interrupt_lowest_priority(void **state)
{
	struct uart_env *u = uart_env_new(false);

	out8(u, IER, 0x0a);			/* THRI + MSI */
	out8(u, MCR, 0x10);			/* loopback: CTS/DSR/DCD drop -> deltas */
	assert_int_equal(in8(u, IIR) & 0x0f, 0x02);	/* THRE first */
	assert_int_equal(in8(u, IIR) & 0x0f, 0x00);	/* then modem status */
	in8(u, MSR);
	assert_int_equal(in8(u, IIR) & 0x0f, 0x01);
	uart_env_free(u);
}

static void test_uart_dlab_selects_divisor_latch(void **state)
{
	struct uart_env *u = uart_env_new(false);

	out8(u, IER, 0x05);
	out8(u, LCR, 0x83);
	out8(u, COM1 + 0, 0x01);		/* DLL: 115200 baud */
	out8(u, COM1 + 1, 0x00);		/* DLM */
	assert_int_equal(in8(u, COM1 + 0), 0x01);
	assert_int_equal(in8(u, COM1 + 1), 0x00);
	assert_int_equal(in8(u, LCR), 0x83);
	out8(u, LCR, 0x03);
	assert_int_equal(in8(u, IER), 0x05);
	/* The divisor write was not transmitted. */
	assert_true(hw_fd_quiet(u->out_r, 20));
	uart_env_free(u);
}

static void test_uart_writes_to_status_registers_ignored(void **state)
{
	struct uart_env *u = uart_env_new(false);
	uint8_t msr = in8(u, MSR);

	out8(u, LSR, 0x1f);
	out8(u, MSR, 0x0f);
	assert_int_equal(in8(u, LSR), 0x60);
	assert_int_equal(in8(u, MSR), msr);
	/* Reserved MCR bits 5-7 read 0 on a 16550A. */
	out8(u, MCR, 0xe3);
	assert_int_equal(in8(u, MCR), 0x03);
	uart_env_free(u);
}

static void test_uart_wide_access_acts_bytewise(void **state)
{
	struct uart_env *u = uart_env_new(false);

	/* outw to SCR-1 (MSR, ignored) and SCR: the high byte lands in SCR. */
	pio_out(u->e->t, MSR, 2, 0x7700);
	assert_int_equal(in8(u, SCR), 0x77);
	/* A 4-byte read at SCR: SCR then bytes past the device float high. */
	assert_int_equal(pio_in(u->e->t, SCR, 4), 0xffffff77);
	uart_env_free(u);
}

static void test_uart_two_on_same_port_fails(void **state)
{
	struct hw_env *e = hw_env_new(false);
	char err[256];
	int ret;

	hw_create(e, "uart16550", "com1", "chardev=none");
	ret = device_create(&e->t->m, "uart16550", "com1b", "port=0x3fc,chardev=none",
			    NULL, err, sizeof(err));
	assert_int_equal(ret, -EEXIST);
	/* A different port is fine. */
	hw_create(e, "uart16550", "com2", "port=0x2f8,irq=3,chardev=none");
	hw_env_free(e);
}

static void test_uart_rejects_bad_args(void **state)
{
	static const char *const bad[] = {
		"port=0x10000", "port=-1", "port=abc", "irq=24", "irq=", "speed=9600",
		"chardev=tcp:1234", "chardev=file:", "chardev=fd:x:1",
	};
	struct hw_env *e = hw_env_new(false);
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = device_create(&e->t->m, "uart16550", "com1", bad[i], NULL,
					err, sizeof(err));

		if (ret != -EINVAL)
			fail_msg("args \"%s\": got %d, want -EINVAL", bad[i], ret);
	}
	assert_null(e->t->m.devices);
	hw_env_free(e);
}

static void test_uart_state_round_trip(void **state)
{
	struct uart_env *a = uart_env_new(false), *b = uart_env_new(false);
	json_t *obj = json_object();
	char err[256];
	uint8_t regs_a[8], regs_b[8];

	/* A busy state: FIFO with data, DLAB divisor, scratch, pending THRE. */
	out8(a, FCR, 0x81);
	out8(a, MCR, 0x10 | 0x08 | 0x03);
	for (int i = 0; i < 5; i++)
		out8(a, THR, (uint8_t)('a' + i));
	in8(a, RBR);				/* FIFO wraps: head moves */
	out8(a, LCR, 0x80);
	out8(a, COM1 + 0, 0x0c);
	out8(a, COM1 + 1, 0x01);
	out8(a, LCR, 0x1b);
	out8(a, SCR, 0x5a);
	out8(a, IER, 0x03);

	assert_int_equal(a->dev->cls->save(a->dev, obj), 0);
	assert_int_equal(a->dev->cls->check(obj, a->dev->cls->state_version, err, sizeof(err)), 0);
	assert_int_equal(b->dev->cls->load(b->dev, obj, a->dev->cls->state_version), 0);

	assert_int_equal(b->e->t->irq.level[4], a->e->t->irq.level[4]);
	/* Non-destructive registers first, then the destructive ones in order. */
	for (uint16_t r = IER; r <= SCR; r++) {
		if (r == IIR || r == LSR || r == MSR)
			continue;
		assert_int_equal(in8(b, r), in8(a, r));
	}
	for (int i = 0; i < 8; i++) {
		regs_a[i] = in8(a, i == 0 ? IIR : i == 1 ? LSR : i == 2 ? MSR : RBR);
		regs_b[i] = in8(b, i == 0 ? IIR : i == 1 ? LSR : i == 2 ? MSR : RBR);
	}
	assert_memory_equal(regs_a, regs_b, sizeof(regs_a));
	out8(b, LCR, 0x9b);
	assert_int_equal(in8(b, COM1 + 0), 0x0c);
	assert_int_equal(in8(b, COM1 + 1), 0x01);
	json_decref(obj);
	uart_env_free(a);
	uart_env_free(b);
}

static void test_uart_state_check_rejects_bad_fifo_count(void **state)
{
	struct uart_env *u = uart_env_new(false);
	json_t *obj = json_object();
	char err[256] = "";

	assert_int_equal(u->dev->cls->save(u->dev, obj), 0);
	json_object_set_new(obj, "rx_count", json_integer(17));
	assert_int_equal(u->dev->cls->check(obj, 1, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "rx_count"));
	json_object_set_new(obj, "rx_count", json_integer(0));
	json_object_del(obj, "ier");
	assert_int_equal(u->dev->cls->check(obj, 1, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "ier"));
	json_decref(obj);
	uart_env_free(u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uart_detected_as_16550a_by_fcr_iir),
		cmocka_unit_test(test_uart_thr_write_reaches_chardev),
		cmocka_unit_test(test_uart_thre_interrupt_reasserted_when_thri_enabled),
		cmocka_unit_test(test_uart_rx_fifo_raises_irq_and_lsr_dr),
		cmocka_unit_test(test_uart_rx_below_trigger_reports_character_timeout),
		cmocka_unit_test(test_uart_rx_flow_control_keeps_excess_input),
		cmocka_unit_test(test_uart_overrun_sets_oe),
		cmocka_unit_test(test_uart_overrun_without_fifo_after_one_byte),
		cmocka_unit_test(test_uart_loopback),
		cmocka_unit_test(test_uart_loopback_ignores_host_input),
		cmocka_unit_test(test_uart_irq_gated_by_out2),
		cmocka_unit_test(test_uart_modem_status_interrupt_lowest_priority),
		cmocka_unit_test(test_uart_dlab_selects_divisor_latch),
		cmocka_unit_test(test_uart_writes_to_status_registers_ignored),
		cmocka_unit_test(test_uart_wide_access_acts_bytewise),
		cmocka_unit_test(test_uart_two_on_same_port_fails),
		cmocka_unit_test(test_uart_rejects_bad_args),
		cmocka_unit_test(test_uart_state_round_trip),
		cmocka_unit_test(test_uart_state_check_rejects_bad_fifo_count),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
