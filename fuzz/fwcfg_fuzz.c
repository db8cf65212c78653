/*
 * libFuzzer target: the fw_cfg device (src/hw/fw_cfg.c) driven through its
 * port and DMA interface by arbitrary accesses and guest-RAM contents, the
 * way a hostile or buggy firmware could. Whatever the input, amber must not
 * crash, hang, touch host memory outside guest RAM or trip a sanitizer, and
 * a DMA transfer whose descriptor lies in RAM must end with its control word
 * 0 or FW_CFG_DMA_CTL_ERROR (QEMU docs/specs/fw_cfg.rst "DMA interface").
 *
 * Guest RAM is two slots with a hole between them, [0, 64 KiB) and
 * [128 KiB, 192 KiB), so transfers can cross slot ends and the hole.
 *
 * Input: a sequence of operations, each starting with an opcode byte:
 *   0 select : u16 key                     -> 16-bit write to 0x510
 *   1 data   : u8 n                        -> n 8-bit reads of 0x511
 *   2 out    : u8 port, u8 size, u32 value -> any write to 0x510-0x51b
 *   3 in     : u8 port, u8 size            -> any read of 0x510-0x51b
 *   4 dma    : u8 flags, u32 desc, u32 control, u32 length, u32 addr
 *              -> descriptor written to RAM at desc (if it fits), then the
 *                 DMA address written (high half, low half); flags pick
 *                 whether desc/addr are folded into RAM and whether the
 *                 high halves are non-zero
 *   5 ram    : u32 gpa, u8 n, n bytes     -> guest RAM contents
 *   6 save, check, load, reset
 */
#include <endian.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amber/device.h"
#include "amber/fw_cfg.h"
#include "amber/machine.h"

#define SLOT_SIZE   0x10000u
#define SLOT1_GPA   0x20000u
#define GPA_SPAN    0x40000u		/* addresses folded into [0, 256 KiB) */

static struct machine m;
static uint8_t *ram0, *ram1;
static struct device *dev;

static void fuzz_add(int ret, const char *what)
{
	if (ret < 0) {
		fprintf(stderr, "fwcfg_fuzz: adding %s: %d\n", what, ret);
		abort();
	}
}

static void fuzz_init(void)
{
	static uint8_t big[70000], kernel[5000];
	char err[256];

	ram0 = aligned_alloc(4096, SLOT_SIZE);
	ram1 = aligned_alloc(4096, SLOT_SIZE);
	if (!ram0 || !ram1)
		abort();
	bus_init(&m.pio, "pio");
	bus_init(&m.mmio, "mmio");
	m.mem.slots[0] = (struct gmem_slot){ 0, SLOT_SIZE, ram0 };
	m.mem.slots[1] = (struct gmem_slot){ SLOT1_GPA, SLOT_SIZE, ram1 };
	m.mem.nslots = 2;
	m.mem.ram_size = 2 * SLOT_SIZE;
	m.mem.memfd = -1;
	m.ncpus = 1;
	if (device_create(&m, "fw_cfg", "fw_cfg", NULL, &dev, err, sizeof(err)) < 0) {
		fprintf(stderr, "fwcfg_fuzz: %s\n", err);
		abort();
	}
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7 + 1);
	memset(kernel, 0x5a, sizeof(kernel));
	/* What the platform offers: machine items, files of every size, an empty one. */
	fuzz_add(fw_cfg_x86_add_machine(dev, &m.mem, 2), "machine items");
	fuzz_add(fw_cfg_add_bytes(dev, FW_CFG_KERNEL_DATA, kernel, sizeof(kernel)), "kernel data");
	fuzz_add(fw_cfg_add_i32(dev, FW_CFG_KERNEL_SIZE, sizeof(kernel)), "kernel size");
	fuzz_add(fw_cfg_add_string(dev, FW_CFG_CMDLINE_DATA, "console=ttyS0"), "cmdline");
	fuzz_add(fw_cfg_add_file(dev, "etc/big", big, sizeof(big)), "etc/big");
	fuzz_add(fw_cfg_add_file(dev, "bootorder", "/rom@genroms/linuxboot_dma.bin", 31), "bootorder");
	fuzz_add(fw_cfg_add_file(dev, "opt/empty", "", 0), "opt/empty");
}

