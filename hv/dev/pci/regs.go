package pci

// Configuration mechanism #1 ports. PCI Local Bus Specification 3.0,
// 3.2.2.3.2 "Software Generation of Configuration Transactions": a 32-bit
// CONFIG_ADDRESS register at 0xCF8 and a 32-bit CONFIG_DATA window at
// 0xCFC-0xCFF.
const (
	ConfigAddressPort = 0xcf8
	ConfigDataPort    = 0xcfc
	// PortRange is the size of the port range the host bridge decodes,
	// from ConfigAddressPort.
	PortRange = 8
)

// CONFIG_ADDRESS fields. PCI Local Bus Specification 3.0, 3.2.2.3.2,
// Figure 3-2 "Layout of CONFIG_ADDRESS Register".
const (
	addrEnable      = 1 << 31 // Enable bit: CONFIG_DATA accesses generate configuration cycles
	addrBusShift    = 16      // bits 23:16 bus number
	addrDevShift    = 11      // bits 15:11 device number
	addrFuncShift   = 8       // bits 10:8 function number
	addrRegMask     = 0xfc    // bits 7:2 register number (dword aligned); bits 1:0 read as 0
	addrWritable    = 0x80fffffc
	maxDevices      = 32
	ConfigSpaceSize = 256 // conventional PCI configuration space
)

// Type 0 configuration space header offsets. PCI Local Bus Specification
// 3.0, 6.1 "Configuration Space Organization", Figure 6-1 "Type 00h
// Configuration Space Header".
const (
	VendorID          = 0x00
	DeviceID          = 0x02
	Command           = 0x04
	Status            = 0x06
	RevisionID        = 0x08
	ClassProgIF       = 0x09 // Class Code: programming interface
	ClassSub          = 0x0a // Class Code: sub-class
	ClassBase         = 0x0b // Class Code: base class
	CacheLineSize     = 0x0c
	LatencyTimer      = 0x0d
	HeaderType        = 0x0e
	BIST              = 0x0f
	BAR0              = 0x10 // six 32-bit Base Address Registers, 0x10..0x27
	CardbusCISPointer = 0x28
	SubsystemVendorID = 0x2c
	SubsystemID       = 0x2e
	ExpansionROMBase  = 0x30
	CapabilitiesPtr   = 0x34
	InterruptLine     = 0x3c
	InterruptPin      = 0x3d
	MinGnt            = 0x3e
	MaxLat            = 0x3f

	// NumBARs is the number of BARs in a type 0 header.
	NumBARs = 6
	// firstCapOffset is where capabilities start: right after the
	// 64-byte predefined header (6.7 "Capabilities List").
	firstCapOffset = 0x40
)

// HeaderTypeNormal is header type 0 (6.2.1 "Device Identification").
const HeaderTypeNormal = 0x00

// Command register bits. PCI Local Bus Specification 3.0, 6.2.2 "Device
// Control", Figure 6-2 "Command Register Layout".
const (
	CommandIOSpace       = 1 << 0  // respond to I/O space accesses
	CommandMemorySpace   = 1 << 1  // respond to memory space accesses
	CommandBusMaster     = 1 << 2  // may act as a bus master (DMA)
	CommandSERR          = 1 << 8  // SERR# enable
	CommandINTxDisable   = 1 << 10 // Interrupt Disable
	commandWritable      = CommandIOSpace | CommandMemorySpace | CommandBusMaster | CommandSERR | CommandINTxDisable
	commandWritableNoIRQ = commandWritable &^ CommandINTxDisable
)

// Status register bits. PCI Local Bus Specification 3.0, 6.2.3 "Device
// Status", Figure 6-3 "Status Register Layout".
const (
	StatusInterrupt       = 1 << 3  // Interrupt Status: INTx# asserted (read-only)
	StatusCapabilities    = 1 << 4  // Capabilities List present (read-only)
	StatusSignaledTarget  = 1 << 11 // Signaled Target Abort (write 1 to clear)
	StatusReceivedTarget  = 1 << 12 // Received Target Abort (RW1C)
	StatusReceivedMaster  = 1 << 13 // Received Master Abort (RW1C)
	StatusSignaledSystem  = 1 << 14 // Signaled System Error (RW1C)
	StatusDetectedParity  = 1 << 15 // Detected Parity Error (RW1C)
	statusWriteOneToClear = StatusSignaledTarget | StatusReceivedTarget | StatusReceivedMaster |
		StatusSignaledSystem | StatusDetectedParity
)

// BAR low bits. PCI Local Bus Specification 3.0, 6.2.5.1 "Address Maps",
// Figures 6-4 "Base Address Register for Memory" and 6-5 "Base Address
// Register for I/O".
const (
	BARSpaceIO       = 1 << 0 // bit 0: 1 = I/O space, 0 = memory space
	BARMem64         = 2 << 1 // bits 2:1 = 10b: 64-bit memory BAR (uses the next BAR too)
	BARPrefetchable  = 1 << 3 // memory BAR is prefetchable
	barMemFlagsMask  = 0xf
	barIOFlagsMask   = 0x3
	minMemBARSize    = 16 // memory BARs decode at least 16 bytes
	minIOBARSize     = 4  // I/O BARs decode at least 4 bytes
	maxIOBARSize     = 256
	ioBARAddressMask = 0xffff // x86 port space
)

// Interrupt Pin values (6.2.4 "Miscellaneous Registers").
const (
	PinNone = 0
	PinINTA = 1
	PinINTB = 2
	PinINTC = 3
	PinINTD = 4
)

// Capability IDs. PCI Code and ID Assignment Specification, 2
// "Capability IDs".
const (
	CapIDMSI          = 0x05
	CapIDVendor       = 0x09 // vendor specific (virtio uses it)
	CapIDPCIExpress   = 0x10
	CapIDMSIX         = 0x11
	capHeaderLen      = 2 // ID and next pointer
	capAlign          = 4
	maxCapabilityList = (ConfigSpaceSize - firstCapOffset) / capAlign // bound on a walk
)

// Class codes used here. PCI Code and ID Assignment Specification, 1
// "Class Codes".
const (
	ClassBridge        = 0x06
	SubclassHostBridge = 0x00
	ClassMassStorage   = 0x01
	SubclassSCSI       = 0x00
	ClassNetwork       = 0x02
	SubclassEthernet   = 0x00
)
