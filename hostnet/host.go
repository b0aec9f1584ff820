package hostnet

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/godwit-hv/godwit/hostnet/nic"
)

// TCP buffer sizes for the host stack: large enough for a fast migration link (the
// bandwidth-delay product of 10 Gbit/s over 1 ms is 1.25 MB).
const (
	tcpBufMin     = 4 << 10
	tcpBufDefault = 1 << 20
	tcpBufMax     = 4 << 20
)

// Errors callers of the role-based API branch on.
var (
	ErrNoNIC      = errors.New("no NIC has that role")
	ErrNoAddress  = errors.New("NIC has no address yet")
	ErrWrongRole  = errors.New("NIC has another role")
	ErrUnknownNIC = errors.New("no such NIC")
)

// Options tune a Host.
type Options struct {
	// Logf reports events (link changes, DHCP leases, test-service errors). Nil: silent.
	Logf func(format string, args ...any)
	// TestService starts the built-in test service (TestPort) on each management and
	// migration address as soon as it has one.
	TestService bool
	// DHCPRetry is the pause between failed DHCP attempts (0: 5 s).
	DHCPRetry time.Duration
}

// Host is one host's network stack: gVisor's netstack over the NICs given the management and
// migration roles, plus the vm uplinks, which it only lists (guests' switches use them).
type Host struct {
	opts  Options
	stack *stack.Stack

	mu     sync.Mutex
	specs  []Spec
	ifaces []*Interface // in registration order
	routes []tcpip.Route
	nextID tcpip.NICID
	closed bool
}

// Interface is one registered host NIC and what the host made of it.
type Interface struct {
	Name string
	Role Role // RoleNone: no godwit.net entry names it
	Link nic.Link
	Spec Spec

	host  *Host
	ep    *endpoint
	id    tcpip.NICID // 0 unless on the host stack
	flaps atomic.Uint64

	mu      sync.Mutex
	addr    netip.Prefix
	gateway netip.Addr
	lease   leaseInfo
	dhcpErr error
	svc     *TestServer
	stopped chan struct{} // closed when the host closes (ends the DHCP goroutine)
	linkUp  chan struct{} // poked on every link-up
}

// NewHost makes a host stack with IPv4, ARP, ICMP, TCP and UDP and no NICs.
func NewHost(opts Options) *Host {
	if opts.DHCPRetry == 0 {
		opts.DHCPRetry = 5 * time.Second
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
		HandleLocal:        true, // traffic to the host's own addresses stays inside the stack
	})
	sack := tcpip.TCPSACKEnabled(true)
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: tcpBufMin, Default: tcpBufDefault, Max: tcpBufMax}
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: tcpBufMin, Default: tcpBufDefault, Max: tcpBufMax}
	for _, o := range []tcpip.SettableTransportProtocolOption{&sack, &rcv, &snd} {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, o); err != nil {
			panic(fmt.Sprintf("hostnet: tcp option %T: %v", o, err)) // fixed, valid values
		}
	}
	return &Host{opts: opts, stack: s, nextID: 1}
}

// Stack is the gVisor stack, for tests and tools that need more than this package exports.
func (h *Host) Stack() *stack.Stack { return h.stack }

func (h *Host) logf(format string, args ...any) {
	if h.opts.Logf != nil {
		h.opts.Logf(format, args...)
	}
}

// SetSpecs keeps the godwit.net entries; NICs registered later are configured by them.
// NICs already attached keep what they have.
func (h *Host) SetSpecs(specs []Spec) {
	h.mu.Lock()
	h.specs = append([]Spec(nil), specs...)
	h.mu.Unlock()
}

// Unmatched lists the specs that name no attached NIC (yet).
func (h *Host) Unmatched() []Spec {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Spec
	for _, s := range h.specs {
		found := false
		for _, ifc := range h.ifaces {
			if ifc.Spec.NIC == s.NIC && ifc.Role != RoleNone {
				found = true
			}
		}
		if !found {
			out = append(out, s)
		}
	}
	return out
}

func (h *Host) specFor(name string, mac net.HardwareAddr) (Spec, bool) {
	for _, s := range h.specs {
		if s.NIC == name || (s.MAC != nil && string(s.MAC) == string(mac)) {
			return s, true
		}
	}
	return Spec{}, false
}

