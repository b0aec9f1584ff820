package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// VolumeInfo describes a volume and the state of its lease.
type VolumeInfo struct {
	Name        string
	Slot        int
	Incarnation uint64
	Size        int64
	Extents     [][2]uint64 // {first AU, count}
	Owner       int         // 0 if never acquired
	OwnerGen    uint64
	Version     uint64 // lease version
	Held        bool   // lease held (leader timestamp != 0)
	LeaseErr    error  // unreadable records in the lease area (the lease may still work from their other slots)
}

// lookup finds the active entry named name.
func (l *LUN) lookup(name string) (int, direntRec, error) {
	ents, errs, err := l.readDirectory()
	if err != nil {
		return 0, direntRec{}, err
	}
	for s := range ents {
		if errs[s] == nil && ents[s].State == direntActive && cString(ents[s].Name[:]) == name {
			return s, ents[s], nil
		}
	}
	if err := firstErr(errs); err != nil {
		// The volume may be in the unreadable slot.
		return 0, direntRec{}, fmt.Errorf("%w: %q (and the directory has unreadable entries: %w)", ErrNotFound, name, err)
	}
	return 0, direntRec{}, fmt.Errorf("%w: %q", ErrNotFound, name)
}

// List returns every volume with its lease state, read without taking any
// lease (a snapshot). Unreadable records are reported in the error, joined,
// and the rest is still returned.
func (l *LUN) List() ([]VolumeInfo, error) {
	ents, errs, err := l.readDirectory()
	if err != nil {
		return nil, err
	}
	var out []VolumeInfo
	for s := range ents {
		d := &ents[s]
		if errs[s] != nil || d.State != direntActive {
			continue
		}
		vi := VolumeInfo{Name: cString(d.Name[:]), Slot: s, Incarnation: d.Incarnation, Size: int64(d.Size)}
		for i := 0; i < int(d.NExtents); i++ {
			vi.Extents = append(vi.Extents, [2]uint64{d.Extents[i].Start, d.Extents[i].Count})
		}
		a, err := l.readArea(volResource(s))
		if err == nil {
			var ld leaderRec
			if ld, err = a.leader(); err == nil {
				vi.Owner, vi.OwnerGen, vi.Version, vi.Held = int(ld.Owner), ld.OwnerGen, ld.Lver, ld.Timestamp != 0
				// Report a torn slot too, though the lease still works
				// from the other one.
				err = a.errs()
			}
		}
		if err != nil {
			vi.LeaseErr = err
			errs = append(errs, err)
		}
		out = append(out, vi)
	}
	return out, errors.Join(errs...)
}

// Orphans lists volumes whose lease is held by a host this host observes
// as dead (or restarted): candidates for Takeover.
func (h *Host) Orphans() ([]string, error) {
	vols, err := h.lun.List()
	var names []string
	for _, v := range vols {
		if !v.Held || v.Owner == h.id || v.Owner == 0 {
			continue
		}
		gone, _, gerr := h.ownerGone(uint64(v.Owner), v.OwnerGen)
		if gerr == nil && gone {
			names = append(names, v.Name)
		}
	}
	return names, err
}

