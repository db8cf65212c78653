/*
 * i8042 keyboard controller at 0x60 (data) and 0x64 (status/command), with
 * no keyboard and no mouse attached. Enough for Linux's i8042 driver to
 * probe quickly and quietly (self-test 0x55, interface tests, command byte,
 * AUX loopback) and for the classic reboot: command 0xFE pulses the CPU reset
 * line. References: IBM PS/2 Technical Reference (keyboard controller), and
 * the command set Linux's drivers/input/serio/i8042.h uses.
 *
 * A keyboard with no keys pressed is attached: it answers the AT keyboard
 * commands firmware and Linux send (reset, identify, LEDs, scan code set,
 * typematic, enable) as a real one does (IBM PS/2 Keyboard and Auxiliary
 * Device Controller reference), because OVMF's PS/2 driver waits about a
 * second for every command nobody answers. No mouse: bytes sent via 0xD4 are
 * answered 0xFE with the time-out status bit, so psmouse gives up at once.
 *
 * Port 0x61 (system control port B) belongs to KVM's in-kernel PIT and
 * 0x402 to the firmware debug console: not registered here.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amber/device.h"
#include "amber/log.h"
#include "amber/machine.h"

#define I8042_IRQ_KBD	1
#define I8042_IRQ_AUX	12
#define I8042_QUEUE	16

/* Status register */
#define STR_OBF		0x01	/* output buffer full */
#define STR_IBF		0x02	/* input buffer full (never: we are instant) */
#define STR_SYS		0x04	/* system flag: self-test passed */
#define STR_CMDDAT	0x08	/* last write was to the command port */
#define STR_KEYLOCK	0x10	/* 1: keyboard not inhibited */
#define STR_AUXDATA	0x20	/* output buffer holds mouse data */
#define STR_TIMEOUT	0x40
#define STR_PARITY	0x80

/* Command byte (controller RAM byte 0) */
#define CTR_KBDINT	0x01
#define CTR_AUXINT	0x02
#define CTR_SYS		0x04
#define CTR_KBDDIS	0x10
#define CTR_AUXDIS	0x20
#define CTR_XLATE	0x40

/* Commands (port 0x64) */
#define CMD_READ_RAM	0x20	/* 0x20-0x3f: read RAM byte n */
#define CMD_WRITE_RAM	0x60	/* 0x60-0x7f: write RAM byte n */
#define CMD_PWD_CHECK	0xa4
#define CMD_AUX_DISABLE	0xa7
#define CMD_AUX_ENABLE	0xa8
#define CMD_AUX_TEST	0xa9
#define CMD_SELF_TEST	0xaa
#define CMD_KBD_TEST	0xab
#define CMD_KBD_DISABLE	0xad
#define CMD_KBD_ENABLE	0xae
#define CMD_READ_INPORT	0xc0
#define CMD_READ_OUTPORT 0xd0
#define CMD_WRITE_OUTPORT 0xd1
#define CMD_KBD_LOOP	0xd2	/* next byte appears as keyboard data */
#define CMD_AUX_LOOP	0xd3	/* next byte appears as mouse data */
#define CMD_AUX_SEND	0xd4	/* next byte goes to the mouse */
#define CMD_A20_OFF	0xdd
#define CMD_A20_ON	0xdf
#define CMD_READ_TEST	0xe0
#define CMD_PULSE	0xf0	/* 0xf0-0xff: pulse output lines low */

/* Output port */
#define OUT_RESET	0x01	/* 0 holds the CPU in reset */
#define OUT_A20		0x02
#define OUT_ONES	0xcc	/* keyboard clock/data, OBF lines: idle high */

#define I8042_RESP_SELF_TEST_OK	0x55
#define I8042_RESP_RESEND	0xfe

/* Architectural state, saved as is. */
struct i8042_regs {
	uint8_t ram[32];		/* ram[0] is the command byte */
	uint8_t status;			/* SYS, CMDDAT, TIMEOUT (OBF/AUXDATA derived) */
	uint8_t outport;
	uint8_t pending_cmd;		/* command waiting for its data byte, 0: none */
	uint8_t queue[I8042_QUEUE];	/* output bytes, oldest first */
	uint8_t queue_aux[I8042_QUEUE];	/* 1: byte is mouse data */
	uint8_t qlen;
	uint8_t kbd_arg_cmd;		/* keyboard command waiting for its argument (v2) */
	uint8_t kbd_scanset;		/* 1-3 (v2) */
};

