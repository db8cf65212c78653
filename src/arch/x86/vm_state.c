/*
 * VM-wide x86 state <-> vm.json: the in-kernel PIC pair and IOAPIC
 * (KVM_GET/SET_IRQCHIP), the PIT (KVM_GET/SET_PIT2) and kvmclock
 * (KVM_GET/SET_CLOCK). Host times never reach the file: the PIT's load time
 * becomes an age and kvmclock is guest nanoseconds.
 *
 * Restore order (x86_vm_state_load): irqchips, then the PIT (its channel 0
 * drives IRQ0 into the PIC/IOAPIC just restored), then the clock; all before
 * any vCPU state, like QEMU's device post_load hooks run before
 * kvm_arch_put_registers.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "amber/machine.h"
#include "amber/snapjson.h"
#include "amber/x86_state.h"

#define SECTION_V 1
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- 8259A PIC ------------------------------------------------------------ */

/* Names follow KVM's struct kvm_pic_state (8259A datasheet registers). */
static const struct state_field pic_fields[] = {
	STATE_U8(struct kvm_pic_state, last_irr),
	STATE_U8(struct kvm_pic_state, irr),
	STATE_U8(struct kvm_pic_state, imr),
	STATE_U8(struct kvm_pic_state, isr),
	STATE_U8_MAX(struct kvm_pic_state, priority_add, 7),
	STATE_U8(struct kvm_pic_state, irq_base),
	STATE_U8_MAX(struct kvm_pic_state, read_reg_select, 1),
	STATE_U8_MAX(struct kvm_pic_state, poll, 1),
	STATE_U8_MAX(struct kvm_pic_state, special_mask, 1),
	STATE_U8_MAX(struct kvm_pic_state, init_state, 3),	/* ICW2..ICW4 expected */
	STATE_U8_MAX(struct kvm_pic_state, auto_eoi, 1),
	STATE_U8_MAX(struct kvm_pic_state, rotate_on_auto_eoi, 1),
	STATE_U8_MAX(struct kvm_pic_state, special_fully_nested_mode, 1),
	STATE_U8_MAX(struct kvm_pic_state, init4, 1),
	STATE_U8(struct kvm_pic_state, elcr),
	STATE_U8(struct kvm_pic_state, elcr_mask),
	STATE_END,
};

int x86_pic_to_json(const struct kvm_pic_state *p, json_t *obj)
{
	return state_fields_save(pic_fields, p, obj);
}

int x86_pic_check(const json_t *obj, const char *path, char *err, size_t errlen)
{
	uint64_t base;
	int ret = state_fields_check_path(pic_fields, obj, SECTION_V, path, err, errlen);

	if (ret)
		return ret;
	/* ICW2 gives vector bits 7:3; the low three bits are the IRQ number. */
	snap_json_to_u64(json_object_get(obj, "irq_base"), &base);
	if (base & 7) {
		snprintf(err, errlen, "%s.irq_base = %" PRIu64 " is not a multiple of 8", path, base);
		return -EINVAL;
	}
	return 0;
}

int x86_pic_from_json(const json_t *obj, struct kvm_pic_state *p)
{
	memset(p, 0, sizeof(*p));
	return state_fields_load(pic_fields, p, obj, SECTION_V);
}

/* ---- IOAPIC (82093AA) -------------------------------------------------------- */

static const struct state_field ioapic_fields[] = {
	STATE_U32_MAX(struct kvm_ioapic_state, id, 15),		/* ID register bits 27:24 */
	STATE_U32_MAX(struct kvm_ioapic_state, ioregsel, 0xff),
	STATE_U32_MAX(struct kvm_ioapic_state, irr, (1u << KVM_IOAPIC_NUM_PINS) - 1),
	STATE_U64(struct kvm_ioapic_state, base_address),
	STATE_END,
};

/* Redirection table entry fields (82093AA datasheet §3.2.4): name, shift, width. */
static const struct {
	const char *name;
	unsigned shift, width;
} redir_bits[] = {
	{ "vector", 0, 8 }, { "delivery_mode", 8, 3 }, { "dest_mode", 11, 1 },
	{ "delivery_status", 12, 1 }, { "polarity", 13, 1 }, { "remote_irr", 14, 1 },
	{ "trig_mode", 15, 1 }, { "mask", 16, 1 }, { "dest_id", 56, 8 },
};

