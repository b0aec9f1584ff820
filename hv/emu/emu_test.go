package emu_test

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/godwit-hv/godwit/hv/emu"
)

// sparse is guest memory at linear addresses: unset bytes read as 0.
// It records data writes so tests can check nothing else was written.
type sparse struct {
	b       map[uint64]byte
	written map[uint64]bool
	log     []string
	failAt  uint64 // an access touching this address fails (0: never)
}

var errFault = errors.New("page fault")

func newSparse() *sparse { return &sparse{b: map[uint64]byte{}, written: map[uint64]bool{}} }

func (s *sparse) put(addr uint64, data []byte) {
	for i, v := range data {
		s.b[addr+uint64(i)] = v
	}
}

func (s *sparse) Fetch(addr uint64, buf []byte) (int, error) {
	for i := range buf {
		buf[i] = s.b[addr+uint64(i)]
	}
	return len(buf), nil
}

func (s *sparse) fault(addr uint64, n int) bool {
	return s.failAt != 0 && s.failAt >= addr && s.failAt < addr+uint64(n)
}

func (s *sparse) Read(addr uint64, data []byte) error {
	s.log = append(s.log, fmt.Sprintf("r%d@%#x", len(data), addr))
	if s.fault(addr, len(data)) {
		return errFault
	}
	for i := range data {
		data[i] = s.b[addr+uint64(i)]
	}
	return nil
}

func (s *sparse) Write(addr uint64, data []byte) error {
	s.log = append(s.log, fmt.Sprintf("w%d@%#x", len(data), addr))
	if s.fault(addr, len(data)) {
		return errFault
	}
	for i, v := range data {
		s.b[addr+uint64(i)] = v
		s.written[addr+uint64(i)] = true
	}
	return nil
}

const (
	rip64 = 0x1000
	data  = 0x2000
)

// m81 is the default memory at data: bytes unlike any register's.
var m81 = []byte{0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88}

// defaultGPR gives every register a distinct value; tests override some.
func defaultGPR(i int) uint64 { return 0xfedc_ba98_7654_3210 + uint64(i) }

type emuTest struct {
	name     string
	mode     emu.Mode
	code     []byte
	rip      uint64 // 0: rip64
	gpr      map[int]uint64
	seg      map[int]uint64
	flags    uint64            // initial RFLAGS (bit 1 is always added)
	mem      map[uint64][]byte // nil: m81 at data
	wantGPR  map[int]uint64
	wantMem  map[uint64][]byte
	wantFlag *uint64 // status flags after, when checked
	wantRIP  *uint64 // nil: rip + len(code)
}

func fl(f uint64) *uint64 { return &f }

func b(v ...byte) []byte { return v }

