package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"

	"github.com/godwit-hv/godwit/arch/ring0"
	"github.com/godwit-hv/godwit/arch/x86"
	"github.com/godwit-hv/godwit/hv"
	"github.com/godwit-hv/godwit/vmx"
)

// debug-vmx runs a tiny real-mode guest on the VT-x backend and prints every exit: a check of
// VMXON, VMCS set-up, EPT, unrestricted guest, VMLAUNCH/VMRESUME and exit decoding on real (or
// emulated) hardware.

func init() {
	extraCommands = append(extraCommands, &command{"debug-vmx", "debug-vmx [real|pm|long|bad|caps]",
		"run a tiny real-mode, 32-bit or 64-bit guest on VT-x and print its exits / dump the VMX capability MSRs", cmdDebugVMX})
}

// vmxTestProgram is 16-bit code loaded at vmxTestRIP. The loop keeps the guest busy long
// enough for host timer interrupts to arrive (exits the core sees as hv.ExitInterrupt) and for
// the external interrupt injected before the first entry to be delivered once STI opens the
// interrupt window.
var vmxTestProgram = []byte{
	0xBA, 0xF8, 0x03, // mov dx, 0x3f8
	0xB0, 'V', // mov al, 'V'
	0xEE,       // out dx, al
	0xEC,       // in al, dx
	0xE6, 0x80, // out 0x80, al
	0x66, 0x31, 0xC0, // xor eax, eax
	0x0F, 0xA2, // cpuid
	0x66, 0xB9, 0x80, 0x84, 0x1E, 0x00, // mov ecx, 2000000
	0xFB,             // sti
	0x67, 0xE2, 0xFD, // addr32 loop $
	0xF4, // hlt
}

// vmxTestHandler is the real-mode handler of vector vmxTestVector: out 0x81, al ; iret.
var vmxTestHandler = []byte{0xB0, 0xAA, 0xE6, 0x81, 0xCF}

const (
	vmxTestRIP       = 0x1000
	vmxTestHandlerIP = 0x1100
	vmxTestVector    = 0x20
	vmxTestMem       = 2 << 20
	vmxTestExits     = 64
)

var vmxCapMSRs = []struct {
	name string
	msr  uint32
}{
	{"IA32_FEATURE_CONTROL", 0x3A}, {"IA32_VMX_BASIC", 0x480}, {"IA32_VMX_PINBASED_CTLS", 0x481},
	{"IA32_VMX_PROCBASED_CTLS", 0x482}, {"IA32_VMX_EXIT_CTLS", 0x483}, {"IA32_VMX_ENTRY_CTLS", 0x484},
	{"IA32_VMX_MISC", 0x485}, {"IA32_VMX_CR0_FIXED0", 0x486}, {"IA32_VMX_CR0_FIXED1", 0x487},
	{"IA32_VMX_CR4_FIXED0", 0x488}, {"IA32_VMX_CR4_FIXED1", 0x489}, {"IA32_VMX_VMCS_ENUM", 0x48A},
	{"IA32_VMX_PROCBASED_CTLS2", 0x48B}, {"IA32_VMX_EPT_VPID_CAP", 0x48C},
	{"IA32_VMX_TRUE_PINBASED_CTLS", 0x48D}, {"IA32_VMX_TRUE_PROCBASED_CTLS", 0x48E},
	{"IA32_VMX_TRUE_EXIT_CTLS", 0x48F}, {"IA32_VMX_TRUE_ENTRY_CTLS", 0x490},
}

func cmdDebugVMX(sh *shell, args []string) error {
	mode := "real"
	if len(args) == 1 {
		mode = args[0]
	}
	if len(args) > 1 || mode != "caps" && vmxModes[mode] == nil {
		return errUsage
	}
	if !ring0.BareMetal() {
		return ring0.ErrNotBareMetal
	}
	if f := sh.h.CPU(); !f.VMX {
		return fmt.Errorf("%w: no VMX", hv.ErrNoHardware)
	}
	if mode == "caps" {
		for _, m := range vmxCapMSRs {
			fmt.Fprintf(sh.out, "%-30s %#x = %#016x\n", m.name, m.msr, x86.Rdmsr(m.msr))
		}
		return nil
	}
	b, err := vmx.Enable()
	if err != nil {
		return err
	}
	c, bcaps := b.Controls(), b.Caps()
	fmt.Fprintf(sh.out, "VMXON ok: VMCS revision %#x; controls pin %#x proc %#x proc2 %#x exit %#x entry %#x VPID %v\n",
		bcaps.Revision(), c.Pin, c.Proc, c.Proc2, c.Exit, c.Entry, c.VPID)

	pa, err := ring0.AllocPages(vmxTestMem / 4096)
	if err != nil {
		return err
	}
	defer ring0.FreePages(pa, vmxTestMem/4096)
	mem := &hv.Memory{Host: ring0.PageBytes(pa, vmxTestMem), HostPhys: pa}
	tm := vmxModes[mode]
	if err := tm.load(mem); err != nil {
		return err
	}
	vm, err := b.NewVM(mem)
	if err != nil {
		return err
	}
	defer vm.Close()

	lines := make(chan string, 8)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		done <- runVMXTest(vm, tm, lines)
		close(lines)
	}()
	for l := range lines {
		fmt.Fprintln(sh.out, l)
	}
	return <-done
}

