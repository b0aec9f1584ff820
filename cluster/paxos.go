package cluster

import (
	"errors"
	"fmt"
)

// Disk Paxos leases (Gafni & Lamport, "Disk Paxos", 2003), single-disk form
// as sanlock's paxos_lease uses it. Each lease area holds:
//
//	sector 0,1        leader record, slot lver%2 (a cache of the last decision)
//	sector 2+2(i-1)+s dblock of host i, slot s (s = 0,1; the newer valid one counts)
//
// Every lease version (lver) is one consensus instance deciding the next
// owner. To acquire, a host reads the leader; if the lease is held it checks
// the owner's delta lease (the host lease is the lease's renewal: a volume
// lease stays valid exactly as long as its owner's host lease does); if the
// lease is free or its owner dead, it runs a ballot for lver+1:
//
//	phase 1: write own dblock {mbal = b}, read all dblocks; abort if any has a
//	         larger mbal (or a later lver); adopt the inp of the largest bal
//	         seen for this lver, or propose itself if there is none.
//	phase 2: write own dblock {mbal = b, bal = b, inp = value}, read all;
//	         abort if any has a larger mbal. Otherwise value is decided.
//
// The winner (or whoever learns the value) writes the leader for lver+1.
// Ballot numbers are k*MaxHosts + host id, so no two hosts use the same one
// (sanlock numbers its ballots the same way). Safety rests on the dblocks,
// never on the leader: a stale or torn leader at worst makes a host run a
// ballot that learns the decided value instead of winning.
//
// Torn writes: each host writes its two dblock slots alternately, so the
// last successfully written state survives a torn write; a lease area in
// which both slots of a host are unreadable is refused (ErrCorrupt), never
// guessed at.

func dblockOff(id, slot int) int64    { return 2 + int64(id-1)*2 + int64(slot) }
func dblockIndex(id, slot int) uint32 { return uint32(id*2 + slot) }

// value is a paxos proposal: a host id, its generation and its host-lease
// timestamp when it proposed.
type value struct{ inp, inp2, inp3 uint64 }

type dblockView struct {
	rec  dblockRec
	slot int  // slot holding rec
	ok   bool // rec valid
	err  error
	// slotErrs holds the error of each unreadable slot, even when the
	// other slot is good.
	slotErrs []error
}

// areaView is one read of a whole lease area.
type areaView struct {
	r       resource
	leaders [2]leaderRec
	lerr    [2]error
	db      []dblockView // index host id
}

func (l *LUN) leaseLoc(r resource, what string, lba int64) loc {
	return loc{name: fmt.Sprintf("%s %s", r, what), lba: lba, ss: l.ss()}
}

// readArea reads and decodes a lease area in one I/O.
func (l *LUN) readArea(r resource) (*areaView, error) {
	buf, err := l.readAreaRaw(r)
	if err != nil {
		return nil, err
	}
	return l.decodeArea(r, buf), nil
}

func (l *LUN) readAreaRaw(r resource) ([]byte, error) {
	buf := make([]byte, int(l.lay.LeaseAreaSectors)*l.ss())
	if err := l.dev.ReadSectors(l.lay.leaseArea(r), buf); err != nil {
		return nil, fmt.Errorf("read %s: %w", r, err)
	}
	return buf, nil
}

