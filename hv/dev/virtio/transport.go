// Package virtio implements the device side of virtio 1.x over PCI, the
// modern (non-transitional) interface (OASIS Virtio v1.2, 4.1 "Virtio
// Over PCI Bus"), with split virtqueues in guest memory (2.7). A device
// type (virtio-blk in package blk) implements Backend; Transport gives it
// a PCI function with the virtio vendor capabilities and a 16 KiB memory
// BAR holding the common configuration, ISR status, device configuration
// and notification structures.
//
// Interrupts are legacy INTx with the ISR status register; there is no
// MSI-X capability, so every MSI-X vector reads as NoVector and Linux
// falls back to INTx. A queue notification is processed synchronously,
// in the vCPU's exit, before the notifying write returns.
//
// A driver error the device can detect (a malformed ring or request, a
// queue layout outside guest RAM) never panics or loops: the device sets
// DEVICE_NEEDS_RESET, raises a configuration change interrupt, stops
// processing until the driver resets it, and reports the error through
// Config.OnError and Broken.
//
// Hot path: BAR accesses and queue processing take the transport's mutex
// and do not allocate once descriptor chains have reached their longest.
package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/godwit-hv/godwit/hv/bus"
	"github.com/godwit-hv/godwit/hv/dev/pci"
)

// Backend is one virtio device type.
type Backend interface {
	// Type is the virtio device ID (5 "Device Types").
	Type() uint16
	// Features is the device-type feature bits offered; the transport
	// adds VERSION_1, INDIRECT_DESC and EVENT_IDX.
	Features() uint64
	// QueueSizes returns the maximum size of each queue (powers of two).
	QueueSizes() []uint16
	// ConfigSize is the size of the device configuration structure.
	ConfigSize() int
	// ReadConfig and WriteConfig access the device configuration.
	ReadConfig(offset int, data []byte)
	WriteConfig(offset int, data []byte)
	// Process handles the available buffers of queue index after a
	// notification, with the negotiated features, pushing completions
	// to q. An error wrapping ErrMalformed marks the device broken.
	Process(index int, q *Queue, features uint64) error
	// Reset returns the device type to its initial state.
	Reset()
}

// Config wires a transport to its VM.
type Config struct {
	Backend Backend
	Mem     Memory
	// Bus is where the memory BAR is placed when the guest programs it;
	// Name names it there.
	Bus  *bus.Bus
	Name string
	// Class and Subclass are the PCI class code (e.g. mass storage).
	Class, Subclass uint8
	// InterruptLine is the IRQ the platform routes INTA# of this slot to,
	// written to the Interrupt Line register for the guest.
	InterruptLine uint8
	// IRQ is called with the level of INTA# when it changes.
	IRQ func(level bool)
	// OnError is called (with the transport locked) when the device
	// marks itself broken. Nil: only Broken reports it.
	OnError func(error)
}

// Transport is a virtio PCI device.
type Transport struct {
	mu      sync.Mutex
	cfg     Config
	fn      *pci.Function
	queues  []*Queue
	offered uint64

	status           uint8
	devFeatureSelect uint32
	drvFeatureSelect uint32
	driverFeatures   uint64
	queueSelect      uint16
	generation       uint8
	isr              uint8
	broken           error
}

