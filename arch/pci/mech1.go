package pci

import (
	"sync"

	"github.com/godwit-hv/godwit/arch/x86"
)

// Configuration mechanism #1. PCI 3.0, 3.2.2.3.2 "Software Generation of Configuration
// Transactions": CONFIG_ADDRESS at 0CF8h (Enable bit 31, bus 23:16, device 15:11, function
// 10:8, register 7:2), CONFIG_DATA at 0CFCh-0CFFh for byte, word and dword accesses.
const (
	portConfigAddress = 0xCF8
	portConfigData    = 0xCFC
	configEnable      = 1 << 31
)

// Mech1 is the host's configuration space through mechanism #1. The address/data pair is one
// shared resource: a lock keeps two goroutines' accesses from interleaving.
type Mech1 struct{}

var mech1Mu sync.Mutex

func mech1Address(a Address, off uint16) uint32 {
	return configEnable | uint32(a.Bus)<<16 | uint32(a.Device&0x1F)<<11 | uint32(a.Function&0x7)<<8 | uint32(off&0xFC)
}

// Read performs a size-byte read at off (off < 256, aligned to size).
func (Mech1) Read(a Address, off uint16, size int) uint32 {
	mech1Mu.Lock()
	defer mech1Mu.Unlock()
	x86.Outl(portConfigAddress, mech1Address(a, off))
	port := uint16(portConfigData) + off&3
	switch size {
	case 1:
		return uint32(x86.Inb(port))
	case 2:
		return uint32(x86.Inw(port))
	}
	return x86.Inl(portConfigData)
}

// Write performs a size-byte write at off.
func (Mech1) Write(a Address, off uint16, size int, v uint32) {
	mech1Mu.Lock()
	defer mech1Mu.Unlock()
	x86.Outl(portConfigAddress, mech1Address(a, off))
	port := uint16(portConfigData) + off&3
	switch size {
	case 1:
		x86.Outb(port, uint8(v))
	case 2:
		x86.Outw(port, uint16(v))
	default:
		x86.Outl(portConfigData, v)
	}
}
