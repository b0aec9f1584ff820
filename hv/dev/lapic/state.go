package lapic

import (
	"errors"
	"fmt"
)

// State is the migratable state of a LAPIC: every register, the LINT input
// levels and the timer's remaining time (relative, so it survives a move
// to a host whose clock reads differently).
type State struct {
	APICBase uint64
	ID       uint32
	TPR      uint32
	LDR      uint32
	DFR      uint32
	SVR      uint32
	ESR      uint32 // latched by the last ESR write
	ESRPend  uint32 // errors since then
	ICRLow   uint32
	ICRHigh  uint32
	LVT      [numLVT]uint32 // timer, thermal, perf, LINT0, LINT1, error
	DCR      uint32
	Initial  uint32
	ISR      [8]uint32
	TMR      [8]uint32
	IRR      [8]uint32
	LINT     [2]bool

	TimerArmed     bool
	TimerRemaining int64  // ns until the timer next expires, if armed
	TimerPeriod    int64  // ns, periodic mode
	TimerDivider   uint32 // divider of the running count
	TSCDeadline    uint64
}

// Save returns the LAPIC's state.
func (a *LAPIC) Save() State {
	now := a.cfg.Clock()
	a.mu.Lock()
	defer a.mu.Unlock()
	s := State{
		APICBase: a.apicBase, ID: a.id, TPR: a.tpr, LDR: a.ldr, DFR: a.dfr, SVR: a.svr,
		ESR: a.esr, ESRPend: a.esrPend, ICRLow: a.icrLow, ICRHigh: a.icrHigh,
		LVT: a.lvt, DCR: a.dcr, Initial: a.initial, ISR: a.isr, TMR: a.tmr, IRR: a.irr,
		LINT: a.lintIn, TimerArmed: a.timer.armed, TimerPeriod: a.timer.period,
		TimerDivider: a.timer.div, TSCDeadline: a.timer.tscDL,
	}
	if a.timer.armed {
		s.TimerRemaining = max(a.timer.deadline-now, 0)
	}
	return s
}

// ErrState reports a state Restore cannot load.
var ErrState = errors.New("lapic: invalid state")

// Restore loads a state from Save; the timer expires TimerRemaining after
// the clock's current time.
func (a *LAPIC) Restore(s State) error {
	switch {
	case s.APICBase&^(apicBaseMutable|APICBaseBSP) != 0,
		s.APICBase&APICBaseEXTD != 0 && s.APICBase&APICBaseEnable == 0:
		return fmt.Errorf("%w: IA32_APIC_BASE %#x", ErrState, s.APICBase)
	case s.TimerDivider&(s.TimerDivider-1) != 0 || s.TimerDivider > 128:
		return fmt.Errorf("%w: timer divider %d", ErrState, s.TimerDivider)
	case s.TimerRemaining < 0 || s.TimerPeriod < 0:
		return fmt.Errorf("%w: timer remaining %d, period %d", ErrState, s.TimerRemaining, s.TimerPeriod)
	case s.TPR > 0xFF, s.SVR&^svrWriteMask != 0, s.ESR&^esrMask != 0, s.ESRPend&^esrMask != 0,
		s.ICRLow&^icrLowWritable != 0, s.DCR&^dcrMask != 0:
		return fmt.Errorf("%w: reserved bits set", ErrState)
	}
	if s.TimerDivider == 0 {
		s.TimerDivider = 2
	}
	if s.TimerPeriod > 0 {
		s.TimerPeriod = max(s.TimerPeriod, a.cfg.MinPeriod)
	}
	now := a.cfg.Clock()
	a.mu.Lock()
	a.apicBase = s.APICBase
	a.id, a.tpr, a.ldr, a.dfr, a.svr = s.ID, s.TPR, s.LDR, s.DFR, s.SVR
	a.esr, a.esrPend, a.icrLow, a.icrHigh = s.ESR, s.ESRPend, s.ICRLow, s.ICRHigh
	a.lvt, a.dcr, a.initial = s.LVT, s.DCR, s.Initial
	a.isr, a.tmr, a.irr, a.lintIn = s.ISR, s.TMR, s.IRR, s.LINT
	a.timer = timer{armed: s.TimerArmed, period: s.TimerPeriod, div: s.TimerDivider, tscDL: s.TSCDeadline}
	if s.TimerArmed {
		a.timer.deadline = now + s.TimerRemaining
		if a.timer.deadline < now {
			a.timer.deadline = 1<<63 - 1
		}
	}
	a.mu.Unlock()
	if a.cfg.Kick != nil {
		a.cfg.Kick()
	}
	return nil
}
