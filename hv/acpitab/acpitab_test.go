package acpitab

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godwit-hv/godwit/arch/acpi"
	"github.com/godwit-hv/godwit/arch/acpi/acpitest"
	"github.com/godwit-hv/godwit/hv"
)

// guestMem reads guest memory as the guest's physical memory.
type guestMem struct{ m *hv.Memory }

func (g guestMem) ReadPhys(addr uint64, p []byte) error {
	_, err := g.m.ReadAt(p, int64(addr))
	return err
}

const (
	tablesAddr = 0xE0000 // in the BIOS area an OS scans for the RSDP
	testRAM    = 2 << 20
)

func testConfig() Config {
	return Config{
		CPUs:        4,
		PM1aEvent:   0x600,
		PM1aControl: 0x604,
		PMTimer:     0x608,
		Reset:       ResetCF9,
		IOAPICID:    4,
		PCI: &PCIRootBridge{Buses: 256, MMIOBase: 0xC0000000, MMIOSize: 0x3EC00000,
			GSI: func(slot, pin int) uint32 { return 16 + uint32(slot+pin)%8 }},
	}
}

func build(t *testing.T, cfg Config) (*hv.Memory, *acpi.Tables) {
	t.Helper()
	mem := &hv.Memory{Host: make([]byte, testRAM)}
	rsdp, err := Build(mem, tablesAddr, cfg)
	if err != nil {
		t.Fatalf("Build() = %v", err)
	}
	if rsdp != tablesAddr {
		t.Errorf("Build() = %#x, want the RSDP at %#x", rsdp, tablesAddr)
	}
	tabs, err := acpi.Load(guestMem{mem}, rsdp)
	if err != nil {
		t.Fatalf("acpi.Load(%#x) = %v", rsdp, err)
	}
	if err := tabs.Err(); err != nil {
		t.Errorf("acpi.Load() skipped tables: %v", err)
	}
	return mem, tabs
}

