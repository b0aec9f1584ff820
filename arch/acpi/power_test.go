package acpi

import (
	"errors"
	"reflect"
	"testing"

	"github.com/godwit-hv/godwit/arch/acpi/acpitest"
)

// testPower returns a Power over the synthetic machine's FADT, with the FADT edited by edit.
func testPower(t *testing.T, s5 SleepType, edit func(f *acpitest.FADT)) *Power {
	t.Helper()
	spec := testFADTSpec()
	if edit != nil {
		edit(&spec)
	}
	b := spec.Bytes()
	f, err := ParseFADT(&Table{Header: parseHeader(b), Address: testFADT, Data: b})
	if err != nil {
		t.Fatal(err)
	}
	return &Power{FADT: f, S5: s5, Polls: 100}
}

// errPoweredOff is panicked by a fake when the modelled machine loses power.
var errPoweredOff = errors.New("powered off")

// runUntilOff calls f and reports whether the fake panicked with errPoweredOff.
func runUntilOff(t *testing.T, f func() error) (off bool, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			if r != errPoweredOff {
				panic(r)
			}
			off = true
		}
	}()
	return false, f()
}

func TestPoweroffQEMU(t *testing.T) {
	// QEMU i440fx: PM1a_CNT 0x604, \_S5 = {0, 0}, already in ACPI mode.
	p := testPower(t, SleepType{0, 0}, nil)
	io := &acpitest.Ports{Values: map[uint16]uint32{testPM1aCnt: PM1SCIEn}}
	io.OnWrite = func(io *acpitest.Ports, a acpitest.Access) {
		if a.Port == testPM1aCnt && a.Value&PM1SlpEn != 0 {
			panic(errPoweredOff)
		}
	}
	off, err := runUntilOff(t, func() error { return p.Poweroff(io) })
	if !off {
		t.Fatalf("Poweroff returned %v without setting SLP_EN", err)
	}
	want := []acpitest.Access{
		{Port: testPM1aCnt, Size: 2, Value: PM1SCIEn},            // SLP_TYP 0, SCI_EN preserved
		{Port: testPM1aCnt, Size: 2, Value: PM1SCIEn | PM1SlpEn}, // then SLP_EN
	}
	if !reflect.DeepEqual(io.Writes, want) {
		t.Errorf("Poweroff writes = %v, want %v", io.Writes, want)
	}
}

func TestPoweroffBothBlocks(t *testing.T) {
	p := testPower(t, SleepType{5, 7}, func(f *acpitest.FADT) { f.PM1bCntBlk = testPM1bCnt })
	io := &acpitest.Ports{Values: map[uint16]uint32{testPM1aCnt: PM1SCIEn, testPM1bCnt: 1 << 9}}
	err := p.Poweroff(io)
	if !errors.Is(err, ErrStillRunning) {
		t.Errorf("Poweroff on a fake that never powers off = %v, want ErrStillRunning", err)
	}
	want := []acpitest.Access{
		{Port: testPM1aCnt, Size: 2, Value: 5<<10 | PM1SCIEn},
		{Port: testPM1bCnt, Size: 2, Value: 7<<10 | 1<<9},
		{Port: testPM1aCnt, Size: 2, Value: 5<<10 | PM1SlpEn | PM1SCIEn},
		{Port: testPM1bCnt, Size: 2, Value: 7<<10 | PM1SlpEn | 1<<9},
	}
	if !reflect.DeepEqual(io.Writes, want) {
		t.Errorf("Poweroff writes = %v, want %v", io.Writes, want)
	}
	if io.Reads[ioDelayPort] != p.Polls {
		t.Errorf("Poweroff waited %d polls, want %d", io.Reads[ioDelayPort], p.Polls)
	}
}

func TestPoweroffEnablesACPIMode(t *testing.T) {
	p := testPower(t, SleepType{5, 5}, nil)
	io := &acpitest.Ports{Values: map[uint16]uint32{testPM1aCnt: 0}}
	io.OnWrite = func(io *acpitest.Ports, a acpitest.Access) {
		if a.Port == testSMICmd && a.Value == testACPIEn {
			io.Values[testPM1aCnt] |= PM1SCIEn // the SMI handler sets SCI_EN
		}
	}
	if err := p.Poweroff(io); !errors.Is(err, ErrStillRunning) || errors.Is(err, ErrTimeout) {
		t.Errorf("Poweroff = %v, want ErrStillRunning only", err)
	}
	want := []acpitest.Access{
		{Port: testSMICmd, Size: 1, Value: testACPIEn},
		{Port: testPM1aCnt, Size: 2, Value: 5<<10 | PM1SCIEn},
		{Port: testPM1aCnt, Size: 2, Value: 5<<10 | PM1SCIEn | PM1SlpEn},
	}
	if !reflect.DeepEqual(io.Writes, want) {
		t.Errorf("Poweroff writes = %v, want %v", io.Writes, want)
	}
}

