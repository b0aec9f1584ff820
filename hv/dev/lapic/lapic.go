// Package lapic models a local APIC (Intel SDM Vol. 3A, chapter 11
// "Advanced Programmable Interrupt Controller (APIC)") for one vCPU: the
// xAPIC register page at 0xFEE00000 (as a bus.Device), the x2APIC MSR
// interface over the same register file, IA32_APIC_BASE and
// IA32_TSC_DEADLINE, the APIC timer in its one-shot, periodic and
// TSC-deadline modes, and interprocessor interrupts through a Router.
//
// The vCPU side is SetIRQ (accept a vector into IRR), PendingVector (the
// highest IRR vector above the processor priority) and Ack (the vCPU
// delivered it: IRR to ISR). Time comes from an injectable clock in
// nanoseconds; the owner asks NextDeadline when to arm a host timer and
// calls Tick when it fires (or on any exit) to fire expired timers.
//
// Interrupt delivery is instantaneous: the delivery status bits of the ICR
// and the LVT entries always read 0 (idle). Remote read, SMI, CMCI and the
// thermal and performance-counter sources are not modelled beyond their
// registers.
//
// Hot path: Read, Write, ReadMSR, WriteMSR, SetIRQ, PendingVector, Ack,
// Tick and NextDeadline do not allocate. All methods are safe for
// concurrent use (other vCPUs and the I/O APIC deliver into a LAPIC while
// its vCPU runs). Callbacks (Router, EOI, Signal, Kick) are called with no
// lock held, so a callback may call back into any LAPIC.
//
// A guest writing garbage cannot make the model panic: reserved bits are
// dropped, writes to read-only registers are ignored (and recorded in ESR
// as an illegal register address where the SDM says so), and accesses that
// are not aligned 32-bit accesses are handled as documented on Read and
// Write.
package lapic

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"sync"
)

// A Message is an interrupt message on the APIC bus: an IPI from an ICR
// write, or an I/O APIC or MSI message (Intel SDM Vol. 3A, 11.6.1).
type Message struct {
	Vector    uint8
	Mode      DeliveryMode
	Logical   bool   // destination mode
	Dest      uint32 // destination, ignored with a shorthand
	Shorthand uint8  // NoShorthand, Self, AllIncluding, AllButSelf
	X2APIC    bool   // Dest is a 32-bit x2APIC destination (else 8-bit xAPIC)
	Assert    bool   // level: false only for an INIT level de-assert
	Level     bool   // trigger mode: level-triggered
}

// A Router delivers messages a LAPIC sends (ICR writes) to the LAPICs they
// address. Group is the standard implementation.
type Router interface {
	Route(src *LAPIC, m Message)
}

// Signal is an event for the vCPU that is not a vectored interrupt.
type Signal uint8

// Signals.
const (
	SignalNMI    Signal = iota + 1
	SignalINIT          // INIT (assert): the LAPIC has already reset itself
	SignalSIPI          // start-up IPI; the vector gives the start page
	SignalSMI           // SMI (reported, not modelled)
	SignalExtINT        // ExtINT: ask the 8259 for the vector
)

func (s Signal) String() string {
	switch s {
	case SignalNMI:
		return "NMI"
	case SignalINIT:
		return "INIT"
	case SignalSIPI:
		return "SIPI"
	case SignalSMI:
		return "SMI"
	case SignalExtINT:
		return "ExtINT"
	}
	return "Signal(?)"
}

// Config wires a LAPIC to its vCPU and the machine.
type Config struct {
	// ID is the initial APIC ID (also the x2APIC ID).
	ID uint32
	// BSP marks the bootstrap processor (IA32_APIC_BASE bit 8).
	BSP bool
	// Clock returns the current time in nanoseconds. Required.
	Clock func() int64
	// TimerHz is the frequency of the APIC timer before the divider (the
	// bus or core crystal clock). Zero means 1 GHz.
	TimerHz uint64
	// TSCHz is the guest TSC frequency, used to convert
	// IA32_TSC_DEADLINE values to time. Zero disables TSC-deadline mode
	// (the mode bits then read back as one-shot).
	TSCHz uint64
	// TSC returns the guest TSC now. Nil means Clock()*TSCHz/1e9.
	TSC func() uint64
	// MinPeriod bounds how often a periodic timer fires, in ns, so a guest
	// cannot make the host spin. Zero means 50 µs.
	MinPeriod int64
	// Router delivers IPIs. Nil drops IPIs to other LAPICs (self IPIs
	// still arrive).
	Router Router
	// EOI receives the vector of an EOI for a level-triggered interrupt
	// (the EOI broadcast to the I/O APICs). Nil drops it.
	EOI func(vector uint8)
	// Signal receives NMI, INIT, SIPI, SMI and ExtINT events. Nil drops
	// them.
	Signal func(s Signal, vector uint8)
	// Kick is called when a new interrupt may have become pending, so the
	// owner can wake a halted vCPU. Nil means nobody needs waking.
	Kick func()
}

