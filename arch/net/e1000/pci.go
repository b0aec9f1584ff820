package e1000

import (
	"fmt"
	"time"

	"github.com/godwit-hv/godwit/arch/pci"
	"github.com/godwit-hv/godwit/arch/ring0"
)

// model describes one supported controller.
type model struct {
	name    string
	hasEERD bool
}

// models are the 8254x parts this driver knows (8254x SDM 1, "Supported Devices", and 5, "Device ID"): those whose
// registers used here are the same; the 82541/82547 differ in EERD's layout and are left out.
var models = map[uint16]model{
	Device82540EM:   {"82540EM", true},
	Device82545EMCu: {"82545EM", true},
	Device82544GCCu: {"82544GC", false},
}

// Match reports whether d is a controller this driver drives.
func Match(d *pci.Device) bool {
	_, ok := models[d.DeviceID]
	return d.VendorID == VendorIntel && ok
}

// Open starts the driver on the PCI function d: BAR0's registers, bus mastering, the INTx line
// (these parts have no MSI that QEMU offers, and the 82540EM has none at all), DMA memory from
// the ring-0 layer. logf reports events (nil: standard output).
func Open(d *pci.Device, logf func(string, ...any)) (*NIC, error) {
	if !Match(d) {
		return nil, fmt.Errorf("e1000: %v is not a supported 8254x", d)
	}
	m := models[d.DeviceID]
	bar, err := d.BAR(0)
	if err != nil {
		return nil, fmt.Errorf("e1000 %v: %w", d.Addr, err)
	}
	if bar.Kind != pci.BARMem32 && bar.Kind != pci.BARMem64 {
		return nil, fmt.Errorf("e1000 %v: BAR0 is %v, want memory: %w", d.Addr, bar.Kind, pci.ErrBadBAR)
	}
	if bar.Size < RegsSize {
		return nil, fmt.Errorf("e1000 %v: BAR0 of %#x bytes, want %#x: %w", d.Addr, bar.Size, RegsSize, pci.ErrBadBAR)
	}
	regs, err := pci.MapBAR(bar)
	if err != nil {
		return nil, fmt.Errorf("e1000 %v: %w", d.Addr, err)
	}
	d.EnableMemory()
	d.EnableBusMaster()
	vec, route, err := d.INTxVector()
	if err != nil {
		return nil, fmt.Errorf("e1000 %v: interrupt: %w", d.Addr, err)
	}
	n, err := New(Config{
		Regs: regs, DMA: hostDMA{}, IRQ: hostIRQ(vec),
		Location: d.Addr.String(), Model: m.name, UseEERD: m.hasEERD, Logf: logf,
	})
	if err != nil {
		return nil, err
	}
	n.irqDesc = fmt.Sprintf("INTx %v vector %#x", route, vec)
	return n, nil
}

// hostDMA is whole zeroed pages from the ring-0 frame allocator, identity-mapped.
type hostDMA struct{}

const pageSize = 4096

func (hostDMA) Alloc(size int) ([]byte, uint64, error) {
	if size <= 0 {
		return nil, 0, fmt.Errorf("e1000: allocating %d bytes", size)
	}
	pages := (size + pageSize - 1) / pageSize
	pa, err := ring0.AllocPages(pages)
	if err != nil {
		return nil, 0, fmt.Errorf("e1000: DMA memory: %w", err)
	}
	return ring0.PageBytes(pa, pages*pageSize)[:size], pa, nil
}

func (hostDMA) Free(buf []byte, phys uint64) {
	ring0.FreePages(phys, (cap(buf)+pageSize-1)/pageSize)
}

// hostIRQ is a ring-0 driver vector.
type hostIRQ uint8

func (v hostIRQ) Count() uint64 { return ring0.IRQCount(uint8(v)) }
func (v hostIRQ) Wait(seen uint64, timeout time.Duration) (uint64, error) {
	return ring0.WaitIRQ(uint8(v), seen, timeout)
}
