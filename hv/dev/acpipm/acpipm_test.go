package acpipm

import (
	"encoding/binary"
	"testing"
)

type rig struct {
	now    int64
	sci    []bool
	sleeps []uint8
	pm     *PM
}

func newRig(t *testing.T) *rig {
	r := &rig{}
	pm, err := New(Config{
		Clock: func() int64 { return r.now },
		SCI:   func(l bool) { r.sci = append(r.sci, l) },
		Sleep: func(typ uint8) { r.sleeps = append(r.sleeps, typ) },
	})
	if err != nil {
		t.Fatal(err)
	}
	r.pm = pm
	return r
}

func rd16(t *testing.T, d interface{ Read(uint64, []byte) error }, off uint64) uint16 {
	t.Helper()
	var b [2]byte
	if err := d.Read(off, b[:]); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint16(b[:])
}

func wr16(t *testing.T, d interface{ Write(uint64, []byte) error }, off uint64, v uint16) {
	t.Helper()
	var b [2]byte
	binary.LittleEndian.PutUint16(b[:], v)
	if err := d.Write(off, b[:]); err != nil {
		t.Fatal(err)
	}
}

func rdTimer(t *testing.T, r *rig) uint32 {
	t.Helper()
	var b [4]byte
	if err := r.pm.Timer().Read(0, b[:]); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint32(b[:])
}

func TestNeedsClock(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New without a clock succeeded")
	}
}

func TestControlSCIEnAndSleep(t *testing.T) {
	r := newRig(t)
	if got := rd16(t, r.pm.Control(), 0); got != SCIEn {
		t.Fatalf("PM1_CNT = %#x, want SCI_EN (always in ACPI mode)", got)
	}
	// Linux's S5 entry: SLP_TYP first, then SLP_TYP|SLP_EN.
	wr16(t, r.pm.Control(), 0, 5<<SlpTypShift)
	if len(r.sleeps) != 0 {
		t.Fatalf("sleep without SLP_EN: %v", r.sleeps)
	}
	if got := rd16(t, r.pm.Control(), 0); got != SCIEn|5<<SlpTypShift {
		t.Errorf("PM1_CNT = %#x, want SCI_EN|SLP_TYP 5", got)
	}
	wr16(t, r.pm.Control(), 0, 5<<SlpTypShift|SlpEn)
	if len(r.sleeps) != 1 || r.sleeps[0] != 5 {
		t.Fatalf("sleeps = %v, want [5]", r.sleeps)
	}
	if got := rd16(t, r.pm.Control(), 0); got&SlpEn != 0 || got&SCIEn == 0 {
		t.Errorf("PM1_CNT = %#x: SLP_EN must read 0 and SCI_EN 1", got)
	}
	// Clearing SCI_EN is not possible; a byte write to the high byte works alone.
	wr16(t, r.pm.Control(), 0, 0)
	if got := rd16(t, r.pm.Control(), 0); got != SCIEn {
		t.Errorf("PM1_CNT after writing 0 = %#x, want SCI_EN", got)
	}
	if err := r.pm.Control().Write(1, []byte{byte((3<<SlpTypShift | SlpEn) >> 8)}); err != nil {
		t.Fatal(err)
	}
	if len(r.sleeps) != 2 || r.sleeps[1] != 3 {
		t.Errorf("sleeps after a byte write = %v, want [5 3]", r.sleeps)
	}
}

