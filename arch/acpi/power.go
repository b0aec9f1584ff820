package acpi

import (
	"errors"
	"fmt"
)

// PortIO performs x86 port I/O. The kernel passes HostPortIO(); tests pass a recorder.
type PortIO interface {
	Inb(port uint16) uint8
	Outb(port uint16, v uint8)
	Inw(port uint16) uint16
	Outw(port uint16, v uint16)
	Outl(port uint16, v uint32)
}

// PM1 Control Register bits. ACPI 6.5, 4.8.3.2.1 "PM1 Control Registers", table "PM1
// Control Registers Fixed Hardware Feature Control Bits".
const (
	PM1SCIEn       = 1 << 0 // SCI_EN: 1 = ACPI mode (power management events raise SCI, not SMI)
	PM1SlpTypShift = 10     // SLP_TYPx: bits 10-12, the sleep type from \_Sx
	PM1SlpTypMask  = 7 << PM1SlpTypShift
	PM1SlpEn       = 1 << 13 // SLP_EN: write 1 to enter the sleep state in SLP_TYPx
)

// Sleep Control Register bits, used instead of PM1 on hardware-reduced platforms.
// ACPI 6.5, 4.8.3.7 "Sleep Control and Status Registers".
const (
	SleepCtlSlpTypShift = 2 // SLP_TYPx: bits 2-4
	SleepCtlSlpTypMask  = 7 << SleepCtlSlpTypShift
	SleepCtlSlpEn       = 1 << 5 // SLP_EN
)

// PCI configuration mechanism #1, used for a RESET_REG in PCI configuration space (bus 0).
// PCI Local Bus Specification 3.0, 3.2.2.3.2 "Software Generation of Configuration Transactions".
const (
	pciConfigAddress   = 0xCF8   // CONFIG_ADDRESS
	pciConfigData      = 0xCFC   // CONFIG_DATA
	pciConfigEnable    = 1 << 31 // Enable bit
	pciDeviceShift     = 11      // Device Number: bits 15-11
	pciFunctionShift   = 8       // Function Number: bits 10-8
	pciRegisterMask    = 0xFC    // Register Number: bits 7-2 (dword-aligned)
	pciByteInDword     = 0x3     // byte lane within CONFIG_DATA
	pciMaxDevice       = 31
	pciMaxFunction     = 7
	pciMaxConfigOffset = 0xFF
	// ACPI 6.5, 5.2.3.2 "Generic Address Structure": a PCI configuration space Address is
	// device in bits 47-32, function in bits 31-16, offset in bits 15-0.
	gasPCIDeviceShift   = 32
	gasPCIFunctionShift = 16
	gasPCIFieldMask     = 0xFFFF
)

const (
	// ioDelayPort is the POST diagnostic port; reading it has no effect and takes about a
	// microsecond on PC hardware, so it paces the "did it take effect" waits.
	ioDelayPort = 0x80
	// DefaultPolls is how many times the waits below poll (about a quarter of a second on
	// hardware): long enough for a power-off or reset to cut the CPU, short enough that a
	// caller falling back through several mechanisms is not stuck.
	DefaultPolls = 1 << 18
	maxPort      = 0xFFFF
)

// Power drives ACPI soft-off and reset from the FADT and \_S5.
type Power struct {
	FADT *FADT
	// S5 holds the \_S5 sleep types; S5Err is why they are unknown (Poweroff then fails with it).
	S5    SleepType
	S5Err error
	// Polls bounds every wait (ACPI enable, and checking that a request took effect); zero
	// means DefaultPolls.
	Polls int
}

// NewPower builds a Power from loaded tables. It fails only if there is no usable FADT; a missing
// or unparsable \_S5 is kept in S5Err so Reset still works.
func NewPower(t *Tables) (*Power, error) {
	f, err := t.FADT()
	if err != nil {
		return nil, err
	}
	p := &Power{FADT: f}
	p.S5, p.S5Err = t.S5()
	return p, nil
}

func (p *Power) polls() int {
	if p.Polls > 0 {
		return p.Polls
	}
	return DefaultPolls
}

