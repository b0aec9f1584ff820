package ioapic

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/godwit-hv/godwit/hv/bus"
)

type msg struct {
	dest    uint8
	logical bool
	mode    uint8
	vector  uint8
	level   bool
}

type rig struct {
	t    *testing.T
	io   *IOAPIC
	b    *bus.Bus
	sent []msg
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{t: t, b: bus.New()}
	r.io = New(2, func(dest uint8, logical bool, mode, vector uint8, level bool) {
		r.sent = append(r.sent, msg{dest, logical, mode, vector, level})
	})
	if err := r.b.Register(bus.MMIO, DefaultBase, Size, "ioapic", r.io); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) write32(off uint64, v uint32) {
	r.t.Helper()
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	if err := r.b.Write(bus.MMIO, DefaultBase+off, b[:]); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) read32(off uint64) uint32 {
	r.t.Helper()
	var b [4]byte
	if err := r.b.Read(bus.MMIO, DefaultBase+off, b[:]); err != nil {
		r.t.Fatal(err)
	}
	return binary.LittleEndian.Uint32(b[:])
}

func (r *rig) wreg(reg, v uint32) { r.write32(IOREGSEL, reg); r.write32(IOWIN, v) }

func (r *rig) rreg(reg uint32) uint32 { r.write32(IOREGSEL, reg); return r.read32(IOWIN) }

// route programs pin's entry (low and high halves).
func (r *rig) route(pin int, e uint64) {
	r.wreg(IOREDTBL+2*uint32(pin)+1, uint32(e>>32))
	r.wreg(IOREDTBL+2*uint32(pin), uint32(e))
}

// expect checks the messages sent since the last call.
func (r *rig) expect(want ...msg) {
	r.t.Helper()
	if len(want) == 0 && len(r.sent) == 0 {
		return
	}
	if !reflect.DeepEqual(r.sent, want) {
		r.t.Errorf("sent %+v, want %+v", r.sent, want)
	}
	r.sent = nil
}

func TestRegisters(t *testing.T) {
	r := newRig(t)
	for _, c := range []struct {
		reg, want uint32
	}{
		{IOAPICID, 2 << 24},
		{IOAPICVER, 0x00170011},
		{IOAPICARB, 2 << 24},
		{IOREDTBL, RedirMasked},
		{IOREDTBL + 1, 0},
		{IOREDTBL + 47, 0},
		{IOREDTBL + 48, 0}, // past the table
		{0xFF, 0},
	} {
		if got := r.rreg(c.reg); got != c.want {
			t.Errorf("register %#x = %#x, want %#x", c.reg, got, c.want)
		}
	}
	r.write32(IOREGSEL, 0xFFFFFF10)
	if got := r.read32(IOREGSEL); got != 0x10 {
		t.Errorf("IOREGSEL = %#x, want 0x10", got)
	}
	r.wreg(IOAPICID, 0xFFFFFFFF)
	if got := r.rreg(IOAPICID); got != 0x0F000000 {
		t.Errorf("ID after writing ones = %#x, want 0x0f000000", got)
	}
	if got := r.rreg(IOAPICARB); got != 0x0F000000 {
		t.Errorf("arbitration ID = %#x, want 0x0f000000 (loaded from the ID)", got)
	}
	r.wreg(IOAPICVER, 0)
	r.wreg(IOAPICARB, 0)
	if got := r.rreg(IOAPICVER); got != 0x00170011 {
		t.Errorf("version after a write = %#x", got)
	}
	// Reserved and read-only bits of an entry are dropped.
	r.wreg(IOREDTBL+4, 0xFFFFFFFF)
	r.wreg(IOREDTBL+5, 0xFFFFFFFF)
	if got, want := r.io.Entry(2), uint64(redirWritable); got != want {
		t.Errorf("entry 2 after writing ones = %#x, want %#x", got, want)
	}
}

