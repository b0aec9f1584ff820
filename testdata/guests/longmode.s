# longmode: switches itself from 32-bit protected mode to 64-bit mode, then checks what a
# hypervisor must get right for a 64-bit guest: CPUID, RDMSR/WRMSR (EFER, PAT, TSC), port
# I/O of every width to the test device's port and MMIO of every width to its registers
# (plain MOV, MOVZX, MOVSX/MOVSXD, ALU instructions with a memory operand, REP STOS/MOVS).
#
# Each failed check prints "longmode: FAIL <check> got <value> want <value>" and the guest
# carries on, so one run shows every failure. At the end it prints "longmode: PASS" and exits
# with status 0, or "longmode: FAIL <n> checks" and exits with 1. An unexpected exception
# prints "longmode: FAIL exception <vector> ..." and exits with 1.
#
# Under plain QEMU (no test device at 0xFEB00000 / port 0xE0) the pio and mmio checks fail
# and everything before them passes.

	.include "common.inc"
	MULTIBOOT_HEADER (MB_PAGE_ALIGN | MB_MEMORY_INFO)

# Intel SDM Vol. 3A, 2.5 "Control Registers"; 2.2.1 "Extended Feature Enable Register".
.set CR0_PG,        1 << 31
.set CR4_PAE,       1 << 5
.set MSR_TSC,       0x10            # IA32_TIME_STAMP_COUNTER
.set MSR_PAT,       0x277           # IA32_PAT
.set MSR_EFER,      0xC0000080      # IA32_EFER
.set EFER_SCE,      1 << 0
.set EFER_LME,      1 << 8
.set EFER_LMA,      1 << 10
.set PAT_RESET,     0x0007040600070406  # Intel SDM Vol. 3A, 12.12.4 "Programming the PAT"
.set PAT_TEST,      0x0007010600070106  # PA1 and PA5 changed from WT (04) to WC (01)
# CPUID.80000001H:EDX.LM[bit 29]; CPUID.01H:EDX TSC[4], MSR[5], PAE[6].
.set CPUID_LM_BIT,  29
.set CPUID1_EDX_TSC_MSR_PAE, (1 << 4) | (1 << 5) | (1 << 6)
# Intel SDM Vol. 3A, 4.5 "4-Level Paging": entry bits.
.set PTE_P,         1 << 0
.set PTE_W,         1 << 1
.set PTE_PWT,       1 << 3
.set PTE_PCD,       1 << 4
.set PTE_PS,        1 << 7          # in a page-directory entry: 2 MiB page
# Our GDT's selectors.
.set SEL_CODE64,    0x08
.set SEL_DATA,      0x10
.set SEL_CODE32,    0x18
# Test device registers (hv/dev/testdev).
.set TD_SCRATCH,    0x00            # 64-bit scratch
.set TD_COUNTER,    0x08            # 64-bit read-only access counter
.set TD_BUFFER,     0x10            # 64-byte scratch buffer
.set TD_BUFFER_QWORDS, 8

# CHECK name: compares RAX (got) with RDX (want); on a mismatch prints a FAIL line naming the
# check and counts it. Preserves every register but EFLAGS.
.macro CHECK name
	.pushsection .rodata
.Lcheck_\@: .asciz "\name"
	.popsection
	push %rsi
	lea .Lcheck_\@(%rip), %rsi
	call check
	pop %rsi
.endm

# PUTS64 str: prints a string literal. Preserves every register but EFLAGS.
.macro PUTS64 str
	.pushsection .rodata
.Lputs64_\@: .asciz "\str"
	.popsection
	push %rsi
	lea .Lputs64_\@(%rip), %rsi
	call puts64
	pop %rsi
.endm

	.code32
	.text
	.globl _start
_start:
	mov $stack_top, %esp
	PUTS32 "longmode: start\n"

	# Long mode must exist: CPUID.80000001H:EDX.LM.
	mov $0x80000000, %eax
	cpuid
	cmp $0x80000001, %eax
	jb no_long_mode
	mov $0x80000001, %eax
	cpuid
	bt $CPUID_LM_BIT, %edx
	jnc no_long_mode

	# Our own GDT (the loader's is not ours to rely on), then reload every segment.
	lgdt gdt_ptr
	ljmp $SEL_CODE32, $1f
