/* KVM: VM and vCPU creation, memory slots and boot registers. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "amber/log.h"
#include "amber/x86_kvm.h"

/*
 * Where QEMU puts them (target/i386/kvm/kvm.c): 4 pages below any firmware
 * image of up to 16 MiB mapped under 4 GiB, reserved in the firmware's E820
 * (amber/fw_cfg.h FW_CFG_X86_KVM_RESERVED_BASE). On Intel without
 * unrestricted guest KVM backs them with private memslots, which must not
 * overlap the firmware's.
 */
#define KVM_IDENTITY_MAP_ADDR 0xfeffc000ULL
#define KVM_TSS_ADDR          (KVM_IDENTITY_MAP_ADDR + 0x1000)

#define MSR_IA32_MISC_ENABLE  0x1a0
#define  MISC_ENABLE_FAST_STRING 0x1
#define MSR_MTRRdefType       0x2ff
#define MSR_IA32_TSC          0x10

#define X86_CR0_PE 0x1
#define X86_CR0_MP 0x2
#define X86_CR0_ET 0x10
#define X86_CR0_NE 0x20
#define X86_CR0_PG 0x80000000
#define X86_CR4_PAE 0x20
#define EFER_LME 0x100
#define EFER_LMA 0x400

static const unsigned required_caps[] = {
	KVM_CAP_IRQCHIP, KVM_CAP_USER_MEMORY, KVM_CAP_SET_TSS_ADDR, KVM_CAP_PIT2,
	KVM_CAP_EXT_CPUID, KVM_CAP_IRQ_ROUTING, KVM_CAP_IMMEDIATE_EXIT, KVM_CAP_SIGNAL_MSI,
	KVM_CAP_IOEVENTFD, KVM_CAP_IRQFD,
};

int kvm_open(int *kvm_fd, char *err, size_t errlen)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC), v;

	if (fd < 0) {
		snprintf(err, errlen, "cannot open /dev/kvm: %s", strerror(errno));
		return -errno;
	}
	v = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (v != KVM_API_VERSION) {
		snprintf(err, errlen, "/dev/kvm: API version %d, amber needs %d", v, KVM_API_VERSION);
		close(fd);
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(required_caps) / sizeof(required_caps[0]); i++) {
		if (ioctl(fd, KVM_CHECK_EXTENSION, required_caps[i]) <= 0) {
			snprintf(err, errlen, "/dev/kvm lacks capability %u that amber needs", required_caps[i]);
			close(fd);
			return -EINVAL;
		}
	}
	*kvm_fd = fd;
	return 0;
}

int kvm_max_vcpus(int kvm_fd)
{
	int n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);

	if (n <= 0)
		n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (n <= 0)
		n = 4;
	return n > 255 ? 255 : n;	/* xAPIC IDs: 8 bits */
}

int kvm_create_vm(int kvm_fd, int *vm_fd, char *err, size_t errlen)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	uint64_t idmap = KVM_IDENTITY_MAP_ADDR;
	const char *what;
	int fd, ret;

	fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (fd < 0) {
		snprintf(err, errlen, "KVM_CREATE_VM: %s", strerror(errno));
		return -errno;
	}
	what = "KVM_SET_TSS_ADDR";
	if (ioctl(fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0)
		goto fail;
	what = "KVM_SET_IDENTITY_MAP_ADDR";
	if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0 &&
	    ioctl(fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
		goto fail;
	what = "KVM_CREATE_IRQCHIP";
	if (ioctl(fd, KVM_CREATE_IRQCHIP, 0) < 0)
		goto fail;
	what = "KVM_CREATE_PIT2";
	if (ioctl(fd, KVM_CREATE_PIT2, &pit) < 0)
		goto fail;
	*vm_fd = fd;
	return 0;
fail:
	ret = -errno;
	snprintf(err, errlen, "%s: %s", what, strerror(errno));
	close(fd);
	return ret;
}

int kvm_set_memory(int vm_fd, const struct guest_mem *gm, char *err, size_t errlen)
{
	for (int i = 0; i < gm->nslots; i++) {
		struct kvm_userspace_memory_region r = {
			.slot = (uint32_t)i,
			.guest_phys_addr = gm->slots[i].gpa,
			.memory_size = gm->slots[i].size,
			.userspace_addr = (uint64_t)(uintptr_t)gm->slots[i].host,
		};

		if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
			snprintf(err, errlen, "KVM_SET_USER_MEMORY_REGION slot %d: %s", i, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

int kvm_map_rom(int kvm_fd, int vm_fd, uint32_t slot, uint64_t gpa, void *host, uint64_t size,
		char *err, size_t errlen)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.flags = KVM_MEM_READONLY,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};

	if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) <= 0) {
		/* Pre-3.8 kernels: the guest could write its flash; nothing else differs. */
		log_warn("kvm", "KVM_CAP_READONLY_MEM missing: ROM at %#llx is writable by the guest",
			 (unsigned long long)gpa);
		r.flags = 0;
	}
	if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
		int ret = -errno;

		snprintf(err, errlen, "KVM_SET_USER_MEMORY_REGION for the ROM at %#llx (%llu KiB): %s",
			 (unsigned long long)gpa, (unsigned long long)(size >> 10), strerror(-ret));
		return ret;
	}
	return 0;
}

