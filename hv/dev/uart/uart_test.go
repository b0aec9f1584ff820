package uart_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/godwit-hv/godwit/hv/bus"
	. "github.com/godwit-hv/godwit/hv/dev/uart"
)

// step is one action of a register-poking script.
type step struct {
	op  string // "w" write reg, "r" read reg (check), "rx" receive, "irq" check line, "out" check sink
	reg int
	val uint8  // written, or expected from a read
	s   string // received bytes, or expected sink contents
	n   int    // bytes Receive should accept
	lvl bool   // expected IRQ level
}

func w(reg int, v uint8) step        { return step{op: "w", reg: reg, val: v} }
func r(reg int, v uint8) step        { return step{op: "r", reg: reg, val: v} }
func rx(s string, accepted int) step { return step{op: "rx", s: s, n: accepted} }
func irq(l bool) step                { return step{op: "irq", lvl: l} }
func out(s string) step              { return step{op: "out", s: s} }

var regName = map[int]string{0: "RBR/THR", 1: "IER", 2: "IIR/FCR", 3: "LCR", 4: "MCR", 5: "LSR", 6: "MSR", 7: "SCR"}

type rig struct {
	u     *UART
	b     *bus.Bus
	sink  bytes.Buffer
	edges []bool
}

func newRig(t *testing.T, cfg Config) *rig {
	t.Helper()
	rg := &rig{b: bus.New()}
	cfg.Out = &rg.sink
	cfg.IRQ = func(l bool) { rg.edges = append(rg.edges, l) }
	rg.u = New(cfg)
	if err := rg.b.Register(bus.PIO, COM1Port, NumRegs, "com1", rg.u); err != nil {
		t.Fatal(err)
	}
	return rg
}

func (rg *rig) run(t *testing.T, steps []step) {
	t.Helper()
	for i, s := range steps {
		switch s.op {
		case "w":
			if err := rg.b.Write(bus.PIO, COM1Port+uint64(s.reg), []byte{s.val}); err != nil {
				t.Fatalf("step %d: out(%s, %#x) = %v", i, regName[s.reg], s.val, err)
			}
		case "r":
			d := []byte{0}
			if err := rg.b.Read(bus.PIO, COM1Port+uint64(s.reg), d); err != nil {
				t.Fatalf("step %d: in(%s) = %v", i, regName[s.reg], err)
			}
			if d[0] != s.val {
				t.Errorf("step %d: in(%s) = %#02x, want %#02x", i, regName[s.reg], d[0], s.val)
			}
		case "rx":
			if n := rg.u.Receive([]byte(s.s)); n != s.n {
				t.Errorf("step %d: Receive(%q) = %d, want %d", i, s.s, n, s.n)
			}
		case "irq":
			if l := rg.u.IRQLevel(); l != s.lvl {
				t.Errorf("step %d: IRQLevel() = %v, want %v", i, l, s.lvl)
			}
		case "out":
			if got := rg.sink.String(); got != s.s {
				t.Errorf("step %d: sink = %q, want %q", i, got, s.s)
			}
		}
	}
}

