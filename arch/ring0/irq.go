package ring0

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/godwit-hv/godwit/arch/acpi"
)

// Device interrupts for host drivers.
//
// A driver takes a vector with AllocVector and has it delivered either through an I/O APIC pin
// (RouteGSI, for legacy ISA IRQs and PCI INTx) or as a message (MSIAddress/MSIData, programmed
// into the device's MSI or MSI-X capability). The layer counts every interrupt per vector. A
// driver waits with WaitIRQ(vec, seen, timeout), which parks the calling thread in the layer
// (as a futex wait does) until the vector's count exceeds seen, and returns the new count.
//
// Level-triggered lines: the handler masks the I/O APIC pin before the EOI, because the device
// keeps the line asserted until the driver acknowledges it in the device, and an unmasked
// asserted level pin would be redelivered at once after the EOI (an interrupt storm that never
// lets the driver run). The pin stays masked until the driver calls WaitIRQ again, by which
// time it has acknowledged the device; if the line is still (or again) asserted the I/O APIC
// delivers it as soon as it is unmasked, so nothing is lost. Edge-triggered pins and messages
// are never masked. Intel 82093AA datasheet, 3.2.4 "IOREDTBL": "Remote IRR" and "Interrupt
// Mask"; Intel SDM Vol. 3A, 11.8.5 "Signaling Interrupt Servicing Completion".
//
// The trap side (driverIRQ, irqWait, irqRoute) runs inside the layer with interrupts off,
// under the rules of the package doc: no allocation, no Go pointers stored in globals.

// Driver vectors: above the exception and legacy vectors the layer uses itself (timer 0x20,
// COM1 0x24), below the remapped 8259s at vecPICBase. Intel SDM Vol. 3A, 6.2 "Exception and
// Interrupt Vectors": 32-255 are available to software; 11.8.3.1 "Task and Processor
// Priorities": the priority class is vector[7:4].
const (
	vecDriverFirst = 0x30
	vecDriverLast  = 0xEF
)

// I/O APIC registers and redirection-entry bits. Intel 82093AA datasheet, 3.2.2 "IOAPICVER"
// (maximum redirection entry in bits 23:16) and 3.2.4 "IOREDTBL[23:0]".
const (
	ioapicVer        = 0x01
	ioapicVerMaxRedr = 16 // shift of the Maximum Redirection Entry field
	redirPolarityLow = 1 << 13
	redirTriggerLvl  = 1 << 15
	redirMasked      = 1 << 16
	redirDestShift   = 24 // destination field, bits 63:56, in the high dword
)

// MSI message format. Intel SDM Vol. 3A, 11.11.1 "Message Address Register Format" (0FEEH in
// bits 31:20, destination APIC ID in 19:12, RH bit 3 and DM bit 2 zero: physical destination)
// and 11.11.2 "Message Data Register Format" (vector in 7:0, delivery mode 000 fixed in 10:8,
// trigger mode bit 15 zero: edge).
const (
	msiAddressBase = 0xFEE00000
	msiDestShift   = 12
)

// Godwit system calls of this file (api.go has the others).
const (
	opIRQAlloc  = 16
	opIRQRoute  = 17
	opIRQWait   = 18
	opIRQInfo   = 19
	opMapMMIO   = 20
	opIRQLookup = 21
)

// wIRQ is the wait reason of a thread parked in WaitIRQ (beside wFutex etc. in thread.go):
// waitAddr holds the vector, waitLen the count the caller has seen.
const wIRQ = 16

// ENOSPC (include/uapi/asm-generic/errno-base.h): no vector left.
const eNOSPC = 28

// irqLine is the layer's state of one driver vector.
type irqLine struct {
	allocated bool
	routed    bool // delivered through an I/O APIC pin
	level     bool
	activeLow bool
	masked    bool   // level pin masked by the handler, not yet unmasked by a wait
	ioapic    uint64 // physical base of the I/O APIC of a routed pin
	pin       uint32
	gsi       uint32
	count     uint64
}

var irqLines [256]irqLine

func ioapicRegWrite(base uint64, reg, v uint32) {
	*(*uint32)(physPtr(base + ioapicRegSel)) = reg
	*(*uint32)(physPtr(base + ioapicWin)) = v
}

func ioapicRegRead(base uint64, reg uint32) uint32 {
	*(*uint32)(physPtr(base + ioapicRegSel)) = reg
	return *(*uint32)(physPtr(base + ioapicWin))
}

