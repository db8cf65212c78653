/*
 * PCI host: creates bus 0 (m->pci) with the Intel 440FX host bridge at 00.0
 * (8086:1237) and the PIIX3 PCI-to-ISA bridge at 01.0 (8086:7000), the IDs
 * SeaBIOS (src/fw/pciinit.c) and OVMF (OvmfPkg I440FxPiix4.h) recognise,
 * and serves configuration mechanism #1 (PCI 3.0 §3.2.2.3.2) and the PIIX3
 * reset control register on ports 0xcf8-0xcff:
 *
 *   0xcf8 dword  CONFIG_ADDRESS: bit 31 enable, 23:16 bus, 15:8 devfn, 7:2 reg
 *   0xcf9 byte   RCR: bit 1 SYS_RST (hard), bit 2 RST_CPU: 0->1 resets
 *   0xcfc-0xcff  CONFIG_DATA, any width inside the dword
 *
 * 0xcf8 and 0xcf9 overlap, so one handler decides by offset and size: on the
 * real chipset only a dword access to 0xcf8 reaches CONFIG_ADDRESS and only a
 * byte access to 0xcf9 reaches RCR.
 *
 * Both bridges keep their chipset registers (440FX PAM0-6 at 0x59-0x5f,
 * SMRAM at 0x72; PIIX3 PIRQ routing at 0x60-0x63 ...) as plain writable
 * bytes: firmware writes them, amber needs no effect from them (RAM is never
 * shadowed, INTx routing is fixed by PCI_INTX_GSI and described by _PRT).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amber/device.h"
#include "amber/log.h"
#include "amber/machine.h"
#include "amber/pci.h"

#define CF8_ENABLE           0x80000000u
#define CF8_KEEP             0x80fffffcu	/* reserved 30:24 and 1:0 read as 0 */

#define RCR_SYS_RST          0x02
#define RCR_RST_CPU          0x04

/* 440FX (82441FX datasheet §3.2) */
#define I440FX_PAM0          0x59
#define I440FX_SMRAM         0x72
/* PIIX3 function 0 (82371SB datasheet §2.2) */
#define PIIX3_PIRQRC         0x60		/* 0x60-0x63, bit 7 = routing disabled */

struct pci_host_regs {
	uint32_t config_address;
	uint8_t rcr;
};

static const struct state_field pci_host_fields[] = {
	STATE_U32(struct pci_host_regs, config_address),
	STATE_U8_MAX(struct pci_host_regs, rcr, RCR_SYS_RST),
	STATE_END
};

struct pci_host {
	struct machine *m;
	pthread_mutex_t lock;		/* CONFIG_ADDRESS and RCR */
	struct pci_host_regs r;
	struct pci_bus *bus;
	struct pci_dev host;		/* 00.0 */
	struct pci_dev isa;		/* 01.0 */
	bool host_added, isa_added, mapped;
};

static uint64_t ones(unsigned size)
{
	return size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
}

static uint64_t pci_host_read(void *opaque, uint64_t off, unsigned size)
{
	struct pci_host *h = opaque;
	uint32_t ca;

	if (off == 0 && size == 4) {
		pthread_mutex_lock(&h->lock);
		ca = h->r.config_address;
		pthread_mutex_unlock(&h->lock);
		return ca;
	}
	if (off == 1 && size == 1) {
		pthread_mutex_lock(&h->lock);
		ca = h->r.rcr;
		pthread_mutex_unlock(&h->lock);
		return ca;
	}
	if (off < 4 || off - 4 + size > 4)
		return ones(size);
	pthread_mutex_lock(&h->lock);
	ca = h->r.config_address;
	pthread_mutex_unlock(&h->lock);
	/* Disabled cycles and other buses end in master abort: all ones. */
	if (!(ca & CF8_ENABLE) || ((ca >> 16) & 0xff) != 0)
		return ones(size);
	return pci_bus_config_read(h->bus, (ca >> 8) & 0xff, (ca & 0xfc) + (off - 4), size);
}

static void pci_host_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	struct pci_host *h = opaque;
	bool reset = false;
	uint32_t ca;

	if (off == 0 && size == 4) {
		pthread_mutex_lock(&h->lock);
		h->r.config_address = val & CF8_KEEP;
		pthread_mutex_unlock(&h->lock);
		return;
	}
	if (off == 1 && size == 1) {
		pthread_mutex_lock(&h->lock);
		/* Like QEMU's PIIX: RST_CPU resets, hard or soft (a VM has no
		 * cheaper CPU-only reset); otherwise only SYS_RST is kept. */
		if (val & RCR_RST_CPU)
			reset = true;
		else
			h->r.rcr = val & RCR_SYS_RST;
		pthread_mutex_unlock(&h->lock);
		if (reset)
			machine_request(h->m, MACHINE_RESET);
		return;
	}
	if (off < 4 || off - 4 + size > 4)
		return;
	pthread_mutex_lock(&h->lock);
	ca = h->r.config_address;
	pthread_mutex_unlock(&h->lock);
	if (!(ca & CF8_ENABLE) || ((ca >> 16) & 0xff) != 0)
		return;
	pci_bus_config_write(h->bus, (ca >> 8) & 0xff, (ca & 0xfc) + (off - 4), (uint32_t)val, size);
}

