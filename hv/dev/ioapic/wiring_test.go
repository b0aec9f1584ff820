package ioapic_test

import (
	"testing"

	"github.com/godwit-hv/godwit/hv/dev/ioapic"
	"github.com/godwit-hv/godwit/hv/dev/lapic"
)

// TestWiringWithLAPIC connects an I/O APIC to two local APICs the way a
// VM does: Deliver becomes a lapic.Message routed by a lapic.Group, and the
// LAPICs' EOI broadcast goes back to ioapic.EOI. A level-triggered pin is
// delivered, stays quiet while in service, and comes back after EOI while
// still asserted.
func TestWiringWithLAPIC(t *testing.T) {
	g := &lapic.Group{}
	io := ioapic.New(0, func(dest uint8, logical bool, mode, vector uint8, level bool) {
		g.Route(nil, lapic.Message{
			Vector: vector, Mode: lapic.DeliveryMode(mode), Logical: logical,
			Dest: uint32(dest), Assert: true, Level: level,
		})
	})
	var cpus [2]*lapic.LAPIC
	for i := range cpus {
		cpus[i] = lapic.New(lapic.Config{ID: uint32(i), Router: g, EOI: io.EOI})
		g.Add(cpus[i])
		cpus[i].Write(lapic.RegSVR, []byte{0xFF, 1, 0, 0}) // software enable
	}
	// Pin 9 -> vector 0x59, level, physical destination APIC 1.
	io.Write(ioapic.IOREGSEL, []byte{ioapic.IOREDTBL + 19, 0, 0, 0})
	io.Write(ioapic.IOWIN, []byte{0, 0, 0, 1})
	io.Write(ioapic.IOREGSEL, []byte{ioapic.IOREDTBL + 18, 0, 0, 0})
	io.Write(ioapic.IOWIN, []byte{0x59, ioapic.RedirLevel >> 8, 0, 0})

	io.SetIRQ(9, true)
	if _, ok := cpus[0].PendingVector(); ok {
		t.Errorf("APIC 0 has an interrupt pending; the entry targets APIC 1")
	}
	v, ok := cpus[1].PendingVector()
	if !ok || v != 0x59 {
		t.Fatalf("APIC 1 PendingVector() = %#x, %v; want 0x59, true", v, ok)
	}
	cpus[1].Ack(v)
	io.SetIRQ(9, true) // still asserted, remote IRR set: nothing new
	if v, ok := cpus[1].PendingVector(); ok {
		t.Fatalf("pending %#x while 0x59 is in service", v)
	}
	cpus[1].Write(lapic.RegEOI, []byte{0, 0, 0, 0})
	if v, ok := cpus[1].PendingVector(); !ok || v != 0x59 {
		t.Fatalf("after EOI with the pin asserted: PendingVector() = %#x, %v; want 0x59, true", v, ok)
	}
	cpus[1].Ack(0x59)
	io.SetIRQ(9, false)
	cpus[1].Write(lapic.RegEOI, []byte{0, 0, 0, 0})
	if v, ok := cpus[1].PendingVector(); ok {
		t.Errorf("after EOI with the pin deasserted: %#x pending", v)
	}
	if e := io.Entry(9); e&ioapic.RedirRemoteIRR != 0 {
		t.Errorf("remote IRR still set: %#x", e)
	}
}
