package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/cluster"
	"github.com/godwit-hv/godwit/cluster/clustertest"
)

// joinFake joins with a fake clock, advancing it until Join returns.
func joinFake(t *testing.T, l *cluster.LUN, clk *clustertest.FakeClock, id int, to cluster.Timeouts) *cluster.Host {
	t.Helper()
	type res struct {
		h   *cluster.Host
		err error
	}
	ch := make(chan res, 1)
	go func() {
		h, err := l.Join(context.Background(), cluster.HostConfig{ID: id, Timeouts: to, Clock: clk})
		ch <- res{h, err}
	}()
	for {
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatalf("Join(%d) = %v", id, r.err)
			}
			t.Cleanup(r.h.Abandon)
			return r.h
		default:
			clk.Advance(100 * time.Millisecond)
			time.Sleep(200 * time.Microsecond)
		}
	}
}

// TestLivenessOnFakeClock drives the delta-lease liveness judgment with an
// injected clock: with io = 10 s (sanlock's default), a crashed host is
// "dead" for an observer exactly when its lease has been unchanged for
// HostDead = 140 s of the observer's time, and not a moment before.
func TestLivenessOnFakeClock(t *testing.T) {
	to := cluster.DeriveTimeouts(10 * time.Second)
	clk := clustertest.NewFakeClock()
	l, err := cluster.Format(clustertest.NewMemDevice(8<<20, 512), cluster.FormatOptions{MaxHosts: 4, MaxVolumes: 2, AUSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	a := joinFake(t, l, clk, 1, to)
	b := joinFake(t, l, clk, 2, to)
	if err := b.RenewNow(); err != nil {
		t.Fatal(err)
	}
	if err := a.RenewNow(); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if err := b.RenewNow(); err != nil {
		t.Fatal(err)
	}
	if got := b.Liveness(1); got != cluster.LiveAlive {
		t.Fatalf("Liveness(1) after a renewal = %v, want alive", got)
	}
	a.Abandon() // crash: no more renewals
	if got := b.Liveness(3); got != cluster.LiveFree {
		t.Errorf("Liveness(3) of a never-used id = %v, want free", got)
	}
	// b last saw a change of host 1's lease at the RenewNow above.
	seen := clk.Now()
	for clk.Now().Sub(seen) < to.HostDead-time.Second {
		clk.Advance(time.Second)
		if err := b.RenewNow(); err != nil {
			t.Fatalf("b renew at +%v: %v", clk.Now().Sub(seen), err)
		}
		if got := b.Liveness(1); got != cluster.LiveAlive {
			t.Fatalf("Liveness(1) %v after the last change = %v, want alive until %v", clk.Now().Sub(seen), got, to.HostDead)
		}
	}
	clk.Advance(time.Second)
	if got := b.Liveness(1); got != cluster.LiveDead {
		t.Fatalf("Liveness(1) %v after the last change = %v, want dead", clk.Now().Sub(seen), got)
	}
	// b renewed all along, so b was never fenced.
	select {
	case <-b.Fenced():
		t.Fatal("b fenced although it renewed")
	default:
	}
}
