package ept

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Errors callers branch on. Returned errors wrap them with context.
var (
	ErrPerm       = errors.New("ept: unsupported permissions")
	ErrMemType    = errors.New("ept: unsupported memory type")
	ErrRange      = errors.New("ept: misaligned or out-of-range address")
	ErrMapped     = errors.New("ept: range already mapped")
	ErrNotMapped  = errors.New("ept: range not mapped")
	ErrAlloc      = errors.New("ept: table allocation failed")
	ErrDestroyed  = errors.New("ept: tables destroyed")
	ErrLogging    = errors.New("ept: dirty logging already active")
	ErrNotLogging = errors.New("ept: dirty logging not active")
	ErrNoAD       = errors.New("ept: hardware dirty bits not available")
)

// An Allocator provides the 4 KiB tables the processor walks.
type Allocator interface {
	// Alloc returns a zeroed, 4 KiB-aligned table: the host-physical
	// address the processor uses and a pointer the hypervisor uses.
	Alloc() (pa uint64, t *[Entries]uint64, err error)
	// Table returns the table at pa, an address Alloc returned and Free has
	// not released. It is called on every level of every walk and must be
	// cheap (in the kernel, a conversion of an identity-mapped address).
	Table(pa uint64) *[Entries]uint64
	// Free releases the table at pa. It is called only after no entry
	// points to the table any more; the caller flushes before reuse.
	Free(pa uint64)
}

// Config describes the tables to build.
type Config struct {
	Kind  Kind
	Alloc Allocator
	// AccessedDirty enables EPT accessed and dirty flags (EPTP bit 6);
	// supported when IA32_VMX_EPT_VPID_CAP bit 21 is 1 (Intel SDM Vol. 3D,
	// A.10 "VPID and EPT Capabilities"). Ignored for NPT, which always has them.
	AccessedDirty bool
	// ExecuteOnly allows EPT mappings with Exec but not Read; supported when
	// IA32_VMX_EPT_VPID_CAP bit 0 is 1. Never allowed for NPT.
	ExecuteOnly bool
	// IgnoreGuestPAT sets the EPT ignore-PAT bit in leaves, so the leaf's
	// memory type is used as is (29.3.7 "EPT and Memory Typing").
	IgnoreGuestPAT bool
}

// Mapping describes the translation of one guest-physical address.
type Mapping struct {
	GPA     uint64 // guest-physical base of the page
	HPA     uint64 // host-physical base of the page
	Size    uint64 // PageSize4K or PageSize2M
	Perm    Perm   // permissions granted to the guest, as mapped
	MemType MemType
	// Accessed and Dirty are the hardware bits (always false for EPT
	// without AccessedDirty).
	Accessed, Dirty bool
	// LogProtected is set when write permission is withheld by write-protect
	// dirty logging until the next write fault; Perm still includes Write.
	LogProtected bool
}

// Tables is one second-level address space.
type Tables struct {
	mu    sync.Mutex
	f     format
	alloc Allocator
	root  uint64
	log   DirtyMode
	dead  bool
	count int // tables in use, root included
}

// New allocates an empty PML4 and returns the tables.
func New(c Config) (*Tables, error) {
	if c.Alloc == nil {
		return nil, errors.New("ept: no allocator")
	}
	t := &Tables{alloc: c.Alloc}
	switch c.Kind {
	case NPT:
		t.f = format{kind: NPT, ad: true}
	case EPT:
		t.f = format{kind: EPT, ad: c.AccessedDirty, execOnly: c.ExecuteOnly, ipat: c.IgnoreGuestPAT}
	default:
		return nil, fmt.Errorf("ept: unknown kind %v", c.Kind)
	}
	pa, _, err := t.newTable()
	if err != nil {
		return nil, err
	}
	t.root = pa
	return t, nil
}

// Kind returns the entry format.
func (t *Tables) Kind() Kind { return t.f.kind }

// Root returns the host-physical address of the PML4 table.
func (t *Tables) Root() uint64 { return t.root }

// HardwareDirty reports whether the processor maintains dirty bits in
// these tables (always for NPT; for EPT when AccessedDirty is set).
func (t *Tables) HardwareDirty() bool { return t.f.ad }

// EPTP returns the extended-page-table pointer for the VMCS: write-back
// paging-structure memory type, page-walk length 4, and the A/D enable when
// configured. Intel SDM Vol. 3C, 25.6.11 "Extended-Page-Table Pointer (EPTP)".
// It panics for NPT tables.
func (t *Tables) EPTP() uint64 {
	if t.f.kind != EPT {
		panic("ept: EPTP of " + t.f.kind.String() + " tables")
	}
	p := t.root | eptpMTWB | eptpWalkLength4
	if t.f.ad {
		p |= eptpEnableAD
	}
	return p
}