// dirOp runs fn holding the directory lease, the coordinator role that
// serializes metadata changes (like a CSV coordinator node). It waits for a
// live holder to finish for up to HostDead + TakeoverBound, or ctx.
func (h *Host) dirOp(ctx context.Context, what string, fn func(ents []direntRec, bm bitmap) error) error {
	unlock := h.lockRes(dirResource)
	defer unlock()
	ctx, cancel := context.WithTimeout(ctx, h.t.TakeoverBound()+h.t.HostDead)
	defer cancel()
	var lver uint64
	for {
		var err error
		lver, err = h.acquireLease(dirResource, 0)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrLeaseHeld) && !errors.Is(err, ErrBallotAborted) {
			return fmt.Errorf("%s: %w", what, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: directory lease: %w (last: %w)", what, ctx.Err(), err)
		case <-h.clock.After(h.t.IO/2 + h.jitter(h.t.IO)):
		}
	}
	err := h.dirWork(fn)
	if rerr := h.releaseLease(dirResource, lver); rerr != nil {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (h *Host) dirWork(fn func(ents []direntRec, bm bitmap) error) error {
	l := h.lun
	ents, errs, err := l.readDirectory()
	if err != nil {
		return err
	}
	if err := firstErr(errs); err != nil {
		return fmt.Errorf("directory unreadable, refusing to change it: %w", err)
	}
	stored, err := l.readBitmap()
	if err != nil {
		return err
	}
	// Reconcile: the directory is the truth; a crash between the bitmap
	// and the directory write leaves leaked units, cleared here.
	used, err := l.usedBitmap(ents)
	if err != nil {
		return err
	}
	if string(used) != string(stored) {
		if err := h.writeAllowed(); err != nil {
			return err
		}
		if err := l.writeBitmap(used, stored); err != nil {
			return err
		}
	}
	return fn(ents, used)
}

// gatedWrite checks the write gate, then runs w.
func (h *Host) gatedWrite(w func() error) error {
	if err := h.writeAllowed(); err != nil {
		return err
	}
	return w()
}

func findName(ents []direntRec, name string) int {
	for s := range ents {
		if ents[s].State == direntActive && cString(ents[s].Name[:]) == name {
			return s
		}
	}
	return -1
}

func (h *Host) unitsFor(size int64) (uint64, error) {
	ss := int64(h.lun.ss())
	if size <= 0 || size%ss != 0 {
		return 0, fmt.Errorf("%w: size %d must be a positive multiple of the %d-byte sector", ErrInvalid, size, ss)
	}
	au := h.lun.lay.AUSize
	return uint64((size + au - 1) / au), nil
}

// CreateVolume makes a new volume of size bytes (a multiple of the sector
// size, rounded up to allocation units on disk). Its contents are whatever
// the units held before.
func (h *Host) CreateVolume(ctx context.Context, name string, size int64) error {
	nameB, err := nameBytes(name)
	if err != nil {
		return err
	}
	units, err := h.unitsFor(size)
	if err != nil {
		return err
	}
	return h.dirOp(ctx, fmt.Sprintf("create volume %q", name), func(ents []direntRec, bm bitmap) error {
		if findName(ents, name) >= 0 {
			return fmt.Errorf("%w: %q", ErrExists, name)
		}
		slot := -1
		for s := range ents {
			if ents[s].State == direntFree {
				slot = s
				break
			}
		}
		if slot < 0 {
			return fmt.Errorf("%w: all %d directory slots in use", ErrNoSpace, len(ents))
		}
		old := append(bitmap(nil), bm...)
		exts, err := allocate(bm, h.lun.lay.DataUnits, nil, units)
		if err != nil {
			return err
		}
		d := direntRec{State: direntActive, NExtents: uint32(len(exts)), Incarnation: ents[slot].Incarnation + 1,
			Size: uint64(size), Created: uint64(time.Now().UnixNano()), Name: nameB}
		copy(d.Extents[:], exts)
		// Bitmap first: a crash before the entry leaks, never double-allocates.
		if err := h.gatedWrite(func() error { return h.lun.writeBitmap(bm, old) }); err != nil {
			return err
		}
		if err := h.gatedWrite(func() error { return h.lun.writeDirent(slot, &d) }); err != nil {
			return err
		}
		return h.lun.dev.Flush()
	})
}

// GrowVolume enlarges a volume to size bytes. The owner's handle picks the
// new size up on its next I/O beyond the old end (or Refresh).
func (h *Host) GrowVolume(ctx context.Context, name string, size int64) error {
	units, err := h.unitsFor(size)
	if err != nil {
		return err
	}
	return h.dirOp(ctx, fmt.Sprintf("grow volume %q", name), func(ents []direntRec, bm bitmap) error {
		slot := findName(ents, name)
		if slot < 0 {
			return fmt.Errorf("%w: %q", ErrNotFound, name)
		}
		d := ents[slot]
		if uint64(size) < d.Size {
			return fmt.Errorf("%w: new size %d below current %d (shrinking is not supported)", ErrInvalid, size, d.Size)
		}
		var have uint64
		for i := 0; i < int(d.NExtents); i++ {
			have += d.Extents[i].Count
		}
		old := append(bitmap(nil), bm...)
		if units > have {
			exts, err := allocate(bm, h.lun.lay.DataUnits, d.Extents[:d.NExtents], units-have)
			if err != nil {
				return err
			}
			d.NExtents = uint32(len(exts))
			copy(d.Extents[:], exts)
			if err := h.gatedWrite(func() error { return h.lun.writeBitmap(bm, old) }); err != nil {
				return err
			}
		}
		d.Size = uint64(size)
		if err := h.gatedWrite(func() error { return h.lun.writeDirent(slot, &d) }); err != nil {
			return err
		}
		return h.lun.dev.Flush()
	})
}

// RenameVolume renames a volume. Handles keep working (they address the
// directory slot).
func (h *Host) RenameVolume(ctx context.Context, from, to string) error {
	nameB, err := nameBytes(to)
	if err != nil {
		return err
	}
	return h.dirOp(ctx, fmt.Sprintf("rename volume %q to %q", from, to), func(ents []direntRec, _ bitmap) error {
		slot := findName(ents, from)
		if slot < 0 {
			return fmt.Errorf("%w: %q", ErrNotFound, from)
		}
		if findName(ents, to) >= 0 {
			return fmt.Errorf("%w: %q", ErrExists, to)
		}
		d := ents[slot]
		d.Name = nameB
		if err := h.gatedWrite(func() error { return h.lun.writeDirent(slot, &d) }); err != nil {
			return err
		}
		return h.lun.dev.Flush()
	})
}

// DeleteVolume removes a volume and frees its space. The volume's lease is
// taken first (or the caller's handle used, if this host holds it), so a
// volume in use by another live host cannot be deleted: ErrLeaseHeld.
func (h *Host) DeleteVolume(ctx context.Context, name string) error {
	if err := ValidName(name); err != nil {
		return err
	}
	slot, _, err := h.lun.lookup(name)
	if err != nil {
		return fmt.Errorf("delete volume %q: %w", name, err)
	}
	h.mu.Lock()
	v := h.vols[volResource(slot)]
	h.mu.Unlock()
	if v == nil {
		if v, err = h.Acquire(name); err != nil {
			return fmt.Errorf("delete volume %q: %w", name, err)
		}
	}
	err = h.dirOp(ctx, fmt.Sprintf("delete volume %q", name), func(ents []direntRec, bm bitmap) error {
		d := ents[slot]
		if d.State != direntActive || cString(d.Name[:]) != name || d.Incarnation != v.incarnation {
			return fmt.Errorf("%w: %q changed during delete", ErrNotFound, name)
		}
		old := append(bitmap(nil), bm...)
		for i := 0; i < int(d.NExtents); i++ {
			for u := d.Extents[i].Start; u < d.Extents[i].Start+d.Extents[i].Count; u++ {
				bm.set(u, false)
			}
		}
		free := direntRec{State: direntFree, Incarnation: d.Incarnation}
		// Entry first: a crash before the bitmap leaks, never double-allocates.
		if err := h.gatedWrite(func() error { return h.lun.writeDirent(slot, &free) }); err != nil {
			return err
		}
		if err := h.gatedWrite(func() error { return h.lun.writeBitmap(bm, old) }); err != nil {
			return err
		}
		return h.lun.dev.Flush()
	})
	if _, rerr := v.Release(); rerr != nil {
		err = errors.Join(err, rerr)
	}
	return err
}
