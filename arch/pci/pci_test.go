package pci_test

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/godwit-hv/godwit/arch/pci"
	"github.com/godwit-hv/godwit/arch/pci/pcitest"
)

func addr(b, d, f uint8) pci.Address { return pci.Address{Bus: b, Device: d, Function: f} }

// machine: a host bridge, a multi-function device with functions 0, 1 and 3, a bridge to bus
// 2 holding a device with an I/O BAR and a 64-bit BAR above 4 GiB, and a plain device after
// the bridge on bus 0.
func machine() *pcitest.Config {
	c := pcitest.NewConfig()
	c.Add(addr(0, 0, 0), pcitest.NewFunction(0x8086, 0x1237, 0x06, 0x00, 0))
	c.Add(addr(0, 1, 0), pcitest.NewFunction(0x8086, 0x7000, 0x06, 0x01, 0)).MultiFunction()
	c.Add(addr(0, 1, 1), pcitest.NewFunction(0x8086, 0x7010, 0x01, 0x01, 0x80)).
		AddBAR(4, pcitest.IO, 0xC040, 16, false)
	c.Add(addr(0, 1, 3), pcitest.NewFunction(0x8086, 0x7113, 0x06, 0x80, 0)).SetINTx(9, 1)
	c.Add(addr(0, 1, 5), pcitest.NewFunction(0x8086, 0xFFFE, 0x06, 0x80, 0)) // fn0 says multi: found
	c.Add(addr(0, 2, 1), pcitest.NewFunction(0x1234, 0x1111, 0x03, 0x00, 0)) // fn0 absent: not found
	c.Add(addr(0, 3, 0), pcitest.NewBridge(2))
	dev := c.Add(addr(2, 0, 0), pcitest.NewFunction(0x1AF4, 0x1042, 0x01, 0x00, 0)).SetINTx(11, 1)
	dev.AddBAR(0, pcitest.IO, 0xC000, 64, false)
	dev.AddBAR(1, pcitest.Mem32, 0xFEBD0000, 4096, false)
	dev.AddBAR(4, pcitest.Mem64, 0x8_0000_0000, 16384, true)
	dev.Put16(pci.RegCommand, pci.CmdIOSpace|pci.CmdMemorySpace)
	c.Add(addr(0, 4, 0), pcitest.NewFunction(0x8086, 0x100E, 0x02, 0x00, 0)).
		AddBAR(0, pcitest.Mem32, 0xFEB80000, 128<<10, false)
	return c
}

func TestEnumerate(t *testing.T) {
	c := machine()
	devs, err := pci.Enumerate(c)
	if err != nil {
		t.Fatalf("Enumerate: %v", err)
	}
	var got []string
	for _, d := range devs {
		got = append(got, d.Addr.String())
	}
	want := "00:00.0 00:01.0 00:01.1 00:01.3 00:01.5 00:03.0 02:00.0 00:04.0"
	if strings.Join(got, " ") != want {
		t.Fatalf("Enumerate order = %s, want %s", strings.Join(got, " "), want)
	}
	d := devs[6]
	if d.VendorID != 0x1AF4 || d.DeviceID != 0x1042 || d.Class != 1 || d.InterruptLine != 11 || d.InterruptPin != 1 {
		t.Errorf("02:00.0 identity = %v line %d pin %d", d, d.InterruptLine, d.InterruptPin)
	}
	bars := []pci.BAR{
		{Index: 0, Kind: pci.BARIO, Addr: 0xC000, Size: 64},
		{Index: 1, Kind: pci.BARMem32, Addr: 0xFEBD0000, Size: 4096},
		{Index: 2},
		{Index: 3},
		{Index: 4, Kind: pci.BARMem64, Addr: 0x8_0000_0000, Size: 16384, Prefetchable: true},
		{Index: 5},
	}
	for i, w := range bars {
		if d.BARs[i] != w {
			t.Errorf("BAR%d = %v, want %v", i, d.BARs[i], w)
		}
	}
	if b := devs[7].BARs[0]; b.Kind != pci.BARMem32 || b.Size != 128<<10 {
		t.Errorf("00:04.0 BAR0 = %v, want mem32 of 128 KiB", b)
	}
	if b := devs[2].BARs[4]; b.Kind != pci.BARIO || b.Addr != 0xC040 || b.Size != 16 {
		t.Errorf("00:01.1 BAR4 = %v, want io 0xc040+0x10", b)
	}
	for a, f := range c.Funcs {
		if f.ProbedWhileDecoding != 0 {
			t.Errorf("%v: %d BAR probes with decoding on", a, f.ProbedWhileDecoding)
		}
		// Address restored after sizing.
		if a == addr(2, 0, 0) {
			if got := f.Get32(pci.RegBAR0 + 4); got != 0xFEBD0000 {
				t.Errorf("BAR1 after sizing = %#x, want 0xfebd0000", got)
			}
			if got := f.Get16(pci.RegCommand); got != pci.CmdIOSpace|pci.CmdMemorySpace {
				t.Errorf("command after sizing = %#x, want decoding restored", got)
			}
		}
	}
}