static const struct state_field i8042_fields[] = {
	STATE_BYTES(struct i8042_regs, ram),
	STATE_U8(struct i8042_regs, status),
	STATE_U8(struct i8042_regs, outport),
	STATE_U8(struct i8042_regs, pending_cmd),
	STATE_BYTES(struct i8042_regs, queue),
	STATE_BYTES(struct i8042_regs, queue_aux),
	STATE_U8_MAX(struct i8042_regs, qlen, I8042_QUEUE),
	{ .name = "kbd_arg_cmd", .type = ST_U8, .offset = offsetof(struct i8042_regs, kbd_arg_cmd),
	  .count = 1, .since = 2 },
	{ .name = "kbd_scanset", .type = ST_U8, .offset = offsetof(struct i8042_regs, kbd_scanset),
	  .count = 1, .max = 3, .since = 2 },
	STATE_END,
};

struct i8042 {
	pthread_mutex_t lock;
	struct i8042_regs r;
	struct machine *m;
	int irq_kbd, irq_aux;		/* last line levels */
	bool reset_pending;		/* raise MACHINE_RESET after unlocking */
};

static void i8042_update_irq(struct i8042 *k)
{
	bool full = k->r.qlen > 0;
	bool aux = full && k->r.queue_aux[0];
	/* The controller drives IRQ1 / IRQ12 from OBF when the CTR enables it. */
	int kbd = full && !aux && (k->r.ram[0] & CTR_KBDINT);
	int mouse = aux && (k->r.ram[0] & CTR_AUXINT);

	if (kbd != k->irq_kbd) {
		k->irq_kbd = kbd;
		irq_set_line(k->m->irq, I8042_IRQ_KBD, kbd);
	}
	if (mouse != k->irq_aux) {
		k->irq_aux = mouse;
		irq_set_line(k->m->irq, I8042_IRQ_AUX, mouse);
	}
}

static void i8042_queue(struct i8042 *k, uint8_t b, bool aux)
{
	if (k->r.qlen >= I8042_QUEUE) {
		log_debug("i8042", "output queue full, byte %#x lost", b);
		return;
	}
	k->r.queue[k->r.qlen] = b;
	k->r.queue_aux[k->r.qlen] = aux;
	k->r.qlen++;
}

static uint8_t i8042_status(const struct i8042 *k)
{
	uint8_t s = (k->r.status & (STR_SYS | STR_CMDDAT | STR_TIMEOUT)) | STR_KEYLOCK;

	if (k->r.qlen) {
		s |= STR_OBF;
		if (k->r.queue_aux[0])
			s |= STR_AUXDATA;
	}
	return s;
}

static uint8_t i8042_outport(const struct i8042 *k)
{
	uint8_t v = k->r.outport;

	/* Bits 4/5 mirror the output-buffer-full lines (IRQ1, IRQ12). */
	v &= ~0x30;
	if (k->r.qlen && !k->r.queue_aux[0])
		v |= 0x10;
	if (k->r.qlen && k->r.queue_aux[0])
		v |= 0x20;
	return v;
}

static uint8_t i8042_read_data(struct i8042 *k)
{
	uint8_t v;

	if (!k->r.qlen) {
		/* Nothing new: the output buffer still holds the last byte. */
		return k->r.queue[0];
	}
	v = k->r.queue[0];
	k->r.qlen--;
	memmove(k->r.queue, k->r.queue + 1, k->r.qlen);
	memmove(k->r.queue_aux, k->r.queue_aux + 1, k->r.qlen);
	/* Keep the byte readable again (real 8042s do) when the queue empties. */
	if (!k->r.qlen)
		k->r.queue[0] = v;
	k->r.status &= ~STR_TIMEOUT;
	return v;
}

