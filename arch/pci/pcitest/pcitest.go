// Package pcitest is a fake PCI configuration space for tests: functions with BARs that size
// like hardware (only the address bits above the size are writable), a capability chain, and
// a check that BARs are probed only with decoding disabled.
package pcitest

import (
	"encoding/binary"
	"fmt"

	"github.com/godwit-hv/godwit/arch/pci"
)

// Function is one fake PCI function.
type Function struct {
	Space [256]byte
	// barMask[i] are the writable bits of BAR i (0: unimplemented).
	barMask [6]uint32
	nextCap uint8
	lastCap uint8
	// ProbedWhileDecoding counts all-ones BAR writes made while the command register enabled
	// memory or I/O decoding (PCI 3.0, 6.2.5.1 says to disable it first).
	ProbedWhileDecoding int
}

// Config is a fake configuration space: absent functions read all ones.
type Config struct {
	Funcs map[pci.Address]*Function
	// Reads and Writes count accesses.
	Reads, Writes int
}

// NewConfig returns an empty configuration space.
func NewConfig() *Config { return &Config{Funcs: map[pci.Address]*Function{}} }

// Add places f at a.
func (c *Config) Add(a pci.Address, f *Function) *Function {
	c.Funcs[a] = f
	return f
}

// NewFunction makes a type 0 function with the given identity.
func NewFunction(vendor, device uint16, class, subclass, progIF uint8) *Function {
	f := &Function{nextCap: 0x40}
	f.Put16(pci.RegVendorID, vendor)
	f.Put16(pci.RegDeviceID, device)
	f.Space[pci.RegClass], f.Space[pci.RegSubclass], f.Space[pci.RegProgIF] = class, subclass, progIF
	f.Space[pci.RegInterruptLine] = 0xFF
	return f
}

// NewBridge makes a PCI-to-PCI bridge forwarding to secondary.
func NewBridge(secondary uint8) *Function {
	f := NewFunction(0x8086, 0x2448, pci.ClassBridge, pci.SubclassPCIToPCI, 0)
	f.Space[pci.RegHeaderType] = 1
	f.Space[pci.RegSecondaryBus] = secondary
	f.Space[pci.RegSubordinateBus] = secondary
	return f
}

// Put16 and friends write the fake's registers directly (not through Config.Write's rules).
func (f *Function) Put16(off int, v uint16) { binary.LittleEndian.PutUint16(f.Space[off:], v) }
func (f *Function) Put32(off int, v uint32) { binary.LittleEndian.PutUint32(f.Space[off:], v) }
func (f *Function) Get16(off int) uint16    { return binary.LittleEndian.Uint16(f.Space[off:]) }
func (f *Function) Get32(off int) uint32    { return binary.LittleEndian.Uint32(f.Space[off:]) }

// MultiFunction sets bit 7 of the header type.
func (f *Function) MultiFunction() *Function {
	f.Space[pci.RegHeaderType] |= 0x80
	return f
}

// SetINTx sets the Interrupt Line and Pin registers.
func (f *Function) SetINTx(line, pin uint8) *Function {
	f.Space[pci.RegInterruptLine], f.Space[pci.RegInterruptPin] = line, pin
	return f
}

// BAR kinds for AddBAR.
const (
	IO = iota
	Mem32
	Mem64
)

// AddBAR implements BAR i (and i+1 for Mem64) of size bytes (a power of two) at addr.
func (f *Function) AddBAR(i, kind int, addr, size uint64, prefetchable bool) *Function {
	off := pci.RegBAR0 + 4*i
	mask := ^(size - 1)
	switch kind {
	case IO:
		f.barMask[i] = uint32(mask) &^ 0x3
		f.Put32(off, uint32(addr)|0x1)
	case Mem32, Mem64:
		low := uint32(0)
		if kind == Mem64 {
			low = 0x4
		}
		if prefetchable {
			low |= 0x8
		}
		f.barMask[i] = uint32(mask) &^ 0xF
		f.Put32(off, uint32(addr)|low)
		if kind == Mem64 {
			f.barMask[i+1] = uint32(mask >> 32)
			f.Put32(off+4, uint32(addr>>32))
		}
	}
	return f
}

