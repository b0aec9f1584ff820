package pci

import "fmt"

// Base address register fields. PCI 3.0, 6.2.5.1 "Address Maps", Figures 6-5 and 6-6.
const (
	barIOSpace      = 1 << 0
	barMemTypeMask  = 0x6
	barMemType32    = 0x0
	barMemType64    = 0x4
	barPrefetchable = 1 << 3
	barIOAddrMask   = ^uint32(0x3)
	barMemAddrMask  = ^uint32(0xF)
	capPtrMask      = 0xFC // PCI 3.0, 6.7: the bottom two bits of a capability pointer are reserved
	capMaxEntries   = 48   // (256 - 64) / 4: more entries than fit means a loop
	capHeaderStart  = 0x40 // capabilities live after the 64-byte header
)

// Enumerate scans the hierarchy below bus 0: every device of a bus, functions 1-7 of
// multi-function devices, and the secondary bus of every PCI-to-PCI bridge. BARs are sized by
// the all-ones probe with decoding turned off for the moment. Devices come back in scan order
// (bus, device, function as found depth-first). A bridge that points to a bus already scanned
// is an error.
func Enumerate(cfg Config) ([]*Device, error) {
	var e enumerator
	e.cfg = cfg
	if err := e.scanBus(0); err != nil {
		return e.devs, err
	}
	return e.devs, nil
}

type enumerator struct {
	cfg     Config
	devs    []*Device
	visited [maxBus]bool
}

func (e *enumerator) scanBus(bus uint8) error {
	if e.visited[bus] {
		return fmt.Errorf("pci: bus %02x reached twice (bridge bus numbers overlap)", bus)
	}
	e.visited[bus] = true
	for dev := uint8(0); dev < maxDevice; dev++ {
		a := Address{Bus: bus, Device: dev}
		if uint16(e.cfg.Read(a, RegVendorID, 2)) == vendorNone {
			continue
		}
		nfunc := uint8(1)
		if uint8(e.cfg.Read(a, RegHeaderType, 1))&headerMultiFunc != 0 {
			nfunc = maxFunction
		}
		for fn := uint8(0); fn < nfunc; fn++ {
			a.Function = fn
			if uint16(e.cfg.Read(a, RegVendorID, 2)) == vendorNone {
				continue
			}
			d := probe(e.cfg, a)
			e.devs = append(e.devs, d)
			if d.HeaderType == headerBridge && d.Class == ClassBridge && d.Subclass == SubclassPCIToPCI {
				sec := d.Read8(RegSecondaryBus)
				if sec != 0 && sec != bus {
					if err := e.scanBus(sec); err != nil {
						return fmt.Errorf("behind bridge %v: %w", a, err)
					}
				}
			}
		}
	}
	return nil
}

// probe reads one function's identity, BARs, interrupt routing and capabilities.
func probe(cfg Config, a Address) *Device {
	d := &Device{Addr: a, cfg: cfg}
	d.VendorID = d.Read16(RegVendorID)
	d.DeviceID = d.Read16(RegDeviceID)
	d.Revision = d.Read8(RegRevisionID)
	d.ProgIF = d.Read8(RegProgIF)
	d.Subclass = d.Read8(RegSubclass)
	d.Class = d.Read8(RegClass)
	d.HeaderType = d.Read8(RegHeaderType) & headerTypeMask
	d.InterruptLine = d.Read8(RegInterruptLine)
	d.InterruptPin = d.Read8(RegInterruptPin)
	for i := range d.BARs {
		d.BARs[i].Index = i
	}
	switch d.HeaderType {
	case headerNormal:
		d.SubsystemVendor = d.Read16(RegSubsystemVendor)
		d.SubsystemID = d.Read16(RegSubsystemID)
		d.sizeBARs(numBARs)
	case headerBridge:
		d.sizeBARs(numBridgeBARs)
	}
	if d.HeaderType <= headerBridge {
		d.Caps, d.CapErr = readCaps(d)
	}
	return d
}

// sizeBARs decodes the first n BARs. PCI 3.0, 6.2.5.1: "write a value of all 1's to the
// register, then read it back"; decoding is disabled meanwhile (Implementation Note "Sizing a
// 32-bit Base Address Register Example") so the probe address never decodes.
func (d *Device) sizeBARs(n int) {
	cmd := d.Read16(RegCommand)
	d.Write16(RegCommand, cmd&^(CmdIOSpace|CmdMemorySpace))
	defer d.Write16(RegCommand, cmd)
	for i := 0; i < n; i++ {
		off := uint16(RegBAR0 + 4*i)
		orig := d.Read32(off)
		d.Write32(off, 0xFFFFFFFF)
		probe := d.Read32(off)
		d.Write32(off, orig)
		b := &d.BARs[i]
		if probe == 0 {
			continue // unimplemented: reads as zero
		}
		if orig&barIOSpace != 0 {
			mask := probe & barIOAddrMask
			if mask&0xFFFF0000 == 0 {
				mask |= 0xFFFF0000 // I/O BARs may implement only 16 address bits
			}
			b.Kind, b.Addr, b.Size = BARIO, uint64(orig&barIOAddrMask), uint64(^mask+1)
			continue
		}
		b.Prefetchable = orig&barPrefetchable != 0
		switch orig & barMemTypeMask {
		case barMemType64:
			if i+1 >= n {
				b.Kind = BARNone // a 64-bit BAR in the last slot is malformed
				continue
			}
			hiOff := off + 4
			hiOrig := d.Read32(hiOff)
			d.Write32(hiOff, 0xFFFFFFFF)
			hiProbe := d.Read32(hiOff)
			d.Write32(hiOff, hiOrig)
			mask := uint64(hiProbe)<<32 | uint64(probe&barMemAddrMask)
			b.Kind, b.Addr, b.Size = BARMem64, uint64(hiOrig)<<32|uint64(orig&barMemAddrMask), ^mask+1
			i++ // the upper half
			d.BARs[i].Kind = BARNone
		default:
			mask := probe & barMemAddrMask
			b.Kind, b.Addr, b.Size = BARMem32, uint64(orig&barMemAddrMask), uint64(^mask+1)
		}
		if b.Size == 0 {
			b.Kind = BARNone
		}
	}
}

// readCaps walks the capability list. PCI 3.0, 6.7 "Capabilities List".
func readCaps(d *Device) ([]Capability, error) {
	if d.Read16(RegStatus)&StatusCapList == 0 {
		return nil, nil
	}
	var caps []Capability
	var seen [256]bool
	ptr := d.Read8(RegCapPtr) & capPtrMask
	for ptr != 0 {
		if ptr < capHeaderStart {
			return caps, fmt.Errorf("pci %v: capability pointer %#x points into the header", d.Addr, ptr)
		}
		if seen[ptr] || len(caps) == capMaxEntries {
			return caps, fmt.Errorf("pci %v: capability list loops at %#x", d.Addr, ptr)
		}
		seen[ptr] = true
		caps = append(caps, Capability{ID: d.Read8(uint16(ptr)), Offset: ptr})
		ptr = d.Read8(uint16(ptr)+1) & capPtrMask
	}
	return caps, nil
}
