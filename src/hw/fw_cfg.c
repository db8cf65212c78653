/*
 * fw_cfg: QEMU's firmware configuration device (QEMU docs/specs/fw_cfg.rst,
 * hw/nvram/fw_cfg.c), I/O port flavour with DMA, as on QEMU's pc machine:
 *
 *   0x510  16-bit write: select an item (resets the read offset)
 *   0x510, 0x511  8-bit read: the next byte of the selected item; 0 past
 *          its end or when nothing valid is selected
 *   0x514-0x51b  DMA address register, big endian. A 32-bit write at 0x514
 *          latches the high half, one at 0x518 the low half and runs the
 *          transfer; the register is cleared afterwards (SeaBIOS writes the
 *          low half only). Reads return "QEMU CFG".
 *
 * A DMA transfer reads the 16-byte FWCfgDmaAccess at that address, selects
 * (SELECT, selector in control 31:16), then READs (copies item bytes to
 * guest memory; past the item's end it writes zeros), SKIPs (advances the
 * offset) or WRITEs (every item here is read-only: ERROR), and writes the
 * control word back: 0 when done, FW_CFG_DMA_CTL_ERROR on failure. Every
 * guest address is checked with gmem_*: a descriptor or buffer outside RAM
 * ends the transfer with the ERROR bit, like QEMU's dma_memory_* failures.
 *
 * Writes to the data port are ignored, as in QEMU since 2.4.
 *
 * args: dma=on|off (default on; off hides the DMA registers and the ID bit,
 * for tests of the port interface).
 */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amber/device.h"
#include "amber/fw_cfg.h"
#include "amber/log.h"
#include "amber/machine.h"

#define FW_CFG_CTL_LEN   2	/* 0x510-0x511 */
#define FW_CFG_DMA_LEN   8	/* 0x514-0x51b */

struct fw_cfg_entry {
	uint8_t *data;
	uint32_t len;
};

/* Architectural state: exactly what is saved (see fw_cfg_fields). */
struct fw_cfg_regs {
	uint16_t cur_entry;		/* last selector written, FW_CFG_INVALID if bad */
	uint32_t cur_offset;		/* next byte of the selected item */
	uint64_t dma_addr;		/* latched high half (low half 0 between writes) */
};

static const struct state_field fw_cfg_fields[] = {
	STATE_U16(struct fw_cfg_regs, cur_entry),
	STATE_U32(struct fw_cfg_regs, cur_offset),
	STATE_U64(struct fw_cfg_regs, dma_addr),
	STATE_END,
};

struct fw_cfg {
	pthread_mutex_t lock;
	struct machine *m;
	struct fw_cfg_regs r;
	bool dma;
	bool ports_registered, dma_registered;
	/* [0] generic keys, [1] FW_CFG_ARCH_LOCAL keys */
	struct fw_cfg_entry entries[2][FW_CFG_MAX_ENTRY];
	/* files in name order; file i has the key FW_CFG_FILE_FIRST + i */
	char names[FW_CFG_FILE_SLOTS][FW_CFG_MAX_FILE_PATH];
	int nfiles;
};

static const struct device_class fw_cfg_class;

static struct fw_cfg *fw_cfg_of(struct device *dev)
{
	if (!dev || dev->cls != &fw_cfg_class || !dev->priv)
		return NULL;
	return dev->priv;
}

/* The entry a selector names, or NULL (invalid key). */
static struct fw_cfg_entry *fw_cfg_entry_of(struct fw_cfg *s, uint16_t key)
{
	if (key == FW_CFG_INVALID || (key & FW_CFG_ENTRY_MASK) >= FW_CFG_MAX_ENTRY)
		return NULL;
	return &s->entries[!!(key & FW_CFG_ARCH_LOCAL)][key & FW_CFG_ENTRY_MASK];
}

/* ---- item table --------------------------------------------------------- */

static void fw_cfg_set(struct fw_cfg_entry *e, void *data, size_t len)
{
	free(e->data);
	e->data = data;
	e->len = (uint32_t)len;
}

