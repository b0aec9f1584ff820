package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Volume is a VM disk this host owns: a handle on its extents guarded by
// its Disk Paxos lease. Data I/O goes straight to the extents; every call
// first passes the write gate (owned, not released, host not fenced), so
// a host that does not own the volume cannot touch it through this layer.
type Volume struct {
	h           *Host
	r           resource
	slot        int
	name        string
	incarnation uint64
	lver        uint64
	released    atomic.Bool

	mu      sync.RWMutex
	extents []extentRec
	size    int64
}

// Acquire takes the lease of volume name and returns a handle for I/O.
// It fails with ErrLeaseHeld if another host owns it and is alive (or not
// yet known to be dead): retry, or use Takeover.
func (h *Host) Acquire(name string) (*Volume, error) { return h.acquireVolume(name, 0) }

// AcquireVersion is the destination side of a migration handover: it takes
// the lease only if it is released at exactly version lver (as returned by
// the source's Release) and nobody else takes it first; otherwise
// ErrVersionMismatch.
func (h *Host) AcquireVersion(name string, lver uint64) (*Volume, error) {
	if lver == 0 {
		return nil, fmt.Errorf("acquire volume %q: %w: lease version 0", name, ErrInvalid)
	}
	return h.acquireVolume(name, lver)
}

// Takeover acquires volume name, waiting (polling every RenewInterval)
// while its owner is alive or not yet known to be dead, until ctx ends.
// This is how the VMs of a dead host are restarted elsewhere.
func (h *Host) Takeover(ctx context.Context, name string) (*Volume, error) {
	for {
		v, err := h.Acquire(name)
		if err == nil || !(errors.Is(err, ErrLeaseHeld) || errors.Is(err, ErrBallotAborted)) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("takeover %q: %w (last: %w)", name, ctx.Err(), err)
		case <-h.stop:
			return nil, ErrClosed
		case <-h.clock.After(h.t.RenewInterval):
		}
	}
}

func (h *Host) acquireVolume(name string, want uint64) (*Volume, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	slot, d, err := h.lun.lookup(name)
	if err != nil {
		return nil, fmt.Errorf("acquire volume %q: %w", name, err)
	}
	r := volResource(slot)
	unlock := h.lockRes(r)
	defer unlock()
	h.mu.Lock()
	if v, ok := h.vols[r]; ok {
		h.mu.Unlock()
		return nil, fmt.Errorf("acquire volume %q: already held by this host at version %d: %w", name, v.lver, ErrInvalid)
	}
	h.mu.Unlock()
	lver, err := h.acquireLease(r, want)
	if err != nil {
		return nil, fmt.Errorf("acquire volume %q: %w", name, err)
	}
	v := &Volume{h: h, r: r, slot: slot, name: name, lver: lver}
	// The entry may have changed (deleted, renamed) between lookup and
	// acquire; holding the lease, it can no longer be deleted under us.
	sec := make([]byte, h.lun.ss())
	err = h.lun.dev.ReadSectors(h.lun.lay.direntLBA(slot), sec)
	if err == nil {
		d, err = h.lun.decodeDirent(sec, slot)
	}
	if err == nil && (d.State != direntActive || cString(d.Name[:]) != name) {
		err = fmt.Errorf("%w: %q was deleted or renamed while acquiring", ErrNotFound, name)
	}
	if err != nil {
		if rerr := h.releaseLease(r, lver); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, fmt.Errorf("acquire volume %q: %w", name, err)
	}
	v.setEntry(&d)
	h.mu.Lock()
	h.vols[r] = v
	h.mu.Unlock()
	return v, nil
}

func (v *Volume) setEntry(d *direntRec) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.incarnation = d.Incarnation
	v.extents = append(v.extents[:0], d.Extents[:d.NExtents]...)
	v.size = int64(d.Size)
}

// Release gives the lease up and returns its version, which a migration
// destination passes to AcquireVersion. After Release every I/O through
// the handle fails with ErrNotOwner.
func (v *Volume) Release() (uint64, error) {
	h := v.h
	unlock := h.lockRes(v.r)
	defer unlock()
	if v.released.Swap(true) {
		return 0, fmt.Errorf("release volume %q: %w: already released", v.name, ErrNotOwner)
	}
	h.mu.Lock()
	delete(h.vols, v.r)
	h.mu.Unlock()
	if err := h.lun.dev.Flush(); err != nil {
		return 0, fmt.Errorf("release volume %q: %w", v.name, err)
	}
	if err := h.releaseLease(v.r, v.lver); err != nil {
		// The handle is closed either way; if the leader still names us,
		// the renewal loop's sweep retries the release.
		h.noteUncertain(v.r, v.lver)
		return 0, fmt.Errorf("release volume %q: %w", v.name, err)
	}
	return v.lver, nil
}

