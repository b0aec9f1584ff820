package cluster

import (
	"errors"
	"fmt"
	"sync"
)

// maxBallotTries bounds the retries of a ballot aborted by a competitor.
const maxBallotTries = 12

// acquireLease takes the lease of r, returning the lease version it now
// holds. With want != 0 it is a handover: the lease must be released at
// exactly version want (sanlock's acquire with an lver), and anything else,
// including losing the ballot to another host, is ErrVersionMismatch.
func (h *Host) acquireLease(r resource, want uint64) (uint64, error) {
	var lastErr error
	for try := 0; try < maxBallotTries; try++ {
		if try > 0 {
			// Random backoff so that competing proposers stop colliding,
			// as sanlock does between ballots.
			if !sleep(h.clock, h.jitter(h.t.IO/4+1), h.stop) {
				return 0, ErrClosed
			}
		}
		lver, err := h.acquireOnce(r, want)
		if !errors.Is(err, ErrBallotAborted) {
			return lver, err
		}
		lastErr = err
	}
	return 0, fmt.Errorf("acquire %s: gave up after %d ballots: %w", r, maxBallotTries, lastErr)
}

func (h *Host) acquireOnce(r resource, want uint64) (uint64, error) {
	if err := h.writeAllowed(); err != nil {
		return 0, err
	}
	a, err := h.lun.readArea(r)
	if err != nil {
		return 0, err
	}
	ld, err := a.leader()
	if err != nil {
		return 0, err
	}
	mineNow := ld.Timestamp != 0 && ld.Owner == uint64(h.id) && ld.OwnerGen == h.gen
	if mineNow && (want == 0 || ld.Lver == want+1) {
		// Decided for us by an earlier ballot of ours whose outcome we did
		// not see (it was aborted, and a competitor that adopted our value
		// committed it): the lease is ours. For a handover this is the
		// version right after the released one, so nobody came between.
		h.clearUncertain(r, ld.Lver)
		return ld.Lver, nil
	}
	if want != 0 && (ld.Lver != want || ld.Timestamp != 0) {
		state := "released"
		if ld.Timestamp != 0 {
			state = fmt.Sprintf("held by host %d generation %d", ld.Owner, ld.OwnerGen)
		}
		return 0, fmt.Errorf("%w: %s is at version %d (%s), want released at %d", ErrVersionMismatch, r, ld.Lver, state, want)
	}
	if ld.Timestamp != 0 {
		gone, lv, err := h.ownerGone(ld.Owner, ld.OwnerGen)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", r, err)
		}
		if !gone {
			return 0, fmt.Errorf("%w: %s version %d owned by host %d generation %d (%s)", ErrLeaseHeld, r, ld.Lver, ld.Owner, ld.OwnerGen, lv)
		}
	}
	h.mu.Lock()
	ts := h.lastTS
	h.mu.Unlock()
	target := ld.Lver + 1
	me := value{uint64(h.id), h.gen, ts}
	h.noteUncertain(r, target)
	chosen, err := h.ballot(a, target, me)
	if err != nil {
		return 0, fmt.Errorf("acquire %s version %d: %w", r, target, err)
	}
	nl := leaderRec{Owner: chosen.inp, OwnerGen: chosen.inp2, Lver: target, Timestamp: chosen.inp3}
	if err := h.writeLeader(r, &nl); err != nil {
		if chosen == me {
			// We own it by the dblocks; others will learn so from a ballot.
			// Report failure; the uncertain-lease sweep releases it.
			return 0, fmt.Errorf("acquire %s version %d: commit: %w", r, target, err)
		}
		return 0, err
	}
	if chosen.inp != me.inp || chosen.inp2 != me.inp2 {
		h.clearUncertain(r, target)
		if want != 0 {
			return 0, fmt.Errorf("%w: %s version %d went to host %d generation %d", ErrVersionMismatch, r, target, chosen.inp, chosen.inp2)
		}
		return 0, fmt.Errorf("%w: %s version %d went to host %d generation %d", ErrLeaseHeld, r, target, chosen.inp, chosen.inp2)
	}
	h.clearUncertain(r, target)
	return target, nil
}

// releaseLease marks the lease of r, held at lver, as released (leader
// timestamp 0), keeping the version so a handover can name it.
func (h *Host) releaseLease(r resource, lver uint64) error {
	if err := h.writeAllowed(); err != nil {
		return err
	}
	a, err := h.lun.readArea(r)
	if err != nil {
		return err
	}
	ld, err := a.leader()
	if err != nil {
		return err
	}
	if ld.Lver != lver || ld.Owner != uint64(h.id) || ld.OwnerGen != h.gen || ld.Timestamp == 0 {
		return fmt.Errorf("release %s version %d: %w (leader: version %d owner %d generation %d timestamp %d)",
			r, lver, ErrNotOwner, ld.Lver, ld.Owner, ld.OwnerGen, ld.Timestamp)
	}
	ld.Timestamp = 0
	if err := h.writeLeader(r, &ld); err != nil {
		return fmt.Errorf("release %s version %d: %w", r, lver, err)
	}
	return nil
}

// The uncertain set: leases for which we wrote a phase-2 dblock with our
// own value but do not hold (the acquire failed or aborted after it). Our
// value may have been decided there, leaving the lease owned by us without
// our knowing; the renewal loop sweeps the set and releases such leases,
// so they do not stay blocked until we leave.

func (h *Host) noteUncertain(r resource, lver uint64) {
	h.mu.Lock()
	h.uncertain[r] = lver
	h.mu.Unlock()
}

func (h *Host) clearUncertain(r resource, lver uint64) {
	h.mu.Lock()
	if h.uncertain[r] == lver {
		delete(h.uncertain, r)
	}
	h.mu.Unlock()
}

// resolveUncertain checks each uncertain lease once.
func (h *Host) resolveUncertain() {
	h.mu.Lock()
	work := make(map[resource]uint64, len(h.uncertain))
	for r, lver := range h.uncertain {
		if _, held := h.vols[r]; held {
			delete(h.uncertain, r)
			continue
		}
		work[r] = lver
	}
	h.mu.Unlock()
	for r, lver := range work {
		h.resolveOne(r, lver)
	}
}

func (h *Host) resolveOne(r resource, lver uint64) {
	unlock := h.lockRes(r)
	defer unlock()
	{
		a, err := h.lun.readArea(r)
		if err != nil {
			return
		}
		ld, err := a.leader()
		if err != nil {
			return
		}
		switch {
		case ld.Lver < lver:
			// Not committed yet: whoever acquires next learns the outcome.
		case ld.Lver == lver && ld.Owner == uint64(h.id) && ld.OwnerGen == h.gen && ld.Timestamp != 0:
			h.mu.Lock()
			_, held := h.vols[r]
			h.mu.Unlock()
			if !held && h.releaseLease(r, lver) == nil {
				h.clearUncertain(r, lver)
			}
		default:
			h.clearUncertain(r, lver)
		}
	}
}

// lockRes serializes this host's lease operations on one resource, so the
// uncertain-lease sweep never releases a lease an acquire is about to hand
// out.
func (h *Host) lockRes(r resource) (unlock func()) {
	h.mu.Lock()
	m, ok := h.resLocks[r]
	if !ok {
		m = new(sync.Mutex)
		h.resLocks[r] = m
	}
	h.mu.Unlock()
	m.Lock()
	return m.Unlock
}
