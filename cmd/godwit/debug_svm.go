package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/godwit-hv/godwit/arch/ring0"
	"github.com/godwit-hv/godwit/hv"
	"github.com/godwit-hv/godwit/svm"
)

// debug-svm runs a tiny 32-bit protected-mode guest on the AMD-V backend and prints every
// exit: a check of the svm package on real (emulated) hardware before the core drives it.

func init() {
	extraCommands = append(extraCommands, &command{
		name:  "debug-svm",
		usage: "debug-svm [invalid | spin | spin-cli]",
		help:  "run a tiny guest on AMD-V and print its exits (invalid: entry checks; spin: host interrupts)",
		run:   cmdDebugSVM,
	})
}

// Guest-physical layout of the test guest.
const (
	dbgMemSize  = 2 << 20
	dbgGDT      = 0x0800
	dbgIDT      = 0x1000
	dbgCode     = 0x2000
	dbgHandler  = 0x2100
	dbgStackTop = 0x8000
	dbgVector   = 0x20      // the interrupt injected once the window opens
	dbgMMIO     = 0x40_0000 // beyond the 2 MiB of RAM: a nested page fault
	dbgMaxExits = 200
	dbgSpinCode = 0x3000
	dbgSpinIRQs = 50 // host interrupts to wait for in spin mode
)

// Flat 32-bit code and data descriptors (base 0, limit 4 GiB, G and D set).
const (
	dbgCodeDesc = 0x00CF_9B00_0000_FFFF
	dbgDataDesc = 0x00CF_9300_0000_FFFF
)

// dbgProgram is the guest's main code, at dbgCode.
var dbgProgram = []byte{
	0xFB,                   // 2000 sti                   (entered with IF=0: the window opens here)
	0x66, 0xBA, 0xF8, 0x03, // 2001 mov dx, 0x3f8
	0xB0, 'S', //               2005 mov al, 'S'
	0xEE,       //              2007 out dx, al            -> io
	0x0F, 0xA2, //              2008 cpuid                 -> cpuid
	0xB9, 0x10, 0, 0, 0, //     200A mov ecx, 0x10
	0x0F, 0x32, //              200F rdmsr                 -> rdmsr
	0xA3, 0, 0, 0x40, 0, //     2011 mov [0x400000], eax   -> mmio (npf)
	0x0F, 0x01, 0xD9, //        2016 vmmcall               -> hypercall
	0xF4, //                    2019 hlt                   -> hlt
}

// dbgHandlerCode is the handler of vector dbgVector, at dbgHandler.
var dbgHandlerCode = []byte{
	0x50, 0x52, //              2100 push eax; push edx
	0x66, 0xBA, 0xF8, 0x03, //  2102 mov dx, 0x3f8
	0xB0, 'I', //               2106 mov al, 'I'
	0xEE,       //              2108 out dx, al            -> io
	0x5A, 0x58, //              2109 pop edx; pop eax
	0xCF, //                    210B iret
}

// dbgSpinProgram, at dbgSpinCode, spins with interrupts enabled, then (entered at 0x3003)
// disabled: only host interrupts (VMEXIT_INTR; with V_INTR_MASKING the guest's IF does not
// block them) end its runs.
var dbgSpinProgram = []byte{
	0xFB,       // 3000 sti
	0xEB, 0xFE, // 3001 jmp $
	0xFA,       // 3003 cli
	0xEB, 0xFE, // 3004 jmp $
}

// dbgInsnLen gives the length of each instruction that exits, for when the hardware gives no
// next RIP (QEMU has no nRIP save; the core will decode instead).
var dbgInsnLen = map[uint64]uint64{0x2007: 1, 0x2008: 2, 0x200F: 2, 0x2011: 5, 0x2016: 3, 0x2019: 1, 0x2108: 1}

func cmdDebugSVM(sh *shell, args []string) error {
	mode := ""
	switch {
	case len(args) == 1 && (args[0] == "invalid" || args[0] == "spin" || args[0] == "spin-cli"):
		mode = args[0]
	case len(args) != 0:
		return errUsage
	}
	b, err := svm.New(sh.h.CPU())
	if err != nil {
		return err
	}
	pa, err := ring0.AllocPages(dbgMemSize / 4096)
	if err != nil {
		return err
	}
	defer ring0.FreePages(pa, dbgMemSize/4096)
	mem := &hv.Memory{Host: ring0.PageBytes(pa, dbgMemSize), HostPhys: pa}
	if err := dbgLoad(mem); err != nil {
		return err
	}
	bvm, err := b.NewVM(mem)
	if err != nil {
		return err
	}
	defer bvm.Close()
	fmt.Fprintf(sh.out, "svm: guest RAM %d KiB at host-physical %#x, nCR3 %#x, nRIP=%v\n",
		dbgMemSize>>10, pa, bvm.(*svm.VM).Tables().NCR3(), b.Features().NRIP)

	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		vcpu, err := bvm.NewVCPU(0)
		if err != nil {
			done <- err
			return
		}
		defer vcpu.Close()
		switch mode {
		case "invalid":
			done <- dbgInvalid(sh, vcpu.(*svm.VCPU))
		case "spin":
			done <- dbgSpin(sh, vcpu, false)
		case "spin-cli":
			done <- dbgSpin(sh, vcpu, true)
		default:
			done <- dbgRun(sh, vcpu)
		}
	}()
	return <-done
}