func TestTimerCounts(t *testing.T) {
	r := newRig(t)
	if got := rdTimer(t, r); got != 0 {
		t.Fatalf("timer at start = %d, want 0", got)
	}
	r.now = 1e9
	if got := rdTimer(t, r); got != TimerHz {
		t.Errorf("timer after 1 s = %d, want %d", got, TimerHz)
	}
	r.now = 10e9 // 35795450 ticks: wrapped at 24 bits
	if got, want := rdTimer(t, r), uint32(35795450&(1<<24-1)); got != want {
		t.Errorf("timer after 10 s = %d, want %d (24-bit wrap)", got, want)
	}
	// Writes are ignored.
	if err := r.pm.Timer().Write(0, []byte{1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	if got, want := rdTimer(t, r), uint32(35795450&(1<<24-1)); got != want {
		t.Errorf("timer after a write = %d, want %d", got, want)
	}
}

func TestTimerStatusAndSCI(t *testing.T) {
	r := newRig(t)
	ev := r.pm.Event()
	if got := rd16(t, ev, 0); got != 0 {
		t.Fatalf("PM1_STS at reset = %#x, want 0", got)
	}
	// Bit 23 toggles after 2^23 ticks (about 2.34 s).
	r.now = 2_400_000_000
	if got := rd16(t, ev, 0); got&TmrSts == 0 {
		t.Fatalf("PM1_STS after the top bit toggled = %#x, want TMR_STS", got)
	}
	if len(r.sci) != 0 {
		t.Fatalf("SCI raised with TMR_EN clear: %v", r.sci)
	}
	// Enabling the timer event raises the SCI; clearing the status drops it.
	wr16(t, ev, 2, TmrEn)
	if len(r.sci) != 1 || !r.sci[0] {
		t.Fatalf("SCI after TMR_EN = %v, want [true]", r.sci)
	}
	wr16(t, ev, 0, TmrSts)
	if got := rd16(t, ev, 0); got&TmrSts != 0 {
		t.Errorf("PM1_STS after write-1-to-clear = %#x", got)
	}
	if len(r.sci) != 2 || r.sci[1] {
		t.Errorf("SCI after clearing = %v, want [true false]", r.sci)
	}
	// Writing 0 to the status clears nothing; reserved enable bits are dropped.
	wr16(t, ev, 2, 0xFFFF)
	if got := rd16(t, ev, 2); got != enableMask {
		t.Errorf("PM1_EN after writing all ones = %#x, want %#x", got, enableMask)
	}
}

func TestPowerButton(t *testing.T) {
	r := newRig(t)
	r.pm.PowerButton()
	if len(r.sci) != 0 {
		t.Fatalf("SCI with PWRBTN_EN clear: %v", r.sci)
	}
	if got := rd16(t, r.pm.Event(), 0); got != PwrBtnSts {
		t.Fatalf("PM1_STS = %#x, want PWRBTN_STS", got)
	}
	wr16(t, r.pm.Event(), 2, PwrBtnEn)
	if len(r.sci) != 1 || !r.sci[0] {
		t.Fatalf("SCI = %v, want [true]", r.sci)
	}
	// A 32-bit write clears the status and keeps the enable.
	if err := r.pm.Event().Write(0, []byte{0, PwrBtnSts >> 8, 0, PwrBtnEn >> 8}); err != nil {
		t.Fatal(err)
	}
	if got := rd16(t, r.pm.Event(), 0); got != 0 {
		t.Errorf("PM1_STS = %#x, want 0", got)
	}
	if len(r.sci) != 2 || r.sci[1] {
		t.Errorf("SCI = %v, want [true false]", r.sci)
	}
}

func TestOddAccesses(t *testing.T) {
	r := newRig(t)
	// Reads past the registers return 0 and never fail.
	b := []byte{0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA}
	if err := r.pm.Control().Read(1, b); err != nil {
		t.Fatal(err)
	}
	for i, v := range b {
		if v != 0 {
			t.Errorf("byte %d of a read past PM1_CNT = %#x, want 0", i, v)
		}
	}
	if err := r.pm.Event().Write(7, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
}

func TestSaveRestore(t *testing.T) {
	r := newRig(t)
	wr16(t, r.pm.Event(), 2, PwrBtnEn)
	r.pm.PowerButton()
	wr16(t, r.pm.Control(), 0, 5<<SlpTypShift)
	r.now = 1e9
	s := r.pm.Save()
	if !s.SCI || s.Status != PwrBtnSts || s.Enable != PwrBtnEn || s.Control != SCIEn|5<<SlpTypShift || s.TimerTicks != TimerHz {
		t.Fatalf("Save = %+v", s)
	}
	// The destination's clock is elsewhere; the timer continues from the saved count.
	d := newRig(t)
	d.now = 500e9
	if err := d.pm.Restore(s); err != nil {
		t.Fatal(err)
	}
	if len(d.sci) != 1 || !d.sci[0] {
		t.Errorf("SCI after restore = %v, want [true]", d.sci)
	}
	if got := d.pm.Save(); got != s {
		t.Errorf("Save after Restore = %+v, want %+v", got, s)
	}
	d.now += 1e9
	if got := rdTimer(t, d); got != 2*TimerHz {
		t.Errorf("timer 1 s after restore = %d, want %d", got, 2*TimerHz)
	}
	for _, bad := range []State{{Status: 1 << 3}, {Enable: 1 << 1}, {Control: 1 << 15}, {TimerTicks: 1 << 62}} {
		if err := d.pm.Restore(bad); err == nil {
			t.Errorf("Restore(%+v) succeeded", bad)
		}
	}
}
