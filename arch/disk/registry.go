package disk

import (
	"fmt"
	"strconv"
	"sync"
)

// Registry is the set of host disks, named in the order drivers registered them: vda, vdb, ...
// for virtio, hda, hdb, ... for ATA, each with the partitions found on it (vda1, ...).
type Registry struct {
	mu     sync.Mutex
	disks  []*Device
	byName map[string]Disk
	count  map[string]int
	// Errors are the problems met while probing (a driver that failed to start), kept for
	// `disk list`.
	Errors []error
}

// Name prefixes.
const (
	PrefixVirtio = "vd"
	PrefixATA    = "hd"
)

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{byName: map[string]Disk{}, count: map[string]int{}}
}

// diskName is the n-th (0-based) name with prefix, as Linux names disks: a..z, aa..zz, ...
func diskName(prefix string, n int) string {
	s := ""
	for n++; n > 0; n = (n - 1) / 26 {
		s = string(rune('a'+(n-1)%26)) + s
	}
	return prefix + s
}

// Add registers drv as the next disk with prefix and reads its partition table (a corrupt
// table is recorded in the device's PartErr, not fatal).
func (r *Registry) Add(prefix string, drv Driver) *Device {
	r.mu.Lock()
	name := diskName(prefix, r.count[prefix])
	r.count[prefix]++
	d := NewDevice(name, drv)
	r.disks = append(r.disks, d)
	r.byName[name] = d
	r.mu.Unlock()

	scheme, parts, err := ReadPartitions(d, d.Size(), d.SectorSize())
	d.Scheme, d.PartErr = scheme, err
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range parts {
		reg, err := NewRegion(name+strconv.Itoa(p.Index), d, p.Start, p.Size)
		if err != nil {
			d.PartErr = fmt.Errorf("partition %d: %w", p.Index, err)
			continue
		}
		reg.Index, reg.Label, reg.Type = p.Index, p.Label, p.Type
		d.Partitions = append(d.Partitions, reg)
		r.byName[reg.name] = reg
	}
	return d
}

// AddError records a probe failure.
func (r *Registry) AddError(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Errors = append(r.Errors, err)
}

// Disks returns the whole disks in registration order.
func (r *Registry) Disks() []*Device {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Device(nil), r.disks...)
}

// Lookup resolves a disk name (vda), a partition (vda2) or an explicit region DEV:OFFSET+SIZE
// whose DEV is a disk or partition and whose bounds lie inside it, sector aligned.
func (r *Registry) Lookup(name string) (Disk, error) {
	r.mu.Lock()
	d, ok := r.byName[name]
	r.mu.Unlock()
	if ok {
		return d, nil
	}
	dev, off, size, err := parseRange(name)
	if err != nil {
		if _, _, isRange := cutColon(name); !isRange {
			return nil, fmt.Errorf("%q: %w", name, ErrNotFound)
		}
		return nil, err
	}
	r.mu.Lock()
	base, ok := r.byName[dev]
	r.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%q: %w", dev, ErrNotFound)
	}
	switch b := base.(type) {
	case *Device:
		return NewRegion(name, b, off, size)
	case *Region:
		if off > b.size || size > b.size-off {
			return nil, fmt.Errorf("%s: region %d+%d outside the partition's %d bytes: %w", dev, off, size, b.size, ErrOutOfRange)
		}
		return NewRegion(name, b.parent, b.off+off, size)
	}
	return nil, fmt.Errorf("%q: %w", name, ErrNotFound)
}

func cutColon(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
