package hostnet

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// DHCP client (RFC 2131), messages encoded and decoded by github.com/insomniacslk/dhcp.
const (
	dhcpClientPort = 68 // RFC 2131, 4.1
	dhcpServerPort = 67
	// RFC 2131, 4.1: retransmit after 4 s, doubling to 64 s, randomized by +-1 s. An attempt
	// gives up after dhcpTries and the client starts over after Options.DHCPRetry.
	dhcpFirstWait = 4 * time.Second
	dhcpMaxWait   = 64 * time.Second
	dhcpTries     = 4
	// RFC 2131, 4.4.5: T1 defaults to 0.5 and T2 to 0.875 of the lease.
	dhcpDefaultLease = time.Hour
	dhcpMinRenew     = 10 * time.Second // never renew more often than this
)

var errDHCPNak = errors.New("server sent DHCPNAK")

type leaseInfo struct {
	server  netip.Addr
	ack     *dhcpv4.DHCPv4
	t1, t2  time.Time
	expires time.Time
}

// dhcpConn is a UDP socket on port 68 of one NIC, with broadcast allowed.
type dhcpConn struct {
	*gonet.UDPConn
	ep tcpip.Endpoint
}

func (ifc *Interface) openDHCP() (*dhcpConn, error) {
	s := ifc.host.stack
	var wq waiter.Queue
	ep, terr := s.NewEndpoint(udp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		return nil, fmt.Errorf("udp endpoint: %s", terr)
	}
	ep.SocketOptions().SetBroadcast(true)
	ep.SocketOptions().SetReuseAddress(true)
	if terr := ep.SocketOptions().SetBindToDevice(int32(ifc.id)); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("bind to %s: %s", ifc.Name, terr)
	}
	if terr := ep.Bind(tcpip.FullAddress{NIC: ifc.id, Port: dhcpClientPort}); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("bind port %d: %s", dhcpClientPort, terr)
	}
	return &dhcpConn{UDPConn: gonet.NewUDPConn(&wq, ep), ep: ep}, nil
}

// exchange sends msg to dst and waits for a reply of one of the wanted types with msg's
// transaction id, retransmitting as RFC 2131 4.1 says.
func (ifc *Interface) exchange(c *dhcpConn, msg *dhcpv4.DHCPv4, dst netip.Addr, want ...dhcpv4.MessageType) (*dhcpv4.DHCPv4, error) {
	to := &net.UDPAddr{IP: net.IP(dst.AsSlice()), Port: dhcpServerPort}
	wait := dhcpFirstWait
	buf := make([]byte, 1500)
	for try := 0; try < dhcpTries; try++ {
		if _, err := c.WriteTo(msg.ToBytes(), to); err != nil {
			return nil, fmt.Errorf("send %s: %w", msg.MessageType(), err)
		}
		deadline := time.Now().Add(wait + time.Duration(rand.Int64N(int64(2*time.Second))) - time.Second)
		if err := c.SetReadDeadline(deadline); err != nil {
			return nil, err
		}
		for {
			n, _, err := c.ReadFrom(buf)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("receive: %w", err)
			}
			select {
			case <-ifc.stopped:
				return nil, errors.New("stopped")
			default:
			}
			reply, err := dhcpv4.FromBytes(buf[:n])
			if err != nil || reply.OpCode != dhcpv4.OpcodeBootReply || reply.TransactionID != msg.TransactionID ||
				string(reply.ClientHWAddr) != string(ifc.Link.MAC()) {
				continue // not ours, or not DHCP
			}
			if reply.MessageType() == dhcpv4.MessageTypeNak {
				return nil, fmt.Errorf("%w: %s", errDHCPNak, reply.Message())
			}
			for _, w := range want {
				if reply.MessageType() == w {
					return reply, nil
				}
			}
		}
		if wait *= 2; wait > dhcpMaxWait {
			wait = dhcpMaxWait
		}
	}
	return nil, fmt.Errorf("no %v after %d tries", want, dhcpTries)
}

