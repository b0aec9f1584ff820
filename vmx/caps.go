package vmx

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"

	"github.com/godwit-hv/godwit/hv"
)

// VMX capability MSRs. Intel SDM Vol. 3D, Appendix A "VMX Capability Reporting Facility";
// Vol. 4, Table 2-2.
const (
	msrFeatureControl     = 0x03A // A.1 and Vol. 3C, 24.7 "Enabling and Entering VMX Operation"
	msrVMXBasic           = 0x480 // A.1 "Basic VMX Information"
	msrVMXPinbased        = 0x481 // A.3.1 "Pin-Based VM-Execution Controls"
	msrVMXProcbased       = 0x482 // A.3.2 "Primary Processor-Based VM-Execution Controls"
	msrVMXExit            = 0x483 // A.4 "VM-Exit Controls"
	msrVMXEntry           = 0x484 // A.5 "VM-Entry Controls"
	msrVMXMisc            = 0x485 // A.6 "Miscellaneous Data"
	msrVMXCR0Fixed0       = 0x486 // A.7 "VMX-Fixed Bits in CR0"
	msrVMXCR0Fixed1       = 0x487
	msrVMXCR4Fixed0       = 0x488 // A.8 "VMX-Fixed Bits in CR4"
	msrVMXCR4Fixed1       = 0x489
	msrVMXVMCSEnum        = 0x48A // A.9 "VMCS Enumeration"
	msrVMXProcbased2      = 0x48B // A.3.3 "Secondary Processor-Based VM-Execution Controls"
	msrVMXEPTVPIDCap      = 0x48C // A.10 "VPID and EPT Capabilities"
	msrVMXTruePinbased    = 0x48D // A.3.1
	msrVMXTrueProcbased   = 0x48E // A.3.2
	msrVMXTrueExit        = 0x48F // A.4
	msrVMXTrueEntry       = 0x490 // A.5
	featureControlLocked  = 1 << 0
	featureControlVMXOut  = 1 << 2 // enable VMX outside SMX operation
	basicTrueControls     = 1 << 55
	basicNoErrCodeCheck   = 1 << 56 // A.1: injection of hardware exceptions need not match error-code delivery
	basicMemTypeShift     = 50
	basicMemTypeWB        = 6
	basicRevisionMask     = 0x7FFF_FFFF
	basicRegionSizeShift  = 32
	basicRegionSizeMask   = 0x1FFF
	eptCapExecOnly        = 1 << 0  // A.10: execute-only translations
	eptCapWalk4           = 1 << 6  // page-walk length 4
	eptCapWB              = 1 << 14 // EPTP may use write-back paging-structure memory
	eptCap2M              = 1 << 16
	eptCapINVEPT          = 1 << 20
	eptCapAD              = 1 << 21
	eptCapINVEPTSingle    = 1 << 25
	eptCapINVEPTAll       = 1 << 26
	vpidCapINVVPID        = 1 << 32
	vpidCapINVVPIDSingle  = 1 << 41
	vpidCapINVVPIDAll     = 1 << 42
	miscActivityHLTShift  = 6 // A.6: bit 6 HLT activity state supported
	miscMaxMSRListShift   = 25
	miscMaxMSRListMask    = 7
	miscUnrestrictedEFERL = 1 << 5 // VM exits store EFER.LMA into "IA-32e mode guest"
)

// Pin-based VM-execution controls. Intel SDM Vol. 3C, 25.6.1, Table 25-5.
const (
	pinExternalInterruptExiting = 1 << 0
	pinNMIExiting               = 1 << 3
	pinVirtualNMIs              = 1 << 5
	pinPreemptionTimer          = 1 << 6
	pinPostedInterrupts         = 1 << 7
)

