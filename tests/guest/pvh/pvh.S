/*
 * A tiny freestanding PVH guest for amber's tests: entered in 32-bit
 * protected mode with %ebx = hvm_start_info. It prints a marker on COM1,
 * then either powers off through ACPI PM1a_CNT (S5) or, when built with
 * -DTRIPLE_FAULT, loads an empty IDT and faults (a triple fault).
 *
 * Built with -DGDB_GUEST (pvh_gdb, for tests/guest/gdb_*.sh) it goes on to
 * 64-bit long mode with paging, runs a loop gdb can watch, then spins until
 * gdb writes gdb_release, and powers off. The linked ELF is gdb's symbol
 * file; the symbols the tests use:
 *   pvh_start, pvh_after_cld   entry point, the instruction after it
 *   gdb_loop                   the counting loop: gdb_counter = 1..GDB_LOOPS,
 *                              gdb_tick() called once per iteration
 *   gdb_hw_target              called once after the loop
 *   gdb_own_int3               an int3 of the guest's own after the loop: its
 *                              #BP handler prints "own int3 handled" and goes on
 *   gdb_spin .. gdb_spin_end   the spin loop; gdb_spins counts its rounds; it
 *                              ends when gdb writes gdb_release, or after
 *                              gdb_spin_limit rounds if gdb wrote that
 *   gdb_pattern                16 known bytes (00 11 22 .. ff)
 * Paging: the first 1 GiB identity mapped with 2 MiB pages, and the same
 * 1 GiB again at GDB_ALIAS (0xffffffff80000000) like a kernel's high half,
 * so reading GDB_ALIAS + x through the page tables gives the bytes at x.
 * Any other #BP, and any #DB, that reaches the guest prints "PVH-GUEST: #BP
 * reached the guest" (or #DB) and powers off: a debugger trap that KVM did
 * not intercept shows up as a clean marker, not as a triple fault.
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
	.globl pvh_after_cld
pvh_after_cld:
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
#ifdef GDB_GUEST
	jmp gdb_enter_long_mode
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

#ifdef GDB_GUEST
#define GDB_LOOPS	5
#define CR4_PAE		(1 << 5)
#define CR0_PG		(1 << 31)
#define MSR_EFER	0xc0000080
#define EFER_LME	(1 << 8)

gdb_enter_long_mode:
	/* PD: 512 x 2 MiB pages (P|RW|PS) from physical 0 */
	mov $gdb_pd, %edi
	xor %eax, %eax
	mov $512, %ecx
4:	mov %eax, %edx
	or $0x83, %edx
	mov %edx, (%edi)
	movl $0, 4(%edi)
	add $0x200000, %eax
	add $8, %edi
	loop 4b
	/* PML4[0] -> PDPT[0] -> PD (identity); PML4[511] -> PDPT_hi[510] -> PD */
	movl $gdb_pdpt + 3, gdb_pml4
	movl $gdb_pdpt_hi + 3, gdb_pml4 + 511 * 8
	movl $gdb_pd + 3, gdb_pdpt
	movl $gdb_pd + 3, gdb_pdpt_hi + 510 * 8
	/* Intel SDM Vol. 3 §9.8.5: PAE, CR3, EFER.LME, then CR0.PG */
	mov %cr4, %eax
	or $CR4_PAE, %eax
	mov %eax, %cr4
	mov $gdb_pml4, %eax
	mov %eax, %cr3
	mov $MSR_EFER, %ecx
	rdmsr
	or $EFER_LME, %eax
	wrmsr
	mov %cr0, %eax
	or $CR0_PG, %eax
	mov %eax, %cr0
	lgdt gdb_gdt_ptr
	ljmp $0x08, $gdb_long

	.code64
gdb_long:
	mov $0x10, %eax
	mov %eax, %ds
	mov %eax, %es
	mov %eax, %ss
	mov $0x80000, %rsp
	mov $msg_long, %rsi
	call puts64
	/* IDT: #DB (1) and #BP (3); everything else still triple-faults */
	mov $gdb_db_handler, %eax
	mov $gdb_idt + 1 * 16, %edi
	call set_gate
	mov $gdb_bp_handler, %eax
	mov $gdb_idt + 3 * 16, %edi
	call set_gate
	lidt gdb_idt_ptr
	xor %ebx, %ebx
	.globl gdb_loop