// redirLow is the low dword of line's redirection entry: fixed delivery, physical destination.
func (l *irqLine) redirLow(vec int) uint32 {
	v := uint32(vec)
	if l.level {
		v |= redirTriggerLvl
	}
	if l.activeLow {
		v |= redirPolarityLow
	}
	if l.masked {
		v |= redirMasked
	}
	return v
}

// driverIRQ handles an interrupt on a driver vector: count it, mask a level pin, EOI, and wake
// the threads waiting for it.
func driverIRQ(vec int) {
	l := &irqLines[vec]
	l.count++
	if l.routed && l.level {
		l.masked = true
		ioapicRegWrite(l.ioapic, ioapicRedTbl+2*l.pin, l.redirLow(vec))
	}
	lapicEOIWrite()
	if wakeIRQWaiters(vec) {
		// Let the driver run now rather than at the end of the current slice.
		yieldNow = true
	}
}

func wakeIRQWaiters(vec int) bool {
	l := &irqLines[vec]
	woke := false
	for i := 1; i < maxThread; i++ {
		t := &threads[i]
		if t.state == tBlocked && t.wait == wIRQ && t.waitAddr == uint64(vec) && l.count > t.waitLen {
			t.wake(l.count)
			woke = true
		}
	}
	return woke
}

func irqAlloc() uint64 {
	for v := vecDriverFirst; v <= vecDriverLast; v++ {
		if !irqLines[v].allocated {
			irqLines[v] = irqLine{allocated: true}
			return uint64(v)
		}
	}
	return errno(eNOSPC)
}

// irqRoute programs pin of the I/O APIC at base for vec. b packs pin (7:0), vector (15:8),
// level (16), active low (17) and the GSI (63:32).
func irqRoute(base, b uint64) uint64 {
	pin := uint32(b & 0xFF)
	vec := int(b >> 8 & 0xFF)
	if vec < vecDriverFirst || vec > vecDriverLast || !irqLines[vec].allocated || irqLines[vec].routed {
		return errno(eINVAL)
	}
	// I/O APICs live in the uncached window below 4 GiB (buildKernelTables), page aligned.
	if base&(pageSize-1) != 0 || base < mmioWindowLo || base >= mmioWindowHi {
		return errno(eINVAL)
	}
	if pin > ioapicRegRead(base, ioapicVer)>>ioapicVerMaxRedr&0xFF {
		return errno(eINVAL)
	}
	for v := vecDriverFirst; v <= vecDriverLast; v++ {
		if o := &irqLines[v]; o.routed && o.ioapic == base && o.pin == pin {
			return errno(eEXIST)
		}
	}
	if base == ioapicDefaultBase && pin == com1IRQ {
		return errno(eEXIST) // the console's
	}
	l := &irqLines[vec]
	l.routed, l.ioapic, l.pin, l.gsi = true, base, pin, uint32(b>>32)
	l.level, l.activeLow, l.masked = b&(1<<16) != 0, b&(1<<17) != 0, false
	dest := lapicRead(lapicID) >> 24
	ioapicRegWrite(base, ioapicRedTbl+2*pin+1, dest<<redirDestShift)
	ioapicRegWrite(base, ioapicRedTbl+2*pin, l.redirLow(vec))
	return 0
}

// irqLookup returns the vector routed to the GSI, or 0.
func irqLookup(gsi uint64) uint64 {
	for v := vecDriverFirst; v <= vecDriverLast; v++ {
		if o := &irqLines[v]; o.routed && uint64(o.gsi) == gsi {
			return uint64(v)
		}
	}
	return 0
}

// irqWait parks t until vector vec's count exceeds seen; t.regs.R10 is the timeout in ns (0:
// none). It returns the count at once if it already does. A timed-out wait is completed by
// wakeExpired with 0, which no successful wait returns (count > seen >= 0).
func irqWait(t *thread, vec, seen uint64) uint64 {
	if vec < vecDriverFirst || vec > vecDriverLast || !irqLines[vec].allocated {
		return errno(eINVAL)
	}
	l := &irqLines[vec]
	if l.routed && l.masked {
		l.masked = false
		ioapicRegWrite(l.ioapic, ioapicRedTbl+2*l.pin, l.redirLow(int(vec)))
	}
	if l.count > seen {
		return l.count
	}
	var deadline int64
	if ns := int64(t.regs.R10); ns > 0 {
		deadline = nanotime() + ns
	}
	t.waitAddr, t.waitLen = vec, seen
	t.block(wIRQ, deadline)
	return 0
}

