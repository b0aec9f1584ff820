package acpitest

import "fmt"

// Access is one recorded port write.
type Access struct {
	Port  uint16
	Size  int // bytes: 1, 2 or 4
	Value uint32
}

func (a Access) String() string {
	return fmt.Sprintf("out%d(%#x, %#x)", a.Size, a.Port, a.Value)
}

// Ports is a fake of x86 port I/O. Every write is appended to Writes and stored as the port's
// value; a read returns the stored value (0 if never written), unless a Read hook answers.
// Reads are only counted, so long polling loops stay cheap.
type Ports struct {
	Writes []Access
	Reads  map[uint16]int
	Values map[uint16]uint32
	// OnWrite, if set, runs after each write is recorded. A test can panic from it to model
	// the machine turning off, or update Values to model hardware (SCI_EN after ACPI_ENABLE).
	OnWrite func(p *Ports, a Access)
	// Read, if set, answers reads first; ok=false falls back to Values.
	Read func(p *Ports, port uint16, size int) (v uint32, ok bool)
}

func (p *Ports) in(port uint16, size int) uint32 {
	if p.Reads == nil {
		p.Reads = make(map[uint16]int)
	}
	p.Reads[port]++
	if p.Read != nil {
		if v, ok := p.Read(p, port, size); ok {
			return v
		}
	}
	return p.Values[port]
}

func (p *Ports) out(port uint16, size int, v uint32) {
	a := Access{port, size, v}
	p.Writes = append(p.Writes, a)
	if p.Values == nil {
		p.Values = make(map[uint16]uint32)
	}
	p.Values[port] = v
	if p.OnWrite != nil {
		p.OnWrite(p, a)
	}
}

// Inb implements acpi.PortIO.
func (p *Ports) Inb(port uint16) uint8 { return uint8(p.in(port, 1)) }

// Inw implements acpi.PortIO.
func (p *Ports) Inw(port uint16) uint16 { return uint16(p.in(port, 2)) }

// Outb implements acpi.PortIO.
func (p *Ports) Outb(port uint16, v uint8) { p.out(port, 1, uint32(v)) }

// Outw implements acpi.PortIO.
func (p *Ports) Outw(port uint16, v uint16) { p.out(port, 2, uint32(v)) }

// Outl implements acpi.PortIO.
func (p *Ports) Outl(port uint16, v uint32) { p.out(port, 4, v) }

// WritesTo returns the writes to port, in order.
func (p *Ports) WritesTo(port uint16) []Access {
	var out []Access
	for _, a := range p.Writes {
		if a.Port == port {
			out = append(out, a)
		}
	}
	return out
}
