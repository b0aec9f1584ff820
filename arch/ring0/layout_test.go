package ring0

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// The assembly in entry_amd64.s and stubs_amd64.s builds TrapFrame by pushes and reads it by
// pops, and the signal code writes Linux's rt_sigframe by offset. These tests check both
// against the Go declarations, mechanically, from the .s text.

func readSource(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// asmFunc returns the instructions of TEXT ·name in src, one per line, comments kept apart.
type asmInsn struct{ op, args, comment string }

func asmFunc(t *testing.T, src, name string) []asmInsn {
	t.Helper()
	lines := strings.Split(src, "\n")
	start := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "TEXT ·"+name+"(SB)") })
	if start < 0 {
		t.Fatalf("no TEXT ·%s in the assembly", name)
	}
	var out []asmInsn
	for _, l := range lines[start+1:] {
		if strings.HasPrefix(l, "TEXT ") || strings.HasPrefix(l, "GLOBL ") || strings.HasPrefix(l, "DATA ") {
			break
		}
		code, comment, _ := strings.Cut(l, "//")
		f := strings.Fields(code)
		if len(f) == 0 || strings.HasSuffix(f[0], ":") {
			continue
		}
		out = append(out, asmInsn{f[0], strings.Join(f[1:], " "), strings.TrimSpace(comment)})
	}
	return out
}

func TestAsmDefines(t *testing.T) {
	src := readSource(t, "entry_amd64.s")
	want := map[string]int{"KSTACK_SIZE": kstackSize, "FRAME_SIZE": frameSize, "VEC_SYSCALL": vecSyscall}
	re := regexp.MustCompile(`(?m)^#define\s+(\w+)\s+(\S+)\s*$`)
	seen := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(src, -1) {
		w, ok := want[m[1]]
		if !ok {
			continue
		}
		seen[m[1]] = true
		got, err := strconv.ParseInt(m[2], 0, 64)
		if err != nil {
			t.Errorf("#define %s %s: not a number", m[1], m[2])
			continue
		}
		if int(got) != w {
			t.Errorf("entry_amd64.s: #define %s = %d, want %d as in entry.go", m[1], got, w)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("entry_amd64.s: no #define %s", name)
		}
	}
}

// TestTrapFrameLayout checks TrapFrame against the order in which the CPU, the stubs and
// trapCommon push, and trapReturn pops.
func TestTrapFrameLayout(t *testing.T) {
	if got := unsafe.Sizeof(TrapFrame{}); got != frameSize {
		t.Errorf("unsafe.Sizeof(TrapFrame{}) = %d, want frameSize = %d", got, frameSize)
	}
	ty := reflect.TypeOf(TrapFrame{})
	offset := func(field string) int {
		f, ok := ty.FieldByName(field)
		if !ok {
			t.Fatalf("TrapFrame has no field %s", field)
		}
		return int(f.Offset)
	}
	fixed := []struct {
		field string
		off   int
	}{
		{"R15", 0}, {"R14", 8}, {"R13", 16}, {"R12", 24}, {"R11", 32}, {"R10", 40}, {"R9", 48}, {"R8", 56},
		{"BP", 64}, {"DI", 72}, {"SI", 80}, {"DX", 88}, {"CX", 96}, {"BX", 104}, {"AX", 112},
		{"Vector", 120}, {"Err", 128}, {"IP", 136}, {"CS", 144}, {"Flags", 152}, {"SP", 160}, {"SS", 168},
	}
	for _, f := range fixed {
		if got := offset(f.field); got != f.off {
			t.Errorf("unsafe.Offsetof(TrapFrame.%s) = %d, want %d", f.field, got, f.off)
		}
	}

	// The pushes, in order: the CPU's frame (Intel SDM Vol. 3A, 6.14.2: SS, RSP, RFLAGS, CS,
	// RIP, error code), the stub's vector, then trapCommon's registers.
	src := readSource(t, "entry_amd64.s")
	pushed := []string{"SS", "SP", "Flags", "CS", "IP", "Err", "Vector"}
	var regs []string
	for _, in := range asmFunc(t, src, "trapCommon") {
		if in.op == "CALL" {
			break
		}
		if in.op != "PUSHQ" {
			t.Fatalf("trapCommon: %s %s before the CALL, want only PUSHQs", in.op, in.args)
		}
		regs = append(regs, in.args)
	}
	pushed = append(pushed, regs...)
	if len(pushed)*8 != frameSize {
		t.Errorf("the entry paths push %d words (%v), want frameSize/8 = %d", len(pushed), pushed, frameSize/8)
	}
	for i, name := range pushed {
		want := (len(pushed) - 1 - i) * 8 // the last push is at the lowest address, the frame's start
		if got := offset(name); got != want {
			t.Errorf("TrapFrame.%s at offset %d, but push %d of the entry path puts it at %d", name, got, i, want)
		}
	}

	// trapReturn pops the registers in the reverse order, then drops vector and error code.
	var pops []string
	var drop string
	for _, in := range asmFunc(t, src, "trapReturn") {
		switch in.op {
		case "POPQ":
			pops = append(pops, in.args)
		case "ADDQ":
			if len(pops) > 0 && drop == "" {
				drop = in.args
			}
		}
	}
	rev := slices.Clone(regs)
	slices.Reverse(rev)
	if !slices.Equal(pops, rev) {
		t.Errorf("trapReturn pops %v, want %v (trapCommon's pushes reversed)", pops, rev)
	}
	if drop != "$16, SP" {
		t.Errorf("trapReturn drops %q after the pops, want \"$16, SP\" (vector and error code)", drop)
	}
}

