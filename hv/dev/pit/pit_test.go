package pit_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/godwit-hv/godwit/hv/bus"
	"github.com/godwit-hv/godwit/hv/dev/devtest"
	"github.com/godwit-hv/godwit/hv/dev/pic"
	. "github.com/godwit-hv/godwit/hv/dev/pit"
)

type rig struct {
	p     *PIT
	b     *bus.Bus
	ns    int64
	edges []bool
}

func newRig(t testing.TB, startNs int64) *rig {
	t.Helper()
	rg := &rig{b: bus.New(), ns: startNs}
	rg.p = New(Config{Now: func() int64 { return rg.ns }, IRQ: func(l bool) { rg.edges = append(rg.edges, l) }})
	if err := rg.b.Register(bus.PIO, Base, NumPorts, "pit", rg.p); err != nil {
		t.Fatal(err)
	}
	if err := rg.b.Register(bus.PIO, NMISCPort, 1, "nmisc", rg.p.NMISC()); err != nil {
		t.Fatal(err)
	}
	return rg
}

// step is one action of a script; times are in ticks from the script's
// start.
type step struct {
	op   string // "at" (set time), "out", "in", "tick", "deadline", "edges"
	port uint64
	val  uint8
	t    int64
	ok   bool
	s    []bool
}

func at(tick int64) step                 { return step{op: "at", t: tick} }
func out(port uint64, v uint8) step      { return step{op: "out", port: port, val: v} }
func in(port uint64, v uint8) step       { return step{op: "in", port: port, val: v} }
func tick() step                         { return step{op: "tick"} }
func deadline(tk int64, ok bool) step    { return step{op: "deadline", t: tk, ok: ok} }
func edges(e ...bool) step               { return step{op: "edges", s: e} }
func out2(level bool) step               { return step{op: "out2", ok: level} }
func count(port uint64, v uint16) []step { return []step{in(port, uint8(v)), in(port, uint8(v>>8))} }

const (
	t0     = 5_000_000 // script start: an arbitrary tick
	ch0    = Base + Counter0Port
	ch2    = Base + Counter2Port
	ctl    = Base + ControlPort
	rwBoth = RWBoth << CWRWShift
)

func mode(m uint8) uint8 { return m << CWModShift }

func (rg *rig) run(t *testing.T, steps []step) {
	t.Helper()
	for i, s := range steps {
		switch s.op {
		case "at":
			rg.ns = TimeOfTick(t0 + s.t)
		case "out":
			devtest.Out(t, rg.b, i, s.port, s.val)
		case "in":
			devtest.In(t, rg.b, i, s.port, s.val)
		case "out2":
			d := []byte{0}
			if err := rg.b.Read(bus.PIO, NMISCPort, d); err != nil {
				t.Fatal(err)
			}
			if got := d[0]&NMISCOut2 != 0; got != s.ok {
				t.Errorf("step %d: port 0x61 OUT2 = %v, want %v", i, got, s.ok)
			}
		case "tick":
			rg.p.Tick(rg.ns)
		case "deadline":
			ns, ok := rg.p.NextDeadline()
			if ok != s.ok || ok && ns != TimeOfTick(t0+s.t) {
				t.Errorf("step %d: NextDeadline() = %d, %v, want tick %d (%d ns), %v",
					i, ns, ok, s.t, TimeOfTick(t0+s.t), s.ok)
			}
		case "edges":
			if !reflect.DeepEqual(rg.edges, s.s) {
				t.Errorf("step %d: IRQ edges = %v, want %v", i, rg.edges, s.s)
			}
			rg.edges = nil
		}
	}
}

func seq(parts ...any) []step {
	var all []step
	for _, p := range parts {
		switch p := p.(type) {
		case step:
			all = append(all, p)
		case []step:
			all = append(all, p...)
		}
	}
	return all
}

