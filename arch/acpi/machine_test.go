package acpi

import (
	"github.com/godwit-hv/godwit/arch/acpi/acpitest"
)

// Physical layout of the synthetic machine the tests build.
const (
	testBDA       = 0x400
	testEBDASeg   = 0x9FC0 // EBDA at 0x9FC00
	testEBDA      = testEBDASeg << 4
	testROM       = 0xE0000
	testROMRSDP   = 0xF5A40 // where SeaBIOS-style firmware often puts it; 16-byte aligned
	testXSDT      = 0x7FE0000
	testFADT      = 0x7FE1000
	testDSDT      = 0x7FE2000
	testMADT      = 0x7FE3000
	testSSDT      = 0x7FE4000
	testRSDT      = 0x7FE5000
	testPM1aCnt   = 0x604 // QEMU i440fx/PIIX4 PM base 0x600 + 4
	testPM1bCnt   = 0x4004
	testSMICmd    = 0xB2
	testACPIEn    = 0xF1
	testACPIDis   = 0xF0
	testResetPort = 0xCF9
	testLAPIC     = 0xFEE00000
	testIOAPIC    = 0xFEC00000
)

// testFADT returns a FADT like QEMU's i440fx one, plus a reset register.
func testFADTSpec() acpitest.FADT {
	return acpitest.FADT{
		FirmwareCtrl: 0x7FE6000,
		DSDT:         testDSDT,
		XDSDT:        testDSDT,
		SCIInt:       9,
		SMICmd:       testSMICmd,
		ACPIEnable:   testACPIEn,
		ACPIDisable:  testACPIDis,
		PM1aEvtBlk:   0x600,
		PM1aCntBlk:   testPM1aCnt,
		PMTmrBlk:     0x608,
		PM1CntLen:    2,
		Century:      0x32,
		IAPCBootArch: 1<<0 | 1<<1,
		Flags:        FlagResetRegSup,
		ResetReg:     acpitest.GAS{Space: SpaceSystemIO, BitWidth: 8, Address: testResetPort},
		ResetValue:   0x06,
	}
}

func testMADTBytes() []byte {
	return acpitest.MADT(testLAPIC, 1,
		acpitest.LocalAPIC(0, 0, LocalAPICEnabled),
		acpitest.LocalAPIC(1, 1, LocalAPICEnabled),
		acpitest.LocalAPIC(2, 2, 0), // disabled, not online-capable
		acpitest.IOAPIC(0, testIOAPIC, 0),
		acpitest.SourceOverride(0, 0, 2, 0),
		acpitest.SourceOverride(0, 9, 9, INTIPolarityActiveHigh|INTITriggerLevel),
		acpitest.LocalAPICNMI(0xFF, 0, 1),
		acpitest.LocalX2APIC(0x100, LocalAPICOnlineCapable, 0x100),
	)
}

// machine is a synthetic firmware image: BDA, EBDA, BIOS ROM area and the tables.
type machine struct {
	mem   *acpitest.Memory
	rsdp  uint64
	ebda  []byte
	rom   []byte
	fadt  []byte
	dsdt  []byte
	madt  []byte
	ssdt  []byte
	xsdt  []byte
	rsdt  []byte
	rsdpB []byte
}

// newMachine builds an ACPI 2.0+ machine whose RSDP is in the BIOS ROM area.
func newMachine() *machine {
	m := &machine{
		fadt: testFADTSpec().Bytes(),
		// DSDT: some unrelated AML, then \_S5 = {5, 5}, Bochs-style.
		dsdt: acpitest.Table("DSDT", 1, append([]byte{0x10, 0x05, '_', 'S', 'B', '_'},
			0x08, '_', 'S', '5', '_', 0x12, 0x06, 0x04, 0x0A, 0x05, 0x0A, 0x05, 0x00, 0x00)),
		madt: testMADTBytes(),
		ssdt: acpitest.Table("SSDT", 1, []byte{0x10, 0x05, '_', 'P', 'R', '_'}),
	}
	m.xsdt = acpitest.XSDT(testFADT, testMADT, testSSDT)
	m.rsdt = acpitest.RSDT(testFADT, testMADT, testSSDT)
	m.rsdpB = acpitest.RSDP(2, testRSDT, testXSDT)
	m.ebda = make([]byte, 1024)
	m.rom = make([]byte, 0x20000)
	m.rsdp = testROMRSDP
	copy(m.rom[testROMRSDP-testROM:], m.rsdpB)
	m.remap()
	return m
}

// remap rebuilds the memory from the machine's byte slices (call after editing them).
func (m *machine) remap() {
	bda := make([]byte, 0x100)
	bda[0x0E], bda[0x0F] = testEBDASeg&0xFF, testEBDASeg>>8
	m.mem = &acpitest.Memory{}
	m.mem.Map(testBDA, bda)
	m.mem.Map(testEBDA, m.ebda)
	m.mem.Map(testROM, m.rom)
	m.mem.Map(testXSDT, m.xsdt)
	m.mem.Map(testRSDT, m.rsdt)
	m.mem.Map(testFADT, m.fadt)
	m.mem.Map(testDSDT, m.dsdt)
	m.mem.Map(testMADT, m.madt)
	m.mem.Map(testSSDT, m.ssdt)
}
