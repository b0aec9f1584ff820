package vmx

import (
	"errors"
	"fmt"

	"github.com/godwit-hv/godwit/arch/ring0"
	"github.com/godwit-hv/godwit/hv"
)

// Run enters the guest and returns at the next exit the core must see. Interrupt-window exits
// the backend asked for itself (to deliver a queued external interrupt) are handled here.
//
// The entry runs with interrupts disabled from before the VMCS is made current until the exit
// information has been read; the host's own interrupts arriving meanwhile cause a VM exit
// (external-interrupt exiting, not acknowledged) and are taken through the host's IDT as soon
// as Run re-enables interrupts: Run then returns hv.ExitInterrupt.
//
// A VMLAUNCH/VMRESUME that fails as an instruction (VMfailInvalid/VMfailValid: bad controls or
// host state) returns an error wrapping hv.ErrEntryFailed with the VM-instruction error. A VM
// entry the processor aborts on the guest state (exit reasons 33, 34, 41) returns
// hv.ExitInvalidState with what the processor said in Detail, plus the first failing check
// Godwit's own guest-state checker finds.
func (v *VCPU) Run() (hv.Exit, error) {
	if v.closed {
		return hv.Exit{}, ErrClosed
	}
	for {
		x, internal, err := v.runOnce()
		if err != nil || !internal {
			return x, err
		}
	}
}

func (v *VCPU) runOnce() (x hv.Exit, internal bool, err error) {
	var e exitInfo
	flags := cli()
	err = v.load()
	if err == nil {
		err = v.prepare()
	}
	if err != nil {
		restoreFlags(flags)
		return x, false, fmt.Errorf("vmx: vcpu %d: %w: %w", v.id, hv.ErrEntryFailed, err)
	}
	vmxRun(&v.regs)
	st := uint8(v.regs.status)
	if st == vmSucceed {
		v.readExit(&e)
	} else if st == vmFailValid {
		e.instrErrNum, _ = vmread(vmInstructionError)
	}
	restoreFlags(flags)

	if st != vmSucceed {
		op := "VMLAUNCH"
		if v.regs.launched != 0 {
			op = "VMRESUME"
		}
		return x, false, fmt.Errorf("vmx: vcpu %d: %w: %s: %s", v.id, hv.ErrEntryFailed, op, statusText(st, e.instrErrNum))
	}
	if e.reason&exitReasonEntryFailure == 0 {
		v.regs.launched = 1
	}
	if e.idtInfo&intrValid != 0 {
		// Bits 30:12 of the entry field are reserved; bit 12 of the vectoring field is not.
		v.reinject = e.idtInfo &^ (0x7FFFF << 12)
		v.reinjectErr, v.reinjectLen = e.idtErr, e.instrLen
	}
	x = decode(&e)
	if e.reason&exitReasonBasicMask == reasonCRAccess {
		switch err := v.emulateCR(decodeCRQual(e.qual), e.rip+uint64(e.instrLen)); {
		case err == nil:
			return x, true, nil
		case errors.Is(err, errCRFault):
			// #GP(0). Intel SDM Vol. 2B, "MOV—Move to/from Control Registers".
			return x, true, v.Inject(hv.Event{Kind: hv.EventException, Vector: 13, HasErr: true})
		case !errors.Is(err, errCRUnsupported):
			return x, false, fmt.Errorf("vmx: vcpu %d: %w", v.id, err)
		}
	}
	switch x.Kind {
	case hv.ExitInterruptWindow:
		if !v.wantWindow {
			return x, true, nil
		}
	case hv.ExitInvalidState:
		var s hv.CPUState
		if err := v.State(&s); err == nil {
			if cerr := checkGuest(&s, &v.vm.b.caps); cerr != nil {
				x.Detail += "; " + cerr.Error()
			}
		}
	}
	return x, false, nil
}

// readExit reads the exit information fields. Interrupts disabled, VMCS current.
func (v *VCPU) readExit(e *exitInfo) {
	var b batch
	e.reason = uint32(b.r(exitReason))
	e.qual = b.r(exitQualification)
	e.instrLen = uint32(b.r(exitInstrLen))
	e.instrInfo = uint32(b.r(exitInstrInfo))
	e.intrInfo = uint32(b.r(exitIntrInfo))
	if e.intrInfo&(intrValid|intrErrorCode) == intrValid|intrErrorCode {
		e.intrErr = uint32(b.r(exitIntrErrorCode))
	}
	e.idtInfo = uint32(b.r(idtVectoringInfo))
	if e.idtInfo&(intrValid|intrErrorCode) == intrValid|intrErrorCode {
		e.idtErr = uint32(b.r(idtVectoringError))
	}
	e.rip = b.r(guestRIP)
	switch e.reason & exitReasonBasicMask {
	case reasonEPTViolation, reasonEPTMisconfig:
		e.gpa = b.r(guestPhysicalAddress)
	}
}

