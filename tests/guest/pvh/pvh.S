/*
 * A tiny freestanding PVH guest for amber's tests: entered in 32-bit
 * protected mode with %ebx = hvm_start_info. It prints a marker on COM1,
 * then either powers off through ACPI PM1a_CNT (S5) or, when built with
 * -DTRIPLE_FAULT, loads an empty IDT and faults (a triple fault).
 */
#define COM1       0x3f8
#define PM1A_CNT   0x604	/* PORT_ACPI_PM_BASE + 4 */
#define SLP_EN     (1 << 13)

	.section .note.Xen, "a"
	.align 4
	.long 4				/* name size */
	.long 4				/* desc size */
	.long 18			/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long pvh_start

	.text
	.code32
	.globl pvh_start
pvh_start:
	cld
	mov $0x80000, %esp		/* PVH enters without a stack */
	/* the start_info magic proves the loader handed us %ebx */
	cmpl $0x336ec578, (%ebx)
	jne bad_magic
	mov $msg, %esi
	call puts
#ifdef TRIPLE_FAULT
	lidt idt_empty
	int3				/* #BP -> #GP -> #DF -> shutdown */
#endif
	mov $PM1A_CNT, %dx
	mov $SLP_EN, %ax		/* SLP_TYP 0 = S5 on amber's PIIX4 PM */
	out %ax, %dx
1:	hlt
	jmp 1b

bad_magic:
	mov $msg_bad, %esi
	call puts
	jmp 1b

puts:
	mov $COM1, %dx
2:	lodsb
	test %al, %al
	jz 3f
	out %al, %dx
	jmp 2b
3:	ret

	.data
msg:	.asciz "PVH-GUEST: hello from 32-bit protected mode\n"
msg_bad: .asciz "PVH-GUEST: bad start_info magic\n"
	.align 8
idt_empty:
	.word 0
	.long 0