int x86_ioapic_to_json(const struct kvm_ioapic_state *io, json_t *obj)
{
	json_t *tbl = json_array();
	int ret = state_fields_save(ioapic_fields, io, obj);

	if (!tbl)
		return -ENOMEM;
	for (unsigned i = 0; !ret && i < KVM_IOAPIC_NUM_PINS; i++) {
		json_t *e = json_object();

		if (!e || json_array_append_new(tbl, e) < 0) {
			ret = -ENOMEM;
			break;
		}
		for (size_t b = 0; b < ARRAY_LEN(redir_bits); b++)
			ret |= snap_set_u64(e, redir_bits[b].name,
					    (io->redirtbl[i].bits >> redir_bits[b].shift) &
					    ((1ULL << redir_bits[b].width) - 1));
	}
	if (ret) {
		json_decref(tbl);
		return -ENOMEM;
	}
	return json_object_set_new(obj, "redirtbl", tbl) ? -ENOMEM : 0;
}

int x86_ioapic_check(const json_t *obj, const char *path, char *err, size_t errlen)
{
	const json_t *tbl;
	char p[160];
	uint64_t base;
	int ret = state_fields_check_path(ioapic_fields, obj, SECTION_V, path, err, errlen);

	if (ret)
		return ret;
	/* KVM's IOAPIC answers at its fixed address; any other base breaks it. */
	snap_json_to_u64(json_object_get(obj, "base_address"), &base);
	if (base != MMIO_IOAPIC) {
		snprintf(err, errlen, "%s.base_address = 0x%" PRIx64 ", expected 0x%llx", path, base,
			 MMIO_IOAPIC);
		return -EINVAL;
	}
	if ((ret = snap_get_array(obj, path, "redirtbl", &tbl, err, errlen)))
		return ret;
	if (json_array_size(tbl) != KVM_IOAPIC_NUM_PINS) {
		snprintf(err, errlen, "%s.redirtbl: %zu entries, expected %d", path,
			 json_array_size(tbl), KVM_IOAPIC_NUM_PINS);
		return -EINVAL;
	}
	for (size_t i = 0; i < KVM_IOAPIC_NUM_PINS; i++) {
		char ep[160];

		snap_path(p, sizeof(p), path, "redirtbl");
		snap_path_index(ep, sizeof(ep), p, i);
		for (size_t b = 0; b < ARRAY_LEN(redir_bits); b++)
			if ((ret = snap_get_u64(json_array_get(tbl, i), ep, redir_bits[b].name,
						(1ULL << redir_bits[b].width) - 1, NULL, err, errlen)))
				return ret;
	}
	return 0;
}

int x86_ioapic_from_json(const json_t *obj, struct kvm_ioapic_state *io)
{
	const json_t *tbl = json_object_get(obj, "redirtbl");
	int ret;

	memset(io, 0, sizeof(*io));
	ret = state_fields_load(ioapic_fields, io, obj, SECTION_V);
	if (ret)
		return ret;
	if (json_array_size(tbl) != KVM_IOAPIC_NUM_PINS)
		return -EINVAL;
	for (size_t i = 0; i < KVM_IOAPIC_NUM_PINS; i++)
		for (size_t b = 0; b < ARRAY_LEN(redir_bits); b++) {
			uint64_t v = 0;

			snap_json_to_u64(json_object_get(json_array_get(tbl, i), redir_bits[b].name),
					 &v);
			v &= (1ULL << redir_bits[b].width) - 1;
			io->redirtbl[i].bits |= v << redir_bits[b].shift;
		}
	return 0;
}

/* ---- 8254 PIT --------------------------------------------------------------- */