func TestStep(t *testing.T) {
	const (
		CF, PF, AF, ZF, SF, DF, OF = emu.FlagCF, emu.FlagPF, emu.FlagAF, emu.FlagZF, emu.FlagSF, emu.FlagDF, emu.FlagOF
		RAX, RCX, RDX, RBX         = emu.RAX, emu.RCX, emu.RDX, emu.RBX
		RSP, RBP, RSI, RDI         = emu.RSP, emu.RBP, emu.RSI, emu.RDI
		R8, R9, R10, R11           = emu.R8, emu.R9, emu.R10, emu.R11
	)
	rbx := map[int]uint64{RBX: data}
	with := func(m map[int]uint64, kv ...uint64) map[int]uint64 {
		n := maps.Clone(m)
		if n == nil {
			n = map[int]uint64{}
		}
		for i := 0; i < len(kv); i += 2 {
			n[int(kv[i])] = kv[i+1]
		}
		return n
	}
	mem := func(kv ...any) map[uint64][]byte {
		m := map[uint64][]byte{}
		for i := 0; i < len(kv); i += 2 {
			m[uint64(kv[i].(int))] = kv[i+1].([]byte)
		}
		return m
	}
	tests := []emuTest{
		// 64-bit MOV stores and loads, every size.
		{name: "mov %al,(%rbx)", mode: 64, code: b(0x88, 0x03), gpr: rbx, wantMem: mem(data, b(0x10))},
		{name: "mov %ax,(%rbx)", mode: 64, code: b(0x66, 0x89, 0x03), gpr: rbx, wantMem: mem(data, b(0x10, 0x32))},
		{name: "mov %eax,(%rbx)", mode: 64, code: b(0x89, 0x03), gpr: rbx, wantMem: mem(data, b(0x10, 0x32, 0x54, 0x76))},
		{name: "mov %rax,(%rbx)", mode: 64, code: b(0x48, 0x89, 0x03), gpr: rbx,
			wantMem: mem(data, b(0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe))},
		{name: "mov (%rbx),%cl", mode: 64, code: b(0x8a, 0x0b), gpr: rbx, wantGPR: map[int]uint64{RCX: 0xfedc_ba98_7654_3281}},
		{name: "mov (%rbx),%cx", mode: 64, code: b(0x66, 0x8b, 0x0b), gpr: rbx, wantGPR: map[int]uint64{RCX: 0xfedc_ba98_7654_8281}},
		{name: "mov (%rbx),%ecx zero-extends", mode: 64, code: b(0x8b, 0x0b), gpr: rbx, wantGPR: map[int]uint64{RCX: 0x8483_8281}},
		{name: "mov (%rbx),%rcx", mode: 64, code: b(0x48, 0x8b, 0x0b), gpr: rbx, wantGPR: map[int]uint64{RCX: 0x8887_8685_8483_8281}},
		{name: "mov (%rbx),%ah", mode: 64, code: b(0x8a, 0x23), gpr: rbx, wantGPR: map[int]uint64{RAX: 0xfedc_ba98_7654_8110}},
		{name: "mov (%rbx),%sil (REX)", mode: 64, code: b(0x40, 0x8a, 0x33), gpr: rbx, wantGPR: map[int]uint64{RSI: 0xfedc_ba98_7654_3281}},
		{name: "mov %r9b,0x10(%r8)", mode: 64, code: b(0x45, 0x88, 0x48, 0x10), gpr: map[int]uint64{R8: 0x3000},
			wantMem: mem(0x3010, b(0x19))},
		{name: "mov 0x10(%r8,%r10,4),%r11d", mode: 64, code: b(0x47, 0x8b, 0x5c, 0x90, 0x10), gpr: map[int]uint64{R8: 0x3000, R10: 4},
			mem: mem(0x3020, b(0xef, 0xbe, 0xad, 0xde)), wantGPR: map[int]uint64{R11: 0xdead_beef}},
		{name: "movb $0x80,(%rbx)", mode: 64, code: b(0xc6, 0x03, 0x80), gpr: rbx, wantMem: mem(data, b(0x80))},
		{name: "movw $0x1234,(%rbx)", mode: 64, code: b(0x66, 0xc7, 0x03, 0x34, 0x12), gpr: rbx, wantMem: mem(data, b(0x34, 0x12))},
		{name: "movl $0x89abcdef,(%rbx)", mode: 64, code: b(0xc7, 0x03, 0xef, 0xcd, 0xab, 0x89), gpr: rbx,
			wantMem: mem(data, b(0xef, 0xcd, 0xab, 0x89))},
		{name: "movq $-2,(%rbx) sign-extends imm32", mode: 64, code: b(0x48, 0xc7, 0x03, 0xfe, 0xff, 0xff, 0xff), gpr: rbx,
			wantMem: mem(data, b(0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))},
		{name: "mov 0x100(%rip),%eax", mode: 64, code: b(0x8b, 0x05, 0x00, 0x01, 0x00, 0x00),
			mem: mem(rip64+6+0x100, b(1, 2, 3, 4)), wantGPR: map[int]uint64{RAX: 0x0403_0201}},
		{name: "mov %fs:0x8,%rax", mode: 64, code: b(0x64, 0x48, 0x8b, 0x04, 0x25, 0x08, 0x00, 0x00, 0x00),
			seg: map[int]uint64{emu.FS: 0x7000_0000}, mem: mem(0x7000_0008, m81), wantGPR: map[int]uint64{RAX: 0x8887_8685_8483_8281}},
		{name: "mov %gs:(%rbx),%edx", mode: 64, code: b(0x65, 0x8b, 0x13), gpr: rbx,
			seg: map[int]uint64{emu.GS: 0x1_0000}, mem: mem(0x1_2000, m81), wantGPR: map[int]uint64{RDX: 0x8483_8281}},
		{name: "64-bit ignores DS base", mode: 64, code: b(0x8b, 0x0b), gpr: rbx, seg: map[int]uint64{emu.DS: 0x5000, emu.ES: 0x6000},
			wantGPR: map[int]uint64{RCX: 0x8483_8281}},
		{name: "movabs 0x1122334455667788,%eax", mode: 64, code: b(0xa1, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11),
			mem: mem(0x1122_3344_5566_7788, m81), wantGPR: map[int]uint64{RAX: 0x8483_8281}},
		{name: "movabs %al,0xfee00000", mode: 64, code: b(0xa2, 0x00, 0x00, 0xe0, 0xfe, 0x00, 0x00, 0x00, 0x00),
			wantMem: mem(0xfee0_0000, b(0x10))},
		{name: "mov -8(%rbx),%eax", mode: 64, code: b(0x8b, 0x43, 0xf8), gpr: rbx, mem: mem(data-8, m81),
			wantGPR: map[int]uint64{RAX: 0x8483_8281}},
		{name: "mov -0x100(%rbx),%eax disp32", mode: 64, code: b(0x8b, 0x83, 0x00, 0xff, 0xff, 0xff), gpr: rbx,
			mem: mem(data-0x100, m81), wantGPR: map[int]uint64{RAX: 0x8483_8281}},
		{name: "addr32 mov (%ebx),%eax", mode: 64, code: b(0x67, 0x8b, 0x03), gpr: map[int]uint64{RBX: 0xffff_ffff_0000_2000},
			wantGPR: map[int]uint64{RAX: 0x8483_8281}},

		// MOVZX, MOVSX, MOVSXD.
		{name: "movzbl (%rbx),%eax", mode: 64, code: b(0x0f, 0xb6, 0x03), gpr: rbx, wantGPR: map[int]uint64{RAX: 0x81}},
		{name: "movzwq (%rbx),%rax", mode: 64, code: b(0x48, 0x0f, 0xb7, 0x03), gpr: rbx, wantGPR: map[int]uint64{RAX: 0x8281}},
		{name: "movzbw (%rbx),%ax", mode: 64, code: b(0x66, 0x0f, 0xb6, 0x03), gpr: rbx, wantGPR: map[int]uint64{RAX: 0xfedc_ba98_7654_0081}},
		{name: "movsbl (%rbx),%eax", mode: 64, code: b(0x0f, 0xbe, 0x03), gpr: rbx, wantGPR: map[int]uint64{RAX: 0xffff_ff81}},
		{name: "movswq (%rbx),%rcx", mode: 64, code: b(0x48, 0x0f, 0xbf, 0x0b), gpr: rbx, wantGPR: map[int]uint64{RCX: 0xffff_ffff_ffff_8281}},
		{name: "movslq (%rbx),%rdx", mode: 64, code: b(0x48, 0x63, 0x13), gpr: rbx, wantGPR: map[int]uint64{RDX: 0xffff_ffff_8483_8281}},
		{name: "movsbl positive", mode: 64, code: b(0x0f, 0xbe, 0x03), gpr: rbx, mem: mem(data, b(0x7f)), wantGPR: map[int]uint64{RAX: 0x7f}},

		// Arithmetic and logic with memory operands, and their flags.
		{name: "add %eax,(%rbx)", mode: 64, code: b(0x01, 0x03), gpr: rbx, flags: CF | ZF,
			wantMem: mem(data, b(0x91, 0xb4, 0xd7, 0xfa)), wantFlag: fl(SF)},
		{name: "add (%rbx),%al carry zero aux", mode: 64, code: b(0x02, 0x03), gpr: with(rbx, RAX, 0x7f),
			wantGPR: map[int]uint64{RAX: 0}, wantFlag: fl(CF | ZF | PF | AF)},
		{name: "addq $1,(%rbx) overflow", mode: 64, code: b(0x48, 0x83, 0x03, 0x01), gpr: rbx,
			mem:     mem(data, b(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)),
			wantMem: mem(data, b(0, 0, 0, 0, 0, 0, 0, 0x80)), wantFlag: fl(OF | SF | PF | AF)},
		{name: "subl $1,(%rbx) borrow", mode: 64, code: b(0x83, 0x2b, 0x01), gpr: rbx, mem: mem(data, b(0, 0, 0, 0)),
			wantMem: mem(data, b(0xff, 0xff, 0xff, 0xff)), wantFlag: fl(CF | SF | PF | AF)},
		{name: "sub (%rbx),%rax zero", mode: 64, code: b(0x48, 0x2b, 0x03), gpr: with(rbx, RAX, 5), mem: mem(data, b(5, 0, 0, 0, 0, 0, 0, 0)),
			flags: CF | OF | SF, wantGPR: map[int]uint64{RAX: 0}, wantFlag: fl(ZF | PF)},
		{name: "and %cx,(%rbx)", mode: 64, code: b(0x66, 0x21, 0x0b), gpr: rbx, flags: CF | OF | AF,
			wantMem: mem(data, b(0x01, 0x02)), wantFlag: fl(0)},
		{name: "andl $0xfffffff0,(%rbx)", mode: 64, code: b(0x83, 0x23, 0xf0), gpr: rbx,
			wantMem: mem(data, b(0x80, 0x82, 0x83, 0x84)), wantFlag: fl(SF)},
		{name: "or %al,(%rbx)", mode: 64, code: b(0x08, 0x03), gpr: rbx, wantMem: mem(data, b(0x91)), wantFlag: fl(SF)},
		{name: "orw $0x8000,(%rbx)", mode: 64, code: b(0x66, 0x81, 0x0b, 0x00, 0x80), gpr: rbx,
			wantMem: mem(data, b(0x81, 0x82)), wantFlag: fl(SF | PF)},
		{name: "xor (%rbx),%edx", mode: 64, code: b(0x33, 0x13), gpr: rbx, wantGPR: map[int]uint64{RDX: 0xf2d7_b093}, wantFlag: fl(SF | PF)},
		{name: "xorb $0xff,(%rbx)", mode: 64, code: b(0x80, 0x33, 0xff), gpr: rbx, wantMem: mem(data, b(0x7e)), wantFlag: fl(PF)},
		{name: "cmpl $5,(%rbx) below", mode: 64, code: b(0x83, 0x3b, 0x05), gpr: rbx, mem: mem(data, b(3, 0, 0, 0)),
			wantFlag: fl(CF | SF | AF)},
		{name: "cmp %al,(%rbx) overflow", mode: 64, code: b(0x38, 0x03), gpr: rbx, mem: mem(data, b(0x80)), wantFlag: fl(OF)},
		{name: "cmpq $-1,(%rbx) equal", mode: 64, code: b(0x48, 0x83, 0x3b, 0xff), gpr: rbx,
			mem: mem(data, b(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)), wantFlag: fl(ZF | PF)},
		{name: "testb $0x40,(%rbx) clear", mode: 64, code: b(0xf6, 0x03, 0x40), gpr: rbx, flags: CF | OF, wantFlag: fl(ZF | PF)},
		{name: "testb $0x40,(%rbx) set", mode: 64, code: b(0xf6, 0x03, 0x40), gpr: rbx, mem: mem(data, b(0x40)), wantFlag: fl(0)},
		{name: "test %eax,(%rbx)", mode: 64, code: b(0x85, 0x03), gpr: rbx, wantFlag: fl(PF)},

		// XCHG.
		{name: "xchg %eax,(%rbx)", mode: 64, code: b(0x87, 0x03), gpr: rbx,
			wantMem: mem(data, b(0x10, 0x32, 0x54, 0x76)), wantGPR: map[int]uint64{RAX: 0x8483_8281}},
		{name: "xchg (%rbx),%cl", mode: 64, code: b(0x86, 0x0b), gpr: rbx,
			wantMem: mem(data, b(0x11)), wantGPR: map[int]uint64{RCX: 0xfedc_ba98_7654_3281}},

		// String instructions.
		{name: "stosb", mode: 64, code: b(0xaa), gpr: map[int]uint64{RDI: 0x4000},
			wantMem: mem(0x4000, b(0x10)), wantGPR: map[int]uint64{RDI: 0x4001}},
		{name: "stosw", mode: 64, code: b(0x66, 0xab), gpr: map[int]uint64{RDI: 0x4000},
			wantMem: mem(0x4000, b(0x10, 0x32)), wantGPR: map[int]uint64{RDI: 0x4002}},
		{name: "stosl", mode: 64, code: b(0xab), gpr: map[int]uint64{RDI: 0x4000},
			wantMem: mem(0x4000, b(0x10, 0x32, 0x54, 0x76)), wantGPR: map[int]uint64{RDI: 0x4004}},
		{name: "stosq", mode: 64, code: b(0x48, 0xab), gpr: map[int]uint64{RDI: 0x4000},
			wantMem: mem(0x4000, b(0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe)), wantGPR: map[int]uint64{RDI: 0x4008}},
		{name: "stosb DF", mode: 64, code: b(0xaa), gpr: map[int]uint64{RDI: 0x4000}, flags: DF,
			wantMem: mem(0x4000, b(0x10)), wantGPR: map[int]uint64{RDI: 0x3fff}},
		{name: "rep stosb", mode: 64, code: b(0xf3, 0xaa), gpr: map[int]uint64{RDI: 0x4000, RCX: 3},
			wantMem: mem(0x4000, b(0x10, 0x10, 0x10)), wantGPR: map[int]uint64{RDI: 0x4003, RCX: 0}},
		{name: "rep stosq DF", mode: 64, code: b(0xf3, 0x48, 0xab), gpr: map[int]uint64{RDI: 0x4008, RCX: 2}, flags: DF,
			wantMem: mem(0x4000, b(0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe, 0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe)),
			wantGPR: map[int]uint64{RDI: 0x3ff8, RCX: 0}},
		{name: "rep stosb count 0", mode: 64, code: b(0xf3, 0xaa), gpr: map[int]uint64{RDI: 0x4000, RCX: 0}},
		{name: "movsb", mode: 64, code: b(0xa4), gpr: map[int]uint64{RSI: data, RDI: 0x4000},
			wantMem: mem(0x4000, b(0x81)), wantGPR: map[int]uint64{RSI: data + 1, RDI: 0x4001}},
		{name: "rep movsl", mode: 64, code: b(0xf3, 0xa5), gpr: map[int]uint64{RSI: data, RDI: 0x4000, RCX: 2},
			wantMem: mem(0x4000, m81), wantGPR: map[int]uint64{RSI: data + 8, RDI: 0x4008, RCX: 0}},
		{name: "rep movsq DF", mode: 64, code: b(0xf3, 0x48, 0xa5), gpr: map[int]uint64{RSI: data, RDI: 0x4000, RCX: 1}, flags: DF,
			wantMem: mem(0x4000, m81), wantGPR: map[int]uint64{RSI: data - 8, RDI: 0x4000 - 8, RCX: 0}},
		{name: "rep movsb %fs", mode: 64, code: b(0x64, 0xf3, 0xa4), gpr: map[int]uint64{RSI: data, RDI: 0x4000, RCX: 1},
			seg: map[int]uint64{emu.FS: 0x1_0000}, mem: mem(0x1_2000, b(0x42)),
			wantMem: mem(0x4000, b(0x42)), wantGPR: map[int]uint64{RSI: data + 1, RDI: 0x4001, RCX: 0}},
		{name: "lodsb", mode: 64, code: b(0xac), gpr: map[int]uint64{RSI: data},
			wantGPR: map[int]uint64{RAX: 0xfedc_ba98_7654_3281, RSI: data + 1}},
		{name: "lodsq", mode: 64, code: b(0x48, 0xad), gpr: map[int]uint64{RSI: data},
			wantGPR: map[int]uint64{RAX: 0x8887_8685_8483_8281, RSI: data + 8}},
		{name: "rep lodsw", mode: 64, code: b(0x66, 0xf3, 0xad), gpr: map[int]uint64{RSI: data, RCX: 2},
			wantGPR: map[int]uint64{RAX: 0xfedc_ba98_7654_8483, RSI: data + 4, RCX: 0}},
		{name: "addr32 rep stosb", mode: 64, code: b(0x67, 0xf3, 0xaa),
			gpr:     map[int]uint64{RDI: 0xffff_ffff_0000_4000, RCX: 0xffff_ffff_0000_0002},
			wantMem: mem(0x4000, b(0x10, 0x10)), wantGPR: map[int]uint64{RDI: 0x4002, RCX: 0}},

		// 32-bit mode: segment bases, SS default for EBP, 32-bit wrap.
		{name: "32: mov %eax,(%ebx)", mode: 32, code: b(0x89, 0x03), gpr: rbx, seg: map[int]uint64{emu.DS: 0x1_0000},
			wantMem: mem(0x1_2000, b(0x10, 0x32, 0x54, 0x76))},
		{name: "32: mov (%ebx),%ax", mode: 32, code: b(0x66, 0x8b, 0x03), gpr: rbx, wantGPR: map[int]uint64{RAX: 0xfedc_ba98_7654_8281}},
		{name: "32: mov %eax,%ds:0x8(%ebp)", mode: 32, code: b(0x3e, 0x89, 0x45, 0x08), gpr: map[int]uint64{RBP: 0x3000},
			seg: map[int]uint64{emu.DS: 0x1_0000, emu.SS: 0x2_0000}, wantMem: mem(0x1_3008, b(0x10, 0x32, 0x54, 0x76))},
		{name: "32: mov 0x8(%ebp),%eax uses SS", mode: 32, code: b(0x8b, 0x45, 0x08), gpr: map[int]uint64{RBP: 0x3000},
			seg: map[int]uint64{emu.DS: 0x1_0000, emu.SS: 0x2_0000}, mem: mem(0x2_3008, m81), wantGPR: map[int]uint64{RAX: 0x8483_8281}},
		{name: "32: movl $imm,abs32", mode: 32, code: b(0xc7, 0x05, 0xb0, 0x00, 0xe0, 0xfe, 0x44, 0x33, 0x22, 0x11),
			wantMem: mem(0xfee0_00b0, b(0x44, 0x33, 0x22, 0x11))},
		{name: "32: mov %es:(%esi,%ecx,2),%dx", mode: 32, code: b(0x26, 0x66, 0x8b, 0x14, 0x4e),
			gpr: map[int]uint64{RSI: 0x100, RCX: 0x10}, seg: map[int]uint64{emu.ES: 0x3_0000}, mem: mem(0x3_0120, m81),
			wantGPR: map[int]uint64{RDX: 0xfedc_ba98_7654_8281}},
		{name: "32: addr16 mov (%bx,%si),%eax", mode: 32, code: b(0x67, 0x8b, 0x00),
			gpr: map[int]uint64{RBX: 0xffff_1000, RSI: 0x0234}, mem: mem(0x1234, m81), wantGPR: map[int]uint64{RAX: 0x8483_8281}},
		{name: "32: linear address wraps at 4 GiB", mode: 32, code: b(0x8b, 0x03), gpr: map[int]uint64{RBX: 0x3000},
			seg: map[int]uint64{emu.DS: 0xffff_f000}, wantGPR: map[int]uint64{RAX: 0x8483_8281}},
		{name: "32: rep movsb", mode: 32, code: b(0xf3, 0xa4), gpr: map[int]uint64{RSI: data, RDI: 0x4000, RCX: 2},
			seg: map[int]uint64{emu.DS: 0x1_0000, emu.ES: 0x2_0000}, mem: mem(0x1_2000, b(7, 8)),
			wantMem: mem(0x2_4000, b(7, 8)), wantGPR: map[int]uint64{RSI: data + 2, RDI: 0x4002, RCX: 0}},
		{name: "32: addr16 rep stosw wraps DI", mode: 32, code: b(0x67, 0x66, 0xf3, 0xab),
			gpr: map[int]uint64{RDI: 0x1234_fffe, RCX: 0x5678_0002}, seg: map[int]uint64{emu.ES: 0x1_0000},
			wantMem: mem(0x1_fffe, b(0x10, 0x32), 0x1_0000, b(0x10, 0x32)),
			wantGPR: map[int]uint64{RDI: 0x1234_0002, RCX: 0x5678_0000}},

		// 16-bit mode: ModRM16 addressing, segment:offset, moffs16.
		{name: "16: mov %al,(%bx,%si)", mode: 16, code: b(0x88, 0x00), rip: 0x100,
			gpr: map[int]uint64{RBX: 0x200, RSI: 0x34}, seg: map[int]uint64{emu.CS: 0xf_0000, emu.DS: 0x1_0000},
			wantMem: mem(0x1_0234, b(0x10))},
		{name: "16: mov 0x10(%bp,%di),%ax uses SS", mode: 16, code: b(0x8b, 0x43, 0x10), rip: 0x100,
			gpr: map[int]uint64{RBP: 0x100, RDI: 0x20}, seg: map[int]uint64{emu.DS: 0x1_0000, emu.SS: 0x2_0000},
			mem: mem(0x2_0130, m81), wantGPR: map[int]uint64{RAX: 0xfedc_ba98_7654_8281}},
		{name: "16: mov (%bp),%cl", mode: 16, code: b(0x8a, 0x4e, 0x00), rip: 0x100,
			gpr: map[int]uint64{RBP: 0x100}, seg: map[int]uint64{emu.SS: 0x2_0000},
			mem: mem(0x2_0100, m81), wantGPR: map[int]uint64{RCX: 0xfedc_ba98_7654_3281}},
		{name: "16: mov %ax,0x1234 moffs", mode: 16, code: b(0xa3, 0x34, 0x12), rip: 0x100,
			seg: map[int]uint64{emu.DS: 0x1_0000}, wantMem: mem(0x1_1234, b(0x10, 0x32))},
		{name: "16: mov 0xb800,%al moffs", mode: 16, code: b(0xa0, 0x00, 0xb8), rip: 0x100,
			mem: mem(0xb800, m81), wantGPR: map[int]uint64{RAX: 0xfedc_ba98_7654_3281}},
		{name: "16: movl %eax,(%bx)", mode: 16, code: b(0x66, 0x89, 0x07), rip: 0x100, gpr: rbx,
			wantMem: mem(data, b(0x10, 0x32, 0x54, 0x76))},
		{name: "16: movw $0xbeef,%es:2(%di)", mode: 16, code: b(0x26, 0xc7, 0x45, 0x02, 0xef, 0xbe), rip: 0x100,
			gpr: map[int]uint64{RDI: 0x10}, seg: map[int]uint64{emu.ES: 0xb_8000}, wantMem: mem(0xb_8012, b(0xef, 0xbe))},
		{name: "16: mov -2(%bx),%dx wraps offset", mode: 16, code: b(0x8b, 0x57, 0xfe), rip: 0x100,
			gpr: map[int]uint64{RBX: 1}, seg: map[int]uint64{emu.DS: 0x1_0000}, mem: mem(0x1_ffff, m81),
			wantGPR: map[int]uint64{RDX: 0xfedc_ba98_7654_8281}},
		{name: "16: addr32 mov (%eax,%ebx,4),%ax", mode: 16, code: b(0x67, 0x8b, 0x04, 0x98), rip: 0x100,
			gpr: map[int]uint64{RAX: 0x1000, RBX: 0x100}, mem: mem(0x1400, m81), wantGPR: map[int]uint64{RAX: 0x8281}},
		{name: "16: rep stosw", mode: 16, code: b(0xf3, 0xab), rip: 0x100,
			gpr: map[int]uint64{RDI: 0x10, RCX: 0xabcd_0003}, seg: map[int]uint64{emu.ES: 0xa_0000},
			wantMem: mem(0xa_0010, b(0x10, 0x32, 0x10, 0x32, 0x10, 0x32)), wantGPR: map[int]uint64{RDI: 0x16, RCX: 0xabcd_0000}},
		{name: "16: IP wraps", mode: 16, code: b(0x88, 0x00), rip: 0xfffe,
			gpr: map[int]uint64{RBX: 0x200, RSI: 0x34}, seg: map[int]uint64{emu.CS: 0xf_0000},
			wantMem: mem(0x234, b(0x10)), wantRIP: fl(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runStep(t, tt) })
	}
}

