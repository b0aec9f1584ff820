// Package virtiotest runs the device side of split virtqueues in memory, for testing drivers
// without a device: a Memory that hands out byte slices at made-up physical addresses, and a
// Ring that takes chains from the driver ring and puts completions in the device ring as a
// device would (virtio 1.1, 2.6).
package virtiotest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// Memory is fake DMA memory: each allocation gets its own page-aligned physical range.
type Memory struct {
	mu      sync.Mutex
	next    uint64
	regions []region
	// Allocs and Frees count calls.
	Allocs, Frees int
}

type region struct {
	phys uint64
	buf  []byte
}

const pageSize = 4096

// NewMemory returns fake memory whose addresses start at 1 GiB (no address is 0).
func NewMemory() *Memory { return &Memory{next: 1 << 30} }

// Alloc implements virtio.Memory.
func (m *Memory) Alloc(size int) ([]byte, uint64, error) {
	if size <= 0 {
		return nil, 0, fmt.Errorf("virtiotest: allocating %d bytes", size)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	buf := make([]byte, (size+63)&^63)
	r := region{m.next, buf}
	// Page-aligned addresses with a gap after each allocation catch overruns.
	m.next += (uint64(len(buf)) + 2*pageSize - 1) &^ (pageSize - 1)
	m.regions = append(m.regions, r)
	m.Allocs++
	return buf[:size], r.phys, nil
}

// Free implements virtio.Memory.
func (m *Memory) Free(buf []byte, phys uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, r := range m.regions {
		if r.phys == phys {
			m.regions = append(m.regions[:i], m.regions[i+1:]...)
			m.Frees++
			return
		}
	}
}

// Bytes returns the n bytes at physical address phys, or an error if they are not all
// inside one allocation (what a device's DMA outside memory would be).
func (m *Memory) Bytes(phys uint64, n int) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.regions {
		if phys >= r.phys && phys+uint64(n) <= r.phys+uint64(len(r.buf)) && phys+uint64(n) >= phys {
			o := phys - r.phys
			return r.buf[o : o+uint64(n)], nil
		}
	}
	return nil, fmt.Errorf("virtiotest: DMA to %#x+%d outside allocated memory", phys, n)
}

// Desc is one descriptor of a chain as the device sees it.
type Desc struct {
	Addr  uint64
	Len   uint32
	Write bool
	Data  []byte // the buffer, resolved through Memory
}

// Errors of the device side.
var (
	ErrLoop     = errors.New("virtiotest: descriptor chain loops or exceeds the queue size")
	ErrBadIndex = errors.New("virtiotest: descriptor index out of range")
	ErrOrder    = errors.New("virtiotest: readable descriptor after a writable one")
)

// Ring is the device side of one split virtqueue.
type Ring struct {
	mem                *Memory
	size               uint16
	desc, avail, used  []byte
	lastAvail, usedIdx uint16
}

// NewRing attaches to the rings at the given physical addresses.
func NewRing(mem *Memory, size int, desc, avail, used uint64) (*Ring, error) {
	d, err := mem.Bytes(desc, 16*size)
	if err != nil {
		return nil, err
	}
	a, err := mem.Bytes(avail, 6+2*size)
	if err != nil {
		return nil, err
	}
	u, err := mem.Bytes(used, 6+8*size)
	if err != nil {
		return nil, err
	}
	return &Ring{mem: mem, size: uint16(size), desc: d, avail: a, used: u}, nil
}

// Next takes the next chain the driver made available; ok is false when there is none.
func (r *Ring) Next() (head uint16, chain []Desc, ok bool, err error) {
	idx := uint16(load32(r.avail) >> 16)
	if idx == r.lastAvail {
		return 0, nil, false, nil
	}
	head = binary.LittleEndian.Uint16(r.avail[4+2*int(r.lastAvail%r.size):])
	r.lastAvail++
	if head >= r.size {
		return head, nil, true, fmt.Errorf("head %d: %w", head, ErrBadIndex)
	}
	d := head
	sawWrite := false
	for n := 0; ; n++ {
		if n == int(r.size) {
			return head, chain, true, ErrLoop
		}
		o := 16 * int(d)
		flags := binary.LittleEndian.Uint16(r.desc[o+12:])
		x := Desc{
			Addr:  binary.LittleEndian.Uint64(r.desc[o:]),
			Len:   binary.LittleEndian.Uint32(r.desc[o+8:]),
			Write: flags&2 != 0,
		}
		if sawWrite && !x.Write {
			return head, chain, true, ErrOrder
		}
		sawWrite = sawWrite || x.Write
		if x.Data, err = r.mem.Bytes(x.Addr, int(x.Len)); err != nil {
			return head, chain, true, err
		}
		chain = append(chain, x)
		if flags&1 == 0 {
			return head, chain, true, nil
		}
		d = binary.LittleEndian.Uint16(r.desc[o+14:])
		if d >= r.size {
			return head, chain, true, fmt.Errorf("next %d: %w", d, ErrBadIndex)
		}
	}
}

// Complete puts head in the device ring with n bytes written and publishes the new index.
func (r *Ring) Complete(head uint16, n uint32) {
	e := 4 + 8*int(r.usedIdx%r.size)
	binary.LittleEndian.PutUint32(r.used[e:], uint32(head))
	binary.LittleEndian.PutUint32(r.used[e+4:], n)
	r.usedIdx++
	w := load32(r.used)
	store32(r.used, w&0xFFFF|uint32(r.usedIdx)<<16)
}

// SetNoNotify sets or clears VIRTQ_USED_F_NO_NOTIFY in the device ring's flags.
func (r *Ring) SetNoNotify(on bool) {
	w := load32(r.used)
	if on {
		w |= 1
	} else {
		w &^= 1
	}
	store32(r.used, w)
}

// InterruptsWanted reports whether the driver left VIRTQ_AVAIL_F_NO_INTERRUPT clear.
func (r *Ring) InterruptsWanted() bool { return load32(r.avail)&1 == 0 }