func TestPoweroffACPIEnableTimeout(t *testing.T) {
	p := testPower(t, SleepType{5, 5}, nil)
	io := &acpitest.Ports{}
	err := p.Poweroff(io)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrStillRunning) {
		t.Errorf("Poweroff = %v, want ErrTimeout (SCI_EN never set) and ErrStillRunning", err)
	}
	// The sleep request is still made: some firmware honours SLP_EN in legacy mode.
	if got := io.WritesTo(testPM1aCnt); len(got) != 2 || got[1].Value != 5<<10|PM1SlpEn {
		t.Errorf("PM1a_CNT writes = %v, want SLP_TYP then SLP_TYP|SLP_EN", got)
	}
}

func TestPoweroffNoSMICmd(t *testing.T) {
	p := testPower(t, SleepType{5, 5}, func(f *acpitest.FADT) { f.SMICmd = 0 })
	io := &acpitest.Ports{}
	if err := p.Poweroff(io); errors.Is(err, ErrTimeout) || !errors.Is(err, ErrStillRunning) {
		t.Errorf("Poweroff = %v, want ErrStillRunning without ErrTimeout", err)
	}
	if got := io.WritesTo(testSMICmd); len(got) != 0 {
		t.Errorf("SMI_CMD writes = %v, want none", got)
	}
}

func TestPoweroffErrors(t *testing.T) {
	tests := []struct {
		name string
		p    *Power
		want error
	}{
		{"no S5", &Power{FADT: testPower(t, SleepType{}, nil).FADT, S5Err: ErrNotFound}, ErrNotFound},
		{"no PM1a", testPower(t, SleepType{}, func(f *acpitest.FADT) { f.PM1aCntBlk = 0 }), ErrNotFound},
		{"PM1a in memory", testPower(t, SleepType{}, func(f *acpitest.FADT) {
			f.PM1aCntBlk = 0
			f.XPM1aCntBlk = acpitest.GAS{Space: SpaceSystemMemory, BitWidth: 16, Address: 0xFED80004}
		}), ErrUnsupported},
		{"PM1a beyond 64K", testPower(t, SleepType{}, func(f *acpitest.FADT) { f.PM1aCntBlk = 0x10004 }), ErrUnsupported},
		{"HW-reduced without sleep control", testPower(t, SleepType{}, func(f *acpitest.FADT) { f.Flags |= FlagHWReducedACPI }), ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			io := &acpitest.Ports{}
			if err := tt.p.Poweroff(io); !errors.Is(err, tt.want) {
				t.Errorf("Poweroff = %v, want %v", err, tt.want)
			}
			if len(io.Writes) != 0 {
				t.Errorf("Poweroff wrote %v, want nothing", io.Writes)
			}
		})
	}
}

func TestPoweroffHardwareReduced(t *testing.T) {
	p := testPower(t, SleepType{5, 0}, func(f *acpitest.FADT) {
		f.Flags |= FlagHWReducedACPI
		f.PM1aCntBlk = 0
		f.SleepControlReg = acpitest.GAS{Space: SpaceSystemIO, BitWidth: 8, Address: 0x1850}
	})
	io := &acpitest.Ports{}
	if err := p.Poweroff(io); !errors.Is(err, ErrStillRunning) {
		t.Errorf("Poweroff = %v, want ErrStillRunning", err)
	}
	want := []acpitest.Access{{Port: 0x1850, Size: 1, Value: 5<<2 | 1<<5}}
	if !reflect.DeepEqual(io.Writes, want) {
		t.Errorf("Poweroff writes = %v, want %v", io.Writes, want)
	}
}