// New creates the transport and its PCI function; attach Function() to
// a pci.Bridge slot.
func New(cfg Config) (*Transport, error) {
	if cfg.Backend == nil || cfg.Mem == nil || cfg.Bus == nil {
		return nil, fmt.Errorf("virtio: config needs a backend, memory and a bus")
	}
	be := cfg.Backend
	sizes := be.QueueSizes()
	if len(sizes) == 0 || len(sizes)*notifyOffMultipler > barRegionSize {
		return nil, fmt.Errorf("virtio: %d queues", len(sizes))
	}
	if be.ConfigSize() > barRegionSize {
		return nil, fmt.Errorf("virtio: device configuration of %d bytes", be.ConfigSize())
	}
	t := &Transport{cfg: cfg, offered: be.Features() | transportFeatures}
	for i, s := range sizes {
		if s == 0 || s > MaxQueueSize || s&(s-1) != 0 {
			return nil, fmt.Errorf("virtio: queue %d size %d", i, s)
		}
		t.queues = append(t.queues, newQueue(cfg.Mem, s))
	}
	var barDevs [pci.NumBARs]bus.Device
	barDevs[barIndex] = (*barDevice)(t)
	fn, err := pci.NewFunction(pci.Config{
		Header: pci.Header{
			VendorID: PCIVendorID, DeviceID: PCIDeviceIDBase + be.Type(), RevisionID: PCIRevisionModern,
			Class: cfg.Class, Subclass: cfg.Subclass,
			// 4.1.2: a non-transitional device may use any subsystem IDs.
			SubsystemVendorID: PCIVendorID, SubsystemID: PCIDeviceIDBase + be.Type(),
			InterruptPin: pci.PinINTA, InterruptLine: cfg.InterruptLine,
			BARs: [pci.NumBARs]pci.BARSpec{barIndex: {Size: barSize}},
		},
		Remap: pci.BusMapper(cfg.Bus, cfg.Name, barDevs),
		IRQ:   cfg.IRQ,
	})
	if err != nil {
		return nil, err
	}
	caps := []struct {
		typ         uint8
		off, length uint32
		notifyMulti bool
	}{
		{CapCommonCfg, barCommonOffset, commonCfgLen, false},
		{CapNotifyCfg, barNotifyOffset, uint32(len(sizes) * notifyOffMultipler), true},
		{CapISRCfg, barISROffset, 1, false},
		{CapDeviceCfg, barDeviceOffset, uint32(be.ConfigSize()), false},
	}
	for _, c := range caps {
		if c.typ == CapDeviceCfg && c.length == 0 {
			continue
		}
		// The body after cap_vndr and cap_next.
		body := make([]byte, capLen-2, notifyCapLen-2)
		body[0] = capLen
		body[1] = c.typ
		body[2] = barIndex
		binary.LittleEndian.PutUint32(body[6:], c.off)
		binary.LittleEndian.PutUint32(body[10:], c.length)
		if c.notifyMulti {
			body[0] = notifyCapLen
			body = binary.LittleEndian.AppendUint32(body, notifyOffMultipler)
		}
		if _, err := fn.AddCapability(pci.CapIDVendor, body); err != nil {
			return nil, err
		}
	}
	t.fn = fn
	return t, nil
}

// Function returns the PCI function to attach to a bridge.
func (t *Transport) Function() *pci.Function { return t.fn }

// Broken returns the error that made the device set DEVICE_NEEDS_RESET,
// or nil.
func (t *Transport) Broken() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.broken
}

// Status returns the device status register.
func (t *Transport) Status() uint8 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status
}

// Features returns the negotiated features (valid once FEATURES_OK).
func (t *Transport) Features() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.driverFeatures
}

// ConfigChanged tells the driver the device configuration changed (a
// resized disk): the generation moves and a configuration interrupt is
// raised (4.1.4.3, 4.1.5.3).
func (t *Transport) ConfigChanged() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.generation++
	if t.status&StatusDriverOK != 0 {
		t.raise(ISRConfig)
	}
}

func (t *Transport) raise(bits uint8) {
	t.isr |= bits
	t.fn.SetIRQ(true)
}

// fail marks the device broken (2.1.2: DEVICE_NEEDS_RESET) and reports err.
func (t *Transport) fail(err error) {
	if t.broken != nil {
		return
	}
	t.broken = err
	t.status |= StatusDeviceNeedsReset
	if t.status&StatusDriverOK != 0 {
		t.raise(ISRConfig)
	}
	if t.cfg.OnError != nil {
		t.cfg.OnError(err)
	}
}

// reset is a device reset (2.4 "Device Reset"): status 0 and every queue
// and negotiated value back to the initial state.
func (t *Transport) reset() {
	t.status = 0
	t.devFeatureSelect, t.drvFeatureSelect, t.driverFeatures = 0, 0, 0
	t.queueSelect = 0
	t.isr = 0
	t.broken = nil
	for _, q := range t.queues {
		q.reset()
	}
	t.fn.SetIRQ(false)
	t.cfg.Backend.Reset()
}

func (t *Transport) selected() *Queue {
	if int(t.queueSelect) < len(t.queues) {
		return t.queues[t.queueSelect]
	}
	return nil
}

// setStatus handles a driver write of device_status (2.1, 3.1.1 "Driver
// Requirements: Device Initialization").
func (t *Transport) setStatus(v uint8) {
	if v == 0 {
		t.reset()
		return
	}
	// The driver only adds bits; DEVICE_NEEDS_RESET is the device's.
	add := v &^ t.status &^ StatusDeviceNeedsReset
	if add&StatusFeaturesOK != 0 {
		// 2.2.2: accept only offered features, with VERSION_1 (6.1).
		f := t.driverFeatures
		if f&^t.offered != 0 || f&FeatureVersion1 == 0 {
			add &^= StatusFeaturesOK
		}
	}
	if add&StatusDriverOK != 0 && (t.status|add)&StatusFeaturesOK == 0 {
		add &^= StatusDriverOK
	}
	t.status |= add
}