// Attach takes a registered NIC: with a management or migration spec it joins the host
// stack (static address at once, DHCP in the background); a vm uplink and a NIC without a
// spec are only listed.
func (h *Host) Attach(r nic.Registered) (*Interface, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.New("hostnet: host closed")
	}
	for _, ifc := range h.ifaces {
		if ifc.Name == r.Name {
			return nil, fmt.Errorf("hostnet: %s attached twice", r.Name)
		}
	}
	ifc := &Interface{Name: r.Name, Link: r.Link, host: h, stopped: make(chan struct{}), linkUp: make(chan struct{}, 1)}
	spec, ok := h.specFor(r.Name, r.Link.MAC())
	h.ifaces = append(h.ifaces, ifc)
	if !ok {
		return ifc, nil
	}
	ifc.Spec, ifc.Role = spec, spec.Role
	if spec.Role == RoleVM {
		return ifc, nil
	}
	if mtu := r.Link.MTU(); mtu < header.IPv4MinimumMTU {
		ifc.Role = RoleNone
		return ifc, fmt.Errorf("hostnet: %s: MTU %d below IPv4's minimum %d", r.Name, mtu, header.IPv4MinimumMTU)
	}
	ifc.ep = newEndpoint(r.Link, ifc.linkChanged)
	ifc.id = h.nextID
	h.nextID++
	if err := h.stack.CreateNICWithOptions(ifc.id, ifc.ep, stack.NICOptions{Name: r.Name}); err != nil {
		ifc.Role, ifc.ep, ifc.id = RoleNone, nil, 0
		return ifc, fmt.Errorf("hostnet: %s: create NIC: %s", r.Name, err)
	}
	if spec.DHCP {
		go ifc.runDHCP()
		return ifc, nil
	}
	if err := h.setAddressLocked(ifc, spec.Addr, netip.Addr{}); err != nil {
		return ifc, err
	}
	return ifc, nil
}

// setAddressLocked gives ifc its IPv4 address, the route to its subnet and, with a gateway,
// the default route (management NIC only: migration traffic stays on its own subnet).
func (h *Host) setAddressLocked(ifc *Interface, p netip.Prefix, gw netip.Addr) error {
	ifc.mu.Lock()
	old := ifc.addr
	ifc.mu.Unlock()
	if old.IsValid() && old != p {
		if err := h.stack.RemoveAddress(ifc.id, tcpip.AddrFrom4(old.Addr().As4())); err != nil {
			return fmt.Errorf("hostnet: %s: remove %s: %s", ifc.Name, old, err)
		}
	}
	if !old.IsValid() || old != p {
		pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{
			Address: tcpip.AddrFrom4(p.Addr().As4()), PrefixLen: p.Bits()}}
		if err := h.stack.AddProtocolAddress(ifc.id, pa, stack.AddressProperties{}); err != nil {
			return fmt.Errorf("hostnet: %s: add %s: %s", ifc.Name, p, err)
		}
	}
	ifc.mu.Lock()
	ifc.addr, ifc.gateway = p, gw
	svc := ifc.svc
	ifc.mu.Unlock()
	h.rebuildRoutesLocked()
	if h.opts.TestService && (svc == nil || svc.Addr() != p.Addr()) {
		if svc != nil {
			svc.Close()
		}
		ns, err := h.serveTest(ifc, p.Addr())
		ifc.mu.Lock()
		ifc.svc = ns
		ifc.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// rebuildRoutesLocked writes the route table: every subnet, then the management default
// route, longest prefix first (gVisor takes the first match in table order).
func (h *Host) rebuildRoutesLocked() {
	var rt []tcpip.Route
	for _, ifc := range h.ifaces {
		if ifc.id == 0 {
			continue
		}
		ifc.mu.Lock()
		p, gw := ifc.addr, ifc.gateway
		ifc.mu.Unlock()
		if !p.IsValid() {
			continue
		}
		sub, err := tcpip.NewSubnet(tcpip.AddrFrom4(p.Masked().Addr().As4()), tcpip.MaskFromBytes(net.CIDRMask(p.Bits(), 32)))
		if err != nil {
			panic(fmt.Sprintf("hostnet: subnet of %s: %v", p, err)) // a masked prefix is always valid
		}
		rt = append(rt, tcpip.Route{Destination: sub, NIC: ifc.id})
		if gw.IsValid() && ifc.Role == RoleManagement {
			rt = append(rt, tcpip.Route{Destination: header.IPv4EmptySubnet, Gateway: tcpip.AddrFrom4(gw.As4()), NIC: ifc.id})
		}
	}
	sort.SliceStable(rt, func(i, j int) bool { return rt[i].Destination.Prefix() > rt[j].Destination.Prefix() })
	h.routes = rt
	h.stack.SetRouteTable(rt)
}

func (ifc *Interface) linkChanged(up bool) {
	ifc.flaps.Add(1)
	state := "down"
	if up {
		state = "up"
		select {
		case ifc.linkUp <- struct{}{}:
		default:
		}
	}
	ifc.host.logf("hostnet: %s (%s) link %s", ifc.Name, ifc.Role, state)
}

// Interfaces lists the attached NICs in name order.
func (h *Host) Interfaces() []*Interface {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*Interface(nil), h.ifaces...)
}

