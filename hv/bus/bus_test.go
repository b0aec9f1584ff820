package bus_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/godwit-hv/godwit/hv/bus"
)

// regs is a device of n byte registers that records accesses.
type regs struct {
	mem  []byte
	log  []string
	fail error
}

func newRegs(n int) *regs { return &regs{mem: make([]byte, n)} }

func (r *regs) Read(off uint64, data []byte) error {
	r.log = append(r.log, fmt.Sprintf("r%d@%#x", len(data), off))
	if r.fail != nil {
		return r.fail
	}
	copy(data, r.mem[off:])
	return nil
}

func (r *regs) Write(off uint64, data []byte) error {
	r.log = append(r.log, fmt.Sprintf("w%d@%#x", len(data), off))
	if r.fail != nil {
		return r.fail
	}
	copy(r.mem[off:], data)
	return nil
}

func TestRegisterOverlap(t *testing.T) {
	b := bus.New()
	mustRegister := func(s bus.Space, base, size uint64, name string) {
		t.Helper()
		if err := b.Register(s, base, size, name, newRegs(int(size))); err != nil {
			t.Fatalf("Register(%v, %#x, %#x, %q) = %v", s, base, size, name, err)
		}
	}
	mustRegister(bus.PIO, 0x3f8, 8, "com1")
	mustRegister(bus.PIO, 0x2f8, 8, "com2")
	mustRegister(bus.MMIO, 0xfee0_0000, 0x1000, "lapic")
	mustRegister(bus.PIO, 0xfff0, 0x10, "top")
	mustRegister(bus.MMIO, 0x3f8, 8, "same numbers, other space")
	mustRegister(bus.PIO, 0x3f0, 8, "adjacent below")
	mustRegister(bus.PIO, 0x400, 1, "adjacent above")

	tests := []struct {
		s          bus.Space
		base, size uint64
		want       error
	}{
		{bus.PIO, 0x3f8, 8, bus.ErrOverlap},
		{bus.PIO, 0x3f7, 2, bus.ErrOverlap},
		{bus.PIO, 0x3ff, 1, bus.ErrOverlap},
		{bus.PIO, 0x3fa, 1, bus.ErrOverlap},
		{bus.PIO, 0x300, 0x200, bus.ErrOverlap},
		{bus.MMIO, 0xfee0_0fff, 4, bus.ErrOverlap},
		{bus.MMIO, 0xfe00_0000, 0x100_0000, bus.ErrOverlap},
		{bus.PIO, 0xffff, 2, bus.ErrRange},
		{bus.PIO, 0x10000, 1, bus.ErrRange},
		{bus.PIO, 0x100, 0, bus.ErrRange},
		{bus.MMIO, ^uint64(0) - 1, 4, bus.ErrRange},
		{bus.Space(7), 0, 1, bus.ErrRange},
	}
	for _, tt := range tests {
		err := b.Register(tt.s, tt.base, tt.size, "new", newRegs(int(tt.size)))
		if !errors.Is(err, tt.want) {
			t.Errorf("Register(%v, %#x, %#x) = %v, want %v", tt.s, tt.base, tt.size, err, tt.want)
		}
	}
	if err := b.Register(bus.MMIO, ^uint64(0)-0xfff, 0x1000, "very top", newRegs(0x1000)); err != nil {
		t.Errorf("Register at the top of MMIO = %v, want nil", err)
	}
	if got := len(b.Ranges()); got != 8 {
		t.Errorf("len(Ranges()) = %d, want 8", got)
	}
	if err := b.Unregister(bus.PIO, 0x3f8); err != nil {
		t.Errorf("Unregister(com1) = %v", err)
	}
	if err := b.Unregister(bus.PIO, 0x3f8); !errors.Is(err, bus.ErrNotFound) {
		t.Errorf("second Unregister(com1) = %v, want ErrNotFound", err)
	}
	mustRegister(bus.PIO, 0x3f8, 8, "com1 again")
}

func TestLookup(t *testing.T) {
	b := bus.New()
	devs := map[string]*regs{}
	for _, r := range []struct {
		base, size uint64
		name       string
	}{{0x20, 2, "pic"}, {0x40, 4, "pit"}, {0x3f8, 8, "com1"}, {0xcf8, 8, "pci"}} {
		devs[r.name] = newRegs(int(r.size))
		if err := b.Register(bus.PIO, r.base, r.size, r.name, devs[r.name]); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		addr    uint64
		name    string
		off     uint64
		present bool
	}{
		{0x1f, "", 0, false}, {0x20, "pic", 0, true}, {0x21, "pic", 1, true}, {0x22, "", 0, false},
		{0x43, "pit", 3, true}, {0x3f8, "com1", 0, true}, {0x3ff, "com1", 7, true}, {0x400, "", 0, false},
		{0xcfc, "pci", 4, true}, {0, "", 0, false}, {0xffff, "", 0, false},
	}
	for _, tt := range tests {
		d, off, name, ok := b.Lookup(bus.PIO, tt.addr)
		if ok != tt.present || name != tt.name || off != tt.off || ok && d != devs[tt.name] {
			t.Errorf("Lookup(%#x) = %q+%#x, %v, want %q+%#x, %v", tt.addr, name, off, ok, tt.name, tt.off, tt.present)
		}
	}
}

