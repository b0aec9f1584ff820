package hostnet

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/godwit-hv/godwit/hostnet/linktest"
)

// fakeDHCPServer answers on host h's NIC: OFFER for DISCOVER, ACK (or NAK when nak is set)
// for REQUEST, always broadcast (the clients set the broadcast flag).
type fakeDHCPServer struct {
	conn     *gonet.UDPConn
	offer    net.IP
	self     net.IP
	lease    time.Duration
	nak      atomic.Bool
	requests atomic.Int64
	wg       sync.WaitGroup
}

func startFakeDHCP(t *testing.T, h *Host, self, offer string, lease time.Duration) *fakeDHCPServer {
	var wq waiter.Queue
	ep, terr := h.Stack().NewEndpoint(udp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		t.Fatal(terr)
	}
	ep.SocketOptions().SetBroadcast(true)
	ifc, err := h.ByRole(RoleManagement)
	if err != nil {
		t.Fatal(err)
	}
	if terr := ep.Bind(tcpip.FullAddress{NIC: ifc.NICID(), Port: dhcpServerPort}); terr != nil {
		t.Fatal(terr)
	}
	s := &fakeDHCPServer{conn: gonet.NewUDPConn(&wq, ep), offer: net.ParseIP(offer).To4(), self: net.ParseIP(self).To4(), lease: lease}
	s.wg.Add(1)
	go s.serve(t)
	t.Cleanup(func() { s.conn.Close(); s.wg.Wait() })
	return s
}

func (s *fakeDHCPServer) serve(t *testing.T) {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, _, err := s.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		req, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			t.Errorf("fake DHCP server: bad request: %v", err)
			continue
		}
		typ := dhcpv4.MessageTypeOffer
		if req.MessageType() == dhcpv4.MessageTypeRequest {
			s.requests.Add(1)
			typ = dhcpv4.MessageTypeAck
			if s.nak.Load() {
				typ = dhcpv4.MessageTypeNak
			}
		}
		reply, err := dhcpv4.NewReplyFromRequest(req, dhcpv4.WithMessageType(typ), dhcpv4.WithYourIP(s.offer),
			dhcpv4.WithServerIP(s.self), dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
			dhcpv4.WithRouter(s.self), dhcpv4.WithLeaseTime(uint32(s.lease/time.Second)),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.self)))
		if err != nil {
			t.Errorf("fake DHCP server: %v", err)
			continue
		}
		if _, err := s.conn.WriteTo(reply.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpClientPort}); err != nil {
			t.Errorf("fake DHCP server: send: %v", err)
		}
	}
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out after %v waiting for %s", d, what)
}

func TestDHCPLeaseRenewNak(t *testing.T) {
	a, b := pair(t, linktest.Options{})
	hb := testHost(t, "net0:management:10.5.0.1/24", b)
	srv := startFakeDHCP(t, hb, "10.5.0.1", "10.5.0.50", 2*time.Second)
	ha := testHost(t, "net0:management:dhcp", a)

	ifa, _ := ha.ByRole(RoleManagement)
	want := netip.MustParsePrefix("10.5.0.50/24")
	waitFor(t, "the DHCP lease", 15*time.Second, func() bool { return ifa.Prefix() == want })
	if gw := ifa.Gateway(); gw != netip.MustParseAddr("10.5.0.1") {
		t.Errorf("gateway = %v, want 10.5.0.1", gw)
	}
	if n, err := ping(t, ha, "10.5.0.1", 1); n != 1 {
		t.Errorf("ping the server after the lease: %v", err)
	}
	// The default route goes through the gateway: a ping off the subnet is sent (the
	// gateway does not forward it, so no reply), where without the route it would fail with
	// "network unreachable".
	p, _ := ha.NewPinger()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := p.Echo(ctx, netip.MustParseAddr("192.0.2.1"), 1)
	cancel()
	p.Close()
	if !errors.Is(err, ErrPingTimeout) {
		t.Errorf("ping off-subnet via the DHCP gateway = %v, want ErrPingTimeout", err)
	}

	// Renewal at T1 (1 s).
	base := srv.requests.Load()
	waitFor(t, "a renewal", 10*time.Second, func() bool { return srv.requests.Load() > base })
	if ifa.Prefix() != want {
		t.Errorf("after renewal: %v, want %v", ifa.Prefix(), want)
	}

	// A NAK drops the address; the client starts over and gets it back once the server agrees.
	srv.nak.Store(true)
	waitFor(t, "the address to go after a NAK", 10*time.Second, func() bool { return !ifa.Prefix().IsValid() })
	srv.nak.Store(false)
	waitFor(t, "the lease again", 20*time.Second, func() bool { return ifa.Prefix() == want })
	t.Logf("DHCP state: %s", ifa.DHCPState())
}
