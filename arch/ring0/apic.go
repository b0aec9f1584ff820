package ring0

import (
	"math/bits"

	"github.com/godwit-hv/godwit/arch/x86"
)

// Interrupt vectors. Exceptions: Intel SDM Vol. 3A, 6.3.1 "External Interrupts" / Table 6-1.
const (
	vecDivide       = 0
	vecDebug        = 1
	vecNMI          = 2
	vecBreakpoint   = 3
	vecInvalidOp    = 6
	vecDoubleFault  = 8
	vecGP           = 13
	vecPageFault    = 14
	vecX87          = 16
	vecMachineCheck = 18
	vecSIMD         = 19
	vecTimer        = 0x20
	vecCOM1         = 0x24
	vecPICBase      = 0xF0 // the 8259s are remapped here and masked
	vecSpurious     = 0xFF
)

// Local APIC registers (offsets from its base). Intel SDM Vol. 3A, 11.4.1 "The Local APIC
// Block Diagram", Table 11-1 "Local APIC Register Address Map".
const (
	msrAPICBase   = 0x1B // IA32_APIC_BASE
	apicBaseEN    = 1 << 11
	lapicID       = 0x20
	lapicTPR      = 0x80
	lapicEOI      = 0xB0
	lapicSVR      = 0xF0
	lapicLVTTimer = 0x320
	lapicLVTLINT0 = 0x350
	lapicLVTLINT1 = 0x360
	lapicLVTError = 0x370
	lapicTimerICR = 0x380
	lapicTimerCCR = 0x390
	lapicTimerDCR = 0x3E0
	svrEnable     = 1 << 8
	lvtMasked     = 1 << 16
	dcrDiv16      = 0x3 // Intel SDM Vol. 3A, Figure 11-10 "Divide Configuration Register"
)

// I/O APIC. Intel 82093AA datasheet, 3.0 "Register Descriptions".
const (
	ioapicDefaultBase = 0xFEC00000
	ioapicRegSel      = 0x00
	ioapicWin         = 0x10
	ioapicRedTbl      = 0x10
)

// 8259A PICs and 8254 PIT ports. 8259A datasheet "Initialization Command Words";
// 82C54 datasheet "Control Word Format".
const (
	pic1Cmd, pic1Data = 0x20, 0x21
	pic2Cmd, pic2Data = 0xA0, 0xA1
	pitCh2            = 0x42
	pitCmd            = 0x43
	pitPortB          = 0x61
	pitHz             = 1193182
)

var (
	lapicBase uint64
	lapicHz   uint64 // timer ticks per second at divide-by-16
	tscHz     uint64
	tscMult   uint64 // ns per TSC tick, 32.32 fixed point
	tsc0      uint64
	timerIRQs uint64
)

func lapicRead(r uint64) uint32 { return *(*uint32)(physPtr(lapicBase + r)) }

func lapicWrite(r uint64, v uint32) { *(*uint32)(physPtr(lapicBase + r)) = v }

func lapicEOIWrite() { lapicWrite(lapicEOI, 0) }

// picDisable remaps both 8259s away from the exception vectors and masks every line.
func picDisable() {
	x86.Outb(pic1Cmd, 0x11) // ICW1: edge, cascade, ICW4 needed
	x86.Outb(pic2Cmd, 0x11)
	x86.Outb(pic1Data, vecPICBase)   // ICW2
	x86.Outb(pic2Data, vecPICBase+8) // ICW2
	x86.Outb(pic1Data, 4)            // ICW3: slave on IRQ2
	x86.Outb(pic2Data, 2)
	x86.Outb(pic1Data, 1) // ICW4: 8086 mode
	x86.Outb(pic2Data, 1)
	x86.Outb(pic1Data, 0xFF) // OCW1: mask all
	x86.Outb(pic2Data, 0xFF)
}

func lapicInit() {
	base := x86.Rdmsr(msrAPICBase)
	x86.Wrmsr(msrAPICBase, base|apicBaseEN)
	lapicBase = base & 0xFFFFF000
	lapicWrite(lapicTPR, 0)
	lapicWrite(lapicSVR, svrEnable|vecSpurious)
	lapicWrite(lapicLVTLINT0, lvtMasked)
	lapicWrite(lapicLVTLINT1, lvtMasked)
	lapicWrite(lapicLVTError, lvtMasked)
	lapicWrite(lapicLVTTimer, lvtMasked)
	lapicWrite(lapicTimerDCR, dcrDiv16)
}

