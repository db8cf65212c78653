/*
 * 16550A UART (National Semiconductor PC16550D datasheet, "PC16550D"
 * below), as the Linux 8250 driver and firmware use it: 16-byte receive FIFO
 * with trigger levels, the four interrupt sources with their priorities,
 * DLAB, loopback, OUT2 gating the interrupt line as on PC motherboards.
 *
 * Transmission is instant: a byte written to THR goes straight to the
 * chardev (or, in loopback, into the receive FIFO), so THR and the
 * transmitter are always empty and the TX FIFO never holds anything.
 *
 * Receive flow control: the chardev offers input bytes and the UART takes
 * what fits in the FIFO; the chardev holds the rest back until a read of RBR
 * frees space (chardev_accept_input). A host paste is therefore never lost.
 *
 * Locking: one mutex guards the registers; vCPU threads take it on register
 * access, the event-loop thread on input.
 *
 * args: port=0x3f8,irq=4,chardev=stdio|file:PATH|append:PATH|fd:IN:OUT|none
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amber/chardev.h"
#include "amber/device.h"
#include "amber/log.h"
#include "amber/machine.h"

#define UART_NREGS	8
#define UART_FIFO_SIZE	16

/* Register offsets (PC16550D Table II) */
#define UART_RBR	0	/* read, DLAB=0 */
#define UART_THR	0	/* write, DLAB=0 */
#define UART_DLL	0	/* DLAB=1 */
#define UART_IER	1	/* DLAB=0 */
#define UART_DLM	1	/* DLAB=1 */
#define UART_IIR	2	/* read */
#define UART_FCR	2	/* write */
#define UART_LCR	3
#define UART_MCR	4
#define UART_LSR	5
#define UART_MSR	6
#define UART_SCR	7

#define UART_IER_RDI	0x01	/* received data available */
#define UART_IER_THRI	0x02	/* THR empty */
#define UART_IER_RLSI	0x04	/* receiver line status */
#define UART_IER_MSI	0x08	/* modem status */
#define UART_IER_MASK	0x0f	/* bits 4-7 are always 0 on a 16550A */

#define UART_IIR_NO_INT	0x01
#define UART_IIR_MSI	0x00
#define UART_IIR_THRI	0x02
#define UART_IIR_RDI	0x04
#define UART_IIR_RLSI	0x06
#define UART_IIR_CTI	0x0c	/* character timeout */
#define UART_IIR_FIFO	0xc0	/* FIFOs enabled */

#define UART_FCR_ENABLE	0x01
#define UART_FCR_CLR_RX	0x02
#define UART_FCR_CLR_TX	0x04
#define UART_FCR_DMA	0x08
#define UART_FCR_TRIG	0xc0
#define UART_FCR_KEEP	(UART_FCR_ENABLE | UART_FCR_DMA | UART_FCR_TRIG)

#define UART_LCR_DLAB	0x80

#define UART_MCR_DTR	0x01
#define UART_MCR_RTS	0x02
#define UART_MCR_OUT1	0x04
#define UART_MCR_OUT2	0x08
#define UART_MCR_LOOP	0x10
#define UART_MCR_MASK	0x1f

#define UART_LSR_DR	0x01
#define UART_LSR_OE	0x02
#define UART_LSR_PE	0x04
#define UART_LSR_FE	0x08
#define UART_LSR_BI	0x10
#define UART_LSR_THRE	0x20
#define UART_LSR_TEMT	0x40
#define UART_LSR_FIFOE	0x80
#define UART_LSR_ERRORS	(UART_LSR_OE | UART_LSR_PE | UART_LSR_FE | UART_LSR_BI)

#define UART_MSR_DCTS	0x01
#define UART_MSR_DDSR	0x02
#define UART_MSR_TERI	0x04
#define UART_MSR_DDCD	0x08
#define UART_MSR_CTS	0x10
#define UART_MSR_DSR	0x20
#define UART_MSR_RI	0x40
#define UART_MSR_DCD	0x80
#define UART_MSR_DELTAS	0x0f

