package hv

// The CPUID policy: what a guest sees. It starts from the host's answer and removes what Godwit
// does not virtualize (nested virtualization, XSAVE-managed state beyond SSE, MONITOR, machine
// checks, MTRRs), adds what the LAPIC model gives (x2APIC, TSC deadline, an always-running
// APIC timer), the hypervisor bit, each vCPU's APIC ID, Godwit's leaves at 0x40000000 and the
// KVM-compatible clock leaves at 0x40000100 (kvmclock.go).

// CPUIDFunc executes CPUID on the host.
type CPUIDFunc func(leaf, sub uint32) (eax, ebx, ecx, edx uint32)

// CPUID bits removed or set. Intel SDM Vol. 2A, "CPUID" Table 3-10 (leaf 1 ECX), Table 3-11
// (leaf 1 EDX); AMD APM Vol. 3, E.4.2 (Fn8000_0001 ECX).
const (
	cpuid1ECXMonitor         = 1 << 3
	cpuid1ECXVMX             = 1 << 5
	cpuid1ECXSMX             = 1 << 6
	cpuid1ECXPDCM            = 1 << 15 // perfmon and debug capability: IA32_PERF_CAPABILITIES
	cpuid1ECXPCID            = 1 << 17
	cpuid1ECXX2APIC          = 1 << 21
	cpuid1ECXTSCDL           = 1 << 24
	cpuid1ECXXSAVE           = 1 << 26
	cpuid1ECXOSXSAVE         = 1 << 27
	cpuid1ECXAVX             = 1 << 28
	cpuid1ECXHypervisor      = 1 << 31
	cpuid6EAXARAT            = 1 << 2  // APIC timer always running. Intel SDM Vol. 2A, Table 3-8, leaf 06H
	cpuid1EDXMCE             = 1 << 7  // machine-check exception: no MCG_* MSRs here
	cpuid1EDXAPIC            = 1 << 9  // on-chip APIC
	cpuid1EDXMTRR            = 1 << 12 // MTRRs: only MTRRcap/MTRRdefType are answered
	cpuid1EDXMCA             = 1 << 14
	cpuid1EDXDS              = 1 << 21 // debug store
	cpuid1EDXACPI            = 1 << 22 // thermal monitor MSRs
	cpuid1EDXTM              = 1 << 29
	cpuid1EDXPBE             = 1 << 31
	cpuidExt1ECXSVM          = 1 << 2
	cpuidExt7EDXInvariantTSC = 1 << 8

	// HypervisorLeaf is the base of Godwit's CPUID leaves; its EBX:ECX:EDX spell the vendor.
	// The range is reserved for hypervisors: Intel SDM Vol. 2A, "CPUID", leaf 40000000H.
	HypervisorLeaf = 0x40000000
	// TimingLeaf gives the guest TSC frequency in kHz in EAX and the APIC timer's in EBX, the
	// layout VMware defined for leaf 0x40000010 and other hypervisors follow.
	TimingLeaf = HypervisorLeaf + 0x10
)

// HypervisorVendor is what CPUID 0x40000000 reports in EBX, ECX, EDX.
const HypervisorVendor = "GodwitGodwit"

// CPUIDPolicy computes guest CPUID answers from the host's.
type CPUIDPolicy struct {
	Host CPUIDFunc
	// APICID is the asking vCPU's initial APIC ID (leaf 1 EBX[31:24], leaves 0BH/1FH EDX,
	// 8000001EH EAX).
	APICID uint32
	// TSCHz and APICTimerHz are the guest's TSC and APIC timer frequencies (TimingLeaf);
	// zero leaves the leaf empty.
	TSCHz, APICTimerHz uint64
}

// vendorRegs spells a 12-character vendor string in EBX, ECX, EDX.
func vendorRegs(v string) (b, c, d uint32) {
	le := func(o int) uint32 {
		return uint32(v[o]) | uint32(v[o+1])<<8 | uint32(v[o+2])<<16 | uint32(v[o+3])<<24
	}
	return le(0), le(4), le(8)
}

// Query returns the guest's CPUID leaf/sub.
func (p CPUIDPolicy) Query(leaf, sub uint32) (a, b, c, d uint32) {
	if leaf >= HypervisorLeaf && leaf < HypervisorLeaf+0x10000 {
		switch leaf {
		case HypervisorLeaf:
			b, c, d := vendorRegs(HypervisorVendor)
			return TimingLeaf, b, c, d
		case TimingLeaf:
			return uint32(p.TSCHz / 1000), uint32(p.APICTimerHz / 1000), 0, 0
		case kvmLeaf:
			b, c, d := vendorRegs(kvmSignature)
			return kvmLeaf + 1, b, c, d
		case kvmLeaf + 1:
			return kvmFeatureClocksource2 | kvmFeatureStableBit, 0, 0, 0
		}
		return 0, 0, 0, 0
	}
	maxBasic, _, _, _ := p.Host(0, 0)
	maxExt, _, _, _ := p.Host(0x80000000, 0)
	if (leaf < 0x80000000 && leaf > maxBasic) || (leaf >= 0x80000000 && leaf > maxExt) {
		return 0, 0, 0, 0
	}
	a, b, c, d = p.Host(leaf, sub)
	switch leaf {
	case 1:
		c &^= cpuid1ECXMonitor | cpuid1ECXVMX | cpuid1ECXSMX | cpuid1ECXPDCM | cpuid1ECXPCID | cpuid1ECXXSAVE |
			cpuid1ECXOSXSAVE | cpuid1ECXAVX
		c |= cpuid1ECXHypervisor | cpuid1ECXX2APIC | cpuid1ECXTSCDL
		d &^= cpuid1EDXMCE | cpuid1EDXMTRR | cpuid1EDXMCA | cpuid1EDXDS | cpuid1EDXACPI | cpuid1EDXTM | cpuid1EDXPBE
		d |= cpuid1EDXAPIC
		b = b&^(0xFF<<24) | (p.APICID&0xFF)<<24 // initial APIC ID
	case 6:
		// Thermal and power management: only ARAT. The rest (turbo, HWP, energy-performance
		// bias, ...) names MSRs a guest does not get.
		a, b, c, d = cpuid6EAXARAT, 0, 0, 0
	case 0xB, 0x1F: // extended topology: EDX is the x2APIC ID of the asking processor
		d = p.APICID
	case 0x80000007:
		// Invariant TSC: the guest's TSC is the host's plus a fixed offset, and Godwit itself
		// keeps time with the host TSC at one calibrated rate. Intel SDM Vol. 2A, CPUID
		// 80000007H EDX[8]; AMD APM Vol. 3, E.4.6.
		d |= cpuidExt7EDXInvariantTSC
	case 0x8000001E: // AMD extended APIC ID. AMD APM Vol. 3, E.4.19
		a = p.APICID
	case 7:
		// Structured extended features: none beyond what leaf 1 says, until XSAVE is virtualized.
		a, b, c, d = 0, 0, 0, 0
	case 0xA: // architectural performance monitoring: no PMU is virtualized
		a, b, c, d = 0, 0, 0, 0
	case 0xD: // XSAVE state enumeration: hidden with XSAVE
		a, b, c, d = 0, 0, 0, 0
	case 0x80000001:
		c &^= cpuidExt1ECXSVM
	case 0x8000000A: // SVM features: no nested SVM
		a, b, c, d = 0, 0, 0, 0
	}
	return a, b, c, d
}
