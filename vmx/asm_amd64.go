package vmx

// The VMX instructions, in vmx_amd64.s. Go's assembler does not know them, so the .s file
// byte-encodes them (Intel SDM Vol. 2, and Vol. 3C, chapter 32 "VMX Instruction Reference").
// Every function is NOSPLIT and allocation-free. Each VMX instruction reports its outcome in
// RFLAGS (Vol. 3C, 32.2 "Conventions"): CF=1 is VMfailInvalid (no current VMCS), ZF=1
// VMfailValid (the VM-instruction error field says why); the wrappers return it as a status.

// Status of a VMX instruction.
const (
	vmSucceed     = 0
	vmFailInvalid = 1
	vmFailValid   = 2
)

// vmxon enters VMX root operation with the VMXON region at pa.
func vmxon(pa uint64) uint8

// vmxoff leaves VMX operation.
func vmxoff() uint8

// vmclear makes the VMCS at pa clear (not launched, not current) and writes it to memory.
func vmclear(pa uint64) uint8

// vmptrld makes the VMCS at pa current.
func vmptrld(pa uint64) uint8

// vmread reads field f of the current VMCS.
func vmread(f field) (uint64, uint8)

// vmwrite writes field f of the current VMCS.
func vmwrite(f field, v uint64) uint8

// invept invalidates EPT-derived translations; desc points at a 128-bit descriptor
// {EPTP, 0}. Types: 1 single-context, 2 all-context. Vol. 3C, 32.3 "INVEPT".
func invept(typ uint64, desc *[2]uint64) uint8

// invvpid invalidates translations tagged with a VPID; desc is {VPID (bits 15:0), linear
// address}. Types: 1 single-context, 2 all-context. Vol. 3C, 32.3 "INVVPID".
func invvpid(typ uint64, desc *[2]uint64) uint8

// cli disables interrupts and returns the previous RFLAGS; restoreFlags puts them back.
func cli() uint64
func restoreFlags(flags uint64)

// readFSBase reads IA32_FS_BASE (MSR 0xC0000100), this OS thread's Go TLS base.
func readFSBase() uint64

// sgdt and sidt store the GDTR and IDTR (10 bytes) at p; str returns the task register.
func sgdt(p *[2]uint64)
func sidt(p *[2]uint64)
func str() uint16

// vmxRun loads the guest's general registers and CR2 from r, switches the FPU state from
// r.hostFX to r.guestFX, and executes VMLAUNCH (r.launched == 0) or VMRESUME. It must be
// called with interrupts disabled and this vCPU's VMCS current. It writes HOST_RSP, HOST_RIP
// and HOST_FS_BASE itself. At the VM exit (vmxExit) or on VMfail it saves the guest's registers
// back into r, restores the host's FPU state, descriptor-table limits, R14 and BP, zeroes X15
// and returns; r.status is vmSucceed after a VM exit, else the VMfail status.
func vmxRun(r *runRegs)

// vmxExit is HOST_RIP: where the processor resumes the host after a VM exit. Not callable.
func vmxExit()

// vmxRestore is the tail vmxRun and vmxExit share. Not callable.
func vmxRestore()
