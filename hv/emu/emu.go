// Package emu decodes and emulates the guest instructions that Godwit must
// execute itself: the memory accesses that fault on MMIO (emulated against
// the device bus) and, on hosts that do not report the next RIP (QEMU TCG's
// SVM has no nRIP save and no decode assists), the length of intercepted
// instructions so RIP can be advanced.
//
// Decoding uses golang.org/x/arch/x86/x86asm. Emulated: MOV (all forms with
// a memory operand, including moffs and immediates), MOVZX, MOVSX, MOVSXD,
// ADD, SUB, AND, OR, XOR, CMP, TEST (with the status flags as the processor
// sets them), XCHG, and MOVS, STOS, LODS with and without REP. Operand-size
// and address-size prefixes, REX, segment overrides and 16-bit ModRM
// addressing are honoured. Segment limits, privilege and alignment checks
// are not made: the hardware already made them before the access faulted.
//
// Hot path: Step runs on MMIO exits and Skip on every intercepted
// instruction when nRIP is missing. The emulator itself does not allocate
// (its fetch and data buffers live in the Emulator), but x86asm.Decode
// boxes memory operands in interfaces, which costs a few small
// allocations per instruction.
package emu

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/arch/x86/x86asm"
)

// Errors callers branch on.
var (
	// ErrUnsupported is returned, wrapped with the mnemonic and the
	// instruction bytes, for an instruction the emulator does not handle.
	ErrUnsupported = errors.New("emu: unsupported instruction")
	// ErrDecode is returned, wrapped with the bytes, when the bytes do not
	// decode as an instruction.
	ErrDecode = errors.New("emu: cannot decode instruction")
)

// MaxInstLen is the architectural limit on instruction length (Intel SDM
// Vol. 2A, 2.1 "Instruction Format for Protected Mode, Real-Address Mode,
// and Virtual-8086 Mode").
const MaxInstLen = 15

// DefaultMaxRepeat is the number of iterations of a REP string instruction
// done by one Step when Emulator.MaxRepeat is 0.
const DefaultMaxRepeat = 4096

// A Fetcher reads the guest's instruction bytes.
type Fetcher interface {
	// Fetch copies instruction bytes starting at the linear address into
	// buf (MaxInstLen bytes) and returns how many it copied. It should
	// copy all of buf unless the bytes run into unmapped memory; the
	// implementation translates through the guest's page tables.
	Fetch(linear uint64, buf []byte) (int, error)
}

// Memory performs the instruction's data accesses, at linear addresses
// (segment base included). The implementation translates them through the
// guest's page tables and sends them to RAM or to the MMIO bus. len(data)
// is 1, 2, 4 or 8; the bytes are little-endian.
type Memory interface {
	Read(linear uint64, data []byte) error
	Write(linear uint64, data []byte) error
}

// Emulator executes instructions against a Fetcher and a Memory. One
// Emulator serves one vCPU at a time; it is not safe for concurrent use.
type Emulator struct {
	Fetcher Fetcher
	Memory  Memory
	// MaxRepeat bounds the iterations one Step does for a REP string
	// instruction; when reached, RIP is left on the instruction so the
	// guest re-executes it (REP string instructions are restartable).
	MaxRepeat int

	ibuf [MaxInstLen]byte
	dbuf [8]byte
	inst x86asm.Inst // the instruction being emulated (kept here, not on the heap per call)
}

// Result describes an emulated instruction.
type Result struct {
	Op  x86asm.Op // mnemonic
	Len int       // length in bytes
	// Done is false when a REP string instruction stopped at MaxRepeat with
	// iterations left: RIP was not advanced.
	Done bool
}

// Length returns the length of the instruction at the start of code,
// decoded in the given mode.
func Length(mode Mode, code []byte) (int, error) {
	inst, err := decode(mode, code)
	if err != nil {
		return 0, err
	}
	return inst.Len, nil
}

func decode(mode Mode, code []byte) (x86asm.Inst, error) {
	if len(code) > MaxInstLen {
		code = code[:MaxInstLen]
	}
	inst, err := x86asm.Decode(code, int(mode))
	if err != nil || inst.Op == 0 {
		if sys, ok := group7Reg(mode, code); ok {
			return sys, nil
		}
		if err == nil {
			err = x86asm.ErrUnrecognized
		}
		return inst, fmt.Errorf("%w: % x (%v mode): %w", ErrDecode, code, mode, err)
	}
	if inst.Len == 0 || inst.Len > len(code) {
		return inst, fmt.Errorf("%w: % x (%v mode)", ErrDecode, code, mode)
	}
	return inst, nil
}