static void i8042_write_command(struct i8042 *k, uint8_t cmd)
{
	k->r.status |= STR_CMDDAT;
	k->r.pending_cmd = 0;

	if (cmd >= CMD_READ_RAM && cmd < CMD_READ_RAM + 0x20) {
		i8042_queue(k, k->r.ram[cmd & 0x1f], false);
		return;
	}
	if (cmd >= CMD_WRITE_RAM && cmd < CMD_WRITE_RAM + 0x20) {
		k->r.pending_cmd = cmd;
		return;
	}
	if (cmd >= CMD_PULSE) {
		/* Bits 3:0 low = pulse that output line; bit 0 is CPU reset. */
		if (!(cmd & OUT_RESET))
			k->reset_pending = true;
		return;
	}
	switch (cmd) {
	case CMD_PWD_CHECK:
		i8042_queue(k, 0xf1, false);		/* no password installed */
		break;
	case CMD_AUX_DISABLE:
		k->r.ram[0] |= CTR_AUXDIS;
		break;
	case CMD_AUX_ENABLE:
		k->r.ram[0] &= ~CTR_AUXDIS;
		break;
	case CMD_AUX_TEST:
	case CMD_KBD_TEST:
		i8042_queue(k, 0x00, false);		/* interface OK */
		break;
	case CMD_SELF_TEST:
		k->r.status |= STR_SYS;
		i8042_queue(k, I8042_RESP_SELF_TEST_OK, false);
		break;
	case CMD_KBD_DISABLE:
		k->r.ram[0] |= CTR_KBDDIS;
		break;
	case CMD_KBD_ENABLE:
		k->r.ram[0] &= ~CTR_KBDDIS;
		break;
	case CMD_READ_INPORT:
		i8042_queue(k, 0x80, false);		/* keyboard not inhibited */
		break;
	case CMD_READ_OUTPORT:
		i8042_queue(k, i8042_outport(k), false);
		break;
	case CMD_READ_TEST:
		i8042_queue(k, 0x00, false);
		break;
	case CMD_WRITE_OUTPORT:
	case CMD_KBD_LOOP:
	case CMD_AUX_LOOP:
	case CMD_AUX_SEND:
		k->r.pending_cmd = cmd;
		break;
	case CMD_A20_OFF:
	case CMD_A20_ON:
		/* KVM keeps A20 enabled; the bit is only remembered. */
		k->r.outport = cmd == CMD_A20_ON ? (k->r.outport | OUT_A20)
						 : (k->r.outport & ~OUT_A20);
		break;
	default:
		log_debug("i8042", "ignored unknown command %#x", cmd);
		break;
	}
}

/* AT keyboard responses */
#define KBD_ACK		0xfa
#define KBD_BAT_OK	0xaa
#define KBD_ECHO	0xee

/* A command byte for the keyboard (or the argument of its previous one). */
static void i8042_kbd_command(struct i8042 *k, uint8_t val)
{
	uint8_t arg_of = k->r.kbd_arg_cmd;

	k->r.kbd_arg_cmd = 0;
	if (arg_of) {
		i8042_queue(k, KBD_ACK, false);
		if (arg_of == 0xf0 && val == 0)		/* get scan code set */
			i8042_queue(k, k->r.kbd_scanset ? k->r.kbd_scanset : 2, false);
		else if (arg_of == 0xf0 && val >= 1 && val <= 3)
			k->r.kbd_scanset = val;
		return;
	}
	switch (val) {
	case 0xff:				/* reset: ACK, then self-test passed */
		k->r.kbd_scanset = 2;
		i8042_queue(k, KBD_ACK, false);
		i8042_queue(k, KBD_BAT_OK, false);
		break;
	case 0xf2:				/* identify: MF2 keyboard */
		i8042_queue(k, KBD_ACK, false);
		i8042_queue(k, 0xab, false);
		i8042_queue(k, (k->r.ram[0] & CTR_XLATE) ? 0x41 : 0x83, false);
		break;
	case 0xed:				/* set LEDs */
	case 0xf0:				/* scan code set */
	case 0xf3:				/* typematic rate */
		k->r.kbd_arg_cmd = val;
		i8042_queue(k, KBD_ACK, false);
		break;
	case 0xee:
		i8042_queue(k, KBD_ECHO, false);
		break;
	case 0xf4: case 0xf5: case 0xf6:	/* enable, disable, defaults */
	case 0xf7: case 0xf8: case 0xf9: case 0xfa: case 0xfb: case 0xfc: case 0xfd:
		i8042_queue(k, KBD_ACK, false);
		break;
	default:
		i8042_queue(k, I8042_RESP_RESEND, false);
		break;
	}
}

