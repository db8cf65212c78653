/* The CPUID amber offers: KVM_GET_SUPPORTED_CPUID filtered by cpuid_filter. */
#include "harness.h"

#include <stdlib.h>
#include <linux/kvm.h>

#include "amber/x86_kvm.h"

#define TSC_DEADLINE (1u << 24)
#define HYPERVISOR   (1u << 31)
#define VMX          (1u << 5)

/* A small "supported CPUID" as KVM returns it: leaf 1 without the TSC-deadline bit. */
static struct kvm_cpuid2 *supported(void)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 4 * sizeof(c->entries[0]));

	assert_non_null(c);
	c->nent = 4;
	c->entries[0] = (struct kvm_cpuid_entry2){ .function = 0, .eax = 0xd };
	c->entries[1] = (struct kvm_cpuid_entry2){ .function = 1, .eax = 0x00a20f12,
						   .ecx = 0x7ed8320b | VMX, .edx = 0x178bfbff };
	c->entries[2] = (struct kvm_cpuid_entry2){ .function = 0x12, .eax = 1 };	/* SGX: dropped */
	c->entries[3] = (struct kvm_cpuid_entry2){ .function = 0x40000001, .eax = 0x01007afb | (1u << 10) };
	return c;
}

static const struct kvm_cpuid_entry2 *leaf(const struct kvm_cpuid2 *c, uint32_t fn)
{
	for (unsigned i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn)
			return &c->entries[i];
	return NULL;
}

static void test_tsc_deadline_offered_when_kvm_emulates_it(void **state)
{
	struct kvm_cpuid2 *c = supported();

	cpuid_filter(c, 1, CPUID_KVM_TSC_DEADLINE);
	assert_non_null(leaf(c, 1));
	assert_true(leaf(c, 1)->ecx & TSC_DEADLINE);
	assert_true(leaf(c, 1)->ecx & HYPERVISOR);
	assert_false(leaf(c, 1)->ecx & VMX);
	free(c);
}

static void test_tsc_deadline_hidden_without_the_kvm_capability(void **state)
{
	struct kvm_cpuid2 *c = supported();

	c->entries[1].ecx |= TSC_DEADLINE;
	cpuid_filter(c, 1, 0);
	assert_false(leaf(c, 1)->ecx & TSC_DEADLINE);
	free(c);
}

static void test_filter_keeps_kvm_leaves_and_drops_sgx(void **state)
{
	struct kvm_cpuid2 *c = supported();

	cpuid_filter(c, 2, CPUID_KVM_TSC_DEADLINE);
	assert_int_equal(c->nent, 3);
	assert_null(leaf(c, 0x12));
	assert_non_null(leaf(c, 0x40000001));
	/* kvmclock, PV EOI, steal time, ... kept; the three async page fault bits gone */
	assert_int_equal(leaf(c, 0x40000001)->eax, 0x01007afb & ~((1u << 4) | (1u << 10) | (1u << 14)));
	/* two CPUs: HTT set, two logical processor IDs in the package */
	assert_true(leaf(c, 1)->edx & (1u << 28));
	assert_int_equal((leaf(c, 1)->ebx >> 16) & 0xff, 2);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tsc_deadline_offered_when_kvm_emulates_it),
		cmocka_unit_test(test_tsc_deadline_hidden_without_the_kvm_capability),
		cmocka_unit_test(test_filter_keeps_kvm_leaves_and_drops_sgx),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