func TestNewPower(t *testing.T) {
	m := newMachine()
	tabs, err := Load(m.mem, m.rsdp)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPower(tabs)
	if err != nil || p.S5 != (SleepType{5, 5}) || p.S5Err != nil || p.FADT.PM1aControl != testPM1aCnt {
		t.Errorf("NewPower = %+v, %v, want S5 {5 5} and PM1a %#x", p, err, testPM1aCnt)
	}
	if _, err := NewPower(&Tables{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("NewPower(no tables) = %v, want ErrNotFound", err)
	}
}

func TestReset(t *testing.T) {
	tests := []struct {
		name      string
		reg       acpitest.GAS
		wantPorts []acpitest.Access
		wantMem   []acpitest.MemWrite
	}{
		{"system I/O 0xCF9", acpitest.GAS{Space: SpaceSystemIO, BitWidth: 8, Address: testResetPort},
			[]acpitest.Access{{Port: testResetPort, Size: 1, Value: 6}}, nil},
		{"system memory", acpitest.GAS{Space: SpaceSystemMemory, BitWidth: 8, Address: 0xFED00040},
			nil, []acpitest.MemWrite{{Addr: 0xFED00040, Value: 6}}},
		{"PCI config 00:1f.0 offset 0x45", acpitest.GAS{Space: SpacePCIConfig, BitWidth: 8, Address: 0x1F<<32 | 0<<16 | 0x45},
			[]acpitest.Access{
				{Port: 0xCF8, Size: 4, Value: 1<<31 | 0x1F<<11 | 0x44},
				{Port: 0xCFD, Size: 1, Value: 6},
			}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPower(t, SleepType{}, func(f *acpitest.FADT) { f.ResetReg = tt.reg })
			io, mem := &acpitest.Ports{}, &acpitest.Memory{}
			if err := p.Reset(io, mem); !errors.Is(err, ErrStillRunning) {
				t.Errorf("Reset = %v, want ErrStillRunning", err)
			}
			ports := io.Writes
			if !reflect.DeepEqual(ports, tt.wantPorts) || !reflect.DeepEqual(mem.Writes, tt.wantMem) {
				t.Errorf("Reset wrote ports %v, memory %v; want %v, %v", ports, mem.Writes, tt.wantPorts, tt.wantMem)
			}
		})
	}
}

func TestResetErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(f *acpitest.FADT)
		mem  MMIO
	}{
		{"RESET_REG_SUP clear", func(f *acpitest.FADT) { f.Flags = 0 }, nil},
		{"memory without MMIO", func(f *acpitest.FADT) {
			f.ResetReg = acpitest.GAS{Space: SpaceSystemMemory, BitWidth: 8, Address: 0xFED00040}
		}, nil},
		{"bit offset", func(f *acpitest.FADT) { f.ResetReg.BitOffset = 1 }, nil},
		{"PCI device out of range", func(f *acpitest.FADT) {
			f.ResetReg = acpitest.GAS{Space: SpacePCIConfig, BitWidth: 8, Address: 0x20 << 32}
		}, nil},
		{"embedded controller space", func(f *acpitest.FADT) { f.ResetReg.Space = 3 }, nil},
		{"I/O port zero", func(f *acpitest.FADT) { f.ResetReg.Address = 0 }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPower(t, SleepType{}, tt.edit)
			io := &acpitest.Ports{}
			if err := p.Reset(io, tt.mem); !errors.Is(err, ErrUnsupported) {
				t.Errorf("Reset = %v, want ErrUnsupported", err)
			}
			if len(io.Writes) != 0 {
				t.Errorf("Reset wrote %v, want nothing", io.Writes)
			}
		})
	}
}

func TestBochsShutdown(t *testing.T) {
	io := &acpitest.Ports{}
	if err := BochsShutdown(io); !errors.Is(err, ErrStillRunning) {
		t.Errorf("BochsShutdown = %v, want ErrStillRunning", err)
	}
	var got []byte
	for _, a := range io.Writes {
		if a.Port != 0x8900 || a.Size != 1 {
			t.Fatalf("BochsShutdown wrote %v, want only byte writes to 0x8900", a)
		}
		got = append(got, byte(a.Value))
	}
	if string(got) != "Shutdown" {
		t.Errorf("BochsShutdown wrote %q, want %q", got, "Shutdown")
	}
}

func TestKeyboardReset(t *testing.T) {
	busy := 3
	io := &acpitest.Ports{Read: func(_ *acpitest.Ports, port uint16, _ int) (uint32, bool) {
		if port == 0x64 && busy > 0 {
			busy--
			return 1 << 1, true // input buffer full
		}
		return 0, false
	}}
	io.OnWrite = func(io *acpitest.Ports, a acpitest.Access) {
		if busy != 0 {
			t.Errorf("KeyboardReset wrote %v while the input buffer was full", a)
		}
	}
	if err := KeyboardReset(io); !errors.Is(err, ErrStillRunning) {
		t.Errorf("KeyboardReset = %v, want ErrStillRunning", err)
	}
	if want := []acpitest.Access{{Port: 0x64, Size: 1, Value: 0xFE}}; !reflect.DeepEqual(io.Writes, want) {
		t.Errorf("KeyboardReset writes = %v, want %v", io.Writes, want)
	}

	stuck := &acpitest.Ports{Values: map[uint16]uint32{0x64: 1 << 1}}
	if err := KeyboardReset(stuck); !errors.Is(err, ErrTimeout) || len(stuck.Writes) != 0 {
		t.Errorf("KeyboardReset(stuck controller) = %v with writes %v, want ErrTimeout and no writes", err, stuck.Writes)
	}
}
