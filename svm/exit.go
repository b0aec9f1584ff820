package svm

import (
	"fmt"

	"github.com/godwit-hv/godwit/hv"
)

// EXITCODE values the backend handles or names. AMD APM Vol. 2, Appendix C "SVM Intercept
// Exit Codes", Table C-1.
const (
	ExitCodeCR0Read    = 0x000 // 0x000-0x00F: read of CR0-15
	ExitCodeCR0Write   = 0x010 // 0x010-0x01F: write of CR0-15
	ExitCodeDR0Read    = 0x020 // 0x020-0x02F: read of DR0-15
	ExitCodeDR0Write   = 0x030 // 0x030-0x03F: write of DR0-15
	ExitCodeExcp0      = 0x040 // 0x040-0x05F: exception vector 0-31
	ExitCodeIntr       = 0x060 // physical INTR
	ExitCodeNMI        = 0x061 // physical NMI
	ExitCodeSMI        = 0x062 // physical SMI
	ExitCodeInit       = 0x063 // physical INIT
	ExitCodeVIntr      = 0x064 // virtual INTR
	ExitCodeRDTSC      = 0x06E
	ExitCodeRDPMC      = 0x06F
	ExitCodeCPUID      = 0x072
	ExitCodeIRET       = 0x074
	ExitCodeINVD       = 0x076
	ExitCodePause      = 0x077
	ExitCodeHLT        = 0x078
	ExitCodeINVLPG     = 0x079
	ExitCodeINVLPGA    = 0x07A
	ExitCodeIOIO       = 0x07B
	ExitCodeMSR        = 0x07C
	ExitCodeTaskSwitch = 0x07D
	ExitCodeShutdown   = 0x07F
	ExitCodeVMRUN      = 0x080
	ExitCodeVMMCALL    = 0x081
	ExitCodeVMLOAD     = 0x082
	ExitCodeVMSAVE     = 0x083
	ExitCodeSTGI       = 0x084
	ExitCodeCLGI       = 0x085
	ExitCodeSKINIT     = 0x086
	ExitCodeRDTSCP     = 0x087
	ExitCodeWBINVD     = 0x089
	ExitCodeXSETBV     = 0x08D
	ExitCodeNPF        = 0x400      // nested page fault
	ExitCodeInvalid    = ^uint64(0) // VMEXIT_INVALID (-1): illegal guest state
	ExitCodeBusy       = ^uint64(1) // VMEXIT_BUSY (-2): the VMSA is busy (SEV-SNP)
)

var exitCodeNames = map[uint64]string{
	ExitCodeIntr: "VMEXIT_INTR", ExitCodeNMI: "VMEXIT_NMI", ExitCodeSMI: "VMEXIT_SMI",
	ExitCodeInit: "VMEXIT_INIT", ExitCodeVIntr: "VMEXIT_VINTR", ExitCodeRDTSC: "VMEXIT_RDTSC",
	ExitCodeRDPMC: "VMEXIT_RDPMC", ExitCodeCPUID: "VMEXIT_CPUID", ExitCodeIRET: "VMEXIT_IRET",
	ExitCodeINVD: "VMEXIT_INVD", ExitCodePause: "VMEXIT_PAUSE", ExitCodeHLT: "VMEXIT_HLT",
	ExitCodeINVLPG: "VMEXIT_INVLPG", ExitCodeINVLPGA: "VMEXIT_INVLPGA", ExitCodeIOIO: "VMEXIT_IOIO",
	ExitCodeMSR: "VMEXIT_MSR", ExitCodeTaskSwitch: "VMEXIT_TASK_SWITCH",
	ExitCodeShutdown: "VMEXIT_SHUTDOWN", ExitCodeVMRUN: "VMEXIT_VMRUN",
	ExitCodeVMMCALL: "VMEXIT_VMMCALL", ExitCodeVMLOAD: "VMEXIT_VMLOAD",
	ExitCodeVMSAVE: "VMEXIT_VMSAVE", ExitCodeSTGI: "VMEXIT_STGI", ExitCodeCLGI: "VMEXIT_CLGI",
	ExitCodeSKINIT: "VMEXIT_SKINIT", ExitCodeRDTSCP: "VMEXIT_RDTSCP",
	ExitCodeWBINVD: "VMEXIT_WBINVD", ExitCodeXSETBV: "VMEXIT_XSETBV", ExitCodeNPF: "VMEXIT_NPF",
	ExitCodeInvalid: "VMEXIT_INVALID", ExitCodeBusy: "VMEXIT_BUSY",
}

// ExitCodeName returns the manual's name for an EXITCODE.
func ExitCodeName(code uint64) string {
	if n, ok := exitCodeNames[code]; ok {
		return n
	}
	switch {
	case code < ExitCodeCR0Write:
		return fmt.Sprintf("VMEXIT_CR%d_READ", code-ExitCodeCR0Read)
	case code < ExitCodeDR0Read:
		return fmt.Sprintf("VMEXIT_CR%d_WRITE", code-ExitCodeCR0Write)
	case code < ExitCodeDR0Write:
		return fmt.Sprintf("VMEXIT_DR%d_READ", code-ExitCodeDR0Read)
	case code < ExitCodeExcp0:
		return fmt.Sprintf("VMEXIT_DR%d_WRITE", code-ExitCodeDR0Write)
	case code < ExitCodeIntr:
		return fmt.Sprintf("VMEXIT_EXCP%d", code-ExitCodeExcp0)
	}
	return fmt.Sprintf("VMEXIT_%#x", code)
}

