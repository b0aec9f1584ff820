// Boot entry, trap and system-call entry of the ring-0 layer. The Go declarations and the
// frame layout these paths share are in entry.go; layout_test.go checks the offsets used here.

#include "textflag.h"

// Offsets into bootPT (see entry.go): the boot page tables are built 4 KiB-aligned inside it.
#define PT_PDPT 4096
#define PT_PD 8192

// Checked against entry.go by layout_test.go.
#define KSTACK_SIZE 65536
#define FRAME_SIZE 176
#define VEC_SYSCALL 256

// ADDR32 computes the absolute address of sym into reg while the CPU is in 32-bit protected
// mode. Go's assembler only emits RIP-relative LEAs; in 32-bit mode the same bytes
// (8D /r disp32) mean "absolute disp32", giving sym - (address after the LEA). A CALL/POP pair
// supplies that address: the LEA ends 7 bytes after the POP (POP is 1 byte, LEA 6).
// Needs a valid stack; clobbers BP.
#define ADDR32(sym, reg) \
	BYTE $0xE8; BYTE $0; BYTE $0; BYTE $0; BYTE $0 \ // CALL next instruction
	POPQ BP \ // POP EBP (in 32-bit mode)
	LEAL sym(SB), reg \
	ADDL BP, reg \
	ADDL $7, reg

// entry is the ELF entry point and the multiboot and PVH entry. It runs either in 64-bit mode
// (Linux execve: the binary is an ordinary program) or in 32-bit protected mode with paging off
// (multiboot: EAX=0x2BADB002, EBX=info; PVH: EBX=struct hvm_start_info). The first bytes decode
// differently in the two modes: 0x41 is INC ECX in 32-bit mode but a REX.B prefix in 64-bit mode,
// where the ADD then targets R9 and ECX stays 0.
// Intel SDM Vol. 2A, 2.2.1 "REX Prefixes".
TEXT ·entry(SB),NOSPLIT|NOFRAME,$0
	BYTE $0x31; BYTE $0xC9                          // XOR ECX, ECX
	BYTE $0x41; BYTE $0x81; BYTE $0xC1; LONG $1     // 32: INC ECX; ADD ECX, 1   64: ADD R9D, 1
	BYTE $0x85; BYTE $0xC9                          // TEST ECX, ECX
	JNE	entry32
	// 64-bit: started as a Linux program.
	JMP	_rt0_amd64_linux(SB)

entry32:
	// Everything from here to the far return runs in 32-bit mode. Only instructions whose
	// encoding means the same in both modes are used (no REX, no RIP-relative operands).
	CLI
	CLD
	MOVL	AX, DI                 // loader magic
	MOVL	BX, SI                 // info pointer
	MOVL	$0x7000, SP            // a few bytes of scratch stack in free conventional memory
	ADDR32(·bootMagic, AX)
	MOVL	DI, (AX)
	ADDR32(·bootInfoPtr, AX)
	MOVL	SI, (AX)

	// Identity-map the first 4 GiB with 2 MiB pages: PML4[0] -> PDPT, PDPT[0..3] -> 4 PDs.
	// Intel SDM Vol. 3A, 4.5 "4-Level Paging and 5-Level Paging".
	ADDR32(·bootPT, BX)
	ADDL	$4095, BX
	ANDL	$0xFFFFF000, BX
	MOVL	BX, DI
	XORL	AX, AX
	MOVL	$6144, CX              // 6 pages of 1024 dwords
	REP;	STOSL
	LEAL	(PT_PDPT+3)(BX), AX    // present | writable
	MOVL	AX, (BX)
	LEAL	(PT_PD+3)(BX), AX
	MOVL	AX, PT_PDPT(BX)
	ADDL	$4096, AX
	MOVL	AX, (PT_PDPT+8)(BX)
	ADDL	$4096, AX
	MOVL	AX, (PT_PDPT+16)(BX)
	ADDL	$4096, AX
	MOVL	AX, (PT_PDPT+24)(BX)
	LEAL	PT_PD(BX), DI
	MOVL	$0x83, AX              // present | writable | PS (2 MiB)
	MOVL	$2048, CX
