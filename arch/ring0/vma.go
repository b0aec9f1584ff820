package ring0

// The address-space map behind mmap: sorted, non-overlapping regions of the Go runtime's
// virtual memory with their protection. PROT_NONE regions are reservations (they cost no RAM);
// pages of other regions are backed lazily on first touch by the page-fault handler. The list
// is a fixed array so that it needs no allocator; adjacent regions with the same protection are
// merged to keep it short.

// Linux mmap protections and flags (include/uapi/asm-generic/mman-common.h).
const (
	protRead  = 0x1
	protWrite = 0x2
	protExec  = 0x4

	mapShared         = 0x01
	mapPrivate        = 0x02
	mapFixed          = 0x10
	mapAnonymous      = 0x20
	mapFixedNoReplace = 0x100000

	protReserved = 0x80000000 // internal: not handed out by mmap (the kernel's identity map)
)

type vma struct {
	start, end uint64
	prot       uint32
}

type vmaList struct {
	r [2048]vma
	n int
}

// find returns the region containing addr.
func (l *vmaList) find(addr uint64) (vma, bool) {
	lo, hi := 0, l.n
	for lo < hi {
		m := (lo + hi) / 2
		switch {
		case addr < l.r[m].start:
			hi = m
		case addr >= l.r[m].end:
			lo = m + 1
		default:
			return l.r[m], true
		}
	}
	return vma{}, false
}

// overlaps reports whether any region intersects [start, end).
func (l *vmaList) overlaps(start, end uint64) bool {
	for i := 0; i < l.n; i++ {
		if l.r[i].start < end && start < l.r[i].end {
			return true
		}
	}
	return false
}

// covered reports whether [start, end) lies entirely within regions.
func (l *vmaList) covered(start, end uint64) bool {
	for start < end {
		v, ok := l.find(start)
		if !ok {
			return false
		}
		start = v.end
	}
	return true
}

func (l *vmaList) insertAt(i int, v vma) bool {
	if l.n == len(l.r) {
		return false
	}
	copy(l.r[i+1:l.n+1], l.r[i:l.n])
	l.r[i] = v
	l.n++
	return true
}

func (l *vmaList) deleteAt(i int) {
	copy(l.r[i:l.n-1], l.r[i+1:l.n])
	l.n--
	l.r[l.n] = vma{}
}

// remove clears [start, end) from the map. It fails only when a split needs a slot the list
// does not have, in which case nothing changed.
func (l *vmaList) remove(start, end uint64) bool {
	if start >= end {
		return true
	}
	// A region strictly containing [start, end) is split in two: that takes a slot.
	for i := 0; i < l.n; i++ {
		v := l.r[i]
		if v.start < start && v.end > end {
			if l.n == len(l.r) {
				return false
			}
			l.r[i].end = start
			l.insertAt(i+1, vma{end, v.end, v.prot})
			return true
		}
	}
	for i := 0; i < l.n; {
		v := &l.r[i]
		switch {
		case v.end <= start || v.start >= end:
			i++
		case v.start >= start && v.end <= end:
			l.deleteAt(i)
		case v.start < start:
			v.end = start
			i++
		default:
			v.start = end
			i++
		}
	}
	return true
}

// set maps [start, end) with prot, replacing whatever was there.
func (l *vmaList) set(start, end uint64, prot uint32) bool {
	if start >= end {
		return true
	}
	if l.n+2 > len(l.r) {
		return false
	}
	if !l.remove(start, end) {
		return false
	}
	i := 0
	for i < l.n && l.r[i].start < start {
		i++
	}
	if !l.insertAt(i, vma{start, end, prot}) {
		return false
	}
	// Merge with neighbors of the same protection.
	if i+1 < l.n && l.r[i+1].start == end && l.r[i+1].prot == prot {
		l.r[i].end = l.r[i+1].end
		l.deleteAt(i + 1)
	}
	if i > 0 && l.r[i-1].end == start && l.r[i-1].prot == prot {
		l.r[i-1].end = l.r[i].end
		l.deleteAt(i)
	}
	return true
}

// gap finds the highest free range of length bytes lying within [floor, ceil), top-down as
// Linux's mmap does.
func (l *vmaList) gap(length, floor, ceil uint64) (uint64, bool) {
	top := ceil
	for i := l.n - 1; i >= -1; i-- {
		var lo uint64
		if i >= 0 {
			lo = l.r[i].end
			if lo >= top {
				top = min(top, l.r[i].start)
				continue
			}
		}
		lo = max(lo, floor)
		if top >= length && top-length >= lo {
			return top - length, true
		}
		if i >= 0 {
			top = min(top, l.r[i].start)
		}
		if top <= floor {
			break
		}
	}
	return 0, false
}
