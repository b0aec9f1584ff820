package blk

// Feature bits. Virtio v1.2, 5.2.3 "Feature bits".
const (
	FeatureSizeMax   = 1 << 1  // VIRTIO_BLK_F_SIZE_MAX: size_max is valid
	FeatureSegMax    = 1 << 2  // VIRTIO_BLK_F_SEG_MAX: seg_max is valid
	FeatureGeometry  = 1 << 4  // VIRTIO_BLK_F_GEOMETRY (not offered)
	FeatureRO        = 1 << 5  // VIRTIO_BLK_F_RO: the device is read-only
	FeatureBlkSize   = 1 << 6  // VIRTIO_BLK_F_BLK_SIZE: blk_size is valid
	FeatureFlush     = 1 << 9  // VIRTIO_BLK_F_FLUSH: T_FLUSH is supported
	FeatureTopology  = 1 << 10 // VIRTIO_BLK_F_TOPOLOGY (not offered)
	FeatureConfigWCE = 1 << 11 // VIRTIO_BLK_F_CONFIG_WCE (not offered)
)

// Device configuration layout. Virtio v1.2, 5.2.4 "Device configuration
// layout" (struct virtio_blk_config).
const (
	CfgCapacity  = 0x00 // le64: size in 512-byte sectors
	CfgSizeMax   = 0x08 // le32: largest segment
	CfgSegMax    = 0x0c // le32: most segments in a request
	CfgGeometry  = 0x10 // le16 cylinders, u8 heads, u8 sectors
	CfgBlkSize   = 0x14 // le32: logical block size
	CfgTopology  = 0x18 // u8 physical_block_exp, u8 alignment_offset, le16 min_io_size, le32 opt_io_size
	CfgWriteback = 0x20 // u8 writeback
	configSize   = 0x24 // through writeback and its padding; later fields are guarded by features not offered
)

// Request types. Virtio v1.2, 5.2.6 "Device Operation".
const (
	TypeIn    = 0 // VIRTIO_BLK_T_IN: read
	TypeOut   = 1 // VIRTIO_BLK_T_OUT: write
	TypeFlush = 4 // VIRTIO_BLK_T_FLUSH
	TypeGetID = 8 // VIRTIO_BLK_T_GET_ID: 20-byte device ID string
)

// Status values (the last byte of a request).
const (
	StatusOK     = 0 // VIRTIO_BLK_S_OK
	StatusIOErr  = 1 // VIRTIO_BLK_S_IOERR
	StatusUnsupp = 2 // VIRTIO_BLK_S_UNSUPP
)

const (
	// SectorSize is the unit of capacity and of request sector numbers,
	// whatever the block size (5.2.6).
	SectorSize = 512
	// headerSize is struct virtio_blk_req's header: le32 type, le32
	// reserved, le64 sector.
	headerSize = 16
	// IDBytes is the length of the GET_ID string (VIRTIO_BLK_ID_BYTES).
	IDBytes = 20
	// QueueSize is the size of the single request queue.
	QueueSize = 256
	// DefaultSegMax and DefaultSizeMax bound a request's data segments.
	DefaultSegMax  = QueueSize - 2 // header and status take two descriptors
	DefaultSizeMax = 1 << 20
)
