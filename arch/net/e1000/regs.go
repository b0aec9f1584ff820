package e1000

// Register offsets in BAR0 (memory-mapped), all 32 bits wide. Intel "PCI/PCI-X Family of
// Gigabit Ethernet Controllers Software Developer's Manual" (317453, cited as "8254x SDM"),
// Table 13-2 "Ethernet Controller Register Summary".
const (
	regCTRL   = 0x0000 // Device Control
	regSTATUS = 0x0008 // Device Status
	regEERD   = 0x0014 // EEPROM Read (82540/82545/82546 layout)
	regFCAL   = 0x0028 // Flow Control Address Low
	regFCAH   = 0x002C // Flow Control Address High
	regFCT    = 0x0030 // Flow Control Type
	regICR    = 0x00C0 // Interrupt Cause Read (clears on read)
	regITR    = 0x00C4 // Interrupt Throttling
	regIMS    = 0x00D0 // Interrupt Mask Set/Read
	regIMC    = 0x00D8 // Interrupt Mask Clear
	regRCTL   = 0x0100 // Receive Control
	regFCTTV  = 0x0170 // Flow Control Transmit Timer Value
	regTCTL   = 0x0400 // Transmit Control
	regTIPG   = 0x0410 // Transmit Inter Packet Gap
	regRDBAL  = 0x2800 // Receive Descriptor Base Address Low
	regRDBAH  = 0x2804 // Receive Descriptor Base Address High
	regRDLEN  = 0x2808 // Receive Descriptor Length
	regRDH    = 0x2810 // Receive Descriptor Head
	regRDT    = 0x2818 // Receive Descriptor Tail
	regRDTR   = 0x2820 // Receive Delay Timer
	regRADV   = 0x282C // Receive Interrupt Absolute Delay Timer
	regTDBAL  = 0x3800 // Transmit Descriptor Base Address Low
	regTDBAH  = 0x3804 // Transmit Descriptor Base Address High
	regTDLEN  = 0x3808 // Transmit Descriptor Length
	regTDH    = 0x3810 // Transmit Descriptor Head
	regTDT    = 0x3818 // Transmit Descriptor Tail
	regTIDV   = 0x3820 // Transmit Interrupt Delay Value
	regMPC    = 0x4010 // Missed Packets Count (clears on read)
	regMTA    = 0x5200 // Multicast Table Array, mtaEntries registers
	regRAL0   = 0x5400 // Receive Address Low (entry 0)
	regRAH0   = 0x5404 // Receive Address High (entry 0)

	mtaEntries = 128 // 8254x SDM 13, "Multicast Table Array (MTA)": 128 x 32 bits
	// RegsSize is the size of the register window in BAR0: 128 KB. 8254x SDM 4, "PCI Local
	// Bus Interface", the Memory Base Address register of the PCI configuration.
	RegsSize = 128 << 10
)

// CTRL bits. 8254x SDM 13.4.1 "Device Control Register".
const (
	ctrlFD      = 1 << 0  // full duplex
	ctrlLRST    = 1 << 3  // link reset
	ctrlASDE    = 1 << 5  // auto-speed detection enable
	ctrlSLU     = 1 << 6  // set link up
	ctrlILOS    = 1 << 7  // invert loss-of-signal
	ctrlFRCSPD  = 1 << 11 // force speed
	ctrlFRCDPLX = 1 << 12 // force duplex
	ctrlRST     = 1 << 26 // device reset (self-clearing)
	ctrlVME     = 1 << 30 // VLAN mode enable
	ctrlPHYRST  = 1 << 31 // PHY reset
)

// STATUS bits. 8254x SDM 13.4.2 "Device Status Register".
const (
	statusFD        = 1 << 0 // full duplex
	statusLU        = 1 << 1 // link up
	statusSpeedMask = 3 << 6
	statusSpeed10   = 0 << 6
	statusSpeed100  = 1 << 6
	statusSpeed1000 = 2 << 6
)

// EERD fields (82540/82545/82546). 8254x SDM 13.4.4 "EEPROM Read Register": START bit 0,
// DONE bit 4, ADDR bits 15:8, DATA bits 31:16. The Ethernet address is EEPROM words 0-2,
// low byte first (8254x SDM 5, "EEPROM Address Map": "Ethernet Address").
const (
	eerdStart     = 1 << 0
	eerdDone      = 1 << 4
	eerdAddrShift = 8
	eerdDataShift = 16
	eepromMACWord = 0
)

// Interrupt causes (ICR, IMS, IMC share the layout). 8254x SDM 13, "Interrupt Cause
// Read Register (ICR)".
const (
	icrTXDW   = 1 << 0 // transmit descriptor written back
	icrTXQE   = 1 << 1 // transmit queue empty
	icrLSC    = 1 << 2 // link status change
	icrRXSEQ  = 1 << 3 // receive sequence error
	icrRXDMT0 = 1 << 4 // receive descriptor minimum threshold reached
	icrRXO    = 1 << 6 // receiver overrun
	icrRXT0   = 1 << 7 // receiver timer interrupt (a frame arrived)
	imcAll    = 0xFFFFFFFF
)

