package vmx

// runRegs is what vmxRun and vmxExit exchange with Go. The offsets are constants in
// vmx_amd64.s; regs_test.go checks them. It lives inside the VCPU (Go heap, which does not
// move) and is only touched with interrupts disabled.
type runRegs struct {
	gpr      [16]uint64 // guest RAX..R15 in the x86 encoding order; the RSP slot is unused (VMCS GUEST_RSP)
	cr2      uint64     // guest CR2: not part of the VMCS, switched by hand
	hostFX   uint64     // address of the host's 512-byte FXSAVE area, 16-byte aligned
	guestFX  uint64     // address of the guest's FXSAVE area
	launched uint64     // 0: VMLAUNCH, else VMRESUME
	status   uint64     // vmSucceed, vmFailInvalid or vmFailValid
	gdtr     [2]uint64  // scratch for SGDT: the host's GDTR, reloaded after the exit
	idtr     [2]uint64  // scratch for SIDT
}

// Offsets used by vmx_amd64.s.
const (
	offGPR      = 0
	offCR2      = 128
	offHostFX   = 136
	offGuestFX  = 144
	offLaunched = 152
	offStatus   = 160
	offGDTR     = 168
	offIDTR     = 184
)
