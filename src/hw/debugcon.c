/*
 * Firmware debug console: QEMU's isa-debugcon at port 0x402 (PORT_DEBUGCON).
 * Every byte written goes to the chardev; a read returns 0xE9, QEMU's
 * readback value, by which SeaBIOS (src/hw/serialio.c qemu_debug_preinit)
 * and OVMF (PlatformDebugLibIoPort) decide that the port is there. Without
 * --debugcon nothing claims the port: reads return 0xff and both firmwares
 * stay silent, which saves an exit per byte of their log.
 *
 * args: chardev=stdio|file:PATH|append:PATH|fd:IN:OUT|none (default none),
 *       port=N (default 0x402)
 *
 * The device has no state to save (its output is not guest-visible).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amber/chardev.h"
#include "amber/device.h"
#include "amber/log.h"
#include "amber/machine.h"

#define DEBUGCON_READBACK 0xe9

struct debugcon {
	struct machine *m;
	struct chardev *chr;
	uint16_t port;
};

static uint64_t debugcon_read(void *opaque, uint64_t off, unsigned size)
{
	/* QEMU debugcon_ioport_read: the readback byte, whatever the width. */
	return DEBUGCON_READBACK;
}

static void debugcon_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	struct debugcon *d = opaque;
	uint8_t b = (uint8_t)val;

	/* QEMU writes only the low byte of wider accesses. */
	chardev_write(d->chr, &b, 1);
}

static const struct bus_ops debugcon_ops = {
	.read = debugcon_read,
	.write = debugcon_write,
};

static int debugcon_realize(struct device *dev, struct machine *m, const char *args)
{
	static const char *const keys[] = { "chardev", "port", NULL };
	char spec[256] = "none", num[16], err[256], *end;
	unsigned long port = PORT_DEBUGCON;
	struct debugcon *d;
	int ret;

	ret = opt_check_keys(args, keys, err, sizeof(err));
	if (ret < 0) {
		log_error(dev->id, "%s (known: chardev, port)", err);
		return ret;
	}
	if (opt_get(args, "chardev", spec, sizeof(spec)) < 0) {
		log_error(dev->id, "chardev: value too long");
		return -EINVAL;
	}
	ret = opt_get(args, "port", num, sizeof(num));
	if (ret != 0) {
		errno = 0;
		port = ret > 0 ? strtoul(num, &end, 0) : 0x10000;
		if (ret < 0 || !*num || *end || errno || port > 0xffff) {
			log_error(dev->id, "port: want a number from 0 to 0xffff");
			return -EINVAL;
		}
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->m = m;
	d->port = (uint16_t)port;
	/* Output only: no loop, so a stdio debug console never reads stdin. */
	d->chr = chardev_open(spec, NULL, err, sizeof(err));
	if (!d->chr) {
		log_error(dev->id, "%s", err);
		ret = -EINVAL;
		goto fail;
	}
	ret = bus_register(&m->pio, port, 1, &debugcon_ops, d, "debugcon");
	if (ret < 0) {
		log_error(dev->id, "port %#lx: %s", port,
			  ret == -EEXIST ? "already used by another device" : strerror(-ret));
		chardev_close(d->chr);
		goto fail;
	}
	dev->priv = d;
	return 0;
fail:
	free(d);
	return ret;
}

static void debugcon_unrealize(struct device *dev)
{
	struct debugcon *d = dev->priv;

	if (!d)
		return;
	bus_unregister(&d->m->pio, d->port, d);
	chardev_close(d->chr);
	free(d);
	dev->priv = NULL;
}

static int debugcon_save(struct device *dev, json_t *obj)
{
	return 0;
}

static int debugcon_check(const json_t *obj, uint32_t version, char *err, size_t errlen)
{
	return 0;
}

static int debugcon_load(struct device *dev, const json_t *obj, uint32_t version)
{
	return 0;
}

static const struct device_class debugcon_class = {
	.name = "debugcon",
	.state_version = 1,
	.realize = debugcon_realize,
	.unrealize = debugcon_unrealize,
	.save = debugcon_save,
	.check = debugcon_check,
	.load = debugcon_load,
};
DEVICE_CLASS(debugcon_class);
