// Package pci models a PCI host bridge with configuration mechanism #1
// (ports 0xCF8/0xCFC) and the configuration space of the functions behind
// it: bus 0, one function per device slot, type 0 headers, BAR sizing and
// relocation, a capability list and legacy INTx.
//
// A device model creates a Function, adds its capabilities and attaches
// it to a slot of the Bridge; the Bridge is registered on the PIO bus at
// ConfigAddressPort for PortRange ports. When the guest moves a BAR or
// turns decoding on or off, the function calls its owner's Remap callback
// (BusMapper moves the handler on a bus.Bus).
//
// Hot path: configuration accesses are rare (enumeration, interrupt
// masking); they take a mutex and do not allocate except when a BAR moves.
package pci

import (
	"encoding/binary"
	"fmt"
	"sync"
)

// BridgeConfig identifies the host bridge function at 00:00.0.
type BridgeConfig struct {
	// VendorID and DeviceID of the host bridge; zero means
	// DefaultBridgeVendor/DefaultBridgeDevice.
	VendorID, DeviceID uint16
}

// The default host bridge identity: Intel 82441FX (440FX) PMC, a host
// bridge every x86 guest knows. Intel 440FX PCIset datasheet, 4.3
// "PCI Configuration Registers" (VID 8086h, DID 1237h).
const (
	DefaultBridgeVendor = 0x8086
	DefaultBridgeDevice = 0x1237
)

// Bridge is the host bridge: the CONFIG_ADDRESS latch and the device
// slots of bus 0. It implements bus.Device for the ports
// ConfigAddressPort..ConfigAddressPort+PortRange-1.
type Bridge struct {
	mu    sync.Mutex
	addr  uint32
	slots [maxDevices]*Function
	host  *Function
}

// NewBridge returns a bridge with its host bridge function at slot 0.
func NewBridge(cfg BridgeConfig) (*Bridge, error) {
	if cfg.VendorID == 0 && cfg.DeviceID == 0 {
		cfg.VendorID, cfg.DeviceID = DefaultBridgeVendor, DefaultBridgeDevice
	}
	host, err := NewFunction(Config{Header: Header{
		VendorID: cfg.VendorID, DeviceID: cfg.DeviceID,
		Class: ClassBridge, Subclass: SubclassHostBridge,
	}})
	if err != nil {
		return nil, err
	}
	b := &Bridge{host: host}
	b.slots[0] = host
	return b, nil
}

// Attach places f at device slot (1..31) of bus 0, function 0.
func (b *Bridge) Attach(slot int, f *Function) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if slot <= 0 || slot >= maxDevices || f == nil || b.slots[slot] != nil {
		return fmt.Errorf("%w: %d", ErrSlot, slot)
	}
	b.slots[slot] = f
	return nil
}

// Detach removes the function at slot (hot unplug without notification).
func (b *Bridge) Detach(slot int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if slot <= 0 || slot >= maxDevices || b.slots[slot] == nil {
		return fmt.Errorf("%w: %d", ErrSlot, slot)
	}
	b.slots[slot] = nil
	return nil
}

// target returns the function and register the latched address selects
// for a data-port access at port offset off, or nil.
func (b *Bridge) target(off uint64) (*Function, int) {
	a := b.addr
	if a&addrEnable == 0 || (a>>addrBusShift)&0xff != 0 || (a>>addrFuncShift)&7 != 0 {
		return nil, 0
	}
	return b.slots[(a>>addrDevShift)&(maxDevices-1)], int(a&addrRegMask) + int(off-4)
}

// Read implements bus.Device. A dword read of port 0 returns the
// CONFIG_ADDRESS latch; reads of the data ports return the selected
// register, or all ones if no function answers. Other accesses to the
// address port read as all ones, as on a PC where they pass to ISA.
func (b *Bridge) Read(offset uint64, data []byte) error {
	if offset+uint64(len(data)) > PortRange {
		return fmt.Errorf("pci: read of %d bytes at port offset %d", len(data), offset)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case offset == 0 && len(data) == 4:
		binary.LittleEndian.PutUint32(data, b.addr)
		return nil
	case offset >= 4:
		if f, reg := b.target(offset); f != nil {
			f.ReadConfig(reg, data)
			return nil
		}
	}
	for i := range data {
		data[i] = 0xff
	}
	return nil
}

// Write implements bus.Device. A dword write of port 0 sets
// CONFIG_ADDRESS; writes of the data ports go to the selected register
// and are dropped if no function answers.
func (b *Bridge) Write(offset uint64, data []byte) error {
	if offset+uint64(len(data)) > PortRange {
		return fmt.Errorf("pci: write of %d bytes at port offset %d", len(data), offset)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case offset == 0 && len(data) == 4:
		b.addr = binary.LittleEndian.Uint32(data) & addrWritable
	case offset >= 4:
		if f, reg := b.target(offset); f != nil {
			if err := f.WriteConfig(reg, data); err != nil {
				return fmt.Errorf("pci 00:%02x.0 reg %#x: %w", (b.addr>>addrDevShift)&(maxDevices-1), reg, err)
			}
		}
	}
	return nil
}

// BridgeState is the migratable state of the bridge: the CONFIG_ADDRESS
// latch and the host bridge function. Attached functions are saved by
// their owners.
type BridgeState struct {
	Address uint32
	Host    State
}

// Save returns the bridge's state.
func (b *Bridge) Save() BridgeState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return BridgeState{Address: b.addr, Host: b.host.Save()}
}

// Restore loads a state from Save.
func (b *Bridge) Restore(s BridgeState) error {
	if s.Address&^addrWritable != 0 {
		return fmt.Errorf("%w: CONFIG_ADDRESS %#x has reserved bits", ErrState, s.Address)
	}
	if err := b.host.Restore(s.Host); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.addr = s.Address
	return nil
}