func TestTicks(t *testing.T) {
	for _, tt := range []struct{ ns, ticks int64 }{
		{0, 0}, {-5, 0}, {838, 0}, {839, 1}, {1e9, Frequency}, {3600e9, 3600 * Frequency},
	} {
		if got := TicksAt(tt.ns); got != tt.ticks {
			t.Errorf("TicksAt(%d) = %d, want %d", tt.ns, got, tt.ticks)
		}
	}
	for _, tk := range []int64{1, 2, 1193, Frequency, 1 << 40} {
		ns := TimeOfTick(tk)
		if TicksAt(ns) != tk || TicksAt(ns-1) != tk-1 {
			t.Errorf("TimeOfTick(%d) = %d: TicksAt gives %d, %d before", tk, ns, TicksAt(ns), TicksAt(ns-1))
		}
	}
}

func TestScripts(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"Linux TSC calibration: counter 2 mode 0 through port 0x61", seq(
			at(0), out(NMISCPort, NMISCGate2), out(ctl, 2<<CWSCShift|rwBoth|mode(0)),
			out2(false), out(ch2, 0x9c), out(ch2, 0x2e), // 11932
			at(1), count(ch2, 11932), at(101), count(ch2, 11832),
			at(11932), out2(false), at(11933), out2(true), count(ch2, 0), at(11934), count(ch2, 0xffff), at(20000), out2(true),
		)},
		{"quick_pit_calibrate-style MSB polling", seq(
			at(0), out(NMISCPort, NMISCGate2), out(ctl, 0xb0), out(ch2, 0xff), out(ch2, 0xff),
			at(1+256), count(ch2, 0xffff-256), at(1+512+3), in(ch2, 0xfc), in(ch2, 0xfd),
		)},
		{"counter 0 mode 2 periodic IRQ", seq(
			at(0), out(ctl, rwBoth|mode(2)), edges(true), deadline(0, false),
			out(ch0, 1193&0xff), out(ch0, 1193>>8), deadline(1+1193, true),
			at(1), count(ch0, 1193), at(1+1192), count(ch0, 1), tick(), edges(false), // OUT low for one clock
			at(1+1193), tick(), edges(true), count(ch0, 1193), deadline(1+2*1193, true),
			at(1+5*1193+7), tick(), edges(false, true), deadline(1+6*1193, true), tick(), edges(),
		)},
		{"mode 2 new count starts at the next period", seq(
			at(0), out(ctl, rwBoth|mode(2)), out(ch0, 100), out(ch0, 0), edges(true),
			at(50), out(ch0, 10), out(ch0, 0), deadline(101, true), count(ch0, 51),
			at(101), tick(), edges(false, true), count(ch0, 10), deadline(111, true),
		)},
		{"counter 0 mode 0 one-shot", seq(
			at(0), out(ctl, rwBoth|mode(0)), edges(true, false), // initial level, then mode 0 OUT low
			out(ch0, 50), deadline(0, false), out(ch0, 0),
			deadline(51, true), at(30), tick(), edges(), at(60), tick(), edges(true),
			deadline(0, false), out(ch0, 5), edges(false), out(ch0, 0), deadline(66, true),
		)},
		{"mode 3 square wave on counter 2", seq(
			at(0), out(NMISCPort, NMISCGate2), out(ctl, 0x80|rwBoth|mode(3)), out2(true),
			out(ch2, 10), out(ch2, 0), at(1), out2(true), at(5), out2(true), at(6), out2(false),
			at(10), out2(false), at(11), out2(true), count(ch2, 10), at(12), count(ch2, 8),
			at(16), count(ch2, 10), at(20), count(ch2, 2),
			out(NMISCPort, 0), at(100), out2(true), // gate low forces OUT high
		)},
		{"mode 3 odd count", seq(
			at(0), out(NMISCPort, NMISCGate2), out(ctl, 0x80|rwBoth|mode(3)), out(ch2, 5), out(ch2, 0),
			at(1), count(ch2, 4), at(2), count(ch2, 2), at(3), out2(true), count(ch2, 0),
			at(4), out2(false), count(ch2, 4), at(5), out2(false), count(ch2, 2),
			at(6), out2(true), count(ch2, 4),
		)},
		{"mode 4 strobe", seq(
			at(0), out(NMISCPort, NMISCGate2), out(ctl, 0x80|RWLSB<<CWRWShift|mode(4)), out(ch2, 4),
			at(4), out2(true), at(5), out2(false), at(6), out2(true), at(50), out2(true),
		)},
		{"mode 1 one-shot triggered by the gate", seq(
			at(0), out(ctl, 0x80|RWLSB<<CWRWShift|mode(1)), out(ch2, 3), at(10), out2(true),
			out(NMISCPort, NMISCGate2), out2(true), at(11), out2(false), at(13), out2(false),
			at(14), out2(true), out(NMISCPort, 0), out(NMISCPort, NMISCGate2), at(15), out2(false),
		)},
		{"mode 5 triggered strobe", seq(
			at(0), out(ctl, 0x80|RWLSB<<CWRWShift|mode(5)), out(ch2, 3), at(10),
			out(NMISCPort, NMISCGate2), at(13), out2(true), at(14), out2(false), at(15), out2(true),
		)},
		{"gate low pauses mode 0", seq(
			at(0), out(NMISCPort, NMISCGate2), out(ctl, 0xb0), out(ch2, 100), out(ch2, 0),
			at(21), out(NMISCPort, 0), at(500), count(ch2, 80), out2(false),
			out(NMISCPort, NMISCGate2), at(579), out2(false), at(580), out2(true),
		)},
		{"counter latch", seq(
			at(0), out(ctl, rwBoth|mode(2)), out(ch0, 0), out(ch0, 0), at(11),
			out(ctl, 0x00), at(500), count(ch0, 65526), count(ch0, 65536-499),
		)},
		{"read-back status then count", seq(
			at(0), out(ctl, 0xb0), out(ctl, 0xe8), in(ch2, 0x70), // OUT low, NULL COUNT, RW both, mode 0
			out(NMISCPort, NMISCGate2), out(ch2, 0x10), out(ch2, 0x00), in(ch0, 0x00),
			at(3), out(ctl, 0xc8), out(ctl, 0xe8), in(ch2, 0x30), count(ch2, 0x0e),
			out(ctl, 0xd8), count(ch2, 0x0e), at(4), count(ch2, 0x0d),
		)},
		{"BCD counting", seq(
			at(0), out(NMISCPort, NMISCGate2), out(ctl, 0xb1), out(ch2, 0x00), out(ch2, 0x10),
			at(2), count(ch2, 0x0999), at(1001), count(ch2, 0x0000), at(1002), count(ch2, 0x9999),
			out(ctl, 0xe8), in(ch2, 0xb1),
		)},
		{"LSB-only and MSB-only access", seq(
			at(0), out(ctl, RWMSB<<CWRWShift|mode(2)), out(ch0, 0x02), at(1), in(ch0, 0x02),
			at(2), in(ch0, 0x01), out(ctl, RWLSB<<CWRWShift|mode(2)), out(ch0, 0x40), at(3), in(ch0, 0x40),
		)},
		{"mode 0 first byte stops the count", seq(
			at(0), out(ctl, rwBoth|mode(0)), out(ch0, 5), out(ch0, 0), edges(true, false), at(10), tick(), edges(true),
			out(ch0, 9), edges(false), at(100), tick(), edges(), out(ch0, 0), at(110), tick(), edges(true),
		)},
		{"control port reads as 0xff and modes 6, 7 alias 2, 3", seq(
			at(0), in(ctl, 0xff), out(ctl, 0x80|rwBoth|mode(7)), out(ctl, 0xe8), in(ch2, 0xf6),
		)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { newRig(t, TimeOfTick(t0)).run(t, tt.steps) })
	}
}

