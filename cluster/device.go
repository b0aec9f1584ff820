package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Sector sizes a LUN may use. 512 is the classic logical block size; 4096
// is the native size of "4Kn" drives. sanlock supports both (its lease
// alignment scales with the sector size).
const (
	SectorSize512  = 512
	SectorSize4096 = 4096
)

// BlockDevice is the shared LUN as seen by one host. It is deliberately
// small and free of OS specifics: the hypervisor kernel implements it over
// its virtio-blk host driver, tests over a file.
//
// Reads and writes address whole sectors; len(p) must be a non-zero
// multiple of SectorSize. A write of one sector is assumed atomic on real
// hardware, as sanlock assumes; the format nevertheless detects a torn
// sector by checksum and keeps the previous state of every lease record in a
// second slot so a torn write never loses the last good state.
type BlockDevice interface {
	SectorSize() int
	Sectors() int64
	ReadSectors(lba int64, p []byte) error
	WriteSectors(lba int64, p []byte) error
	Flush() error
}

func checkIO(d BlockDevice, lba int64, p []byte) error {
	ss := d.SectorSize()
	if len(p) == 0 || len(p)%ss != 0 {
		return fmt.Errorf("%w: buffer of %d bytes is not a multiple of sector size %d", ErrInvalid, len(p), ss)
	}
	n := int64(len(p) / ss)
	if lba < 0 || lba+n > d.Sectors() {
		return fmt.Errorf("%w: sectors [%d,%d) outside device of %d sectors", ErrInvalid, lba, lba+n, d.Sectors())
	}
	return nil
}

// FileDevice is a BlockDevice over a regular file or a Linux block device
// node, using positioned reads and writes and fsync for Flush.
type FileDevice struct {
	f       *os.File
	ss      int
	sectors int64
}

// CreateFile creates (or truncates) an image file of size bytes.
func CreateFile(path string, size int64, sectorSize int) (*FileDevice, error) {
	if err := validSectorSize(sectorSize); err != nil {
		return nil, err
	}
	if size < int64(sectorSize) || size%int64(sectorSize) != 0 {
		return nil, fmt.Errorf("%w: size %d is not a positive multiple of sector size %d", ErrInvalid, size, sectorSize)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create LUN image: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, fmt.Errorf("create LUN image %s: %w", path, err)
	}
	return &FileDevice{f: f, ss: sectorSize, sectors: size / int64(sectorSize)}, nil
}

// OpenFile opens an existing image file or block device. With sectorSize 0
// the size is taken from the superblock if there is a plausible one, else 512.
func OpenFile(path string, sectorSize int, readOnly bool) (*FileDevice, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("open LUN: %w", err)
	}
	size, err := f.Seek(0, io.SeekEnd) // works for block device nodes too
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open LUN %s: size: %w", path, err)
	}
	if sectorSize == 0 {
		sectorSize = probeSectorSize(f)
	}
	if err := validSectorSize(sectorSize); err != nil {
		f.Close()
		return nil, err
	}
	if size < int64(sectorSize) {
		f.Close()
		return nil, fmt.Errorf("%w: %s is %d bytes, smaller than one sector", ErrInvalid, path, size)
	}
	return &FileDevice{f: f, ss: sectorSize, sectors: size / int64(sectorSize)}, nil
}

// probeSectorSize reads the sector-size field of a superblock without
// trusting it: Open validates the whole record afterwards.
func probeSectorSize(f *os.File) int {
	var b [superSectorSizeOff + 4]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		return SectorSize512
	}
	if binary.LittleEndian.Uint32(b[0:]) != magicSuperblock {
		return SectorSize512
	}
	if ss := int(binary.LittleEndian.Uint32(b[superSectorSizeOff:])); ss == SectorSize4096 {
		return ss
	}
	return SectorSize512
}

func validSectorSize(ss int) error {
	if ss != SectorSize512 && ss != SectorSize4096 {
		return fmt.Errorf("%w: sector size %d (want 512 or 4096)", ErrInvalid, ss)
	}
	return nil
}

func (d *FileDevice) SectorSize() int { return d.ss }
func (d *FileDevice) Sectors() int64  { return d.sectors }

func (d *FileDevice) ReadSectors(lba int64, p []byte) error {
	if err := checkIO(d, lba, p); err != nil {
		return err
	}
	n, err := d.f.ReadAt(p, lba*int64(d.ss))
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read sectors [%d,+%d): %w", lba, len(p)/d.ss, err)
}

func (d *FileDevice) WriteSectors(lba int64, p []byte) error {
	if err := checkIO(d, lba, p); err != nil {
		return err
	}
	if _, err := d.f.WriteAt(p, lba*int64(d.ss)); err != nil {
		return fmt.Errorf("write sectors [%d,+%d): %w", lba, len(p)/d.ss, err)
	}
	return nil
}

func (d *FileDevice) Flush() error {
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

// Close closes the underlying file.
func (d *FileDevice) Close() error { return d.f.Close() }