func setupStep(tt emuTest) (*emu.Emulator, *emu.Regs, *sparse, uint64) {
	s := newSparse()
	r := &emu.Regs{RFLAGS: tt.flags | 2}
	for i := range r.GPR {
		r.GPR[i] = defaultGPR(i)
	}
	for i, v := range tt.gpr {
		r.GPR[i] = v
	}
	for i, v := range tt.seg {
		r.SegBase[i] = v
	}
	r.RIP = tt.rip
	if r.RIP == 0 {
		r.RIP = rip64
	}
	lin := r.RIP
	if tt.mode != emu.Mode64 {
		lin = (r.SegBase[emu.CS] + r.RIP) & 0xffff_ffff
	}
	if tt.mem == nil {
		s.put(data, m81)
	}
	for a, v := range tt.mem {
		s.put(a, v)
	}
	s.put(lin, tt.code)
	return &emu.Emulator{Fetcher: s, Memory: s}, r, s, lin
}

func runStep(t *testing.T, tt emuTest) {
	t.Helper()
	e, r, s, _ := setupStep(tt)
	before := *r
	res, err := e.Step(tt.mode, r)
	if err != nil {
		t.Fatalf("Step(% x) = %v", tt.code, err)
	}
	if res.Len != len(tt.code) || !res.Done {
		t.Errorf("Step(% x) = %+v, want Len %d, Done", tt.code, res, len(tt.code))
	}
	wantRIP := before.RIP + uint64(len(tt.code))
	if tt.wantRIP != nil {
		wantRIP = *tt.wantRIP
	}
	if r.RIP != wantRIP {
		t.Errorf("RIP = %#x, want %#x", r.RIP, wantRIP)
	}
	for i := range r.GPR {
		want, ok := tt.wantGPR[i]
		if !ok {
			want = before.GPR[i]
		}
		if r.GPR[i] != want {
			t.Errorf("GPR[%d] = %#x, want %#x", i, r.GPR[i], want)
		}
	}
	if tt.wantFlag != nil {
		if got := r.RFLAGS & emu.FlagsArith; got != *tt.wantFlag {
			t.Errorf("RFLAGS status = %s, want %s", flagString(got), flagString(*tt.wantFlag))
		}
		if r.RFLAGS&^emu.FlagsArith != before.RFLAGS&^emu.FlagsArith {
			t.Errorf("RFLAGS = %#x: non-status bits changed from %#x", r.RFLAGS, before.RFLAGS)
		}
	} else if r.RFLAGS != before.RFLAGS {
		t.Errorf("RFLAGS = %#x, want unchanged %#x", r.RFLAGS, before.RFLAGS)
	}
	wantWritten := map[uint64]bool{}
	for a, v := range tt.wantMem {
		for i, want := range v {
			wantWritten[a+uint64(i)] = true
			if got := s.b[a+uint64(i)]; got != want {
				t.Errorf("mem[%#x] = %#02x, want %#02x", a+uint64(i), got, want)
			}
		}
	}
	for a := range s.written {
		if !wantWritten[a] {
			t.Errorf("mem[%#x] written (%v), want untouched", a, s.log)
		}
	}
}