// group7Reg decodes the register forms of opcode group 7 (0F 01 with
// ModRM.mod = 11) that x86asm does not know, among them VMCALL (0F 01 C1),
// VMMCALL (0F 01 D9), VMRUN, VMLOAD, VMSAVE, STGI, CLGI, INVLPGA, CLAC and
// STAC. They are all three bytes after the prefixes, with no displacement
// or immediate (Intel SDM Vol. 2D, table "Opcode Extensions for One- and
// Two-byte Opcodes by Group Number", group 7). The result has Op 0, the
// length, and Opcode 0x0F01xx00.
func group7Reg(mode Mode, code []byte) (x86asm.Inst, bool) {
	i := 0
prefixes:
	for ; i < len(code); i++ {
		switch code[i] {
		case 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3:
		default:
			break prefixes
		}
	}
	if mode == Mode64 && i < len(code) && code[i]&0xf0 == 0x40 {
		i++ // REX
	}
	if i+3 > len(code) || i+3 > MaxInstLen || code[i] != 0x0f || code[i+1] != 0x01 || code[i+2] < 0xc0 {
		return x86asm.Inst{}, false
	}
	return x86asm.Inst{Mode: int(mode), Len: i + 3, Opcode: 0x0f01<<16 | uint32(code[i+2])<<8}, true
}

// linearRIP returns the linear address of the instruction at RIP.
func linearRIP(mode Mode, r *Regs) uint64 {
	if mode == Mode64 {
		return r.RIP
	}
	return (r.SegBase[CS] + r.RIP) & 0xffff_ffff
}

// fetch decodes the instruction at RIP.
func (e *Emulator) fetch(mode Mode, r *Regs) (x86asm.Inst, []byte, error) {
	if mode != Mode16 && mode != Mode32 && mode != Mode64 {
		return x86asm.Inst{}, nil, fmt.Errorf("emu: bad mode %d", int(mode))
	}
	lin := linearRIP(mode, r)
	n, err := e.Fetcher.Fetch(lin, e.ibuf[:])
	if err != nil {
		return x86asm.Inst{}, nil, fmt.Errorf("emu: fetch at %#x: %w", lin, err)
	}
	code := e.ibuf[:min(n, MaxInstLen)]
	inst, err := decode(mode, code)
	if err != nil {
		return inst, code, fmt.Errorf("at %#x: %w", lin, err)
	}
	return inst, code[:inst.Len], nil
}

// advance moves RIP past an instruction of n bytes, wrapping as IP or EIP
// does outside 64-bit mode.
func advance(mode Mode, r *Regs, n int) {
	r.RIP += uint64(n)
	switch mode {
	case Mode16:
		r.RIP &= 0xffff
	case Mode32:
		r.RIP &= 0xffff_ffff
	}
}

// Skip decodes the instruction at RIP and advances RIP past it, for exits
// the hypervisor completed itself (CPUID, RDMSR, HLT, I/O...) on hardware
// that gives no next RIP. It returns the instruction (Op is 0 for the
// group 7 virtualization instructions x86asm does not decode, such as
// VMMCALL and VMCALL; Opcode identifies them).
func (e *Emulator) Skip(mode Mode, r *Regs) (x86asm.Inst, error) {
	inst, _, err := e.fetch(mode, r)
	if err != nil {
		return inst, err
	}
	advance(mode, r, inst.Len)
	return inst, nil
}

// Step emulates the instruction at RIP and, when it completes, advances
// RIP past it. On error the registers may hold the effects of completed
// iterations of a string instruction (as after an interrupted REP), and
// RIP still points at the instruction.
func (e *Emulator) Step(mode Mode, r *Regs) (Result, error) {
	var code []byte
	var err error
	e.inst, code, err = e.fetch(mode, r)
	if err != nil {
		return Result{}, err
	}
	inst := &e.inst
	res := Result{Op: inst.Op, Len: inst.Len, Done: true}
	x := exec{e: e, mode: mode, r: r, inst: inst, code: code}
	switch inst.Op {
	case x86asm.MOV:
		err = x.mov()
	case x86asm.MOVZX, x86asm.MOVSX, x86asm.MOVSXD:
		err = x.movExtend()
	case x86asm.ADD, x86asm.SUB, x86asm.AND, x86asm.OR, x86asm.XOR, x86asm.CMP, x86asm.TEST:
		err = x.alu()
	case x86asm.XCHG:
		err = x.xchg()
	case x86asm.MOVSB, x86asm.MOVSW, x86asm.MOVSD, x86asm.MOVSQ,
		x86asm.STOSB, x86asm.STOSW, x86asm.STOSD, x86asm.STOSQ,
		x86asm.LODSB, x86asm.LODSW, x86asm.LODSD, x86asm.LODSQ:
		res.Done, err = x.str()
	default:
		err = x.unsupported()
	}
	if err != nil {
		return res, err
	}
	if res.Done {
		advance(mode, r, inst.Len)
	}
	return res, nil
}