// realModeState is the state of a CPU just switched to real mode with CS:IP = 0:rip.
func realModeState(rip uint64) hv.CPUState {
	code := hv.Segment{Limit: 0xFFFF, Attr: hv.SegP | hv.SegS | 0xB}
	data := hv.Segment{Limit: 0xFFFF, Attr: hv.SegP | hv.SegS | 0x3}
	s := hv.CPUState{
		RIP: rip, RFLAGS: 0x2, CR0: 0x10, DR7: 0x400, PAT: 0x0007040600070406,
		CS: code, DS: data, ES: data, FS: data, GS: data, SS: data,
		TR:   hv.Segment{Limit: 0xFFFF, Attr: hv.SegP | 0xB},
		LDTR: hv.Segment{Limit: 0xFFFF, Attr: hv.SegP | 0x2},
		GDTR: hv.Table{Limit: 0xFFFF}, IDTR: hv.Table{Limit: 0xFFFF},
	}
	s.GPR[hv.RSP] = 0x8000
	return s
}

func runVMXTest(vm hv.BackendVM, tm *vmxMode, out chan<- string) error {
	cpu, err := vm.NewVCPU(0)
	if err != nil {
		return err
	}
	defer cpu.Close()
	s := tm.state()
	if err := cpu.SetState(&s); err != nil {
		return err
	}
	if tm.bad {
		// A non-canonical IA32_SYSENTER_ESP fails the VM-entry checks on guest MSRs (Intel SDM
		// Vol. 3C, 27.3.1.1), which Go's checker does not see: the entry fails with reason 33.
		if v, ok := cpu.(*vmx.VCPU); ok {
			if _, err := v.SetGuestMSR(0x175, 1<<63); err != nil {
				return err
			}
		}
	}
	if tm.inject {
		// Queued while the guest has interrupts disabled: the backend waits for the window.
		if err := cpu.Inject(hv.Event{Kind: hv.EventExternal, Vector: vmxTestVector}); err != nil {
			return err
		}
	}
	interrupts := 0
	for n := 0; n < vmxTestExits; n++ {
		x, err := cpu.Run()
		if err != nil {
			return err
		}
		if x.Kind == hv.ExitInterrupt {
			interrupts++
			continue
		}
		line := fmt.Sprintf("exit %-9v raw %2d %-18q", x.Kind, x.Raw, x.RawName)
		if err := cpu.State(&s); err != nil {
			return err
		}
		switch x.Kind {
		case hv.ExitIO:
			dir := "out"
			if x.In {
				dir = "in"
				s.GPR[hv.RAX] = s.GPR[hv.RAX]&^0xFF | 0x60 // LSR: transmitter empty
			}
			line += fmt.Sprintf(" port %#x size %d %s al=%#x", x.Port, x.Size, dir, s.GPR[hv.RAX]&0xFF)
		case hv.ExitCPUID:
			line += fmt.Sprintf(" leaf %#x", s.GPR[hv.RAX])
			s.GPR[hv.RAX], s.GPR[hv.RBX], s.GPR[hv.RCX], s.GPR[hv.RDX] = 0, 0x77646f47, 0x20207469, 0x20202020 // "Godwit  "
		case hv.ExitMMIO:
			// The test programs' only MMIO access is a store of known length.
			line += fmt.Sprintf(" gpa %#x write %v fetch %v", x.GPA, x.Write, x.Fetch)
			x.NextRIP = s.RIP + uint64(tm.mmioLen)
		case hv.ExitInvalidState, hv.ExitUnhandled, hv.ExitShutdown, hv.ExitException:
			out <- line + fmt.Sprintf(" rip %#x gpa %#x detail %q", s.RIP, x.GPA, x.Detail)
			return fmt.Errorf("unexpected exit %v", x.Kind)
		}
		line += fmt.Sprintf(" rip %#x next %#x", s.RIP, x.NextRIP)
		out <- line
		if x.Kind == hv.ExitHLT {
			out <- fmt.Sprintf("guest halted; %d host interrupts while it ran; ecx = %d", interrupts, s.GPR[hv.RCX])
			return nil
		}
		if x.NextRIP == 0 {
			return errors.New("no next RIP")
		}
		s.RIP = x.NextRIP
		if err := cpu.SetState(&s); err != nil {
			return err
		}
	}
	return fmt.Errorf("guest did not halt within %d exits", vmxTestExits)
}

