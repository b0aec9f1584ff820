# realmode: drops from 32-bit protected mode to 16-bit protected mode and then to real mode,
# following Intel SDM Vol. 3A, 10.9.2 "Switching Back to Real-Address Mode", and from real
# mode checks CR0.PE is clear, checks segment:offset addressing (a word written through
# DS=0x0700 reads back through ES=0 at the linear address), uses the real-mode stack, prints
# "realmode: PASS" to COM1 and exits with status 0 through isa-debug-exit. A failed check
# prints "realmode: FAIL <what>" and exits with 1.
#
# The 16-bit code is position-independent with respect to its segment base: it is copied to
# RM_BASE (below 640 KiB) and runs with CS base RM_BASE, in 16-bit protected mode (a
# descriptor with that base) and in real mode (CS = RM_BASE >> 4) alike, so every address in
# it is an offset from rm_start.

	.include "common.inc"
	MULTIBOOT_HEADER (MB_PAGE_ALIGN | MB_MEMORY_INFO)

.set RM_BASE,     0x7000            # where the 16-bit code runs; the stack grows down from it
.set RM_SEG,      RM_BASE >> 4
.set CR0_PE,      1 << 0
.set SEL_CODE16,  0x08              # 16-bit code, base RM_BASE, limit 0xFFFF
.set SEL_DATA16,  0x10              # 16-bit data, base 0, limit 0xFFFF
.set SEL_CODE32,  0x18
.set SEL_DATA32,  0x20

	.code32
	.text
	.globl _start
_start:
	mov $stack_top, %esp
	PUTS32 "realmode: start\n"
	lgdt gdt_ptr
	ljmp $SEL_CODE32, $1f
1:	mov $SEL_DATA32, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %fs
	mov %ax, %gs
	mov %ax, %ss

	# Copy the 16-bit code below 1 MiB, where real mode can reach it.
	mov $rm_start, %esi
	mov $RM_BASE, %edi
	mov $rm_end - rm_start, %ecx
	cld
	rep movsb
	PUTS32 "realmode: to 16-bit protected mode\n"
	# Step 3: far jump to a 16-bit code segment with a 64 KiB limit.
	ljmp $SEL_CODE16, $rm_pm16 - rm_start

# ---------------------------------------------------------------------------------------------
	.code16
rm_start:
rm_pm16:
	# Step 4: segment registers get 16-bit, 64 KiB, expand-up, writable descriptors.
	mov $SEL_DATA16, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %fs
	mov %ax, %gs
	mov %ax, %ss
	# Step 5: the real-mode interrupt vector table (DS base is 0 here: a linear address).
	lidt RM_BASE + rm_ivt_ptr - rm_start
	# Step 6: clear CR0.PE (paging is already off).
	mov %cr0, %eax
	and $~CR0_PE, %eax
	mov %eax, %cr0
	# Step 7: far jump to real-mode code.
	ljmp $RM_SEG, $rm_real - rm_start

rm_real:
	# Step 8: real-mode segments and stack. Interrupts stay off: nothing installed an IVT.
	mov %cs, %ax
	mov %ax, %ds
	xor %ax, %ax
	mov %ax, %es
	mov %ax, %ss
	mov $RM_BASE, %sp

	mov $rm_msg_real - rm_start, %si
	call rm_puts

	# CR0.PE must read back clear.
	mov %cr0, %eax
	test $CR0_PE, %al
	mov $rm_fail_pe - rm_start, %si
	jnz rm_fail

	# Segment arithmetic: DS:offset and ES:(RM_BASE + offset) name the same byte.
	movw $0x5AA5, rm_scratch - rm_start
	mov %es:RM_BASE + rm_scratch - rm_start, %bx
	cmp $0x5AA5, %bx
	mov $rm_fail_seg - rm_start, %si
	jne rm_fail

	# The stack: a push, a call (already used above) and a pop.
	mov $0x1234, %ax
	push %ax
	xor %ax, %ax
	pop %ax
	cmp $0x1234, %ax
	mov $rm_fail_stack - rm_start, %si
	jne rm_fail

	mov $rm_msg_pass - rm_start, %si
	call rm_puts
	xor %eax, %eax
	out %eax, $DEBUG_EXIT_PORT      # OUT imm8, EAX (operand-size prefix in 16-bit code)
	jmp rm_halt

rm_fail:
	push %si
	mov $rm_msg_fail - rm_start, %si
	call rm_puts
	pop %si
	call rm_puts
	mov $1, %eax
	out %eax, $DEBUG_EXIT_PORT
rm_halt:
	cli
1:	hlt
	jmp 1b

# rm_puts writes the NUL-terminated string at DS:SI to COM1 (bounded wait for THRE).
rm_puts:
	push %ax
	push %cx
	push %dx
	push %si
1:	lodsb
	test %al, %al
	jz 4f
	mov %al, %ah
	mov $0xFFFF, %cx
	mov $COM1_LSR, %dx
2:	in %dx, %al
	test $LSR_THRE, %al
	jnz 3f
	loop 2b
3:	mov %ah, %al
	mov $COM1, %dx
	out %al, %dx
	jmp 1b
4:	pop %si
	pop %dx
	pop %cx
	pop %ax
	ret

	.balign 4
rm_ivt_ptr:
	.word 0x3FF                     # 256 four-byte vectors at linear address 0
	.long 0
rm_scratch:
	.word 0
rm_msg_real:
	.asciz "realmode: in real mode\n"
rm_msg_pass:
	.asciz "realmode: PASS\n"
rm_msg_fail:
	.asciz "realmode: FAIL "
rm_fail_pe:
	.asciz "CR0.PE still set\n"
rm_fail_seg:
	.asciz "segment addressing\n"
rm_fail_stack:
	.asciz "stack\n"
rm_end:

# ---------------------------------------------------------------------------------------------
	.section .rodata
	.balign 8
# Intel SDM Vol. 3A, 3.4.5 "Segment Descriptors".
gdt:
	.quad 0                         # null
	.if RM_BASE != 0x7000
	.error "the 16-bit code descriptor below hard-codes RM_BASE"
	.endif
	.quad 0x00009A007000FFFF        # 0x08: 16-bit code, base 0x7000 (RM_BASE), limit 0xFFFF
	.quad 0x000092000000FFFF        # 0x10: 16-bit data, base 0, limit 0xFFFF
	.quad 0x00CF9A000000FFFF        # 0x18: flat 32-bit code
	.quad 0x00CF92000000FFFF        # 0x20: flat 32-bit data
gdt_end:
gdt_ptr:
	.word gdt_end - gdt - 1
	.long gdt
