package acpi

import "fmt"

// Fixed ACPI Description Table field offsets (from the start of the table, header included).
// ACPI 6.5, 5.2.9 "Fixed ACPI Description Table (FADT)", table "FADT Format".
const (
	fadtOffFirmwareCtrl  = 36  // FIRMWARE_CTRL: 32-bit FACS address
	fadtOffDSDT          = 40  // DSDT: 32-bit DSDT address
	fadtOffSCIInt        = 46  // SCI_INT: the SCI's 8259 vector / GSI, 2 bytes
	fadtOffSMICmd        = 48  // SMI_CMD: I/O port of the SMI command port, 4 bytes
	fadtOffACPIEnable    = 52  // ACPI_ENABLE: value written to SMI_CMD to enter ACPI mode
	fadtOffACPIDisable   = 53  // ACPI_DISABLE: value written to SMI_CMD to leave ACPI mode
	fadtOffPM1aEvtBlk    = 56  // PM1a_EVT_BLK: I/O port, 4 bytes
	fadtOffPM1bEvtBlk    = 60  // PM1b_EVT_BLK
	fadtOffPM1aCntBlk    = 64  // PM1a_CNT_BLK: I/O port of the PM1a control register
	fadtOffPM1bCntBlk    = 68  // PM1b_CNT_BLK: I/O port of the PM1b control register, 0 if none
	fadtOffPMTmrBlk      = 76  // PM_TMR_BLK: I/O port of the 3.579545 MHz PM timer
	fadtOffPM1CntLen     = 89  // PM1_CNT_LEN: bytes decoded by PM1a/PM1b_CNT_BLK (>= 2)
	fadtOffCentury       = 108 // CENTURY: RTC CMOS RAM index of the century, 0 if none
	fadtOffIAPCBootArch  = 109 // IAPC_BOOT_ARCH flags, 2 bytes
	fadtOffFlags         = 112 // Flags, 4 bytes
	fadtOffResetReg      = 116 // RESET_REG: Generic Address Structure, 12 bytes
	fadtOffResetValue    = 128 // RESET_VALUE: byte written to RESET_REG
	fadtOffMinorVersion  = 131 // FADT Minor Version
	fadtOffXFirmwareCtrl = 132 // X_FIRMWARE_CTRL, 8 bytes
	fadtOffXDSDT         = 140 // X_DSDT: 64-bit DSDT address, preferred over DSDT when non-zero
	fadtOffXPM1aEvtBlk   = 148 // X_PM1a_EVT_BLK: GAS
	fadtOffXPM1bEvtBlk   = 160 // X_PM1b_EVT_BLK: GAS
	fadtOffXPM1aCntBlk   = 172 // X_PM1a_CNT_BLK: GAS, preferred over PM1a_CNT_BLK when non-zero
	fadtOffXPM1bCntBlk   = 184 // X_PM1b_CNT_BLK: GAS
	fadtOffXPMTmrBlk     = 208 // X_PM_TMR_BLK: GAS
	fadtOffSleepCtrlReg  = 244 // SLEEP_CONTROL_REG: GAS, hardware-reduced platforms
	fadtOffSleepStsReg   = 256 // SLEEP_STATUS_REG: GAS, hardware-reduced platforms

	// fadtMinLength is the ACPI 1.0 FADT: everything up to and including Flags.
	fadtMinLength = fadtOffFlags + 4
)

// FADT Fixed Feature Flags. ACPI 6.5, 5.2.9.1 "FADT Fixed Feature Flags".
const (
	FlagResetRegSup   = 1 << 10 // RESET_REG_SUP: RESET_REG/RESET_VALUE are valid
	FlagHWReducedACPI = 1 << 20 // HW_REDUCED_ACPI: no fixed hardware (no PM1 blocks, no SMI_CMD)
)

