// Package acpitab builds the ACPI tables a guest boots with: an RSDP (revision 2) pointing to
// an XSDT that lists a FADT and a MADT, the FACS and the DSDT the FADT points to. The DSDT is
// AML emitted by a small encoder in this package (aml.go) and declares \_S5 (soft-off), COM1
// and optionally a PCI root bridge.
//
// The platform the tables describe is a PC with full (not hardware-reduced) ACPI: PM1a event
// and control blocks at I/O ports the caller chooses, the SCI on IRQ 9, a reset register, an
// 8042 and ISA legacy devices, an RTC with a century byte, one I/O APIC at 0xFEC00000 serving
// GSIs 0-23 and dual 8259s (PCAT_COMPAT). There is no SMI command port: the platform is
// always in ACPI mode, so the PM1 control register's SCI_EN must read as set.
//
// Encode checks the configuration and lays everything out before Build writes a byte of
// guest memory. Citations are to the ACPI Specification 6.4, as "ACPI 6.4, <section>".
package acpitab

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/godwit-hv/godwit/hv"
)

// Errors callers branch on.
var (
	// ErrConfig: the configuration asks for something the tables cannot describe.
	ErrConfig = errors.New("acpitab: bad configuration")
	// ErrNoFit: the tables do not fit in guest RAM at the address given.
	ErrNoFit = errors.New("acpitab: tables do not fit in guest RAM")
)

// ResetMethod is how the FADT's RESET_REG resets the machine.
type ResetMethod int

// Reset methods.
const (
	// ResetCF9 writes 0x06 (SYS_RST | RST_CPU) to the PCI reset control register, port 0xCF9.
	ResetCF9 ResetMethod = iota
	// Reset8042 writes the pulse-reset-line command 0xFE to the 8042 command port 0x64.
	Reset8042
)

// PCIRootBridge describes a PCI host bridge (PNP0A03) and the windows it forwards.
type PCIRootBridge struct {
	// Buses is the number of bus numbers decoded, from 0 (1-256).
	Buses int
	// MMIOBase and MMIOSize are the 32-bit memory window for BARs.
	MMIOBase, MMIOSize uint32
	// GSI, if non-nil, gives the global system interrupt that device slot's interrupt pin
	// (0 = INTA# .. 3 = INTD#) is wired to, and the DSDT gets a _PRT stating it for slots
	// 0-31. Such interrupts are level-triggered and active-low (ACPI 6.4, 6.2.13).
	GSI func(slot, pin int) uint32
}

// Config is the platform the tables describe.
type Config struct {
	// CPUs is the number of processors: Local APICs with APIC IDs and processor UIDs 0..CPUs-1.
	CPUs int
	// PM1aEvent is the I/O port of PM1a_EVT_BLK (4 bytes: PM1 status, PM1 enable) and
	// PM1aControl that of PM1a_CNT_BLK (2 bytes). Both are required.
	PM1aEvent, PM1aControl uint16
	// PMTimer is the I/O port of the 24-bit ACPI PM timer (PM_TMR_BLK), 0 for none.
	PMTimer uint16
	// Reset selects RESET_REG.
	Reset ResetMethod
	// IOAPICID is the I/O APIC's ID, which the emulated I/O APIC's ID register must report.
	// I/O APIC IDs are a namespace of their own on xAPIC systems; 0 is the usual choice.
	IOAPICID uint8
	// PCI, if non-nil, adds a PCI root bridge to the DSDT.
	PCI *PCIRootBridge
}

// Fixed platform facts the tables state.
const (
	IOAPICAddress    = 0xFEC00000 // ACPI 6.4, 5.2.12.3 "I/O APIC Structure"
	LocalAPICAddress = 0xFEE00000
	SCIInterrupt     = 9    // SCI_INT: ISA IRQ 9, as on PC chipsets
	CenturyIndex     = 0x32 // CENTURY: the RTC CMOS byte holding the century
	COM1Port         = 0x3F8
	COM1IRQ          = 4
	MaxCPUs          = 255 // xAPIC IDs; 0xFF is the broadcast ID
)

// System Description Table header. ACPI 6.4, 5.2.6 "System Description Table Header".
const (
	headerLength    = 36
	hdrOffLength    = 4
	hdrOffChecksum  = 9
	oemID           = "GODWIT"
	oemTableID      = "GODWITVM"
	oemRevision     = 1
	creatorID       = "GDWT"
	creatorRevision = 1
)

// table starts a table: the header with the signature and revision; finish fills in the
// length and checksum.
func table(sig string, revision uint8) []byte {
	b := make([]byte, headerLength)
	copy(b[0:4], sig)
	b[8] = revision
	copy(b[10:16], oemID)
	copy(b[16:24], oemTableID)
	binary.LittleEndian.PutUint32(b[24:], oemRevision)
	copy(b[28:32], creatorID)
	binary.LittleEndian.PutUint32(b[32:], creatorRevision)
	return b
}

func finish(b []byte) []byte {
	binary.LittleEndian.PutUint32(b[hdrOffLength:], uint32(len(b)))
	b[hdrOffChecksum] = 0
	b[hdrOffChecksum] = -sum(b)
	return b
}

// sum is the 8-bit sum of b; structures are valid when their bytes sum to zero.
func sum(b []byte) uint8 {
	var s uint8
	for _, c := range b {
		s += c
	}
	return s
}

