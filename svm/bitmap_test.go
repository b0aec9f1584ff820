package svm

import "testing"

func TestIOPM(t *testing.T) {
	m := make([]byte, IOPMSize)
	for _, p := range []uint16{0, 0x3F8, 0xFFFF} {
		if IOPMIntercepts(m, p, 1) {
			t.Errorf("empty IOPM intercepts port %#x", p)
		}
	}
	interceptAll(m)
	for _, p := range []uint16{0, 0x60, 0x3F8, 0xCF8, 0xFFFF} {
		for _, size := range []int{1, 2, 4} {
			if !IOPMIntercepts(m, p, size) {
				t.Errorf("full IOPM passes port %#x size %d", p, size)
			}
		}
	}
	// Bits as in AMD APM Vol. 2, 15.10.1: port p is bit p%8 of byte p/8.
	for _, tc := range []struct {
		port uint16
		byte int
		bit  uint
	}{{0x3F8, 0x7F, 0}, {0x3F9, 0x7F, 1}, {0x60, 0x0C, 0}, {0x64, 0x0C, 4}, {0xFFFF, 0x1FFF, 7}} {
		SetIOPM(m, tc.port, false)
		if m[tc.byte]>>tc.bit&1 != 0 {
			t.Errorf("SetIOPM(%#x, pass) left byte %#x bit %d set", tc.port, tc.byte, tc.bit)
		}
		if IOPMIntercepts(m, tc.port, 1) {
			t.Errorf("port %#x still intercepted", tc.port)
		}
	}
	// A 4-byte access at 0x3F8 also covers 0x3FA-0x3FB, still intercepted.
	if !IOPMIntercepts(m, 0x3F8, 4) {
		t.Error("dword access at 0x3f8 passes although 0x3fa is intercepted")
	}
	if IOPMIntercepts(m, 0x3F8, 2) {
		t.Error("word access at 0x3f8 intercepted although 0x3f8/0x3f9 pass")
	}
	// A word access at 0xFFFF reaches bit 0x10000, in the third page.
	if !IOPMIntercepts(m, 0xFFFF, 2) {
		t.Error("word access at 0xffff passes although bit 0x10000 is set")
	}
	SetIOPM(m, 0x3F8, true)
	if m[0x7F]&1 == 0 {
		t.Error("SetIOPM(0x3f8, intercept) did not set the bit")
	}
}

func TestMSRPM(t *testing.T) {
	m := make([]byte, MSRPMSize)
	interceptAll(m)
	// AMD APM Vol. 2, 15.11 Table 15-4: MSR n of a range is at bits 2n (read), 2n+1 (write)
	// of that range's 2 KiB vector.
	for _, tc := range []struct {
		msr  uint32
		byte int
		bit  uint
	}{
		{0x0000_0000, 0x000, 0},
		{0x0000_0010, 0x004, 0},  // TSC
		{0x0000_0277, 0x09D, 6},  // PAT
		{0x0000_1FFF, 0x7FF, 6},  // last of range 0
		{0xC000_0080, 0x820, 0},  // EFER
		{0xC000_0082, 0x820, 4},  // LSTAR
		{0xC000_0102, 0x840, 4},  // KernelGSBase
		{0xC001_0117, 0x1045, 6}, // VM_HSAVE_PA
	} {
		for _, write := range []bool{false, true} {
			if !MSRPMIntercepts(m, tc.msr, write) {
				t.Errorf("full MSRPM passes msr %#x write=%v", tc.msr, write)
			}
			if !SetMSRPM(m, tc.msr, write, false) {
				t.Fatalf("SetMSRPM(%#x) reports the MSR outside the map", tc.msr)
			}
			bit := tc.bit
			if write {
				bit++
			}
			if m[tc.byte]>>bit&1 != 0 {
				t.Errorf("SetMSRPM(%#x, write=%v, pass) left byte %#x bit %d set", tc.msr, write, tc.byte, bit)
			}
			if MSRPMIntercepts(m, tc.msr, write) {
				t.Errorf("msr %#x write=%v still intercepted", tc.msr, write)
			}
		}
	}
	for _, msr := range []uint32{0x2000, 0x4000_0000, 0xC000_2000, 0xC002_0000} {
		if SetMSRPM(m, msr, false, false) || !MSRPMIntercepts(m, msr, false) {
			t.Errorf("msr %#x outside the map can be passed through", msr)
		}
	}
}
