package lapic

// Guest-physical base of the xAPIC register page after reset, and its size.
// Intel SDM Vol. 3A, 11.4.1 "The Local APIC Block Diagram" (Table 11-1
// "Local APIC Register Address Map").
const (
	DefaultBase = 0xFEE00000
	PageSize    = 0x1000
)

// Register offsets in the xAPIC page. Intel SDM Vol. 3A, Table 11-1 "Local
// APIC Register Address Map". Registers are 32 bits wide and 16-byte
// aligned; the x2APIC MSR of the register at offset o is X2APICMSRBase+o>>4
// (Table 11-6 "Local APIC Register Address Map Supported by x2APIC").
const (
	RegID         = 0x020 // Local APIC ID
	RegVersion    = 0x030 // Local APIC Version (read-only)
	RegTPR        = 0x080 // Task Priority Register
	RegAPR        = 0x090 // Arbitration Priority Register (read-only; not in x2APIC)
	RegPPR        = 0x0A0 // Processor Priority Register (read-only)
	RegEOI        = 0x0B0 // EOI Register (write-only)
	RegRRD        = 0x0C0 // Remote Read Register (read-only; not supported, reads 0)
	RegLDR        = 0x0D0 // Logical Destination Register
	RegDFR        = 0x0E0 // Destination Format Register (not in x2APIC)
	RegSVR        = 0x0F0 // Spurious Interrupt Vector Register
	RegISR        = 0x100 // In-Service Register, 8 registers 0x100..0x170
	RegTMR        = 0x180 // Trigger Mode Register, 8 registers 0x180..0x1F0
	RegIRR        = 0x200 // Interrupt Request Register, 8 registers 0x200..0x270
	RegESR        = 0x280 // Error Status Register
	RegLVTCMCI    = 0x2F0 // LVT Corrected Machine Check Interrupt (not implemented: reads 0)
	RegICRLow     = 0x300 // Interrupt Command Register bits 0-31
	RegICRHigh    = 0x310 // Interrupt Command Register bits 32-63 (not in x2APIC)
	RegLVTTimer   = 0x320 // LVT Timer Register
	RegLVTThermal = 0x330 // LVT Thermal Sensor Register
	RegLVTPerf    = 0x340 // LVT Performance Monitoring Counters Register
	RegLVTLINT0   = 0x350 // LVT LINT0 Register
	RegLVTLINT1   = 0x360 // LVT LINT1 Register
	RegLVTError   = 0x370 // LVT Error Register
	RegTimerICR   = 0x380 // Initial Count Register (for Timer)
	RegTimerCCR   = 0x390 // Current Count Register (for Timer, read-only)
	RegTimerDCR   = 0x3E0 // Divide Configuration Register (for Timer)
	RegSelfIPI    = 0x3F0 // SELF IPI (x2APIC only, write-only)
)

// MSRs. Intel SDM Vol. 4, Table 2-2 "IA-32 Architectural MSRs"; Vol. 3A,
// 11.12.1.2 "x2APIC Register Address Space".
const (
	MSRAPICBase    = 0x1B  // IA32_APIC_BASE
	MSRTSCDeadline = 0x6E0 // IA32_TSC_DEADLINE
	X2APICMSRBase  = 0x800 // first x2APIC register MSR
	X2APICMSRLast  = 0x8FF // last MSR of the x2APIC range
	MSRX2APICICR   = 0x830 // 64-bit ICR in x2APIC mode
)

// IA32_APIC_BASE bits. Intel SDM Vol. 3A, 11.4.4 "Local APIC Status and
// Location" (Figure 11-5) and 11.12.1 "Detecting and Enabling x2APIC Mode".
const (
	APICBaseBSP     = 1 << 8  // processor is the bootstrap processor (read-only)
	APICBaseEXTD    = 1 << 10 // x2APIC mode enable
	APICBaseEnable  = 1 << 11 // APIC global enable
	APICBaseAddr    = 0x000FFFFFFFFFF000
	apicBaseMutable = APICBaseEXTD | APICBaseEnable | APICBaseAddr
)

// Version register. Intel SDM Vol. 3A, 11.4.8 "Local APIC Version Register"
// (Figure 11-7): bits 7:0 version (0x1X for an integrated APIC), bits 23:16
// the number of LVT entries minus 1, bit 24 EOI-broadcast suppression
// support (not advertised: the I/O APIC model has no EOI register).
const (
	Version         = 0x14
	MaxLVT          = 5 // timer, thermal, perf, LINT0, LINT1, error
	VersionMaxShift = 16
)

// Spurious Interrupt Vector Register bits. Intel SDM Vol. 3A, 11.9
// "Spurious Interrupt" (Figure 11-23).
const (
	SVRVector    = 0xFF
	SVREnable    = 1 << 8 // APIC software enable/disable
	SVRFocus     = 1 << 9 // focus processor checking (stored, not used)
	svrWriteMask = SVRVector | SVREnable | SVRFocus
	svrReset     = 0xFF
)