static const struct bus_ops pci_host_ops = { .read = pci_host_read, .write = pci_host_write };

static void pci_host_init_bridges(struct pci_host *h)
{
	struct pci_dev *d = &h->host;

	pci_dev_init(d, "i440fx", 0x8086, 0x1237, 0x060000, 0x02);
	d->cfg[PCI_INTERRUPT_PIN] = 0;
	d->wmask[PCI_INTERRUPT_LINE] = 0;
	memset(d->wmask + 0x40, 0xff, PCI_CFG_SPACE_SIZE - 0x40);
	d->cfg[I440FX_SMRAM] = 0x02;		/* C_BASE_SEG = 010b: SMRAM at 0xa0000 */
	/*
	 * QEMU's subsystem IDs (Red Hat 1af4:1100): SeaBIOS's qemu_detect()
	 * reads them from 00:00.0 to know it runs on a QEMU-like platform.
	 */
	d->cfg[PCI_SUBSYSTEM_VENDOR_ID] = 0xf4;
	d->cfg[PCI_SUBSYSTEM_VENDOR_ID + 1] = 0x1a;
	d->cfg[PCI_SUBSYSTEM_ID] = 0x00;
	d->cfg[PCI_SUBSYSTEM_ID + 1] = 0x11;

	d = &h->isa;
	pci_dev_init(d, "piix3", 0x8086, 0x7000, 0x060100, 0x00);
	d->cfg[PCI_INTERRUPT_PIN] = 0;
	d->wmask[PCI_INTERRUPT_LINE] = 0;
	d->cfg[PCI_COMMAND] = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	d->cfg[PCI_STATUS + 1] = 0x02;		/* DEVSEL medium */
	memset(d->wmask + 0x40, 0xff, PCI_CFG_SPACE_SIZE - 0x40);
	/* PIIX3 power-on values (82371SB datasheet §2.2; QEMU piix3_reset) */
	d->cfg[0x4c] = 0x4d;			/* IORT */
	d->cfg[0x4e] = 0x03;			/* XBCS */
	for (int i = 0; i < 4; i++)
		d->cfg[PIIX3_PIRQRC + i] = 0x80;
	d->cfg[0x69] = 0x02;			/* TOM */
	d->cfg[0x70] = 0x80;			/* MBIRQ0 */
	d->cfg[0x76] = 0x0c;			/* MBDMA0 */
	d->cfg[0x77] = 0x0c;
	d->cfg[0x78] = 0x02;			/* PCSC */
	d->cfg[0xa0] = 0x08;			/* SMICNTL */
	d->cfg[0xa8] = 0x0f;			/* SMIREQ */
}

static void pci_host_unrealize(struct device *dev);

