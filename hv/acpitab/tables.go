package acpitab

import "encoding/binary"

// RSDP. ACPI 6.4, 5.2.5.3 "Root System Description Pointer (RSDP) Structure".
const (
	rsdpLength      = 36
	rsdpV1Length    = 20 // the part Checksum covers
	rsdpRevision    = 2  // ACPI 2.0 and later: Length, XsdtAddress, Extended Checksum
	rsdpOffChecksum = 8
	rsdpOffExtSum   = 32
)

func buildRSDP(xsdt uint64) []byte {
	le := binary.LittleEndian
	b := make([]byte, rsdpLength)
	copy(b, "RSD PTR ")
	copy(b[9:15], oemID)
	b[15] = rsdpRevision
	// RsdtAddress (offset 16) stays 0: there is no RSDT, the XSDT is the root.
	le.PutUint32(b[20:], rsdpLength)
	le.PutUint64(b[24:], xsdt)
	b[rsdpOffChecksum] = -sum(b[:rsdpV1Length])
	b[rsdpOffExtSum] = -sum(b)
	return b
}

// FACS. ACPI 6.4, 5.2.10 "Firmware ACPI Control Structure (FACS)": no checksum; all zero but
// the signature, length and version means no waking vector, no global lock owner, no S4BIOS.
const (
	facsLength  = 64
	facsVersion = 2
)

func buildFACS() []byte {
	b := make([]byte, facsLength)
	copy(b, "FACS")
	binary.LittleEndian.PutUint32(b[4:], facsLength)
	b[32] = facsVersion
	return b
}

// XSDT. ACPI 6.4, 5.2.8 "Extended System Description Table (XSDT)".
const xsdtRevision = 1

func buildXSDT(entries ...uint64) []byte {
	b := table("XSDT", xsdtRevision)
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint64(b, e)
	}
	return finish(b)
}

// FADT. ACPI 6.4, 5.2.9 "Fixed ACPI Description Table (FADT)", table 5.9 "FADT Format".
const (
	fadtRevision = 6 // FADT Major Version for ACPI 6.4
	fadtMinor    = 4 // FADT Minor Version
	fadtLength   = 276

	fadtOffFirmwareCtrl  = 36
	fadtOffDSDT          = 40
	fadtOffSCIInt        = 46
	fadtOffPM1aEvtBlk    = 56
	fadtOffPM1aCntBlk    = 64
	fadtOffPMTmrBlk      = 76
	fadtOffPM1EvtLen     = 88
	fadtOffPM1CntLen     = 89
	fadtOffPMTmrLen      = 91
	fadtOffPLvl2Lat      = 96
	fadtOffPLvl3Lat      = 98
	fadtOffCentury       = 108
	fadtOffIAPCBootArch  = 109
	fadtOffFlags         = 112
	fadtOffResetReg      = 116
	fadtOffResetValue    = 128
	fadtOffMinorVersion  = 131
	fadtOffXFirmwareCtrl = 132
	fadtOffXDSDT         = 140
	fadtOffXPM1aEvtBlk   = 148
	fadtOffXPM1aCntBlk   = 172
	fadtOffXPMTmrBlk     = 208
	fadtOffHypervisorID  = 268

	pm1EventLength   = 4 // PM1_EVT_LEN: 2-byte status + 2-byte enable register
	pm1ControlLength = 2 // PM1_CNT_LEN
	pmTimerLength    = 4 // PM_TMR_LEN

	// P_LVL2_LAT > 100 and P_LVL3_LAT > 1000 say C2 and C3 are not supported.
	noC2Latency = 101
	noC3Latency = 1001

	hypervisorVendor = "Godwit"
)

// FADT fixed feature flags. ACPI 6.4, 5.2.9, table 5.10 "Fixed ACPI Description Table Fixed
// Feature Flags".
const (
	flagWBINVD      = 1 << 0  // WBINVD works
	flagProcC1      = 1 << 2  // C1 (HLT) on all processors
	flagPwrButton   = 1 << 4  // no fixed-feature power button
	flagSlpButton   = 1 << 5  // no fixed-feature sleep button
	flagResetRegSup = 1 << 10 // RESET_REG is valid
)

// IA-PC boot architecture flags. ACPI 6.4, 5.2.9.3 "IA-PC Boot Architecture Flags".
const (
	bootArchLegacyDevices = 1 << 0 // LEGACY_DEVICES
	bootArch8042          = 1 << 1 // 8042
)

// Generic Address Structure. ACPI 6.4, 5.2.3.2 "Generic Address Structure (GAS)".
const (
	gasSystemIO   = 1
	accessByte    = 1
	accessWord    = 2
	accessDWord   = 3
	resetPortCF9  = 0xCF9
	resetValueCF9 = 0x06 // SYS_RST | RST_CPU: a full reset
	resetPort8042 = 0x64
	resetValue042 = 0xFE // 8042 command: pulse the reset line
)

func putGAS(b []byte, port uint16, bits, access uint8) {
	b[0] = gasSystemIO
	b[1] = bits
	b[2] = 0
	b[3] = access
	binary.LittleEndian.PutUint64(b[4:], uint64(port))
}