func TestRoundTrip(t *testing.T) {
	cfg := testConfig()
	mem, tabs := build(t, cfg)

	if tabs.RSDP.Revision != 2 || tabs.RSDP.XSDTAddress == 0 || tabs.RSDP.OEMID != "GODWIT" || tabs.Root.Signature != "XSDT" {
		t.Errorf("RSDP = %+v, root %q: want revision 2 pointing to an XSDT", tabs.RSDP, tabs.Root.Signature)
	}
	// The legacy scan of 0xE0000-0xFFFFF finds the same RSDP.
	if r, err := acpi.FindRSDP(guestMem{mem}); err != nil || r.Address != tablesAddr {
		t.Errorf("FindRSDP() = %+v, %v, want the RSDP at %#x", r, err, tablesAddr)
	}
	var sigs []string
	for _, tab := range tabs.List {
		sigs = append(sigs, tab.Signature)
		if tab.Address%8 != 0 {
			t.Errorf("table %q at %#x is not 8-byte aligned", tab.Signature, tab.Address)
		}
	}
	if got := strings.Join(sigs, " "); got != "FACP APIC DSDT" {
		t.Errorf("tables = %s, want FACP APIC DSDT", got)
	}

	f, err := tabs.FADT()
	if err != nil {
		t.Fatalf("FADT() = %v", err)
	}
	want := acpi.FADT{
		Revision: 6, MinorVersion: 4, Length: fadtLength,
		SCIInterrupt: 9, PM1aControl: 0x604, PM1aEvent: 0x600, PMTimer: 0x608, PM1ControlLen: 2,
		Century: 0x32, IAPCBootArch: acpi.BootArch8042 | acpi.BootArchLegacyDevices,
		ResetRegister: acpi.GAS{SpaceID: acpi.SpaceSystemIO, BitWidth: 8, AccessSize: 1, Address: 0xCF9}, ResetValue: 6,
	}
	got := acpi.FADT{
		Revision: f.Revision, MinorVersion: f.MinorVersion, Length: f.Length,
		SCIInterrupt: f.SCIInterrupt, PM1aControl: f.PM1aControl, PM1aEvent: f.PM1aEvent, PMTimer: f.PMTimer, PM1ControlLen: f.PM1ControlLen,
		Century: f.Century, IAPCBootArch: f.IAPCBootArch, ResetRegister: f.ResetRegister, ResetValue: f.ResetValue,
	}
	if got != want {
		t.Errorf("FADT = %+v, want %+v", got, want)
	}
	if f.HardwareReduced() || !f.ResetSupported() || f.SMICommand != 0 || f.PM1bControl != 0 {
		t.Errorf("FADT flags %#x, SMI_CMD %#x, PM1b %#x: want full ACPI, RESET_REG_SUP, always in ACPI mode, no PM1b",
			f.Flags, f.SMICommand, f.PM1bControl)
	}
	if d := tabs.Get("DSDT"); d == nil || f.DSDT != d.Address {
		t.Errorf("FADT DSDT = %#x, want the DSDT's address", f.DSDT)
	}
	facs := make([]byte, facsLength)
	if err := (guestMem{mem}).ReadPhys(f.FACS, facs); err != nil || string(facs[:4]) != "FACS" || f.FACS%64 != 0 ||
		binary.LittleEndian.Uint32(facs[4:]) != facsLength {
		t.Errorf("FACS at %#x = %q..., %v: want a 64-byte-aligned FACS", f.FACS, facs[:8], err)
	}

	m, err := tabs.MADT()
	if err != nil {
		t.Fatalf("MADT() = %v", err)
	}
	if m.LocalAPICAddress != 0xFEE00000 || !m.PCATCompat() || len(m.LocalAPICs) != cfg.CPUs {
		t.Errorf("MADT: LAPIC address %#x, PCAT_COMPAT %v, %d Local APICs, want 0xfee00000, true, %d",
			m.LocalAPICAddress, m.PCATCompat(), len(m.LocalAPICs), cfg.CPUs)
	}
	for i, l := range m.LocalAPICs {
		if l != (acpi.LocalAPIC{ProcessorUID: uint32(i), APICID: uint32(i), Flags: acpi.LocalAPICEnabled}) {
			t.Errorf("Local APIC %d = %+v, want UID and ID %d, enabled", i, l, i)
		}
	}
	if len(m.IOAPICs) != 1 || m.IOAPICs[0] != (acpi.IOAPIC{ID: 4, Address: 0xFEC00000, GSIBase: 0}) {
		t.Errorf("IOAPICs = %+v, want one at 0xfec00000 with GSI base 0 and ID 4", m.IOAPICs)
	}
	for _, tc := range []struct {
		irq   uint8
		gsi   uint32
		flags uint16
	}{
		{0, 2, 0},
		{9, 9, acpi.INTITriggerLevel | acpi.INTIPolarityActiveHigh},
		{4, 4, 0},
	} {
		if gsi, flags := m.ISAIRQ(tc.irq); gsi != tc.gsi || flags != tc.flags {
			t.Errorf("ISAIRQ(%d) = %d, %#x, want %d, %#x", tc.irq, gsi, flags, tc.gsi, tc.flags)
		}
	}
	if len(m.LocalAPICNMIs) != 1 || m.LocalAPICNMIs[0].LINT != 1 || m.LocalAPICNMIs[0].ProcessorUID != acpi.LocalAPICNMIAllProcessors {
		t.Errorf("Local APIC NMIs = %+v, want LINT1 on all processors", m.LocalAPICNMIs)
	}

	s5, err := tabs.S5()
	if err != nil || s5 != (acpi.SleepType{A: 5, B: 5}) {
		t.Errorf("S5() = %+v, %v, want {5 5}", s5, err)
	}

	// The project's power-off and reset paths drive the ports the tables name.
	p, err := acpi.NewPower(tabs)
	if err != nil {
		t.Fatal(err)
	}
	p.Polls = 1
	io := &acpitest.Ports{Values: map[uint16]uint32{0x604: acpi.PM1SCIEn}}
	if err := p.Poweroff(io); !errors.Is(err, acpi.ErrStillRunning) {
		t.Errorf("Poweroff() = %v", err)
	}
	if w := io.WritesTo(0x604); len(w) != 2 || w[1].Value != acpi.PM1SCIEn|5<<acpi.PM1SlpTypShift|acpi.PM1SlpEn {
		t.Errorf("PM1a_CNT writes = %v, want SLP_TYP 5 then with SLP_EN", w)
	}
	io = &acpitest.Ports{}
	if err := p.Reset(io, nil); !errors.Is(err, acpi.ErrStillRunning) {
		t.Errorf("Reset() = %v", err)
	}
	if w := io.WritesTo(0xCF9); len(w) != 1 || w[0].Value != 6 {
		t.Errorf("reset writes = %v, want out1(0xcf9, 0x6)", w)
	}
}

