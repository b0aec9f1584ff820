package pci

import (
	"sync/atomic"
	"unsafe"
)

// mmioRegion is a memory BAR reached through the kernel's identity map (virtual == physical,
// uncached: ring0.MapMMIO). Every access is one load or store of its width; the atomic
// operations keep the compiler from merging, splitting or dropping them.
type mmioRegion struct {
	base, size uint64
}

// ptr is not inlined, so that no load or store through it can be combined with another or
// moved out of a polling loop.
//
//go:nocheckptr
//go:noinline
func (m mmioRegion) ptr(off uint64) unsafe.Pointer {
	return unsafe.Add(unsafe.Pointer(nil), uintptr(m.base+off))
}

func (m mmioRegion) Size() uint64 { return m.size }

// Byte and word accesses have no atomic form in sync/atomic: they are plain single accesses
// through the opaque pointer.
func (m mmioRegion) Read8(off uint64) uint8   { return *(*uint8)(m.ptr(off)) }
func (m mmioRegion) Read16(off uint64) uint16 { return *(*uint16)(m.ptr(off)) }
func (m mmioRegion) Read32(off uint64) uint32 { return atomic.LoadUint32((*uint32)(m.ptr(off))) }
func (m mmioRegion) Write8(off uint64, v uint8) {
	*(*uint8)(m.ptr(off)) = v
}
func (m mmioRegion) Write16(off uint64, v uint16) {
	*(*uint16)(m.ptr(off)) = v
}
func (m mmioRegion) Write32(off uint64, v uint32) { atomic.StoreUint32((*uint32)(m.ptr(off)), v) }
