package net_test

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/godwit-hv/godwit/hostnet"
	"github.com/godwit-hv/godwit/hostnet/linktest"
	"github.com/godwit-hv/godwit/hostnet/nic"
)

// TestGuestReachesHostOverUplink: a guest's virtio-net device on a switch whose uplink is
// wired to another host's NIC; that host's gVisor stack answers the guest's ARP request
// (RFC 826), and the reply comes back into the guest's receive buffer.
func TestGuestReachesHostOverUplink(t *testing.T) {
	r := newRig(t, nil)
	r.start()
	r.rx.Kick()

	uplink, far := linktest.Pair(linktest.MAC(10), linktest.MAC(11), linktest.Options{})
	defer uplink.Close()
	if _, err := r.sw.AttachUplink("net2", uplink); err != nil {
		t.Fatal(err)
	}
	specs, err := hostnet.ParseSpecs("net0:management:10.9.0.2/24")
	if err != nil {
		t.Fatal(err)
	}
	h := hostnet.NewHost(hostnet.Options{Logf: t.Logf})
	defer h.Close()
	h.SetSpecs(specs)
	if _, err := h.Attach(nic.Registered{Name: "net0", Link: far}); err != nil {
		t.Fatal(err)
	}

	buf := r.postRx(1526, true)
	// ARP request: who has 10.9.0.2? tell 10.9.0.50 (the guest).
	arp := make([]byte, 42)
	copy(arp[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(arp[6:12], guestMAC[:])
	binary.BigEndian.PutUint16(arp[12:], 0x0806) // EtherType ARP
	binary.BigEndian.PutUint16(arp[14:], 1)      // hardware type Ethernet
	binary.BigEndian.PutUint16(arp[16:], 0x0800) // protocol IPv4
	arp[18], arp[19] = 6, 4
	binary.BigEndian.PutUint16(arp[20:], 1) // request
	copy(arp[22:28], guestMAC[:])
	copy(arp[28:32], net.IPv4(10, 9, 0, 50).To4())
	copy(arp[38:42], net.IPv4(10, 9, 0, 2).To4())
	r.send(hdr(), append(arp, make([]byte, 18)...)) // padded to 60 bytes
	r.waitUsed(r.tx)

	_, l := r.waitUsed(r.rx)
	reply := r.mem.Host[buf+12 : buf+uint64(l)]
	if len(reply) < 42 || binary.BigEndian.Uint16(reply[12:]) != 0x0806 || binary.BigEndian.Uint16(reply[20:]) != 2 {
		t.Fatalf("guest received % x, want an ARP reply", reply)
	}
	if got := net.HardwareAddr(reply[22:28]); got.String() != linktest.MAC(11).String() {
		t.Errorf("ARP reply says 10.9.0.2 is at %s, want %s", got, linktest.MAC(11))
	}
	if string(reply[0:6]) != string(guestMAC[:]) {
		t.Errorf("ARP reply sent to % x, want the guest's MAC", reply[0:6])
	}
	fdb := r.sw.FDB()
	if len(fdb) != 2 {
		t.Errorf("switch learned %v, want the guest's and the far host's MACs", fdb)
	}
}