static void i8042_write_data(struct i8042 *k, uint8_t val)
{
	uint8_t cmd = k->r.pending_cmd;

	k->r.status &= ~STR_CMDDAT;
	k->r.pending_cmd = 0;
	if (cmd >= CMD_WRITE_RAM && cmd < CMD_WRITE_RAM + 0x20) {
		k->r.ram[cmd & 0x1f] = val;
		if ((cmd & 0x1f) == 0) {
			/* The command byte's SYS bit is the status SYS flag. */
			k->r.status = (k->r.status & ~STR_SYS) | (val & CTR_SYS);
		}
		return;
	}
	switch (cmd) {
	case CMD_WRITE_OUTPORT:
		k->r.outport = val;
		if (!(val & OUT_RESET))
			k->reset_pending = true;
		break;
	case CMD_KBD_LOOP:
		i8042_queue(k, val, false);
		break;
	case CMD_AUX_LOOP:
		i8042_queue(k, val, true);
		break;
	case CMD_AUX_SEND:
		/* No mouse: the transmission times out. */
		k->r.status |= STR_TIMEOUT;
		i8042_queue(k, I8042_RESP_RESEND, true);
		break;
	default:
		/* A byte for the keyboard. */
		k->r.status &= ~STR_TIMEOUT;
		i8042_kbd_command(k, val);
		break;
	}
}

/* port is 0 for 0x60 (data), 1 for 0x64 (status/command) */
static uint64_t i8042_read(struct i8042 *k, int port, unsigned size)
{
	uint64_t v;

	pthread_mutex_lock(&k->lock);
	if (port == 0) {
		v = i8042_read_data(k);
		/*
		 * A real 8042 holds one byte: reading it drops OBF and the IRQ
		 * line, and the keyboard's next byte raises them again. Linux
		 * takes one byte per edge-triggered IRQ 1/12 (i8042_interrupt),
		 * so a byte already queued behind this one needs an edge of its
		 * own; without it atkbd's GETID answer stalls until its command
		 * times out (a second per boot, and the keyboard is dropped).
		 */
		if (k->irq_kbd == 1) {
			k->irq_kbd = 0;
			irq_set_line(k->m->irq, I8042_IRQ_KBD, 0);
		}
		if (k->irq_aux == 1) {
			k->irq_aux = 0;
			irq_set_line(k->m->irq, I8042_IRQ_AUX, 0);
		}
	} else {
		v = i8042_status(k);
	}
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);
	/* Wider accesses: the other bytes float high. */
	for (unsigned i = 1; i < size && i < 8; i++)
		v |= 0xffull << (8 * i);
	return v;
}

static void i8042_write(struct i8042 *k, int port, uint8_t val)
{
	bool reset;

	pthread_mutex_lock(&k->lock);
	if (port == 0)
		i8042_write_data(k, val);
	else
		i8042_write_command(k, val);
	i8042_update_irq(k);
	reset = k->reset_pending;
	k->reset_pending = false;
	pthread_mutex_unlock(&k->lock);
	/* Outside the lock: the handler may reset devices, us included. */
	if (reset) {
		log_info("i8042", "guest pulsed the CPU reset line");
		machine_request(k->m, MACHINE_RESET);
	}
}

static uint64_t i8042_data_read(void *opaque, uint64_t off, unsigned size)
{
	return i8042_read(opaque, 0, size);
}

static void i8042_data_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	i8042_write(opaque, 0, (uint8_t)val);
}

static uint64_t i8042_cmd_read(void *opaque, uint64_t off, unsigned size)
{
	return i8042_read(opaque, 1, size);
}

static void i8042_cmd_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	i8042_write(opaque, 1, (uint8_t)val);
}

