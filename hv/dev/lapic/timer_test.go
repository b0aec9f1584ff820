package lapic

import (
	"testing"

	"github.com/godwit-hv/godwit/hv/bus"
)

// fire advances the clock to the next deadline and ticks.
func (r *rig) fire() (at int64, ok bool) {
	d, ok := r.a.NextDeadline()
	if !ok {
		return 0, false
	}
	r.clk.now = max(r.clk.now, d)
	return d, r.a.Tick(r.clk.now)
}

func TestTimerOneShot(t *testing.T) {
	r := newRig(t, Config{TimerHz: 100_000_000}) // 10 ns per tick
	r.enable()
	r.w(RegTimerDCR, 0xB) // divide by 1
	r.w(RegLVTTimer, 0x40)
	start := r.clk.now
	r.w(RegTimerICR, 1000) // 10 µs
	if d, ok := r.a.NextDeadline(); !ok || d != start+10_000 {
		t.Fatalf("NextDeadline() = %d, %v; want %d, true", d, ok, start+10_000)
	}
	r.clk.now += 2500
	r.check(RegTimerCCR, 750)
	if r.a.Tick(r.clk.now) {
		t.Errorf("Tick before the deadline fired")
	}
	r.pending(-1)
	if _, ok := r.fire(); !ok {
		t.Fatal("timer did not fire")
	}
	r.pending(0x40)
	r.check(RegTimerCCR, 0)
	if _, ok := r.a.NextDeadline(); ok {
		t.Errorf("one-shot timer still armed after firing")
	}
	r.clk.now += 1_000_000
	if r.a.Tick(r.clk.now) {
		t.Errorf("one-shot timer fired twice")
	}
	r.check(RegTimerICR, 1000)
	// Writing 0 stops a running timer.
	r.w(RegTimerICR, 5)
	r.w(RegTimerICR, 0)
	if _, ok := r.a.NextDeadline(); ok {
		t.Errorf("timer armed after initial count 0")
	}
}

func TestTimerPeriodicDividers(t *testing.T) {
	for _, c := range []struct {
		dcr uint32
		div int64
	}{
		{0x0, 2}, {0x1, 4}, {0x2, 8}, {0x3, 16}, {0x8, 32}, {0x9, 64}, {0xA, 128}, {0xB, 1},
	} {
		r := newRig(t, Config{TimerHz: 1_000_000_000, MinPeriod: 1})
		r.enable()
		r.w(RegTimerDCR, c.dcr)
		r.w(RegLVTTimer, 0x50|TimerPeriodic<<LVTTimerModeShift)
		start := r.clk.now
		r.w(RegTimerICR, 1000)
		period := 1000 * c.div
		for i := int64(1); i <= 3; i++ {
			at, ok := r.fire()
			if !ok || at != start+i*period {
				t.Errorf("DCR %#x: expiry %d at %d, %v; want %d", c.dcr, i, at-start, ok, i*period)
			}
			if v := r.take(); v != 0x50 {
				t.Errorf("DCR %#x: expiry %d delivered %d, want 0x50", c.dcr, i, v)
			}
			r.w(RegEOI, 0)
		}
		r.clk.now += period / 2
		if got, want := r.r(RegTimerCCR), uint32(500); got != want {
			t.Errorf("DCR %#x: current count half way = %d, want %d", c.dcr, got, want)
		}
	}
}

func TestTimerPeriodicCoalesces(t *testing.T) {
	r := newRig(t, Config{TimerHz: 1_000_000_000, MinPeriod: 1})
	r.enable()
	r.w(RegTimerDCR, 0xB)
	r.w(RegLVTTimer, 0x50|TimerPeriodic<<LVTTimerModeShift)
	start := r.clk.now
	r.w(RegTimerICR, 100)
	r.clk.now = start + 1050 // ten periods missed
	if !r.a.Tick(r.clk.now) {
		t.Fatal("no expiry")
	}
	if d, _ := r.a.NextDeadline(); d != start+1100 {
		t.Errorf("next deadline %d after start, want 1100", d-start)
	}
	r.check(RegTimerCCR, 50)
}

func TestTimerMinPeriod(t *testing.T) {
	r := newRig(t, Config{TimerHz: 1_000_000_000, MinPeriod: 10_000})
	r.enable()
	r.w(RegTimerDCR, 0xB)
	r.w(RegLVTTimer, 0x50|TimerPeriodic<<LVTTimerModeShift)
	start := r.clk.now
	r.w(RegTimerICR, 1)
	if d, _ := r.a.NextDeadline(); d-start != 10_000 {
		t.Errorf("periodic deadline %d ns, want the 10000 ns minimum", d-start)
	}
}

