/*
 * echoguest.S: the 512-byte boot sector the rig's own tests boot (echoguest_test.go holds the
 * assembled bytes). It proves the harness, not the kernel: it sets COM1 to 115200 8N1, prints
 * "rigtest: ready", then reads COM1 forever:
 *   'X' d  writes digit d to QEMU's isa-debug-exit (port 0xf4) and "Shutdown" to Bochs's
 *          port 0x8900, after draining the transmitter;
 *   'T'    triple-faults (empty IDT, then int3);
 *   'M'    executes Bochs's magic breakpoint (xchg bx,bx) and prints "rigtest: magic";
 *   '\r'   prints "\r\n"; any other byte is echoed.
 * The receive trigger level is 1 byte, not 14: Bochs 2.7 raises LSR.DR when its FIFO
 * character timeout fires even if the guest has emptied the FIFO meanwhile, and a guest that
 * then reads RBR gets a spurious 0x00 (a few per thousand bytes typed). With trigger level 1
 * the timeout is never armed.
 * Regenerate: as --32 -o e.o echoguest.S && ld -m elf_i386 -Ttext 0 --oformat binary -o e.bin e.o
 */
	.code16
	.org 0
start:
	cli
	cld
	xorw %ax, %ax
	movw %ax, %ds
	movw %ax, %ss
	movw $0x7c00, %sp
	ljmp $0, $0x7c00 + (1f - start)
1:
	movw $0x3f9, %dx
	xorb %al, %al
	outb %al, %dx          /* IER = 0 */
	movw $0x3fb, %dx
	movb $0x80, %al
	outb %al, %dx          /* LCR = DLAB */
	movw $0x3f8, %dx
	movb $1, %al
	outb %al, %dx          /* DLL = 1: 115200 */
	movw $0x3f9, %dx
	xorb %al, %al
	outb %al, %dx          /* DLM = 0 */
	movw $0x3fb, %dx
	movb $3, %al
	outb %al, %dx          /* LCR = 8N1 */
	movw $0x3fa, %dx
	movb $0x07, %al
	outb %al, %dx          /* FCR: FIFOs on and cleared, receive trigger 1 byte (see below) */
	movw $0x3fc, %dx
	movb $3, %al
	outb %al, %dx          /* MCR = DTR|RTS */
	movw $0x7c00 + (ready - start), %si
	call puts
loop:
	call getc
	cmpb $'X', %al
	je exit
	cmpb $'T', %al
	je triple
	cmpb $'M', %al
	je magic
	cmpb $'\r', %al
	jne 2f
	movw $0x7c00 + (crlf - start), %si
	call puts
	jmp loop
2:
	call putc
	jmp loop
magic:
	xchgw %bx, %bx
	movw $0x7c00 + (magicmsg - start), %si
	call puts
	jmp loop
triple:
	lidt 0x7c00 + (zeroidt - start)
	int3
exit:
	call getc
	subb $'0', %al
	pushw %ax
	movw $0x3fd, %dx
8:
	inb %dx, %al
	testb $0x40, %al       /* LSR.TEMT: transmitter empty */
	jz 8b
	popw %ax
	outb %al, $0xf4
	movw $0x8900, %dx
	movw $0x7c00 + (shutdown - start), %si
3:
	lodsb
	testb %al, %al
	jz 4f
	outb %al, %dx
	jmp 3b
4:
	cli
	hlt
	jmp 4b
getc:
	movw $0x3fd, %dx
5:
	inb %dx, %al
	testb $1, %al
	jz 5b
	movw $0x3f8, %dx
	inb %dx, %al
	ret
putc:
	pushw %ax
	movw $0x3fd, %dx
6:
	inb %dx, %al
	testb $0x20, %al
	jz 6b
	popw %ax
	movw $0x3f8, %dx
	outb %al, %dx
	ret
puts:
	lodsb
	testb %al, %al
	jz 7f
	call putc
	jmp puts
7:
	ret
zeroidt:
	.word 0
	.long 0
ready:
	.asciz "rigtest: ready\r\n"
crlf:
	.asciz "\r\n"
magicmsg:
	.asciz "rigtest: magic\r\n"
shutdown:
	.asciz "Shutdown"
	.org 510
	.byte 0x55, 0xaa
