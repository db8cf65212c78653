/*
 * The CPUID the guest saw, in vm.json, and whether this host can offer it
 * again: a guest that found AVX-512 at boot keeps using it after restore, so
 * every feature bit it saw must be one this host's KVM virtualizes.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "amber/snapjson.h"
#include "amber/x86_state.h"

#define CPUID_MAX_ENTRIES 256	/* KVM_MAX_CPUID_ENTRIES */

static const char *const cpuid_regs[] = { "eax", "ebx", "ecx", "edx" };

static uint32_t entry_reg(const struct kvm_cpuid_entry2 *e, int r)
{
	return r == 0 ? e->eax : r == 1 ? e->ebx : r == 2 ? e->ecx : e->edx;
}

json_t *x86_cpuid_to_json(const struct kvm_cpuid2 *c)
{
	json_t *arr = json_array();

	for (uint32_t i = 0; arr && i < c->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &c->entries[i];
		json_t *o = json_object();
		int bad = !o || json_array_append_new(arr, o) < 0;

		bad = bad || snap_set_u64(o, "function", e->function) ||
		      snap_set_u64(o, "index", e->index) || snap_set_u64(o, "flags", e->flags);
		for (int r = 0; r < 4 && !bad; r++)
			bad = snap_set_u64(o, cpuid_regs[r], entry_reg(e, r));
		if (bad) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

int x86_cpuid_check(const json_t *arr, const char *path, char *err, size_t errlen)
{
	char p[160];
	int ret;

	ret = snap_json_expect(arr, JSON_ARRAY, path, err, errlen);
	if (ret)
		return ret;
	if (json_array_size(arr) == 0 || json_array_size(arr) > CPUID_MAX_ENTRIES) {
		snprintf(err, errlen, "%s: %zu entries, expected 1 to %d", path, json_array_size(arr),
			 CPUID_MAX_ENTRIES);
		return -EINVAL;
	}
	for (size_t i = 0; i < json_array_size(arr); i++) {
		const json_t *e = json_array_get(arr, i);

		snap_path_index(p, sizeof(p), path, i);
		if ((ret = snap_get_u32(e, p, "function", UINT32_MAX, NULL, err, errlen)) ||
		    (ret = snap_get_u32(e, p, "index", UINT32_MAX, NULL, err, errlen)) ||
		    (ret = snap_get_u32(e, p, "flags", UINT32_MAX, NULL, err, errlen)))
			return ret;
		for (int r = 0; r < 4; r++)
			if ((ret = snap_get_u32(e, p, cpuid_regs[r], UINT32_MAX, NULL, err, errlen)))
				return ret;
	}
	return 0;
}

struct kvm_cpuid2 *x86_cpuid_from_json(const json_t *arr)
{
	size_t n = json_array_size(arr);
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));

	if (!c)
		return NULL;
	c->nent = (uint32_t)n;
	for (size_t i = 0; i < n; i++) {
		const json_t *e = json_array_get(arr, i);
		uint64_t v[7] = { 0 };
		static const char *const keys[] = { "function", "index", "flags", "eax", "ebx",
						    "ecx", "edx" };

		for (int k = 0; k < 7; k++)
			snap_json_to_u64(json_object_get(e, keys[k]), &v[k]);
		c->entries[i] = (struct kvm_cpuid_entry2){
			.function = (uint32_t)v[0], .index = (uint32_t)v[1], .flags = (uint32_t)v[2],
			.eax = (uint32_t)v[3], .ebx = (uint32_t)v[4], .ecx = (uint32_t)v[5],
			.edx = (uint32_t)v[6],
		};
	}
	return c;
}

/*
 * Feature registers compared with the host, and the bits that are not a
 * host capability: set by the VMM (HYPERVISOR, HTT, CMP_LEGACY for the
 * topology, TSC-deadline from KVM_CAP_TSC_DEADLINE_TIMER) or mirrors of the
 * guest's own CR4 (OSXSAVE, OSPKE). Intel SDM Vol. 2A, CPUID; AMD APM Vol. 3.
 */
static const struct {
	uint32_t function, index;
	int reg;
	uint32_t ignore;
} feature_regs[] = {
	{ 1, 0, 2, (1u << 31) | (1u << 27) | (1u << 24) },
	{ 1, 0, 3, 1u << 28 },
	{ 7, 0, 1, 0 },
	{ 7, 0, 2, 1u << 4 },
	{ 7, 0, 3, 0 },
	{ 7, 1, 0, 0 },
	{ 0xd, 0, 0, 0 },		/* XCR0 components, low half */
	{ 0xd, 1, 0, 0 },		/* XSAVEOPT, XSAVEC, XGETBV1, XSAVES */
	{ 0x80000001, 0, 2, 1u << 1 },
	{ 0x80000001, 0, 3, 0 },
	{ 0x80000008, 0, 1, 0 },
	{ 0x40000001, 0, 0, 0 },	/* KVM paravirtual features (kvmclock, PV EOI, ...) */
};

/* Names of the bits most often missing between hosts, for the message. */
static const struct {
	uint32_t function, index;
	int reg, bit;
	const char *name;
} feature_names[] = {
	{ 1, 0, 2, 0, "sse3" }, { 1, 0, 2, 9, "ssse3" }, { 1, 0, 2, 12, "fma" },
	{ 1, 0, 2, 19, "sse4.1" }, { 1, 0, 2, 20, "sse4.2" }, { 1, 0, 2, 22, "movbe" },
	{ 1, 0, 2, 23, "popcnt" }, { 1, 0, 2, 25, "aes" }, { 1, 0, 2, 26, "xsave" },
	{ 1, 0, 2, 28, "avx" }, { 1, 0, 2, 29, "f16c" }, { 1, 0, 2, 30, "rdrand" },
	{ 1, 0, 2, 21, "x2apic" }, { 1, 0, 2, 1, "pclmulqdq" },
	{ 7, 0, 1, 3, "bmi1" }, { 7, 0, 1, 5, "avx2" }, { 7, 0, 1, 8, "bmi2" },
	{ 7, 0, 1, 9, "erms" }, { 7, 0, 1, 16, "avx512f" }, { 7, 0, 1, 18, "rdseed" },
	{ 7, 0, 1, 19, "adx" }, { 7, 0, 1, 29, "sha" }, { 7, 0, 1, 30, "avx512bw" },
	{ 7, 0, 1, 31, "avx512vl" }, { 7, 0, 1, 17, "avx512dq" }, { 7, 0, 2, 1, "avx512vbmi" },
	{ 7, 0, 2, 8, "gfni" }, { 7, 0, 2, 9, "vaes" }, { 7, 0, 2, 10, "vpclmulqdq" },
	{ 7, 0, 3, 24, "amx-tile" }, { 0xd, 1, 0, 3, "xsaves" },
	{ 0x80000001, 0, 3, 27, "rdtscp" }, { 0x80000001, 0, 3, 26, "pdpe1gb" },
	{ 0x80000001, 0, 2, 5, "lzcnt/abm" }, { 0x40000001, 0, 0, 3, "kvmclock2" },
};

static const struct kvm_cpuid_entry2 *find_entry(const struct kvm_cpuid2 *c, uint32_t fn,
						 uint32_t idx)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn &&
		    (c->entries[i].index == idx ||
		     !(c->entries[i].flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX)))
			return &c->entries[i];
	return NULL;
}

const struct kvm_cpuid_entry2 *x86_cpuid_entry(const struct kvm_cpuid2 *c, uint32_t fn,
					       uint32_t idx)
{
	return c ? find_entry(c, fn, idx) : NULL;
}

int x86_cpuid_check_host(const json_t *guest, const struct kvm_cpuid2 *supported,
			 char *err, size_t errlen)
{
	struct kvm_cpuid2 *g = x86_cpuid_from_json(guest);
	int ret = 0;

	if (!g)
		return -ENOMEM;
	for (size_t f = 0; f < sizeof(feature_regs) / sizeof(feature_regs[0]) && !ret; f++) {
		const struct kvm_cpuid_entry2 *ge = NULL, *he;
		uint32_t missing;

		for (uint32_t i = 0; i < g->nent && !ge; i++)
			if (g->entries[i].function == feature_regs[f].function &&
			    g->entries[i].index == feature_regs[f].index)
				ge = &g->entries[i];
		if (!ge)
			continue;
		he = find_entry(supported, feature_regs[f].function, feature_regs[f].index);
		missing = entry_reg(ge, feature_regs[f].reg) & ~feature_regs[f].ignore;
		if (he)
			missing &= ~entry_reg(he, feature_regs[f].reg);
		if (!missing)
			continue;
		{
			int bit = __builtin_ctz(missing);
			const char *name = NULL;

			for (size_t n = 0; n < sizeof(feature_names) / sizeof(feature_names[0]); n++)
				if (feature_names[n].function == feature_regs[f].function &&
				    feature_names[n].index == feature_regs[f].index &&
				    feature_names[n].reg == feature_regs[f].reg &&
				    feature_names[n].bit == bit)
					name = feature_names[n].name;
			snprintf(err, errlen, "cpuid: the guest saw CPUID.0x%x.%u:%s bit %d%s%s%s, which "
				 "this host's KVM does not offer", feature_regs[f].function,
				 feature_regs[f].index, cpuid_regs[feature_regs[f].reg], bit,
				 name ? " (" : "", name ? name : "", name ? ")" : "");
			ret = -ENOTSUP;
		}
	}
	free(g);
	return ret;
}

int x86_kvm_supported_cpuid(struct kvm_cpuid2 **out)
{
	struct kvm_cpuid2 *c;
	int fd, ret = 0;

	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	c = calloc(1, sizeof(*c) + CPUID_MAX_ENTRIES * sizeof(c->entries[0]));
	if (!c) {
		ret = -ENOMEM;
		goto out;
	}
	c->nent = CPUID_MAX_ENTRIES;
	if (ioctl(fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		ret = -errno;
		free(c);
		goto out;
	}
	*out = c;
out:
	close(fd);
	return ret;
}

int x86_tsc_khz_check(uint32_t saved_khz, uint32_t host_khz, bool can_scale, bool *need_set,
		      char *err, size_t errlen)
{
	/* KVM's tsc_tolerance_ppm default: within it KVM does not scale. */
	uint64_t diff = saved_khz > host_khz ? saved_khz - host_khz : host_khz - saved_khz;

	*need_set = false;
	if (!saved_khz || !host_khz || diff * 1000000 <= (uint64_t)host_khz * 250)
		return 0;
	if (!can_scale) {
		snprintf(err, errlen, "host.tsc_khz: the guest ran with a %u kHz TSC, this host's is "
			 "%u kHz and KVM cannot scale it (no TSC scaling)", saved_khz, host_khz);
		return -ENOTSUP;
	}
	*need_set = true;
	return 0;
}