func TestRefreshToggle(t *testing.T) {
	rg := newRig(t, 0)
	d := []byte{0}
	seen := map[bool]bool{}
	for i := int64(0); i < 4; i++ {
		rg.ns = i * RefreshPeriodNs
		if err := rg.p.NMISC().Read(0, d); err != nil {
			t.Fatal(err)
		}
		seen[d[0]&NMISCRefresh != 0] = true
	}
	if !seen[true] || !seen[false] {
		t.Errorf("refresh toggle never changed: %v", seen)
	}
	if err := rg.p.NMISC().Write(0, []byte{0xff}); err != nil {
		t.Fatal(err)
	}
	if rg.p.NMISC().Read(0, d); d[0]&0xcf != 0x0f {
		t.Errorf("port 0x61 after writing 0xff = %#x, want bits 3:0 set and no NMI status", d[0])
	}
	if err := rg.p.NMISC().Read(0, make([]byte, 2)); !errors.Is(err, ErrAccess) {
		t.Errorf("2-byte port 0x61 read = %v, want ErrAccess", err)
	}
	if err := rg.p.Write(3, []byte{0, 0}); !errors.Is(err, ErrAccess) {
		t.Errorf("write past port 0x43 = %v, want ErrAccess", err)
	}
}

func TestClockGoingBackwards(t *testing.T) {
	rg := newRig(t, TimeOfTick(t0))
	rg.run(t, seq(at(0), out(ctl, 0x34), out(ch0, 100), out(ch0, 0), at(50), count(ch0, 51)))
	rg.run(t, seq(at(10), count(ch0, 51), tick()))
}