func flagString(f uint64) string {
	var s []string
	for _, n := range []struct {
		bit  uint64
		name string
	}{{emu.FlagCF, "CF"}, {emu.FlagPF, "PF"}, {emu.FlagAF, "AF"}, {emu.FlagZF, "ZF"}, {emu.FlagSF, "SF"}, {emu.FlagOF, "OF"}} {
		if f&n.bit != 0 {
			s = append(s, n.name)
		}
	}
	return "[" + strings.Join(s, " ") + "]"
}

func TestRepRestart(t *testing.T) {
	e, r, s, _ := setupStep(emuTest{mode: 64, code: b(0xf3, 0xaa), gpr: map[int]uint64{emu.RDI: 0x4000, emu.RCX: 10}})
	e.MaxRepeat = 4
	res, err := e.Step(64, r)
	if err != nil || res.Done {
		t.Fatalf("Step(rep stosb, MaxRepeat 4) = %+v, %v, want not Done", res, err)
	}
	if r.RIP != rip64 || r.GPR[emu.RCX] != 6 || r.GPR[emu.RDI] != 0x4004 {
		t.Errorf("after 4 iterations RIP, RCX, RDI = %#x, %d, %#x, want %#x, 6, 0x4004", r.RIP, r.GPR[emu.RCX], r.GPR[emu.RDI], rip64)
	}
	for i := 0; i < 2; i++ {
		if res, err = e.Step(64, r); err != nil {
			t.Fatal(err)
		}
	}
	if !res.Done || r.RIP != rip64+2 || r.GPR[emu.RCX] != 0 || r.GPR[emu.RDI] != 0x400a || len(s.written) != 10 {
		t.Errorf("after restarts Done, RIP, RCX, RDI, bytes = %v, %#x, %d, %#x, %d, want true, %#x, 0, 0x400a, 10",
			res.Done, r.RIP, r.GPR[emu.RCX], r.GPR[emu.RDI], len(s.written), rip64+2)
	}
}

