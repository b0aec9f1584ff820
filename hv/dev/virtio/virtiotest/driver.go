// Package virtiotest drives virtio PCI devices from the guest's side in
// user-space tests: it enumerates the device through configuration
// mechanism #1, sizes and programs its BAR, walks the virtio
// capabilities, negotiates features and builds split virtqueues in guest
// memory, all through bus accesses as a guest driver would.
package virtiotest

import (
	"encoding/binary"
	"testing"

	"github.com/godwit-hv/godwit/hv"
	"github.com/godwit-hv/godwit/hv/bus"
	"github.com/godwit-hv/godwit/hv/dev/pci"
	"github.com/godwit-hv/godwit/hv/dev/virtio"
)

// Driver is a minimal guest driver for one virtio PCI function.
type Driver struct {
	T    testing.TB
	Bus  *bus.Bus
	Mem  *hv.Memory
	Slot int

	BARAddr, BARSize                uint64
	Common, ISR, Device, NotifyBase uint64 // guest-physical addresses
	NotifyMult                      uint32
	next                            uint64 // bump allocator in guest RAM
}

// NewDriver returns a driver for the function at slot on a bridge already
// registered on b; allocations in guest memory start at allocBase.
func NewDriver(t testing.TB, b *bus.Bus, mem *hv.Memory, slot int, allocBase uint64) *Driver {
	return &Driver{T: t, Bus: b, Mem: mem, Slot: slot, next: allocBase}
}

func (d *Driver) selectReg(reg int) {
	var a [4]byte
	binary.LittleEndian.PutUint32(a[:], 1<<31|uint32(d.Slot)<<11|uint32(reg&0xfc))
	if err := d.Bus.Write(bus.PIO, pci.ConfigAddressPort, a[:]); err != nil {
		d.T.Fatalf("write CONFIG_ADDRESS: %v", err)
	}
}

// CfgRead reads size bytes of configuration register reg.
func (d *Driver) CfgRead(reg, size int) uint32 {
	d.T.Helper()
	d.selectReg(reg)
	var v [4]byte
	if err := d.Bus.Read(bus.PIO, pci.ConfigDataPort+uint64(reg&3), v[:size]); err != nil {
		d.T.Fatalf("read config %#x: %v", reg, err)
	}
	return binary.LittleEndian.Uint32(v[:])
}

// CfgWrite writes size bytes of configuration register reg.
func (d *Driver) CfgWrite(reg, size int, val uint32) error {
	d.selectReg(reg)
	var v [4]byte
	binary.LittleEndian.PutUint32(v[:], val)
	return d.Bus.Write(bus.PIO, pci.ConfigDataPort+uint64(reg&3), v[:size])
}

// Probe sizes BAR 0, places it at barAddr, enables memory decoding and
// bus mastering, and finds the virtio structures from the capabilities.
func (d *Driver) Probe(barAddr uint64) {
	d.T.Helper()
	d.CfgWrite(pci.Command, 2, 0)
	d.CfgWrite(pci.BAR0, 4, 0xffffffff)
	mask := d.CfgRead(pci.BAR0, 4) &^ 0xf
	d.BARSize = uint64(^mask + 1)
	d.BARAddr = barAddr
	d.CfgWrite(pci.BAR0, 4, uint32(barAddr))
	if err := d.CfgWrite(pci.Command, 2, pci.CommandMemorySpace|pci.CommandBusMaster); err != nil {
		d.T.Fatalf("enable decoding: %v", err)
	}
	if d.CfgRead(pci.Status, 2)&pci.StatusCapabilities == 0 {
		d.T.Fatalf("no capability list")
	}
	for p, n := int(d.CfgRead(pci.CapabilitiesPtr, 1)), 0; p != 0 && n < 48; p, n = int(d.CfgRead(p+1, 1)), n+1 {
		if d.CfgRead(p, 1) != pci.CapIDVendor {
			continue
		}
		typ, bar := d.CfgRead(p+3, 1), d.CfgRead(p+4, 1)
		off := uint64(d.CfgRead(p+8, 4))
		if bar != 0 {
			d.T.Fatalf("capability %d in BAR %d", typ, bar)
		}
		switch typ {
		case virtio.CapCommonCfg:
			d.Common = barAddr + off
		case virtio.CapISRCfg:
			d.ISR = barAddr + off
		case virtio.CapDeviceCfg:
			d.Device = barAddr + off
		case virtio.CapNotifyCfg:
			d.NotifyBase = barAddr + off
			d.NotifyMult = d.CfgRead(p+16, 4)
		}
	}
	if d.Common == 0 || d.ISR == 0 || d.NotifyBase == 0 {
		d.T.Fatalf("missing virtio capabilities: common %#x isr %#x notify %#x", d.Common, d.ISR, d.NotifyBase)
	}
}

