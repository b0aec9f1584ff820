package ring0

import (
	"testing"

	"github.com/godwit-hv/godwit/arch/acpi"
)

// QEMU's i440fx MADT (hw/i386/acpi-common.c): IRQ 0 -> GSI 2 edge, and the PCI IRQs 5, 9,
// 10, 11 level-triggered, active high.
var qemuMADT = &acpi.MADT{
	IOAPICs: []acpi.IOAPIC{{ID: 0, Address: 0xFEC00000, GSIBase: 0}},
	Overrides: []acpi.SourceOverride{
		{Bus: 0, Source: 0, GSI: 2, Flags: 0},
		{Bus: 0, Source: 5, GSI: 5, Flags: acpi.INTITriggerLevel | acpi.INTIPolarityActiveHigh},
		{Bus: 0, Source: 9, GSI: 9, Flags: acpi.INTITriggerLevel | acpi.INTIPolarityActiveHigh},
		{Bus: 0, Source: 10, GSI: 10, Flags: acpi.INTITriggerLevel | acpi.INTIPolarityActiveHigh},
		{Bus: 0, Source: 11, GSI: 11, Flags: acpi.INTITriggerLevel | acpi.INTIPolarityActiveHigh},
		{Bus: 0, Source: 7, GSI: 23, Flags: acpi.INTITriggerEdge | acpi.INTIPolarityActiveLow},
	},
}

func TestISARoute(t *testing.T) {
	tests := []struct {
		irq  uint8
		want Route
	}{
		{0, Route{GSI: 2}},
		{14, Route{GSI: 14}},                               // no override: identity, edge, high
		{11, Route{GSI: 11, Level: true}},                  // override says level/high
		{7, Route{GSI: 23, Level: false, ActiveLow: true}}, // override moves and inverts
	}
	for _, tt := range tests {
		if got := ISARouteFrom(qemuMADT, tt.irq); got != tt.want {
			t.Errorf("ISARouteFrom(irq %d) = %v, want %v", tt.irq, got, tt.want)
		}
	}
}

func TestPCIRoute(t *testing.T) {
	tests := []struct {
		line uint8
		want Route
	}{
		{11, Route{GSI: 11, Level: true}},
		{3, Route{GSI: 3, Level: true}},                    // no override: level, active high
		{0, Route{GSI: 2, Level: true}},                    // conforming flags keep PCI's level
		{7, Route{GSI: 23, Level: false, ActiveLow: true}}, // explicit flags win
	}
	for _, tt := range tests {
		if got := PCIRouteFrom(qemuMADT, tt.line); got != tt.want {
			t.Errorf("PCIRouteFrom(line %d) = %v, want %v", tt.line, got, tt.want)
		}
	}
}

func TestRedirLow(t *testing.T) {
	tests := []struct {
		l    irqLine
		vec  int
		want uint32
	}{
		{irqLine{}, 0x31, 0x31},
		{irqLine{level: true}, 0x40, 0x40 | 1<<15},
		{irqLine{level: true, masked: true}, 0x40, 0x40 | 1<<15 | 1<<16},
		{irqLine{activeLow: true}, 0xEF, 0xEF | 1<<13},
	}
	for _, tt := range tests {
		if got := tt.l.redirLow(tt.vec); got != tt.want {
			t.Errorf("%+v.redirLow(%#x) = %#x, want %#x", tt.l, tt.vec, got, tt.want)
		}
	}
}

func TestMSI(t *testing.T) {
	// Off bare metal the destination reads as APIC ID 0.
	if got, want := MSIAddress(), uint64(0xFEE00000); got != want {
		t.Errorf("MSIAddress() = %#x, want %#x", got, want)
	}
	if got, want := MSIData(0x45), uint32(0x45); got != want {
		t.Errorf("MSIData(0x45) = %#x, want %#x", got, want)
	}
}

func TestOffBareMetal(t *testing.T) {
	if _, err := AllocVector(); err != ErrNotBareMetal {
		t.Errorf("AllocVector() error = %v, want ErrNotBareMetal", err)
	}
	if _, err := WaitIRQ(0x30, 0, 0); err != ErrNotBareMetal {
		t.Errorf("WaitIRQ error = %v, want ErrNotBareMetal", err)
	}
	if err := MapMMIO(0xFEB00000, 4096); err != ErrNotBareMetal {
		t.Errorf("MapMMIO error = %v, want ErrNotBareMetal", err)
	}
}
