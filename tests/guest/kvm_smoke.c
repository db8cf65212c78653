// SPDX-License-Identifier: MIT
/*
 * kvm_smoke: proves that /dev/kvm runs guest code (on real KVM or inside the nested test
 * machine). A real-mode guest does an OUT to a port, an MMIO write and an MMIO read at an
 * address no memory slot covers, reports the value it read with a second OUT, and halts.
 * Every exit is checked. Exit 0: all exits as expected; 1: a mismatch or a failed ioctl;
 * 77: /dev/kvm cannot be opened (skip).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define MEM_SIZE	0x4000		/* four pages of guest RAM at GPA 0 */
#define CODE_GPA	0x1000
#define MMIO_GPA	0x8000		/* outside the memory slot: MMIO exits */
#define PORT_OUT	0x10
#define PORT_REPORT	0x11
#define VAL_OUT		0x42
#define VAL_WRITE	0x5a
#define VAL_READ	0x77

static const uint8_t guest_code[] = {
	0xba, PORT_OUT, 0x00,		/* mov dx, PORT_OUT */
	0xb0, VAL_OUT,			/* mov al, VAL_OUT */
	0xee,				/* out dx, al */
	0xb0, VAL_WRITE,		/* mov al, VAL_WRITE */
	0xa2, MMIO_GPA & 0xff, MMIO_GPA >> 8,	/* mov [MMIO_GPA], al */
	0xa0, MMIO_GPA & 0xff, MMIO_GPA >> 8,	/* mov al, [MMIO_GPA] */
	0xe6, PORT_REPORT,		/* out PORT_REPORT, al */
	0xf4,				/* hlt */
};

static int failures;

#define CHECK(cond, ...) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "kvm_smoke: FAIL: " __VA_ARGS__);	\
		fputc('\n', stderr);					\
		failures++;						\
	}								\
} while (0)

static const char *exit_name(uint32_t r)
{
	switch (r) {
	case KVM_EXIT_IO: return "IO";
	case KVM_EXIT_MMIO: return "MMIO";
	case KVM_EXIT_HLT: return "HLT";
	case KVM_EXIT_SHUTDOWN: return "SHUTDOWN";
	case KVM_EXIT_FAIL_ENTRY: return "FAIL_ENTRY";
	case KVM_EXIT_INTERNAL_ERROR: return "INTERNAL_ERROR";
	default: return "other";
	}
}

static int run_once(int vcpu, struct kvm_run *run, uint32_t want)
{
	if (ioctl(vcpu, KVM_RUN, 0) < 0) {
		fprintf(stderr, "kvm_smoke: KVM_RUN: %s\n", strerror(errno));
		return -1;
	}
	if (run->exit_reason != want) {
		fprintf(stderr, "kvm_smoke: FAIL: exit %u (%s), expected %u (%s)\n",
			run->exit_reason, exit_name(run->exit_reason), want, exit_name(want));
		return -1;
	}
	return 0;
}

static int check_io(struct kvm_run *run, uint16_t port, uint8_t val)
{
	uint8_t got = *((uint8_t *)run + run->io.data_offset);

	CHECK(run->io.direction == KVM_EXIT_IO_OUT, "io direction %u, expected OUT",
	      run->io.direction);
	CHECK(run->io.port == port, "io port 0x%x, expected 0x%x", run->io.port, port);
	CHECK(run->io.size == 1 && run->io.count == 1, "io size %u count %u, expected 1 1",
	      run->io.size, run->io.count);
	CHECK(got == val, "io value 0x%x on port 0x%x, expected 0x%x", got, port, val);
	return 0;
}

