package main

import (
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
	extraCommands = append(extraCommands, &command{"debug-vmx", "debug-vmx [caps]",
		"run a tiny real-mode guest on VT-x and print its exits / dump the VMX capability MSRs", cmdDebugVMX})
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
	if len(args) > 1 || len(args) == 1 && args[0] != "caps" {
		return errUsage
	}
	if !ring0.BareMetal() {
		return ring0.ErrNotBareMetal
	}
	if f := sh.h.CPU(); !f.VMX {
		return fmt.Errorf("%w: no VMX", hv.ErrNoHardware)
	}
	if len(args) == 1 {
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
	ivt := []byte{vmxTestHandlerIP & 0xFF, vmxTestHandlerIP >> 8, 0, 0} // offset, segment 0
	for _, w := range []struct {
		b   []byte
		gpa int64
	}{{vmxTestProgram, vmxTestRIP}, {vmxTestHandler, vmxTestHandlerIP}, {ivt, vmxTestVector * 4}} {
		if _, err := mem.WriteAt(w.b, w.gpa); err != nil {
			return err
		}
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
		done <- runVMXTest(vm, lines)
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

func runVMXTest(vm hv.BackendVM, out chan<- string) error {
	cpu, err := vm.NewVCPU(0)
	if err != nil {
		return err
	}
	defer cpu.Close()
	s := realModeState(vmxTestRIP)
	if err := cpu.SetState(&s); err != nil {
		return err
	}
	// Queued while the guest has interrupts disabled: the backend waits for the window.
	if err := cpu.Inject(hv.Event{Kind: hv.EventExternal, Vector: vmxTestVector}); err != nil {
		return err
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
		case hv.ExitInvalidState, hv.ExitUnhandled, hv.ExitShutdown, hv.ExitException, hv.ExitMMIO:
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