/* Host pointer for [gpa, gpa + len) inside one slot, else NULL. */
static uint8_t *ram_at(uint64_t gpa, uint64_t len)
{
	if (gpa < SLOT_SIZE && len <= SLOT_SIZE - gpa)
		return ram0 + gpa;
	if (gpa >= SLOT1_GPA && gpa - SLOT1_GPA < SLOT_SIZE && len <= SLOT_SIZE - (gpa - SLOT1_GPA))
		return ram1 + (gpa - SLOT1_GPA);
	return NULL;
}

struct input {
	const uint8_t *p;
	size_t left;
};

static uint64_t take(struct input *in, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n && in->left; i++, in->left--, in->p++)
		v |= (uint64_t)*in->p << (8 * i);
	return v;
}

static unsigned access_size(uint8_t s)
{
	static const unsigned sizes[] = { 1, 2, 4, 8 };

	return sizes[s & 3];
}

static void fuzz_dma(struct input *in)
{
	uint8_t flags = (uint8_t)take(in, 1);
	uint64_t desc = take(in, 4), addr;
	struct fw_cfg_dma_access d;
	uint8_t *where;
	uint32_t back;

	d.control = htobe32((uint32_t)take(in, 4));
	d.length = htobe32((uint32_t)take(in, 4));
	addr = take(in, 4);
	if (flags & 1)
		desc %= GPA_SPAN;
	if (flags & 2)
		addr %= GPA_SPAN;
	if (flags & 4)
		addr |= (uint64_t)(flags >> 4) << 32;	/* beyond 4 GiB: never RAM here */
	if (flags & 8)
		desc |= 1ULL << 32;
	d.address = htobe64(addr);
	where = ram_at(desc, sizeof(d));
	if (where)
		memcpy(where, &d, sizeof(d));
	bus_write(&m.pio, PORT_FW_CFG_DMA, 4, htobe32((uint32_t)(desc >> 32)));
	bus_write(&m.pio, PORT_FW_CFG_DMA + 4, 4, htobe32((uint32_t)desc));
	if (where) {
		memcpy(&back, where, sizeof(back));
		back = be32toh(back);
		if (back != 0 && back != FW_CFG_DMA_CTL_ERROR) {
			fprintf(stderr, "fwcfg_fuzz: DMA at %#llx ended with control %#x\n",
				(unsigned long long)desc, back);
			abort();
		}
	}
}

static void fuzz_roundtrip(void)
{
	json_t *obj = json_object();
	char err[256];

	if (!obj)
		return;
	if (dev->cls->save(dev, obj) == 0 &&
	    dev->cls->check(obj, dev->cls->state_version, err, sizeof(err)) == 0 &&
	    dev->cls->load(dev, obj, dev->cls->state_version) < 0) {
		fprintf(stderr, "fwcfg_fuzz: saved state checks but does not load\n");
		abort();
	}
	json_decref(obj);
	dev->cls->reset(dev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	uint64_t v;

	if (!dev)
		fuzz_init();
	dev->cls->reset(dev);
	memset(ram0, 0, SLOT_SIZE);
	memset(ram1, 0, SLOT_SIZE);
	while (in.left) {
		switch (take(&in, 1) % 7) {
		case 0:
			bus_write(&m.pio, PORT_FW_CFG, 2, take(&in, 2));
			break;
		case 1:
			for (unsigned n = (unsigned)take(&in, 1); n; n--)
				bus_read(&m.pio, PORT_FW_CFG + 1, 1, &v);
			break;
		case 2: {
			unsigned port = PORT_FW_CFG + (unsigned)take(&in, 1) % 12;
			unsigned sz = access_size((uint8_t)take(&in, 1));

			bus_write(&m.pio, port, sz, take(&in, 4));
			break;
		}
		case 3: {
			unsigned port = PORT_FW_CFG + (unsigned)take(&in, 1) % 12;

			bus_read(&m.pio, port, access_size((uint8_t)take(&in, 1)), &v);
			break;
		}
		case 4:
			fuzz_dma(&in);
			break;
		case 5: {
			uint64_t gpa = take(&in, 4) % GPA_SPAN;
			unsigned n = (unsigned)take(&in, 1);
			uint8_t *dst = ram_at(gpa, n);

			for (unsigned i = 0; i < n; i++) {
				uint8_t b = (uint8_t)take(&in, 1);

				if (dst)
					dst[i] = b;
			}
			break;
		}
		case 6:
			fuzz_roundtrip();
			break;
		}
	}
	return 0;
}
