package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/cluster"
)

func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(strings.NewReader(""), &out, &errb, args)
	return out.String(), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runCmd(t, args...)
	if err != nil {
		t.Fatalf("run %v = %v\n%s", args, err, out)
	}
	return out
}

const fastIO = "--io-timeout=20ms"

func TestLifecycle(t *testing.T) {
	for _, ss := range []string{"512", "4096"} {
		img := filepath.Join(t.TempDir(), "lun.img")
		out := mustRun(t, "format", img, "--size", "64M", "--hosts", "4", "--sector", ss, "--volumes", "8", "--label", "rig")
		if !strings.Contains(out, "formatted") || !strings.Contains(out, ss+"-byte sectors") || !strings.Contains(out, "4 hosts") {
			t.Errorf("format output = %q", out)
		}
		if out := mustRun(t, "ls", img); strings.Count(out, "\n") != 1 {
			t.Errorf("ls of an empty LUN = %q, want only the header", out)
		}
		mustRun(t, "create", img, "vm1-root", "10M", fastIO)
		mustRun(t, "create", img, "vm2-root", "3M", fastIO, "--host-id", "2")
		if _, err := runCmd(t, "create", img, "vm1-root", "1M", fastIO); !errors.Is(err, cluster.ErrExists) {
			t.Errorf("create of an existing name = %v, want ErrExists", err)
		}
		if _, err := runCmd(t, "create", img, "huge", "1T", fastIO); !errors.Is(err, cluster.ErrNoSpace) {
			t.Errorf("create bigger than the LUN = %v, want ErrNoSpace", err)
		}
		out = mustRun(t, "ls", img)
		for _, want := range []string{"vm1-root", "10M", "vm2-root", "3M"} {
			if !strings.Contains(out, want) {
				t.Errorf("ls = %q, missing %q", out, want)
			}
		}
		out = mustRun(t, "hosts", img)
		if !strings.Contains(out, "godwit-lun") || !strings.Contains(out, "released") {
			t.Errorf("hosts = %q, want the tool's released lease", out)
		}
		out = mustRun(t, "check", img)
		if !strings.HasPrefix(out, "clean:") || !strings.Contains(out, "2 volume(s)") {
			t.Errorf("check = %q", out)
		}
		mustRun(t, "rm", img, "vm1-root", fastIO)
		if _, err := runCmd(t, "rm", img, "vm1-root", fastIO); !errors.Is(err, cluster.ErrNotFound) {
			t.Errorf("rm of a removed volume = %v, want ErrNotFound", err)
		}
		out = mustRun(t, "ls", img)
		if strings.Contains(out, "vm1-root") || !strings.Contains(out, "vm2-root") {
			t.Errorf("ls after rm = %q", out)
		}
		mustRun(t, "check", img)
	}
}

