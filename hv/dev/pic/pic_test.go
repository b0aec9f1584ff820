package pic_test

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/godwit-hv/godwit/hv/bus"
	"github.com/godwit-hv/godwit/hv/dev/devtest"
	. "github.com/godwit-hv/godwit/hv/dev/pic"
)

type rig struct {
	p     *PIC
	b     *bus.Bus
	edges []bool
}

func newRig(t testing.TB) *rig {
	t.Helper()
	rg := &rig{b: bus.New()}
	rg.p = New(Config{INTR: func(l bool) { rg.edges = append(rg.edges, l) }})
	for _, r := range []struct {
		base uint64
		d    bus.Device
	}{{MasterBase, rg.p.Master()}, {SlaveBase, rg.p.Slave()}, {ELCRBase, rg.p.ELCR()}} {
		if err := rg.b.Register(bus.PIO, r.base, NumPorts, fmt.Sprintf("pic%#x", r.base), r.d); err != nil {
			t.Fatal(err)
		}
	}
	return rg
}

// step is one action of a script.
type step struct {
	op   string // "out", "in", "irq", "ack", "pending", "intr"
	port uint64
	val  uint8 // written, expected read, vector
	n    int   // irq number
	lvl  bool  // irq level / expected pending ok / expected INTR
}

func out(port uint64, v uint8) step { return step{op: "out", port: port, val: v} }
func in(port uint64, v uint8) step  { return step{op: "in", port: port, val: v} }
func irq(n int, l bool) step        { return step{op: "irq", n: n, lvl: l} }
func ack(vec uint8) step            { return step{op: "ack", val: vec} }
func pending(vec uint8) step        { return step{op: "pending", val: vec, lvl: true} }
func none() step                    { return step{op: "pending"} }

// linuxInit is the sequence Linux's init_8259A writes: vectors 0x30 and
// 0x38, cascade on IR2, 8086 mode, everything masked but the cascade.
func linuxInit(aeoi bool) []step {
	icw4 := uint8(ICW4uPM)
	if aeoi {
		icw4 |= ICW4AEOI
	}
	return []step{
		out(0x21, 0xff), out(0xa1, 0xff),
		out(0x20, ICW1Select|ICW1IC4), out(0x21, 0x30), out(0x21, 1<<CascadeIRQ), out(0x21, icw4),
		out(0xa0, ICW1Select|ICW1IC4), out(0xa1, 0x38), out(0xa1, CascadeIRQ), out(0xa1, ICW4uPM),
		out(0x21, 0xfb), out(0xa1, 0xff),
	}
}

func (rg *rig) run(t *testing.T, steps []step) {
	t.Helper()
	for i, s := range steps {
		switch s.op {
		case "out":
			devtest.Out(t, rg.b, i, s.port, s.val)
		case "in":
			devtest.In(t, rg.b, i, s.port, s.val)
		case "irq":
			rg.p.SetIRQ(s.n, s.lvl)
		case "ack":
			if v := rg.p.Ack(); v != s.val {
				t.Errorf("step %d: Ack() = %#x, want %#x", i, v, s.val)
			}
		case "pending":
			v, ok := rg.p.Pending()
			if ok != s.lvl || ok && v != s.val {
				t.Errorf("step %d: Pending() = %#x, %v, want %#x, %v", i, v, ok, s.val, s.lvl)
			}
			if o := rg.p.Output(); o != ok {
				t.Errorf("step %d: Output() = %v, Pending ok = %v", i, o, ok)
			}
		}
	}
}

func seq(parts ...[]step) []step {
	var all []step
	for _, p := range parts {
		all = append(all, p...)
	}
	return all
}

const (
	nsEOI   = OCW2NonSpecificEOI
	readIRR = OCW3Select | OCW3RR
	readISR = OCW3Select | OCW3RR | OCW3RIS
)

