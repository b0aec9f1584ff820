package rtc

// Ports. IBM PC/AT Technical Reference, "System I/O Address Map": the
// CMOS RTC index at 0x70 (bit 7 masks NMI), data at 0x71.
const (
	Base      = 0x70
	NumPorts  = 2
	IndexPort = 0 // offsets from Base
	DataPort  = 1

	IndexNMIMask = 1 << 7 // NMI disable, on the PC's index port
	IndexMask    = 0x7f

	// IRQ is the ISA interrupt the RTC drives.
	IRQ = 8
)

// Register indexes. Motorola MC146818A datasheet, Figure 3 "Address Map"
// and Table 2 "Time, Calendar and Alarm Data Modes".
const (
	RegSeconds      = 0x00
	RegSecondsAlarm = 0x01
	RegMinutes      = 0x02
	RegMinutesAlarm = 0x03
	RegHours        = 0x04
	RegHoursAlarm   = 0x05
	RegDayOfWeek    = 0x06 // 1-7, Sunday = 1
	RegDayOfMonth   = 0x07
	RegMonth        = 0x08
	RegYear         = 0x09 // 0-99
	RegA            = 0x0a
	RegB            = 0x0b
	RegC            = 0x0c
	RegD            = 0x0d
	RAMStart        = 0x0e // 114 bytes of user RAM, 0x0e-0x7f
	NumRegs         = 0x80

	// RegCentury is the PC's century byte (in user RAM), named by the
	// ACPI FADT CENTURY field; IBM PC/AT Technical Reference, "CMOS RAM
	// Address Map", byte 0x32.
	RegCentury = 0x32
)

// AlarmDontCare: an alarm byte with both top bits set matches any value
// (MC146818A datasheet, "Alarm").
const AlarmDontCare = 0xc0

// PMBit marks PM in the hours registers in 12-hour mode (MC146818A
// datasheet, Table 2).
const PMBit = 0x80

// Register A. MC146818A datasheet, "Register A".
const (
	AUIP      = 1 << 7 // update in progress (read only)
	ADVMask   = 7 << 4 // DV2-DV0: time base / divider control
	ADV32kHz  = 2 << 4 // 010: 32.768 kHz time base, normal operation
	ADVReset  = 6 << 4 // 11x: divider chain held in reset
	ARSMask   = 0x0f   // RS3-RS0: periodic interrupt rate
	aWritable = 0x7f
)

// Register B. MC146818A datasheet, "Register B".
const (
	BSET  = 1 << 7 // halt updates so the time can be set
	BPIE  = 1 << 6 // periodic interrupt enable
	BAIE  = 1 << 5 // alarm interrupt enable
	BUIE  = 1 << 4 // update-ended interrupt enable
	BSQWE = 1 << 3 // square-wave enable (no pin here)
	BDM   = 1 << 2 // data mode: 1 binary, 0 BCD
	B24h  = 1 << 1 // 1: 24-hour, 0: 12-hour
	BDSE  = 1 << 0 // daylight savings enable (stored, not applied)
)

// Register C, cleared by reading. MC146818A datasheet, "Register C".
const (
	CIRQF = 1 << 7 // PF&PIE | AF&AIE | UF&UIE: the IRQ output is asserted
	CPF   = 1 << 6 // periodic interrupt flag
	CAF   = 1 << 5 // alarm interrupt flag
	CUF   = 1 << 4 // update-ended interrupt flag
)

// Register D. MC146818A datasheet, "Register D".
const DVRT = 1 << 7 // valid RAM and time (battery good); read only

// Timing with the 32.768 kHz time base. MC146818A datasheet, "Update
// Cycle": UIP rises tBUC = 244 µs before the update cycle, which lasts
// tUC = 1984 µs. The model completes the update at the second boundary,
// so UIP is high for the tBUC+tUC before it.
const (
	TimeBase        = 32768 // Hz
	BeforeUpdateNs  = 244_000
	UpdateCycleNs   = 1_984_000
	uipWindowNs     = BeforeUpdateNs + UpdateCycleNs
	resetReleasedNs = 500_000_000 // first update 0.5 s after divider reset ends
)

// Power-on values as a PC BIOS leaves them: 32.768 kHz time base, 1024 Hz
// periodic rate, BCD, 24-hour mode, valid RAM.
const (
	DefaultA = ADV32kHz | 0x06
	DefaultB = B24h
)