func TestHostsWatch(t *testing.T) {
	img := filepath.Join(t.TempDir(), "lun.img")
	mustRun(t, "format", img, "--size", "16M", "--hosts", "2", "--volumes", "2")
	dev, err := cluster.OpenFile(img, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	l, err := cluster.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	h, err := l.Join(t.Context(), cluster.HostConfig{ID: 1, Name: "live", Timeouts: cluster.DeriveTimeouts(20 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Leave()
	out := mustRun(t, "hosts", img, "--watch", "200ms")
	if !strings.Contains(out, "live") || !strings.Contains(out, "alive (renewed while watched)") {
		t.Errorf("hosts --watch with a live host = %q", out)
	}
}

// TestCheckNamesEveryRecord corrupts one byte of every metadata record of
// a LUN in turn; check must fail and name that record.
func TestCheckNamesEveryRecord(t *testing.T) {
	img := filepath.Join(t.TempDir(), "lun.img")
	mustRun(t, "format", img, "--size", "8M", "--hosts", "2", "--volumes", "2", "--au", "64K")
	mustRun(t, "create", img, "disk", "1M", fastIO, "--host-id", "1")
	dev, err := cluster.OpenFile(img, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	l, err := cluster.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	lay := l.Layout()
	dev.Close()
	end := lay.VolLeaseStart + int64(lay.MaxVolumes)*lay.LeaseAreaSectors
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for lba := int64(0); lba < end; lba++ {
		name := recordName(lay, lba)
		off := lba*512 + (lba*37)%512 // a different byte in each record
		b := []byte{0}
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte{b[0] ^ 0x01}, off); err != nil {
			t.Fatal(err)
		}
		out, err := runCmd(t, "check", img)
		if _, werr := f.WriteAt(b, off); werr != nil {
			t.Fatal(werr)
		}
		if lba == 0 {
			if err == nil || !strings.Contains(out, "PROBLEM superblock") {
				t.Errorf("check with the superblock corrupt = %v, %q", err, out)
			}
			continue
		}
		if !errors.Is(err, errNotClean) || !strings.Contains(out, "PROBLEM "+name+":") {
			t.Errorf("check with byte %d of %s flipped = %v, output %q; want it named", off-lba*512, name, err, out)
		}
	}
	if _, err := runCmd(t, "check", img); err != nil {
		t.Errorf("check after restoring every byte = %v", err)
	}
}

func recordName(lay cluster.Layout, lba int64) string {
	area := func(prefix string, off int64) string {
		if off < 2 {
			return fmt.Sprintf("%s leader slot %d", prefix, off)
		}
		return fmt.Sprintf("%s dblock host %d slot %d", prefix, (off-2)/2+1, (off-2)%2)
	}
	switch {
	case lba == 0:
		return "superblock"
	case lba < lay.DirLeaseStart:
		return fmt.Sprintf("host lease %d", lba-lay.HostLeaseStart+1)
	case lba < lay.DirStart:
		return area("directory lease", lba-lay.DirLeaseStart)
	case lba < lay.BitmapStart:
		return fmt.Sprintf("directory entry %d", lba-lay.DirStart)
	case lba < lay.VolLeaseStart:
		return fmt.Sprintf("bitmap page %d", lba-lay.BitmapStart)
	}
	off := lba - lay.VolLeaseStart
	return area(fmt.Sprintf("volume lease %d", off/lay.LeaseAreaSectors), off%lay.LeaseAreaSectors)
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "lun.img")
	mustRun(t, "format", img, "--size", "16M", "--hosts", "2", "--volumes", "2")
	zeros := filepath.Join(dir, "zeros.img")
	if err := os.WriteFile(zeros, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args  []string
		usage bool   // want a usageError
		want  string // substring of the error
	}{
		{nil, true, "no command"},
		{[]string{"frobnicate", img}, true, "unknown command"},
		{[]string{"ls"}, true, "takes 1 argument"},
		{[]string{"create", img, "x"}, true, "takes 3 argument"},
		{[]string{"create", img, "x", "12Q", fastIO}, true, "bad size"},
		{[]string{"create", img, "x", "-5", fastIO}, true, "bad size"},
		{[]string{"ls", img, "--watch"}, true, "needs a value"},
		{[]string{"create", img, "x", "1000", fastIO}, false, "multiple of the 512-byte sector"},
		{[]string{"create", img, "bad/name", "1M", fastIO}, true, "not allowed"},
		{[]string{"create", img, "x", "1M", "--io-timeout", "0s"}, true, "io timeout"},
		{[]string{"create", img, "x", "1M", fastIO, "--host-id", "3"}, false, "outside [1,2]"},
		{[]string{"format", img, "--sector", "1000"}, true, "512 or 4096"},
		{[]string{"format", img, "--size", "1M"}, false, "exists"},
		{[]string{"format", filepath.Join(dir, "tiny.img"), "--size", "4K"}, false, "too small"},
		{[]string{"format", filepath.Join(dir, "h.img"), "--size", "16M", "--hosts", "0"}, true, "at least 1"},
		{[]string{"format", filepath.Join(dir, "h.img"), "--size", "16M", "--hosts", "5000"}, false, "max hosts"},
		{[]string{"format", filepath.Join(dir, "missing.img")}, false, "--size"},
		{[]string{"ls", filepath.Join(dir, "missing.img")}, false, "no such file"},
		{[]string{"ls", zeros}, false, "corrupt superblock"},
		{[]string{"hosts", zeros}, false, "corrupt superblock"},
		{[]string{"check", zeros}, false, "not clean"},
		{[]string{"ls", img, "--bogus", "1"}, true, "not defined"},
	} {
		_, err := runCmd(t, tc.args...)
		var ue usageError
		if err == nil || !strings.Contains(err.Error(), tc.want) || errors.As(err, &ue) != tc.usage {
			t.Errorf("run %q = %v (usage error %v), want error containing %q (usage error %v)", tc.args, err, errors.As(err, &ue), tc.want, tc.usage)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{{"4096", 4096}, {"64K", 64 << 10}, {"10M", 10 << 20}, {"2g", 2 << 30}, {"1TiB", 1 << 40}, {"3MB", 3 << 20}} {
		if got, err := parseSize(tc.in); err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v, want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "K", "0", "-1", "1.5G", "99999999999T"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) succeeded, want error", in)
		}
	}
}