1:	mov $SEL_DATA, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %fs
	mov %ax, %gs
	mov %ax, %ss

	# Identity-map the first 4 GiB with 2 MiB pages: PML4[0] -> PDPT, PDPT[0..3] -> four page
	# directories of 512 entries each. The top GiB (devices) is mapped uncached.
	xor %eax, %eax
	mov $pml4, %edi
	mov $(page_tables_end - pml4) / 4, %ecx
	cld
	rep stosl
	movl $(pdpt + PTE_P + PTE_W), pml4
	xor %ecx, %ecx
1:	mov %ecx, %eax
	shl $12, %eax
	add $(pd + PTE_P + PTE_W), %eax
	mov %eax, pdpt(, %ecx, 8)
	inc %ecx
	cmp $4, %ecx
	jb 1b
	xor %ecx, %ecx
1:	mov %ecx, %eax
	shl $21, %eax
	or $(PTE_P + PTE_W + PTE_PS), %eax
	cmp $3 * 512, %ecx
	jb 2f
	or $(PTE_PCD + PTE_PWT), %eax
2:	mov %eax, pd(, %ecx, 8)
	inc %ecx
	cmp $4 * 512, %ecx
	jb 1b

	# Intel SDM Vol. 3A, 10.8.5 "Initializing IA-32e Mode": PAE, CR3, EFER.LME, then CR0.PG
	# activates IA-32e mode (EFER.LMA); a far jump to a 64-bit code segment enters 64-bit mode.
	mov %cr4, %eax
	or $CR4_PAE, %eax
	mov %eax, %cr4
	mov $pml4, %eax
	mov %eax, %cr3
	mov $MSR_EFER, %ecx
	rdmsr
	or $EFER_LME, %eax
	wrmsr
	mov %cr0, %eax
	or $CR0_PG, %eax
	mov %eax, %cr0
	ljmp $SEL_CODE64, $long64

no_long_mode:
	PUTS32 "longmode: FAIL no long mode (CPUID 80000001H EDX.LM clear)\n"
	mov $1, %eax
	jmp exit

# ---------------------------------------------------------------------------------------------
	.code64
long64:
	mov $SEL_DATA, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov %ax, %fs
	mov %ax, %gs
	mov $stack_top, %esp            # zero-extends into RSP
	call setup_idt
	PUTS64 "longmode: in 64-bit mode\n"

	call test_cpuid
	call test_msr
	call test_pio
	call test_mmio

	mov fail_count(%rip), %eax
	test %eax, %eax
	jnz 1f
	PUTS64 "longmode: PASS\n"
	xor %eax, %eax
	out %eax, $DEBUG_EXIT_PORT
	jmp halt64
1:	PUTS64 "longmode: FAIL "
	call puthex64
	PUTS64 " checks\n"
	mov $1, %eax
	out %eax, $DEBUG_EXIT_PORT
halt64:
	cli
1:	hlt
	jmp 1b

check:
	cmp %rdx, %rax
	je 1f
	incl fail_count(%rip)
	PUTS64 "longmode: FAIL "
	call puts64
	PUTS64 " got "
	call puthex64
	PUTS64 " want "
	push %rax
	mov %rdx, %rax
	call puthex64
	pop %rax
	PUTS64 "\n"
1:	ret

# --- CPUID ------------------------------------------------------------------------------------
test_cpuid:
	push %rbx
	xor %eax, %eax
	cpuid
	mov %ebx, vendor(%rip)          # the vendor string is EBX, EDX, ECX
	mov %edx, vendor+4(%rip)
	mov %ecx, vendor+8(%rip)
	PUTS64 "longmode: cpuid vendor "
	push %rsi
	lea vendor(%rip), %rsi
	call puts64
	pop %rsi
	PUTS64 " max leaf "
	call puthex64
	PUTS64 "\n"
	cmp $1, %eax                    # the maximum standard leaf must reach leaf 1
	setae %al
	movzbl %al, %eax
	mov $1, %edx
	CHECK "cpuid.0.max_leaf>=1"
	mov $1, %eax
	cpuid
	PUTS64 "longmode: cpuid 1 eax "
	call puthex64
	PUTS64 "\n"
	mov %edx, %eax
	and $CPUID1_EDX_TSC_MSR_PAE, %eax
	mov $CPUID1_EDX_TSC_MSR_PAE, %edx
	CHECK "cpuid.1.edx.tsc+msr+pae"
	pop %rbx
	ret

