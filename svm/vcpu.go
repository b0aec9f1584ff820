package svm

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/godwit-hv/godwit/arch/ring0"
	"github.com/godwit-hv/godwit/hv"
)

// VCPU is one virtual CPU: a VMCB and its run block, two contiguous pages from
// ring0.AllocPages. It implements hv.BackendVCPU. Apart from FlushTLB's request flag, it is
// used from one goroutine locked to its OS thread.
type VCPU struct {
	vm   *VM
	id   int
	pa   uint64 // physical address of the VMCB; the run block follows
	vmcb *VMCB
	run  *runBlock
	asid uint32

	flushReq atomic.Bool // flush the guest's TLB at the next entry
	pending  uint64      // EVENTINJ value queued by Inject (V set), or 0
	reinject uint64      // EXITINTINFO of the last exit, re-injected first, or 0
	window   bool        // SetInterruptWindow(true)
	noCheck  bool        // SetChecks(false)
	closed   bool
}

var _ hv.BackendVCPU = (*VCPU)(nil)

// NewVCPU implements hv.BackendVM.
func (vm *VM) NewVCPU(id int) (hv.BackendVCPU, error) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.closed {
		return nil, errors.New("svm: new vcpu: vm closed")
	}
	if _, dup := vm.vcpus[id]; dup {
		return nil, fmt.Errorf("svm: new vcpu: vcpu %d exists", id)
	}
	vm.b.mu.Lock()
	asid, ok := vm.b.asids.get()
	vm.b.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("svm: vcpu %d: out of ASIDs (%d)", id, vm.b.asids.n)
	}
	pa, err := ring0.AllocPages(vcpuPages)
	if err != nil {
		vm.b.mu.Lock()
		vm.b.asids.put(asid)
		vm.b.mu.Unlock()
		return nil, fmt.Errorf("svm: vcpu %d: VMCB: %w", id, err)
	}
	v := &VCPU{vm: vm, id: id, pa: pa, vmcb: vmcbAt(pa), run: runBlockAt(pa + runOffset), asid: asid}
	v.setup(vm.b.hostSavePA, vm.iopmPA, vm.msrpmPA, vm.npt.NCR3())
	v.flushReq.Store(true)
	vm.vcpus[id] = v
	return v, nil
}

// setup fills the control area, the run block and a reset-state save area.
func (v *VCPU) setup(hostSavePA, iopmPA, msrpmPA, ncr3 uint64) {
	initControl(&v.vmcb.Control, v.asid, iopmPA, msrpmPA, ncr3)
	v.run.HostSavePA = hostSavePA
	initFX(&v.run.GuestFX)
	s := resetState()
	v.setState(&s)
}

// initControl programs the intercepts and the controls that do not change while the guest
// runs. AMD APM Vol. 2, 15.9-15.12 (intercepts), 15.16 (ASID), 15.21 (V_INTR_MASKING),
// 15.25.3 (NP_ENABLE, N_CR3).
func initControl(c *ControlArea, asid uint32, iopmPA, msrpmPA, ncr3 uint64) {
	*c = ControlArea{}
	c.InterceptExc = interceptedExceptions
	c.InterceptMsc1 = intercept1INTR | intercept1NMI | intercept1SMI | intercept1INIT |
		intercept1CPUID | intercept1INVD | intercept1HLT | intercept1INVLPGA |
		intercept1IOIOProt | intercept1MSRProt | intercept1Shutdown
	c.InterceptMsc2 = intercept2VMRUN | intercept2VMMCALL | intercept2VMLOAD | intercept2VMSAVE |
		intercept2STGI | intercept2CLGI | intercept2SKINIT | intercept2XSETBV
	c.IOPMBasePA = iopmPA
	c.MSRPMBasePA = msrpmPA
	c.GuestASID = asid
	c.VIntr = vIntrMasking
	c.NPControl = npEnable
	c.NCR3 = ncr3
}

// initFX writes the FXSAVE image of a CPU after reset: x87 control word 0x37F, MXCSR 0x1F80,
// everything else zero. AMD APM Vol. 2, 11.4.4; Vol. 5, "FXSAVE".
func initFX(fx *[512]byte) {
	*fx = [512]byte{}
	fx[fxsaveFCW], fx[fxsaveFCW+1] = fcwReset&0xFF, fcwReset>>8
	fx[fxsaveMXCSR], fx[fxsaveMXCSR+1] = mxcsrReset&0xFF, mxcsrReset>>8
}

