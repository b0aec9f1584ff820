package ept_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/godwit-hv/godwit/ept"
	"github.com/godwit-hv/godwit/ept/epttest"
)

const (
	k4 = ept.PageSize4K
	m2 = ept.PageSize2M
)

// Raw bits, spelled out independently of the package so the tests check
// the encoding against the manuals rather than against itself.
const (
	nP, nRW, nUS, nPWT, nPCD, nA, nD, nPS, nNX = 1, 2, 4, 8, 16, 32, 64, 128, 1 << 63
	eR, eW, eX, eWB, eIPAT, ePS, eA, eD        = 1, 2, 4, 6 << 3, 64, 128, 256, 512
)

type setup struct {
	name string
	cfg  ept.Config
}

func setups() []setup {
	return []setup{
		{"NPT", ept.Config{Kind: ept.NPT}},
		{"EPT", ept.Config{Kind: ept.EPT}},
		{"EPT+AD", ept.Config{Kind: ept.EPT, AccessedDirty: true}},
	}
}

func newTables(t *testing.T, c ept.Config) (*ept.Tables, *epttest.Allocator) {
	t.Helper()
	a := epttest.New()
	c.Alloc = a
	tb, err := ept.New(c)
	if err != nil {
		t.Fatalf("New(%v) = %v", c.Kind, err)
	}
	return tb, a
}

// rawSlot walks the tables the way the processor does and returns the
// leaf entry for gpa and its level, or nil.
func rawSlot(a *epttest.Allocator, k ept.Kind, root, gpa uint64) (*uint64, int) {
	present := func(e uint64) bool {
		if k == ept.EPT {
			return e&7 != 0
		}
		return e&nP != 0
	}
	tab := a.Raw(root)
	for level := 4; level >= 1; level-- {
		slot := &tab[(gpa>>(12+9*(level-1)))&511]
		if !present(*slot) {
			return nil, level
		}
		if level == 1 || (level == 2 && *slot&128 != 0) {
			return slot, level
		}
		tab = a.Raw(*slot & 0x000F_FFFF_FFFF_F000)
		if tab == nil {
			panic(fmt.Sprintf("rawSlot: entry %#x points to a dead table", *slot))
		}
	}
	return nil, 0
}

func TestEntryEncoding(t *testing.T) {
	const hpa4, hpa2 = 0x1234_5000, 0x4060_0000
	tests := []struct {
		name string
		cfg  ept.Config
		gpa  uint64
		hpa  uint64
		size uint64
		perm ept.Perm
		mt   ept.MemType
		want uint64
	}{
		{"npt 4k rwx", ept.Config{Kind: ept.NPT}, 0x5000, hpa4, k4, ept.RWX, ept.WB, hpa4 | nP | nRW | nUS},
		{"npt 4k rw", ept.Config{Kind: ept.NPT}, 0x5000, hpa4, k4, ept.RW, ept.WB, hpa4 | nP | nRW | nUS | nNX},
		{"npt 4k r", ept.Config{Kind: ept.NPT}, 0x5000, hpa4, k4, ept.Read, ept.WB, hpa4 | nP | nUS | nNX},
		{"npt 4k rx uc", ept.Config{Kind: ept.NPT}, 0x5000, hpa4, k4, ept.RX, ept.UC, hpa4 | nP | nUS | nPCD | nPWT},
		{"npt 4k rx wt", ept.Config{Kind: ept.NPT}, 0x5000, hpa4, k4, ept.RX, ept.WT, hpa4 | nP | nUS | nPWT},
		{"npt 2m rwx", ept.Config{Kind: ept.NPT}, 0x20_0000, hpa2, m2, ept.RWX, ept.WB, hpa2 | nP | nRW | nUS | nPS},
		{"ept 4k rwx", ept.Config{Kind: ept.EPT}, 0x5000, hpa4, k4, ept.RWX, ept.WB, hpa4 | eR | eW | eX | eWB},
		{"ept 4k r", ept.Config{Kind: ept.EPT}, 0x5000, hpa4, k4, ept.Read, ept.WB, hpa4 | eR | eWB},
		{"ept 4k rw uc", ept.Config{Kind: ept.EPT}, 0x5000, hpa4, k4, ept.RW, ept.UC, hpa4 | eR | eW},
		{"ept 4k wc", ept.Config{Kind: ept.EPT}, 0x5000, hpa4, k4, ept.RW, ept.WC, hpa4 | eR | eW | 1<<3},
		{"ept 4k ipat", ept.Config{Kind: ept.EPT, IgnoreGuestPAT: true}, 0x5000, hpa4, k4, ept.RWX, ept.WB, hpa4 | eR | eW | eX | eWB | eIPAT},
		{"ept 4k x-only", ept.Config{Kind: ept.EPT, ExecuteOnly: true}, 0x5000, hpa4, k4, ept.Exec, ept.WB, hpa4 | eX | eWB},
		{"ept 2m rwx", ept.Config{Kind: ept.EPT}, 0x20_0000, hpa2, m2, ept.RWX, ept.WB, hpa2 | eR | eW | eX | eWB | ePS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb, a := newTables(t, tt.cfg)
			if _, err := tb.MapType(tt.gpa, tt.hpa, tt.size, tt.perm, tt.mt); err != nil {
				t.Fatalf("MapType(%#x, %#x, %#x, %v, %v) = %v", tt.gpa, tt.hpa, tt.size, tt.perm, tt.mt, err)
			}
			slot, _ := rawSlot(a, tt.cfg.Kind, tb.Root(), tt.gpa)
			if slot == nil {
				t.Fatalf("leaf(%#x) missing", tt.gpa)
			}
			if *slot != tt.want {
				t.Errorf("leaf(%#x) = %#x, want %#x", tt.gpa, *slot, tt.want)
			}
			// Non-leaf entries grant everything.
			root := a.Raw(tb.Root())
			wantNL := uint64(nP | nRW | nUS)
			if tt.cfg.Kind == ept.EPT {
				wantNL = eR | eW | eX
			}
			if got := root[0] &^ 0x000F_FFFF_FFFF_F000; got != wantNL {
				t.Errorf("PML4E[0] flags = %#x, want %#x", got, wantNL)
			}
			m, ok := tb.Translate(tt.gpa + 0x123)
			want := ept.Mapping{GPA: tt.gpa, HPA: tt.hpa, Size: tt.size, Perm: tt.perm, MemType: tt.mt}
			if !ok || m != want {
				t.Errorf("Translate(%#x) = %+v, %v, want %+v, true", tt.gpa+0x123, m, ok, want)
			}
		})
	}
}

func TestRootPointers(t *testing.T) {
	tb, _ := newTables(t, ept.Config{Kind: ept.EPT})
	if got, want := tb.EPTP(), tb.Root()|6|3<<3; got != want {
		t.Errorf("EPTP() = %#x, want %#x", got, want)
	}
	tb, _ = newTables(t, ept.Config{Kind: ept.EPT, AccessedDirty: true})
	if got, want := tb.EPTP(), tb.Root()|6|3<<3|1<<6; got != want {
		t.Errorf("EPTP() with A/D = %#x, want %#x", got, want)
	}
	tb, _ = newTables(t, ept.Config{Kind: ept.NPT})
	if got, want := tb.NCR3(), tb.Root(); got != want {
		t.Errorf("NCR3() = %#x, want %#x", got, want)
	}
}

func TestMapPageSizes(t *testing.T) {
	type probe struct {
		gpa, hpa, size uint64
	}
	tests := []struct {
		name             string
		gpa, hpa, size   uint64
		probes           []probe
		wantTablesAbove1 int // tables besides the root
	}{
		{"4k", 0x1000, 0x9000, k4, []probe{{0x1000, 0x9000, k4}}, 3},
		{"2m aligned", m2, 4 * m2, m2, []probe{{m2, 4 * m2, m2}, {m2 + 0x1f_f000, 4*m2 + 0x1f_f000, m2}}, 2},
		{"hpa misaligned", m2, 4*m2 + k4, m2, []probe{{m2, 4*m2 + k4, k4}, {m2 + 0x1f_f000, 5 * m2, k4}}, 3},
		{"mixed head body tail", m2 - k4, 8*m2 - k4, m2 + 2*k4, []probe{
			{m2 - k4, 8*m2 - k4, k4}, {m2, 8 * m2, m2}, {2 * m2, 9 * m2, k4}}, 4},
		{"across 1g", ept.PageSize1G - m2, 0x4000_0000, 2 * m2, []probe{
			{ept.PageSize1G - m2, 0x4000_0000, m2}, {ept.PageSize1G, 0x4000_0000 + m2, m2}}, 3},
		{"top of space", ept.MaxGPA - m2, 0x20_0000, m2, []probe{{ept.MaxGPA - m2, 0x20_0000, m2}}, 2},
	}
	for _, s := range setups() {
		for _, tt := range tests {
			t.Run(s.name+"/"+tt.name, func(t *testing.T) {
				tb, a := newTables(t, s.cfg)
				flush, err := tb.Map(tt.gpa, tt.hpa, tt.size, ept.RW)
				if err != nil || flush {
					t.Fatalf("Map(%#x, %#x, %#x) = %v, %v, want false, nil", tt.gpa, tt.hpa, tt.size, flush, err)
				}
				for _, p := range tt.probes {
					m, ok := tb.Translate(p.gpa)
					if !ok || m.HPA+(p.gpa-m.GPA) != p.hpa || m.Size != p.size || m.Perm != ept.RW {
						t.Errorf("Translate(%#x) = %+v, %v, want HPA %#x size %#x rw", p.gpa, m, ok, p.hpa, p.size)
					}
				}
				if _, ok := tb.Translate(tt.gpa - k4); ok {
					t.Errorf("Translate(%#x) mapped below the range", tt.gpa-k4)
				}
				if end := tt.gpa + tt.size; end < ept.MaxGPA {
					if _, ok := tb.Translate(end); ok {
						t.Errorf("Translate(%#x) mapped above the range", end)
					}
				}
				if got := a.Live() - 1; got != tt.wantTablesAbove1 {
					t.Errorf("tables below root = %d, want %d", got, tt.wantTablesAbove1)
				}
				if _, err := tb.Unmap(tt.gpa, tt.size); err != nil {
					t.Fatalf("Unmap = %v", err)
				}
				if a.Live() != 1 || tb.TableCount() != 1 {
					t.Errorf("after Unmap: live tables = %d, count = %d, want 1, 1", a.Live(), tb.TableCount())
				}
			})
		}
	}
}

func TestMapErrors(t *testing.T) {
	tests := []struct {
		name           string
		cfg            ept.Config
		gpa, hpa, size uint64
		perm           ept.Perm
		mt             ept.MemType
		want           error
	}{
		{"gpa misaligned", ept.Config{Kind: ept.NPT}, 0x1001, 0x2000, k4, ept.RW, ept.WB, ept.ErrRange},
		{"hpa misaligned", ept.Config{Kind: ept.EPT}, 0x1000, 0x2008, k4, ept.RW, ept.WB, ept.ErrRange},
		{"size zero", ept.Config{Kind: ept.EPT}, 0x1000, 0x2000, 0, ept.RW, ept.WB, ept.ErrRange},
		{"size odd", ept.Config{Kind: ept.EPT}, 0x1000, 0x2000, 100, ept.RW, ept.WB, ept.ErrRange},
		{"beyond 48 bits", ept.Config{Kind: ept.NPT}, ept.MaxGPA - k4, 0x2000, 2 * k4, ept.RW, ept.WB, ept.ErrRange},
		{"hpa beyond 52 bits", ept.Config{Kind: ept.NPT}, 0, 1 << 52, k4, ept.RW, ept.WB, ept.ErrRange},
		{"no perms", ept.Config{Kind: ept.EPT}, 0, 0, k4, 0, ept.WB, ept.ErrPerm},
		{"write only npt", ept.Config{Kind: ept.NPT}, 0, 0, k4, ept.Write, ept.WB, ept.ErrPerm},
		{"write only ept", ept.Config{Kind: ept.EPT, ExecuteOnly: true}, 0, 0, k4, ept.Write | ept.Exec, ept.WB, ept.ErrPerm},
		{"exec only npt", ept.Config{Kind: ept.NPT}, 0, 0, k4, ept.Exec, ept.WB, ept.ErrPerm},
		{"exec only ept unsupported", ept.Config{Kind: ept.EPT}, 0, 0, k4, ept.Exec, ept.WB, ept.ErrPerm},
		{"npt wc", ept.Config{Kind: ept.NPT}, 0, 0, k4, ept.RW, ept.WC, ept.ErrMemType},
		{"bad memtype", ept.Config{Kind: ept.EPT}, 0, 0, k4, ept.RW, 2, ept.ErrMemType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb, a := newTables(t, tt.cfg)
			_, err := tb.MapType(tt.gpa, tt.hpa, tt.size, tt.perm, tt.mt)
			if !errors.Is(err, tt.want) {
				t.Errorf("MapType(%#x, %#x, %#x, %v, %v) = %v, want %v", tt.gpa, tt.hpa, tt.size, tt.perm, tt.mt, err, tt.want)
			}
			if a.Live() != 1 {
				t.Errorf("live tables after failed Map = %d, want 1", a.Live())
			}
		})
	}
}

