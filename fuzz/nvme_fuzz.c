/*
 * libFuzzer target: the NVMe controller driven by arbitrary register writes,
 * doorbells, admin and I/O commands and guest-RAM contents (queue entries,
 * PRP lists, DSM ranges). Whatever the input, amber must not crash, hang or
 * trip a sanitizer.
 *
 * Input: a sequence of operations, each starting with an opcode byte:
 *   0 reg   : u16 offset, u32 value      -> BAR0 write (registers, doorbells)
 *   1 admin : 64-byte command            -> admin SQ, doorbell
 *   2 io    : 64-byte command            -> I/O SQ 1, doorbell
 *   3 ram   : u16 page, u16 off, u8 n, n bytes -> guest RAM
 *   4 poll                                -> deliver block completions
 *   5 setup                               -> enable + I/O queue pair 1
 *   6 cfg   : u8 offset, u32 value       -> PCI config write
 *   7 quiesce, save, check, load, resume
 *   8 read  : u16 offset                  -> BAR0 read
 * PRP and queue addresses in commands are folded into guest RAM half the
 * time so that the deep paths are reached.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amber/device.h"
#include "amber/machine.h"
#include "amber/pci.h"
#include "hw/nvme/nvme.h"

#define RAM_SIZE   (1u << 20)
#define ASQ        0x10000
#define ACQ        0x11000
#define IOSQ       0x12000
#define IOCQ       0x13000

static struct machine m;
static uint8_t *ram;
static struct device *dev;
static struct nvme_ctrl *ctrl;
static uint64_t bar0;
static uint16_t asq_tail, iosq_tail;

static int fuzz_set_line(struct irq_chip *c, unsigned gsi, int level) { return 0; }
static int fuzz_send_msi(struct irq_chip *c, uint64_t a, uint32_t d) { return 0; }
static struct irq_chip irq = { .set_line = fuzz_set_line, .send_msi = fuzz_send_msi };

static void fuzz_init(void)
{
	char path[] = "/tmp/amber-nvme-fuzz-XXXXXX", args[64], err[256];
	int fd = mkstemp(path);

	if (fd < 0 || ftruncate(fd, 1 << 20) < 0)
		abort();
	close(fd);
	ram = aligned_alloc(4096, RAM_SIZE);
	bus_init(&m.pio, "pio");
	bus_init(&m.mmio, "mmio");
	gmem_init_buffer(&m.mem, ram, RAM_SIZE);
	m.irq = &irq;
	m.ncpus = 1;
	m.pci = pci_bus_new(&m);
	snprintf(args, sizeof(args), "path=%s", path);
	if (device_create(&m, "nvme", "nvme0", args, &dev, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	unlink(path);		/* stays open */
	ctrl = dev->priv;
	pci_bus_config_write(m.pci, (unsigned)ctrl->pci.devfn, PCI_COMMAND,
			     PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	bar0 = ctrl->pci.bars[0].addr;
}

static void wr(uint64_t off, uint32_t v)
{
	bus_write(&m.mmio, bar0 + off, 4, v);
}

static void fold_addrs(struct nvme_cmd *c)
{
	if (!(c->rsvd2 & 1))
		return;
	c->prp1 %= RAM_SIZE;
	c->prp2 %= RAM_SIZE;
	if (c->rsvd2 & 2)
		c->prp2 &= ~0xfffULL;
	if (c->rsvd2 & 4)
		c->cdw12 &= 0xff;	/* small transfers */
}