// exec is the state of one instruction's emulation.
type exec struct {
	e    *Emulator
	mode Mode
	r    *Regs
	inst *x86asm.Inst
	code []byte
}

func (x *exec) unsupported() error {
	return fmt.Errorf("%w: %v (% x)", ErrUnsupported, x.inst.Op, x.code)
}

// operand is a decoded instruction argument.
type operand struct {
	kind int // opReg, opMem or opImm
	reg  gpr
	addr uint64 // linear address of a memory operand
	imm  uint64 // sign-extended immediate
	size int    // bytes
}

const (
	opNone = iota
	opReg
	opMem
	opImm
)

// operand decodes argument i; memory operands are memSize bytes.
func (x *exec) operand(i, memSize int) (operand, error) {
	switch a := x.inst.Args[i].(type) {
	case x86asm.Reg:
		g, ok := gprOf(a)
		if !ok {
			return operand{}, x.unsupported()
		}
		return operand{kind: opReg, reg: g, size: g.size}, nil
	case x86asm.Mem:
		addr, err := x.linear(a)
		if err != nil {
			return operand{}, err
		}
		return operand{kind: opMem, addr: addr, size: memSize}, nil
	case x86asm.Imm:
		return operand{kind: opImm, imm: uint64(a)}, nil
	}
	return operand{}, x.unsupported()
}

// linear computes the linear address of a memory argument: segment base
// plus the effective address truncated to the address size.
// Intel SDM Vol. 1, 3.7.5 "Specifying an Offset" and 3.3.7 "Address
// Calculations in 64-Bit Mode".
func (x *exec) linear(m x86asm.Mem) (uint64, error) {
	asize := x.inst.AddrSize / 8
	var ea uint64
	if m.Base != 0 {
		switch m.Base {
		case x86asm.RIP, x86asm.EIP:
			ea = x.r.RIP + uint64(x.inst.Len)
		default:
			g, ok := gprOf(m.Base)
			if !ok {
				return 0, x.unsupported()
			}
			ea = x.r.get(g)
		}
	}
	if m.Index != 0 {
		g, ok := gprOf(m.Index)
		if !ok {
			return 0, x.unsupported()
		}
		ea += x.r.get(g) * uint64(m.Scale)
	}
	disp := uint64(m.Disp)
	if asize == 8 && !x.moffs() {
		// x86asm stores disp32 zero-extended; in 64-bit addressing it is
		// sign-extended. A moffs operand is a full 64-bit address.
		disp = signExtend(disp, 4)
	}
	ea = (ea + disp) & sizeMask(asize)

	seg := DS
	switch m.Segment {
	case x86asm.ES:
		seg = ES
	case x86asm.CS:
		seg = CS
	case x86asm.SS:
		seg = SS
	case x86asm.FS:
		seg = FS
	case x86asm.GS:
		seg = GS
	case 0:
		switch m.Base {
		case x86asm.BP, x86asm.EBP, x86asm.RBP, x86asm.SP, x86asm.ESP, x86asm.RSP:
			seg = SS // Intel SDM Vol. 1, 3.7.4 "Specifying a Segment Selector"
		}
	}
	if x.mode == Mode64 {
		// Only FS and GS have bases in 64-bit mode (3.2.4 "Segmentation in
		// IA-32e Mode").
		if seg != FS && seg != GS {
			return ea, nil
		}
		return x.r.SegBase[seg] + ea, nil
	}
	return (x.r.SegBase[seg] + ea) & 0xffff_ffff, nil
}

// moffs reports whether the instruction is MOV with a moffs operand
// (opcodes A0-A3).
func (x *exec) moffs() bool {
	op := x.inst.Opcode >> 24
	return x.inst.Op == x86asm.MOV && op >= 0xa0 && op <= 0xa3
}

func (x *exec) read(o operand) (uint64, error) {
	switch o.kind {
	case opReg:
		return x.r.get(o.reg), nil
	case opMem:
		b := x.e.dbuf[:o.size]
		if err := x.e.Memory.Read(o.addr, b); err != nil {
			return 0, fmt.Errorf("emu: %v: read %#x size %d: %w", x.inst.Op, o.addr, o.size, err)
		}
		return leUint(b), nil
	case opImm:
		return o.imm & sizeMask(o.size), nil
	}
	return 0, x.unsupported()
}

