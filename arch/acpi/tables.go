package acpi

import (
	"errors"
	"fmt"
)

// System Description Table header, shared by every table but the FACS.
// ACPI 6.5, 5.2.6 "System Description Table Header".
const (
	headerOffSignature       = 0  // Signature, 4 ASCII bytes
	headerOffLength          = 4  // Length of the whole table including the header
	headerOffRevision        = 8  // Revision
	headerOffChecksum        = 9  // Checksum: the whole table sums to zero
	headerOffOEMID           = 10 // OEMID, 6 bytes
	headerOffOEMTableID      = 16 // OEM Table ID, 8 bytes
	headerOffOEMRevision     = 24 // OEM Revision
	headerOffCreatorID       = 28 // Creator ID, 4 bytes
	headerOffCreatorRevision = 32 // Creator Revision
	HeaderLength             = 36 // size of the header; table bodies start here

	// maxTableLength bounds a table's Length field before it is allocated and read. Real DSDTs
	// are well under 1 MiB; the bound keeps a corrupt length from allocating gigabytes.
	maxTableLength = 16 << 20
)

// Table signatures, each from the section defining the table.
const (
	SigXSDT = "XSDT" // 5.2.8 "Extended System Description Table (XSDT)"
	SigRSDT = "RSDT" // 5.2.7 "Root System Description Table (RSDT)"
	SigFADT = "FACP" // 5.2.9 "Fixed ACPI Description Table (FADT)"
	SigDSDT = "DSDT" // 5.2.11.1 "Differentiated System Description Table (DSDT)"
	SigSSDT = "SSDT" // 5.2.11.2 "Secondary System Description Table (SSDT)"
	SigMADT = "APIC" // 5.2.12 "Multiple APIC Description Table (MADT)"
)

// Root table entry sizes: the XSDT holds 64-bit addresses, the RSDT 32-bit ones.
// ACPI 6.5, 5.2.7 and 5.2.8.
const (
	xsdtEntrySize = 8
	rsdtEntrySize = 4
)

// Header is a decoded System Description Table header.
type Header struct {
	Signature       string
	Length          uint32
	Revision        uint8
	Checksum        uint8
	OEMID           string
	OEMTableID      string
	OEMRevision     uint32
	CreatorID       string
	CreatorRevision uint32
}

// Table is one checksum-validated table as read from firmware.
type Table struct {
	Header
	Address uint64 // physical address of the header
	Data    []byte // the whole table, header included (Length bytes)
}

// Body returns the table's bytes after the header.
func (t *Table) Body() []byte { return t.Data[HeaderLength:] }

func parseHeader(b []byte) Header {
	return Header{
		Signature:       string(b[headerOffSignature : headerOffSignature+4]),
		Length:          le32(b, headerOffLength),
		Revision:        b[headerOffRevision],
		Checksum:        b[headerOffChecksum],
		OEMID:           trimID(b[headerOffOEMID : headerOffOEMID+6]),
		OEMTableID:      trimID(b[headerOffOEMTableID : headerOffOEMTableID+8]),
		OEMRevision:     le32(b, headerOffOEMRevision),
		CreatorID:       trimID(b[headerOffCreatorID : headerOffCreatorID+4]),
		CreatorRevision: le32(b, headerOffCreatorRevision),
	}
}

// ReadTable reads and validates the table at addr: its Length must cover at least the header and
// at most maxTableLength, its bytes must sum to zero, and, if want is not empty, its signature
// must be want. Errors name the table and the address.
func ReadTable(mem Memory, addr uint64, want string) (*Table, error) {
	name := want
	if name == "" {
		name = "table"
	}
	hb, err := read(mem, addr, HeaderLength, name+" header")
	if err != nil {
		return nil, err
	}
	h := parseHeader(hb)
	if want != "" && h.Signature != want {
		return nil, fmt.Errorf("acpi: table at %#x: signature %q, want %q: %w", addr, h.Signature, want, ErrSignature)
	}
	if h.Length < HeaderLength || h.Length > maxTableLength {
		return nil, fmt.Errorf("acpi: table %q at %#x: Length %d outside [%d, %d]: %w",
			h.Signature, addr, h.Length, HeaderLength, maxTableLength, ErrLength)
	}
	b, err := read(mem, addr, int(h.Length), fmt.Sprintf("table %q", h.Signature))
	if err != nil {
		return nil, err
	}
	if s := checksum(b); s != 0 {
		return nil, fmt.Errorf("acpi: table %q at %#x: checksum of %d bytes is %#02x, want 0 (Checksum field %#02x): %w",
			h.Signature, addr, h.Length, s, h.Checksum, ErrChecksum)
	}
	return &Table{Header: h, Address: addr, Data: b}, nil
}

// Tables is the set of validated tables reachable from one RSDP.
type Tables struct {
	RSDP RSDP
	// Root is the XSDT, or the RSDT when there is no usable XSDT.
	Root *Table
	// List holds every valid table listed by Root, in Root's order, followed by the DSDT the
	// FADT points to (the DSDT is never listed in the root table).
	List []*Table
	// Errors records tables that were skipped because they failed validation. Load still
	// succeeds when only some tables are bad, so one broken OEM table does not cost the machine
	// its power-off path; the kernel should log these.
	Errors []error
}

