package virtio_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/godwit-hv/godwit/hv"
	"github.com/godwit-hv/godwit/hv/bus"
	"github.com/godwit-hv/godwit/hv/dev/pci"
	. "github.com/godwit-hv/godwit/hv/dev/virtio"
	"github.com/godwit-hv/godwit/hv/dev/virtio/virtiotest"
)

// echo is a test device type: each chain's readable bytes are copied to
// its writable ones, and the count is the used length.
type echo struct {
	chain  Chain
	resets int
	cfg    [8]byte
}

func (e *echo) Type() uint16                     { return 42 }
func (e *echo) Features() uint64                 { return 1 << 3 }
func (e *echo) QueueSizes() []uint16             { return []uint16{16, 8} }
func (e *echo) ConfigSize() int                  { return len(e.cfg) }
func (e *echo) ReadConfig(off int, data []byte)  { copy(data, e.cfg[off:]) }
func (e *echo) WriteConfig(off int, data []byte) { copy(e.cfg[off:], data) }
func (e *echo) Reset()                           { e.resets++ }
func (e *echo) Process(i int, q *Queue, f uint64) error {
	for {
		ok, err := q.Pop(&e.chain)
		if err != nil || !ok {
			return err
		}
		var in []byte
		for _, b := range e.chain.Bufs {
			if !b.Write {
				in = append(in, b.Data...)
			}
		}
		n := 0
		for _, b := range e.chain.Bufs {
			if b.Write {
				n += copy(b.Data, in[n:])
			}
		}
		if err := q.Push(e.chain.Head, uint32(n)); err != nil {
			return err
		}
	}
}

const (
	memSize = 1 << 20
	barAddr = 0xe0000000
	slot    = 5
)

type rig struct {
	t    *testing.T
	mem  *hv.Memory
	b    *bus.Bus
	be   *echo
	tr   *Transport
	d    *virtiotest.Driver
	irq  bool
	errs []error
}

