package rtc_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/hv/bus"
	"github.com/godwit-hv/godwit/hv/dev/pic"
	. "github.com/godwit-hv/godwit/hv/dev/rtc"
)

// wall is when the test RTCs are powered on: Saturday, 15:09:26.5 UTC.
var wall = time.Date(2026, 3, 14, 15, 9, 26, 500_000_000, time.UTC)

const start = 7_000_000_000 // monotonic ns at power-on

type rig struct {
	r     *RTC
	b     *bus.Bus
	ns    int64
	edges []bool
}

func newRig(t testing.TB) *rig {
	t.Helper()
	rg := &rig{b: bus.New(), ns: start}
	rg.r = New(Config{
		Now:  func() int64 { return rg.ns },
		Wall: func() time.Time { return wall },
		IRQ:  func(l bool) { rg.edges = append(rg.edges, l) },
	})
	if err := rg.b.Register(bus.PIO, Base, NumPorts, "rtc", rg.r); err != nil {
		t.Fatal(err)
	}
	return rg
}

// step is one action of a script.
type step struct {
	op  string // "w", "r", "at", "tick", "deadline", "edges"
	reg uint8
	val uint8
	ns  int64
	ok  bool
	e   []bool
}

func w(reg, v uint8) step             { return step{op: "w", reg: reg, val: v} }
func r(reg, v uint8) step             { return step{op: "r", reg: reg, val: v} }
func at(ns int64) step                { return step{op: "at", ns: ns} } // since power-on
func tick() step                      { return step{op: "tick"} }
func deadline(ns int64, ok bool) step { return step{op: "deadline", ns: ns, ok: ok} }
func edges(e ...bool) step            { return step{op: "edges", e: e} }

func (rg *rig) run(t *testing.T, steps []step) {
	t.Helper()
	for i, s := range steps {
		switch s.op {
		case "w":
			if err := rg.b.Write(bus.PIO, Base+IndexPort, []byte{s.reg}); err != nil {
				t.Fatal(err)
			}
			if err := rg.b.Write(bus.PIO, Base+DataPort, []byte{s.val}); err != nil {
				t.Fatalf("step %d: write reg %#x = %v", i, s.reg, err)
			}
		case "r":
			if err := rg.b.Write(bus.PIO, Base+IndexPort, []byte{s.reg}); err != nil {
				t.Fatal(err)
			}
			d := []byte{0}
			if err := rg.b.Read(bus.PIO, Base+DataPort, d); err != nil {
				t.Fatalf("step %d: read reg %#x = %v", i, s.reg, err)
			}
			if d[0] != s.val {
				t.Errorf("step %d: reg %#x = %#02x, want %#02x", i, s.reg, d[0], s.val)
			}
		case "at":
			rg.ns = start + s.ns
		case "tick":
			rg.r.Tick(rg.ns)
		case "deadline":
			ns, ok := rg.r.NextDeadline()
			if ok != s.ok || ok && ns != start+s.ns {
				t.Errorf("step %d: NextDeadline() = %d, %v, want %d, %v", i, ns-start, ok, s.ns, s.ok)
			}
		case "edges":
			if !reflect.DeepEqual(rg.edges, s.e) {
				t.Errorf("step %d: IRQ edges = %v, want %v", i, rg.edges, s.e)
			}
			rg.edges = nil
		}
	}
}

const ms = 1_000_000