// NCR3 returns the value for the VMCB nCR3 field (offset 0xB0): the PML4
// address, with PWT/PCD clear so the walk uses write-back memory.
// AMD APM Vol. 2, 15.25 "Nested Paging"; Appendix B "Layout of VMCB". It panics for EPT tables.
func (t *Tables) NCR3() uint64 {
	if t.f.kind != NPT {
		panic("ept: nCR3 of " + t.f.kind.String() + " tables")
	}
	return t.root
}

// TableCount returns the number of tables in use, the root included.
func (t *Tables) TableCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.count
}

func (t *Tables) newTable() (uint64, *[Entries]uint64, error) {
	pa, tab, err := t.alloc.Alloc()
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrAlloc, err)
	}
	if pa%PageSize4K != 0 || pa >= maxPA || tab == nil {
		if tab != nil {
			t.alloc.Free(pa)
		}
		return 0, nil, fmt.Errorf("%w: allocator returned table at %#x", ErrAlloc, pa)
	}
	t.count++
	return pa, tab, nil
}

func (t *Tables) freeTable(pa uint64) {
	t.alloc.Free(pa)
	t.count--
}

// levelSpan is the guest-physical size one entry at level controls.
func levelSpan(level int) uint64 { return 1 << (12 + 9*(level-1)) }

func index(gpa uint64, level int) int { return int(gpa>>(12+9*(level-1))) & (Entries - 1) }

func checkRange(gpa, size uint64) error {
	if size == 0 || gpa%PageSize4K != 0 || size%PageSize4K != 0 || gpa >= MaxGPA || size > MaxGPA-gpa {
		return fmt.Errorf("%w: gpa %#x size %#x", ErrRange, gpa, size)
	}
	return nil
}

// walk finds the entry that decides gpa: the leaf slot and its level, or the
// first non-present slot and its level. It does not allocate.
func (t *Tables) walk(gpa uint64) (slot *uint64, e uint64, level int) {
	tab := t.alloc.Table(t.root)
	for level = Levels; ; level-- {
		slot = &tab[index(gpa, level)]
		e = atomic.LoadUint64(slot)
		if !t.f.present(e) || t.f.leafAt(e, level) {
			return slot, e, level
		}
		tab = t.alloc.Table(t.f.addr(e, level))
	}
}

// Translate returns the mapping of gpa, or false if gpa is not mapped.
// It does not allocate.
func (t *Tables) Translate(gpa uint64) (Mapping, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dead || gpa >= MaxGPA {
		return Mapping{}, false
	}
	_, e, level := t.walk(gpa)
	if !t.f.present(e) {
		return Mapping{}, false
	}
	size := levelSpan(level)
	m := Mapping{
		GPA:     gpa &^ (size - 1),
		HPA:     t.f.addr(e, level),
		Size:    size,
		Perm:    t.f.perm(e),
		MemType: t.f.memType(e),
	}
	if a := t.f.accessedBit(); a != 0 {
		m.Accessed = e&a != 0
		m.Dirty = e&t.f.dirtyBit() != 0
	}
	if e&t.f.swWritable() != 0 {
		m.Perm |= Write
		m.LogProtected = e&t.f.writeBit() == 0
	}
	return m, true
}

// Map maps [gpa, gpa+size) to [hpa, hpa+size) with write-back memory. See MapType.
func (t *Tables) Map(gpa, hpa, size uint64, p Perm) (flush bool, err error) {
	return t.MapType(gpa, hpa, size, p, WB)
}