func newRig(t *testing.T, mem *hv.Memory) *rig {
	t.Helper()
	if mem == nil {
		mem = &hv.Memory{Host: make([]byte, memSize)}
	}
	r := &rig{t: t, mem: mem, b: bus.New(), be: &echo{}}
	br, err := pci.NewBridge(pci.BridgeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.b.Register(bus.PIO, pci.ConfigAddressPort, pci.PortRange, "pci", br); err != nil {
		t.Fatal(err)
	}
	r.tr, err = New(Config{Backend: r.be, Mem: r.mem, Bus: r.b, Name: "echo",
		IRQ: func(l bool) { r.irq = l }, OnError: func(err error) { r.errs = append(r.errs, err) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := br.Attach(slot, r.tr.Function()); err != nil {
		t.Fatal(err)
	}
	r.d = virtiotest.NewDriver(t, r.b, r.mem, slot, 0x1000)
	return r
}

func (r *rig) start(features uint64) (*virtiotest.VQ, *virtiotest.VQ) {
	r.t.Helper()
	r.d.Probe(barAddr)
	if _, ok := r.d.Negotiate(features); !ok {
		r.t.Fatalf("features %#x refused", features)
	}
	q0 := r.d.SetupQueue(0, 16)
	q1 := r.d.SetupQueue(1, 8)
	r.d.DriverOK()
	return q0, q1
}

// echoOnce sends s through q and returns what came back.
func (r *rig) echoOnce(q *virtiotest.VQ, s string) string {
	r.t.Helper()
	in := r.d.Alloc(uint64(len(s)), 1)
	copy(r.mem.Host[in:], s)
	out := r.d.Alloc(uint64(len(s)), 1)
	head := q.Add(virtiotest.Seg{Addr: in, Len: uint32(len(s))}, virtiotest.Seg{Addr: out, Len: uint32(len(s)), Write: true})
	q.Kick()
	id, n, ok := q.PopUsed()
	if !ok || id != uint32(head) || n != uint32(len(s)) {
		r.t.Fatalf("used = (%d, %d, %v), want (%d, %d, true); broken: %v", id, n, ok, head, len(s), r.tr.Broken())
	}
	return string(r.mem.Host[out : out+uint64(len(s))])
}

const base = FeatureVersion1 | FeatureRingIndirectDesc

func TestEcho(t *testing.T) {
	r := newRig(t, nil)
	q0, q1 := r.start(base | FeatureRingEventIdx | 1<<3)
	for i := range 40 { // wraps both rings
		if got := r.echoOnce(q0, "hello"); got != "hello" {
			t.Fatalf("echo %d on queue 0 = %q", i, got)
		}
		if got := r.echoOnce(q1, "world!"); got != "world!" {
			t.Fatalf("echo %d on queue 1 = %q", i, got)
		}
	}
	if q0.AvailEvent() != q0.AvailIdx {
		t.Errorf("avail_event = %d, want %d", q0.AvailEvent(), q0.AvailIdx)
	}
	if r.tr.Features() != base|FeatureRingEventIdx|1<<3 {
		t.Errorf("Features() = %#x", r.tr.Features())
	}
}

func TestFeatureNegotiation(t *testing.T) {
	r := newRig(t, nil)
	r.d.Probe(barAddr)
	if f := r.d.DeviceFeatures(); f != FeatureVersion1|FeatureRingIndirectDesc|FeatureRingEventIdx|1<<3 {
		t.Errorf("device features = %#x", f)
	}
	// VERSION_1 is required.
	if _, ok := r.d.Negotiate(1 << 3); ok {
		t.Error("FEATURES_OK kept without VERSION_1")
	}
	// Features the device did not offer are refused.
	r.d.SetStatus(0)
	r.d.SetStatus(StatusAcknowledge | StatusDriver)
	r.d.WriteFeatures(FeatureVersion1 | 1<<7)
	r.d.SetStatus(StatusAcknowledge | StatusDriver | StatusFeaturesOK)
	if r.d.Status()&StatusFeaturesOK != 0 {
		t.Error("FEATURES_OK kept with an unoffered feature")
	}
	// DRIVER_OK without FEATURES_OK is not taken.
	r.d.SetStatus(StatusAcknowledge | StatusDriver | StatusDriverOK)
	if r.d.Status()&StatusDriverOK != 0 {
		t.Error("DRIVER_OK without FEATURES_OK")
	}
	// Once FEATURES_OK, the driver's features are frozen.
	if _, ok := r.d.Negotiate(FeatureVersion1); !ok {
		t.Fatal("VERSION_1 alone refused")
	}
	r.d.WriteFeatures(FeatureVersion1 | FeatureRingEventIdx)
	if r.tr.Features() != FeatureVersion1 {
		t.Errorf("features changed after FEATURES_OK: %#x", r.tr.Features())
	}
	// Queue beyond num_queues reads size 0.
	r.d.Write(r.d.Common+CommonQueueSelect, 2, 7)
	if got := r.d.Read(r.d.Common+CommonQueueSize, 2); got != 0 {
		t.Errorf("queue 7 size = %d, want 0", got)
	}
	r.d.Write(r.d.Common+CommonQueueSelect, 2, 1)
	if got := r.d.Read(r.d.Common+CommonQueueSize, 2); got != 8 {
		t.Errorf("queue 1 size = %d, want 8", got)
	}
	if got := r.d.Read(r.d.Common+CommonQueueMSIXVector, 2); got != NoVector {
		t.Errorf("queue_msix_vector = %#x, want NO_VECTOR", got)
	}
}

func TestInterruptSuppression(t *testing.T) {
	r := newRig(t, nil)
	q0, _ := r.start(base)
	q0.SetAvailFlags(AvailFNoInterrupt)
	r.echoOnce(q0, "x")
	if r.irq {
		t.Error("interrupt despite VIRTQ_AVAIL_F_NO_INTERRUPT")
	}
	q0.SetAvailFlags(0)
	r.echoOnce(q0, "x")
	if !r.irq {
		t.Error("no interrupt")
	}

	// With EVENT_IDX: interrupt only once used_idx passes used_event.
	r = newRig(t, nil)
	q0, _ = r.start(base | FeatureRingEventIdx)
	q0.SetUsedEvent(2) // want to hear when the third entry is used
	for i, want := range []bool{false, false, true, false} {
		r.echoOnce(q0, "y")
		if r.irq != want {
			t.Errorf("request %d: interrupt %v, want %v", i, r.irq, want)
		}
		r.d.Read(r.d.ISR, 1)
	}
}

func TestMalformedRings(t *testing.T) {
	oob := uint64(memSize) - 4 // buffers crossing the end of RAM
	tests := []struct {
		name     string
		features uint64
		build    func(r *rig, q *virtiotest.VQ)
	}{
		{"head out of range", base, func(r *rig, q *virtiotest.VQ) { q.Publish(16) }},
		{"next out of range", base, func(r *rig, q *virtiotest.VQ) {
			q.WriteDesc(q.Desc, 0, 0x100, 4, DescFNext, 99)
			q.Publish(0)
		}},
		{"loop", base, func(r *rig, q *virtiotest.VQ) {
			q.WriteDesc(q.Desc, 0, 0x100, 4, DescFNext, 1)
			q.WriteDesc(q.Desc, 1, 0x100, 4, DescFNext, 0)
			q.Publish(0)
		}},
		{"self loop", base, func(r *rig, q *virtiotest.VQ) {
			q.WriteDesc(q.Desc, 3, 0x100, 4, DescFNext|DescFWrite, 3)
			q.Publish(3)
		}},
		{"buffer beyond RAM", base, func(r *rig, q *virtiotest.VQ) {
			q.WriteDesc(q.Desc, 0, oob, 8, DescFWrite, 0)
			q.Publish(0)
		}},
		{"huge length", base, func(r *rig, q *virtiotest.VQ) {
			q.WriteDesc(q.Desc, 0, 0x100, 0xffffffff, 0, 0)
			q.Publish(0)
		}},
		{"address wraps", base, func(r *rig, q *virtiotest.VQ) {
			q.WriteDesc(q.Desc, 0, ^uint64(0)-2, 16, 0, 0)
			q.Publish(0)
		}},
		{"avail index too far ahead", base, func(r *rig, q *virtiotest.VQ) {
			for range 17 {
				q.Publish(0)
			}
		}},
		{"indirect not negotiated", FeatureVersion1, func(r *rig, q *virtiotest.VQ) {
			q.WriteDesc(q.Desc, 0, 0x100, 32, DescFIndirect, 0)
			q.Publish(0)
		}},
		{"indirect with next", base, func(r *rig, q *virtiotest.VQ) {
			q.WriteDesc(q.Desc, 0, 0x100, 32, DescFIndirect|DescFNext, 1)
			q.Publish(0)
		}},
		{"indirect table bad length", base, func(r *rig, q *virtiotest.VQ) {
			q.WriteDesc(q.Desc, 0, 0x100, 24, DescFIndirect, 0)
			q.Publish(0)
		}},
		{"indirect table beyond RAM", base, func(r *rig, q *virtiotest.VQ) {
			q.WriteDesc(q.Desc, 0, uint64(memSize)-16, 32, DescFIndirect, 0)
			q.Publish(0)
		}},
		{"nested indirect", base, func(r *rig, q *virtiotest.VQ) {
			tbl := r.d.Alloc(32, 16)
			q.WriteDesc(tbl, 0, tbl, 32, DescFIndirect, 0)
			q.WriteDesc(q.Desc, 0, tbl, 32, DescFIndirect, 0)
			q.Publish(0)
		}},
		{"loop in indirect table", base, func(r *rig, q *virtiotest.VQ) {
			tbl := r.d.Alloc(32, 16)
			q.WriteDesc(tbl, 0, 0x100, 4, DescFNext, 1)
			q.WriteDesc(tbl, 1, 0x100, 4, DescFNext, 0)
			q.WriteDesc(q.Desc, 0, tbl, 32, DescFIndirect, 0)
			q.Publish(0)
		}},
		{"next beyond indirect table", base, func(r *rig, q *virtiotest.VQ) {
			tbl := r.d.Alloc(32, 16)
			q.WriteDesc(tbl, 0, 0x100, 4, DescFNext, 2)
			q.WriteDesc(q.Desc, 0, tbl, 32, DescFIndirect, 0)
			q.Publish(0)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, nil)
			q0, _ := r.start(tt.features)
			tt.build(r, q0)
			q0.Kick()
			r.checkBroken(t)
			// Further notifications do nothing, and never panic.
			q0.Kick()
			if _, _, ok := q0.PopUsed(); ok {
				t.Error("a used element from a broken ring")
			}
			r.checkRecovers(t)
		})
	}
}

func (r *rig) checkBroken(t *testing.T) {
	t.Helper()
	if err := r.tr.Broken(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Broken() = %v, want ErrMalformed", err)
	}
	if len(r.errs) != 1 {
		t.Errorf("OnError called %d times, want 1", len(r.errs))
	}
	if r.d.Status()&StatusDeviceNeedsReset == 0 {
		t.Errorf("status = %#x, want DEVICE_NEEDS_RESET", r.d.Status())
	}
	if r.d.Status()&StatusDriverOK != 0 && (!r.irq || r.d.Read(r.d.ISR, 1)&ISRConfig == 0) {
		t.Errorf("no configuration change interrupt")
	}
}

// checkRecovers resets the device and runs it again.
func (r *rig) checkRecovers(t *testing.T) {
	t.Helper()
	r.d.SetStatus(0)
	if r.d.Status() != 0 || r.tr.Broken() != nil {
		t.Fatalf("after reset: status %#x broken %v", r.d.Status(), r.tr.Broken())
	}
	r.d.Write(r.d.Common+CommonQueueSelect, 2, 0)
	if en, desc := r.d.Read(r.d.Common+CommonQueueEnable, 2), r.d.Read(r.d.Common+CommonQueueDesc, 8); en != 0 || desc != 0 {
		t.Errorf("after reset: queue_enable %d queue_desc %#x", en, desc)
	}
	if _, ok := r.d.Negotiate(base); !ok {
		t.Fatal("renegotiation refused")
	}
	q := r.d.SetupQueue(0, 16)
	r.d.DriverOK()
	if got := r.echoOnce(q, "again"); got != "again" {
		t.Errorf("echo after reset = %q", got)
	}
}

func TestBadQueueLayout(t *testing.T) {
	for _, tt := range []struct {
		name              string
		size              uint16
		desc, avail, used uint64
	}{
		{"size not a power of two", 12, 0x1000, 0x2000, 0x3000},
		{"size over max", 32, 0x1000, 0x2000, 0x3000},
		{"size zero", 0, 0x1000, 0x2000, 0x3000},
		{"misaligned table", 16, 0x1008, 0x2000, 0x3000},
		{"misaligned used", 16, 0x1000, 0x2000, 0x3002},
		{"used ring beyond RAM", 16, 0x1000, 0x2000, memSize - 64},
		{"table beyond RAM", 16, 1 << 40, 0x2000, 0x3000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, nil)
			r.d.Probe(barAddr)
			r.d.Negotiate(base)
			c := r.d.Common
			r.d.Write(c+CommonQueueSelect, 2, 0)
			r.d.Write(c+CommonQueueSize, 2, uint64(tt.size))
			r.d.Write(c+CommonQueueDesc, 8, tt.desc)
			r.d.Write(c+CommonQueueDriver, 8, tt.avail)
			r.d.Write(c+CommonQueueDevice, 8, tt.used)
			r.d.Write(c+CommonQueueEnable, 2, 1)
			r.checkBroken(t)
			if r.d.Read(c+CommonQueueEnable, 2) != 0 {
				t.Error("bad queue enabled")
			}
			r.checkRecovers(t)
		})
	}
}

func TestConfigAndISR(t *testing.T) {
	r := newRig(t, nil)
	r.start(base)
	r.d.Write(r.d.Device+2, 2, 0xbeef)
	if got := r.d.Read(r.d.Device, 4); got != 0xbeef0000 {
		t.Errorf("device config = %#x", got)
	}
	gen := r.d.Read(r.d.Common+CommonConfigGeneration, 1)
	r.tr.ConfigChanged()
	if r.d.Read(r.d.Common+CommonConfigGeneration, 1) == gen {
		t.Error("config_generation did not move")
	}
	if !r.irq {
		t.Error("no interrupt on configuration change")
	}
	if isr := r.d.Read(r.d.ISR, 1); isr != ISRConfig || r.irq {
		t.Errorf("ISR = %d, line %v; want %d, line low", isr, r.irq, ISRConfig)
	}
	if isr := r.d.Read(r.d.ISR, 1); isr != 0 {
		t.Errorf("ISR after read = %d, want 0", isr)
	}
	// Moving the BAR moves the registers.
	r.d.CfgWrite(pci.BAR0, 4, 0xd0000000)
	var v [1]byte
	r.b.Read(bus.MMIO, 0xd0000000+CommonDeviceStatus, v[:])
	if v[0] != r.tr.Status() || v[0]&StatusDriverOK == 0 {
		t.Errorf("status through relocated BAR = %#x", v[0])
	}
	if _, _, _, ok := r.b.Lookup(bus.MMIO, barAddr); ok {
		t.Error("old BAR address still decodes")
	}
}

func TestStateRoundTrip(t *testing.T) {
	r := newRig(t, nil)
	q0, q1 := r.start(base | FeatureRingEventIdx)
	for range 5 {
		r.echoOnce(q0, "abc")
	}
	r.echoOnce(q1, "def")
	// Leave one request pending and an interrupt latched.
	in := r.d.Alloc(3, 1)
	copy(r.mem.Host[in:], "xyz")
	out := r.d.Alloc(3, 1)
	q0.Add(virtiotest.Seg{Addr: in, Len: 3}, virtiotest.Seg{Addr: out, Len: 3, Write: true})
	s := r.tr.Save()

	// The new host: a copy of RAM, a fresh bus and device.
	mem2 := &hv.Memory{Host: append([]byte(nil), r.mem.Host...)}
	r2 := newRig(t, mem2)
	if err := r2.tr.Restore(s); err != nil {
		t.Fatal(err)
	}
	if got := r2.tr.Save(); !reflect.DeepEqual(got, s) {
		t.Errorf("Save after Restore = %+v\nwant %+v", got, s)
	}
	if !r2.irq {
		t.Error("latched interrupt not restored")
	}
	// The guest kicks the queue on the new host.
	var kick [2]byte
	if err := r2.b.Write(bus.MMIO, r.d.NotifyBase, kick[:]); err != nil {
		t.Fatal(err)
	}
	if got := string(mem2.Host[out : out+3]); got != "xyz" {
		t.Errorf("pending request after restore: got %q", got)
	}
	if r2.tr.Features() != base|FeatureRingEventIdx {
		t.Errorf("restored features = %#x", r2.tr.Features())
	}

	// Bad states.
	for _, bad := range []func(*State){
		func(s *State) { s.Queues = s.Queues[:1] },
		func(s *State) { s.DriverFeatures |= 1 << 50 },
		func(s *State) { s.ISR = 0x80 },
		func(s *State) { s.Queues[0].Desc = 1 << 40 },
		func(s *State) { s.PCI.Space[pci.DeviceID] ^= 1 },
	} {
		b := r.tr.Save()
		b.Queues = append([]QueueState(nil), b.Queues...)
		bad(&b)
		if err := newRig(t, mem2).tr.Restore(b); err == nil {
			t.Errorf("Restore accepted a bad state")
		}
	}
}

// TestRandomRings fills the rings with random bytes: the device must
// complete or break, never panic or spin.
func TestRandomRings(t *testing.T) {
	seed := uint64(1)
	rnd := func() uint64 { // xorshift64
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		return seed
	}
	for iter := range 300 {
		r := newRig(t, &hv.Memory{Host: make([]byte, 64<<10)})
		q0, _ := r.start(base | FeatureRingEventIdx)
		for i := uint64(0); i < 16*16; i += 8 {
			v := rnd()
			if rnd()%2 == 0 { // keep some addresses and lengths small and valid
				v &= 0x0003_0007_0000_7fff
			}
			for j := range 8 {
				r.mem.Host[q0.Desc+i+uint64(j)] = byte(v >> (8 * j))
			}
		}
		for range 16 {
			q0.Publish(uint16(rnd() % 20))
		}
		q0.Kick()
		q0.Kick()
		if err := r.tr.Broken(); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("iteration %d: Broken() = %v", iter, err)
		}
	}
}

func TestNoDMAWithoutBusMaster(t *testing.T) {
	r := newRig(t, nil)
	q0, _ := r.start(base)
	r.d.CfgWrite(pci.Command, 2, pci.CommandMemorySpace)
	in, out := r.d.Alloc(1, 1), r.d.Alloc(1, 1)
	q0.Add(virtiotest.Seg{Addr: in, Len: 1}, virtiotest.Seg{Addr: out, Len: 1, Write: true})
	q0.Kick()
	if _, _, ok := q0.PopUsed(); ok {
		t.Error("device used a buffer with Bus Master off")
	}
	r.d.CfgWrite(pci.Command, 2, pci.CommandMemorySpace|pci.CommandBusMaster)
	q0.Kick()
	if _, _, ok := q0.PopUsed(); !ok {
		t.Error("no completion after Bus Master on")
	}
}
