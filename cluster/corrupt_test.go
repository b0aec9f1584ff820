package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/godwit-hv/godwit/cluster"
	"github.com/godwit-hv/godwit/cluster/clustertest"
)

// recordAt names the record in sector lba of a LUN with layout lay, as
// CorruptError and Check name it ("" for padding that holds no record).
func recordAt(lay cluster.Layout, lba int64) string {
	H := int64(lay.MaxHosts)
	area := func(prefix string, off int64) string {
		if off < 2 {
			return fmt.Sprintf("%s leader slot %d", prefix, off)
		}
		return fmt.Sprintf("%s dblock host %d slot %d", prefix, (off-2)/2+1, (off-2)%2)
	}
	switch {
	case lba == 0:
		return "superblock"
	case lba < lay.HostLeaseStart+H:
		return fmt.Sprintf("host lease %d", lba-lay.HostLeaseStart+1)
	case lba < lay.DirLeaseStart+lay.LeaseAreaSectors:
		return area("directory lease", lba-lay.DirLeaseStart)
	case lba < lay.BitmapStart:
		return fmt.Sprintf("directory entry %d", lba-lay.DirStart)
	case lba < lay.VolLeaseStart:
		return fmt.Sprintf("bitmap page %d", lba-lay.BitmapStart)
	case lba < lay.VolLeaseStart+int64(lay.MaxVolumes)*lay.LeaseAreaSectors:
		off := lba - lay.VolLeaseStart
		return area(fmt.Sprintf("volume lease %d", off/lay.LeaseAreaSectors), off%lay.LeaseAreaSectors)
	}
	return ""
}

