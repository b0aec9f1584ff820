package cluster

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// The record layouts below are fixed-size, little-endian, encoded with
// encoding/binary. Offsets are bytes from the start of the sector; every
// record starts with the 24-byte header (record.go). TestRecordSizes checks
// the sizes against these diagrams.

// superRec is sector 0 of the LUN.
//
//	 24 16 uuid             40  4 sector size       44  4 max hosts
//	 48  4 max volumes      52  4 incompat flags    56  8 AU size (bytes)
//	 64  8 total sectors    72  8 host lease start  80  8 dir lease start
//	 88  8 dir start        96  8 bitmap start     104  8 bitmap sectors
//	112  8 vol lease start 120  8 lease area sectors
//	128  8 data start      136  8 data units       144  8 created (unix ns)
//	152 32 label                                    = 184 bytes
type superRec struct {
	header
	UUID             [16]byte
	SectorSize       uint32
	MaxHosts         uint32
	MaxVolumes       uint32
	IncompatFlags    uint32
	AUSize           uint64
	TotalSectors     uint64
	HostLeaseStart   uint64
	DirLeaseStart    uint64
	DirStart         uint64
	BitmapStart      uint64
	BitmapSectors    uint64
	VolLeaseStart    uint64
	LeaseAreaSectors uint64
	DataStart        uint64
	DataUnits        uint64
	Created          uint64
	Label            [32]byte
}

const (
	superSize          = 184
	superSectorSizeOff = 40
)

// hostLeaseRec is a delta lease: one sector per host id.
//
//	24 8 owner host id (0: never used)  32 8 generation   40 8 timestamp (0: released)
//	48 4 io timeout ms   52 4 renew fail ms   56 4 host dead ms   60 4 reserved
//	64 32 host name                                        = 96 bytes
//
// The timeouts are the writer's: observers judge a host dead by the host's
// own host-dead interval (sanlock likewise records io_timeout in the lease so
// hosts with different timeouts can share a lockspace).
type hostLeaseRec struct {
	header
	Owner       uint64
	Generation  uint64
	Timestamp   uint64
	IOTimeoutMs uint32
	RenewFailMs uint32
	HostDeadMs  uint32
	_           uint32
	Name        [32]byte
}

const hostLeaseSize = 96

// leaderRec is the paxos leader record of a lease area (two slots, lver%2).
// It caches the outcome of the latest decided ballot; the dblocks are the
// truth.
//
//	24 8 resource  32 8 owner host id  40 8 owner generation  48 8 lver
//	56 8 timestamp (owner's host-lease timestamp at acquire; 0: released)
//	64 8 writer host id                                     = 72 bytes
type leaderRec struct {
	header
	Resource  uint64
	Owner     uint64
	OwnerGen  uint64
	Lver      uint64
	Timestamp uint64
	Writer    uint64
}

const leaderSize = 72

// dblockRec is one host's Disk Paxos block for a lease (two slots per host,
// newest valid by wseq). Field names follow Gafni & Lamport: mbal is the
// highest ballot the host has started, bal the ballot in which it last
// accepted inp; inp/inp2/inp3 is the value (owner id, generation,
// host-lease timestamp), as in sanlock's paxos_dblock; lver is the lease
// version (the consensus instance) the ballot is for.
//
//	24 8 resource  32 8 lver  40 8 mbal  48 8 bal  56 8 inp  64 8 inp2
//	72 8 inp3      80 8 wseq (write sequence, picks the newer slot) = 88 bytes
type dblockRec struct {
	header
	Resource uint64
	Lver     uint64
	Mbal     uint64
	Bal      uint64
	Inp      uint64
	Inp2     uint64
	Inp3     uint64
	Wseq     uint64
}

const dblockSize = 88

// MaxExtents is how many extents one volume may have.
const MaxExtents = 16

// MaxNameLen is the longest volume name, in bytes.
const MaxNameLen = 64

// Directory entry states. 0 is invalid.
const (
	direntFree   = 1
	direntActive = 2
)

type extentRec struct {
	Start uint64 // first allocation unit, relative to the data area
	Count uint64 // allocation units
}

// direntRec is one directory slot (one sector per slot).
//
//	24 4 state (1 free, 2 active)  28 4 extent count  32 8 incarnation
//	40 8 size bytes  48 8 created (unix ns)  56 64 name (NUL padded)
//	120 16*16 extents {start AU, count AU}             = 376 bytes
type direntRec struct {
	header
	State       uint32
	NExtents    uint32
	Incarnation uint64
	Size        uint64
	Created     uint64
	Name        [MaxNameLen]byte
	Extents     [MaxExtents]extentRec
}

const direntSize = 376

// bitmapHdr heads a free-space bitmap page; the bits follow to the end of
// the sector, one bit per allocation unit, 1 = allocated.
//
//	24 4 page number  28 4 bits used in this page  32.. bits
type bitmapHdr struct {
	header
	Page uint32
	Bits uint32
}

const bitmapHdrSize = 32

func bitsPerPage(ss int) int64 { return int64(ss-bitmapHdrSize) * 8 }

func nameBytes(s string) ([MaxNameLen]byte, error) {
	var b [MaxNameLen]byte
	if err := ValidName(s); err != nil {
		return b, err
	}
	copy(b[:], s)
	return b, nil
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// ValidName reports whether s can name a volume: 1..64 bytes of
// [A-Za-z0-9._-], not starting with '.' or '-'.
func ValidName(s string) error {
	if len(s) == 0 || len(s) > MaxNameLen {
		return fmt.Errorf("%w: volume name %q must be 1..%d bytes", ErrInvalid, s, MaxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok || (i == 0 && (c == '.' || c == '-')) {
			return fmt.Errorf("%w: volume name %q: character %q at %d not allowed (use A-Z a-z 0-9 . _ -)", ErrInvalid, s, c, i)
		}
	}
	return nil
}

// validateDirent checks the fields of a checksummed entry against the
// layout: extents inside the data area, sizes consistent.
func (l *Layout) validateDirent(d *direntRec, at loc) error {
	switch d.State {
	case direntFree:
		return nil
	case direntActive:
	default:
		return at.corrupt("state %d is neither free (1) nor active (2)", d.State)
	}
	if d.NExtents == 0 || d.NExtents > MaxExtents {
		return at.corrupt("extent count %d outside [1,%d]", d.NExtents, MaxExtents)
	}
	if err := ValidName(cString(d.Name[:])); err != nil {
		return at.corrupt("bad name: %v", err)
	}
	var units uint64
	for i := 0; i < int(d.NExtents); i++ {
		e := d.Extents[i]
		if e.Count == 0 || e.Start >= uint64(l.DataUnits) || e.Count > uint64(l.DataUnits)-e.Start {
			return at.corrupt("extent %d [%d,+%d) outside data area of %d units", i, e.Start, e.Count, l.DataUnits)
		}
		units += e.Count
	}
	if d.Size == 0 || d.Size%uint64(l.SectorSize) != 0 || d.Size > units*uint64(l.AUSize) {
		return at.corrupt("size %d does not fit %d units of %d bytes in whole sectors", d.Size, units, l.AUSize)
	}
	return nil
}

// le is shorthand used by tests and the bitmap code.
var le = binary.LittleEndian