/* The directory: be32 count, then one struct fw_cfg_file per file. */
static int fw_cfg_rebuild_dir(struct fw_cfg *s)
{
	size_t len = 4 + (size_t)s->nfiles * sizeof(struct fw_cfg_file);
	uint8_t *dir = calloc(1, len);
	uint32_t count = htobe32((uint32_t)s->nfiles);

	if (!dir)
		return -ENOMEM;
	memcpy(dir, &count, 4);
	for (int i = 0; i < s->nfiles; i++) {
		struct fw_cfg_file f;

		memset(&f, 0, sizeof(f));
		f.size = htobe32(s->entries[0][FW_CFG_FILE_FIRST + i].len);
		f.select = htobe16((uint16_t)(FW_CFG_FILE_FIRST + i));
		memcpy(f.name, s->names[i], sizeof(f.name));
		memcpy(dir + 4 + (size_t)i * sizeof(f), &f, sizeof(f));
	}
	fw_cfg_set(&s->entries[0][FW_CFG_FILE_DIR], dir, len);
	return 0;
}

int fw_cfg_add_bytes_take(struct device *dev, uint16_t key, void *data, size_t len)
{
	struct fw_cfg *s = fw_cfg_of(dev);
	struct fw_cfg_entry *e;
	int ret = 0;

	if (!s || (key & FW_CFG_WRITE_CHANNEL) || (key & FW_CFG_ENTRY_MASK) >= FW_CFG_FILE_FIRST ||
	    key == FW_CFG_FILE_DIR || len > UINT32_MAX) {
		free(data);
		return -EINVAL;
	}
	pthread_mutex_lock(&s->lock);
	e = fw_cfg_entry_of(s, key);
	if (e->data || e->len) {
		ret = -EEXIST;
		free(data);
	} else {
		fw_cfg_set(e, data, len);
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int fw_cfg_add_bytes(struct device *dev, uint16_t key, const void *data, size_t len)
{
	void *copy = malloc(len ? len : 1);

	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, data, len);
	return fw_cfg_add_bytes_take(dev, key, copy, len);
}

int fw_cfg_add_i16(struct device *dev, uint16_t key, uint16_t value)
{
	uint16_t le = htole16(value);

	return fw_cfg_add_bytes(dev, key, &le, sizeof(le));
}

int fw_cfg_add_i32(struct device *dev, uint16_t key, uint32_t value)
{
	uint32_t le = htole32(value);

	return fw_cfg_add_bytes(dev, key, &le, sizeof(le));
}

int fw_cfg_add_i64(struct device *dev, uint16_t key, uint64_t value)
{
	uint64_t le = htole64(value);

	return fw_cfg_add_bytes(dev, key, &le, sizeof(le));
}

int fw_cfg_add_string(struct device *dev, uint16_t key, const char *str)
{
	return fw_cfg_add_bytes(dev, key, str, strlen(str) + 1);
}

/*
 * Files are kept sorted by name (strcmp) and their keys follow that order,
 * as in QEMU's fw_cfg_add_file_callback() for current machine types: an
 * insertion moves the later files one key up.
 */
int fw_cfg_add_file_take(struct device *dev, const char *name, void *data, size_t len)
{
	struct fw_cfg *s = fw_cfg_of(dev);
	int ret = 0, idx;

	if (!s || !name || !*name || strlen(name) >= FW_CFG_MAX_FILE_PATH || len > UINT32_MAX) {
		free(data);
		return -EINVAL;
	}
	pthread_mutex_lock(&s->lock);
	if (s->nfiles == FW_CFG_FILE_SLOTS) {
		ret = -ENOSPC;
		goto out;
	}
	for (idx = 0; idx < s->nfiles; idx++) {
		int c = strcmp(name, s->names[idx]);

		if (c == 0) {
			ret = -EEXIST;
			goto out;
		}
		if (c < 0)
			break;
	}
	memmove(&s->names[idx + 1], &s->names[idx], (size_t)(s->nfiles - idx) * sizeof(s->names[0]));
	memmove(&s->entries[0][FW_CFG_FILE_FIRST + idx + 1], &s->entries[0][FW_CFG_FILE_FIRST + idx],
		(size_t)(s->nfiles - idx) * sizeof(struct fw_cfg_entry));
	memset(s->names[idx], 0, sizeof(s->names[idx]));
	strcpy(s->names[idx], name);
	s->entries[0][FW_CFG_FILE_FIRST + idx] = (struct fw_cfg_entry){ data, (uint32_t)len };
	data = NULL;
	s->nfiles++;
	ret = fw_cfg_rebuild_dir(s);
out:
	pthread_mutex_unlock(&s->lock);
	free(data);
	return ret;
}

int fw_cfg_add_file(struct device *dev, const char *name, const void *data, size_t len)
{
	void *copy = malloc(len ? len : 1);

	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, data, len);
	return fw_cfg_add_file_take(dev, name, copy, len);
}