// IOIO EXITINFO1 fields. AMD APM Vol. 2, 15.10.2 "IN and OUT Behavior", Figure 15-2
// "EXITINFO1 for IOIO Intercept". EXITINFO2 holds the rIP of the next instruction.
const (
	ioioTypeIn    = 1 << 0 // TYPE: 1 = IN, 0 = OUT
	ioioStr       = 1 << 2 // STR: INS/OUTS
	ioioRep       = 1 << 3 // REP prefix
	ioioSZ8       = 1 << 4 // 8-bit operand
	ioioSZ16      = 1 << 5 // 16-bit operand
	ioioSZ32      = 1 << 6 // 32-bit operand
	ioioPortShift = 16     // bits 31:16: port number
)

// NPF EXITINFO1 bits: the page-fault error code of the nested fault plus where it happened.
// AMD APM Vol. 2, 15.25.6 "Nested versus Guest Page Faults, Fault Ordering"; 8.4.2
// "Page-Fault Error Code".
const (
	npfPresent    = 1 << 0  // P: the nested entry was present (a protection fault)
	npfWrite      = 1 << 1  // RW: a write access
	npfUser       = 1 << 2  // US: always 1 (guest accesses are user accesses to the nested tables)
	npfReserved   = 1 << 3  // RSV: reserved bit set in a nested entry
	npfFetch      = 1 << 4  // ID: an instruction fetch
	npfFinalGPA   = 1 << 32 // the fault was on the final guest-physical address
	npfGuestTable = 1 << 33 // the fault was on a guest page-table access
)

// Exceptions that push an error code. AMD APM Vol. 2, 8.2 "Vectors" (Table 8-1).
const errCodeVectors = 1<<8 | 1<<10 | 1<<11 | 1<<12 | 1<<13 | 1<<14 | 1<<17 | 1<<21 | 1<<29 | 1<<30

// nonExceptionVectors are the vectors below 32 that EVENTINJ must not inject as exceptions.
const nonExceptionVectors = 1<<2 | 1<<15 | 1<<22 | 1<<23 | 1<<24 | 1<<25 | 1<<26 | 1<<27 | 1<<31

// exitInfo is what decodeExit reads from the control area after a #VMEXIT.
type exitInfo struct {
	code, info1, info2, nrip uint64
	// nrips says the hardware saves nRIP (CPUID Fn8000_000A_EDX NRIPS).
	nrips bool
}

// decodeExit translates a #VMEXIT into an hv.Exit. It is a pure function of the exit fields;
// exits for VMEXIT_INVALID get their Detail from the caller (the consistency checker).
func decodeExit(x exitInfo) hv.Exit {
	e := hv.Exit{Raw: x.code, RawName: ExitCodeName(x.code)}
	// nRIP is saved for instruction intercepts only; elsewhere it is not meaningful.
	// AMD APM Vol. 2, 15.7.1 "State Saved on Exit".
	nextRIP := uint64(0)
	if x.nrips {
		nextRIP = x.nrip
	}
	switch {
	case x.code == ExitCodeIOIO:
		e.Kind = hv.ExitIO
		e.Port = uint16(x.info1 >> ioioPortShift)
		e.In = x.info1&ioioTypeIn != 0
		e.Str = x.info1&ioioStr != 0
		e.Rep = x.info1&ioioRep != 0
		switch {
		case x.info1&ioioSZ8 != 0:
			e.Size = 1
		case x.info1&ioioSZ16 != 0:
			e.Size = 2
		case x.info1&ioioSZ32 != 0:
			e.Size = 4
		}
		e.NextRIP = x.info2 // EXITINFO2 is always the next rIP for IOIO, with or without NRIPS
	case x.code == ExitCodeNPF:
		e.Kind = hv.ExitMMIO
		e.GPA = x.info2
		e.Write = x.info1&npfWrite != 0
		e.Fetch = x.info1&npfFetch != 0
		// ErrCode keeps the page-fault error code bits; NPFDetail spells them out.
		e.ErrCode = uint32(x.info1)
		switch {
		case x.info1&npfReserved != 0:
			e.Detail = "reserved bit set in a nested page-table entry"
		case x.info1&npfGuestTable != 0:
			e.Detail = "nested fault on a guest page-table access"
		}
	case x.code == ExitCodeCPUID:
		e.Kind, e.NextRIP = hv.ExitCPUID, nextRIP
	case x.code == ExitCodeMSR:
		// EXITINFO1: 0 = RDMSR, 1 = WRMSR; ECX names the MSR. AMD APM Vol. 2, 15.11.
		e.Kind, e.NextRIP = hv.ExitRDMSR, nextRIP
		if x.info1 == 1 {
			e.Kind = hv.ExitWRMSR
		}
	case x.code == ExitCodeHLT:
		e.Kind, e.NextRIP = hv.ExitHLT, nextRIP
	case x.code == ExitCodeShutdown:
		e.Kind = hv.ExitShutdown
	case x.code == ExitCodeIntr || x.code == ExitCodeNMI || x.code == ExitCodeSMI || x.code == ExitCodeInit:
		e.Kind = hv.ExitInterrupt
	case x.code == ExitCodeVIntr:
		e.Kind = hv.ExitInterruptWindow
	case x.code == ExitCodeVMMCALL:
		e.Kind, e.NextRIP = hv.ExitHypercall, nextRIP
	case x.code >= ExitCodeExcp0 && x.code < ExitCodeIntr:
		// EXITINFO1 holds the error code of exceptions that have one; EXITINFO2 the
		// faulting address of #PF. AMD APM Vol. 2, 15.12 "Exception Intercepts".
		e.Kind = hv.ExitException
		e.Vector = uint8(x.code - ExitCodeExcp0)
		if errCodeVectors&(1<<e.Vector) != 0 {
			e.HasErr, e.ErrCode = true, uint32(x.info1)
		}
		if e.Vector == 14 {
			e.GPA = x.info2 // the guest-linear fault address (CR2 is not yet written)
			e.Detail = fmt.Sprintf("#PF address %#x", x.info2)
		}
	case x.code == ExitCodeInvalid:
		e.Kind = hv.ExitInvalidState
	default:
		// VMRUN, VMLOAD, VMSAVE, STGI, CLGI, SKINIT, INVLPGA, INVD, XSETBV: the guest must
		// not use SVM or touch host-wide state; the core decides (usually #UD or stop).
		e.Kind = hv.ExitUnhandled
		e.NextRIP = nextRIP
		e.Detail = fmt.Sprintf("exitinfo1 %#x exitinfo2 %#x", x.info1, x.info2)
	}
	return e
}