// pm1Ports returns the PM1a and PM1b control ports (b may be 0) or why they cannot be used.
func (p *Power) pm1Ports() (a, b uint16, err error) {
	f := p.FADT
	if f.PM1aControl == 0 {
		if !f.PM1aControlGAS.IsZero() {
			return 0, 0, fmt.Errorf("acpi: FADT at %#x: X_PM1a_CNT_BLK is in address space %d, only system I/O is driven: %w",
				f.Address, f.PM1aControlGAS.SpaceID, ErrUnsupported)
		}
		return 0, 0, fmt.Errorf("acpi: FADT at %#x: no PM1a_CNT_BLK: %w", f.Address, ErrNotFound)
	}
	if f.PM1aControl > maxPort || f.PM1bControl > maxPort {
		return 0, 0, fmt.Errorf("acpi: FADT at %#x: PM1a_CNT %#x / PM1b_CNT %#x is not an I/O port: %w",
			f.Address, f.PM1aControl, f.PM1bControl, ErrUnsupported)
	}
	return uint16(f.PM1aControl), uint16(f.PM1bControl), nil
}

// EnableACPI switches the platform from legacy (SMM) mode into ACPI mode if SCI_EN is clear, by
// writing ACPI_ENABLE to SMI_CMD and waiting for SCI_EN to be set.
// ACPI 6.5, 4.8.2 "Legacy/ACPI Select and the SCI Interrupt" and 5.2.9 (SMI_CMD, ACPI_ENABLE).
func (p *Power) EnableACPI(io PortIO) error {
	f := p.FADT
	if f.HardwareReduced() {
		return nil // no legacy mode on hardware-reduced platforms
	}
	a, _, err := p.pm1Ports()
	if err != nil {
		return err
	}
	if io.Inw(a)&PM1SCIEn != 0 {
		return nil
	}
	// SMI_CMD zero means there is no legacy mode to leave; ACPI_ENABLE zero means the same.
	if f.SMICommand == 0 || f.ACPIEnable == 0 {
		return nil
	}
	if f.SMICommand > maxPort {
		return fmt.Errorf("acpi: FADT at %#x: SMI_CMD %#x is not an I/O port: %w", f.Address, f.SMICommand, ErrUnsupported)
	}
	io.Outb(uint16(f.SMICommand), f.ACPIEnable)
	for range p.polls() {
		if io.Inw(a)&PM1SCIEn != 0 {
			return nil
		}
	}
	return fmt.Errorf("acpi: wrote ACPI_ENABLE %#02x to SMI_CMD %#x but SCI_EN in PM1a_CNT %#x stayed clear: %w",
		f.ACPIEnable, f.SMICommand, a, ErrTimeout)
}

// Poweroff enters S5 (soft off). It switches to ACPI mode if needed, then writes SLP_TYPx to
// PM1a_CNT (and PM1b_CNT if present) and sets SLP_EN, preserving the registers' other bits, as
// ACPI 6.5, 4.8.3.2.1 "PM1 Control Registers" and chapter 16 "Transitioning from the Working to the
// Sleeping State" describe; on hardware-reduced platforms it writes the Sleep Control Register
// instead (4.8.3.7). It returns only if the machine is still running, with an error wrapping
// ErrStillRunning (or why the request could not be made); the caller then tries a fallback.
func (p *Power) Poweroff(io PortIO) error {
	if p.S5Err != nil {
		return fmt.Errorf("acpi: poweroff: %w", p.S5Err)
	}
	if p.FADT.HardwareReduced() {
		return p.poweroffReduced(io)
	}
	a, b, err := p.pm1Ports()
	if err != nil {
		return fmt.Errorf("acpi: poweroff: %w", err)
	}
	enableErr := p.EnableACPI(io)

	write := func(port uint16, typ uint8, en uint16) {
		v := io.Inw(port)
		v = v&^(PM1SlpTypMask|PM1SlpEn) | uint16(typ)<<PM1SlpTypShift&PM1SlpTypMask | en
		io.Outw(port, v)
	}
	// First SLP_TYPx alone, then with SLP_EN: SLP_EN starts the transition, so the type must
	// already be in place on both blocks.
	write(a, p.S5.A, 0)
	if b != 0 {
		write(b, p.S5.B, 0)
	}
	write(a, p.S5.A, PM1SlpEn)
	if b != 0 {
		write(b, p.S5.B, PM1SlpEn)
	}
	p.settle(io)
	err = fmt.Errorf("acpi: poweroff: wrote SLP_TYPa %d | SLP_EN to PM1a_CNT %#x (PM1b_CNT %#x, SLP_TYPb %d): %w",
		p.S5.A, a, b, p.S5.B, ErrStillRunning)
	return errors.Join(err, enableErr)
}