// barDevice is the transport seen as the handler of its memory BAR.
type barDevice Transport

func (d *barDevice) Read(offset uint64, data []byte) error {
	t := (*Transport)(d)
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(data)
	switch {
	case offset < barCommonOffset+barRegionSize:
		t.readCommon(offset-barCommonOffset, data)
	case offset < barISROffset+barRegionSize:
		if offset == barISROffset {
			// 4.1.4.5.1: reading ISR status resets it and deasserts INTx.
			data[0] = t.isr
			t.isr = 0
			t.fn.SetIRQ(false)
		}
	case offset < barDeviceOffset+barRegionSize:
		if o := int(offset - barDeviceOffset); o+len(data) <= t.cfg.Backend.ConfigSize() {
			t.cfg.Backend.ReadConfig(o, data)
		}
	}
	return nil
}

func (d *barDevice) Write(offset uint64, data []byte) error {
	t := (*Transport)(d)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case offset < barCommonOffset+barRegionSize:
		t.writeCommon(offset-barCommonOffset, data)
	case offset < barISROffset+barRegionSize:
		// ISR status is read-only.
	case offset < barDeviceOffset+barRegionSize:
		if o := int(offset - barDeviceOffset); o+len(data) <= t.cfg.Backend.ConfigSize() {
			t.cfg.Backend.WriteConfig(o, data)
		}
	default:
		o := offset - barNotifyOffset
		if o%notifyOffMultipler == 0 && o/notifyOffMultipler < uint64(len(t.queues)) {
			t.notify(int(o / notifyOffMultipler))
		}
	}
	return nil
}

// notify processes queue i after the driver's available buffer
// notification (4.1.5.2).
func (t *Transport) notify(i int) {
	q := t.queues[i]
	if t.broken != nil || t.status&StatusDriverOK == 0 || t.status&StatusFailed != 0 || !q.ready {
		return
	}
	if t.fn.Command()&pci.CommandBusMaster == 0 {
		return // PCI 3.0, 6.2.2: no DMA until the driver enables bus mastering
	}
	if err := t.cfg.Backend.Process(i, q, t.driverFeatures); err != nil {
		t.fail(fmt.Errorf("%s: queue %d: %w", t.cfg.Name, i, err))
	}
	need, err := q.needInterrupt()
	if err != nil {
		t.fail(fmt.Errorf("%s: queue %d: %w", t.cfg.Name, i, err))
	}
	if need {
		t.raise(ISRQueue)
	}
}

// readCommon fills data from the common configuration structure at off.
func (t *Transport) readCommon(off uint64, data []byte) {
	if off >= commonCfgLen || off+uint64(len(data)) > commonCfgLen {
		return
	}
	var img [commonCfgLen]byte
	le := binary.LittleEndian
	le.PutUint32(img[CommonDeviceFeatureSelect:], t.devFeatureSelect)
	if t.devFeatureSelect < 2 {
		le.PutUint32(img[CommonDeviceFeature:], uint32(t.offered>>(32*t.devFeatureSelect)))
	}
	le.PutUint32(img[CommonDriverFeatureSelect:], t.drvFeatureSelect)
	if t.drvFeatureSelect < 2 {
		le.PutUint32(img[CommonDriverFeature:], uint32(t.driverFeatures>>(32*t.drvFeatureSelect)))
	}
	le.PutUint16(img[CommonMSIXConfig:], NoVector)
	le.PutUint16(img[CommonNumQueues:], uint16(len(t.queues)))
	img[CommonDeviceStatus] = t.status
	img[CommonConfigGeneration] = t.generation
	le.PutUint16(img[CommonQueueSelect:], t.queueSelect)
	le.PutUint16(img[CommonQueueMSIXVector:], NoVector)
	if q := t.selected(); q != nil {
		le.PutUint16(img[CommonQueueSize:], q.size)
		if q.ready {
			le.PutUint16(img[CommonQueueEnable:], 1)
		}
		le.PutUint16(img[CommonQueueNotifyOff:], t.queueSelect)
		le.PutUint64(img[CommonQueueDesc:], q.desc)
		le.PutUint64(img[CommonQueueDriver:], q.driver)
		le.PutUint64(img[CommonQueueDevice:], q.device)
	}
	copy(data, img[off:])
}

