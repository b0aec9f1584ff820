package lapic

// APICBase returns IA32_APIC_BASE.
func (a *LAPIC) APICBase() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.apicBase
}

// SetAPICBase writes IA32_APIC_BASE. It returns ErrGP for reserved bits and
// for the invalid mode transitions of Intel SDM Vol. 3A, 11.12.5 "x2APIC
// State Transitions" (Figure 11-27): x2APIC to xAPIC, disabled to x2APIC,
// and EXTD without EN. Disabling the APIC resets it (11.4.3); entering
// x2APIC mode derives the logical ID from the x2APIC ID.
func (a *LAPIC) SetAPICBase(v uint64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if v&^(apicBaseMutable|APICBaseBSP) != 0 {
		return ErrGP
	}
	oldEn, oldX2 := a.hwEnabled(), a.x2apic()
	en, x2 := v&APICBaseEnable != 0, v&APICBaseEXTD != 0
	switch {
	case x2 && !en,
		oldX2 && en && !x2,
		!oldEn && x2:
		return ErrGP
	}
	a.apicBase = a.apicBase&APICBaseBSP | v&apicBaseMutable
	switch {
	case !en && oldEn:
		a.reset()
	case x2 && !oldX2:
		a.id = a.cfg.ID
		a.ldr = x2apicLDR(a.id)
	}
	return nil
}

// ReadMSR reads an x2APIC register MSR (0x800-0x8FF) or IA32_TSC_DEADLINE.
// It returns ErrGP, as the processor would raise #GP, for an MSR with no
// register, a write-only register, or an x2APIC MSR outside x2APIC mode.
// Intel SDM Vol. 3A, 11.12.1.2 (Table 11-6).
func (a *LAPIC) ReadMSR(msr uint32) (uint64, error) {
	now := a.cfg.Clock()
	a.mu.Lock()
	defer a.mu.Unlock()
	if msr == MSRTSCDeadline {
		if a.cfg.TSCHz == 0 {
			return 0, ErrGP
		}
		if timerMode(a.lvt[lvtTimer]) != TimerTSCDeadline {
			return 0, nil
		}
		return a.timer.tscDL, nil
	}
	off, ok := a.x2Offset(msr)
	if !ok {
		return 0, ErrGP
	}
	switch off {
	case RegEOI, RegSelfIPI, RegRRD, RegLVTCMCI:
		return 0, ErrGP
	case RegICRLow:
		return uint64(a.icrHigh)<<32 | uint64(a.icrLow), nil
	}
	v, ok := a.readReg(off, now)
	if !ok {
		return 0, ErrGP
	}
	return uint64(v), nil
}

// WriteMSR writes an x2APIC register MSR or IA32_TSC_DEADLINE. It returns
// ErrGP for read-only registers, reserved bits in the upper half of a
// 32-bit register, a nonzero EOI value and x2APIC MSRs outside x2APIC
// mode. Intel SDM Vol. 3A, 11.12.1.2 and 11.12.1.3.
func (a *LAPIC) WriteMSR(msr uint32, v uint64) error {
	now := a.cfg.Clock()
	var e effects
	a.mu.Lock()
	err := a.writeMSR(msr, v, now, &e)
	a.mu.Unlock()
	a.run(&e)
	return err
}

func (a *LAPIC) writeMSR(msr uint32, v uint64, now int64, e *effects) error {
	if msr == MSRTSCDeadline {
		if a.cfg.TSCHz == 0 {
			return ErrGP
		}
		a.setTSCDeadline(v, now, e)
		return nil
	}
	off, ok := a.x2Offset(msr)
	if !ok {
		return ErrGP
	}
	if off == RegICRLow {
		a.icrHigh = uint32(v >> 32)
		a.icrLow = uint32(v) & icrLowWritable
		a.sendICR(e)
		return nil
	}
	if v>>32 != 0 {
		return ErrGP
	}
	switch off {
	case RegID, RegVersion, RegPPR, RegLDR, RegTimerCCR, RegRRD, RegLVTCMCI:
		return ErrGP
	case RegEOI:
		if v != 0 {
			return ErrGP
		}
	case RegSelfIPI:
		if v&^0xFF != 0 {
			return ErrGP
		}
	}
	if off >= RegISR && off < RegIRR+0x80 {
		return ErrGP
	}
	if !a.writeReg(off, uint32(v), now, e) {
		return ErrGP
	}
	return nil
}

// x2Offset maps an x2APIC MSR to its register offset. ok is false outside
// x2APIC mode and for MSRs of xAPIC-only registers (APR, DFR, ICR high).
func (a *LAPIC) x2Offset(msr uint32) (uint32, bool) {
	if !a.x2apic() || msr < X2APICMSRBase || msr > X2APICMSRLast {
		return 0, false
	}
	off := (msr - X2APICMSRBase) << 4
	switch off {
	case RegAPR, RegDFR, RegICRHigh:
		return 0, false
	}
	return off, true
}