func TestStateRoundTrip(t *testing.T) {
	rg := newRig(t, TimeOfTick(t0))
	rg.run(t, seq(
		at(0), out(ctl, 0x34), out(ch0, 0xa9), out(ch0, 0x04), out(NMISCPort, NMISCGate2|NMISCSpeaker),
		out(ctl, 0xb1), out(ch2, 0x00), out(ch2, 0x50), out(ctl, 0x70), out(ch1, 0x12),
		at(700), out(ch0, 0x20), out(ch0, 0x00), out(ctl, 0x00), in(ch0, 0xee),
		out(ctl, 0xe8), at(800),
	))
	saved := rg.p.Save()

	// The target host's clock reads 3 s earlier.
	other := newRig(t, rg.ns-3e9)
	if err := other.p.Restore(saved); err != nil {
		t.Fatalf("Restore = %v", err)
	}
	if got := other.p.Save(); !reflect.DeepEqual(got, saved) {
		t.Errorf("Save() after Restore = %+v, want %+v", got, saved)
	}
	if d1, _ := rg.p.NextDeadline(); true {
		d2, _ := other.p.NextDeadline()
		if d1-rg.ns != d2-other.ns {
			t.Errorf("restored deadline in %d ns, original in %d ns", d2-other.ns, d1-rg.ns)
		}
	}
	for _, step := range []int64{0, 5, 1200, 99999} {
		rg.ns += step * 838
		other.ns += step * 838
		for _, port := range []uint64{ch0, ch0, ch2, ch2, ch2, ch1, NMISCPort} {
			a, b := []byte{0}, []byte{0}
			_ = rg.b.Read(bus.PIO, port, a)
			_ = other.b.Read(bus.PIO, port, b)
			if a[0]&^NMISCRefresh != b[0]&^NMISCRefresh {
				t.Errorf("after +%d: in(%#x): restored %#x, original %#x", step, port, b[0], a[0])
			}
		}
	}
}

const ch1 = Base + Counter1Port