func TestReset8042NoPCI(t *testing.T) {
	cfg := testConfig()
	cfg.Reset, cfg.PCI, cfg.PMTimer, cfg.CPUs = Reset8042, nil, 0, 1
	_, tabs := build(t, cfg)
	f, err := tabs.FADT()
	if err != nil {
		t.Fatal(err)
	}
	if f.ResetRegister.Address != 0x64 || f.ResetValue != 0xFE || f.PMTimer != 0 {
		t.Errorf("RESET_REG %+v value %#x, PM timer %#x: want port 0x64 value 0xfe, no timer", f.ResetRegister, f.ResetValue, f.PMTimer)
	}
	d := tabs.Get("DSDT")
	if bytes.Contains(d.Data, []byte("PCI0")) || !bytes.Contains(d.Data, []byte("COM1")) {
		t.Errorf("DSDT without PCI: want COM1 and no PCI0")
	}
}

func TestBuildErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr uint64
		mod  func(*Config)
		want error
	}{
		{"no CPUs", tablesAddr, func(c *Config) { c.CPUs = 0 }, ErrConfig},
		{"too many CPUs", tablesAddr, func(c *Config) { c.CPUs = 256 }, ErrConfig},
		{"no PM1a control", tablesAddr, func(c *Config) { c.PM1aControl = 0 }, ErrConfig},
		{"overlapping blocks", tablesAddr, func(c *Config) { c.PM1aControl = 0x602 }, ErrConfig},
		{"block past 0xffff", tablesAddr, func(c *Config) { c.PMTimer = 0xFFFE }, ErrConfig},
		{"bad reset", tablesAddr, func(c *Config) { c.Reset = 7 }, ErrConfig},
		{"no buses", tablesAddr, func(c *Config) { c.PCI.Buses = 0 }, ErrConfig},
		{"window past 4 GiB", tablesAddr, func(c *Config) { c.PCI.MMIOBase = 0xF0000000; c.PCI.MMIOSize = 0x20000000 }, ErrConfig},
		{"misaligned", tablesAddr + 8, func(*Config) {}, ErrConfig},
		{"beyond RAM", testRAM - 64, func(*Config) {}, ErrNoFit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.mod(&cfg)
			mem := &hv.Memory{Host: make([]byte, testRAM)}
			if _, err := Build(mem, tc.addr, cfg); !errors.Is(err, tc.want) {
				t.Fatalf("Build() = %v, want %v", err, tc.want)
			}
			if !bytes.Equal(mem.Host, make([]byte, testRAM)) {
				t.Errorf("Build() failed but wrote guest memory")
			}
		})
	}
}

