package i8042

// Ports. IBM PC/AT Technical Reference, "Keyboard Controller": data at
// 0x60, status (read) and command (write) at 0x64. They are not
// contiguous (0x61 is the NMI status/control port), so each is registered
// on its own.
const (
	DataPort    = 0x60
	CommandPort = 0x64

	// IRQ is the ISA interrupt of the keyboard's output buffer.
	IRQ = 1
)

// Status register bits. IBM PC/AT Technical Reference, "Keyboard
// Controller Status Register"; the timeout bit as on PS/2 controllers
// (IBM PS/2 Hardware Interface Technical Reference, "Keyboard/Auxiliary
// Device Controller", status bit 6 "General Time-Out").
const (
	StatusOBF     = 1 << 0 // output buffer full: data waits at 0x60
	StatusIBF     = 1 << 1 // input buffer full (never: commands complete at once)
	StatusSYS     = 1 << 2 // system flag, from command byte bit 2
	StatusA2      = 1 << 3 // last write was to the command port
	StatusINH     = 1 << 4 // 1: keyboard not inhibited
	StatusAUXB    = 1 << 5 // output buffer holds auxiliary-device data
	StatusTimeout = 1 << 6 // the device did not answer
	StatusParity  = 1 << 7
)

// Controller command byte. IBM PC/AT Technical Reference, "Command Byte".
const (
	CmdByteKbdInt    = 1 << 0 // IRQ 1 when the output buffer fills
	CmdByteAuxInt    = 1 << 1 // IRQ 12 (PS/2); stored
	CmdByteSYS       = 1 << 2 // system flag
	CmdByteOverride  = 1 << 3 // inhibit override
	CmdByteKbdOff    = 1 << 4 // keyboard interface disabled
	CmdByteAuxOff    = 1 << 5 // auxiliary interface disabled (PS/2)
	CmdByteTranslate = 1 << 6 // scan code translation
	cmdByteMask      = 0x7f

	// DefaultCommandByte is what a BIOS leaves: keyboard interrupt,
	// system flag, translation.
	DefaultCommandByte = CmdByteKbdInt | CmdByteSYS | CmdByteTranslate
)

// Controller commands (writes to 0x64). IBM PC/AT Technical Reference,
// "Commands (I/O Address Hex 64)"; 0xA7/0xA8 from the PS/2 reference.
const (
	CmdReadCommandByte  = 0x20
	CmdWriteCommandByte = 0x60
	CmdDisableAux       = 0xa7
	CmdEnableAux        = 0xa8
	CmdAuxInterfaceTest = 0xa9 // answers AuxTestClockHigh: nothing attached
	CmdSelfTest         = 0xaa // answers SelfTestOK
	CmdInterfaceTest    = 0xab // answers 0x00: no error
	CmdDisableKbd       = 0xad
	CmdEnableKbd        = 0xae
	CmdReadOutputPort   = 0xd0
	CmdWriteOutputPort  = 0xd1
	CmdPulseOutputPort  = 0xf0 // 0xf0-0xff: pulse the output port bits clear in 3:0 low for 6 µs

	SelfTestOK = 0x55

	// AuxTestClockHigh is the auxiliary interface test's "clock line
	// stuck high" code (IBM PS/2 reference, command A9), what a
	// controller reports with no auxiliary device wired to it. Guests
	// take it as "no mouse port" at once instead of timing out.
	AuxTestClockHigh = 0x02
)

// Output port bits. IBM PC/AT Technical Reference, "Output Port
// Definitions".
const (
	OutPortReset = 1 << 0 // 0 resets the processor
	OutPortA20   = 1 << 1 // A20 gate
	OutPortOBF   = 1 << 4 // output buffer full (IRQ 1)

	// DefaultOutputPort: not in reset, A20 enabled.
	DefaultOutputPort = OutPortReset | OutPortA20
)

// NoDevice is what the controller puts in the output buffer, with
// StatusTimeout, when a byte sent to the keyboard gets no answer.
const NoDevice = 0xfe