// prepare writes what changes from entry to entry: host state, the event to inject and the
// interrupt-window control. Interrupts disabled, VMCS current.
func (v *VCPU) prepare() error {
	if err := v.writeHostState(); err != nil {
		return err
	}
	var b batch
	info, errCode, ilen := uint32(0), uint32(0), uint32(0)
	blocked := false
	if v.reinject != 0 {
		info, errCode, ilen = v.reinject, v.reinjectErr, v.reinjectLen
		v.reinject = 0
	} else if v.npending > 0 {
		var ok bool
		ok, info, errCode, ilen = v.eventInfo(&b, v.pending[0])
		if ok {
			copy(v.pending[:], v.pending[1:v.npending])
			v.npending--
		} else {
			blocked = true
		}
	}
	if info != 0 {
		b.w(entryExceptionCode, uint64(errCode))
		b.w(entryInstrLen, uint64(ilen))
		b.w(entryIntrInfo, uint64(info))
	}
	if v.ctl.PreemptionTimer {
		// A time slice: 10 ms of TSC. Reloaded at every entry (no save-on-exit needed).
		b.w(preemptionTimerValue, min(ring0.TSCHz()/100>>v.ctl.PreemptionShift, 0xFFFFFFFF))
	}
	// A further queued event waits for the window after this one.
	proc := v.ctl.Proc
	if v.wantWindow || blocked || (v.npending > 0 && info != 0) {
		proc |= procInterruptWindowExiting
	}
	if proc != v.procOn {
		b.w(procBasedControls, uint64(proc))
		if b.err == nil {
			v.procOn = proc
		}
	}
	return b.err
}

// eventInfo builds the VM-entry interruption-information field for ev, or reports that the
// guest cannot take it yet. Intel SDM Vol. 3C, 27.6 "Event Injection" and the checks in
// 27.3.1.5 "Checks on Guest Non-Register State": an external interrupt needs RFLAGS.IF = 1 and
// no blocking by STI or MOV SS; an error code is delivered exactly for the exceptions that have
// one, and only in protected mode (with unrestricted guest, CR0.PE may be 0).
func (v *VCPU) eventInfo(b *batch, ev hv.Event) (ok bool, info, errCode, ilen uint32) {
	const rflagsIF = 1 << 9
	info = intrValid | uint32(ev.Vector)
	switch ev.Kind {
	case hv.EventExternal:
		if b.r(guestRFLAGS)&rflagsIF == 0 || b.r(guestInterruptibility)&(interruptibilitySTI|interruptibilityMOVS) != 0 {
			return false, 0, 0, 0
		}
		info |= intrTypeExternal << intrTypeShift
	case hv.EventNMI:
		if b.r(guestInterruptibility)&(interruptibilitySTI|interruptibilityMOVS|interruptibilityNMI) != 0 {
			return false, 0, 0, 0
		}
		info = intrValid | intrTypeNMI<<intrTypeShift | 2
	case hv.EventException:
		info |= intrTypeHardwareExc << intrTypeShift
		if hasErrorCode(ev.Vector) && b.r(guestCR0)&cr0PE != 0 {
			info |= intrErrorCode
			errCode = ev.ErrCode
		}
	case hv.EventSoftware:
		// INT n is two bytes (CD ib); the processor pushes RIP + ilen.
		info |= intrTypeSoftwareInt << intrTypeShift
		ilen = 2
	}
	return b.err == nil, info, errCode, ilen
}

// hasErrorCode reports whether exception vector pushes an error code: #DF, #TS, #NP, #SS, #GP,
// #PF, #AC. Intel SDM Vol. 3A, 7.3 "Sources of Interrupts", Table 7-1 (6.3 in older editions).
func hasErrorCode(vector uint8) bool {
	switch vector {
	case 8, 10, 11, 12, 13, 14, 17:
		return true
	}
	return false
}

// EventPending implements hv.BackendVCPU.
func (v *VCPU) EventPending() bool { return v.npending > 0 || v.reinject != 0 }

// Inject queues ev for the next entries, in order.
func (v *VCPU) Inject(ev hv.Event) error {
	switch {
	case ev.Kind == hv.EventException && ev.Vector >= 32:
		return fmt.Errorf("vmx: vcpu %d: exception vector %d out of range", v.id, ev.Vector)
	case ev.Kind == hv.EventException && ev.Vector == 2:
		return fmt.Errorf("vmx: vcpu %d: vector 2 is the NMI: inject EventNMI", v.id)
	case ev.Kind > hv.EventSoftware || ev.Kind < hv.EventExternal:
		return fmt.Errorf("vmx: vcpu %d: unknown event kind %d", v.id, ev.Kind)
	}
	if v.npending == len(v.pending) {
		return fmt.Errorf("vmx: vcpu %d: %d events already queued", v.id, v.npending)
	}
	v.pending[v.npending] = ev
	v.npending++
	return nil
}

// SetInterruptWindow asks for (or stops asking for) hv.ExitInterruptWindow as soon as the guest
// can take an external interrupt: the interrupt-window exiting control, 25.6.2.
func (v *VCPU) SetInterruptWindow(on bool) { v.wantWindow = on }
