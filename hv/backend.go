// Package hv is Godwit's backend-neutral virtualization core: VMs and vCPUs as explicit state
// machines, guest memory, the exit dispatch, the CPUID/MSR policy, device wiring and the guest
// loaders. It reaches the hardware only through the Backend interface below, which the svm
// (AMD-V) and vmx (Intel VT-x) packages implement; a fake backend drives it in unit tests.
package hv

import (
	"errors"

	"github.com/godwit-hv/godwit/hv/emu"
)

// Backend is a hardware virtualization backend.
type Backend interface {
	// Name is "svm" or "vmx".
	Name() string
	// NewVM prepares a VM whose guest-physical memory is mem, mapped at guest-physical
	// address 0 (second-level tables, ASID/VPID).
	NewVM(mem *Memory) (BackendVM, error)
}

// BackendVM is one VM's backend state.
type BackendVM interface {
	NewVCPU(id int) (BackendVCPU, error)
	// Close releases the second-level tables and everything else NewVM took.
	Close() error
}

// BackendVCPU is one virtual CPU. Run, SetState, State and Inject are called from one
// goroutine, locked to its OS thread, for the vCPU's lifetime.
type BackendVCPU interface {
	// SetState loads the whole architectural state; State reads it back.
	SetState(s *CPUState) error
	State(s *CPUState) error
	// Run enters the guest and returns at the next exit. Exits the backend handles itself
	// (none need to be) are not returned. Errors are for a failed entry; the core stops the VM.
	Run() (Exit, error)
	// Inject queues an event for delivery at the next entry.
	Inject(ev Event) error
	// SetInterruptWindow asks for an ExitInterruptWindow as soon as the guest can take an
	// external interrupt.
	SetInterruptWindow(on bool)
	// EventPending reports whether an event is waiting for the next entry: one queued by
	// Inject, or one whose delivery the last exit interrupted. The core then holds back
	// further interrupts (it asks for a window instead), so that an interrupt is never
	// delivered behind another into a guest that has meanwhile disabled interrupts.
	EventPending() bool
	// GuestMSR and SetGuestMSR reach the MSRs the hardware switches with the guest state
	// (STAR, LSTAR, CSTAR, SFMASK, KERNEL_GS_BASE, SYSENTER_*; the VMCB or the VMCS and its
	// MSR areas). ok is false for an MSR the backend does not hold; the core keeps those.
	GuestMSR(msr uint32) (val uint64, ok bool, err error)
	SetGuestMSR(msr uint32, val uint64) (ok bool, err error)
	Close() error
}

// Segment is a segment register in the unpacked form both backends convert from: the access
// rights are the descriptor's type (4 bits), S, DPL (2), P, AVL, L, D/B and G, laid out as in
// AMD's VMCB attribute field (bits 0-11). Intel SDM Vol. 3C, 25.4.1 "Guest Register State";
// AMD APM Vol. 2, 15.5.1 "Segment State in the VMCB".
type Segment struct {
	Selector uint16
	Attr     uint16
	Limit    uint32
	Base     uint64
}

// Segment attribute bits (the VMCB layout).
const (
	SegType     = 0x00F
	SegS        = 1 << 4
	SegDPLShift = 5
	SegP        = 1 << 7
	SegAVL      = 1 << 8
	SegL        = 1 << 9
	SegDB       = 1 << 10
	SegG        = 1 << 11
)

// Table is a descriptor-table register.
type Table struct {
	Base  uint64
	Limit uint32
}

// General-purpose register indexes into CPUState.GPR: the x86 encoding order, the numbering
// hv/emu's register file uses, so a CPUState's GPRs and an emulator's are interchangeable.
const (
	RAX, RCX, RDX, RBX = emu.RAX, emu.RCX, emu.RDX, emu.RBX
	RSP, RBP, RSI, RDI = emu.RSP, emu.RBP, emu.RSI, emu.RDI
	R8, R9, R10, R11   = emu.R8, emu.R9, emu.R10, emu.R11
	R12, R13, R14, R15 = emu.R12, emu.R13, emu.R14, emu.R15
)

