package pit

import (
	"errors"
	"fmt"
)

// CounterState is the migratable state of one counter. Times are in
// ticks relative to the moment of Save ("ago" fields count back from it,
// "in" fields forward), so a state loads on a host whose clock reads
// differently.
type CounterState struct {
	Mode, RW      uint8
	BCD           bool
	CountRegister uint16 // as last written (BCD digits if BCD)
	CountWritten  bool   // a count was written since power-on
	Count         int64  // count the CE was loaded with, 1..65536
	Gate          bool
	Armed         bool
	Held          int64 // CE while not counting
	LoadedAgo     int64 // ticks since the CE was loaded
	Paused        bool
	PausedElapsed int64
	Pending       bool  // modes 2, 3: CountRegister takes over...
	PendingIn     int64 // ...this many ticks from now
	NullForever   bool  // NULL COUNT until a gate trigger
	NullIn        int64 // else: NULL COUNT for this many more ticks
	WriteMSBNext  bool
	WriteLSB      uint8
	ReadMSBNext   bool
	CountLatched  bool
	Latch         uint16
	StatusLatched bool
	Status        uint8
}

// State is the migratable state of the PIT.
type State struct {
	Counters [3]CounterState
	NMISC    uint8 // port 0x61 bits 3:0
	IRQLevel bool  // level last reported on the IRQ callback
}

// ErrState reports a state Restore cannot load.
var ErrState = errors.New("pit: invalid state")

func (c *counter) save(now int64) CounterState {
	s := CounterState{
		Mode: c.mode, RW: c.rw, BCD: c.bcd, CountRegister: c.cr, CountWritten: c.crN != 0,
		Count: c.n, Gate: c.gate,
		Armed: c.armed, Held: c.held, LoadedAgo: now - c.start, Paused: c.paused, PausedElapsed: c.pausedE,
		Pending: c.pending, WriteMSBNext: c.wMSB, WriteLSB: c.lsb, ReadMSBNext: c.rMSB,
		CountLatched: c.latchd, Latch: c.latch, StatusLatched: c.stLatd, Status: c.status,
	}
	if c.pending {
		s.PendingIn = c.pendAt - now
	}
	if c.nullUntil == never {
		s.NullForever = true
	} else if c.nullUntil > now {
		s.NullIn = c.nullUntil - now
	}
	return s
}

func (c *counter) load2(s CounterState, now int64) {
	*c = counter{
		mode: s.Mode, rw: s.RW, bcd: s.BCD, cr: s.CountRegister, n: s.Count, gate: s.Gate,
		armed: s.Armed, held: s.Held, start: now - s.LoadedAgo, paused: s.Paused, pausedE: s.PausedElapsed,
		pending: s.Pending, wMSB: s.WriteMSBNext, lsb: s.WriteLSB, rMSB: s.ReadMSBNext,
		latchd: s.CountLatched, latch: s.Latch, stLatd: s.StatusLatched, status: s.Status,
		nullUntil: now + s.NullIn,
	}
	c.crN = 0
	if s.CountWritten {
		c.crN = c.decode(s.CountRegister)
	}
	if s.Pending {
		c.pendAt = now + s.PendingIn
	}
	if s.NullForever {
		c.nullUntil = never
	}
}

func (s CounterState) check(i int) error {
	const span = 1 << 50 // ticks: about 30 years
	switch {
	case s.Mode > 5 || s.RW > RWBoth:
		return fmt.Errorf("%w: counter %d mode %d access %d", ErrState, i, s.Mode, s.RW)
	case s.Count < 1 || s.Count > 65536 || s.Held < 0 || s.Held > 65535:
		return fmt.Errorf("%w: counter %d count %d", ErrState, i, s.Count)
	case s.LoadedAgo < -span || s.LoadedAgo > span, s.PausedElapsed < -span || s.PausedElapsed > span,
		s.PendingIn < 0 || s.PendingIn > span, s.NullIn < 0 || s.NullIn > span:
		return fmt.Errorf("%w: counter %d times out of range: %+v", ErrState, i, s)
	}
	return nil
}

// Save returns the PIT's state at the current time.
func (p *PIT) Save() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.now()
	p.advance(t)
	s := State{NMISC: p.nmi, IRQLevel: p.line}
	for i := range p.c {
		s.Counters[i] = p.c[i].save(t)
	}
	return s
}

// Restore loads a state from Save, as of the current time, and reports
// the IRQ level if it differs from the one this PIT last reported.
func (p *PIT) Restore(s State) error {
	for i, cs := range s.Counters {
		if err := cs.check(i); err != nil {
			return err
		}
	}
	if s.NMISC&^nmiscWritable != 0 {
		return fmt.Errorf("%w: port 0x61 bits %#x", ErrState, s.NMISC)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.now()
	for i, cs := range s.Counters {
		p.c[i].load2(cs, t)
	}
	p.nmi = s.NMISC
	p.last = t
	p.setLine(s.IRQLevel)
	p.setLine(p.c[0].out(t))
	return nil
}