// Read and Write access MMIO at addr with the width of len(data).
func (d *Driver) Read(addr uint64, size int) uint64 {
	d.T.Helper()
	var v [8]byte
	if err := d.Bus.Read(bus.MMIO, addr, v[:size]); err != nil {
		d.T.Fatalf("read %#x: %v", addr, err)
	}
	return binary.LittleEndian.Uint64(v[:])
}

func (d *Driver) Write(addr uint64, size int, val uint64) {
	d.T.Helper()
	var v [8]byte
	binary.LittleEndian.PutUint64(v[:], val)
	if err := d.Bus.Write(bus.MMIO, addr, v[:size]); err != nil {
		d.T.Fatalf("write %#x: %v", addr, err)
	}
}

// Status reads device_status.
func (d *Driver) Status() uint8 { return uint8(d.Read(d.Common+virtio.CommonDeviceStatus, 1)) }

// SetStatus writes device_status.
func (d *Driver) SetStatus(s uint8) { d.Write(d.Common+virtio.CommonDeviceStatus, 1, uint64(s)) }

// DeviceFeatures reads the 64 offered feature bits.
func (d *Driver) DeviceFeatures() uint64 {
	var f uint64
	for sel := uint64(0); sel < 2; sel++ {
		d.Write(d.Common+virtio.CommonDeviceFeatureSelect, 4, sel)
		f |= d.Read(d.Common+virtio.CommonDeviceFeature, 4) << (32 * sel)
	}
	return f
}

// Negotiate resets the device, acknowledges it, offers want & the
// device's features, sets FEATURES_OK and reports whether the device kept it.
func (d *Driver) Negotiate(want uint64) (uint64, bool) {
	d.SetStatus(0)
	d.SetStatus(virtio.StatusAcknowledge)
	d.SetStatus(virtio.StatusAcknowledge | virtio.StatusDriver)
	f := want & d.DeviceFeatures()
	d.WriteFeatures(f)
	d.SetStatus(virtio.StatusAcknowledge | virtio.StatusDriver | virtio.StatusFeaturesOK)
	return f, d.Status()&virtio.StatusFeaturesOK != 0
}

// WriteFeatures writes the driver feature bits.
func (d *Driver) WriteFeatures(f uint64) {
	for sel := uint64(0); sel < 2; sel++ {
		d.Write(d.Common+virtio.CommonDriverFeatureSelect, 4, sel)
		d.Write(d.Common+virtio.CommonDriverFeature, 4, uint64(uint32(f>>(32*sel))))
	}
}

// DriverOK sets DRIVER_OK.
func (d *Driver) DriverOK() {
	d.SetStatus(d.Status() | virtio.StatusDriverOK)
}

// Alloc returns n bytes of zeroed guest memory aligned to align.
func (d *Driver) Alloc(n, align uint64) uint64 {
	d.T.Helper()
	a := (d.next + align - 1) &^ (align - 1)
	if a+n > d.Mem.Size() {
		d.T.Fatalf("guest memory exhausted")
	}
	d.next = a + n
	clear(d.Mem.Host[a : a+n])
	return a
}

// VQ is the driver's side of a split virtqueue.
type VQ struct {
	d                  *Driver
	Index              int
	Size               uint16
	Desc, Avail, Used  uint64
	nextDesc           uint16
	AvailIdx, LastUsed uint16
}

// SetupQueue allocates queue i with size entries, programs it and
// enables it.
func (d *Driver) SetupQueue(i int, size uint16) *VQ {
	d.T.Helper()
	n := uint64(size)
	q := &VQ{d: d, Index: i, Size: size,
		Desc:  d.Alloc(16*n, 16),
		Avail: d.Alloc(6+2*n, 2),
		Used:  d.Alloc(6+8*n, 4),
	}
	c := d.Common
	d.Write(c+virtio.CommonQueueSelect, 2, uint64(i))
	if max := d.Read(c+virtio.CommonQueueSize, 2); uint64(size) > max {
		d.T.Fatalf("queue %d: size %d over max %d", i, size, max)
	}
	d.Write(c+virtio.CommonQueueSize, 2, n)
	// 64-bit fields as two 32-bit halves, as Linux writes them.
	for _, f := range []struct{ off, v uint64 }{
		{virtio.CommonQueueDesc, q.Desc}, {virtio.CommonQueueDriver, q.Avail}, {virtio.CommonQueueDevice, q.Used},
	} {
		d.Write(c+f.off, 4, f.v&0xffffffff)
		d.Write(c+f.off+4, 4, f.v>>32)
	}
	d.Write(c+virtio.CommonQueueEnable, 2, 1)
	return q
}