func TestScripts(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"initialization", seq(linuxInit(false), []step{
			in(0x21, 0xfb), in(0xa1, 0xff), in(0x20, 0), none(),
			irq(0, true), none(), in(0x20, 0x01), out(0x21, 0xfa), pending(0x30),
		})},
		{"edge IRQ0: ack, ISR, EOI", seq(linuxInit(false), []step{
			out(0x21, 0xfa), irq(0, true), pending(0x30), ack(0x30), none(),
			out(0x20, readISR), in(0x20, 0x01), out(0x20, readIRR), in(0x20, 0x00),
			irq(0, false), irq(0, true), none(), // latched in IRR, blocked by ISR
			in(0x20, 0x01), out(0x20, nsEOI), pending(0x30), ack(0x30), out(0x20, nsEOI), none(),
		})},
		{"priority and nesting", seq(linuxInit(false), []step{
			out(0x21, 0x00), irq(3, true), irq(1, true), pending(0x31), ack(0x31),
			none(), // IR3 is lower than IR1 in service
			irq(0, true), pending(0x30), ack(0x30), out(0x20, readISR), in(0x20, 0x03),
			out(0x20, nsEOI), in(0x20, 0x02), none(), out(0x20, nsEOI), pending(0x33), ack(0x33),
			out(0x20, OCW2SpecificEOI|3), in(0x20, 0), none(),
		})},
		{"cascade to the slave", seq(linuxInit(false), []step{
			out(0xa1, 0xfe), irq(8, true), pending(0x38), ack(0x38), none(),
			out(0xa0, readISR), in(0xa0, 0x01), out(0x20, readISR), in(0x20, 0x04),
			out(0xa0, nsEOI), out(0x20, nsEOI), in(0xa0, 0), in(0x20, 0), none(),
			irq(8, false), irq(8, true), pending(0x38),
		})},
		{"spurious IRQ7", seq(linuxInit(false), []step{
			out(0x21, 0x00), irq(5, true), pending(0x35), out(0x21, 0xff), none(),
			ack(0x37), out(0x20, readISR), in(0x20, 0x00),
		})},
		{"spurious IRQ15", seq(linuxInit(false), []step{
			out(0xa1, 0x00), irq(12, true), pending(0x3c), out(0xa1, 0xff), none(),
			ack(0x37), // the slave's request is gone before INTA: master IR7
			out(0xa1, 0x00), pending(0x3c),
		})},
		{"level triggering via ELCR", seq(linuxInit(false), []step{
			out(0x4d0, 0xff), in(0x4d0, 0xf8), out(0x4d1, 0xff), in(0x4d1, 0xde),
			out(0x21, 0x00), irq(5, true), ack(0x35), out(0x20, nsEOI), pending(0x35),
			irq(5, false), none(), in(0x20, 0x00),
			out(0x4d0, 0x00), irq(5, true), ack(0x35), out(0x20, nsEOI), none(),
		})},
		{"ICW1 LTIM", []step{
			out(0x20, ICW1Select|ICW1SNGL|ICW1LTIM), out(0x21, 0x08), irq(4, true),
			pending(0x0c), ack(0x0c), out(0x20, nsEOI), pending(0x0c), irq(4, false), none(),
		}},
		{"auto EOI", seq(linuxInit(true), []step{
			out(0x21, 0x00), irq(1, true), ack(0x31), out(0x20, readISR), in(0x20, 0),
			irq(1, false), irq(1, true), pending(0x31),
		})},
		{"rotate on non-specific EOI", seq(linuxInit(false), []step{
			out(0x21, 0x00), irq(1, true), irq(4, true), ack(0x31),
			out(0x20, OCW2RotateNonSpec), // IR1 becomes lowest: IR2 highest
			pending(0x34), irq(1, false), irq(1, true), ack(0x34), out(0x20, nsEOI), ack(0x31),
		})},
		{"set priority and specific rotate", seq(linuxInit(false), []step{
			out(0x21, 0x00), out(0x20, OCW2SetPriority|4), irq(3, true), irq(6, true),
			pending(0x36), out(0x20, OCW2SetPriority|7), pending(0x33), ack(0x33),
			out(0x20, OCW2RotateSpecific|3), pending(0x36),
		})},
		{"rotate in AEOI mode", seq(linuxInit(true), []step{
			out(0x21, 0x00), out(0x20, OCW2RotateAEOISet), irq(0, true), irq(6, true),
			ack(0x30), irq(0, false), irq(0, true), ack(0x36), ack(0x30),
			out(0x20, OCW2RotateAEOIClear),
		})},
		{"poll", seq(linuxInit(false), []step{
			out(0x21, 0x00), out(0x20, OCW3Select|OCW3P), in(0x20, 0x00),
			irq(6, true), out(0x20, OCW3Select|OCW3P), in(0x21, PollInterrupt|6),
			out(0x20, readISR), in(0x20, 0x40), in(0x21, 0x00), // IMR again
		})},
		{"special mask mode", seq(linuxInit(false), []step{
			out(0x21, 0x00), irq(2+1, true), ack(0x33), irq(5, true), none(),
			out(0x21, 0x08), out(0x20, OCW3Select|OCW3ESMM|OCW3SMM), pending(0x35),
			out(0x20, OCW3Select|OCW3ESMM), none(),
		})},
		{"special fully nested", []step{
			out(0x20, ICW1Select|ICW1IC4), out(0x21, 0x30), out(0x21, 0x04), out(0x21, ICW4uPM|ICW4SFNM),
			out(0xa0, ICW1Select|ICW1IC4), out(0xa1, 0x38), out(0xa1, 2), out(0xa1, ICW4uPM),
			irq(13, true), ack(0x3d), irq(9, true), pending(0x39), ack(0x39),
		}},
		{"ICW1 resets the edge latches", seq(linuxInit(false), []step{
			irq(3, true), in(0x20, 0x08), out(0x20, ICW1Select|ICW1IC4), in(0x20, 0x00),
			out(0x21, 0x30), out(0x21, 0x04), out(0x21, 1), in(0x21, 0x00), none(),
			irq(3, true), none(), irq(3, false), irq(3, true), pending(0x33),
		})},
		{"IR2 without a slave in ICW3 is an ordinary input", []step{
			out(0x20, ICW1Select|ICW1IC4), out(0x21, 0x30), out(0x21, 0x00), out(0x21, ICW4uPM),
			out(0xa0, ICW1Select|ICW1SNGL), out(0xa1, 0x38), irq(8, true), pending(0x32), ack(0x32),
		}},
		{"IRQ2 and out-of-range ignored", seq(linuxInit(false), []step{
			out(0x21, 0x00), irq(2, true), irq(-1, true), irq(16, true), none(),
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { newRig(t).run(t, tt.steps) })
	}
}