# --- MSRs -------------------------------------------------------------------------------------
# rdmsr64: RAX = MSR[ECX]. wrmsr64: MSR[ECX] = RAX. Both preserve RDX.
rdmsr64:
	push %rdx
	rdmsr
	shl $32, %rdx
	mov %eax, %eax
	or %rdx, %rax
	pop %rdx
	ret
wrmsr64:
	push %rdx
	push %rax
	mov %rax, %rdx
	shr $32, %rdx
	wrmsr
	pop %rax
	pop %rdx
	ret

test_msr:
	push %r12
	PUTS64 "longmode: msr\n"
	# EFER: LME and LMA set in 64-bit mode; SCE can be set and cleared.
	mov $MSR_EFER, %ecx
	call rdmsr64
	mov %rax, %r12
	and $(EFER_LME | EFER_LMA), %eax
	mov $(EFER_LME | EFER_LMA), %edx
	CHECK "rdmsr.efer.lme+lma"
	mov %r12, %rax
	or $EFER_SCE, %rax
	call wrmsr64
	mov %rax, %rdx
	call rdmsr64
	CHECK "wrmsr.efer.sce=1"
	mov %r12, %rax
	and $~EFER_SCE, %rax
	call wrmsr64
	mov %rax, %rdx
	call rdmsr64
	CHECK "wrmsr.efer.sce=0"
	mov %r12, %rax
	call wrmsr64

	# PAT: the power-on value, then a write read back, then the old value restored.
	mov $MSR_PAT, %ecx
	call rdmsr64
	mov %rax, %r12
	mov $PAT_RESET, %rdx
	CHECK "rdmsr.pat.reset"
	mov $PAT_TEST, %rax
	call wrmsr64
	mov %rax, %rdx
	call rdmsr64
	CHECK "wrmsr.pat"
	mov %r12, %rax
	call wrmsr64
	mov %rax, %rdx
	call rdmsr64
	CHECK "wrmsr.pat.restore"

	# TSC: RDTSC, RDMSR(TSC), RDTSC are ordered; after WRMSR(TSC, v) RDTSC reads a little
	# more than v.
	push %rbx
	push %r13
	rdtsc
	shl $32, %rdx
	or %rdx, %rax
	mov %rax, %rbx                  # t1
	mov $MSR_TSC, %ecx
	call rdmsr64
	mov %rax, %r12                  # t2
	rdtsc
	shl $32, %rdx
	or %rdx, %rax
	mov %rax, %r13                  # t3
	xor %eax, %eax
	cmp %rbx, %r12
	jb 1f
	cmp %r12, %r13
	jb 1f
	inc %eax
1:	mov $1, %edx
	CHECK "tsc.rdtsc<=rdmsr<=rdtsc"
	cmp %rax, %rdx
	je 1f
	PUTS64 "longmode: tsc rdtsc "
	mov %rbx, %rax
	call puthex64
	PUTS64 " rdmsr "
	mov %r12, %rax
	call puthex64
	PUTS64 " rdtsc "
	mov %r13, %rax
	call puthex64
	PUTS64 "\n"
1:
	mov $1, %rax
	shl $40, %rax
	add %r13, %rax
	mov %rax, %r12                  # v = t3 + 2^40
	mov $MSR_TSC, %ecx
	call wrmsr64
	rdtsc
	shl $32, %rdx
	or %rdx, %rax
	sub %r12, %rax                  # cycles since the write: small and not negative
	shr $36, %rax
	xor %edx, %edx
	CHECK "wrmsr.tsc.then.rdtsc"
	pop %r13
	pop %rbx
	pop %r12
	ret