// AddCap appends a capability with id and body (the bytes after ID and Next) to the chain,
// and returns its offset.
func (f *Function) AddCap(id uint8, body []byte) uint8 {
	at := f.nextCap
	if int(at)+2+len(body) > len(f.Space) {
		panic(fmt.Sprintf("pcitest: capability %#x of %d bytes does not fit at %#x", id, len(body), at))
	}
	f.Space[at] = id
	f.Space[at+1] = 0
	copy(f.Space[int(at)+2:], body)
	if f.lastCap == 0 {
		f.Space[pci.RegCapPtr] = at
	} else {
		f.Space[f.lastCap+1] = at
	}
	f.Put16(pci.RegStatus, f.Get16(pci.RegStatus)|pci.StatusCapList)
	f.lastCap = at
	f.nextCap = (at + 2 + uint8(len(body)) + 3) &^ 3
	return at
}

// Read implements pci.Config.
func (c *Config) Read(a pci.Address, off uint16, size int) uint32 {
	c.Reads++
	f := c.Funcs[a]
	if f == nil || int(off)+size > len(f.Space) {
		return 0xFFFFFFFF >> (32 - 8*size)
	}
	var v uint32
	for i := 0; i < size; i++ {
		v |= uint32(f.Space[int(off)+i]) << (8 * i)
	}
	return v
}

// Write implements pci.Config: identity registers are read-only, BARs keep only their
// writable address bits, Status is write-one-to-clear (modelled as ignoring writes).
func (c *Config) Write(a pci.Address, off uint16, size int, v uint32) {
	c.Writes++
	f := c.Funcs[a]
	if f == nil || int(off)+size > len(f.Space) {
		return
	}
	for i := 0; i < size; i++ {
		o := int(off) + i
		b := byte(v >> (8 * i))
		switch {
		case o < pci.RegCommand, o >= pci.RegStatus && o < pci.RegStatus+2,
			o >= pci.RegRevisionID && o <= pci.RegHeaderType:
			continue
		case o >= pci.RegBAR0 && o < pci.RegBAR0+24 && f.Space[pci.RegHeaderType]&0x7F == 0:
			bar := (o - pci.RegBAR0) / 4
			shift := 8 * ((o - pci.RegBAR0) % 4)
			m := byte(f.barMask[bar] >> shift)
			f.Space[o] = f.Space[o]&^m | b&m
			continue
		}
		f.Space[o] = b
	}
	if off >= pci.RegBAR0 && off < pci.RegBAR0+24 && size == 4 && v == 0xFFFFFFFF &&
		f.Get16(pci.RegCommand)&(pci.CmdIOSpace|pci.CmdMemorySpace) != 0 {
		f.ProbedWhileDecoding++
	}
}

// Region is a fake register window backed by bytes (an MSI-X table, a virtio structure).
type Region struct {
	Mem []byte
	// OnWrite, if set, is called after every write with its offset and width.
	OnWrite func(off uint64, size int)
}

// NewRegion returns a zeroed region of n bytes.
func NewRegion(n int) *Region { return &Region{Mem: make([]byte, n)} }

func (r *Region) Size() uint64           { return uint64(len(r.Mem)) }
func (r *Region) Read8(o uint64) uint8   { return r.Mem[o] }
func (r *Region) Read16(o uint64) uint16 { return binary.LittleEndian.Uint16(r.Mem[o:]) }
func (r *Region) Read32(o uint64) uint32 { return binary.LittleEndian.Uint32(r.Mem[o:]) }
func (r *Region) Write8(o uint64, v uint8) {
	r.Mem[o] = v
	r.wrote(o, 1)
}
func (r *Region) Write16(o uint64, v uint16) {
	binary.LittleEndian.PutUint16(r.Mem[o:], v)
	r.wrote(o, 2)
}
func (r *Region) Write32(o uint64, v uint32) {
	binary.LittleEndian.PutUint32(r.Mem[o:], v)
	r.wrote(o, 4)
}

func (r *Region) wrote(o uint64, n int) {
	if r.OnWrite != nil {
		r.OnWrite(o, n)
	}
}