// irqInfoCall copies vec's state to the IRQInfo at dst.
func irqInfoCall(vec, dst uint64) uint64 {
	if vec > 255 || !userRange(dst, uint64(unsafe.Sizeof(IRQInfo{})), true) {
		return errno(eFAULT)
	}
	l := &irqLines[vec]
	*(*IRQInfo)(physPtr(dst)) = IRQInfo{
		Vector: uint8(vec), Allocated: l.allocated, Routed: l.routed, Level: l.level,
		ActiveLow: l.activeLow, Masked: l.masked, GSI: l.gsi, Count: l.count,
	}
	return 0
}

// irqCall dispatches the Godwit calls of this file; ok is false for other ops.
func irqCall(t *thread, op, a, b uint64) (ret uint64, ok bool) {
	switch op {
	case opIRQAlloc:
		return irqAlloc(), true
	case opIRQRoute:
		return irqRoute(a, b), true
	case opIRQWait:
		return irqWait(t, a, b), true
	case opIRQInfo:
		return irqInfoCall(a, b), true
	case opIRQLookup:
		return irqLookup(a), true
	case opMapMMIO:
		return mapMMIO(a, b), true
	}
	return 0, false
}

// ---- The driver-facing API (ordinary Go code). ----

// Errors of the interrupt API.
var (
	// ErrNoVector: all driver vectors are taken.
	ErrNoVector = errors.New("ring0: no free interrupt vector")
	// ErrIRQTimeout: WaitIRQ's timeout passed without an interrupt.
	ErrIRQTimeout = errors.New("ring0: timed out waiting for an interrupt")
	// ErrGSIInUse: the GSI is already routed to another vector.
	ErrGSIInUse = errors.New("ring0: GSI already routed")
	// ErrNoMADT: the firmware gave no usable MADT, so I/O APIC pins cannot be found.
	ErrNoMADT = errors.New("ring0: no ACPI MADT")
)

// IRQInfo describes one driver vector (IRQs, IRQStats).
type IRQInfo struct {
	Vector    uint8
	Allocated bool
	Routed    bool // through an I/O APIC pin (else MSI/MSI-X or unused)
	Level     bool
	ActiveLow bool
	Masked    bool // a level pin masked by the handler until the driver waits again
	GSI       uint32
	Count     uint64 // interrupts taken on this vector since boot
}

// AllocVector reserves an interrupt vector for a driver. Vectors are never given back (drivers
// live as long as the kernel).
func AllocVector() (uint8, error) {
	if !BareMetal() {
		return 0, ErrNotBareMetal
	}
	r := call(opIRQAlloc, 0, 0)
	if int64(r) < 0 {
		return 0, ErrNoVector
	}
	return uint8(r), nil
}

// Route says how an interrupt source reaches the I/O APICs: its global system interrupt
// (ACPI 6.5, 5.2.13 "Global System Interrupts") and its trigger mode and polarity.
type Route struct {
	GSI       uint32
	Level     bool
	ActiveLow bool
}

func (r Route) String() string {
	trig, pol := "edge", "high"
	if r.Level {
		trig = "level"
	}
	if r.ActiveLow {
		pol = "low"
	}
	return fmt.Sprintf("GSI %d %s/%s", r.GSI, trig, pol)
}

// routeFromINTI applies MPS INTI flags (ACPI 6.5, 5.2.12 "Interrupt Source Override
// Structure", table "MPS INTI Flags") over a bus's conforming defaults.
func routeFromINTI(gsi uint32, flags uint16, busLevel, busLow bool) Route {
	r := Route{GSI: gsi, Level: busLevel, ActiveLow: busLow}
	switch flags & acpi.INTITriggerMask {
	case acpi.INTITriggerEdge:
		r.Level = false
	case acpi.INTITriggerLevel:
		r.Level = true
	}
	switch flags & acpi.INTIPolarityMask {
	case acpi.INTIPolarityActiveHigh:
		r.ActiveLow = false
	case acpi.INTIPolarityActiveLow:
		r.ActiveLow = true
	}
	return r
}