// acquire runs DISCOVER, OFFER, REQUEST, ACK (RFC 2131, 3.1) with the NIC holding the
// unspecified address 0.0.0.0 (the source address of RFC 2131, 4.1). The requests set the
// BROADCAST flag (RFC 2131, 4.1: a client that cannot receive unicast datagrams before it
// has an address), so servers broadcast their replies.
func (ifc *Interface) acquire() (*dhcpv4.DHCPv4, error) {
	s := ifc.host.stack
	unspec := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{Address: header.IPv4Any}}
	if terr := s.AddProtocolAddress(ifc.id, unspec, stack.AddressProperties{}); terr != nil {
		return nil, fmt.Errorf("add 0.0.0.0: %s", terr)
	}
	defer s.RemoveAddress(ifc.id, header.IPv4Any)
	c, err := ifc.openDHCP()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	disc, err := dhcpv4.NewDiscovery(ifc.Link.MAC(), dhcpv4.WithBroadcast(true),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionIPAddressLeaseTime))
	if err != nil {
		return nil, fmt.Errorf("build DISCOVER: %w", err)
	}
	bcast := netip.AddrFrom4([4]byte{255, 255, 255, 255})
	offer, err := ifc.exchange(c, disc, bcast, dhcpv4.MessageTypeOffer)
	if err != nil {
		return nil, fmt.Errorf("discover: %w", err)
	}
	req, err := dhcpv4.NewRequestFromOffer(offer, dhcpv4.WithBroadcast(true))
	if err != nil {
		return nil, fmt.Errorf("build REQUEST: %w", err)
	}
	ack, err := ifc.exchange(c, req, bcast, dhcpv4.MessageTypeAck)
	if err != nil {
		return nil, fmt.Errorf("request %s: %w", offer.YourIPAddr, err)
	}
	return ack, nil
}

// renew asks the lease's server (unicast; RENEWING) or any server (broadcast; REBINDING) to
// extend the lease, from the leased address. RFC 2131, 4.4.5.
func (ifc *Interface) renew(l leaseInfo, rebinding bool) (*dhcpv4.DHCPv4, error) {
	c, err := ifc.openDHCP()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	req, err := dhcpv4.NewRenewFromAck(l.ack)
	if err != nil {
		return nil, fmt.Errorf("build REQUEST: %w", err)
	}
	dst := l.server
	if rebinding || !dst.IsValid() {
		dst = netip.AddrFrom4([4]byte{255, 255, 255, 255})
	}
	return ifc.exchange(c, req, dst, dhcpv4.MessageTypeAck)
}

func leaseFrom(ack *dhcpv4.DHCPv4, now time.Time) (netip.Prefix, netip.Addr, leaseInfo, error) {
	ip, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok {
		return netip.Prefix{}, netip.Addr{}, leaseInfo{}, fmt.Errorf("ACK without an IPv4 address")
	}
	mask := ack.SubnetMask()
	if mask == nil {
		mask = ack.YourIPAddr.DefaultMask() // RFC 2131, 3.3 leaves the mask optional; classful fallback
	}
	bits, _ := mask.Size()
	p := netip.PrefixFrom(ip, bits)
	if err := checkHostPrefix(p); err != nil {
		return netip.Prefix{}, netip.Addr{}, leaseInfo{}, fmt.Errorf("ACK offers %v", err)
	}
	var gw netip.Addr
	if r := ack.Router(); len(r) > 0 {
		gw, _ = netip.AddrFromSlice(r[0].To4())
	}
	lease := ack.IPAddressLeaseTime(dhcpDefaultLease)
	t1 := ack.IPAddressRenewalTime(lease / 2)
	t2 := ack.IPAddressRebindingTime(lease * 7 / 8)
	server, _ := netip.AddrFromSlice(ack.ServerIdentifier().To4())
	li := leaseInfo{server: server, ack: ack, t1: now.Add(t1), t2: now.Add(t2), expires: now.Add(lease)}
	return p, gw, li, nil
}

