package pci

import (
	"fmt"
	"sync"

	"github.com/godwit-hv/godwit/arch/ring0"
)

var host struct {
	sync.Once
	devs []*Device
	err  error
}

// Devices returns the host's PCI functions, enumerated through Mech1 on first use. BAR sizing
// disables decoding for a moment, so this enumeration is the only one: every driver takes its
// devices from here.
func Devices() ([]*Device, error) {
	host.Do(func() {
		if !ring0.BareMetal() {
			host.err = fmt.Errorf("pci: %w", ring0.ErrNotBareMetal)
			return
		}
		host.devs, host.err = Enumerate(Mech1{})
	})
	return host.devs, host.err
}

// Filter returns the devices for which match is true, in scan order.
func Filter(devs []*Device, match func(*Device) bool) []*Device {
	var out []*Device
	for _, d := range devs {
		if match(d) {
			out = append(out, d)
		}
	}
	return out
}

// Legacy INTx: the Interrupt Line register holds the ISA IRQ the BIOS routed the pin to
// (PCI 3.0, 6.2.4 "Miscellaneous Registers"); 0xFF means unknown or not connected.
const intLineUnknown = 0xFF

// INTxRoute returns how the function's INTx pin reaches the I/O APIC (ring0.PCIRoute).
func (d *Device) INTxRoute() (ring0.Route, error) {
	if d.InterruptPin == 0 {
		return ring0.Route{}, fmt.Errorf("pci %v: no INTx pin", d.Addr)
	}
	if d.InterruptLine == intLineUnknown || d.InterruptLine >= 16 {
		return ring0.Route{}, fmt.Errorf("pci %v: INT%c# not routed by the BIOS (Interrupt Line %#x)",
			d.Addr, 'A'+d.InterruptPin-1, d.InterruptLine)
	}
	return ring0.PCIRoute(d.InterruptLine)
}

// INTxVector routes the function's INTx pin (shared with whatever else uses that line) and
// returns the vector to wait on, with INTx enabled in the command register.
func (d *Device) INTxVector() (uint8, ring0.Route, error) {
	r, err := d.INTxRoute()
	if err != nil {
		return 0, r, err
	}
	vec, err := ring0.SharedVector(r)
	if err != nil {
		return 0, r, fmt.Errorf("pci %v: INTx: %w", d.Addr, err)
	}
	d.setINTx(false)
	return vec, r, nil
}