// ISARouteFrom returns the route of ISA IRQ irq per m: its Interrupt Source Override if there
// is one, else the identity GSI; ISA's conforming mode is edge-triggered, active high (ACPI
// 6.5, 5.2.12 "Interrupt Source Override Structure").
func ISARouteFrom(m *acpi.MADT, irq uint8) Route {
	gsi, flags := m.ISAIRQ(irq)
	return routeFromINTI(gsi, flags, false, false)
}

// PCIRouteFrom returns the route of a PCI INTx pin whose Interrupt Line register (PCI Local
// Bus 3.0, 6.2.4) holds the ISA IRQ number the BIOS routed it to, as on the PIIX/ICH boards
// QEMU and Bochs emulate: the PIRQ router drives that ISA IRQ input of the I/O APIC
// level-triggered and active high (the router inverts PCI's active-low INTx#; QEMU's MADT
// says so with overrides flagged level/active-high for IRQ 5, 9, 10, 11). An override's flags,
// when given, win; without one the line is taken as level-triggered, active high.
func PCIRouteFrom(m *acpi.MADT, line uint8) Route {
	gsi, flags := m.ISAIRQ(line)
	return routeFromINTI(gsi, flags, true, false)
}

var madtOnce struct {
	sync.Once
	m   *acpi.MADT
	err error
}

// lowMemory reads physical memory for the ACPI parser: page 0 from the copy taken at boot (it
// is unmapped), the rest through the identity map.
type lowMemory struct{}

func (lowMemory) ReadPhys(addr uint64, p []byte) error {
	low := LowPage()
	if addr < uint64(len(low)) {
		if addr+uint64(len(p)) > uint64(len(low)) {
			return fmt.Errorf("read of %d bytes at %#x crosses the end of page 0", len(p), addr)
		}
		copy(p, low[addr:])
		return nil
	}
	return acpi.PhysMemory{}.ReadPhys(addr, p)
}

// MADT returns the firmware's MADT, read once.
func MADT() (*acpi.MADT, error) {
	madtOnce.Do(func() {
		if !BareMetal() {
			madtOnce.err = ErrNotBareMetal
			return
		}
		var t *acpi.Tables
		var err error
		if rsdp := BootInfo().RSDP; rsdp != 0 {
			t, err = acpi.Load(lowMemory{}, rsdp)
		} else {
			t, err = acpi.Find(lowMemory{})
		}
		if err != nil {
			madtOnce.err = fmt.Errorf("%w: %w", ErrNoMADT, err)
			return
		}
		m, err := t.MADT()
		if err != nil {
			madtOnce.err = fmt.Errorf("%w: %w", ErrNoMADT, err)
			return
		}
		madtOnce.m = m
	})
	return madtOnce.m, madtOnce.err
}

// ISARoute returns the route of ISA IRQ irq on this machine (see ISARouteFrom).
func ISARoute(irq uint8) (Route, error) {
	m, err := MADT()
	if err != nil {
		return Route{}, err
	}
	return ISARouteFrom(m, irq), nil
}

// PCIRoute returns the route of a PCI INTx pin with Interrupt Line line (see PCIRouteFrom).
func PCIRoute(line uint8) (Route, error) {
	m, err := MADT()
	if err != nil {
		return Route{}, err
	}
	return PCIRouteFrom(m, line), nil
}

// RouteGSI programs the I/O APIC pin of gsi (found from the MADT's I/O APIC structures) to
// deliver vector vec to this CPU, fixed delivery, with the given trigger mode and polarity,
// and unmasks it. A GSI can be routed once; shared lines use SharedVector.
func RouteGSI(gsi uint32, vec uint8, level, activeLow bool) error {
	if !BareMetal() {
		return ErrNotBareMetal
	}
	m, err := MADT()
	if err != nil {
		return err
	}
	a, ok := m.IOAPICFor(gsi)
	if !ok {
		return fmt.Errorf("ring0: GSI %d: no I/O APIC serves it", gsi)
	}
	b := uint64(gsi-a.GSIBase) | uint64(vec)<<8 | uint64(gsi)<<32
	if level {
		b |= 1 << 16
	}
	if activeLow {
		b |= 1 << 17
	}
	switch r := call(opIRQRoute, uint64(a.Address), b); {
	case r == errno(eEXIST):
		return fmt.Errorf("GSI %d: %w", gsi, ErrGSIInUse)
	case int64(r) < 0:
		return fmt.Errorf("ring0: routing GSI %d (I/O APIC %#x pin %d) to vector %#x: invalid (errno %d)",
			gsi, a.Address, gsi-a.GSIBase, vec, -int64(r))
	}
	return nil
}