func (ifc *Interface) setDHCPErr(err error) {
	ifc.mu.Lock()
	ifc.dhcpErr = err
	ifc.mu.Unlock()
}

func (ifc *Interface) applyLease(ack *dhcpv4.DHCPv4) (leaseInfo, error) {
	p, gw, li, err := leaseFrom(ack, time.Now())
	if err != nil {
		return leaseInfo{}, err
	}
	h := ifc.host
	h.mu.Lock()
	err = h.setAddressLocked(ifc, p, gw)
	h.mu.Unlock()
	ifc.mu.Lock()
	ifc.lease = li
	ifc.mu.Unlock()
	return li, err
}

func (ifc *Interface) dropLease() {
	h := ifc.host
	h.mu.Lock()
	defer h.mu.Unlock()
	ifc.mu.Lock()
	old := ifc.addr
	ifc.addr, ifc.gateway, ifc.lease = netip.Prefix{}, netip.Addr{}, leaseInfo{}
	svc := ifc.svc
	ifc.svc = nil
	ifc.mu.Unlock()
	if old.IsValid() {
		h.stack.RemoveAddress(ifc.id, tcpip.AddrFrom4(old.Addr().As4()))
	}
	if svc != nil {
		svc.Close()
	}
	h.rebuildRoutesLocked()
}

// sleep waits d, or until the host closes (false), or a link-up (true, early).
func (ifc *Interface) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ifc.linkUp:
	case <-ifc.stopped:
		return false
	}
	return true
}

// runDHCP keeps the NIC leased until the host closes: acquire, then renew at T1, rebind at
// T2, start over at expiry or on a NAK; a link that comes back up renews at once.
func (ifc *Interface) runDHCP() {
	log := ifc.host.logf
	for {
		ack, err := ifc.acquire()
		if err != nil {
			ifc.setDHCPErr(err)
			log("hostnet: %s: dhcp: %v (retrying)", ifc.Name, err)
			if !ifc.sleep(ifc.host.opts.DHCPRetry) {
				return
			}
			continue
		}
		l, err := ifc.applyLease(ack)
		if err != nil {
			ifc.setDHCPErr(err)
			log("hostnet: %s: dhcp: %v", ifc.Name, err)
			if !ifc.sleep(ifc.host.opts.DHCPRetry) {
				return
			}
			continue
		}
		ifc.setDHCPErr(nil)
		log("hostnet: %s: dhcp: %s from %s, lease until %s", ifc.Name, ifc.Prefix(), l.server, l.expires.Format(time.RFC3339))
		for {
			wait := max(time.Until(l.t1), 0)
			if !ifc.sleep(wait) {
				return
			}
			now := time.Now()
			if now.After(l.expires) {
				log("hostnet: %s: dhcp: lease on %s expired", ifc.Name, ifc.Prefix())
				ifc.dropLease()
				break
			}
			ack, err := ifc.renew(l, now.After(l.t2))
			if errors.Is(err, errDHCPNak) {
				log("hostnet: %s: dhcp: renewal refused: %v", ifc.Name, err)
				ifc.dropLease()
				break
			}
			if err != nil {
				ifc.setDHCPErr(err)
				// Retry halfway to T2 or expiry (RFC 2131, 4.4.5), at least dhcpMinRenew on.
				next := l.t2
				if now.After(l.t2) {
					next = l.expires
				}
				l.t1 = now.Add(max(next.Sub(now)/2, dhcpMinRenew))
				continue
			}
			if l, err = ifc.applyLease(ack); err != nil {
				log("hostnet: %s: dhcp: renewed lease unusable: %v", ifc.Name, err)
				ifc.dropLease()
				break
			}
			ifc.setDHCPErr(nil)
		}
	}
}