// resetState is the architectural state after RESET. AMD APM Vol. 2, 14.1.3 "Processor
// Initialization State".
func resetState() hv.CPUState {
	data := hv.Segment{Attr: 0x93, Limit: 0xFFFF} // present, read/write data, accessed
	s := hv.CPUState{
		RIP: 0xFFF0, RFLAGS: rflagsReserved1, CR0: 0x6000_0010, PAT: patReset, DR6: 0xFFFF_0FF0, DR7: 0x400,
		CS: hv.Segment{Selector: 0xF000, Base: 0xFFFF_0000, Limit: 0xFFFF, Attr: 0x9B},
		DS: data, ES: data, FS: data, GS: data, SS: data,
		TR:   hv.Segment{Attr: 0x8B, Limit: 0xFFFF}, // busy 32-bit TSS
		LDTR: hv.Segment{Attr: 0x82, Limit: 0xFFFF}, // LDT
		GDTR: hv.Table{Limit: 0xFFFF}, IDTR: hv.Table{Limit: 0xFFFF},
	}
	s.GPR[hv.RDX] = 0x600 // a family-6 processor signature, as after reset
	return s
}

// SetState implements hv.BackendVCPU. A change of CR0, CR3, CR4 or EFER also flushes the
// guest's TLB at the next entry.
func (v *VCPU) SetState(s *hv.CPUState) error {
	if v.closed {
		return errors.New("svm: set state: vcpu closed")
	}
	sv := &v.vmcb.Save
	if sv.CR0 != s.CR0 || sv.CR3 != s.CR3 || sv.CR4 != s.CR4 || sv.EFER&^eferSVME != s.EFER {
		v.flushReq.Store(true)
	}
	v.setState(s)
	return nil
}

func (v *VCPU) setState(s *hv.CPUState) {
	sv := &v.vmcb.Save
	v.run.GPR = s.GPR
	sv.RAX, sv.RSP = s.GPR[hv.RAX], s.GPR[hv.RSP]
	sv.RIP, sv.RFLAGS = s.RIP, s.RFLAGS
	sv.CR0, sv.CR2, sv.CR3, sv.CR4 = s.CR0, s.CR2, s.CR3, s.CR4
	sv.EFER = s.EFER | eferSVME // the guest runs with SVME set; it never sees it (State clears it)
	sv.CS, sv.DS, sv.ES = segFromHV(s.CS), segFromHV(s.DS), segFromHV(s.ES)
	sv.FS, sv.GS, sv.SS = segFromHV(s.FS), segFromHV(s.GS), segFromHV(s.SS)
	sv.TR, sv.LDTR = segFromHV(s.TR), segFromHV(s.LDTR)
	sv.GDTR = VMCBSegment{Limit: s.GDTR.Limit, Base: s.GDTR.Base}
	sv.IDTR = VMCBSegment{Limit: s.IDTR.Limit, Base: s.IDTR.Base}
	sv.DR6, sv.DR7 = s.DR6, s.DR7
	sv.GPAT = s.PAT
	v.vmcb.Control.TSCOffset = s.TSCOffset
	sv.CPL = cpl(sv)
	if s.InterruptShadow {
		v.vmcb.Control.IntShadow |= intShadowBit
	} else {
		v.vmcb.Control.IntShadow &^= intShadowBit
	}
}