// IA-PC Boot Architecture Flags. ACPI 6.5, 5.2.9.3 "IA-PC Boot Architecture Flags".
const (
	BootArchLegacyDevices = 1 << 0 // LEGACY_DEVICES: the motherboard has ISA-style legacy devices
	BootArch8042          = 1 << 1 // 8042: an 8042 keyboard controller is present
	BootArchNoCMOSRTC     = 1 << 5 // CMOS RTC Not Present
)

// Generic Address Structure. ACPI 6.5, 5.2.3.2 "Generic Address Structure (GAS)".
const (
	gasLength        = 12
	gasOffSpaceID    = 0 // Address Space ID
	gasOffBitWidth   = 1 // Register Bit Width
	gasOffBitOffset  = 2 // Register Bit Offset
	gasOffAccessSize = 3 // Access Size: 0 undefined, 1 byte, 2 word, 3 dword, 4 qword
	gasOffAddress    = 4 // Address, 8 bytes

	// Address Space IDs.
	SpaceSystemMemory = 0 // System Memory space
	SpaceSystemIO     = 1 // System I/O space
	SpacePCIConfig    = 2 // PCI Configuration space: Address = device<<32 | function<<16 | offset
)

// GAS is a Generic Address Structure: where a register lives and how wide it is.
type GAS struct {
	SpaceID    uint8
	BitWidth   uint8
	BitOffset  uint8
	AccessSize uint8
	Address    uint64
}

func parseGAS(b []byte) GAS {
	return GAS{
		SpaceID:    b[gasOffSpaceID],
		BitWidth:   b[gasOffBitWidth],
		BitOffset:  b[gasOffBitOffset],
		AccessSize: b[gasOffAccessSize],
		Address:    le64(b, gasOffAddress),
	}
}

// IsZero reports whether the structure is absent (all zero, as firmware marks unused fields).
func (g GAS) IsZero() bool { return g == GAS{} }

// FADT is the subset of the Fixed ACPI Description Table that Godwit uses.
type FADT struct {
	Address      uint64 // physical address of the table
	Revision     uint8  // header Revision (FADT major version)
	MinorVersion uint8  // 0 when the table is too short to carry it
	Length       uint32

	// DSDT is X_DSDT when present and non-zero, else the 32-bit DSDT field.
	DSDT uint64
	// FACS is X_FIRMWARE_CTRL when present and non-zero, else FIRMWARE_CTRL.
	FACS uint64

	SCIInterrupt uint16
	// SMICommand is the SMI command port; zero means the platform has no SMM-based legacy mode
	// and is always in ACPI mode (ACPI 6.5, 4.8.2 "Legacy/ACPI Select and the SCI Interrupt").
	SMICommand  uint32
	ACPIEnable  uint8
	ACPIDisable uint8

	// PM1aControl and PM1bControl are the I/O ports of the PM1 control registers, taken from
	// X_PM1x_CNT_BLK when it is non-zero and in system I/O space, else from the 32-bit field.
	// PM1bControl is zero when the platform has only the "a" block.
	PM1aControl uint64
	PM1bControl uint64
	// PM1aControlGAS and PM1bControlGAS are the raw X_ fields (zero when absent), kept so an
	// error can say why a memory-mapped block was not used.
	PM1aControlGAS GAS
	PM1bControlGAS GAS
	PM1ControlLen  uint8
	PM1aEvent      uint64
	PMTimer        uint64

	// Century is the RTC CMOS index of the century byte, 0 if the RTC has none.
	Century      uint8
	IAPCBootArch uint16
	Flags        uint32

	// ResetRegister and ResetValue are valid only if ResetSupported().
	ResetRegister GAS
	ResetValue    uint8

	// SleepControl and SleepStatus replace PM1 on hardware-reduced platforms (zero if absent).
	SleepControl GAS
	SleepStatus  GAS
}

// ResetSupported reports RESET_REG_SUP.
func (f *FADT) ResetSupported() bool { return f.Flags&FlagResetRegSup != 0 }