// The LVT entries in register order (Intel SDM Vol. 3A, Figure 11-8).
const (
	lvtTimer = iota
	lvtThermal
	lvtPerf
	lvtLINT0
	lvtLINT1
	lvtError
	numLVT
)

// LAPIC is one local APIC.
type LAPIC struct {
	mu  sync.Mutex
	cfg Config

	apicBase uint64
	id       uint32 // APIC ID: xAPIC ID register bits 31:24, or x2APIC ID
	tpr      uint32
	ldr      uint32
	dfr      uint32
	svr      uint32
	esr      uint32 // value latched by the last ESR write
	esrPend  uint32 // errors since the last ESR write
	icrLow   uint32
	icrHigh  uint32
	lvt      [numLVT]uint32
	dcr      uint32
	initial  uint32
	isr      [8]uint32
	tmr      [8]uint32
	irr      [8]uint32
	lintIn   [2]bool // LINT0/1 input levels

	timer timer
}

// timer is the running state of the APIC timer.
type timer struct {
	armed    bool
	deadline int64  // ns, when it next expires
	period   int64  // ns, periodic mode
	div      uint32 // divider the current count runs with
	tscDL    uint64 // IA32_TSC_DEADLINE
}

// New returns a LAPIC in its power-up state: enabled in xAPIC mode at
// DefaultBase, software-disabled, all LVT entries masked.
func New(cfg Config) *LAPIC {
	if cfg.TimerHz == 0 {
		cfg.TimerHz = 1e9
	}
	if cfg.TimerHz < 1e6 {
		cfg.TimerHz = 1e6 // keeps the 128-bit time arithmetic in range
	}
	if cfg.MinPeriod <= 0 {
		cfg.MinPeriod = 50_000
	}
	if cfg.TSCHz != 0 && cfg.TSCHz < 1e6 {
		cfg.TSCHz = 1e6
	}
	if cfg.Clock == nil {
		cfg.Clock = func() int64 { return 0 }
	}
	a := &LAPIC{cfg: cfg}
	a.apicBase = DefaultBase | APICBaseEnable
	if cfg.BSP {
		a.apicBase |= APICBaseBSP
	}
	a.reset()
	return a
}

// reset puts the registers in their power-up/INIT state, keeping the APIC
// base. Intel SDM Vol. 3A, 11.4.7.1 "Local APIC State After Power-Up or
// Reset" and 11.4.7.3 "Local APIC State After an INIT Reset".
func (a *LAPIC) reset() {
	a.id = a.cfg.ID
	a.tpr, a.ldr, a.esr, a.esrPend, a.icrLow, a.icrHigh = 0, 0, 0, 0, 0, 0
	a.dfr = 0xFFFFFFFF
	a.svr = svrReset
	for i := range a.lvt {
		a.lvt[i] = lvtReset
	}
	a.dcr, a.initial = 0, 0
	a.isr, a.tmr, a.irr = [8]uint32{}, [8]uint32{}, [8]uint32{}
	a.timer = timer{div: 2}
	if a.x2apic() {
		a.ldr = x2apicLDR(a.id)
	}
}

// x2apicLDR is the logical ID derived from the x2APIC ID. Intel SDM Vol.
// 3A, 11.12.10.2 "Deriving Logical x2APIC ID from the Local x2APIC ID".
func x2apicLDR(id uint32) uint32 { return (id>>4)<<16 | 1<<(id&0xF) }

func (a *LAPIC) x2apic() bool { return a.apicBase&APICBaseEXTD != 0 }

func (a *LAPIC) hwEnabled() bool { return a.apicBase&APICBaseEnable != 0 }

