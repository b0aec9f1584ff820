// Package testdev models Godwit's test device: a few scratch registers the test guests
// (testdata/guests, the longmode guest in particular) read and write through MMIO and port
// I/O of every width to check that the hypervisor routes, sizes and emulates those accesses
// exactly. It is a Godwit invention, not a model of real hardware.
//
// MMIO window (MMIOSize bytes at MMIOBase), little-endian, byte-addressable: an access of n
// bytes at offset o acts on bytes o..o+n-1 of the register file, so unaligned accesses and
// accesses that span two registers are well defined.
//
//	0x00  RegScratch  64-bit scratch register (read/write)
//	0x08  RegCounter  64-bit count of accesses to the window (read-only, writes ignored);
//	                  a read returns the count before the read itself
//	0x10  RegBuffer   BufferSize-byte scratch buffer (read/write), for REP MOVS/STOS
//	0x50  ..0xFFF     reserved: reads 0, writes ignored (still counted)
//
// Port window (PortSize ports at Port): a 32-bit scratch register; an access of n bytes at
// port Port+k acts on bytes k..k+n-1. Port accesses are not counted.
//
// Hot path: Read and Write run on MMIO and I/O exits; they take one mutex and do not
// allocate.
package testdev

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/godwit-hv/godwit/hv/bus"
)

// The guest-physical MMIO window and the port range the test guests use.
const (
	MMIOBase = 0xFEB00000
	MMIOSize = 0x1000
	Port     = 0xE0
	PortSize = 4
)

// MMIO register offsets and sizes.
const (
	RegScratch  = 0x00
	RegCounter  = 0x08
	RegBuffer   = 0x10
	BufferSize  = 64
	regFileSize = RegBuffer + BufferSize // bytes 0x50 and up are reserved
)

// Device is one test device. Use MMIO and PIO to get its two bus.Device faces.
type Device struct {
	mu      sync.Mutex
	scratch uint64
	counter uint64
	buffer  [BufferSize]byte
	port    uint32
}

// New returns a device with every register zero.
func New() *Device { return &Device{} }

// MMIO returns the device's memory-mapped face, for MMIOSize bytes of the MMIO space.
func (d *Device) MMIO() bus.Device { return mmio{d} }

// PIO returns the device's port face, for PortSize ports of the port space.
func (d *Device) PIO() bus.Device { return pio{d} }

// Register places the device on b at MMIOBase and Port.
func (d *Device) Register(b *bus.Bus) error {
	if err := b.Register(bus.MMIO, MMIOBase, MMIOSize, "testdev", d.MMIO()); err != nil {
		return err
	}
	return b.Register(bus.PIO, Port, PortSize, "testdev", d.PIO())
}

func validSize(n int) bool { return n == 1 || n == 2 || n == 4 || n == 8 }

type mmio struct{ d *Device }

// Read implements bus.Device.
func (m mmio) Read(offset uint64, data []byte) error {
	if !validSize(len(data)) || offset >= MMIOSize || uint64(len(data)) > MMIOSize-offset {
		return fmt.Errorf("testdev: mmio read of %d bytes at offset %#x", len(data), offset)
	}
	d := m.d
	d.mu.Lock()
	defer d.mu.Unlock()
	var regs [regFileSize]byte
	binary.LittleEndian.PutUint64(regs[RegScratch:], d.scratch)
	binary.LittleEndian.PutUint64(regs[RegCounter:], d.counter)
	copy(regs[RegBuffer:], d.buffer[:])
	for i := range data {
		data[i] = 0
		if o := offset + uint64(i); o < regFileSize {
			data[i] = regs[o]
		}
	}
	d.counter++
	return nil
}

// Write implements bus.Device.
func (m mmio) Write(offset uint64, data []byte) error {
	if !validSize(len(data)) || offset >= MMIOSize || uint64(len(data)) > MMIOSize-offset {
		return fmt.Errorf("testdev: mmio write of %d bytes at offset %#x", len(data), offset)
	}
	d := m.d
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, b := range data {
		switch o := offset + uint64(i); {
		case o < RegScratch+8:
			shift := 8 * (o - RegScratch)
			d.scratch = d.scratch&^(0xff<<shift) | uint64(b)<<shift
		case o < RegCounter+8:
			// read-only
		case o < RegBuffer+BufferSize:
			d.buffer[o-RegBuffer] = b
		}
	}
	d.counter++
	return nil
}

type pio struct{ d *Device }

// Read implements bus.Device.
func (p pio) Read(offset uint64, data []byte) error {
	if len(data) > 4 || !validSize(len(data)) || offset >= PortSize || uint64(len(data)) > PortSize-offset {
		return fmt.Errorf("testdev: port read of %d bytes at port %#x", len(data), Port+offset)
	}
	p.d.mu.Lock()
	v := p.d.port
	p.d.mu.Unlock()
	for i := range data {
		data[i] = byte(v >> (8 * (offset + uint64(i))))
	}
	return nil
}

// Write implements bus.Device.
func (p pio) Write(offset uint64, data []byte) error {
	if len(data) > 4 || !validSize(len(data)) || offset >= PortSize || uint64(len(data)) > PortSize-offset {
		return fmt.Errorf("testdev: port write of %d bytes at port %#x", len(data), Port+offset)
	}
	p.d.mu.Lock()
	defer p.d.mu.Unlock()
	for i, b := range data {
		shift := 8 * (offset + uint64(i))
		p.d.port = p.d.port&^(0xff<<shift) | uint32(b)<<shift
	}
	return nil
}

// State is the device's migratable state.
type State struct {
	Scratch uint64
	Counter uint64
	Buffer  [BufferSize]byte
	Port    uint32
}

// Save returns the device state.
func (d *Device) Save() State {
	d.mu.Lock()
	defer d.mu.Unlock()
	return State{Scratch: d.scratch, Counter: d.counter, Buffer: d.buffer, Port: d.port}
}

// Restore loads a state from Save.
func (d *Device) Restore(s State) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.scratch, d.counter, d.buffer, d.port = s.Scratch, s.Counter, s.Buffer, s.Port
}