// TestSyscallEntryFrame checks that the SYSCALL path builds the same frame an interrupt does.
func TestSyscallEntryFrame(t *testing.T) {
	src := readSource(t, "entry_amd64.s")
	var got []string
	for _, in := range asmFunc(t, src, "syscallEntry") {
		if in.op != "PUSHQ" {
			continue
		}
		what := in.comment
		if what == "" {
			what = in.args
		}
		got = append(got, what)
	}
	want := []string{"SS", "RSP", "RFLAGS", "CS", "RIP", "error code", "$VEC_SYSCALL"}
	if !slices.Equal(got, want) {
		t.Errorf("syscallEntry pushes %q, want %q", got, want)
	}
	insns := asmFunc(t, src, "syscallEntry")
	if last := insns[len(insns)-1]; last.op != "JMP" || last.args != "·trapCommon(SB)" {
		t.Errorf("syscallEntry ends with %s %s, want JMP ·trapCommon(SB)", last.op, last.args)
	}
}

// TestStubs checks every vector stub: a zero error code where the CPU pushes none, then the
// vector number, then trapCommon. Error codes: Intel SDM Vol. 3A, 6.13 "Error Code" and
// Table 6-1 (#DF 8, #TS 10, #NP 11, #SS 12, #GP 13, #PF 14, #AC 17, #CP 21); AMD APM Vol. 2,
// 8.2 (#VC 29, #SX 30).
func TestStubs(t *testing.T) {
	cpuPushes := map[int]bool{8: true, 10: true, 11: true, 12: true, 13: true, 14: true, 17: true, 21: true, 29: true, 30: true}
	src := readSource(t, "stubs_amd64.s")
	for v := 0; v < 256; v++ {
		insns := asmFunc(t, src, fmt.Sprintf("vector%d", v))
		var want []asmInsn
		if !cpuPushes[v] {
			want = append(want, asmInsn{"PUSHQ", "$0", ""})
		}
		want = append(want, asmInsn{"PUSHQ", fmt.Sprintf("$%d", v), ""}, asmInsn{"JMP", "·trapCommon(SB)", ""})
		if !slices.Equal(insns, want) {
			t.Errorf("vector%d = %v, want %v", v, insns, want)
		}
	}
	for v := 0; v < 256; v++ {
		line := fmt.Sprintf("DATA ·vectors+%d(SB)/8, $·vector%d(SB)", v*8, v)
		if !strings.Contains(src, line+"\n") {
			t.Errorf("stubs_amd64.s: no %q", line)
		}
	}
}

// Linux's x86-64 signal frame, declared as in the kernel's uapi headers
// (arch/x86/include/uapi/asm/sigcontext.h, include/uapi/asm-generic/ucontext.h, signal.h)
// and arch/x86/include/asm/sigframe.h (struct rt_sigframe).
type linuxSigcontext struct {
	R8, R9, R10, R11, R12, R13, R14, R15                uint64
	Rdi, Rsi, Rbp, Rbx, Rdx, Rax, Rcx, Rsp, Rip, Eflags uint64
	Cs, Gs, Fs, Ss                                      uint16
	Err, Trapno, Oldmask, Cr2                           uint64
	Fpstate                                             uint64
	Reserved1                                           [8]uint64
}

type linuxStack struct {
	Sp    uint64
	Flags int32
	_     int32
	Size  uint64
}

type linuxUcontext struct {
	Flags, Link uint64
	Stack       linuxStack
	Mcontext    linuxSigcontext
	Sigmask     uint64 // the kernel's sigset_t: 64 signals
}

type linuxSiginfo struct {
	Signo, Errno, Code int32
	_                  int32
	Addr               uint64 // _sigfault.si_addr; _kill.si_pid shares the offset
	_                  [128 - 24]byte
}