func (p *Power) poweroffReduced(io PortIO) error {
	r := p.FADT.SleepControl
	if r.IsZero() {
		return fmt.Errorf("acpi: poweroff: hardware-reduced FADT at %#x has no SLEEP_CONTROL_REG: %w", p.FADT.Address, ErrNotFound)
	}
	if r.SpaceID != SpaceSystemIO || r.Address > maxPort {
		return fmt.Errorf("acpi: poweroff: SLEEP_CONTROL_REG in address space %d at %#x: only system I/O is driven: %w",
			r.SpaceID, r.Address, ErrUnsupported)
	}
	v := uint8(p.S5.A)<<SleepCtlSlpTypShift&SleepCtlSlpTypMask | SleepCtlSlpEn
	io.Outb(uint16(r.Address), v)
	p.settle(io)
	return fmt.Errorf("acpi: poweroff: wrote %#02x to SLEEP_CONTROL_REG %#x: %w", v, r.Address, ErrStillRunning)
}

// Reset resets the machine through the FADT RESET_REG, which may be in system I/O, system memory
// (written through mem; mem may be nil otherwise) or bus-0 PCI configuration space.
// ACPI 6.5, 4.8.3.6 "Reset Register" and 5.2.9 (RESET_REG: "Register_Bit_Width must be 8 and
// Register_Bit_Offset must be 0"). It returns only if the machine is still running.
func (p *Power) Reset(io PortIO, mem MMIO) error {
	f := p.FADT
	if !f.ResetSupported() {
		return fmt.Errorf("acpi: reset: FADT at %#x does not set RESET_REG_SUP: %w", f.Address, ErrUnsupported)
	}
	r, v := f.ResetRegister, f.ResetValue
	if r.BitOffset != 0 {
		return fmt.Errorf("acpi: reset: RESET_REG bit offset %d, want 0: %w", r.BitOffset, ErrUnsupported)
	}
	switch r.SpaceID {
	case SpaceSystemIO:
		if r.Address == 0 || r.Address > maxPort {
			return fmt.Errorf("acpi: reset: RESET_REG I/O address %#x is not a port: %w", r.Address, ErrUnsupported)
		}
		io.Outb(uint16(r.Address), v)
	case SpaceSystemMemory:
		if mem == nil || r.Address == 0 {
			return fmt.Errorf("acpi: reset: RESET_REG at memory address %#x and no MMIO writer: %w", r.Address, ErrUnsupported)
		}
		if err := mem.Write8(r.Address, v); err != nil {
			return fmt.Errorf("acpi: reset: write RESET_REG at %#x: %w", r.Address, err)
		}
	case SpacePCIConfig:
		dev := r.Address >> gasPCIDeviceShift & gasPCIFieldMask
		fn := r.Address >> gasPCIFunctionShift & gasPCIFieldMask
		off := r.Address & gasPCIFieldMask
		if dev > pciMaxDevice || fn > pciMaxFunction || off > pciMaxConfigOffset {
			return fmt.Errorf("acpi: reset: RESET_REG PCI address %#x (device %d function %d offset %#x) out of range: %w",
				r.Address, dev, fn, off, ErrUnsupported)
		}
		io.Outl(pciConfigAddress, pciConfigEnable|uint32(dev)<<pciDeviceShift|uint32(fn)<<pciFunctionShift|uint32(off)&pciRegisterMask)
		io.Outb(pciConfigData+uint16(off&pciByteInDword), v)
	default:
		return fmt.Errorf("acpi: reset: RESET_REG in address space %d: %w", r.SpaceID, ErrUnsupported)
	}
	p.settle(io)
	return fmt.Errorf("acpi: reset: wrote %#02x to RESET_REG (space %d, address %#x): %w", v, r.SpaceID, r.Address, ErrStillRunning)
}

func (p *Power) settle(io PortIO) { settle(io, p.polls()) }

// settle gives a power-off or reset request time to take effect.
func settle(io PortIO, polls int) {
	for range polls {
		io.Inb(ioDelayPort)
	}
}