func TestAMLEncoding(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x01}},
		{62, []byte{0x3F}},
		{63, []byte{0x41, 0x04}},       // 65 = 0x041
		{0xFFD, []byte{0x4F, 0xFF}},    // 0xFFF
		{0xFFE, []byte{0x81, 0x00, 1}}, // 0x1001
	} {
		if got := pkgLength(tc.n); !bytes.Equal(got, tc.want) {
			t.Errorf("pkgLength(%d) = % x, want % x", tc.n, got, tc.want)
		}
	}
	for id, want := range map[string]uint32{"PNP0501": 0x0105D041, "PNP0A03": 0x030AD041, "PNP0C09": 0x090CD041} {
		if got := eisaID(id); got != want {
			t.Errorf("eisaID(%q) = %#08x, want %#08x", id, got, want)
		}
	}
	for path, want := range map[string]string{
		`\_SB`:           "\\_SB_",
		"COM1":           "COM1",
		`\_SB.PCI0`:      "\\\x2e_SB_PCI0",
		`\_SB.PCI0.ISA`:  "\\\x2f\x03_SB_PCI0ISA_",
		`\`:              "\\\x00",
		"_S5":            "_S5_",
		`_SB.PCI0.S08.X`: "\x2f\x04_SB_PCI0S08_X___",
	} {
		if got := string(nameString(path)); got != want {
			t.Errorf("nameString(%q) = %q, want %q", path, got, want)
		}
	}
	for v, want := range map[uint64][]byte{
		0: {0}, 1: {1}, 5: {0x0A, 5}, 0x3F8: {0x0B, 0xF8, 3}, 0x10000: {0x0C, 0, 0, 1, 0}, 1 << 32: {0x0E, 0, 0, 0, 0, 1, 0, 0, 0},
	} {
		if got := integer(v); !bytes.Equal(got, want) {
			t.Errorf("integer(%#x) = % x, want % x", v, got, want)
		}
	}
	// A package big enough for a multi-byte PkgLength still parses with the project's reader.
	var elems [][]byte
	for range 100 {
		elems = append(elems, integer(0x12345678))
	}
	aml := name("_S5", pkg(append([][]byte{integer(3), integer(4)}, elems...)...))
	if st, err := acpi.FindS5(aml); err != nil || st != (acpi.SleepType{A: 3, B: 4}) {
		t.Errorf("FindS5(%d-byte package) = %+v, %v, want {3 4}", len(aml), st, err)
	}
}

// TestIASL disassembles every table with ACPICA's iasl, the reference AML compiler.
func TestIASL(t *testing.T) {
	iasl, err := exec.LookPath("iasl")
	if err != nil {
		t.Fatal("iasl not found: install Debian's acpica-tools (`apt-get install -y acpica-tools`)")
	}
	_, tabs := build(t, testConfig())
	dir := t.TempDir()
	out := map[string]string{}
	for _, tab := range append([]*acpi.Table{tabs.Root}, tabs.List...) {
		bin := filepath.Join(dir, tab.Signature+".dat")
		if err := os.WriteFile(bin, tab.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(iasl, "-d", bin)
		cmd.Dir = dir
		log, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("iasl -d %s: %v\n%s", tab.Signature, err, log)
		}
		dsl, err := os.ReadFile(strings.TrimSuffix(bin, ".dat") + ".dsl")
		if err != nil {
			t.Fatalf("iasl -d %s: %v\n%s", tab.Signature, err, log)
		}
		out[tab.Signature] = string(dsl)
		if strings.Contains(string(dsl), "Incorrect checksum") || strings.Contains(string(log), "Error") || strings.Contains(string(log), "Warning") || strings.Contains(string(dsl), "**** ") {
			t.Errorf("iasl on %s complains:\n%s\n%s", tab.Signature, log, dsl)
		}
	}
	for sig, wants := range map[string][]string{
		"DSDT": {
			`Name (\_S5, Package (0x04)`,
			`Device (COM1)`,
			`Name (_HID, EisaId ("PNP0501")`,
			`IO (Decode16,`,
			`0x03F8,             // Range Minimum`,
			`IRQNoFlags ()`,
			`{4}`,
			`Device (PCI0)`,
			`Name (_HID, EisaId ("PNP0A03")`,
			`WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,`,
			`WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,`,
			`DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,`,
			`Name (_PRT, Package (0x80)`,
			// Slot 3 INTB#: GSI 16 + (3+1)%8 = 20.
			"Package (0x04)\n                {\n                    0x0003FFFF, \n                    One, \n                    Zero, \n                    0x14\n                }",
		},
		"FACP": {
			`Revision : 06`,
			`SCI Interrupt : 0009`,
			`PM1A Event Block Address : 00000600`,
			`PM1A Control Block Address : 00000604`,
			`Century Index : 32`,
			`8042 Present on ports 60/64 (V2) : 1`,
			`Legacy Devices Supported (V2) : 1`,
			`Hardware Reduced (V5) : 0`,
			`Address : 0000000000000CF9`,
			`Value to cause reset : 06`,
		},
		"APIC": {
			`PC-AT Compatibility : 1`,
			`Address : FEC00000`,
			`Interrupt : 00000002`,
			`Trigger Mode : 3`,
		},
	} {
		// Normalize iasl's aligned columns: "Name   : value" -> "Name : value".
		dsl := out[sig]
		if sig != "DSDT" {
			dsl = normalizeColumns(dsl)
		}
		for _, w := range wants {
			if !strings.Contains(dsl, w) {
				t.Errorf("iasl -d %s: no %q in\n%s", sig, w, out[sig])
			}
		}
	}
	t.Logf("DSDT as iasl reads it:\n%s", out["DSDT"])
}

// normalizeColumns removes the padding iasl puts before the colons of data-table fields.
func normalizeColumns(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if i := strings.Index(line, " : "); i >= 0 {
			line = strings.TrimRight(line[:i], " ") + " : " + strings.TrimSpace(line[i+3:])
		}
		if j := strings.Index(line, "] "); j >= 0 {
			line = strings.TrimSpace(line[j+2:])
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

func TestCPUCounts(t *testing.T) {
	for _, n := range []int{1, 2, 64, MaxCPUs} {
		cfg := testConfig()
		cfg.CPUs = n
		_, tabs := build(t, cfg)
		m, err := tabs.MADT()
		if err != nil {
			t.Fatalf("%d CPUs: MADT() = %v", n, err)
		}
		if len(m.LocalAPICs) != n || len(m.IOAPICs) != 1 || m.IOAPICs[0].ID != cfg.IOAPICID {
			t.Errorf("%d CPUs: %d Local APICs, I/O APICs %+v, want %d and one with ID %d", n, len(m.LocalAPICs), m.IOAPICs, n, cfg.IOAPICID)
		}
		if last := m.LocalAPICs[n-1]; last.APICID != uint32(n-1) || !last.Usable() {
			t.Errorf("%d CPUs: last Local APIC %+v", n, last)
		}
	}
}
