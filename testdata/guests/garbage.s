# garbage: executes bytes that are not valid instructions, one block after another, with an
# IDT of its own: every block must raise the expected exception in the guest, at the block's
# address. A hypervisor that intercepts #UD (or tries to emulate what it cannot decode) must
# reflect the exception back, not crash, loop or skip the bytes.
#
# Each delivered exception prints "garbage: vector <v> at <eip> ok"; when all arrived as
# expected it prints "garbage: PASS" and exits with status 0. An exception other than the
# expected one (or at another address), or running past a block, prints "garbage: FAIL ..."
# and exits with 1.

	.include "common.inc"
	MULTIBOOT_HEADER (MB_PAGE_ALIGN | MB_MEMORY_INFO)

.set SEL_CODE32,  0x08
.set SEL_DATA32,  0x10
.set VEC_UD,      6                 # invalid opcode
.set VEC_GP,      13                # general protection
.set IDT_VECTORS, 32
.set GATE_INTR32, 0x8E00            # P=1, DPL=0, type 0xE (32-bit interrupt gate)

	.code32
	.text
	.globl _start
_start:
	mov $stack_top, %esp
	PUTS32 "garbage: start\n"
	lgdt gdt_ptr
	ljmp $SEL_CODE32, $1f
1:	mov $SEL_DATA32, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %fs
	mov %ax, %gs
	mov %ax, %ss

	# IDT: 32-bit interrupt gates. Intel SDM Vol. 3A, 6.11 "IDT Descriptors".
	mov $idt, %edi
	mov $isr_table, %esi
	mov $IDT_VECTORS, %ecx
1:	mov (%esi), %eax
	mov %ax, (%edi)                 # offset 15:0
	movw $SEL_CODE32, 2(%edi)
	movw $GATE_INTR32, 4(%edi)
	shr $16, %eax
	mov %ax, 6(%edi)                # offset 31:16
	add $8, %edi
	add $4, %esi
	loop 1b
	lidt idt_ptr

	xor %ebp, %ebp                  # EBP = the block being run; exceptions leave it alone
run_block:
	cmp $NBLOCKS, %ebp
	jae all_done
	mov %ebp, %eax
	PUTS32 "garbage: block "
	call puthex32
	PUTS32 "\n"
	jmp *blocks(, %ebp, 8)

all_done:
	PUTS32 "garbage: PASS\n"
	xor %eax, %eax
	jmp exit

# The blocks. Each is followed by a jump to ran_past, which a correct machine never reaches.
g_ud0:
	.byte 0x0F, 0xFF, 0xC0          # UD0 EAX, EAX: #UD
	jmp ran_past
g_ud2:
	.byte 0x0F, 0x0B                # UD2: #UD
	jmp ran_past
g_grp5:
	.byte 0xFF, 0xFF                # group 5, ModRM.reg = 7: reserved, #UD
	jmp ran_past
g_lock:
	.byte 0xF0, 0x90                # LOCK NOP: LOCK on a non-memory instruction, #UD
	jmp ran_past
g_movcr1:
	.byte 0x0F, 0x20, 0xC8          # MOV EAX, CR1: reserved control register, #UD
	jmp ran_past
g_toolong:
	.fill 15, 1, 0x66               # 15 operand-size prefixes and a NOP: 16 bytes, over the
	.byte 0x90                      # 15-byte instruction limit, #GP(0)
	jmp ran_past
g_swapgs:
	.byte 0x0F, 0x01, 0xF8          # SWAPGS outside 64-bit mode: #UD
	jmp ran_past

ran_past:
	PUTS32 "garbage: FAIL ran past block "
	mov %ebp, %eax
	call puthex32
	PUTS32 "\n"
	mov $1, %eax
	jmp exit

# ISR v: pushes a zero error code where the processor pushes none, then the vector.
.macro ISR v
isr_\v:
	.if !((\v == 8) || (\v >= 10 && \v <= 14) || (\v == 17) || (\v == 21) || (\v == 29) || (\v == 30))
	pushl $0
	.endif
	pushl $\v
	jmp isr_common
.endm
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	ISR \v
	.endr

# Stack: vector, error code, EIP, CS, EFLAGS.
isr_common:
	PUTS32 "garbage: vector "
	mov (%esp), %eax
	call puthex32
	PUTS32 " at "
	mov 8(%esp), %eax
	call puthex32
	mov (%esp), %eax
	cmp blocks + 4(, %ebp, 8), %eax
	jne 1f
	mov 8(%esp), %eax
	cmp blocks(, %ebp, 8), %eax
	jne 1f
	PUTS32 " ok\n"
	inc %ebp
	mov $stack_top, %esp
	jmp run_block
1:	PUTS32 " FAIL want vector "
	mov blocks + 4(, %ebp, 8), %eax
	call puthex32
	PUTS32 " at "
	mov blocks(, %ebp, 8), %eax
	call puthex32
	PUTS32 "\n"
	mov $1, %eax
	jmp exit

	.section .rodata
	.balign 8
# (address, expected vector) per block.
blocks:
	.long g_ud0, VEC_UD
	.long g_ud2, VEC_UD
	.long g_grp5, VEC_UD
	.long g_lock, VEC_UD
	.long g_movcr1, VEC_UD
	.long g_toolong, VEC_GP
	.long g_swapgs, VEC_UD
blocks_end:
.set NBLOCKS, (blocks_end - blocks) / 8
gdt:
	.quad 0
	.quad 0x00CF9A000000FFFF        # 0x08: flat 32-bit code
	.quad 0x00CF92000000FFFF        # 0x10: flat 32-bit data
gdt_end:
gdt_ptr:
	.word gdt_end - gdt - 1
	.long gdt
idt_ptr:
	.word IDT_VECTORS * 8 - 1
	.long idt
isr_table:
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.long isr_\v
	.endr

	.bss
	.balign 8
idt:
	.skip IDT_VECTORS * 8
