package acpi

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/godwit-hv/godwit/arch/acpi/acpitest"
)

func sigs(t *Tables) string {
	var s []string
	for _, tab := range t.List {
		s = append(s, tab.Signature)
	}
	return strings.Join(s, ",")
}

func TestFindRSDPInROM(t *testing.T) {
	m := newMachine()
	r, err := FindRSDP(m.mem)
	if err != nil {
		t.Fatalf("FindRSDP = %v", err)
	}
	if r.Address != testROMRSDP || r.Revision != 2 || r.XSDTAddress != testXSDT || r.RSDTAddress != testRSDT || r.OEMID != "GODWIT" {
		t.Errorf("FindRSDP = %+v, want address %#x revision 2 XSDT %#x RSDT %#x OEMID GODWIT", r, testROMRSDP, testXSDT, testRSDT)
	}
}

func TestFindRSDPPrefersEBDA(t *testing.T) {
	m := newMachine()
	copy(m.ebda[0x40:], acpitest.RSDP(0, testRSDT, 0))
	m.remap()
	r, err := FindRSDP(m.mem)
	if err != nil {
		t.Fatalf("FindRSDP = %v", err)
	}
	if want := uint64(testEBDA + 0x40); r.Address != want || r.Revision != 0 {
		t.Errorf("FindRSDP = %+v, want the revision-0 one in the EBDA at %#x", r, want)
	}
}

func TestFindRSDPSkipsCorruptAndUnaligned(t *testing.T) {
	m := newMachine()
	bad := acpitest.RSDP(2, testRSDT, testXSDT)
	bad[8]++ // break the ACPI 1.0 checksum
	copy(m.ebda[0x40:], bad)
	ext := acpitest.RSDP(2, testRSDT, testXSDT)
	ext[32]++ // break only the extended checksum
	copy(m.rom[0x100:], ext)
	copy(m.rom[0x208:], acpitest.RSDP(0, testRSDT, 0)) // not 16-byte aligned: must be ignored
	m.remap()
	r, err := FindRSDP(m.mem)
	if err != nil {
		t.Fatalf("FindRSDP = %v", err)
	}
	if r.Address != testROMRSDP {
		t.Errorf("FindRSDP address = %#x, want %#x", r.Address, testROMRSDP)
	}

	// Now remove the good one: the error must say why each candidate was rejected.
	clear(m.rom[testROMRSDP-testROM:][:36])
	m.remap()
	_, err = FindRSDP(m.mem)
	if !errors.Is(err, ErrNoRSDP) || !errors.Is(err, ErrChecksum) {
		t.Fatalf("FindRSDP error = %v, want ErrNoRSDP and ErrChecksum", err)
	}
	for _, want := range []string{fmt.Sprintf("%#x", testEBDA+0x40), "extended checksum", fmt.Sprintf("%#x", testROM+0x100)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("FindRSDP error = %q, want it to mention %q", err, want)
		}
	}
}

func TestFindRSDPNoneAndUnreadable(t *testing.T) {
	_, err := FindRSDP(&acpitest.Memory{})
	if !errors.Is(err, ErrNoRSDP) {
		t.Errorf("FindRSDP(empty memory) = %v, want ErrNoRSDP", err)
	}
}

func TestLoadXSDT(t *testing.T) {
	m := newMachine()
	tabs, err := Load(m.mem, m.rsdp)
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	if err := tabs.Err(); err != nil {
		t.Errorf("Load skipped tables: %v", err)
	}
	if got, want := sigs(tabs), "FACP,APIC,SSDT,DSDT"; got != want {
		t.Errorf("Load tables = %s, want %s", got, want)
	}
	if tabs.Root.Signature != SigXSDT || tabs.Root.Address != testXSDT {
		t.Errorf("Root = %q at %#x, want XSDT at %#x", tabs.Root.Signature, tabs.Root.Address, testXSDT)
	}
	d := tabs.Get(SigDSDT)
	if d == nil || d.Address != testDSDT || d.OEMID != "GODWIT" || d.OEMTableID != "SYNTHTBL" || d.CreatorID != "GDWT" {
		t.Errorf("DSDT = %+v, want at %#x with OEM GODWIT/SYNTHTBL creator GDWT", d, testDSDT)
	}
	st, err := tabs.S5()
	if err != nil || st != (SleepType{5, 5}) {
		t.Errorf("S5() = %+v, %v, want {5 5}", st, err)
	}
	if got := len(tabs.All(SigSSDT)); got != 1 {
		t.Errorf("All(SSDT) = %d tables, want 1", got)
	}
}

func TestFindAndLoadRSDT(t *testing.T) {
	m := newMachine()
	copy(m.rom[testROMRSDP-testROM:], acpitest.RSDP(0, testRSDT, 0))
	m.remap()
	tabs, err := Find(m.mem)
	if err != nil {
		t.Fatalf("Find = %v", err)
	}
	if tabs.Root.Signature != SigRSDT {
		t.Errorf("Root = %q, want RSDT for a revision-0 RSDP", tabs.Root.Signature)
	}
	if got, want := sigs(tabs), "FACP,APIC,SSDT,DSDT"; got != want {
		t.Errorf("tables = %s, want %s", got, want)
	}
}