func TestMemoryFault(t *testing.T) {
	tests := []struct {
		name    string
		code    []byte
		gpr     map[int]uint64
		failAt  uint64
		wantGPR map[int]uint64 // registers changed by completed iterations
	}{
		{"load", b(0x48, 0x8b, 0x0b), map[int]uint64{emu.RBX: data}, data, nil},
		{"store", b(0x89, 0x03), map[int]uint64{emu.RBX: data}, data, nil},
		{"xchg", b(0x87, 0x03), map[int]uint64{emu.RBX: data}, data, nil},
		{"rep stosb, third byte", b(0xf3, 0xaa), map[int]uint64{emu.RDI: 0x4000, emu.RCX: 5}, 0x4002,
			map[int]uint64{emu.RDI: 0x4002, emu.RCX: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, r, s, _ := setupStep(emuTest{mode: 64, code: tt.code, gpr: tt.gpr})
			s.failAt = tt.failAt
			before := *r
			if _, err := e.Step(64, r); !errors.Is(err, errFault) {
				t.Fatalf("Step(% x) with a faulting access = %v, want the fault wrapped", tt.code, err)
			}
			want := before
			for i, v := range tt.wantGPR {
				want.GPR[i] = v
			}
			if *r != want {
				t.Errorf("registers after fault = %+v, want %+v", *r, want)
			}
		})
	}
}

