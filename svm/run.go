package svm

// runBlock is the page right after each vCPU's VMCB. vmrun (svm_amd64.s) finds it from the
// VMCB's physical address, which is in RAX again after #VMEXIT, so the assembly needs no
// other pointer once the guest's registers are live. layout_test.go checks the offsets
// against the constants the .s file uses.
type runBlock struct {
	// GPR holds the guest's general registers in hv.CPUState.GPR order. RAX and RSP are
	// not used here: they live in the VMCB (AMD APM Vol. 2, 15.5 "VMRUN Instruction").
	GPR [16]uint64 // RUN_GPR
	// HostSavePA is the page the host's VMSAVE state goes to (per host CPU).
	HostSavePA uint64 // RUN_HOSTSAVE
	_          [0x200 - 0x88]byte
	// GuestFX and HostFX are FXSAVE64 images (512 bytes, 16-byte aligned).
	// AMD APM Vol. 5, "FXSAVE"; Vol. 2, 11.4.4 "Saving Media and x87 Execution Unit State".
	GuestFX [512]byte // RUN_GUESTFX
	HostFX  [512]byte // RUN_HOSTFX
	_       [0x1000 - 0x600]byte
}

// Offsets the assembly uses (svm_amd64.s #defines), relative to the VMCB.
const (
	runOffset   = 4096 // RUN: the run block follows the VMCB
	runGPR      = runOffset + 0x000
	runHostSave = runOffset + 0x080
	runGuestFX  = runOffset + 0x200
	runHostFX   = runOffset + 0x400
	vcpuPages   = 2      // VMCB + run block, physically contiguous
	fxsaveFCW   = 0      // FXSAVE image: x87 control word
	fxsaveMXCSR = 24     // FXSAVE image: MXCSR
	fcwReset    = 0x037F // x87 control word after FNINIT / reset
	mxcsrReset  = 0x1F80 // MXCSR after reset: all exceptions masked
)

// vmrun enters the guest whose VMCB is at physical address vmcb (the run block follows it)
// and returns after the next #VMEXIT with the host state as it was: GIF is cleared around the
// switch, the host's FPU/SSE state is saved with FXSAVE64 and the guest's loaded, the host's
// FS/GS/TR/LDTR, KernelGSBase, STAR/LSTAR/CSTAR/SFMASK and SYSENTER MSRs are saved with
// VMSAVE to the host save page and the guest's loaded with VMLOAD from the VMCB, and the
// guest's general registers other than RAX and RSP are loaded from and stored to the run
// block. Host interrupts that arrived meanwhile are taken right after STGI, before vmrun
// returns. The caller checked the state first (a VMRUN #GP would fault with GIF clear).
// AMD APM Vol. 2, 15.5 "VMRUN Instruction", 15.6 "#VMEXIT", 15.17 "Global Interrupt Flag".
// Implemented in svm_amd64.s.
func vmrun(vmcb uint64)
