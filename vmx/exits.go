package vmx

import (
	"fmt"

	"github.com/godwit-hv/godwit/hv"
)

// Basic exit reasons. Intel SDM Vol. 3D, Appendix C "VMX Basic Exit Reasons", Table C-1; the
// exit-reason field's layout is in Vol. 3C, 25.9.1 "Basic VM-Exit Information", Table 25-18.
const (
	reasonExceptionNMI        = 0
	reasonExternalInterrupt   = 1
	reasonTripleFault         = 2
	reasonINIT                = 3
	reasonSIPI                = 4
	reasonIOSMI               = 5
	reasonOtherSMI            = 6
	reasonInterruptWindow     = 7
	reasonNMIWindow           = 8
	reasonTaskSwitch          = 9
	reasonCPUID               = 10
	reasonGETSEC              = 11
	reasonHLT                 = 12
	reasonINVD                = 13
	reasonINVLPG              = 14
	reasonRDPMC               = 15
	reasonRDTSC               = 16
	reasonRSM                 = 17
	reasonVMCALL              = 18
	reasonVMCLEAR             = 19
	reasonVMLAUNCH            = 20
	reasonVMPTRLD             = 21
	reasonVMPTRST             = 22
	reasonVMREAD              = 23
	reasonVMRESUME            = 24
	reasonVMWRITE             = 25
	reasonVMXOFF              = 26
	reasonVMXON               = 27
	reasonCRAccess            = 28
	reasonMOVDR               = 29
	reasonIO                  = 30
	reasonRDMSR               = 31
	reasonWRMSR               = 32
	reasonInvalidGuestState   = 33
	reasonMSRLoading          = 34
	reasonMWAIT               = 36
	reasonMonitorTrapFlag     = 37
	reasonMONITOR             = 39
	reasonPAUSE               = 40
	reasonMachineCheckEntry   = 41
	reasonTPRBelowThreshold   = 43
	reasonAPICAccess          = 44
	reasonVirtualizedEOI      = 45
	reasonGDTRIDTRAccess      = 46
	reasonLDTRTRAccess        = 47
	reasonEPTViolation        = 48
	reasonEPTMisconfig        = 49
	reasonINVEPT              = 50
	reasonRDTSCP              = 51
	reasonPreemptionTimer     = 52
	reasonINVVPID             = 53
	reasonWBINVD              = 54
	reasonXSETBV              = 55
	reasonAPICWrite           = 56
	reasonRDRAND              = 57
	reasonINVPCID             = 58
	reasonVMFUNC              = 59
	reasonENCLS               = 60
	reasonRDSEED              = 61
	reasonPMLFull             = 62
	reasonXSAVES              = 63
	reasonXRSTORS             = 64
	reasonPCONFIG             = 65
	reasonSPPEvent            = 66
	reasonUMWAIT              = 67
	reasonTPAUSE              = 68
	reasonLOADIWKEY           = 69
	exitReasonEntryFailure    = 1 << 31 // Table 25-18: VM-entry failure
	exitReasonFromRoot        = 1 << 29 // VM exit from VMX root operation (SMM monitor)
	exitReasonPendingMTF      = 1 << 28
	exitReasonBasicMask       = 0xFFFF
	exitReasonEnclaveMode     = 1 << 27
	exitReasonUnusedBitsCheck = 0
)