/* KVM's i8254.c state machine: read/write states are RW_STATE_* (1-4). */
static const struct state_field pit_chan_fields[] = {
	STATE_U32_MAX(struct kvm_pit_channel_state, count, 65536),	/* 0 means 65536 */
	STATE_U16(struct kvm_pit_channel_state, latched_count),
	STATE_U8_MAX(struct kvm_pit_channel_state, count_latched, 4),
	STATE_U8_MAX(struct kvm_pit_channel_state, status_latched, 1),
	STATE_U8(struct kvm_pit_channel_state, status),
	STATE_U8_MAX(struct kvm_pit_channel_state, read_state, 4),
	STATE_U8_MAX(struct kvm_pit_channel_state, write_state, 4),
	STATE_U8(struct kvm_pit_channel_state, write_latch),
	STATE_U8_MAX(struct kvm_pit_channel_state, rw_mode, 3),
	STATE_U8(struct kvm_pit_channel_state, mode),	/* 0-5, or 0xff: see x86_pit_check */
	STATE_U8_MAX(struct kvm_pit_channel_state, bcd, 1),
	STATE_U8_MAX(struct kvm_pit_channel_state, gate, 1),
	STATE_END,
};

int x86_pit_to_json(const struct kvm_pit_state2 *p, int64_t mono_now_ns, json_t *obj)
{
	json_t *chans = json_array();
	int ret = 0;

	if (!chans)
		return -ENOMEM;
	for (int i = 0; i < 3 && !ret; i++) {
		json_t *c = json_object();
		int64_t age = mono_now_ns - p->channels[i].count_load_time;

		if (!c || json_array_append_new(chans, c) < 0) {
			ret = -ENOMEM;
			break;
		}
		ret = state_fields_save(pit_chan_fields, &p->channels[i], c);
		ret |= snap_set_u64(c, "count_load_age_ns", age > 0 ? (uint64_t)age : 0);
	}
	ret |= json_object_set_new(obj, "hpet_legacy",
				   json_boolean(p->flags & KVM_PIT_FLAGS_HPET_LEGACY));
	ret |= json_object_set_new(obj, "speaker_data_on",
				   json_boolean(p->flags & KVM_PIT_FLAGS_SPEAKER_DATA_ON));
	ret |= json_object_set_new(obj, "channels", chans);
	return ret ? -ENOMEM : 0;
}

int x86_pit_check(const json_t *obj, const char *path, char *err, size_t errlen)
{
	const json_t *chans;
	char p[160], cp[160];
	json_int_t mode;
	int ret;

	if ((ret = snap_get_bool(obj, path, "hpet_legacy", NULL, err, errlen)) ||
	    (ret = snap_get_bool(obj, path, "speaker_data_on", NULL, err, errlen)) ||
	    (ret = snap_get_array(obj, path, "channels", &chans, err, errlen)))
		return ret;
	snap_path(p, sizeof(p), path, "channels");
	if (json_array_size(chans) != 3) {
		snprintf(err, errlen, "%s: %zu channels, expected 3", p, json_array_size(chans));
		return -EINVAL;
	}
	for (size_t i = 0; i < 3; i++) {
		snap_path_index(cp, sizeof(cp), p, i);
		if ((ret = state_fields_check_path(pit_chan_fields, json_array_get(chans, i),
						   SECTION_V, cp, err, errlen)) ||
		    (ret = snap_get_u64(json_array_get(chans, i), cp, "count_load_age_ns",
					INT64_MAX, NULL, err, errlen)))
			return ret;
		/*
		 * 8254 modes are 0-5; KVM resets a channel to 0xff ("never
		 * programmed", arch/x86/kvm/i8254.c kvm_pit_reset), which a
		 * guest that never touched channel 1 still has.
		 */
		mode = json_integer_value(json_object_get(json_array_get(chans, i), "mode"));
		if (mode > 5 && mode != 0xff) {
			snprintf(err, errlen, "%s.mode = %lld: expected 0 to 5, or 255 (never programmed)",
				 cp, (long long)mode);
			return -EINVAL;
		}
	}
	return 0;
}

