package net

// Feature bits. Virtio v1.1, 5.1.3 "Feature bits".
const (
	FeatureMAC    = 1 << 5  // VIRTIO_NET_F_MAC: the device has a MAC address in its config
	FeatureStatus = 1 << 16 // VIRTIO_NET_F_STATUS: the config's status field is valid
)

// Device configuration layout. Virtio v1.1, 5.1.4 "Device configuration layout":
// struct virtio_net_config { u8 mac[6]; le16 status; le16 max_virtqueue_pairs; le16 mtu; }.
// Only mac and status are offered (no VIRTIO_NET_F_MQ or _MTU).
const (
	CfgMAC     = 0
	CfgStatus  = 6
	configSize = 8
)

// Status bits. Virtio v1.1, 5.1.4.
const (
	StatusLinkUp = 1 // VIRTIO_NET_S_LINK_UP
)

// Queues. Virtio v1.1, 5.1.2 "Virtqueues": receiveq1 is 0, transmitq1 is 1 (no control
// queue without VIRTIO_NET_F_CTRL_VQ).
const (
	RxQueue   = 0
	TxQueue   = 1
	QueueSize = 256
)

// The packet header. Virtio v1.1, 5.1.6 "Device Operation": struct virtio_net_hdr is u8
// flags, u8 gso_type, le16 hdr_len, le16 gso_size, le16 csum_start, le16 csum_offset,
// le16 num_buffers: 12 bytes when VIRTIO_F_VERSION_1 is negotiated (5.1.6.1).
const (
	HdrLen          = 12
	hdrFlags        = 0
	hdrGSOType      = 1
	hdrNumBuffers   = 10
	HdrFNeedsCsum   = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	HdrGSONone      = 0 // VIRTIO_NET_HDR_GSO_NONE
	maxFrameDefault = 1514
	minFrame        = 14 // an Ethernet header (IEEE 802.3-2018, 3.1.1)
)