// dbgLoad writes the GDT, the IDT gate, the program and the handler.
func dbgLoad(mem *hv.Memory) error {
	gdt := make([]byte, 24)
	binary.LittleEndian.PutUint64(gdt[8:], dbgCodeDesc)
	binary.LittleEndian.PutUint64(gdt[16:], dbgDataDesc)
	// 32-bit interrupt gate: offset 15:0, selector, type 0xE with P (0x8E), offset 31:16.
	// AMD APM Vol. 2, 4.8.3 "Gate Descriptors".
	gate := make([]byte, 8)
	binary.LittleEndian.PutUint32(gate[0:], 0x08<<16|dbgHandler&0xFFFF)
	binary.LittleEndian.PutUint32(gate[4:], dbgHandler&0xFFFF_0000|0x8E00)
	for _, w := range []struct {
		gpa int64
		b   []byte
	}{{dbgGDT, gdt}, {dbgIDT + 8*dbgVector, gate}, {dbgCode, dbgProgram}, {dbgHandler, dbgHandlerCode},
		{dbgSpinCode, dbgSpinProgram}} {
		if _, err := mem.WriteAt(w.b, w.gpa); err != nil {
			return err
		}
	}
	return nil
}

// dbgState is 32-bit protected mode, flat segments, paging off, interrupts enabled.
func dbgState() hv.CPUState {
	data := svm.SegmentFromDescriptor(0x10, dbgDataDesc)
	s := hv.CPUState{
		RIP: dbgCode, RFLAGS: 0x202, CR0: 0x11, // PE | ET
		CS: svm.SegmentFromDescriptor(0x08, dbgCodeDesc), DS: data, ES: data, FS: data, GS: data, SS: data,
		TR:   hv.Segment{Attr: 0x8B, Limit: 0x67},
		LDTR: hv.Segment{Attr: 0x82},
		GDTR: hv.Table{Base: dbgGDT, Limit: 23}, IDTR: hv.Table{Base: dbgIDT, Limit: 8*(dbgVector+1) - 1},
		DR6: 0xFFFF_0FF0, DR7: 0x400, PAT: 0x0007_0406_0007_0406,
	}
	s.GPR[hv.RSP] = dbgStackTop
	return s
}