// MapType maps [gpa, gpa+size) to [hpa, hpa+size) with permissions p and
// memory type m, using 2 MiB pages where both addresses are 2 MiB-aligned
// and the rest of the range covers the page (4 KiB pages only while dirty
// logging is active). The range must not be mapped at all; on error
// nothing is left mapped. Filling empty entries needs no flush, so flush is
// false unless a future change makes one necessary.
func (t *Tables) MapType(gpa, hpa, size uint64, p Perm, m MemType) (flush bool, err error) {
	if err := checkRange(gpa, size); err != nil {
		return false, err
	}
	if hpa%PageSize4K != 0 || hpa >= maxPA || size > maxPA-hpa {
		return false, fmt.Errorf("%w: hpa %#x size %#x", ErrRange, hpa, size)
	}
	if err := t.f.checkPerm(p); err != nil {
		return false, err
	}
	if err := t.f.checkMemType(m); err != nil {
		return false, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dead {
		return false, ErrDestroyed
	}
	if at, ok := t.firstPresent(gpa, gpa+size); ok {
		return false, fmt.Errorf("%w: gpa %#x", ErrMapped, at)
	}
	end := gpa + size
	for cur := gpa; cur < end; {
		off := cur - gpa
		level := 1
		if t.log == 0 && cur%PageSize2M == 0 && (hpa+off)%PageSize2M == 0 && end-cur >= PageSize2M {
			level = 2
		}
		tab, err := t.tableFor(cur, level)
		if err == nil && level == 2 && atomic.LoadUint64(&tab[index(cur, 2)]) != 0 {
			// An (empty) page table already hangs here: use 4 KiB pages.
			level = 1
			tab, err = t.tableFor(cur, level)
		}
		if err != nil {
			// Roll back: nothing in [gpa, end) was mapped before this call,
			// so unmap all of it and free the tables left empty.
			_, _ = t.visit(t.alloc.Table(t.root), Levels, 0, gpa, end, true, true, t.unmapLeaf)
			return false, fmt.Errorf("ept: map %#x: %w", cur, err)
		}
		slot := &tab[index(cur, level)]
		atomic.StoreUint64(slot, t.newLeaf(hpa+off, level, p, m))
		cur += levelSpan(level)
	}
	return false, nil
}

// newLeaf encodes a new leaf, write-protected when write-protect logging
// is active so the first write is logged.
func (t *Tables) newLeaf(hpa uint64, level int, p Perm, m MemType) uint64 {
	e := t.f.leaf(hpa, level, p, m)
	if t.log == DirtyWriteProtect && p&Write != 0 {
		e = e&^t.f.writeBit() | t.f.swWritable()
	}
	return e
}

// tableFor returns the table at level holding gpa's entry, allocating
// missing tables on the way. It fails with ErrMapped if a leaf is in the way.
// Whenever level is 2, a (possibly empty) level-1 table may already exist.
func (t *Tables) tableFor(gpa uint64, level int) (*[Entries]uint64, error) {
	tab := t.alloc.Table(t.root)
	for l := Levels; l > level; l-- {
		slot := &tab[index(gpa, l)]
		e := atomic.LoadUint64(slot)
		if !t.f.present(e) {
			pa, child, err := t.newTable()
			if err != nil {
				return nil, err
			}
			atomic.StoreUint64(slot, t.f.table(pa))
			tab = child
			continue
		}
		if t.f.leafAt(e, l) {
			return nil, ErrMapped
		}
		tab = t.alloc.Table(t.f.addr(e, l))
	}
	return tab, nil
}

// firstPresent returns the first guest-physical address in [start, end)
// that is mapped, skipping unmapped regions a whole entry at a time.
func (t *Tables) firstPresent(start, end uint64) (uint64, bool) {
	for cur := start; cur < end; {
		_, e, level := t.walk(cur)
		if t.f.present(e) {
			return cur, true
		}
		span := levelSpan(level)
		cur = (cur &^ (span - 1)) + span
	}
	return 0, false
}

// Unmap removes every mapping in [gpa, gpa+size), splitting 2 MiB pages
// that are only partly covered and freeing tables left empty. Holes in the
// range are skipped. flush reports that a present entry was removed.
// On an allocation failure while splitting, the part done stays unmapped.
func (t *Tables) Unmap(gpa, size uint64) (flush bool, err error) {
	if err := checkRange(gpa, size); err != nil {
		return false, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dead {
		return false, ErrDestroyed
	}
	flush, err = t.visit(t.alloc.Table(t.root), Levels, 0, gpa, gpa+size, true, true, t.unmapLeaf)
	if err != nil {
		return flush, fmt.Errorf("ept: unmap %#x+%#x: %w", gpa, size, err)
	}
	return flush, nil
}

func (t *Tables) unmapLeaf(slot *uint64, _ uint64, _ int, _ uint64) bool {
	atomic.StoreUint64(slot, 0)
	return true
}

// Protect changes the permissions of every page in [gpa, gpa+size), which
// must be mapped throughout; 2 MiB pages only partly covered are split.
// Accessed and dirty bits are kept. flush reports that permissions changed
// on a present entry (raising permissions is reported too: a stale
// read-only translation would fault spuriously).
func (t *Tables) Protect(gpa, size uint64, p Perm) (flush bool, err error) {
	if err := checkRange(gpa, size); err != nil {
		return false, err
	}
	if err := t.f.checkPerm(p); err != nil {
		return false, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dead {
		return false, ErrDestroyed
	}
	if hole, ok := t.firstHole(gpa, gpa+size); ok {
		return false, fmt.Errorf("%w: gpa %#x", ErrNotMapped, hole)
	}
	bits := t.f.permBits(p)
	sww := t.f.swWritable()
	if t.log == DirtyWriteProtect && p&Write != 0 {
		bits = bits&^t.f.writeBit() | sww
	}
	mask := t.f.permMask() | sww
	flush, err = t.visit(t.alloc.Table(t.root), Levels, 0, gpa, gpa+size, true, false,
		func(slot *uint64, old uint64, _ int, _ uint64) bool {
			for {
				nu := old&^mask | bits
				if nu == old {
					return false
				}
				if atomic.CompareAndSwapUint64(slot, old, nu) {
					return true
				}
				old = atomic.LoadUint64(slot)
			}
		})
	if err != nil {
		return flush, fmt.Errorf("ept: protect %#x+%#x: %w", gpa, size, err)
	}
	return flush, nil
}

// firstHole returns the first unmapped address in [start, end).
func (t *Tables) firstHole(start, end uint64) (uint64, bool) {
	for cur := start; cur < end; {
		_, e, level := t.walk(cur)
		if !t.f.present(e) {
			return cur, true
		}
		span := levelSpan(level)
		cur = (cur &^ (span - 1)) + span
	}
	return 0, false
}

// leafFunc is called for a present leaf. It updates the slot atomically if
// it changes it, and reports whether a flush is needed.
type leafFunc func(slot *uint64, e uint64, level int, gpa uint64) (flush bool)

// visit calls fn for every present leaf under tab (a table at level whose
// first entry maps base) that overlaps [start, end). With split, 2 MiB
// leaves only partly inside the range are split first; with prune, tables
// left empty are freed and unlinked.
func (t *Tables) visit(tab *[Entries]uint64, level int, base, start, end uint64, split, prune bool, fn leafFunc) (flush bool, err error) {
	span := levelSpan(level)
	for i := int((start - base) / span); i < Entries; i++ {
		eb := base + uint64(i)*span
		if eb >= end {
			break
		}
		e := atomic.LoadUint64(&tab[i])
		if !t.f.present(e) {
			continue
		}
		if t.f.leafAt(e, level) {
			partial := eb < start || eb+span > end
			if level == 1 || !partial || !split {
				if fn(&tab[i], e, level, eb) {
					flush = true
				}
				continue
			}
			if err := t.splitSlot(&tab[i]); err != nil {
				return flush, err
			}
			flush = true
			e = atomic.LoadUint64(&tab[i])
		}
		child := t.f.addr(e, level)
		f, err := t.visit(t.alloc.Table(child), level-1, eb, max(start, eb), min(end, eb+span), split, prune, fn)
		flush = flush || f
		if err != nil {
			return flush, err
		}
		if prune && t.emptyTable(child) {
			atomic.StoreUint64(&tab[i], 0)
			t.freeTable(child)
			flush = true
		}
	}
	return flush, nil
}

func (t *Tables) emptyTable(pa uint64) bool {
	tab := t.alloc.Table(pa)
	for i := range tab {
		if atomic.LoadUint64(&tab[i]) != 0 {
			return false
		}
	}
	return true
}

// splitSlot replaces the 2 MiB leaf in slot with a page table of 512 4 KiB
// leaves with the same translation, permissions, memory type, accessed and
// dirty state. The swap is a compare-and-swap so a dirty bit the processor
// sets meanwhile is carried over, not lost. The caller must flush.
func (t *Tables) splitSlot(slot *uint64) error {
	pa, pt, err := t.newTable()
	if err != nil {
		return err
	}
	for {
		e := atomic.LoadUint64(slot)
		for i := range pt {
			pt[i] = t.f.split(e, i)
		}
		if atomic.CompareAndSwapUint64(slot, e, t.f.table(pa)) {
			return nil
		}
	}
}

// Destroy frees every table, the root included. The tables must no longer
// be in use by any processor (flush first). Later calls fail with
// ErrDestroyed; Destroy itself is idempotent.
func (t *Tables) Destroy() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dead {
		return
	}
	t.destroy(t.root, Levels)
	t.dead = true
}

func (t *Tables) destroy(pa uint64, level int) {
	if level > 1 {
		tab := t.alloc.Table(pa)
		for i := range tab {
			e := tab[i]
			if t.f.present(e) && !t.f.leafAt(e, level) {
				t.destroy(t.f.addr(e, level), level-1)
			}
		}
	}
	t.freeTable(pa)
}