func TestAccess(t *testing.T) {
	b := bus.New()
	d := newRegs(16)
	if err := b.Register(bus.MMIO, 0xd000_0000, 16, "dev", d); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2, 4, 8} {
		in := []byte{1, 2, 3, 4, 5, 6, 7, 8}[:n]
		if err := b.Write(bus.MMIO, 0xd000_0008, in); err != nil {
			t.Fatalf("Write(size %d) = %v", n, err)
		}
		out := make([]byte, n)
		if err := b.Read(bus.MMIO, 0xd000_0008, out); err != nil || !bytes.Equal(out, in) {
			t.Errorf("Read(size %d) = %v, %v, want %v, nil", n, out, err, in)
		}
	}
	if got, want := fmt.Sprint(d.log[:2]), "[w1@0x8 r1@0x8]"; got != want {
		t.Errorf("device saw %s, want %s", got, want)
	}
	for _, tt := range []struct {
		addr uint64
		n    int
		want error
	}{
		{0xd000_0000, 3, bus.ErrSize},
		{0xd000_0000, 16, bus.ErrSize},
		{0xd000_0000, 0, bus.ErrSize},
		{0xd000_000c, 8, bus.ErrStraddle},
		{0xd000_000f, 2, bus.ErrStraddle},
	} {
		if err := b.Read(bus.MMIO, tt.addr, make([]byte, tt.n)); !errors.Is(err, tt.want) {
			t.Errorf("Read(%#x, size %d) = %v, want %v", tt.addr, tt.n, err, tt.want)
		}
		if err := b.Write(bus.MMIO, tt.addr, make([]byte, tt.n)); !errors.Is(err, tt.want) {
			t.Errorf("Write(%#x, size %d) = %v, want %v", tt.addr, tt.n, err, tt.want)
		}
	}
	boom := errors.New("boom")
	d.fail = boom
	if err := b.Read(bus.MMIO, 0xd000_0000, make([]byte, 4)); !errors.Is(err, boom) {
		t.Errorf("Read from a failing device = %v, want it wrapped", err)
	}
	if err := b.Write(bus.MMIO, 0xd000_0000, make([]byte, 4)); !errors.Is(err, boom) {
		t.Errorf("Write to a failing device = %v, want it wrapped", err)
	}
}

func TestUnhandled(t *testing.T) {
	b := bus.New()
	if err := b.Register(bus.PIO, 0x60, 1, "kbd", newRegs(1)); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2, 4} {
		data := []byte{0, 0, 0, 0}[:n]
		if err := b.Read(bus.PIO, 0x80, data); err != nil || !bytes.Equal(data, bytes.Repeat([]byte{0xff}, n)) {
			t.Errorf("Read(unclaimed port, size %d) = %x, %v, want all ones", n, data, err)
		}
	}
	if err := b.Write(bus.PIO, 0x80, []byte{0x12}); err != nil {
		t.Errorf("Write(unclaimed port) = %v, want nil", err)
	}
	data := make([]byte, 8)
	if err := b.Read(bus.MMIO, 0x1234_0000, data); err != nil || !bytes.Equal(data, bytes.Repeat([]byte{0xff}, 8)) {
		t.Errorf("Read(unclaimed MMIO) = %x, %v, want all ones", data, err)
	}
	if r, w := b.Unhandled(bus.PIO); r != 3 || w != 1 {
		t.Errorf("Unhandled(pio) = %d, %d, want 3, 1", r, w)
	}
	if r, w := b.Unhandled(bus.MMIO); r != 1 || w != 0 {
		t.Errorf("Unhandled(mmio) = %d, %d, want 1, 0", r, w)
	}
}

func TestAccessDoesNotAllocate(t *testing.T) {
	b := bus.New()
	for i := uint64(0); i < 32; i++ {
		if err := b.Register(bus.PIO, i*16, 8, fmt.Sprint("d", i), newRegs(8)); err != nil {
			t.Fatal(err)
		}
	}
	data := make([]byte, 4)
	if n := testing.AllocsPerRun(100, func() { _ = b.Read(bus.PIO, 0x1f0+12, data) }); n != 0 {
		t.Errorf("Read of an unclaimed port allocs = %v, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _, _, _ = b.Lookup(bus.PIO, 0x105) }); n != 0 {
		t.Errorf("Lookup allocs = %v, want 0", n)
	}
}
