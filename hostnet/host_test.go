package hostnet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"

	"github.com/godwit-hv/godwit/hostnet/linktest"
	"github.com/godwit-hv/godwit/hostnet/nic"
)

// testHost makes a host whose NICs net0, net1... are the given links with the given spec.
func testHost(t *testing.T, spec string, links ...nic.Link) *Host {
	t.Helper()
	specs, err := ParseSpecs(spec)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHost(Options{Logf: t.Logf, TestService: true, DHCPRetry: 200 * time.Millisecond})
	h.SetSpecs(specs)
	for i, l := range links {
		if _, err := h.Attach(nic.Registered{Name: fmt.Sprintf("net%d", i), Index: i, Link: l}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(h.Close)
	return h
}

func pair(t *testing.T, o linktest.Options) (*linktest.Link, *linktest.Link) {
	a, b := linktest.Pair(linktest.MAC(1), linktest.MAC(2), o)
	t.Cleanup(a.Close)
	return a, b
}

func ping(t *testing.T, h *Host, dst string, count int) (ok int, lastErr error) {
	t.Helper()
	p, err := h.NewPinger()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := 0; i < count; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := p.Echo(ctx, netip.MustParseAddr(dst), uint16(i+1))
		cancel()
		if err == nil {
			ok++
		} else {
			lastErr = err
		}
	}
	return ok, lastErr
}

func TestARPPingAndNetTest(t *testing.T) {
	a, b := pair(t, linktest.Options{})
	ha := testHost(t, "net0:management:10.0.0.1/24", a)
	hb := testHost(t, "net0:management:10.0.0.2/24", b)

	if n, err := ping(t, ha, "10.0.0.2", 3); n != 3 {
		t.Fatalf("ping 10.0.0.2: %d of 3 replies, last error %v", n, err)
	}
	// ARP resolved B's MAC on A's NIC (RFC 826).
	ifa, _ := ha.ByRole(RoleManagement)
	neigh, terr := ha.Stack().Neighbors(ifa.NICID(), ipv4.ProtocolNumber)
	if terr != nil {
		t.Fatalf("Neighbors: %s", terr)
	}
	found := false
	for _, n := range neigh {
		if n.Addr == tcpip.AddrFrom4([4]byte{10, 0, 0, 2}) && n.LinkAddr == tcpip.LinkAddress(linktest.MAC(2)) {
			found = true
		}
	}
	if !found {
		t.Errorf("A's neighbor table %v lacks 10.0.0.2 at %s", neigh, linktest.MAC(2))
	}
	// Pinging ourselves and a silent address.
	if n, _ := ping(t, hb, "10.0.0.2", 1); n != 1 {
		t.Errorf("ping own address: %d replies, want 1", n)
	}
	if n, err := ping(t, ha, "10.0.0.77", 1); n != 0 || !errors.Is(err, ErrPingTimeout) {
		t.Errorf("ping 10.0.0.77 (nobody) = %d replies, %v; want 0, ErrPingTimeout", n, err)
	}

	const size = 64 << 20
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := ha.NetTest(ctx, "10.0.0.2", size)
	if err != nil || !res.ChecksumOK || res.Bytes != size {
		t.Fatalf("NetTest 64 MiB = %+v, %v; want %d bytes, checksum ok", res, err, size)
	}
	t.Logf("64 MiB in %v: %.1f MiB/s, crc %08x", res.Elapsed, res.MiBps(), res.Got)
	sa, sb := a.Stats(), b.Stats()
	if sb.TxBytes < size || sa.RxBytes < size {
		t.Errorf("counters: A %v, B %v; want >= %d bytes B->A", sa, sb, size)
	}
}

func TestLossyWireStillDeliversIntactData(t *testing.T) {
	a, b := pair(t, linktest.Options{Loss: 0.01, Corrupt: 0.01, Seed: 7})
	ha := testHost(t, "net0:migration:10.1.0.1/24", a)
	testHost(t, "net0:migration:10.1.0.2/24", b)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := ha.NetTest(ctx, "10.1.0.2", 8<<20)
	if err != nil || !res.ChecksumOK {
		t.Fatalf("NetTest over a lossy wire = %+v, %v", res, err)
	}
	lost, corrupted := a.WireStats()
	if lost == 0 || corrupted == 0 {
		t.Errorf("wire lost %d and corrupted %d frames; the test wants both > 0", lost, corrupted)
	}
	t.Logf("8 MiB with %d lost and %d corrupted frames: %.1f MiB/s", lost, corrupted, res.MiBps())
}

func TestLinkDownUpAndStall(t *testing.T) {
	a, b := pair(t, linktest.Options{})
	ha := testHost(t, "net0:management:10.0.0.1/24", a)
	testHost(t, "net0:management:10.0.0.2/24", b)
	if n, err := ping(t, ha, "10.0.0.2", 1); n != 1 {
		t.Fatalf("ping before: %v", err)
	}
	a.SetUp(false)
	if n, _ := ping(t, ha, "10.0.0.2", 2); n != 0 {
		t.Errorf("ping with the link down: %d replies, want 0", n)
	}
	a.SetUp(true)
	if n, err := ping(t, ha, "10.0.0.2", 2); n != 2 {
		t.Errorf("ping after link up: %d of 2, %v", n, err)
	}
	ifa, _ := ha.ByRole(RoleManagement)
	if got := ifa.LinkChanges(); got != 2 {
		t.Errorf("LinkChanges = %d, want 2", got)
	}

	b.Stall(true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, err := ha.DialTCP(ctx, RoleManagement, fmt.Sprintf("10.0.0.2:%d", TestPort))
	cancel()
	if err == nil {
		t.Errorf("DialTCP to a stalled peer succeeded")
	}
	if _, txRefused := ifa.StackCounters(); b.Stats().TxErrors == 0 && txRefused == 0 {
		t.Logf("no frames refused while stalled (peer had nothing to send)")
	}
	b.Stall(false)
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if res, err := ha.NetTest(ctx, "10.0.0.2", 1<<20); err != nil || !res.ChecksumOK {
		t.Errorf("NetTest after the stall = %+v, %v", res, err)
	}
}

func TestRolesDialListen(t *testing.T) {
	a0, b0 := pair(t, linktest.Options{})
	a1, b1 := linktest.Pair(linktest.MAC(3), linktest.MAC(4), linktest.Options{})
	t.Cleanup(a1.Close)
	ha := testHost(t, "net0:management:10.0.0.1/24,net1:migration:10.1.0.1/24", a0, a1)
	hb := testHost(t, "net0:management:10.0.0.2/24,net1:migration:10.1.0.2/24", b0, b1)

	if a, err := hb.Addr(RoleMigration); err != nil || a != netip.MustParseAddr("10.1.0.2") {
		t.Fatalf("Addr(migration) = %v, %v", a, err)
	}
	l, err := hb.ListenTCP(RoleMigration, 4444)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	var remote net.Addr
	go func() {
		defer wg.Done()
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
			return
		}
		remote = c.RemoteAddr()
		io.Copy(c, c)
		c.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := ha.DialTCP(ctx, RoleMigration, "10.1.0.2:4444")
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("pages and vCPU state")
	c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
		t.Errorf("echo = %q, %v", got, err)
	}
	c.Close()
	wg.Wait()
	if remote == nil || remote.(*net.TCPAddr).IP.String() != "10.1.0.1" {
		t.Errorf("server saw the client at %v, want 10.1.0.1 (the migration NIC)", remote)
	}
	if s := a1.Stats(); s.TxPackets == 0 {
		t.Errorf("migration NIC sent nothing: %v", s)
	}
	if res, err := ha.NetTest(ctx, "10.1.0.2", 1<<20); err != nil || !res.ChecksumOK {
		t.Errorf("NetTest on the migration NIC = %+v, %v", res, err)
	}

	for _, tc := range []struct {
		role Role
		want error
	}{{RoleVM, ErrWrongRole}, {RoleNone, ErrWrongRole}} {
		if _, err := ha.DialTCP(ctx, tc.role, "10.1.0.2:4444"); !errors.Is(err, tc.want) {
			t.Errorf("DialTCP(%s) = %v, want %v", tc.role, err, tc.want)
		}
	}
	lone := testHost(t, "net0:vm")
	if _, err := lone.DialTCP(ctx, RoleMigration, "10.1.0.2:4444"); !errors.Is(err, ErrNoNIC) {
		t.Errorf("DialTCP without a migration NIC = %v, want ErrNoNIC", err)
	}
	if _, err := ha.DialTCP(ctx, RoleMigration, "godwit-b:4444"); err == nil {
		t.Errorf("DialTCP to a host name succeeded; there is no DNS")
	}
}

func TestTestProtocolErrors(t *testing.T) {
	gen := testGen{x: 1}
	var b [16]byte
	gen.fill(b[:])
	// xorshift64* from state 1, computed by hand from Vigna's recurrence.
	if g0, g1 := binary.LittleEndian.Uint64(b[:]), binary.LittleEndian.Uint64(b[8:]); g0 != 0x47e4ce4b896cdd1d || g1 != 0xabcfa6a8e079651d {
		t.Errorf("testGen(1) = %x %x, want 47e4ce4b896cdd1d abcfa6a8e079651d", g0, g1)
	}

	// A server whose data arrives altered: the client must say MISMATCH.
	cli, srv := net.Pipe()
	go func() {
		var req [testReqLen]byte
		io.ReadFull(srv, req[:])
		srv.Write(append(testReplyMagic[:], 0, 0, 0, 0))
		data := make([]byte, 1000)
		g := testGen{x: binary.LittleEndian.Uint64(req[16:])}
		g.fill(data)
		data[500] ^= 1
		srv.Write(data)
		srv.Write(make([]byte, testTrailLen)) // crc 0: wrong
		srv.Close()
	}()
	res, err := RunTest(context.Background(), cli, 1000, 42)
	if !errors.Is(err, ErrChecksum) || res.ChecksumOK {
		t.Errorf("RunTest against a corrupting server = %+v, %v; want ErrChecksum", res, err)
	}

	// Bad requests to a real server.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := ServeTest(l, t.Logf)
	defer s.Close()
	for _, tc := range []struct {
		name   string
		req    func([]byte)
		status uint32
	}{
		{"bad magic", func(r []byte) { r[0] = 'X' }, testBadReq},
		{"bad version", func(r []byte) { r[4] = 9 }, testBadReq},
		{"zero seed", func(r []byte) { binary.LittleEndian.PutUint64(r[16:], 0) }, testBadReq},
		{"zero size", func(r []byte) { binary.LittleEndian.PutUint64(r[8:], 0) }, testBadSize},
		{"huge size", func(r []byte) { binary.LittleEndian.PutUint64(r[8:], MaxTestSize+1) }, testBadSize},
	} {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		req := make([]byte, testReqLen)
		copy(req, testReqMagic[:])
		binary.LittleEndian.PutUint16(req[4:], testVersion)
		binary.LittleEndian.PutUint64(req[8:], 100)
		binary.LittleEndian.PutUint64(req[16:], 5)
		tc.req(req)
		c.Write(req)
		var reply [testReplyLen]byte
		_, err = io.ReadFull(c, reply[:])
		if st := binary.LittleEndian.Uint32(reply[4:]); err != nil || st != tc.status {
			t.Errorf("%s: status %d, %v; want %d", tc.name, st, err, tc.status)
		}
		c.Close()
	}
	// And a good one over loopback.
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if res, err := RunTest(context.Background(), c, 3<<20+5, 99); err != nil || !res.ChecksumOK || res.Bytes != 3<<20+5 {
		t.Errorf("RunTest over loopback = %+v, %v", res, err)
	}
}

func TestSpecByMACAndUnmatched(t *testing.T) {
	a, b := pair(t, linktest.Options{})
	h := testHost(t, "02:00:5e:00:00:02:migration:10.1.0.9/24,net5:management:10.0.0.9/24", a, b)
	// net0 is MAC 1 (no entry), net1 is MAC 2 (named by its MAC).
	for _, tc := range []struct {
		name string
		role Role
	}{{"net0", RoleNone}, {"net1", RoleMigration}} {
		ifc, err := h.Interface(tc.name)
		if err != nil || ifc.Role != tc.role {
			t.Errorf("Interface(%s) = %v, %v; want role %s", tc.name, ifc, err, tc.role)
		}
	}
	if a, err := h.Addr(RoleMigration); err != nil || a.String() != "10.1.0.9" {
		t.Errorf("Addr(migration) = %v, %v", a, err)
	}
	if um := h.Unmatched(); len(um) != 1 || um[0].NIC != "net5" {
		t.Errorf("Unmatched = %v, want net5's entry", um)
	}
	if _, err := h.Addr(RoleManagement); !errors.Is(err, ErrNoNIC) {
		t.Errorf("Addr(management) = %v, want ErrNoNIC", err)
	}
}