# --- Port I/O ---------------------------------------------------------------------------------
# The test device's port is a 32-bit scratch register at ports 0xE0-0xE3; an access of width
# n at port 0xE0+k acts on bytes k..k+n-1 of it.
test_pio:
	PUTS64 "longmode: pio\n"
	mov $TESTDEV_PORT, %dx
	mov $0xA5, %al                  # OUT DX, AL / IN AL, DX
	out %al, %dx
	mov $-1, %rax
	in %dx, %al
	push %rdx
	mov $0xFFFFFFFFFFFFFFA5, %rdx   # IN AL leaves the rest of RAX alone
	CHECK "pio.outb.inb"
	pop %rdx
	mov $0xBEEF, %ax                # OUT DX, AX / IN AX, DX
	out %ax, %dx
	xor %eax, %eax
	in %dx, %ax
	push %rdx
	mov $0xBEEF, %edx
	CHECK "pio.outw.inw"
	pop %rdx
	mov $0xDEADBEEF, %eax           # OUT DX, EAX / IN EAX, DX
	out %eax, %dx
	mov $-1, %rax
	in %dx, %eax                    # zero-extends into RAX
	push %rdx
	mov $0xDEADBEEF, %edx
	CHECK "pio.outl.inl"
	pop %rdx
	# Byte lanes, with the immediate-port forms: outl 11223344 at E0, outb AA at E1,
	# outw 5566 at E2 -> 5566AA44; inb E3 -> 55; inw E1 -> 66AA.
	mov $0x11223344, %eax
	out %eax, $TESTDEV_PORT
	mov $0xAA, %al
	out %al, $TESTDEV_PORT + 1
	mov $0x5566, %ax
	out %ax, $TESTDEV_PORT + 2
	in $TESTDEV_PORT, %eax
	mov $0x5566AA44, %edx
	CHECK "pio.lanes.inl"
	xor %eax, %eax
	in $TESTDEV_PORT + 3, %al
	mov $0x55, %edx
	CHECK "pio.lanes.inb+3"
	xor %eax, %eax
	in $TESTDEV_PORT + 1, %ax
	mov $0x66AA, %edx
	CHECK "pio.lanes.inw+1"
	ret