// populatedLUN formats a small LUN on memory and puts every kind of record
// in a non-initial state: volumes created, grown, deleted, leases acquired,
// released and handed over, a host that left and one that still holds.
func populatedLUN(t *testing.T, ss int) (*clustertest.MemDevice, *cluster.LUN) {
	t.Helper()
	dev := clustertest.NewMemDevice(4<<20, ss)
	l, err := cluster.Format(dev, cluster.FormatOptions{MaxHosts: 4, MaxVolumes: 4, AUSize: 64 << 10, Label: "corrupt-test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a := join(t, l, 1, nil)
	b := join(t, l, 2, nil)
	for _, n := range []string{"v0", "v1", "gone"} {
		if err := a.CreateVolume(ctx, n, 100<<10); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.GrowVolume(ctx, "v1", 300<<10); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteVolume(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	v0, err := a.Acquire("v0")
	if err != nil {
		t.Fatal(err)
	}
	n, err := v0.Release()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.AcquireVersion("v0", n); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Acquire("v1"); err != nil {
		t.Fatal(err)
	}
	if err := a.Leave(); err != nil {
		t.Fatal(err)
	}
	b.Abandon() // stops renewing; nothing writes from here on
	rep, err := cluster.Check(dev)
	if err != nil || !rep.Clean() {
		t.Fatalf("Check of the populated LUN = %v, %v", err, rep.Problems)
	}
	return dev, l
}

func hasProblem(rep *cluster.CheckReport, record string) bool {
	for _, p := range rep.Problems {
		var ce *cluster.CorruptError
		if p.Record == record && errors.As(p.Err, &ce) && ce.Record == record {
			return true
		}
	}
	return false
}

// TestCheckDetectsEveryByte flips every byte of every metadata sector, one
// at a time (exhaustively for 512-byte sectors, every 29th byte for 4096),
// and requires Check to report a CorruptError naming exactly that record.
func TestCheckDetectsEveryByte(t *testing.T) {
	for _, tc := range []struct{ ss, stride int }{{512, 1}, {4096, 29}} {
		dev, l := populatedLUN(t, tc.ss)
		lay := l.Layout()
		buf := dev.Bytes()
		records, flips := 0, 0
		end := lay.VolLeaseStart + int64(lay.MaxVolumes)*lay.LeaseAreaSectors
		for lba := int64(0); lba < end; lba++ {
			name := recordAt(lay, lba)
			if name == "" {
				continue
			}
			records++
			for i := 0; i < tc.ss; i += tc.stride {
				off := int(lba)*tc.ss + i
				buf[off] ^= 0xff
				rep, err := cluster.Check(dev)
				buf[off] ^= 0xff
				flips++
				if err != nil {
					t.Fatalf("ss %d: Check with byte %d of %s flipped = %v", tc.ss, i, name, err)
				}
				if !hasProblem(rep, name) {
					t.Fatalf("ss %d: flipping byte %d of %s (sector %d): Check problems = %v, want one naming %q", tc.ss, i, name, lba, rep.Problems, name)
				}
			}
		}
		t.Logf("sector size %d: %d records, %d flips, all detected", tc.ss, records, flips)
	}
}

// TestLibraryNamesCorruptRecords checks that the operations that read a
// record report its corruption by name rather than using it.
func TestLibraryNamesCorruptRecords(t *testing.T) {
	dev, l := populatedLUN(t, 512)
	lay := l.Layout()
	buf := dev.Bytes()
	flip := func(lba int64, i int) func() {
		buf[int(lba)*512+i] ^= 0x5a
		return func() { buf[int(lba)*512+i] ^= 0x5a }
	}
	wantNamed := func(what string, err error, record string) {
		t.Helper()
		var ce *cluster.CorruptError
		if !errors.As(err, &ce) || ce.Record != record || !errors.Is(err, cluster.ErrCorrupt) {
			t.Errorf("%s = %v, want a CorruptError naming %q", what, err, record)
			return
		}
		if !strings.Contains(err.Error(), record) || !strings.Contains(err.Error(), fmt.Sprint("sector ", ce.LBA)) {
			t.Errorf("%s message %q does not name record and sector", what, err)
		}
	}

	undo := flip(0, 100)
	_, err := cluster.Open(dev)
	wantNamed("Open with corrupt superblock", err, "superblock")
	undo()

	undo = flip(lay.HostLeaseStart+1, 40)
	_, err = l.Hosts()
	wantNamed("Hosts with corrupt host lease 2", err, "host lease 2")
	undo()

	undo = flip(lay.DirStart, 60)
	_, err = l.List()
	wantNamed("List with corrupt directory entry", err, "directory entry 0")
	h := join(t, l, 3, nil)
	_, err = h.Acquire("v0")
	wantNamed("Acquire of a volume in a corrupt entry", err, "directory entry 0")
	undo()

	vl := lay.VolLeaseStart // volume lease 0 (v0)
	for _, c := range []struct {
		lba    int64
		record string
	}{
		{vl + 1, "volume lease 0 leader slot 1"},
		{vl + 2 + 2, "volume lease 0 dblock host 2 slot 0"},
		{vl + 2 + 3, "volume lease 0 dblock host 2 slot 1"},
	} {
		undo = flip(c.lba, 300)
		vols, err := l.List()
		wantNamed("List", err, c.record)
		if len(vols) == 0 || vols[0].LeaseErr == nil {
			t.Errorf("List with %s corrupt: VolumeInfo.LeaseErr not set", c.record)
		}
		undo()
	}

	// Both leader slots unreadable: the lease is refused, not guessed.
	undo = flip(vl, 30)
	undo2 := flip(vl+1, 30)
	_, err = h.Acquire("v0")
	if !errors.Is(err, cluster.ErrCorrupt) {
		t.Errorf("Acquire with both leader slots corrupt = %v, want ErrCorrupt", err)
	}
	undo2()
	undo()

	undo = flip(lay.BitmapStart, 200)
	err = h.CreateVolume(context.Background(), "new", 64<<10)
	wantNamed("CreateVolume with corrupt bitmap", err, "bitmap page 0")
	undo()

	if err := h.CreateVolume(context.Background(), "new", 64<<10); err != nil {
		t.Errorf("CreateVolume after repair = %v", err)
	}
}
