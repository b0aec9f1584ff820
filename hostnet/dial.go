package hostnet

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
)

// ParseHostPort reads "10.1.0.2:7700" (an IPv4 address; the host stack has no resolver).
func ParseHostPort(addr string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: %w", addr, err)
	}
	ip, err := ParseIPv4(host)
	if err != nil {
		return netip.AddrPort{}, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return netip.AddrPort{}, fmt.Errorf("address %q: bad port %q", addr, port)
	}
	return netip.AddrPortFrom(ip, uint16(p)), nil
}

// ParseIPv4 reads a dotted-quad IPv4 address; host names are refused (there is no DNS on
// the host stack).
func ParseIPv4(host string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Is4() {
		return netip.Addr{}, fmt.Errorf("unknown host %q: want an IPv4 address like 10.0.0.2 (the host stack has no DNS)", host)
	}
	return ip, nil
}

func fullAddr(id tcpip.NICID, ap netip.AddrPort) tcpip.FullAddress {
	return tcpip.FullAddress{NIC: id, Addr: tcpip.AddrFrom4(ap.Addr().As4()), Port: ap.Port()}
}

// DialTCP connects to addr ("10.1.0.2:7700") from the NIC with role r (management or
// migration), so that migration traffic leaves through the migration NIC.
func (h *Host) DialTCP(ctx context.Context, r Role, addr string) (net.Conn, error) {
	ap, err := ParseHostPort(addr)
	if err != nil {
		return nil, err
	}
	local, ifc, err := h.localFor(r)
	if err != nil {
		return nil, err
	}
	c, err := gonet.DialTCPWithBind(ctx, h.stack, fullAddr(ifc.id, netip.AddrPortFrom(local, 0)), fullAddr(ifc.id, ap), ipv4.ProtocolNumber)
	if err != nil {
		return nil, fmt.Errorf("dial %s via %s (%s): %w", addr, ifc.Name, r, err)
	}
	return c, nil
}

// ListenTCP accepts TCP connections on port of the address of the NIC with role r.
func (h *Host) ListenTCP(r Role, port uint16) (net.Listener, error) {
	local, ifc, err := h.localFor(r)
	if err != nil {
		return nil, err
	}
	return h.listenOn(ifc, local, port)
}

func (h *Host) localFor(r Role) (netip.Addr, *Interface, error) {
	if r != RoleManagement && r != RoleMigration {
		return netip.Addr{}, nil, fmt.Errorf("%w: %s NICs are not on the host stack (want management or migration)", ErrWrongRole, r)
	}
	ifc, err := h.ByRole(r)
	if err != nil {
		return netip.Addr{}, nil, err
	}
	p := ifc.Prefix()
	if !p.IsValid() {
		return netip.Addr{}, nil, fmt.Errorf("%w: %s (%s)", ErrNoAddress, ifc.Name, r)
	}
	return p.Addr(), ifc, nil
}

// listenOn listens on a.port of ifc.
func (h *Host) listenOn(ifc *Interface, a netip.Addr, port uint16) (net.Listener, error) {
	l, err := gonet.ListenTCP(h.stack, fullAddr(ifc.id, netip.AddrPortFrom(a, port)), ipv4.ProtocolNumber)
	if err != nil {
		return nil, fmt.Errorf("listen on %s:%d (%s): %w", a, port, ifc.Name, err)
	}
	return l, nil
}