func TestScripts(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{"reset values", Config{}, []step{
			r(IER, 0), r(IIR, IIRNoInt), r(LCR, 0), r(MCR, 0), r(LSR, LSRTHRE|LSRTEMT),
			r(MSR, MSRDCD|MSRDSR|MSRCTS), irq(false),
		}},
		{"scratch and read-only bits", Config{}, []step{
			w(SCR, 0xa5), r(SCR, 0xa5), w(IER, 0xff), r(IER, 0x0f), w(IER, 0),
			w(MCR, 0xff), r(MCR, 0x1f), w(MCR, 0), w(LSR, 0), r(LSR, LSRTHRE|LSRTEMT),
		}},
		{"divisor latch", Config{}, []step{
			w(IER, IERRxData), w(LCR, LCRDLAB|3), w(DLL, 0x01), w(DLM, 0x02),
			r(DLL, 0x01), r(DLM, 0x02), r(LCR, LCRDLAB|3), w(LCR, 3),
			r(IER, IERRxData), w(THR, 'x'), out("x"), w(LCR, LCRDLAB), r(DLL, 0x01),
		}},
		{"transmit and THRE interrupt", Config{}, []step{
			w(THR, 'h'), w(THR, 'i'), out("hi"), irq(false),
			w(IER, IERTHRE), irq(true), r(IIR, IIRTHRE), irq(false), r(IIR, IIRNoInt),
			w(THR, '!'), out("hi!"), irq(true), r(IIR, IIRTHRE), r(IIR, IIRNoInt),
			w(THR, '?'), irq(true), w(IER, 0), irq(false), r(IIR, IIRNoInt),
		}},
		{"receive without FIFO", Config{}, []step{
			rx("ab", 1), r(LSR, LSRDataReady|LSRTHRE|LSRTEMT), irq(false),
			w(IER, IERRxData), irq(true), r(IIR, IIRRxData),
			r(RBR, 'a'), irq(false), r(IIR, IIRNoInt), r(LSR, LSRTHRE|LSRTEMT),
			rx("b", 1), irq(true), r(RBR, 'b'), r(RBR, 0), irq(false),
		}},
		{"FIFO trigger and timeout", Config{}, []step{
			w(FCR, FCREnable|FCRRxReset|FCRTxReset|3<<FCRTrigShift), r(IIR, IIRFIFOs|IIRNoInt),
			w(IER, IERRxData), rx("0123456789abcdefXYZ", 16), r(IIR, IIRFIFOs|IIRRxData),
			r(RBR, '0'), r(RBR, '1'), r(IIR, IIRFIFOs|IIRRxData), r(RBR, '2'),
			r(IIR, IIRFIFOs|IIRTimeout), rx("XYZ", 3), r(IIR, IIRFIFOs|IIRRxData),
		}},
		{"FIFO trigger levels", Config{}, []step{
			w(IER, IERRxData),
			w(FCR, FCREnable|0<<FCRTrigShift), rx("a", 1), r(IIR, IIRFIFOs|IIRRxData), r(RBR, 'a'),
			w(FCR, FCREnable|1<<FCRTrigShift), rx("abc", 3), r(IIR, IIRFIFOs|IIRTimeout),
			rx("d", 1), r(IIR, IIRFIFOs|IIRRxData),
			w(FCR, FCREnable|FCRRxReset|2<<FCRTrigShift), r(LSR, LSRTHRE|LSRTEMT), r(IIR, IIRFIFOs|IIRNoInt),
			rx("1234567", 7), r(IIR, IIRFIFOs|IIRTimeout), rx("8", 1), r(IIR, IIRFIFOs|IIRRxData),
			w(FCR, 0), r(IIR, IIRNoInt), r(LSR, LSRTHRE|LSRTEMT), rx("xy", 1),
		}},
		{"loopback", Config{}, []step{
			w(MCR, MCRLoop), r(MSR, MSRDeltaCTS|MSRDeltaDSR|MSRDeltaDCD), r(MSR, 0),
			w(THR, 'L'), out(""), r(LSR, LSRDataReady|LSRTHRE|LSRTEMT), r(RBR, 'L'),
			rx("outside", 0),
			w(MCR, MCRLoop|MCRRTS|MCRDTR|MCROUT1|MCROUT2),
			r(MSR, MSRCTS|MSRDSR|MSRRI|MSRDCD|MSRDeltaCTS|MSRDeltaDSR|MSRDeltaDCD),
			w(MCR, MCRLoop|MCRRTS|MCRDTR|MCROUT2), r(MSR, MSRCTS|MSRDSR|MSRDCD|MSRTERI),
			w(THR, '1'), w(THR, '2'), r(LSR, LSROverrun|LSRDataReady|LSRTHRE|LSRTEMT),
			r(LSR, LSRDataReady|LSRTHRE|LSRTEMT), r(RBR, '1'),
			w(MCR, 0), r(MSR, MSRDCD|MSRDSR|MSRCTS), // same lines outside: no deltas
			w(THR, 'o'), out("o"),
		}},
		{"interrupt priority", Config{}, []step{
			w(FCR, FCREnable), w(MCR, MCRLoop), r(MSR, MSRDeltaCTS|MSRDeltaDSR|MSRDeltaDCD),
			w(IER, IERRxData|IERTHRE|IERLineStatus|IERModem), // THRE latched on enable
			r(IIR, IIRFIFOs|IIRTHRE), w(MCR, MCRLoop|MCRRTS), // modem delta
			w(THR, 'a'), // latches THRE again and fills the FIFO
			r(IIR, IIRFIFOs|IIRRxData),
		}},
		{"interrupt priority full", Config{}, []step{
			w(MCR, MCRLoop), r(MSR, MSRDeltaCTS|MSRDeltaDSR|MSRDeltaDCD),
			w(THR, 'a'), w(THR, 'b'), // no FIFO: overrun
			w(MCR, MCRLoop|MCRDTR), // modem delta
			w(IER, IERRxData|IERTHRE|IERLineStatus|IERModem),
			r(IIR, IIRLineStatus), r(LSR, LSROverrun|LSRDataReady|LSRTHRE|LSRTEMT),
			r(IIR, IIRRxData), r(RBR, 'a'),
			r(IIR, IIRTHRE), r(IIR, IIRModem), irq(true), r(MSR, MSRDSR|MSRDeltaDSR),
			r(IIR, IIRNoInt), irq(false),
		}},
		{"OUT2 gates the line", Config{GateIRQWithOUT2: true}, []step{
			w(IER, IERTHRE), r(IIR, IIRTHRE), w(THR, 'x'), irq(false),
			w(MCR, MCROUT2), irq(true), r(IIR, IIRTHRE), irq(false),
		}},
		{"modem status from outside", Config{ModemStatus: MSRCTS}, []step{
			r(MSR, MSRCTS), w(IER, IERModem), irq(false),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newRig(t, tt.cfg).run(t, tt.steps)
		})
	}
}

