package acpi

import (
	"errors"
	"reflect"
	"testing"

	"github.com/godwit-hv/godwit/arch/acpi/acpitest"
)

func TestParseMADT(t *testing.T) {
	m := newMachine()
	tabs, err := Load(m.mem, m.rsdp)
	if err != nil {
		t.Fatal(err)
	}
	madt, err := tabs.MADT()
	if err != nil {
		t.Fatalf("MADT() = %v", err)
	}
	if madt.LocalAPICAddress != testLAPIC || !madt.PCATCompat() {
		t.Errorf("LocalAPICAddress, PCATCompat = %#x, %v, want %#x, true", madt.LocalAPICAddress, madt.PCATCompat(), testLAPIC)
	}
	wantCPUs := []LocalAPIC{
		{ProcessorUID: 0, APICID: 0, Flags: LocalAPICEnabled},
		{ProcessorUID: 1, APICID: 1, Flags: LocalAPICEnabled},
		{ProcessorUID: 2, APICID: 2, Flags: 0},
		{ProcessorUID: 0x100, APICID: 0x100, Flags: LocalAPICOnlineCapable, X2APIC: true},
	}
	if !reflect.DeepEqual(madt.LocalAPICs, wantCPUs) {
		t.Errorf("LocalAPICs = %+v, want %+v", madt.LocalAPICs, wantCPUs)
	}
	var usable []uint32
	for _, c := range madt.LocalAPICs {
		if c.Usable() {
			usable = append(usable, c.APICID)
		}
	}
	if want := []uint32{0, 1, 0x100}; !reflect.DeepEqual(usable, want) {
		t.Errorf("usable APIC IDs = %v, want %v", usable, want)
	}
	if want := []IOAPIC{{ID: 0, Address: testIOAPIC, GSIBase: 0}}; !reflect.DeepEqual(madt.IOAPICs, want) {
		t.Errorf("IOAPICs = %+v, want %+v", madt.IOAPICs, want)
	}
	wantOv := []SourceOverride{
		{Bus: 0, Source: 0, GSI: 2},
		{Bus: 0, Source: 9, GSI: 9, Flags: INTIPolarityActiveHigh | INTITriggerLevel},
	}
	if !reflect.DeepEqual(madt.Overrides, wantOv) {
		t.Errorf("Overrides = %+v, want %+v", madt.Overrides, wantOv)
	}
	if want := []LocalAPICNMI{{ProcessorUID: LocalAPICNMIAllProcessors, LINT: 1}}; !reflect.DeepEqual(madt.LocalAPICNMIs, want) {
		t.Errorf("LocalAPICNMIs = %+v, want %+v", madt.LocalAPICNMIs, want)
	}
	for _, tt := range []struct {
		irq   uint8
		gsi   uint32
		flags uint16
	}{{0, 2, 0}, {1, 1, 0}, {9, 9, INTIPolarityActiveHigh | INTITriggerLevel}} {
		if gsi, flags := madt.ISAIRQ(tt.irq); gsi != tt.gsi || flags != tt.flags {
			t.Errorf("ISAIRQ(%d) = %d, %#x, want %d, %#x", tt.irq, gsi, flags, tt.gsi, tt.flags)
		}
	}
}

func TestMADTOverridesAndIOAPICFor(t *testing.T) {
	b := acpitest.MADT(testLAPIC, 0,
		acpitest.IOAPIC(1, 0xFEC00000, 0),
		acpitest.IOAPIC(2, 0xFEC01000, 24),
		[]byte{5, 12, 0, 0, 0x00, 0x00, 0xE0, 0xFE, 0x01, 0x00, 0x00, 0x00}, // Local APIC Address Override
		[]byte{0x7F, 3, 0xAA},                                               // unknown type: skipped
	)
	madt, err := ParseMADT(&Table{Header: parseHeader(b), Data: b})
	if err != nil {
		t.Fatalf("ParseMADT = %v", err)
	}
	if madt.LocalAPICAddress != 0x1_FEE0_0000 {
		t.Errorf("LocalAPICAddress = %#x, want the override 0x1fee00000", madt.LocalAPICAddress)
	}
	for _, tt := range []struct {
		gsi  uint32
		id   uint8
		isOK bool
	}{{0, 1, true}, {23, 1, true}, {24, 2, true}, {40, 2, true}} {
		a, ok := madt.IOAPICFor(tt.gsi)
		if ok != tt.isOK || a.ID != tt.id {
			t.Errorf("IOAPICFor(%d) = %+v, %v, want ID %d", tt.gsi, a, ok, tt.id)
		}
	}
}

func TestParseMADTErrors(t *testing.T) {
	tests := []struct {
		name    string
		entries [][]byte
	}{
		{"zero-length structure", [][]byte{{0, 0, 0, 0}}},
		{"structure past end", [][]byte{{1, 12, 0, 0}}},
		{"I/O APIC too short", [][]byte{{1, 8, 0, 0, 0, 0, 0, 0}}},
		{"truncated header", [][]byte{{0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := acpitest.MADT(testLAPIC, 0, tt.entries...)
			_, err := ParseMADT(&Table{Header: parseHeader(b), Address: testMADT, Data: b})
			if !errors.Is(err, ErrLength) {
				t.Errorf("ParseMADT = %v, want ErrLength", err)
			}
		})
	}
	b := acpitest.Table("APIC", 1, []byte{1, 2, 3})
	if _, err := ParseMADT(&Table{Header: parseHeader(b), Data: b}); !errors.Is(err, ErrLength) {
		t.Errorf("ParseMADT(39-byte table) = %v, want ErrLength", err)
	}
}
