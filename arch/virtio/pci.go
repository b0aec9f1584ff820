package virtio

import (
	"fmt"
	"time"

	"github.com/godwit-hv/godwit/arch/pci"
	"github.com/godwit-hv/godwit/arch/ring0"
)

// Virtio PCI capabilities. virtio 1.1, 4.1.4 "Virtio Structure PCI Capabilities": a
// vendor-specific capability with cap_len (2), cfg_type (3), bar (4), offset (8, le32) and
// length (12, le32); the notification capability adds notify_off_multiplier (16, le32).
const (
	capLen                = 2
	capCfgType            = 3
	capBar                = 4
	capOffset             = 8
	capLength             = 12
	capNotifyMultiplier   = 16
	capMinLen             = 16
	capNotifyMinLen       = 20
	cfgTypeCommon         = 1 // VIRTIO_PCI_CAP_COMMON_CFG
	cfgTypeNotify         = 2 // VIRTIO_PCI_CAP_NOTIFY_CFG
	cfgTypeISR            = 3 // VIRTIO_PCI_CAP_ISR_CFG
	cfgTypeDevice         = 4 // VIRTIO_PCI_CAP_DEVICE_CFG
	maxBARIndex           = 5
	commonCfgMinLen       = 0x38
	isrQueue              = 1 << 0 // 4.1.4.5 "ISR status capability"
	isrConfig             = 1 << 1
	noVector              = 0xFFFF // VIRTIO_MSI_NO_VECTOR, 4.1.5.1.2
	resetTimeout          = time.Second
	resetPoll             = time.Millisecond
	maxMSIXVectorsPerDev  = 64
	defaultMaxQueueLength = 256
)

// Common configuration structure. virtio 1.1, 4.1.4.3 "Common configuration structure layout".
const (
	ccDeviceFeatureSelect = 0x00
	ccDeviceFeature       = 0x04
	ccDriverFeatureSelect = 0x08
	ccDriverFeature       = 0x0C
	ccMSIXConfig          = 0x10
	ccNumQueues           = 0x12
	ccDeviceStatus        = 0x14
	ccConfigGeneration    = 0x15
	ccQueueSelect         = 0x16
	ccQueueSize           = 0x18
	ccQueueMSIXVector     = 0x1A
	ccQueueEnable         = 0x1C
	ccQueueNotifyOff      = 0x1E
	ccQueueDesc           = 0x20
	ccQueueDriver         = 0x28
	ccQueueDevice         = 0x30
)

// DeviceType returns the virtio device type of a PCI function (4.1.2 "PCI Device Discovery").
func DeviceType(d *pci.Device) (int, bool) {
	if d.VendorID != PCIVendor {
		return 0, false
	}
	switch {
	case d.DeviceID >= pciModernBase && d.DeviceID <= pciModernLast:
		return int(d.DeviceID - pciModernBase), true
	case d.DeviceID >= pciTransitionalFirst && d.DeviceID <= pciTransitionalLast:
		return int(d.SubsystemID), true
	}
	return 0, false
}

// Device is the driver's handle on one virtio PCI function.
type Device struct {
	PCI  *pci.Device
	Type int

	common, notify, isr, devcfg pci.Region
	commonAddr                  uint64
	notifyMul                   uint32
	mem                         Memory
	features                    uint64

	msix     *pci.MSIX
	cfgVec   uint8
	queueVec []uint8  // ring0 vector per queue (MSI-X), or all the INTx vector
	queueEnt []uint16 // MSI-X table entry per queue
	intx     bool
	route    ring0.Route
	sleep    func(time.Duration)
}

// Options are what Open needs from its environment; the zero value means the kernel's.
type Options struct {
	Memory Memory                            // DMA memory; default HostMemory
	MapBAR func(pci.BAR) (pci.Region, error) // default pci.MapBAR
	Sleep  func(time.Duration)               // default time.Sleep
}