/* Two one-port regions: 0x61-0x63 between them are not ours. */
static const struct bus_ops i8042_data_ops = {
	.read = i8042_data_read,
	.write = i8042_data_write,
};

static const struct bus_ops i8042_cmd_ops = {
	.read = i8042_cmd_read,
	.write = i8042_cmd_write,
};

static void i8042_reset_regs(struct i8042 *k)
{
	memset(&k->r, 0, sizeof(k->r));
	/* Power-on values as QEMU's: interrupts on, status "unlocked, command". */
	k->r.ram[0] = CTR_KBDINT | CTR_AUXINT;
	k->r.status = STR_CMDDAT;
	k->r.outport = OUT_RESET | OUT_A20 | OUT_ONES;
}

static int i8042_realize(struct device *dev, struct machine *m, const char *args)
{
	static const char *const keys[] = { NULL };
	struct i8042 *k;
	char err[128];
	int ret;

	ret = opt_check_keys(args, keys, err, sizeof(err));
	if (ret < 0) {
		log_error(dev->id, "%s (i8042 takes no options)", err);
		return ret;
	}
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	pthread_mutex_init(&k->lock, NULL);
	k->m = m;
	i8042_reset_regs(k);
	ret = bus_register(&m->pio, PORT_I8042_DATA, 1, &i8042_data_ops, k, "i8042 data");
	if (ret < 0)
		goto fail;
	ret = bus_register(&m->pio, PORT_I8042_CMD, 1, &i8042_cmd_ops, k, "i8042 cmd");
	if (ret < 0) {
		bus_unregister(&m->pio, PORT_I8042_DATA, k);
		goto fail;
	}
	dev->priv = k;
	return 0;

fail:
	log_error(dev->id, "ports %#x/%#x: %s", PORT_I8042_DATA, PORT_I8042_CMD,
		  ret == -EEXIST ? "already used by another device" : strerror(-ret));
	pthread_mutex_destroy(&k->lock);
	free(k);
	return ret;
}

static void i8042_unrealize(struct device *dev)
{
	struct i8042 *k = dev->priv;

	if (!k)
		return;
	bus_unregister(&k->m->pio, PORT_I8042_DATA, k);
	bus_unregister(&k->m->pio, PORT_I8042_CMD, k);
	pthread_mutex_destroy(&k->lock);
	free(k);
	dev->priv = NULL;
}

static void i8042_reset(struct device *dev)
{
	struct i8042 *k = dev->priv;

	pthread_mutex_lock(&k->lock);
	i8042_reset_regs(k);
	i8042_update_irq(k);
	pthread_mutex_unlock(&k->lock);
}

static int i8042_save(struct device *dev, json_t *obj)
{
	struct i8042 *k = dev->priv;
	int ret;

	pthread_mutex_lock(&k->lock);
	ret = state_fields_save(i8042_fields, &k->r, obj);
	pthread_mutex_unlock(&k->lock);
	return ret;
}

static int i8042_check(const json_t *obj, uint32_t version, char *err, size_t errlen)
{
	return state_fields_check(i8042_fields, obj, version, err, errlen);
}

static int i8042_load(struct device *dev, const json_t *obj, uint32_t version)
{
	struct i8042 *k = dev->priv;
	struct i8042_regs r;
	int ret;

	pthread_mutex_lock(&k->lock);
	r = k->r;
	ret = state_fields_load(i8042_fields, &r, obj, version);
	if (ret == 0) {
		for (unsigned i = 0; i < I8042_QUEUE; i++)
			r.queue_aux[i] = !!r.queue_aux[i];
		k->r = r;
		k->irq_kbd = k->irq_aux = -1;
		i8042_update_irq(k);
	}
	pthread_mutex_unlock(&k->lock);
	return ret;
}

static const struct device_class i8042_class = {
	.name = "i8042",
	.state_version = 2,
	.realize = i8042_realize,
	.unrealize = i8042_unrealize,
	.reset = i8042_reset,
	.save = i8042_save,
	.check = i8042_check,
	.load = i8042_load,
};
DEVICE_CLASS(i8042_class);
