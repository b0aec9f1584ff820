package vswitch

import (
	"encoding/binary"
	"fmt"
)

// RARP announcement, as hypervisors send after a live migration so that the physical
// switches learn the guest's MAC on its new host's port (MIGRATION.md, step 6).
// RFC 903 "A Reverse Address Resolution Protocol": the ARP packet format of RFC 826 with
// opcode 3 (request reverse) and EtherType 0x8035.
const (
	etherTypeRARP    = 0x8035
	arpHTypeEthernet = 1      // RFC 826 ar$hrd: Ethernet
	arpPTypeIPv4     = 0x0800 // RFC 826 ar$pro
	rarpOpRequest    = 3      // RFC 903: request reverse
	arpPacketLen     = 28     // hrd, pro, hln, pln, op, sha(6), spa(4), tha(6), tpa(4)
	minFrameLen      = 60     // IEEE 802.3 minimum less FCS: the frame is padded to it
)

// RARPFrame builds the announcement frame for mac: a broadcast RARP request whose sender
// and target hardware addresses are mac and protocol addresses are 0.
func RARPFrame(mac [6]byte) []byte {
	f := make([]byte, minFrameLen)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], mac[:])
	binary.BigEndian.PutUint16(f[12:], etherTypeRARP)
	a := f[14 : 14+arpPacketLen]
	binary.BigEndian.PutUint16(a[0:], arpHTypeEthernet)
	binary.BigEndian.PutUint16(a[2:], arpPTypeIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:], rarpOpRequest)
	copy(a[8:14], mac[:])
	copy(a[18:24], mac[:])
	return f
}

// Announce sends a RARP announcement for mac as if the port's endpoint had sent it: the
// switch learns mac on this port and floods the frame to every other port, the uplink
// included. After a migration the destination calls it for each of the guest's MACs on the
// guest's port, a few times (QEMU sends five rounds, 50 ms apart and growing).
func (p *Port) Announce(mac [6]byte) error {
	if err := p.Send(RARPFrame(mac)); err != nil {
		return fmt.Errorf("announce %x: %w", mac, err)
	}
	return nil
}