int fw_cfg_file_key(struct device *dev, const char *name)
{
	struct fw_cfg *s = fw_cfg_of(dev);
	int ret = -ENOENT;

	if (!s)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < s->nfiles; i++)
		if (!strcmp(s->names[i], name))
			ret = FW_CFG_FILE_FIRST + i;
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/* ---- port interface ----------------------------------------------------- */

static void fw_cfg_select(struct fw_cfg *s, uint16_t key)
{
	s->r.cur_offset = 0;
	s->r.cur_entry = fw_cfg_entry_of(s, key) ? key : FW_CFG_INVALID;
}

static uint8_t fw_cfg_read_byte(struct fw_cfg *s)
{
	struct fw_cfg_entry *e = fw_cfg_entry_of(s, s->r.cur_entry);

	if (!e || !e->data || s->r.cur_offset >= e->len)
		return 0;
	return e->data[s->r.cur_offset++];
}

static uint64_t fw_cfg_ctl_read(void *opaque, uint64_t off, unsigned size)
{
	struct fw_cfg *s = opaque;
	uint64_t v = 0;

	/* The data register is 8 bits wide; QEMU rejects wider accesses. */
	if (size != 1)
		return 0;
	pthread_mutex_lock(&s->lock);
	v = fw_cfg_read_byte(s);
	pthread_mutex_unlock(&s->lock);
	return v;
}

static void fw_cfg_ctl_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	struct fw_cfg *s = opaque;

	if (off != 0 || size != 2) {
		log_debug("fw_cfg", "ignored %u-byte write %#llx at offset %llu", size,
			  (unsigned long long)val, (unsigned long long)off);
		return;
	}
	pthread_mutex_lock(&s->lock);
	fw_cfg_select(s, (uint16_t)val);
	pthread_mutex_unlock(&s->lock);
}

static const struct bus_ops fw_cfg_ctl_ops = {
	.read = fw_cfg_ctl_read,
	.write = fw_cfg_ctl_write,
};

/* ---- DMA ---------------------------------------------------------------- */

/* Zero [gpa, gpa+len) of guest RAM; the caller checked it is all RAM. */
static void fw_cfg_zero_ram(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	while (len) {
		const struct gmem_slot *sl = NULL;
		uint64_t n;

		for (int i = 0; i < gm->nslots && !sl; i++)
			if (gpa >= gm->slots[i].gpa && gpa - gm->slots[i].gpa < gm->slots[i].size)
				sl = &gm->slots[i];
		if (!sl)
			return;
		n = sl->size - (gpa - sl->gpa);
		if (n > len)
			n = len;
		memset(sl->host + (gpa - sl->gpa), 0, n);
		gpa += n;
		len -= n;
	}
}