func TestUnsupported(t *testing.T) {
	tests := []struct {
		code []byte
		want string
	}{
		{b(0xff, 0x03), "INC (ff 03)"},               // incl (%rbx)
		{b(0x0f, 0x20, 0xc0), "MOV (0f 20 c0)"},      // mov %cr0,%rax
		{b(0x50), "PUSH (50)"},                       // push %rax
		{b(0x0f, 0xa2), "CPUID (0f a2)"},             // cpuid
		{b(0x8e, 0x03), "MOV (8e 03)"},               // mov (%rbx),%es
		{b(0x66, 0x0f, 0x6f, 0x03), "MOVDQA (66 0f"}, // movdqa (%rbx),%xmm0
		{b(0x0f, 0x01, 0xd9), "(0f 01 d9)"},          // vmmcall
	}
	for _, tt := range tests {
		e, r, s, _ := setupStep(emuTest{mode: 64, code: tt.code, gpr: map[int]uint64{emu.RBX: data}})
		before := *r
		_, err := e.Step(64, r)
		if !errors.Is(err, emu.ErrUnsupported) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Step(% x) = %v, want ErrUnsupported mentioning %q", tt.code, err, tt.want)
		}
		if *r != before || len(s.written) != 0 {
			t.Errorf("Step(% x) changed state on an unsupported instruction", tt.code)
		}
	}
	e, r, _, _ := setupStep(emuTest{mode: 64, code: b(0x0f, 0x04)})
	if _, err := e.Step(64, r); !errors.Is(err, emu.ErrDecode) || !strings.Contains(err.Error(), "0f 04") {
		t.Errorf("Step(0f 04) = %v, want ErrDecode with the bytes", err)
	}
}