/* Architectural state: exactly what is saved (see uart_fields). */
struct uart_regs {
	uint8_t ier, lcr, mcr, lsr, msr, scr, dll, dlm;
	uint8_t fcr;			/* enable, DMA mode and trigger bits */
	uint8_t rbr;			/* last byte read (RBR holds it) */
	uint8_t rx_fifo[UART_FIFO_SIZE];
	uint8_t rx_head, rx_count;
	bool thr_ipending;		/* THRE interrupt not yet acknowledged */
};

static const struct state_field uart_fields[] = {
	STATE_U8_MAX(struct uart_regs, ier, UART_IER_MASK),
	STATE_U8(struct uart_regs, lcr),
	STATE_U8_MAX(struct uart_regs, mcr, UART_MCR_MASK),
	STATE_U8(struct uart_regs, lsr),
	STATE_U8(struct uart_regs, msr),
	STATE_U8(struct uart_regs, scr),
	STATE_U8(struct uart_regs, dll),
	STATE_U8(struct uart_regs, dlm),
	STATE_U8(struct uart_regs, fcr),
	STATE_U8(struct uart_regs, rbr),
	STATE_BYTES(struct uart_regs, rx_fifo),
	STATE_U8_MAX(struct uart_regs, rx_head, UART_FIFO_SIZE - 1),
	STATE_U8_MAX(struct uart_regs, rx_count, UART_FIFO_SIZE),
	STATE_BOOL(struct uart_regs, thr_ipending),
	STATE_END,
};

struct uart {
	pthread_mutex_t lock;
	struct uart_regs r;
	struct machine *m;
	struct chardev *chr;
	char name[40];
	uint16_t port;
	unsigned irq;
	int irq_level;			/* what we last told the irq chip */
	bool rx_blocked;		/* the chardev holds input back for us */
	bool quiesced;
};

/* ---- FIFO and interrupt logic ----------------------------------------- */

static unsigned uart_rx_capacity(const struct uart *u)
{
	/* FIFOs disabled: 16450 mode, a single receive holding register. */
	return (u->r.fcr & UART_FCR_ENABLE) ? UART_FIFO_SIZE : 1;
}

static unsigned uart_rx_trigger(const struct uart *u)
{
	/* PC16550D FCR bits 7:6: 1, 4, 8, 14 bytes. */
	static const unsigned level[4] = { 1, 4, 8, 14 };

	return level[u->r.fcr >> 6];
}

/*
 * IIR as the guest would read it now, by priority (PC16550D Table IV):
 * line status > received data / character timeout > THR empty > modem status.
 */
static uint8_t uart_iir(const struct uart *u)
{
	const struct uart_regs *r = &u->r;
	uint8_t fifo = (r->fcr & UART_FCR_ENABLE) ? UART_IIR_FIFO : 0;

	if ((r->ier & UART_IER_RLSI) && (r->lsr & UART_LSR_ERRORS))
		return fifo | UART_IIR_RLSI;
	if ((r->ier & UART_IER_RDI) && r->rx_count) {
		/*
		 * Below the trigger level the data is reported by the character
		 * timeout (four character times without input). Input arrives
		 * from the host in bursts, so once a burst is in the FIFO the
		 * timeout condition already holds.
		 */
		if ((r->fcr & UART_FCR_ENABLE) && r->rx_count < uart_rx_trigger(u))
			return fifo | UART_IIR_CTI;
		return fifo | UART_IIR_RDI;
	}
	if ((r->ier & UART_IER_THRI) && r->thr_ipending)
		return fifo | UART_IIR_THRI;
	if ((r->ier & UART_IER_MSI) && (r->msr & UART_MSR_DELTAS))
		return fifo | UART_IIR_MSI;
	return fifo | UART_IIR_NO_INT;
}

