package ring0

import (
	"slices"
	"syscall"
	"testing"
	"unsafe"
)

// arena is page-aligned memory standing in for physical memory: in user space the allocator's
// "physical addresses" are plain addresses, so it can run on it. It is mapped outside the Go
// heap: the allocator turns addresses into pointers with unsafe.Add(nil, pa), which the race
// detector's pointer checks (checkptr) reject when the result points into a heap object.
type arena struct {
	buf  []byte
	base uint64 // address of buf[0], page-aligned
}

func newArena(t *testing.T, pages int) *arena {
	t.Helper()
	buf, err := syscall.Mmap(-1, 0, pages*pageSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatalf("mmap %d pages: %v", pages, err)
	}
	t.Cleanup(func() { syscall.Munmap(buf) })
	base := uint64(uintptr(unsafe.Pointer(&buf[0])))
	if base%pageSize != 0 {
		t.Fatalf("mmap returned %#x, not page-aligned", base)
	}
	return &arena{buf: buf, base: base}
}

// page returns the address of page i of the arena.
func (a *arena) page(i int) uint64 { return a.base + uint64(i)*pageSize }

// bytes views n bytes at address pa of the arena.
func (a *arena) bytes(pa uint64, n uint64) []byte { return a.buf[pa-a.base : pa-a.base+n] }

// fill writes b over the whole arena, so that alloc must zero what it returns.
func (a *arena) fill(b byte) {
	for i := range a.buf {
		a.buf[i] = b
	}
}

// ranges returns the allocator's free ranges, relative to the arena, in pages.
func (a *arena) ranges(f *frameAllocator) [][2]int {
	var out [][2]int
	for i := 0; i < f.n; i++ {
		out = append(out, [2]int{int((f.r[i].next - a.base) / pageSize), int((f.r[i].end - a.base) / pageSize)})
	}
	return out
}

func TestFrameAdd(t *testing.T) {
	a := newArena(t, 16)
	tests := []struct {
		name       string
		start, end uint64
		ranges     [][2]int
		total      uint64
	}{
		{"whole pages", a.page(2), a.page(6), [][2]int{{2, 6}}, 4},
		{"trimmed to whole pages", a.page(2) - 1, a.page(6) + pageSize - 1, [][2]int{{2, 6}}, 4},
		{"start rounded up", a.page(2) + 1, a.page(6), [][2]int{{3, 6}}, 3},
		{"end rounded down", a.page(2), a.page(6) - 1, [][2]int{{2, 5}}, 3},
		{"less than a page", a.page(2) + 1, a.page(3) - 1, nil, 0},
		{"empty", a.page(2), a.page(2), nil, 0},
		{"reversed", a.page(6), a.page(2), nil, 0},
	}
	for _, tt := range tests {
		var f frameAllocator
		f.add(tt.start, tt.end)
		if got := a.ranges(&f); !slices.Equal(got, tt.ranges) || f.total != tt.total {
			t.Errorf("%s: add(page 2%+d, page 6%+d): ranges %v total %d, want %v total %d", tt.name,
				int64(tt.start-a.page(2)), int64(tt.end-a.page(6)), got, f.total, tt.ranges, tt.total)
		}
	}
	var f frameAllocator
	for i := 0; i < len(f.r)+3; i++ {
		f.add(a.page(0), a.page(1))
	}
	if f.n != len(f.r) || f.total != uint64(len(f.r)) {
		t.Errorf("adding %d ranges: n = %d, total = %d, want %d, %d (extra ranges ignored)", len(f.r)+3, f.n, f.total, len(f.r), len(f.r))
	}
}

