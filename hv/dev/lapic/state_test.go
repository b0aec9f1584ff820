package lapic

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

func TestStateRoundTrip(t *testing.T) {
	r := newRig(t, Config{ID: 1, TimerHz: 1_000_000_000, MinPeriod: 1})
	r.enable()
	r.w(RegTPR, 0x20)
	r.w(RegLDR, 0x04000000)
	r.w(RegDFR, 0)
	r.w(RegLVTLINT0, uint32(ExtINT)<<8)
	r.w(RegLVTError, 0xFE)
	r.w(RegTimerDCR, 0x3)
	r.w(RegLVTTimer, 0x40|TimerPeriodic<<LVTTimerModeShift)
	r.w(RegTimerICR, 1000) // 16000 ns period
	r.w(RegICRHigh, 7<<24)
	r.a.SetIRQ(0x91, true)
	r.a.SetIRQ(0x35, false)
	r.take()
	r.a.SetIRQ(0x36, false)
	r.a.SetIRQ(3, false) // illegal: pending ESR bit
	r.clk.now += 6000
	s := r.a.Save()
	if !s.TimerArmed || s.TimerRemaining != 10000 {
		t.Fatalf("Save: timer armed %v remaining %d, want true 10000", s.TimerArmed, s.TimerRemaining)
	}

	// Restore on a "host" whose clock reads differently.
	r2 := newRig(t, Config{ID: 9, TimerHz: 1_000_000_000, MinPeriod: 1})
	r2.clk.now = 77_000_000
	if err := r2.a.Restore(s); err != nil {
		t.Fatalf("Restore = %v", err)
	}
	if s2 := r2.a.Save(); !reflect.DeepEqual(s, s2) {
		t.Errorf("Save after Restore = %+v, want %+v", s2, s)
	}
	for off := uint32(0); off < PageSize; off += 16 {
		if off == RegTimerCCR {
			continue
		}
		if a, b := r.r(off), r2.r(off); a != b {
			t.Errorf("register %#x = %#x after restore, want %#x", off, b, a)
		}
	}
	if a, b := r.r(RegTimerCCR), r2.r(RegTimerCCR); a != b {
		t.Errorf("current count = %d after restore, want %d", b, a)
	}
	// Both fire at the same relative time, with the same vector.
	if d, _ := r2.a.NextDeadline(); d != r2.clk.now+10000 {
		t.Errorf("restored deadline +%d, want +10000", d-r2.clk.now)
	}
	for _, x := range []*rig{r, r2} {
		x.fire()
		if x.a.Save().IRR[0x40/32]&(1<<(0x40%32)) == 0 {
			t.Errorf("timer vector not in IRR after expiry")
		}
	}
	if v := r2.take(); v != 0xFE { // the error interrupt from vector 3
		t.Errorf("took %#x, want 0xfe", v)
	}
	r2.w(RegEOI, 0) // ends 0xFE
	r2.w(RegEOI, 0) // ends 0x91 (level)
	r2.w(RegESR, 0)
	r2.check(RegESR, ESRReceiveIllegalVector)
	if len(r2.eois) != 1 || r2.eois[0] != 0x91 {
		t.Errorf("restored TMR: EOI broadcasts %v, want [0x91]", r2.eois)
	}
}

func TestRestoreRejects(t *testing.T) {
	for _, s := range []State{
		{APICBase: 1 << 63},
		{APICBase: APICBaseEXTD},
		{TimerDivider: 3},
		{TimerDivider: 256},
		{TimerRemaining: -1},
		{TPR: 0x100},
		{SVR: 1 << 20},
		{ICRLow: ICRDeliveryStatus},
	} {
		if err := New(Config{}).Restore(s); !errors.Is(err, ErrState) {
			t.Errorf("Restore(%+v) = %v, want ErrState", s, err)
		}
	}
}

