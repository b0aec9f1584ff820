// Package acpi reads what Godwit needs from the host's ACPI firmware tables: the RSDP and the
// XSDT/RSDT it points to (every table checksum-validated), the FADT's power-management and reset
// registers, the \_S5 soft-off sleep type from the DSDT/SSDT AML, and the MADT's interrupt
// controllers. It then uses them to power the machine off or reset it, with the legacy fallbacks
// (Bochs shutdown port, 8042 keyboard-controller reset) as separate functions the caller tries in
// order.
//
// Everything is plain Go over two small interfaces so it is unit-tested in user space with
// synthetic tables (see package acpitest):
//
//   - Memory reads physical memory. The kernel passes PhysMemory, which dereferences the
//     identity map (physical address == virtual address); tests pass a sparse fake.
//   - PortIO performs x86 port I/O. The kernel passes HostIO (arch/x86 IN/OUT instructions,
//     which fault outside ring 0); tests pass a fake that records every write.
//
// The parsers never panic on malformed firmware: bad signatures, checksums and lengths produce
// errors that name the table and its physical address and wrap the sentinel errors below.
// Nothing here is on a hot path; the parsers allocate freely.
//
// Specification references are to the ACPI Specification 6.5 (UEFI Forum), cited as
// "ACPI 6.5, <section> "<title>"".
//
// Typical kernel use:
//
//	tables, err := acpi.Find(acpi.PhysMemory{}) // or acpi.Load(mem, rsdpFromLoader)
//	log(tables.Err())                           // tables skipped for bad checksums, if any
//	power, err := acpi.NewPower(tables)
//	io := acpi.HostPortIO()
//	err = power.Poweroff(io) // returns only if the machine is still on
//	err = acpi.BochsShutdown(io)
//
//	err = power.Reset(io, acpi.PhysMemory{})
//	err = acpi.KeyboardReset(io)
//
//	madt, err := tables.MADT()
package acpi

import "errors"

// Sentinel errors callers can branch on with errors.Is. Every error returned by this package
// wraps one of them together with the table signature and physical address involved.
var (
	// ErrNoRSDP means no valid Root System Description Pointer was found.
	ErrNoRSDP = errors.New("acpi: RSDP not found")
	// ErrChecksum means a structure's bytes do not sum to zero modulo 256.
	ErrChecksum = errors.New("bad checksum")
	// ErrLength means a structure's length field is impossible (too short, too long, or it runs
	// past its container).
	ErrLength = errors.New("bad length")
	// ErrSignature means a structure does not carry the signature it was expected to carry.
	ErrSignature = errors.New("bad signature")
	// ErrNotFound means a required table or AML object is absent.
	ErrNotFound = errors.New("not found")
	// ErrUnsupported means the firmware describes something this package does not drive (for
	// example a PM1 control block in memory space).
	ErrUnsupported = errors.New("unsupported")
	// ErrStillRunning means a power-off or reset request was issued but the machine kept
	// running; the caller should try the next mechanism.
	ErrStillRunning = errors.New("machine still running after request")
	// ErrTimeout means a hardware handshake (ACPI enable, 8042 input buffer) did not complete.
	ErrTimeout = errors.New("timed out")
)

// checksum returns the 8-bit sum of b; ACPI structures are valid when it is zero.
// ACPI 6.5, 5.2.5.3 "Root System Description Pointer (RSDP) Structure" and 5.2.6 "System
// Description Table Header": "the entire table, including the checksum field, must add to zero".
func checksum(b []byte) uint8 {
	var s uint8
	for _, c := range b {
		s += c
	}
	return s
}