/*
 * The interrupt line: pending interrupt AND OUT2. On PC boards OUT2 enables
 * the UART's INTR onto the ISA line, and drivers rely on it (Linux sets OUT2
 * only while the port is open).
 */
static void uart_update_irq(struct uart *u)
{
	int level = !(uart_iir(u) & UART_IIR_NO_INT) && (u->r.mcr & UART_MCR_OUT2);

	if (level != u->irq_level) {
		u->irq_level = level;
		irq_set_line(u->m->irq, u->irq, level);
	}
}

static void uart_sync_lsr(struct uart *u)
{
	u->r.lsr &= ~UART_LSR_DR;
	if (u->r.rx_count)
		u->r.lsr |= UART_LSR_DR;
	/* Instant transmission: THR and the shift register are always empty. */
	u->r.lsr |= UART_LSR_THRE | UART_LSR_TEMT;
}

/* One byte into the receive FIFO; a full FIFO loses it and sets OE. */
static void uart_rx_push(struct uart *u, uint8_t b)
{
	struct uart_regs *r = &u->r;

	if (r->rx_count >= uart_rx_capacity(u)) {
		/* PC16550D LSR bit 1: the FIFO keeps its data, the new byte is lost. */
		r->lsr |= UART_LSR_OE;
		return;
	}
	r->rx_fifo[(r->rx_head + r->rx_count) % UART_FIFO_SIZE] = b;
	r->rx_count++;
	uart_sync_lsr(u);
}

static void uart_rx_clear(struct uart *u)
{
	u->r.rx_head = 0;
	u->r.rx_count = 0;
	uart_sync_lsr(u);
}

/* Space appeared in the FIFO: let the chardev deliver what it held back. */
static void uart_rx_space(struct uart *u)
{
	if (u->rx_blocked && !u->quiesced && u->r.rx_count < uart_rx_capacity(u)) {
		u->rx_blocked = false;
		chardev_accept_input(u->chr, true);
	}
}

/* Modem status inputs: looped back from MCR, or a cable with DCD/DSR/CTS up. */
static void uart_update_msr(struct uart *u)
{
	struct uart_regs *r = &u->r;
	uint8_t old = r->msr, now;

	if (r->mcr & UART_MCR_LOOP) {
		/* PC16550D "Loopback": RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD. */
		now = ((r->mcr & UART_MCR_RTS) ? UART_MSR_CTS : 0) |
		      ((r->mcr & UART_MCR_DTR) ? UART_MSR_DSR : 0) |
		      ((r->mcr & UART_MCR_OUT1) ? UART_MSR_RI : 0) |
		      ((r->mcr & UART_MCR_OUT2) ? UART_MSR_DCD : 0);
	} else {
		now = UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
	}
	r->msr = (old & UART_MSR_DELTAS) | now;
	if ((old ^ now) & UART_MSR_CTS)
		r->msr |= UART_MSR_DCTS;
	if ((old ^ now) & UART_MSR_DSR)
		r->msr |= UART_MSR_DDSR;
	if ((old ^ now) & UART_MSR_DCD)
		r->msr |= UART_MSR_DDCD;
	/* TERI: trailing edge of RI only. */
	if ((old & UART_MSR_RI) && !(now & UART_MSR_RI))
		r->msr |= UART_MSR_TERI;
}

/* ---- registers --------------------------------------------------------- */

