// Package acpitest builds synthetic ACPI tables with correct checksums and provides fakes of
// physical memory and port I/O, for testing package acpi and its users in user space.
//
// It deliberately does not import package acpi: the layouts here are written out again from the
// ACPI 6.5 specification, so a wrong offset in the parser is not silently mirrored by the builder.
package acpitest

import (
	"encoding/binary"
	"fmt"
)

// Fix sets b[off] so that the bytes of b sum to zero modulo 256 and returns b.
func Fix(b []byte, off int) []byte {
	b[off] = 0
	var s uint8
	for _, c := range b {
		s += c
	}
	b[off] = -s
	return b
}

func put16(b []byte, off int, v uint16) { binary.LittleEndian.PutUint16(b[off:], v) }
func put32(b []byte, off int, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }
func put64(b []byte, off int, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }

// RSDP returns a Root System Description Pointer (ACPI 6.5, 5.2.5.3). Revision 0 gives the
// 20-byte ACPI 1.0 form; revision >= 2 the 36-byte form with XSDT address and extended checksum.
func RSDP(revision uint8, rsdt uint32, xsdt uint64) []byte {
	n := 20
	if revision >= 2 {
		n = 36
	}
	b := make([]byte, n)
	copy(b, "RSD PTR ")
	copy(b[9:], "GODWIT")
	b[15] = revision
	put32(b, 16, rsdt)
	Fix(b[:20], 8)
	if revision >= 2 {
		put32(b, 20, uint32(n))
		put64(b, 24, xsdt)
		Fix(b, 32)
	}
	return b
}

// Table returns a System Description Table (ACPI 6.5, 5.2.6) with the given signature, revision
// and body, its Length and Checksum filled in.
func Table(sig string, revision uint8, body []byte) []byte {
	if len(sig) != 4 {
		panic(fmt.Sprintf("acpitest: signature %q is not 4 bytes", sig))
	}
	b := make([]byte, 36+len(body))
	copy(b, sig)
	put32(b, 4, uint32(len(b)))
	b[8] = revision
	copy(b[10:], "GODWIT")
	copy(b[16:], "SYNTHTBL")
	put32(b, 24, 1)
	copy(b[28:], "GDWT")
	put32(b, 32, 1)
	copy(b[36:], body)
	return Fix(b, 9)
}

// XSDT returns an XSDT listing the given 64-bit table addresses.
func XSDT(addrs ...uint64) []byte {
	body := make([]byte, 8*len(addrs))
	for i, a := range addrs {
		put64(body, 8*i, a)
	}
	return Table("XSDT", 1, body)
}

// RSDT returns an RSDT listing the given 32-bit table addresses.
func RSDT(addrs ...uint32) []byte {
	body := make([]byte, 4*len(addrs))
	for i, a := range addrs {
		put32(body, 4*i, a)
	}
	return Table("RSDT", 1, body)
}

// GAS is a Generic Address Structure (ACPI 6.5, 5.2.3.2).
type GAS struct {
	Space, BitWidth, BitOffset, AccessSize uint8
	Address                                uint64
}

func (g GAS) put(b []byte, off int) {
	b[off], b[off+1], b[off+2], b[off+3] = g.Space, g.BitWidth, g.BitOffset, g.AccessSize
	put64(b, off+4, g.Address)
}

// FADT describes a Fixed ACPI Description Table (ACPI 6.5, 5.2.9). Zero fields are left zero.
type FADT struct {
	Length          int // total table length; 0 means the full 276-byte ACPI 6.x table
	Revision        uint8
	FirmwareCtrl    uint32
	DSDT            uint32
	XDSDT           uint64
	SCIInt          uint16
	SMICmd          uint32
	ACPIEnable      uint8
	ACPIDisable     uint8
	PM1aEvtBlk      uint32
	PM1aCntBlk      uint32
	PM1bCntBlk      uint32
	PMTmrBlk        uint32
	PM1CntLen       uint8
	Century         uint8
	IAPCBootArch    uint16
	Flags           uint32
	ResetReg        GAS
	ResetValue      uint8
	XPM1aCntBlk     GAS
	XPM1bCntBlk     GAS
	SleepControlReg GAS
	SleepStatusReg  GAS
}

// FullFADTLength is the size of the ACPI 6.x FADT.
const FullFADTLength = 276

