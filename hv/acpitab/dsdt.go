package acpitab

// DSDT. ACPI 6.4, 5.2.11.1 "Differentiated System Description Table (DSDT)": revision 2 and
// later makes AML integers 64 bits wide.
const dsdtRevision = 2

// PCI configuration mechanism #1 ports, which the root bridge consumes and does not forward.
const (
	pciConfigPort   = 0xCF8
	pciConfigLength = 8
)

// Sleep type values of \_S5 (SLP_TYPa, SLP_TYPb); the PM1 control block must act on a write
// of SLP_TYPa with SLP_EN. ACPI 6.4, 7.4.2 "\_Sx (System States)".
const (
	S5SlpTypA = 5
	S5SlpTypB = 5
)

// buildDSDT emits the DSDT:
//
//	Name (\_S5, Package () { 5, 5, 0, 0 })
//	Scope (\_SB) {
//	    Device (COM1) {
//	        Name (_HID, EisaId ("PNP0501"))
//	        Name (_UID, 1)
//	        Name (_CRS, ResourceTemplate () { IO (Decode16, 0x3F8, 0x3F8, 1, 8) IRQNoFlags () {4} })
//	    }
//	    Device (PCI0) { ... }    // with cfg.PCI only
//	}
func buildDSDT(cfg *Config) []byte {
	sb := [][]byte{
		// ACPI 6.4, 6.1.5 "_HID", 6.1.12 "_UID", 6.2.2 "_CRS".
		device("COM1",
			name("_HID", integer(uint64(eisaID("PNP0501")))), // 16550A-compatible COM port
			name("_UID", integer(1)),
			name("_CRS", resourceTemplate(ioPort(COM1Port, 8), irqNoFlags(COM1IRQ))),
		),
	}
	if p := cfg.PCI; p != nil {
		sb = append(sb, device("PCI0",
			name("_HID", integer(uint64(eisaID("PNP0A03")))), // PCI host bridge
			name("_UID", integer(0)),
			name("_SEG", integer(0)), // 6.5.6 "_SEG (Segment)"
			name("_BBN", integer(0)), // 6.5.5 "_BBN (Base Bus Number)"
			name("_ADR", integer(0)),
			name("_CRS", resourceTemplate(
				wordAddr(resTypeBus, 0, 0, uint16(p.Buses)),
				ioPort(pciConfigPort, pciConfigLength),
				wordAddr(resTypeIO, resIORangeBoth, 0, pciConfigPort),
				wordAddr(resTypeIO, resIORangeBoth, pciConfigPort+pciConfigLength, 0xFFFF-(pciConfigPort+pciConfigLength)+1),
				dwordMemory(p.MMIOBase, p.MMIOSize),
			)),
			prt(p),
		))
	}
	b := table("DSDT", dsdtRevision)
	b = append(b, name(`\_S5`, pkg(integer(S5SlpTypA), integer(S5SlpTypB), integer(0), integer(0)))...)
	b = append(b, scope(`\_SB`, sb...)...)
	return finish(b)
}

// PCI interrupt routing: every slot's four pins. PCI Local Bus Specification 3.0, 2.2.6.
const (
	pciSlots       = 32
	pciPinsPerSlot = 4
	prtAnyFunction = 0xFFFF // _PRT Address low word: all functions of the device
)

// prt emits Name (_PRT, Package () { Package () { Address, Pin, Zero, GSI }, ... }) for a
// bridge with fixed wiring (Source 0: the Source Index is the GSI). ACPI 6.4, 6.2.13 "_PRT
// (PCI Routing Table)". Without GSI it emits nothing.
func prt(p *PCIRootBridge) []byte {
	if p.GSI == nil {
		return nil
	}
	var entries [][]byte
	for slot := range pciSlots {
		for pin := range pciPinsPerSlot {
			entries = append(entries, pkg(
				integer(uint64(slot)<<16|prtAnyFunction),
				integer(uint64(pin)),
				integer(0),
				integer(uint64(p.GSI(slot, pin))),
			))
		}
	}
	return name("_PRT", pkg(entries...))
}