func TestHotPathAllocs(t *testing.T) {
	g := &Group{}
	r := newRig(t, Config{TSCHz: 1e9, Router: g})
	other := newRig(t, Config{ID: 1, Router: g})
	g.Add(r.a)
	g.Add(other.a)
	r.enable()
	other.enable()
	var b [4]byte
	n := testing.AllocsPerRun(100, func() {
		r.a.SetIRQ(0x50, true)
		if v, ok := r.a.PendingVector(); ok {
			r.a.Ack(v)
		}
		binary.LittleEndian.PutUint32(b[:], 0)
		r.a.Write(RegEOI, b[:])
		r.a.Read(RegTimerCCR, b[:])
		binary.LittleEndian.PutUint32(b[:], 1<<24)
		r.a.Write(RegICRHigh, b[:])
		binary.LittleEndian.PutUint32(b[:], 0x60)
		r.a.Write(RegICRLow, b[:])
		r.a.WriteMSR(MSRTSCDeadline, 5)
		r.a.NextDeadline()
		r.a.Tick(r.clk.now)
		other.a.Ack(0x60)
	})
	if n != 0 {
		t.Errorf("hot path allocates %v times per run, want 0", n)
	}
}

// FuzzRegisters writes garbage to every interface of a pair of LAPICs and
// checks that nothing panics and the interrupt state stays consistent.
func FuzzRegisters(f *testing.F) {
	f.Add([]byte{0x30, 0xF0, 0x01, 0xFF, 0x00, 0x32, 0x20, 0x00, 0x00, 0x00})
	f.Add([]byte{0x30, 0x38, 0x10, 0, 0, 0, 0x31, 0x30, 1, 0x45, 0x46, 0, 0})
	f.Fuzz(func(t *testing.T, prog []byte) {
		g := &Group{}
		clk := &fakeClock{now: 1}
		cfg := Config{Clock: clk.Clock, TSCHz: 1e9, Router: g}
		a := New(cfg)
		cfg.ID = 1
		b := New(cfg)
		g.Add(a)
		g.Add(b)
		for len(prog) >= 6 {
			op, reg := prog[0], prog[1]
			v := binary.LittleEndian.Uint32(prog[2:6])
			prog = prog[6:]
			x := a
			if op&0x80 != 0 {
				x = b
			}
			var buf [8]byte
			binary.LittleEndian.PutUint32(buf[:], v)
			switch op & 7 {
			case 0:
				x.Write(uint64(reg)<<4, buf[:4])
			case 1:
				x.Read(uint64(reg)<<4|uint64(v&0xF), buf[:1<<(v>>8&3)])
			case 2:
				x.WriteMSR(X2APICMSRBase+uint32(reg), uint64(v)<<(v>>30&1*32)|uint64(v))
			case 3:
				x.ReadMSR(X2APICMSRBase + uint32(reg))
			case 4:
				x.SetAPICBase(uint64(v)<<4&^0xF000 | DefaultBase)
			case 5:
				x.SetIRQ(uint8(v), v&0x100 != 0)
				x.SetLINT(int(reg&3), v&1 != 0)
			case 6:
				clk.now += int64(v & 0xFFFFF)
				x.Tick(clk.now)
				x.WriteMSR(MSRTSCDeadline, uint64(v))
			case 7:
				if vec, ok := x.PendingVector(); ok {
					x.Ack(vec)
					s := x.Save()
					if s.ISR[vec>>5]&(1<<(vec&31)) == 0 {
						t.Fatalf("Ack(%#x) left ISR clear", vec)
					}
				}
				x.Write(uint64(reg)<<4|uint64(v&0xF), buf[:1<<(v>>8&3)])
			}
			if d, ok := x.NextDeadline(); ok && d < 0 {
				t.Fatalf("negative deadline %d", d)
			}
		}
		for _, x := range []*LAPIC{a, b} {
			s := x.Save()
			if err := New(Config{Clock: clk.Clock, TSCHz: 1e9}).Restore(s); err != nil {
				t.Fatalf("Restore(Save()) = %v for %+v", err, s)
			}
		}
	})
}
