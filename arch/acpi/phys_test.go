package acpi

import (
	"runtime"
	"testing"
	"unsafe"
)

// In a Linux process the "identity map" PhysMemory assumes is simply the process's address
// space, so PhysMemory can be tested on a Go buffer's own address.
func TestPhysMemory(t *testing.T) {
	buf := make([]byte, 16)
	copy(buf, "RSD PTR godwit")
	addr := uint64(uintptr(unsafe.Pointer(&buf[0])))
	got := make([]byte, 6)
	if err := (PhysMemory{}).ReadPhys(addr+8, got); err != nil || string(got) != "godwit" {
		t.Errorf("ReadPhys = %q, %v, want %q", got, err, "godwit")
	}
	if err := (PhysMemory{}).Write8(addr, 'X'); err != nil || buf[0] != 'X' {
		t.Errorf("Write8 then buf[0] = %q, %v, want 'X'", buf[0], err)
	}
	runtime.KeepAlive(buf)
	if err := (PhysMemory{}).ReadPhys(0, got); err == nil {
		t.Errorf("ReadPhys(0) succeeded, want an error")
	}
	if err := (PhysMemory{}).ReadPhys(^uint64(0)-2, got); err == nil {
		t.Errorf("ReadPhys(wrapping range) succeeded, want an error")
	}
}