// Open finds the modern virtio structures of d, enables its decoding and bus mastering,
// resets it and sets ACKNOWLEDGE and DRIVER (3.1.1 "Driver Requirements: Device
// Initialization", steps 1-3). Feature negotiation, interrupts and queues follow.
func Open(d *pci.Device, opt Options) (*Device, error) {
	typ, ok := DeviceType(d)
	if !ok {
		return nil, fmt.Errorf("%v: %w", d, ErrNotVirtio)
	}
	if opt.Memory == nil {
		opt.Memory = HostMemory{}
	}
	if opt.MapBAR == nil {
		opt.MapBAR = pci.MapBAR
	}
	if opt.Sleep == nil {
		opt.Sleep = time.Sleep
	}
	v := &Device{PCI: d, Type: typ, mem: opt.Memory, sleep: opt.Sleep}
	bars := map[int]pci.Region{}
	usesIO := false
	for _, c := range d.Caps {
		if c.ID != pci.CapVendor {
			continue
		}
		o := uint16(c.Offset)
		clen := d.Read8(o + capLen)
		if clen < capMinLen {
			continue
		}
		typ := d.Read8(o + capCfgType)
		bi := int(d.Read8(o + capBar))
		off, n := uint64(d.Read32(o+capOffset)), uint64(d.Read32(o+capLength))
		var dst *pci.Region
		switch typ {
		case cfgTypeCommon:
			dst = &v.common
		case cfgTypeNotify:
			if clen < capNotifyMinLen {
				continue
			}
			dst = &v.notify
		case cfgTypeISR:
			dst = &v.isr
		case cfgTypeDevice:
			dst = &v.devcfg
		default:
			continue
		}
		if *dst != nil || bi > maxBARIndex {
			continue // the first usable structure of each type wins (4.1.4)
		}
		bar, err := d.BAR(bi)
		if err != nil {
			return nil, fmt.Errorf("virtio %v: structure type %d: %w", d.Addr, typ, err)
		}
		r, ok := bars[bi]
		if !ok {
			if r, err = opt.MapBAR(bar); err != nil {
				return nil, fmt.Errorf("virtio %v: %w", d.Addr, err)
			}
			bars[bi] = r
		}
		if bar.Kind == pci.BARIO {
			usesIO = true
		}
		sub, err := pci.Sub(r, off, n)
		if err != nil {
			return nil, fmt.Errorf("virtio %v: structure type %d: %w", d.Addr, typ, err)
		}
		*dst = sub
		if typ == cfgTypeCommon {
			v.commonAddr = bar.Addr + off
		}
		if typ == cfgTypeNotify {
			v.notifyMul = d.Read32(o + capNotifyMultiplier)
		}
	}
	if v.common == nil || v.notify == nil || v.isr == nil {
		return nil, fmt.Errorf("virtio %v: common, notify or ISR structure missing: %w", d.Addr, ErrNoModern)
	}
	if v.common.Size() < commonCfgMinLen {
		return nil, fmt.Errorf("virtio %v: common configuration of %d bytes: %w", d.Addr, v.common.Size(), ErrNoModern)
	}
	d.EnableMemory()
	if usesIO {
		d.EnableIO()
	}
	d.EnableBusMaster()
	if err := v.Reset(); err != nil {
		return nil, err
	}
	v.setStatus(StatusAcknowledge)
	v.setStatus(StatusDriver)
	return v, nil
}

// CommonConfigAddr is the bus address of the common configuration structure (in I/O space
// for an I/O BAR), for reports.
func (v *Device) CommonConfigAddr() uint64 { return v.commonAddr }

// Status reads the device status.
func (v *Device) Status() uint8 { return v.common.Read8(ccDeviceStatus) }

func (v *Device) setStatus(bit uint8) { v.common.Write8(ccDeviceStatus, v.Status()|bit) }

// Reset writes 0 to the status and waits for the device to read back 0 (4.1.4.3.2).
func (v *Device) Reset() error {
	v.common.Write8(ccDeviceStatus, 0)
	for waited := time.Duration(0); v.Status() != 0; waited += resetPoll {
		if waited >= resetTimeout {
			return fmt.Errorf("virtio %v: device still reports status %#x %v after reset", v.PCI.Addr, v.Status(), resetTimeout)
		}
		v.sleep(resetPoll)
	}
	return nil
}

// Fail tells the device the driver gave up (FAILED).
func (v *Device) Fail() { v.setStatus(StatusFailed) }

// DeviceFeatures reads the 64 feature bits the device offers.
func (v *Device) DeviceFeatures() uint64 {
	v.common.Write32(ccDeviceFeatureSelect, 0)
	lo := v.common.Read32(ccDeviceFeature)
	v.common.Write32(ccDeviceFeatureSelect, 1)
	hi := v.common.Read32(ccDeviceFeature)
	return uint64(hi)<<32 | uint64(lo)
}