# --- MMIO -------------------------------------------------------------------------------------
# R15 = the test device's MMIO base throughout.
test_mmio:
	push %rbx
	push %r12
	push %r15
	PUTS64 "longmode: mmio\n"
	mov $TESTDEV_MMIO, %r15d        # zero-extends

	# MOV of every width into the 64-bit scratch register, read back as a whole.
	mov $0x0123456789ABCDEF, %rax
	mov %rax, TD_SCRATCH(%r15)              # MOV m64, r64
	mov TD_SCRATCH(%r15), %rax              # MOV r64, m64
	mov $0x0123456789ABCDEF, %rdx
	CHECK "mmio.mov64"
	movl $0xCAFEF00D, TD_SCRATCH+4(%r15)    # MOV m32, imm32
	mov TD_SCRATCH(%r15), %rax
	mov $0xCAFEF00D89ABCDEF, %rdx
	CHECK "mmio.mov32.store"
	mov $-1, %rax
	mov TD_SCRATCH+4(%r15), %eax            # MOV r32, m32 zero-extends
	mov $0xCAFEF00D, %edx
	CHECK "mmio.mov32.load"
	movw $0x1234, TD_SCRATCH+2(%r15)        # MOV m16, imm16
	mov TD_SCRATCH(%r15), %rax
	mov $0xCAFEF00D1234CDEF, %rdx
	CHECK "mmio.mov16.store"
	mov $-1, %rax
	mov TD_SCRATCH+2(%r15), %ax             # MOV r16, m16 keeps RAX[63:16]
	mov $0xFFFFFFFFFFFF1234, %rdx
	CHECK "mmio.mov16.load"
	movb $0x80, TD_SCRATCH+7(%r15)          # MOV m8, imm8
	mov TD_SCRATCH(%r15), %rax
	mov $0x80FEF00D1234CDEF, %rdx
	CHECK "mmio.mov8.store"
	mov $-1, %rax
	mov TD_SCRATCH+1(%r15), %al             # MOV r8, m8 keeps RAX[63:8]
	mov $0xFFFFFFFFFFFFFFCD, %rdx
	CHECK "mmio.mov8.load"
	xor %eax, %eax
	mov %r15, %rdi                          # AH cannot be encoded with a REX prefix (R15)
	mov TD_SCRATCH+6(%rdi), %ah             # MOV AH, m8
	mov $0xFE00, %edx
	CHECK "mmio.mov8.load.ah"
	mov $0x55, %bl
	mov %bl, TD_SCRATCH(%r15)               # MOV m8, r8
	mov $0x7766, %bx
	mov %bx, TD_SCRATCH+4(%r15)             # MOV m16, r16
	mov TD_SCRATCH(%r15), %rax
	mov $0x80FE77661234CD55, %rdx
	CHECK "mmio.mov.store.reg"

	# MOVZX, MOVSX, MOVSXD. Scratch = 80FE77661234CD55.
	mov $-1, %rax
	movzbl TD_SCRATCH+7(%r15), %eax
	mov $0x80, %edx
	CHECK "mmio.movzx8"
	mov $-1, %rax
	movzwq TD_SCRATCH+6(%r15), %rax
	mov $0x80FE, %edx
	CHECK "mmio.movzx16"
	movsbq TD_SCRATCH+7(%r15), %rax
	mov $0xFFFFFFFFFFFFFF80, %rdx
	CHECK "mmio.movsx8"
	movswq TD_SCRATCH+6(%r15), %rax
	mov $0xFFFFFFFFFFFF80FE, %rdx
	CHECK "mmio.movsx16"
	movslq TD_SCRATCH+4(%r15), %rax
	mov $0xFFFFFFFF80FE7766, %rdx
	CHECK "mmio.movsxd"
	movsbl TD_SCRATCH(%r15), %eax
	mov $0x55, %edx
	CHECK "mmio.movsx8.positive"

	# ALU instructions with a memory destination, then a memory source, then CMP/TEST.
	mov $0x00FF00FF00FF00FF, %rax
	mov %rax, TD_SCRATCH(%r15)
	orq $0x0F00, TD_SCRATCH(%r15)           # OR m64, imm32
	mov TD_SCRATCH(%r15), %rax
	mov $0x00FF00FF00FF0FFF, %rdx
	CHECK "mmio.or64"
	andl $0xF0F0F0F0, TD_SCRATCH(%r15)      # AND m32, imm32
	mov TD_SCRATCH(%r15), %rax
	mov $0x00FF00FF00F000F0, %rdx
	CHECK "mmio.and32"
	xorw $0xFFFF, TD_SCRATCH+2(%r15)        # XOR m16, imm16
	mov TD_SCRATCH(%r15), %rax
	mov $0x00FF00FFFF0F00F0, %rdx
	CHECK "mmio.xor16"
	addb $0x20, TD_SCRATCH+7(%r15)          # ADD m8, imm8
	mov TD_SCRATCH(%r15), %rax
	mov $0x20FF00FFFF0F00F0, %rdx
	CHECK "mmio.add8"
	mov $0x11, %ebx
	add %rbx, TD_SCRATCH(%r15)              # ADD m64, r64 (carries out of byte 0)
	mov TD_SCRATCH(%r15), %rax
	mov $0x20FF00FFFF0F0101, %rdx
	CHECK "mmio.add64.carry"
	mov $0x4000000000000000, %rax
	or TD_SCRATCH(%r15), %rax               # OR r64, m64
	mov $0x60FF00FFFF0F0101, %rdx
	CHECK "mmio.or64.load"
	mov $0x20FF00FFFF0F0101, %rbx
	cmp %rbx, TD_SCRATCH(%r15)              # CMP m64, r64: equal
	sete %al
	movzbl %al, %eax
	mov $1, %edx
	CHECK "mmio.cmp64.eq"
	cmpb $0x21, TD_SCRATCH+7(%r15)          # CMP m8, imm8: 0x20 < 0x21 unsigned
	setb %al
	movzbl %al, %eax
	mov $1, %edx
	CHECK "mmio.cmp8.below"
	testl $0x100, TD_SCRATCH(%r15)          # TEST m32, imm32: bit 8 set
	setnz %al
	movzbl %al, %eax
	mov $1, %edx
	CHECK "mmio.test32"
	mov TD_SCRATCH(%r15), %rax              # none of CMP/TEST/OR r,m wrote memory
	mov $0x20FF00FFFF0F0101, %rdx
	CHECK "mmio.alu.final"

	# The access counter counts every access to the window; reads return the count before
	# the read. Writes to it are ignored.
	mov TD_COUNTER(%r15), %r12
	movq $0, TD_COUNTER(%r15)
	mov TD_COUNTER(%r15), %rax
	lea 2(%r12), %rdx
	CHECK "mmio.counter.readonly"

	# REP STOSQ of 8 qwords into the buffer: exactly 8 accesses, RCX/RDI updated.
	mov TD_COUNTER(%r15), %r12
	lea TD_BUFFER(%r15), %rdi
	mov $TD_BUFFER_QWORDS, %ecx
	mov $0xA5A5A5A55A5A5A5A, %rax
	cld
	rep stosq
	mov TD_COUNTER(%r15), %rax
	lea 9(%r12), %rdx
	CHECK "mmio.rep.stosq.count"
	mov %rcx, %rax
	xor %edx, %edx
	CHECK "mmio.rep.stosq.rcx"
	mov %rdi, %rax
	lea TD_BUFFER + 8 * TD_BUFFER_QWORDS(%r15), %rdx
	CHECK "mmio.rep.stosq.rdi"
	xor %ecx, %ecx
