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

// resetIRQState clears the layer's vector table and thread table for a test.
func resetIRQState(t *testing.T) {
	t.Helper()
	irqLines = [256]irqLine{}
	threads = [maxThreads]thread{}
	maxThread = 3
	t.Cleanup(func() {
		irqLines = [256]irqLine{}
		threads = [maxThreads]thread{}
		maxThread = 0
	})
}

func TestIRQAllocLookup(t *testing.T) {
	resetIRQState(t)
	seen := map[uint64]bool{}
	for i := vecDriverFirst; i <= vecDriverLast; i++ {
		v := irqAlloc()
		if int64(v) < 0 || v < vecDriverFirst || v > vecDriverLast || seen[v] {
			t.Fatalf("irqAlloc #%d = %#x", i, v)
		}
		seen[v] = true
	}
	if v := irqAlloc(); v != errno(eNOSPC) {
		t.Errorf("irqAlloc with all %d vectors taken = %#x, want ENOSPC", len(seen), v)
	}
	irqLines[0x40].routed, irqLines[0x40].gsi = true, 11
	if v := irqLookup(11); v != 0x40 {
		t.Errorf("irqLookup(11) = %#x, want 0x40", v)
	}
	if v := irqLookup(10); v != 0 {
		t.Errorf("irqLookup(10) = %#x, want 0", v)
	}
}

// TestIRQWait drives the parking and waking of WaitIRQ on a message-signalled vector (no I/O
// APIC pin, so no MMIO): an immediate return when the count is already past seen, a parked
// thread woken with the new count, and a timed wait completed with 0 by wakeExpired.
func TestIRQWait(t *testing.T) {
	resetIRQState(t)
	const vec = 0x45
	irqLines[vec].allocated = true
	irqLines[vec].count = 7
	t1, t2 := &threads[1], &threads[2]
	t1.state, t2.state = tRunnable, tRunnable

	if r := irqWait(t1, vec, 6); r != 7 || t1.state != tRunnable {
		t.Fatalf("irqWait(seen 6) with count 7 = %d, state %d; want 7 at once", r, t1.state)
	}
	if r := irqWait(t1, 0x20, 0); r != errno(eINVAL) {
		t.Errorf("irqWait on the timer vector = %#x, want EINVAL", r)
	}
	if r := irqWait(t1, vec, 7); r != 0 || t1.state != tBlocked || t1.wait != wIRQ {
		t.Fatalf("irqWait(seen 7) = %d, state %d wait %d; want parked", r, t1.state, t1.wait)
	}
	t2.regs.R10 = 1 // 1 ns timeout
	irqWait(t2, vec, 7)
	if t2.state != tBlocked || t2.deadline == 0 {
		t.Fatalf("timed wait: state %d deadline %d", t2.state, t2.deadline)
	}
	wakeExpired(t2.deadline + 1)
	if t2.state != tRunnable || t2.regs.AX != 0 {
		t.Errorf("after its deadline: state %d AX %d; want runnable with 0 (timeout)", t2.state, t2.regs.AX)
	}
	if t1.state != tBlocked {
		t.Errorf("the untimed waiter woke at another's deadline")
	}
	irqLines[vec].count++
	if !wakeIRQWaiters(vec) || t1.state != tRunnable || t1.regs.AX != 8 {
		t.Errorf("after an interrupt: state %d AX %d; want runnable with count 8", t1.state, t1.regs.AX)
	}
	if wakeIRQWaiters(vec) {
		t.Errorf("a second wake found waiters")
	}
}
