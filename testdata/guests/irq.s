# irq: interrupts from the emulated PC platform. Programs the 8259 pair (vectors 0x20-0x2F,
# only IRQ 0 unmasked) and the 8254's counter 0 as a 100 Hz rate generator, installs an IDT
# whose vector 0x20 handler counts ticks and sends the PIC an EOI, then sleeps in HLT until 20
# ticks have arrived. It also reads the CMOS RTC's seconds register. Prints "irq: PASS" and
# exits with 0; with no interrupts it would sleep forever (the test waits with a deadline).

	.include "common.inc"
	MULTIBOOT_HEADER (MB_PAGE_ALIGN | MB_MEMORY_INFO)

# 8259A: ICW1 edge/cascade/ICW4, ICW2 vector base, ICW3 wiring, ICW4 8086 mode, OCW1 mask,
# OCW2 non-specific EOI. 8259A datasheet, "Initialization Command Words".
.set PIC1_CMD, 0x20
.set PIC1_DATA, 0x21
.set PIC2_CMD, 0xA0
.set PIC2_DATA, 0xA1
.set PIC_EOI, 0x20
# 8254: control word counter 0, LSB then MSB, mode 2, binary. 82C54 datasheet, "Control Word".
.set PIT_CH0, 0x40
.set PIT_CMD, 0x43
.set PIT_100HZ, 11932                   # 1193182 Hz / 100
.set TICKS, 20

	.code32
	.text
	.globl _start
_start:
	mov $stack_top, %esp
	PUTS32 "irq: start\n"

	# IDT: 256 interrupt gates, all to a handler that reports an unexpected vector, except
	# vector 0x20 (IRQ 0). Intel SDM Vol. 3A, 6.11 "IDT Descriptors".
	mov %cs, %ebx
	shl $16, %ebx                   # selector in bits 31:16 of the low dword
	xor %ecx, %ecx
1:	mov $unexpected, %eax
	cmp $0x20, %ecx
	jne 2f
	mov $tick, %eax
2:	mov %eax, %edx
	and $0xFFFF, %eax
	or %ebx, %eax                   # offset 15:0 | selector
	mov %eax, idt(,%ecx,8)
	and $0xFFFF0000, %edx
	or $0x8E00, %edx                # present, DPL 0, 32-bit interrupt gate
	mov %edx, idt+4(,%ecx,8)
	inc %ecx
	cmp $256, %ecx
	jne 1b
	lidt idtr

	# PIC: remap to 0x20/0x28, mask everything but IRQ 0.
	mov $0x11, %al
	out %al, $PIC1_CMD
	out %al, $PIC2_CMD
	mov $0x20, %al
	out %al, $PIC1_DATA
	mov $0x28, %al
	out %al, $PIC2_DATA
	mov $4, %al
	out %al, $PIC1_DATA
	mov $2, %al
	out %al, $PIC2_DATA
	mov $1, %al
	out %al, $PIC1_DATA
	out %al, $PIC2_DATA
	mov $0xFE, %al
	out %al, $PIC1_DATA
	mov $0xFF, %al
	out %al, $PIC2_DATA

	# PIT counter 0: 100 Hz.
	mov $0x34, %al
	out %al, $PIT_CMD
	mov $(PIT_100HZ & 0xFF), %al
	out %al, $PIT_CH0
	mov $(PIT_100HZ >> 8), %al
	out %al, $PIT_CH0

	PUTS32 "irq: waiting for ticks\n"
	sti
3:	hlt
	cmpl $TICKS, ticks
	jb 3b
	cli
	PUTS32 "irq: ticks "
	mov ticks, %eax
	call puthex32
	PUTS32 "\n"

	# CMOS RTC: status register A's divider must be running and the seconds a BCD value.
	mov $0x0A, %al
	out %al, $0x70
	in $0x71, %al
	and $0x70, %al
	cmp $0x20, %al                  # DV = 010: 32.768 kHz time base
	jne bad_rtc
	PUTS32 "irq: PASS\n"
	xor %eax, %eax
	jmp exit

bad_rtc:
	PUTS32 "irq: FAIL rtc register A divider\n"
	mov $1, %eax
	jmp exit

tick:
	push %eax
	incl ticks
	mov $PIC_EOI, %al
	out %al, $PIC1_CMD
	pop %eax
	iret

unexpected:
	PUTS32 "irq: FAIL unexpected interrupt\n"
	mov $1, %eax
	jmp exit

	.data
	.align 8
idtr:	.word 256*8-1
	.long idt
ticks:	.long 0
	.bss
	.align 8
idt:	.space 256*8