// swEnabled reports whether the APIC is enabled both globally and by
// software (SVR bit 8).
func (a *LAPIC) swEnabled() bool { return a.hwEnabled() && a.svr&SVREnable != 0 }

// effects are what an access asks to do after the lock is dropped.
type effects struct {
	ipi      bool
	msg      Message
	eoi      bool
	eoiVec   uint8
	sig      Signal
	sigVec   uint8
	kick     bool
	initSelf bool
}

func (a *LAPIC) run(e *effects) {
	if e.eoi && a.cfg.EOI != nil {
		a.cfg.EOI(e.eoiVec)
	}
	if e.sig != 0 && a.cfg.Signal != nil {
		a.cfg.Signal(e.sig, e.sigVec)
	}
	if e.ipi {
		a.sendIPI(e.msg)
	}
	if e.kick && a.cfg.Kick != nil {
		a.cfg.Kick()
	}
}

// Bit-vector helpers over the 256-bit registers.
func setBit(r *[8]uint32, v uint8)       { r[v>>5] |= 1 << (v & 31) }
func clearBit(r *[8]uint32, v uint8)     { r[v>>5] &^= 1 << (v & 31) }
func testBit(r *[8]uint32, v uint8) bool { return r[v>>5]&(1<<(v&31)) != 0 }

// highest returns the highest set bit, or -1.
func highest(r *[8]uint32) int {
	for i := 7; i >= 0; i-- {
		if r[i] != 0 {
			return i*32 + 31 - bits.LeadingZeros32(r[i])
		}
	}
	return -1
}

// ppr computes the processor priority. Intel SDM Vol. 3A, 11.8.3.1 "Task
// and Processor Priorities": PPR = TPR if TPR[7:4] >= ISRV[7:4], else
// ISRV[7:4] with bits 3:0 clear.
func (a *LAPIC) ppr() uint32 {
	isrv := uint32(0)
	if h := highest(&a.isr); h >= 0 {
		isrv = uint32(h)
	}
	if a.tpr&0xF0 >= isrv&0xF0 {
		return a.tpr & 0xFF
	}
	return isrv & 0xF0
}

// apr computes the arbitration priority. Intel SDM Vol. 3A, 11.6.2.4
// "Lowest Priority Delivery Mode" (Figure 11-15).
func (a *LAPIC) apr() uint32 {
	isrv, irrv := uint32(0), uint32(0)
	if h := highest(&a.isr); h >= 0 {
		isrv = uint32(h)
	}
	if h := highest(&a.irr); h >= 0 {
		irrv = uint32(h)
	}
	if a.tpr&0xF0 >= irrv&0xF0 && a.tpr&0xF0 > isrv&0xF0 {
		return a.tpr & 0xFF
	}
	return max(a.tpr&0xF0, isrv&0xF0, irrv&0xF0)
}

// acceptFixed puts a fixed interrupt in IRR (and its trigger mode in TMR).
// Intel SDM Vol. 3A, 11.8.4 "Interrupt Acceptance for Fixed Interrupts".
// It reports whether the interrupt was accepted.
func (a *LAPIC) acceptFixed(vec uint8, level bool, e *effects) bool {
	if !a.swEnabled() {
		return false // a software-disabled APIC drops fixed interrupts
	}
	if vec < minLegalVector {
		a.recordError(ESRReceiveIllegalVector, e)
		return false
	}
	setBit(&a.irr, vec)
	if level {
		setBit(&a.tmr, vec)
	} else {
		clearBit(&a.tmr, vec)
	}
	e.kick = true
	return true
}

// recordError notes an error and raises the LVT error interrupt. Intel SDM
// Vol. 3A, 11.5.3 "Error Handling".
func (a *LAPIC) recordError(bit uint32, e *effects) {
	a.esrPend |= bit
	l := a.lvt[lvtError]
	if l&LVTMasked == 0 && a.swEnabled() {
		if v := uint8(l & LVTVector); v >= minLegalVector {
			setBit(&a.irr, v)
			clearBit(&a.tmr, v)
			e.kick = true
		} else {
			a.esrPend |= ESRReceiveIllegalVector
		}
	}
}

