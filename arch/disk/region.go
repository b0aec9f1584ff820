package disk

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Region is a byte range of a disk: a partition or an explicit DEV:OFFSET+SIZE range. Its I/O
// is checked against its own bounds before it reaches the disk.
type Region struct {
	name   string
	parent *Device
	off    int64
	size   int64

	// Index is the partition number (1-based; 0 for an explicit range), Label the GPT
	// partition name, Type the GPT type GUID or the MBR type byte.
	Index int
	Label string
	Type  string
}

// NewRegion returns the region [off, off+size) of d, which must be sector aligned and inside d.
func NewRegion(name string, d *Device, off, size int64) (*Region, error) {
	ss := d.ss
	if off%ss != 0 || size%ss != 0 {
		return nil, fmt.Errorf("%s: region %d+%d: %w to the %d-byte sector", d.name, off, size, ErrUnaligned, ss)
	}
	if off < 0 || size <= 0 || off > d.size || size > d.size-off {
		return nil, fmt.Errorf("%s: region %d+%d outside the disk's %d bytes: %w", d.name, off, size, d.size, ErrOutOfRange)
	}
	return &Region{name: name, parent: d, off: off, size: size}, nil
}

func (r *Region) Name() string     { return r.name }
func (r *Region) Size() int64      { return r.size }
func (r *Region) SectorSize() int  { return int(r.parent.ss) }
func (r *Region) Offset() int64    { return r.off }
func (r *Region) Parent() *Device  { return r.parent }
func (r *Region) Flush() error     { return r.parent.Flush() }
func (r *Region) String() string   { return r.name }
func (r *Region) IRQCount() uint64 { return r.parent.IRQCount() }

// ReadAt reads within the region; past its end it returns io.EOF.
func (r *Region) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: read at %d: %w", r.name, off, ErrOutOfRange)
	}
	if off >= r.size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := len(p)
	if rest := r.size - off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := r.parent.ReadAt(p, r.off+off)
	if err == nil && n < want {
		err = io.EOF
	}
	return n, err
}

// WriteAt writes within the region; anything reaching past its end is refused whole.
func (r *Region) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off > r.size || int64(len(p)) > r.size-off {
		return 0, fmt.Errorf("%s: write of %d bytes at %d (region of %d): %w", r.name, len(p), off, r.size, ErrOutOfRange)
	}
	return r.parent.WriteAt(p, r.off+off)
}

// ParseSize reads a byte count: decimal digits with an optional binary suffix K, M, G or T
// (KiB, MiB, GiB, TiB), or 0x-prefixed hex.
func ParseSize(s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty size: %w", ErrSyntax)
	}
	mult := int64(1)
	switch s[len(s)-1] {
	case 'k', 'K':
		mult = 1 << 10
	case 'm', 'M':
		mult = 1 << 20
	case 'g', 'G':
		mult = 1 << 30
	case 't', 'T':
		mult = 1 << 40
	}
	num := s
	if mult != 1 {
		num = s[:len(s)-1]
	}
	v, err := strconv.ParseInt(num, 0, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("size %q: %w", s, ErrSyntax)
	}
	if v > (1<<62)/mult {
		return 0, fmt.Errorf("size %q too large: %w", s, ErrSyntax)
	}
	return v * mult, nil
}

// parseRange splits "DEV:OFFSET+SIZE".
func parseRange(spec string) (dev string, off, size int64, err error) {
	dev, rng, ok := strings.Cut(spec, ":")
	if !ok || dev == "" {
		return "", 0, 0, fmt.Errorf("%q: want DEV:OFFSET+SIZE: %w", spec, ErrSyntax)
	}
	o, s, ok := strings.Cut(rng, "+")
	if !ok {
		return "", 0, 0, fmt.Errorf("%q: want DEV:OFFSET+SIZE: %w", spec, ErrSyntax)
	}
	if off, err = ParseSize(o); err != nil {
		return "", 0, 0, fmt.Errorf("%q: offset: %w", spec, err)
	}
	if size, err = ParseSize(s); err != nil {
		return "", 0, 0, fmt.Errorf("%q: size: %w", spec, err)
	}
	if size == 0 {
		return "", 0, 0, fmt.Errorf("%q: empty region: %w", spec, ErrSyntax)
	}
	return dev, off, size, nil
}
