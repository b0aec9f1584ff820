package acpi

import (
	"errors"
	"fmt"
)

// Root System Description Pointer layout.
// ACPI 6.5, 5.2.5.3 "Root System Description Pointer (RSDP) Structure".
const (
	rsdpSignature         = "RSD PTR " // Signature, 8 bytes, note the trailing space
	rsdpOffChecksum       = 8          // Checksum over the first rsdpV1Length bytes
	rsdpOffOEMID          = 9          // OEMID, 6 bytes
	rsdpOffRevision       = 15         // Revision: 0 for ACPI 1.0, 2 for ACPI 2.0 and later
	rsdpOffRsdtAddress    = 16         // RsdtAddress, 32-bit physical address
	rsdpOffLength         = 20         // Length of the whole structure (revision >= 2)
	rsdpOffXsdtAddress    = 24         // XsdtAddress, 64-bit physical address (revision >= 2)
	rsdpOffExtChecksum    = 32         // Extended Checksum over Length bytes (revision >= 2)
	rsdpV1Length          = 20         // size of the ACPI 1.0 structure, covered by Checksum
	rsdpV2Length          = 36         // size of the ACPI 2.0+ structure
	rsdpExtendedRevision  = 2          // first revision with Length, XsdtAddress, Extended Checksum
	rsdpMaxLength         = 4096       // sanity bound on Length; the structure is 36 bytes today
	rsdpSearchAlign       = 16         // "on 16-byte boundaries"
	biosEBDASegmentPtr    = 0x40E      // BDA word holding the EBDA real-mode segment
	biosEBDASearchLength  = 1024       // "the first 1 KB of the Extended BIOS Data Area"
	biosROMSearchStart    = 0xE0000    // "the BIOS read-only memory space between 0E0000h
	biosROMSearchEnd      = 0x100000   // and 0FFFFFh" (end exclusive here)
	realModeSegmentShift  = 4          // physical = segment << 4
	biosEBDAMaxSegmentEnd = 0xA0000    // EBDA lies below the 640 KiB VGA hole
)

// RSDP is a validated Root System Description Pointer.
type RSDP struct {
	Address     uint64 // physical address the structure was found at
	OEMID       string
	Revision    uint8
	RSDTAddress uint32
	XSDTAddress uint64 // zero when Revision < 2
}

// parseRSDP validates b (at least rsdpV1Length bytes, read at addr) as an RSDP. For revision >= 2,
// mem is used to read the full Length bytes for the extended checksum when b is shorter.
func parseRSDP(mem Memory, addr uint64, b []byte) (RSDP, error) {
	if len(b) < rsdpV1Length {
		return RSDP{}, fmt.Errorf("acpi: RSDP at %#x: %d bytes: %w", addr, len(b), ErrLength)
	}
	if string(b[:len(rsdpSignature)]) != rsdpSignature {
		return RSDP{}, fmt.Errorf("acpi: RSDP at %#x: signature %q: %w", addr, b[:len(rsdpSignature)], ErrSignature)
	}
	if s := checksum(b[:rsdpV1Length]); s != 0 {
		return RSDP{}, fmt.Errorf("acpi: RSDP at %#x: checksum of first %d bytes is %#02x, want 0: %w",
			addr, rsdpV1Length, s, ErrChecksum)
	}
	r := RSDP{
		Address:     addr,
		OEMID:       trimID(b[rsdpOffOEMID : rsdpOffOEMID+6]),
		Revision:    b[rsdpOffRevision],
		RSDTAddress: le32(b, rsdpOffRsdtAddress),
	}
	if r.Revision < rsdpExtendedRevision {
		return r, nil
	}
	if len(b) < rsdpV2Length {
		full, err := read(mem, addr, rsdpV2Length, "RSDP")
		if err != nil {
			return RSDP{}, err
		}
		b = full
	}
	n := le32(b, rsdpOffLength)
	if n < rsdpV2Length || n > rsdpMaxLength {
		return RSDP{}, fmt.Errorf("acpi: RSDP at %#x: revision %d Length %d outside [%d, %d]: %w",
			addr, r.Revision, n, rsdpV2Length, rsdpMaxLength, ErrLength)
	}
	if int(n) > len(b) {
		full, err := read(mem, addr, int(n), "RSDP")
		if err != nil {
			return RSDP{}, err
		}
		b = full
	}
	if s := checksum(b[:n]); s != 0 {
		return RSDP{}, fmt.Errorf("acpi: RSDP at %#x: extended checksum over %d bytes is %#02x, want 0: %w",
			addr, n, s, ErrChecksum)
	}
	r.XSDTAddress = le64(b, rsdpOffXsdtAddress)
	return r, nil
}

// ReadRSDP validates the RSDP at a physical address handed over by the loader (Multiboot2 ACPI
// tags and UEFI configuration tables give it directly).
func ReadRSDP(mem Memory, addr uint64) (RSDP, error) {
	b, err := read(mem, addr, rsdpV1Length, "RSDP")
	if err != nil {
		return RSDP{}, err
	}
	return parseRSDP(mem, addr, b)
}

// FindRSDP searches for the RSDP the way an OS on a legacy-BIOS PC must:
// ACPI 6.5, 5.2.5.1 "Finding the RSDP on IA-PC Systems": first the first 1 KiB of the Extended
// BIOS Data Area, whose real-mode segment is the word at 0x40E, then the BIOS ROM area
// 0xE0000-0xFFFFF, in both cases on 16-byte boundaries. Candidates whose signature matches but
// whose checksums fail are skipped; if none is valid the error lists why.
func FindRSDP(mem Memory) (RSDP, error) {
	var errs []error
	scan := func(base uint64, area []byte) (RSDP, bool) {
		for off := 0; off+rsdpV1Length <= len(area); off += rsdpSearchAlign {
			if string(area[off:off+len(rsdpSignature)]) != rsdpSignature {
				continue
			}
			r, err := parseRSDP(mem, base+uint64(off), area[off:])
			if err == nil {
				return r, true
			}
			errs = append(errs, err)
		}
		return RSDP{}, false
	}

	if seg, err := read(mem, biosEBDASegmentPtr, 2, "BDA EBDA pointer"); err != nil {
		errs = append(errs, err)
	} else if ebda := uint64(le16(seg, 0)) << realModeSegmentShift; ebda != 0 && ebda < biosEBDAMaxSegmentEnd {
		n := min(uint64(biosEBDASearchLength), biosEBDAMaxSegmentEnd-ebda)
		if area, err := read(mem, ebda, int(n), "EBDA"); err != nil {
			errs = append(errs, err)
		} else if r, ok := scan(ebda, area); ok {
			return r, nil
		}
	}

	area, err := read(mem, biosROMSearchStart, biosROMSearchEnd-biosROMSearchStart, "BIOS ROM area")
	if err != nil {
		errs = append(errs, err)
	} else if r, ok := scan(biosROMSearchStart, area); ok {
		return r, nil
	}
	if len(errs) == 0 {
		return RSDP{}, fmt.Errorf("%w in EBDA or 0xE0000-0xFFFFF", ErrNoRSDP)
	}
	return RSDP{}, fmt.Errorf("%w in EBDA or 0xE0000-0xFFFFF: %w", ErrNoRSDP, errors.Join(errs...))
}

// trimID turns a space- or NUL-padded firmware identifier into a string.
func trimID(b []byte) string {
	end := len(b)
	for end > 0 && (b[end-1] == ' ' || b[end-1] == 0) {
		end--
	}
	return string(b[:end])
}
