/*
 * ACPI power management as the PIIX4 PM function (Intel 82371AB function 3,
 * 8086:7113, PCI 00:01.3) presents it, with the ACPI fixed hardware registers
 * of ACPI 6.x §4.8 in its I/O block and QEMU's GPE0 block at 0xafe0:
 *
 *   PMBA+0  PM1_STS  (write 1 to clear)      PMBA+2  PM1_EN
 *   PMBA+4  PM1_CNT  (SCI_EN, SLP_TYP, SLP_EN)
 *   PMBA+8  PM_TMR   (24 bits, 3.579545 MHz, read only)
 *   0xafe0  GPE0_STS (write 1 to clear)      0xafe2  GPE0_EN
 *
 * The block sits at PMBA (config 0x40, bits 15:6) while PMREGMISC (config
 * 0x80) bit 0 is set, and moves when firmware rewrites either (PIIX4
 * datasheet §3.4.2). It starts enabled at PORT_ACPI_PM_BASE so a guest
 * booted without firmware finds it where the FADT says.
 *
 * The SCI (GSI 9, level) is asserted while an enabled status bit is set.
 * TMR_STS is computed when the guest looks (PM1_STS read or any access), not
 * from a host timer, so TMR_EN raises the SCI only at such accesses; no
 * guest we run enables it (Linux uses the PM timer as a clocksource only).
 *
 * Without a PCI bus (m->pci == NULL) the register block stays at 0x600.
 *
 * Locking: one mutex guards the registers; vCPU threads take it on register
 * and config access, the control thread on a power button press.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amber/acpi.h"
#include "amber/acpi_pm.h"
#include "amber/device.h"
#include "amber/log.h"
#include "amber/machine.h"
#include "amber/pci.h"

_Static_assert(ACPI_PM_SLP_TYP_S5 == ACPI_SLP_TYP_S5, "acpi.h and acpi_pm.h disagree on S5");

/* PIIX4 function 3 config registers (82371AB datasheet §3.4.2) */
#define PIIX4_PMBA           0x40
#define  PIIX4_PMBA_MASK     0xffc0
#define  PIIX4_PMBA_IO       0x0001	/* read-only: I/O space indicator */
#define PIIX4_DEVACTB        0x58	/* byte 0x5b bit 1: APMC_EN */
#define PIIX4_PMREGMISC      0x80
#define  PIIX4_PMIOSE        0x01

#define PM1_EN_WMASK         (ACPI_PM1_TMR_EN | ACPI_PM1_GBL_EN | ACPI_PM1_PWRBTN_EN | \
			      ACPI_PM1_RTC_EN)
#define PM1_CNT_KEEP         (ACPI_PM1_CNT_SCI_EN | 0x0002 /* BM_RLD */ | \
			      ACPI_PM1_CNT_SLP_TYP_MASK)

/* Architectural state: exactly what is saved (acpi_pm_fields). */
struct acpi_pm_regs {
	uint16_t pm1_sts;
	uint16_t pm1_en;
	uint16_t pm1_cnt;
	uint16_t gpe0_sts;
	uint16_t gpe0_en;
	uint32_t pm_tmr;		/* guest-visible PM_TMR value when saved */
};

static const struct state_field acpi_pm_fields[] = {
	STATE_U16(struct acpi_pm_regs, pm1_sts),
	STATE_U16(struct acpi_pm_regs, pm1_en),
	STATE_U16(struct acpi_pm_regs, pm1_cnt),
	STATE_U16(struct acpi_pm_regs, gpe0_sts),
	STATE_U16(struct acpi_pm_regs, gpe0_en),
	STATE_U32_MAX(struct acpi_pm_regs, pm_tmr, 0xffffff),
	STATE_END
};

struct acpi_pm {
	struct machine *m;
	pthread_mutex_t lock;
	struct acpi_pm_regs r;
	uint64_t tmr_offset;		/* guest ticks = host ticks + offset (mod 2^64) */
	uint64_t tmr_half;		/* guest ticks >> 23 when TMR_STS was last updated */
	int sci_level;
	bool has_pci;
	struct pci_dev pci;
	uint16_t base;			/* where the block is registered, if mapped */
	bool mapped;
	bool gpe_mapped;
};

/* ---- PM timer ---------------------------------------------------------- */

