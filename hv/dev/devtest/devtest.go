// Package devtest holds helpers shared by the device models' tests: they drive a model through
// a bus exactly as a guest's IN and OUT instructions would.
package devtest

import (
	"testing"

	"github.com/godwit-hv/godwit/hv/bus"
)

// Out writes one byte to port as step i of a scripted test; a bus error ends the test.
func Out(t testing.TB, b *bus.Bus, i int, port uint64, v uint8) {
	t.Helper()
	if err := b.Write(bus.PIO, port, []byte{v}); err != nil {
		t.Fatalf("step %d: out(%#x, %#x) = %v", i, port, v, err)
	}
}

// In reads one byte from port as step i and checks it against want.
func In(t testing.TB, b *bus.Bus, i int, port uint64, want uint8) {
	t.Helper()
	d := []byte{0}
	if err := b.Read(bus.PIO, port, d); err != nil {
		t.Fatalf("step %d: in(%#x) = %v", i, port, err)
	}
	if d[0] != want {
		t.Errorf("step %d: in(%#x) = %#02x, want %#02x", i, port, d[0], want)
	}
}