1:	mov TD_BUFFER(%r15, %rcx, 8), %rax
	mov $0xA5A5A5A55A5A5A5A, %rdx
	cmp %rdx, %rax
	jne 2f
	inc %ecx
	cmp $TD_BUFFER_QWORDS, %ecx
	jb 1b
2:	CHECK "mmio.rep.stosq.data"

	# REP MOVSQ from RAM to the buffer and back to RAM.
	mov TD_COUNTER(%r15), %r12
	lea ram_src(%rip), %rsi
	lea TD_BUFFER(%r15), %rdi
	mov $TD_BUFFER_QWORDS, %ecx
	rep movsq
	mov TD_COUNTER(%r15), %rax
	lea 9(%r12), %rdx
	CHECK "mmio.rep.movsq.to.count"
	mov %rsi, %rax
	lea ram_src + 8 * TD_BUFFER_QWORDS(%rip), %rdx
	CHECK "mmio.rep.movsq.to.rsi"
	xor %ecx, %ecx
1:	mov TD_BUFFER(%r15, %rcx, 8), %rax
	lea ram_src(%rip), %rdx
	mov (%rdx, %rcx, 8), %rdx
	cmp %rdx, %rax
	jne 2f
	inc %ecx
	cmp $TD_BUFFER_QWORDS, %ecx
	jb 1b
2:	CHECK "mmio.rep.movsq.to.data"
	lea TD_BUFFER(%r15), %rsi
	lea ram_dst(%rip), %rdi
	mov $TD_BUFFER_QWORDS, %ecx
	rep movsq
	xor %ecx, %ecx
1:	lea ram_dst(%rip), %rax
	mov (%rax, %rcx, 8), %rax
	lea ram_src(%rip), %rdx
	mov (%rdx, %rcx, 8), %rdx
	cmp %rdx, %rax
	jne 2f
	inc %ecx
	cmp $TD_BUFFER_QWORDS, %ecx
	jb 1b
2:	CHECK "mmio.rep.movsq.from.data"

	pop %r15
	pop %r12
	pop %rbx
	ret

# --- Exceptions -------------------------------------------------------------------------------
# An IDT of 64-bit interrupt gates for vectors 0-31; every handler reports the exception and
# exits with status 1. Intel SDM Vol. 3A, 6.14.1 "64-Bit Mode IDT".
.set IDT_VECTORS, 32
.set GATE_INTR64, 0x8E00            # P=1, DPL=0, type 0xE (64-bit interrupt gate)

setup_idt:
	lea idt(%rip), %rdi
	lea isr_table(%rip), %rsi
	mov $IDT_VECTORS, %ecx
1:	mov (%rsi), %rax
	mov %ax, (%rdi)                 # offset 15:0
	movw $SEL_CODE64, 2(%rdi)       # selector
	movw $GATE_INTR64, 4(%rdi)      # IST 0, type, DPL, P
	shr $16, %rax
	mov %ax, 6(%rdi)                # offset 31:16
	shr $16, %rax
	mov %eax, 8(%rdi)               # offset 63:32
	movl $0, 12(%rdi)
	add $16, %rdi
	add $8, %rsi
	loop 1b
	lidt idt_ptr(%rip)
	ret

