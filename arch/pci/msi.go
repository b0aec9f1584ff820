package pci

import (
	"fmt"
)

// MSI capability. PCI 3.0, 6.8.1 "MSI Capability Structure", 6.8.1.3 "Message Control for
// MSI": enable bit 0, Multiple Message Enable bits 6:4, 64-bit address capable bit 7,
// per-vector masking capable bit 8.
const (
	msiControl       = 0x02
	msiAddrLo        = 0x04
	msiAddrHi        = 0x08 // 64-bit form only
	msiData32        = 0x08 // data in the 32-bit form
	msiData64        = 0x0C // data in the 64-bit form
	msiCtlEnable     = 1 << 0
	msiCtlMMEMask    = 0x7 << 4
	msiCtl64Bit      = 1 << 7
	msiCtlPerVecMask = 1 << 8
)

// MSI-X capability and table. PCI 3.0, 6.8.2 "MSI-X Capability and Table Structure": Message
// Control (6.8.2.3) table size-1 in bits 10:0, Function Mask bit 14, MSI-X Enable bit 15;
// Table Offset/BIR (6.8.2.4) with the BIR in bits 2:0; PBA Offset/BIR (6.8.2.5); table entries
// of 16 bytes: address low, address high, data, vector control with Mask Bit 0 (6.8.2.6-9).
const (
	msixControl       = 0x02
	msixTable         = 0x04
	msixPBA           = 0x08
	msixCtlSizeMask   = 0x7FF
	msixCtlFuncMask   = 1 << 14
	msixCtlEnable     = 1 << 15
	msixBIRMask       = 0x7
	msixEntrySize     = 16
	msixEntryAddrLo   = 0x0
	msixEntryAddrHi   = 0x4
	msixEntryData     = 0x8
	msixEntryVecCtl   = 0xC
	msixVecCtlMasked  = 1 << 0
	msiAddressHiLimit = 1 << 32
)

// EnableMSI programs the function's MSI capability with one message (Multiple Message Enable
// 0), enables it and disables INTx (PCI 3.0, 6.8.1: a function with MSI enabled does not use
// INTx; the Interrupt Disable bit makes that explicit).
func (d *Device) EnableMSI(addr uint64, data uint32) error {
	off, ok := d.FindCap(CapMSI)
	if !ok {
		return fmt.Errorf("pci %v: MSI: %w", d.Addr, ErrNoCapability)
	}
	o := uint16(off)
	ctl := d.Read16(o + msiControl)
	if addr >= msiAddressHiLimit && ctl&msiCtl64Bit == 0 {
		return fmt.Errorf("pci %v: MSI address %#x needs the 64-bit form the function lacks", d.Addr, addr)
	}
	d.Write16(o+msiControl, ctl&^(msiCtlEnable|msiCtlMMEMask))
	d.Write32(o+msiAddrLo, uint32(addr))
	if ctl&msiCtl64Bit != 0 {
		d.Write32(o+msiAddrHi, uint32(addr>>32))
		d.Write16(o+msiData64, uint16(data))
	} else {
		d.Write16(o+msiData32, uint16(data))
	}
	d.setINTx(true)
	d.Write16(o+msiControl, ctl&^msiCtlMMEMask|msiCtlEnable)
	return nil
}

// DisableMSI turns MSI off.
func (d *Device) DisableMSI() {
	if off, ok := d.FindCap(CapMSI); ok {
		d.Write16(uint16(off)+msiControl, d.Read16(uint16(off)+msiControl)&^msiCtlEnable)
	}
}

// MSIX is a function's MSI-X capability with its table mapped.
type MSIX struct {
	dev   *Device
	cap   uint16
	size  int
	table Region
	// TableBAR and TableOffset locate the table, for reports.
	TableBAR    int
	TableOffset uint64
}

// MSIXInfo reads where the MSI-X table lives without mapping it: the number of entries, the
// BAR and the offset in it.
func (d *Device) MSIXInfo() (entries, bar int, offset uint64, err error) {
	off, ok := d.FindCap(CapMSIX)
	if !ok {
		return 0, 0, 0, fmt.Errorf("pci %v: MSI-X: %w", d.Addr, ErrNoCapability)
	}
	ctl := d.Read16(uint16(off) + msixControl)
	t := d.Read32(uint16(off) + msixTable)
	return int(ctl&msixCtlSizeMask) + 1, int(t & msixBIRMask), uint64(t &^ msixBIRMask), nil
}

// OpenMSIX maps the function's MSI-X table with mapBAR (MapBAR in the kernel) and masks every
// entry. The capability is left disabled until Enable.
func (d *Device) OpenMSIX(mapBAR func(BAR) (Region, error)) (*MSIX, error) {
	n, bir, toff, err := d.MSIXInfo()
	if err != nil {
		return nil, err
	}
	bar, err := d.BAR(bir)
	if err != nil {
		return nil, fmt.Errorf("pci %v: MSI-X table BIR %d: %w", d.Addr, bir, err)
	}
	if bar.Kind == BARIO {
		return nil, fmt.Errorf("pci %v: MSI-X table in I/O BAR%d: %w", d.Addr, bir, ErrBadBAR)
	}
	r, err := mapBAR(bar)
	if err != nil {
		return nil, fmt.Errorf("pci %v: MSI-X table: %w", d.Addr, err)
	}
	t, err := Sub(r, toff, uint64(n)*msixEntrySize)
	if err != nil {
		return nil, fmt.Errorf("pci %v: MSI-X table of %d entries at BAR%d+%#x: %w", d.Addr, n, bir, toff, err)
	}
	off, _ := d.FindCap(CapMSIX)
	m := &MSIX{dev: d, cap: uint16(off), size: n, table: t, TableBAR: bir, TableOffset: toff}
	for i := 0; i < n; i++ {
		m.Mask(i, true)
	}
	return m, nil
}

// Entries is the table size.
func (m *MSIX) Entries() int { return m.size }

// Set programs entry i with the message address and data and unmasks it.
func (m *MSIX) Set(i int, addr uint64, data uint32) error {
	if i < 0 || i >= m.size {
		return fmt.Errorf("pci %v: MSI-X entry %d of %d", m.dev.Addr, i, m.size)
	}
	e := uint64(i) * msixEntrySize
	m.Mask(i, true)
	m.table.Write32(e+msixEntryAddrLo, uint32(addr))
	m.table.Write32(e+msixEntryAddrHi, uint32(addr>>32))
	m.table.Write32(e+msixEntryData, data)
	m.Mask(i, false)
	return nil
}

// Mask sets or clears entry i's Mask Bit.
func (m *MSIX) Mask(i int, masked bool) {
	if i < 0 || i >= m.size {
		return
	}
	e := uint64(i)*msixEntrySize + msixEntryVecCtl
	v := m.table.Read32(e)
	if masked {
		v |= msixVecCtlMasked
	} else {
		v &^= msixVecCtlMasked
	}
	m.table.Write32(e, v)
}

// Enable turns MSI-X on with the function unmasked, and disables INTx.
func (m *MSIX) Enable() {
	d := m.dev
	d.setINTx(true)
	ctl := d.Read16(m.cap + msixControl)
	d.Write16(m.cap+msixControl, ctl&^msixCtlFuncMask|msixCtlEnable)
}

// Disable turns MSI-X off.
func (m *MSIX) Disable() {
	d := m.dev
	d.Write16(m.cap+msixControl, d.Read16(m.cap+msixControl)&^msixCtlEnable)
}
