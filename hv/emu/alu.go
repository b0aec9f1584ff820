package emu

import "math/bits"

// Status flags of arithmetic results, as Intel SDM Vol. 1, 3.4.3.1 "Status
// Flags" defines them and the instruction pages in Vol. 2 (ADD, SUB, CMP,
// AND, OR, XOR, TEST) set them. a, b and the results are size bytes wide.

// zsp returns ZF, SF and PF for res.
func zsp(res uint64, size int) uint64 {
	var f uint64
	if res == 0 {
		f |= FlagZF
	}
	if res&signBit(size) != 0 {
		f |= FlagSF
	}
	if bits.OnesCount8(uint8(res))%2 == 0 {
		f |= FlagPF // even number of 1s in the low byte
	}
	return f
}

// add returns a+b and the flags ADD sets.
func add(a, b uint64, size int) (uint64, uint64) {
	m := sizeMask(size)
	a, b = a&m, b&m
	res := (a + b) & m
	f := zsp(res, size)
	if res < a {
		f |= FlagCF
	}
	if (a^res)&(b^res)&signBit(size) != 0 {
		f |= FlagOF
	}
	if (a^b^res)&0x10 != 0 {
		f |= FlagAF
	}
	return res, f
}

// sub returns a-b and the flags SUB and CMP set.
func sub(a, b uint64, size int) (uint64, uint64) {
	m := sizeMask(size)
	a, b = a&m, b&m
	res := (a - b) & m
	f := zsp(res, size)
	if a < b {
		f |= FlagCF
	}
	if (a^b)&(a^res)&signBit(size) != 0 {
		f |= FlagOF
	}
	if (a^b^res)&0x10 != 0 {
		f |= FlagAF
	}
	return res, f
}

// logic returns res and the flags AND, OR, XOR and TEST set: CF and OF
// cleared, AF undefined (cleared here).
func logic(res uint64, size int) (uint64, uint64) {
	res &= sizeMask(size)
	return res, zsp(res, size)
}