// writeCommon handles a write to the common configuration structure.
// Fields are written at their own width; the 64-bit queue addresses also
// as two 32-bit halves (4.1.3.1). Other writes are ignored.
func (t *Transport) writeCommon(off uint64, data []byte) {
	var v uint64
	for i := len(data) - 1; i >= 0; i-- {
		v = v<<8 | uint64(data[i])
	}
	n := uint64(len(data))
	q := t.selected()
	queueWritable := q != nil && !q.ready && t.broken == nil
	setAddr := func(p *uint64, base uint64) {
		switch {
		case off == base && n == 8:
			*p = v
		case off == base && n == 4:
			*p = *p&^0xffffffff | v
		case off == base+4 && n == 4:
			*p = *p&0xffffffff | v<<32
		}
	}
	switch {
	case off == CommonDeviceFeatureSelect && n == 4:
		t.devFeatureSelect = uint32(v)
	case off == CommonDriverFeatureSelect && n == 4:
		t.drvFeatureSelect = uint32(v)
	case off == CommonDriverFeature && n == 4:
		// 2.2.2: features are fixed once FEATURES_OK is set.
		if t.status&StatusFeaturesOK == 0 && t.drvFeatureSelect < 2 {
			sh := 32 * t.drvFeatureSelect
			t.driverFeatures = t.driverFeatures&^(0xffffffff<<sh) | v<<sh
		}
	case off == CommonDeviceStatus && n == 1:
		t.setStatus(uint8(v))
	case off == CommonQueueSelect && n == 2:
		t.queueSelect = uint16(v)
	case off == CommonQueueSize && n == 2:
		if queueWritable {
			q.size = uint16(v)
		}
	case off == CommonQueueEnable && n == 2:
		if queueWritable && v == 1 {
			if err := q.enable(t.driverFeatures); err != nil {
				t.fail(fmt.Errorf("%s: queue %d: %w", t.cfg.Name, t.queueSelect, err))
			}
		}
	case off >= CommonQueueDesc && off < CommonQueueDevice+8:
		if queueWritable {
			setAddr(&q.desc, CommonQueueDesc)
			setAddr(&q.driver, CommonQueueDriver)
			setAddr(&q.device, CommonQueueDevice)
		}
	}
}

// State is the migratable state of a virtio PCI device: its PCI
// configuration space, the transport registers and every queue. The
// backend's own state, if any, is saved by the backend.
type State struct {
	PCI                 pci.State
	Status              uint8
	DeviceFeatureSelect uint32
	DriverFeatureSelect uint32
	DriverFeatures      uint64
	QueueSelect         uint16
	ConfigGeneration    uint8
	ISR                 uint8
	Broken              string // the reason DEVICE_NEEDS_RESET is set, or ""
	Queues              []QueueState
}

// ErrState reports a state Restore cannot load.
var ErrState = errors.New("virtio: invalid state")

// Save returns the device's state.
func (t *Transport) Save() State {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := State{
		PCI: t.fn.Save(), Status: t.status,
		DeviceFeatureSelect: t.devFeatureSelect, DriverFeatureSelect: t.drvFeatureSelect,
		DriverFeatures: t.driverFeatures, QueueSelect: t.queueSelect,
		ConfigGeneration: t.generation, ISR: t.isr,
	}
	if t.broken != nil {
		s.Broken = t.broken.Error()
	}
	for _, q := range t.queues {
		s.Queues = append(s.Queues, q.save())
	}
	return s
}

// Restore loads a state from Save; the guest memory must already hold the
// restored RAM (queue layouts are checked against it).
func (t *Transport) Restore(s State) error {
	switch {
	case len(s.Queues) != len(t.queues):
		return fmt.Errorf("%w: %d queues, device has %d", ErrState, len(s.Queues), len(t.queues))
	case s.DriverFeatures&^t.offered != 0:
		return fmt.Errorf("%w: features %#x not offered (%#x)", ErrState, s.DriverFeatures, t.offered)
	case s.ISR&^(ISRQueue|ISRConfig) != 0:
		return fmt.Errorf("%w: ISR %#x", ErrState, s.ISR)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, qs := range s.Queues {
		if err := t.queues[i].restore(qs, s.DriverFeatures); err != nil {
			for _, q := range t.queues {
				q.reset()
			}
			return fmt.Errorf("%w: queue %d: %v", ErrState, i, err)
		}
	}
	t.status, t.devFeatureSelect, t.drvFeatureSelect = s.Status, s.DeviceFeatureSelect, s.DriverFeatureSelect
	t.driverFeatures, t.queueSelect, t.generation, t.isr = s.DriverFeatures, s.QueueSelect, s.ConfigGeneration, s.ISR
	t.broken = nil
	if s.Broken != "" {
		t.broken = errors.New(s.Broken)
	}
	return t.fn.Restore(s.PCI)
}
