package ept_test

import (
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/godwit-hv/godwit/ept"
	"github.com/godwit-hv/godwit/ept/epttest"
)

// hwWrite plays the processor writing to gpa: it sets A and D in the leaf.
func hwWrite(t *testing.T, a *epttest.Allocator, tb *ept.Tables, gpa uint64) {
	t.Helper()
	slot, _ := rawSlot(a, tb.Kind(), tb.Root(), gpa)
	if slot == nil {
		t.Fatalf("hwWrite(%#x): not mapped", gpa)
	}
	if tb.Kind() == ept.NPT {
		*slot |= nA | nD
	} else {
		*slot |= eA | eD
	}
}

// writable reports whether the hardware would allow a write to gpa.
func writable(a *epttest.Allocator, tb *ept.Tables, gpa uint64) bool {
	slot, _ := rawSlot(a, tb.Kind(), tb.Root(), gpa)
	if slot == nil {
		return false
	}
	if tb.Kind() == ept.NPT {
		return *slot&nRW != 0
	}
	return *slot&eW != 0
}

func collect(t *testing.T, tb *ept.Tables, gpa, size uint64) ([]uint64, bool) {
	t.Helper()
	var got []uint64
	flush, err := tb.CollectDirty(gpa, size, func(p uint64) { got = append(got, p) })
	if err != nil {
		t.Fatalf("CollectDirty(%#x, %#x) = %v", gpa, size, err)
	}
	return got, flush
}

func TestDirtyHardware(t *testing.T) {
	for _, s := range []setup{
		{"NPT", ept.Config{Kind: ept.NPT}},
		{"EPT+AD", ept.Config{Kind: ept.EPT, AccessedDirty: true}},
	} {
		t.Run(s.name, func(t *testing.T) {
			tb, a := newTables(t, s.cfg)
			const base = 4 * m2
			if _, err := tb.Map(base, 0x4000_0000, 2*m2, ept.RWX); err != nil {
				t.Fatal(err)
			}
			if _, err := tb.Map(base+2*m2, 0x8000_0000, m2, ept.RX); err != nil {
				t.Fatal(err)
			}
			hwWrite(t, a, tb, base) // dirty before logging starts: must not count
			flush, err := tb.StartDirtyLog(ept.DirtyHardware)
			if err != nil || !flush {
				t.Fatalf("StartDirtyLog(hardware) = %v, %v, want true, nil", flush, err)
			}
			if m, _ := tb.Translate(base + m2); m.Size != k4 {
				t.Errorf("Translate(%#x).Size = %#x after StartDirtyLog, want 4 KiB", base+m2, m.Size)
			}
			if m, _ := tb.Translate(base + 2*m2); m.Size != m2 {
				t.Errorf("Translate(%#x).Size = %#x, want read-only 2 MiB page left whole", base+2*m2, m.Size)
			}
			if got, flush := collect(t, tb, base, 3*m2); len(got) != 0 || flush {
				t.Errorf("CollectDirty right after start = %#x, flush %v, want none, false", got, flush)
			}
			writes := []uint64{base + 3*k4, base + m2 - k4, base + m2, base + m2 + 100*k4}
			for _, w := range writes {
				hwWrite(t, a, tb, w+0x10)
			}
			got, flush := collect(t, tb, base, 3*m2)
			if !slices.Equal(got, writes) || !flush {
				t.Errorf("CollectDirty = %#x, flush %v, want %#x, true", got, flush, writes)
			}
			if got, flush := collect(t, tb, base, 3*m2); len(got) != 0 || flush {
				t.Errorf("second CollectDirty = %#x, flush %v, want none, false", got, flush)
			}

			// Bitmap form, over a sub-range.
			hwWrite(t, a, tb, base+m2+k4)
			hwWrite(t, a, tb, base+m2+65*k4)
			hwWrite(t, a, tb, base) // outside the range collected below
			bm := []uint64{^uint64(0), ^uint64(0), 0}
			if flush, err := tb.CollectDirtyBitmap(base+m2, 130*k4, bm); err != nil || !flush {
				t.Fatalf("CollectDirtyBitmap = %v, %v", flush, err)
			}
			if want := []uint64{1 << 1, 1 << 1, 0}; !slices.Equal(bm, want) {
				t.Errorf("CollectDirtyBitmap bitmap = %#x, want %#x", bm, want)
			}
			if got, _ := collect(t, tb, base, m2); !slices.Equal(got, []uint64{base}) {
				t.Errorf("CollectDirty(first 2 MiB) = %#x, want [%#x]", got, base)
			}
			if _, err := tb.CollectDirtyBitmap(base, 130*k4, make([]uint64, 2)); err == nil {
				t.Errorf("CollectDirtyBitmap with a short bitmap = nil, want error")
			}
			if tb.HandleWriteFault(base) {
				t.Errorf("HandleWriteFault(%#x) in hardware mode = true, want false", base)
			}
			if flush, err := tb.StopDirtyLog(); err != nil || flush {
				t.Errorf("StopDirtyLog() = %v, %v, want false, nil", flush, err)
			}
			if _, err := tb.CollectDirty(base, k4, func(uint64) {}); !errors.Is(err, ept.ErrNotLogging) {
				t.Errorf("CollectDirty after stop = %v, want ErrNotLogging", err)
			}
		})
	}
}