func TestFrameReserve(t *testing.T) {
	a := newArena(t, 32)
	// One range, pages [4, 20).
	tests := []struct {
		name   string
		lo, hi uint64 // reserve [lo, hi)
		ranges [][2]int
		total  uint64
	}{
		{"before", a.page(0), a.page(4), [][2]int{{4, 20}}, 16},
		{"after", a.page(20), a.page(30), [][2]int{{4, 20}}, 16},
		{"all", a.page(4), a.page(20), [][2]int{{20, 20}}, 0},
		{"superset", a.page(0), a.page(30), [][2]int{{20, 20}}, 0},
		{"head", a.page(0), a.page(6), [][2]int{{6, 20}}, 14},
		{"head exactly", a.page(4), a.page(6), [][2]int{{6, 20}}, 14},
		{"tail", a.page(18), a.page(30), [][2]int{{4, 18}}, 14},
		{"tail exactly", a.page(18), a.page(20), [][2]int{{4, 18}}, 14},
		{"middle: split", a.page(8), a.page(10), [][2]int{{4, 8}, {10, 20}}, 14},
		{"rounded out to whole pages", a.page(8) + 1, a.page(9) + 1, [][2]int{{4, 8}, {10, 20}}, 14},
		{"one byte", a.page(4) + 100, a.page(4) + 101, [][2]int{{5, 20}}, 15},
		{"empty range inside", a.page(8), a.page(8), [][2]int{{4, 20}}, 16},
		{"reversed range", a.page(10), a.page(8), [][2]int{{4, 20}}, 16},
	}
	for _, tt := range tests {
		var f frameAllocator
		f.add(a.page(4), a.page(20))
		f.reserve(tt.lo, tt.hi)
		if got := a.ranges(&f); !slices.Equal(got, tt.ranges) || f.total != tt.total {
			t.Errorf("%s: reserve(page %d%+d, page %d%+d) on [4, 20): ranges %v total %d, want %v total %d", tt.name,
				(tt.lo-a.base)/pageSize, (tt.lo-a.base)%pageSize, (tt.hi-a.base)/pageSize, (tt.hi-a.base)%pageSize,
				got, f.total, tt.ranges, tt.total)
		}
	}

	// Several ranges, one reserve across them.
	var f frameAllocator
	f.add(a.page(0), a.page(4))
	f.add(a.page(6), a.page(10))
	f.add(a.page(12), a.page(16))
	f.reserve(a.page(2), a.page(13))
	if got, want := a.ranges(&f), [][2]int{{0, 2}, {10, 10}, {13, 16}}; !slices.Equal(got, want) || f.total != 5 {
		t.Errorf("reserve(page 2, page 13) over [0,4) [6,10) [12,16): ranges %v total %d, want %v total 5", got, f.total, want)
	}

	// Frames already handed out are not the reserve's business.
	f = frameAllocator{}
	f.add(a.page(0), a.page(8))
	f.alloc()
	f.alloc()
	f.reserve(a.page(0), a.page(4))
	if got, want := a.ranges(&f), [][2]int{{4, 8}}; !slices.Equal(got, want) || f.total != 6 {
		t.Errorf("reserve over 2 allocated and 2 free frames: ranges %v total %d, want %v total 6", got, f.total, want)
	}

	// A split with no slot left loses the tail rather than corrupting the table.
	f = frameAllocator{}
	for i := 0; i < len(f.r); i++ {
		f.add(a.page(0), a.page(10)) // the same memory each time: only the bookkeeping matters
	}
	f.r[len(f.r)-1] = frameRange{a.page(20), a.page(30)}
	f.reserve(a.page(24), a.page(25))
	last := f.r[len(f.r)-1]
	if f.n != len(f.r) || last.next != a.page(20) || last.end != a.page(24) {
		t.Errorf("split with a full table: n = %d, last range [%d, %d), want %d, [20, 24)",
			f.n, (last.next-a.base)/pageSize, (last.end-a.base)/pageSize, len(f.r))
	}
	if want := uint64(len(f.r)*10) - 6; f.total != want {
		t.Errorf("split with a full table: total = %d, want %d (the reserved page and the lost tail subtracted)", f.total, want)
	}
}