static int pci_host_realize(struct device *dev, struct machine *m, const char *args)
{
	static const char *const keys[] = { NULL };
	struct pci_host *h;
	char err[128];
	int ret;

	ret = opt_check_keys(args, keys, err, sizeof(err));
	if (ret < 0) {
		log_error(dev->id, "%s (pci_host takes no options)", err);
		return ret;
	}
	if (m->pci) {
		log_error(dev->id, "the machine already has a PCI host");
		return -EEXIST;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	pthread_mutex_init(&h->lock, NULL);
	h->m = m;
	dev->priv = h;
	h->bus = pci_bus_new(m);
	if (!h->bus) {
		ret = -ENOMEM;
		goto fail;
	}
	m->pci = h->bus;
	pci_host_init_bridges(h);
	ret = pci_bus_add(h->bus, &h->host, PCI_DEVFN(0, 0));
	if (ret < 0)
		goto fail;
	h->host_added = true;
	ret = pci_bus_add(h->bus, &h->isa, PCI_DEVFN(1, 0));
	if (ret < 0)
		goto fail;
	h->isa_added = true;
	ret = bus_register(&m->pio, PORT_PCI_CONFIG, 8, &pci_host_ops, h, "pci_host");
	if (ret < 0) {
		log_error(dev->id, "ports %#x-%#x: %s", PORT_PCI_CONFIG, PORT_PCI_CONFIG + 7,
			  ret == -EEXIST ? "already used by another device" : strerror(-ret));
		goto fail;
	}
	h->mapped = true;
	return 0;
fail:
	pci_host_unrealize(dev);
	return ret;
}

static void pci_host_unrealize(struct device *dev)
{
	struct pci_host *h = dev->priv;

	if (!h)
		return;
	if (h->mapped)
		bus_unregister(&h->m->pio, PORT_PCI_CONFIG, h);
	if (h->isa_added)
		pci_bus_remove(h->bus, &h->isa);
	if (h->host_added)
		pci_bus_remove(h->bus, &h->host);
	if (h->bus) {
		/* Devices realized later and not yet gone are detached here. */
		pci_bus_free(h->bus);
		if (h->m->pci == h->bus)
			h->m->pci = NULL;
	}
	pthread_mutex_destroy(&h->lock);
	free(h);
	dev->priv = NULL;
}

static void pci_host_reset(struct device *dev)
{
	struct pci_host *h = dev->priv;

	pthread_mutex_lock(&h->lock);
	h->r.config_address = 0;
	h->r.rcr = 0;
	pthread_mutex_unlock(&h->lock);
	pci_dev_reset(&h->host);
	pci_dev_reset(&h->isa);
}

static int pci_host_save(struct device *dev, json_t *obj)
{
	struct pci_host *h = dev->priv;
	json_t *host = json_object(), *isa = json_object();
	int ret = -ENOMEM;

	if (!host || !isa)
		goto out;
	pthread_mutex_lock(&h->lock);
	ret = state_fields_save(pci_host_fields, &h->r, obj);
	pthread_mutex_unlock(&h->lock);
	if (ret == 0)
		ret = pci_dev_save(&h->host, host);
	if (ret == 0)
		ret = pci_dev_save(&h->isa, isa);
	if (ret == 0 && (json_object_set(obj, "host_bridge", host) ||
			 json_object_set(obj, "isa_bridge", isa)))
		ret = -ENOMEM;
out:
	json_decref(host);
	json_decref(isa);
	return ret;
}

static int pci_host_check(const json_t *obj, uint32_t version, char *err, size_t errlen)
{
	static const char *const subs[] = { "host_bridge", "isa_bridge" };
	char sub[200];
	int ret;

	ret = state_fields_check(pci_host_fields, obj, version, err, errlen);
	if (ret < 0)
		return ret;
	for (int i = 0; i < 2; i++) {
		const json_t *o = json_object_get(obj, subs[i]);

		if (!o) {
			snprintf(err, errlen, "%s: missing", subs[i]);
			return -EINVAL;
		}
		if (pci_dev_check(o, sub, sizeof(sub)) < 0) {
			snprintf(err, errlen, "%s: %s", subs[i], sub);
			return -EINVAL;
		}
	}
	return 0;
}

static int pci_host_match(struct device *dev, const json_t *obj, char *err, size_t errlen)
{
	struct pci_host *h = dev->priv;
	char sub[200];

	if (pci_dev_match(&h->host, json_object_get(obj, "host_bridge"), sub, sizeof(sub)) < 0) {
		snprintf(err, errlen, "host_bridge.%s", sub);
		return -EINVAL;
	}
	if (pci_dev_match(&h->isa, json_object_get(obj, "isa_bridge"), sub, sizeof(sub)) < 0) {
		snprintf(err, errlen, "isa_bridge.%s", sub);
		return -EINVAL;
	}
	return 0;
}

static int pci_host_load(struct device *dev, const json_t *obj, uint32_t version)
{
	struct pci_host *h = dev->priv;
	struct pci_host_regs r;
	int ret;

	pthread_mutex_lock(&h->lock);
	r = h->r;
	ret = state_fields_load(pci_host_fields, &r, obj, version);
	if (ret == 0)
		h->r = (struct pci_host_regs){ r.config_address & CF8_KEEP, r.rcr & RCR_SYS_RST };
	pthread_mutex_unlock(&h->lock);
	if (ret == 0)
		ret = pci_dev_load(&h->host, json_object_get(obj, "host_bridge"));
	if (ret == 0)
		ret = pci_dev_load(&h->isa, json_object_get(obj, "isa_bridge"));
	return ret;
}

static const struct device_class pci_host_class = {
	.name = "pci_host",
	.state_version = 1,
	.realize = pci_host_realize,
	.unrealize = pci_host_unrealize,
	.reset = pci_host_reset,
	.save = pci_host_save,
	.check = pci_host_check,
	.match = pci_host_match,
	.load = pci_host_load,
};
DEVICE_CLASS(pci_host_class);