static uint8_t uart_read_reg(struct uart *u, unsigned off)
{
	struct uart_regs *r = &u->r;
	uint8_t v = 0xff;

	switch (off) {
	case UART_RBR:
		if (r->lcr & UART_LCR_DLAB) {
			v = r->dll;
			break;
		}
		if (r->rx_count) {
			r->rbr = r->rx_fifo[r->rx_head];
			r->rx_head = (r->rx_head + 1) % UART_FIFO_SIZE;
			r->rx_count--;
			uart_sync_lsr(u);
			uart_rx_space(u);
		}
		v = r->rbr;
		break;
	case UART_IER:
		v = (r->lcr & UART_LCR_DLAB) ? r->dlm : r->ier;
		break;
	case UART_IIR:
		v = uart_iir(u);
		/* PC16550D Table IV: reading IIR when it reports THRE clears it. */
		if ((v & 0x0f) == UART_IIR_THRI)
			r->thr_ipending = false;
		break;
	case UART_LCR:
		v = r->lcr;
		break;
	case UART_MCR:
		v = r->mcr;
		break;
	case UART_LSR:
		uart_sync_lsr(u);
		v = r->lsr;
		/* Reading LSR clears the error bits (and the line status interrupt). */
		r->lsr &= ~(UART_LSR_ERRORS | UART_LSR_FIFOE);
		break;
	case UART_MSR:
		v = r->msr;
		r->msr &= ~UART_MSR_DELTAS;
		break;
	case UART_SCR:
		v = r->scr;
		break;
	}
	uart_update_irq(u);
	return v;
}

static void uart_transmit(struct uart *u, uint8_t b)
{
	if (u->r.mcr & UART_MCR_LOOP) {
		/* Loopback: the transmitter output is the receiver input. */
		uart_rx_push(u, b);
	} else {
		chardev_write(u->chr, &b, 1);
	}
	/* The byte left at once: THR is empty again, THRE interrupt pending. */
	u->r.thr_ipending = true;
}

static void uart_write_fcr(struct uart *u, uint8_t val)
{
	struct uart_regs *r = &u->r;

	/* Toggling FIFO enable resets both FIFOs (PC16550D FCR bit 0). */
	if ((val ^ r->fcr) & UART_FCR_ENABLE)
		uart_rx_clear(u);
	/* Bits 1-7 are only programmed while bit 0 is written as 1. */
	if (!(val & UART_FCR_ENABLE)) {
		r->fcr = 0;
	} else {
		r->fcr = val & UART_FCR_KEEP;
		if (val & UART_FCR_CLR_RX)
			uart_rx_clear(u);
		/* CLR_TX: the transmit FIFO is always empty here. */
	}
	uart_rx_space(u);
}

static void uart_write_reg(struct uart *u, unsigned off, uint8_t val)
{
	struct uart_regs *r = &u->r;

	switch (off) {
	case UART_THR:
		if (r->lcr & UART_LCR_DLAB)
			r->dll = val;
		else
			uart_transmit(u, val);
		break;
	case UART_IER:
		if (r->lcr & UART_LCR_DLAB) {
			r->dlm = val;
		} else {
			uint8_t changed = (val & UART_IER_MASK) ^ r->ier;

			r->ier = val & UART_IER_MASK;
			/*
			 * Enabling THRI with THR empty raises THRE at once; Linux
			 * tests exactly this at startup (UART_BUG_THRE).
			 */
			if (changed & UART_IER_THRI)
				r->thr_ipending = r->ier & UART_IER_THRI;
		}
		break;
	case UART_FCR:
		uart_write_fcr(u, val);
		break;
	case UART_LCR:
		r->lcr = val;
		break;
	case UART_MCR:
		r->mcr = val & UART_MCR_MASK;
		uart_update_msr(u);
		break;
	case UART_LSR:
		/* Factory test register on real parts: writes are ignored. */
		log_debug(u->name, "ignored write %#x to LSR", val);
		break;
	case UART_MSR:
		log_debug(u->name, "ignored write %#x to MSR", val);
		break;
	case UART_SCR:
		r->scr = val;
		break;
	}
	uart_update_irq(u);
}

static uint64_t uart_pio_read(void *opaque, uint64_t off, unsigned size)
{
	struct uart *u = opaque;
	uint64_t v = 0;

	/* Wider accesses act as consecutive byte accesses (as the ISA bus does). */
	pthread_mutex_lock(&u->lock);
	for (unsigned i = 0; i < size; i++) {
		uint8_t b = off + i < UART_NREGS ? uart_read_reg(u, (unsigned)off + i) : 0xff;

		v |= (uint64_t)b << (8 * i);
	}
	pthread_mutex_unlock(&u->lock);
	return v;
}