ptloop:
	MOVL	AX, (DI)
	ADDL	$0x200000, AX
	ADDL	$8, DI
	DECL	CX
	JNE	ptloop

	// CR4.PAE | OSFXSR | OSXMMEXCPT. Intel SDM Vol. 3A, 2.5 "Control Registers".
	MOVQ	CR4, AX
	ORL	$0x620, AX
	MOVQ	AX, CR4
	MOVQ	BX, CR3
	// IA32_EFER.LME. Intel SDM Vol. 3A, 10.8.5 "Initializing IA-32e Mode".
	MOVL	$0xC0000080, CX
	RDMSR
	ORL	$0x100, AX
	WRMSR
	// CR0.PG | WP | NE | MP | PE, clear EM: long mode (compatibility) is now active.
	MOVQ	CR0, AX
	ORL	$0x80010023, AX
	ANDL	$0xFFFFFFFB, AX
	MOVQ	AX, CR0

	// Load a GDT with a 64-bit code segment and far-return into it.
	ADDR32(·bootGDT, AX)
	ADDR32(·bootGDTR, DX)
	MOVW	$23, (DX)
	MOVL	AX, 2(DX)
	LGDT	(DX)
	ADDR32(·start64, AX)
	PUSHQ	$8                     // PUSH 8: selector of the 64-bit code segment
	PUSHQ	AX                     // PUSH EAX
	BYTE	$0xCB                  // RETF (32-bit operand size: pops EIP, then CS)

// start64 runs in 64-bit mode with the boot page tables. It sets up the kernel stack and the
// fake g that lets the layer's Go code run there (see entry.go), then calls kinit, which
// prepares the first thread, and enters it through trapReturn.
TEXT ·start64(SB),NOSPLIT|NOFRAME,$0
	MOVW	$0x10, AX
	MOVW	AX, DS
	MOVW	AX, ES
	MOVW	AX, SS
	MOVW	AX, FS
	MOVW	AX, GS
	LEAQ	·kstack+KSTACK_SIZE(SB), SP
	MOVB	$1, ·bareMetal(SB)
	// fakeG.stack = [kstack, kstack+KSTACK_SIZE), stackguard0 = lo + 4096.
	LEAQ	·kstack(SB), AX
	MOVQ	AX, ·fakeG+0(SB)
	LEAQ	·kstack+KSTACK_SIZE(SB), BX
	MOVQ	BX, ·fakeG+8(SB)
	ADDQ	$4096, AX
	MOVQ	AX, ·fakeG+16(SB)
	MOVQ	AX, ·fakeG+24(SB)
	LEAQ	·fakeG(SB), AX
	MOVQ	AX, ·ktls(SB)
	CALL	·setKernelFS(SB)
	// kinit's frame lies below the TrapFrame it leaves at the top of the stack.
	LEAQ	·kstack+(KSTACK_SIZE-FRAME_SIZE)(SB), SP
	LEAQ	_rt0_amd64_linux(SB), AX
	SUBQ	$8, SP
	MOVQ	AX, 0(SP)
	CALL	·kinit(SB)
	ADDQ	$8, SP
	// kinit left the first thread's frame at the top of the kernel stack.
	LEAQ	·kstack+(KSTACK_SIZE-FRAME_SIZE)(SB), SP
	JMP	·trapReturn(SB)

// setKernelFS points FS at ktls+8, so that the ABI wrappers' load of g from -8(FS) finds fakeG.
// Clobbers AX, CX, DX.
TEXT ·setKernelFS(SB),NOSPLIT|NOFRAME,$0
	MOVL	$0xC0000100, CX        // IA32_FS_BASE. Intel SDM Vol. 4, Table 2-2.
	LEAQ	·ktls+8(SB), AX
	MOVQ	AX, DX
	SHRQ	$32, DX
	WRMSR
	RET

// syscallEntry is the IA32_LSTAR target. SYSCALL at CPL 0 leaves RSP alone and has cleared
// RFLAGS.IF through IA32_FMASK; RCX holds the return RIP and R11 the caller's RFLAGS.
// Intel SDM Vol. 2B, "SYSCALL—Fast System Call".
TEXT ·syscallEntry(SB),NOSPLIT|NOFRAME,$0
	MOVQ	SP, ·syscallSP(SB)
	LEAQ	·kstack+KSTACK_SIZE(SB), SP
	PUSHQ	$0x10                  // SS
	PUSHQ	·syscallSP(SB)         // RSP
	PUSHQ	R11                    // RFLAGS
	PUSHQ	$0x08                  // CS
	PUSHQ	CX                     // RIP
	PUSHQ	$0                     // error code
	PUSHQ	$VEC_SYSCALL
	JMP	·trapCommon(SB)

