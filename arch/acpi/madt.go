package acpi

import "fmt"

// Multiple APIC Description Table layout. ACPI 6.5, 5.2.12 "Multiple APIC Description Table
// (MADT)", table "Multiple APIC Description Table (MADT) Format".
const (
	madtOffLocalAPICAddress = 36 // Local Interrupt Controller Address, 32-bit
	madtOffFlags            = 40 // Flags
	madtOffEntries          = 44 // Interrupt Controller Structure[n]
	madtFlagPCATCompat      = 1 << 0
	madtEntryHeaderLength   = 2 // Type, Length
)

// Interrupt Controller Structure types. ACPI 6.5, 5.2.12, table "Interrupt Controller
// Structure Types".
const (
	madtTypeLocalAPIC         = 0x0 // ACPI 6.5, 5.2.12: "Processor Local APIC Structure"
	madtTypeIOAPIC            = 0x1 // ACPI 6.5, 5.2.12: "I/O APIC Structure"
	madtTypeSourceOverride    = 0x2 // ACPI 6.5, 5.2.12: "Interrupt Source Override Structure"
	madtTypeNMISource         = 0x3 // ACPI 6.5, 5.2.12: "Non-Maskable Interrupt (NMI) Source Structure"
	madtTypeLocalAPICNMI      = 0x4 // ACPI 6.5, 5.2.12: "Local APIC NMI Structure"
	madtTypeLocalAPICOverride = 0x5 // ACPI 6.5, 5.2.12: "Local APIC Address Override Structure"
	madtTypeLocalX2APIC       = 0x9 // ACPI 6.5, 5.2.12: "Processor Local x2APIC Structure"
	madtTypeLocalX2APICNMI    = 0xA // ACPI 6.5, 5.2.12: "Local x2APIC NMI Structure"
)

// Minimum structure lengths, one per type above.
var madtEntryLength = map[uint8]int{
	madtTypeLocalAPIC:         8,
	madtTypeIOAPIC:            12,
	madtTypeSourceOverride:    10,
	madtTypeNMISource:         8,
	madtTypeLocalAPICNMI:      6,
	madtTypeLocalAPICOverride: 12,
	madtTypeLocalX2APIC:       16,
	madtTypeLocalX2APICNMI:    12,
}

// Local APIC flags. ACPI 6.5, 5.2.12 "Processor Local APIC Structure", table "Local APIC Flags".
const (
	LocalAPICEnabled       = 1 << 0 // Enabled: the processor is usable
	LocalAPICOnlineCapable = 1 << 1 // Online Capable: disabled now but can be enabled later
)

// MPS INTI flags of overrides and NMI structures. ACPI 6.5, 5.2.12 "Interrupt Source Override Structure", table "MPS INTI Flags".
const (
	INTIPolarityMask       = 0x3
	INTIPolarityConforms   = 0x0 // conforms to the bus (ISA: active high)
	INTIPolarityActiveHigh = 0x1
	INTIPolarityActiveLow  = 0x3
	INTITriggerMask        = 0xC
	INTITriggerConforms    = 0x0 // conforms to the bus (ISA: edge)
	INTITriggerEdge        = 0x4
	INTITriggerLevel       = 0xC
)

// LocalAPICNMIAllProcessors is the processor UID meaning "every processor" in Local APIC NMI
// structures (0xFF in the xAPIC form, widened from 0xFFFFFFFF in the x2APIC form).
const LocalAPICNMIAllProcessors = 0xFFFFFFFF

// LocalAPIC is one processor: a Processor Local APIC or Processor Local x2APIC structure.
type LocalAPIC struct {
	ProcessorUID uint32
	APICID       uint32
	Flags        uint32
	X2APIC       bool // from a Processor Local x2APIC structure
}

// Usable reports whether the processor is enabled or may be brought online.
func (l LocalAPIC) Usable() bool {
	return l.Flags&(LocalAPICEnabled|LocalAPICOnlineCapable) != 0
}

// IOAPIC is one I/O APIC and the first global system interrupt it serves.
type IOAPIC struct {
	ID      uint8
	Address uint32
	GSIBase uint32
}

// SourceOverride maps a bus interrupt source (an ISA IRQ) to a global system interrupt.
type SourceOverride struct {
	Bus    uint8 // 0 = ISA
	Source uint8 // bus-relative IRQ
	GSI    uint32
	Flags  uint16 // MPS INTI flags
}

// NMISource is a global system interrupt wired as NMI.
type NMISource struct {
	Flags uint16
	GSI   uint32
}

// LocalAPICNMI says which LINT pin of which processor(s) carries NMI.
type LocalAPICNMI struct {
	ProcessorUID uint32 // LocalAPICNMIAllProcessors for all
	Flags        uint16
	LINT         uint8
}

// MADT is the decoded Multiple APIC Description Table.
type MADT struct {
	// LocalAPICAddress is the 32-bit field, replaced by a Local APIC Address Override if any.
	LocalAPICAddress uint64
	Flags            uint32
	LocalAPICs       []LocalAPIC
	IOAPICs          []IOAPIC
	Overrides        []SourceOverride
	NMISources       []NMISource
	LocalAPICNMIs    []LocalAPICNMI
}

