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