func TestEnumerateBridgeLoop(t *testing.T) {
	c := pcitest.NewConfig()
	c.Add(addr(0, 0, 0), pcitest.NewBridge(1))
	c.Add(addr(1, 0, 0), pcitest.NewBridge(2))
	c.Add(addr(2, 0, 0), pcitest.NewBridge(1)) // points back at bus 1
	c.Add(addr(0, 1, 0), pcitest.NewBridge(0)) // unconfigured (secondary 0): not followed
	_, err := pci.Enumerate(c)
	if err == nil || !strings.Contains(err.Error(), "reached twice") {
		t.Fatalf("Enumerate with a bridge loop: err = %v, want \"reached twice\"", err)
	}
}

func TestCapabilities(t *testing.T) {
	tests := []struct {
		name    string
		build   func(f *pcitest.Function)
		want    []uint8
		wantErr string
	}{
		{"none", func(f *pcitest.Function) {}, nil, ""},
		{"chain", func(f *pcitest.Function) {
			f.AddCap(pci.CapVendor, make([]byte, 14))
			f.AddCap(pci.CapMSIX, make([]byte, 10))
			f.AddCap(pci.CapMSI, make([]byte, 12))
		}, []uint8{pci.CapVendor, pci.CapMSIX, pci.CapMSI}, ""},
		{"loop", func(f *pcitest.Function) {
			a := f.AddCap(pci.CapVendor, make([]byte, 2))
			b := f.AddCap(pci.CapMSI, make([]byte, 10))
			f.Space[b+1] = a
		}, []uint8{pci.CapVendor, pci.CapMSI}, "loops"},
		{"into header", func(f *pcitest.Function) {
			a := f.AddCap(pci.CapVendor, make([]byte, 2))
			f.Space[a+1] = 0x10
		}, []uint8{pci.CapVendor}, "into the header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := pcitest.NewConfig()
			f := c.Add(addr(0, 0, 0), pcitest.NewFunction(1, 2, 3, 4, 5))
			tt.build(f)
			devs, err := pci.Enumerate(c)
			if err != nil {
				t.Fatal(err)
			}
			d := devs[0]
			var ids []uint8
			for _, c := range d.Caps {
				ids = append(ids, c.ID)
			}
			if string(ids) != string(tt.want) {
				t.Errorf("caps = %x, want %x", ids, tt.want)
			}
			if tt.wantErr == "" && d.CapErr != nil || tt.wantErr != "" && (d.CapErr == nil || !strings.Contains(d.CapErr.Error(), tt.wantErr)) {
				t.Errorf("CapErr = %v, want %q", d.CapErr, tt.wantErr)
			}
		})
	}
}

func TestEnableMSI(t *testing.T) {
	for _, is64 := range []bool{false, true} {
		c := pcitest.NewConfig()
		f := c.Add(addr(0, 5, 0), pcitest.NewFunction(1, 2, 2, 0, 0))
		body := make([]byte, 12)
		ctl := uint16(0x3 << 1) // 8 messages capable
		if is64 {
			ctl |= 1 << 7
		}
		binary.LittleEndian.PutUint16(body, ctl)
		at := int(f.AddCap(pci.CapMSI, body))
		devs, _ := pci.Enumerate(c)
		d := devs[0]
		if err := d.EnableMSI(0xFEE01000, 0x41); err != nil {
			t.Fatal(err)
		}
		if got := f.Get32(at + 4); got != 0xFEE01000 {
			t.Errorf("64-bit %v: address = %#x", is64, got)
		}
		dataOff := at + 8
		if is64 {
			dataOff = at + 12
		}
		if got := f.Get16(dataOff); got != 0x41 {
			t.Errorf("64-bit %v: data = %#x, want 0x41", is64, got)
		}
		if got := f.Get16(at + 2); got&1 == 0 || got&0x70 != 0 {
			t.Errorf("64-bit %v: control = %#x, want enabled with one message", is64, got)
		}
		if d.Command()&pci.CmdINTxDisable == 0 {
			t.Errorf("INTx still enabled with MSI on")
		}
		if err := d.EnableMSI(0x1_0000_0000, 1); is64 == (err != nil) {
			t.Errorf("64-bit %v: address above 4 GiB: err = %v", is64, err)
		}
	}
	c := pcitest.NewConfig()
	c.Add(addr(0, 0, 0), pcitest.NewFunction(1, 2, 2, 0, 0))
	devs, _ := pci.Enumerate(c)
	if err := devs[0].EnableMSI(0xFEE00000, 0x30); !errors.Is(err, pci.ErrNoCapability) {
		t.Errorf("EnableMSI without the capability: %v, want ErrNoCapability", err)
	}
}

