// Package pci finds and configures the host's PCI devices: configuration mechanism #1, a
// recursive scan of buses, devices and functions (multi-function devices, PCI-to-PCI
// bridges), BAR decoding and sizing, the capability list, command-register enables, MSI and
// MSI-X, and legacy INTx routing through the ring-0 layer's I/O APIC support.
//
// Configuration space is reached through the Config interface, so everything here is tested in
// user space against a fake configuration space (pci_test.go); Mech1 is the real one. Devices
// enumerates the host once (BAR sizing briefly disables a device's decoding, so it must not
// run while drivers use the devices).
//
// References: PCI Local Bus Specification 3.0 (cited as "PCI 3.0"), PCI-to-PCI Bridge
// Architecture Specification 1.2.
package pci

import (
	"errors"
	"fmt"
)

// Configuration-space header registers. PCI 3.0, 6.1 "Configuration Space Organization",
// Figure 6-1 "Type 00h Configuration Space Header".
const (
	RegVendorID        = 0x00
	RegDeviceID        = 0x02
	RegCommand         = 0x04
	RegStatus          = 0x06
	RegRevisionID      = 0x08
	RegProgIF          = 0x09
	RegSubclass        = 0x0A
	RegClass           = 0x0B
	RegHeaderType      = 0x0E
	RegBAR0            = 0x10
	RegSubsystemVendor = 0x2C
	RegSubsystemID     = 0x2E
	RegCapPtr          = 0x34
	RegInterruptLine   = 0x3C
	RegInterruptPin    = 0x3D
)

// Type 1 (PCI-to-PCI bridge) header registers. PCI-to-PCI Bridge Architecture Specification
// 1.2, 3.2 "PCI-to-PCI Bridge Configuration Space Header Format".
const (
	RegPrimaryBus     = 0x18
	RegSecondaryBus   = 0x19
	RegSubordinateBus = 0x1A
)

// Command register bits. PCI 3.0, 6.2.2 "Device Control", Figure 6-2.
const (
	CmdIOSpace      = 1 << 0
	CmdMemorySpace  = 1 << 1
	CmdBusMaster    = 1 << 2
	CmdINTxDisable  = 1 << 10
	StatusINTx      = 1 << 3 // Status register: Interrupt Status. PCI 3.0, 6.2.3, Figure 6-3.
	StatusCapList   = 1 << 4 // Status register: Capabilities List.
	headerTypeMask  = 0x7F   // PCI 3.0, 6.2.1 "Device Identification": Header Type bits 6:0
	headerMultiFunc = 0x80   // bit 7: multi-function device
	headerNormal    = 0x00
	headerBridge    = 0x01
	vendorNone      = 0xFFFF // no function at this address: master abort reads all ones
	maxBus          = 256
	maxDevice       = 32
	maxFunction     = 8
	numBARs         = 6 // type 0 header
	numBridgeBARs   = 2 // type 1 header
)

// Class codes used here. PCI Code and ID Assignment Specification 1.9, 1.7 "Base Class 06h".
const (
	ClassMassStorage = 0x01
	ClassNetwork     = 0x02
	ClassBridge      = 0x06
	SubclassPCIToPCI = 0x04
)

// Address names one function: bus, device (0-31), function (0-7).
type Address struct {
	Bus      uint8
	Device   uint8
	Function uint8
}

func (a Address) String() string {
	return fmt.Sprintf("%02x:%02x.%x", a.Bus, a.Device, a.Function)
}

// Config reads and writes configuration space with 1-, 2- or 4-byte accesses at offsets
// aligned to their size (PCI 3.0, 3.2.2.3.2 and 6.1).
type Config interface {
	Read(a Address, off uint16, size int) uint32
	Write(a Address, off uint16, size int, v uint32)
}

// Errors callers branch on.
var (
	ErrNoCapability = errors.New("pci: capability not present")
	ErrBadBAR       = errors.New("pci: bad BAR")
)

// BARKind says what a base address register decodes.
type BARKind uint8

const (
	BARNone  BARKind = iota // unimplemented
	BARIO                   // I/O space
	BARMem32                // 32-bit memory space
	BARMem64                // 64-bit memory space (uses the next register as its upper half)
)

func (k BARKind) String() string {
	switch k {
	case BARNone:
		return "none"
	case BARIO:
		return "io"
	case BARMem32:
		return "mem32"
	case BARMem64:
		return "mem64"
	}
	return fmt.Sprintf("BARKind(%d)", k)
}