// Negotiate accepts the features of want that the device offers, plus VIRTIO_F_VERSION_1,
// which the device must offer, and sets FEATURES_OK (3.1.1 steps 4-6). It returns the
// negotiated set.
func (v *Device) Negotiate(want uint64) (uint64, error) {
	offered := v.DeviceFeatures()
	if offered&(1<<FeatureVersion1) == 0 {
		v.Fail()
		return 0, fmt.Errorf("virtio %v: device features %#x lack VIRTIO_F_VERSION_1: %w", v.PCI.Addr, offered, ErrNoModern)
	}
	acc := offered & (want | 1<<FeatureVersion1)
	v.common.Write32(ccDriverFeatureSelect, 0)
	v.common.Write32(ccDriverFeature, uint32(acc))
	v.common.Write32(ccDriverFeatureSelect, 1)
	v.common.Write32(ccDriverFeature, uint32(acc>>32))
	v.setStatus(StatusFeaturesOK)
	if v.Status()&StatusFeaturesOK == 0 {
		v.Fail()
		return 0, fmt.Errorf("virtio %v: device refused features %#x: %w", v.PCI.Addr, acc, ErrFeatures)
	}
	v.features = acc
	return acc, nil
}

// Features returns the negotiated feature set.
func (v *Device) Features() uint64 { return v.features }

// NumQueues is the number of queues the device has.
func (v *Device) NumQueues() int { return int(v.common.Read16(ccNumQueues)) }

// SetupInterrupts prepares interrupts for nq queues: with MSI-X, one vector for configuration
// changes and one per queue (or one shared by all queues if the table is smaller); otherwise
// the INTx line, acknowledged through the ISR status. Call it after Negotiate and before
// SetupQueue.
func (v *Device) SetupInterrupts(nq int) error {
	if nq <= 0 || nq > maxMSIXVectorsPerDev {
		return fmt.Errorf("virtio %v: %d queues", v.PCI.Addr, nq)
	}
	v.queueVec = make([]uint8, nq)
	if entries, _, _, err := v.PCI.MSIXInfo(); err == nil && entries >= 2 && ring0.BareMetal() {
		m, err := v.PCI.OpenMSIX(pci.MapBAR)
		if err != nil {
			return fmt.Errorf("virtio %v: %w", v.PCI.Addr, err)
		}
		used := min(entries, nq+1)
		vecs := make([]uint8, used)
		for i := range vecs {
			if vecs[i], err = ring0.AllocVector(); err != nil {
				return fmt.Errorf("virtio %v: MSI-X: %w", v.PCI.Addr, err)
			}
			if err := m.Set(i, ring0.MSIAddress(), ring0.MSIData(vecs[i])); err != nil {
				return fmt.Errorf("virtio %v: %w", v.PCI.Addr, err)
			}
		}
		m.Enable()
		v.common.Write16(ccMSIXConfig, 0)
		if got := v.common.Read16(ccMSIXConfig); got != 0 {
			m.Disable()
			return fmt.Errorf("virtio %v: device did not take MSI-X entry 0 for configuration changes (reads %#x)", v.PCI.Addr, got)
		}
		v.msix, v.cfgVec = m, vecs[0]
		v.queueEnt = make([]uint16, nq)
		for i := range v.queueVec {
			// Entry 0 is for configuration changes; queues beyond the table share its last entry.
			e := min(1+i, used-1)
			v.queueVec[i], v.queueEnt[i] = vecs[e], uint16(e)
		}
		return nil
	}
	vec, route, err := v.PCI.INTxVector()
	if err != nil {
		return fmt.Errorf("virtio %v: no MSI-X and no usable INTx: %w", v.PCI.Addr, err)
	}
	v.intx, v.route, v.cfgVec = true, route, vec
	for i := range v.queueVec {
		v.queueVec[i] = vec
	}
	return nil
}

