package pci_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/godwit-hv/godwit/hv/bus"
	. "github.com/godwit-hv/godwit/hv/dev/pci"
)

// rig is a bridge on a PIO bus, accessed as a guest would.
type rig struct {
	t *testing.T
	b *bus.Bus
}

func newRig(t *testing.T) (*rig, *Bridge) {
	t.Helper()
	br, err := NewBridge(BridgeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b := bus.New()
	if err := b.Register(bus.PIO, ConfigAddressPort, PortRange, "pci", br); err != nil {
		t.Fatal(err)
	}
	return &rig{t, b}, br
}

func cfgAddr(dev, fn, reg int) uint32 {
	return 1<<31 | uint32(dev)<<11 | uint32(fn)<<8 | uint32(reg&0xfc)
}

func (r *rig) read(dev, reg, size int) uint32 {
	r.t.Helper()
	var a [4]byte
	binary.LittleEndian.PutUint32(a[:], cfgAddr(dev, 0, reg))
	if err := r.b.Write(bus.PIO, ConfigAddressPort, a[:]); err != nil {
		r.t.Fatal(err)
	}
	var d [4]byte
	if err := r.b.Read(bus.PIO, ConfigDataPort+uint64(reg&3), d[:size]); err != nil {
		r.t.Fatal(err)
	}
	return binary.LittleEndian.Uint32(d[:])
}

func (r *rig) write(dev, reg, size int, v uint32) error {
	r.t.Helper()
	var a [4]byte
	binary.LittleEndian.PutUint32(a[:], cfgAddr(dev, 0, reg))
	if err := r.b.Write(bus.PIO, ConfigAddressPort, a[:]); err != nil {
		r.t.Fatal(err)
	}
	var d [4]byte
	binary.LittleEndian.PutUint32(d[:], v)
	return r.b.Write(bus.PIO, ConfigDataPort+uint64(reg&3), d[:size])
}

type dummy struct{ reads int }

func (d *dummy) Read(off uint64, data []byte) error {
	d.reads++
	for i := range data {
		data[i] = 0x5a
	}
	return nil
}
func (d *dummy) Write(off uint64, data []byte) error { return nil }

func newDev(t *testing.T, b *bus.Bus, irq func(bool)) (*Function, *dummy, *dummy) {
	t.Helper()
	mem, io := &dummy{}, &dummy{}
	f, err := NewFunction(Config{
		Header: Header{
			VendorID: 0x1af4, DeviceID: 0x1042, RevisionID: 1,
			Class: ClassMassStorage, SubsystemVendorID: 0x1af4, SubsystemID: 2,
			InterruptPin: PinINTA, InterruptLine: 11,
			BARs: [NumBARs]BARSpec{
				0: {Size: 0x4000},
				2: {Size: 0x100000, Bit64: true, Prefetchable: true},
				4: {Size: 0x20, IO: true},
			},
		},
		Remap: BusMapper(b, "dev", [NumBARs]bus.Device{0: mem, 4: io}),
		IRQ:   irq,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f, mem, io
}

func TestEnumeration(t *testing.T) {
	r, br := newRig(t)
	f, _, _ := newDev(t, r.b, nil)
	if err := br.Attach(3, f); err != nil {
		t.Fatal(err)
	}
	if err := br.Attach(3, f); !errors.Is(err, ErrSlot) {
		t.Errorf("Attach twice = %v, want ErrSlot", err)
	}
	tests := []struct {
		dev, reg, size int
		want           uint32
	}{
		{0, VendorID, 4, DefaultBridgeDevice<<16 | DefaultBridgeVendor},
		{0, ClassSub, 2, ClassBridge<<8 | SubclassHostBridge},
		{3, VendorID, 2, 0x1af4},
		{3, DeviceID, 2, 0x1042},
		{3, RevisionID, 4, ClassMassStorage<<24 | 1},
		{3, HeaderType, 1, 0},
		{3, Status, 2, StatusCapabilities * 0}, // no capability yet
		{3, InterruptLine, 2, PinINTA<<8 | 11},
		{3, SubsystemVendorID, 4, 2<<16 | 0x1af4},
		{3, BAR0 + 8, 4, BARMem64 | BARPrefetchable},
		{3, BAR0 + 16, 4, BARSpaceIO},
		{3, BAR0 + 4, 4, 0},
		{5, VendorID, 4, 0xffffffff}, // absent device
		{5, VendorID, 1, 0xff},       // absent device, byte read
		{31, DeviceID, 2, 0xffff},    // absent device
	}
	for _, tt := range tests {
		mask := uint32(1)<<(8*tt.size) - 1
		if tt.size == 4 {
			mask = ^uint32(0)
		}
		if got := r.read(tt.dev, tt.reg, tt.size) & mask; got != tt.want {
			t.Errorf("read(00:%02x.0, %#x, %d) = %#x, want %#x", tt.dev, tt.reg, tt.size, got, tt.want)
		}
	}
	// Function 1 and bus 1 are absent.
	var a [4]byte
	binary.LittleEndian.PutUint32(a[:], cfgAddr(3, 1, 0))
	r.b.Write(bus.PIO, ConfigAddressPort, a[:])
	var d [4]byte
	r.b.Read(bus.PIO, ConfigDataPort, d[:])
	if got := binary.LittleEndian.Uint32(d[:]); got != 0xffffffff {
		t.Errorf("read 00:03.1 = %#x, want all ones", got)
	}
	binary.LittleEndian.PutUint32(a[:], 1<<31|1<<16)
	r.b.Write(bus.PIO, ConfigAddressPort, a[:])
	r.b.Read(bus.PIO, ConfigDataPort, d[:])
	if got := binary.LittleEndian.Uint32(d[:]); got != 0xffffffff {
		t.Errorf("read 01:00.0 = %#x, want all ones", got)
	}
	// CONFIG_ADDRESS reads back with bits 1:0 and 30:24 clear.
	binary.LittleEndian.PutUint32(a[:], 0xffffffff)
	r.b.Write(bus.PIO, ConfigAddressPort, a[:])
	r.b.Read(bus.PIO, ConfigAddressPort, d[:])
	if got := binary.LittleEndian.Uint32(d[:]); got != 0x80fffffc {
		t.Errorf("CONFIG_ADDRESS = %#x, want 0x80fffffc", got)
	}
}

func TestBARProbeAndRelocate(t *testing.T) {
	r, br := newRig(t)
	f, mem, io := newDev(t, r.b, nil)
	if err := br.Attach(2, f); err != nil {
		t.Fatal(err)
	}
	// Size probing, as Linux does it: decode off, write all ones, read, restore.
	probes := []struct {
		reg  int
		want uint32
	}{
		{BAR0, 0xffffc000},
		{BAR0 + 4, 0},
		{BAR0 + 8, 0xfff00000 | BARMem64 | BARPrefetchable},
		{BAR0 + 12, 0xffffffff},
		{BAR0 + 16, 0xffffffe0 | BARSpaceIO},
		{BAR0 + 20, 0},
		{ExpansionROMBase, 0},
	}
	for _, p := range probes {
		if err := r.write(2, p.reg, 4, 0xffffffff); err != nil {
			t.Fatal(err)
		}
		if got := r.read(2, p.reg, 4); got != p.want {
			t.Errorf("probe %#x = %#x, want %#x", p.reg, got, p.want)
		}
		if err := r.write(2, p.reg, 4, 0); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.b.Ranges()) != 1 {
		t.Fatalf("ranges after probing = %v, want only the bridge", r.b.Ranges())
	}
	// Program and enable.
	r.write(2, BAR0, 4, 0xfebf0000|0x123) // low bits ignored
	r.write(2, BAR0+8, 4, 0x00000000)
	r.write(2, BAR0+12, 4, 0x1)
	r.write(2, BAR0+16, 4, 0xc040)
	if got := r.read(2, BAR0, 4); got != 0xfebf0000 {
		t.Errorf("BAR0 = %#x, want 0xfebf0000", got)
	}
	if err := r.write(2, Command, 2, CommandMemorySpace|CommandIOSpace|CommandBusMaster); err != nil {
		t.Fatal(err)
	}
	var b [4]byte
	r.b.Read(bus.MMIO, 0xfebf0010, b[:])
	r.b.Read(bus.PIO, 0xc044, b[:2])
	if mem.reads != 1 || io.reads != 1 {
		t.Errorf("reads mem %d io %d, want 1 1", mem.reads, io.reads)
	}
	if m := f.Mapping(2); !m.Enabled || m.Addr != 0x100000000 {
		t.Errorf("Mapping(2) = %+v, want 4 GiB, enabled (with no handler on the bus)", m)
	}
	// Relocate BAR0 with decode on.
	if err := r.write(2, BAR0, 4, 0xe0000000); err != nil {
		t.Fatal(err)
	}
	r.b.Read(bus.MMIO, 0xfebf0010, b[:])
	if mem.reads != 1 {
		t.Errorf("old BAR0 range still decodes")
	}
	r.b.Read(bus.MMIO, 0xe0003ffc, b[:])
	if mem.reads != 2 {
		t.Errorf("new BAR0 range does not decode")
	}
	// Decode off unmaps everything.
	r.write(2, Command, 2, 0)
	if rs := r.b.Ranges(); len(rs) != 1 {
		t.Errorf("ranges with decode off = %v", rs)
	}
	// A BAR placed over another device's range reports the conflict.
	r.b.Register(bus.MMIO, 0xd0000000, 0x1000, "other", &dummy{})
	r.write(2, BAR0, 4, 0xd0000000)
	if err := r.write(2, Command, 2, CommandMemorySpace); !errors.Is(err, bus.ErrOverlap) {
		t.Errorf("enable over another device = %v, want ErrOverlap", err)
	}
}

func TestMapping64(t *testing.T) {
	b := bus.New()
	d := &dummy{}
	f, err := NewFunction(Config{
		Header: Header{VendorID: 1, BARs: [NumBARs]BARSpec{2: {Size: 0x4000, Bit64: true}}},
		Remap:  BusMapper(b, "d", [NumBARs]bus.Device{2: d}),
	})
	if err != nil {
		t.Fatal(err)
	}
	w := func(reg int, v uint32) {
		var x [4]byte
		binary.LittleEndian.PutUint32(x[:], v)
		if err := f.WriteConfig(reg, x[:]); err != nil {
			t.Fatal(err)
		}
	}
	w(BAR0+8, 0x8000_0000)
	w(BAR0+12, 0x10)
	w(Command, CommandMemorySpace)
	want := Mapping{BAR: 2, Space: bus.MMIO, Addr: 0x10_8000_0000, Size: 0x4000, Enabled: true}
	if got := f.Mapping(2); got != want {
		t.Errorf("Mapping(2) = %+v, want %+v", got, want)
	}
	if _, off, _, ok := b.Lookup(bus.MMIO, 0x10_8000_0008); !ok || off != 8 {
		t.Errorf("Lookup = %d %v, want 8 true", off, ok)
	}
}

func TestBadConfig(t *testing.T) {
	for _, h := range []Header{
		{VendorID: 0xffff},
		{VendorID: 1, InterruptPin: 5},
		{VendorID: 1, BARs: [NumBARs]BARSpec{0: {Size: 0x3000}}},
		{VendorID: 1, BARs: [NumBARs]BARSpec{0: {Size: 8}}},
		{VendorID: 1, BARs: [NumBARs]BARSpec{0: {Size: 0x400, IO: true}}},
		{VendorID: 1, BARs: [NumBARs]BARSpec{5: {Size: 0x1000, Bit64: true}}},
		{VendorID: 1, BARs: [NumBARs]BARSpec{0: {Size: 0x1000, Bit64: true}, 1: {Size: 0x1000}}},
		{VendorID: 1, BARs: [NumBARs]BARSpec{0: {IO: true}}},
	} {
		if _, err := NewFunction(Config{Header: h}); !errors.Is(err, ErrBadConfig) {
			t.Errorf("NewFunction(%+v) = %v, want ErrBadConfig", h, err)
		}
	}
}

func TestCapabilitiesAndWriteMasks(t *testing.T) {
	f, err := NewFunction(Config{Header: Header{VendorID: 1, DeviceID: 2}})
	if err != nil {
		t.Fatal(err)
	}
	o1, err := f.AddCapability(CapIDVendor, []byte{14, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13})
	if err != nil {
		t.Fatal(err)
	}
	o2, err := f.AddCapability(CapIDVendor, []byte{3, 0xaa})
	if err != nil {
		t.Fatal(err)
	}
	var b [4]byte
	rd := func(off, n int) uint32 {
		b = [4]byte{}
		f.ReadConfig(off, b[:n])
		return binary.LittleEndian.Uint32(b[:])
	}
	if got := rd(Status, 2); got&StatusCapabilities == 0 {
		t.Errorf("Status = %#x, want capabilities bit", got)
	}
	// Walk the list like a driver.
	var got []int
	for p := int(rd(CapabilitiesPtr, 1)); p != 0 && len(got) < 10; p = int(rd(p+1, 1)) {
		if id := rd(p, 1); id != CapIDVendor {
			t.Errorf("capability at %#x has ID %#x", p, id)
		}
		got = append(got, p)
	}
	if len(got) != 2 || got[0] != o1 || got[1] != o2 || o1 != 0x40 || o2%4 != 0 {
		t.Errorf("capability walk = %v, want [%#x %#x]", got, o1, o2)
	}
	// Capabilities and identity are read-only; the line register is not.
	f.WriteConfig(o2+2, []byte{0, 0})
	f.WriteConfig(VendorID, []byte{0, 0, 0, 0})
	f.WriteConfig(InterruptLine, []byte{9})
	f.WriteConfig(Command, []byte{0xff, 0xff})
	if rd(o2+2, 2) != 0xaa03 || rd(VendorID, 4) != 0x20001 || rd(InterruptLine, 1) != 9 {
		t.Errorf("after writes: cap %#x id %#x line %d", rd(o2+2, 2), rd(VendorID, 4), rd(InterruptLine, 1))
	}
	// Pin none: Interrupt Disable is not writable.
	if got := rd(Command, 2); got != CommandIOSpace|CommandMemorySpace|CommandBusMaster|CommandSERR {
		t.Errorf("Command = %#x", got)
	}
	if _, err := f.AddCapability(CapIDVendor, make([]byte, 250)); !errors.Is(err, ErrBadConfig) {
		t.Errorf("oversized capability = %v, want ErrBadConfig", err)
	}
}

func TestINTx(t *testing.T) {
	var edges []bool
	b := bus.New()
	f, _, _ := newDev(t, b, func(l bool) { edges = append(edges, l) })
	st := func() uint16 {
		var x [2]byte
		f.ReadConfig(Status, x[:])
		return binary.LittleEndian.Uint16(x[:])
	}
	f.SetIRQ(true)
	if st()&StatusInterrupt == 0 {
		t.Error("Interrupt Status clear while asserted")
	}
	f.WriteConfig(Command, []byte{0, CommandINTxDisable >> 8}) // mask
	f.SetIRQ(true)
	f.WriteConfig(Command, []byte{0, 0}) // unmask: line goes up again
	f.SetIRQ(false)
	want := []bool{true, false, true, false}
	if len(edges) != len(want) {
		t.Fatalf("edges = %v, want %v", edges, want)
	}
	for i := range want {
		if edges[i] != want[i] {
			t.Fatalf("edges = %v, want %v", edges, want)
		}
	}
	// Status W1C bits: writing 1 to a read-only bit does nothing.
	f.WriteConfig(Status, []byte{0xff, 0xff})
	if st() != 0 {
		t.Errorf("Status = %#x after W1C write, want 0", st())
	}
}

func TestStateRoundTrip(t *testing.T) {
	r, br := newRig(t)
	f, mem, _ := newDev(t, r.b, nil)
	br.Attach(4, f)
	r.write(4, BAR0, 4, 0xfe000000)
	r.write(4, Command, 2, CommandMemorySpace|CommandBusMaster)
	r.write(4, InterruptLine, 1, 10)
	f.SetIRQ(true)
	r.read(4, 0, 4) // leave a latched address
	fs, bs := f.Save(), br.Save()

	// A new host: same device, fresh bus.
	r2, br2 := newRig(t)
	var lines []bool
	f2, mem2, _ := newDev(t, r2.b, func(l bool) { lines = append(lines, l) })
	br2.Attach(4, f2)
	if err := f2.Restore(fs); err != nil {
		t.Fatal(err)
	}
	if err := br2.Restore(bs); err != nil {
		t.Fatal(err)
	}
	if f2.Save() != fs || br2.Save() != bs {
		t.Errorf("Save after Restore differs")
	}
	if len(lines) != 1 || !lines[0] {
		t.Errorf("IRQ after Restore = %v, want [true]", lines)
	}
	var b [4]byte
	r2.b.Read(bus.MMIO, 0xfe000100, b[:])
	if mem2.reads != 1 || mem.reads != 0 {
		t.Errorf("restored BAR0 does not decode on the new bus")
	}
	if got := r2.read(4, BAR0, 4); got != 0xfe000000 {
		t.Errorf("restored BAR0 = %#x", got)
	}
	// A state from another device is refused.
	bad := fs
	bad.Space[DeviceID] ^= 1
	if err := f2.Restore(bad); !errors.Is(err, ErrState) {
		t.Errorf("Restore(other device) = %v, want ErrState", err)
	}
	if err := br2.Restore(BridgeState{Address: 3}); !errors.Is(err, ErrState) {
		t.Errorf("Restore(bad address) = %v, want ErrState", err)
	}
}

func TestConfigAccessDoesNotAllocate(t *testing.T) {
	r, br := newRig(t)
	f, _, _ := newDev(t, r.b, nil)
	br.Attach(1, f)
	var a, d [4]byte
	binary.LittleEndian.PutUint32(a[:], cfgAddr(1, 0, InterruptLine))
	n := testing.AllocsPerRun(100, func() {
		r.b.Write(bus.PIO, ConfigAddressPort, a[:])
		r.b.Read(bus.PIO, ConfigDataPort, d[:])
		r.b.Write(bus.PIO, ConfigDataPort, d[:1])
	})
	if n != 0 {
		t.Errorf("config access allocates %v times", n)
	}
}