// State implements hv.BackendVCPU.
func (v *VCPU) State(s *hv.CPUState) error {
	if v.closed {
		return errors.New("svm: state: vcpu closed")
	}
	sv := &v.vmcb.Save
	s.GPR = v.run.GPR
	s.GPR[hv.RAX], s.GPR[hv.RSP] = sv.RAX, sv.RSP
	s.RIP, s.RFLAGS = sv.RIP, sv.RFLAGS
	s.CR0, s.CR2, s.CR3, s.CR4 = sv.CR0, sv.CR2, sv.CR3, sv.CR4
	s.EFER = sv.EFER &^ eferSVME
	s.CS, s.DS, s.ES = segToHV(sv.CS), segToHV(sv.DS), segToHV(sv.ES)
	s.FS, s.GS, s.SS = segToHV(sv.FS), segToHV(sv.GS), segToHV(sv.SS)
	s.TR, s.LDTR = segToHV(sv.TR), segToHV(sv.LDTR)
	s.GDTR = hv.Table{Limit: sv.GDTR.Limit, Base: sv.GDTR.Base}
	s.IDTR = hv.Table{Limit: sv.IDTR.Limit, Base: sv.IDTR.Base}
	s.DR6, s.DR7 = sv.DR6, sv.DR7
	s.PAT = sv.GPAT
	s.TSCOffset = v.vmcb.Control.TSCOffset
	s.InterruptShadow = v.vmcb.Control.IntShadow&intShadowBit != 0
	return nil
}

// cpl derives the VMCB's CPL field: 0 in real mode, 3 in virtual-8086 mode, else SS.DPL.
// AMD APM Vol. 2, 15.5.1 "Segment State in the VMCB".
func cpl(s *SaveArea) uint8 {
	switch {
	case s.CR0&cr0PE == 0:
		return 0
	case s.RFLAGS&rflagsVM != 0:
		return 3
	}
	return uint8(s.SS.Attrib>>5) & 3
}

// Inject implements hv.BackendVCPU. One event can be queued; it is delivered at the next
// entry after any event the last exit interrupted (EXITINTINFO), which goes first.
func (v *VCPU) Inject(ev hv.Event) error {
	if v.pending != 0 {
		return fmt.Errorf("svm: vcpu %d: inject vector %d: an event is already queued", v.id, ev.Vector)
	}
	e, err := eventToVMCB(ev)
	if err != nil {
		return fmt.Errorf("svm: vcpu %d: inject: %w", v.id, err)
	}
	v.pending = e
	return nil
}

// EventPending implements hv.BackendVCPU.
func (v *VCPU) EventPending() bool { return v.pending != 0 || v.reinject != 0 }

// SetInterruptWindow implements hv.BackendVCPU with a virtual interrupt: V_IRQ with
// V_IGN_TPR set and the VINTR intercept. The processor takes the #VMEXIT as soon as the guest
// could accept the virtual interrupt (RFLAGS.IF set, no interrupt shadow), which is the
// window. It stays requested until turned off. AMD APM Vol. 2, 15.21.4 "Interrupt Intercepts".
func (v *VCPU) SetInterruptWindow(on bool) { v.window = on }

// SetChecks turns the software consistency checks before VMRUN off (false) or on again, so
// that a test can see what the hardware answers to a bad state. They are on by default.
func (v *VCPU) SetChecks(on bool) { v.noCheck = !on }

// Close implements hv.BackendVCPU.
func (v *VCPU) Close() error {
	if v.closed {
		return nil
	}
	v.closed = true
	v.vm.mu.Lock()
	delete(v.vm.vcpus, v.id)
	v.vm.mu.Unlock()
	v.vm.b.mu.Lock()
	v.vm.b.asids.put(v.asid)
	v.vm.b.mu.Unlock()
	ring0.FreePages(v.pa, vcpuPages)
	v.vmcb, v.run = nil, nil
	return nil
}

