package x86_test

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/godwit-hv/godwit/arch/x86"
)

// fakeCPU answers CPUID from a table and RDMSR from a map. It fails the test when the probe
// asks for a leaf above the maximum the CPU reports, or reads an MSR the CPU does not have
// (on real hardware, a #GP).
type fakeCPU struct {
	t      *testing.T
	leaves map[[2]uint32][4]uint32
	msrs   map[uint32]uint64
	read   []uint32 // MSRs read, in order
}

func (c *fakeCPU) cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32) {
	maxLeaf := c.leaves[[2]uint32{leaf & 0x80000000, 0}][0]
	if leaf&0x7FFFFFFF > maxLeaf&0x7FFFFFFF {
		c.t.Errorf("cpuid(%#x) beyond the maximum leaf %#x", leaf, maxLeaf)
	}
	r := c.leaves[[2]uint32{leaf, sub}]
	return r[0], r[1], r[2], r[3]
}

func (c *fakeCPU) rdmsr(msr uint32) uint64 {
	c.read = append(c.read, msr)
	v, ok := c.msrs[msr]
	if !ok {
		c.t.Errorf("rdmsr(%#x) of an MSR this CPU does not have", msr)
	}
	return v
}

// regs splits s (padded with NULs) into CPUID register values.
func regs(s string, n int) []uint32 {
	b := make([]byte, 4*n)
	copy(b, s)
	out := make([]uint32, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return out
}

// vendorLeaf is leaf 0: max leaf, then the vendor string in EBX, EDX, ECX.
func vendorLeaf(max uint32, vendor string) [4]uint32 {
	r := regs(vendor, 3)
	return [4]uint32{max, r[0], r[2], r[1]}
}

// brandLeaves puts a 48-byte brand string into leaves 0x80000002..4.
func brandLeaves(l map[[2]uint32][4]uint32, brand string) {
	r := regs(brand, 12)
	for i := 0; i < 3; i++ {
		l[[2]uint32{0x80000002 + uint32(i), 0}] = [4]uint32{r[4*i], r[4*i+1], r[4*i+2], r[4*i+3]}
	}
}

const (
	cpuid1ECXVMX    = 1 << 5
	cpuid1ECXX2APIC = 1 << 21
	cpuid1ECXTSCDL  = 1 << 24
	cpuid1ECXXSAVE  = 1 << 26
	cpuid1ECXRDRAND = 1 << 30
	cpuid1ECXHyperv = 1 << 31
	ext1ECXSVM      = 1 << 2
	ext1EDXNX       = 1 << 20
	ext1EDXPDPE1GB  = 1 << 26
	ext7EDXInvTSC   = 1 << 8
)

// qemuAMD is QEMU TCG's -cpu max: AuthenticAMD, family 15 model 107 (qemu64's signature),
// SVM with nested paging but none of the other SVM features, 16 ASIDs, under a hypervisor.
func qemuAMD(t *testing.T) *fakeCPU {
	l := map[[2]uint32][4]uint32{
		{0, 0}:          vendorLeaf(0xD, "AuthenticAMD"),
		{1, 0}:          {0x00060FB1, 0, cpuid1ECXX2APIC | cpuid1ECXHyperv | cpuid1ECXRDRAND, 0},
		{0x80000000, 0}: {0x8000000A, 0, 0, 0},
		{0x80000001, 0}: {0, 0, ext1ECXSVM, ext1EDXNX | ext1EDXPDPE1GB},
		{0x80000007, 0}: {0, 0, 0, 0},
		{0x8000000A, 0}: {1, 16, 0, 1 << 0}, // revision 1, 16 ASIDs, NP
	}
	brandLeaves(l, "QEMU TCG CPU version 2.5+")
	return &fakeCPU{t: t, leaves: l, msrs: map[uint32]uint64{x86.MSRVMCR: 0}}
}

// intelVMX is a Skylake server (family 6 model 0x55 stepping 4) with VT-x enabled and
// locked by the firmware, EPT, unrestricted guest, VPID and EPT accessed/dirty bits.
func intelVMX(t *testing.T) *fakeCPU {
	l := map[[2]uint32][4]uint32{
		{0, 0}:          vendorLeaf(0x16, "GenuineIntel"),
		{1, 0}:          {0x00050654, 0, cpuid1ECXVMX | cpuid1ECXX2APIC | cpuid1ECXTSCDL | cpuid1ECXXSAVE | cpuid1ECXRDRAND, 0},
		{0x80000000, 0}: {0x80000008, 0, 0, 0},
		{0x80000001, 0}: {0, 0, 0, ext1EDXNX | ext1EDXPDPE1GB},
		{0x80000007, 0}: {0, 0, 0, ext7EDXInvTSC},
	}
	brandLeaves(l, "       Intel(R) Xeon(R) Gold 6140 CPU @ 2.30GHz")
	return &fakeCPU{t: t, leaves: l, msrs: map[uint32]uint64{
		x86.MSRFeatureControl: 1<<0 | 1<<2, // locked, VMX outside SMX on
		// Allowed-1 settings in the high dword: "activate secondary controls" (bit 31).
		x86.MSRVMXProcbased: 0xFFF9FFFE_0401E172,
		// Secondary controls allowed-1: EPT (1), VPID (5), unrestricted guest (7).
		x86.MSRVMXProcbased2: uint64(1<<1|1<<5|1<<7) << 32,
		// IA32_VMX_EPT_VPID_CAP: bit 21 = EPT accessed and dirty flags.
		x86.MSRVMXEPTVPIDCap: 0x00000F01_06734141 | 1<<21,
	}}
}

func TestProbe(t *testing.T) {
	tests := []struct {
		name  string
		cpu   func(t *testing.T) *fakeCPU
		noMSR bool // pass a nil MSR reader
		want  x86.Features
		msrs  []uint32 // the MSRs the probe must read, in order
		virt  []string
	}{
		{
			name: "QEMU TCG -cpu max: SVM with NPT only",
			cpu:  qemuAMD,
			want: x86.Features{Vendor: "AuthenticAMD", Brand: "QEMU TCG CPU version 2.5+", Family: 15, Model: 107, Stepping: 1,
				NX: true, PDPE1GB: true, X2APIC: true, RDRAND: true, Hypervisor: true,
				SVM: true, NPT: true, NASID: 16},
			msrs: []uint32{x86.MSRVMCR},
			virt: []string{"SVM  NPT=yes  nRIP=no  decode-assists=no  VMCB-clean=no  flush-by-ASID=no  ASIDs=16"},
		},
		{
			name: "AMD Zen 3 with every SVM feature, SVM disabled by the firmware",
			cpu: func(t *testing.T) *fakeCPU {
				c := qemuAMD(t)
				c.leaves[[2]uint32{1, 0}] = [4]uint32{0x00A20F10, 0, cpuid1ECXXSAVE, 0}
				c.leaves[[2]uint32{0x80000007, 0}] = [4]uint32{0, 0, 0, ext7EDXInvTSC}
				c.leaves[[2]uint32{0x8000000A, 0}] = [4]uint32{1, 32768, 0, 1<<0 | 1<<3 | 1<<5 | 1<<6 | 1<<7}
				brandLeaves(c.leaves, "AMD EPYC 7763 64-Core Processor                ")
				c.msrs[x86.MSRVMCR] = 1 << 4 // SVMDIS
				return c
			},
			want: x86.Features{Vendor: "AuthenticAMD", Brand: "AMD EPYC 7763 64-Core Processor", Family: 0x19, Model: 0x21, Stepping: 0,
				NX: true, PDPE1GB: true, XSAVE: true, InvariantTSC: true,
				SVM: true, SVMDisabled: true, NPT: true, NRIP: true, VMCBClean: true, FlushByASID: true, DecodeAssists: true, NASID: 32768},
			msrs: []uint32{x86.MSRVMCR},
			virt: []string{"SVM (disabled in VM_CR)  NPT=yes  nRIP=yes  decode-assists=yes  VMCB-clean=yes  flush-by-ASID=yes  ASIDs=32768"},
		},
		{
			name: "Intel with EPT, unrestricted guest, VPID, EPT A/D",
			cpu:  intelVMX,
			want: x86.Features{Vendor: "GenuineIntel", Brand: "Intel(R) Xeon(R) Gold 6140 CPU @ 2.30GHz", Family: 6, Model: 0x55, Stepping: 4,
				NX: true, PDPE1GB: true, X2APIC: true, TSCDeadline: true, RDRAND: true, XSAVE: true, InvariantTSC: true,
				VMX: true, VMXLocked: true, VMXEnabled: true, EPT: true, UnrestrictedGuest: true, VPID: true, EPTAD: true},
			msrs: []uint32{x86.MSRFeatureControl, x86.MSRVMXProcbased, x86.MSRVMXProcbased2, x86.MSRVMXEPTVPIDCap},
			virt: []string{"VMX  EPT=yes  unrestricted-guest=yes  VPID=yes  EPT-A/D=yes"},
		},
		{
			name: "Intel with VMX locked off in IA32_FEATURE_CONTROL",
			cpu: func(t *testing.T) *fakeCPU {
				c := intelVMX(t)
				c.msrs[x86.MSRFeatureControl] = 1 << 0 // locked, VMX off
				return c
			},
			want: x86.Features{Vendor: "GenuineIntel", Brand: "Intel(R) Xeon(R) Gold 6140 CPU @ 2.30GHz", Family: 6, Model: 0x55, Stepping: 4,
				NX: true, PDPE1GB: true, X2APIC: true, TSCDeadline: true, RDRAND: true, XSAVE: true, InvariantTSC: true,
				VMX: true, VMXLocked: true, VMXEnabled: false, EPT: true, UnrestrictedGuest: true, VPID: true, EPTAD: true},
			msrs: []uint32{x86.MSRFeatureControl, x86.MSRVMXProcbased, x86.MSRVMXProcbased2, x86.MSRVMXEPTVPIDCap},
			virt: []string{"VMX (disabled in IA32_FEATURE_CONTROL)  EPT=yes  unrestricted-guest=yes  VPID=yes  EPT-A/D=yes"},
		},
		{
			name: "Intel with IA32_FEATURE_CONTROL unlocked: VMXON can still enable it",
			cpu: func(t *testing.T) *fakeCPU {
				c := intelVMX(t)
				c.msrs[x86.MSRFeatureControl] = 0
				return c
			},
			want: x86.Features{Vendor: "GenuineIntel", Brand: "Intel(R) Xeon(R) Gold 6140 CPU @ 2.30GHz", Family: 6, Model: 0x55, Stepping: 4,
				NX: true, PDPE1GB: true, X2APIC: true, TSCDeadline: true, RDRAND: true, XSAVE: true, InvariantTSC: true,
				VMX: true, VMXLocked: false, VMXEnabled: true, EPT: true, UnrestrictedGuest: true, VPID: true, EPTAD: true},
			msrs: []uint32{x86.MSRFeatureControl, x86.MSRVMXProcbased, x86.MSRVMXProcbased2, x86.MSRVMXEPTVPIDCap},
			virt: []string{"VMX  EPT=yes  unrestricted-guest=yes  VPID=yes  EPT-A/D=yes"},
		},
		{
			name: "Intel without secondary controls: IA32_VMX_PROCBASED_CTLS2 does not exist",
			cpu: func(t *testing.T) *fakeCPU {
				c := intelVMX(t)
				c.msrs[x86.MSRVMXProcbased] = 0x7FF9FFFE_0401E172 // bit 63 clear
				delete(c.msrs, x86.MSRVMXProcbased2)
				delete(c.msrs, x86.MSRVMXEPTVPIDCap)
				return c
			},
			want: x86.Features{Vendor: "GenuineIntel", Brand: "Intel(R) Xeon(R) Gold 6140 CPU @ 2.30GHz", Family: 6, Model: 0x55, Stepping: 4,
				NX: true, PDPE1GB: true, X2APIC: true, TSCDeadline: true, RDRAND: true, XSAVE: true, InvariantTSC: true,
				VMX: true, VMXLocked: true, VMXEnabled: true},
			msrs: []uint32{x86.MSRFeatureControl, x86.MSRVMXProcbased},
			virt: []string{"VMX  EPT=no  unrestricted-guest=no  VPID=no  EPT-A/D=no"},
		},
		{
			name: "Intel with secondary controls but neither EPT nor VPID: no IA32_VMX_EPT_VPID_CAP",
			cpu: func(t *testing.T) *fakeCPU {
				c := intelVMX(t)
				c.msrs[x86.MSRVMXProcbased2] = uint64(1<<0|1<<7) << 32 // virtualize APIC, unrestricted guest
				delete(c.msrs, x86.MSRVMXEPTVPIDCap)
				return c
			},
			want: x86.Features{Vendor: "GenuineIntel", Brand: "Intel(R) Xeon(R) Gold 6140 CPU @ 2.30GHz", Family: 6, Model: 0x55, Stepping: 4,
				NX: true, PDPE1GB: true, X2APIC: true, TSCDeadline: true, RDRAND: true, XSAVE: true, InvariantTSC: true,
				VMX: true, VMXLocked: true, VMXEnabled: true, UnrestrictedGuest: true},
			msrs: []uint32{x86.MSRFeatureControl, x86.MSRVMXProcbased, x86.MSRVMXProcbased2},
			virt: []string{"VMX  EPT=no  unrestricted-guest=yes  VPID=no  EPT-A/D=no"},
		},
		{
			name: "Intel EPT without A/D bits; allowed-0 bits in the low dword do not count",
			cpu: func(t *testing.T) *fakeCPU {
				c := intelVMX(t)
				c.msrs[x86.MSRVMXProcbased2] = uint64(1<<1)<<32 | 1<<5 | 1<<7
				c.msrs[x86.MSRVMXEPTVPIDCap] = 0x00000F01_06534141 // bit 21 clear
				return c
			},
			want: x86.Features{Vendor: "GenuineIntel", Brand: "Intel(R) Xeon(R) Gold 6140 CPU @ 2.30GHz", Family: 6, Model: 0x55, Stepping: 4,
				NX: true, PDPE1GB: true, X2APIC: true, TSCDeadline: true, RDRAND: true, XSAVE: true, InvariantTSC: true,
				VMX: true, VMXLocked: true, VMXEnabled: true, EPT: true},
			msrs: []uint32{x86.MSRFeatureControl, x86.MSRVMXProcbased, x86.MSRVMXProcbased2, x86.MSRVMXEPTVPIDCap},
			virt: []string{"VMX  EPT=yes  unrestricted-guest=no  VPID=no  EPT-A/D=no"},
		},
		{
			name:  "Intel VMX with no MSR reader: CPUID features only",
			cpu:   intelVMX,
			noMSR: true,
			want: x86.Features{Vendor: "GenuineIntel", Brand: "Intel(R) Xeon(R) Gold 6140 CPU @ 2.30GHz", Family: 6, Model: 0x55, Stepping: 4,
				NX: true, PDPE1GB: true, X2APIC: true, TSCDeadline: true, RDRAND: true, XSAVE: true, InvariantTSC: true, VMX: true},
			virt: []string{"VMX  EPT=no  unrestricted-guest=no  VPID=no  EPT-A/D=no"},
		},
		{
			// CPUID.1:ECX.VMX clear: the VMX MSRs do not exist and must not be read (a #GP on
			// bare metal). The fake has no MSRs at all.
			name: "neither VMX nor SVM",
			cpu: func(t *testing.T) *fakeCPU {
				c := intelVMX(t)
				c.leaves[[2]uint32{1, 0}] = [4]uint32{0x000306C3, 0, cpuid1ECXXSAVE, 0} // Haswell, VMX hidden
				c.msrs = map[uint32]uint64{}
				return c
			},
			want: x86.Features{Vendor: "GenuineIntel", Brand: "Intel(R) Xeon(R) Gold 6140 CPU @ 2.30GHz", Family: 6, Model: 0x3C, Stepping: 3,
				NX: true, PDPE1GB: true, XSAVE: true, InvariantTSC: true},
			virt: []string{"no hardware virtualization (neither VMX nor SVM)"},
		},
		{
			name: "AMD with SVM but no leaf 0x8000000A",
			cpu: func(t *testing.T) *fakeCPU {
				c := qemuAMD(t)
				c.leaves[[2]uint32{0x80000000, 0}] = [4]uint32{0x80000008, 0, 0, 0}
				c.msrs = map[uint32]uint64{}
				return c
			},
			want: x86.Features{Vendor: "AuthenticAMD", Brand: "QEMU TCG CPU version 2.5+", Family: 15, Model: 107, Stepping: 1,
				NX: true, PDPE1GB: true, X2APIC: true, RDRAND: true, Hypervisor: true, SVM: true},
			virt: []string{"SVM  NPT=no  nRIP=no  decode-assists=no  VMCB-clean=no  flush-by-ASID=no  ASIDs=0"},
		},
		{
			name: "old CPU: no extended leaves beyond 0x80000001, no brand string",
			cpu: func(t *testing.T) *fakeCPU {
				return &fakeCPU{t: t, msrs: map[uint32]uint64{}, leaves: map[[2]uint32][4]uint32{
					{0, 0}:          vendorLeaf(2, "GenuineIntel"),
					{1, 0}:          {0x00030543, 0, 0, 0}, // family 5: the extended model must be ignored
					{0x80000000, 0}: {0x80000001, 0, 0, 0},
					{0x80000001, 0}: {0, 0, 0, ext1EDXNX},
				}}
			},
			want: x86.Features{Vendor: "GenuineIntel", Family: 5, Model: 4, Stepping: 3, NX: true},
			virt: []string{"no hardware virtualization (neither VMX nor SVM)"},
		},
		{
			name: "family 0xF with extended family: Pentium 4 style signature",
			cpu: func(t *testing.T) *fakeCPU {
				return &fakeCPU{t: t, msrs: map[uint32]uint64{}, leaves: map[[2]uint32][4]uint32{
					{0, 0}:          vendorLeaf(1, "AuthenticAMD"),
					{1, 0}:          {0x00100F42, 0, 0, 0}, // family 0xF+1 = 0x10, model 0x04, stepping 2
					{0x80000000, 0}: {0, 0, 0, 0},
				}}
			},
			want: x86.Features{Vendor: "AuthenticAMD", Family: 0x10, Model: 0x04, Stepping: 2},
			virt: []string{"no hardware virtualization (neither VMX nor SVM)"},
		},
		{
			name: "leaf 0 only",
			cpu: func(t *testing.T) *fakeCPU {
				return &fakeCPU{t: t, msrs: map[uint32]uint64{}, leaves: map[[2]uint32][4]uint32{
					{0, 0}: vendorLeaf(0, "CentaurHauls"),
				}}
			},
			want: x86.Features{Vendor: "CentaurHauls"},
			virt: []string{"no hardware virtualization (neither VMX nor SVM)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cpu(t)
			var rdmsr x86.MSRFunc = c.rdmsr
			if tt.noMSR {
				rdmsr = nil
			}
			got := x86.Probe(c.cpuid, rdmsr)
			if got != tt.want {
				t.Errorf("Probe() =\n\t%+v\nwant\n\t%+v", got, tt.want)
			}
			if !slices.Equal(c.read, tt.msrs) {
				t.Errorf("Probe read MSRs %#x, want %#x", c.read, tt.msrs)
			}
			if v := got.Virtualization(); !slices.Equal(v, tt.virt) {
				t.Errorf("Virtualization() = %q, want %q", v, tt.virt)
			}
		})
	}
}

// TestVirtualizationBoth covers a (made-up) CPU reporting both: one line per vendor.
func TestVirtualizationBoth(t *testing.T) {
	f := x86.Features{VMX: true, EPT: true, SVM: true, NPT: true, NASID: 8}
	want := []string{
		"VMX  EPT=yes  unrestricted-guest=no  VPID=no  EPT-A/D=no",
		"SVM  NPT=yes  nRIP=no  decode-assists=no  VMCB-clean=no  flush-by-ASID=no  ASIDs=8",
	}
	if got := f.Virtualization(); !slices.Equal(got, want) {
		t.Errorf("Virtualization() = %q, want %q", got, want)
	}
}

// TestCpuid runs the real instruction (unprivileged, so it works in a Linux process): the
// vendor string must be a known one and the brand printable.
func TestCpuid(t *testing.T) {
	f := x86.Probe(x86.Cpuid, nil)
	// A register-order mistake in the assembly shows as a scrambled vendor string.
	vendors := []string{"GenuineIntel", "AuthenticAMD", "HygonGenuine", "CentaurHauls", "  Shanghai  "}
	if !slices.Contains(vendors, f.Vendor) {
		t.Fatalf("Probe(Cpuid).Vendor = %q, want one of %q", f.Vendor, vendors)
	}
	for _, c := range []byte(f.Vendor + f.Brand) {
		if c < 0x20 || c > 0x7E {
			t.Errorf("Probe(Cpuid): vendor %q / brand %q has a non-printable byte %#x", f.Vendor, f.Brand, c)
			break
		}
	}
	if f.Family == 0 {
		t.Errorf("Probe(Cpuid).Family = 0, want the host's family")
	}
	t.Logf("host: %s %q family %#x model %#x; %q", f.Vendor, f.Brand, f.Family, f.Model, f.Virtualization())
}
