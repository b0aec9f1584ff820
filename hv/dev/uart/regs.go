package uart

// Register offsets from the base port (COM1 is 0x3F8, IRQ 4).
// PC16550D datasheet (National Semiconductor, "PC16550D Universal
// Asynchronous Receiver/Transmitter with FIFOs"), Table II "Summary of
// Registers". DLAB is LCR bit 7.
const (
	RBR = 0 // Receiver Buffer Register (read, DLAB=0)
	THR = 0 // Transmitter Holding Register (write, DLAB=0)
	DLL = 0 // Divisor Latch LS (DLAB=1)
	IER = 1 // Interrupt Enable Register (DLAB=0)
	DLM = 1 // Divisor Latch MS (DLAB=1)
	IIR = 2 // Interrupt Identification Register (read)
	FCR = 2 // FIFO Control Register (write)
	LCR = 3 // Line Control Register
	MCR = 4 // Modem Control Register
	LSR = 5 // Line Status Register
	MSR = 6 // Modem Status Register
	SCR = 7 // Scratch Register

	// NumRegs is the size of the device's port range.
	NumRegs = 8
)

// COM1 is the standard PC address and IRQ of the first serial port.
const (
	COM1Port = 0x3f8
	COM1IRQ  = 4
)

// IER bits. Datasheet 8.7 "Interrupt Enable Register".
const (
	IERRxData     = 1 << 0 // ERBFI: received data available (and timeout)
	IERTHRE       = 1 << 1 // ETBEI: transmitter holding register empty
	IERLineStatus = 1 << 2 // ELSI: receiver line status
	IERModem      = 1 << 3 // EDSSI: modem status
	ierMask       = 0x0f   // bits 7:4 are always 0
)

// IIR values. Datasheet 8.6 "Interrupt Identification Register" and
// Table IV "Interrupt Control Functions" (priority highest first: line
// status, received data / character timeout, THR empty, modem status).
const (
	IIRNoInt      = 0x01 // bit 0 = 1: no interrupt pending
	IIRLineStatus = 0x06 // overrun, parity, framing error or break
	IIRRxData     = 0x04 // received data available (trigger level reached)
	IIRTimeout    = 0x0c // character timeout (FIFO mode)
	IIRTHRE       = 0x02 // transmitter holding register empty
	IIRModem      = 0x00 // CTS, DSR, RI or DCD changed
	IIRFIFOs      = 0xc0 // bits 7:6 set when FCR bit 0 enables the FIFOs
)

// FCR bits. Datasheet 8.5 "FIFO Control Register".
const (
	FCREnable    = 1 << 0 // enable both FIFOs; changing it clears them
	FCRRxReset   = 1 << 1 // clear the receiver FIFO (self-clearing)
	FCRTxReset   = 1 << 2 // clear the transmitter FIFO (self-clearing)
	FCRDMAMode   = 1 << 3 // RXRDY/TXRDY pin mode, no effect here
	FCRTrigMask  = 3 << 6 // receiver FIFO trigger level
	FCRTrigShift = 6
)

// FIFOSize is the depth of each FIFO.
const FIFOSize = 16

// rxTrigger is the trigger level for FCR bits 7:6 (datasheet 8.5).
var rxTrigger = [4]int{1, 4, 8, 14}

// LCR bits. Datasheet 8.1 "Line Control Register".
const (
	LCRWordLenMask = 3 << 0 // 5..8 data bits
	LCRStopBits    = 1 << 2
	LCRParity      = 1 << 3
	LCREvenParity  = 1 << 4
	LCRStickParity = 1 << 5
	LCRBreak       = 1 << 6
	LCRDLAB        = 1 << 7 // divisor latch access bit
)

// MCR bits. Datasheet 8.8 "Modem Control Register".
const (
	MCRDTR  = 1 << 0
	MCRRTS  = 1 << 1
	MCROUT1 = 1 << 2
	MCROUT2 = 1 << 3 // on PCs, gates the interrupt line to the PIC
	MCRLoop = 1 << 4 // local loopback
	mcrMask = 0x1f   // bits 7:5 are always 0
)

// LSR bits. Datasheet 8.4 "Line Status Register".
const (
	LSRDataReady  = 1 << 0 // DR
	LSROverrun    = 1 << 1 // OE
	LSRParityErr  = 1 << 2 // PE
	LSRFramingErr = 1 << 3 // FE
	LSRBreak      = 1 << 4 // BI
	LSRTHRE       = 1 << 5 // transmitter holding register (or FIFO) empty
	LSRTEMT       = 1 << 6 // transmitter empty
	LSRFIFOErr    = 1 << 7 // error in receiver FIFO
	lsrErrors     = LSROverrun | LSRParityErr | LSRFramingErr | LSRBreak
)

// MSR bits. Datasheet 8.9 "Modem Status Register". In loopback CTS, DSR,
// RI and DCD follow RTS, DTR, OUT1 and OUT2.
const (
	MSRDeltaCTS = 1 << 0
	MSRDeltaDSR = 1 << 1
	MSRTERI     = 1 << 2 // trailing edge of ring indicator
	MSRDeltaDCD = 1 << 3
	MSRCTS      = 1 << 4
	MSRDSR      = 1 << 5
	MSRRI       = 1 << 6
	MSRDCD      = 1 << 7
	msrDeltas   = 0x0f
	msrLines    = 0xf0
)