func TestDirtyWriteProtect(t *testing.T) {
	for _, s := range setups() {
		t.Run(s.name, func(t *testing.T) {
			tb, a := newTables(t, s.cfg)
			if _, err := tb.Map(0, 0x4000_0000, m2, ept.RW); err != nil {
				t.Fatal(err)
			}
			const rom = 0x10_0000_0000
			if _, err := tb.Map(rom, 0x8000_0000, k4, ept.RX); err != nil {
				t.Fatal(err)
			}
			if tb.HandleWriteFault(5 * k4) {
				t.Errorf("HandleWriteFault before logging = true, want false")
			}
			flush, err := tb.StartDirtyLog(ept.DirtyWriteProtect)
			if err != nil || !flush {
				t.Fatalf("StartDirtyLog(write-protect) = %v, %v, want true, nil", flush, err)
			}
			if _, err := tb.StartDirtyLog(ept.DirtyWriteProtect); !errors.Is(err, ept.ErrLogging) {
				t.Errorf("second StartDirtyLog = %v, want ErrLogging", err)
			}
			for _, gpa := range []uint64{0, 5 * k4, m2 - k4} {
				if writable(a, tb, gpa) {
					t.Errorf("writable(%#x) = true after start, want false", gpa)
				}
				m, _ := tb.Translate(gpa)
				if m.Size != k4 || m.Perm != ept.RW || !m.LogProtected {
					t.Errorf("Translate(%#x) = %+v, want 4 KiB rw, LogProtected", gpa, m)
				}
			}
			for _, gpa := range []uint64{5 * k4, 9 * k4, 5 * k4} { // repeat: a second vCPU's fault
				if !tb.HandleWriteFault(gpa + 8) {
					t.Errorf("HandleWriteFault(%#x) = false, want true", gpa+8)
				}
				if !writable(a, tb, gpa) {
					t.Errorf("writable(%#x) = false after the fault, want true", gpa)
				}
			}
			if tb.HandleWriteFault(rom) {
				t.Errorf("HandleWriteFault(rom) = true, want false (the guest's own fault)")
			}
			if tb.HandleWriteFault(m2 + k4) {
				t.Errorf("HandleWriteFault(unmapped) = true, want false")
			}
			got, flush := collect(t, tb, 0, m2)
			if want := []uint64{5 * k4, 9 * k4}; !slices.Equal(got, want) || !flush {
				t.Errorf("CollectDirty = %#x, flush %v, want %#x, true", got, flush, want)
			}
			if writable(a, tb, 5*k4) {
				t.Errorf("writable(%#x) = true after collect, want false", 5*k4)
			}
			if got, flush := collect(t, tb, 0, m2); len(got) != 0 || flush {
				t.Errorf("second CollectDirty = %#x, flush %v, want none, false", got, flush)
			}

			// Mappings and permission changes made while logging.
			if _, err := tb.Map(2*m2, 0x4000_0000+2*m2, m2, ept.RW); err != nil {
				t.Fatal(err)
			}
			if m, _ := tb.Translate(2 * m2); m.Size != k4 || !m.LogProtected || writable(a, tb, 2*m2) {
				t.Errorf("Translate(%#x) = %+v, want 4 KiB write-protected mapping made during logging", 2*m2, m)
			}
			if _, err := tb.Protect(7*k4, k4, ept.Read); err != nil {
				t.Fatal(err)
			}
			if tb.HandleWriteFault(7 * k4) {
				t.Errorf("HandleWriteFault on a page protected read-only = true, want false")
			}
			if _, err := tb.Protect(rom, k4, ept.RW); err != nil {
				t.Fatal(err)
			}
			if writable(a, tb, rom) || !tb.HandleWriteFault(rom) {
				t.Errorf("page made writable during logging must be write-protected and logged")
			}

			flush, err = tb.StopDirtyLog()
			if err != nil || !flush {
				t.Fatalf("StopDirtyLog() = %v, %v, want true, nil", flush, err)
			}
			for _, gpa := range []uint64{0, 5 * k4, 2 * m2} {
				if m, _ := tb.Translate(gpa); !writable(a, tb, gpa) || m.LogProtected || m.Perm != ept.RW {
					t.Errorf("Translate(%#x) = %+v after stop, want plain rw", gpa, m)
				}
			}
			if writable(a, tb, 7*k4) {
				t.Errorf("writable(%#x) after stop = true, want false (protected read-only)", 7*k4)
			}
			if _, err := tb.StopDirtyLog(); !errors.Is(err, ept.ErrNotLogging) {
				t.Errorf("second StopDirtyLog = %v, want ErrNotLogging", err)
			}
		})
	}
}

