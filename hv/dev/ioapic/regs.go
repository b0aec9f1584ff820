package ioapic

// Guest-physical base of the I/O APIC on a PC and the size of its MMIO
// window. Intel 82093AA I/O Advanced Programmable Interrupt Controller
// (IOAPIC) datasheet, 3.1 "Memory Mapped Registers for Accessing IOAPIC
// Registers": IOREGSEL at base+0x00, IOWIN at base+0x10.
const (
	DefaultBase = 0xFEC00000
	Size        = 0x1000 // the page Linux maps; only the first 0x14 bytes hold registers
)

// MMIO registers. 82093AA datasheet, 3.1.1 "IOREGSEL" and 3.1.2 "IOWIN". Both are 32 bits wide and
// accessed with aligned 32-bit loads and stores only.
const (
	IOREGSEL = 0x00 // I/O Register Select: bits 7:0 address the register IOWIN exposes
	IOWIN    = 0x10 // I/O Window: data of the selected register
)

// Indirect registers selected through IOREGSEL. 82093AA datasheet, 3.2
// "IOAPIC Registers".
const (
	IOAPICID  = 0x00 // identification
	IOAPICVER = 0x01 // version (read-only)
	IOAPICARB = 0x02 // arbitration ID (read-only)
	IOREDTBL  = 0x10 // redirection table: entry n at 0x10+2n (bits 31:0) and 0x11+2n (63:32)
)

// NumPins is the number of interrupt input pins (and redirection entries).
const NumPins = 24

// Version register. 82093AA datasheet, 3.2.2 "IOAPICVER": bits 7:0
// version 0x11, bits 23:16 the highest redirection entry index.
const (
	Version       = 0x11
	MaxRedirShift = 16
)

// ID and arbitration registers: the 4-bit ID in bits 27:24. 82093AA
// datasheet, 3.2.1 "IOAPICID" and 3.2.3 "IOAPICARB" (the arbitration ID is
// loaded from the ID when the ID is written).
const (
	IDShift = 24
	IDMask  = 0xF << IDShift
)

// Redirection table entry bits. 82093AA datasheet, 3.2.4 "IOREDTBL[23:0]".
const (
	RedirVector         = 0xFF
	RedirDeliveryMode   = 7 << 8
	RedirLogical        = 1 << 11 // destination mode: 1 = logical
	RedirDeliveryStatus = 1 << 12 // read-only: delivery is instantaneous here, always 0
	RedirPolarityLow    = 1 << 13 // interrupt input pin polarity: 1 = active low
	RedirRemoteIRR      = 1 << 14 // read-only: level interrupt accepted, awaiting EOI
	RedirLevel          = 1 << 15 // trigger mode: 1 = level
	RedirMasked         = 1 << 16
	RedirDestShift      = 56 // destination field bits 63:56
	RedirDestMask       = 0xFF << RedirDestShift

	redirDeliveryShift = 8
	redirWritable      = RedirVector | RedirDeliveryMode | RedirLogical | RedirPolarityLow |
		RedirLevel | RedirMasked | RedirDestMask
	redirReset = RedirMasked
)

// Delivery modes of a redirection entry (bits 10:8). 82093AA datasheet,
// 3.2.4.
const (
	Fixed          = 0
	LowestPriority = 1
	SMI            = 2
	NMI            = 4
	INIT           = 5
	ExtINT         = 7
)