int x86_pit_from_json(const json_t *obj, int64_t mono_now_ns, struct kvm_pit_state2 *p)
{
	const json_t *chans = json_object_get(obj, "channels");

	memset(p, 0, sizeof(*p));
	if (json_array_size(chans) != 3)
		return -EINVAL;
	for (size_t i = 0; i < 3; i++) {
		const json_t *c = json_array_get(chans, i);
		uint64_t age = 0;
		int ret = state_fields_load(pit_chan_fields, &p->channels[i], c, SECTION_V);

		if (ret || snap_json_to_u64(json_object_get(c, "count_load_age_ns"), &age) ||
		    age > INT64_MAX)
			return -EINVAL;
		p->channels[i].count_load_time = mono_now_ns - (int64_t)age;
	}
	if (json_is_true(json_object_get(obj, "hpet_legacy")))
		p->flags |= KVM_PIT_FLAGS_HPET_LEGACY;
	if (json_is_true(json_object_get(obj, "speaker_data_on")))
		p->flags |= KVM_PIT_FLAGS_SPEAKER_DATA_ON;
	return 0;
}

/* ---- kvmclock ---------------------------------------------------------------- */

int x86_clock_to_json(const struct kvm_clock_data *c, json_t *obj)
{
	int ret = snap_set_u64(obj, "clock_ns", c->clock);

	ret |= snap_set_u64(obj, "realtime_ns", c->realtime);
	ret |= json_object_set_new(obj, "tsc_stable", json_boolean(c->flags & KVM_CLOCK_TSC_STABLE));
	return ret ? -ENOMEM : 0;
}

int x86_clock_check(const json_t *obj, const char *path, char *err, size_t errlen)
{
	int ret;

	if ((ret = snap_get_u64(obj, path, "clock_ns", UINT64_MAX, NULL, err, errlen)) ||
	    (ret = snap_get_u64(obj, path, "realtime_ns", UINT64_MAX, NULL, err, errlen)) ||
	    (ret = snap_get_bool(obj, path, "tsc_stable", NULL, err, errlen)))
		return ret;
	return 0;
}

int x86_clock_from_json(const json_t *obj, bool advance, uint64_t realtime_now_ns,
			struct kvm_clock_data *c)
{
	uint64_t clock, rt;

	memset(c, 0, sizeof(*c));
	if (snap_json_to_u64(json_object_get(obj, "clock_ns"), &clock) ||
	    snap_json_to_u64(json_object_get(obj, "realtime_ns"), &rt))
		return -EINVAL;
	/* A wall clock that went backwards advances by nothing, never back. */
	if (advance && realtime_now_ns > rt)
		clock += realtime_now_ns - rt;
	c->clock = clock;
	return 0;
}

/* ---- the VM section ------------------------------------------------------------ */

int x86_vm_state_to_json(const struct x86_vm_state *s, int64_t mono_now_ns, json_t *obj)
{
	json_t *irq = json_object(), *m = json_object(), *sl = json_object(), *io = json_object();
	json_t *pit = json_object(), *clk = json_object();
	int ret = -ENOMEM;

	if (irq && m && sl && io && pit && clk && !x86_pic_to_json(&s->pic[0], m) &&
	    !x86_pic_to_json(&s->pic[1], sl) && !x86_ioapic_to_json(&s->ioapic, io) &&
	    !x86_pit_to_json(&s->pit, mono_now_ns, pit) && !x86_clock_to_json(&s->clock, clk)) {
		ret = json_object_set_new(irq, "pic_master", m);
		ret |= json_object_set_new(irq, "pic_slave", sl);
		ret |= json_object_set_new(irq, "ioapic", io);
		ret |= json_object_set_new(obj, "irqchip", irq);
		ret |= json_object_set_new(obj, "pit", pit);
		ret |= json_object_set_new(obj, "clock", clk);
		return ret ? -ENOMEM : 0;
	}
	json_decref(irq);
	json_decref(m);
	json_decref(sl);
	json_decref(io);
	json_decref(pit);
	json_decref(clk);
	return ret;
}

int x86_vm_state_check(const json_t *obj, const char *path, char *err, size_t errlen)
{
	const json_t *irq, *o;
	char p[160], ip[160];
	int ret;

	if ((ret = snap_get_object(obj, path, "irqchip", &irq, err, errlen)))
		return ret;
	snap_path(ip, sizeof(ip), path, "irqchip");
#define SUB(parent, ppath, key, fn) do {					\
		if ((ret = snap_get_object(parent, ppath, key, &o, err, errlen)))	\
			return ret;						\
		snap_path(p, sizeof(p), ppath, key);				\
		if ((ret = fn(o, p, err, errlen)))				\
			return ret;						\
	} while (0)
	SUB(irq, ip, "pic_master", x86_pic_check);
	SUB(irq, ip, "pic_slave", x86_pic_check);
	SUB(irq, ip, "ioapic", x86_ioapic_check);
	SUB(obj, path, "pit", x86_pit_check);
	SUB(obj, path, "clock", x86_clock_check);
