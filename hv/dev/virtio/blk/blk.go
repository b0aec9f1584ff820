// Package blk is a virtio block device (Virtio v1.2, 5.2): one request
// queue over a Disk, with reads, writes, flushes and the device ID.
//
// Requests are processed synchronously when the driver notifies the
// queue. A request the disk cannot serve (beyond its end, a disk error, a
// write to a read-only device) completes with VIRTIO_BLK_S_IOERR; an
// unknown type with VIRTIO_BLK_S_UNSUPP; a request with no room for its
// status byte is malformed and breaks the device (virtio.ErrMalformed).
// Processing does not allocate.
package blk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/godwit-hv/godwit/hv/dev/virtio"
)

// Disk is the backing store: a file, a block device or a cluster volume.
type Disk interface {
	io.ReaderAt
	io.WriterAt
	Flush() error
	Size() int64
}

// Config describes a block device.
type Config struct {
	Disk     Disk
	ReadOnly bool
	// ID is the serial number returned by GET_ID (at most IDBytes).
	ID string
	// BlockSize is the logical block size advertised (a power of two,
	// at least 512); zero means 512.
	BlockSize uint32
	// SegMax and SizeMax bound a request's data segments; zero means the
	// defaults.
	SegMax, SizeMax uint32
}

// Block is the virtio-blk backend; attach it with virtio.New.
type Block struct {
	cfg   Config
	chain virtio.Chain
	hdr   [headerSize]byte
	id    [IDBytes]byte
}

// New returns a block device over cfg.Disk.
func New(cfg Config) (*Block, error) {
	if cfg.Disk == nil {
		return nil, errors.New("blk: no disk")
	}
	if cfg.BlockSize == 0 {
		cfg.BlockSize = SectorSize
	}
	if cfg.BlockSize < SectorSize || cfg.BlockSize&(cfg.BlockSize-1) != 0 {
		return nil, fmt.Errorf("blk: block size %d", cfg.BlockSize)
	}
	if len(cfg.ID) > IDBytes {
		return nil, fmt.Errorf("blk: ID %q longer than %d bytes", cfg.ID, IDBytes)
	}
	if cfg.SegMax == 0 {
		cfg.SegMax = DefaultSegMax
	}
	if cfg.SizeMax == 0 {
		cfg.SizeMax = DefaultSizeMax
	}
	b := &Block{cfg: cfg, chain: virtio.Chain{Bufs: make([]virtio.Buf, 0, QueueSize)}}
	copy(b.id[:], cfg.ID)
	return b, nil
}

// Type implements virtio.Backend.
func (b *Block) Type() uint16 { return virtio.DeviceBlock }

// Features implements virtio.Backend.
func (b *Block) Features() uint64 {
	f := uint64(FeatureSizeMax | FeatureSegMax | FeatureBlkSize | FeatureFlush)
	if b.cfg.ReadOnly {
		f |= FeatureRO
	}
	return f
}

// QueueSizes implements virtio.Backend: one request queue.
func (b *Block) QueueSizes() []uint16 { return []uint16{QueueSize} }

// ConfigSize implements virtio.Backend.
func (b *Block) ConfigSize() int { return configSize }

// ReadConfig implements virtio.Backend. The capacity follows the disk's
// current size.
func (b *Block) ReadConfig(offset int, data []byte) {
	var img [configSize]byte
	le := binary.LittleEndian
	le.PutUint64(img[CfgCapacity:], uint64(b.cfg.Disk.Size())/SectorSize)
	le.PutUint32(img[CfgSizeMax:], b.cfg.SizeMax)
	le.PutUint32(img[CfgSegMax:], b.cfg.SegMax)
	le.PutUint32(img[CfgBlkSize:], b.cfg.BlockSize)
	img[CfgWriteback] = 1 // a write cache that T_FLUSH empties
	if offset >= 0 && offset+len(data) <= configSize {
		copy(data, img[offset:])
	}
}

// WriteConfig implements virtio.Backend: nothing is writable without
// VIRTIO_BLK_F_CONFIG_WCE.
func (b *Block) WriteConfig(offset int, data []byte) {}

// Reset implements virtio.Backend.
func (b *Block) Reset() {}

// Process implements virtio.Backend.
func (b *Block) Process(index int, q *virtio.Queue, features uint64) error {
	for {
		ok, err := q.Pop(&b.chain)
		if err != nil || !ok {
			return err
		}
		written, err := b.request(&b.chain)
		if err != nil {
			return err
		}
		if err := q.Push(b.chain.Head, written); err != nil {
			return err
		}
	}
}