func TestLength(t *testing.T) {
	tests := []struct {
		mode emu.Mode
		code []byte
		want int
	}{
		{64, b(0x0f, 0xa2), 2},                   // cpuid
		{64, b(0x0f, 0x32), 2},                   // rdmsr
		{64, b(0x0f, 0x30), 2},                   // wrmsr
		{64, b(0xf4), 1},                         // hlt
		{64, b(0xe6, 0xf4), 2},                   // out %al,$0xf4
		{64, b(0xef), 1},                         // out %eax,(%dx)
		{64, b(0x0f, 0x01, 0xd9), 3},             // vmmcall
		{64, b(0x0f, 0x01, 0xc1), 3},             // vmcall
		{32, b(0x0f, 0x01, 0xd8), 3},             // vmrun
		{64, b(0x0f, 0x01, 0xcb), 3},             // stac
		{64, b(0x66, 0x48, 0x0f, 0x01, 0xdf), 5}, // invlpga with prefixes
		{64, b(0x0f, 0x01, 0xd1), 3},             // xsetbv (known to x86asm)
		{64, b(0x0f, 0x01, 0xf9), 3},             // rdtscp
		{64, b(0xa1, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11), 9},        // movabs moffs64,%eax
		{64, b(0x64, 0x48, 0x8b, 0x04, 0x25, 0x08, 0x00, 0x00, 0x00, 0x90), 9},  // mov %fs:0x8,%rax
		{64, b(0x66, 0xf3, 0xad), 3},                                            // rep lodsw
		{64, b(0x48, 0xc7, 0x03, 0xfe, 0xff, 0xff, 0xff), 7},                    // movq $-2,(%rbx)
		{32, b(0xc7, 0x05, 0xb0, 0x00, 0xe0, 0xfe, 0x44, 0x33, 0x22, 0x11), 10}, // movl $imm32,abs32
		{16, b(0xc7, 0x06, 0x34, 0x12, 0xef, 0xbe), 6},                          // movw $imm16,abs16
		{16, b(0x66, 0xc7, 0x06, 0x34, 0x12, 0xef, 0xbe, 0xad, 0xde), 9},        // movl $imm32,abs16
		{32, b(0x67, 0x8b, 0x00), 3},                                            // addr16 mov (%bx,%si),%eax
		{16, b(0x67, 0x8b, 0x04, 0x98), 4},                                      // addr32 mov (%eax,%ebx,4),%ax
		{16, b(0xa0, 0x00, 0xb8), 3},                                            // mov moffs16,%al
		{32, b(0xa0, 0x00, 0xb8, 0x00, 0x00), 5},                                // mov moffs32,%al
	}
	for _, tt := range tests {
		if got, err := emu.Length(tt.mode, tt.code); err != nil || got != tt.want {
			t.Errorf("Length(%v, % x) = %d, %v, want %d, nil", tt.mode, tt.code, got, err, tt.want)
		}
	}
	for _, tt := range []struct {
		mode emu.Mode
		code []byte
	}{{64, nil}, {32, b(0xc7, 0x05, 0xb0)}, {64, b(0x0f, 0x04)}, {8, b(0x90)}, {64, b(0x0f, 0x01)},
		{64, b(0xf3, 0x0f, 0x1e, 0xfa)}, // endbr64: x86asm returns no mnemonic; an error beats a wrong length
	} {
		if n, err := emu.Length(tt.mode, tt.code); err == nil {
			t.Errorf("Length(%v, % x) = %d, nil, want error", tt.mode, tt.code, n)
		}
	}
}

