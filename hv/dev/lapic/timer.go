package lapic

import "math/bits"

// The APIC timer. Intel SDM Vol. 3A, 11.5.4 "APIC Timer": the current count
// is loaded from the initial count and decrements at the timer clock
// divided by the DCR setting; at zero the LVT timer interrupt fires, and in
// periodic mode the count reloads. In TSC-deadline mode (11.5.4.1) the
// interrupt fires when the TSC reaches IA32_TSC_DEADLINE.
//
// The model holds no counter: it keeps the absolute time (ns) of the next
// expiry and derives the current count from the clock.

const nsPerSec = 1_000_000_000

// divisor returns the divider a DCR value selects (Figure 11-10).
func divisor(dcr uint32) uint32 {
	v := dcr&3 | dcr>>1&4
	return 1 << ((v + 1) & 7)
}

// ticksToNs converts timer ticks at divider div to nanoseconds.
func (a *LAPIC) ticksToNs(ticks uint64, div uint32) int64 {
	hi, lo := bits.Mul64(ticks*uint64(div), nsPerSec) // ticks < 2^32, div <= 128
	q, _ := bits.Div64(hi, lo, a.cfg.TimerHz)         // hi < 2^6 < TimerHz
	return int64(q)
}

// nsToTicks converts nanoseconds to timer ticks at divider div.
func (a *LAPIC) nsToTicks(ns int64, div uint32) uint64 {
	if ns <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(ns), a.cfg.TimerHz)
	d := uint64(nsPerSec) * uint64(div)
	if hi >= d {
		return 1<<32 - 1
	}
	q, _ := bits.Div64(hi, lo, d)
	return q
}

// writeInitialCount starts the timer in one-shot or periodic mode, or
// stops it with 0. Ignored in TSC-deadline mode. Intel SDM Vol. 3A, 11.5.4.
func (a *LAPIC) writeInitialCount(v uint32, now int64, e *effects) {
	mode := timerMode(a.lvt[lvtTimer])
	if mode == TimerTSCDeadline {
		return
	}
	a.initial = v
	a.timer.armed = false
	if v == 0 {
		return
	}
	a.timer.div = divisor(a.dcr)
	d := a.ticksToNs(uint64(v), a.timer.div)
	a.timer.period = 0
	if mode == TimerPeriodic {
		a.timer.period = max(d, a.cfg.MinPeriod)
		d = a.timer.period
	}
	a.timer.deadline = now + d
	a.timer.armed = true
	e.kick = true // the owner should look at NextDeadline again
}

// currentCount derives the Current Count Register from the clock.
func (a *LAPIC) currentCount(now int64) uint32 {
	t := &a.timer
	if !t.armed || timerMode(a.lvt[lvtTimer]) == TimerTSCDeadline {
		return 0
	}
	rem := t.deadline - now
	if rem < 0 {
		if t.period <= 0 {
			return 0
		}
		rem %= t.period
		if rem < 0 {
			rem += t.period
		}
	}
	c := a.nsToTicks(rem, t.div)
	if c > uint64(a.initial) {
		c = uint64(a.initial)
	}
	return uint32(c)
}

// tscNow returns the guest TSC at time now.
func (a *LAPIC) tscNow(now int64) uint64 {
	if a.cfg.TSC != nil {
		return a.cfg.TSC()
	}
	if now < 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(now), a.cfg.TSCHz)
	if hi >= nsPerSec {
		return ^uint64(0)
	}
	q, _ := bits.Div64(hi, lo, nsPerSec)
	return q
}

// setTSCDeadline writes IA32_TSC_DEADLINE: ignored unless the timer is in
// TSC-deadline mode; 0 disarms; a value already past fires at once (on the
// next Tick).
func (a *LAPIC) setTSCDeadline(v uint64, now int64, e *effects) {
	if a.cfg.TSCHz == 0 || timerMode(a.lvt[lvtTimer]) != TimerTSCDeadline {
		return
	}
	a.timer.tscDL = v
	a.timer.armed = false
	a.timer.period = 0
	if v == 0 {
		return
	}
	tsc := a.tscNow(now)
	d := int64(0)
	if v > tsc {
		hi, lo := bits.Mul64(v-tsc, nsPerSec)
		if hi >= a.cfg.TSCHz {
			d = 1<<62 - 1
		} else {
			q, _ := bits.Div64(hi, lo, a.cfg.TSCHz)
			d = int64(min(q, 1<<62-1))
		}
	}
	a.timer.deadline = now + d
	if a.timer.deadline < now { // overflow
		a.timer.deadline = 1<<63 - 1
	}
	a.timer.armed = true
	e.kick = true
}

// NextDeadline returns when the timer next expires (in Clock's time
// base), so the owner can arm a host timer and call Tick then. ok is false
// when the timer is stopped.
func (a *LAPIC) NextDeadline() (ns int64, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.timer.deadline, a.timer.armed
}

// Tick fires the timer if it has expired at time now: the LVT timer
// interrupt goes to IRR unless masked, a one-shot or TSC-deadline timer
// stops, and a periodic timer re-arms one period after its expiry. A
// periodic timer that missed several periods fires once (interrupts
// coalesce, as a busy IRR bit would make them). It reports whether the
// timer expired.
func (a *LAPIC) Tick(now int64) bool {
	var e effects
	a.mu.Lock()
	t := &a.timer
	if !t.armed || now < t.deadline {
		a.mu.Unlock()
		return false
	}
	a.deliverLVT(lvtTimer, &e)
	switch {
	case timerMode(a.lvt[lvtTimer]) == TimerTSCDeadline:
		t.armed = false
		t.tscDL = 0 // Intel SDM Vol. 3A, 11.5.4.1: the MSR reads 0 once fired
	case timerMode(a.lvt[lvtTimer]) == TimerPeriodic && a.initial != 0:
		// Reload with the divider now configured.
		t.div = divisor(a.dcr)
		t.period = max(a.ticksToNs(uint64(a.initial), t.div), a.cfg.MinPeriod)
		next := t.deadline + t.period
		if next <= now {
			next = now + t.period - (now-t.deadline)%t.period
		}
		t.deadline = next
	default:
		t.armed = false
	}
	a.mu.Unlock()
	a.run(&e)
	return true
}