func TestAccessSizes(t *testing.T) {
	r := newRig(t)
	r.wreg(IOREDTBL, 0x30)
	r.write32(IOREGSEL, IOAPICVER)
	// Byte, word and qword accesses and other offsets are ignored.
	for _, c := range []struct {
		off  uint64
		data []byte
	}{
		{IOREGSEL, []byte{IOREDTBL}},
		{IOREGSEL, []byte{IOREDTBL, 0}},
		{IOREGSEL, []byte{IOREDTBL, 0, 0, 0, 0, 0, 0, 0}},
		{IOWIN, []byte{0x31}},
		{IOWIN + 1, []byte{0x31, 0, 0, 0}},
		{0x04, []byte{IOREDTBL, 0, 0, 0}},
		{0x40, []byte{0x30, 0, 0, 0}}, // the EOI register of later versions
	} {
		if err := r.b.Write(bus.MMIO, DefaultBase+c.off, c.data); err != nil {
			t.Errorf("write %#x/%d = %v", c.off, len(c.data), err)
		}
	}
	if got := r.read32(IOREGSEL); got != IOAPICVER {
		t.Errorf("IOREGSEL = %#x, want %#x", got, IOAPICVER)
	}
	if got := r.rreg(IOREDTBL); got != 0x30 {
		t.Errorf("entry 0 = %#x, want 0x30", got)
	}
	b := []byte{0xAA, 0xAA}
	r.b.Read(bus.MMIO, DefaultBase+IOWIN, b)
	if b[0] != 0 || b[1] != 0 {
		t.Errorf("16-bit read of IOWIN = %x, want 0", b)
	}
}

func TestEdge(t *testing.T) {
	r := newRig(t)
	r.route(4, 0x34|1<<RedirDestShift)
	r.io.SetIRQ(4, true)
	r.expect(msg{dest: 1, vector: 0x34})
	r.io.SetIRQ(4, true) // no new edge
	r.expect()
	r.io.SetIRQ(4, false)
	r.io.SetIRQ(4, true)
	r.expect(msg{dest: 1, vector: 0x34})
	r.io.SetIRQ(4, false)
	// A masked edge is lost, and unmasking does not replay it.
	r.route(4, 0x34|RedirMasked)
	r.io.SetIRQ(4, true)
	r.route(4, 0x34)
	r.expect()
	if e := r.io.Entry(4); e&RedirRemoteIRR != 0 {
		t.Errorf("edge entry has remote IRR: %#x", e)
	}
	r.io.SetIRQ(-1, true)
	r.io.SetIRQ(NumPins, true)
	r.expect()
}

func TestLevelRemoteIRR(t *testing.T) {
	r := newRig(t)
	r.route(9, 0x59|RedirLevel|RedirLogical|uint64(LowestPriority)<<8|0x0F<<RedirDestShift)
	want := msg{dest: 0x0F, logical: true, mode: LowestPriority, vector: 0x59, level: true}
	r.io.SetIRQ(9, true)
	r.expect(want)
	if e := r.io.Entry(9); e&RedirRemoteIRR == 0 {
		t.Errorf("remote IRR clear after delivery: %#x", e)
	}
	r.io.SetIRQ(9, true) // still asserted: waits for EOI
	r.expect()
	r.io.EOI(0x60) // other vector
	r.expect()
	r.io.EOI(0x59) // still asserted: delivered again
	r.expect(want)
	r.io.SetIRQ(9, false)
	r.io.EOI(0x59)
	r.expect()
	if e := r.io.Entry(9); e&RedirRemoteIRR != 0 {
		t.Errorf("remote IRR set after EOI: %#x", e)
	}
	// Masked while asserted: delivered on unmask.
	r.route(9, 0x59|RedirLevel|RedirMasked)
	r.io.SetIRQ(9, true)
	r.expect()
	r.route(9, 0x59|RedirLevel)
	r.expect(msg{vector: 0x59, level: true})
	// Remote IRR is read-only.
	r.wreg(IOREDTBL+18, 0x59|RedirLevel)
	if e := r.io.Entry(9); e&RedirRemoteIRR == 0 {
		t.Errorf("write cleared remote IRR: %#x", e)
	}
}

func TestPolarity(t *testing.T) {
	r := newRig(t)
	r.io.SetIRQ(10, true) // high = inactive
	r.route(10, 0x5A|RedirLevel|RedirPolarityLow)
	r.expect()
	r.io.SetIRQ(10, false)
	r.expect(msg{vector: 0x5A, level: true})
	r.io.SetIRQ(10, true)
	r.io.EOI(0x5A)
	r.expect()
	// Edge, active low: the falling edge sends.
	r.io.SetIRQ(11, true)
	r.route(11, 0x5B|RedirPolarityLow)
	r.expect()
	r.io.SetIRQ(11, false)
	r.expect(msg{vector: 0x5B})
}

func TestNonFixedModesAreEdge(t *testing.T) {
	r := newRig(t)
	r.route(0, ExtINT<<8|RedirLevel)
	r.io.SetIRQ(0, true)
	r.expect(msg{mode: ExtINT})
	if e := r.io.Entry(0); e&RedirRemoteIRR != 0 {
		t.Errorf("ExtINT entry has remote IRR: %#x", e)
	}
}