func TestExternalModemLines(t *testing.T) {
	rg := newRig(t, Config{})
	rg.run(t, []step{w(IER, IERModem)})
	rg.u.SetModemStatus(MSRCTS | MSRRI)
	rg.run(t, []step{irq(true), r(IIR, IIRModem), r(MSR, MSRCTS|MSRRI|MSRDeltaDSR|MSRDeltaDCD), irq(false)})
	rg.u.SetModemStatus(MSRCTS)
	rg.run(t, []step{r(MSR, MSRCTS|MSRTERI)})
}

func TestTHREEdges(t *testing.T) {
	// With THRE pending, each THR write drops the line and raises it again
	// so an edge-triggered PIC sees every THRE interrupt.
	rg := newRig(t, Config{})
	rg.run(t, []step{w(IER, IERTHRE), w(THR, 'a'), w(THR, 'b')})
	if got, want := fmt.Sprint(rg.edges), "[true false true false true]"; got != want {
		t.Errorf("IRQ edges = %s, want %s", got, want)
	}
}

type failWriter struct{ err error }

func (f failWriter) Write(p []byte) (int, error) { return 0, f.err }

func TestSinkError(t *testing.T) {
	boom := errors.New("console gone")
	u := New(Config{Out: failWriter{boom}})
	if err := u.Write(THR, []byte{'x'}); !errors.Is(err, boom) {
		t.Errorf("THR write with a failing sink = %v, want it wrapped", err)
	}
	d := []byte{0}
	if err := u.Read(LSR, d); err != nil || d[0] != LSRTHRE|LSRTEMT {
		t.Errorf("LSR after failed output = %#x, %v, want %#x", d[0], err, LSRTHRE|LSRTEMT)
	}
	if err := u.Read(7, make([]byte, 2)); err == nil {
		t.Errorf("Read past the last register = nil, want error")
	}
}

func TestStateRoundTrip(t *testing.T) {
	rg := newRig(t, Config{})
	rg.run(t, []step{
		w(LCR, LCRDLAB), w(DLL, 0x0c), w(DLM, 0x01), w(LCR, 3), w(SCR, 0x5a),
		w(FCR, FCREnable|2<<FCRTrigShift), w(MCR, MCRDTR|MCRRTS|MCROUT2),
		w(IER, IERRxData|IERTHRE|IERModem), rx("hello", 5), r(RBR, 'h'),
	})
	rg.u.SetModemStatus(MSRCTS | MSRDCD)
	saved := rg.u.Save()

	var level []bool
	u2 := New(Config{IRQ: func(l bool) { level = append(level, l) }})
	if err := u2.Restore(saved); err != nil {
		t.Fatalf("Restore = %v", err)
	}
	if got := u2.Save(); !reflect.DeepEqual(got, saved) {
		t.Errorf("Save() after Restore = %+v, want %+v", got, saved)
	}
	if !reflect.DeepEqual(level, []bool{true}) {
		t.Errorf("IRQ calls on Restore = %v, want [true]", level)
	}
	// Both UARTs now behave the same.
	for _, reg := range []int{IIR, LSR, MSR, RBR, RBR, IIR, LCR, MCR, SCR, IER, RBR, RBR, LSR, IIR} {
		a, b := []byte{0}, []byte{0}
		if err := rg.u.Read(uint64(reg), a); err != nil {
			t.Fatal(err)
		}
		if err := u2.Read(uint64(reg), b); err != nil {
			t.Fatal(err)
		}
		if a[0] != b[0] {
			t.Errorf("in(%s): restored = %#x, original = %#x", regName[reg], b[0], a[0])
		}
	}
	// Save returns a copy.
	saved.RxFIFO[0] = 'Z'
	if got := rg.u.Save(); strings.Contains(string(got.RxFIFO), "Z") {
		t.Errorf("Save shares its FIFO slice with the device")
	}
}

func TestRestoreRejects(t *testing.T) {
	for _, s := range []State{
		{RxFIFO: []byte("ab")}, // no FIFO: one byte at most
		{FCR: FCREnable, RxFIFO: make([]byte, 17)},
		{IER: 0x10},
		{MCR: 0x20},
		{LSRErrors: LSRDataReady},
		{FCR: FCREnable | FCRRxReset},
	} {
		if err := New(Config{}).Restore(s); !errors.Is(err, ErrState) {
			t.Errorf("Restore(%+v) = %v, want ErrState", s, err)
		}
	}
}

func TestRegisterAccessDoesNotAllocate(t *testing.T) {
	u := New(Config{})
	d := []byte{0}
	if n := testing.AllocsPerRun(100, func() {
		_ = u.Write(THR, d)
		_ = u.Read(IIR, d)
		_ = u.Read(LSR, d)
	}); n != 0 {
		t.Errorf("register access allocs = %v, want 0", n)
	}
}
