package main

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/godwit-hv/godwit/arch/disk"
	"github.com/godwit-hv/godwit/arch/disk/ata"
	"github.com/godwit-hv/godwit/arch/disk/virtioblk"
	"github.com/godwit-hv/godwit/arch/pci"
	"github.com/godwit-hv/godwit/arch/ring0"
)

// The host's disks, probed at first use: virtio-blk functions in PCI order (vda, vdb, ...),
// then the ATA disks of the legacy IDE channels (hda, hdb, ...).
var hostDiskState struct {
	sync.Once
	reg *disk.Registry
	err error
}

// hostDisks returns the registry of host disks, probing the drivers on the first call. The VM
// code resolves disk=NAME through it.
func hostDisks() (*disk.Registry, error) {
	hostDiskState.Do(func() {
		if !ring0.BareMetal() {
			hostDiskState.err = fmt.Errorf("host disks: %w", ring0.ErrNotBareMetal)
			return
		}
		reg := disk.NewRegistry()
		devs, err := pci.Devices()
		if err != nil {
			reg.AddError(fmt.Errorf("PCI scan: %w", err))
		}
		vdrv, errs := virtioblk.Probe(devs)
		for _, e := range errs {
			reg.AddError(e)
		}
		for _, d := range vdrv {
			reg.Add(disk.PrefixVirtio, d)
		}
		adrv, errs := ata.Probe()
		for _, e := range errs {
			reg.AddError(e)
		}
		for _, d := range adrv {
			reg.Add(disk.PrefixATA, d)
		}
		hostDiskState.reg = reg
	})
	return hostDiskState.reg, hostDiskState.err
}

func init() {
	extraCommands = append(extraCommands, &command{"disk",
		"disk list | disk bench NAME [SIZE]",
		"host disks: list disks, partitions and interrupt counts; time a sequential read of SIZE (default 64M or the whole disk if smaller) and print its CRC32 (NAME: vda, vda1, hda, or DEV:OFFSET+SIZE, e.g. vda:1M+64M)",
		cmdDisk})
}

func cmdDisk(sh *shell, args []string) error {
	if len(args) == 0 {
		return errUsage
	}
	switch args[0] {
	case "list":
		if len(args) != 1 {
			return errUsage
		}
		reg, err := hostDisks()
		if err != nil {
			return err
		}
		return diskList(sh.out, reg)
	case "bench":
		if len(args) < 2 || len(args) > 3 {
			return errUsage
		}
		reg, err := hostDisks()
		if err != nil {
			return err
		}
		size := int64(-1) // default: 64 MiB or the whole region if smaller
		if len(args) == 3 {
			if size, err = disk.ParseSize(args[2]); err != nil {
				return err
			}
		}
		return diskBench(sh.out, reg, args[1], size)
	}
	return errUsage
}

// humanBytes prints a size in binary units.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func diskList(w io.Writer, reg *disk.Registry) error {
	disks := reg.Disks()
	if len(disks) == 0 {
		fmt.Fprintln(w, "no host disks")
	}
	for _, d := range disks {
		drv := d.Driver()
		fmt.Fprintf(w, "%-6s %-10s %12d bytes (%s)  sector %d  %s  irqs %d\n",
			d.Name(), drv.Kind(), d.Size(), humanBytes(d.Size()), d.SectorSize(), drv.Location(), d.IRQCount())
		if info := drv.Info(); info != "" {
			fmt.Fprintf(w, "       %s\n", info)
		}
		if d.Scheme != disk.SchemeNone {
			fmt.Fprintf(w, "       %s partition table, %d partitions\n", strings.ToUpper(d.Scheme), len(d.Partitions))
		}
		for _, p := range d.Partitions {
			label := ""
			if p.Label != "" {
				label = fmt.Sprintf("  name %q", p.Label)
			}
			fmt.Fprintf(w, "  %-7s offset %12d  size %12d (%s)  type %s%s\n",
				p.Name(), p.Offset(), p.Size(), humanBytes(p.Size()), p.Type, label)
		}
		if d.PartErr != nil {
			fmt.Fprintf(w, "       partition table: %v\n", d.PartErr)
		}
	}
	for _, e := range reg.Errors {
		fmt.Fprintf(w, "probe error: %v\n", e)
	}
	return nil
}

// disk bench reads benchDefault bytes unless told otherwise, benchBuffer at a time.
const (
	benchDefault = 64 << 20
	benchBuffer  = 1 << 20
)

func diskBench(w io.Writer, reg *disk.Registry, name string, size int64) error {
	d, err := reg.Lookup(name)
	if err != nil {
		return err
	}
	if size < 0 {
		size = min(benchDefault, d.Size())
	}
	if size == 0 || size > d.Size() {
		return fmt.Errorf("%s: %d bytes requested, it holds %d: %w", name, size, d.Size(), disk.ErrOutOfRange)
	}
	buf := make([]byte, benchBuffer)
	h := crc32.NewIEEE()
	start := time.Now()
	for off := int64(0); off < size; {
		n := int(min(int64(len(buf)), size-off))
		got, err := d.ReadAt(buf[:n], off)
		if err != nil && !(errors.Is(err, io.EOF) && got == n) {
			return fmt.Errorf("%s at %d: %w", name, off, err)
		}
		h.Write(buf[:n])
		off += int64(n)
	}
	el := time.Since(start)
	fmt.Fprintf(w, "disk bench %s: read %d bytes in %.3f s: %.1f MiB/s, crc32 %08x\n",
		name, size, el.Seconds(), float64(size)/(1<<20)/el.Seconds(), h.Sum32())
	return nil
}