func TestEOIFromDeliver(t *testing.T) {
	// A deliver callback that ends the interrupt at once (as a LAPIC
	// might from another vCPU) must not deadlock.
	var io *IOAPIC
	n := 0
	io = New(0, func(_ uint8, _ bool, _, vector uint8, level bool) {
		n++
		if n < 3 && level {
			io.EOI(vector)
		}
	})
	io.Write(IOREGSEL, []byte{IOREDTBL, 0, 0, 0})
	io.Write(IOWIN, []byte{0x40, RedirLevel >> 8, 0, 0})
	io.SetIRQ(0, true)
	if n != 3 {
		t.Errorf("deliveries = %d, want 3", n)
	}
}

func TestStateRoundTrip(t *testing.T) {
	r := newRig(t)
	r.wreg(IOAPICID, 5<<24)
	r.route(1, 0x31|3<<RedirDestShift)
	r.route(9, 0x59|RedirLevel)
	r.route(12, 0x5C|RedirPolarityLow|RedirMasked)
	r.io.SetIRQ(9, true)
	r.io.SetIRQ(1, true)
	r.write32(IOREGSEL, IOREDTBL+3)
	r.sent = nil
	s := r.io.Save()

	r2 := newRig(t)
	if err := r2.io.Restore(s); err != nil {
		t.Fatalf("Restore = %v", err)
	}
	if s2 := r2.io.Save(); s2 != s {
		t.Errorf("Save after Restore = %+v, want %+v", s2, s)
	}
	if got := r2.read32(IOREGSEL); got != IOREDTBL+3 {
		t.Errorf("IOREGSEL = %#x", got)
	}
	for reg := uint32(0); reg < 0x40; reg++ {
		if a, b := r.rreg(reg), r2.rreg(reg); a != b {
			t.Errorf("register %#x = %#x after restore, want %#x", reg, b, a)
		}
	}
	r2.expect()
	// Pin levels and remote IRR survive: no new edge on pin 1, and pin 9
	// is sent again at EOI.
	r2.io.SetIRQ(1, true)
	r2.expect()
	r2.io.EOI(0x59)
	r2.expect(msg{vector: 0x59, level: true})

	for _, bad := range []State{{ID: 16}, {Arb: 0x20}, {Redir: [NumPins]uint64{RedirDeliveryStatus}}} {
		if err := New(0, nil).Restore(bad); !errors.Is(err, ErrState) {
			t.Errorf("Restore(%+v) = %v, want ErrState", bad, err)
		}
	}
}

func TestHotPathAllocs(t *testing.T) {
	io := New(0, func(uint8, bool, uint8, uint8, bool) {})
	io.Write(IOREGSEL, []byte{IOREDTBL, 0, 0, 0})
	io.Write(IOWIN, []byte{0x40, RedirLevel >> 8, 0, 0})
	b := make([]byte, 4)
	n := testing.AllocsPerRun(100, func() {
		io.SetIRQ(0, true)
		io.EOI(0x40)
		io.SetIRQ(0, false)
		io.EOI(0x40)
		io.Read(IOWIN, b)
		io.Write(IOWIN, b)
	})
	if n != 0 {
		t.Errorf("hot path allocates %v times per run, want 0", n)
	}
}

func FuzzRegisters(f *testing.F) {
	f.Add([]byte{0, 0, 0x10, 0, 0, 0, 1, 0, 0x40, 0x80, 0, 0, 2, 0, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, prog []byte) {
		var io *IOAPIC
		depth := 0
		io = New(1, func(_ uint8, _ bool, _, vector uint8, level bool) {
			if depth < 4 && vector&1 != 0 {
				depth++
				io.EOI(vector) // re-entrant EOI must be safe
				depth--
			}
		})
		for len(prog) >= 6 {
			op, arg := prog[0], prog[1]
			data := prog[2:6]
			prog = prog[6:]
			switch op % 4 {
			case 0:
				io.Write(uint64(arg), data[:1<<(arg>>6)&7%5])
			case 1:
				io.Read(uint64(arg), make([]byte, 4))
			case 2:
				io.SetIRQ(int(arg)-8, data[0]&1 != 0)
			case 3:
				io.EOI(data[0])
			}
		}
		s := io.Save()
		if err := New(0, nil).Restore(s); err != nil {
			t.Fatalf("Restore(Save()) = %v", err)
		}
	})
}

var _ bus.Device = (*IOAPIC)(nil)