// NPFDetail spells out a nested page fault's EXITINFO1 (an hv.Exit's ErrCode holds its low
// 32 bits).
func NPFDetail(info1 uint64) string {
	s := "not-present"
	if info1&npfPresent != 0 {
		s = "protection"
	}
	if info1&npfReserved != 0 {
		s += ",reserved-bit"
	}
	switch {
	case info1&npfFetch != 0:
		s += ",fetch"
	case info1&npfWrite != 0:
		s += ",write"
	default:
		s += ",read"
	}
	if info1&npfGuestTable != 0 {
		s += ",guest-page-table"
	}
	if info1&npfFinalGPA != 0 {
		s += ",final-gpa"
	}
	return fmt.Sprintf("npf %s (exitinfo1 %#x)", s, info1)
}

// eventToVMCB encodes an hv.Event for EVENTINJ. AMD APM Vol. 2, 15.20 "Event Injection".
func eventToVMCB(ev hv.Event) (uint64, error) {
	var typ uint64
	switch ev.Kind {
	case hv.EventExternal:
		if ev.Vector < 32 {
			return 0, fmt.Errorf("svm: external interrupt vector %d below 32", ev.Vector)
		}
		typ = eventTypeINTR
	case hv.EventNMI:
		typ = eventTypeNMI
		ev.Vector = 2 // the vector field is ignored for NMI; keep it architectural
	case hv.EventException:
		// Injecting vector 2 (NMI), 15, 22-27 or 31 (reserved) as an exception, or any
		// vector above 31, makes VMRUN fail. AMD APM Vol. 2, 15.20 "Event Injection".
		if ev.Vector >= 32 || nonExceptionVectors&(1<<ev.Vector) != 0 {
			return 0, fmt.Errorf("svm: vector %d is not an exception", ev.Vector)
		}
		typ = eventTypeException
	case hv.EventSoftware:
		typ = eventTypeSoftInt
	default:
		return 0, fmt.Errorf("svm: unknown event kind %d", ev.Kind)
	}
	if ev.HasErr && ev.Kind != hv.EventException {
		return 0, fmt.Errorf("svm: event kind %d cannot carry an error code", ev.Kind)
	}
	v := uint64(ev.Vector) | typ<<eventTypeShift | eventValid
	if ev.HasErr {
		v |= eventEV | uint64(ev.ErrCode)<<eventErrShift
	}
	return v, nil
}

// eventFromVMCB decodes an EVENTINJ/EXITINTINFO value.
func eventFromVMCB(v uint64) (hv.Event, bool) {
	if v&eventValid == 0 {
		return hv.Event{}, false
	}
	ev := hv.Event{Vector: uint8(v & eventVectorMask)}
	switch (v & eventTypeMask) >> eventTypeShift {
	case eventTypeNMI:
		ev.Kind = hv.EventNMI
	case eventTypeException:
		ev.Kind = hv.EventException
	case eventTypeSoftInt:
		ev.Kind = hv.EventSoftware
	default:
		ev.Kind = hv.EventExternal
	}
	if v&eventEV != 0 {
		ev.HasErr, ev.ErrCode = true, uint32(v>>eventErrShift)
	}
	return ev, true
}
