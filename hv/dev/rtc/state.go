package rtc

import (
	"errors"
	"fmt"
)

// State is the migratable state of the RTC. The divider chain's position
// is saved as a value, so the clock resumes where it stopped: the guest's
// time of day does not advance while the VM is not running anywhere.
type State struct {
	Index         uint8
	NMIMasked     bool
	RAM           [NumRegs]byte // user RAM, alarms; the time registers hold the time while updates are halted
	A, B, C       uint8
	ChainNs       int64 // divider chain position
	SecondsOffset int64 // time of day (Unix s) = SecondsOffset + ChainNs/1e9 while updating
	IRQLevel      bool
}

// ErrState reports a state Restore cannot load.
var ErrState = errors.New("rtc: invalid state")

// Save returns the RTC's state at the current time.
func (r *RTC) Save() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.cfg.Now()
	r.advance(now)
	return State{
		Index: r.index, NMIMasked: r.nmiMasked, RAM: r.ram, A: r.a, B: r.b, C: r.c,
		ChainNs: r.chain(now), SecondsOffset: r.secOffset, IRQLevel: r.line,
	}
}

// Restore loads a state from Save; the chain continues from ChainNs now.
func (r *RTC) Restore(s State) error {
	switch {
	case s.Index&^IndexMask != 0:
		return fmt.Errorf("%w: index %#x", ErrState, s.Index)
	case s.A&^aWritable != 0:
		return fmt.Errorf("%w: register A %#x", ErrState, s.A)
	case s.C&0x0f != 0:
		return fmt.Errorf("%w: register C %#x", ErrState, s.C)
	case s.ChainNs < 0 || s.ChainNs > 1<<62:
		return fmt.Errorf("%w: chain at %d ns", ErrState, s.ChainNs)
	case s.SecondsOffset < -1<<40 || s.SecondsOffset > 1<<40:
		return fmt.Errorf("%w: seconds offset %d", ErrState, s.SecondsOffset)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.cfg.Now()
	r.index, r.nmiMasked, r.ram, r.a, r.b, r.c = s.Index, s.NMIMasked, s.RAM, s.A, s.B, s.C
	r.divOffset, r.chainFrozen, r.lastChain = s.ChainNs-now, s.ChainNs, s.ChainNs
	r.secOffset = s.SecondsOffset
	if r.line != s.IRQLevel {
		r.line = s.IRQLevel
		if r.cfg.IRQ != nil {
			r.cfg.IRQ(r.line)
		}
	}
	r.updateIRQ()
	return nil
}
