// Package virtio is the driver side of virtio 1.1 over PCI, for Godwit's host drivers
// (virtio-blk, virtio-net): the modern PCI transport (4.1.4 "Virtio Structure PCI
// Capabilities"), the device initialization sequence with feature negotiation (3.1.1, with
// VIRTIO_F_VERSION_1 required), split virtqueues (2.6) in memory outside the Go heap, and
// interrupts through MSI-X (one vector per queue plus one for configuration changes) or, when
// the device has no usable MSI-X, its legacy INTx line with the ISR status register.
//
// References are to "Virtual I/O Device (VIRTIO) Version 1.1", OASIS Committee Specification
// 01 (cited as "virtio 1.1").
//
// Queue works on any Memory (tests use byte slices with made-up physical addresses and run
// the device side of the ring themselves); Device needs the kernel (ring0, pci).
package virtio

import "errors"

// Device status bits. virtio 1.1, 2.1 "Device Status Field".
const (
	StatusAcknowledge      = 1
	StatusDriver           = 2
	StatusDriverOK         = 4
	StatusFeaturesOK       = 8
	StatusDeviceNeedsReset = 64
	StatusFailed           = 128
)

// Reserved feature bits. virtio 1.1, 6 "Reserved Feature Bits".
const (
	FeatureIndirectDesc  = 28 // VIRTIO_F_INDIRECT_DESC
	FeatureEventIdx      = 29 // VIRTIO_F_EVENT_IDX
	FeatureVersion1      = 32 // VIRTIO_F_VERSION_1
	FeatureAccessPlatorm = 33 // VIRTIO_F_ACCESS_PLATFORM
	FeatureRingPacked    = 34 // VIRTIO_F_RING_PACKED
)

// Device types. virtio 1.1, 5 "Device Types".
const (
	TypeNet   = 1
	TypeBlock = 2
)

// PCI identification. virtio 1.1, 4.1.2 "PCI Device Discovery": vendor 1AF4h; modern devices
// are 1040h + type; transitional ones 1000h-103Fh with the type in the Subsystem Device ID.
const (
	PCIVendor            = 0x1AF4
	pciModernBase        = 0x1040
	pciModernLast        = 0x107F
	pciTransitionalFirst = 0x1000
	pciTransitionalLast  = 0x103F
)

// Errors callers branch on.
var (
	ErrNotVirtio   = errors.New("virtio: not a virtio PCI device")
	ErrNoModern    = errors.New("virtio: device has no modern (virtio 1.x) interface")
	ErrFeatures    = errors.New("virtio: feature negotiation failed")
	ErrQueueFull   = errors.New("virtio: not enough free descriptors")
	ErrBadUsed     = errors.New("virtio: device returned a bad used entry")
	ErrDeviceReset = errors.New("virtio: device needs reset")
)