func TestScripts(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"power-on time in BCD, 24-hour", []step{
			r(RegSeconds, 0x26), r(RegMinutes, 0x09), r(RegHours, 0x15), r(RegDayOfWeek, 7),
			r(RegDayOfMonth, 0x14), r(RegMonth, 0x03), r(RegYear, 0x26), r(RegCentury, 0x20),
			r(RegA, DefaultA), r(RegB, DefaultB), r(RegC, 0), r(RegD, DVRT),
		}},
		{"binary and 12-hour modes", []step{
			w(RegB, B24h|BDM), r(RegSeconds, 26), r(RegHours, 15), r(RegYear, 26), r(RegCentury, 20),
			w(RegB, BDM), r(RegHours, PMBit|3), w(RegB, 0), r(RegHours, PMBit|0x03),
		}},
		{"the clock advances at the second boundary", []step{
			at(499 * ms), r(RegSeconds, 0x26), at(500 * ms), r(RegSeconds, 0x27),
			at(33*1000*ms + 500*ms), r(RegSeconds, 0x00), r(RegMinutes, 0x10),
		}},
		{"UIP before the update", []step{
			r(RegA, DefaultA), at(497 * ms), r(RegA, DefaultA), at(498 * ms), r(RegA, DefaultA|AUIP), at(499 * ms), r(RegA, DefaultA|AUIP),
			at(500 * ms), r(RegA, DefaultA), w(RegB, BSET|B24h), at(1499 * ms), r(RegA, DefaultA),
		}},
		{"setting the time with SET", []step{
			w(RegB, BSET|B24h), w(RegSeconds, 0x58), w(RegMinutes, 0x59), w(RegHours, 0x23),
			w(RegDayOfMonth, 0x31), w(RegMonth, 0x12), w(RegYear, 0x29), w(RegCentury, 0x20),
			at(3000 * ms), r(RegSeconds, 0x58), r(RegHours, 0x23), // frozen while SET
			w(RegB, B24h), r(RegSeconds, 0x58), r(RegDayOfWeek, 2), // Monday
			at(3500 * ms), r(RegSeconds, 0x59), at(4500 * ms), r(RegSeconds, 0x00),
			r(RegMinutes, 0x00), r(RegHours, 0x00), r(RegDayOfMonth, 0x01), r(RegMonth, 0x01),
			r(RegYear, 0x30), r(RegDayOfWeek, 3),
		}},
		{"writing a time register directly", []step{
			w(RegMinutes, 0x45), r(RegMinutes, 0x45), r(RegSeconds, 0x26), r(RegHours, 0x15),
			at(500 * ms), r(RegSeconds, 0x27), r(RegMinutes, 0x45),
		}},
		{"SET clears UIE; UIE and SET readable", []step{
			w(RegB, BUIE|B24h), r(RegB, BUIE|B24h), w(RegB, BSET|BUIE|B24h), r(RegB, BSET|B24h),
		}},
		{"register C flags without enables", []step{
			at(1100 * ms), r(RegC, CUF|CPF), r(RegC, 0), edges(),
			w(RegA, ADV32kHz), at(2100 * ms), r(RegC, CUF),
		}},
		{"periodic interrupt at 1024 Hz", []step{
			w(RegB, BPIE|B24h), edges(), deadline(976563, true), // next 1/1024 s after .5, rounded up
			at(976562), tick(), edges(), at(976563), tick(), edges(true), deadline(0, false),
			r(RegC, CIRQF|CPF), edges(false), r(RegC, 0), deadline(1953125, true),
		}},
		{"periodic rates 1 and 2 are 256 and 128 Hz", []step{
			w(RegA, ADV32kHz|1), w(RegB, BPIE|B24h), deadline(3906250, true),
			w(RegA, ADV32kHz|2), deadline(7812500, true), w(RegA, ADV32kHz|15), deadline(500*ms, true),
			w(RegA, ADV32kHz), deadline(0, false),
		}},
		{"update-ended interrupt", []step{
			w(RegA, ADV32kHz), w(RegB, BUIE|B24h), deadline(500*ms, true), at(500 * ms), tick(),
			edges(true), r(RegC, CIRQF|CUF), edges(false), deadline(1500*ms, true),
		}},
		{"alarm interrupt", []step{
			w(RegA, ADV32kHz), w(RegSecondsAlarm, 0x28), w(RegMinutesAlarm, 0x09), w(RegHoursAlarm, 0x15),
			w(RegB, BAIE|B24h), at(600 * ms), tick(), edges(), r(RegC, CUF),
			at(1600 * ms), tick(), edges(true), r(RegC, CIRQF|CAF|CUF), edges(false),
			w(RegSecondsAlarm, AlarmDontCare), w(RegMinutesAlarm, 0xff), w(RegHoursAlarm, 0xc3),
			at(2600 * ms), tick(), edges(true), r(RegC, CIRQF|CAF|CUF),
		}},
		{"alarm in 12-hour BCD", []step{
			w(RegA, ADV32kHz), w(RegB, 0), w(RegSecondsAlarm, 0x27), w(RegMinutesAlarm, 0x09),
			w(RegHoursAlarm, PMBit|0x03), at(600 * ms), r(RegC, CAF|CUF),
		}},
		{"alarm found across a long gap", []step{
			w(RegA, ADV32kHz), w(RegSecondsAlarm, 0x00), w(RegMinutesAlarm, 0x00), w(RegHoursAlarm, 0x03),
			at(20 * 3600 * 1000 * ms), r(RegC, CAF|CUF),
		}},
		{"divider reset holds the clock", []step{
			w(RegA, ADVReset|6), at(5000 * ms), r(RegSeconds, 0x26), r(RegA, ADVReset|6),
			r(RegC, 0), w(RegA, DefaultA), at(5499 * ms), r(RegSeconds, 0x26),
			at(5500 * ms), r(RegSeconds, 0x27),
		}},
		{"read-only bits and registers", []step{
			w(RegA, 0xff), r(RegA, 0x7f), w(RegA, DefaultA), w(RegC, 0xff), r(RegC, 0),
			w(RegD, 0), r(RegD, DVRT),
		}},
		{"CMOS RAM", []step{
			w(RAMStart, 0x11), w(0x7f, 0x22), w(0x40, 0x33), r(RAMStart, 0x11), r(0x7f, 0x22),
			r(0x40, 0x33), w(0x80|0x41, 0x44), r(0x41, 0x44),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { newRig(t).run(t, tt.steps) })
	}
}