// request serves one request and returns the bytes written to the
// driver's buffers. The chain is read-only buffers (the header, then
// data for T_OUT) followed by writable ones (data for T_IN and GET_ID,
// then the status byte); the split between descriptors is not assumed.
func (b *Block) request(c *virtio.Chain) (uint32, error) {
	bufs := c.Bufs
	// The status byte is the last byte of the last buffer, which must be writable.
	var last *virtio.Buf
	for i := len(bufs) - 1; i >= 0; i-- {
		if len(bufs[i].Data) > 0 {
			last = &bufs[i]
			break
		}
	}
	if last == nil || !last.Write {
		return 0, fmt.Errorf("%w: request %d has no writable status byte", virtio.ErrMalformed, c.Head)
	}
	status := &last.Data[len(last.Data)-1]
	// Gather the header from the leading readable bytes.
	n, rest := 0, 0
	for i := range bufs {
		if bufs[i].Write || n == headerSize {
			break
		}
		k := copy(b.hdr[n:], bufs[i].Data)
		n += k
		rest = i
		if k < len(bufs[i].Data) {
			break
		}
	}
	if n < headerSize {
		*status = StatusIOErr
		return 1, nil
	}
	le := binary.LittleEndian
	typ, sector := le.Uint32(b.hdr[0:]), le.Uint64(b.hdr[8:])
	// data is the rest: from the header's end to the status byte.
	hdrEnd := headerOffsetEnd(bufs, rest)
	d := dataRange{bufs: bufs, first: rest, skip: hdrEnd, last: last}
	var st uint8
	var written uint32
	switch typ {
	case TypeIn:
		st, written = b.readData(&d, sector)
	case TypeOut:
		st = b.writeData(&d, sector)
	case TypeFlush:
		st = StatusOK
		if err := b.cfg.Disk.Flush(); err != nil {
			st = StatusIOErr
		}
	case TypeGetID:
		st, written = StatusOK, d.fill(b.id[:])
	default:
		st = StatusUnsupp
	}
	*status = st
	return written + 1, nil
}

// headerOffsetEnd returns where the header ends inside bufs[i]: the
// header's bytes are the first headerSize readable ones.
func headerOffsetEnd(bufs []virtio.Buf, i int) int {
	total := 0
	for j := 0; j < i; j++ {
		total += len(bufs[j].Data)
	}
	return headerSize - total
}

// dataRange walks the data bytes of a request: from byte skip of
// bufs[first] up to, not including, the status byte at the end of last.
type dataRange struct {
	bufs  []virtio.Buf
	first int
	skip  int
	last  *virtio.Buf
}

// each calls fn for every data segment; it stops at the first false.
func (d *dataRange) each(fn func(seg []byte, write bool) bool) {
	for i := d.first; i < len(d.bufs); i++ {
		seg := d.bufs[i].Data
		if i == d.first {
			seg = seg[d.skip:]
		}
		if &d.bufs[i] == d.last {
			seg = seg[:len(seg)-1]
		}
		if len(seg) > 0 && !fn(seg, d.bufs[i].Write) {
			return
		}
		if &d.bufs[i] == d.last {
			return
		}
	}
}

// length returns the data bytes and whether they all have direction write.
func (d *dataRange) length(write bool) (n uint64, ok bool) {
	ok = true
	d.each(func(seg []byte, w bool) bool {
		n += uint64(len(seg))
		ok = ok && w == write
		return ok
	})
	return n, ok
}

// fill copies src into the writable data segments and returns the count.
func (d *dataRange) fill(src []byte) uint32 {
	n := 0
	d.each(func(seg []byte, w bool) bool {
		if !w {
			return true
		}
		k := copy(seg, src[n:])
		n += k
		return n < len(src)
	})
	return uint32(n)
}

// inRange checks a transfer of n bytes at sector against the disk.
func (b *Block) inRange(sector, n uint64) bool {
	size := uint64(b.cfg.Disk.Size())
	return n%SectorSize == 0 && sector <= size/SectorSize && n <= size-sector*SectorSize
}

func (b *Block) readData(d *dataRange, sector uint64) (uint8, uint32) {
	n, ok := d.length(true)
	if !ok || !b.inRange(sector, n) {
		return StatusIOErr, 0
	}
	off := int64(sector * SectorSize)
	st := uint8(StatusOK)
	d.each(func(seg []byte, _ bool) bool {
		if _, err := b.cfg.Disk.ReadAt(seg, off); err != nil {
			st = StatusIOErr
			return false
		}
		off += int64(len(seg))
		return true
	})
	if st != StatusOK {
		return st, 0
	}
	return st, uint32(n)
}

func (b *Block) writeData(d *dataRange, sector uint64) uint8 {
	if b.cfg.ReadOnly {
		return StatusIOErr
	}
	n, ok := d.length(false)
	if !ok || !b.inRange(sector, n) {
		return StatusIOErr
	}
	off := int64(sector * SectorSize)
	st := uint8(StatusOK)
	d.each(func(seg []byte, _ bool) bool {
		if _, err := b.cfg.Disk.WriteAt(seg, off); err != nil {
			st = StatusIOErr
			return false
		}
		off += int64(len(seg))
		return true
	})
	return st
}

// FileDisk is a Disk over a file, with Flush as fsync. Its size is fixed
// when it is opened.
type FileDisk struct {
	f    *os.File
	size int64
}

// OpenFile opens path as a disk (read-only if readOnly).
func OpenFile(path string, readOnly bool) (*FileDisk, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("blk: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blk: %w", err)
	}
	return &FileDisk{f: f, size: st.Size()}, nil
}

func (d *FileDisk) ReadAt(p []byte, off int64) (int, error)  { return d.f.ReadAt(p, off) }
func (d *FileDisk) WriteAt(p []byte, off int64) (int, error) { return d.f.WriteAt(p, off) }
func (d *FileDisk) Flush() error                             { return d.f.Sync() }
func (d *FileDisk) Size() int64                              { return d.size }
func (d *FileDisk) Close() error                             { return d.f.Close() }