// BAR is one decoded base address register.
type BAR struct {
	Index        int
	Kind         BARKind
	Prefetchable bool
	Addr         uint64
	Size         uint64
}

func (b BAR) String() string {
	if b.Kind == BARNone {
		return fmt.Sprintf("BAR%d: none", b.Index)
	}
	pf := ""
	if b.Prefetchable {
		pf = " prefetchable"
	}
	return fmt.Sprintf("BAR%d: %s %#x+%#x%s", b.Index, b.Kind, b.Addr, b.Size, pf)
}

// Capability is one entry of a function's capability list. PCI 3.0, 6.7 "Capabilities List".
type Capability struct {
	ID     uint8
	Offset uint8
}

// Capability IDs. PCI Code and ID Assignment Specification 1.9, 2 "Capability IDs".
const (
	CapMSI    = 0x05
	CapVendor = 0x09
	CapPCIe   = 0x10
	CapMSIX   = 0x11
)

// Device is one PCI function as found by the scan.
type Device struct {
	Addr            Address
	VendorID        uint16
	DeviceID        uint16
	Class           uint8
	Subclass        uint8
	ProgIF          uint8
	Revision        uint8
	HeaderType      uint8 // bits 6:0 of the Header Type register
	SubsystemVendor uint16
	SubsystemID     uint16
	InterruptLine   uint8 // the ISA IRQ the BIOS routed INTx to; 0xFF: unknown or none
	InterruptPin    uint8 // 1-4 for INTA#-INTD#, 0 for none
	BARs            [numBARs]BAR
	Caps            []Capability
	// CapErr records a malformed capability list (the scan keeps what it read before).
	CapErr error

	cfg Config
}

func (d *Device) String() string {
	return fmt.Sprintf("%v %04x:%04x class %02x.%02x.%02x", d.Addr, d.VendorID, d.DeviceID, d.Class, d.Subclass, d.ProgIF)
}

// Read8, Read16, Read32 and the writes access this function's configuration space.
func (d *Device) Read8(off uint16) uint8       { return uint8(d.cfg.Read(d.Addr, off, 1)) }
func (d *Device) Read16(off uint16) uint16     { return uint16(d.cfg.Read(d.Addr, off, 2)) }
func (d *Device) Read32(off uint16) uint32     { return d.cfg.Read(d.Addr, off, 4) }
func (d *Device) Write8(off uint16, v uint8)   { d.cfg.Write(d.Addr, off, 1, uint32(v)) }
func (d *Device) Write16(off uint16, v uint16) { d.cfg.Write(d.Addr, off, 2, uint32(v)) }
func (d *Device) Write32(off uint16, v uint32) { d.cfg.Write(d.Addr, off, 4, v) }
func (d *Device) setCommand(set, clear uint16) {
	d.Write16(RegCommand, d.Read16(RegCommand)&^clear|set)
}
func (d *Device) Command() uint16               { return d.Read16(RegCommand) }
func (d *Device) EnableMemory()                 { d.setCommand(CmdMemorySpace, 0) }
func (d *Device) EnableIO()                     { d.setCommand(CmdIOSpace, 0) }
func (d *Device) EnableBusMaster()              { d.setCommand(CmdBusMaster, 0) }
func (d *Device) SetINTxDisabled(disabled bool) { d.setINTx(disabled) }

func (d *Device) setINTx(disabled bool) {
	if disabled {
		d.setCommand(CmdINTxDisable, 0)
	} else {
		d.setCommand(0, CmdINTxDisable)
	}
}

// INTxPending reports the Interrupt Status bit: the function asserts its INTx# line.
func (d *Device) INTxPending() bool { return d.Read16(RegStatus)&StatusINTx != 0 }

// FindCap returns the offset of the first capability with id.
func (d *Device) FindCap(id uint8) (uint8, bool) {
	for _, c := range d.Caps {
		if c.ID == id {
			return c.Offset, true
		}
	}
	return 0, false
}

// BAR returns BAR i, or ErrBadBAR if it is out of range or unimplemented.
func (d *Device) BAR(i int) (BAR, error) {
	if i < 0 || i >= numBARs || d.BARs[i].Kind == BARNone {
		return BAR{}, fmt.Errorf("%v: BAR%d: %w", d.Addr, i, ErrBadBAR)
	}
	return d.BARs[i], nil
}
