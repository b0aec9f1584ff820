# lib.s: 32-bit protected-mode helpers linked into every guest: COM1 output, hex numbers,
# exit through isa-debug-exit, and the boot stack. All routines preserve every register
# (EFLAGS excepted) unless they say otherwise.

	.include "common.inc"

	.code32
	.text

# putc writes AL to COM1 once the transmitter holding register is empty. The wait is bounded,
# so a UART that never reports THRE slows the guest down instead of hanging it.
	.globl putc
putc:
	push %ecx
	push %edx
	push %eax
	mov $0x10000, %ecx
	mov $COM1_LSR, %dx
1:	in %dx, %al
	test $LSR_THRE, %al
	jnz 2f
	loop 1b
2:	pop %eax
	mov $COM1, %dx
	out %al, %dx
	pop %edx
	pop %ecx
	ret

# puts writes the NUL-terminated string at ESI to COM1.
	.globl puts
puts:
	push %esi
	push %eax
1:	lodsb
	test %al, %al
	jz 2f
	call putc
	jmp 1b
2:	pop %eax
	pop %esi
	ret

# puthex32 writes EAX as "0x" and 8 hexadecimal digits.
	.globl puthex32
puthex32:
	push %eax
	push %ecx
	push %edx
	mov %eax, %edx
	mov $'0', %al
	call putc
	mov $'x', %al
	call putc
	mov $8, %ecx
1:	rol $4, %edx
	mov %dl, %al
	and $0xf, %al
	add $'0', %al
	cmp $'9', %al
	jbe 2f
	add $('a' - '9' - 1), %al
2:	call putc
	loop 1b
	pop %edx
	pop %ecx
	pop %eax
	ret

# exit ends the VM through isa-debug-exit with the value in EAX (the VM's status is
# (EAX<<1)|1). If no device is there, it halts for good with interrupts off.
	.globl exit, halt
exit:
	out %eax, $DEBUG_EXIT_PORT
halt:
	cli
1:	hlt
	jmp 1b

# The boot stack, 16 KiB.
	.bss
	.balign 16
	.globl stack_top
stack:
	.skip 16384
stack_top:
