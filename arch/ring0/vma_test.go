package ring0

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

const pg = pageSize

// regions returns the list's regions.
func (l *vmaList) regions() []vma { return slices.Clone(l.r[:l.n]) }

func listOf(vs ...vma) *vmaList {
	l := new(vmaList)
	copy(l.r[:], vs)
	l.n = len(vs)
	return l
}

// checkInvariants reports a broken invariant of the list: regions sorted, non-empty,
// non-overlapping, neighbors of equal protection merged, unused slots zero.
func (l *vmaList) checkInvariants() error {
	for i := 0; i < l.n; i++ {
		v := l.r[i]
		if v.start >= v.end {
			return fmt.Errorf("region %d = [%#x, %#x) is empty", i, v.start, v.end)
		}
		if i > 0 {
			p := l.r[i-1]
			if p.end > v.start {
				return fmt.Errorf("regions %d [%#x, %#x) and %d [%#x, %#x) overlap or are unsorted", i-1, p.start, p.end, i, v.start, v.end)
			}
			if p.end == v.start && p.prot == v.prot {
				return fmt.Errorf("regions %d and %d touch at %#x with the same protection %#x but are not merged", i-1, i, v.start, v.prot)
			}
		}
	}
	for i := l.n; i < len(l.r); i++ {
		if l.r[i] != (vma{}) {
			return fmt.Errorf("unused slot %d = %+v, want zero", i, l.r[i])
		}
	}
	return nil
}

type vmaOp struct {
	remove     bool
	start, end uint64
	prot       uint32
}

func (o vmaOp) String() string {
	if o.remove {
		return fmt.Sprintf("remove(%#x, %#x)", o.start, o.end)
	}
	return fmt.Sprintf("set(%#x, %#x, %#x)", o.start, o.end, o.prot)
}

func (o vmaOp) apply(l *vmaList) bool {
	if o.remove {
		return l.remove(o.start, o.end)
	}
	return l.set(o.start, o.end, o.prot)
}

func set(s, e uint64, p uint32) vmaOp { return vmaOp{start: s * pg, end: e * pg, prot: p} }
func rm(s, e uint64) vmaOp            { return vmaOp{remove: true, start: s * pg, end: e * pg} }
func v(s, e uint64, p uint32) vma     { return vma{s * pg, e * pg, p} }

const (
	rw  = protRead | protWrite
	ro  = protRead
	rx  = protRead | protExec
	non = 0
)

func TestVMASetRemove(t *testing.T) {
	tests := []struct {
		name string
		ops  []vmaOp
		want []vma
	}{
		{"empty set is a no-op", []vmaOp{set(5, 5, rw)}, nil},
		{"one region", []vmaOp{set(1, 4, rw)}, []vma{v(1, 4, rw)}},
		{"PROT_NONE reservation is a region", []vmaOp{set(1, 4, non)}, []vma{v(1, 4, non)}},
		{"disjoint regions sorted", []vmaOp{set(10, 12, rw), set(1, 2, ro), set(5, 6, rx)},
			[]vma{v(1, 2, ro), v(5, 6, rx), v(10, 12, rw)}},
		{"merge with the left neighbor", []vmaOp{set(1, 4, rw), set(4, 6, rw)}, []vma{v(1, 6, rw)}},
		{"merge with the right neighbor", []vmaOp{set(4, 6, rw), set(1, 4, rw)}, []vma{v(1, 6, rw)}},
		{"merge both neighbors", []vmaOp{set(1, 4, rw), set(6, 8, rw), set(4, 6, rw)}, []vma{v(1, 8, rw)}},
		{"no merge across different protection", []vmaOp{set(1, 4, rw), set(4, 6, ro)}, []vma{v(1, 4, rw), v(4, 6, ro)}},
		{"split in the middle", []vmaOp{set(0, 10, non), set(4, 6, rw)},
			[]vma{v(0, 4, non), v(4, 6, rw), v(6, 10, non)}},
		{"split and merge back", []vmaOp{set(0, 10, rw), set(4, 6, ro), set(4, 6, rw)}, []vma{v(0, 10, rw)}},
		{"same protection inside is a no-op", []vmaOp{set(0, 10, rw), set(3, 5, rw)}, []vma{v(0, 10, rw)}},
		{"replace the head", []vmaOp{set(0, 10, rw), set(0, 3, ro)}, []vma{v(0, 3, ro), v(3, 10, rw)}},
		{"replace the tail", []vmaOp{set(0, 10, rw), set(7, 10, ro)}, []vma{v(0, 7, rw), v(7, 10, ro)}},
		{"cover several regions and gaps", []vmaOp{set(1, 2, rw), set(3, 4, ro), set(5, 6, rx), set(0, 7, non)},
			[]vma{v(0, 7, non)}},
		{"overlap the ends of two regions", []vmaOp{set(0, 4, rw), set(6, 10, ro), set(2, 8, rx)},
			[]vma{v(0, 2, rw), v(2, 8, rx), v(8, 10, ro)}},
		{"bridge two regions of the same protection", []vmaOp{set(0, 4, rw), set(6, 10, rw), set(3, 7, rw)},
			[]vma{v(0, 10, rw)}},
		{"remove all", []vmaOp{set(1, 4, rw), rm(1, 4)}, nil},
		{"remove empty range is a no-op", []vmaOp{set(1, 4, rw), rm(2, 2), rm(3, 1)}, []vma{v(1, 4, rw)}},
		{"remove unmapped range", []vmaOp{set(1, 4, rw), rm(5, 9)}, []vma{v(1, 4, rw)}},
		{"remove splits in the middle", []vmaOp{set(0, 10, rw), rm(4, 6)}, []vma{v(0, 4, rw), v(6, 10, rw)}},
		{"remove the head", []vmaOp{set(0, 10, rw), rm(0, 4)}, []vma{v(4, 10, rw)}},
		{"remove the tail", []vmaOp{set(0, 10, rw), rm(6, 10)}, []vma{v(0, 6, rw)}},
		{"remove across regions", []vmaOp{set(0, 4, rw), set(4, 8, ro), set(9, 12, rx), set(13, 14, rw), rm(2, 10)},
			[]vma{v(0, 2, rw), v(10, 12, rx), v(13, 14, rw)}},
		{"remove a superset", []vmaOp{set(3, 4, rw), set(5, 6, ro), rm(0, 100)}, nil},
		{"unaligned byte ranges", []vmaOp{{start: 0x1001, end: 0x2003, prot: rw}, {start: 0x2003, end: 0x2004, prot: rw}},
			[]vma{{0x1001, 0x2004, rw}}},
		{"top of the address space", []vmaOp{{start: 1<<64 - 2*pg, end: 1<<64 - pg, prot: rw}, {start: 1 << 47, end: 1<<64 - 2*pg, prot: rw}},
			[]vma{{1 << 47, 1<<64 - pg, rw}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := new(vmaList)
			for _, op := range tt.ops {
				if !op.apply(l) {
					t.Fatalf("%v = false, want true", op)
				}
				if err := l.checkInvariants(); err != nil {
					t.Fatalf("after %v: %v", op, err)
				}
			}
			if got := l.regions(); !slices.Equal(got, tt.want) {
				t.Errorf("after %v: regions = %#x, want %#x", tt.ops, got, tt.want)
			}
		})
	}
}

func TestVMAQueries(t *testing.T) {
	l := listOf(v(2, 4, rw), v(4, 6, ro), v(10, 12, non))
	findTests := []struct {
		addr uint64
		want vma
		ok   bool
	}{
		{0, vma{}, false},
		{2*pg - 1, vma{}, false},
		{2 * pg, v(2, 4, rw), true},
		{4*pg - 1, v(2, 4, rw), true},
		{4 * pg, v(4, 6, ro), true},
		{6 * pg, vma{}, false},
		{11*pg + 5, v(10, 12, non), true},
		{12 * pg, vma{}, false},
		{^uint64(0), vma{}, false},
	}
	for _, tt := range findTests {
		got, ok := l.find(tt.addr)
		if got != tt.want || ok != tt.ok {
			t.Errorf("find(%#x) = %#x, %v, want %#x, %v", tt.addr, got, ok, tt.want, tt.ok)
		}
	}
	rangeTests := []struct {
		start, end        uint64
		overlaps, covered bool
	}{
		{0, 2 * pg, false, false},
		{0, 2*pg + 1, true, false},
		{2 * pg, 6 * pg, true, true}, // two touching regions
		{3 * pg, 5 * pg, true, true},
		{2 * pg, 7 * pg, true, false},
		{5 * pg, 11 * pg, true, false}, // across the hole
		{6 * pg, 10 * pg, false, false},
		{10 * pg, 12 * pg, true, true},
		{12 * pg, 20 * pg, false, false},
	}
	for _, tt := range rangeTests {
		if got := l.overlaps(tt.start, tt.end); got != tt.overlaps {
			t.Errorf("overlaps(%#x, %#x) = %v, want %v", tt.start, tt.end, got, tt.overlaps)
		}
		if got := l.covered(tt.start, tt.end); got != tt.covered {
			t.Errorf("covered(%#x, %#x) = %v, want %v", tt.start, tt.end, got, tt.covered)
		}
	}
	if !l.covered(3*pg, 3*pg) {
		t.Errorf("covered(%#x, %#x) = false, want true for an empty range", 3*pg, 3*pg)
	}
}

func TestVMAGap(t *testing.T) {
	// Fragmented: [0x10000, 0x20000) [0x30000, 0x31000) [0x40000, 0x50000).
	l := listOf(vma{0x10000, 0x20000, rw}, vma{0x30000, 0x31000, ro}, vma{0x40000, 0x50000, non})
	tests := []struct {
		length, floor, ceil uint64
		want                uint64
		ok                  bool
	}{
		{0x1000, 0, 0x100000, 0xFF000, true},        // top of the window
		{0x1000, 0, 0x50000, 0x3F000, true},         // ceil at a region's end
		{0x1000, 0, 0x48000, 0x3F000, true},         // ceil inside a region
		{0xF000, 0, 0x50000, 0x31000, true},         // exactly fills the hole below
		{0x10000, 0, 0x50000, 0x20000, true},        // too big for the first hole
		{0x10001, 0, 0x50000, 0, false},             // too big for every hole
		{0x10000, 0, 0x20000, 0, true},              // the hole at the bottom
		{0x1000, 0x35000, 0x40000, 0x3F000, true},   // floor inside a hole
		{0xB000, 0x35000, 0x40000, 0x35000, true},   // down to the floor exactly
		{0xB001, 0x35000, 0x40000, 0, false},        // one byte too many
		{0x10000, 0x35000, 0x100000, 0xF0000, true}, // above the regions
		{0x10000, 0x45000, 0x60000, 0x50000, true},  // floor inside a region
		{0x10001, 0x45000, 0x60000, 0, false},
		{0x1000, 0x20000, 0x20000, 0, false}, // empty window
		{0x200000, 0, 0x100000, 0, false},    // longer than the window
		{0x1000, 0x30000, 0x31000, 0, false}, // window inside a region
		{0x1000, 0x31000, 0x32000, 0x31000, true},
	}
	for _, tt := range tests {
		got, ok := l.gap(tt.length, tt.floor, tt.ceil)
		if got != tt.want || ok != tt.ok {
			t.Errorf("gap(%#x, %#x, %#x) = %#x, %v, want %#x, %v", tt.length, tt.floor, tt.ceil, got, ok, tt.want, tt.ok)
		}
	}
	empty := new(vmaList)
	if got, ok := empty.gap(0x3000, 0x1000, 0x10000); got != 0xD000 || !ok {
		t.Errorf("empty list: gap(0x3000, 0x1000, 0x10000) = %#x, %v, want 0xd000, true", got, ok)
	}
}

// TestVMAFull fills the list and checks that an operation that needs a slot fails and
// changes nothing.
func TestVMAFull(t *testing.T) {
	l := new(vmaList)
	// Regions of one page with one-page holes: none merge.
	i := uint64(0)
	for ; ; i++ {
		if !l.set(2*i*pg, (2*i+1)*pg, rw) {
			break
		}
	}
	if l.n != len(l.r)-1 {
		t.Fatalf("set failed with %d regions, want it to fill up to %d (it keeps room for a split)", l.n, len(l.r)-1)
	}
	if err := l.checkInvariants(); err != nil {
		t.Fatal(err)
	}
	// remove that splits a region takes the last slot.
	big := (2*i + 10) * pg
	if !l.remove(0, 0) || l.n != len(l.r)-1 {
		t.Fatalf("remove(0, 0) changed the list")
	}
	// Make one region 4 pages long so that removing its middle splits it.
	l.r[l.n-1].end += 3 * pg
	if !l.remove(l.r[l.n-1].start+pg, l.r[l.n-1].start+2*pg) {
		t.Fatalf("remove of the middle of a region with one slot left = false, want true")
	}
	if l.n != len(l.r) {
		t.Fatalf("after a split n = %d, want %d", l.n, len(l.r))
	}
	snapshot := *l
	failing := []vmaOp{
		{start: big, end: big + pg, prot: rw},                        // a new region
		{start: 0, end: pg, prot: ro},                                // replacing one exactly: still refused when full
		{remove: true, start: l.r[0].start + 1, end: l.r[0].end - 1}, // a split
	}
	for _, op := range failing {
		if op.apply(l) {
			t.Errorf("full list: %v = true, want false", op)
		}
		if *l != snapshot {
			t.Errorf("full list: %v changed the list", op)
			*l = snapshot
		}
	}
	// Removing a whole region needs no slot.
	if !l.remove(0, pg) {
		t.Errorf("full list: remove(0, %#x) of a whole region = false, want true", pg)
	}
	if l.n != len(l.r)-1 {
		t.Errorf("after removing a region n = %d, want %d", l.n, len(l.r)-1)
	}
	if err := l.checkInvariants(); err != nil {
		t.Error(err)
	}
}

// model is the reference for the VMA list: page number -> protection.
type model map[uint64]uint32

func (m model) regions() []vma {
	pages := make([]uint64, 0, len(m))
	for p := range m {
		pages = append(pages, p)
	}
	slices.Sort(pages)
	var out []vma
	for _, p := range pages {
		if n := len(out); n > 0 && out[n-1].end == p*pg && out[n-1].prot == m[p] {
			out[n-1].end += pg
			continue
		}
		out = append(out, vma{p * pg, (p + 1) * pg, m[p]})
	}
	return out
}

// gap is the reference gap: the highest page-aligned free run of length inside [floor, ceil).
func (m model) gap(length, floor, ceil uint64) (uint64, bool) {
	if ceil < floor+length || length == 0 {
		return 0, false
	}
	for a := ceil - length; ; a -= pg {
		free := true
		for p := a / pg; p < (a+length)/pg; p++ {
			if _, ok := m[p]; ok {
				free = false
				break
			}
		}
		if free {
			return a, true
		}
		if a < floor+pg {
			return 0, false
		}
	}
}

// TestVMARandom runs random operations against the list and the reference model.
func TestVMARandom(t *testing.T) {
	const pages = 256
	prots := []uint32{non, ro, rw, rx, rw | protReserved}
	rng := rand.New(rand.NewPCG(1, 2))
	l := new(vmaList)
	m := model{}
	rangeOf := func() (uint64, uint64) {
		a, b := rng.Uint64N(pages+1), rng.Uint64N(pages+1)
		if rng.IntN(4) == 0 { // mostly short ranges, to fragment the map
			b = min(a+rng.Uint64N(4), pages)
		}
		return min(a, b), max(a, b)
	}
	for i := 0; i < 5000; i++ {
		s, e := rangeOf()
		var op vmaOp
		if rng.IntN(3) == 0 {
			op = rm(s, e)
			for p := s; p < e; p++ {
				delete(m, p)
			}
		} else {
			op = set(s, e, prots[rng.IntN(len(prots))])
			for p := s; p < e; p++ {
				m[p] = op.prot
			}
		}
		if !op.apply(l) {
			t.Fatalf("op %d: %v = false, want true", i, op)
		}
		if err := l.checkInvariants(); err != nil {
			t.Fatalf("op %d: after %v: %v", i, op, err)
		}
		if got, want := l.regions(), m.regions(); !slices.Equal(got, want) {
			t.Fatalf("op %d: after %v: regions = %#x, want %#x", i, op, got, want)
		}
		// Queries against the model.
		addr := rng.Uint64N(pages*pg + pg)
		gotV, gotOK := l.find(addr)
		prot, wantOK := m[addr/pg]
		if gotOK != wantOK || (gotOK && (gotV.prot != prot || addr < gotV.start || addr >= gotV.end)) {
			t.Fatalf("op %d: find(%#x) = %#x, %v, want a region with prot %#x: %v", i, addr, gotV, gotOK, prot, wantOK)
		}
		qs, qe := rangeOf()
		var anyMapped, allMapped = false, true
		for p := qs; p < qe; p++ {
			_, ok := m[p]
			anyMapped = anyMapped || ok
			allMapped = allMapped && ok
		}
		// (overlaps of an empty range is left unspecified: mmap rejects length 0 first.)
		if got := l.overlaps(qs*pg, qe*pg); qs < qe && got != anyMapped {
			t.Fatalf("op %d: overlaps(%#x, %#x) = %v, want %v", i, qs*pg, qe*pg, got, anyMapped)
		}
		if got := l.covered(qs*pg, qe*pg); got != allMapped {
			t.Fatalf("op %d: covered(%#x, %#x) = %v, want %v", i, qs*pg, qe*pg, got, allMapped)
		}
		length := (1 + rng.Uint64N(8)) * pg
		gotA, gotOK := l.gap(length, qs*pg, qe*pg)
		wantA, wantOK := m.gap(length, qs*pg, qe*pg)
		if gotA != wantA || gotOK != wantOK {
			t.Fatalf("op %d: gap(%#x, %#x, %#x) = %#x, %v, want %#x, %v\nregions %#x",
				i, length, qs*pg, qe*pg, gotA, gotOK, wantA, wantOK, l.regions())
		}
	}
}
