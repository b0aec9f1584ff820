// Package disk is Godwit's view of the host's block devices: the Disk interface that the VM
// code stores guest disks on (it satisfies hv/dev/virtio/blk.Disk), the Driver interface that
// host block drivers (arch/disk/virtioblk, arch/disk/ata) implement with whole-sector I/O, a
// registry that names host disks vda, vdb, ... (virtio) and hda, hdb, ... (ATA) in discovery
// order, and regions of disks: the partitions of an MBR or GPT partition table (vda1, ...) and
// explicit byte ranges written DEV:OFFSET+SIZE. Everything is bounds-checked; partition tables
// are parsed in pure Go and a corrupt table is an error, never a panic.
package disk

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// Disk is a block device or a region of one. ReadAt and WriteAt take any offset and length
// within Size (partial sectors are read-modify-written); reads past the end return io.EOF as
// io.ReaderAt says, writes past the end ErrOutOfRange. Safe for concurrent use.
type Disk interface {
	Name() string
	Size() int64
	SectorSize() int
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	Flush() error
}

// Driver is a host block driver's device: whole sectors, concurrent calls allowed.
type Driver interface {
	Kind() string     // "virtio-blk", "ata"
	Location() string // where it sits: a PCI address or an ATA channel and position
	Sectors() int64
	SectorSize() int
	ReadSectors(p []byte, lba int64) error // len(p) a multiple of SectorSize
	WriteSectors(p []byte, lba int64) error
	Flush() error
	// IRQCount is the number of interrupts the device's vector(s) took.
	IRQCount() uint64
	// Info is a line of driver details (model, features, queue depth) for `disk list`.
	Info() string
}

// Errors callers branch on.
var (
	ErrOutOfRange = errors.New("disk: out of range")
	ErrNotFound   = errors.New("disk: no such disk or region")
	ErrSyntax     = errors.New("disk: bad region syntax")
	ErrUnaligned  = errors.New("disk: not sector aligned")
	ErrReadOnly   = errors.New("disk: read-only")
)

// Device is a whole host disk.
type Device struct {
	name string
	drv  Driver
	ss   int64
	size int64
	rmw  sync.Mutex // serializes read-modify-write of partial sectors

	// Partitions found on the disk at registration, and the error parsing them (none: nil).
	Partitions []*Region
	Scheme     string // "gpt", "mbr" or ""
	PartErr    error
}

// NewDevice wraps a driver's device as a Disk named name.
func NewDevice(name string, drv Driver) *Device {
	ss := int64(drv.SectorSize())
	return &Device{name: name, drv: drv, ss: ss, size: drv.Sectors() * ss}
}

func (d *Device) Name() string     { return d.name }
func (d *Device) Size() int64      { return d.size }
func (d *Device) SectorSize() int  { return int(d.ss) }
func (d *Device) Driver() Driver   { return d.drv }
func (d *Device) Flush() error     { return d.drv.Flush() }
func (d *Device) String() string   { return d.name }
func (d *Device) IRQCount() uint64 { return d.drv.IRQCount() }

// ReadAt reads len(p) bytes at off.
func (d *Device) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: read at %d: %w", d.name, off, ErrOutOfRange)
	}
	if off >= d.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := len(p)
	if rest := d.size - off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := d.rw(p, off, false)
	if err == nil && n < want {
		err = io.EOF
	}
	return n, err
}

// WriteAt writes len(p) bytes at off.
func (d *Device) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off > d.size || int64(len(p)) > d.size-off {
		return 0, fmt.Errorf("%s: write of %d bytes at %d (size %d): %w", d.name, len(p), off, d.size, ErrOutOfRange)
	}
	return d.rw(p, off, true)
}

// rw splits p into an unaligned head, whole sectors, and an unaligned tail.
func (d *Device) rw(p []byte, off int64, write bool) (int, error) {
	done := 0
	for len(p) > 0 {
		lba, in := off/d.ss, off%d.ss
		if in != 0 || int64(len(p)) < d.ss {
			n := int(min(int64(len(p)), d.ss-in))
			if err := d.partial(p[:n], lba, int(in), write); err != nil {
				return done, err
			}
			p, off, done = p[n:], off+int64(n), done+n
			continue
		}
		n := int64(len(p)) / d.ss * d.ss
		var err error
		if write {
			err = d.drv.WriteSectors(p[:n], lba)
		} else {
			err = d.drv.ReadSectors(p[:n], lba)
		}
		if err != nil {
			return done, fmt.Errorf("%s: %w", d.name, err)
		}
		p, off, done = p[n:], off+n, done+int(n)
	}
	return done, nil
}

func (d *Device) partial(p []byte, lba int64, in int, write bool) error {
	buf := make([]byte, d.ss)
	if write {
		d.rmw.Lock()
		defer d.rmw.Unlock()
	}
	if err := d.drv.ReadSectors(buf, lba); err != nil {
		return fmt.Errorf("%s: sector %d: %w", d.name, lba, err)
	}
	if !write {
		copy(p, buf[in:])
		return nil
	}
	copy(buf[in:], p)
	if err := d.drv.WriteSectors(buf, lba); err != nil {
		return fmt.Errorf("%s: sector %d: %w", d.name, lba, err)
	}
	return nil
}