func TestRestoreRejects(t *testing.T) {
	good := New(Config{Now: func() int64 { return 0 }}).Save()
	for i, mut := range []func(*State){
		func(s *State) { s.Counters[0].Mode = 6 },
		func(s *State) { s.Counters[1].RW = 4 },
		func(s *State) { s.Counters[2].Count = 0 },
		func(s *State) { s.Counters[2].Count = 65537 },
		func(s *State) { s.Counters[0].PendingIn = -1 },
		func(s *State) { s.NMISC = 0x10 },
	} {
		s := good
		mut(&s)
		if err := New(Config{}).Restore(s); !errors.Is(err, ErrState) {
			t.Errorf("case %d: Restore(%+v) = %v, want ErrState", i, s, err)
		}
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	ns := int64(0)
	p := New(Config{Now: func() int64 { return ns }})
	_ = p.Write(ControlPort, []byte{0x34})
	_ = p.Write(0, []byte{0x10})
	_ = p.Write(0, []byte{0x00})
	d := []byte{0}
	if n := testing.AllocsPerRun(100, func() {
		ns += 10000
		p.Tick(ns)
		_, _ = p.NextDeadline()
		_ = p.Read(0, d)
		_ = p.NMISC().Read(0, d)
	}); n != 0 {
		t.Errorf("allocs = %v, want 0", n)
	}
}

// FuzzPorts drives the PIT with arbitrary port traffic and clock steps;
// nothing may panic, deadlines must lie ahead, and a saved state must load.
func FuzzPorts(f *testing.F) {
	f.Add([]byte{3, 0x34, 0, 0x10, 0, 0x00, 5, 200, 6, 0})
	f.Add([]byte{4, 0x01, 3, 0xb6, 2, 0x05, 2, 0x00, 5, 3, 3, 0xc2, 1, 2})
	f.Fuzz(func(t *testing.T, prog []byte) {
		ns := int64(1e9)
		p := New(Config{Now: func() int64 { return ns }, IRQ: func(bool) {}})
		d := []byte{0}
		for i := 0; i+1 < len(prog); i += 2 {
			op, v := prog[i]%8, prog[i+1]
			switch op {
			case 0, 1, 2, 3:
				_ = p.Write(uint64(op), []byte{v})
			case 4:
				_ = p.NMISC().Write(0, []byte{v})
			case 5:
				ns += int64(v) * 97
				p.Tick(ns)
			case 6:
				_ = p.Read(uint64(v%4), d)
				_ = p.NMISC().Read(0, d)
				if dl, ok := p.NextDeadline(); ok && dl <= ns-1000 {
					t.Fatalf("NextDeadline() = %d, now %d: in the past", dl, ns)
				}
			case 7:
				if err := p.Restore(p.Save()); err != nil {
					t.Fatalf("Restore(Save()) = %v", err)
				}
			}
		}
	})
}

func TestStoppedCounterHoldsItsValue(t *testing.T) {
	rg := newRig(t, TimeOfTick(t0))
	rg.run(t, seq(
		at(0), out(ctl, rwBoth|mode(0)), out(ch0, 0x00), out(ch0, 0x10), // 4096
		at(101), out(ch0, 0x34), // first byte: counting stops at 4096-100
		at(500), count(ch0, 3996), out(ch0, 0x12), at(501), count(ch0, 0x1234),
		at(600), out(ctl, rwBoth|mode(2)), at(900), count(ch0, 0x1234-99),
	))
}

// TestDrivesPIC wires counter 0 to IRQ 0 of the 8259A model the way the
// machine does and checks each period reaches the vCPU's INTA cycle once.
func TestDrivesPIC(t *testing.T) {
	pc := pic.New(pic.Config{})
	ns := TimeOfTick(t0)
	p := New(Config{Now: func() int64 { return ns }, IRQ: func(l bool) { pc.SetIRQ(IRQ, l) }})
	master := pc.Master()
	for _, v := range []uint8{pic.ICW1Select | pic.ICW1IC4, 0x30, 0x04, pic.ICW4uPM, 0xfe} {
		port := uint64(1)
		if v == pic.ICW1Select|pic.ICW1IC4 {
			port = 0
		}
		if err := master.Write(port, []byte{v}); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []uint8{0x34, 1193 & 0xff, 1193 >> 8} { // mode 2, 1 kHz
		port := uint64(Counter0Port)
		if v == 0x34 {
			port = ControlPort
		}
		if err := p.Write(port, []byte{v}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		dl, ok := p.NextDeadline()
		if !ok {
			t.Fatalf("period %d: no deadline", i)
		}
		if _, ok := pc.Pending(); ok {
			t.Fatalf("period %d: interrupt pending before the deadline", i)
		}
		ns = dl
		p.Tick(ns)
		if v, ok := pc.Pending(); !ok || v != 0x30 {
			t.Fatalf("period %d: Pending() = %#x, %v, want 0x30", i, v, ok)
		}
		if v := pc.Ack(); v != 0x30 {
			t.Fatalf("period %d: Ack() = %#x", i, v)
		}
		if err := master.Write(0, []byte{pic.OCW2NonSpecificEOI}); err != nil {
			t.Fatal(err)
		}
	}
}
