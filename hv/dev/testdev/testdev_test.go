package testdev_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/godwit-hv/godwit/hv/bus"
	"github.com/godwit-hv/godwit/hv/dev/testdev"
)

func newBus(t *testing.T) (*bus.Bus, *testdev.Device) {
	t.Helper()
	b := bus.New()
	d := testdev.New()
	if err := d.Register(b); err != nil {
		t.Fatalf("Register() = %v", err)
	}
	return b, d
}

func le(v uint64, n int) []byte {
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], v)
	return buf[:n]
}

func read(t *testing.T, b *bus.Bus, s bus.Space, addr uint64, n int) uint64 {
	t.Helper()
	data := make([]byte, n)
	if err := b.Read(s, addr, data); err != nil {
		t.Fatalf("Read(%v, %#x, %d) = %v", s, addr, n, err)
	}
	var buf [8]byte
	copy(buf[:], data)
	return binary.LittleEndian.Uint64(buf[:])
}

func write(t *testing.T, b *bus.Bus, s bus.Space, addr uint64, n int, v uint64) {
	t.Helper()
	if err := b.Write(s, addr, le(v, n)); err != nil {
		t.Fatalf("Write(%v, %#x, %d, %#x) = %v", s, addr, n, v, err)
	}
}

// The same sequence the longmode guest runs against the scratch register.
func TestScratchWidths(t *testing.T) {
	b, _ := newBus(t)
	const base = testdev.MMIOBase + testdev.RegScratch
	steps := []struct {
		off, n int
		v      uint64
		want   uint64 // the whole register afterwards
	}{
		{0, 8, 0x0123456789ABCDEF, 0x0123456789ABCDEF},
		{4, 4, 0xCAFEF00D, 0xCAFEF00D89ABCDEF},
		{2, 2, 0x1234, 0xCAFEF00D1234CDEF},
		{7, 1, 0x80, 0x80FEF00D1234CDEF},
		{0, 1, 0x55, 0x80FEF00D1234CD55},
		{3, 4, 0xA1B2C3D4, 0x80A1B2C3D434CD55}, // unaligned
	}
	for _, s := range steps {
		write(t, b, bus.MMIO, base+uint64(s.off), s.n, s.v)
		if got := read(t, b, bus.MMIO, base, 8); got != s.want {
			t.Errorf("after %d-byte write of %#x at +%d: scratch = %#x, want %#x", s.n, s.v, s.off, got, s.want)
		}
		if got, want := read(t, b, bus.MMIO, base+uint64(s.off), s.n), s.v; got != want {
			t.Errorf("%d-byte read at +%d = %#x, want %#x", s.n, s.off, got, want)
		}
	}
	if got, want := read(t, b, bus.MMIO, base+6, 2), uint64(0x80A1); got != want {
		t.Errorf("2-byte read at +6 = %#x, want %#x", got, want)
	}
}

func TestCounter(t *testing.T) {
	b, d := newBus(t)
	const ctr = testdev.MMIOBase + testdev.RegCounter
	if got := read(t, b, bus.MMIO, ctr, 8); got != 0 {
		t.Errorf("first counter read = %d, want 0 (the count before the read)", got)
	}
	write(t, b, bus.MMIO, testdev.MMIOBase, 8, 1)
	if got := read(t, b, bus.MMIO, ctr, 8); got != 2 {
		t.Errorf("counter after read+write = %d, want 2", got)
	}
	write(t, b, bus.MMIO, ctr, 8, 0) // read-only: ignored, but counted
	if got := read(t, b, bus.MMIO, ctr, 8); got != 4 {
		t.Errorf("counter after a write to it = %d, want 4", got)
	}
	write(t, b, bus.MMIO, ctr, 4, 0xFFFFFFFF)
	if got := read(t, b, bus.MMIO, ctr, 4); got != 6 {
		t.Errorf("4-byte counter read = %d, want 6", got)
	}
	// Port accesses do not count.
	write(t, b, bus.PIO, testdev.Port, 4, 1)
	if got := read(t, b, bus.MMIO, ctr, 8); got != 7 {
		t.Errorf("counter after a port write = %d, want 7", got)
	}
	// A write spanning scratch and counter updates scratch bytes only.
	write(t, b, bus.MMIO, testdev.MMIOBase+4, 8, 0x1111111122222222)
	if got, want := d.Save(), (testdev.State{Scratch: 0x2222222200000001, Counter: 9, Port: 1}); got != want {
		t.Errorf("Save() after a spanning write = %+v, want %+v", got, want)
	}
}