// PCATCompat reports that the system also has dual 8259 PICs that must be masked.
func (m *MADT) PCATCompat() bool { return m.Flags&madtFlagPCATCompat != 0 }

// ISAIRQ returns the global system interrupt and MPS INTI flags for ISA IRQ irq: the Interrupt
// Source Override for it if there is one, else the identity mapping with bus-conforming flags
// (ACPI 6.5, 5.2.12 "Interrupt Source Override Structure": ISA interrupts without an override are identity-mapped).
func (m *MADT) ISAIRQ(irq uint8) (gsi uint32, flags uint16) {
	for _, o := range m.Overrides {
		if o.Bus == 0 && o.Source == irq {
			return o.GSI, o.Flags
		}
	}
	return uint32(irq), 0
}

// IOAPICFor returns the I/O APIC whose range starts at or below gsi with the highest base, and
// false if gsi lies below every I/O APIC's base. The MADT does not give each I/O APIC's size
// (that is in its version register), so the caller checks the upper bound.
func (m *MADT) IOAPICFor(gsi uint32) (IOAPIC, bool) {
	var best IOAPIC
	found := false
	for _, a := range m.IOAPICs {
		if a.GSIBase <= gsi && (!found || a.GSIBase > best.GSIBase) {
			best, found = a, true
		}
	}
	return best, found
}

// ParseMADT decodes a validated MADT. Structures of unknown type are skipped; a structure whose
// Length is shorter than its type requires, or runs past the table, is an error.
func ParseMADT(t *Table) (*MADT, error) {
	if t.Signature != SigMADT {
		return nil, fmt.Errorf("acpi: table at %#x: signature %q, want %q: %w", t.Address, t.Signature, SigMADT, ErrSignature)
	}
	b := t.Data
	if len(b) < madtOffEntries {
		return nil, fmt.Errorf("acpi: table %q at %#x: Length %d, want at least %d: %w",
			SigMADT, t.Address, len(b), madtOffEntries, ErrLength)
	}
	m := &MADT{
		LocalAPICAddress: uint64(le32(b, madtOffLocalAPICAddress)),
		Flags:            le32(b, madtOffFlags),
	}
	for off := madtOffEntries; off < len(b); {
		if off+madtEntryHeaderLength > len(b) {
			return nil, fmt.Errorf("acpi: table %q at %#x: truncated structure header at offset %d: %w",
				SigMADT, t.Address, off, ErrLength)
		}
		typ, n := b[off], int(b[off+1])
		if n < madtEntryHeaderLength || off+n > len(b) {
			return nil, fmt.Errorf("acpi: table %q at %#x: structure type %d at offset %d has Length %d (table ends at %d): %w",
				SigMADT, t.Address, typ, off, n, len(b), ErrLength)
		}
		if want, known := madtEntryLength[typ]; known && n < want {
			return nil, fmt.Errorf("acpi: table %q at %#x: structure type %d at offset %d has Length %d, want at least %d: %w",
				SigMADT, t.Address, typ, off, n, want, ErrLength)
		}
		e := b[off : off+n]
		switch typ {
		case madtTypeLocalAPIC:
			m.LocalAPICs = append(m.LocalAPICs, LocalAPIC{
				ProcessorUID: uint32(e[2]), APICID: uint32(e[3]), Flags: le32(e, 4),
			})
		case madtTypeIOAPIC:
			m.IOAPICs = append(m.IOAPICs, IOAPIC{ID: e[2], Address: le32(e, 4), GSIBase: le32(e, 8)})
		case madtTypeSourceOverride:
			m.Overrides = append(m.Overrides, SourceOverride{
				Bus: e[2], Source: e[3], GSI: le32(e, 4), Flags: le16(e, 8),
			})
		case madtTypeNMISource:
			m.NMISources = append(m.NMISources, NMISource{Flags: le16(e, 2), GSI: le32(e, 4)})
		case madtTypeLocalAPICNMI:
			uid := uint32(e[2])
			if uid == 0xFF {
				uid = LocalAPICNMIAllProcessors
			}
			m.LocalAPICNMIs = append(m.LocalAPICNMIs, LocalAPICNMI{ProcessorUID: uid, Flags: le16(e, 3), LINT: e[5]})
		case madtTypeLocalAPICOverride:
			m.LocalAPICAddress = le64(e, 4)
		case madtTypeLocalX2APIC:
			m.LocalAPICs = append(m.LocalAPICs, LocalAPIC{
				APICID: le32(e, 4), Flags: le32(e, 8), ProcessorUID: le32(e, 12), X2APIC: true,
			})
		case madtTypeLocalX2APICNMI:
			m.LocalAPICNMIs = append(m.LocalAPICNMIs, LocalAPICNMI{
				Flags: le16(e, 2), ProcessorUID: le32(e, 4), LINT: e[8],
			})
		}
		off += n
	}
	return m, nil
}
