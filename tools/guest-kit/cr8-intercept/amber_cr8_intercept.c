// SPDX-License-Identifier: GPL-2.0
/*
 * amber_cr8_intercept: keep KVM/SVM's CR8-write intercept on, for the nested test machine.
 *
 * Why: QEMU 7.2's TCG SVM emulation, on a guest CR8 write while a virtual interrupt is
 * pending and CR8 writes are not intercepted, calls cpu_interrupt() without the iothread
 * lock and aborts (tcg_handle_interrupt assertion). EDK2 (OVMF) writes CR8 in every
 * interrupt handler, so UEFI guests of an inner VMM kill the outer QEMU. KVM drops the
 * intercept in svm_update_cr8_intercept() whenever the in-kernel LAPIC has tpr < irr or no
 * pending interrupt (irr == -1).
 *
 * How: a kprobe on svm_update_cr8_intercept(vcpu, tpr, irr) rewrites its arguments to
 * tpr = 15, irr = 0 so the function always ends in svm_set_intercept(INTERCEPT_CR8_WRITE).
 * Its other checks (SEV-ES, nested TPR virtualization) still run. With the intercept on,
 * KVM emulates every CR8 write itself (cr8_write_interception): guests see the same TPR.
 * Load after kvm_amd. Only for the test machine; never for production hosts.
 */
#include <linux/kprobes.h>
#include <linux/module.h>

static int cr8_pre(struct kprobe *p, struct pt_regs *regs)
{
	/* x86-64 SysV: rdi = vcpu, esi = tpr, edx = irr */
	regs->si = 15;
	regs->dx = 0;
	return 0;
}

static struct kprobe cr8_kp = {
	.symbol_name = "svm_update_cr8_intercept",
	.pre_handler = cr8_pre,
};

static int __init cr8_init(void)
{
	int ret = register_kprobe(&cr8_kp);

	if (ret < 0) {
		pr_err("amber_cr8_intercept: kprobe on svm_update_cr8_intercept: %d (kvm_amd loaded?)\n",
		       ret);
		return ret;
	}
	pr_info("amber_cr8_intercept: CR8-write intercept kept on\n");
	return 0;
}

static void __exit cr8_exit(void)
{
	unregister_kprobe(&cr8_kp);
}

module_init(cr8_init);
module_exit(cr8_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Keep SVM CR8-write intercept on (works around QEMU 7.2 TCG abort with nested OVMF)");
