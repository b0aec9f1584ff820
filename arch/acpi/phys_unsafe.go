package acpi

import (
	"fmt"
	"unsafe"
)

// PhysMemory reads and writes physical memory through the kernel's identity map, in which every
// physical address (all RAM, and everything below 4 GiB including firmware and MMIO) is mapped at
// the same virtual address. It is only meaningful in the Godwit kernel; in a Linux process it
// faults.
type PhysMemory struct{}

// ReadPhys copies the bytes at physical address addr into p.
//
// The pointer is made from an integer on purpose (the identity map is outside every Go
// allocation), so -race/-d=checkptr instrumentation is turned off for it.
//
//go:nocheckptr
func (PhysMemory) ReadPhys(addr uint64, p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if addr == 0 || addr+uint64(len(p)) < addr {
		return fmt.Errorf("physical range %#x+%d not readable", addr, len(p))
	}
	src := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), uintptr(addr))), len(p))
	copy(p, src)
	return nil
}

// Write8 stores v at physical address addr with one byte-wide store.
//
//go:nocheckptr
func (PhysMemory) Write8(addr uint64, v uint8) error {
	if addr == 0 {
		return fmt.Errorf("physical address 0 not writable")
	}
	*(*uint8)(unsafe.Add(unsafe.Pointer(nil), uintptr(addr))) = v
	return nil
}