// SetupQueue sets up queue i with at most max entries (default 256 when max <= 0): rings in
// DMA memory, its MSI-X vector, enabled (4.1.5.1.3 "Virtqueue Configuration").
func (v *Device) SetupQueue(i, max int) (*Queue, error) {
	if i < 0 || i >= len(v.queueVec) {
		return nil, fmt.Errorf("virtio %v: queue %d: interrupts set up for %d queues", v.PCI.Addr, i, len(v.queueVec))
	}
	if max <= 0 {
		max = defaultMaxQueueLength
	}
	c := v.common
	c.Write16(ccQueueSelect, uint16(i))
	devMax := int(c.Read16(ccQueueSize))
	if devMax == 0 {
		return nil, fmt.Errorf("virtio %v: queue %d not available", v.PCI.Addr, i)
	}
	size := 1
	for size*2 <= min(devMax, max) {
		size *= 2
	}
	notifyOff := uint64(c.Read16(ccQueueNotifyOff)) * uint64(v.notifyMul)
	if notifyOff+2 > v.notify.Size() {
		return nil, fmt.Errorf("virtio %v: queue %d notification at %#x outside its structure (%#x bytes)",
			v.PCI.Addr, i, notifyOff, v.notify.Size())
	}
	notify, idx := v.notify, uint16(i)
	q, err := NewQueue(i, size, v.mem, func() { notify.Write16(notifyOff, idx) })
	if err != nil {
		return nil, fmt.Errorf("virtio %v: %w", v.PCI.Addr, err)
	}
	c.Write16(ccQueueSize, uint16(size))
	write64(c, ccQueueDesc, q.DescAddr)
	write64(c, ccQueueDriver, q.AvailAddr)
	write64(c, ccQueueDevice, q.UsedAddr)
	if v.msix != nil {
		e := v.queueEnt[i]
		c.Write16(ccQueueMSIXVector, e)
		if got := c.Read16(ccQueueMSIXVector); got != e {
			q.Free()
			return nil, fmt.Errorf("virtio %v: queue %d: device did not take MSI-X entry %d (reads %#x)", v.PCI.Addr, i, e, got)
		}
	}
	c.Write16(ccQueueEnable, 1)
	return q, nil
}

// write64 stores a 64-bit field as two 32-bit halves, low first (4.1.3.1 "Driver Requirements:
// PCI Device Layout").
func write64(r pci.Region, off uint64, val uint64) {
	r.Write32(off, uint32(val))
	r.Write32(off+4, uint32(val>>32))
}

// Ready sets DRIVER_OK: the device is live (3.1.1 step 8).
func (v *Device) Ready() { v.setStatus(StatusDriverOK) }

// DeviceConfig is the device-specific configuration structure (nil if the device has none).
func (v *Device) DeviceConfig() pci.Region { return v.devcfg }

// ConfigGeneration changes whenever the device configuration changes; read it before and
// after a multi-field read and retry if it moved (4.1.4.3.1).
func (v *Device) ConfigGeneration() uint8 { return v.common.Read8(ccConfigGeneration) }

// Vector returns the ring0 vector queue i interrupts on.
func (v *Device) Vector(i int) uint8 { return v.queueVec[i] }

// ConfigVector returns the vector of configuration-change interrupts.
func (v *Device) ConfigVector() uint8 { return v.cfgVec }

// INTx reports whether the device uses its INTx line (no MSI-X), and the route.
func (v *Device) INTx() (bool, ring0.Route) { return v.intx, v.route }

// IRQCount returns the interrupt count of queue i's vector, the starting point for WaitQueue.
func (v *Device) IRQCount(i int) uint64 { return ring0.IRQCount(v.queueVec[i]) }

// WaitQueue blocks until queue i's vector has taken more than seen interrupts or timeout
// passes, and returns the new count. On INTx it reads the ISR status, which acknowledges the
// interrupt and deasserts the line (4.1.4.5), after the wait: collect the used ring after
// this call. Callers take seen (IRQCount) before collecting, so a completion that lands
// between the collection and the wait is never missed. A device that reports DEVICE_NEEDS_RESET gives ErrDeviceReset.
func (v *Device) WaitQueue(i int, seen uint64, timeout time.Duration) (uint64, error) {
	n, err := ring0.WaitIRQ(v.queueVec[i], seen, timeout)
	if v.intx {
		v.isr.Read8(0)
	}
	if v.Status()&StatusDeviceNeedsReset != 0 {
		return n, fmt.Errorf("virtio %v: %w", v.PCI.Addr, ErrDeviceReset)
	}
	return n, err
}