func TestTimerMasked(t *testing.T) {
	r := newRig(t, Config{})
	r.enable()
	r.w(RegLVTTimer, 0x40|LVTMasked)
	r.w(RegTimerICR, 10)
	if _, ok := r.fire(); !ok {
		t.Fatal("masked timer did not count down")
	}
	r.pending(-1)
	r.check(RegTimerCCR, 0)
}

func TestTSCDeadline(t *testing.T) {
	r := newRig(t, Config{TSCHz: 2_000_000_000}) // 2 ticks per ns
	r.enable()
	tsc := func() uint64 { return uint64(r.clk.now) * 2 }
	// Outside TSC-deadline mode the MSR is ignored and reads 0.
	if err := r.a.WriteMSR(MSRTSCDeadline, tsc()+100); err != nil {
		t.Fatal(err)
	}
	if v, _ := r.a.ReadMSR(MSRTSCDeadline); v != 0 {
		t.Errorf("TSC_DEADLINE in one-shot mode = %d, want 0", v)
	}
	r.w(RegLVTTimer, 0x60|TimerTSCDeadline<<LVTTimerModeShift)
	r.w(RegTimerICR, 1000) // ignored in TSC-deadline mode
	r.check(RegTimerICR, 0)
	dl := tsc() + 2000
	r.a.WriteMSR(MSRTSCDeadline, dl)
	if v, _ := r.a.ReadMSR(MSRTSCDeadline); v != dl {
		t.Errorf("TSC_DEADLINE = %d, want %d", v, dl)
	}
	start := r.clk.now
	at, ok := r.fire()
	if !ok || at-start != 1000 {
		t.Errorf("fired at +%d ns, %v; want +1000", at-start, ok)
	}
	r.pending(0x60)
	if v, _ := r.a.ReadMSR(MSRTSCDeadline); v != 0 {
		t.Errorf("TSC_DEADLINE after firing = %d, want 0", v)
	}
	if _, ok := r.a.NextDeadline(); ok {
		t.Errorf("deadline timer still armed after firing")
	}
	// A deadline in the past fires at once; 0 disarms.
	r.a.WriteMSR(MSRTSCDeadline, 1)
	if !r.a.Tick(r.clk.now) {
		t.Errorf("past deadline did not fire")
	}
	r.a.WriteMSR(MSRTSCDeadline, tsc()+10)
	r.a.WriteMSR(MSRTSCDeadline, 0)
	if _, ok := r.a.NextDeadline(); ok {
		t.Errorf("TSC_DEADLINE 0 left the timer armed")
	}
	// Leaving TSC-deadline mode disarms.
	r.a.WriteMSR(MSRTSCDeadline, tsc()+10)
	r.w(RegLVTTimer, 0x60)
	if _, ok := r.a.NextDeadline(); ok {
		t.Errorf("mode change left the deadline armed")
	}
}

func TestTSCDeadlineUnsupported(t *testing.T) {
	r := newRig(t, Config{})
	r.enable()
	r.w(RegLVTTimer, 0x60|TimerTSCDeadline<<LVTTimerModeShift)
	r.check(RegLVTTimer, 0x60)
	if _, err := r.a.ReadMSR(MSRTSCDeadline); err != ErrGP {
		t.Errorf("ReadMSR(TSC_DEADLINE) without TSCHz = %v, want ErrGP", err)
	}
}

func TestTimerPeriodicDividerChange(t *testing.T) {
	r := newRig(t, Config{TimerHz: 1_000_000_000, MinPeriod: 1})
	r.enable()
	r.w(RegTimerDCR, 0xB) // by 1
	r.w(RegLVTTimer, 0x50|TimerPeriodic<<LVTTimerModeShift)
	start := r.clk.now
	r.w(RegTimerICR, 100)
	r.w(RegTimerDCR, 0x0) // by 2 from the next reload
	r.clk.now = start + 50
	r.check(RegTimerCCR, 50) // the running count keeps its divider
	at1, _ := r.fire()
	at2, _ := r.fire()
	if at1-start != 100 || at2-at1 != 200 {
		t.Errorf("expiries at +%d, +%d; want +100, +200 later", at1-start, at2-at1)
	}
}

var _ bus.Device = (*LAPIC)(nil)

func TestTimerModeChangeToOneShot(t *testing.T) {
	r := newRig(t, Config{TimerHz: 1_000_000_000, MinPeriod: 1})
	r.enable()
	r.w(RegTimerDCR, 0xB)
	r.w(RegLVTTimer, 0x50|TimerPeriodic<<LVTTimerModeShift)
	r.w(RegTimerICR, 100)
	r.w(RegLVTTimer, 0x50) // one-shot from now on
	if _, ok := r.fire(); !ok {
		t.Fatal("no expiry")
	}
	if _, ok := r.a.NextDeadline(); ok {
		t.Errorf("timer re-armed after switching to one-shot")
	}
}
