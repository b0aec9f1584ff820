package clustertest

import (
	"fmt"
	"sync"

	"github.com/godwit-hv/godwit/cluster"
)

// MemDevice is an in-memory BlockDevice, for fast exhaustive tests.
type MemDevice struct {
	mu  sync.RWMutex
	ss  int
	buf []byte
}

// NewMemDevice makes a zeroed device of size bytes.
func NewMemDevice(size int64, sectorSize int) *MemDevice {
	return &MemDevice{ss: sectorSize, buf: make([]byte, size/int64(sectorSize)*int64(sectorSize))}
}

func (d *MemDevice) SectorSize() int { return d.ss }
func (d *MemDevice) Sectors() int64  { return int64(len(d.buf) / d.ss) }
func (d *MemDevice) Flush() error    { return nil }

func (d *MemDevice) span(lba int64, p []byte) (int64, error) {
	if len(p) == 0 || len(p)%d.ss != 0 || lba < 0 || lba*int64(d.ss)+int64(len(p)) > int64(len(d.buf)) {
		return 0, fmt.Errorf("%w: I/O of %d bytes at sector %d", cluster.ErrInvalid, len(p), lba)
	}
	return lba * int64(d.ss), nil
}

func (d *MemDevice) ReadSectors(lba int64, p []byte) error {
	off, err := d.span(lba, p)
	if err != nil {
		return err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	copy(p, d.buf[off:])
	return nil
}

func (d *MemDevice) WriteSectors(lba int64, p []byte) error {
	off, err := d.span(lba, p)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	copy(d.buf[off:], p)
	return nil
}

// Bytes gives direct access to the contents (for corruption tests).
func (d *MemDevice) Bytes() []byte { return d.buf }