type linuxRtSigframe struct {
	Pretcode uint64
	Uc       linuxUcontext
	Info     linuxSiginfo
}

func TestSignalFrameLayout(t *testing.T) {
	var f linuxRtSigframe
	var sc linuxSigcontext
	var si linuxSiginfo
	checks := []struct {
		name      string
		got, want uintptr
	}{
		{"frRestorer", frRestorer, unsafe.Offsetof(f.Pretcode)},
		{"frUcontext", frUcontext, unsafe.Offsetof(f.Uc)},
		{"frSiginfo", frSiginfo, unsafe.Offsetof(f.Info)},
		{"frSize", frSize, unsafe.Sizeof(f)},
		{"ucFlags", ucFlags, unsafe.Offsetof(f.Uc.Flags)},
		{"ucLink", ucLink, unsafe.Offsetof(f.Uc.Link)},
		{"ucStack", ucStack, unsafe.Offsetof(f.Uc.Stack)},
		{"ucMcontext", ucMcontext, unsafe.Offsetof(f.Uc.Mcontext)},
		{"ucSigmask", ucSigmask, unsafe.Offsetof(f.Uc.Sigmask)},
		{"ucSize", ucSize, unsafe.Sizeof(f.Uc)},
		{"ucMcontext+sizeof(sigcontext)", ucMcontext + 256, ucSigmask},
		{"siginfoSize", siginfoSize, unsafe.Sizeof(si)},
		{"siSigno", siSigno, unsafe.Offsetof(si.Signo)},
		{"siCode", siCode, unsafe.Offsetof(si.Code)},
		{"siAddr", siAddr, unsafe.Offsetof(si.Addr)},
		{"siPid", siPid, unsafe.Offsetof(si.Addr)},
		{"scRIP", scRIP, unsafe.Offsetof(sc.Rip)},
		{"scEFLAGS", scEFLAGS, unsafe.Offsetof(sc.Eflags)},
		{"scCSGSFS", scCSGSFS, unsafe.Offsetof(sc.Cs)},
		{"scErr", scErr, unsafe.Offsetof(sc.Err)},
		{"scTrapno", scTrapno, unsafe.Offsetof(sc.Trapno)},
		{"scOldmask", scOldmask, unsafe.Offsetof(sc.Oldmask)},
		{"scCR2", scCR2, unsafe.Offsetof(sc.Cr2)},
		{"scFpstate", scFpstate, unsafe.Offsetof(sc.Fpstate)},
		{"sizeof(sigcontext)", 256, unsafe.Sizeof(sc)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d (Linux rt_sigframe)", c.name, c.got, c.want)
		}
	}
	// deliverSignal and sigreturn store the general registers as a run of 16 words from
	// scR8 in this order; the named offsets must agree with it.
	order := []struct {
		name string
		off  uintptr
	}{
		{"R8", unsafe.Offsetof(sc.R8)}, {"R9", unsafe.Offsetof(sc.R9)}, {"R10", unsafe.Offsetof(sc.R10)},
		{"R11", unsafe.Offsetof(sc.R11)}, {"R12", unsafe.Offsetof(sc.R12)}, {"R13", unsafe.Offsetof(sc.R13)},
		{"R14", unsafe.Offsetof(sc.R14)}, {"R15", unsafe.Offsetof(sc.R15)}, {"DI", scRDI}, {"SI", scRSI},
		{"BP", scRBP}, {"BX", scRBX}, {"DX", scRDX}, {"AX", scRAX}, {"CX", scRCX}, {"SP", scRSP},
	}
	linux := []uintptr{0, 8, 16, 24, 32, 40, 48, 56,
		unsafe.Offsetof(sc.Rdi), unsafe.Offsetof(sc.Rsi), unsafe.Offsetof(sc.Rbp), unsafe.Offsetof(sc.Rbx),
		unsafe.Offsetof(sc.Rdx), unsafe.Offsetof(sc.Rax), unsafe.Offsetof(sc.Rcx), unsafe.Offsetof(sc.Rsp)}
	for i, r := range order {
		if want := scR8 + uintptr(i)*8; r.off != want || linux[i] != want {
			t.Errorf("sigcontext %s at %d (Linux %d), want %d: word %d of the run from scR8", r.name, r.off, linux[i], want, i)
		}
	}
	// The FXSAVE image goes below the frame, 64-byte aligned: FXSAVE needs 16.
	if fxSize != 512 {
		t.Errorf("fxSize = %d, want 512 (Intel SDM Vol. 1, 10.5.1 \"FXSAVE Area\")", fxSize)
	}
}
