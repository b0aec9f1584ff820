package lapic

import "testing"

// machine is n LAPICs in a Group sharing one clock.
func machine(t *testing.T, n int) []*rig {
	t.Helper()
	g := &Group{}
	clk := &fakeClock{now: 1}
	rs := make([]*rig, n)
	for i := range rs {
		rs[i] = newRig(t, Config{ID: uint32(i), BSP: i == 0, Router: g})
		rs[i].clk = clk
		rs[i].a.cfg.Clock = clk.Clock
		g.Add(rs[i].a)
		rs[i].enable()
	}
	return rs
}

func icr(r *rig, dest uint8, lo uint32) {
	r.w(RegICRHigh, uint32(dest)<<24)
	r.w(RegICRLow, lo)
}

func TestIPIFixed(t *testing.T) {
	m := machine(t, 2)
	icr(m[0], 1, 0x41)
	m[1].pending(0x41)
	m[0].pending(-1)
	m[0].check(RegICRLow, 0x41) // delivery status idle
	m[0].check(RegICRHigh, 1<<24)
}

func TestIPIShorthands(t *testing.T) {
	for _, c := range []struct {
		sh   uint32
		want [3]int
	}{
		{Self, [3]int{0x42, -1, -1}},
		{AllIncluding, [3]int{0x42, 0x42, 0x42}},
		{AllButSelf, [3]int{-1, 0x42, 0x42}},
	} {
		m := machine(t, 3)
		icr(m[0], 2, 0x42|c.sh<<ICRShorthandShift) // destination ignored
		for i, r := range m {
			r.pending(c.want[i])
		}
	}
	m := machine(t, 3)
	icr(m[1], XAPICBroadcast, 0x43)
	for _, r := range m {
		r.pending(0x43)
	}
}

func TestIPIInitSIPI(t *testing.T) {
	m := machine(t, 2)
	m[1].w(RegTPR, 0x20)
	m[1].a.SetIRQ(0x80, false)
	// The Linux/MP sequence: INIT assert, INIT de-assert, SIPI, SIPI.
	icr(m[0], 1, uint32(INIT)<<8|ICRLevelAssert|ICRLevelTrigger)
	icr(m[0], 1, uint32(INIT)<<8|ICRLevelTrigger)
	icr(m[0], 1, uint32(StartUp)<<8|0x9A)
	want := []event{{SignalINIT, 0}, {SignalSIPI, 0x9A}}
	if len(m[1].events) != len(want) || m[1].events[0] != want[0] || m[1].events[1] != want[1] {
		t.Errorf("AP events = %v, want %v", m[1].events, want)
	}
	if len(m[0].events) != 0 {
		t.Errorf("BSP events = %v, want none", m[0].events)
	}
	// INIT reset the AP's APIC but kept its ID.
	m[1].check(RegTPR, 0)
	m[1].check(RegSVR, 0xFF)
	m[1].check(RegIRR+0x40, 0)
	m[1].check(RegID, 1<<24)
	// NMI.
	icr(m[1], 0, uint32(NMI)<<8)
	if n := len(m[0].events); n != 1 || m[0].events[0].sig != SignalNMI {
		t.Errorf("BSP events = %v, want [NMI]", m[0].events)
	}
}

func TestIPILogical(t *testing.T) {
	m := machine(t, 4)
	// Flat model: one bit per APIC.
	for i, r := range m {
		r.w(RegLDR, 1<<(24+i))
	}
	icr(m[0], 0b1010, ICRLogical|0x44)
	for i, want := range []int{-1, 0x44, -1, 0x44} {
		m[i].pending(want)
	}
	// Cluster model: cluster in bits 7:4, member bits 3:0.
	m = machine(t, 4)
	for i, r := range m {
		r.w(RegDFR, 0)
		r.w(RegLDR, uint32(i/2+1)<<28|1<<(24+i%2))
	}
	icr(m[0], 0x23, ICRLogical|0x45)
	for i, want := range []int{-1, -1, 0x45, 0x45} {
		m[i].pending(want)
	}
}

func TestIPILowestPriority(t *testing.T) {
	m := machine(t, 3)
	for _, r := range m {
		r.w(RegLDR, 1<<24)
	}
	m[0].w(RegTPR, 0x50)
	m[1].w(RegTPR, 0x30)
	m[2].w(RegTPR, 0x40)
	icr(m[0], 1, ICRLogical|uint32(LowestPriority)<<8|0x70)
	for i, want := range []int{-1, 0x70, -1} {
		m[i].pending(want)
	}
}

func TestIPIWithoutRouter(t *testing.T) {
	r := newRig(t, Config{ID: 2})
	r.enable()
	icr(r, 2, 0x55)
	r.pending(0x55)
}