// Primary processor-based VM-execution controls. 25.6.2, Table 25-6.
const (
	procInterruptWindowExiting = 1 << 2
	procUseTSCOffsetting       = 1 << 3
	procHLTExiting             = 1 << 7
	procINVLPGExiting          = 1 << 9
	procMWAITExiting           = 1 << 10
	procRDPMCExiting           = 1 << 11
	procRDTSCExiting           = 1 << 12
	procCR3LoadExiting         = 1 << 15
	procCR3StoreExiting        = 1 << 16
	procCR8LoadExiting         = 1 << 19
	procCR8StoreExiting        = 1 << 20
	procUseTPRShadow           = 1 << 21
	procNMIWindowExiting       = 1 << 22
	procMOVDRExiting           = 1 << 23
	procUnconditionalIOExiting = 1 << 24
	procUseIOBitmaps           = 1 << 25
	procMonitorTrapFlag        = 1 << 27
	procUseMSRBitmaps          = 1 << 28
	procMONITORExiting         = 1 << 29
	procPAUSEExiting           = 1 << 30
	procActivateSecondary      = 1 << 31
)

// Secondary processor-based VM-execution controls. 25.6.2, Table 25-7.
const (
	proc2VirtualizeAPIC    = 1 << 0
	proc2EnableEPT         = 1 << 1
	proc2DescriptorExiting = 1 << 2
	proc2EnableRDTSCP      = 1 << 3
	proc2EnableVPID        = 1 << 5
	proc2WBINVDExiting     = 1 << 6
	proc2UnrestrictedGuest = 1 << 7
	proc2EnableINVPCID     = 1 << 12
	proc2EnablePML         = 1 << 17
	proc2EnableXSAVES      = 1 << 20
)

// VM-exit controls. 25.7.1, Table 25-13.
const (
	exitSaveDebugControls     = 1 << 2
	exitHostAddressSpaceSize  = 1 << 9
	exitLoadPerfGlobalCtrl    = 1 << 12
	exitAckInterruptOnExit    = 1 << 15
	exitSavePAT               = 1 << 18
	exitLoadPAT               = 1 << 19
	exitSaveEFER              = 1 << 20
	exitLoadEFER              = 1 << 21
	exitSavePreemptionTimer   = 1 << 22
	entryLoadDebugControls    = 1 << 2 // VM-entry controls. 25.8.1, Table 25-15.
	entryIA32eModeGuest       = 1 << 9
	entryToSMM                = 1 << 10
	entryDeactivateDualMon    = 1 << 11
	entryLoadPerfGlobalCtrl   = 1 << 13
	entryLoadPAT              = 1 << 14
	entryLoadEFER             = 1 << 15
	controlsDefault1Pinbased  = 0x16      // A.2: default1 bits 1, 2, 4
	controlsDefault1Procbased = 0x401E172 // bits 1, 4-6, 8, 13-16, 26
	controlsDefault1Exit      = 0x36DFF   // bits 0-8, 10, 11, 13, 14, 16, 17
	controlsDefault1Entry     = 0x11FF    // bits 0-8, 12
)

// MSRReader reads a model-specific register; the kernel passes x86.Rdmsr, tests a table.
type MSRReader func(msr uint32) uint64

// Caps is what the capability MSRs say, read once.
type Caps struct {
	Basic                            uint64
	Pinbased, Procbased, Exit, Entry uint64 // the TRUE_ MSRs when Basic bit 55 says they exist
	Procbased2                       uint64 // 0 when secondary controls cannot be activated
	Misc                             uint64
	CR0Fixed0, CR0Fixed1             uint64
	CR4Fixed0, CR4Fixed1             uint64
	EPTVPIDCap                       uint64
	FeatureControl                   uint64
}

