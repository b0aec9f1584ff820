package svm

import (
	"fmt"
	"strings"
)

// Reserved (must-be-zero) bits the checker tests. AMD APM Vol. 2, 3.1 "System-Control
// Registers": CR0 bits 63:32; CR3 bits 63:52 in long mode; CR4 bits 63:32 and the bits no AMD
// processor defines (13-15: VMXE and SMXE are Intel's); EFER bits 63:22, 19, 16, 9 and 7:1
// (the defined ones are SCE, LME, LMA, NXE, SVME, LMSLE, FFXSR, TCE, MCOMMIT, INTWB, UAIE, AIBRSE).
const (
	cr0MBZ  = 0xFFFF_FFFF_0000_0000
	cr3MBZ  = 0xFFF0_0000_0000_0000
	cr4MBZ  = 0xFFFF_FFFF_0000_E000
	drHigh  = 0xFFFF_FFFF_0000_0000 // DR6/DR7 bits 63:32
	eferMBZ = 0xFFFF_FFFF_FFC0_0000 | 1<<19 | 1<<16 | 1<<9 | 0xFE
)

// segment attribute bits used by the checks (hv.Seg* in the VMCB layout).
const (
	attrL  = 1 << 9
	attrDB = 1 << 10
)

// checkLimits is what the checker needs to know about the host.
type checkLimits struct {
	// maxPhysAddr is the processor's physical-address width in bits (CPUID Fn8000_0008 EAX[7:0]).
	maxPhysAddr uint
	// longMode: the processor supports long mode (CPUID Fn8000_0001 EDX.LM); always on hosts
	// that run Godwit, but kept to mirror the check.
	longMode bool
}

// Check runs the consistency checks VMRUN performs on the guest state and the controls, in
// the order of the list in AMD APM Vol. 2, 15.5.1 "Canonicalization and Consistency Checks"
// (with the event-injection rules of 15.20 "Event Injection"), and returns one line per failed
// check; none means VMRUN will accept the state. iopmPA and msrpmPA are checked against the
// physical-address width with the map sizes.
func check(v *VMCB, lim checkLimits) []string {
	var bad []string
	fail := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	s, c := &v.Save, &v.Control
	if s.EFER&eferSVME == 0 {
		fail("EFER.SVME is zero")
	}
	if s.CR0&cr0CD == 0 && s.CR0&cr0NW != 0 {
		fail("CR0.CD is zero and CR0.NW is set (CR0 %#x)", s.CR0)
	}
	if s.CR0&cr0MBZ != 0 {
		fail("CR0[63:32] are not zero (CR0 %#x)", s.CR0)
	}
	if s.CR3&cr3MBZ != 0 {
		fail("an MBZ bit of CR3 is set (CR3 %#x)", s.CR3)
	}
	if s.CR4&cr4MBZ != 0 {
		fail("an MBZ bit of CR4 is set (CR4 %#x)", s.CR4)
	}
	if s.DR6&drHigh != 0 {
		fail("DR6[63:32] are not zero (DR6 %#x)", s.DR6)
	}
	if s.DR7&drHigh != 0 {
		fail("DR7[63:32] are not zero (DR7 %#x)", s.DR7)
	}
	if s.EFER&eferMBZ != 0 {
		fail("an MBZ bit of EFER is set (EFER %#x)", s.EFER)
	}
	if s.EFER&(eferLMA|eferLME) != 0 && !lim.longMode {
		fail("EFER.LMA or EFER.LME is set and the processor does not support long mode")
	}
	lmePG := s.EFER&eferLME != 0 && s.CR0&cr0PG != 0
	if lmePG && s.CR4&cr4PAE == 0 {
		fail("EFER.LME and CR0.PG are both set and CR4.PAE is zero")
	}
	if lmePG && s.CR0&cr0PE == 0 {
		fail("EFER.LME and CR0.PG are both set and CR0.PE is zero")
	}
	if lmePG && s.CR4&cr4PAE != 0 && s.CS.Attrib&attrL != 0 && s.CS.Attrib&attrDB != 0 {
		fail("EFER.LME, CR0.PG, CR4.PAE, CS.L and CS.D are all set")
	}
	if c.InterceptMsc2&intercept2VMRUN == 0 {
		fail("the VMRUN intercept bit is clear")
	}
	maxPA := uint64(1) << lim.maxPhysAddr
	if c.InterceptMsc1&intercept1IOIOProt != 0 && (c.IOPMBasePA >= maxPA || c.IOPMBasePA+IOPMSize > maxPA) {
		fail("the IOIO intercept table at %#x extends past the maximum physical address", c.IOPMBasePA)
	}
	if c.InterceptMsc1&intercept1MSRProt != 0 && (c.MSRPMBasePA >= maxPA || c.MSRPMBasePA+MSRPMSize > maxPA) {
		fail("the MSR intercept table at %#x extends past the maximum physical address", c.MSRPMBasePA)
	}
	if msg := checkEventInj(c.EventInj); msg != "" {
		fail("illegal event injection: %s", msg)
	}
	if c.GuestASID == 0 {
		fail("ASID is zero")
	}
	// Not in the list of 15.5.1 but enforced by VMRUN with nested paging: G_PAT must hold
	// valid PAT types (15.25.8 "Combining Guest and Host PAT"; WRMSR to PAT would #GP).
	if c.NPControl&npEnable != 0 && !validPAT(s.GPAT) {
		fail("G_PAT %#x holds a reserved memory type", s.GPAT)
	}
	return bad
}

// checkEventInj returns why EVENTINJ is illegal, or "". AMD APM Vol. 2, 15.20.
func checkEventInj(v uint64) string {
	if v&eventValid == 0 {
		return ""
	}
	typ := (v & eventTypeMask) >> eventTypeShift
	vec := v & eventVectorMask
	switch typ {
	case eventTypeINTR, eventTypeNMI, eventTypeSoftInt:
	case eventTypeException:
		if vec >= 32 || nonExceptionVectors&(1<<vec) != 0 {
			return fmt.Sprintf("vector %d injected as an exception", vec)
		}
	default:
		return fmt.Sprintf("reserved TYPE %d", typ)
	}
	return ""
}

// validPAT reports whether every entry of a PAT value is a defined memory type (0 UC, 1 WC,
// 4 WT, 5 WP, 6 WB, 7 UC-). AMD APM Vol. 2, 7.8.1 "PAT Register".
func validPAT(pat uint64) bool {
	for i := 0; i < 8; i++ {
		switch pat >> (8 * i) & 0xFF {
		case 0, 1, 4, 5, 6, 7:
		default:
			return false
		}
	}
	return true
}

// checkDetail joins the failed checks for an ExitInvalidState Detail.
func checkDetail(bad []string) string {
	if len(bad) == 0 {
		return "VMRUN refused the state, but no check of AMD APM Vol. 2 15.5.1 fails in software"
	}
	return "AMD APM Vol. 2 15.5.1 consistency checks failed: " + strings.Join(bad, "; ")
}