// vmxMode is one debug-vmx guest: its program and its initial state.
type vmxMode struct {
	program []byte
	mmioLen int  // length of the program's store to vmxTestMMIO
	inject  bool // inject vmxTestVector before the first entry
	bad     bool // make the entry fail
	long    bool // 64-bit: identity-mapping page tables at vmxTestPML4
	state   func() hv.CPUState
}

const (
	vmxTestMMIO = 0x400000 // beyond the guest's 2 MiB: no EPT mapping
	vmxTestPML4 = 0x10000
)

var vmxModes = map[string]*vmxMode{
	"bad":  {program: vmxTestProgram, bad: true, state: func() hv.CPUState { return realModeState(vmxTestRIP) }},
	"real": {program: vmxTestProgram, inject: true, state: func() hv.CPUState { return realModeState(vmxTestRIP) }},
	// 32-bit protected mode without paging: out dx, al ; mov [0x400000], eax ; hlt.
	"pm": {program: []byte{0x66, 0xBA, 0xF8, 0x03, 0xB0, 'P', 0xEE, 0xA3, 0x00, 0x00, 0x40, 0x00, 0xF4},
		mmioLen: 5, state: func() hv.CPUState {
			s := realModeState(vmxTestRIP)
			s.CR0 = 0x11 // PE, ET
			s.CS = hv.Segment{Selector: 0x08, Limit: 0xFFFFFFFF, Attr: hv.SegP | hv.SegS | 0xB | hv.SegDB | hv.SegG}
			flat := hv.Segment{Selector: 0x10, Limit: 0xFFFFFFFF, Attr: hv.SegP | hv.SegS | 0x3 | hv.SegDB | hv.SegG}
			s.DS, s.ES, s.SS, s.FS, s.GS = flat, flat, flat, flat, flat
			return s
		}},
	// 64-bit mode, paging on (1 GiB identity-mapped with 2 MiB pages): out dx, al ;
	// mov [0x400000], eax ; hlt.
	"long": {program: []byte{0x66, 0xBA, 0xF8, 0x03, 0xB0, 'L', 0xEE, 0x89, 0x04, 0x25, 0x00, 0x00, 0x40, 0x00, 0xF4},
		mmioLen: 7, long: true, state: func() hv.CPUState {
			s := realModeState(vmxTestRIP)
			s.CR0 = 0x80000011 // PG, PE, ET
			s.CR3 = vmxTestPML4
			s.CR4 = 0x20   // PAE
			s.EFER = 0x500 // LME, LMA
			s.CS = hv.Segment{Selector: 0x08, Limit: 0xFFFFFFFF, Attr: hv.SegP | hv.SegS | 0xB | hv.SegL | hv.SegG}
			flat := hv.Segment{Selector: 0x10, Limit: 0xFFFFFFFF, Attr: hv.SegP | hv.SegS | 0x3 | hv.SegDB | hv.SegG}
			s.DS, s.ES, s.SS, s.FS, s.GS = flat, flat, flat, flat, flat
			return s
		}},
}

// load writes the program, the real-mode interrupt handler and its IVT entry and, for 64-bit
// mode, the page tables into guest memory.
func (tm *vmxMode) load(mem *hv.Memory) error {
	ivt := []byte{vmxTestHandlerIP & 0xFF, vmxTestHandlerIP >> 8, 0, 0} // offset, segment 0
	writes := []struct {
		b   []byte
		gpa int64
	}{{tm.program, vmxTestRIP}, {vmxTestHandler, vmxTestHandlerIP}, {ivt, vmxTestVector * 4}}
	if tm.long {
		// PML4[0] -> PDPT, PDPT[0] -> PD, PD[i] = 2 MiB page i (present, writable, PS).
		// Intel SDM Vol. 3A, 4.5 "4-Level Paging and 5-Level Paging".
		pt := make([]byte, 3*4096)
		binary.LittleEndian.PutUint64(pt[0:], vmxTestPML4+0x1000|3)
		binary.LittleEndian.PutUint64(pt[0x1000:], vmxTestPML4+0x2000|3)
		for i := uint64(0); i < 512; i++ {
			binary.LittleEndian.PutUint64(pt[0x2000+8*i:], i<<21|0x83)
		}
		writes = append(writes, struct {
			b   []byte
			gpa int64
		}{pt, vmxTestPML4})
	}
	for _, w := range writes {
		if _, err := mem.WriteAt(w.b, w.gpa); err != nil {
			return err
		}
	}
	return nil
}