func TestINTRCallback(t *testing.T) {
	rg := newRig(t)
	rg.run(t, seq(linuxInit(false), []step{
		out(0x21, 0x00), irq(0, true), ack(0x30), out(0x20, nsEOI), irq(0, false),
	}))
	if want := []bool{true, false}; !reflect.DeepEqual(rg.edges, want) {
		t.Errorf("INTR edges = %v, want %v", rg.edges, want)
	}
}

func TestWideAccessAndErrors(t *testing.T) {
	rg := newRig(t)
	if err := rg.p.Master().Write(0, []byte{ICW1Select | ICW1SNGL, 0x20}); err != nil {
		t.Fatal(err)
	}
	d := make([]byte, 2)
	if err := rg.p.Master().Read(0, d); err != nil || d[1] != 0 {
		t.Errorf("2-byte read = %x, %v", d, err)
	}
	if err := rg.p.Master().Read(1, d); !errors.Is(err, ErrAccess) {
		t.Errorf("read past the ports = %v, want ErrAccess", err)
	}
	if err := rg.p.ELCR().Write(2, d[:1]); !errors.Is(err, ErrAccess) {
		t.Errorf("ELCR write past the ports = %v, want ErrAccess", err)
	}
}

func TestStateRoundTrip(t *testing.T) {
	rg := newRig(t)
	rg.run(t, seq(linuxInit(false), []step{
		out(0x4d1, 0x08), out(0x21, 0x00), out(0xa1, 0x00), irq(11, true), irq(4, true),
		irq(1, true), ack(0x31), out(0x20, nsEOI), out(0xa0, readISR), out(0x20, OCW2SetPriority|5), pending(0x3b),
	}))
	saved := rg.p.Save()
	var lines []bool
	p2 := New(Config{INTR: func(l bool) { lines = append(lines, l) }})
	if err := p2.Restore(saved); err != nil {
		t.Fatalf("Restore = %v", err)
	}
	if got := p2.Save(); !reflect.DeepEqual(got, saved) {
		t.Errorf("Save() after Restore = %+v, want %+v", got, saved)
	}
	if !reflect.DeepEqual(lines, []bool{true}) {
		t.Errorf("INTR calls on Restore = %v, want [true]", lines)
	}
	for i := 0; i < 4; i++ {
		v1, ok1 := rg.p.Pending()
		v2, ok2 := p2.Pending()
		if v1 != v2 || ok1 != ok2 {
			t.Fatalf("round %d: restored Pending = %#x, %v; original %#x, %v", i, v2, ok2, v1, ok1)
		}
		if a, b := rg.p.Ack(), p2.Ack(); a != b {
			t.Errorf("round %d: restored Ack = %#x, original %#x", i, b, a)
		}
		for _, d := range []bus.Device{rg.p.Master(), p2.Master()} {
			_ = d.Write(0, []byte{nsEOI})
		}
	}
}

