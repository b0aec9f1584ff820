package pci

import (
	"fmt"
	"sync"

	"github.com/godwit-hv/godwit/arch/ring0"
	"github.com/godwit-hv/godwit/arch/x86"
)

// Region is a window of a device's registers (part of a BAR) accessed with sized loads and
// stores at byte offsets. Drivers use it for MSI-X tables and virtio structures; tests put
// fakes behind it.
type Region interface {
	Read8(off uint64) uint8
	Read16(off uint64) uint16
	Read32(off uint64) uint32
	Write8(off uint64, v uint8)
	Write16(off uint64, v uint16)
	Write32(off uint64, v uint32)
	Size() uint64
}

// Sub returns the part [off, off+size) of r.
func Sub(r Region, off, size uint64) (Region, error) {
	if off+size < off || off+size > r.Size() {
		return nil, fmt.Errorf("pci: window %#x+%#x outside a region of %#x bytes: %w", off, size, r.Size(), ErrBadBAR)
	}
	return subRegion{r, off, size}, nil
}

type subRegion struct {
	r         Region
	off, size uint64
}

func (s subRegion) Read8(o uint64) uint8       { return s.r.Read8(s.off + o) }
func (s subRegion) Read16(o uint64) uint16     { return s.r.Read16(s.off + o) }
func (s subRegion) Read32(o uint64) uint32     { return s.r.Read32(s.off + o) }
func (s subRegion) Write8(o uint64, v uint8)   { s.r.Write8(s.off+o, v) }
func (s subRegion) Write16(o uint64, v uint16) { s.r.Write16(s.off+o, v) }
func (s subRegion) Write32(o uint64, v uint32) { s.r.Write32(s.off+o, v) }
func (s subRegion) Size() uint64               { return s.size }

// portRegion is an I/O-space BAR.
type portRegion struct {
	base uint16
	size uint64
}

func (p portRegion) Read8(o uint64) uint8       { return x86.Inb(p.base + uint16(o)) }
func (p portRegion) Read16(o uint64) uint16     { return x86.Inw(p.base + uint16(o)) }
func (p portRegion) Read32(o uint64) uint32     { return x86.Inl(p.base + uint16(o)) }
func (p portRegion) Write8(o uint64, v uint8)   { x86.Outb(p.base+uint16(o), v) }
func (p portRegion) Write16(o uint64, v uint16) { x86.Outw(p.base+uint16(o), v) }
func (p portRegion) Write32(o uint64, v uint32) { x86.Outl(p.base+uint16(o), v) }
func (p portRegion) Size() uint64               { return p.size }

var mapMu sync.Mutex

// MapBAR returns the registers behind b on this machine: port I/O for an I/O BAR, the
// identity-mapped physical range (made uncached and reachable by ring0.MapMMIO) for a memory
// BAR. Only in the kernel.
func MapBAR(b BAR) (Region, error) {
	switch b.Kind {
	case BARIO:
		if b.Addr+b.Size > 1<<16 || b.Size == 0 {
			return nil, fmt.Errorf("pci: I/O BAR%d %#x+%#x beyond the 64 KiB port space: %w", b.Index, b.Addr, b.Size, ErrBadBAR)
		}
		return portRegion{uint16(b.Addr), b.Size}, nil
	case BARMem32, BARMem64:
		if b.Addr == 0 || b.Size == 0 {
			return nil, fmt.Errorf("pci: memory BAR%d unassigned (%#x+%#x): %w", b.Index, b.Addr, b.Size, ErrBadBAR)
		}
		mapMu.Lock()
		err := ring0.MapMMIO(b.Addr, b.Size)
		mapMu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("pci: mapping BAR%d: %w", b.Index, err)
		}
		return mmioRegion{b.Addr, b.Size}, nil
	}
	return nil, fmt.Errorf("pci: BAR%d: %w", b.Index, ErrBadBAR)
}