// Destination Format Register. Intel SDM Vol. 3A, 11.6.2.2 "Logical
// Destination Mode" (Figure 11-14): bits 31:28 model, 27:0 read as ones.
const (
	DFRModelFlat    = 0xF
	DFRModelCluster = 0x0
	dfrReserved     = 0x0FFFFFFF
	dfrModelShift   = 28
)

// Error Status Register bits. Intel SDM Vol. 3A, 11.5.3 "Error Handling"
// (Figure 11-9).
const (
	ESRSendIllegalVector    = 1 << 5
	ESRReceiveIllegalVector = 1 << 6
	ESRIllegalRegister      = 1 << 7
	esrMask                 = ESRSendIllegalVector | ESRReceiveIllegalVector | ESRIllegalRegister
)

// LVT bits. Intel SDM Vol. 3A, 11.5.1 "Local Vector Table" (Figure 11-8).
const (
	LVTVector         = 0xFF
	LVTDeliveryMode   = 7 << 8
	LVTDeliveryStatus = 1 << 12 // read-only; delivery is instantaneous here, always 0
	LVTPolarityLow    = 1 << 13 // LINT0/1: interrupt input pin polarity, 1 = active low
	LVTRemoteIRR      = 1 << 14 // LINT0/1: read-only, level interrupt accepted and not yet EOIed
	LVTLevel          = 1 << 15 // LINT0/1: trigger mode, 1 = level
	LVTMasked         = 1 << 16
	LVTTimerModeMask  = 3 << 17 // timer mode
	LVTTimerModeShift = 17

	lvtDeliveryShift = 8
	lvtReset         = LVTMasked

	lvtTimerWritable = LVTVector | LVTMasked | LVTTimerModeMask
	lvtPinWritable   = LVTVector | LVTDeliveryMode | LVTPolarityLow | LVTLevel | LVTMasked
	lvtOtherWritable = LVTVector | LVTDeliveryMode | LVTMasked // thermal, perf
	lvtErrorWritable = LVTVector | LVTMasked
)

// Timer modes in LVT timer bits 18:17. Intel SDM Vol. 3A, 11.5.4 "APIC
// Timer" (Figure 11-8).
const (
	TimerOneShot     = 0
	TimerPeriodic    = 1
	TimerTSCDeadline = 2
)

// Divide Configuration Register: bits 0, 1 and 3. Intel SDM Vol. 3A, 11.5.4
// (Figure 11-10 "Divide Configuration Register"): value (bit3<<2 | bits1:0)
// v divides by 2^((v+1) mod 8).
const dcrMask = 0xB

// Interrupt Command Register bits. Intel SDM Vol. 3A, 11.6.1 "Interrupt
// Command Register (ICR)" (Figure 11-12).
const (
	ICRVector         = 0xFF
	ICRDeliveryMode   = 7 << 8
	ICRLogical        = 1 << 11 // destination mode: 1 = logical
	ICRDeliveryStatus = 1 << 12 // read-only; always 0 (idle): delivery is instantaneous
	ICRLevelAssert    = 1 << 14 // level: 1 = assert, 0 = de-assert
	ICRLevelTrigger   = 1 << 15 // trigger mode: 1 = level
	ICRShorthandMask  = 3 << 18
	ICRShorthandShift = 18
	icrDeliveryShift  = 8
	icrLowWritable    = ICRVector | ICRDeliveryMode | ICRLogical | ICRLevelAssert | ICRLevelTrigger | ICRShorthandMask
	icrHighDestShift  = 24 // xAPIC: destination in ICR high bits 31:24
)

// Destination shorthands in ICR bits 19:18.
const (
	NoShorthand  = 0
	Self         = 1
	AllIncluding = 2
	AllButSelf   = 3
)

// DeliveryMode is an interrupt message's delivery mode (ICR and LVT bits
// 10:8, I/O APIC redirection entry bits 10:8). Intel SDM Vol. 3A, 11.6.1.
type DeliveryMode uint8

// Delivery modes.
const (
	Fixed          DeliveryMode = 0
	LowestPriority DeliveryMode = 1
	SMI            DeliveryMode = 2
	NMI            DeliveryMode = 4
	INIT           DeliveryMode = 5
	StartUp        DeliveryMode = 6
	ExtINT         DeliveryMode = 7
)

func (m DeliveryMode) String() string {
	switch m {
	case Fixed:
		return "fixed"
	case LowestPriority:
		return "lowest-priority"
	case SMI:
		return "SMI"
	case NMI:
		return "NMI"
	case INIT:
		return "INIT"
	case StartUp:
		return "SIPI"
	case ExtINT:
		return "ExtINT"
	}
	return "reserved"
}

// Broadcast destinations. Intel SDM Vol. 3A, 11.6.2.1 "Physical Destination
// Mode" and 11.12.9 "ICR Operation in x2APIC Mode".
const (
	XAPICBroadcast  = 0xFF
	X2APICBroadcast = 0xFFFFFFFF
)

// NumVectors is the number of interrupt vectors; vectors 0-15 are illegal
// for fixed interrupts (Intel SDM Vol. 3A, 11.5.2 "Valid Interrupt Vectors").
const (
	NumVectors     = 256
	minLegalVector = 16
)