static int kvm_set_msrs(int vcpu_fd, const uint32_t *idx, const uint64_t *val, unsigned n)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(m->entries[0]));
	int ret;

	if (!m)
		return -ENOMEM;
	m->nmsrs = n;
	for (unsigned i = 0; i < n; i++) {
		m->entries[i].index = idx[i];
		m->entries[i].data = val[i];
	}
	ret = ioctl(vcpu_fd, KVM_SET_MSRS, m);
	free(m);
	return ret == (int)n ? 0 : -EINVAL;
}

int kvm_set_msr(int vcpu_fd, uint32_t index, uint64_t value)
{
	return kvm_set_msrs(vcpu_fd, &index, &value, 1);
}

int kvm_create_vcpu(int kvm_fd, int vm_fd, int id, const struct kvm_cpuid2 *cpuid, int ncpus,
		    int *fd_out, struct kvm_run **run_out, size_t *run_size_out,
		    char *err, size_t errlen)
{
	/* Fast strings on, MTRRs enabled with write-back default, like firmware leaves them. */
	static const uint32_t msr_idx[] = { MSR_IA32_MISC_ENABLE, MSR_MTRRdefType };
	static const uint64_t msr_val[] = { MISC_ENABLE_FAST_STRING, 0xc06 };
	struct kvm_cpuid2 *c = NULL;
	struct kvm_run *run;
	int fd, size, ret;

	fd = ioctl(vm_fd, KVM_CREATE_VCPU, id);
	if (fd < 0) {
		snprintf(err, errlen, "KVM_CREATE_VCPU %d: %s", id, strerror(errno));
		return -errno;
	}
	size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < (int)sizeof(*run)) {
		snprintf(err, errlen, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		ret = -EINVAL;
		goto fail;
	}
	run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (run == MAP_FAILED) {
		ret = -errno;
		snprintf(err, errlen, "mmap of vCPU %d: %s", id, strerror(errno));
		goto fail;
	}
	c = cpuid_for_vcpu(cpuid, id, ncpus);
	if (!c || ioctl(fd, KVM_SET_CPUID2, c) < 0) {
		ret = -errno;
		snprintf(err, errlen, "KVM_SET_CPUID2 on vCPU %d: %s", id, strerror(errno));
		munmap(run, (size_t)size);
		goto fail;
	}
	free(c);
	if (kvm_set_msrs(fd, msr_idx, msr_val, 2) < 0)
		log_warn("kvm", "vCPU %d: could not set the initial MSRs", id);
	*fd_out = fd;
	*run_out = run;
	*run_size_out = (size_t)size;
	return 0;
fail:
	free(c);
	close(fd);
	return ret;
}

static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool l, bool db)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->base = 0;
	s->limit = 0xffffffff;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->l = l;
	s->db = db;
	s->g = 1;
}