// Run implements hv.BackendVCPU.
func (v *VCPU) Run() (hv.Exit, error) {
	if v.closed {
		return hv.Exit{}, fmt.Errorf("svm: vcpu %d: run: %w: vcpu closed", v.id, hv.ErrEntryFailed)
	}
	c, s := &v.vmcb.Control, &v.vmcb.Save
	if v.window && v.reinject == 0 && v.pending == 0 && s.RFLAGS&rflagsIF != 0 && c.IntShadow&intShadowBit == 0 {
		// The window is already open: the guest can take an interrupt before its next
		// instruction, so there is no need to enter it to find out. (Bochs 2.7 also never
		// raises VMEXIT_VINTR for a guest entered with IF already set; it does once the
		// guest executes STI.) AMD APM Vol. 2, 15.21.4.
		return hv.Exit{Kind: hv.ExitInterruptWindow, Raw: ExitCodeVIntr, RawName: "VMEXIT_VINTR",
			Detail: "window open at entry; not entered"}, nil
	}
	usedPending := v.prepare(c, s)
	// The checks run before every entry, also when they do not stop it: after VMEXIT_INVALID
	// the VMCB may no longer hold the state VMRUN refused (Bochs writes the partly loaded
	// state back), so the Detail is computed from what was given to VMRUN.
	bad := check(v.vmcb, v.vm.b.lim)
	if !v.noCheck {
		if len(bad) > 0 {
			if usedPending {
				v.pending = c.EventInj
			} else if c.EventInj != 0 {
				v.reinject = c.EventInj
			}
			c.EventInj = 0
			if c.TLBControl != tlbControlNone {
				v.flushReq.Store(true)
			}
			return hv.Exit{Kind: hv.ExitInvalidState, Raw: ExitCodeInvalid, RawName: "VMEXIT_INVALID",
				Detail: "not entered: " + checkDetail(bad)}, nil
		}
	}
	vmrun(v.pa)
	return v.finish(c, bad), nil
}

// prepare writes what changes between entries: the event to inject, the virtual interrupt
// for the window, TLB_CONTROL and CPL. It reports whether EVENTINJ holds Inject's event.
func (v *VCPU) prepare(c *ControlArea, s *SaveArea) (usedPending bool) {
	c.EventInj = 0
	switch {
	case v.reinject != 0:
		c.EventInj, v.reinject = v.reinject, 0
	case v.pending != 0:
		c.EventInj, v.pending, usedPending = v.pending, 0, true
	}
	if v.window {
		c.VIntr |= vIntrIRQ | vIntrIgnTPR
		c.InterceptMsc1 |= intercept1VINTR
	} else {
		c.VIntr &^= vIntrIRQ | vIntrIgnTPR
		c.InterceptMsc1 &^= intercept1VINTR
	}
	c.TLBControl = tlbControlNone
	if v.flushReq.Swap(false) {
		c.TLBControl = tlbControlFlushAll
		if v.vm.b.f.FlushByASID {
			c.TLBControl = tlbControlFlushASID
		}
	}
	s.CPL = cpl(s)
	return usedPending
}

// finish decodes the #VMEXIT and keeps an interrupted event for re-injection.
// bad is what the checks said of the state before the entry.
func (v *VCPU) finish(c *ControlArea, bad []string) hv.Exit {
	c.EventInj = 0
	c.TLBControl = tlbControlNone
	code := exitCode(c.ExitCode)
	e := decodeExit(exitInfo{code: code, info1: c.ExitInfo1, info2: c.ExitInfo2, nrip: c.NRIP,
		nrips: v.vm.b.f.NRIP})
	if code == ExitCodeInvalid {
		e.Detail = checkDetail(bad)
		return e
	}
	v.reinject = reinjectable(c.ExitIntInfo)
	return e
}

// exitCode returns the EXITCODE as the manual defines it: 64 bits, VMEXIT_INVALID is -1.
// QEMU's TCG writes the negative codes as 32-bit values (0xFFFFFFFF), so those are sign-
// extended; no positive code comes near them (Appendix C).
func exitCode(raw uint64) uint64 {
	if raw>>32 == 0 && raw >= 0xFFFF_FFF0 {
		return uint64(int64(int32(uint32(raw))))
	}
	return raw
}

// reinjectable returns the EXITINTINFO event to deliver again at the next entry, or 0.
// Software interrupts (INTn) and the #BP and #OF traps are not re-injected: the guest's RIP
// still points at the instruction that raised them, so executing it again raises them again.
// AMD APM Vol. 2, 15.7.2 "Intercepts During IDT Interrupt Delivery".
func reinjectable(info uint64) uint64 {
	if info&eventValid == 0 {
		return 0
	}
	typ := (info & eventTypeMask) >> eventTypeShift
	vec := info & eventVectorMask
	if typ == eventTypeSoftInt || (typ == eventTypeException && (vec == vectorBP || vec == vectorOF)) {
		return 0
	}
	return info
}

// Trap vectors raised by INT3 and INTO. AMD APM Vol. 2, 8.2 "Vectors".
const (
	vectorBP = 3
	vectorOF = 4
)
