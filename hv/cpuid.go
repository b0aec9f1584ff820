package hv

// The CPUID policy: what a guest sees. It starts from the host's answer and removes what Godwit
// does not virtualize (nested virtualization, XSAVE-managed state beyond SSE, MONITOR, the
// x2APIC and TSC deadline until the LAPIC model has them), and adds the hypervisor bit and
// Godwit's leaves at 0x40000000.

// CPUIDFunc executes CPUID on the host.
type CPUIDFunc func(leaf, sub uint32) (eax, ebx, ecx, edx uint32)

// CPUID bits removed or set. Intel SDM Vol. 2A, "CPUID" Table 3-10 (leaf 1 ECX), Table 3-11
// (leaf 1 EDX); AMD APM Vol. 3, E.4.2 (Fn8000_0001 ECX).
const (
	cpuid1ECXMonitor    = 1 << 3
	cpuid1ECXVMX        = 1 << 5
	cpuid1ECXSMX        = 1 << 6
	cpuid1ECXPCID       = 1 << 17
	cpuid1ECXX2APIC     = 1 << 21
	cpuid1ECXTSCDL      = 1 << 24
	cpuid1ECXXSAVE      = 1 << 26
	cpuid1ECXOSXSAVE    = 1 << 27
	cpuid1ECXAVX        = 1 << 28
	cpuid1ECXHypervisor = 1 << 31
	cpuid1EDXMCE        = 1 << 7  // machine-check exception: no MCG_* MSRs here
	cpuid1EDXMTRR       = 1 << 12 // MTRRs: only MTRRcap/MTRRdefType are answered
	cpuid1EDXMCA        = 1 << 14
	cpuid1EDXDS         = 1 << 21 // debug store
	cpuid1EDXACPI       = 1 << 22 // thermal monitor MSRs
	cpuid1EDXTM         = 1 << 29
	cpuid1EDXPBE        = 1 << 31
	cpuidExt1ECXSVM     = 1 << 2

	// HypervisorLeaf is the base of Godwit's CPUID leaves; its EBX:ECX:EDX spell the vendor.
	// The range is reserved for hypervisors: Intel SDM Vol. 2A, "CPUID", leaf 40000000H.
	HypervisorLeaf = 0x40000000
)

// HypervisorVendor is what CPUID 0x40000000 reports in EBX, ECX, EDX.
const HypervisorVendor = "GodwitGodwit"

// CPUIDPolicy computes guest CPUID answers from the host's.
type CPUIDPolicy struct {
	Host CPUIDFunc
}

// Query returns the guest's CPUID leaf/sub.
func (p CPUIDPolicy) Query(leaf, sub uint32) (a, b, c, d uint32) {
	if leaf >= HypervisorLeaf && leaf < HypervisorLeaf+0x100 {
		if leaf == HypervisorLeaf {
			v := []byte(HypervisorVendor)
			le := func(o int) uint32 {
				return uint32(v[o]) | uint32(v[o+1])<<8 | uint32(v[o+2])<<16 | uint32(v[o+3])<<24
			}
			return HypervisorLeaf + 1, le(0), le(4), le(8)
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
		c &^= cpuid1ECXMonitor | cpuid1ECXVMX | cpuid1ECXSMX | cpuid1ECXPCID | cpuid1ECXX2APIC |
			cpuid1ECXTSCDL | cpuid1ECXXSAVE | cpuid1ECXOSXSAVE | cpuid1ECXAVX
		c |= cpuid1ECXHypervisor
		d &^= cpuid1EDXMCE | cpuid1EDXMTRR | cpuid1EDXMCA | cpuid1EDXDS | cpuid1EDXACPI | cpuid1EDXTM | cpuid1EDXPBE
		b &^= 0xFF << 24 // initial APIC ID: vCPU 0
	case 7:
		// Structured extended features: none beyond what leaf 1 says, until XSAVE is virtualized.
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