func TestRestoreRejects(t *testing.T) {
	for _, s := range []State{
		{Master: ChipState{InitStep: 1}},
		{Slave: ChipState{InitStep: 5}},
		{Master: ChipState{LowestLevel: 8}},
		{Master: ChipState{ELCR: 0x01}},
		{Slave: ChipState{ELCR: 0x01}},
		{Master: ChipState{ICW4: 0x20}},
		{Slave: ChipState{VectorBase: 0x31}},
	} {
		if err := New(Config{}).Restore(s); !errors.Is(err, ErrState) {
			t.Errorf("Restore(%+v) = %v, want ErrState", s, err)
		}
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	p := New(Config{})
	m := p.Master()
	d := []byte{0}
	if n := testing.AllocsPerRun(100, func() {
		p.SetIRQ(3, true)
		_, _ = p.Pending()
		_ = p.Ack()
		_ = m.Write(0, d)
		_ = m.Read(1, d)
		p.SetIRQ(3, false)
	}); n != 0 {
		t.Errorf("allocs = %v, want 0", n)
	}
}

// FuzzPorts drives the pair with arbitrary port traffic, IRQ changes and
// INTA cycles; nothing may panic and Pending must agree with Ack.
func FuzzPorts(f *testing.F) {
	f.Add([]byte{0x00, 0x11, 0x01, 0x30, 0x01, 0x04, 0x01, 0x01, 0x05, 0x03, 0x06, 0x00})
	f.Add([]byte{0x02, 0x11, 0x04, 0xff, 0x05, 0x0b, 0x06, 0x00, 0x00, 0x0c})
	f.Fuzz(func(t *testing.T, prog []byte) {
		p := New(Config{})
		devs := []bus.Device{p.Master(), p.Slave(), p.ELCR()}
		for i := 0; i+1 < len(prog); i += 2 {
			op, v := prog[i]%8, prog[i+1]
			switch op {
			case 0, 1, 2:
				_ = devs[op].Write(uint64(v>>7), []byte{v})
			case 3:
				_ = devs[v%3].Read(uint64(v>>7), []byte{0})
			case 4:
				_ = devs[v%3].Write(uint64(v>>6&1), []byte{v})
			case 5:
				p.SetIRQ(int(v&0x1f), v&0x80 != 0)
			case 6:
				want, ok := p.Pending()
				if got := p.Ack(); ok && got != want {
					t.Fatalf("Ack() = %#x, Pending() said %#x", got, want)
				}
			case 7:
				s := p.Save()
				if err := p.Restore(s); err != nil {
					t.Fatalf("Restore(Save()) = %v", err)
				}
			}
		}
	})
}