func buildFADT(cfg *Config, facs, dsdt uint64) []byte {
	le := binary.LittleEndian
	b := append(table("FACP", fadtRevision), make([]byte, fadtLength-headerLength)...)
	le.PutUint32(b[fadtOffFirmwareCtrl:], uint32(facs))
	le.PutUint32(b[fadtOffDSDT:], uint32(dsdt))
	le.PutUint16(b[fadtOffSCIInt:], SCIInterrupt)
	// SMI_CMD, ACPI_ENABLE, ACPI_DISABLE stay 0: the platform is always in ACPI mode.
	le.PutUint32(b[fadtOffPM1aEvtBlk:], uint32(cfg.PM1aEvent))
	le.PutUint32(b[fadtOffPM1aCntBlk:], uint32(cfg.PM1aControl))
	b[fadtOffPM1EvtLen] = pm1EventLength
	b[fadtOffPM1CntLen] = pm1ControlLength
	le.PutUint16(b[fadtOffPLvl2Lat:], noC2Latency)
	le.PutUint16(b[fadtOffPLvl3Lat:], noC3Latency)
	b[fadtOffCentury] = CenturyIndex
	le.PutUint16(b[fadtOffIAPCBootArch:], bootArchLegacyDevices|bootArch8042)
	le.PutUint32(b[fadtOffFlags:], flagWBINVD|flagProcC1|flagPwrButton|flagSlpButton|flagResetRegSup)
	switch cfg.Reset {
	case ResetCF9:
		putGAS(b[fadtOffResetReg:], resetPortCF9, 8, accessByte)
		b[fadtOffResetValue] = resetValueCF9
	case Reset8042:
		putGAS(b[fadtOffResetReg:], resetPort8042, 8, accessByte)
		b[fadtOffResetValue] = resetValue042
	}
	b[fadtOffMinorVersion] = fadtMinor
	le.PutUint64(b[fadtOffXFirmwareCtrl:], facs)
	le.PutUint64(b[fadtOffXDSDT:], dsdt)
	putGAS(b[fadtOffXPM1aEvtBlk:], cfg.PM1aEvent, 8*pm1EventLength, accessWord)
	putGAS(b[fadtOffXPM1aCntBlk:], cfg.PM1aControl, 8*pm1ControlLength, accessWord)
	if cfg.PMTimer != 0 {
		le.PutUint32(b[fadtOffPMTmrBlk:], uint32(cfg.PMTimer))
		b[fadtOffPMTmrLen] = pmTimerLength
		putGAS(b[fadtOffXPMTmrBlk:], cfg.PMTimer, 8*pmTimerLength, accessDWord)
	}
	copy(b[fadtOffHypervisorID:], hypervisorVendor)
	return finish(b)
}

// MADT. ACPI 6.4, 5.2.12 "Multiple APIC Description Table (MADT)".
const (
	madtRevision        = 5
	madtFlagPCATCompat  = 1 << 0
	madtLocalAPIC       = 0 // 5.2.12.2 "Processor Local APIC Structure"
	madtIOAPIC          = 1 // 5.2.12.3 "I/O APIC Structure"
	madtSourceOverride  = 2 // 5.2.12.5 "Interrupt Source Override Structure"
	madtLocalAPICNMI    = 4 // 5.2.12.7 "Local APIC NMI Structure"
	localAPICEnabled    = 1 << 0
	intiActiveHigh      = 0x1 // MPS INTI flags, table 5.26
	intiLevel           = 0xC
	allProcessors       = 0xFF
	lint1               = 1
	isaBus              = 0
	pitIRQ, pitGSI      = 0, 2 // the 8254 on ISA IRQ 0 reaches I/O APIC pin 2
	sciFlags            = intiActiveHigh | intiLevel
	localAPICNMIFlags   = 0 // conforms to the bus
	sourceOverrideFlags = 0
)

func buildMADT(cfg *Config) []byte {
	le := binary.LittleEndian
	b := table("APIC", madtRevision)
	b = le.AppendUint32(b, LocalAPICAddress)
	b = le.AppendUint32(b, madtFlagPCATCompat)
	for i := range cfg.CPUs {
		b = append(b, madtLocalAPIC, 8, byte(i), byte(i))
		b = le.AppendUint32(b, localAPICEnabled)
	}
	b = append(b, madtIOAPIC, 12, cfg.IOAPICID, 0)
	b = le.AppendUint32(b, IOAPICAddress)
	b = le.AppendUint32(b, 0) // Global System Interrupt Base
	override := func(irq uint8, gsi uint32, flags uint16) {
		b = append(b, madtSourceOverride, 10, isaBus, irq)
		b = le.AppendUint32(b, gsi)
		b = le.AppendUint16(b, flags)
	}
	override(pitIRQ, pitGSI, sourceOverrideFlags)
	override(SCIInterrupt, SCIInterrupt, sciFlags)
	b = append(b, madtLocalAPICNMI, 6, allProcessors)
	b = le.AppendUint16(b, localAPICNMIFlags)
	b = append(b, lint1)
	return finish(b)
}
