package cluster

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Format version and compatibility window. A reader of version N accepts
// records of versions [N-1, N] (never 0, which is reserved as invalid) and
// writes only version N; a newer record, or a superblock with unknown
// incompatible feature bits, is refused with ErrUnsupportedVersion rather
// than guessed at.
const (
	FormatVersion     = 1
	MinReadVersion    = 1 // max(1, FormatVersion-1)
	knownIncompatMask = 0 // no incompatible features defined in version 1
)

// Record magics, one per kind, read as little-endian uint32 ("GWSB" etc. in
// byte order). 0 is never a valid magic.
const (
	magicSuperblock = 0x42535747 // "GWSB"
	magicHostLease  = 0x4c485747 // "GWHL" delta lease
	magicLeader     = 0x454c5747 // "GWLE" paxos leader
	magicDblock     = 0x42445747 // "GWDB" paxos dblock
	magicDirent     = 0x45445747 // "GWDE" directory entry
	magicBitmap     = 0x4d425747 // "GWBM" free-space bitmap page
)

// header starts every record. The CRC32C (Castagnoli) covers the whole
// sector with the CRC field taken as zero, so a flip of any byte of the
// sector, including its unused tail, is detected (a CRC detects every burst
// of up to 32 bits, hence every single corrupted byte).
//
//	off size field
//	  0    4 magic
//	  4    2 version
//	  6    2 reserved, 0
//	  8    4 crc32c
//	 12    4 index   (host id, slot or page: catches misdirected writes)
//	 16    8 lun tag (first 8 bytes of the superblock UUID: catches records of another LUN)
type header struct {
	Magic    uint32
	Version  uint16
	Reserved uint16
	CRC      uint32
	Index    uint32
	LUN      uint64
}

const (
	headerSize = 24
	crcOff     = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func sectorCRC(sec []byte) uint32 {
	c := crc32.Update(0, castagnoli, sec[:crcOff])
	c = crc32.Update(c, castagnoli, []byte{0, 0, 0, 0})
	return crc32.Update(c, castagnoli, sec[crcOff+4:])
}

// encodeRecord writes rec (a struct starting with header) into sec, which
// must be one zeroed sector, and seals it with the CRC.
func encodeRecord(sec []byte, rec any) {
	if _, err := binary.Encode(sec, binary.LittleEndian, rec); err != nil {
		panic(fmt.Sprintf("cluster: encode %T into %d-byte sector: %v", rec, len(sec), err))
	}
	binary.LittleEndian.PutUint32(sec[crcOff:], sectorCRC(sec))
}

// loc names a record and where it lives, for CorruptError.
type loc struct {
	name string
	lba  int64
	ss   int
	// lazy builds name only when an error needs it (hot decode paths).
	lazy func() string
}

func (l loc) corrupt(format string, args ...any) error {
	name := l.name
	if l.lazy != nil {
		name = l.lazy()
	}
	return &CorruptError{Record: name, LBA: l.lba, Offset: l.lba * int64(l.ss), Reason: fmt.Sprintf(format, args...)}
}

// decodeRecord validates sec (one sector) as a record of kind magic with the
// given index and LUN tag, and decodes it into rec (pointer to struct).
func decodeRecord(sec []byte, rec any, magic uint32, index uint32, lun uint64, l loc) error {
	stored := binary.LittleEndian.Uint32(sec[crcOff:])
	if computed := sectorCRC(sec); stored != computed {
		if isZero(sec) {
			return l.corrupt("sector is all zeros (never written or wiped)")
		}
		return l.corrupt("checksum mismatch (stored %#08x, computed %#08x): torn or corrupted write", stored, computed)
	}
	var h header
	if _, err := binary.Decode(sec, binary.LittleEndian, &h); err != nil {
		return l.corrupt("short header: %v", err)
	}
	if h.Magic != magic {
		return l.corrupt("magic %#08x, want %#08x", h.Magic, magic)
	}
	if h.Version == 0 {
		return l.corrupt("version 0 is reserved as invalid")
	}
	if h.Version < MinReadVersion || h.Version > FormatVersion {
		name := l.name
		if l.lazy != nil {
			name = l.lazy()
		}
		return fmt.Errorf("%s at sector %d: version %d outside [%d,%d]: %w", name, l.lba, h.Version, MinReadVersion, FormatVersion, ErrUnsupportedVersion)
	}
	if h.Reserved != 0 {
		return l.corrupt("reserved header field %#x, want 0", h.Reserved)
	}
	if h.Index != index {
		return l.corrupt("index %d, want %d (misdirected write)", h.Index, index)
	}
	if lun != 0 && h.LUN != lun {
		return l.corrupt("LUN tag %#016x, want %#016x (record of another LUN)", h.LUN, lun)
	}
	if _, err := binary.Decode(sec, binary.LittleEndian, rec); err != nil {
		return l.corrupt("short record: %v", err)
	}
	return nil
}

func isZero(b []byte) bool {
	return len(bytes.TrimLeft(b, "\x00")) == 0
}

func newHeader(magic uint32, index uint32, lun uint64) header {
	return header{Magic: magic, Version: FormatVersion, Index: index, LUN: lun}
}