func TestFrameAlloc(t *testing.T) {
	a := newArena(t, 24)
	a.fill(0xA5)
	var f frameAllocator
	f.add(a.page(1), a.page(5))   // 4 frames
	f.add(a.page(10), a.page(14)) // 4 frames
	f.reserve(a.page(11), a.page(12))
	const frames = 7
	if f.total != frames {
		t.Fatalf("total = %d, want %d", f.total, frames)
	}
	inRange := func(pa uint64) bool {
		return pa >= a.page(1) && pa < a.page(5) || pa >= a.page(10) && pa < a.page(11) || pa >= a.page(12) && pa < a.page(14)
	}
	seen := map[uint64]bool{}
	var got []uint64
	for i := 0; i < frames; i++ {
		pa, ok := f.alloc()
		if !ok {
			t.Fatalf("alloc %d = false, want a frame (%d of %d used)", i, f.used, f.total)
		}
		switch {
		case pa%pageSize != 0:
			t.Errorf("alloc %d = %#x, not page-aligned", i, pa)
		case !inRange(pa):
			t.Errorf("alloc %d = page %d, outside the added, unreserved ranges", i, int64(pa-a.base)/pageSize)
		case seen[pa]:
			t.Errorf("alloc %d = page %d, handed out twice", i, (pa-a.base)/pageSize)
		}
		if i := slices.IndexFunc(a.bytes(pa, pageSize), func(b byte) bool { return b != 0 }); i >= 0 {
			t.Errorf("alloc: frame page %d byte %d = %#x, want zeroed", (pa-a.base)/pageSize, i, a.bytes(pa, pageSize)[i])
		}
		seen[pa] = true
		got = append(got, pa)
		if f.used != uint64(i+1) {
			t.Errorf("after %d allocs used = %d, want %d", i+1, f.used, i+1)
		}
	}
	// Untouched memory around the frames is left alone.
	for _, p := range []int{0, 5, 9, 11, 14} {
		if b := a.bytes(a.page(p), pageSize); b[0] != 0xA5 || b[pageSize-1] != 0xA5 {
			t.Errorf("page %d, not the allocator's, was written", p)
		}
	}
	if pa, ok := f.alloc(); ok {
		t.Fatalf("alloc with every frame used = page %d, true; want false", (pa-a.base)/pageSize)
	}
	if f.used != frames {
		t.Errorf("a failed alloc changed used to %d, want %d", f.used, frames)
	}

	// Release two frames and reuse them: last released, first reused.
	for _, pa := range got[2:4] {
		a.bytes(pa, pageSize)[100] = 0x77 // dirty, to check that reuse zeroes
		f.release(pa)
	}
	if f.used != frames-2 || f.nfree != 2 {
		t.Errorf("after 2 releases used = %d, nfree = %d, want %d, 2", f.used, f.nfree, frames-2)
	}
	for _, want := range []uint64{got[3], got[2]} {
		pa, ok := f.alloc()
		if !ok || pa != want {
			t.Errorf("alloc after release = page %d, %v, want the released page %d", int64(pa-a.base)/pageSize, ok, (want-a.base)/pageSize)
		}
		if b := a.bytes(pa, pageSize); b[0] != 0 || b[100] != 0 || b[8] != 0 {
			t.Errorf("reused frame page %d not zeroed (free-list link or old data left)", (pa-a.base)/pageSize)
		}
	}
	if _, ok := f.alloc(); ok || f.nfree != 0 || f.used != frames {
		t.Errorf("after reusing both: alloc ok = %v, nfree = %d, used = %d, want false, 0, %d", ok, f.nfree, f.used, frames)
	}
	if f.total != frames {
		t.Errorf("total = %d after allocs and releases, want %d unchanged", f.total, frames)
	}
}

func TestFrameAllocRun(t *testing.T) {
	a := newArena(t, 32)
	a.fill(0x5A)
	var f frameAllocator
	f.add(a.page(0), a.page(3))   // 3 frames
	f.add(a.page(8), a.page(16))  // 8 frames
	f.add(a.page(20), a.page(22)) // 2 frames
	tests := []struct {
		n    uint64
		want int // first page, -1 for failure
	}{
		{2, 0},   // fits the first range
		{2, 8},   // the first has only 1 left
		{9, -1},  // nothing that long
		{6, 10},  // the rest of the second range
		{1, 2},   // the first range's last frame
		{3, -1},  // 2 left in the last range
		{2, 20},  // exactly the last range
		{1, -1},  // exhausted
		{40, -1}, // larger than everything
	}
	var used uint64
	for _, tt := range tests {
		pa, ok := f.allocRun(tt.n)
		if tt.want < 0 {
			if ok {
				t.Errorf("allocRun(%d) = page %d, true, want false", tt.n, int64(pa-a.base)/pageSize)
			}
			continue
		}
		if !ok || pa != a.page(tt.want) {
			t.Errorf("allocRun(%d) = page %d, %v, want page %d, true", tt.n, int64(pa-a.base)/pageSize, ok, tt.want)
			continue
		}
		used += tt.n
		if i := slices.IndexFunc(a.bytes(pa, tt.n*pageSize), func(b byte) bool { return b != 0 }); i >= 0 {
			t.Errorf("allocRun(%d): byte %d of the run = %#x, want zeroed", tt.n, i, a.bytes(pa, tt.n*pageSize)[i])
		}
		if b := a.bytes(pa+tt.n*pageSize, 1); b[0] != 0x5A {
			t.Errorf("allocRun(%d) at page %d: page %d after the run was written", tt.n, tt.want, tt.want+int(tt.n))
		}
	}
	if f.used != used || f.total != 13 {
		t.Errorf("used = %d, total = %d, want %d, 13", f.used, f.total, used)
	}
	// Runs never come from the free list: a released frame is reused by alloc only.
	f.release(a.page(9))
	if _, ok := f.allocRun(1); ok {
		t.Errorf("allocRun(1) with only a released frame = true, want false (runs come from the ranges)")
	}
	if pa, ok := f.alloc(); !ok || pa != a.page(9) {
		t.Errorf("alloc() = page %d, %v, want the released page 9", int64(pa-a.base)/pageSize, ok)
	}
}