int main(void)
{
	struct kvm_userspace_memory_region region;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_run *run;
	int kvm, vm, vcpu, ret;
	long mmap_size;
	uint8_t *mem;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		printf("kvm_smoke: SKIP: cannot open /dev/kvm: %s\n", strerror(errno));
		return 77;
	}
	ret = ioctl(kvm, KVM_GET_API_VERSION, 0);
	if (ret != KVM_API_VERSION) {
		fprintf(stderr, "kvm_smoke: KVM API version %d, expected %d\n", ret, KVM_API_VERSION);
		return 1;
	}
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) {
		fprintf(stderr, "kvm_smoke: KVM_CREATE_VM: %s\n", strerror(errno));
		return 1;
	}
	/* Intel without unrestricted guest needs a TSS for real mode; harmless elsewhere. */
	(void)ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000UL);

	mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("kvm_smoke: mmap");
		return 1;
	}
	memcpy(mem + CODE_GPA, guest_code, sizeof(guest_code));
	region = (struct kvm_userspace_memory_region){
		.slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE,
		.userspace_addr = (uintptr_t)mem,
	};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		fprintf(stderr, "kvm_smoke: KVM_SET_USER_MEMORY_REGION: %s\n", strerror(errno));
		return 1;
	}

	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	mmap_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vcpu < 0 || mmap_size < (long)sizeof(*run)) {
		fprintf(stderr, "kvm_smoke: KVM_CREATE_VCPU/KVM_GET_VCPU_MMAP_SIZE: %s\n",
			strerror(errno));
		return 1;
	}
	run = mmap(NULL, mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED) {
		perror("kvm_smoke: mmap kvm_run");
		return 1;
	}

	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) {
		perror("kvm_smoke: KVM_GET_SREGS");
		return 1;
	}
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	sregs.ds.base = 0;
	sregs.ds.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) {
		perror("kvm_smoke: KVM_SET_SREGS");
		return 1;
	}
	memset(&regs, 0, sizeof(regs));
	regs.rip = CODE_GPA;
	regs.rflags = 0x2;	/* bit 1 is reserved and must be set */
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) {
		perror("kvm_smoke: KVM_SET_REGS");
		return 1;
	}

	/* 1: out PORT_OUT, VAL_OUT */
	if (run_once(vcpu, run, KVM_EXIT_IO) < 0)
		return 1;
	check_io(run, PORT_OUT, VAL_OUT);

	/* 2: MMIO write of VAL_WRITE */
	if (run_once(vcpu, run, KVM_EXIT_MMIO) < 0)
		return 1;
	CHECK(run->mmio.phys_addr == MMIO_GPA, "mmio write addr 0x%llx, expected 0x%x",
	      (unsigned long long)run->mmio.phys_addr, MMIO_GPA);
	CHECK(run->mmio.is_write == 1, "mmio is_write %u, expected 1", run->mmio.is_write);
	CHECK(run->mmio.len == 1, "mmio write len %u, expected 1", run->mmio.len);
	CHECK(run->mmio.data[0] == VAL_WRITE, "mmio write data 0x%x, expected 0x%x",
	      run->mmio.data[0], VAL_WRITE);

	/* 3: MMIO read; we answer VAL_READ */
	if (run_once(vcpu, run, KVM_EXIT_MMIO) < 0)
		return 1;
	CHECK(run->mmio.phys_addr == MMIO_GPA, "mmio read addr 0x%llx, expected 0x%x",
	      (unsigned long long)run->mmio.phys_addr, MMIO_GPA);
	CHECK(run->mmio.is_write == 0, "mmio is_write %u, expected 0", run->mmio.is_write);
	CHECK(run->mmio.len == 1, "mmio read len %u, expected 1", run->mmio.len);
	run->mmio.data[0] = VAL_READ;

	/* 4: the guest reports what it read */
	if (run_once(vcpu, run, KVM_EXIT_IO) < 0)
		return 1;
	check_io(run, PORT_REPORT, VAL_READ);

	/* 5: hlt */
	if (run_once(vcpu, run, KVM_EXIT_HLT) < 0)
		return 1;

	if (failures) {
		fprintf(stderr, "kvm_smoke: %d check(s) failed\n", failures);
		return 1;
	}
	printf("kvm_smoke: OK (io, mmio write, mmio read, hlt)\n");
	return 0;
}