var reasonNames = map[uint16]string{
	reasonExceptionNMI: "exception or NMI", reasonExternalInterrupt: "external interrupt",
	reasonTripleFault: "triple fault", reasonINIT: "INIT signal", reasonSIPI: "start-up IPI",
	reasonIOSMI: "I/O SMI", reasonOtherSMI: "other SMI", reasonInterruptWindow: "interrupt window",
	reasonNMIWindow: "NMI window", reasonTaskSwitch: "task switch", reasonCPUID: "CPUID",
	reasonGETSEC: "GETSEC", reasonHLT: "HLT", reasonINVD: "INVD", reasonINVLPG: "INVLPG",
	reasonRDPMC: "RDPMC", reasonRDTSC: "RDTSC", reasonRSM: "RSM", reasonVMCALL: "VMCALL",
	reasonVMCLEAR: "VMCLEAR", reasonVMLAUNCH: "VMLAUNCH", reasonVMPTRLD: "VMPTRLD",
	reasonVMPTRST: "VMPTRST", reasonVMREAD: "VMREAD", reasonVMRESUME: "VMRESUME",
	reasonVMWRITE: "VMWRITE", reasonVMXOFF: "VMXOFF", reasonVMXON: "VMXON",
	reasonCRAccess: "control-register access", reasonMOVDR: "MOV DR", reasonIO: "I/O instruction",
	reasonRDMSR: "RDMSR", reasonWRMSR: "WRMSR",
	reasonInvalidGuestState: "VM-entry failure due to invalid guest state",
	reasonMSRLoading:        "VM-entry failure due to MSR loading", reasonMWAIT: "MWAIT",
	reasonMonitorTrapFlag: "monitor trap flag", reasonMONITOR: "MONITOR", reasonPAUSE: "PAUSE",
	reasonMachineCheckEntry: "VM-entry failure due to machine-check event",
	reasonTPRBelowThreshold: "TPR below threshold", reasonAPICAccess: "APIC access",
	reasonVirtualizedEOI: "virtualized EOI", reasonGDTRIDTRAccess: "access to GDTR or IDTR",
	reasonLDTRTRAccess: "access to LDTR or TR", reasonEPTViolation: "EPT violation",
	reasonEPTMisconfig: "EPT misconfiguration", reasonINVEPT: "INVEPT", reasonRDTSCP: "RDTSCP",
	reasonPreemptionTimer: "VMX-preemption timer expired", reasonINVVPID: "INVVPID",
	reasonWBINVD: "WBINVD or WBNOINVD", reasonXSETBV: "XSETBV", reasonAPICWrite: "APIC write",
	reasonRDRAND: "RDRAND", reasonINVPCID: "INVPCID", reasonVMFUNC: "VMFUNC", reasonENCLS: "ENCLS",
	reasonRDSEED: "RDSEED", reasonPMLFull: "page-modification log full", reasonXSAVES: "XSAVES",
	reasonXRSTORS: "XRSTORS", reasonPCONFIG: "PCONFIG", reasonSPPEvent: "SPP-related event",
	reasonUMWAIT: "UMWAIT", reasonTPAUSE: "TPAUSE", reasonLOADIWKEY: "LOADIWKEY",
}

// ReasonName returns the manual's name of a basic exit reason.
func ReasonName(basic uint16) string {
	if n, ok := reasonNames[basic]; ok {
		return n
	}
	return fmt.Sprintf("exit reason %d", basic)
}

// VM-instruction error numbers. Intel SDM Vol. 3C, 32.4 "VM Instruction Error Numbers",
// Table 32-1.
var instructionErrors = map[uint64]string{
	1:  "VMCALL executed in VMX root operation",
	2:  "VMCLEAR with invalid physical address",
	3:  "VMCLEAR with VMXON pointer",
	4:  "VMLAUNCH with non-clear VMCS",
	5:  "VMRESUME with non-launched VMCS",
	6:  "VMRESUME after VMXOFF",
	7:  "VM entry with invalid control field(s)",
	8:  "VM entry with invalid host-state field(s)",
	9:  "VMPTRLD with invalid physical address",
	10: "VMPTRLD with VMXON pointer",
	11: "VMPTRLD with incorrect VMCS revision identifier",
	12: "VMREAD/VMWRITE from/to unsupported VMCS component",
	13: "VMWRITE to read-only VMCS component",
	15: "VMXON executed in VMX root operation",
	16: "VM entry with invalid executive-VMCS pointer",
	17: "VM entry with non-launched executive VMCS",
	18: "VM entry with executive-VMCS pointer not VMXON pointer",
	19: "VMCALL with non-clear VMCS",
	20: "VMCALL with invalid VM-exit control fields",
	22: "VMCALL with incorrect MSEG revision identifier",
	23: "VMXOFF under dual-monitor treatment of SMIs and SMM",
	24: "VMCALL with invalid SMM-monitor features",
	25: "VM entry with invalid VM-execution control fields in executive VMCS",
	26: "VM entry with events blocked by MOV SS",
	28: "invalid operand to INVEPT/INVVPID",
}

