// Package hostnet is Godwit's host networking above the NIC drivers: gVisor's netstack over
// the registered host NICs (package hostnet/nic), the NIC roles from the godwit.net boot
// option, DHCP, the built-in test service, and net.Conn/net.Listener for the rest of Godwit.
package hostnet

import "github.com/godwit-hv/godwit/hostnet/nic"

// Link is what a NIC driver implements; see package nic, which drivers import directly so
// they need not link the network stack.
type Link = nic.Link

// Handler is what a Link delivers received frames and link changes to.
type Handler = nic.Handler

// Register names a host NIC net0, net1, ... in call (PCI) order; see nic.Register.
func Register(l Link) string { return nic.Register(l) }