static uint64_t host_ticks(void)
{
	struct timespec ts;
	unsigned __int128 ns;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ns = (unsigned __int128)ts.tv_sec * 1000000000u + (unsigned)ts.tv_nsec;
	return (uint64_t)(ns * ACPI_PM_TMR_HZ / 1000000000u);
}

static uint64_t pm_guest_ticks(const struct acpi_pm *s)
{
	return host_ticks() + s->tmr_offset;
}

/* Make the counter read `ticks` now. */
static void pm_tmr_set(struct acpi_pm *s, uint64_t ticks)
{
	s->tmr_offset = ticks - host_ticks();
	s->tmr_half = ticks >> 23;
}

/* ACPI 6.x §4.8.3.3: TMR_STS is set whenever bit 23 of the counter toggles. */
static void pm_tmr_sync(struct acpi_pm *s)
{
	uint64_t half = pm_guest_ticks(s) >> 23;

	if (half != s->tmr_half) {
		s->tmr_half = half;
		s->r.pm1_sts |= ACPI_PM1_TMR_STS;
	}
}

/* ---- SCI --------------------------------------------------------------- */

static void pm_update_sci(struct acpi_pm *s)
{
	int level = (s->r.pm1_sts & s->r.pm1_en & PM1_EN_WMASK) ||
		    (s->r.gpe0_sts & s->r.gpe0_en);

	if (level != s->sci_level) {
		s->sci_level = level;
		irq_set_line(s->m->irq, IRQ_ACPI_SCI, level);
	}
}

/* ---- PM register block ------------------------------------------------- */

/* The part of a byte-wise access [off, off+size) that hits the 16-bit
 * register at reg: its value and byte mask there. False when it misses. */
static bool pm_slice16(uint64_t off, uint64_t val, unsigned size, unsigned reg,
		       uint16_t *v, uint16_t *mask)
{
	*v = 0;
	*mask = 0;
	for (unsigned i = 0; i < size; i++) {
		uint64_t a = off + i;

		if (a >= reg && a < reg + 2u) {
			*v |= (uint16_t)(((val >> (8 * i)) & 0xff) << (8 * (a - reg)));
			*mask |= (uint16_t)(0xff << (8 * (a - reg)));
		}
	}
	return *mask != 0;
}

static uint64_t pm_read(void *opaque, uint64_t off, unsigned size)
{
	struct acpi_pm *s = opaque;
	uint8_t img[12] = { 0 };
	uint32_t tmr;
	uint64_t v = 0;

	pthread_mutex_lock(&s->lock);
	pm_tmr_sync(s);
	pm_update_sci(s);
	tmr = pm_guest_ticks(s) & 0xffffff;
	img[0] = s->r.pm1_sts;
	img[1] = s->r.pm1_sts >> 8;
	img[2] = s->r.pm1_en;
	img[3] = s->r.pm1_en >> 8;
	img[4] = s->r.pm1_cnt;		/* SLP_EN is write-only: never stored */
	img[5] = s->r.pm1_cnt >> 8;
	img[8] = tmr;
	img[9] = tmr >> 8;
	img[10] = tmr >> 16;
	pthread_mutex_unlock(&s->lock);
	/* Reserved PIIX4 registers above the timer read as 0. */
	for (unsigned i = 0; i < size; i++)
		if (off + i < sizeof(img))
			v |= (uint64_t)img[off + i] << (8 * i);
	return v;
}