func TestIndexPort(t *testing.T) {
	rg := newRig(t)
	if err := rg.r.Write(IndexPort, []byte{0x80 | RegSeconds}); err != nil {
		t.Fatal(err)
	}
	if !rg.r.NMIMasked() {
		t.Errorf("NMIMasked() = false after writing bit 7")
	}
	d := []byte{0, 0}
	if err := rg.r.Read(IndexPort, d); err != nil || d[0] != 0xff || d[1] != 0x26 {
		t.Errorf("2-byte read at 0x70 = %x, %v, want ff 26", d, err)
	}
	if err := rg.r.Write(IndexPort, []byte{RegSeconds}); err != nil || rg.r.NMIMasked() {
		t.Errorf("NMIMasked() = true after clearing bit 7 (%v)", err)
	}
	if err := rg.r.Read(1, d); !errors.Is(err, ErrAccess) {
		t.Errorf("read past 0x71 = %v, want ErrAccess", err)
	}
}

func TestStateRoundTrip(t *testing.T) {
	rg := newRig(t)
	rg.run(t, []step{
		w(RAMStart, 0x5a), w(RegSecondsAlarm, 0x30), w(RegB, BPIE|BUIE|B24h|BDM),
		at(700 * ms), tick(), w(RegMinutes, 12), at(900 * ms), w(0x8f, 0),
	})
	saved := rg.r.Save()
	other := &rig{b: bus.New(), ns: 123}
	other.r = New(Config{Now: func() int64 { return other.ns }, IRQ: func(l bool) { other.edges = append(other.edges, l) }})
	if err := other.b.Register(bus.PIO, Base, NumPorts, "rtc", other.r); err != nil {
		t.Fatal(err)
	}
	if err := other.r.Restore(saved); err != nil {
		t.Fatalf("Restore = %v", err)
	}
	if got := other.r.Save(); !reflect.DeepEqual(got, saved) {
		t.Errorf("Save() after Restore = %+v, want %+v", got, saved)
	}
	if !reflect.DeepEqual(other.edges, []bool{true}) {
		t.Errorf("IRQ calls on Restore = %v, want [true]", other.edges)
	}
	d1, ok1 := rg.r.NextDeadline()
	d2, ok2 := other.r.NextDeadline()
	if ok1 != ok2 || ok1 && d1-rg.ns != d2-other.ns {
		t.Errorf("deadline: restored %d (%v) ns ahead, original %d (%v)", d2-other.ns, ok2, d1-rg.ns, ok1)
	}
	readReg(t, rg.r, RegC)
	readReg(t, other.r, RegC)
	d1, ok1 = rg.r.NextDeadline()
	d2, ok2 = other.r.NextDeadline()
	if !ok1 || ok1 != ok2 || d1-rg.ns != d2-other.ns {
		t.Errorf("deadline after reading C: restored %d (%v) ns ahead, original %d (%v)", d2-other.ns, ok2, d1-rg.ns, ok1)
	}
	for _, step := range []int64{0, 1 * ms, 300 * ms, 5000 * ms} {
		rg.ns += step
		other.ns += step
		for _, reg := range []uint8{RegC, RegSeconds, RegMinutes, RegHours, RegA, RegB, RegC, RAMStart, RegYear} {
			a := readReg(t, rg.r, reg)
			b := readReg(t, other.r, reg)
			if a != b {
				t.Errorf("after +%d ns: reg %#x restored %#x, original %#x", step, reg, b, a)
			}
		}
	}
}