func dbgRun(sh *shell, vcpu hv.BackendVCPU) error {
	st := dbgState()
	if err := vcpu.SetState(&st); err != nil {
		return err
	}
	st.RFLAGS = 0x2 // IF clear until the guest's STI
	if err := vcpu.SetState(&st); err != nil {
		return err
	}
	vcpu.SetInterruptWindow(true)
	var serial []byte
	interrupts := 0
	for n := 0; n < dbgMaxExits; n++ {
		e, err := vcpu.Run()
		if err != nil {
			return err
		}
		if err := vcpu.State(&st); err != nil {
			return err
		}
		if e.Kind == hv.ExitInterrupt {
			interrupts++ // host interrupts: frequent, counted, not printed
			continue
		}
		fmt.Fprintf(sh.out, "exit %2d: %-16s %-16s rip %#x next-rip %#x", n, e.Kind, e.RawName, st.RIP, e.NextRIP)
		next := e.NextRIP
		if next == 0 {
			next = st.RIP + dbgInsnLen[st.RIP]
		}
		switch e.Kind {
		case hv.ExitInterruptWindow:
			fmt.Fprintf(sh.out, " -> inject vector %#x\n", dbgVector)
			vcpu.SetInterruptWindow(false)
			if err := vcpu.Inject(hv.Event{Kind: hv.EventExternal, Vector: dbgVector}); err != nil {
				return err
			}
			continue
		case hv.ExitIO:
			dir := "out"
			if e.In {
				dir = "in"
			}
			fmt.Fprintf(sh.out, " %s port %#x size %d data %#x", dir, e.Port, e.Size, st.GPR[hv.RAX]&0xFF)
			if !e.In && e.Port == 0x3F8 {
				serial = append(serial, byte(st.GPR[hv.RAX]))
			}
		case hv.ExitCPUID:
			fmt.Fprintf(sh.out, " eax %#x ecx %#x", uint32(st.GPR[hv.RAX]), uint32(st.GPR[hv.RCX]))
			st.GPR[hv.RAX], st.GPR[hv.RBX], st.GPR[hv.RCX], st.GPR[hv.RDX] = 0, 0, 0, 0
		case hv.ExitRDMSR, hv.ExitWRMSR:
			fmt.Fprintf(sh.out, " msr %#x", uint32(st.GPR[hv.RCX]))
			st.GPR[hv.RAX], st.GPR[hv.RDX] = 0, 0
		case hv.ExitMMIO:
			fmt.Fprintf(sh.out, " gpa %#x write=%v fetch=%v (%s)", e.GPA, e.Write, e.Fetch, svm.NPFDetail(uint64(e.ErrCode)))
		case hv.ExitHypercall:
		case hv.ExitHLT:
			fmt.Fprintf(sh.out, "\nsvm: guest halted after %d exits (%d host interrupts); it wrote %q to COM1\n",
				n+1, interrupts, serial)
			return nil
		default:
			fmt.Fprintf(sh.out, " vector %d err %#x detail %q\n", e.Vector, e.ErrCode, e.Detail)
			return fmt.Errorf("unexpected exit %v (%s)", e.Kind, e.RawName)
		}
		fmt.Fprintln(sh.out)
		if dbgInsnLen[st.RIP] == 0 && e.NextRIP == 0 {
			return fmt.Errorf("no length known for the instruction at %#x", st.RIP)
		}
		st.RIP = next
		if err := vcpu.SetState(&st); err != nil {
			return err
		}
	}
	return fmt.Errorf("guest did not halt within %d exits", dbgMaxExits)
}

// dbgInvalid shows the entry checks: a state with EFER.LME and CR0.PG but no CR4.PAE, first
// refused by the software checks, then given to VMRUN itself.
func dbgInvalid(sh *shell, v *svm.VCPU) error {
	st := dbgState()
	st.EFER = 1 << 8  // LME
	st.CR0 |= 1 << 31 // PG
	st.DR7 |= 1 << 40 // reserved bits 63:32
	if err := v.SetState(&st); err != nil {
		return err
	}
	for _, checks := range []bool{true, false} {
		v.SetChecks(checks)
		e, err := v.Run()
		if err != nil {
			return err
		}
		for e.Kind == hv.ExitInterrupt {
			if e, err = v.Run(); err != nil {
				return err
			}
		}
		fmt.Fprintf(sh.out, "checks=%v: %s %s: %s\n", checks, e.Kind, e.RawName, e.Detail)
		if e.Kind != hv.ExitInvalidState {
			return errors.New("a bad state was entered")
		}
	}
	return nil
}

// dbgSpin runs a guest that never exits by itself until the host has taken dbgSpinIRQs
// interrupts through VMEXIT_INTR, with the guest's IF set or (cli) clear. Under Bochs 2.7 the
// cli variant never exits: Bochs masks host interrupts by the guest's IF despite
// V_INTR_MASKING (QEMU does not).
func dbgSpin(sh *shell, vcpu hv.BackendVCPU, cli bool) error {
	phase := struct {
		name string
		rip  uint64
	}{"sti; jmp $", dbgSpinCode}
	if cli {
		phase.name, phase.rip = "cli; jmp $", dbgSpinCode+3
	}
	st := dbgState()
	st.RIP = phase.rip
	if err := vcpu.SetState(&st); err != nil {
		return err
	}
	start := time.Now()
	irqs, other := 0, 0
	for irqs < dbgSpinIRQs {
		e, err := vcpu.Run()
		if err != nil {
			return err
		}
		if e.Kind != hv.ExitInterrupt {
			other++
			fmt.Fprintf(sh.out, "unexpected exit %s %s: %s\n", e.Kind, e.RawName, e.Detail)
			if other > 3 {
				return errors.New("spin guest exits for other reasons")
			}
			continue
		}
		irqs++
	}
	if err := vcpu.State(&st); err != nil {
		return err
	}
	fmt.Fprintf(sh.out, "svm: %s: %d host interrupts ended guest runs (VMEXIT_INTR) in %v; guest at rip %#x rflags %#x\n",
		phase.name, irqs, time.Since(start).Round(time.Millisecond), st.RIP, st.RFLAGS)
	return nil
}