// ReadCaps reads the capability MSRs. Call it only when CPUID.1:ECX.VMX[bit 5] is 1.
func ReadCaps(rdmsr MSRReader) Caps {
	c := Caps{
		Basic:          rdmsr(msrVMXBasic),
		Misc:           rdmsr(msrVMXMisc),
		CR0Fixed0:      rdmsr(msrVMXCR0Fixed0),
		CR0Fixed1:      rdmsr(msrVMXCR0Fixed1),
		CR4Fixed0:      rdmsr(msrVMXCR4Fixed0),
		CR4Fixed1:      rdmsr(msrVMXCR4Fixed1),
		FeatureControl: rdmsr(msrFeatureControl),
	}
	if c.Basic&basicTrueControls != 0 {
		c.Pinbased = rdmsr(msrVMXTruePinbased)
		c.Procbased = rdmsr(msrVMXTrueProcbased)
		c.Exit = rdmsr(msrVMXTrueExit)
		c.Entry = rdmsr(msrVMXTrueEntry)
	} else {
		c.Pinbased = rdmsr(msrVMXPinbased)
		c.Procbased = rdmsr(msrVMXProcbased)
		c.Exit = rdmsr(msrVMXExit)
		c.Entry = rdmsr(msrVMXEntry)
	}
	if c.Procbased>>32&procActivateSecondary != 0 {
		c.Procbased2 = rdmsr(msrVMXProcbased2)
		// A.10: the EPT/VPID capability MSR exists if either feature may be enabled.
		if c.Procbased2>>32&(proc2EnableEPT|proc2EnableVPID) != 0 {
			c.EPTVPIDCap = rdmsr(msrVMXEPTVPIDCap)
		}
	}
	return c
}

// Revision is the VMCS revision identifier (IA32_VMX_BASIC bits 30:0).
func (c *Caps) Revision() uint32 { return uint32(c.Basic & basicRevisionMask) }

// RegionSize is the size of the VMXON region and of a VMCS (bits 44:32).
func (c *Caps) RegionSize() int { return int(c.Basic >> basicRegionSizeShift & basicRegionSizeMask) }

// allowed reports whether a control may be 1 (allowed-1 setting in the high half). A.3.
func allowed(msr uint64, bit uint32) bool { return uint32(msr>>32)&bit == bit }

// ErrControl is wrapped by adjust when a control Godwit needs cannot be set.
var ErrControl = errors.New("VMX control not supported")

// adjust computes a VM-execution, VM-exit or VM-entry control word: every bit the allowed-0
// settings (low half) force to 1, plus the required and optional bits the allowed-1 settings
// (high half) permit. A required bit that may not be 1 is an error, and so is an unwanted bit
// that may not be 0 (the caller lists it as optional if it can live with it).
// Intel SDM Vol. 3D, A.3 "VM-Execution Controls" through A.5; Vol. 3C, 27.2.1.1-27.2.1.3
// "Checks on VMX Controls".
func adjust(name string, msr uint64, required, optional uint32) (uint32, error) {
	must0 := ^uint32(msr >> 32) // allowed-1 bit 0: the control must be 0
	must1 := uint32(msr)        // allowed-0 bit 1: the control must be 1
	if miss := required & must0; miss != 0 {
		return 0, fmt.Errorf("%w: %s bits %s may not be 1 (capability %#x)", ErrControl, name, bitList(miss), msr)
	}
	return (must1 | required | optional) &^ must0, nil
}

func bitList(v uint32) string {
	var parts []string
	for v != 0 {
		b := bits.TrailingZeros32(v)
		parts = append(parts, fmt.Sprint(b))
		v &^= 1 << b
	}
	return strings.Join(parts, ",")
}

// Controls is one vCPU's VM-execution, VM-exit and VM-entry control words.
type Controls struct {
	Pin, Proc, Proc2, Exit, Entry uint32
	VPID, PAT                     bool // VPID enabled; IA32_PAT switched on entry and exit
	// PreemptionTimer: the VMX-preemption timer is active; it counts down at the TSC rate
	// shifted right by PreemptionShift.
	PreemptionTimer bool
	PreemptionShift uint
}

