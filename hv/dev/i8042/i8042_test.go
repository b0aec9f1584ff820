package i8042_test

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/godwit-hv/godwit/hv/bus"
	"github.com/godwit-hv/godwit/hv/dev/devtest"
	. "github.com/godwit-hv/godwit/hv/dev/i8042"
)

type rig struct {
	c      *Controller
	b      *bus.Bus
	events []string
}

func newRig(t testing.TB) *rig {
	t.Helper()
	rg := &rig{b: bus.New()}
	rg.c = New(Config{
		Reset: func() { rg.events = append(rg.events, "reset") },
		A20:   func(on bool) { rg.events = append(rg.events, fmt.Sprintf("a20=%v", on)) },
		IRQ:   func(l bool) { rg.events = append(rg.events, fmt.Sprintf("irq=%v", l)) },
	})
	if err := rg.b.Register(bus.PIO, DataPort, 1, "i8042-data", rg.c.Data()); err != nil {
		t.Fatal(err)
	}
	if err := rg.b.Register(bus.PIO, CommandPort, 1, "i8042-cmd", rg.c.Command()); err != nil {
		t.Fatal(err)
	}
	return rg
}

type step struct {
	op   string // "out", "in", "ev"
	port uint64
	val  uint8
	ev   []string
}

func out(port uint64, v uint8) step { return step{op: "out", port: port, val: v} }
func in(port uint64, v uint8) step  { return step{op: "in", port: port, val: v} }
func ev(e ...string) step           { return step{op: "ev", ev: e} }

func (rg *rig) run(t *testing.T, steps []step) {
	t.Helper()
	for i, s := range steps {
		switch s.op {
		case "out":
			devtest.Out(t, rg.b, i, s.port, s.val)
		case "in":
			devtest.In(t, rg.b, i, s.port, s.val)
		case "ev":
			if !reflect.DeepEqual(rg.events, s.ev) {
				t.Errorf("step %d: events = %q, want %q", i, rg.events, s.ev)
			}
			rg.events = nil
		}
	}
}

const (
	idle = StatusINH | StatusSYS
	cmdA = StatusINH | StatusSYS | StatusA2
)

func TestScripts(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"power-on status; empty data port repeats", []step{
			in(CommandPort, idle), in(DataPort, 0), in(DataPort, 0), ev(),
		}},
		{"self test", []step{
			out(CommandPort, CmdSelfTest), in(CommandPort, cmdA|StatusOBF), ev("irq=true"),
			in(DataPort, SelfTestOK), in(CommandPort, cmdA), ev("irq=false"), in(DataPort, SelfTestOK),
		}},
		{"read and write the command byte", []step{
			out(CommandPort, CmdReadCommandByte), in(DataPort, DefaultCommandByte), ev("irq=true", "irq=false"),
			out(CommandPort, CmdWriteCommandByte), out(DataPort, 0xff), in(CommandPort, idle),
			out(CommandPort, CmdReadCommandByte), in(DataPort, 0x7f), ev("irq=true", "irq=false"),
			out(CommandPort, CmdWriteCommandByte), out(DataPort, 0x00), in(CommandPort, StatusINH),
			out(CommandPort, CmdReadCommandByte), ev(), in(DataPort, 0x00),
		}},
		{"reset pulse", []step{
			out(CommandPort, 0xfe), ev("reset"), out(CommandPort, 0xff), ev(), out(CommandPort, 0xf0), ev("reset"),
		}},
		{"A20 through the output port", []step{
			out(CommandPort, CmdReadOutputPort), in(DataPort, DefaultOutputPort), ev("irq=true", "irq=false"),
			out(CommandPort, CmdWriteOutputPort), out(DataPort, 0xdd), ev("a20=false"),
			out(CommandPort, CmdWriteOutputPort), out(DataPort, 0xdd), ev(),
			out(CommandPort, CmdWriteOutputPort), out(DataPort, 0xdf), ev("a20=true"),
			out(CommandPort, CmdWriteOutputPort), out(DataPort, 0xde), ev("reset"),
			out(CommandPort, CmdReadOutputPort), in(DataPort, 0xcf), ev("irq=true", "irq=false"),
		}},
		{"no keyboard answers with a timeout", []step{
			out(DataPort, 0xf2), in(CommandPort, idle|StatusOBF|StatusTimeout), ev("irq=true"),
			in(DataPort, NoDevice), in(CommandPort, idle), ev("irq=false"),
			out(CommandPort, CmdDisableKbd), out(DataPort, 0xff), in(CommandPort, idle),
			out(CommandPort, CmdEnableKbd), out(CommandPort, CmdReadCommandByte), in(DataPort, DefaultCommandByte),
		}},
		{"aux enable/disable and unknown commands", []step{
			out(CommandPort, CmdDisableAux), out(CommandPort, 0xd3), out(CommandPort, 0x00),
			out(CommandPort, CmdReadCommandByte), in(DataPort, DefaultCommandByte|CmdByteAuxOff),
			out(CommandPort, CmdEnableAux), out(CommandPort, CmdReadCommandByte), in(DataPort, DefaultCommandByte),
			out(CommandPort, CmdInterfaceTest), in(DataPort, 0x00),
			out(CommandPort, CmdAuxInterfaceTest), in(DataPort, AuxTestClockHigh),
		}},
		{"Linux's AUX probe fails fast", []step{
			out(CommandPort, 0xd3), out(DataPort, 0x5a), in(CommandPort, idle|StatusOBF|StatusTimeout),
			in(DataPort, NoDevice), // no StatusAUXB: the loop test failed
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { newRig(t).run(t, tt.steps) })
	}
}