func TestLoadFallsBackToRSDTWhenXSDTBad(t *testing.T) {
	m := newMachine()
	m.xsdt[9]++ // corrupt XSDT checksum
	m.remap()
	tabs, err := Load(m.mem, m.rsdp)
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	if tabs.Root.Signature != SigRSDT {
		t.Errorf("Root = %q, want RSDT fallback", tabs.Root.Signature)
	}
	if err := tabs.Err(); !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), `"XSDT"`) {
		t.Errorf("Err() = %v, want an XSDT checksum error", err)
	}
}

func TestLoadBadTables(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(m *machine)
		wantErr error
		wantMsg string // must appear in the recorded error
		wantSig string // tables left
	}{
		{"FADT checksum", func(m *machine) { m.fadt[100]++ }, ErrChecksum,
			fmt.Sprintf(`table "FACP" at %#x`, testFADT), "APIC,SSDT"},
		{"MADT length too short", func(m *machine) {
			m.madt[4], m.madt[5], m.madt[6], m.madt[7] = 10, 0, 0, 0
		}, ErrLength, fmt.Sprintf(`table "APIC" at %#x: Length 10`, testMADT), "FACP,SSDT,DSDT"},
		{"MADT length huge", func(m *machine) {
			m.madt[4], m.madt[5], m.madt[6], m.madt[7] = 0, 0, 0, 0x80
		}, ErrLength, fmt.Sprintf(`table "APIC" at %#x`, testMADT), "FACP,SSDT,DSDT"},
		{"SSDT length past mapped memory", func(m *machine) {
			m.ssdt[5] = 0x10 // 4 KiB + a bit; only len(ssdt) bytes are mapped
		}, nil, fmt.Sprintf(`table "SSDT" at %#x`, testSSDT), "FACP,APIC,DSDT"},
		{"DSDT checksum", func(m *machine) { m.dsdt[40] ^= 0xFF }, ErrChecksum,
			fmt.Sprintf(`table "DSDT" at %#x`, testDSDT), "FACP,APIC,SSDT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine()
			tt.corrupt(m)
			m.remap()
			tabs, err := Load(m.mem, m.rsdp)
			if err != nil {
				t.Fatalf("Load = %v, want success with the bad table skipped", err)
			}
			if got := sigs(tabs); got != tt.wantSig {
				t.Errorf("tables = %s, want %s", got, tt.wantSig)
			}
			e := tabs.Err()
			if e == nil || (tt.wantErr != nil && !errors.Is(e, tt.wantErr)) || !strings.Contains(e.Error(), tt.wantMsg) {
				t.Errorf("Err() = %v, want %v mentioning %q", e, tt.wantErr, tt.wantMsg)
			}
		})
	}
}