func TestBuffer(t *testing.T) {
	b, _ := newBus(t)
	const buf = testdev.MMIOBase + testdev.RegBuffer
	for i := 0; i < testdev.BufferSize/8; i++ {
		write(t, b, bus.MMIO, buf+uint64(8*i), 8, 0x0101010101010101*uint64(i+1))
	}
	for i := 0; i < testdev.BufferSize; i++ {
		if got, want := read(t, b, bus.MMIO, buf+uint64(i), 1), uint64(i/8+1); got != want {
			t.Errorf("buffer byte %d = %#x, want %#x", i, got, want)
		}
	}
	// Reserved space reads 0 and ignores writes; the last byte of the window is accessible.
	write(t, b, bus.MMIO, buf+testdev.BufferSize, 8, ^uint64(0))
	if got := read(t, b, bus.MMIO, buf+testdev.BufferSize, 8); got != 0 {
		t.Errorf("reserved read = %#x, want 0", got)
	}
	if got := read(t, b, bus.MMIO, testdev.MMIOBase+testdev.MMIOSize-1, 1); got != 0 {
		t.Errorf("last byte = %#x, want 0", got)
	}
	// The buffer's last qword straddles into reserved space when read at +4.
	if got, want := read(t, b, bus.MMIO, buf+testdev.BufferSize-4, 8), uint64(0x08080808); got != want {
		t.Errorf("read across the buffer's end = %#x, want %#x", got, want)
	}
}

// The same sequence the longmode guest runs against the port.
func TestPort(t *testing.T) {
	b, _ := newBus(t)
	const p = testdev.Port
	tests := []struct {
		port, n int
		v       uint64
		want    uint64 // inl from Port afterwards
	}{
		{p, 1, 0xA5, 0xA5},
		{p, 2, 0xBEEF, 0xBEEF},
		{p, 4, 0xDEADBEEF, 0xDEADBEEF},
		{p, 4, 0x11223344, 0x11223344},
		{p + 1, 1, 0xAA, 0x1122AA44},
		{p + 2, 2, 0x5566, 0x5566AA44},
	}
	for _, tt := range tests {
		write(t, b, bus.PIO, uint64(tt.port), tt.n, tt.v)
		if got := read(t, b, bus.PIO, p, 4); got != tt.want {
			t.Errorf("after out%d %#x to %#x: inl = %#x, want %#x", tt.n, tt.v, tt.port, got, tt.want)
		}
	}
	if got := read(t, b, bus.PIO, p+3, 1); got != 0x55 {
		t.Errorf("inb %#x = %#x, want 0x55", p+3, got)
	}
	if got := read(t, b, bus.PIO, p+1, 2); got != 0x66AA {
		t.Errorf("inw %#x = %#x, want 0x66aa", p+1, got)
	}
}

func TestBadAccesses(t *testing.T) {
	d := testdev.New()
	m, p := d.MMIO(), d.PIO()
	for _, tt := range []struct {
		name string
		dev  bus.Device
		off  uint64
		n    int
	}{
		{"mmio size 3", m, 0, 3},
		{"mmio size 0", m, 0, 0},
		{"mmio past end", m, testdev.MMIOSize - 4, 8},
		{"mmio offset out", m, testdev.MMIOSize, 1},
		{"port size 8", p, 0, 8},
		{"port past end", p, 2, 4},
		{"port offset out", p, 4, 1},
	} {
		data := make([]byte, tt.n)
		if err := tt.dev.Read(tt.off, data); err == nil {
			t.Errorf("%s: Read(%#x, %d bytes) = nil, want error", tt.name, tt.off, tt.n)
		}
		if err := tt.dev.Write(tt.off, data); err == nil {
			t.Errorf("%s: Write(%#x, %d bytes) = nil, want error", tt.name, tt.off, tt.n)
		}
	}
	if got := d.Save(); got != (testdev.State{}) {
		t.Errorf("rejected accesses changed the state: %+v", got)
	}
}

func TestStateRoundTrip(t *testing.T) {
	b, d := newBus(t)
	write(t, b, bus.MMIO, testdev.MMIOBase, 8, 0xFEEDFACECAFEBEEF)
	write(t, b, bus.MMIO, testdev.MMIOBase+testdev.RegBuffer+3, 4, 0x01020304)
	write(t, b, bus.PIO, testdev.Port, 4, 0x9ABCDEF0)
	s := d.Save()

	d2 := testdev.New()
	d2.Restore(s)
	if got := d2.Save(); got != s {
		t.Errorf("Save() after Restore = %+v, want %+v", got, s)
	}
	for _, dev := range []*testdev.Device{d, d2} {
		got := make([]byte, 8)
		if err := dev.MMIO().Read(testdev.RegBuffer, got); err != nil {
			t.Fatal(err)
		}
		if want := []byte{0, 0, 0, 4, 3, 2, 1, 0}; !bytes.Equal(got, want) {
			t.Errorf("buffer after restore = %x, want %x", got, want)
		}
	}
	if s.Counter != 2 {
		t.Errorf("saved counter = %d, want 2", s.Counter)
	}
}