// RCTL bits. 8254x SDM 13, "Receive Control Register (RCTL)".
const (
	rctlEN         = 1 << 1  // receiver enable
	rctlSBP        = 1 << 2  // store bad packets
	rctlUPE        = 1 << 3  // unicast promiscuous
	rctlMPE        = 1 << 4  // multicast promiscuous
	rctlLPE        = 1 << 5  // long packet enable
	rctlLBMNone    = 0 << 6  // no loopback
	rctlRDMTSHalf  = 0 << 8  // RXDMT0 when half the ring is free
	rctlMO0        = 0 << 12 // multicast offset: bits 47:36
	rctlBAM        = 1 << 15 // accept broadcast
	rctlBSIZE2048  = 0 << 16 // buffer size 2048 (with BSEX clear)
	rctlSECRC      = 1 << 26 // strip the Ethernet CRC
	rxBufSize      = 2048
	rctlBufSizeSet = rctlBSIZE2048
)

// TCTL bits. 8254x SDM 13, "Transmit Control Register (TCTL)"; the collision threshold 0Fh and
// the full-duplex collision distance 40h are the values 8254x SDM 14.5 "Transmit
// Initialization" recommends.
const (
	tctlEN        = 1 << 1 // transmitter enable
	tctlPSP       = 1 << 3 // pad short packets
	tctlCTShift   = 4
	tctlCOLDShift = 12
	tctlCT        = 0x0F
	tctlCOLDFull  = 0x40
)

// TIPG for the 82540/82545/82546 copper parts: IPGT 10, IPGR1 8, IPGR2 6. 8254x SDM 13,
// "Transmit IPG Register (TIPG)", Table "TIPG Register Bit Description" (IEEE 802.3 values).
const (
	tipgIPGT       = 10
	tipgIPGR1      = 8
	tipgIPGR2      = 6
	tipgIPGR1Shift = 10
	tipgIPGR2Shift = 20
)

// RAH fields. 8254x SDM 13, "Receive Address High (RAH)": address bytes 4-5 in bits 15:0,
// Address Valid in bit 31.
const rahAV = 1 << 31

// Legacy receive descriptor: buffer address (8 bytes), length (2), packet checksum (2),
// status (1), errors (1), special (2). 8254x SDM 3.2.3 "Receive Descriptor Format",
// 3.2.3.1 "Receive Descriptor Status Field", 3.2.3.2 "Receive Descriptor Errors Field".
const (
	descSize      = 16
	rxdAddr       = 0
	rxdLength     = 8
	rxdStatusW    = 12 // the 32-bit word holding status (byte 12) and errors (byte 13)
	rxStatusDD    = 1 << 0
	rxStatusEOP   = 1 << 1
	rxErrCE       = 1 << 0 // CRC or alignment error
	rxErrSE       = 1 << 1 // symbol error
	rxErrSEQ      = 1 << 2 // sequence error
	rxErrCXE      = 1 << 4 // carrier extension error
	rxErrRXE      = 1 << 7 // RX data error
	rxErrFrame    = rxErrCE | rxErrSE | rxErrSEQ | rxErrCXE | rxErrRXE
	ringAlign     = 128 // 8254x SDM 13, "Receive Descriptor Length (RDLEN)": a multiple of 128 bytes (8 descriptors)
	ringBaseAlign = 16  // 8254x SDM 13, "Receive Descriptor Base Address Low (RDBAL)": bits 3:0 are ignored (16-byte aligned)
	descPerAlign  = ringAlign / descSize
)

// Legacy transmit descriptor: buffer address (8), length (2), CSO (1), CMD (1), STA (1),
// CSS (1), special (2). 8254x SDM 3.3.3 "Legacy Transmit Descriptor Format", 3.3.3.1
// "Transmit Descriptor Command Field", 3.3.3.2 "Transmit Descriptor Status Field".
const (
	txdAddr    = 0
	txdLength  = 8
	txdCmdWord = 8 // the 32-bit word of length, CSO and CMD (byte 11)
	txdStatusW = 12
	txCmdEOP   = 1 << 0 // end of packet
	txCmdIFCS  = 1 << 1 // insert FCS
	txCmdRS    = 1 << 3 // report status (write DD back)
	txStaDD    = 1 << 0
	txCmdShift = 24 // CMD is byte 11: bits 31:24 of the word at offset 8
)

// PCI identification. 8254x SDM 5, "Device ID" of the PCI configuration (per controller).
const (
	VendorIntel     = 0x8086
	Device82540EM   = 0x100E // QEMU's -device e1000
	Device82545EMCu = 0x100F // QEMU's -device e1000-82545em
	Device82544GCCu = 0x100C // QEMU's -device e1000-82544gc (no EERD; MAC from RAL/RAH)
)

// allOnes is what a read from a device that fell off the bus returns (a PCI master abort).
const allOnes = 0xFFFFFFFF
