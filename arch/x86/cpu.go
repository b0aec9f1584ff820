package x86

import (
	"fmt"
	"strings"
)

// Features is what Godwit needs to know about the host CPU, probed once at start-up and passed
// around as a value.
type Features struct {
	Vendor                  string
	Brand                   string
	Family, Model, Stepping uint32

	NX, PDPE1GB, X2APIC, TSCDeadline, RDRAND, XSAVE, InvariantTSC, Hypervisor bool

	// Intel VT-x.
	VMX, VMXLocked, VMXEnabled, EPT, UnrestrictedGuest, VPID, EPTAD bool
	// AMD-V.
	SVM, SVMDisabled, NPT, NRIP, DecodeAssists, VMCBClean, FlushByASID bool
	NASID                                                              uint32
}

// CPUID bits. Intel SDM Vol. 2A, "CPUID", Tables 3-8..3-20; AMD APM Vol. 3, Appendix E
// "Obtaining Processor Information Via the CPUID Instruction".
const (
	cpuid1ECXVMX        = 1 << 5
	cpuid1ECXX2APIC     = 1 << 21
	cpuid1ECXTSCDL      = 1 << 24
	cpuid1ECXXSAVE      = 1 << 26
	cpuid1ECXRDRAND     = 1 << 30
	cpuid1ECXHypervisor = 1 << 31
	ext1ECXSVM          = 1 << 2
	ext1EDXNX           = 1 << 20
	ext1EDXPDPE1GB      = 1 << 26
	ext7EDXInvTSC       = 1 << 8
	svmEDXNP            = 1 << 0 // CPUID Fn8000_000A_EDX, AMD APM Vol. 3, E.4.9
	svmEDXNRIPS         = 1 << 3
	svmEDXVMCBClean     = 1 << 5
	svmEDXFlushByASID   = 1 << 6
	svmEDXDecodeAssists = 1 << 7
)

// Model-specific registers read by the probe. Intel SDM Vol. 4, Table 2-2; AMD APM Vol. 2, 15.30.
const (
	MSRFeatureControl   = 0x3A
	MSRVMXProcbased     = 0x482
	MSRVMXProcbased2    = 0x48B
	MSRVMXEPTVPIDCap    = 0x48C
	MSRVMCR             = 0xC0010114
	featureControlLock  = 1 << 0
	featureControlVMXon = 1 << 2 // VMX outside SMX
	procbasedSecondary  = 1 << 31
	procbased2EPT       = 1 << 1
	procbased2VPID      = 1 << 5
	procbased2Unrestr   = 1 << 7
	eptCapAD            = 1 << 21
	vmcrSVMDIS          = 1 << 4
)

// CPUIDFunc executes CPUID; MSRFunc reads an MSR the caller knows to exist.
type (
	CPUIDFunc func(leaf, sub uint32) (eax, ebx, ecx, edx uint32)
	MSRFunc   func(msr uint32) uint64
)