// CPUState is a vCPU's architectural state.
type CPUState struct {
	GPR                    [16]uint64
	RIP, RFLAGS            uint64
	CR0, CR2, CR3, CR4     uint64
	EFER                   uint64
	CS, DS, ES, FS, GS, SS Segment
	TR, LDTR               Segment
	GDTR, IDTR             Table
	DR6, DR7               uint64
	PAT                    uint64
	// TSCOffset is added to the host's TSC to give the guest's (RDTSC, RDMSR TSC): a guest
	// WRMSR to IA32_TSC changes it. AMD APM Vol. 2, 15.30.5 "TSC Offset"; Intel SDM Vol. 3C,
	// 26.6.5 "Time-Stamp Counter Offset and Multiplier".
	TSCOffset uint64
	// Interruptibility: the guest executed STI or MOV SS just before the exit (an interrupt
	// cannot be delivered before the next instruction).
	InterruptShadow bool
}

// ExitKind classifies exits in backend-neutral terms.
type ExitKind int

// Exit kinds.
const (
	ExitUnknown         ExitKind = iota
	ExitIO                       // IN/OUT/INS/OUTS to a port
	ExitMMIO                     // a guest-physical access the second-level tables do not map
	ExitCPUID                    // CPUID
	ExitRDMSR                    // RDMSR
	ExitWRMSR                    // WRMSR
	ExitHLT                      // HLT
	ExitShutdown                 // triple fault (SVM SHUTDOWN, VMX reason 2)
	ExitInterrupt                // a host interrupt arrived; nothing for the core to do
	ExitInterruptWindow          // the guest can now take an interrupt
	ExitException                // an intercepted guest exception
	ExitHypercall                // VMMCALL / VMCALL
	ExitInvalidState             // the hardware refused the guest state
	ExitUnhandled                // an intercept the backend does not translate; see Raw
)

var exitNames = [...]string{"unknown", "io", "mmio", "cpuid", "rdmsr", "wrmsr", "hlt", "shutdown",
	"interrupt", "interrupt-window", "exception", "hypercall", "invalid-state", "unhandled"}

func (k ExitKind) String() string {
	if int(k) < len(exitNames) {
		return exitNames[k]
	}
	return "exit?"
}

// Exit describes why the guest stopped.
type Exit struct {
	Kind ExitKind
	// Raw is the hardware's exit code (SVM EXITCODE, VMX basic exit reason) and RawName its
	// name in the manual, for statistics and error messages.
	Raw     uint64
	RawName string
	// NextRIP is the address of the next instruction when the hardware supplied it (SVM nRIP,
	// VMX RIP + instruction length, SVM I/O EXITINFO2); 0 otherwise, and the core decodes the
	// instruction to find it.
	NextRIP uint64
	// I/O: port, access size in bytes, direction, string and REP forms.
	Port         uint16
	Size         int
	In, Str, Rep bool
	// MMIO: the guest-physical address and the kind of access.
	GPA          uint64
	Write, Fetch bool
	// Exceptions: vector and error code.
	Vector  uint8
	ErrCode uint32
	HasErr  bool
	// Detail is free text for ExitInvalidState and ExitUnhandled (which check failed, the
	// exit qualification).
	Detail string
}

// EventKind is what Inject delivers.
type EventKind int

// Event kinds. AMD APM Vol. 2, 15.20 "Event Injection"; Intel SDM Vol. 3C, 27.6 "Event Injection".
const (
	EventExternal  EventKind = iota // external interrupt (vector 32-255)
	EventNMI                        // NMI
	EventException                  // hardware exception, with an error code where it has one
	EventSoftware                   // software interrupt (INT n)
)

// Event is an interrupt or exception to deliver to the guest.
type Event struct {
	Kind    EventKind
	Vector  uint8
	ErrCode uint32
	HasErr  bool
}

// Errors backends return for what the core branches on.
var (
	// ErrNoHardware: the CPU lacks the feature (no SVM/VMX, no NPT/EPT, disabled by firmware).
	ErrNoHardware = errors.New("hardware virtualization not available")
	// ErrEntryFailed: VMRUN/VMLAUNCH/VMRESUME failed; the error text says why.
	ErrEntryFailed = errors.New("VM entry failed")
)