// SetIRQ accepts a fixed interrupt with vector vec into IRR, recording its
// trigger mode (level-triggered interrupts are reported to Config.EOI when
// the guest ends them). It is how the I/O APIC and MSIs reach the vCPU.
// Vectors 0-15 are refused (ESR "receive illegal vector"), and a
// software-disabled APIC drops the interrupt.
func (a *LAPIC) SetIRQ(vec uint8, level bool) {
	var e effects
	a.mu.Lock()
	a.acceptFixed(vec, level, &e)
	a.mu.Unlock()
	a.run(&e)
}

// PendingVector returns the highest-priority interrupt in IRR whose
// priority class is above the processor priority, the one the vCPU should
// take when it can. Intel SDM Vol. 3A, 11.8.3 "Interrupt, Task, and
// Processor Priority".
func (a *LAPIC) PendingVector() (vec uint8, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pending()
}

func (a *LAPIC) pending() (uint8, bool) {
	if !a.swEnabled() {
		return 0, false
	}
	h := highest(&a.irr)
	if h < 0 || uint32(h)&0xF0 <= a.ppr()&0xF0 {
		return 0, false
	}
	return uint8(h), true
}

// Ack records that the vCPU took interrupt vec: the bit moves from IRR to
// ISR. Intel SDM Vol. 3A, 11.8.4. Acking a vector not in IRR does nothing.
func (a *LAPIC) Ack(vec uint8) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !testBit(&a.irr, vec) {
		return
	}
	clearBit(&a.irr, vec)
	setBit(&a.isr, vec)
}

// eoi ends the highest-priority interrupt in service. Intel SDM Vol. 3A,
// 11.8.5 "Signaling Interrupt Servicing Completion".
func (a *LAPIC) eoi(e *effects) {
	h := highest(&a.isr)
	if h < 0 {
		return
	}
	v := uint8(h)
	clearBit(&a.isr, v)
	if testBit(&a.tmr, v) {
		e.eoi, e.eoiVec = true, v
	}
	e.kick = true // a lower-priority interrupt may now be deliverable
	// A level-triggered LINT input waits for the EOI of its vector
	// (remote IRR) and is delivered again if still asserted.
	for pin := range 2 {
		l := &a.lvt[lvtLINT0+pin]
		if *l&LVTRemoteIRR != 0 && uint8(*l&LVTVector) == v {
			*l &^= LVTRemoteIRR
			if a.lintIn[pin] && a.deliverLVT(lvtLINT0+pin, e) {
				*l |= LVTRemoteIRR
			}
		}
	}
}

// SetLINT drives the LINT0 (pin 0) or LINT1 (pin 1) input, as wired to
// the 8259 INTR and to NMI on a PC. The LVT entry decides what the pin
// does; a masked entry ignores it. Intel SDM Vol. 3A, 11.5.1.
func (a *LAPIC) SetLINT(pin int, level bool) {
	if pin != 0 && pin != 1 {
		return
	}
	var e effects
	a.mu.Lock()
	l := a.lvt[lvtLINT0+pin]
	active := level != (l&LVTPolarityLow != 0)
	edge := active && !a.lintIn[pin]
	a.lintIn[pin] = active
	levelTrig := l&LVTLevel != 0 && DeliveryMode(l&LVTDeliveryMode>>lvtDeliveryShift) == Fixed
	if levelTrig && !active {
		a.mu.Unlock()
		return
	}
	if (levelTrig && active && l&LVTRemoteIRR == 0) || (!levelTrig && edge) {
		if a.deliverLVT(lvtLINT0+pin, &e) && levelTrig {
			a.lvt[lvtLINT0+pin] |= LVTRemoteIRR
		}
	}
	a.mu.Unlock()
	a.run(&e)
}

// deliverLVT raises the interrupt an LVT entry describes. It reports
// whether a fixed interrupt was accepted.
func (a *LAPIC) deliverLVT(i int, e *effects) bool {
	l := a.lvt[i]
	if l&LVTMasked != 0 || !a.swEnabled() {
		return false
	}
	mode := Fixed
	if i != lvtTimer && i != lvtError {
		mode = DeliveryMode(l & LVTDeliveryMode >> lvtDeliveryShift)
	}
	vec := uint8(l & LVTVector)
	switch mode {
	case Fixed:
		return a.acceptFixed(vec, i >= lvtLINT0 && i <= lvtLINT1 && l&LVTLevel != 0, e)
	case NMI:
		e.sig = SignalNMI
	case SMI:
		e.sig = SignalSMI
	case ExtINT:
		e.sig = SignalExtINT
	case INIT:
		a.reset()
		e.sig = SignalINIT
	}
	e.sigVec = vec
	return false
}