// Bytes returns the table, truncated to Length (fields past it are dropped, as in old firmware).
func (f FADT) Bytes() []byte {
	b := make([]byte, FullFADTLength)
	put32(b, 36, f.FirmwareCtrl)
	put32(b, 40, f.DSDT)
	put16(b, 46, f.SCIInt)
	put32(b, 48, f.SMICmd)
	b[52], b[53] = f.ACPIEnable, f.ACPIDisable
	put32(b, 56, f.PM1aEvtBlk)
	put32(b, 64, f.PM1aCntBlk)
	put32(b, 68, f.PM1bCntBlk)
	put32(b, 76, f.PMTmrBlk)
	b[89] = f.PM1CntLen
	b[108] = f.Century
	put16(b, 109, f.IAPCBootArch)
	put32(b, 112, f.Flags)
	f.ResetReg.put(b, 116)
	b[128] = f.ResetValue
	put64(b, 140, f.XDSDT)
	f.XPM1aCntBlk.put(b, 172)
	f.XPM1bCntBlk.put(b, 184)
	f.SleepControlReg.put(b, 244)
	f.SleepStatusReg.put(b, 256)
	n := f.Length
	if n == 0 {
		n = FullFADTLength
	}
	rev := f.Revision
	if rev == 0 {
		rev = 6
	}
	return Table("FACP", rev, b[36:n])
}

// MADT returns a Multiple APIC Description Table (ACPI 6.5, 5.2.12) with the given Local
// Interrupt Controller Address, Flags and interrupt controller structures.
func MADT(lapic, flags uint32, entries ...[]byte) []byte {
	body := make([]byte, 8)
	put32(body, 0, lapic)
	put32(body, 4, flags)
	for _, e := range entries {
		body = append(body, e...)
	}
	return Table("APIC", 5, body)
}

// LocalAPIC returns a Processor Local APIC structure (type 0, 8 bytes).
func LocalAPIC(uid, apicID uint8, flags uint32) []byte {
	e := []byte{0, 8, uid, apicID, 0, 0, 0, 0}
	put32(e, 4, flags)
	return e
}

// IOAPIC returns an I/O APIC structure (type 1, 12 bytes).
func IOAPIC(id uint8, addr, gsiBase uint32) []byte {
	e := []byte{1, 12, id, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	put32(e, 4, addr)
	put32(e, 8, gsiBase)
	return e
}

// SourceOverride returns an Interrupt Source Override structure (type 2, 10 bytes).
func SourceOverride(bus, source uint8, gsi uint32, flags uint16) []byte {
	e := []byte{2, 10, bus, source, 0, 0, 0, 0, 0, 0}
	put32(e, 4, gsi)
	put16(e, 8, flags)
	return e
}

// LocalAPICNMI returns a Local APIC NMI structure (type 4, 6 bytes).
func LocalAPICNMI(uid uint8, flags uint16, lint uint8) []byte {
	e := []byte{4, 6, uid, 0, 0, lint}
	put16(e, 3, flags)
	return e
}

// LocalX2APIC returns a Processor Local x2APIC structure (type 9, 16 bytes).
func LocalX2APIC(x2apicID, flags, uid uint32) []byte {
	e := make([]byte, 16)
	e[0], e[1] = 9, 16
	put32(e, 4, x2apicID)
	put32(e, 8, flags)
	put32(e, 12, uid)
	return e
}

// S5 returns the AML for Name(\_S5, Package(0x04){a, b, Zero, Zero}) with BytePrefix elements,
// the encoding iasl emits.
func S5(a, b uint8) []byte {
	return []byte{0x08, '\\', '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0A, a, 0x0A, b, 0x00, 0x00}
}

// Memory is a sparse fake of physical memory: byte slices mapped at addresses. Reads of
// unmapped bytes fail. It also records byte writes, for memory-mapped reset registers.
type Memory struct {
	regions []region
	Writes  []MemWrite
}

type region struct {
	addr uint64
	b    []byte
}

// MemWrite is one recorded Write8.
type MemWrite struct {
	Addr  uint64
	Value uint8
}

// Map places b at physical address addr (later mappings shadow earlier ones where they overlap).
func (m *Memory) Map(addr uint64, b []byte) {
	m.regions = append(m.regions, region{addr, b})
}

// byteAt returns the byte at addr from the last mapping covering it.
func (m *Memory) byteAt(addr uint64) (byte, bool) {
	var v byte
	ok := false
	for _, r := range m.regions {
		if addr >= r.addr && addr-r.addr < uint64(len(r.b)) {
			v, ok = r.b[addr-r.addr], true
		}
	}
	return v, ok
}

// ReadPhys implements acpi.Memory.
func (m *Memory) ReadPhys(addr uint64, p []byte) error {
	for i := range p {
		a := addr + uint64(i)
		if a < addr {
			return fmt.Errorf("acpitest: read %#x+%d wraps", addr, len(p))
		}
		v, ok := m.byteAt(a)
		if !ok {
			return fmt.Errorf("acpitest: physical address %#x not mapped", a)
		}
		p[i] = v
	}
	return nil
}

// Write8 implements acpi.MMIO by recording the write.
func (m *Memory) Write8(addr uint64, v uint8) error {
	m.Writes = append(m.Writes, MemWrite{addr, v})
	return nil
}
