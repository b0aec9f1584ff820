package acpi

import "github.com/godwit-hv/godwit/arch/x86"

// x86PortIO performs port I/O with the IN and OUT instructions through arch/x86. It works only
// at CPL 0 (the Godwit kernel); in a Linux process every call faults.
type x86PortIO struct{}

func (x86PortIO) Inb(port uint16) uint8      { return x86.Inb(port) }
func (x86PortIO) Outb(port uint16, v uint8)  { x86.Outb(port, v) }
func (x86PortIO) Inw(port uint16) uint16     { return x86.Inw(port) }
func (x86PortIO) Outw(port uint16, v uint16) { x86.Outw(port, v) }
func (x86PortIO) Outl(port uint16, v uint32) { x86.Outl(port, v) }

// HostPortIO returns the PortIO the kernel passes to Poweroff, Reset and the fallbacks: real
// IN/OUT instructions on the host.
func HostPortIO() PortIO { return x86PortIO{} }