// Check reports whether this CPU can run Godwit's guests: VMX enabled in IA32_FEATURE_CONTROL
// (or unlocked, so that Enable can turn it on), write-back VMCS memory, EPT with a 4-level
// walk to write-back tables, and unrestricted guest. The error wraps hv.ErrNoHardware.
func (c *Caps) Check() error {
	fc := c.FeatureControl
	if fc&featureControlLocked != 0 && fc&featureControlVMXOut == 0 {
		return fmt.Errorf("%w: VMX disabled by firmware (IA32_FEATURE_CONTROL %#x)", hv.ErrNoHardware, fc)
	}
	if c.Basic>>basicMemTypeShift&0xF != basicMemTypeWB {
		return fmt.Errorf("%w: VMCS memory type %d is not write-back (IA32_VMX_BASIC %#x)",
			hv.ErrNoHardware, c.Basic>>basicMemTypeShift&0xF, c.Basic)
	}
	if c.RegionSize() == 0 || c.RegionSize() > 4096 {
		return fmt.Errorf("%w: VMCS size %d", hv.ErrNoHardware, c.RegionSize())
	}
	if !allowed(c.Procbased2, proc2EnableEPT) || !allowed(c.Procbased2, proc2UnrestrictedGuest) {
		return fmt.Errorf("%w: EPT and unrestricted guest are required (secondary controls %#x)", hv.ErrNoHardware, c.Procbased2)
	}
	if need := uint64(eptCapWalk4 | eptCapWB | eptCapINVEPT); c.EPTVPIDCap&need != need {
		return fmt.Errorf("%w: EPT needs a 4-level walk, write-back tables and INVEPT (IA32_VMX_EPT_VPID_CAP %#x)",
			hv.ErrNoHardware, c.EPTVPIDCap)
	}
	if c.EPTVPIDCap&(eptCapINVEPTSingle|eptCapINVEPTAll) == 0 {
		return fmt.Errorf("%w: neither single- nor all-context INVEPT", hv.ErrNoHardware)
	}
	return nil
}

// EPTAD reports whether EPT accessed and dirty flags are available.
func (c *Caps) EPTAD() bool { return c.EPTVPIDCap&eptCapAD != 0 }

// VPID reports whether VPIDs can be used (the control and INVVPID single- or all-context).
func (c *Caps) VPID() bool {
	return allowed(c.Procbased2, proc2EnableVPID) && c.EPTVPIDCap&vpidCapINVVPID != 0 &&
		c.EPTVPIDCap&(vpidCapINVVPIDSingle|vpidCapINVVPIDAll) != 0
}

