// Package epttest provides an ept.Allocator over Go memory for tests, with
// leak accounting and allocation-failure injection.
package epttest

import (
	"errors"
	"fmt"
	"sort"

	"github.com/godwit-hv/godwit/ept"
)

// ErrInjected is returned by Alloc when a failure was injected.
var ErrInjected = errors.New("epttest: injected allocation failure")

// Allocator hands out tables from Go memory at made-up, 4 KiB-aligned
// "physical" addresses. It is not safe for concurrent use (ept.Tables
// serializes its calls).
type Allocator struct {
	// Base is the first address handed out (default 1 MiB).
	Base uint64
	// FailAfter, when positive, makes the FailAfter'th following Alloc
	// fail (1: the next one), then resets to 0.
	FailAfter int

	next   uint64
	live   map[uint64]*[ept.Entries]uint64
	allocs int
	frees  int
}

// New returns an empty allocator.
func New() *Allocator { return &Allocator{} }

// Alloc implements ept.Allocator.
func (a *Allocator) Alloc() (uint64, *[ept.Entries]uint64, error) {
	if a.FailAfter > 0 {
		a.FailAfter--
		if a.FailAfter == 0 {
			return 0, nil, ErrInjected
		}
	}
	if a.live == nil {
		a.live = make(map[uint64]*[ept.Entries]uint64)
	}
	if a.next == 0 {
		a.next = a.Base
		if a.next == 0 {
			a.next = 1 << 20
		}
	}
	pa := a.next
	a.next += ept.PageSize4K
	t := new([ept.Entries]uint64)
	a.live[pa] = t
	a.allocs++
	return pa, t, nil
}

// Table implements ept.Allocator. It panics on an address it does not own,
// which in a test means the tables hold a bad pointer.
func (a *Allocator) Table(pa uint64) *[ept.Entries]uint64 {
	t, ok := a.live[pa]
	if !ok {
		panic(fmt.Sprintf("epttest: Table(%#x): not a live table", pa))
	}
	return t
}

// Free implements ept.Allocator. It panics on a double free. The table is
// poisoned so a use after free shows up as garbage entries.
func (a *Allocator) Free(pa uint64) {
	t, ok := a.live[pa]
	if !ok {
		panic(fmt.Sprintf("epttest: Free(%#x): not a live table", pa))
	}
	for i := range t {
		t[i] = 0xdead_dead_dead_dead
	}
	delete(a.live, pa)
	a.frees++
}

// Live returns the number of tables allocated and not freed.
func (a *Allocator) Live() int { return len(a.live) }

// LiveAddrs returns the addresses of the live tables in ascending order.
func (a *Allocator) LiveAddrs() []uint64 {
	s := make([]uint64, 0, len(a.live))
	for pa := range a.live {
		s = append(s, pa)
	}
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s
}

// Raw returns the table at pa for tests that inspect or poke entries
// (e.g. to play the processor setting a dirty bit), or nil.
func (a *Allocator) Raw(pa uint64) *[ept.Entries]uint64 { return a.live[pa] }