// Probe reads the CPU's features. It reads MSRs only where CPUID says they exist.
func Probe(cpuid CPUIDFunc, rdmsr MSRFunc) Features {
	var f Features
	max, b, c, d := cpuid(0, 0)
	f.Vendor = regString(b, d, c)
	if max >= 1 {
		a, _, c, _ := cpuid(1, 0)
		f.Stepping = a & 0xF
		f.Model = a >> 4 & 0xF
		f.Family = a >> 8 & 0xF
		if f.Family == 0xF {
			f.Family += a >> 20 & 0xFF
		}
		if f.Family == 0x6 || f.Family >= 0xF {
			f.Model |= (a >> 16 & 0xF) << 4
		}
		f.VMX = c&cpuid1ECXVMX != 0
		f.X2APIC = c&cpuid1ECXX2APIC != 0
		f.TSCDeadline = c&cpuid1ECXTSCDL != 0
		f.XSAVE = c&cpuid1ECXXSAVE != 0
		f.RDRAND = c&cpuid1ECXRDRAND != 0
		f.Hypervisor = c&cpuid1ECXHypervisor != 0
	}
	maxExt, _, _, _ := cpuid(0x80000000, 0)
	if maxExt >= 0x80000001 {
		_, _, c, d := cpuid(0x80000001, 0)
		f.SVM = c&ext1ECXSVM != 0
		f.NX = d&ext1EDXNX != 0
		f.PDPE1GB = d&ext1EDXPDPE1GB != 0
	}
	if maxExt >= 0x80000004 {
		var sb strings.Builder
		for l := uint32(0x80000002); l <= 0x80000004; l++ {
			a, b, c, d := cpuid(l, 0)
			sb.WriteString(regString(a, b, c, d))
		}
		f.Brand = strings.TrimSpace(strings.TrimRight(sb.String(), "\x00"))
	}
	if maxExt >= 0x80000007 {
		_, _, _, d := cpuid(0x80000007, 0)
		f.InvariantTSC = d&ext7EDXInvTSC != 0
	}
	if f.VMX && rdmsr != nil {
		fc := rdmsr(MSRFeatureControl)
		f.VMXLocked = fc&featureControlLock != 0
		f.VMXEnabled = fc&featureControlVMXon != 0 || !f.VMXLocked
		// Secondary controls exist when their bit may be 1 (allowed-1 settings in the high
		// half). Intel SDM Vol. 3D, A.3.2 "Primary Processor-Based VM-Execution Controls",
		// A.3.3 "Secondary Processor-Based VM-Execution Controls".
		if rdmsr(MSRVMXProcbased)>>32&procbasedSecondary != 0 {
			p2 := rdmsr(MSRVMXProcbased2) >> 32
			f.EPT = p2&procbased2EPT != 0
			f.VPID = p2&procbased2VPID != 0
			f.UnrestrictedGuest = p2&procbased2Unrestr != 0
			if f.EPT || f.VPID {
				// Intel SDM Vol. 3D, A.10 "VPID and EPT Capabilities".
				f.EPTAD = rdmsr(MSRVMXEPTVPIDCap)&eptCapAD != 0
			}
		}
	}
	if f.SVM && maxExt >= 0x8000000A {
		_, b, _, d := cpuid(0x8000000A, 0)
		f.NASID = b
		f.NPT = d&svmEDXNP != 0
		f.NRIP = d&svmEDXNRIPS != 0
		f.VMCBClean = d&svmEDXVMCBClean != 0
		f.FlushByASID = d&svmEDXFlushByASID != 0
		f.DecodeAssists = d&svmEDXDecodeAssists != 0
		if rdmsr != nil {
			// VM_CR.SVMDIS. AMD APM Vol. 2, 15.30.1 "VM_CR MSR".
			f.SVMDisabled = rdmsr(MSRVMCR)&vmcrSVMDIS != 0
		}
	}
	return f
}

func regString(regs ...uint32) string {
	b := make([]byte, 0, 4*len(regs))
	for _, r := range regs {
		b = append(b, byte(r), byte(r>>8), byte(r>>16), byte(r>>24))
	}
	return string(b)
}

// Virtualization summarizes the hardware virtualization features, one line per vendor.
func (f Features) Virtualization() []string {
	var out []string
	if f.VMX {
		s := "VMX"
		if f.VMXLocked && !f.VMXEnabled {
			s += " (disabled in IA32_FEATURE_CONTROL)"
		}
		out = append(out, fmt.Sprintf("%s  EPT=%s  unrestricted-guest=%s  VPID=%s  EPT-A/D=%s",
			s, yes(f.EPT), yes(f.UnrestrictedGuest), yes(f.VPID), yes(f.EPTAD)))
	}
	if f.SVM {
		s := "SVM"
		if f.SVMDisabled {
			s += " (disabled in VM_CR)"
		}
		out = append(out, fmt.Sprintf("%s  NPT=%s  nRIP=%s  decode-assists=%s  VMCB-clean=%s  flush-by-ASID=%s  ASIDs=%d",
			s, yes(f.NPT), yes(f.NRIP), yes(f.DecodeAssists), yes(f.VMCBClean), yes(f.FlushByASID), f.NASID))
	}
	if len(out) == 0 {
		out = append(out, "no hardware virtualization (neither VMX nor SVM)")
	}
	return out
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