var sharedMu sync.Mutex

// SharedVector returns the vector r.GSI is routed to, allocating and routing one if it is not
// routed yet. Drivers of devices sharing a line (PCI INTx) all wait on that vector and each
// checks its own device's interrupt status.
func SharedVector(r Route) (uint8, error) {
	if !BareMetal() {
		return 0, ErrNotBareMetal
	}
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if v := call(opIRQLookup, uint64(r.GSI), 0); v != 0 {
		info := IRQStat(uint8(v))
		if info.Level != r.Level || info.ActiveLow != r.ActiveLow {
			return 0, fmt.Errorf("ring0: %v: already routed to vector %#x with other trigger/polarity: %w", r, v, ErrGSIInUse)
		}
		return uint8(v), nil
	}
	vec, err := AllocVector()
	if err != nil {
		return 0, err
	}
	if err := RouteGSI(r.GSI, vec, r.Level, r.ActiveLow); err != nil {
		return 0, err
	}
	return vec, nil
}

// MSIAddress is the Message Address to program into an MSI or MSI-X capability so that the
// message reaches this CPU's local APIC (physical destination mode).
func MSIAddress() uint64 {
	var dest uint64
	if BareMetal() {
		dest = uint64(lapicRead(lapicID) >> 24)
	}
	return msiAddressBase | dest<<msiDestShift
}

// MSIData is the Message Data for vector vec: fixed delivery, edge-triggered.
func MSIData(vec uint8) uint32 { return uint32(vec) }

// WaitIRQ blocks the calling thread until vector vec has taken more than seen interrupts, and
// returns the count. It returns at once if the count already exceeds seen. timeout <= 0 waits
// without limit; otherwise ErrIRQTimeout comes back after it. Calling it also unmasks a level
// pin that the handler masked (see the file comment): acknowledge the device first.
func WaitIRQ(vec uint8, seen uint64, timeout time.Duration) (uint64, error) {
	if !BareMetal() {
		return 0, ErrNotBareMetal
	}
	ns := int64(timeout)
	if ns < 0 {
		ns = 0
	}
	// syscall.Syscall6 (not Raw): the runtime hands this thread's P to another thread while
	// the wait lasts. The fourth argument travels in R10.
	r, _, e := syscall.Syscall6(sysGodwit, opIRQWait, uintptr(vec), uintptr(seen), uintptr(ns), 0, 0)
	if e != 0 {
		return 0, fmt.Errorf("ring0: waiting on vector %#x: %w", vec, e)
	}
	if r == 0 {
		return seen, fmt.Errorf("vector %#x after %v: %w", vec, timeout, ErrIRQTimeout)
	}
	return uint64(r), nil
}

// IRQStat returns the state and count of vector vec.
func IRQStat(vec uint8) IRQInfo {
	var info IRQInfo
	if BareMetal() {
		call(opIRQInfo, uint64(vec), uint64(uintptr(unsafe.Pointer(&info))))
	}
	return info
}

// IRQCount returns how many interrupts vector vec has taken.
func IRQCount(vec uint8) uint64 { return IRQStat(vec).Count }

// IRQs returns the allocated driver vectors.
func IRQs() []IRQInfo {
	var out []IRQInfo
	for v := vecDriverFirst; v <= vecDriverLast; v++ {
		if i := IRQStat(uint8(v)); i.Allocated {
			out = append(out, i)
		}
	}
	return out
}

// MapMMIO makes the physical range [pa, pa+size) accessible, uncached, at the same virtual
// address. Ranges in the uncached window below 4 GiB are mapped already; ranges above the
// identity map (64-bit BARs) get 2 MiB uncached pages and are kept out of mmap's reach.
func MapMMIO(pa, size uint64) error {
	if !BareMetal() {
		return ErrNotBareMetal
	}
	if size == 0 || pa+size < pa {
		return fmt.Errorf("ring0: MapMMIO(%#x, %#x): empty or wrapping range", pa, size)
	}
	if r := call(opMapMMIO, pa, size); int64(r) < 0 {
		return fmt.Errorf("ring0: MapMMIO(%#x, %#x): errno %d", pa, size, -int64(r))
	}
	return nil
}
