package hv

import (
	"encoding/binary"
	"math/bits"
	"testing"
	"time"
)

// pvclockNs is the guest's side of kvmclock (Linux pvclock_scale_delta).
func pvclockNs(delta uint64, mul uint32, shift int8) uint64 {
	if shift < 0 {
		delta >>= uint(-shift)
	} else {
		delta <<= uint(shift)
	}
	hi, lo := bits.Mul64(delta, uint64(mul))
	return hi<<32 | lo>>32
}

func TestPvclockScale(t *testing.T) {
	for _, hz := range []uint64{1e6, 1e9, 2_603_436_000, 3_500_000_000, 5e9, 1e11} {
		mul, shift := pvclockScale(hz)
		if mul < 1<<31 {
			t.Errorf("pvclockScale(%d) = mul %#x: below 2^31, precision lost", hz, mul)
		}
		// One second of ticks must read as one second, within 1 ppm.
		got := pvclockNs(hz, mul, shift)
		if d := int64(got) - 1e9; d > 1000 || d < -1000 {
			t.Errorf("pvclockScale(%d) = (%#x, %d): 1 s of ticks reads %d ns", hz, mul, shift, got)
		}
	}
}

func TestKVMClockStructures(t *testing.T) {
	mem := &Memory{Host: make([]byte, 1<<20)}
	wall := time.Unix(1795300000, 123456789)
	cb := clockBase{tsc: 5_000_000, wall: wall, tscHz: 2e9}
	if err := cb.writeSystemTime(mem, 0x1000); err != nil {
		t.Fatal(err)
	}
	p, _ := mem.Slice(0x1000, pvclockTimeSize)
	le := binary.LittleEndian
	if v := le.Uint32(p[0:]); v%2 != 0 || v == 0 {
		t.Errorf("version = %d, want even and not 0 after an update", v)
	}
	if le.Uint64(p[8:]) != 5_000_000 || le.Uint64(p[16:]) != 0 || p[29] != pvclockStable {
		t.Errorf("tsc_timestamp %d system_time %d flags %#x", le.Uint64(p[8:]), le.Uint64(p[16:]), p[29])
	}
	if ns := pvclockNs(2e9, le.Uint32(p[24:]), int8(p[28])); ns < 1e9-10 || ns > 1e9+10 {
		t.Errorf("2e9 ticks at 2 GHz read %d ns, want 1e9", ns)
	}
	if err := cb.writeWallClock(mem, 0x2000); err != nil {
		t.Fatal(err)
	}
	w, _ := mem.Slice(0x2000, pvclockWallSize)
	if le.Uint32(w[4:]) != uint32(wall.Unix()) || le.Uint32(w[8:]) != 123456789 {
		t.Errorf("wall clock %d.%09d, want %d.123456789", le.Uint32(w[4:]), le.Uint32(w[8:]), wall.Unix())
	}
	// Addresses outside guest RAM are refused (the guest gets #GP).
	if cb.writeSystemTime(mem, 1<<20-8) == nil || cb.writeWallClock(mem, 1<<20) == nil {
		t.Error("structures past the end of RAM were written")
	}
}

func TestCPUIDHypervisorLeaves(t *testing.T) {
	p := CPUIDPolicy{Host: func(l, s uint32) (uint32, uint32, uint32, uint32) {
		switch l {
		case 0:
			return 0xD, 0, 0, 0
		case 0x80000000:
			return 0x80000008, 0, 0, 0
		case 1:
			return 0x806F0, 0xFF<<24 | 0x10800, 0, 0
		}
		return 0, 0, 0, 0
	}, APICID: 3, TSCHz: 2_500_000_000, APICTimerHz: 1e9}
	a, b, c, d := p.Query(HypervisorLeaf, 0)
	if a != TimingLeaf || string(regBytes(b, c, d)) != HypervisorVendor {
		t.Errorf("leaf 0x40000000 = %#x %q", a, regBytes(b, c, d))
	}
	if a, b, _, _ := p.Query(TimingLeaf, 0); a != 2_500_000 || b != 1_000_000 {
		t.Errorf("timing leaf = %d kHz TSC, %d kHz APIC; want 2500000, 1000000", a, b)
	}
	a, b, c, d = p.Query(kvmLeaf, 0)
	if a != kvmLeaf+1 || string(regBytes(b, c, d)) != kvmSignature {
		t.Errorf("leaf 0x40000100 = %#x %q", a, regBytes(b, c, d))
	}
	if a, _, _, _ := p.Query(kvmLeaf+1, 0); a != kvmFeatureClocksource2|kvmFeatureStableBit {
		t.Errorf("KVM features = %#x", a)
	}
	_, b, c, d = p.Query(1, 0)
	if b>>24 != 3 || c&cpuid1ECXX2APIC == 0 || c&cpuid1ECXTSCDL == 0 || c&cpuid1ECXHypervisor == 0 || d&cpuid1EDXAPIC == 0 {
		t.Errorf("leaf 1 = ebx %#x ecx %#x edx %#x: want APIC ID 3, x2APIC, TSC deadline, hypervisor, APIC", b, c, d)
	}
}

func regBytes(regs ...uint32) []byte {
	var out []byte
	for _, r := range regs {
		out = binary.LittleEndian.AppendUint32(out, r)
	}
	return out
}