// Find locates the RSDP in the legacy BIOS areas and loads the tables it points to.
func Find(mem Memory) (*Tables, error) {
	r, err := FindRSDP(mem)
	if err != nil {
		return nil, err
	}
	return loadFrom(mem, r)
}

// Load loads the tables reachable from the RSDP at rsdpAddr (as handed over by the loader).
func Load(mem Memory, rsdpAddr uint64) (*Tables, error) {
	r, err := ReadRSDP(mem, rsdpAddr)
	if err != nil {
		return nil, err
	}
	return loadFrom(mem, r)
}

func loadFrom(mem Memory, r RSDP) (*Tables, error) {
	t := &Tables{RSDP: r}
	var rootErr error
	if r.Revision >= rsdpExtendedRevision && r.XSDTAddress != 0 {
		t.Root, rootErr = ReadTable(mem, r.XSDTAddress, SigXSDT)
		if rootErr != nil {
			t.Errors = append(t.Errors, rootErr)
		}
	}
	entrySize := xsdtEntrySize
	if t.Root == nil {
		if r.RSDTAddress == 0 {
			if rootErr != nil {
				return nil, rootErr
			}
			return nil, fmt.Errorf("acpi: RSDP at %#x: no XSDT or RSDT address: %w", r.Address, ErrNotFound)
		}
		root, err := ReadTable(mem, uint64(r.RSDTAddress), SigRSDT)
		if err != nil {
			return nil, errors.Join(rootErr, err)
		}
		t.Root, entrySize = root, rsdtEntrySize
	}

	body := t.Root.Body()
	if len(body)%entrySize != 0 {
		t.Errors = append(t.Errors, fmt.Errorf("acpi: table %q at %#x: body of %d bytes is not a whole number of %d-byte entries: %w",
			t.Root.Signature, t.Root.Address, len(body), entrySize, ErrLength))
	}
	for off := 0; off+entrySize <= len(body); off += entrySize {
		var addr uint64
		if entrySize == xsdtEntrySize {
			addr = le64(body, off)
		} else {
			addr = uint64(le32(body, off))
		}
		if addr == 0 {
			t.Errors = append(t.Errors, fmt.Errorf("acpi: table %q at %#x: entry %d is a null pointer: %w",
				t.Root.Signature, t.Root.Address, off/entrySize, ErrNotFound))
			continue
		}
		tab, err := ReadTable(mem, addr, "")
		if err != nil {
			t.Errors = append(t.Errors, fmt.Errorf("%s entry %d: %w", t.Root.Signature, off/entrySize, err))
			continue
		}
		t.List = append(t.List, tab)
	}

	if fadtTab := t.Get(SigFADT); fadtTab != nil {
		f, err := ParseFADT(fadtTab)
		switch {
		case err != nil:
			t.Errors = append(t.Errors, err)
		case f.DSDT == 0:
			t.Errors = append(t.Errors, fmt.Errorf("acpi: table %q at %#x: no DSDT address: %w", SigFADT, fadtTab.Address, ErrNotFound))
		default:
			d, err := ReadTable(mem, f.DSDT, SigDSDT)
			if err != nil {
				t.Errors = append(t.Errors, fmt.Errorf("FADT DSDT pointer: %w", err))
			} else {
				t.List = append(t.List, d)
			}
		}
	}
	return t, nil
}

// Get returns the first valid table with signature sig, or nil.
func (t *Tables) Get(sig string) *Table {
	for _, tab := range t.List {
		if tab.Signature == sig {
			return tab
		}
	}
	return nil
}

// All returns every valid table with signature sig (there may be many SSDTs).
func (t *Tables) All(sig string) []*Table {
	var out []*Table
	for _, tab := range t.List {
		if tab.Signature == sig {
			out = append(out, tab)
		}
	}
	return out
}

// Err joins the errors of the tables Load skipped, or returns nil if there were none.
func (t *Tables) Err() error { return errors.Join(t.Errors...) }

// FADT parses the Fixed ACPI Description Table.
func (t *Tables) FADT() (*FADT, error) {
	tab := t.Get(SigFADT)
	if tab == nil {
		return nil, fmt.Errorf("acpi: table %q: %w", SigFADT, ErrNotFound)
	}
	return ParseFADT(tab)
}

// MADT parses the Multiple APIC Description Table.
func (t *Tables) MADT() (*MADT, error) {
	tab := t.Get(SigMADT)
	if tab == nil {
		return nil, fmt.Errorf("acpi: table %q: %w", SigMADT, ErrNotFound)
	}
	return ParseMADT(tab)
}

// S5 finds the \_S5 soft-off package in the DSDT, then in each SSDT, and returns its sleep types.
func (t *Tables) S5() (SleepType, error) {
	var errs []error
	for _, tab := range append(t.All(SigDSDT), t.All(SigSSDT)...) {
		st, err := FindS5(tab.Body())
		if err == nil {
			return st, nil
		}
		errs = append(errs, fmt.Errorf("table %q at %#x: %w", tab.Signature, tab.Address, err))
	}
	if len(errs) == 0 {
		return SleepType{}, fmt.Errorf("acpi: \\_S5: no DSDT or SSDT: %w", ErrNotFound)
	}
	return SleepType{}, fmt.Errorf("acpi: \\_S5: %w", errors.Join(errs...))
}
