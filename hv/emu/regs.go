package emu

import (
	"fmt"

	"golang.org/x/arch/x86/x86asm"
)

// Mode is the guest's execution mode: the default operand and address
// size of its code segment.
type Mode int

// Execution modes, as x86asm.Decode numbers them.
const (
	Mode16 Mode = 16
	Mode32 Mode = 32
	Mode64 Mode = 64
)

func (m Mode) String() string { return fmt.Sprintf("%d-bit", int(m)) }

// ModeOf returns the execution mode from the guest's control state: CR0.PE,
// EFER.LMA, RFLAGS.VM and the L and D bits of the CS descriptor.
// Intel SDM Vol. 3A, 3.4.5 "Segment Descriptors" (L and D/B flags) and
// 2.2 "Modes of Operation".
func ModeOf(pe, lma, vm86, csL, csD bool) Mode {
	switch {
	case !pe || vm86:
		return Mode16
	case lma && csL:
		return Mode64
	case csD:
		return Mode32
	}
	return Mode16
}

// General-purpose register numbers: the index into Regs.GPR, in the
// encoding order of ModRM and REX (Intel SDM Vol. 2A, 2.1.5 "Addressing-Mode
// Encoding of ModR/M and SIB Bytes").
const (
	RAX = iota
	RCX
	RDX
	RBX
	RSP
	RBP
	RSI
	RDI
	R8
	R9
	R10
	R11
	R12
	R13
	R14
	R15
)

// Segment register numbers: the index into Regs.SegBase, in the encoding
// order of the Sreg field (ES, CS, SS, DS, FS, GS).
const (
	ES = iota
	CS
	SS
	DS
	FS
	GS
)

// RFLAGS bits the emulator reads or writes.
// Intel SDM Vol. 1, 3.4.3 "EFLAGS Register".
const (
	FlagCF = 1 << 0  // carry
	FlagPF = 1 << 2  // parity
	FlagAF = 1 << 4  // auxiliary carry
	FlagZF = 1 << 6  // zero
	FlagSF = 1 << 7  // sign
	FlagDF = 1 << 10 // direction
	FlagOF = 1 << 11 // overflow

	// FlagsArith are the status flags arithmetic instructions set.
	FlagsArith = FlagCF | FlagPF | FlagAF | FlagZF | FlagSF | FlagOF
)

// Regs is the part of the vCPU state the emulator uses.
type Regs struct {
	GPR     [16]uint64
	RIP     uint64
	RFLAGS  uint64
	SegBase [6]uint64 // segment base addresses, by segment number
}

// gpr describes a general-purpose register operand.
type gpr struct {
	idx  int  // Regs.GPR index
	size int  // bytes
	high bool // AH, CH, DH or BH: bits 15:8 of idx
}

// gprOf maps an x86asm register to a GPR operand.
func gprOf(r x86asm.Reg) (gpr, bool) {
	switch {
	case r >= x86asm.AL && r <= x86asm.BL:
		return gpr{idx: int(r - x86asm.AL), size: 1}, true
	case r >= x86asm.AH && r <= x86asm.BH:
		return gpr{idx: int(r - x86asm.AH), size: 1, high: true}, true
	case r >= x86asm.SPB && r <= x86asm.R15B:
		return gpr{idx: int(r-x86asm.SPB) + RSP, size: 1}, true
	case r >= x86asm.AX && r <= x86asm.R15W:
		return gpr{idx: int(r - x86asm.AX), size: 2}, true
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return gpr{idx: int(r - x86asm.EAX), size: 4}, true
	case r >= x86asm.RAX && r <= x86asm.R15:
		return gpr{idx: int(r - x86asm.RAX), size: 8}, true
	}
	return gpr{}, false
}

func (r *Regs) get(g gpr) uint64 {
	v := r.GPR[g.idx]
	if g.high {
		return v >> 8 & 0xff
	}
	return v & sizeMask(g.size)
}

// set writes a register the way the processor does: 8- and 16-bit writes
// keep the other bits, 32-bit writes zero the upper half (Intel SDM Vol. 1,
// 3.4.1.1 "General-Purpose Registers in 64-Bit Mode").
func (r *Regs) set(g gpr, v uint64) {
	p := &r.GPR[g.idx]
	switch {
	case g.high:
		*p = *p&^0xff00 | (v&0xff)<<8
	case g.size == 1:
		*p = *p&^0xff | v&0xff
	case g.size == 2:
		*p = *p&^0xffff | v&0xffff
	case g.size == 4:
		*p = v & 0xffff_ffff
	default:
		*p = v
	}
}

func sizeMask(size int) uint64 {
	if size >= 8 {
		return ^uint64(0)
	}
	return 1<<(8*uint(size)) - 1
}

func signBit(size int) uint64 { return 1 << (8*uint(size) - 1) }

// signExtend extends the size-byte value v to 64 bits.
func signExtend(v uint64, size int) uint64 {
	s := 64 - 8*uint(size)
	return uint64(int64(v<<s) >> s)
}