static void pm_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	struct acpi_pm *s = opaque;
	bool poweroff = false;
	uint16_t v, mask;

	pthread_mutex_lock(&s->lock);
	pm_tmr_sync(s);
	if (pm_slice16(off, val, size, ACPI_PM1_EVT_OFF, &v, &mask))
		s->r.pm1_sts &= ~(v & mask);
	if (pm_slice16(off, val, size, ACPI_PM1_EVT_OFF + 2, &v, &mask))
		s->r.pm1_en = (s->r.pm1_en & ~mask) | (v & mask & PM1_EN_WMASK);
	if (pm_slice16(off, val, size, ACPI_PM1_CNT_OFF, &v, &mask)) {
		uint16_t cnt = (s->r.pm1_cnt & ~mask) | (v & mask);

		if ((mask & 0xff00) && (v & ACPI_PM1_CNT_SLP_EN)) {
			unsigned typ = (cnt & ACPI_PM1_CNT_SLP_TYP_MASK) >> ACPI_PM1_CNT_SLP_TYP_SHIFT;

			/* ACPI 6.x §4.8.3.2.1: SLP_EN enters the state SLP_TYP names. */
			if (typ == ACPI_PM_SLP_TYP_S5)
				poweroff = true;
			else
				log_warn("acpi_pm", "sleep type %u requested: only S5 (type %u) is "
					 "supported, ignored", typ, ACPI_PM_SLP_TYP_S5);
		}
		/* SCI_EN stays set: no SMI_CMD, so the machine is always in ACPI mode. */
		s->r.pm1_cnt = (cnt & PM1_CNT_KEEP) | ACPI_PM1_CNT_SCI_EN;
	}
	pm_update_sci(s);
	pthread_mutex_unlock(&s->lock);
	if (poweroff)
		machine_request(s->m, MACHINE_POWEROFF);
}

static const struct bus_ops pm_ops = { .read = pm_read, .write = pm_write };

static uint64_t gpe_read(void *opaque, uint64_t off, unsigned size)
{
	struct acpi_pm *s = opaque;
	uint64_t v = 0;

	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < size; i++) {
		uint64_t a = off + i;
		uint16_t reg = a < 2 ? s->r.gpe0_sts : a < 4 ? s->r.gpe0_en : 0;

		v |= (uint64_t)((reg >> (8 * (a & 1))) & 0xff) << (8 * i);
	}
	pthread_mutex_unlock(&s->lock);
	return v;
}

static void gpe_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	struct acpi_pm *s = opaque;
	uint16_t v, mask;

	pthread_mutex_lock(&s->lock);
	if (pm_slice16(off, val, size, 0, &v, &mask))
		s->r.gpe0_sts &= ~(v & mask);	/* ACPI 6.x §4.8.4.1: write 1 to clear */
	if (pm_slice16(off, val, size, 2, &v, &mask))
		s->r.gpe0_en = (s->r.gpe0_en & ~mask) | (v & mask);
	pm_update_sci(s);
	pthread_mutex_unlock(&s->lock);
}

static const struct bus_ops gpe_ops = { .read = gpe_read, .write = gpe_write };

