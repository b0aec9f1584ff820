package lapic

import (
	"encoding/binary"
	"testing"
)

// fakeClock is a settable clock in ns.
type fakeClock struct{ now int64 }

func (c *fakeClock) Clock() int64 { return c.now }

type event struct {
	sig Signal
	vec uint8
}

// rig is a LAPIC with a fake clock and recorded callbacks.
type rig struct {
	t      *testing.T
	a      *LAPIC
	clk    *fakeClock
	eois   []uint8
	events []event
}

func newRig(t *testing.T, cfg Config) *rig {
	t.Helper()
	r := &rig{t: t, clk: &fakeClock{now: 1_000_000}}
	cfg.Clock = r.clk.Clock
	cfg.EOI = func(v uint8) { r.eois = append(r.eois, v) }
	cfg.Signal = func(s Signal, v uint8) { r.events = append(r.events, event{s, v}) }
	r.a = New(cfg)
	return r
}

func (r *rig) w(off uint32, v uint32) {
	r.t.Helper()
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	if err := r.a.Write(uint64(off), b[:]); err != nil {
		r.t.Fatalf("Write(%#x, %#x) = %v", off, v, err)
	}
}

func (r *rig) r(off uint32) uint32 {
	r.t.Helper()
	var b [4]byte
	if err := r.a.Read(uint64(off), b[:]); err != nil {
		r.t.Fatalf("Read(%#x) = %v", off, err)
	}
	return binary.LittleEndian.Uint32(b[:])
}

func (r *rig) check(off uint32, want uint32) {
	r.t.Helper()
	if got := r.r(off); got != want {
		r.t.Errorf("Read(%#x) = %#x, want %#x", off, got, want)
	}
}

// enable software-enables the APIC with spurious vector 0xFF.
func (r *rig) enable() { r.w(RegSVR, SVREnable|0xFF) }

func (r *rig) pending(want int) {
	r.t.Helper()
	v, ok := r.a.PendingVector()
	got := -1
	if ok {
		got = int(v)
	}
	if got != want {
		r.t.Errorf("PendingVector() = %d, want %d", got, want)
	}
}

// take acks the pending vector, as the vCPU would, and returns it.
func (r *rig) take() int {
	v, ok := r.a.PendingVector()
	if !ok {
		return -1
	}
	r.a.Ack(v)
	return int(v)
}

func TestResetValues(t *testing.T) {
	r := newRig(t, Config{ID: 3, BSP: true})
	for _, c := range []struct {
		off, want uint32
	}{
		{RegID, 3 << 24},
		{RegVersion, Version | MaxLVT<<16},
		{RegTPR, 0},
		{RegPPR, 0},
		{RegLDR, 0},
		{RegDFR, 0xFFFFFFFF},
		{RegSVR, 0xFF},
		{RegLVTTimer, LVTMasked},
		{RegLVTLINT0, LVTMasked},
		{RegLVTError, LVTMasked},
		{RegTimerCCR, 0},
		{RegESR, 0},
	} {
		r.check(c.off, c.want)
	}
	if got, want := r.a.APICBase(), uint64(DefaultBase|APICBaseEnable|APICBaseBSP); got != want {
		t.Errorf("APICBase() = %#x, want %#x", got, want)
	}
}

