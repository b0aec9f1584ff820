package pit

// Ports. IBM PC/AT Technical Reference, "System I/O Address Map": the
// 8254 at 0x40-0x43; counter 0 drives IRQ 0, counter 1 was DRAM refresh,
// counter 2 feeds the speaker and is gated and read back through port
// 0x61 (Intel 82371AB PIIX4 datasheet, "NMISC—NMI Status and Control
// Register", I/O address 61h).
const (
	Base     = 0x40
	NumPorts = 4

	Counter0Port = 0 // offsets from Base
	Counter1Port = 1
	Counter2Port = 2
	ControlPort  = 3 // control word register (write only)

	NMISCPort = 0x61

	// IRQ is the ISA interrupt counter 0's output drives.
	IRQ = 0
)

// Frequency is the 8254's input clock on the PC in Hz: 14.31818 MHz / 12.
const Frequency = 1193182

// Control word fields. Intel 82C54 datasheet, Figure 7 "Control Word
// Format".
const (
	CWSCShift  = 6 // SC1-SC0: select counter; 3 is the read-back command
	CWSCMask   = 3 << CWSCShift
	CWRWShift  = 4 // RW1-RW0: access
	CWRWMask   = 3 << CWRWShift
	CWModShift = 1 // M2-M0: mode
	CWModeMask = 7 << CWModShift
	CWBCD      = 1 << 0 // BCD: 4-decade binary coded decimal counter

	SCReadBack = 3

	RWLatch = 0 // counter latch command
	RWLSB   = 1 // read/write least significant byte only
	RWMSB   = 2 // read/write most significant byte only
	RWBoth  = 3 // LSB first, then MSB
)

// Read-back command bits (SC = 11). 82C54 datasheet, Figure 10
// "Read-Back Command Format". COUNT and STATUS are active low.
const (
	RBCount  = 1 << 5 // 0: latch count of the selected counters
	RBStatus = 1 << 4 // 0: latch status of the selected counters
	RBCnt2   = 1 << 3
	RBCnt1   = 1 << 2
	RBCnt0   = 1 << 1
)

// Status byte. 82C54 datasheet, Figure 11 "Status Byte": bits 5:0 are
// the counter's programmed RW, mode and BCD fields.
const (
	StatusOutput    = 1 << 7 // state of the OUT pin
	StatusNullCount = 1 << 6 // the last count written has not reached the counting element
)

// Port 0x61 bits. PIIX4 datasheet, NMISC register (bits 3:0 read/write,
// 7:4 read-only).
const (
	NMISCGate2       = 1 << 0 // timer counter 2 enable (gate)
	NMISCSpeaker     = 1 << 1 // speaker data enable
	NMISCPCIERR      = 1 << 2 // PCI SERR# enable (active low)
	NMISCIOCHK       = 1 << 3 // IOCHK# NMI enable (active low)
	NMISCRefresh     = 1 << 4 // refresh cycle toggle
	NMISCOut2        = 1 << 5 // timer counter 2 OUT status
	NMISCIOCHKStatus = 1 << 6
	NMISCSERRStatus  = 1 << 7
	nmiscWritable    = 0x0f
)

// RefreshPeriodNs is how often NMISC bit 4 toggles: the ISA refresh
// request interval of about 15 µs (PIIX4 datasheet, NMISC bit 4).
const RefreshPeriodNs = 15085