gdb_loop:
	inc %rbx
	mov %rbx, gdb_counter(%rip)
	call gdb_tick
	cmp $GDB_LOOPS, %rbx
	jb gdb_loop
	call gdb_hw_target
	.globl gdb_own_int3
gdb_own_int3:
	int3
gdb_own_int3_next:
	mov $msg_loop_done, %rsi
	call puts64
	.globl gdb_spin
gdb_spin:
	incq gdb_spins(%rip)
	cmpl $0, gdb_release(%rip)
	jne gdb_spin_end
	mov gdb_spin_limit(%rip), %rax	/* 0: spin until released */
	test %rax, %rax
	jz gdb_spin
	cmp %rax, gdb_spins(%rip)
	jb gdb_spin
	.globl gdb_spin_end
gdb_spin_end:
	mov $msg_released, %rsi
	call puts64
	mov $PM1A_CNT, %dx
	mov $SLP_EN, %ax
	out %ax, %dx
5:	hlt
	jmp 5b

/* 64-bit interrupt gate (Intel SDM Vol. 3 §6.14.1): handler %eax, entry at %edi */
set_gate:
	mov %ax, (%rdi)
	movw $0x08, 2(%rdi)
	movw $0x8e00, 4(%rdi)
	shr $16, %eax
	mov %ax, 6(%rdi)
	movq $0, 8(%rdi)
	ret

gdb_bp_handler:
	cmpq $gdb_own_int3_next, (%rsp)	/* #BP is a trap: rip after the int3 */
	jne 8f
	push %rsi
	push %rdx
	push %rax
	mov $msg_own_int3, %rsi
	call puts64
	pop %rax
	pop %rdx
	pop %rsi
	iretq
8:	mov $msg_bp, %rsi
	jmp 9f
gdb_db_handler:
	mov $msg_db, %rsi
9:	call puts64
	mov $PM1A_CNT, %dx
	mov $SLP_EN, %ax
	out %ax, %dx
	jmp 5b

	.globl gdb_tick
gdb_tick:
	incq gdb_ticks(%rip)
	ret

	.globl gdb_hw_target
gdb_hw_target:
	nop
	ret

puts64:
	mov $COM1, %dx
6:	lodsb
	test %al, %al
	jz 7f
	out %al, %dx
	jmp 6b
7:	ret
	.code32
#endif

	.data
msg:	.asciz "PVH-GUEST: hello from 32-bit protected mode\n"
msg_bad: .asciz "PVH-GUEST: bad start_info magic\n"
	.align 8
idt_empty:
	.word 0
	.long 0

#ifdef GDB_GUEST
msg_long:	.asciz "PVH-GUEST: long mode\n"
msg_loop_done:	.asciz "PVH-GUEST: loop done\n"
msg_released:	.asciz "PVH-GUEST: released by gdb\n"
msg_own_int3:	.asciz "PVH-GUEST: own int3 handled\n"
msg_bp:		.asciz "PVH-GUEST: #BP reached the guest\n"
msg_db:		.asciz "PVH-GUEST: #DB reached the guest\n"
	.align 8
	.globl gdb_counter, gdb_ticks, gdb_spins, gdb_release, gdb_spin_limit, gdb_pattern
gdb_counter:	.quad 0
gdb_ticks:	.quad 0
gdb_spins:	.quad 0
gdb_release:	.long 0
	.align 8
gdb_spin_limit:	.quad 0
	.align 16
gdb_pattern:
	.byte 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77
	.byte 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff
	.align 8
gdb_gdt:
	.quad 0
	.quad 0x00af9a000000ffff	/* 0x08: 64-bit code */
	.quad 0x00cf92000000ffff	/* 0x10: data */
gdb_gdt_end:
gdb_gdt_ptr:
	.word gdb_gdt_end - gdb_gdt - 1
	.long gdb_gdt
	.align 8
gdb_idt_ptr:
	.word 4 * 16 - 1
	.quad gdb_idt
	.align 16
gdb_idt:	.fill 4 * 16, 1, 0
	.align 4096
gdb_pml4:	.fill 4096, 1, 0
gdb_pdpt:	.fill 4096, 1, 0
gdb_pdpt_hi:	.fill 4096, 1, 0
gdb_pd:		.fill 4096, 1, 0
#endif