func TestMapOverlap(t *testing.T) {
	for _, s := range setups() {
		t.Run(s.name, func(t *testing.T) {
			tb, a := newTables(t, s.cfg)
			if _, err := tb.Map(m2, 0x4000_0000, m2, ept.RW); err != nil {
				t.Fatal(err)
			}
			live := a.Live()
			for _, r := range []struct{ gpa, size uint64 }{
				{m2, k4}, {m2 + 0x1f_f000, k4}, {0, 2 * m2}, {m2 - k4, 2 * k4}, {2*m2 - k4, 4 * k4},
			} {
				_, err := tb.Map(r.gpa, 0x8000_0000, r.size, ept.RW)
				if !errors.Is(err, ept.ErrMapped) {
					t.Errorf("Map(%#x, size %#x) over a mapping = %v, want ErrMapped", r.gpa, r.size, err)
				}
			}
			if a.Live() != live {
				t.Errorf("live tables = %d, want %d (failed maps must not leave tables)", a.Live(), live)
			}
			if m, ok := tb.Translate(m2 - k4); ok {
				t.Errorf("Translate(%#x) = %+v after failed Map, want unmapped", m2-k4, m)
			}
		})
	}
}

func TestMapAllocFailureRollsBack(t *testing.T) {
	for _, s := range setups() {
		for fail := 1; fail <= 4; fail++ {
			t.Run(fmt.Sprintf("%s/fail%d", s.name, fail), func(t *testing.T) {
				tb, a := newTables(t, s.cfg)
				a.FailAfter = fail
				// 4 KiB head in one 1 GiB region, then 2 MiB pages in the next:
				// needs 4 tables (PDPT, PD, PT, PD).
				gpa := uint64(ept.PageSize1G - k4)
				_, err := tb.Map(gpa, 0x1000_0000-k4, k4+2*m2, ept.RW)
				if !errors.Is(err, ept.ErrAlloc) {
					t.Fatalf("Map with allocation %d failing = %v, want ErrAlloc", fail, err)
				}
				if a.Live() != 1 || tb.TableCount() != 1 {
					t.Errorf("live tables = %d, count = %d, want 1, 1", a.Live(), tb.TableCount())
				}
				if _, ok := tb.Translate(gpa); ok {
					t.Errorf("Translate(%#x) mapped after failed Map", gpa)
				}
			})
		}
	}
}

func TestUnmap(t *testing.T) {
	type probe struct {
		gpa    uint64
		mapped bool
		size   uint64
	}
	tests := []struct {
		name       string
		gpa, size  uint64 // unmapped from a 4 MiB mapping at 2 MiB
		wantFlush  bool
		probes     []probe
		wantTables int
	}{
		{"one 4k inside 2m", m2 + 5*k4, k4, true, []probe{
			{m2 + 4*k4, true, k4}, {m2 + 5*k4, false, 0}, {m2 + 6*k4, true, k4}, {2 * m2, true, m2}}, 4},
		{"whole 2m", 2 * m2, m2, true, []probe{{m2, true, m2}, {2 * m2, false, 0}, {3*m2 - k4, false, 0}}, 3},
		{"straddling", 2*m2 - k4, 2 * k4, true, []probe{
			{2*m2 - 2*k4, true, k4}, {2*m2 - k4, false, 0}, {2 * m2, false, 0}, {2*m2 + k4, true, k4}}, 5},
		{"hole", 8 * m2, m2, false, []probe{{m2, true, m2}, {2 * m2, true, m2}}, 3},
		{"everything", 0, ept.PageSize1G, true, []probe{{m2, false, 0}, {2 * m2, false, 0}}, 1},
	}
	for _, s := range setups() {
		for _, tt := range tests {
			t.Run(s.name+"/"+tt.name, func(t *testing.T) {
				tb, a := newTables(t, s.cfg)
				if _, err := tb.Map(m2, 0x4000_0000, 2*m2, ept.RWX); err != nil {
					t.Fatal(err)
				}
				flush, err := tb.Unmap(tt.gpa, tt.size)
				if err != nil || flush != tt.wantFlush {
					t.Fatalf("Unmap(%#x, %#x) = %v, %v, want %v, nil", tt.gpa, tt.size, flush, err, tt.wantFlush)
				}
				for _, p := range tt.probes {
					m, ok := tb.Translate(p.gpa)
					if ok != p.mapped || ok && (m.Size != p.size || m.HPA+(p.gpa-m.GPA) != 0x4000_0000+p.gpa-m2) {
						t.Errorf("Translate(%#x) = %+v, %v, want mapped=%v size %#x", p.gpa, m, ok, p.mapped, p.size)
					}
				}
				if a.Live() != tt.wantTables {
					t.Errorf("live tables = %d, want %d", a.Live(), tt.wantTables)
				}
			})
		}
	}
}