static void uart_pio_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	struct uart *u = opaque;

	pthread_mutex_lock(&u->lock);
	for (unsigned i = 0; i < size && off + i < UART_NREGS; i++)
		uart_write_reg(u, (unsigned)off + i, (uint8_t)(val >> (8 * i)));
	pthread_mutex_unlock(&u->lock);
}

static const struct bus_ops uart_ops = {
	.read = uart_pio_read,
	.write = uart_pio_write,
};

/* Event-loop thread: input bytes from the chardev. */
static size_t uart_receive(void *opaque, const uint8_t *buf, size_t len)
{
	struct uart *u = opaque;
	size_t n = 0;

	pthread_mutex_lock(&u->lock);
	if (u->r.mcr & UART_MCR_LOOP) {
		/* Loopback disconnects the serial input (PC16550D): bytes are lost. */
		n = len;
		goto out;
	}
	while (n < len && u->r.rx_count < uart_rx_capacity(u))
		uart_rx_push(u, buf[n++]);
	if (n < len)
		u->rx_blocked = true;
	uart_update_irq(u);
out:
	pthread_mutex_unlock(&u->lock);
	return n;
}

/* ---- device ------------------------------------------------------------ */

static void uart_reset_regs(struct uart *u)
{
	memset(&u->r, 0, sizeof(u->r));
	u->r.dll = 0x0c;		/* 9600 baud, as the BIOS would leave it */
	u->r.lsr = UART_LSR_THRE | UART_LSR_TEMT;
	uart_update_msr(u);
	u->r.msr &= ~UART_MSR_DELTAS;
}

static void uart_reset(struct device *dev)
{
	struct uart *u = dev->priv;

	pthread_mutex_lock(&u->lock);
	uart_reset_regs(u);
	uart_update_irq(u);
	uart_rx_space(u);
	pthread_mutex_unlock(&u->lock);
}