func TestDirtyErrors(t *testing.T) {
	tb, a := newTables(t, ept.Config{Kind: ept.EPT})
	if _, err := tb.StartDirtyLog(ept.DirtyHardware); !errors.Is(err, ept.ErrNoAD) {
		t.Errorf("StartDirtyLog(hardware) on EPT without A/D = %v, want ErrNoAD", err)
	}
	if _, err := tb.StartDirtyLog(0); err == nil {
		t.Errorf("StartDirtyLog(0) = nil, want error")
	}
	if _, err := tb.Map(0, 0, 4*m2, ept.RW); err != nil {
		t.Fatal(err)
	}
	live := a.Live()
	a.FailAfter = 3
	if _, err := tb.StartDirtyLog(ept.DirtyWriteProtect); !errors.Is(err, ept.ErrAlloc) {
		t.Errorf("StartDirtyLog with allocation failing = %v, want ErrAlloc", err)
	}
	if got := tb.DirtyLogging(); got != 0 {
		t.Errorf("DirtyLogging() after failed start = %v, want 0", got)
	}
	if a.Live() != live+2 {
		t.Errorf("live tables = %d, want %d (two pages split before the failure)", a.Live(), live+2)
	}
	if _, err := tb.StartDirtyLog(ept.DirtyWriteProtect); err != nil {
		t.Errorf("StartDirtyLog retry = %v", err)
	}
}

func TestDirtySurvivesSplit(t *testing.T) {
	// A 2 MiB page written before Unmap splits it keeps its dirtiness in
	// every 4 KiB page that is left.
	tb2, a2 := newTables(t, ept.Config{Kind: ept.NPT})
	if _, err := tb2.Map(0, 0, m2, ept.RW); err != nil {
		t.Fatal(err)
	}
	hwWrite(t, a2, tb2, 0)
	if _, err := tb2.Unmap(0, k4); err != nil {
		t.Fatal(err)
	}
	for _, gpa := range []uint64{k4, m2 - k4} {
		if m, _ := tb2.Translate(gpa); !m.Dirty || m.Size != k4 {
			t.Errorf("Translate(%#x) = %+v, want dirty 4 KiB page", gpa, m)
		}
	}
}

func TestHotPathsDoNotAllocate(t *testing.T) {
	tb, _ := newTables(t, ept.Config{Kind: ept.EPT})
	if _, err := tb.Map(0, 0, m2, ept.RW); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.StartDirtyLog(ept.DirtyWriteProtect); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { tb.Translate(5 * k4) }); n != 0 {
		t.Errorf("Translate allocs = %v, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { tb.HandleWriteFault(5 * k4) }); n != 0 {
		t.Errorf("HandleWriteFault allocs = %v, want 0", n)
	}
}

func TestDirtyBitsSetConcurrentlyAreNotLost(t *testing.T) {
	// The processor sets dirty bits while CollectDirty clears them; every
	// page written must be reported by some collection.
	for _, s := range []setup{
		{"NPT", ept.Config{Kind: ept.NPT}},
		{"EPT+AD", ept.Config{Kind: ept.EPT, AccessedDirty: true}},
	} {
		t.Run(s.name, func(t *testing.T) {
			tb, a := newTables(t, s.cfg)
			if _, err := tb.Map(0, 0, m2, ept.RW); err != nil {
				t.Fatal(err)
			}
			if _, err := tb.StartDirtyLog(ept.DirtyHardware); err != nil {
				t.Fatal(err)
			}
			d := uint64(nD)
			if s.cfg.Kind == ept.EPT {
				d = eD
			}
			slots := make([]*uint64, 512)
			for i := range slots {
				slots[i], _ = rawSlot(a, tb.Kind(), tb.Root(), uint64(i)*k4)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for _, p := range slots {
					atomic.OrUint64(p, d)
				}
			}()
			seen := map[uint64]bool{}
			record := func(p uint64) { seen[p] = true }
			for running := true; running; {
				select {
				case <-done:
					running = false
				default:
				}
				if _, err := tb.CollectDirty(0, m2, record); err != nil {
					t.Fatal(err)
				}
			}
			if len(seen) != 512 {
				t.Errorf("pages reported dirty = %d, want 512", len(seen))
			}
		})
	}
}
