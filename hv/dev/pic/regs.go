package pic

// Port addresses on the PC. Each 8259A decodes one address line (A0), so
// each chip takes two ports; offset 0 is A0=0 and offset 1 is A0=1.
// IBM PC/AT Technical Reference, "System I/O Address Map"; the edge/level
// control registers are those of the Intel 82371 (PIIX) ISA bridge,
// "ELCR1/ELCR2—Edge/Level Control Registers" (0x4D0, 0x4D1).
const (
	MasterBase = 0x20
	SlaveBase  = 0xa0
	ELCRBase   = 0x4d0
	NumPorts   = 2 // ports per range (master, slave and ELCR)

	// CascadeIRQ is the master input the slave's INT output drives.
	CascadeIRQ = 2
	// NumIRQs is the number of interrupt inputs of the pair.
	NumIRQs = 16
)

// Writes to A0=0 are told apart by bits 4 and 3. Intel 8259A datasheet,
// "Programming the 8259A" (Figure 6 "Initialization Command Word Format"
// and Figure 8 "Operation Command Word Format").
const (
	ICW1Select = 1 << 4 // D4=1: ICW1 (starts the initialization sequence)
	OCW3Select = 1 << 3 // D4=0, D3=1: OCW3; D4=0, D3=0: OCW2
)

// ICW1 bits. 8259A datasheet, Figure 6.
const (
	ICW1IC4  = 1 << 0 // ICW4 will be written
	ICW1SNGL = 1 << 1 // single 8259A: no ICW3
	ICW1ADI  = 1 << 2 // call address interval (8080 mode only)
	ICW1LTIM = 1 << 3 // level-triggered mode
)

// ICW2: in 8086 mode T7-T3 give bits 7:3 of the vector and the IR level
// bits 2:0. 8259A datasheet, "ICW2".
const ICW2VectorMask = 0xf8

// ICW4 bits. 8259A datasheet, Figure 6.
const (
	ICW4uPM  = 1 << 0 // 8086/8088 mode (the only one a PC uses)
	ICW4AEOI = 1 << 1 // automatic end of interrupt
	ICW4MS   = 1 << 2 // master (1) / slave (0), buffered mode only
	ICW4BUF  = 1 << 3 // buffered mode
	ICW4SFNM = 1 << 4 // special fully nested mode
	icw4Mask = 0x1f
)

// OCW2 is R, SL, EOI in bits 7:5 and the level L2-L0 in bits 2:0.
// 8259A datasheet, Figure 8 "OCW2".
const (
	OCW2LevelMask = 0x07
	OCW2CmdMask   = 0xe0

	OCW2RotateAEOIClear = 0x00 // rotate in automatic EOI mode (clear)
	OCW2NonSpecificEOI  = 0x20
	OCW2NOP             = 0x40
	OCW2SpecificEOI     = 0x60
	OCW2RotateAEOISet   = 0x80 // rotate in automatic EOI mode (set)
	OCW2RotateNonSpec   = 0xa0 // rotate on non-specific EOI command
	OCW2SetPriority     = 0xc0 // L2-L0 becomes the lowest priority
	OCW2RotateSpecific  = 0xe0 // rotate on specific EOI command
)

// OCW3 bits. 8259A datasheet, Figure 8 "OCW3".
const (
	OCW3RIS  = 1 << 0 // with RR: read ISR (1) or IRR (0)
	OCW3RR   = 1 << 1 // read register command
	OCW3P    = 1 << 2 // poll command
	OCW3SMM  = 1 << 5 // special mask mode (with ESMM)
	OCW3ESMM = 1 << 6 // enable the SMM bit
)

// PollInterrupt is bit 7 of the poll word: an interrupt was pending; bits
// 2:0 give its level. 8259A datasheet, "The Poll Command".
const PollInterrupt = 0x80

// Bits of the ELCRs that must stay 0: IRQ 0, 1, 2 (timer, keyboard,
// cascade) and IRQ 8, 13 (RTC, FPU) are edge-triggered on a PC.
// 82371 datasheet, ELCR1 and ELCR2 bit descriptions.
const (
	ELCR1Reserved = 0x07
	ELCR2Reserved = 0x21
)
