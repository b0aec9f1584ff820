package cluster

import "fmt"

// bitmap is the free-space map of the data area: bit u set = allocation
// unit u allocated. It is written before the directory entry that uses the
// space and cleared after the entry is freed, so a crash in between leaks
// space but never hands the same unit out twice; the next metadata change
// (and check) reconciles it against the directory.
type bitmap []byte

func newBitmap(units int64) bitmap { return make(bitmap, (units+7)/8) }
func (b bitmap) get(u uint64) bool { return b[u/8]&(1<<(u%8)) != 0 }
func (b bitmap) set(u uint64, on bool) {
	if on {
		b[u/8] |= 1 << (u % 8)
	} else {
		b[u/8] &^= 1 << (u % 8)
	}
}

func (b bitmap) free(units int64) int64 {
	var n int64
	for u := uint64(0); u < uint64(units); u++ {
		if !b.get(u) {
			n++
		}
	}
	return n
}

// encodeBitmapPage writes page pg of bm (nil: all free) into sec.
func encodeBitmapPage(sec []byte, lay *Layout, tag uint64, pg int64, bm bitmap) {
	per := bitsPerPage(lay.SectorSize)
	first := pg * per
	n := lay.DataUnits - first
	if n > per {
		n = per
	}
	if n < 0 {
		n = 0
	}
	h := bitmapHdr{header: newHeader(magicBitmap, uint32(pg), tag), Page: uint32(pg), Bits: uint32(n)}
	for i := range sec {
		sec[i] = 0
	}
	if bm != nil {
		// first is a multiple of 8 because per is.
		copy(sec[bitmapHdrSize:], bm[first/8:(first+n+7)/8])
	}
	encodeRecord(sec, &h)
}

func (l *LUN) bitmapLoc(pg int64) loc {
	return loc{name: fmt.Sprintf("bitmap page %d", pg), lba: l.lay.BitmapStart + pg, ss: l.ss()}
}

// readBitmap reads and validates every bitmap page.
func (l *LUN) readBitmap() (bitmap, error) {
	ss := l.ss()
	buf := make([]byte, int(l.lay.BitmapSectors)*ss)
	if err := l.dev.ReadSectors(l.lay.BitmapStart, buf); err != nil {
		return nil, fmt.Errorf("read bitmap: %w", err)
	}
	bm := newBitmap(l.lay.DataUnits)
	per := bitsPerPage(ss)
	for pg := int64(0); pg < l.lay.BitmapSectors; pg++ {
		sec := buf[int(pg)*ss : int(pg+1)*ss]
		at := l.bitmapLoc(pg)
		var h bitmapHdr
		if err := decodeRecord(sec, &h, magicBitmap, uint32(pg), l.tag, at); err != nil {
			return nil, err
		}
		first := pg * per
		want := l.lay.DataUnits - first
		if want > per {
			want = per
		}
		if want < 0 {
			want = 0
		}
		if h.Page != uint32(pg) || int64(h.Bits) != want {
			return nil, at.corrupt("page %d holds %d bits, want page %d with %d", h.Page, h.Bits, pg, want)
		}
		// Bits past the end of the data area must be clear.
		bits := sec[bitmapHdrSize:]
		for i := want; i < per; i++ {
			if i%8 == 0 && bits[i/8] == 0 {
				i += 7 // whole byte clear
				continue
			}
			if bits[i/8]&(1<<(i%8)) != 0 {
				return nil, at.corrupt("bit %d set beyond the %d units of the data area", first+i, l.lay.DataUnits)
			}
		}
		copy(bm[first/8:], bits[:(want+7)/8])
	}
	return bm, nil
}

// writeBitmap rewrites the pages of bm that differ from old (all if old is nil).
func (l *LUN) writeBitmap(bm, old bitmap) error {
	ss := l.ss()
	per := bitsPerPage(ss)
	sec := make([]byte, ss)
	for pg := int64(0); pg < l.lay.BitmapSectors; pg++ {
		lo, hi := pg*per/8, (pg+1)*per/8
		if hi > int64(len(bm)) {
			hi = int64(len(bm))
		}
		if old != nil && lo < hi && string(bm[lo:hi]) == string(old[lo:hi]) {
			continue
		}
		encodeBitmapPage(sec, &l.lay, l.tag, pg, bm)
		if err := l.dev.WriteSectors(l.lay.BitmapStart+pg, sec); err != nil {
			return fmt.Errorf("write bitmap page %d: %w", pg, err)
		}
	}
	return nil
}

// usedBitmap computes the bitmap implied by the active directory entries,
// reporting units claimed by two volumes.
func (l *LUN) usedBitmap(ents []direntRec) (bitmap, error) {
	bm := newBitmap(l.lay.DataUnits)
	owner := make(map[uint64]int)
	for s := range ents {
		d := &ents[s]
		if d.State != direntActive {
			continue
		}
		for i := 0; i < int(d.NExtents); i++ {
			e := d.Extents[i]
			for u := e.Start; u < e.Start+e.Count; u++ {
				if bm.get(u) {
					return nil, l.direntLoc(s).corrupt("allocation unit %d also belongs to directory entry %d", u, owner[u])
				}
				bm.set(u, true)
				owner[u] = s
			}
		}
	}
	return bm, nil
}

// allocate finds units for n more allocation units, appending to exts
// (at most MaxExtents in total), preferring to extend the last extent, then
// the fewest runs. It marks them in bm.
func allocate(bm bitmap, units int64, exts []extentRec, n uint64) ([]extentRec, error) {
	// Free runs.
	type run struct{ start, count uint64 }
	var runs []run
	for u := uint64(0); u < uint64(units); {
		if bm.get(u) {
			u++
			continue
		}
		s := u
		for u < uint64(units) && !bm.get(u) {
			u++
		}
		runs = append(runs, run{s, u - s})
	}
	out := append([]extentRec(nil), exts...)
	take := func(start, count uint64) {
		for u := start; u < start+count; u++ {
			bm.set(u, true)
		}
		if k := len(out); k > 0 && out[k-1].Start+out[k-1].Count == start {
			out[k-1].Count += count
			return
		}
		out = append(out, extentRec{start, count})
	}
	// Extend the last extent in place if the next units are free.
	if k := len(out); k > 0 && n > 0 {
		for _, r := range runs {
			if r.start == out[k-1].Start+out[k-1].Count {
				c := min(r.count, n)
				take(r.start, c)
				n -= c
				break
			}
		}
	}
	// First run that fits the rest whole.
	for i := range runs {
		if n > 0 && runs[i].count >= n && !bm.get(runs[i].start) {
			take(runs[i].start, n)
			n = 0
		}
	}
	// Otherwise gather runs, largest first.
	for n > 0 {
		best := -1
		for i := range runs {
			if !bm.get(runs[i].start) && (best < 0 || runs[i].count > runs[best].count) {
				best = i
			}
		}
		if best < 0 {
			return nil, fmt.Errorf("%w: not enough free allocation units", ErrNoSpace)
		}
		c := min(runs[best].count, n)
		take(runs[best].start, c)
		n -= c
	}
	if len(out) > MaxExtents {
		return nil, fmt.Errorf("%w: would need %d extents, at most %d", ErrNoSpace, len(out), MaxExtents)
	}
	return out, nil
}