// Name, Version (the lease version held) and Size describe the handle.
func (v *Volume) Name() string    { return v.name }
func (v *Volume) Version() uint64 { return v.lver }
func (v *Volume) Size() int64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.size
}

// Verify re-reads the lease and confirms this host still owns it at its
// version (the lease itself is renewed by the host lease).
func (v *Volume) Verify() error {
	if err := v.gate(); err != nil {
		return err
	}
	a, err := v.h.lun.readArea(v.r)
	if err != nil {
		return err
	}
	ld, err := a.leader()
	if err != nil {
		return err
	}
	if ld.Lver != v.lver || ld.Owner != uint64(v.h.id) || ld.OwnerGen != v.h.gen || ld.Timestamp == 0 {
		return fmt.Errorf("volume %q: %w: leader at version %d owner %d generation %d", v.name, ErrNotOwner, ld.Lver, ld.Owner, ld.OwnerGen)
	}
	return nil
}

func (v *Volume) gate() error {
	if v.released.Load() {
		return fmt.Errorf("volume %q: %w (released at version %d)", v.name, ErrNotOwner, v.lver)
	}
	if err := v.h.writeAllowed(); err != nil {
		return fmt.Errorf("volume %q: %w", v.name, err)
	}
	return nil
}

// WriteAt writes p at byte offset off of the volume. off and len(p) must be
// multiples of the sector size.
func (v *Volume) WriteAt(p []byte, off int64) (int, error) {
	return v.io(p, off, true)
}

// ReadAt reads into p from byte offset off, with the same rules as WriteAt.
func (v *Volume) ReadAt(p []byte, off int64) (int, error) {
	return v.io(p, off, false)
}

func (v *Volume) io(p []byte, off int64, write bool) (int, error) {
	ss := int64(v.h.lun.ss())
	if off < 0 || off%ss != 0 || int64(len(p))%ss != 0 {
		return 0, fmt.Errorf("volume %q: %w: I/O at %d of %d bytes not aligned to %d-byte sectors", v.name, ErrInvalid, off, len(p), ss)
	}
	if err := v.gate(); err != nil {
		return 0, err
	}
	if off+int64(len(p)) > v.Size() {
		if err := v.Refresh(); err != nil {
			return 0, err
		}
		if off+int64(len(p)) > v.Size() {
			return 0, fmt.Errorf("volume %q: %w: I/O [%d,%d) beyond size %d", v.name, ErrInvalid, off, off+int64(len(p)), v.Size())
		}
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	au := v.h.lun.lay.AUSize
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		// Find the extent holding pos.
		base := int64(0)
		var lba, room int64 = -1, 0
		for _, e := range v.extents {
			n := int64(e.Count) * au
			if pos < base+n {
				lba = v.h.lun.lay.auLBA(e.Start) + (pos-base)/ss
				room = base + n - pos
				break
			}
			base += n
		}
		if lba < 0 {
			return done, fmt.Errorf("volume %q: offset %d not mapped: %w", v.name, pos, ErrCorrupt)
		}
		chunk := min(room, int64(len(p)-done))
		buf := p[done : done+int(chunk)]
		var err error
		if write {
			// Gate again right before each device write: a long request
			// must not straddle the fence point.
			if err = v.gate(); err == nil {
				err = v.h.lun.dev.WriteSectors(lba, buf)
			}
		} else {
			err = v.h.lun.dev.ReadSectors(lba, buf)
		}
		if err != nil {
			return done, fmt.Errorf("volume %q at %d: %w", v.name, pos, err)
		}
		done += int(chunk)
	}
	return done, nil
}

// Refresh re-reads the volume's directory entry (after a Grow by any host).
func (v *Volume) Refresh() error {
	sec := make([]byte, v.h.lun.ss())
	if err := v.h.lun.dev.ReadSectors(v.h.lun.lay.direntLBA(v.slot), sec); err != nil {
		return fmt.Errorf("volume %q: refresh: %w", v.name, err)
	}
	d, err := v.h.lun.decodeDirent(sec, v.slot)
	if err != nil {
		return fmt.Errorf("volume %q: refresh: %w", v.name, err)
	}
	if d.State != direntActive || d.Incarnation != v.incarnation {
		return fmt.Errorf("volume %q: refresh: %w: directory slot %d no longer holds it", v.name, ErrCorrupt, v.slot)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if int64(d.Size) < v.size {
		return fmt.Errorf("volume %q: refresh: %w: size shrank from %d to %d", v.name, ErrCorrupt, v.size, d.Size)
	}
	v.extents = append(v.extents[:0], d.Extents[:d.NExtents]...)
	v.size = int64(d.Size)
	return nil
}

// Flush flushes the device (the volume's writes are durable after it).
func (v *Volume) Flush() error {
	if err := v.gate(); err != nil {
		return err
	}
	return v.h.lun.dev.Flush()
}