func (x *exec) write(o operand, v uint64) error {
	switch o.kind {
	case opReg:
		x.r.set(o.reg, v)
		return nil
	case opMem:
		b := x.e.dbuf[:o.size]
		putLEUint(b, v)
		if err := x.e.Memory.Write(o.addr, b); err != nil {
			return fmt.Errorf("emu: %v: write %#x size %d: %w", x.inst.Op, o.addr, o.size, err)
		}
		return nil
	}
	return x.unsupported()
}

func leUint(b []byte) uint64 {
	switch len(b) {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.LittleEndian.Uint16(b))
	case 4:
		return uint64(binary.LittleEndian.Uint32(b))
	}
	return binary.LittleEndian.Uint64(b)
}

func putLEUint(b []byte, v uint64) {
	switch len(b) {
	case 1:
		b[0] = byte(v)
	case 2:
		binary.LittleEndian.PutUint16(b, uint16(v))
	case 4:
		binary.LittleEndian.PutUint32(b, uint32(v))
	default:
		binary.LittleEndian.PutUint64(b, v)
	}
}

// twoOperands decodes a two-operand instruction of one operand size: the
// size of its register operand, else of its memory operand. Immediates take
// that size too.
func (x *exec) twoOperands() (dst, src operand, err error) {
	size := x.inst.MemBytes
	for _, a := range x.inst.Args[:2] {
		if r, ok := a.(x86asm.Reg); ok {
			if g, ok := gprOf(r); ok {
				size = g.size
				break
			}
		}
	}
	if size != 1 && size != 2 && size != 4 && size != 8 {
		return dst, src, x.unsupported()
	}
	if dst, err = x.operand(0, size); err != nil {
		return
	}
	if src, err = x.operand(1, size); err != nil {
		return
	}
	if dst.kind == opImm {
		return dst, src, x.unsupported()
	}
	dst.size, src.size = size, size
	return dst, src, nil
}

func (x *exec) mov() error {
	dst, src, err := x.twoOperands()
	if err != nil {
		return err
	}
	v, err := x.read(src)
	if err != nil {
		return err
	}
	return x.write(dst, v)
}

// movExtend emulates MOVZX, MOVSX and MOVSXD: the source is MemBytes (or
// its register's) wide, the destination a wider register.
func (x *exec) movExtend() error {
	dst, err := x.operand(0, 0)
	if err != nil {
		return err
	}
	srcSize := x.inst.MemBytes
	if r, ok := x.inst.Args[1].(x86asm.Reg); ok {
		if g, ok := gprOf(r); ok {
			srcSize = g.size
		}
	}
	if dst.kind != opReg || srcSize < 1 || srcSize > 4 {
		return x.unsupported()
	}
	src, err := x.operand(1, srcSize)
	if err != nil {
		return err
	}
	src.size = srcSize
	v, err := x.read(src)
	if err != nil {
		return err
	}
	if x.inst.Op != x86asm.MOVZX {
		v = signExtend(v, srcSize)
	}
	x.r.set(dst.reg, v&sizeMask(dst.size))
	return nil
}

func (x *exec) xchg() error {
	a, b, err := x.twoOperands()
	if err != nil {
		return err
	}
	if b.kind == opMem {
		a, b = b, a // write memory first: if it fails, no register changed
	}
	va, err := x.read(a)
	if err != nil {
		return err
	}
	vb, err := x.read(b)
	if err != nil {
		return err
	}
	if err := x.write(a, vb); err != nil {
		return err
	}
	return x.write(b, va)
}

// alu emulates the two-operand arithmetic and logic instructions.
func (x *exec) alu() error {
	dst, src, err := x.twoOperands()
	if err != nil {
		return err
	}
	a, err := x.read(dst)
	if err != nil {
		return err
	}
	b, err := x.read(src)
	if err != nil {
		return err
	}
	var res, flags uint64
	switch x.inst.Op {
	case x86asm.ADD:
		res, flags = add(a, b, dst.size)
	case x86asm.SUB, x86asm.CMP:
		res, flags = sub(a, b, dst.size)
	case x86asm.AND, x86asm.TEST:
		res, flags = logic(a&b, dst.size)
	case x86asm.OR:
		res, flags = logic(a|b, dst.size)
	case x86asm.XOR:
		res, flags = logic(a^b, dst.size)
	}
	if x.inst.Op != x86asm.CMP && x.inst.Op != x86asm.TEST {
		if err := x.write(dst, res); err != nil {
			return err
		}
	}
	x.r.RFLAGS = x.r.RFLAGS&^FlagsArith | flags
	return nil
}
