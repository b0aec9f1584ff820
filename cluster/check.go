package cluster

import (
	"errors"
	"fmt"
)

// Problem is one inconsistency found by Check.
type Problem struct {
	Record string // record or area concerned
	Err    error  // wraps ErrCorrupt (with a *CorruptError when a record is unreadable) or ErrUnsupportedVersion
}

func (p Problem) String() string { return p.Err.Error() }

// CheckReport is the result of a read-only consistency check.
type CheckReport struct {
	Layout      Layout
	UUID        string
	Volumes     int
	UsedUnits   int64
	HostsInUse  int
	Problems    []Problem
	SuperblkBad bool // nothing beyond the superblock could be checked
}

// Clean reports whether no problem was found.
func (r *CheckReport) Clean() bool { return len(r.Problems) == 0 }

func (r *CheckReport) add(record string, err error) {
	r.Problems = append(r.Problems, Problem{Record: record, Err: err})
}

func recordOf(err error, fallback string) string {
	var ce *CorruptError
	if errors.As(err, &ce) {
		return ce.Record
	}
	return fallback
}

// Check reads every metadata record of the LUN on dev without writing
// anything and reports each record that is unreadable or inconsistent:
// checksums, magics, versions, indexes, LUN tags, field ranges, both slots
// of every leader and dblock, overlapping extents, duplicate names, and the
// free-space bitmap against the directory (leaked or unaccounted units).
// An I/O error reading the device is returned as an error.
func Check(dev BlockDevice) (*CheckReport, error) {
	rep := &CheckReport{}
	l, err := Open(dev)
	if err != nil {
		if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrUnsupportedVersion) {
			rep.add("superblock", err)
			rep.SuperblkBad = true
			return rep, nil
		}
		return nil, err
	}
	rep.Layout, rep.UUID = l.lay, l.UUID()
	ss := l.ss()

	area, err := l.readHostArea()
	if err != nil {
		return nil, err
	}
	for id := 1; id <= l.lay.MaxHosts; id++ {
		rec, err := l.decodeHostLease(area[(id-1)*ss:id*ss], id)
		if err != nil {
			rep.add(recordOf(err, fmt.Sprintf("host lease %d", id)), err)
		} else if rec.Owner != 0 && rec.Timestamp != 0 {
			rep.HostsInUse++
		}
	}

	checkArea := func(r resource) {
		buf, err := l.readAreaRaw(r)
		if err != nil {
			rep.add(r.String(), err)
			return
		}
		a := l.decodeArea(r, buf)
		for s := 0; s < 2; s++ {
			if a.lerr[s] != nil {
				rep.add(recordOf(a.lerr[s], fmt.Sprintf("%s leader slot %d", r, s)), a.lerr[s])
			}
		}
		// Report each unreadable dblock slot, even if the other one is good.
		for id := 1; id <= l.lay.MaxHosts; id++ {
			for s := 0; s < 2; s++ {
				off := dblockOff(id, s)
				if _, err := l.decodeDblock(r, id, s, buf[int(off)*ss:int(off+1)*ss]); err != nil {
					rep.add(recordOf(err, fmt.Sprintf("%s dblock host %d slot %d", r, id, s)), err)
				}
			}
		}
	}
	checkArea(dirResource)

	ents, errs, err := l.readDirectory()
	if err != nil {
		return nil, err
	}
	names := make(map[string]int)
	for s := range ents {
		if errs[s] != nil {
			rep.add(recordOf(errs[s], fmt.Sprintf("directory entry %d", s)), errs[s])
			ents[s].State = direntFree // do not trust it below
			continue
		}
		if ents[s].State != direntActive {
			continue
		}
		rep.Volumes++
		n := cString(ents[s].Name[:])
		if prev, dup := names[n]; dup {
			rep.add(fmt.Sprintf("directory entry %d", s), l.direntLoc(s).corrupt("name %q also used by entry %d", n, prev))
		}
		names[n] = s
	}
	used, err := l.usedBitmap(ents)
	if err != nil {
		rep.add(recordOf(err, "directory"), err)
	}
	stored, err := l.readBitmap()
	if err != nil {
		rep.add(recordOf(err, "bitmap"), err)
	}
	if used != nil && stored != nil {
		var leaked, missing int64
		for u := uint64(0); u < uint64(l.lay.DataUnits); u++ {
			switch {
			case stored.get(u) && !used.get(u):
				leaked++
			case !stored.get(u) && used.get(u):
				missing++
			}
		}
		if leaked > 0 {
			rep.add("bitmap", fmt.Errorf("%w: bitmap: %d allocation units marked used by no volume (leaked by an interrupted change; the next metadata change reclaims them)", ErrCorrupt, leaked))
		}
		if missing > 0 {
			rep.add("bitmap", fmt.Errorf("%w: bitmap: %d allocation units used by volumes but marked free", ErrCorrupt, missing))
		}
		rep.UsedUnits = int64(len(used))*8 - used.free(int64(len(used))*8)
	}
	for s := 0; s < l.lay.MaxVolumes; s++ {
		checkArea(volResource(s))
	}
	return rep, nil
}