// trapCommon saves the general registers below the hardware frame, making a TrapFrame, saves
// the FPU/SSE state into the current thread's area, and calls trap. trap may switch threads:
// it leaves the frame to resume in the same place.
TEXT ·trapCommon(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	AX
	PUSHQ	BX
	PUSHQ	CX
	PUSHQ	DX
	PUSHQ	SI
	PUSHQ	DI
	PUSHQ	BP
	PUSHQ	R8
	PUSHQ	R9
	PUSHQ	R10
	PUSHQ	R11
	PUSHQ	R12
	PUSHQ	R13
	PUSHQ	R14
	PUSHQ	R15
	CALL	·setKernelFS(SB)
	MOVQ	·curFX(SB), AX
	FXSAVE64	(AX)
	MOVQ	SP, AX
	SUBQ	$8, SP
	MOVQ	AX, 0(SP)
	CALL	·trap(SB)
	ADDQ	$8, SP
	JMP	·trapReturn(SB)

// trapReturn resumes the thread whose TrapFrame is at SP: FPU state, FS base, registers, IRETQ.
TEXT ·trapReturn(SB),NOSPLIT|NOFRAME,$0
	MOVQ	·curFX(SB), AX
	FXRSTOR64	(AX)
	MOVL	$0xC0000100, CX        // IA32_FS_BASE
	MOVQ	·curFS(SB), AX
	MOVQ	AX, DX
	SHRQ	$32, DX
	WRMSR
	POPQ	R15
	POPQ	R14
	POPQ	R13
	POPQ	R12
	POPQ	R11
	POPQ	R10
	POPQ	R9
	POPQ	R8
	POPQ	BP
	POPQ	DI
	POPQ	SI
	POPQ	DX
	POPQ	CX
	POPQ	BX
	POPQ	AX
	ADDQ	$16, SP                // vector, error code
	IRETQ

// idleLoop is the body of the idle thread, resumed when no other thread can run.
TEXT ·idleLoop(SB),NOSPLIT|NOFRAME,$0
	STI
again:
	HLT
	JMP	again

// haltLoop stops the CPU for good.
TEXT ·haltLoop(SB),NOSPLIT|NOFRAME,$0
	CLI
again:
	HLT
	JMP	again

// rdtsc is the TSC read used on the layer's paths.
TEXT ·rdtsc(SB),NOSPLIT,$0-8
	RDTSC
	SHLQ	$32, DX
	ORQ	DX, AX
	MOVQ	AX, ret+0(FP)
	RET

// loadIDT, loadGDT take the address of a 10-byte pseudo-descriptor.
TEXT ·loadIDT(SB),NOSPLIT,$0-8
	MOVQ	p+0(FP), AX
	LIDT	(AX)
	RET

// loadGDT also reloads CS (far return) and the data segments, then loads the task register.
TEXT ·loadGDT(SB),NOSPLIT,$0-8
	MOVQ	p+0(FP), AX
	LGDT	(AX)
	MOVW	$0x10, AX
	MOVW	AX, DS
	MOVW	AX, ES
	MOVW	AX, SS
	MOVW	$0x18, AX
	LTR	AX
	POPQ	AX                     // return address
	PUSHQ	$0x08
	PUSHQ	AX
	BYTE	$0x48; BYTE $0xCB      // RETFQ: return to the caller through the new CS

// invlpg invalidates the TLB entry of one page.
TEXT ·invlpg(SB),NOSPLIT,$0-8
	MOVQ	addr+0(FP), AX
	INVLPG	(AX)
	RET

// Boot-time data. bootPT holds the boot page tables (6 pages, aligned at run time).
GLOBL ·bootPT(SB), NOPTR, $28672
GLOBL ·bootGDTR(SB), NOPTR, $16
DATA ·bootGDT+0(SB)/8, $0
DATA ·bootGDT+8(SB)/8, $0x00AF9A000000FFFF  // 64-bit code, DPL 0. Intel SDM Vol. 3A, 3.4.5 "Segment Descriptors".
DATA ·bootGDT+16(SB)/8, $0x00CF92000000FFFF // data, writable
GLOBL ·bootGDT(SB), NOPTR|RODATA, $24

// syscallEntryAddr and idleLoopAddr return the addresses of those entry points.
TEXT ·syscallEntryAddr(SB),NOSPLIT,$0-8
	LEAQ	·syscallEntry(SB), AX
	MOVQ	AX, ret+0(FP)
	RET

TEXT ·idleLoopAddr(SB),NOSPLIT,$0-8
	LEAQ	·idleLoop(SB), AX
	MOVQ	AX, ret+0(FP)
	RET

// imageEnd returns the end of the kernel image in memory (the linker's runtime.end).
TEXT ·imageEnd(SB),NOSPLIT,$0-8
	LEAQ	runtime·end(SB), AX
	MOVQ	AX, ret+0(FP)
	RET

// tripleFault resets the CPU: an empty IDT and a breakpoint.
TEXT ·tripleFault(SB),NOSPLIT,$0
	CLI
	LEAQ	·emptyIDT(SB), AX
	LIDT	(AX)
	INT	$3
again:
	HLT
	JMP	again

GLOBL ·emptyIDT(SB), NOPTR, $16