// TestFrameRandom allocates and releases at random and checks that no frame is handed out
// twice and that the counters add up.
func TestFrameRandom(t *testing.T) {
	const pages = 64
	a := newArena(t, pages)
	var f frameAllocator
	f.add(a.page(0), a.page(pages))
	f.reserve(a.page(10), a.page(12))
	live := map[uint64]bool{}
	var order []uint64
	seed := uint64(12345)
	next := func(n int) int { // xorshift: deterministic, no allocation
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		return int(seed % uint64(n))
	}
	for i := 0; i < 4000; i++ {
		if len(order) > 0 && next(2) == 0 {
			k := next(len(order))
			pa := order[k]
			order = slices.Delete(order, k, k+1)
			delete(live, pa)
			f.release(pa)
		} else {
			pa, ok := f.alloc()
			if !ok {
				if uint64(len(live)) != f.total {
					t.Fatalf("step %d: alloc failed with %d of %d frames live", i, len(live), f.total)
				}
				continue
			}
			if live[pa] {
				t.Fatalf("step %d: alloc = page %d, already live", i, (pa-a.base)/pageSize)
			}
			if pa >= a.page(10) && pa < a.page(12) {
				t.Fatalf("step %d: alloc = reserved page %d", i, (pa-a.base)/pageSize)
			}
			live[pa] = true
			order = append(order, pa)
		}
		if f.used != uint64(len(live)) {
			t.Fatalf("step %d: used = %d, want %d live", i, f.used, len(live))
		}
	}
	if f.total != pages-2 {
		t.Errorf("total = %d, want %d", f.total, pages-2)
	}
	t.Logf("%d frames live at the end, %d on the free list", len(live), f.nfree)
}

// TestFrameRunsReused: runs freed by FreePages come back whole for the next run of that size
// (a VM restarted again and again must not exhaust the ranges), adjacent freed runs merge, and
// single frames take from the freed runs only when the ranges are used up.
func TestFrameRunsReused(t *testing.T) {
	a := newArena(t, 64)
	var f frameAllocator
	f.add(a.page(0), a.page(64))
	// Two 16-page runs, freed, then 32 pages: the merged run serves it.
	r1, ok1 := f.allocRun(16)
	r2, ok2 := f.allocRun(16)
	if !ok1 || !ok2 || r2 != r1+16*pageSize {
		t.Fatalf("allocRun: %#x %v, %#x %v", r1, ok1, r2, ok2)
	}
	f.releaseRun(r2, 16)
	f.releaseRun(r1, 16)
	if f.nruns != 1 || f.used != 0 {
		t.Fatalf("after freeing two adjacent runs: %d runs, %d used; want 1 merged run, 0 used", f.nruns, f.used)
	}
	for i := 0; i < 10; i++ { // a VM started ten times
		r, ok := f.allocRun(32)
		if !ok {
			t.Fatalf("allocRun(32) #%d failed with %d frames free", i, f.total-f.used)
		}
		f.releaseRun(r, 32)
	}
	// The untouched range still has 32 pages; 48 needs the freed run and fails; 32 fits.
	if _, ok := f.allocRun(48); ok {
		t.Error("allocRun(48) succeeded with no 48-page run free")
	}
	// Single frames drain the ranges before they touch the freed run.
	for i := 0; i < 32; i++ {
		if _, ok := f.alloc(); !ok {
			t.Fatalf("alloc #%d failed", i)
		}
	}
	if f.nruns != 1 || f.runs[0].end-f.runs[0].next != 32*pageSize {
		t.Fatalf("single frames ate into the freed run before the ranges were empty")
	}
	if pa, ok := f.alloc(); !ok || pa != r1+31*pageSize {
		t.Errorf("alloc with the ranges empty = %#x %v, want the freed run's last frame %#x", pa, ok, r1+31*pageSize)
	}
	// 32 frames from the range and one from the freed run are in use.
	if f.used != 33 {
		t.Errorf("used = %d, want 33", f.used)
	}
}