func readReg(t *testing.T, r *RTC, reg uint8) uint8 {
	t.Helper()
	d := []byte{reg}
	if err := r.Write(IndexPort, d); err != nil {
		t.Fatal(err)
	}
	if err := r.Read(DataPort, d); err != nil {
		t.Fatal(err)
	}
	return d[0]
}

func TestRestoreRejects(t *testing.T) {
	for _, s := range []State{
		{Index: 0x80}, {A: 0x80}, {C: 0x01}, {ChainNs: -1}, {SecondsOffset: 1 << 50},
	} {
		if err := New(Config{}).Restore(s); !errors.Is(err, ErrState) {
			t.Errorf("Restore(%+v) = %v, want ErrState", s, err)
		}
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	ns := int64(0)
	r := New(Config{Now: func() int64 { return ns }})
	_ = r.Write(IndexPort, []byte{RegB})
	_ = r.Write(DataPort, []byte{BPIE | B24h})
	d := []byte{0}
	if n := testing.AllocsPerRun(100, func() {
		ns += 3 * ms
		r.Tick(ns)
		_, _ = r.NextDeadline()
		_ = r.Write(IndexPort, []byte{RegSeconds})
		_ = r.Read(DataPort, d)
	}); n != 0 {
		t.Errorf("allocs = %v, want 0", n)
	}
}

// FuzzPorts drives the RTC with arbitrary register traffic and clock
// steps; nothing may panic and a saved state must load.
func FuzzPorts(f *testing.F) {
	f.Add([]byte{0, 0x0b, 1, 0x86, 0, 0x00, 1, 0x99, 0, 0x0b, 1, 0x06, 2, 9})
	f.Add([]byte{0, 0x0a, 1, 0x70, 3, 200, 1, 0x21, 4, 0, 5, 0})
	f.Fuzz(func(t *testing.T, prog []byte) {
		ns := int64(0)
		r := New(Config{Now: func() int64 { return ns }, Wall: func() time.Time { return wall }, IRQ: func(bool) {}})
		d := []byte{0}
		for i := 0; i+1 < len(prog); i += 2 {
			op, v := prog[i]%6, prog[i+1]
			switch op {
			case 0, 1:
				_ = r.Write(uint64(op), []byte{v})
			case 2:
				_ = r.Read(uint64(v&1), d)
			case 3:
				ns += int64(v) * 7 * ms
				r.Tick(ns)
			case 4:
				if dl, ok := r.NextDeadline(); ok && dl < ns-2*int64(time.Second) {
					t.Fatalf("NextDeadline() = %d, now %d", dl, ns)
				}
			case 5:
				if err := r.Restore(r.Save()); err != nil {
					t.Fatalf("Restore(Save()) = %v", err)
				}
			}
		}
	})
}

// TestDrivesPIC wires the RTC to IRQ 8 of the 8259A model and checks the
// periodic interrupt reaches the vCPU once per register C read.
func TestDrivesPIC(t *testing.T) {
	pc := pic.New(pic.Config{})
	ns := int64(start)
	r := New(Config{Now: func() int64 { return ns }, Wall: func() time.Time { return wall }, IRQ: func(l bool) { pc.SetIRQ(IRQ, l) }})
	for _, w := range []struct {
		d    bus.Device
		port uint64
		v    uint8
	}{
		{pc.Master(), 0, pic.ICW1Select | pic.ICW1IC4}, {pc.Master(), 1, 0x30}, {pc.Master(), 1, 0x04},
		{pc.Master(), 1, pic.ICW4uPM}, {pc.Master(), 1, 0xfb},
		{pc.Slave(), 0, pic.ICW1Select | pic.ICW1IC4}, {pc.Slave(), 1, 0x38}, {pc.Slave(), 1, 0x02},
		{pc.Slave(), 1, pic.ICW4uPM}, {pc.Slave(), 1, 0xfe},
		{r, IndexPort, RegB}, {r, DataPort, BPIE | B24h},
	} {
		if err := w.d.Write(w.port, []byte{w.v}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		dl, ok := r.NextDeadline()
		if !ok {
			t.Fatalf("period %d: no deadline", i)
		}
		ns = dl
		r.Tick(ns)
		if v := pc.Ack(); v != 0x38 {
			t.Fatalf("period %d: Ack() = %#x, want 0x38", i, v)
		}
		if got := readReg(t, r, RegC); got != CIRQF|CPF {
			t.Errorf("period %d: register C = %#x", i, got)
		}
		_ = pc.Slave().Write(0, []byte{pic.OCW2NonSpecificEOI})
		_ = pc.Master().Write(0, []byte{pic.OCW2NonSpecificEOI})
	}
}