func TestUnmapSplitFailure(t *testing.T) {
	tb, a := newTables(t, ept.Config{Kind: ept.NPT})
	if _, err := tb.Map(0, 0, m2, ept.RW); err != nil {
		t.Fatal(err)
	}
	a.FailAfter = 1
	if _, err := tb.Unmap(k4, k4); !errors.Is(err, ept.ErrAlloc) {
		t.Fatalf("Unmap needing a split with allocation failing = %v, want ErrAlloc", err)
	}
	if m, ok := tb.Translate(k4); !ok || m.Size != m2 {
		t.Errorf("Translate(%#x) = %+v, %v, want the untouched 2 MiB page", k4, m, ok)
	}
}

func TestProtect(t *testing.T) {
	for _, s := range setups() {
		t.Run(s.name, func(t *testing.T) {
			tb, a := newTables(t, s.cfg)
			if _, err := tb.Map(0, 0x4000_0000, 2*m2, ept.RWX); err != nil {
				t.Fatal(err)
			}
			// Play the processor: set A and D in the first 2 MiB leaf.
			slot, _ := rawSlot(a, s.cfg.Kind, tb.Root(), 0)
			if s.cfg.Kind == ept.NPT {
				*slot |= nA | nD
			} else if s.cfg.AccessedDirty {
				*slot |= eA | eD
			}
			hw := s.cfg.Kind == ept.NPT || s.cfg.AccessedDirty

			flush, err := tb.Protect(3*k4, 2*k4, ept.Read)
			if err != nil || !flush {
				t.Fatalf("Protect(%#x, %#x, r) = %v, %v, want true, nil", 3*k4, 2*k4, flush, err)
			}
			tests := []struct {
				gpa  uint64
				perm ept.Perm
				size uint64
			}{
				{2 * k4, ept.RWX, k4}, {3 * k4, ept.Read, k4}, {4 * k4, ept.Read, k4}, {5 * k4, ept.RWX, k4},
				{m2, ept.RWX, m2},
			}
			for _, tt := range tests {
				m, ok := tb.Translate(tt.gpa)
				if !ok || m.Perm != tt.perm || m.Size != tt.size || m.HPA != 0x4000_0000+tt.gpa {
					t.Errorf("Translate(%#x) = %+v, %v, want perm %v size %#x", tt.gpa, m, ok, tt.perm, tt.size)
				}
				if tt.gpa < m2 && (m.Dirty != hw || m.Accessed != hw) {
					t.Errorf("Translate(%#x) A/D = %v/%v, want %v/%v (split keeps A/D)", tt.gpa, m.Accessed, m.Dirty, hw, hw)
				}
			}
			if flush, err := tb.Protect(3*k4, 2*k4, ept.Read); err != nil || flush {
				t.Errorf("Protect with unchanged permissions = %v, %v, want false, nil", flush, err)
			}
			if flush, err := tb.Protect(m2, m2, ept.RX); err != nil || !flush {
				t.Errorf("Protect(whole 2 MiB) = %v, %v, want true, nil", flush, err)
			}
			if m, _ := tb.Translate(m2 + k4); m.Size != m2 || m.Perm != ept.RX {
				t.Errorf("Translate(%#x) = %+v, want 2 MiB rx (no split when fully covered)", m2+k4, m)
			}
			if _, err := tb.Protect(2*m2-k4, 2*k4, ept.Read); !errors.Is(err, ept.ErrNotMapped) {
				t.Errorf("Protect over a hole = %v, want ErrNotMapped", err)
			}
			if m, _ := tb.Translate(2*m2 - k4); m.Perm != ept.RX {
				t.Errorf("Translate(%#x).Perm = %v after failed Protect, want rx", 2*m2-k4, m.Perm)
			}
		})
	}
}

func TestDestroy(t *testing.T) {
	for _, s := range setups() {
		t.Run(s.name, func(t *testing.T) {
			tb, a := newTables(t, s.cfg)
			for i, gpa := range []uint64{0, ept.PageSize1G, 1 << 40, ept.MaxGPA - k4} {
				if _, err := tb.Map(gpa, uint64(i)*m2, k4, ept.RW); err != nil {
					t.Fatal(err)
				}
			}
			tb.Destroy()
			if a.Live() != 0 {
				t.Errorf("live tables after Destroy = %d, want 0", a.Live())
			}
			tb.Destroy()
			if _, err := tb.Map(0, 0, k4, ept.RW); !errors.Is(err, ept.ErrDestroyed) {
				t.Errorf("Map after Destroy = %v, want ErrDestroyed", err)
			}
			if _, ok := tb.Translate(0); ok {
				t.Errorf("Translate(0) after Destroy = true, want false")
			}
		})
	}
}