func (l *LUN) decodeArea(r resource, buf []byte) *areaView {
	base := l.lay.leaseArea(r)
	ss := l.ss()
	a := &areaView{r: r, db: make([]dblockView, l.lay.MaxHosts+1)}
	for s := 0; s < 2; s++ {
		at := l.leaseLoc(r, fmt.Sprintf("leader slot %d", s), base+int64(s))
		a.lerr[s] = decodeRecord(buf[s*ss:(s+1)*ss], &a.leaders[s], magicLeader, uint32(s), l.tag, at)
		if a.lerr[s] == nil {
			ld := &a.leaders[s]
			switch {
			case ld.Resource != uint64(r):
				a.lerr[s] = at.corrupt("resource %d, want %d", ld.Resource, r)
			case ld.Owner > uint64(l.lay.MaxHosts):
				a.lerr[s] = at.corrupt("owner %d outside host range", ld.Owner)
			case ld.Lver > 0 && ld.Lver%2 != uint64(s):
				a.lerr[s] = at.corrupt("lease version %d in slot %d", ld.Lver, s)
			case ld.Timestamp != 0 && ld.Owner == 0:
				a.lerr[s] = at.corrupt("held (timestamp %d) by owner 0", ld.Timestamp)
			}
		}
	}
	for id := 1; id <= l.lay.MaxHosts; id++ {
		v := &a.db[id]
		var errs []error
		for s := 0; s < 2; s++ {
			off := dblockOff(id, s)
			d, err := l.decodeDblock(r, id, s, buf[int(off)*ss:int(off+1)*ss])
			if err != nil {
				errs = append(errs, err)
				v.slotErrs = append(v.slotErrs, err)
				continue
			}
			if !v.ok || d.Wseq > v.rec.Wseq {
				v.rec, v.slot, v.ok = d, s, true
			}
		}
		if !v.ok {
			v.err = errors.Join(errs...)
		}
	}
	return a
}

func (l *LUN) decodeDblock(r resource, id, s int, sec []byte) (dblockRec, error) {
	off := dblockOff(id, s)
	at := loc{lba: l.lay.leaseArea(r) + off, ss: l.ss(), lazy: func() string { return fmt.Sprintf("%s dblock host %d slot %d", r, id, s) }}
	var d dblockRec
	err := decodeRecord(sec, &d, magicDblock, dblockIndex(id, s), l.tag, at)
	if err != nil {
		return d, err
	}
	switch {
	case d.Resource != uint64(r):
		err = at.corrupt("resource %d, want %d", d.Resource, r)
	case d.Inp > uint64(l.lay.MaxHosts):
		err = at.corrupt("inp %d outside host range", d.Inp)
	case d.Bal > d.Mbal:
		err = at.corrupt("bal %d above mbal %d", d.Bal, d.Mbal)
	case d.Mbal != 0 && d.Mbal%uint64(l.lay.MaxHosts) != uint64(id)%uint64(l.lay.MaxHosts):
		err = at.corrupt("ballot %d does not belong to host %d", d.Mbal, id)
	}
	return d, err
}

// leader returns the newest valid leader slot.
func (a *areaView) leader() (leaderRec, error) {
	switch {
	case a.lerr[0] != nil && a.lerr[1] != nil:
		return leaderRec{}, fmt.Errorf("%s: both leader slots unreadable: %w", a.r, errors.Join(a.lerr[0], a.lerr[1]))
	case a.lerr[0] != nil:
		return a.leaders[1], nil
	case a.lerr[1] != nil:
		return a.leaders[0], nil
	case a.leaders[1].Lver > a.leaders[0].Lver:
		return a.leaders[1], nil
	}
	return a.leaders[0], nil
}

// errs returns every unreadable record of the area, joined (nil if none).
func (a *areaView) errs() error {
	errs := []error{a.lerr[0], a.lerr[1]}
	for id := 1; id < len(a.db); id++ {
		errs = append(errs, a.db[id].slotErrs...)
	}
	return errors.Join(errs...)
}

// dblocksUsable fails if any host's dblock is unreadable in both slots.
func (a *areaView) dblocksUsable() error {
	for id := 1; id < len(a.db); id++ {
		if !a.db[id].ok {
			return fmt.Errorf("%s: dblocks of host %d unreadable: %w", a.r, id, a.db[id].err)
		}
	}
	return nil
}