func TestAccessSize(t *testing.T) {
	c := New(Config{})
	if err := c.Data().Read(0, make([]byte, 2)); !errors.Is(err, ErrAccess) {
		t.Errorf("2-byte read = %v, want ErrAccess", err)
	}
	if err := c.Command().Write(1, []byte{0}); !errors.Is(err, ErrAccess) {
		t.Errorf("write at offset 1 = %v, want ErrAccess", err)
	}
}

func TestStateRoundTrip(t *testing.T) {
	rg := newRig(t)
	rg.run(t, []step{
		out(CommandPort, CmdWriteOutputPort), out(DataPort, 0xdd), out(CommandPort, CmdSelfTest),
		out(CommandPort, CmdWriteCommandByte),
	})
	saved := rg.c.Save()
	var irqs []bool
	c2 := New(Config{IRQ: func(l bool) { irqs = append(irqs, l) }})
	if err := c2.Restore(saved); err != nil {
		t.Fatalf("Restore = %v", err)
	}
	if got := c2.Save(); !reflect.DeepEqual(got, saved) {
		t.Errorf("Save() after Restore = %+v, want %+v", got, saved)
	}
	if !reflect.DeepEqual(irqs, []bool{true}) || c2.A20() {
		t.Errorf("restored: IRQ calls %v, A20 %v; want [true], false", irqs, c2.A20())
	}
	for _, op := range []struct {
		d    func(*Controller) bus.Device
		w    bool
		v    uint8
		name string
	}{
		{(*Controller).Command, false, 0, "status"}, {(*Controller).Data, false, 0, "data"},
		{(*Controller).Data, true, 0x01, "command byte"}, {(*Controller).Command, true, CmdReadCommandByte, "0x20"},
		{(*Controller).Command, false, 0, "status"}, {(*Controller).Data, false, 0, "data"},
	} {
		a, b := []byte{op.v}, []byte{op.v}
		if op.w {
			_ = op.d(rg.c).Write(0, a)
			_ = op.d(c2).Write(0, b)
			continue
		}
		_ = op.d(rg.c).Read(0, a)
		_ = op.d(c2).Read(0, b)
		if a[0] != b[0] {
			t.Errorf("%s: restored %#x, original %#x", op.name, b[0], a[0])
		}
	}
}

func TestRestoreRejects(t *testing.T) {
	good := New(Config{}).Save()
	for i, mut := range []func(*State){
		func(s *State) { s.CommandByte = 0x80 },
		func(s *State) { s.OutputPort = 0 },
		func(s *State) { s.OutputPort |= OutPortOBF },
		func(s *State) { s.PendingCommand = 0xd3 },
	} {
		s := good
		mut(&s)
		if err := New(Config{}).Restore(s); !errors.Is(err, ErrState) {
			t.Errorf("case %d: Restore(%+v) = %v, want ErrState", i, s, err)
		}
	}
}

// FuzzPorts: arbitrary traffic never panics, and Save always restores.
func FuzzPorts(f *testing.F) {
	f.Add([]byte{1, 0xaa, 0, 0, 1, 0xd1, 2, 0xdd, 1, 0xfe})
	f.Fuzz(func(t *testing.T, prog []byte) {
		c := New(Config{Reset: func() {}, A20: func(bool) {}, IRQ: func(bool) {}})
		d := []byte{0}
		for i := 0; i+1 < len(prog); i += 2 {
			op, v := prog[i]%5, prog[i+1]
			switch op {
			case 0:
				_ = c.Data().Read(0, d)
				_ = c.Command().Read(0, d)
			case 1:
				_ = c.Command().Write(0, []byte{v})
			case 2:
				_ = c.Data().Write(0, []byte{v})
			case 3:
				if err := c.Restore(c.Save()); err != nil {
					t.Fatalf("Restore(Save()) = %v", err)
				}
			case 4:
				_ = c.Data().Read(uint64(v), d)
			}
		}
	})
}
