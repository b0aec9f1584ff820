package hostnet

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/godwit-hv/godwit/hostnet/nic"
)

// ErrNotStarted: the host network has not been started (Start).
var ErrNotStarted = errors.New("host network not started")

var defaultHost atomic.Pointer[Host]

// Start makes the host's network stack from the godwit.net specs, makes it the default
// host that the package functions use, and attaches every NIC registered with package nic,
// now and later. Problems with one NIC are reported through opts.Logf and do not stop the
// others. onAttach (may be nil) runs for each attached NIC (the kernel makes the virtual
// switch of a vm uplink there).
func Start(specs []Spec, opts Options, onAttach func(*Interface)) *Host {
	h := NewHost(opts)
	h.SetSpecs(specs)
	defaultHost.Store(h)
	nic.Subscribe(func(r nic.Registered) {
		ifc, err := h.Attach(r)
		if err != nil {
			h.logf("hostnet: %v", err)
		}
		if ifc != nil && onAttach != nil {
			onAttach(ifc)
		}
	})
	return h
}

// Default is the host started by Start, or nil.
func Default() *Host { return defaultHost.Load() }

// DialTCP connects to addr ("10.1.0.2:7700") from the default host's NIC with role r
// (management or migration).
func DialTCP(ctx context.Context, r Role, addr string) (net.Conn, error) {
	h := Default()
	if h == nil {
		return nil, ErrNotStarted
	}
	return h.DialTCP(ctx, r, addr)
}

// ListenTCP listens on port of the default host's NIC with role r.
func ListenTCP(r Role, port uint16) (net.Listener, error) {
	h := Default()
	if h == nil {
		return nil, ErrNotStarted
	}
	return h.ListenTCP(r, port)
}

// Addr is the IPv4 address of the default host's NIC with role r.
func Addr(r Role) (netip.Addr, error) {
	h := Default()
	if h == nil {
		return netip.Addr{}, ErrNotStarted
	}
	return h.Addr(r)
}