// Seg is one buffer of a request.
type Seg struct {
	Addr  uint64
	Len   uint32
	Write bool // device-writable
}

// WriteDesc writes descriptor i.
func (q *VQ) WriteDesc(table uint64, i uint16, addr uint64, length uint32, flags, next uint16) {
	b := q.d.Mem.Host[table+16*uint64(i):]
	binary.LittleEndian.PutUint64(b[0:], addr)
	binary.LittleEndian.PutUint32(b[8:], length)
	binary.LittleEndian.PutUint16(b[12:], flags)
	binary.LittleEndian.PutUint16(b[14:], next)
}

// Add places segs as a chain of direct descriptors and publishes its
// head in the available ring; it returns the head.
func (q *VQ) Add(segs ...Seg) uint16 {
	head := q.nextDesc % q.Size
	for j, s := range segs {
		i := (q.nextDesc + uint16(j)) % q.Size
		var flags uint16
		if s.Write {
			flags |= virtio.DescFWrite
		}
		if j < len(segs)-1 {
			flags |= virtio.DescFNext
		}
		q.WriteDesc(q.Desc, i, s.Addr, s.Len, flags, (i+1)%q.Size)
	}
	q.nextDesc += uint16(len(segs))
	q.Publish(head)
	return head
}

// AddIndirect builds segs as an indirect table and publishes one
// descriptor pointing at it.
func (q *VQ) AddIndirect(segs ...Seg) uint16 {
	table := q.d.Alloc(16*uint64(len(segs)), 16)
	for j, s := range segs {
		var flags uint16
		if s.Write {
			flags |= virtio.DescFWrite
		}
		if j < len(segs)-1 {
			flags |= virtio.DescFNext
		}
		q.WriteDesc(table, uint16(j), s.Addr, s.Len, flags, uint16(j+1))
	}
	head := q.nextDesc % q.Size
	q.nextDesc++
	q.WriteDesc(q.Desc, head, table, uint32(16*len(segs)), virtio.DescFIndirect, 0)
	q.Publish(head)
	return head
}

// Publish adds head to the available ring and moves its index.
func (q *VQ) Publish(head uint16) {
	m := q.d.Mem.Host
	binary.LittleEndian.PutUint16(m[q.Avail+4+2*uint64(q.AvailIdx%q.Size):], head)
	q.AvailIdx++
	binary.LittleEndian.PutUint16(m[q.Avail+2:], q.AvailIdx)
}

// Kick notifies the device.
func (q *VQ) Kick() {
	q.d.Write(q.d.NotifyBase+uint64(q.Index)*uint64(q.d.NotifyMult), 2, uint64(q.Index))
}

// PopUsed returns the next used element, if the device added one.
func (q *VQ) PopUsed() (id, length uint32, ok bool) {
	m := q.d.Mem.Host
	if binary.LittleEndian.Uint16(m[q.Used+2:]) == q.LastUsed {
		return 0, 0, false
	}
	e := m[q.Used+4+8*uint64(q.LastUsed%q.Size):]
	q.LastUsed++
	return binary.LittleEndian.Uint32(e), binary.LittleEndian.Uint32(e[4:]), true
}

// SetUsedEvent writes used_event (with VIRTIO_F_EVENT_IDX).
func (q *VQ) SetUsedEvent(v uint16) {
	binary.LittleEndian.PutUint16(q.d.Mem.Host[q.Avail+4+2*uint64(q.Size):], v)
}

// SetAvailFlags writes the available ring's flags.
func (q *VQ) SetAvailFlags(v uint16) {
	binary.LittleEndian.PutUint16(q.d.Mem.Host[q.Avail:], v)
}

// AvailEvent reads avail_event from the used ring.
func (q *VQ) AvailEvent() uint16 {
	return binary.LittleEndian.Uint16(q.d.Mem.Host[q.Used+4+8*uint64(q.Size):])
}