func TestSkip(t *testing.T) {
	tests := []struct {
		mode    emu.Mode
		rip     uint64
		csBase  uint64
		code    []byte
		wantRIP uint64
	}{
		{64, 0xffff_8000_0000_1000, 0, b(0x0f, 0xa2), 0xffff_8000_0000_1002},
		{32, 0x10_0000, 0, b(0x0f, 0x32), 0x10_0002},
		{32, 0xffff_ffff, 0, b(0xf4), 0},
		{16, 0x7c00, 0, b(0xe6, 0xf4), 0x7c02},
		{16, 0xfff0, 0xf_0000, b(0x0f, 0xa2), 0xfff2},
		{64, 0x1000, 0, b(0x0f, 0x01, 0xd9), 0x1003}, // vmmcall
	}
	for _, tt := range tests {
		s := newSparse()
		lin := tt.rip
		if tt.mode != 64 {
			lin = (tt.csBase + tt.rip) & 0xffff_ffff
		}
		s.put(lin, tt.code)
		e := &emu.Emulator{Fetcher: s, Memory: s}
		r := &emu.Regs{RIP: tt.rip}
		r.SegBase[emu.CS] = tt.csBase
		inst, err := e.Skip(tt.mode, r)
		if err != nil || r.RIP != tt.wantRIP || inst.Len != len(tt.code) {
			t.Errorf("Skip(%v, % x at %#x) = RIP %#x, %v, want %#x", tt.mode, tt.code, tt.rip, r.RIP, err, tt.wantRIP)
		}
		if len(s.log) != 0 {
			t.Errorf("Skip made data accesses: %v", s.log)
		}
	}
}

type shortFetch struct{ code []byte }

func (f shortFetch) Fetch(addr uint64, buf []byte) (int, error) { return copy(buf, f.code), nil }

func TestShortFetch(t *testing.T) {
	// A fetch that stops at an unmapped page still decodes a complete
	// instruction; a cut-off one is an error, not a wrong length.
	e := &emu.Emulator{Fetcher: shortFetch{b(0x0f, 0xa2)}}
	r := &emu.Regs{RIP: 0x1ffe}
	if _, err := e.Skip(64, r); err != nil || r.RIP != 0x2000 {
		t.Errorf("Skip(cpuid from 2 fetched bytes) = RIP %#x, %v, want 0x2000, nil", r.RIP, err)
	}
	e = &emu.Emulator{Fetcher: shortFetch{b(0x48, 0xc7, 0x03)}}
	if _, err := e.Skip(64, r); err == nil {
		t.Errorf("Skip(truncated instruction) = nil, want error")
	}
}

func TestModeOf(t *testing.T) {
	tests := []struct {
		pe, lma, vm86, csL, csD bool
		want                    emu.Mode
	}{
		{false, false, false, false, false, 16}, // real mode
		{false, false, false, false, true, 16},  // real mode ignores CS.D
		{true, false, false, false, false, 16},  // 16-bit protected mode
		{true, false, false, false, true, 32},
		{true, false, true, false, true, 16}, // virtual-8086
		{true, true, false, true, false, 64},
		{true, true, false, false, true, 32}, // compatibility mode
		{true, true, false, false, false, 16},
		{true, false, false, true, true, 32}, // CS.L means nothing outside IA-32e mode
	}
	for _, tt := range tests {
		if got := emu.ModeOf(tt.pe, tt.lma, tt.vm86, tt.csL, tt.csD); got != tt.want {
			t.Errorf("ModeOf(pe=%v lma=%v vm=%v L=%v D=%v) = %v, want %v", tt.pe, tt.lma, tt.vm86, tt.csL, tt.csD, got, tt.want)
		}
	}
}

// flat is 64 KiB of memory at linear address 0 that does not allocate.
type flat [1 << 16]byte

func (f *flat) Fetch(addr uint64, buf []byte) (int, error) { return copy(buf, f[addr:]), nil }
func (f *flat) Read(addr uint64, d []byte) error           { copy(d, f[addr:]); return nil }
func (f *flat) Write(addr uint64, d []byte) error          { copy(f[addr:], d); return nil }

func TestStepAllocations(t *testing.T) {
	// The emulator's own work does not allocate; x86asm.Decode boxes a
	// memory operand in an interface (one allocation).
	m := new(flat)
	copy(m[rip64:], b(0x89, 0x03)) // mov %eax,(%rbx)
	e := &emu.Emulator{Fetcher: m, Memory: m}
	r := &emu.Regs{}
	r.GPR[emu.RBX] = data
	n := testing.AllocsPerRun(100, func() {
		r.RIP = rip64
		if _, err := e.Step(64, r); err != nil {
			t.Fatal(err)
		}
	})
	if n > 1 {
		t.Errorf("Step(mov %%eax,(%%rbx)) allocs = %v, want <= 1", n)
	}
	copy(m[rip64:], b(0x0f, 0xa2)) // cpuid
	n = testing.AllocsPerRun(100, func() {
		r.RIP = rip64
		if _, err := e.Skip(64, r); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("Skip(cpuid) allocs = %v, want 0", n)
	}
}
