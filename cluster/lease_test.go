package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/cluster"
	"github.com/godwit-hv/godwit/cluster/clustertest"
)

// fast is the lease timing used by unit tests: io 25 ms, so renew 50 ms,
// fence 200 ms, dead 350 ms: short, yet long enough that a loaded 2-core
// machine does not starve a renewal past the fence point.
var fast = cluster.DeriveTimeouts(25 * time.Millisecond)

func newFileLUN(t *testing.T, ss, hosts, vols int) (string, *cluster.LUN) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lun.img")
	dev, err := cluster.CreateFile(path, 64<<20, ss)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	l, err := cluster.Format(dev, cluster.FormatOptions{MaxHosts: hosts, MaxVolumes: vols, AUSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return path, l
}

func join(t *testing.T, l *cluster.LUN, id int, onFence func(cluster.FenceEvent)) *cluster.Host {
	t.Helper()
	h, err := l.Join(context.Background(), cluster.HostConfig{ID: id, Name: "test", Timeouts: fast, OnFence: onFence})
	if err != nil {
		t.Fatalf("Join(%d) = %v", id, err)
	}
	t.Cleanup(func() { h.Abandon() })
	return h
}

func TestAcquireWriteReleaseBothSectorSizes(t *testing.T) {
	for _, ss := range []int{512, 4096} {
		_, l := newFileLUN(t, ss, 4, 4)
		a := join(t, l, 1, nil)
		b := join(t, l, 2, nil)
		if err := a.CreateVolume(context.Background(), "vm1-disk0", 3<<20); err != nil {
			t.Fatalf("ss %d: CreateVolume = %v", ss, err)
		}
		v, err := a.Acquire("vm1-disk0")
		if err != nil {
			t.Fatalf("ss %d: Acquire = %v", ss, err)
		}
		// Write across the AU boundary and read back.
		buf := bytes.Repeat([]byte{0xab}, 2*ss)
		if _, err := v.WriteAt(buf, 1<<20-int64(ss)); err != nil {
			t.Fatalf("WriteAt = %v", err)
		}
		got := make([]byte, len(buf))
		if _, err := v.ReadAt(got, 1<<20-int64(ss)); err != nil || !bytes.Equal(got, buf) {
			t.Fatalf("ReadAt = %v, equal %v", err, bytes.Equal(got, buf))
		}
		if _, err := v.WriteAt(buf[:ss-1], 0); !errors.Is(err, cluster.ErrInvalid) {
			t.Errorf("unaligned WriteAt = %v, want ErrInvalid", err)
		}
		if _, err := v.WriteAt(buf, 3<<20-int64(ss)); !errors.Is(err, cluster.ErrInvalid) {
			t.Errorf("WriteAt past end = %v, want ErrInvalid", err)
		}
		if _, err := b.Acquire("vm1-disk0"); !errors.Is(err, cluster.ErrLeaseHeld) {
			t.Errorf("second host Acquire = %v, want ErrLeaseHeld", err)
		}
		if err := b.DeleteVolume(context.Background(), "vm1-disk0"); !errors.Is(err, cluster.ErrLeaseHeld) {
			t.Errorf("DeleteVolume of a volume owned by a live host = %v, want ErrLeaseHeld", err)
		}
		lver, err := v.Release()
		if err != nil || lver != 1 {
			t.Fatalf("Release = %d, %v, want 1, nil", lver, err)
		}
		if _, err := v.WriteAt(buf, 0); !errors.Is(err, cluster.ErrNotOwner) {
			t.Errorf("WriteAt after Release = %v, want ErrNotOwner", err)
		}
		vb, err := b.Acquire("vm1-disk0")
		if err != nil || vb.Version() != 2 {
			t.Fatalf("Acquire after release = %v, version %d, want 2", err, vb.Version())
		}
		if _, err := vb.ReadAt(got, 1<<20-int64(ss)); err != nil || !bytes.Equal(got, buf) {
			t.Fatalf("data on the new owner: %v, equal %v", err, bytes.Equal(got, buf))
		}
		if err := b.GrowVolume(context.Background(), "vm1-disk0", 5<<20); err != nil {
			t.Fatalf("GrowVolume = %v", err)
		}
		if _, err := vb.WriteAt(buf, 5<<20-int64(len(buf))); err != nil {
			t.Fatalf("WriteAt in grown part = %v", err)
		}
		if err := b.RenameVolume(context.Background(), "vm1-disk0", "vm1-root"); err != nil {
			t.Fatalf("RenameVolume = %v", err)
		}
		if err := b.DeleteVolume(context.Background(), "vm1-root"); err != nil {
			t.Fatalf("DeleteVolume by owner = %v", err)
		}
		vols, err := l.List()
		if err != nil || len(vols) != 0 {
			t.Fatalf("List after delete = %v, %v, want none", vols, err)
		}
		rep, err := cluster.Check(l.Device())
		if err != nil || !rep.Clean() {
			t.Fatalf("Check = %v, problems %v", err, rep.Problems)
		}
		if err := a.Leave(); err != nil {
			t.Fatal(err)
		}
		if err := b.Leave(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMigrationHandover is the storage handle transfer of MIGRATION.md step
// 4: A releases with version n, B acquires exactly n and writes; C trying
// n meanwhile fails; A can no longer write.
func TestMigrationHandover(t *testing.T) {
	_, l := newFileLUN(t, 512, 4, 4)
	a, b, c := join(t, l, 1, nil), join(t, l, 2, nil), join(t, l, 3, nil)
	ctx := context.Background()
	if err := a.CreateVolume(ctx, "vm7", 1<<20); err != nil {
		t.Fatal(err)
	}
	va, err := a.Acquire("vm7")
	if err != nil {
		t.Fatal(err)
	}
	sec := make([]byte, 512)
	copy(sec, "written by A")
	if _, err := va.WriteAt(sec, 0); err != nil {
		t.Fatal(err)
	}
	n, err := va.Release()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AcquireVersion("vm7", n+1); !errors.Is(err, cluster.ErrVersionMismatch) {
		t.Errorf("AcquireVersion(n+1) = %v, want ErrVersionMismatch", err)
	}
	vb, err := b.AcquireVersion("vm7", n)
	if err != nil {
		t.Fatalf("B AcquireVersion(%d) = %v", n, err)
	}
	copy(sec, "written by B")
	if _, err := vb.WriteAt(sec, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AcquireVersion("vm7", n); !errors.Is(err, cluster.ErrVersionMismatch) {
		t.Errorf("C AcquireVersion(%d) after B = %v, want ErrVersionMismatch", n, err)
	}
	if _, err := va.WriteAt(sec, 0); !errors.Is(err, cluster.ErrNotOwner) {
		t.Errorf("A WriteAt after handover = %v, want ErrNotOwner", err)
	}
	if _, err := a.AcquireVersion("vm7", n); !errors.Is(err, cluster.ErrVersionMismatch) {
		t.Errorf("A AcquireVersion(%d) after B = %v, want ErrVersionMismatch", n, err)
	}
	got := make([]byte, 512)
	if _, err := vb.ReadAt(got, 0); err != nil || !bytes.HasPrefix(got, []byte("written by B")) {
		t.Errorf("B reads %q, %v", got[:12], err)
	}
}

// TestHandoverRace races B and C for the same released version many
// times: exactly one wins each round.
func TestHandoverRace(t *testing.T) {
	_, l := newFileLUN(t, 512, 4, 4)
	hosts := []*cluster.Host{join(t, l, 1, nil), join(t, l, 2, nil), join(t, l, 3, nil)}
	ctx := context.Background()
	if err := hosts[0].CreateVolume(ctx, "vm", 1<<20); err != nil {
		t.Fatal(err)
	}
	v, err := hosts[0].Acquire("vm")
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 20; round++ {
		n, err := v.Release()
		if err != nil {
			t.Fatal(err)
		}
		type res struct {
			v   *cluster.Volume
			err error
		}
		ch := make(chan res, 2)
		for _, h := range []*cluster.Host{hosts[(round+1)%3], hosts[(round+2)%3]} {
			go func() { v, err := h.AcquireVersion("vm", n); ch <- res{v, err} }()
		}
		r1, r2 := <-ch, <-ch
		wins := 0
		for _, r := range []res{r1, r2} {
			switch {
			case r.err == nil:
				wins++
				v = r.v
			case errors.Is(r.err, cluster.ErrVersionMismatch):
			default:
				t.Fatalf("round %d: AcquireVersion = %v, want success or ErrVersionMismatch", round, r.err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d hosts acquired version %d, want exactly 1", round, wins, n)
		}
		if v.Version() != n+1 {
			t.Fatalf("round %d: winner holds version %d, want %d", round, v.Version(), n+1)
		}
	}
}

// TestFenceAndTakeover freezes the lease I/O of host A past its fence
// point: A is told to stop, its writes are refused, and B takes the volume
// over only after A's host-dead interval.
func TestFenceAndTakeover(t *testing.T) {
	path, l := newFileLUN(t, 512, 4, 4)
	raw, err := cluster.OpenFile(path, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	fd := clustertest.NewFaultDevice(raw, clustertest.FaultConfig{PauseBelow: l.Layout().DataStart})
	la, err := cluster.Open(fd)
	if err != nil {
		t.Fatal(err)
	}
	var fencedAt atomic.Int64
	fenced := make(chan cluster.FenceEvent, 1)
	a := join(t, la, 1, func(ev cluster.FenceEvent) { fencedAt.Store(time.Now().UnixNano()); fenced <- ev })
	b := join(t, l, 2, nil)
	ctx := context.Background()
	if err := a.CreateVolume(ctx, "vm", 1<<20); err != nil {
		t.Fatal(err)
	}
	va, err := a.Acquire("vm")
	if err != nil {
		t.Fatal(err)
	}
	sec := make([]byte, 512)
	if _, err := va.WriteAt(sec, 0); err != nil {
		t.Fatal(err)
	}
	pauseStart := time.Now()
	go fd.Pause(3 * fast.HostDead)
	var ev cluster.FenceEvent
	select {
	case ev = <-fenced:
	case <-time.After(fast.HostDead * 2):
		t.Fatal("host A was not fenced")
	}
	if len(ev.Volumes) != 1 || ev.Volumes[0] != "vm" || ev.HostID != 1 {
		t.Errorf("FenceEvent = %+v, want host 1 volume vm", ev)
	}
	if d := time.Duration(fencedAt.Load() - pauseStart.UnixNano()); d > fast.RenewFail+fast.RenewInterval {
		t.Errorf("fenced %v after the pause began, want <= RenewFail+RenewInterval = %v", d, fast.RenewFail+fast.RenewInterval)
	}
	if _, err := va.WriteAt(sec, 0); !errors.Is(err, cluster.ErrFenced) {
		t.Errorf("WriteAt after fence = %v, want ErrFenced", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 10*fast.TakeoverBound())
	defer cancel()
	vb, err := b.Takeover(tctx, "vm")
	if err != nil {
		t.Fatalf("Takeover = %v", err)
	}
	took := time.Since(pauseStart)
	if took < fast.HostDead {
		t.Errorf("takeover after %v, before host-dead %v", took, fast.HostDead)
	}
	if took > fast.TakeoverBound() {
		t.Errorf("takeover after %v, bound %v", took, fast.TakeoverBound())
	}
	if _, err := vb.WriteAt(sec, 0); err != nil {
		t.Fatal(err)
	}
}

func TestJoinRefusesLiveID(t *testing.T) {
	_, l := newFileLUN(t, 512, 4, 4)
	join(t, l, 1, nil)
	_, err := l.Join(context.Background(), cluster.HostConfig{ID: 1, Timeouts: fast})
	if !errors.Is(err, cluster.ErrHostIDInUse) {
		t.Fatalf("Join of a live id = %v, want ErrHostIDInUse", err)
	}
	if _, err := l.Join(context.Background(), cluster.HostConfig{ID: 9, Timeouts: fast}); !errors.Is(err, cluster.ErrInvalid) {
		t.Fatalf("Join(9) with 4 hosts = %v, want ErrInvalid", err)
	}
}

func TestRejoinAfterCrashTakesNewGeneration(t *testing.T) {
	_, l := newFileLUN(t, 512, 4, 4)
	a := join(t, l, 1, nil)
	gen := a.Generation()
	a.Abandon() // crash: the lease stays on disk
	start := time.Now()
	a2 := join(t, l, 1, nil)
	if a2.Generation() != gen+1 {
		t.Errorf("generation after rejoin = %d, want %d", a2.Generation(), gen+1)
	}
	if d := time.Since(start); d < fast.HostDead {
		t.Errorf("rejoin of a crashed id took %v, want >= host dead %v", d, fast.HostDead)
	}
}
