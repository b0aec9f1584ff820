// Package bus routes guest port I/O and MMIO accesses to device models by
// address range.
//
// Two address spaces, PIO (16-bit port numbers) and MMIO (guest-physical
// addresses), each hold non-overlapping ranges registered with a Device.
// An access goes to the device whose range holds all of it, with the
// address made relative to the range's base. Accesses nothing claims behave
// as on a PC: reads return all ones and writes are dropped, and both are
// counted so they can be reported.
//
// Hot path: Read, Write and Lookup are called on every I/O and MMIO exit.
// They take no locks and do not allocate: the ranges are an immutable
// sorted slice behind an atomic pointer, replaced on registration.
package bus

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
)

// Space is an address space on the bus.
type Space uint8

// Address spaces.
const (
	PIO  Space = iota // port I/O, addresses 0..0xFFFF
	MMIO              // memory-mapped I/O, guest-physical addresses
	numSpaces
)

func (s Space) String() string {
	switch s {
	case PIO:
		return "pio"
	case MMIO:
		return "mmio"
	}
	return fmt.Sprintf("Space(%d)", uint8(s))
}

// PIOLimit is the size of the port I/O space.
const PIOLimit = 1 << 16

// A Device is a device model. Read fills data (1, 2, 4 or 8 bytes,
// little-endian) from the register at offset, the address relative to the
// base of the range the device was registered at; Write stores data.
// An error means the device could not complete the access (not that the
// guest did something odd: models handle that the way hardware does).
type Device interface {
	Read(offset uint64, data []byte) error
	Write(offset uint64, data []byte) error
}

// Errors callers branch on.
var (
	ErrOverlap  = errors.New("bus: range overlaps a registered device")
	ErrRange    = errors.New("bus: bad range")
	ErrSize     = errors.New("bus: access size not 1, 2, 4 or 8")
	ErrStraddle = errors.New("bus: access straddles a device boundary")
	ErrNotFound = errors.New("bus: no device at address")
)

type entry struct {
	base, size uint64
	name       string
	dev        Device
}

func (e *entry) end() uint64 { return e.base + e.size } // exclusive; may wrap to 0 at the top

// contains reports whether addr lies in the entry, without overflow.
func (e *entry) contains(addr uint64) bool { return addr >= e.base && addr-e.base < e.size }

// Bus is the set of devices of one VM.
type Bus struct {
	mu     sync.Mutex // serializes writers of spaces
	spaces [numSpaces]atomic.Pointer[[]entry]

	unhandledReads  [numSpaces]atomic.Uint64
	unhandledWrites [numSpaces]atomic.Uint64
}

// New returns an empty bus.
func New() *Bus { return &Bus{} }