static void fw_cfg_dma_transfer(struct fw_cfg *s, uint64_t desc_gpa)
{
	const struct guest_mem *gm = &s->m->mem;
	struct fw_cfg_dma_access dma;
	struct fw_cfg_entry *e;
	uint64_t addr;
	uint32_t control, length, status = 0;
	bool read = false, write = false;

	if (gmem_read(gm, desc_gpa, &dma, sizeof(dma)) < 0) {
		uint32_t err = htobe32(FW_CFG_DMA_CTL_ERROR);

		log_debug("fw_cfg", "DMA descriptor at %#llx is not in RAM", (unsigned long long)desc_gpa);
		gmem_write(gm, desc_gpa, &err, sizeof(err));
		return;
	}
	control = be32toh(dma.control);
	length = be32toh(dma.length);
	addr = be64toh(dma.address);

	if (control & FW_CFG_DMA_CTL_SELECT)
		fw_cfg_select(s, (uint16_t)(control >> 16));
	e = fw_cfg_entry_of(s, s->r.cur_entry);

	/* fw_cfg.rst: READ wins over WRITE over SKIP; none of them: nothing. */
	if (control & FW_CFG_DMA_CTL_READ)
		read = true;
	else if (control & FW_CFG_DMA_CTL_WRITE)
		write = true;
	else if (!(control & FW_CFG_DMA_CTL_SKIP))
		length = 0;

	if (write && length) {
		/* No item amber offers is writable (QEMU: !allow_write). */
		status = FW_CFG_DMA_CTL_ERROR;
		length = 0;
	}
	while (length && !status) {
		uint32_t avail = 0, n;

		if (e && e->data && s->r.cur_offset < e->len)
			avail = e->len - s->r.cur_offset;
		if (!avail) {
			/* Past the end: a read gets zeros (QEMU dma_memory_set). */
			if (read) {
				if (!gmem_is_ram(gm, addr, length))
					status = FW_CFG_DMA_CTL_ERROR;
				else
					fw_cfg_zero_ram(gm, addr, length);
			}
			break;
		}
		n = length < avail ? length : avail;
		if (read && gmem_write(gm, addr, e->data + s->r.cur_offset, n) < 0) {
			status = FW_CFG_DMA_CTL_ERROR;
			break;
		}
		s->r.cur_offset += n;
		addr += n;
		length -= n;
	}
	if (status)
		log_debug("fw_cfg", "DMA control %#x length %u address %#llx failed", control,
			  be32toh(dma.length), (unsigned long long)be64toh(dma.address));
	status = htobe32(status);
	gmem_write(gm, desc_gpa, &status, sizeof(status));
}

static uint64_t fw_cfg_dma_read(void *opaque, uint64_t off, unsigned size)
{
	uint64_t v = 0;

	/* Big endian register: byte i of "QEMU CFG" at offset i. */
	for (unsigned i = 0; i < size && off + i < FW_CFG_DMA_LEN; i++)
		v |= ((FW_CFG_DMA_SIGNATURE >> (8 * (7 - (off + i)))) & 0xff) << (8 * i);
	return v;
}

static void fw_cfg_dma_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	struct fw_cfg *s = opaque;
	uint64_t desc;

	if (size != 4 || (off != 0 && off != 4)) {
		log_debug("fw_cfg", "ignored %u-byte DMA register write at offset %llu", size,
			  (unsigned long long)off);
		return;
	}
	/* The port bytes are the big-endian register bytes. */
	val = be32toh((uint32_t)val);
	pthread_mutex_lock(&s->lock);
	if (off == 0) {
		s->r.dma_addr = val << 32;
	} else {
		desc = s->r.dma_addr | val;
		/* Cleared before the next access, as QEMU does. */
		s->r.dma_addr = 0;
		fw_cfg_dma_transfer(s, desc);
	}
	pthread_mutex_unlock(&s->lock);
}

static const struct bus_ops fw_cfg_dma_ops = {
	.read = fw_cfg_dma_read,
	.write = fw_cfg_dma_write,
};

/* ---- device ------------------------------------------------------------- */

