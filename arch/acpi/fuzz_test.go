package acpi

import (
	"encoding/binary"
	"testing"

	"github.com/godwit-hv/godwit/arch/acpi/acpitest"
)

// FuzzLoadRaw maps arbitrary bytes as physical memory and loads tables from an RSDP at its start
// and by searching the BIOS areas: nothing may panic, whatever the lengths and pointers say.
func FuzzLoadRaw(f *testing.F) {
	m := newMachine()
	// Seed: a compact image with the RSDP, XSDT and a FADT laid out from address 0x1000.
	const base = 0x1000
	xsdt := acpitest.XSDT(base + 0x100)
	img := make([]byte, 0x100+len(m.fadt))
	copy(img, acpitest.RSDP(2, 0, base+0x40))
	copy(img[0x40:], xsdt)
	copy(img[0x100:], m.fadt)
	f.Add(img)
	f.Add(acpitest.RSDP(0, base+0x40, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		mem := &acpitest.Memory{}
		mem.Map(base, data)
		mem.Map(biosROMSearchStart, data)
		if tabs, err := Load(mem, base); err == nil {
			exercise(tabs)
		}
		if tabs, err := Find(mem); err == nil {
			exercise(tabs)
		}
	})
}

// FuzzTables builds a well-formed RSDP/XSDT around fuzzed FADT, MADT and DSDT bodies (with valid
// checksums, so the fuzzer reaches the table parsers and the power paths).
func FuzzTables(f *testing.F) {
	m := newMachine()
	f.Add(m.fadt[HeaderLength:], m.madt[HeaderLength:], m.dsdt[HeaderLength:])
	f.Add([]byte{}, []byte{}, acpitest.S5(0, 0))
	f.Fuzz(func(t *testing.T, fadtBody, madtBody, dsdtBody []byte) {
		m := newMachine()
		m.fadt = acpitest.Table("FACP", 6, fadtBody)
		if len(m.fadt) > 44 { // keep the DSDT pointers aimed at the fuzzed DSDT
			binary.LittleEndian.PutUint32(m.fadt[fadtOffDSDT:], testDSDT)
			acpitest.Fix(m.fadt, 9)
		}
		m.madt = acpitest.Table("APIC", 5, madtBody)
		m.dsdt = acpitest.Table("DSDT", 2, dsdtBody)
		m.remap()
		tabs, err := Load(m.mem, m.rsdp)
		if err != nil {
			t.Fatalf("Load with a valid root = %v", err)
		}
		exercise(tabs)
	})
}

// exercise runs every consumer of loaded tables against fakes.
func exercise(tabs *Tables) {
	_ = tabs.Err()
	if madt, err := tabs.MADT(); err == nil {
		madt.ISAIRQ(0)
		madt.IOAPICFor(0)
	}
	if p, err := NewPower(tabs); err == nil {
		p.Polls = 2
		io := &acpitest.Ports{}
		_ = p.Poweroff(io)
		_ = p.Reset(io, &acpitest.Memory{})
	}
}

// FuzzFindS5 feeds arbitrary AML to the \_S5 scanner.
func FuzzFindS5(f *testing.F) {
	f.Add([]byte{0x08, 0x5F, 0x53, 0x35, 0x5F, 0x12, 0x06, 0x04, 0x0A, 0x05, 0x0A, 0x05, 0x00, 0x00})
	f.Add([]byte{0x08, 0x5C, 0x5F, 0x53, 0x35, 0x5F, 0x12, 0x08, 0x04, 0x0A, 0x07, 0x0A, 0x07, 0x00, 0x00})
	f.Add([]byte{0x08, 0x5F, 0x53, 0x35, 0x5F, 0x12, 0x49, 0x00, 0x04, 0x0A, 0x05, 0x0A, 0x06, 0x00, 0x00})
	f.Add([]byte{0x08, 0x5F, 0x53, 0x35, 0x5F, 0x12, 0xCF, 0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, aml []byte) {
		st, err := FindS5(aml)
		if err == nil && (st.A > slpTypMax || st.B > slpTypMax) {
			t.Errorf("FindS5(% x) = %+v, which does not fit SLP_TYPx", aml, st)
		}
	})
}

// FuzzParseMADT feeds arbitrary MADT bodies to the parser.
func FuzzParseMADT(f *testing.F) {
	f.Add(testMADTBytes()[HeaderLength:])
	f.Fuzz(func(t *testing.T, body []byte) {
		b := acpitest.Table("APIC", 5, body)
		_, _ = ParseMADT(&Table{Header: parseHeader(b), Data: b})
	})
}