// InstructionError describes a VM-instruction error number.
func InstructionError(n uint64) string {
	if s, ok := instructionErrors[n]; ok {
		return fmt.Sprintf("VM-instruction error %d: %s", n, s)
	}
	return fmt.Sprintf("VM-instruction error %d", n)
}

// Exit qualification of a VM-entry failure (reasons 33 and 34). Intel SDM Vol. 3C, 27.8
// "VM-Entry Failures During or After Loading Guest State"; 27.4 "Loading MSRs".
func entryFailureDetail(basic uint16, qual uint64) string {
	switch basic {
	case reasonInvalidGuestState:
		switch qual {
		case 0:
			return "a guest-state check failed (the processor does not say which)"
		case 2:
			return "loading the PDPTEs failed (PAE paging)"
		case 3:
			return "NMI injection while blocked by NMI"
		case 4:
			return "invalid VMCS link pointer"
		}
		return fmt.Sprintf("guest-state check failed, qualification %d", qual)
	case reasonMSRLoading:
		return fmt.Sprintf("loading entry %d of the VM-entry MSR-load area failed", qual)
	case reasonMachineCheckEntry:
		return "a machine-check event occurred during VM entry"
	}
	return fmt.Sprintf("qualification %#x", qual)
}

// ioQual is the exit qualification of an I/O instruction. 28.2.1 "Basic VM-Exit
// Information", Table 28-5.
type ioQual struct {
	size          int  // bytes: 1, 2 or 4 (bits 2:0 hold size-1)
	in            bool // bit 3: 1 = IN
	str, rep, imm bool // bits 4, 5, 6 (operand encoding: immediate)
	port          uint16
}

func decodeIOQual(q uint64) ioQual {
	return ioQual{
		size: int(q&7) + 1,
		in:   q&(1<<3) != 0,
		str:  q&(1<<4) != 0,
		rep:  q&(1<<5) != 0,
		imm:  q&(1<<6) != 0,
		port: uint16(q >> 16),
	}
}

// eptQual is the exit qualification of an EPT violation. Table 28-7.
type eptQual struct {
	read, write, fetch bool   // bits 0-2: the access that failed
	perm               uint8  // bits 5:3: readable, writable, executable (the entry's permissions)
	linearValid        bool   // bit 7: guest-linear address field valid
	nmiUnblocking      bool   // bit 12: NMI unblocking due to IRET
	raw                uint64 // the whole qualification
}

func decodeEPTQual(q uint64) eptQual {
	return eptQual{
		read:          q&1 != 0,
		write:         q&2 != 0,
		fetch:         q&4 != 0,
		perm:          uint8(q >> 3 & 7),
		linearValid:   q&(1<<7) != 0,
		nmiUnblocking: q&(1<<12) != 0,
		raw:           q,
	}
}

// crQual is the exit qualification of a control-register access. Table 28-3.
type crQual struct {
	cr     int // bits 3:0
	access int // bits 5:4: 0 MOV to CR, 1 MOV from CR, 2 CLTS, 3 LMSW
	gpr    int // bits 11:8
	lmsw   uint16
}

func decodeCRQual(q uint64) crQual {
	return crQual{cr: int(q & 0xF), access: int(q >> 4 & 3), gpr: int(q >> 8 & 0xF), lmsw: uint16(q >> 16)}
}

func (c crQual) String() string {
	switch c.access {
	case 0:
		return fmt.Sprintf("MOV CR%d, %s", c.cr, gprNames[c.gpr])
	case 1:
		return fmt.Sprintf("MOV %s, CR%d", gprNames[c.gpr], c.cr)
	case 2:
		return "CLTS"
	}
	return fmt.Sprintf("LMSW %#x", c.lmsw)
}

var gprNames = [16]string{"RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI",
	"R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15"}

