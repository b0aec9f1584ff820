package ept

import (
	"fmt"
	"sync/atomic"
)

// DirtyMode selects how writes are tracked while dirty logging is active.
type DirtyMode uint8

// Dirty-logging mechanisms.
const (
	// DirtyHardware reads and clears the dirty bits the processor sets in
	// leaf entries: always available with NPT (AMD APM Vol. 2, 15.25
	// "Nested Paging": nested entries have A and D like ordinary ones), and
	// with EPT when accessed/dirty flags are enabled in the EPTP (Intel SDM
	// Vol. 3C, 29.3.4 "Accessed and Dirty Flags for EPT").
	DirtyHardware DirtyMode = iota + 1
	// DirtyWriteProtect removes write access from every writable page; the
	// first write faults (EPT violation / #NPF), HandleWriteFault records
	// the page as dirty and gives write access back.
	DirtyWriteProtect
)

func (m DirtyMode) String() string {
	switch m {
	case DirtyHardware:
		return "hardware"
	case DirtyWriteProtect:
		return "write-protect"
	}
	return fmt.Sprintf("DirtyMode(%d)", uint8(m))
}

// DirtyLog is dirty-page tracking for live migration, the same whichever
// mechanism (DirtyMode) backs it. *Tables implements it.
//
// Every method that returns flush reports that cached translations are now
// stale: the caller must flush the guest's TLB (INVEPT single-context for
// the EPTP, or a TLB flush of the guest's ASID) before relying on the
// result, e.g. before sending the pages that were collected as dirty.
type DirtyLog interface {
	// StartDirtyLog splits 2 MiB pages into 4 KiB ones, so dirtiness is
	// kept per 4 KiB page, and starts tracking from a clean state.
	StartDirtyLog(mode DirtyMode) (flush bool, err error)
	// StopDirtyLog stops tracking and gives write access back. Split pages
	// stay split.
	StopDirtyLog() (flush bool, err error)
	// CollectDirty calls fn with the guest-physical address of every 4 KiB
	// page in [gpa, gpa+size) written since it was last collected, and
	// marks those pages clean.
	CollectDirty(gpa, size uint64, fn func(gpa uint64)) (flush bool, err error)
	// CollectDirtyBitmap is CollectDirty into a bitmap: bit i of bm (bit i%64
	// of word i/64) stands for the page at gpa+i*4096. bm is cleared first.
	CollectDirtyBitmap(gpa, size uint64, bm []uint64) (flush bool, err error)
	// HandleWriteFault is called by the exit handler on a write fault at
	// gpa. It reports whether the fault was caused by write-protect logging:
	// then the page is marked dirty, write access is restored and the guest
	// may simply be resumed (no flush is needed: the fault itself drops the
	// stale translation). Otherwise the fault is the guest's own.
	HandleWriteFault(gpa uint64) (logging bool)
}

var _ DirtyLog = (*Tables)(nil)

// DirtyLogging returns the active dirty-logging mode, or 0.
func (t *Tables) DirtyLogging() DirtyMode {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.log
}

// StartDirtyLog implements DirtyLog.
func (t *Tables) StartDirtyLog(mode DirtyMode) (flush bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.dead:
		return false, ErrDestroyed
	case t.log != 0:
		return false, fmt.Errorf("%w (%v)", ErrLogging, t.log)
	case mode == DirtyHardware && !t.f.ad:
		return false, ErrNoAD
	case mode != DirtyHardware && mode != DirtyWriteProtect:
		return false, fmt.Errorf("ept: unknown dirty mode %v", mode)
	}
	root := t.alloc.Table(t.root)
	// Split first (split leaves copy the dirty bit), then clean everything.
	var splitErr error
	flush, err = t.visit(root, Levels, 0, 0, MaxGPA, false, false,
		func(slot *uint64, e uint64, level int, _ uint64) bool {
			if splitErr != nil || level == 1 || e&t.f.writeBit() == 0 {
				return false
			}
			if splitErr = t.splitSlot(slot); splitErr != nil {
				return false
			}
			return true
		})
	if err == nil {
		err = splitErr
	}
	if err != nil {
		// The pages split so far stay split; that is harmless.
		return flush, fmt.Errorf("ept: start dirty log: %w", err)
	}
	var clean leafFunc
	if mode == DirtyHardware {
		d := t.f.dirtyBit()
		clean = func(slot *uint64, e uint64, _ int, _ uint64) bool {
			return e&d != 0 && atomic.AndUint64(slot, ^d)&d != 0
		}
	} else {
		w, sww := t.f.writeBit(), t.f.swWritable()
		clean = func(slot *uint64, e uint64, _ int, _ uint64) bool {
			for e&w != 0 {
				if atomic.CompareAndSwapUint64(slot, e, e&^w|sww) {
					return true
				}
				e = atomic.LoadUint64(slot)
			}
			return false
		}
	}
	// The split pass visited the 2 MiB leaves, which are now tables; walk
	// again to reach the 4 KiB leaves. No allocation happens here.
	f, err := t.visit(root, Levels, 0, 0, MaxGPA, false, false, clean)
	if err != nil {
		return flush || f, fmt.Errorf("ept: start dirty log: %w", err)
	}
	t.log = mode
	return flush || f, nil
}