func TestPriority(t *testing.T) {
	r := newRig(t, Config{})
	r.enable()
	r.a.SetIRQ(0x45, false)
	r.pending(0x45)
	r.w(RegTPR, 0x40) // same class: blocked
	r.pending(-1)
	r.check(RegPPR, 0x40)
	r.w(RegTPR, 0x3F) // lower class: deliverable
	r.pending(0x45)
	r.a.SetIRQ(0x30, false)
	if v := r.take(); v != 0x45 {
		t.Fatalf("took %#x, want 0x45", v)
	}
	// In service 0x45 raises PPR to 0x40 over TPR 0x3F.
	r.check(RegPPR, 0x40)
	r.pending(-1) // 0x30 is below
	r.a.SetIRQ(0x51, false)
	r.pending(0x51) // a higher class nests
	r.w(RegTPR, 0x55)
	r.check(RegPPR, 0x55)
	r.pending(-1)
	r.w(RegTPR, 0)
	if v := r.take(); v != 0x51 {
		t.Fatalf("took %#x, want 0x51", v)
	}
	r.check(RegISR+0x20, 1<<(0x45-0x40)|1<<(0x51-0x40))
	r.check(RegISR+0x10, 0)
	r.check(RegIRR+0x10, 1<<(0x30-0x20))
	// EOI ends the highest in service first.
	r.w(RegEOI, 0)
	r.check(RegISR+0x20, 1<<(0x45-0x40))
	r.check(RegPPR, 0x40)
	r.pending(-1)
	r.w(RegEOI, 0)
	r.check(RegPPR, 0)
	r.pending(0x30)
	// Same vector twice while in IRR is one interrupt.
	r.a.SetIRQ(0x30, false)
	if v := r.take(); v != 0x30 {
		t.Fatalf("took %#x", v)
	}
	r.pending(-1)
	r.w(RegEOI, 0)
	r.w(RegEOI, 0) // EOI with nothing in service: no effect
	if len(r.eois) != 0 {
		t.Errorf("EOI broadcasts %v for edge interrupts, want none", r.eois)
	}
}

func TestSameClassOrder(t *testing.T) {
	r := newRig(t, Config{})
	r.enable()
	for _, v := range []uint8{0x61, 0x6F, 0x60} {
		r.a.SetIRQ(v, false)
	}
	// Within a class, the highest vector first; the others wait for EOI
	// because they share the in-service class.
	if v := r.take(); v != 0x6F {
		t.Fatalf("took %#x, want 0x6f", v)
	}
	r.pending(-1)
	r.w(RegEOI, 0)
	if v := r.take(); v != 0x61 {
		t.Fatalf("took %#x, want 0x61", v)
	}
	r.w(RegEOI, 0)
	if v := r.take(); v != 0x60 {
		t.Fatalf("took %#x, want 0x60", v)
	}
}

func TestLevelEOIBroadcast(t *testing.T) {
	r := newRig(t, Config{})
	r.enable()
	r.a.SetIRQ(0x80, true)
	r.a.SetIRQ(0x90, false)
	r.check(RegTMR+0x40, 1)
	if v := r.take(); v != 0x90 {
		t.Fatalf("took %#x, want 0x90", v)
	}
	r.pending(-1) // 0x80 is below the class in service
	r.w(RegEOI, 0)
	if len(r.eois) != 0 {
		t.Fatalf("EOI of edge 0x90 broadcast %v", r.eois)
	}
	if v := r.take(); v != 0x80 {
		t.Fatalf("took %#x, want 0x80", v)
	}
	r.w(RegEOI, 0)
	if len(r.eois) != 1 || r.eois[0] != 0x80 {
		t.Errorf("EOI broadcasts = %v, want [0x80]", r.eois)
	}
}

func TestIllegalVectorsAndRegisters(t *testing.T) {
	r := newRig(t, Config{})
	r.enable()
	r.w(RegLVTError, 0xE0)
	r.a.SetIRQ(5, false)
	r.check(RegESR, 0) // not latched until written
	r.w(RegESR, 0)
	r.check(RegESR, ESRReceiveIllegalVector)
	r.pending(0xE0)
	r.take()
	r.w(RegEOI, 0)
	r.w(0x3C0, 0x1234) // no register there
	r.w(RegICRLow, 3)  // fixed IPI with vector 3
	r.w(RegESR, 0)
	r.check(RegESR, ESRIllegalRegister|ESRSendIllegalVector)
	r.w(RegESR, 0)
	r.check(RegESR, 0)
	// Read-only registers ignore writes.
	for _, off := range []uint32{RegVersion, RegPPR, RegISR, RegTMR + 0x70, RegIRR + 0x10, RegTimerCCR} {
		before := r.r(off)
		r.w(off, 0xFFFFFFFF)
		r.check(off, before)
	}
	// Reserved bits are dropped.
	r.w(RegTPR, 0xFFFFFFFF)
	r.check(RegTPR, 0xFF)
	r.w(RegTPR, 0)
	r.w(RegLVTError, 0xFFFFFFFF)
	r.check(RegLVTError, lvtErrorWritable)
	r.w(RegLDR, 0xFFFFFFFF)
	r.check(RegLDR, 0xFF000000)
	r.w(RegDFR, 0)
	r.check(RegDFR, 0x0FFFFFFF)
	r.w(RegTimerDCR, 0xFFFFFFFF)
	r.check(RegTimerDCR, 0xB)
	r.w(RegSVR, 0xFFFFFFFF)
	r.check(RegSVR, svrWriteMask)
}