// Register places d at [base, base+size) in space s. The range must not
// overlap one already registered.
func (b *Bus) Register(s Space, base, size uint64, name string, d Device) error {
	if s >= numSpaces || d == nil || size == 0 || base+size-1 < base ||
		s == PIO && (base >= PIOLimit || size > PIOLimit-base) {
		return fmt.Errorf("%w: %v %#x+%#x for %q", ErrRange, s, base, size, name)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var old []entry
	if p := b.spaces[s].Load(); p != nil {
		old = *p
	}
	i := sort.Search(len(old), func(i int) bool { return old[i].base >= base })
	last := base + size - 1
	if i > 0 && old[i-1].contains(base) {
		return fmt.Errorf("%w: %q at %v %#x+%#x overlaps %q at %#x+%#x",
			ErrOverlap, name, s, base, size, old[i-1].name, old[i-1].base, old[i-1].size)
	}
	if i < len(old) && old[i].base <= last {
		return fmt.Errorf("%w: %q at %v %#x+%#x overlaps %q at %#x+%#x",
			ErrOverlap, name, s, base, size, old[i].name, old[i].base, old[i].size)
	}
	nu := make([]entry, 0, len(old)+1)
	nu = append(nu, old[:i]...)
	nu = append(nu, entry{base: base, size: size, name: name, dev: d})
	nu = append(nu, old[i:]...)
	b.spaces[s].Store(&nu)
	return nil
}

// Unregister removes the device registered at exactly base in space s.
func (b *Bus) Unregister(s Space, base uint64) error {
	if s >= numSpaces {
		return fmt.Errorf("%w: space %v", ErrRange, s)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.spaces[s].Load()
	if p != nil {
		for i, e := range *p {
			if e.base == base {
				nu := make([]entry, 0, len(*p)-1)
				nu = append(nu, (*p)[:i]...)
				nu = append(nu, (*p)[i+1:]...)
				b.spaces[s].Store(&nu)
				return nil
			}
		}
	}
	return fmt.Errorf("%w: %v %#x", ErrNotFound, s, base)
}

// find returns the entry holding addr, or nil. It does not allocate.
func (b *Bus) find(s Space, addr uint64) *entry {
	if s >= numSpaces {
		return nil
	}
	p := b.spaces[s].Load()
	if p == nil {
		return nil
	}
	es := *p
	// First entry with base > addr; the one before may hold addr.
	lo, hi := 0, len(es)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if es[m].base <= addr {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 || !es[lo-1].contains(addr) {
		return nil
	}
	return &es[lo-1]
}

// Lookup returns the device holding addr in space s, the offset of addr in
// its range, and its name.
func (b *Bus) Lookup(s Space, addr uint64) (d Device, offset uint64, name string, ok bool) {
	e := b.find(s, addr)
	if e == nil {
		return nil, 0, "", false
	}
	return e.dev, addr - e.base, e.name, true
}

func validSize(n int) bool { return n == 1 || n == 2 || n == 4 || n == 8 }

// route finds the device for an access of len(data) bytes at addr.
// unhandled is true when no device holds addr at all.
func (b *Bus) route(s Space, addr uint64, n int) (e *entry, unhandled bool, err error) {
	if !validSize(n) {
		return nil, false, fmt.Errorf("%w: %v %#x size %d", ErrSize, s, addr, n)
	}
	e = b.find(s, addr)
	if e == nil {
		return nil, true, nil
	}
	if uint64(n) > e.size-(addr-e.base) {
		return nil, false, fmt.Errorf("%w: %v %#x size %d, %q ends at %#x", ErrStraddle, s, addr, n, e.name, e.end())
	}
	return e, false, nil
}

// Read performs a read of len(data) bytes at addr in space s. An access to
// no device reads as all ones and is counted.
func (b *Bus) Read(s Space, addr uint64, data []byte) error {
	e, unhandled, err := b.route(s, addr, len(data))
	if err != nil {
		return err
	}
	if unhandled {
		for i := range data {
			data[i] = 0xff
		}
		b.unhandledReads[s].Add(1)
		return nil
	}
	if err := e.dev.Read(addr-e.base, data); err != nil {
		return fmt.Errorf("%s: read %v %#x size %d: %w", e.name, s, addr, len(data), err)
	}
	return nil
}

// Write performs a write of len(data) bytes at addr in space s. An access
// to no device is dropped and counted.
func (b *Bus) Write(s Space, addr uint64, data []byte) error {
	e, unhandled, err := b.route(s, addr, len(data))
	if err != nil {
		return err
	}
	if unhandled {
		b.unhandledWrites[s].Add(1)
		return nil
	}
	if err := e.dev.Write(addr-e.base, data); err != nil {
		return fmt.Errorf("%s: write %v %#x size %d: %w", e.name, s, addr, len(data), err)
	}
	return nil
}

// Unhandled returns how many reads and writes in space s found no device.
func (b *Bus) Unhandled(s Space) (reads, writes uint64) {
	if s >= numSpaces {
		return 0, 0
	}
	return b.unhandledReads[s].Load(), b.unhandledWrites[s].Load()
}

// Range describes one registered device.
type Range struct {
	Space      Space
	Base, Size uint64
	Name       string
}

// Ranges lists the registered devices in space order, then address order.
func (b *Bus) Ranges() []Range {
	var rs []Range
	for s := Space(0); s < numSpaces; s++ {
		if p := b.spaces[s].Load(); p != nil {
			for _, e := range *p {
				rs = append(rs, Range{s, e.base, e.size, e.name})
			}
		}
	}
	return rs
}
