package ata

import "github.com/godwit-hv/godwit/arch/x86"

// insw reads words 16-bit values from port into buf (io_amd64.s).
//
//go:noescape
func insw(port uint16, buf *byte, words int)

// outsw writes words 16-bit values from buf to port (io_amd64.s).
//
//go:noescape
func outsw(port uint16, buf *byte, words int)

// hostPorts is the machine's I/O space.
type hostPorts struct{}

func (hostPorts) In8(port uint16) uint8     { return x86.Inb(port) }
func (hostPorts) Out8(port uint16, v uint8) { x86.Outb(port, v) }
func (hostPorts) InWords(port uint16, buf []byte) {
	if len(buf) >= 2 {
		insw(port, &buf[0], len(buf)/2)
	}
}
func (hostPorts) OutWords(port uint16, buf []byte) {
	if len(buf) >= 2 {
		outsw(port, &buf[0], len(buf)/2)
	}
}