static void fw_cfg_free(struct fw_cfg *s)
{
	for (int a = 0; a < 2; a++)
		for (int i = 0; i < FW_CFG_MAX_ENTRY; i++)
			free(s->entries[a][i].data);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static void fw_cfg_unrealize(struct device *dev)
{
	struct fw_cfg *s = dev->priv;

	if (!s)
		return;
	if (s->ports_registered)
		bus_unregister(&s->m->pio, PORT_FW_CFG, s);
	if (s->dma_registered)
		bus_unregister(&s->m->pio, PORT_FW_CFG_DMA, s);
	fw_cfg_free(s);
	dev->priv = NULL;
}

static int fw_cfg_realize(struct device *dev, struct machine *m, const char *args)
{
	static const char *const keys[] = { "dma", NULL };
	static const uint8_t uuid[16];	/* QEMU's default: no -uuid, all zero */
	char err[256], buf[8] = "on";
	struct fw_cfg *s;
	int ret;

	ret = opt_check_keys(args, keys, err, sizeof(err));
	if (ret < 0) {
		log_error(dev->id, "%s (known: dma)", err);
		return ret;
	}
	if (opt_get(args, "dma", buf, sizeof(buf)) < 0 || (strcmp(buf, "on") && strcmp(buf, "off"))) {
		log_error(dev->id, "dma=%s: want on or off", buf);
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	s->m = m;
	s->dma = !strcmp(buf, "on");
	s->r.cur_entry = FW_CFG_SIGNATURE;
	dev->priv = s;

	ret = fw_cfg_add_bytes(dev, FW_CFG_SIGNATURE, "QEMU", 4);
	if (!ret)
		ret = fw_cfg_add_i32(dev, FW_CFG_ID, FW_CFG_VERSION | (s->dma ? FW_CFG_VERSION_DMA : 0));
	if (!ret)
		ret = fw_cfg_add_bytes(dev, FW_CFG_UUID, uuid, sizeof(uuid));
	if (!ret)
		ret = fw_cfg_rebuild_dir(s);
	if (ret < 0)
		goto fail;

	ret = bus_register(&m->pio, PORT_FW_CFG, FW_CFG_CTL_LEN, &fw_cfg_ctl_ops, s, "fw_cfg");
	if (ret < 0) {
		log_error(dev->id, "ports %#x-%#x: %s", PORT_FW_CFG, PORT_FW_CFG + FW_CFG_CTL_LEN - 1,
			  ret == -EEXIST ? "already used by another device" : strerror(-ret));
		goto fail;
	}
	s->ports_registered = true;
	if (s->dma) {
		ret = bus_register(&m->pio, PORT_FW_CFG_DMA, FW_CFG_DMA_LEN, &fw_cfg_dma_ops, s,
				   "fw_cfg-dma");
		if (ret < 0) {
			log_error(dev->id, "ports %#x-%#x: %s", PORT_FW_CFG_DMA,
				  PORT_FW_CFG_DMA + FW_CFG_DMA_LEN - 1,
				  ret == -EEXIST ? "already used by another device" : strerror(-ret));
			goto fail;
		}
		s->dma_registered = true;
	}
	return 0;
fail:
	fw_cfg_unrealize(dev);
	return ret;
}

/* QEMU fw_cfg_reset(): the signature selected, no DMA address latched. */
static void fw_cfg_reset(struct device *dev)
{
	struct fw_cfg *s = dev->priv;

	pthread_mutex_lock(&s->lock);
	fw_cfg_select(s, FW_CFG_SIGNATURE);
	s->r.dma_addr = 0;
	pthread_mutex_unlock(&s->lock);
}

static int fw_cfg_save(struct device *dev, json_t *obj)
{
	struct fw_cfg *s = dev->priv;
	int ret;

	pthread_mutex_lock(&s->lock);
	ret = state_fields_save(fw_cfg_fields, &s->r, obj);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static int fw_cfg_check(const json_t *obj, uint32_t version, char *err, size_t errlen)
{
	struct fw_cfg_regs r;
	int ret = state_fields_check(fw_cfg_fields, obj, version, err, errlen);

	if (ret < 0)
		return ret;
	memset(&r, 0, sizeof(r));
	state_fields_load(fw_cfg_fields, &r, obj, version);
	/* What fw_cfg_select() can leave: a key in range (any flag bits) or INVALID. */
	if (r.cur_entry != FW_CFG_INVALID && (r.cur_entry & FW_CFG_ENTRY_MASK) >= FW_CFG_MAX_ENTRY) {
		snprintf(err, errlen, "field \"cur_entry\" = %#x is not an fw_cfg selector", r.cur_entry);
		return -EINVAL;
	}
	if (r.dma_addr & 0xffffffffULL) {
		snprintf(err, errlen, "field \"dma_addr\" = %#llx: only the high half can be latched",
			 (unsigned long long)r.dma_addr);
		return -EINVAL;
	}
	return 0;
}

/*
 * The items themselves are not saved: the platform rebuilds them from the
 * configuration before loading. An offset past the item's end (a changed
 * file) reads as zeros, as past the end of any item.
 */
static int fw_cfg_load(struct device *dev, const json_t *obj, uint32_t version)
{
	struct fw_cfg *s = dev->priv;
	int ret;

	pthread_mutex_lock(&s->lock);
	ret = state_fields_load(fw_cfg_fields, &s->r, obj, version);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static const struct device_class fw_cfg_class = {
	.name = "fw_cfg",
	.state_version = 1,
	.realize = fw_cfg_realize,
	.unrealize = fw_cfg_unrealize,
	.reset = fw_cfg_reset,
	.save = fw_cfg_save,
	.check = fw_cfg_check,
	.load = fw_cfg_load,
};
DEVICE_CLASS(fw_cfg_class);