func TestLoadBadRoot(t *testing.T) {
	tests := []struct {
		name    string
		rsdp    []byte
		xsdt    func(b []byte)
		wantErr error
	}{
		{"RSDP signature", func() []byte { b := acpitest.RSDP(2, 0, testXSDT); b[0] = 'X'; return b }(), nil, ErrSignature},
		{"RSDP checksum", func() []byte { b := acpitest.RSDP(0, testRSDT, 0); b[16]++; return b }(), nil, ErrChecksum},
		{"RSDP extended checksum", func() []byte { b := acpitest.RSDP(2, 0, testXSDT); b[33]++; return b }(), nil, ErrChecksum},
		{"RSDP length", func() []byte {
			b := acpitest.RSDP(2, 0, testXSDT)
			b[20] = 8
			acpitest.Fix(b[:20], 8)
			return acpitest.Fix(b, 32)
		}(), nil, ErrLength},
		{"XSDT signature, no RSDT", acpitest.RSDP(2, 0, testXSDT), func(b []byte) { b[0] = 'Y'; acpitest.Fix(b, 9) }, ErrSignature},
		{"no root at all", acpitest.RSDP(2, 0, 0), nil, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine()
			copy(m.rom[testROMRSDP-testROM:], tt.rsdp)
			if tt.xsdt != nil {
				tt.xsdt(m.xsdt)
			}
			m.remap()
			_, err := Load(m.mem, m.rsdp)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Load = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestParseFADT(t *testing.T) {
	m := newMachine()
	tabs, err := Load(m.mem, m.rsdp)
	if err != nil {
		t.Fatal(err)
	}
	f, err := tabs.FADT()
	if err != nil {
		t.Fatalf("FADT() = %v", err)
	}
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"Address", f.Address, testFADT},
		{"DSDT", f.DSDT, testDSDT},
		{"FACS", f.FACS, 0x7FE6000},
		{"SCIInterrupt", uint64(f.SCIInterrupt), 9},
		{"SMICommand", uint64(f.SMICommand), testSMICmd},
		{"ACPIEnable", uint64(f.ACPIEnable), testACPIEn},
		{"ACPIDisable", uint64(f.ACPIDisable), testACPIDis},
		{"PM1aControl", f.PM1aControl, testPM1aCnt},
		{"PM1bControl", f.PM1bControl, 0},
		{"PM1aEvent", f.PM1aEvent, 0x600},
		{"PMTimer", f.PMTimer, 0x608},
		{"PM1ControlLen", uint64(f.PM1ControlLen), 2},
		{"Century", uint64(f.Century), 0x32},
		{"ResetRegister.SpaceID", uint64(f.ResetRegister.SpaceID), SpaceSystemIO},
		{"ResetRegister.Address", f.ResetRegister.Address, testResetPort},
		{"ResetRegister.BitWidth", uint64(f.ResetRegister.BitWidth), 8},
		{"ResetValue", uint64(f.ResetValue), 6},
		{"Length", uint64(f.Length), acpitest.FullFADTLength},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("FADT.%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	if !f.ResetSupported() || f.HardwareReduced() || !f.Has8042() {
		t.Errorf("ResetSupported, HardwareReduced, Has8042 = %v, %v, %v, want true, false, true",
			f.ResetSupported(), f.HardwareReduced(), f.Has8042())
	}
}

func TestParseFADTVariants(t *testing.T) {
	tests := []struct {
		name            string
		edit            func(f *acpitest.FADT)
		wantDSDT        uint64
		wantPM1a        uint64
		wantPM1b        uint64
		wantResetSpace  uint8
		wantResetAddr   uint64
		wantMinorOrZero bool
	}{
		{"X_DSDT preferred", func(f *acpitest.FADT) { f.DSDT, f.XDSDT = 0x1000, 0x1_0000_0000 },
			0x1_0000_0000, testPM1aCnt, 0, SpaceSystemIO, testResetPort, true},
		{"DSDT when X_DSDT zero", func(f *acpitest.FADT) { f.DSDT, f.XDSDT = 0x2000, 0 },
			0x2000, testPM1aCnt, 0, SpaceSystemIO, testResetPort, true},
		{"X_PM1 in I/O space preferred", func(f *acpitest.FADT) {
			f.XPM1aCntBlk = acpitest.GAS{Space: SpaceSystemIO, BitWidth: 16, Address: 0x1804}
			f.XPM1bCntBlk = acpitest.GAS{Space: SpaceSystemIO, BitWidth: 16, Address: 0x1884}
		}, testDSDT, 0x1804, 0x1884, SpaceSystemIO, testResetPort, true},
		{"X_PM1 in memory space ignored", func(f *acpitest.FADT) {
			f.XPM1aCntBlk = acpitest.GAS{Space: SpaceSystemMemory, BitWidth: 16, Address: 0xFED80004}
		}, testDSDT, testPM1aCnt, 0, SpaceSystemIO, testResetPort, true},
		{"ACPI 1.0 FADT (116 bytes)", func(f *acpitest.FADT) {
			f.Length, f.Revision, f.XDSDT = 116, 1, 0x1_0000_0000
		}, testDSDT, testPM1aCnt, 0, 0, 0, true},
		{"memory reset register", func(f *acpitest.FADT) {
			f.ResetReg = acpitest.GAS{Space: SpaceSystemMemory, BitWidth: 8, Address: 0xFED00040}
		}, testDSDT, testPM1aCnt, 0, SpaceSystemMemory, 0xFED00040, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := testFADTSpec()
			tt.edit(&spec)
			tab := &Table{Header: parseHeader(spec.Bytes()), Address: testFADT, Data: spec.Bytes()}
			f, err := ParseFADT(tab)
			if err != nil {
				t.Fatalf("ParseFADT = %v", err)
			}
			if f.DSDT != tt.wantDSDT || f.PM1aControl != tt.wantPM1a || f.PM1bControl != tt.wantPM1b ||
				f.ResetRegister.SpaceID != tt.wantResetSpace || f.ResetRegister.Address != tt.wantResetAddr {
				t.Errorf("ParseFADT: DSDT %#x PM1a %#x PM1b %#x reset space %d addr %#x, want %#x %#x %#x %d %#x",
					f.DSDT, f.PM1aControl, f.PM1bControl, f.ResetRegister.SpaceID, f.ResetRegister.Address,
					tt.wantDSDT, tt.wantPM1a, tt.wantPM1b, tt.wantResetSpace, tt.wantResetAddr)
			}
		})
	}

	short := acpitest.Table("FACP", 1, make([]byte, 40))
	if _, err := ParseFADT(&Table{Header: parseHeader(short), Address: 0x1234, Data: short}); !errors.Is(err, ErrLength) ||
		!strings.Contains(err.Error(), "0x1234") {
		t.Errorf("ParseFADT(76-byte table) = %v, want ErrLength naming 0x1234", err)
	}
	madt := testMADTBytes()
	if _, err := ParseFADT(&Table{Header: parseHeader(madt), Data: madt}); !errors.Is(err, ErrSignature) {
		t.Errorf("ParseFADT(MADT) = %v, want ErrSignature", err)
	}
}
