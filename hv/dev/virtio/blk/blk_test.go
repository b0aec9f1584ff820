package blk_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/godwit-hv/godwit/hv"
	"github.com/godwit-hv/godwit/hv/bus"
	"github.com/godwit-hv/godwit/hv/dev/pci"
	"github.com/godwit-hv/godwit/hv/dev/virtio"
	. "github.com/godwit-hv/godwit/hv/dev/virtio/blk"
	"github.com/godwit-hv/godwit/hv/dev/virtio/virtiotest"
)

const (
	memSize   = 4 << 20
	barAddr   = 0xfebf0000
	slot      = 3
	diskBytes = 64 * SectorSize
)

type rig struct {
	t     *testing.T
	mem   *hv.Memory
	b     *bus.Bus
	tr    *virtio.Transport
	disk  *FileDisk
	path  string
	d     *virtiotest.Driver
	q     *virtiotest.VQ
	irq   bool
	edges int
}

func newRig(t *testing.T, cfg Config) *rig {
	t.Helper()
	r := &rig{t: t, mem: &hv.Memory{Host: make([]byte, memSize)}, b: bus.New()}
	r.path = filepath.Join(t.TempDir(), "disk.img")
	img := make([]byte, diskBytes)
	for i := range img {
		img[i] = byte(i / SectorSize)
	}
	if err := os.WriteFile(r.path, img, 0o600); err != nil {
		t.Fatal(err)
	}
	disk, err := OpenFile(r.path, cfg.ReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { disk.Close() })
	r.disk = disk
	if cfg.Disk == nil {
		cfg.Disk = disk
	}
	be, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	br, err := pci.NewBridge(pci.BridgeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.b.Register(bus.PIO, pci.ConfigAddressPort, pci.PortRange, "pci", br); err != nil {
		t.Fatal(err)
	}
	r.tr, err = virtio.New(virtio.Config{
		Backend: be, Mem: r.mem, Bus: r.b, Name: "virtio-blk",
		Class: pci.ClassMassStorage, Subclass: pci.SubclassSCSI, InterruptLine: 11,
		IRQ: func(l bool) { r.irq = l; r.edges++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := br.Attach(slot, r.tr.Function()); err != nil {
		t.Fatal(err)
	}
	r.d = virtiotest.NewDriver(t, r.b, r.mem, slot, 0x10000)
	return r
}

// start probes, negotiates and sets up the request queue.
func (r *rig) start(features uint64) {
	r.t.Helper()
	r.d.Probe(barAddr)
	if _, ok := r.d.Negotiate(features); !ok {
		r.t.Fatalf("device refused features %#x", features)
	}
	r.q = r.d.SetupQueue(0, 16)
	r.d.DriverOK()
}

// req builds a request: header, data segments and status, returning the
// status address.
func (r *rig) req(typ uint32, sector uint64, data []virtiotest.Seg, indirect bool) (head uint16, status uint64) {
	h := r.d.Alloc(16, 8)
	binary.LittleEndian.PutUint32(r.mem.Host[h:], typ)
	binary.LittleEndian.PutUint64(r.mem.Host[h+8:], sector)
	status = r.d.Alloc(1, 1)
	r.mem.Host[status] = 0xee
	segs := append([]virtiotest.Seg{{Addr: h, Len: 16}}, data...)
	segs = append(segs, virtiotest.Seg{Addr: status, Len: 1, Write: true})
	if indirect {
		return r.q.AddIndirect(segs...), status
	}
	return r.q.Add(segs...), status
}

func (r *rig) complete(head uint16, status uint64, wantStatus uint8, wantLen uint32) {
	r.t.Helper()
	r.q.Kick()
	id, n, ok := r.q.PopUsed()
	if !ok {
		r.t.Fatalf("no used element (broken: %v)", r.tr.Broken())
	}
	if id != uint32(head) || n != wantLen {
		r.t.Errorf("used = (%d, %d), want (%d, %d)", id, n, head, wantLen)
	}
	if got := r.mem.Host[status]; got != wantStatus {
		r.t.Errorf("status = %d, want %d", got, wantStatus)
	}
}

func (r *rig) diskContents() []byte {
	b, err := os.ReadFile(r.path)
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

const wantFeatures = virtio.FeatureVersion1 | virtio.FeatureRingIndirectDesc | FeatureFlush |
	FeatureSegMax | FeatureSizeMax | FeatureBlkSize

func TestIdentityAndConfig(t *testing.T) {
	r := newRig(t, Config{ID: "godwit-disk-0", BlockSize: 4096})
	if got := r.d.CfgRead(pci.VendorID, 4); got != (virtio.PCIDeviceIDBase+virtio.DeviceBlock)<<16|virtio.PCIVendorID {
		t.Errorf("vendor/device = %#x, want 0x10421af4", got)
	}
	if got := r.d.CfgRead(pci.RevisionID, 1); got < 1 {
		t.Errorf("revision = %d, want >= 1", got)
	}
	r.d.Probe(barAddr)
	if r.d.BARSize != 0x4000 || r.d.NotifyMult == 0 {
		t.Errorf("BAR size %#x, notify multiplier %d", r.d.BARSize, r.d.NotifyMult)
	}
	f := r.d.DeviceFeatures()
	if f&virtio.FeatureVersion1 == 0 || f&FeatureFlush == 0 || f&FeatureRO != 0 || f&virtio.FeatureRingPacked != 0 {
		t.Errorf("device features = %#x", f)
	}
	c := r.d.Device
	for _, tt := range []struct {
		name      string
		off, size int
		want      uint64
	}{
		{"capacity", CfgCapacity, 8, 64},
		{"capacity lo", CfgCapacity, 4, 64},
		{"size_max", CfgSizeMax, 4, DefaultSizeMax},
		{"seg_max", CfgSegMax, 4, DefaultSegMax},
		{"blk_size", CfgBlkSize, 4, 4096},
	} {
		if got := r.d.Read(c+uint64(tt.off), tt.size); got != tt.want {
			t.Errorf("config %s = %d, want %d", tt.name, got, tt.want)
		}
	}
	if got := r.d.Read(r.d.Common+virtio.CommonNumQueues, 2); got != 1 {
		t.Errorf("num_queues = %d, want 1", got)
	}
}

func TestReadWriteFlushGetID(t *testing.T) {
	for _, indirect := range []bool{false, true} {
		r := newRig(t, Config{ID: "serial-1234"})
		r.start(wantFeatures)

		// Write sectors 2..4 from two segments.
		a := r.d.Alloc(1024, 512)
		b := r.d.Alloc(512, 512)
		for i := range 1024 {
			r.mem.Host[a+uint64(i)] = 0xa0
		}
		for i := range 512 {
			r.mem.Host[b+uint64(i)] = 0xb0
		}
		head, st := r.req(TypeOut, 2, []virtiotest.Seg{{Addr: a, Len: 1024}, {Addr: b, Len: 512}}, indirect)
		r.complete(head, st, StatusOK, 1)
		img := r.diskContents()
		if !bytes.Equal(img[2*512:4*512], bytes.Repeat([]byte{0xa0}, 1024)) || !bytes.Equal(img[4*512:5*512], bytes.Repeat([]byte{0xb0}, 512)) {
			t.Errorf("disk after write: sectors 2-4 = %x...", img[2*512:2*512+8])
		}
		if img[5*512] != 5 || img[2*512-1] != 1 {
			t.Errorf("write spilled outside sectors 2-4")
		}
		if !r.irq {
			t.Errorf("no interrupt after completion")
		}
		if isr := r.d.Read(r.d.ISR, 1); isr != virtio.ISRQueue || r.irq {
			t.Errorf("ISR = %d (line %v), want %d and line dropped", isr, r.irq, virtio.ISRQueue)
		}

		// Read sectors 3..6 into one buffer.
		buf := r.d.Alloc(4*512, 512)
		head, st = r.req(TypeIn, 3, []virtiotest.Seg{{Addr: buf, Len: 4 * 512, Write: true}}, indirect)
		r.complete(head, st, StatusOK, 4*512+1)
		got := r.mem.Host[buf : buf+4*512]
		want := append(bytes.Repeat([]byte{0xa0}, 512), bytes.Repeat([]byte{0xb0}, 512)...)
		want = append(want, bytes.Repeat([]byte{5}, 512)...)
		want = append(want, bytes.Repeat([]byte{6}, 512)...)
		if !bytes.Equal(got, want) {
			t.Errorf("read sectors 3-6 mismatch")
		}

		// Flush.
		head, st = r.req(TypeFlush, 0, nil, indirect)
		r.complete(head, st, StatusOK, 1)

		// GET_ID.
		id := r.d.Alloc(IDBytes, 1)
		head, st = r.req(TypeGetID, 0, []virtiotest.Seg{{Addr: id, Len: IDBytes, Write: true}}, indirect)
		r.complete(head, st, StatusOK, IDBytes+1)
		if got := string(bytes.TrimRight(r.mem.Host[id:id+IDBytes], "\x00")); got != "serial-1234" {
			t.Errorf("GET_ID = %q", got)
		}

		// Errors: beyond the end, straddling the end, partial sector, unknown type.
		for _, tc := range []struct {
			name   string
			typ    uint32
			sector uint64
			n      uint32
			write  bool
			status uint8
		}{
			{"read past end", TypeIn, 64, 512, true, StatusIOErr},
			{"read straddling end", TypeIn, 63, 1024, true, StatusIOErr},
			{"write past end", TypeOut, 1 << 60, 512, false, StatusIOErr},
			{"partial sector", TypeIn, 0, 100, true, StatusIOErr},
			{"read into readable buffer", TypeIn, 0, 512, false, StatusIOErr},
			{"unknown type", 99, 0, 512, true, StatusUnsupp},
			{"last sector", TypeIn, 63, 512, true, StatusOK},
		} {
			p := r.d.Alloc(uint64(tc.n), 8)
			head, st := r.req(tc.typ, tc.sector, []virtiotest.Seg{{Addr: p, Len: tc.n, Write: tc.write}}, indirect)
			r.q.Kick()
			if _, _, ok := r.q.PopUsed(); !ok {
				t.Fatalf("%s: no completion", tc.name)
			}
			_ = head
			if got := r.mem.Host[st]; got != tc.status {
				t.Errorf("%s: status = %d, want %d", tc.name, got, tc.status)
			}
		}
		if err := r.tr.Broken(); err != nil {
			t.Errorf("device broken by valid requests: %v", err)
		}
	}
}

func TestHeaderSplitAcrossDescriptors(t *testing.T) {
	r := newRig(t, Config{})
	r.start(wantFeatures)
	h := r.d.Alloc(16, 8)
	binary.LittleEndian.PutUint32(r.mem.Host[h:], TypeIn)
	binary.LittleEndian.PutUint64(r.mem.Host[h+8:], 7)
	// Header in two pieces; data and status in one writable buffer.
	data := r.d.Alloc(513, 1)
	head := r.q.Add(virtiotest.Seg{Addr: h, Len: 5}, virtiotest.Seg{Addr: h + 5, Len: 11},
		virtiotest.Seg{Addr: data, Len: 513, Write: true})
	r.complete(head, data+512, StatusOK, 513)
	if !bytes.Equal(r.mem.Host[data:data+512], bytes.Repeat([]byte{7}, 512)) {
		t.Errorf("read of sector 7 = %x...", r.mem.Host[data:data+8])
	}
}

func TestReadOnlyRejectsWrites(t *testing.T) {
	r := newRig(t, Config{ReadOnly: true})
	r.start(wantFeatures | FeatureRO)
	if r.tr.Features()&FeatureRO == 0 {
		t.Errorf("RO not negotiated: %#x", r.tr.Features())
	}
	p := r.d.Alloc(512, 512)
	head, st := r.req(TypeOut, 0, []virtiotest.Seg{{Addr: p, Len: 512}}, false)
	r.complete(head, st, StatusIOErr, 1)
}

func TestMissingStatusBreaksDevice(t *testing.T) {
	r := newRig(t, Config{})
	r.start(wantFeatures)
	h := r.d.Alloc(16, 8)
	r.q.Add(virtiotest.Seg{Addr: h, Len: 16})
	r.q.Kick()
	if err := r.tr.Broken(); !errors.Is(err, virtio.ErrMalformed) {
		t.Errorf("Broken() = %v, want ErrMalformed", err)
	}
	if r.d.Status()&virtio.StatusDeviceNeedsReset == 0 {
		t.Errorf("status = %#x, want DEVICE_NEEDS_RESET", r.d.Status())
	}
}

type failingDisk struct{ Disk }

func (failingDisk) Flush() error                            { return errors.New("flush failed") }
func (failingDisk) ReadAt(p []byte, off int64) (int, error) { return 0, errors.New("read failed") }

func TestDiskErrors(t *testing.T) {
	r := newRig(t, Config{})
	r2 := newRig(t, Config{Disk: failingDisk{r.disk}})
	r2.start(wantFeatures)
	head, st := r2.req(TypeFlush, 0, nil, false)
	r2.complete(head, st, StatusIOErr, 1)
	p := r2.d.Alloc(512, 512)
	head, st = r2.req(TypeIn, 0, []virtiotest.Seg{{Addr: p, Len: 512, Write: true}}, false)
	r2.complete(head, st, StatusIOErr, 1)
}

func TestProcessDoesNotAllocate(t *testing.T) {
	r := newRig(t, Config{})
	r.start(wantFeatures)
	buf := r.d.Alloc(4096, 512)
	h := r.d.Alloc(16, 8)
	binary.LittleEndian.PutUint32(r.mem.Host[h:], TypeIn)
	st := r.d.Alloc(1, 1)
	// Reuse descriptors 0..2 for every request; the bus buffers are
	// preallocated so only the device's own allocations count.
	kick, isr := make([]byte, 2), make([]byte, 1)
	n := testing.AllocsPerRun(100, func() {
		r.q.WriteDesc(r.q.Desc, 0, h, 16, virtio.DescFNext, 1)
		r.q.WriteDesc(r.q.Desc, 1, buf, 4096, virtio.DescFNext|virtio.DescFWrite, 2)
		r.q.WriteDesc(r.q.Desc, 2, st, 1, virtio.DescFWrite, 0)
		r.q.Publish(0)
		r.b.Write(bus.MMIO, r.d.NotifyBase, kick)
		r.q.PopUsed()
		r.b.Read(bus.MMIO, r.d.ISR, isr)
	})
	if n != 0 {
		t.Errorf("a read request allocates %v times", n)
	}
	if r.mem.Host[st] != StatusOK {
		t.Errorf("status = %d", r.mem.Host[st])
	}
}