// Read implements bus.Device for the xAPIC page. Each register is the
// first 4 bytes of its 16-byte slot; a read of any size returns the bytes
// of the registers it covers, and bytes 4-15 of a slot read as 0. In
// x2APIC mode, or with the APIC globally disabled, the page reads as all
// ones (the MMIO interface is gone: Intel SDM Vol. 3A, 11.12.2).
func (a *LAPIC) Read(offset uint64, data []byte) error {
	if offset >= PageSize || uint64(len(data)) > PageSize-offset {
		for i := range data {
			data[i] = 0xFF
		}
		return nil
	}
	now := a.cfg.Clock()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.x2apic() || !a.hwEnabled() {
		for i := range data {
			data[i] = 0xFF
		}
		return nil
	}
	for i := range data {
		o := offset + uint64(i)
		if o&0xF >= 4 {
			data[i] = 0
			continue
		}
		v, _ := a.readReg(uint32(o&^0xF), now)
		data[i] = byte(v >> (8 * (o & 3)))
	}
	return nil
}

// Write implements bus.Device for the xAPIC page. Only 32-bit writes at
// the start of a register's slot take effect (the SDM requires aligned
// 32-bit accesses, 11.4.1); other writes, and any write in x2APIC mode or
// with the APIC globally disabled, are ignored.
func (a *LAPIC) Write(offset uint64, data []byte) error {
	if len(data) != 4 || offset&0xF != 0 || offset >= PageSize {
		return nil
	}
	now := a.cfg.Clock()
	v := binary.LittleEndian.Uint32(data)
	var e effects
	a.mu.Lock()
	if !a.x2apic() && a.hwEnabled() {
		a.writeReg(uint32(offset), v, now, &e)
	}
	a.mu.Unlock()
	a.run(&e)
	return nil
}

// readReg returns the register at offset off (16-byte aligned). ok is
// false for an offset with no register.
func (a *LAPIC) readReg(off uint32, now int64) (v uint32, ok bool) {
	switch {
	case off >= RegISR && off < RegISR+0x80:
		return a.isr[(off-RegISR)>>4], true
	case off >= RegTMR && off < RegTMR+0x80:
		return a.tmr[(off-RegTMR)>>4], true
	case off >= RegIRR && off < RegIRR+0x80:
		return a.irr[(off-RegIRR)>>4], true
	}
	switch off {
	case RegID:
		if a.x2apic() {
			return a.id, true
		}
		return a.id << 24, true
	case RegVersion:
		return Version | MaxLVT<<VersionMaxShift, true
	case RegTPR:
		return a.tpr, true
	case RegAPR:
		return a.apr(), true
	case RegPPR:
		return a.ppr(), true
	case RegEOI, RegRRD, RegLVTCMCI, RegSelfIPI:
		return 0, true
	case RegLDR:
		return a.ldr, true
	case RegDFR:
		return a.dfr, true
	case RegSVR:
		return a.svr, true
	case RegESR:
		return a.esr, true
	case RegICRLow:
		return a.icrLow, true
	case RegICRHigh:
		return a.icrHigh, true
	case RegLVTTimer, RegLVTThermal, RegLVTPerf, RegLVTLINT0, RegLVTLINT1, RegLVTError:
		return a.lvt[(off-RegLVTTimer)>>4], true
	case RegTimerICR:
		return a.initial, true
	case RegTimerCCR:
		return a.currentCount(now), true
	case RegTimerDCR:
		return a.dcr, true
	}
	return 0, false
}