int acpi_pm_raise_gpe(struct device *dev, unsigned bit)
{
	struct acpi_pm *s = dev ? dev->priv : NULL;

	if (!s || bit >= 16)
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	s->r.gpe0_sts |= 1u << bit;
	pm_update_sci(s);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* ---- power button ------------------------------------------------------ */

/* ACPI 6.x §4.8.2.2.1.1: the fixed power button sets PWRBTN_STS. */
static void acpi_pm_press_powerbutton(void *opaque)
{
	struct acpi_pm *s = opaque;

	pthread_mutex_lock(&s->lock);
	s->r.pm1_sts |= ACPI_PM1_PWRBTN_STS;
	pm_update_sci(s);
	pthread_mutex_unlock(&s->lock);
}

/* ---- PMBA: placing the block ------------------------------------------- */

/* Register the block where PMBA/PMREGMISC say; s->lock held. */
static void pm_update_mapping(struct acpi_pm *s)
{
	uint16_t base = PORT_ACPI_PM_BASE;
	bool enable = true;
	int ret;

	if (s->has_pci) {
		base = (s->pci.cfg[PIIX4_PMBA] | s->pci.cfg[PIIX4_PMBA + 1] << 8) & PIIX4_PMBA_MASK;
		enable = (s->pci.cfg[PIIX4_PMREGMISC] & PIIX4_PMIOSE) && base;
	}
	if (s->mapped && (!enable || base != s->base)) {
		bus_unregister(&s->m->pio, s->base, s);
		s->mapped = false;
	}
	if (enable && !s->mapped) {
		ret = bus_register(&s->m->pio, base, ACPI_PM_LEN, &pm_ops, s, "acpi_pm");
		if (ret < 0) {
			log_warn("acpi_pm", "PM registers at %#x-%#x not mapped: %s", base,
				 base + ACPI_PM_LEN - 1,
				 ret == -EEXIST ? "ports used by another device" : strerror(-ret));
			return;
		}
		s->mapped = true;
		s->base = base;
	}
}

static void acpi_pm_config_write(struct pci_dev *d, unsigned off, uint32_t val, unsigned size)
{
	struct acpi_pm *s = d->opaque;

	if ((off < PIIX4_PMBA + 4 && off + size > PIIX4_PMBA) ||
	    (off <= PIIX4_PMREGMISC && off + size > PIIX4_PMREGMISC)) {
		pthread_mutex_lock(&s->lock);
		pm_update_mapping(s);
		pthread_mutex_unlock(&s->lock);
	}
}

static const struct pci_dev_ops acpi_pm_pci_ops = { .config_write = acpi_pm_config_write };

static void acpi_pm_init_config(struct acpi_pm *s)
{
	struct pci_dev *d = &s->pci;

	d->ops = &acpi_pm_pci_ops;
	d->opaque = s;
	pci_dev_init(d, "acpi_pm", 0x8086, 0x7113, 0x068000, 0x03);
	d->cfg[PCI_STATUS] = 0x80;	/* fast back-to-back, DEVSEL medium (QEMU) */
	d->cfg[PCI_STATUS + 1] = 0x02;
	/* Device-specific registers are plain bytes firmware may write (SMBus
	 * base 0x90, 0xd2, DEVACTB ...); PMBA and PMREGMISC have effects. */
	memset(d->wmask + 0x40, 0xff, PCI_CFG_SPACE_SIZE - 0x40);
	d->wmask[PIIX4_PMBA] = PIIX4_PMBA_MASK & 0xff;
	d->wmask[PIIX4_PMBA + 1] = PIIX4_PMBA_MASK >> 8;
	d->wmask[PIIX4_PMBA + 2] = 0;
	d->wmask[PIIX4_PMBA + 3] = 0;
	d->cfg[PIIX4_PMBA] = (PORT_ACPI_PM_BASE & 0xff) | PIIX4_PMBA_IO;
	d->cfg[PIIX4_PMBA + 1] = PORT_ACPI_PM_BASE >> 8;
	d->cfg[PIIX4_PMREGMISC] = PIIX4_PMIOSE;
	/* APMC_EN already set tells SeaBIOS SMM is initialised: amber has no SMM
	 * handler, so it must not try (QEMU does the same without SMM). */
	d->cfg[PIIX4_DEVACTB + 3] = 0x02;
}

static void acpi_pm_reset_regs(struct acpi_pm *s)
{
	s->r.pm1_sts = 0;
	s->r.pm1_en = 0;
	s->r.pm1_cnt = ACPI_PM1_CNT_SCI_EN;
	s->r.gpe0_sts = 0;
	s->r.gpe0_en = 0;
}

/* ---- device class ------------------------------------------------------ */

static void acpi_pm_unrealize(struct device *dev);

static int acpi_pm_realize(struct device *dev, struct machine *m, const char *args)
{
	static const char *const keys[] = { NULL };
	struct acpi_pm *s;
	char err[128];
	int ret;

	ret = opt_check_keys(args, keys, err, sizeof(err));
	if (ret < 0) {
		log_error(dev->id, "%s (acpi_pm takes no options)", err);
		return ret;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	s->m = m;
	dev->priv = s;
	acpi_pm_reset_regs(s);
	pm_tmr_set(s, 0);

	if (m->pci) {
		acpi_pm_init_config(s);
		ret = pci_bus_add(m->pci, &s->pci, PCI_DEVFN(1, 3));
		if (ret < 0) {
			log_error(dev->id, "cannot add the PIIX4 PM function at 00:01.3: %s",
				  strerror(-ret));
			goto fail;
		}
		s->has_pci = true;
	}
	pthread_mutex_lock(&s->lock);
	pm_update_mapping(s);
	pthread_mutex_unlock(&s->lock);
	if (!s->mapped) {
		ret = -EEXIST;
		goto fail;
	}
	ret = bus_register(&m->pio, PORT_ACPI_GPE0, ACPI_GPE0_LEN, &gpe_ops, s, "acpi_gpe0");
	if (ret < 0) {
		log_error(dev->id, "GPE0 ports %#x-%#x: %s", PORT_ACPI_GPE0,
			  PORT_ACPI_GPE0 + ACPI_GPE0_LEN - 1,
			  ret == -EEXIST ? "already used by another device" : strerror(-ret));
		goto fail;
	}
	s->gpe_mapped = true;
	machine_set_powerbutton(m, acpi_pm_press_powerbutton, s);
	return 0;
fail:
	acpi_pm_unrealize(dev);
	return ret;
}

static void acpi_pm_unrealize(struct device *dev)
{
	struct acpi_pm *s = dev->priv;

	if (!s)
		return;
	if (s->m->powerbutton_opaque == s)
		machine_set_powerbutton(s->m, NULL, NULL);
	if (s->gpe_mapped)
		bus_unregister(&s->m->pio, PORT_ACPI_GPE0, s);
	if (s->mapped)
		bus_unregister(&s->m->pio, s->base, s);
	if (s->has_pci)
		pci_bus_remove(s->m->pci, &s->pci);
	if (s->sci_level)
		irq_set_line(s->m->irq, IRQ_ACPI_SCI, 0);
	pthread_mutex_destroy(&s->lock);
	free(s);
	dev->priv = NULL;
}

static void acpi_pm_reset(struct device *dev)
{
	struct acpi_pm *s = dev->priv;

	if (s->has_pci)
		pci_dev_reset(&s->pci);	/* PMBA back to 0x600, enabled */
	pthread_mutex_lock(&s->lock);
	acpi_pm_reset_regs(s);
	pm_update_sci(s);
	pm_update_mapping(s);
	pthread_mutex_unlock(&s->lock);
}

static int acpi_pm_save(struct device *dev, json_t *obj)
{
	struct acpi_pm *s = dev->priv;
	json_t *pci = NULL;
	int ret;

	pthread_mutex_lock(&s->lock);
	pm_tmr_sync(s);
	s->r.pm_tmr = pm_guest_ticks(s) & 0xffffff;
	ret = state_fields_save(acpi_pm_fields, &s->r, obj);
	pthread_mutex_unlock(&s->lock);
	if (ret < 0 || !s->has_pci)
		return ret;
	pci = json_object();
	if (!pci)
		return -ENOMEM;
	ret = pci_dev_save(&s->pci, pci);
	if (ret == 0 && json_object_set(obj, "pci", pci))
		ret = -ENOMEM;
	json_decref(pci);
	return ret;
}

static int acpi_pm_check(const json_t *obj, uint32_t version, char *err, size_t errlen)
{
	const json_t *pci;
	char sub[200];
	int ret;

	ret = state_fields_check(acpi_pm_fields, obj, version, err, errlen);
	if (ret < 0)
		return ret;
	pci = json_object_get(obj, "pci");
	if (pci && pci_dev_check(pci, sub, sizeof(sub)) < 0) {
		snprintf(err, errlen, "pci: %s", sub);
		return -EINVAL;
	}
	return 0;
}

static int acpi_pm_load(struct device *dev, const json_t *obj, uint32_t version)
{
	struct acpi_pm *s = dev->priv;
	const json_t *pci = json_object_get(obj, "pci");
	struct acpi_pm_regs r;
	int ret;

	if (!pci != !s->has_pci) {
		log_error(dev->id, "saved state %s a PCI function, this device %s", pci ? "has" : "lacks",
			  s->has_pci ? "has one" : "does not");
		return -EINVAL;
	}
	if (pci) {
		ret = pci_dev_load(&s->pci, pci);
		if (ret < 0)
			return ret;
	}
	pthread_mutex_lock(&s->lock);
	r = s->r;
	ret = state_fields_load(acpi_pm_fields, &r, obj, version);
	if (ret < 0)
		goto out;
	r.pm1_en &= PM1_EN_WMASK;
	r.pm1_cnt = (r.pm1_cnt & PM1_CNT_KEEP) | ACPI_PM1_CNT_SCI_EN;
	s->r = r;
	pm_tmr_set(s, r.pm_tmr);
	/* Re-derive the line: the irq chip state was restored separately. */
	s->sci_level = -1;
	pm_update_sci(s);
	pm_update_mapping(s);
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

static const struct device_class acpi_pm_class = {
	.name = "acpi_pm",
	.state_version = 1,
	.realize = acpi_pm_realize,
	.unrealize = acpi_pm_unrealize,
	.reset = acpi_pm_reset,
	.save = acpi_pm_save,
	.check = acpi_pm_check,
	.load = acpi_pm_load,
};
DEVICE_CLASS(acpi_pm_class);