# ISR v: pushes a zero error code where the processor pushes none, then the vector.
.macro ISR v
isr_\v:
	.if !((\v == 8) || (\v >= 10 && \v <= 14) || (\v == 17) || (\v == 21) || (\v == 29) || (\v == 30))
	pushq $0
	.endif
	pushq $\v
	jmp isr_common
.endm
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	ISR \v
	.endr

# Stack: vector, error code, RIP, CS, RFLAGS, RSP, SS.
isr_common:
	PUTS64 "longmode: FAIL exception "
	mov (%rsp), %rax
	call puthex64
	PUTS64 " error "
	mov 8(%rsp), %rax
	call puthex64
	PUTS64 " at rip "
	mov 16(%rsp), %rax
	call puthex64
	PUTS64 "\n"
	mov $1, %eax
	out %eax, $DEBUG_EXIT_PORT
	jmp halt64

# --- 64-bit output ----------------------------------------------------------------------------
# putc64 writes AL to COM1 (bounded wait for THRE); puts64 writes the string at RSI;
# puthex64 writes RAX as 0x and 16 hex digits. All preserve every register but EFLAGS.
putc64:
	push %rcx
	push %rdx
	push %rax
	mov $0x10000, %ecx
	mov $COM1_LSR, %dx
1:	in %dx, %al
	test $LSR_THRE, %al
	jnz 2f
	loop 1b
2:	pop %rax
	mov $COM1, %dx
	out %al, %dx
	pop %rdx
	pop %rcx
	ret

puts64:
	push %rsi
	push %rax
1:	lodsb
	test %al, %al
	jz 2f
	call putc64
	jmp 1b
2:	pop %rax
	pop %rsi
	ret

puthex64:
	push %rax
	push %rcx
	push %rdx
	mov %rax, %rdx
	mov $'0', %al
	call putc64
	mov $'x', %al
	call putc64
	mov $16, %ecx
1:	rol $4, %rdx
	mov %dl, %al
	and $0xf, %al
	add $'0', %al
	cmp $'9', %al
	jbe 2f
	add $('a' - '9' - 1), %al
2:	call putc64
	loop 1b
	pop %rdx
	pop %rcx
	pop %rax
	ret

# ---------------------------------------------------------------------------------------------
	.section .rodata
	.balign 8
# Intel SDM Vol. 3A, 3.4.5 "Segment Descriptors"; 5.2.1 "Code-Segment Descriptor in 64-bit
# Mode" (L=1, D=0).
gdt:
	.quad 0                         # null
	.quad 0x00AF9A000000FFFF        # 0x08: 64-bit code, P DPL0 execute/read, L, G
	.quad 0x00CF92000000FFFF        # 0x10: flat data, P DPL0 read/write, D/B, G
	.quad 0x00CF9A000000FFFF        # 0x18: flat 32-bit code, P DPL0 execute/read, D/B, G
gdt_end:
gdt_ptr:
	.word gdt_end - gdt - 1
	.long gdt
idt_ptr:
	.word IDT_VECTORS * 16 - 1
	.long idt, 0                    # 64-bit base (ELF32 has no 64-bit relocations)
isr_table:                          # handler addresses, as 64-bit values
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.long isr_\v, 0
	.endr
# The REP MOVSQ source: distinct bytes in every qword.
ram_src:
	.quad 0x0706050403020100, 0x0F0E0D0C0B0A0908, 0x1716151413121110, 0x1F1E1D1C1B1A1918
	.quad 0x8786858483828180, 0x8F8E8D8C8B8A8988, 0x9796959493929190, 0x9F9E9D9C9B9A9998

	.data
	.balign 4
fail_count:
	.long 0
vendor:
	.skip 13                        # 12 characters and a NUL

	.bss
	.balign 4096
pml4:
	.skip 4096
pdpt:
	.skip 4096
pd:
	.skip 4 * 4096
page_tables_end:
idt:
	.skip IDT_VECTORS * 16
ram_dst:
	.skip 8 * TD_BUFFER_QWORDS
