// vmrun, declared in svm_amd64.go. The offsets are checked against run.go and vmcb.go by
// layout_test.go. AMD APM Vol. 2, 15.5 "VMRUN Instruction", 15.6 "#VMEXIT".

#include "textflag.h"

// The run block follows the VMCB (run.go).
#define RUN_GPR 4096
#define RUN_HOSTSAVE 4224
#define RUN_GUESTFX 4608
#define RUN_HOSTFX 5120

// Guest GPRs in the run block, in hv.CPUState.GPR order (RAX and RSP live in the VMCB).
#define G_RCX (RUN_GPR+8)
#define G_RDX (RUN_GPR+16)
#define G_RBX (RUN_GPR+24)
#define G_RBP (RUN_GPR+40)
#define G_RSI (RUN_GPR+48)
#define G_RDI (RUN_GPR+56)
#define G_R8 (RUN_GPR+64)
#define G_R9 (RUN_GPR+72)
#define G_R10 (RUN_GPR+80)
#define G_R11 (RUN_GPR+88)
#define G_R12 (RUN_GPR+96)
#define G_R13 (RUN_GPR+104)
#define G_R14 (RUN_GPR+112)
#define G_R15 (RUN_GPR+120)

// SVM instructions Go's assembler does not know. AMD APM Vol. 3, "VMRUN", "VMLOAD", "VMSAVE",
// "STGI", "CLGI": all take the VMCB / save-area physical address in RAX.
#define VMRUN BYTE $0x0F; BYTE $0x01; BYTE $0xD8
#define VMLOAD BYTE $0x0F; BYTE $0x01; BYTE $0xDA
#define VMSAVE BYTE $0x0F; BYTE $0x01; BYTE $0xDB
#define STGI BYTE $0x0F; BYTE $0x01; BYTE $0xDC
#define CLGI BYTE $0x0F; BYTE $0x01; BYTE $0xDD

// func vmrun(vmcb uint64)
// Frame: 0(SP) holds the caller's R14 (g), 8(SP) this frame's BP, put back before STGI so
// that the host's interrupt path and any frame-pointer unwinding never see the guest's RBP
// (the prologue the assembler adds saves the caller's BP, and the epilogue restores it).
TEXT ·vmrun(SB),NOSPLIT,$16-8
	MOVQ	R14, 0(SP)
	MOVQ	BP, 8(SP)
	MOVQ	vmcb+0(FP), AX
	CLGI                            // CLGI: no interrupts, NMIs or SMIs until STGI
	FXSAVE64	RUN_HOSTFX(AX)
	FXRSTOR64	RUN_GUESTFX(AX)
	MOVQ	AX, BX
	MOVQ	RUN_HOSTSAVE(BX), AX
	VMSAVE                          // VMSAVE [RAX]: host FS/GS/TR/LDTR/KernelGSBase/STAR/LSTAR/CSTAR/SFMASK/SYSENTER
	MOVQ	BX, AX
	VMLOAD                          // VMLOAD [RAX]: the guest's from the VMCB
	MOVQ	G_RCX(AX), CX
	MOVQ	G_RDX(AX), DX
	MOVQ	G_RBX(AX), BX
	MOVQ	G_RBP(AX), BP
	MOVQ	G_RSI(AX), SI
	MOVQ	G_RDI(AX), DI
	MOVQ	G_R8(AX), R8
	MOVQ	G_R9(AX), R9
	MOVQ	G_R10(AX), R10
	MOVQ	G_R11(AX), R11
	MOVQ	G_R12(AX), R12
	MOVQ	G_R13(AX), R13
	MOVQ	G_R14(AX), R14
	MOVQ	G_R15(AX), R15
	VMRUN                           // VMRUN [RAX]
	// #VMEXIT: RAX is the VMCB address again and RSP the host's (both restored from the
	// host save area); GIF is 0; the other GPRs hold the guest's values.
	MOVQ	CX, G_RCX(AX)
	MOVQ	DX, G_RDX(AX)
	MOVQ	BX, G_RBX(AX)
	MOVQ	BP, G_RBP(AX)
	MOVQ	SI, G_RSI(AX)
	MOVQ	DI, G_RDI(AX)
	MOVQ	R8, G_R8(AX)
	MOVQ	R9, G_R9(AX)
	MOVQ	R10, G_R10(AX)
	MOVQ	R11, G_R11(AX)
	MOVQ	R12, G_R12(AX)
	MOVQ	R13, G_R13(AX)
	MOVQ	R14, G_R14(AX)
	MOVQ	R15, G_R15(AX)
	VMSAVE                          // VMSAVE [RAX]: the guest's into the VMCB
	MOVQ	AX, BX
	MOVQ	RUN_HOSTSAVE(BX), AX
	VMLOAD                          // VMLOAD [RAX]: the host's back (FS base holds the Go TLS)
	FXSAVE64	RUN_GUESTFX(BX)
	FXRSTOR64	RUN_HOSTFX(BX)
	MOVQ	0(SP), R14              // g, for Go's internal ABI
	MOVQ	8(SP), BP
	XORPS	X15, X15                // X15 is zero in Go code
	STGI                            // STGI: host interrupts that came in are taken here
	RET
