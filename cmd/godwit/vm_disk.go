package main

import (
	"fmt"
	"sync"

	"github.com/godwit-hv/godwit/arch/disk"
	"github.com/godwit-hv/godwit/hv"
)

// Guest disks are host disks or regions of them (`disk list`). A byte range of a host disk
// belongs to one VM at a time: two guests writing one file system would corrupt it, so a
// `disk=` that overlaps a range another VM holds is refused until that VM is deleted.

type diskClaim struct {
	vm        string
	dev       *disk.Device
	off, size int64
}

var diskClaims struct {
	mu     sync.Mutex
	claims []diskClaim
}

// span returns the whole disk a disk or region is on and its byte range there.
func span(d disk.Disk) (*disk.Device, int64, int64, error) {
	switch v := d.(type) {
	case *disk.Device:
		return v, 0, v.Size(), nil
	case *disk.Region:
		return v.Parent(), v.Offset(), v.Size(), nil
	}
	return nil, 0, 0, fmt.Errorf("%s: unknown kind of disk %T", d.Name(), d)
}

// claimDisks resolves the names for VM vm and claims their ranges, all or none.
func claimDisks(vm string, names []string) ([]hv.Disk, error) {
	if len(names) == 0 {
		return nil, nil
	}
	reg, err := hostDisks()
	if err != nil {
		return nil, err
	}
	diskClaims.mu.Lock()
	defer diskClaims.mu.Unlock()
	var out []hv.Disk
	var mine []diskClaim
	for _, n := range names {
		d, err := reg.Lookup(n)
		if err != nil {
			return nil, fmt.Errorf("disk=%s: %w (see `disk list`)", n, err)
		}
		dev, off, size, err := span(d)
		if err != nil {
			return nil, err
		}
		c := diskClaim{vm: vm, dev: dev, off: off, size: size}
		for _, o := range append(diskClaims.claims, mine...) {
			if o.dev == c.dev && o.off < c.off+c.size && c.off < o.off+o.size {
				who := "VM " + o.vm
				if o.vm == vm {
					who = "this VM's other disk"
				}
				return nil, fmt.Errorf("disk=%s: overlaps %s's bytes %d-%d of %s, which %s uses", n, dev.Name(), o.off, o.off+o.size, dev.Name(), who)
			}
		}
		mine = append(mine, c)
		out = append(out, hv.Disk{ID: n, Backing: d})
	}
	diskClaims.claims = append(diskClaims.claims, mine...)
	return out, nil
}

// releaseDisks frees the ranges a deleted VM held.
func releaseDisks(vm string) {
	diskClaims.mu.Lock()
	defer diskClaims.mu.Unlock()
	kept := diskClaims.claims[:0]
	for _, c := range diskClaims.claims {
		if c.vm != vm {
			kept = append(kept, c)
		}
	}
	diskClaims.claims = kept
}