func TestAccessSizes(t *testing.T) {
	r := newRig(t, Config{ID: 0x12})
	r.w(RegTPR, 0x5A)
	b := make([]byte, 1)
	if r.a.Read(RegID+3, b); b[0] != 0x12 {
		t.Errorf("byte read of ID bits 31:24 = %#x, want 0x12", b[0])
	}
	b8 := make([]byte, 8)
	r.a.Read(RegTPR, b8)
	if got := binary.LittleEndian.Uint64(b8); got != 0x5A {
		t.Errorf("8-byte read at TPR = %#x, want 0x5a", got)
	}
	r.a.Read(RegTPR+4, b[:1])
	if b[0] != 0 {
		t.Errorf("read of slot padding = %#x, want 0", b[0])
	}
	// Only aligned 32-bit writes count.
	for _, c := range []struct {
		off  uint64
		data []byte
	}{
		{RegTPR, []byte{0x10}},
		{RegTPR, []byte{0x10, 0}},
		{RegTPR, []byte{0x10, 0, 0, 0, 0, 0, 0, 0}},
		{RegTPR + 4, []byte{0x10, 0, 0, 0}},
		{RegTPR + 1, []byte{0x10, 0, 0, 0}},
		{PageSize - 2, []byte{1, 2}},
		{PageSize + 16, []byte{1, 2, 3, 4}},
	} {
		if err := r.a.Write(c.off, c.data); err != nil {
			t.Errorf("Write(%#x, %d bytes) = %v", c.off, len(c.data), err)
		}
	}
	r.check(RegTPR, 0x5A)
	// Out of the page reads as ones, no error.
	if err := r.a.Read(PageSize, b); err != nil || b[0] != 0xFF {
		t.Errorf("Read(PageSize) = %#x, %v; want 0xff, nil", b[0], err)
	}
}

func TestSoftwareDisable(t *testing.T) {
	r := newRig(t, Config{})
	r.a.SetIRQ(0x40, false)
	r.pending(-1) // disabled at reset: dropped
	r.w(RegLVTTimer, 0x30)
	r.check(RegLVTTimer, 0x30|LVTMasked) // cannot unmask while disabled
	r.enable()
	r.w(RegLVTTimer, 0x30)
	r.check(RegLVTTimer, 0x30)
	r.a.SetIRQ(0x40, false)
	r.pending(0x40)
	r.w(RegSVR, 0xFF) // disable: LVTs masked, IRR kept but not delivered
	r.check(RegLVTTimer, 0x30|LVTMasked)
	r.pending(-1)
	r.check(RegIRR+0x20, 1)
	r.enable()
	r.pending(0x40)
}

func TestLINT(t *testing.T) {
	r := newRig(t, Config{})
	r.enable()
	r.w(RegLVTLINT0, uint32(ExtINT)<<8)
	r.w(RegLVTLINT1, uint32(NMI)<<8)
	r.a.SetLINT(0, true)
	r.a.SetLINT(0, true) // no new edge
	r.a.SetLINT(1, true)
	want := []event{{SignalExtINT, 0}, {SignalNMI, 0}}
	if len(r.events) != 2 || r.events[0] != want[0] || r.events[1] != want[1] {
		t.Errorf("events = %v, want %v", r.events, want)
	}
	// Level-triggered fixed LINT0: remote IRR until EOI, re-delivery if still asserted.
	r.a.SetLINT(0, false)
	r.w(RegLVTLINT0, 0x70|LVTLevel)
	r.a.SetLINT(0, true)
	r.check(RegLVTLINT0, 0x70|LVTLevel|LVTRemoteIRR)
	r.take()
	r.w(RegEOI, 0)
	r.check(RegLVTLINT0, 0x70|LVTLevel|LVTRemoteIRR)
	r.pending(0x70)
	r.a.SetLINT(0, false)
	r.take()
	r.w(RegEOI, 0)
	r.check(RegLVTLINT0, 0x70|LVTLevel)
	r.pending(-1)
	r.a.SetLINT(5, true) // no such pin: ignored
}