// HardwareReduced reports HW_REDUCED_ACPI.
func (f *FADT) HardwareReduced() bool { return f.Flags&FlagHWReducedACPI != 0 }

// Has8042 reports whether the FADT claims an 8042 keyboard controller. Firmware before ACPI 2.0
// has no such flag, so a zero IAPC_BOOT_ARCH says nothing.
func (f *FADT) Has8042() bool { return f.IAPCBootArch&BootArch8042 != 0 }

// ParseFADT decodes a validated FADT. Fields beyond the table's Length read as zero, as the
// spec requires for older, shorter revisions.
func ParseFADT(t *Table) (*FADT, error) {
	if t.Signature != SigFADT {
		return nil, fmt.Errorf("acpi: table at %#x: signature %q, want %q: %w", t.Address, t.Signature, SigFADT, ErrSignature)
	}
	b := t.Data
	if len(b) < fadtMinLength {
		return nil, fmt.Errorf("acpi: table %q at %#x: Length %d, want at least %d: %w",
			SigFADT, t.Address, len(b), fadtMinLength, ErrLength)
	}
	has := func(off, n int) bool { return off+n <= len(b) }
	gas := func(off int) GAS {
		if !has(off, gasLength) {
			return GAS{}
		}
		return parseGAS(b[off:])
	}

	f := &FADT{
		Address:       t.Address,
		Revision:      t.Revision,
		Length:        uint32(len(b)),
		DSDT:          uint64(le32(b, fadtOffDSDT)),
		FACS:          uint64(le32(b, fadtOffFirmwareCtrl)),
		SCIInterrupt:  le16(b, fadtOffSCIInt),
		SMICommand:    le32(b, fadtOffSMICmd),
		ACPIEnable:    b[fadtOffACPIEnable],
		ACPIDisable:   b[fadtOffACPIDisable],
		PM1aControl:   uint64(le32(b, fadtOffPM1aCntBlk)),
		PM1bControl:   uint64(le32(b, fadtOffPM1bCntBlk)),
		PM1aEvent:     uint64(le32(b, fadtOffPM1aEvtBlk)),
		PMTimer:       uint64(le32(b, fadtOffPMTmrBlk)),
		PM1ControlLen: b[fadtOffPM1CntLen],
		Century:       b[fadtOffCentury],
		IAPCBootArch:  le16(b, fadtOffIAPCBootArch),
		Flags:         le32(b, fadtOffFlags),
	}
	if has(fadtOffResetValue, 1) {
		f.ResetRegister = gas(fadtOffResetReg)
		f.ResetValue = b[fadtOffResetValue]
	}
	if has(fadtOffMinorVersion, 1) {
		f.MinorVersion = b[fadtOffMinorVersion]
	}
	if has(fadtOffXFirmwareCtrl, 8) {
		if x := le64(b, fadtOffXFirmwareCtrl); x != 0 {
			f.FACS = x
		}
	}
	if has(fadtOffXDSDT, 8) {
		if x := le64(b, fadtOffXDSDT); x != 0 {
			f.DSDT = x
		}
	}
	ioPort := func(x GAS, legacy uint64) uint64 {
		if x.Address != 0 && x.SpaceID == SpaceSystemIO {
			return x.Address
		}
		return legacy
	}
	f.PM1aControlGAS = gas(fadtOffXPM1aCntBlk)
	f.PM1bControlGAS = gas(fadtOffXPM1bCntBlk)
	f.PM1aControl = ioPort(f.PM1aControlGAS, f.PM1aControl)
	f.PM1bControl = ioPort(f.PM1bControlGAS, f.PM1bControl)
	f.PM1aEvent = ioPort(gas(fadtOffXPM1aEvtBlk), f.PM1aEvent)
	f.PMTimer = ioPort(gas(fadtOffXPMTmrBlk), f.PMTimer)
	f.SleepControl = gas(fadtOffSleepCtrlReg)
	f.SleepStatus = gas(fadtOffSleepStsReg)
	return f, nil
}