int kvm_setup_boot_regs(int vcpu_fd, const struct boot_info *bi)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_segment code, data;

	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	sregs.gdt.base = BOOT_GDT_ADDR;
	sregs.gdt.limit = 4 * 8 - 1;
	memset(&regs, 0, sizeof(regs));
	regs.rflags = 0x2;
	regs.rip = bi->entry;
	if (bi->kind == KERNEL_BZIMAGE) {
		/* boot.rst "64-bit Boot Protocol": long mode, paging on, flat segments. */
		seg(&code, 0x10, 0xb, true, false);
		seg(&data, 0x18, 0x3, false, true);
		sregs.cr3 = BOOT_PML4_ADDR;
		sregs.cr4 |= X86_CR4_PAE;
		sregs.cr0 |= X86_CR0_PE | X86_CR0_PG | X86_CR0_ET | X86_CR0_NE | X86_CR0_MP;
		sregs.efer |= EFER_LME | EFER_LMA;
		regs.rsi = bi->params;
	} else {
		/* PVH: 32-bit protected mode, paging off, %ebx = hvm_start_info. */
		seg(&code, 0x08, 0xb, false, true);
		seg(&data, 0x18, 0x3, false, true);
		sregs.cr0 = (sregs.cr0 | X86_CR0_PE | X86_CR0_ET) & ~X86_CR0_PG;
		sregs.cr4 = 0;
		sregs.efer = 0;
		regs.rbx = bi->params;
	}
	sregs.cs = code;
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	/* TR must be a busy TSS for VM entry to accept the state. */
	sregs.tr.type = 0xb;
	sregs.tr.present = 1;
	sregs.tr.limit = 0xffff;
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0 || ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

/* LAPIC register offsets (SDM Vol. 3A Table 11-1) */
#define APIC_LVT0 0x350
#define APIC_LVT1 0x360
#define APIC_MODE_EXTINT (7 << 8)
#define APIC_MODE_NMI    (4 << 8)

int kvm_setup_lapic(int vcpu_fd)
{
	struct kvm_lapic_state l;
	uint32_t v;

	if (ioctl(vcpu_fd, KVM_GET_LAPIC, &l) < 0)
		return -errno;
	memcpy(&v, &l.regs[APIC_LVT0], 4);
	v = (v & ~0x700u & ~0x10000u) | APIC_MODE_EXTINT;
	memcpy(&l.regs[APIC_LVT0], &v, 4);
	memcpy(&v, &l.regs[APIC_LVT1], 4);
	v = (v & ~0x700u & ~0x10000u) | APIC_MODE_NMI;
	memcpy(&l.regs[APIC_LVT1], &v, 4);
	if (ioctl(vcpu_fd, KVM_SET_LAPIC, &l) < 0)
		return -errno;
	return 0;
}

void kvm_dump_regs(int vcpu_fd, int id)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	if (ioctl(vcpu_fd, KVM_GET_REGS, &r) < 0 || ioctl(vcpu_fd, KVM_GET_SREGS, &s) < 0) {
		fprintf(stderr, "amber: vCPU %d: registers unavailable: %s\r\n", id, strerror(errno));
		return;
	}
	fprintf(stderr,
		"amber: vCPU %d registers:\r\n"
		"  rip %016llx  rsp %016llx  rflags %016llx\r\n"
		"  rax %016llx  rbx %016llx  rcx %016llx  rdx %016llx\r\n"
		"  rsi %016llx  rdi %016llx  rbp %016llx\r\n"
		"  r8  %016llx  r9  %016llx  r10 %016llx  r11 %016llx\r\n"
		"  r12 %016llx  r13 %016llx  r14 %016llx  r15 %016llx\r\n"
		"  cr0 %016llx  cr2 %016llx  cr3 %016llx  cr4 %016llx  efer %016llx\r\n"
		"  cs %04x base %016llx  ss %04x  ds %04x  es %04x  fs %04x  gs %04x\r\n",
		id, (unsigned long long)r.rip, (unsigned long long)r.rsp, (unsigned long long)r.rflags,
		(unsigned long long)r.rax, (unsigned long long)r.rbx, (unsigned long long)r.rcx,
		(unsigned long long)r.rdx, (unsigned long long)r.rsi, (unsigned long long)r.rdi,
		(unsigned long long)r.rbp, (unsigned long long)r.r8, (unsigned long long)r.r9,
		(unsigned long long)r.r10, (unsigned long long)r.r11, (unsigned long long)r.r12,
		(unsigned long long)r.r13, (unsigned long long)r.r14, (unsigned long long)r.r15,
		(unsigned long long)s.cr0, (unsigned long long)s.cr2, (unsigned long long)s.cr3,
		(unsigned long long)s.cr4, (unsigned long long)s.efer, s.cs.selector,
		(unsigned long long)s.cs.base, s.ss.selector, s.ds.selector, s.es.selector,
		s.fs.selector, s.gs.selector);
}
