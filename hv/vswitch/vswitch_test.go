package vswitch

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/hostnet/linktest"
	"github.com/godwit-hv/godwit/hostnet/nic"
)

// sink records what a port delivers.
type sink struct {
	mu     sync.Mutex
	frames [][]byte
	refuse bool
}

func (k *sink) deliver(f []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.refuse {
		return errors.New("queue full")
	}
	k.frames = append(k.frames, append([]byte(nil), f...))
	return nil
}

func (k *sink) take() [][]byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	f := k.frames
	k.frames = nil
	return f
}

func mac(n byte) [6]byte { return [6]byte{0x52, 0x54, 0, 0, 0, n} }

var bcast = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func frame(dst, src [6]byte, n int) []byte {
	f := make([]byte, n)
	copy(f, dst[:])
	copy(f[6:], src[:])
	f[12], f[13] = 0x08, 0x00
	for i := 14; i < n; i++ {
		f[i] = byte(i)
	}
	return f
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestSwitch(t *testing.T, names ...string) (*Switch, map[string]*Port, map[string]*sink, *clock) {
	clk := &clock{t: time.Unix(1000, 0)}
	s := New("test", Options{Now: clk.now, Logf: t.Logf})
	ports, sinks := map[string]*Port{}, map[string]*sink{}
	for _, n := range names {
		k := &sink{}
		p, err := s.AddPort(n, k.deliver)
		if err != nil {
			t.Fatal(err)
		}
		ports[n], sinks[n] = p, k
	}
	return s, ports, sinks, clk
}

func TestLearningFloodingAgeing(t *testing.T) {
	_, p, k, clk := newTestSwitch(t, "a", "b", "c")
	type step struct {
		what     string
		from     string
		dst, src [6]byte
		advance  time.Duration
		want     map[string]int // frames each port receives
	}
	for _, st := range []step{
		{what: "unknown unicast floods", from: "a", dst: mac(2), src: mac(1), want: map[string]int{"b": 1, "c": 1}},
		{what: "reply to a learned MAC goes to its port only", from: "b", dst: mac(1), src: mac(2), want: map[string]int{"a": 1}},
		{what: "both learned now", from: "a", dst: mac(2), src: mac(1), want: map[string]int{"b": 1}},
		{what: "broadcast floods", from: "c", dst: bcast, src: mac(3), want: map[string]int{"a": 1, "b": 1}},
		{what: "multicast floods", from: "c", dst: [6]byte{0x01, 0x00, 0x5e, 0, 0, 1}, src: mac(3), want: map[string]int{"a": 1, "b": 1}},
		{what: "a frame for the port it came from is filtered", from: "a", dst: mac(1), src: mac(9), want: map[string]int{}},
		{what: "a station that moved is relearned", from: "c", dst: mac(3), src: mac(2), want: map[string]int{}},
		{what: "...and frames follow it", from: "a", dst: mac(2), src: mac(1), want: map[string]int{"c": 1}},
		{what: "after the ageing time the address is unknown again", from: "b", dst: mac(1), src: mac(7), advance: DefaultAgeing, want: map[string]int{"a": 1, "c": 1}},
	} {
		clk.t = clk.t.Add(st.advance)
		if err := p[st.from].Send(frame(st.dst, st.src, 64)); err != nil {
			t.Errorf("%s: Send = %v", st.what, err)
		}
		for name, sk := range k {
			if got := len(sk.take()); got != st.want[name] {
				t.Errorf("%s: port %s got %d frames, want %d", st.what, name, got, st.want[name])
			}
		}
	}
}

func TestMalformedFramesDroppedAndCounted(t *testing.T) {
	s, p, k, _ := newTestSwitch(t, "a", "b")
	for _, tc := range []struct {
		name  string
		frame []byte
		want  error
	}{
		{"empty", nil, ErrRunt},
		{"13 bytes", make([]byte, 13), ErrRunt},
		{"1515 bytes", frame(mac(2), mac(1), 1515), ErrOversized},
		{"64 KiB", frame(mac(2), mac(1), 65536), ErrOversized},
		{"multicast source", frame(mac(2), [6]byte{0x01, 0, 0, 0, 0, 1}, 60), ErrBadSource},
		{"zero source", frame(mac(2), [6]byte{}, 60), ErrBadSource},
	} {
		if err := p["a"].Send(tc.frame); !errors.Is(err, tc.want) {
			t.Errorf("Send(%s) = %v, want %v", tc.name, err, tc.want)
		}
	}
	if got := len(k["b"].take()); got != 0 {
		t.Errorf("port b got %d frames from malformed input, want 0", got)
	}
	if st := p["a"].Stats(); st.RxDrops != 6 || st.RxPackets != 0 {
		t.Errorf("port a stats %v, want 6 drops and no packets", st)
	}
	if len(s.FDB()) != 0 {
		t.Errorf("FDB learned from malformed frames: %v", s.FDB())
	}
	// The largest legal frame passes.
	if err := p["a"].Send(frame(mac(2), mac(1), DefaultMaxFrame)); err != nil {
		t.Errorf("Send(1514 bytes) = %v", err)
	}
	if got := k["b"].take(); len(got) != 1 || len(got[0]) != DefaultMaxFrame {
		t.Errorf("port b got %d frames, want one of %d bytes", len(got), DefaultMaxFrame)
	}
}

func TestCountersAndRefusingPort(t *testing.T) {
	_, p, k, _ := newTestSwitch(t, "a", "b", "c")
	k["c"].refuse = true
	for i := 0; i < 3; i++ {
		p["a"].Send(frame(bcast, mac(1), 100))
	}
	want := map[string]Stats{
		"a": {RxPackets: 3, RxBytes: 300},
		"b": {TxPackets: 3, TxBytes: 300},
		"c": {TxDrops: 3},
	}
	for n, w := range want {
		if got := p[n].Stats(); got != w {
			t.Errorf("port %s: %v, want %v", n, got, w)
		}
	}
}

func TestRemovePortForgetsItsMACs(t *testing.T) {
	s, p, k, _ := newTestSwitch(t, "a", "b", "c")
	p["a"].Send(frame(bcast, mac(1), 60))
	p["b"].Send(frame(bcast, mac(2), 60))
	if n := len(s.FDB()); n != 2 {
		t.Fatalf("FDB has %d entries, want 2", n)
	}
	for _, sk := range k {
		sk.take()
	}
	s.RemovePort(p["a"])
	if fdb := s.FDB(); len(fdb) != 1 || fdb[0].Port != "b" {
		t.Errorf("FDB after removing a = %v, want only b's MAC", fdb)
	}
	// Frames for a's MAC flood now (to b and c), never to a.
	p["c"].Send(frame(mac(1), mac(3), 60))
	if len(k["a"].take()) != 0 || len(k["b"].take()) != 1 {
		t.Errorf("after removal: frame for the removed MAC reached a, or did not flood to b")
	}
	if err := p["a"].Send(frame(bcast, mac(1), 60)); !errors.Is(err, ErrPortRemoved) {
		t.Errorf("Send on a removed port = %v, want ErrPortRemoved", err)
	}
	if _, err := s.AddPort("b", (&sink{}).deliver); !errors.Is(err, ErrDuplicate) {
		t.Errorf("AddPort with a used name = %v, want ErrDuplicate", err)
	}
	if names := fmt.Sprint(portNames(s)); names != "[b c]" {
		t.Errorf("Ports = %s, want [b c]", names)
	}
}

func portNames(s *Switch) []string {
	var n []string
	for _, p := range s.Ports() {
		n = append(n, p.Name())
	}
	return n
}

func TestFDBBounded(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	s := New("small", Options{Now: clk.now, MaxMACs: 4})
	a, _ := s.AddPort("a", (&sink{}).deliver)
	s.AddPort("b", (&sink{}).deliver)
	for i := 0; i < 10; i++ {
		a.Send(frame(bcast, mac(byte(10+i)), 60))
	}
	if n, nl := len(s.FDB()), s.NotLearned(); n != 4 || nl != 6 {
		t.Errorf("FDB size %d, not learned %d; want 4 and 6", n, nl)
	}
	clk.t = clk.t.Add(DefaultAgeing)
	a.Send(frame(bcast, mac(99), 60))
	if fdb := s.FDB(); len(fdb) != 1 {
		t.Errorf("after ageing, FDB = %v, want just the new MAC", fdb)
	}
}

// TestUplink joins two switches through a fake wire between their uplinks, as two hosts'
// vm uplinks are joined by a real network: guests on either side reach each other.
func TestUplink(t *testing.T) {
	la, lb := linktest.Pair(linktest.MAC(1), linktest.MAC(2), linktest.Options{})
	defer la.Close()
	sa, sb := New("net2", Options{Logf: t.Logf}), New("net2", Options{Logf: t.Logf})
	if _, err := sa.AttachUplink("net2", la); err != nil {
		t.Fatal(err)
	}
	up, err := sb.AttachUplink("net2", lb)
	if err != nil {
		t.Fatal(err)
	}
	ga, gb := &sink{}, &sink{}
	pa, _ := sa.AddPort("vm1.0", ga.deliver)
	pb, _ := sb.AddPort("vm2.0", gb.deliver)

	pa.Send(frame(bcast, mac(1), 60)) // e.g. an ARP request
	waitFrames(t, gb, 1)
	pb.Send(frame(mac(1), mac(2), 98)) // the reply, unicast
	waitFrames(t, ga, 1)
	pa.Send(frame(mac(2), mac(1), 1514))
	got := waitFrames(t, gb, 1)
	m1 := mac(1)
	if len(got[0]) != 1514 || net.HardwareAddr(got[0][6:12]).String() != net.HardwareAddr(m1[:]).String() {
		t.Errorf("guest B got a %d-byte frame from %s", len(got[0]), net.HardwareAddr(got[0][6:12]))
	}
	if st := up.Stats(); st.RxPackets != 2 || st.TxPackets != 1 {
		t.Errorf("B's uplink port: %v, want rx 2 tx 1", st)
	}
	// A dead uplink refuses frames: counted as drops on the uplink port, nothing crashes.
	la.Stall(true)
	pa.Send(frame(mac(2), mac(1), 60))
	if st := sa.Ports()[0]; st.Name() != "net2" || st.Stats().TxDrops != 1 {
		t.Errorf("A's uplink port %s: %v, want 1 tx drop", st.Name(), st.Stats())
	}
	la.Stall(false)
	sb.RemovePort(up)
	pa.Send(frame(mac(2), mac(1), 60))
	time.Sleep(50 * time.Millisecond) // the wire delivers asynchronously
	if n := len(gb.take()); n != 0 {
		t.Errorf("guest B got %d frames after its uplink was removed", n)
	}
	if s := lb.Stats(); s.RxDrops == 0 {
		t.Errorf("uplink link without a handler counted no drops: %v", s)
	}
	var _ nic.Handler = uplinkHandler{}
}

func waitFrames(t *testing.T, k *sink, n int) [][]byte {
	t.Helper()
	var got [][]byte
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		got = append(got, k.take()...)
		if len(got) >= n {
			return got
		}
	}
	t.Fatalf("got %d frames, want %d", len(got), n)
	return nil
}

