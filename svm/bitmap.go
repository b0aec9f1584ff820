package svm

// The I/O permissions map (IOPM) and the MSR permissions map (MSRPM): a set bit intercepts.
// Godwit starts with every port and every MSR intercepted and opens nothing yet; the helpers
// below find the bit for a port or an MSR so that the core can later pass some through.

// IOPM geometry. AMD APM Vol. 2, 15.10.1 "I/O Permissions Map": 12 KiB, one bit per port
// (bit p of the map for port p); an access of n bytes at port p checks bits p..p+n-1, so the
// bits past 0xFFFF (in the third page) matter for wide accesses near the top of the space.
const (
	IOPMSize  = 12 << 10
	IOPMPages = IOPMSize / 4096
)

// MSRPM geometry. AMD APM Vol. 2, 15.11 "MSR Intercepts", Table 15-4 "MSRPM Byte Ranges":
// 8 KiB, two bits per MSR (the even bit intercepts RDMSR, the odd one WRMSR) in three 2 KiB
// vectors for MSRs 0000_0000-0000_1FFF, C000_0000-C000_1FFF and C001_0000-C001_1FFF; the
// fourth 2 KiB are reserved. MSRs outside these ranges are always intercepted.
const (
	MSRPMSize     = 8 << 10
	MSRPMPages    = MSRPMSize / 4096
	msrpmVector   = 2048 // bytes per range
	msrpmRangeLen = 0x2000
)

var msrpmRanges = [...]uint32{0x0000_0000, 0xC000_0000, 0xC001_0000}

// iopmBit returns the byte and bit of port in the IOPM.
func iopmBit(port uint32) (byteIdx int, bit uint) { return int(port / 8), uint(port % 8) }

// msrpmBit returns the byte and the read bit of msr in the MSRPM (the write bit is the next
// one up), and false for an MSR the map does not cover (always intercepted).
func msrpmBit(msr uint32) (byteIdx int, bit uint, ok bool) {
	for i, base := range msrpmRanges {
		if msr >= base && msr-base < msrpmRangeLen {
			n := msr - base
			return i*msrpmVector + int(n/4), uint(n%4) * 2, true
		}
	}
	return 0, 0, false
}

// interceptAll sets every bit: all ports, all MSRs intercepted.
func interceptAll(m []byte) {
	for i := range m {
		m[i] = 0xFF
	}
}

// IOPMIntercepts reports whether an access of size bytes to port traps under iopm.
func IOPMIntercepts(iopm []byte, port uint16, size int) bool {
	for p := uint32(port); p < uint32(port)+uint32(size); p++ {
		b, bit := iopmBit(p)
		if iopm[b]>>bit&1 != 0 {
			return true
		}
	}
	return false
}

// SetIOPM sets (intercept) or clears (pass through) the bit of port.
func SetIOPM(iopm []byte, port uint16, intercept bool) {
	b, bit := iopmBit(uint32(port))
	if intercept {
		iopm[b] |= 1 << bit
	} else {
		iopm[b] &^= 1 << bit
	}
}

// MSRPMIntercepts reports whether RDMSR (write false) or WRMSR (write true) of msr traps.
func MSRPMIntercepts(msrpm []byte, msr uint32, write bool) bool {
	b, bit, ok := msrpmBit(msr)
	if !ok {
		return true
	}
	if write {
		bit++
	}
	return msrpm[b]>>bit&1 != 0
}

// SetMSRPM sets or clears the read or write intercept of msr. It reports false for an MSR
// outside the map, which always traps.
func SetMSRPM(msrpm []byte, msr uint32, write, intercept bool) bool {
	b, bit, ok := msrpmBit(msr)
	if !ok {
		return false
	}
	if write {
		bit++
	}
	if intercept {
		msrpm[b] |= 1 << bit
	} else {
		msrpm[b] &^= 1 << bit
	}
	return true
}