static int uart_parse_num(const char *args, const char *key, unsigned long max,
			  unsigned long *out, const char *devname)
{
	char buf[32], *end;
	unsigned long v;
	int ret = opt_get(args, key, buf, sizeof(buf));

	if (ret == 0)
		return 0;
	if (ret < 0) {
		log_error(devname, "%s: value too long", key);
		return -EINVAL;
	}
	errno = 0;
	v = strtoul(buf, &end, 0);
	if (!*buf || *end || errno || v > max || buf[0] == '-') {
		if (max < 0x100)
			log_error(devname, "%s=%s: want a number from 0 to %lu", key, buf, max);
		else
			log_error(devname, "%s=%s: want a number from 0 to %#lx", key, buf, max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int uart_realize(struct device *dev, struct machine *m, const char *args)
{
	static const char *const keys[] = { "port", "irq", "chardev", NULL };
	unsigned long port = PORT_COM1, irq = IRQ_COM1;
	char spec[256] = "none", err[256];
	struct uart *u;
	int ret;

	ret = opt_check_keys(args, keys, err, sizeof(err));
	if (ret < 0) {
		log_error(dev->id, "%s (known: port, irq, chardev)", err);
		return ret;
	}
	ret = uart_parse_num(args, "port", 0x10000 - UART_NREGS, &port, dev->id);
	if (ret == 0)
		ret = uart_parse_num(args, "irq", 23, &irq, dev->id);
	if (ret < 0)
		return ret;
	if (opt_get(args, "chardev", spec, sizeof(spec)) < 0) {
		log_error(dev->id, "chardev: value too long");
		return -EINVAL;
	}

	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	pthread_mutex_init(&u->lock, NULL);
	u->m = m;
	u->port = (uint16_t)port;
	u->irq = (unsigned)irq;
	snprintf(u->name, sizeof(u->name), "%s", dev->id);
	uart_reset_regs(u);

	u->chr = chardev_open(spec, m->loop, err, sizeof(err));
	if (!u->chr) {
		log_error(dev->id, "%s", err);
		ret = -EINVAL;
		goto fail_free;
	}
	ret = bus_register(&m->pio, port, UART_NREGS, &uart_ops, u, u->name);
	if (ret < 0) {
		log_error(dev->id, "ports %#lx-%#lx: %s", port, port + UART_NREGS - 1,
			  ret == -EEXIST ? "already used by another device" : strerror(-ret));
		goto fail_chr;
	}
	dev->priv = u;
	/* Input only after the device is complete: the receiver may run now. */
	chardev_set_receiver(u->chr, uart_receive, u);
	return 0;

fail_chr:
	chardev_close(u->chr);
fail_free:
	pthread_mutex_destroy(&u->lock);
	free(u);
	return ret;
}

static void uart_unrealize(struct device *dev)
{
	struct uart *u = dev->priv;

	if (!u)
		return;
	bus_unregister(&u->m->pio, u->port, u);
	chardev_set_receiver(u->chr, NULL, NULL);
	chardev_close(u->chr);
	irq_set_line(u->m->irq, u->irq, 0);
	pthread_mutex_destroy(&u->lock);
	free(u);
	dev->priv = NULL;
}

/* No I/O in flight; stop taking input so the FIFO is stable while saved. */
static int uart_quiesce(struct device *dev)
{
	struct uart *u = dev->priv;

	pthread_mutex_lock(&u->lock);
	u->quiesced = true;
	chardev_accept_input(u->chr, false);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

static int uart_resume(struct device *dev)
{
	struct uart *u = dev->priv;

	pthread_mutex_lock(&u->lock);
	u->quiesced = false;
	u->rx_blocked = false;
	chardev_accept_input(u->chr, true);
	pthread_mutex_unlock(&u->lock);
	return 0;
}

static int uart_save(struct device *dev, json_t *obj)
{
	struct uart *u = dev->priv;
	int ret;

	pthread_mutex_lock(&u->lock);
	uart_sync_lsr(u);
	ret = state_fields_save(uart_fields, &u->r, obj);
	pthread_mutex_unlock(&u->lock);
	return ret;
}

static int uart_check(const json_t *obj, uint32_t version, char *err, size_t errlen)
{
	return state_fields_check(uart_fields, obj, version, err, errlen);
}

static int uart_load(struct device *dev, const json_t *obj, uint32_t version)
{
	struct uart *u = dev->priv;
	struct uart_regs r;
	int ret;

	pthread_mutex_lock(&u->lock);
	r = u->r;
	ret = state_fields_load(uart_fields, &r, obj, version);
	if (ret < 0)
		goto out;
	/* Bits the hardware cannot hold read back as the hardware would. */
	r.fcr &= UART_FCR_KEEP;
	if (!(r.fcr & UART_FCR_ENABLE))
		r.fcr = 0;
	if (r.rx_count > ((r.fcr & UART_FCR_ENABLE) ? UART_FIFO_SIZE : 1))
		r.rx_count = (r.fcr & UART_FCR_ENABLE) ? UART_FIFO_SIZE : 1;
	u->r = r;
	uart_sync_lsr(u);
	/* Re-derive the line: the irq chip state was restored separately. */
	u->irq_level = -1;
	uart_update_irq(u);
	u->rx_blocked = true;
	uart_rx_space(u);
out:
	pthread_mutex_unlock(&u->lock);
	return ret;
}

static const struct device_class uart16550_class = {
	.name = "uart16550",
	.state_version = 1,
	.realize = uart_realize,
	.unrealize = uart_unrealize,
	.reset = uart_reset,
	.quiesce = uart_quiesce,
	.resume = uart_resume,
	.save = uart_save,
	.check = uart_check,
	.load = uart_load,
};
DEVICE_CLASS(uart16550_class);
