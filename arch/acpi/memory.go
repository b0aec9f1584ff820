package acpi

import (
	"encoding/binary"
	"fmt"
)

// Memory reads physical memory. Implementations return an error, never panic, when any part of
// the range is not readable.
type Memory interface {
	// ReadPhys fills p with the bytes at physical address addr.
	ReadPhys(addr uint64, p []byte) error
}

// MMIO writes a device register in physical memory. It is only needed for a FADT RESET_REG
// that lives in system memory space.
type MMIO interface {
	// Write8 stores v to the byte at physical address addr with a single byte-wide access.
	Write8(addr uint64, v uint8) error
}

// read returns n bytes at addr, naming what is read in the error.
func read(mem Memory, addr uint64, n int, what string) ([]byte, error) {
	if addr+uint64(n) < addr {
		return nil, fmt.Errorf("acpi: %s at %#x: range wraps the address space: %w", what, addr, ErrLength)
	}
	b := make([]byte, n)
	if err := mem.ReadPhys(addr, b); err != nil {
		return nil, fmt.Errorf("acpi: %s at %#x (%d bytes): %w", what, addr, n, err)
	}
	return b, nil
}

// Little-endian field accessors over a table. Callers check bounds first.
func le16(b []byte, off int) uint16 { return binary.LittleEndian.Uint16(b[off:]) }
func le32(b []byte, off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }
func le64(b []byte, off int) uint64 { return binary.LittleEndian.Uint64(b[off:]) }