// calibrate measures the TSC against PIT channel 2 (the median of calibrationRuns runs) and the
// LAPIC timer against the TSC.
func calibrate() {
	// Several short measurements and their median: the emulators the rigs use can be
	// descheduled by their host in the middle of one, which then reads several times too
	// high or too low; one bad sample among five does not move the median.
	var hz [calibrationRuns]uint64
	for i := range hz {
		hz[i] = pitMeasureTSC()
	}
	for i := 1; i < len(hz); i++ { // insertion sort: no allocation in the layer
		for j := i; j > 0 && hz[j] < hz[j-1]; j-- {
			hz[j], hz[j-1] = hz[j-1], hz[j]
		}
	}
	tscHz = hz[len(hz)/2]
	if tscHz < 1_000_000 {
		tscHz = 1_000_000_000 // no PIT: guess rather than divide by zero
	}
	hi, lo := bits.Mul64(1_000_000_000, 1<<32)
	tscMult, _ = bits.Div64(hi, lo, tscHz)
	tsc0 = rdtsc()

	lapicWrite(lapicLVTTimer, lvtMasked)
	lapicWrite(lapicTimerICR, 0xFFFFFFFF)
	start := rdtsc()
	for rdtsc()-start < tscHz/100 {
	}
	elapsed := 0xFFFFFFFF - uint64(lapicRead(lapicTimerCCR))
	lapicWrite(lapicTimerICR, 0)
	lapicHz = elapsed * 100
	if lapicHz == 0 {
		lapicHz = 1_000_000
	}
}

// calibrationRuns is how many PIT measurements calibrate the TSC, each calibrationHz^-1 long.
const (
	calibrationRuns = 5
	calibrationHz   = 50 // 20 ms
)

// pitMeasureTSC counts TSC ticks while PIT channel 2 counts down 1/calibrationHz of a second
// in mode 0 (its output rises at terminal count), and returns the TSC frequency. 82C54
// datasheet, "Mode 0: Interrupt on Terminal Count"; the gate and output are port 0x61 bits 0
// and 5 (IBM PC/AT Technical Reference, "System Control Port B").
func pitMeasureTSC() uint64 {
	const latch = pitHz / calibrationHz
	x86.Outb(pitPortB, (x86.Inb(pitPortB)&^0x02)|0x01) // gate on, speaker off
	x86.Outb(pitCmd, 0xB0)                             // channel 2, lobyte/hibyte, mode 0
	x86.Outb(pitCh2, byte(latch&0xFF))
	x86.Outb(pitCh2, byte(latch>>8))
	t0 := rdtsc()
	for i := 0; i < 100_000_000 && x86.Inb(pitPortB)&0x20 == 0; i++ {
	}
	return (rdtsc() - t0) * calibrationHz
}

// nanotime is the monotonic clock: nanoseconds since calibration.
func nanotime() int64 {
	hi, lo := bits.Mul64(rdtsc()-tsc0, tscMult)
	return int64(hi<<32 | lo>>32)
}

// armTimer programs a one-shot LAPIC interrupt ns nanoseconds from now (0: none).
func armTimer(ns int64) {
	if ns <= 0 {
		lapicWrite(lapicTimerICR, 0)
		return
	}
	ticks := uint64(ns) * (lapicHz / 1000) / 1_000_000
	if uint64(ns) > 1<<40 { // avoid overflow: cap at ~18 minutes
		ticks = 0xFFFFFFFF
	}
	ticks = max(ticks, 16)
	ticks = min(ticks, 0xFFFFFFFF)
	lapicWrite(lapicLVTTimer, vecTimer) // one-shot. Intel SDM Vol. 3A, 11.5.4 "APIC Timer"
	lapicWrite(lapicTimerICR, uint32(ticks))
}

func ioapicWrite(reg, v uint32) {
	*(*uint32)(physPtr(ioapicDefaultBase + ioapicRegSel)) = reg
	*(*uint32)(physPtr(ioapicDefaultBase + ioapicWin)) = v
}

// ioapicRoute sends ISA IRQ irq (identity-mapped to the GSI of the same number) to vector vec
// on this CPU: fixed delivery, physical destination, active high, level-triggered. The 16550's
// INTR output is a level (PC16550D datasheet, "INTR": high while an enabled interrupt is
// pending); as a level input the I/O APIC sends the interrupt again after the EOI if it is still
// high, so a byte that arrives just as the handler finishes cannot leave the console without
// interrupts, as a missed edge would. 82093AA datasheet, 3.2.4 "I/O Redirection Table
// Registers" (bit 15 trigger mode, bit 13 polarity).
func ioapicRoute(irq, vec uint32) {
	const redirLevel = 1 << 15
	dest := lapicRead(lapicID) >> 24
	ioapicWrite(ioapicRedTbl+2*irq+1, dest<<24)
	ioapicWrite(ioapicRedTbl+2*irq, vec|redirLevel)
}