func (c *Config) check() error {
	if c.CPUs < 1 || c.CPUs > MaxCPUs {
		return fmt.Errorf("%w: %d CPUs, want 1 to %d", ErrConfig, c.CPUs, MaxCPUs)
	}
	if c.PM1aEvent == 0 || c.PM1aControl == 0 {
		return fmt.Errorf("%w: PM1a event block %#x and control block %#x are required", ErrConfig, c.PM1aEvent, c.PM1aControl)
	}
	type blk struct {
		name string
		port uint16
		n    uint32
	}
	blocks := []blk{{"PM1a_EVT_BLK", c.PM1aEvent, pm1EventLength}, {"PM1a_CNT_BLK", c.PM1aControl, pm1ControlLength}}
	if c.PMTimer != 0 {
		blocks = append(blocks, blk{"PM_TMR_BLK", c.PMTimer, pmTimerLength})
	}
	for i, a := range blocks {
		if uint32(a.port)+a.n > 0x10000 {
			return fmt.Errorf("%w: %s at port %#x runs past port 0xffff", ErrConfig, a.name, a.port)
		}
		for _, b := range blocks[:i] {
			if uint32(a.port) < uint32(b.port)+b.n && uint32(b.port) < uint32(a.port)+a.n {
				return fmt.Errorf("%w: %s at port %#x overlaps %s at %#x", ErrConfig, a.name, a.port, b.name, b.port)
			}
		}
	}
	if c.Reset != ResetCF9 && c.Reset != Reset8042 {
		return fmt.Errorf("%w: unknown reset method %d", ErrConfig, c.Reset)
	}
	if p := c.PCI; p != nil {
		if p.Buses < 1 || p.Buses > 256 {
			return fmt.Errorf("%w: PCI root bridge with %d buses, want 1 to 256", ErrConfig, p.Buses)
		}
		if p.MMIOSize == 0 || uint64(p.MMIOBase)+uint64(p.MMIOSize) > 1<<32 {
			return fmt.Errorf("%w: PCI MMIO window %#x+%#x is empty or crosses 4 GiB", ErrConfig, p.MMIOBase, p.MMIOSize)
		}
	}
	return nil
}

// Layout of the blob Encode returns, in order; each table 8-byte aligned, the FACS 64-byte
// aligned (ACPI 6.4, 5.2.10 "Firmware ACPI Control Structure (FACS)").
const (
	rsdpAlign  = 16 // ACPI 6.4, 5.2.5.1: "on a 16-byte boundary" when found by scanning
	facsAlign  = 64
	tableAlign = 8
)

func alignUp(x, a uint64) uint64 { return (x + a - 1) &^ (a - 1) }

// Encode lays out the tables at guest-physical address addr (16-byte aligned) and returns them
// as one block of bytes to copy there; the RSDP is at its start.
func Encode(addr uint64, cfg Config) ([]byte, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	if addr%rsdpAlign != 0 {
		return nil, fmt.Errorf("%w: address %#x is not %d-byte aligned", ErrConfig, addr, rsdpAlign)
	}
	if addr >= 1<<32 {
		// FIRMWARE_CTRL and DSDT are 32-bit fields that must agree with their X_ forms.
		return nil, fmt.Errorf("%w: address %#x is above 4 GiB", ErrConfig, addr)
	}
	dsdt := buildDSDT(&cfg)
	madt := buildMADT(&cfg)

	off := uint64(rsdpLength)
	facsOff := alignUp(off, facsAlign)
	dsdtOff := alignUp(facsOff+facsLength, tableAlign)
	fadtOff := alignUp(dsdtOff+uint64(len(dsdt)), tableAlign)
	madtOff := alignUp(fadtOff+fadtLength, tableAlign)
	xsdtOff := alignUp(madtOff+uint64(len(madt)), tableAlign)
	fadt := buildFADT(&cfg, addr+facsOff, addr+dsdtOff)
	xsdt := buildXSDT(addr+fadtOff, addr+madtOff)
	end := xsdtOff + uint64(len(xsdt))
	if addr+end > 1<<32 {
		return nil, fmt.Errorf("%w: tables at %#x-%#x cross 4 GiB", ErrConfig, addr, addr+end)
	}

	blob := make([]byte, end)
	copy(blob, buildRSDP(addr+xsdtOff))
	copy(blob[facsOff:], buildFACS())
	copy(blob[dsdtOff:], dsdt)
	copy(blob[fadtOff:], fadt)
	copy(blob[madtOff:], madt)
	copy(blob[xsdtOff:], xsdt)
	return blob, nil
}

// Build writes the tables into mem at addr and returns the RSDP's address (addr), for
// boot_params.acpi_rsdp_addr or a copy in the BIOS area. The caller reserves
// [addr, addr+len(Encode's result)) in the guest's memory map as E820 ACPI or reserved.
func Build(mem *hv.Memory, addr uint64, cfg Config) (rsdpAddr uint64, err error) {
	if mem == nil {
		return 0, fmt.Errorf("%w: no guest memory", ErrNoFit)
	}
	blob, err := Encode(addr, cfg)
	if err != nil {
		return 0, err
	}
	if _, err := mem.WriteAt(blob, int64(addr)); err != nil {
		return 0, fmt.Errorf("%w: %d bytes at %#x: %w", ErrNoFit, len(blob), addr, err)
	}
	return addr, nil
}