// ballot runs one Disk Paxos ballot for instance lver from the state in a,
// proposing v. It returns the decided value, or ErrBallotAborted.
func (h *Host) ballot(a *areaView, lver uint64, v value) (value, error) {
	H := uint64(h.lun.lay.MaxHosts)
	if err := a.dblocksUsable(); err != nil {
		return value{}, err
	}
	var maxMbal uint64
	for id := 1; id < len(a.db); id++ {
		d := a.db[id].rec
		if d.Lver > lver {
			return value{}, fmt.Errorf("%w: %s already at lease version %d (host %d), not %d", ErrBallotAborted, a.r, d.Lver, id, lver)
		}
		if d.Lver == lver && d.Mbal > maxMbal {
			maxMbal = d.Mbal
		}
	}
	b := (maxMbal/H+1)*H + uint64(h.id) // > maxMbal, and b%H == id%H
	own := a.db[h.id]
	mine := dblockRec{Resource: uint64(a.r), Lver: lver, Mbal: b, Wseq: own.rec.Wseq + 1}
	if own.rec.Lver == lver {
		// Phase 1 keeps the value accepted earlier in this instance.
		mine.Bal, mine.Inp, mine.Inp2, mine.Inp3 = own.rec.Bal, own.rec.Inp, own.rec.Inp2, own.rec.Inp3
	}
	slot := 1 - own.slot
	if err := h.writeDblock(a.r, slot, &mine); err != nil {
		return value{}, err
	}
	a2, err := h.lun.readArea(a.r)
	if err != nil {
		return value{}, err
	}
	chosen, bestBal := v, uint64(0)
	if err := checkBallot(a2, lver, b); err != nil {
		return value{}, err
	}
	for id := 1; id < len(a2.db); id++ {
		d := a2.db[id].rec
		if d.Lver == lver && d.Bal > bestBal && d.Inp != 0 {
			chosen, bestBal = value{d.Inp, d.Inp2, d.Inp3}, d.Bal
		}
	}
	mine.Bal, mine.Inp, mine.Inp2, mine.Inp3 = b, chosen.inp, chosen.inp2, chosen.inp3
	mine.Wseq++
	slot = 1 - slot
	if err := h.writeDblock(a.r, slot, &mine); err != nil {
		return value{}, err
	}
	a3, err := h.lun.readArea(a.r)
	if err != nil {
		return value{}, err
	}
	if err := checkBallot(a3, lver, b); err != nil {
		return value{}, err
	}
	return chosen, nil
}

func checkBallot(a *areaView, lver, b uint64) error {
	if err := a.dblocksUsable(); err != nil {
		return err
	}
	for id := 1; id < len(a.db); id++ {
		d := a.db[id].rec
		if d.Lver > lver {
			return fmt.Errorf("%w: %s moved to lease version %d (host %d) during ballot for %d", ErrBallotAborted, a.r, d.Lver, id, lver)
		}
		if d.Lver == lver && d.Mbal > b {
			return fmt.Errorf("%w: %s host %d started ballot %d above ours %d", ErrBallotAborted, a.r, id, d.Mbal, b)
		}
	}
	return nil
}

func (h *Host) writeDblock(r resource, slot int, d *dblockRec) error {
	if err := h.writeAllowed(); err != nil {
		return err
	}
	sec := make([]byte, h.lun.ss())
	d.header = newHeader(magicDblock, dblockIndex(h.id, slot), h.lun.tag)
	encodeRecord(sec, d)
	if err := h.lun.dev.WriteSectors(h.lun.lay.leaseArea(r)+dblockOff(h.id, slot), sec); err != nil {
		return fmt.Errorf("write %s dblock host %d slot %d: %w", r, h.id, slot, err)
	}
	return nil
}

// writeLeader writes ld to slot ld.Lver%2, retrying a failed write a few
// times (a failed write may have torn the slot; the other slot still holds
// the previous version).
func (h *Host) writeLeader(r resource, ld *leaderRec) error {
	slot := int(ld.Lver % 2)
	sec := make([]byte, h.lun.ss())
	ld.header = newHeader(magicLeader, uint32(slot), h.lun.tag)
	ld.Resource = uint64(r)
	ld.Writer = uint64(h.id)
	encodeRecord(sec, ld)
	var err error
	for try := 0; try < 3; try++ {
		if err = h.writeAllowed(); err != nil {
			return err
		}
		if err = h.lun.dev.WriteSectors(h.lun.lay.leaseArea(r)+int64(slot), sec); err == nil {
			return nil
		}
	}
	return fmt.Errorf("write %s leader slot %d: %w", r, slot, err)
}