// Interface finds an attached NIC by name or MAC address.
func (h *Host) Interface(nameOrMAC string) (*Interface, error) {
	mac, macErr := net.ParseMAC(nameOrMAC)
	for _, ifc := range h.Interfaces() {
		if ifc.Name == nameOrMAC || (macErr == nil && string(ifc.Link.MAC()) == string(mac)) {
			return ifc, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownNIC, nameOrMAC)
}

// ByRole finds the NIC with a host-stack role (management or migration).
func (h *Host) ByRole(r Role) (*Interface, error) {
	for _, ifc := range h.Interfaces() {
		if ifc.Role == r {
			return ifc, nil
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrNoNIC, r)
}

// Addr is the IPv4 address of the NIC with role r (management or migration).
func (h *Host) Addr(r Role) (netip.Addr, error) {
	ifc, err := h.ByRole(r)
	if err != nil {
		return netip.Addr{}, err
	}
	p := ifc.Prefix()
	if !p.IsValid() {
		return netip.Addr{}, fmt.Errorf("%w: %s (%s)", ErrNoAddress, ifc.Name, r)
	}
	return p.Addr(), nil
}

// Close ends the DHCP clients and test services and tears the stack down.
func (h *Host) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	ifaces := h.ifaces
	h.mu.Unlock()
	for _, ifc := range ifaces {
		close(ifc.stopped)
		ifc.mu.Lock()
		svc := ifc.svc
		ifc.mu.Unlock()
		if svc != nil {
			svc.Close()
		}
	}
	h.stack.Close()
	h.stack.Wait()
	for _, ifc := range ifaces {
		if ifc.ep != nil {
			ifc.ep.detach()
		}
	}
}

// Prefix is the NIC's address with its prefix length (invalid while it has none).
func (ifc *Interface) Prefix() netip.Prefix {
	ifc.mu.Lock()
	defer ifc.mu.Unlock()
	return ifc.addr
}

// Gateway is the default gateway DHCP gave (invalid if none).
func (ifc *Interface) Gateway() netip.Addr {
	ifc.mu.Lock()
	defer ifc.mu.Unlock()
	return ifc.gateway
}

// DHCPState describes the DHCP client: "" for a static NIC.
func (ifc *Interface) DHCPState() string {
	if !ifc.Spec.DHCP {
		return ""
	}
	ifc.mu.Lock()
	defer ifc.mu.Unlock()
	switch {
	case ifc.addr.IsValid():
		return fmt.Sprintf("lease from %s, %s left", ifc.lease.server, time.Until(ifc.lease.expires).Round(time.Second))
	case ifc.dhcpErr != nil:
		return "acquiring (last: " + ifc.dhcpErr.Error() + ")"
	default:
		return "acquiring"
	}
}

// LinkChanges counts the link-state changes the driver reported.
func (ifc *Interface) LinkChanges() uint64 { return ifc.flaps.Load() }

// StackCounters are what the host stack's side counted for this NIC: unicast frames for
// other stations it ignored, and frames the driver refused.
func (ifc *Interface) StackCounters() (filtered, txRefused uint64) {
	if ifc.ep == nil {
		return 0, 0
	}
	return ifc.ep.filtered.Load(), ifc.ep.txRefused.Load()
}

// NICID is the interface's id on the host stack (0 when it is not on it).
func (ifc *Interface) NICID() tcpip.NICID { return ifc.id }

// StackStats summarises the host stack's own counters (gVisor's tcpip.Stats) for `net`:
// what the protocols received, sent, retransmitted and dropped.
func (h *Host) StackStats() string {
	s := h.stack.Stats()
	ip, tcp, udp, icmp := s.IP, s.TCP, s.UDP, s.ICMP.V4
	return fmt.Sprintf("ip rx %d delivered %d malformed %d bad-dst %d, tx %d errors %d; "+
		"tcp rx %d invalid %d csum-err %d, tx %d errors %d, retransmits %d timeouts %d, resets rx %d tx %d; "+
		"udp rx %d unknown-port %d csum-err %d, tx %d; icmp echo rx %d/%d tx %d/%d (request/reply); dropped %d",
		ip.PacketsReceived.Value(), ip.PacketsDelivered.Value(), ip.MalformedPacketsReceived.Value(), ip.InvalidDestinationAddressesReceived.Value(),
		ip.PacketsSent.Value(), ip.OutgoingPacketErrors.Value(),
		tcp.ValidSegmentsReceived.Value(), tcp.InvalidSegmentsReceived.Value(), tcp.ChecksumErrors.Value(),
		tcp.SegmentsSent.Value(), tcp.SegmentSendErrors.Value(), tcp.Retransmits.Value(), tcp.Timeouts.Value(),
		tcp.ResetsReceived.Value(), tcp.ResetsSent.Value(),
		udp.PacketsReceived.Value(), udp.UnknownPortErrors.Value(), udp.ChecksumErrors.Value(), udp.PacketsSent.Value(),
		icmp.PacketsReceived.EchoRequest.Value(), icmp.PacketsReceived.EchoReply.Value(),
		icmp.PacketsSent.EchoRequest.Value(), icmp.PacketsSent.EchoReply.Value(), s.DroppedPackets.Value())
}