#undef SUB
	return 0;
}

int x86_vm_state_from_json(const json_t *obj, int64_t mono_now_ns, bool clock_advance,
			   uint64_t realtime_now_ns, struct x86_vm_state *s)
{
	const json_t *irq = json_object_get(obj, "irqchip");
	int ret;

	memset(s, 0, sizeof(*s));
	ret = x86_pic_from_json(json_object_get(irq, "pic_master"), &s->pic[0]);
	ret = ret ? ret : x86_pic_from_json(json_object_get(irq, "pic_slave"), &s->pic[1]);
	ret = ret ? ret : x86_ioapic_from_json(json_object_get(irq, "ioapic"), &s->ioapic);
	ret = ret ? ret : x86_pit_from_json(json_object_get(obj, "pit"), mono_now_ns, &s->pit);
	ret = ret ? ret : x86_clock_from_json(json_object_get(obj, "clock"), clock_advance,
					      realtime_now_ns, &s->clock);
	return ret;
}

/* ---- ioctl wrappers ---------------------------------------------------------------- */

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int x86_vm_state_save(int vm_fd, json_t *obj)
{
	struct x86_vm_state s;
	struct kvm_irqchip chip;
	int64_t now;

	memset(&s, 0, sizeof(s));
	for (unsigned i = 0; i < 3; i++) {
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = i;	/* KVM_IRQCHIP_PIC_MASTER, _SLAVE, _IOAPIC */
		if (ioctl(vm_fd, KVM_GET_IRQCHIP, &chip) < 0)
			return -errno;
		if (i < 2)
			s.pic[i] = chip.chip.pic;
		else
			s.ioapic = chip.chip.ioapic;
	}
	if (ioctl(vm_fd, KVM_GET_PIT2, &s.pit) < 0 || ioctl(vm_fd, KVM_GET_CLOCK, &s.clock) < 0)
		return -errno;
	now = clock_ns(CLOCK_MONOTONIC);
	/* Older kernels do not report the wall clock with the reading: take ours. */
	if (!(s.clock.flags & KVM_CLOCK_REALTIME))
		s.clock.realtime = (uint64_t)clock_ns(CLOCK_REALTIME);
	return x86_vm_state_to_json(&s, now, obj);
}

int x86_vm_state_load(int vm_fd, const json_t *obj, bool clock_advance, char *err, size_t errlen)
{
	struct x86_vm_state s;
	struct kvm_irqchip chip;
	int ret = x86_vm_state_check(obj, "vm", err, errlen);

	if (ret)
		return ret;
	ret = x86_vm_state_from_json(obj, clock_ns(CLOCK_MONOTONIC), clock_advance,
				     (uint64_t)clock_ns(CLOCK_REALTIME), &s);
	if (ret) {
		snprintf(err, errlen, "vm: cannot decode the saved state");
		return ret;
	}
	for (unsigned i = 0; i < 3; i++) {
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = i;
		if (i < 2)
			chip.chip.pic = s.pic[i];
		else
			chip.chip.ioapic = s.ioapic;
		if (ioctl(vm_fd, KVM_SET_IRQCHIP, &chip) < 0) {
			ret = -errno;
			snprintf(err, errlen, "vm.irqchip: KVM refused %s: %s",
				 i == 2 ? "the IOAPIC" : i ? "the slave PIC" : "the master PIC",
				 strerror(-ret));
			return ret;
		}
	}
	if (ioctl(vm_fd, KVM_SET_PIT2, &s.pit) < 0) {
		ret = -errno;
		snprintf(err, errlen, "vm.pit: KVM refused it: %s", strerror(-ret));
		return ret;
	}
	if (ioctl(vm_fd, KVM_SET_CLOCK, &s.clock) < 0) {
		ret = -errno;
		snprintf(err, errlen, "vm.clock: KVM refused it: %s", strerror(-ret));
		return ret;
	}
	return 0;
}