// writeReg stores v in the register at offset off. ok is false for an
// offset with no writable register.
func (a *LAPIC) writeReg(off, v uint32, now int64, e *effects) (ok bool) {
	switch off {
	case RegID:
		if !a.x2apic() {
			a.id = v >> 24
		}
	case RegTPR:
		a.tpr = v & 0xFF
		e.kick = true
	case RegEOI:
		a.eoi(e)
	case RegLDR:
		if !a.x2apic() {
			a.ldr = v & 0xFF000000
		}
	case RegDFR:
		if !a.x2apic() {
			a.dfr = v&(0xF<<dfrModelShift) | dfrReserved
		}
	case RegSVR:
		a.svr = v & svrWriteMask
		if a.svr&SVREnable == 0 {
			// Software disable masks every LVT entry. Intel SDM Vol.
			// 3A, 11.4.7.2 "Local APIC State After It Has Been
			// Software Disabled".
			for i := range a.lvt {
				a.lvt[i] |= LVTMasked
			}
		} else {
			e.kick = true
		}
	case RegESR:
		// A write latches the errors since the last write. Intel SDM
		// Vol. 3A, 11.5.3.
		a.esr, a.esrPend = a.esrPend, 0
	case RegICRLow:
		a.icrLow = v & icrLowWritable
		a.sendICR(e)
	case RegICRHigh:
		a.icrHigh = v & (0xFF << icrHighDestShift)
	case RegLVTTimer, RegLVTThermal, RegLVTPerf, RegLVTLINT0, RegLVTLINT1, RegLVTError:
		a.writeLVT(int(off-RegLVTTimer)>>4, v, now)
	case RegTimerICR:
		a.writeInitialCount(v, now, e)
	case RegTimerDCR:
		a.dcr = v & dcrMask
	case RegSelfIPI:
		if !a.x2apic() {
			return false
		}
		a.acceptFixed(uint8(v), false, e)
	case RegVersion, RegAPR, RegPPR, RegRRD, RegTimerCCR, RegLVTCMCI:
		// Read-only (or not implemented): ignored.
	default:
		if off >= RegISR && off < RegIRR+0x80 {
			return true // ISR, TMR, IRR are read-only
		}
		a.recordError(ESRIllegalRegister, e)
		return false
	}
	return true
}

func (a *LAPIC) writeLVT(i int, v uint32, now int64) {
	var mask uint32
	switch i {
	case lvtTimer:
		mask = lvtTimerWritable
		if a.cfg.TSCHz == 0 {
			mask &^= TimerTSCDeadline << LVTTimerModeShift
		}
	case lvtLINT0, lvtLINT1:
		mask = lvtPinWritable
	case lvtError:
		mask = lvtErrorWritable
	default:
		mask = lvtOtherWritable
	}
	old := a.lvt[i]
	nv := old&^mask | v&mask
	if !a.swEnabled() {
		nv |= LVTMasked // cannot unmask while software-disabled
	}
	a.lvt[i] = nv
	if i == lvtTimer && timerMode(old) != timerMode(nv) {
		// Changing between TSC-deadline and the count modes disarms the
		// timer. Intel SDM Vol. 3A, 11.5.4.1 "TSC-Deadline Mode".
		if timerMode(old) == TimerTSCDeadline || timerMode(nv) == TimerTSCDeadline {
			a.timer.armed = false
			a.timer.tscDL = 0
			a.initial = 0
		}
	}
}

func timerMode(lvt uint32) uint32 { return lvt & LVTTimerModeMask >> LVTTimerModeShift }

// ErrGP means the access must raise #GP in the guest.
var ErrGP = errors.New("lapic: #GP")

// AcceptsExtINT reports whether the 8259's INTR output reaches this
// processor: with the APIC globally disabled the INTR pin goes straight to
// the core, and with it enabled only through LINT0 programmed for ExtINT
// and unmasked (virtual wire mode). Intel SDM Vol. 3A, 11.4.3 and 11.5.1;
// MultiProcessor Specification 1.4, 3.6.2.2 "Virtual Wire Mode".
func (a *LAPIC) AcceptsExtINT() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.hwEnabled() {
		return true
	}
	l := a.lvt[lvtLINT0]
	return a.swEnabled() && l&LVTMasked == 0 && DeliveryMode(l&LVTDeliveryMode>>lvtDeliveryShift) == ExtINT
}

// SetVirtualWire puts the APIC in the state PC firmware leaves it in at
// boot: software-enabled with spurious vector 0xFF, LINT0 as ExtINT (the
// 8259 reaches the processor) and LINT1 as NMI. MultiProcessor
// Specification 1.4, 3.6.2.2 "Virtual Wire Mode".
func (a *LAPIC) SetVirtualWire() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.svr = SVREnable | 0xFF
	a.lvt[lvtLINT0] = uint32(ExtINT) << lvtDeliveryShift
	a.lvt[lvtLINT1] = uint32(NMI) << lvtDeliveryShift
}
