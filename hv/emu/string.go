package emu

import (
	"golang.org/x/arch/x86/x86asm"
)

// String instructions: MOVS, STOS and LODS, with the REP prefix.
// Intel SDM Vol. 2B, "MOVS/MOVSB/MOVSW/MOVSD/MOVSQ", "STOS/...", "LODS/..."
// and Vol. 2B "REP/REPE/REPZ/REPNE/REPNZ": the count is CX, ECX or RCX and
// the index registers SI/DI, ESI/EDI or RSI/RDI by address size; they step
// by the element size, down when RFLAGS.DF is set.

const (
	prefixREP  = 0xf3
	prefixREPN = 0xf2
)

func elemSize(op x86asm.Op) int {
	switch op {
	case x86asm.MOVSB, x86asm.STOSB, x86asm.LODSB:
		return 1
	case x86asm.MOVSW, x86asm.STOSW, x86asm.LODSW:
		return 2
	case x86asm.MOVSD, x86asm.STOSD, x86asm.LODSD:
		return 4
	}
	return 8
}

// rep reports whether the instruction has a REP prefix. For MOVS, STOS and
// LODS, F2 (REPNE) repeats the same way as F3.
func (x *exec) rep() bool {
	for _, p := range x.inst.Prefix {
		if p == 0 {
			break
		}
		if b := p & 0xff; b == prefixREP || b == prefixREPN {
			return true
		}
	}
	return false
}

// str emulates a string instruction. done is false when a REP ran
// MaxRepeat iterations and the count is not yet zero.
func (x *exec) str() (done bool, err error) {
	size := elemSize(x.inst.Op)
	asize := x.inst.AddrSize / 8
	count := gpr{idx: RCX, size: asize}
	si := gpr{idx: RSI, size: asize}
	di := gpr{idx: RDI, size: asize}
	acc := gpr{idx: RAX, size: size}
	step := uint64(size)
	if x.r.RFLAGS&FlagDF != 0 {
		step = -step
	}
	rep := x.rep()
	limit := x.e.MaxRepeat
	if limit <= 0 {
		limit = DefaultMaxRepeat
	}
	for i := 0; ; i++ {
		if rep {
			if x.r.get(count) == 0 {
				return true, nil
			}
			if i == limit {
				return false, nil
			}
		}
		switch x.inst.Op {
		case x86asm.MOVSB, x86asm.MOVSW, x86asm.MOVSD, x86asm.MOVSQ:
			src, err := x.strOperand(1, size)
			if err != nil {
				return false, err
			}
			dst, err := x.strOperand(0, size)
			if err != nil {
				return false, err
			}
			v, err := x.read(src)
			if err != nil {
				return false, err
			}
			if err := x.write(dst, v); err != nil {
				return false, err
			}
			x.r.set(si, x.r.get(si)+step)
			x.r.set(di, x.r.get(di)+step)
		case x86asm.STOSB, x86asm.STOSW, x86asm.STOSD, x86asm.STOSQ:
			dst, err := x.strOperand(0, size)
			if err != nil {
				return false, err
			}
			if err := x.write(dst, x.r.get(acc)); err != nil {
				return false, err
			}
			x.r.set(di, x.r.get(di)+step)
		default: // LODS
			src, err := x.strOperand(1, size)
			if err != nil {
				return false, err
			}
			v, err := x.read(src)
			if err != nil {
				return false, err
			}
			x.r.set(acc, v)
			x.r.set(si, x.r.get(si)+step)
		}
		if !rep {
			return true, nil
		}
		x.r.set(count, x.r.get(count)-1)
	}
}

// strOperand returns the memory operand i of a string instruction at the
// current value of its index register.
func (x *exec) strOperand(i, size int) (operand, error) {
	m, ok := x.inst.Args[i].(x86asm.Mem)
	if !ok {
		return operand{}, x.unsupported()
	}
	addr, err := x.linear(m)
	if err != nil {
		return operand{}, err
	}
	return operand{kind: opMem, addr: addr, size: size}, nil
}