func TestX2APIC(t *testing.T) {
	g := &Group{}
	var rs [2]*rig
	for i := range rs {
		rs[i] = newRig(t, Config{ID: uint32(0x20 + i), Router: g})
		g.Add(rs[i].a)
	}
	a := rs[0].a
	if _, err := a.ReadMSR(0x802); err != ErrGP {
		t.Errorf("x2APIC MSR in xAPIC mode = %v, want ErrGP", err)
	}
	for _, r := range rs {
		if err := r.a.SetAPICBase(DefaultBase | APICBaseEnable | APICBaseEXTD); err != nil {
			t.Fatalf("SetAPICBase(x2APIC) = %v", err)
		}
		if err := r.a.WriteMSR(0x80F, SVREnable|0xFF); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		msr  uint32
		want uint64
	}{
		{0x802, 0x20},
		{0x803, Version | MaxLVT<<16},
		{0x80D, 1<<17 | 1}, // cluster 2, bit 0
	} {
		if v, err := a.ReadMSR(c.msr); err != nil || v != c.want {
			t.Errorf("ReadMSR(%#x) = %#x, %v; want %#x", c.msr, v, err, c.want)
		}
	}
	for _, msr := range []uint32{0x809, 0x80E, 0x831, 0x80B, 0x83F, 0x8FF, 0x900} {
		if _, err := a.ReadMSR(msr); err != ErrGP {
			t.Errorf("ReadMSR(%#x) = %v, want ErrGP", msr, err)
		}
	}
	for _, c := range []struct {
		msr uint32
		v   uint64
	}{{0x802, 1}, {0x80D, 1}, {0x80B, 1}, {0x808, 1 << 32}, {0x83F, 0x100}, {0x839, 0}} {
		if err := a.WriteMSR(c.msr, c.v); err != ErrGP {
			t.Errorf("WriteMSR(%#x, %#x) = %v, want ErrGP", c.msr, c.v, err)
		}
	}
	// Self IPI, 64-bit ICR to a physical x2APIC ID, logical cluster IPI.
	a.WriteMSR(0x83F, 0x61)
	rs[0].pending(0x61)
	a.WriteMSR(MSRX2APICICR, 0x21<<32|0x62)
	rs[1].pending(0x62)
	if v, _ := a.ReadMSR(MSRX2APICICR); v != 0x21<<32|0x62 {
		t.Errorf("ICR = %#x", v)
	}
	rs[1].take()
	a.WriteMSR(MSRX2APICICR, (2<<16|2)<<32|ICRLogical|0x73)
	rs[1].pending(0x73)
	// EOI through the MSR.
	if err := rs[1].a.WriteMSR(0x80B, 0); err != nil {
		t.Fatal(err)
	}
	// The MMIO page is gone in x2APIC mode.
	if got := rs[0].r(RegID); got != 0xFFFFFFFF {
		t.Errorf("MMIO read in x2APIC mode = %#x, want all ones", got)
	}
	// x2APIC -> xAPIC is invalid; x2APIC -> disabled -> xAPIC is valid.
	if err := a.SetAPICBase(DefaultBase | APICBaseEnable); err != ErrGP {
		t.Errorf("x2APIC to xAPIC = %v, want ErrGP", err)
	}
	if err := a.SetAPICBase(DefaultBase); err != nil {
		t.Errorf("disable = %v", err)
	}
	if err := a.SetAPICBase(DefaultBase | APICBaseEXTD | APICBaseEnable); err != ErrGP {
		t.Errorf("disabled to x2APIC = %v, want ErrGP", err)
	}
	if err := a.SetAPICBase(DefaultBase | APICBaseEnable); err != nil {
		t.Errorf("disabled to xAPIC = %v", err)
	}
	if err := a.SetAPICBase(1 << 63); err != ErrGP {
		t.Errorf("reserved bits = %v, want ErrGP", err)
	}
	rs[0].check(RegSVR, 0xFF) // reset by the global disable
}

func TestIPILowestPriorityTie(t *testing.T) {
	m := machine(t, 3)
	for _, r := range m {
		r.w(RegLDR, 0xFF<<24)
	}
	m[0].w(RegTPR, 0x50)
	icr(m[0], 0xFF&^1, ICRLogical|uint32(LowestPriority)<<8|0x70) // APICs 1 and 2 tie
	for i, want := range []int{-1, 0x70, -1} {
		m[i].pending(want)
	}
}

func TestKick(t *testing.T) {
	kicks := 0
	a := New(Config{Kick: func() { kicks++ }})
	a.Write(RegSVR, []byte{0xFF, 1, 0, 0})
	kicks = 0
	a.SetIRQ(0x40, false)
	if kicks != 1 {
		t.Errorf("kicks after SetIRQ = %d, want 1", kicks)
	}
	a.SetIRQ(0x40, false)
	a.Write(RegSVR, []byte{0xFF, 0, 0, 0})
	kicks = 0
	a.SetIRQ(0x41, false) // dropped by the disabled APIC
	if kicks != 0 {
		t.Errorf("kicks for a dropped interrupt = %d, want 0", kicks)
	}
}

// TestConcurrentIPIs has two vCPUs send each other IPIs and end them at
// the same time; with callbacks run outside the locks this cannot
// deadlock (run with -race).
func TestConcurrentIPIs(t *testing.T) {
	g := &Group{}
	var apics [2]*LAPIC
	for i := range apics {
		apics[i] = New(Config{ID: uint32(i), Router: g, EOI: func(uint8) {}})
		g.Add(apics[i])
		apics[i].Write(RegSVR, []byte{0xFF, 1, 0, 0})
	}
	done := make(chan struct{})
	for i := range apics {
		go func() {
			defer func() { done <- struct{}{} }()
			a := apics[i]
			for range 2000 {
				a.WriteMSR(0, 0) // #GP path, harmless
				a.Write(RegICRHigh, []byte{0, 0, 0, byte(1 - i)})
				a.Write(RegICRLow, []byte{0x80, 0x80, 0, 0}) // level-triggered fixed 0x80
				if v, ok := a.PendingVector(); ok {
					a.Ack(v)
					a.Write(RegEOI, []byte{0, 0, 0, 0})
				}
			}
		}()
	}
	<-done
	<-done
}