func TestMSIX(t *testing.T) {
	c := pcitest.NewConfig()
	f := c.Add(addr(0, 6, 0), pcitest.NewFunction(0x1AF4, 0x1041, 2, 0, 0))
	f.AddBAR(1, pcitest.Mem32, 0xFEBD1000, 4096, false)
	body := make([]byte, 10)
	binary.LittleEndian.PutUint16(body[0:], 3-1)     // 3 entries
	binary.LittleEndian.PutUint32(body[2:], 0x800|1) // table in BAR1 at 0x800
	binary.LittleEndian.PutUint32(body[6:], 0xC00|1) // PBA
	at := int(f.AddCap(pci.CapMSIX, body))
	devs, err := pci.Enumerate(c)
	if err != nil {
		t.Fatal(err)
	}
	d := devs[0]
	table := pcitest.NewRegion(4096)
	var mapped pci.BAR
	m, err := d.OpenMSIX(func(b pci.BAR) (pci.Region, error) { mapped = b; return table, nil })
	if err != nil {
		t.Fatal(err)
	}
	if mapped.Index != 1 || m.Entries() != 3 || m.TableOffset != 0x800 {
		t.Fatalf("OpenMSIX mapped %v, %d entries at %#x; want BAR1, 3 at 0x800", mapped, m.Entries(), m.TableOffset)
	}
	for i := 0; i < 3; i++ {
		if got := table.Read32(0x800 + uint64(i)*16 + 12); got&1 == 0 {
			t.Errorf("entry %d not masked after open", i)
		}
	}
	if err := m.Set(2, 0xFEE00000, 0x52); err != nil {
		t.Fatal(err)
	}
	e := uint64(0x800 + 2*16)
	if table.Read32(e) != 0xFEE00000 || table.Read32(e+4) != 0 || table.Read32(e+8) != 0x52 || table.Read32(e+12)&1 != 0 {
		t.Errorf("entry 2 = % x, want address 0xfee00000 data 0x52 unmasked", table.Mem[e:e+16])
	}
	if err := m.Set(3, 0, 0); err == nil {
		t.Errorf("Set(3) on a 3-entry table succeeded")
	}
	m.Enable()
	if got := f.Get16(at + 2); got&(1<<15) == 0 || got&(1<<14) != 0 {
		t.Errorf("control after Enable = %#x, want enabled, function unmasked", got)
	}
	if d.Command()&pci.CmdINTxDisable == 0 {
		t.Errorf("INTx still enabled with MSI-X on")
	}
	// A table that does not fit its BAR is refused.
	binary.LittleEndian.PutUint32(f.Space[at+4:], 0xFF8|1)
	if _, err := d.OpenMSIX(func(b pci.BAR) (pci.Region, error) { return pcitest.NewRegion(4096), nil }); err == nil {
		t.Errorf("OpenMSIX with the table past the BAR's end succeeded")
	}
}

func TestINTxRoute(t *testing.T) {
	c := pcitest.NewConfig()
	c.Add(addr(0, 0, 0), pcitest.NewFunction(1, 2, 2, 0, 0)).SetINTx(0xFF, 1)
	c.Add(addr(0, 1, 0), pcitest.NewFunction(1, 2, 2, 0, 0)).SetINTx(11, 0)
	devs, _ := pci.Enumerate(c)
	if _, err := devs[0].INTxRoute(); err == nil || !strings.Contains(err.Error(), "not routed") {
		t.Errorf("INTxRoute with line 0xff: %v", err)
	}
	if _, err := devs[1].INTxRoute(); err == nil || !strings.Contains(err.Error(), "no INTx pin") {
		t.Errorf("INTxRoute with pin 0: %v", err)
	}
}

func TestSub(t *testing.T) {
	r := pcitest.NewRegion(64)
	s, err := pci.Sub(r, 16, 32)
	if err != nil {
		t.Fatal(err)
	}
	s.Write32(4, 0xAABBCCDD)
	if got := r.Read32(20); got != 0xAABBCCDD {
		t.Errorf("write through Sub landed as %#x at 20", got)
	}
	for _, bad := range [][2]uint64{{60, 8}, {^uint64(0), 2}} {
		if _, err := pci.Sub(r, bad[0], bad[1]); err == nil {
			t.Errorf("Sub(%d, %d) of 64 bytes succeeded", bad[0], bad[1])
		}
	}
}
