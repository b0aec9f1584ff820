package ring0

import "unsafe"

// Physical memory: 4 KiB frames handed out from the loader's memory map. Freed single frames go
// on a list threaded through the frames themselves (physical memory is identity-mapped); freed
// runs of several frames (guest RAM, hardware structures) are kept whole in a table of runs,
// merged with their neighbours, so that the next run can be cut from them. Fresh frames are cut
// from the ranges in order; single frames come from the free list first, then the ranges, then
// the freed runs, so runs stay whole as long as possible. Everything here runs with interrupts
// off, inside the layer; goroutines reach it through the AllocPages system call (api.go).

const pageSize = 4096

type frameRange struct{ next, end uint64 }

type frameAllocator struct {
	r        [64]frameRange
	n        int
	runs     [64]frameRange // freed runs, [next, end)
	nruns    int
	free     uint64 // head of the free list, 0 when empty
	nfree    uint64
	total    uint64 // frames managed
	used     uint64 // frames handed out
	ptFrames uint64 // of which page tables
}

var frames frameAllocator

// add hands [start, end) to the allocator, trimmed to whole pages.
func (f *frameAllocator) add(start, end uint64) {
	start = (start + pageSize - 1) &^ (pageSize - 1)
	end &^= pageSize - 1
	if end <= start || f.n == len(f.r) {
		return
	}
	f.r[f.n] = frameRange{start, end}
	f.n++
	f.total += (end - start) / pageSize
}

// reserve removes [start, end) from the ranges not yet handed out.
func (f *frameAllocator) reserve(start, end uint64) {
	start &^= pageSize - 1
	end = (end + pageSize - 1) &^ (pageSize - 1)
	if end <= start {
		return // nothing to reserve: an empty range must not split a range (it would take a slot)
	}
	for i := 0; i < f.n; i++ {
		r := &f.r[i]
		if end <= r.next || start >= r.end {
			continue
		}
		lo, hi := r.next, r.end
		cut := min(end, hi) - max(start, lo)
		f.total -= cut / pageSize
		switch {
		case start <= lo && end >= hi:
			r.next = r.end
		case start <= lo:
			r.next = end
		case end >= hi:
			r.end = start
		default: // split
			r.end = start
			if f.n < len(f.r) {
				f.r[f.n] = frameRange{end, hi}
				f.n++
			} else {
				f.total -= (hi - end) / pageSize // lose the tail rather than corrupt
			}
		}
	}
}

// alloc returns one zeroed frame.
func (f *frameAllocator) alloc() (uint64, bool) {
	var pa uint64
	if f.free != 0 {
		pa = f.free
		f.free = *physU64(pa)
		f.nfree--
	} else {
		for i := 0; i < f.n; i++ {
			if f.r[i].next < f.r[i].end {
				pa = f.r[i].next
				f.r[i].next += pageSize
				break
			}
		}
		if pa == 0 && f.nruns > 0 {
			r := &f.runs[f.nruns-1]
			r.end -= pageSize
			pa = r.end
			if r.next == r.end {
				f.nruns--
			}
		}
		if pa == 0 {
			return 0, false
		}
	}
	clear(physPage(pa)[:])
	f.used++
	return pa, true
}

// allocRun returns n physically contiguous zeroed frames.
func (f *frameAllocator) allocRun(n uint64) (uint64, bool) {
	for i := 0; i < f.nruns; i++ {
		r := &f.runs[i]
		if r.end-r.next >= n*pageSize {
			pa := r.next
			r.next += n * pageSize
			if r.next == r.end {
				f.removeRun(i)
			}
			for j := uint64(0); j < n; j++ {
				clear(physPage(pa + j*pageSize)[:])
			}
			f.used += n
			return pa, true
		}
	}
	for i := 0; i < f.n; i++ {
		r := &f.r[i]
		if r.end-r.next >= n*pageSize {
			pa := r.next
			r.next += n * pageSize
			for j := uint64(0); j < n; j++ {
				clear(physPage(pa + j*pageSize)[:])
			}
			f.used += n
			return pa, true
		}
	}
	return 0, false
}

// releaseRun frees n contiguous frames from allocRun, keeping them together.
func (f *frameAllocator) releaseRun(pa, n uint64) {
	if n == 1 {
		f.release(pa)
		return
	}
	end := pa + n*pageSize
	for i := 0; i < f.nruns; i++ {
		r := &f.runs[i]
		switch {
		case r.end == pa:
			r.end = end
		case r.next == end:
			r.next = pa
		default:
			continue
		}
		f.used -= n
		f.mergeRun(i)
		return
	}
	if f.nruns == len(f.runs) {
		// The table is full: the frames still come back, one by one.
		for j := uint64(0); j < n; j++ {
			f.release(pa + j*pageSize)
		}
		return
	}
	f.runs[f.nruns] = frameRange{pa, end}
	f.nruns++
	f.used -= n
}

// mergeRun joins run i with another run it now touches.
func (f *frameAllocator) mergeRun(i int) {
	r := &f.runs[i]
	for j := 0; j < f.nruns; j++ {
		o := f.runs[j]
		if j == i || (o.end != r.next && o.next != r.end) {
			continue
		}
		r.next, r.end = min(r.next, o.next), max(r.end, o.end)
		f.removeRun(j)
		return
	}
}

// removeRun drops run i from the table (the last one takes its place).
func (f *frameAllocator) removeRun(i int) {
	f.nruns--
	f.runs[i] = f.runs[f.nruns]
}

func (f *frameAllocator) release(pa uint64) {
	*physU64(pa) = f.free
	f.free = pa
	f.nfree++
	f.used--
}

// physU64 and physPage view identity-mapped physical memory.
//
// physPtr is not inlined: go1.26's memmove rewrite rules crash the compiler ("disjointTypes")
// when they can see a copy's operands derive from unsafe.Add on a nil base.
//
//go:noinline
func physPtr(pa uint64) unsafe.Pointer { return unsafe.Add(unsafe.Pointer(nil), uintptr(pa)) }

func physU64(pa uint64) *uint64 { return (*uint64)(physPtr(pa)) }

func physPage(pa uint64) *[pageSize]byte { return (*[pageSize]byte)(physPtr(pa)) }

func physTable(pa uint64) *[512]uint64 { return (*[512]uint64)(physPtr(pa)) }

// physBytes views n bytes at address pa (physical, or any address the layer has made present).
func physBytes(pa uint64, n uint64) []byte { return unsafe.Slice((*byte)(physPtr(pa)), n) }

// copyPhys copies n bytes (a multiple of 8) between identity-mapped addresses. (A plain copy
// between two slices made from unsafe.Add(nil, ...) trips a go1.26 compiler bug in the
// memmove-inlining rule, so the FXSAVE images are copied word by word.)
//
//go:noinline
func copyPhys(dst, src, n uint64) {
	for i := uint64(0); i < n; i += 8 {
		*physU64(dst + i) = *physU64(src + i)
	}
}