func TestConcurrentSendAndRemove(t *testing.T) {
	s, p, _, _ := newTestSwitch(t, "a", "b", "c", "d")
	var wg sync.WaitGroup
	for _, n := range []string{"a", "b", "c"} {
		wg.Add(1)
		go func(port *Port, src byte) {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				port.Send(frame(mac(byte(i%5)), mac(src), 60))
			}
		}(p[n], n[0])
	}
	s.RemovePort(p["d"])
	wg.Wait()
	total := uint64(0)
	for _, n := range []string{"a", "b", "c"} {
		total += p[n].Stats().RxPackets
	}
	if total != 6000 {
		t.Errorf("switch took %d frames, want 6000", total)
	}
}

func TestAnnounce(t *testing.T) {
	s, p, k, _ := newTestSwitch(t, "vm", "uplink", "other")
	// The uplink first saw the MAC elsewhere (the source host, before the move).
	p["uplink"].Send(frame(bcast, mac(5), 60))
	for _, sk := range k {
		sk.take()
	}
	if err := p["vm"].Announce(mac(5)); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"uplink", "other"} {
		got := k[n].take()
		if len(got) != 1 {
			t.Fatalf("port %s got %d frames, want the announcement", n, len(got))
		}
		want := RARPFrame(mac(5))
		if string(got[0]) != string(want) {
			t.Errorf("port %s got % x, want % x", n, got[0], want)
		}
	}
	f := RARPFrame(mac(5))
	// RFC 903 layout: EtherType 0x8035, op 3, sender and target hardware addresses.
	if f[12] != 0x80 || f[13] != 0x35 || f[20] != 0 || f[21] != 3 || string(f[22:28]) != string(f[32:38]) {
		t.Errorf("RARP frame % x", f)
	}
	if fdb := s.FDB(); len(fdb) != 1 || fdb[0].Port != "vm" {
		t.Errorf("FDB after the announcement = %v, want the MAC on port vm", fdb)
	}
}