// Controls computes the control words of a Godwit vCPU:
//
//   - pin-based: external-interrupt exiting, so host interrupts stop the guest; the interrupt is
//     not acknowledged on exit and the host takes it through its own IDT once it enables
//     interrupts again. NMIs are not intercepted.
//   - primary: HLT, MWAIT and MONITOR exiting, I/O bitmaps (all ports intercepted), MSR bitmaps
//     (all MSRs intercepted), the secondary controls; CR3 load/store exiting off (EPT). CR8
//     load/store exiting: without a TPR shadow a 64-bit guest's MOV CR8 would reach the host's
//     own local-APIC TPR and could mask the host's interrupts.
//   - secondary: EPT, unrestricted guest, VPID when usable, RDTSCP and INVPCID when available
//     (without them the guest takes #UD).
//   - exit: 64-bit host, save and load IA32_EFER, save and load IA32_PAT when available, save
//     debug controls; no acknowledge-interrupt-on-exit.
//   - entry: load IA32_EFER, load IA32_PAT when available, load debug controls; "IA-32e mode
//     guest" is set per entry from the guest's EFER.LMA.
func (c *Caps) Controls() (Controls, error) {
	var k Controls
	var err error
	// The VMX-preemption timer bounds every guest run even when the guest keeps interrupts
	// off: external-interrupt exiting should already, but an emulator (Bochs 2.7) gates it on
	// the guest's RFLAGS.IF. Intel SDM Vol. 3C, 26.5.1 "VMX-Preemption Timer".
	if k.Pin, err = adjust("pin-based", c.Pinbased, pinExternalInterruptExiting, pinPreemptionTimer); err != nil {
		return k, err
	}
	k.PreemptionTimer = k.Pin&pinPreemptionTimer != 0
	k.PreemptionShift = uint(c.Misc & 0x1F) // A.6: the timer counts TSC >> IA32_VMX_MISC[4:0]
	if k.Proc, err = adjust("primary processor-based", c.Procbased,
		procHLTExiting|procUseIOBitmaps|procUseMSRBitmaps|procActivateSecondary|
			procCR8LoadExiting|procCR8StoreExiting|procUseTSCOffsetting,
		procMWAITExiting|procMONITORExiting); err != nil {
		return k, err
	}
	// CR3 exiting is default1 in the non-TRUE MSR on older CPUs; with EPT it is pointless but
	// harmless (the exits are then reported as control-register accesses).
	if !allowed(c.Procbased, procInterruptWindowExiting) {
		return k, fmt.Errorf("%w: interrupt-window exiting", ErrControl)
	}
	req2 := uint32(proc2EnableEPT | proc2UnrestrictedGuest)
	opt2 := uint32(proc2EnableRDTSCP | proc2EnableINVPCID)
	if c.VPID() {
		opt2 |= proc2EnableVPID
	}
	if k.Proc2, err = adjust("secondary processor-based", c.Procbased2, req2, opt2); err != nil {
		return k, err
	}
	k.VPID = k.Proc2&proc2EnableVPID != 0
	if k.Exit, err = adjust("VM-exit", c.Exit, exitHostAddressSpaceSize|exitSaveEFER|exitLoadEFER,
		exitSavePAT|exitLoadPAT|exitSaveDebugControls); err != nil {
		return k, err
	}
	if k.Exit&exitAckInterruptOnExit != 0 {
		return k, fmt.Errorf("%w: acknowledge interrupt on exit cannot be turned off", ErrControl)
	}
	if k.Entry, err = adjust("VM-entry", c.Entry, entryLoadEFER, entryLoadPAT|entryLoadDebugControls); err != nil {
		return k, err
	}
	if !allowed(c.Entry, entryIA32eModeGuest) {
		return k, fmt.Errorf("%w: IA-32e mode guest", ErrControl)
	}
	if k.Entry&(entryToSMM|entryDeactivateDualMon) != 0 {
		return k, fmt.Errorf("%w: SMM entry controls forced to 1", ErrControl)
	}
	k.PAT = k.Exit&(exitSavePAT|exitLoadPAT) == exitSavePAT|exitLoadPAT && k.Entry&entryLoadPAT != 0
	if !k.PAT {
		k.Exit &^= exitSavePAT | exitLoadPAT
		k.Entry &^= entryLoadPAT
		// Re-impose the must-be-1 bits in case one of these is forced on.
		k.Exit |= uint32(c.Exit)
		k.Entry |= uint32(c.Entry)
	}
	return k, nil
}

// Fixed bits in CR0 and CR4 in VMX operation: a bit 1 in FIXED0 must be 1, a bit 0 in FIXED1
// must be 0. Intel SDM Vol. 3D, A.7 and A.8. With unrestricted guest, CR0.PE and CR0.PG are
// exempt for the guest (Vol. 3C, 27.3.1.1 "Checks on Guest Control Registers, Debug Registers,
// and MSRs").
const (
	cr0PE   = 1 << 0
	cr0NE   = 1 << 5
	cr0NW   = 1 << 29
	cr0CD   = 1 << 30
	cr0PG   = 1 << 31
	cr4PAE  = 1 << 5
	cr4VMXE = 1 << 13
	cr4PCID = 1 << 17
	cr4CET  = 1 << 23
)

// guestCR0 returns the CR0 the guest runs with when it asks for want, and the guest/host mask
// of the bits it cannot choose itself: those are read from the read shadow (want).
func (c *Caps) guestCR0(want uint64) (actual, mask uint64) {
	fixed0 := c.CR0Fixed0 &^ (cr0PE | cr0PG)
	mask = fixed0 | ^c.CR0Fixed1
	return (want | fixed0) & c.CR0Fixed1, mask
}

// guestCR4 is guestCR0 for CR4 (VMXE is fixed to 1 and hidden from the guest).
func (c *Caps) guestCR4(want uint64) (actual, mask uint64) {
	mask = c.CR4Fixed0 | ^c.CR4Fixed1
	return (want | c.CR4Fixed0) & c.CR4Fixed1, mask
}
