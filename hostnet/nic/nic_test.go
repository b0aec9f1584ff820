package nic

import (
	"errors"
	"net"
	"testing"
)

type fakeLink struct{ mac net.HardwareAddr }

func (f *fakeLink) MAC() net.HardwareAddr { return f.mac }
func (f *fakeLink) MTU() int              { return DefaultMTU }
func (f *fakeLink) Up() bool              { return true }
func (f *fakeLink) Transmit([]byte) error { return nil }
func (f *fakeLink) SetHandler(Handler)    {}
func (f *fakeLink) Stats() Stats          { return Stats{} }
func (f *fakeLink) Description() string   { return "fake" }

func TestRegisterNamesInOrderAndLookup(t *testing.T) {
	registry.mu.Lock()
	registry.links, registry.subs = nil, nil // a fresh machine (and -count=N)
	registry.mu.Unlock()
	var seen []string
	Subscribe(func(r Registered) { seen = append(seen, r.Name) })
	macs := []string{"52:54:00:00:00:01", "52:54:00:00:00:02"}
	for i, m := range macs {
		mac, _ := net.ParseMAC(m)
		want := []string{"net0", "net1"}[i]
		if got := Register(&fakeLink{mac}); got != want {
			t.Errorf("Register #%d = %q, want %q", i, got, want)
		}
	}
	if len(seen) != 2 || seen[0] != "net0" || seen[1] != "net1" {
		t.Errorf("subscriber saw %v, want [net0 net1]", seen)
	}
	for _, tc := range []struct {
		key, want string
		ok        bool
	}{
		{"net1", "net1", true},
		{"52:54:00:00:00:01", "net0", true},
		{"52-54-00-00-00-02", "net1", true},
		{"net7", "", false},
		{"52:54:00:00:00:09", "", false},
	} {
		r, ok := Lookup(tc.key)
		if ok != tc.ok || r.Name != tc.want {
			t.Errorf("Lookup(%q) = %q, %v, want %q, %v", tc.key, r.Name, ok, tc.want, tc.ok)
		}
	}
	var late []string
	Subscribe(func(r Registered) { late = append(late, r.Name) })
	if len(late) != 2 {
		t.Errorf("late subscriber saw %v, want both NICs", late)
	}
}

func TestCheckFrame(t *testing.T) {
	for _, tc := range []struct {
		n    int
		fail bool
	}{{0, true}, {13, true}, {14, false}, {60, false}, {1514, false}, {1515, true}} {
		err := CheckFrame(make([]byte, tc.n), DefaultMTU)
		if (err != nil) != tc.fail || (err != nil && !errors.Is(err, ErrFrameSize)) {
			t.Errorf("CheckFrame(%d bytes) = %v, want failure %v", tc.n, err, tc.fail)
		}
	}
}

func TestCounters(t *testing.T) {
	var c Counters
	c.Rx(100)
	c.Rx(60)
	c.Tx(1514)
	c.RxDrops.Add(1)
	got := c.Snapshot()
	want := Stats{RxPackets: 2, RxBytes: 160, RxDrops: 1, TxPackets: 1, TxBytes: 1514}
	if got != want {
		t.Errorf("Snapshot = %+v, want %+v", got, want)
	}
}