// Interruption-information fields: VM-entry (25.8.3, Table 25-17), VM-exit (25.9.2,
// Table 25-19) and IDT-vectoring (25.9.3, Table 25-20) share the layout.
const (
	intrVectorMask    = 0xFF
	intrTypeShift     = 8
	intrTypeMask      = 7
	intrErrorCode     = 1 << 11 // deliver (entry) / valid (exit) error code
	intrNMIUnblocking = 1 << 12 // exit info: NMI unblocking due to IRET
	intrValid         = 1 << 31

	intrTypeExternal     = 0
	intrTypeNMI          = 2
	intrTypeHardwareExc  = 3
	intrTypeSoftwareInt  = 4
	intrTypePrivSoftExc  = 5
	intrTypeSoftwareExc  = 6
	intrTypeOtherEvent   = 7
	interruptibilitySTI  = 1 << 0 // 25.4.2 "Guest Non-Register State", Table 25-3
	interruptibilityMOVS = 1 << 1
	interruptibilitySMI  = 1 << 2
	interruptibilityNMI  = 1 << 3
)

// exitInfo is everything read from the VMCS after an exit.
type exitInfo struct {
	reason      uint32 // the full exit-reason field
	qual        uint64
	gpa         uint64 // guest-physical address (EPT violations and misconfigurations)
	intrInfo    uint32 // VM-exit interruption information
	intrErr     uint32
	idtInfo     uint32 // IDT-vectoring information
	idtErr      uint32
	instrLen    uint32
	instrInfo   uint32
	rip         uint64 // guest RIP at the exit
	instrErrNum uint64 // VM-instruction error (only for VMfailValid)
}

// decode translates an exit into the core's terms. It is a pure function of the exit.
func decode(e *exitInfo) hv.Exit {
	basic := uint16(e.reason & exitReasonBasicMask)
	x := hv.Exit{Raw: uint64(basic), RawName: ReasonName(basic)}
	next := e.rip + uint64(e.instrLen)
	if e.reason&exitReasonEntryFailure != 0 {
		x.Kind = hv.ExitInvalidState
		x.Detail = entryFailureDetail(basic, e.qual)
		return x
	}
	switch basic {
	case reasonExceptionNMI:
		x.Kind = hv.ExitException
		x.Vector = uint8(e.intrInfo & intrVectorMask)
		if e.intrInfo&intrErrorCode != 0 {
			x.HasErr, x.ErrCode = true, e.intrErr
		}
		if e.intrInfo>>intrTypeShift&intrTypeMask == intrTypeNMI {
			x.Detail = "NMI"
		}
	case reasonExternalInterrupt, reasonPreemptionTimer:
		x.Kind = hv.ExitInterrupt
	case reasonTripleFault:
		x.Kind = hv.ExitShutdown
	case reasonInterruptWindow:
		x.Kind = hv.ExitInterruptWindow
	case reasonCPUID:
		x.Kind, x.NextRIP = hv.ExitCPUID, next
	case reasonHLT:
		x.Kind, x.NextRIP = hv.ExitHLT, next
	case reasonVMCALL:
		x.Kind, x.NextRIP = hv.ExitHypercall, next
	case reasonRDMSR:
		x.Kind, x.NextRIP = hv.ExitRDMSR, next
	case reasonWRMSR:
		x.Kind, x.NextRIP = hv.ExitWRMSR, next
	case reasonIO:
		q := decodeIOQual(e.qual)
		x.Kind, x.NextRIP = hv.ExitIO, next
		x.Port, x.Size, x.In, x.Str, x.Rep = q.port, q.size, q.in, q.str, q.rep
	case reasonEPTViolation:
		q := decodeEPTQual(e.qual)
		x.Kind = hv.ExitMMIO
		x.GPA, x.Write, x.Fetch = e.gpa, q.write, q.fetch
	case reasonEPTMisconfig:
		x.Kind = hv.ExitUnhandled
		x.GPA = e.gpa
		x.Detail = fmt.Sprintf("EPT misconfiguration at guest-physical %#x", e.gpa)
	case reasonCRAccess:
		x.Kind, x.NextRIP = hv.ExitUnhandled, next
		x.Detail = decodeCRQual(e.qual).String()
	default:
		x.Kind = hv.ExitUnhandled
		if e.instrLen != 0 {
			x.NextRIP = next
		}
		x.Detail = fmt.Sprintf("%s: qualification %#x", x.RawName, e.qual)
	}
	if e.idtInfo&intrValid != 0 {
		if x.Detail != "" {
			x.Detail += "; "
		}
		x.Detail += fmt.Sprintf("during delivery of vector %d (type %d)", e.idtInfo&intrVectorMask, e.idtInfo>>intrTypeShift&intrTypeMask)
	}
	return x
}
