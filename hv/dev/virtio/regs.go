package virtio

// PCI identity. Virtio v1.2 (OASIS), 4.1.2 "PCI Device Discovery": vendor
// 0x1AF4, device ID 0x1040 plus the virtio device ID; 4.1.2.1 a non-
// transitional device SHOULD have PCI Revision ID 1 or higher.
const (
	PCIVendorID       = 0x1af4
	PCIDeviceIDBase   = 0x1040
	PCIRevisionModern = 1
)

// Device types. Virtio v1.2, 5 "Device Types".
const (
	DeviceNet   = 1
	DeviceBlock = 2
)

// Device status bits. Virtio v1.2, 2.1 "Device Status Field".
const (
	StatusAcknowledge      = 1
	StatusDriver           = 2
	StatusDriverOK         = 4
	StatusFeaturesOK       = 8
	StatusDeviceNeedsReset = 64
	StatusFailed           = 128
)

// Reserved feature bits. Virtio v1.2, 6 "Reserved Feature Bits".
const (
	FeatureRingIndirectDesc = 1 << 28 // VIRTIO_F_INDIRECT_DESC
	FeatureRingEventIdx     = 1 << 29 // VIRTIO_F_EVENT_IDX
	FeatureVersion1         = 1 << 32 // VIRTIO_F_VERSION_1
	FeatureAccessPlatform   = 1 << 33 // VIRTIO_F_ACCESS_PLATFORM (not offered)
	FeatureRingPacked       = 1 << 34 // VIRTIO_F_RING_PACKED (not offered)

	// transportFeatures are offered by every device here.
	transportFeatures = FeatureVersion1 | FeatureRingIndirectDesc | FeatureRingEventIdx
)

// Split virtqueue layout. Virtio v1.2, 2.7 "Split Virtqueues" and
// 2.7.2 "Legacy Interfaces: A Note on Virtqueue Layout" for the sizes.
const (
	descSize      = 16 // struct virtq_desc: le64 addr, le32 len, le16 flags, le16 next
	descAlign     = 16 // 2.7 table "Virtqueue Part Alignment"
	availAlign    = 2
	usedAlign     = 4
	ringHeader    = 4 // le16 flags, le16 idx
	availElemSize = 2 // le16 ring[]
	usedElemSize  = 8 // struct virtq_used_elem: le32 id, le32 len
	eventSize     = 2 // used_event / avail_event
	// MaxQueueSize is the largest split queue (2.7 "Queue Size": 32768).
	MaxQueueSize = 32768
)

// Descriptor flags. Virtio v1.2, 2.7.5 "The Virtqueue Descriptor Table".
const (
	DescFNext     = 1 // VIRTQ_DESC_F_NEXT: the buffer continues via next
	DescFWrite    = 2 // VIRTQ_DESC_F_WRITE: device write-only (else read-only)
	DescFIndirect = 4 // VIRTQ_DESC_F_INDIRECT: buffer holds a descriptor table
)

// Ring flags. Virtio v1.2, 2.7.6 "The Virtqueue Available Ring" and
// 2.7.8 "The Virtqueue Used Ring".
const (
	AvailFNoInterrupt = 1 // VIRTQ_AVAIL_F_NO_INTERRUPT
	UsedFNoNotify     = 1 // VIRTQ_USED_F_NO_NOTIFY
)

// Virtio PCI capability. Virtio v1.2, 4.1.4 "Virtio Structure PCI
// Capabilities": struct virtio_pci_cap is u8 cap_vndr (0x09), u8
// cap_next, u8 cap_len, u8 cfg_type, u8 bar, u8 id, u8 padding[2], le32
// offset, le32 length; the notify capability appends le32
// notify_off_multiplier (4.1.4.4).
const (
	CapCommonCfg = 1 // VIRTIO_PCI_CAP_COMMON_CFG
	CapNotifyCfg = 2 // VIRTIO_PCI_CAP_NOTIFY_CFG
	CapISRCfg    = 3 // VIRTIO_PCI_CAP_ISR_CFG
	CapDeviceCfg = 4 // VIRTIO_PCI_CAP_DEVICE_CFG
	CapPCICfg    = 5 // VIRTIO_PCI_CAP_PCI_CFG (not implemented)

	capLen       = 16 // sizeof(struct virtio_pci_cap)
	notifyCapLen = 20 // sizeof(struct virtio_pci_notify_cap)
)

// Common configuration structure offsets. Virtio v1.2, 4.1.4.3 "Common
// configuration structure layout" (struct virtio_pci_common_cfg).
const (
	CommonDeviceFeatureSelect = 0x00 // le32, RW
	CommonDeviceFeature       = 0x04 // le32, RO
	CommonDriverFeatureSelect = 0x08 // le32, RW
	CommonDriverFeature       = 0x0c // le32, RW
	CommonMSIXConfig          = 0x10 // le16, RW
	CommonNumQueues           = 0x12 // le16, RO
	CommonDeviceStatus        = 0x14 // u8, RW
	CommonConfigGeneration    = 0x15 // u8, RO
	CommonQueueSelect         = 0x16 // le16, RW
	CommonQueueSize           = 0x18 // le16, RW
	CommonQueueMSIXVector     = 0x1a // le16, RW
	CommonQueueEnable         = 0x1c // le16, RW
	CommonQueueNotifyOff      = 0x1e // le16, RO
	CommonQueueDesc           = 0x20 // le64, RW
	CommonQueueDriver         = 0x28 // le64, RW
	CommonQueueDevice         = 0x30 // le64, RW
	commonCfgLen              = 0x38 // the v1.1 structure; v1.2's notify data and reset fields read as 0
)

// NoVector is VIRTIO_MSI_NO_VECTOR (4.1.5.1.2): this device has no MSI-X.
const NoVector = 0xffff

// ISR status bits. Virtio v1.2, 4.1.4.5 "ISR status capability".
const (
	ISRQueue  = 1 // a used buffer notification
	ISRConfig = 2 // a configuration change notification
)

// Layout of the device's memory BAR (BAR 0): one page per structure.
const (
	barIndex           = 0
	barCommonOffset    = 0x0000
	barISROffset       = 0x1000
	barDeviceOffset    = 0x2000
	barNotifyOffset    = 0x3000
	barSize            = 0x4000
	barRegionSize      = 0x1000
	notifyOffMultipler = 4 // each queue's notify address is 4 bytes after the previous
)