static void setup(void)
{
	struct nvme_cmd c;

	wr(NVME_REG_AQA, 0x000f000f);
	wr(NVME_REG_ASQ, ASQ);
	wr(NVME_REG_ASQ + 4, 0);
	wr(NVME_REG_ACQ, ACQ);
	wr(NVME_REG_ACQ + 4, 0);
	wr(NVME_REG_CC, NVME_CC_EN | 6u << 16 | 4u << 20);
	asq_tail = iosq_tail = 0;
	memset(&c, 0, sizeof(c));
	c.opc = NVME_ADM_CREATE_CQ;
	c.prp1 = IOCQ;
	c.cdw10 = 15u << 16 | 1;
	c.cdw11 = 1u << 16 | 3;
	memcpy(ram + ASQ + 64 * asq_tail, &c, 64);
	asq_tail = (asq_tail + 1) % 16;
	c.opc = NVME_ADM_CREATE_SQ;
	c.prp1 = IOSQ;
	c.cdw11 = 1u << 16 | 1;
	memcpy(ram + ASQ + 64 * asq_tail, &c, 64);
	asq_tail = (asq_tail + 1) % 16;
	wr(NVME_REG_DBS, asq_tail);
}

static void roundtrip(void)
{
	json_t *obj = json_object();
	char err[256];

	dev->cls->quiesce(dev);
	if (obj && dev->cls->save(dev, obj) == 0 &&
	    nvme_check(obj, NVME_STATE_VERSION, err, sizeof(err)) == 0)
		dev->cls->load(dev, obj, NVME_STATE_VERSION);
	json_decref(obj);
	dev->cls->resume(dev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t i = 0;

	if (!dev)
		fuzz_init();
	dev->cls->reset(dev);
	pci_bus_config_write(m.pci, (unsigned)ctrl->pci.devfn, PCI_COMMAND,
			     PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	memset(ram, 0, RAM_SIZE);

	while (i < size) {
		uint8_t op = data[i++] % 9;
		struct nvme_cmd c;
		uint16_t off;
		uint32_t v;

		switch (op) {
		case 0:
			if (size - i < 6)
				return 0;
			memcpy(&off, data + i, 2);
			memcpy(&v, data + i + 2, 4);
			i += 6;
			bus_write(&m.mmio, bar0 + (off % NVME_BAR0_SIZE & ~3u), 4, v);
			break;
		case 1:
		case 2:
			if (size - i < sizeof(c))
				return 0;
			memcpy(&c, data + i, sizeof(c));
			i += sizeof(c);
			fold_addrs(&c);
			if (op == 1) {
				memcpy(ram + ASQ + 64 * asq_tail, &c, 64);
				asq_tail = (asq_tail + 1) % 16;
				wr(NVME_REG_DBS, asq_tail);
			} else {
				memcpy(ram + IOSQ + 64 * iosq_tail, &c, 64);
				iosq_tail = (iosq_tail + 1) % 16;
				wr(NVME_REG_DBS + 8, iosq_tail);
			}
			break;
		case 3: {
			uint16_t page, o;
			uint8_t n;

			if (size - i < 5)
				return 0;
			memcpy(&page, data + i, 2);
			memcpy(&o, data + i + 2, 2);
			n = data[i + 4];
			i += 5;
			if (size - i < n)
				return 0;
			page %= RAM_SIZE / 4096;
			o %= 4096;
			if (o + n > 4096)
				n = (uint8_t)(4096 - o);
			memcpy(ram + page * 4096 + o, data + i, n);
			i += n;
			break;
		}
		case 4:
			nvme_poll(dev);
			break;
		case 5:
			setup();
			break;
		case 6:
			if (size - i < 5)
				return 0;
			memcpy(&v, data + i + 1, 4);
			pci_bus_config_write(m.pci, (unsigned)ctrl->pci.devfn, data[i] & 0xfc, v, 4);
			i += 5;
			bar0 = ctrl->pci.bars[0].addr;
			break;
		case 7:
			roundtrip();
			break;
		case 8: {
			uint64_t val;

			if (size - i < 2)
				return 0;
			memcpy(&off, data + i, 2);
			i += 2;
			bus_read(&m.mmio, bar0 + (off % NVME_BAR0_SIZE), 4, &val);
			break;
		}
		}
	}
	/* Finish whatever is in flight so the next input starts clean. */
	dev->cls->quiesce(dev);
	dev->cls->resume(dev);
	return 0;
}