// StopDirtyLog implements DirtyLog.
func (t *Tables) StopDirtyLog() (flush bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dead {
		return false, ErrDestroyed
	}
	if t.log == 0 {
		return false, ErrNotLogging
	}
	if t.log == DirtyWriteProtect {
		// Raising permissions needs a flush here: once the software bit is
		// gone, a fault on a stale read-only translation would look like
		// the guest's own write to read-only memory.
		w, sww := t.f.writeBit(), t.f.swWritable()
		flush, err = t.visit(t.alloc.Table(t.root), Levels, 0, 0, MaxGPA, false, false,
			func(slot *uint64, e uint64, _ int, _ uint64) bool {
				for e&sww != 0 {
					if atomic.CompareAndSwapUint64(slot, e, e&^sww|w) {
						return true
					}
					e = atomic.LoadUint64(slot)
				}
				return false
			})
		if err != nil {
			return flush, fmt.Errorf("ept: stop dirty log: %w", err)
		}
	}
	t.log = 0
	return flush, nil
}

// CollectDirty implements DirtyLog. fn runs with the tables locked and
// must not call back into them.
func (t *Tables) CollectDirty(gpa, size uint64, fn func(gpa uint64)) (flush bool, err error) {
	if err := checkRange(gpa, size); err != nil {
		return false, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dead {
		return false, ErrDestroyed
	}
	if t.log == 0 {
		return false, ErrNotLogging
	}
	end := gpa + size
	report := func(base uint64, level int) {
		// A 2 MiB leaf (mapped before logging split it, e.g. read-only
		// then) reports all of its pages inside the range.
		lo, hi := max(base, gpa), min(base+levelSpan(level), end)
		for p := lo; p < hi; p += PageSize4K {
			fn(p)
		}
	}
	var op leafFunc
	if t.log == DirtyHardware {
		d := t.f.dirtyBit()
		op = func(slot *uint64, e uint64, level int, base uint64) bool {
			if e&d == 0 || atomic.AndUint64(slot, ^d)&d == 0 {
				return false
			}
			report(base, level)
			return true
		}
	} else {
		w, sww := t.f.writeBit(), t.f.swWritable()
		op = func(slot *uint64, e uint64, level int, base uint64) bool {
			for e&sww != 0 && e&w != 0 {
				if atomic.CompareAndSwapUint64(slot, e, e&^w) {
					report(base, level)
					return true
				}
				e = atomic.LoadUint64(slot)
			}
			return false
		}
	}
	flush, err = t.visit(t.alloc.Table(t.root), Levels, 0, gpa, end, false, false, op)
	if err != nil {
		return flush, fmt.Errorf("ept: collect dirty: %w", err)
	}
	return flush, nil
}

// CollectDirtyBitmap implements DirtyLog.
func (t *Tables) CollectDirtyBitmap(gpa, size uint64, bm []uint64) (flush bool, err error) {
	if err := checkRange(gpa, size); err != nil {
		return false, err
	}
	pages := size / PageSize4K
	if uint64(len(bm)) < (pages+63)/64 {
		return false, fmt.Errorf("ept: dirty bitmap of %d words for %d pages", len(bm), pages)
	}
	clear(bm)
	return t.CollectDirty(gpa, size, func(p uint64) {
		i := (p - gpa) / PageSize4K
		bm[i/64] |= 1 << (i % 64)
	})
}

// HandleWriteFault implements DirtyLog. It does not allocate.
func (t *Tables) HandleWriteFault(gpa uint64) (logging bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dead || t.log != DirtyWriteProtect || gpa >= MaxGPA {
		return false
	}
	slot, e, _ := t.walk(gpa)
	sww, w := t.f.swWritable(), t.f.writeBit()
	for t.f.present(e) && e&sww != 0 {
		// Write access already back (another vCPU faulted on the same
		// page first) still counts as a logging fault: just resume.
		if e&w != 0 || atomic.CompareAndSwapUint64(slot, e, e|w) {
			return true
		}
		e = atomic.LoadUint64(slot)
	}
	return false
}
