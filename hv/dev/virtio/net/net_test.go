package net_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/hv"
	"github.com/godwit-hv/godwit/hv/bus"
	"github.com/godwit-hv/godwit/hv/dev/pci"
	"github.com/godwit-hv/godwit/hv/dev/virtio"
	. "github.com/godwit-hv/godwit/hv/dev/virtio/net"
	"github.com/godwit-hv/godwit/hv/dev/virtio/virtiotest"
	"github.com/godwit-hv/godwit/hv/vswitch"
)

const (
	memSize = 4 << 20
	barAddr = 0xfebf0000
	slot    = 4
	devName = "virtio-net0"
)

var (
	guestMAC = [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	peerMAC  = [6]byte{0x52, 0x54, 0x00, 0xab, 0xcd, 0xef}
	features = uint64(virtio.FeatureVersion1 | FeatureMAC | FeatureStatus)
)

// peer is the other port of the switch: it records what the guest sends.
type peer struct {
	mu     sync.Mutex
	frames [][]byte
}

func (p *peer) deliver(f []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frames = append(p.frames, append([]byte(nil), f...))
	return nil
}

func (p *peer) take() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.frames
	p.frames = nil
	return f
}

type rig struct {
	t        *testing.T
	mem      *hv.Memory
	b        *bus.Bus
	tr       *virtio.Transport
	dev      *Net
	d        *virtiotest.Driver
	rx, tx   *virtiotest.VQ
	sw       *vswitch.Switch
	guest    *vswitch.Port
	peerPort *vswitch.Port
	peer     *peer
	irqs     atomic.Int64
	errs     atomic.Int64
}

func newRig(t *testing.T, mem *hv.Memory) *rig {
	t.Helper()
	if mem == nil {
		mem = &hv.Memory{Host: make([]byte, memSize)}
	}
	r := &rig{t: t, mem: mem, b: bus.New(), peer: &peer{}}
	dev, err := New(Config{MAC: guestMAC})
	if err != nil {
		t.Fatal(err)
	}
	r.dev = dev
	br, err := pci.NewBridge(pci.BridgeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.b.Register(bus.PIO, pci.ConfigAddressPort, pci.PortRange, "pci", br); err != nil {
		t.Fatal(err)
	}
	r.tr, err = virtio.New(virtio.Config{
		Backend: dev, Mem: r.mem, Bus: r.b, Name: devName,
		Class: pci.ClassNetwork, Subclass: pci.SubclassEthernet, InterruptLine: 11,
		IRQ: func(l bool) {
			if l {
				r.irqs.Add(1)
			}
		},
		OnError: func(err error) { r.errs.Add(1); t.Logf("device error: %v", err) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := br.Attach(slot, r.tr.Function()); err != nil {
		t.Fatal(err)
	}
	if err := dev.Bind(r.tr, r.b, devName); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dev.Close)
	r.sw = vswitch.New("test", vswitch.Options{Logf: t.Logf})
	if r.guest, err = dev.Connect(r.sw, "vm0.net0"); err != nil {
		t.Fatal(err)
	}
	if r.peerPort, err = r.sw.AddPort("peer", r.peer.deliver); err != nil {
		t.Fatal(err)
	}
	r.d = virtiotest.NewDriver(t, r.b, r.mem, slot, 0x10000)
	return r
}

// start brings the driver up with both queues.
func (r *rig) start() {
	r.t.Helper()
	r.d.Probe(barAddr)
	if _, ok := r.d.Negotiate(features | virtio.FeatureRingIndirectDesc); !ok {
		r.t.Fatalf("device refused features %#x", features)
	}
	r.rx = r.d.SetupQueue(RxQueue, 64)
	r.tx = r.d.SetupQueue(TxQueue, 64)
	r.d.DriverOK()
}

func ethFrame(dst, src [6]byte, n int, fill byte) []byte {
	f := make([]byte, n)
	copy(f, dst[:])
	copy(f[6:], src[:])
	f[12], f[13] = 0x08, 0x00
	for i := 14; i < n; i++ {
		f[i] = fill + byte(i)
	}
	return f
}

// send places header and frame in guest memory as a transmit chain split as segs says
// (the sizes of the pieces; the rest is one last piece) and kicks.
func (r *rig) send(hdr []byte, frame []byte, pieces ...int) uint16 {
	data := append(append([]byte(nil), hdr...), frame...)
	var segs []virtiotest.Seg
	for _, p := range append(pieces, len(data)) {
		if p > len(data) {
			p = len(data)
		}
		a := r.d.Alloc(uint64(max(p, 1)), 8)
		copy(r.mem.Host[a:], data[:p])
		segs = append(segs, virtiotest.Seg{Addr: a, Len: uint32(p)})
		data = data[p:]
		if len(data) == 0 {
			break
		}
	}
	head := r.tx.Add(segs...)
	r.tx.Kick()
	return head
}

func hdr() []byte { return make([]byte, HdrLen) }

// postRx posts one receive buffer of n bytes and returns its address.
func (r *rig) postRx(n uint32, kick bool) uint64 {
	a := r.d.Alloc(uint64(n), 8)
	r.rx.Add(virtiotest.Seg{Addr: a, Len: n, Write: true})
	if kick {
		r.rx.Kick()
	}
	return a
}

func (r *rig) waitUsed(q *virtiotest.VQ) (id, length uint32) {
	r.t.Helper()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if id, l, ok := q.PopUsed(); ok {
			return id, l
		}
	}
	r.t.Fatalf("queue %d: no used buffer", q.Index)
	return 0, 0
}

func TestConfigAndFeatures(t *testing.T) {
	r := newRig(t, nil)
	r.d.Probe(barAddr)
	if got, want := r.d.DeviceFeatures(), features|virtio.FeatureRingIndirectDesc|virtio.FeatureRingEventIdx; got != want {
		t.Errorf("offered features %#x, want %#x", got, want)
	}
	var mac [6]byte
	for i := range mac {
		mac[i] = byte(r.d.Read(r.d.Device+uint64(CfgMAC+i), 1))
	}
	if mac != guestMAC {
		t.Errorf("config MAC = %x, want %x", mac, guestMAC)
	}
	if st := r.d.Read(r.d.Device+CfgStatus, 2); st != StatusLinkUp {
		t.Errorf("config status = %#x, want LINK_UP", st)
	}
	if dev := r.d.CfgRead(pci.VendorID, 4); dev != 0x1041<<16|0x1af4 {
		t.Errorf("PCI ID = %#x, want 1af4:1041 (virtio 1.x network device)", dev)
	}
}

func TestTransmit(t *testing.T) {
	r := newRig(t, nil)
	r.start()
	for _, tc := range []struct {
		name   string
		size   int
		pieces []int
	}{
		{"header and frame in one buffer", 60, []int{}},
		{"header apart", 98, []int{HdrLen}},
		{"header split across buffers", 1514, []int{5, 7, 700}},
		{"header and frame start together", 200, []int{HdrLen + 20}},
	} {
		f := ethFrame(peerMAC, guestMAC, tc.size, byte(tc.size))
		head := r.send(hdr(), f, tc.pieces...)
		id, l := r.waitUsed(r.tx)
		if id != uint32(head) || l != 0 {
			t.Errorf("%s: used (%d, %d), want (%d, 0)", tc.name, id, l, head)
		}
		got := r.peer.take()
		if len(got) != 1 || !bytes.Equal(got[0], f) {
			t.Errorf("%s: peer got %d frames, want the %d-byte frame", tc.name, len(got), tc.size)
		}
	}
	if st := r.dev.Stats(); st.TxPackets != 4 || st.Malformed != 0 {
		t.Errorf("stats %+v, want 4 tx packets and nothing malformed", st)
	}
	// Indirect descriptors.
	f := ethFrame(peerMAC, guestMAC, 80, 1)
	a := r.d.Alloc(uint64(HdrLen+len(f)), 8)
	copy(r.mem.Host[a+HdrLen:], f)
	r.tx.AddIndirect(virtiotest.Seg{Addr: a, Len: HdrLen}, virtiotest.Seg{Addr: a + HdrLen, Len: uint32(len(f))})
	r.tx.Kick()
	r.waitUsed(r.tx)
	if got := r.peer.take(); len(got) != 1 || !bytes.Equal(got[0], f) {
		t.Errorf("indirect: peer got %d frames", len(got))
	}
}

func TestReceive(t *testing.T) {
	r := newRig(t, nil)
	r.start()
	r.rx.Kick() // Linux kicks the receive queue when it opens the device
	// Frames before any buffer wait in the backlog.
	f1 := ethFrame(guestMAC, peerMAC, 60, 1)
	f2 := ethFrame([6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, peerMAC, 1514, 2)
	irqs := r.irqs.Load()
	if err := r.peerPort.Send(f1); err != nil {
		t.Fatal(err)
	}
	r.peerPort.Send(f2)
	time.Sleep(20 * time.Millisecond)
	if _, _, ok := r.rx.PopUsed(); ok {
		t.Fatalf("a frame was received without buffers")
	}
	b1 := r.postRx(1526, false) // 5.1.6.3.1: at least 1526 bytes without MRG_RXBUF
	b2 := r.postRx(1526, true)
	for i, want := range []struct {
		buf   uint64
		frame []byte
	}{{b1, f1}, {b2, f2}} {
		_, l := r.waitUsed(r.rx)
		got := r.mem.Host[want.buf : want.buf+uint64(l)]
		if int(l) != HdrLen+len(want.frame) || !bytes.Equal(got[HdrLen:], want.frame) {
			t.Errorf("frame %d: used length %d, want %d and the frame", i, l, HdrLen+len(want.frame))
		}
		if nb := binary.LittleEndian.Uint16(got[10:]); nb != 1 || got[0] != 0 || got[1] != HdrGSONone {
			t.Errorf("frame %d: header % x, want flags 0, GSO_NONE, num_buffers 1", i, got[:HdrLen])
		}
	}
	if r.irqs.Load() == irqs {
		t.Errorf("no interrupt for received frames")
	}
	// With buffers posted first, a frame arrives through the device's own doorbell.
	b3 := r.postRx(2048, true)
	f3 := ethFrame(guestMAC, peerMAC, 300, 3)
	r.peerPort.Send(f3)
	_, l := r.waitUsed(r.rx)
	if !bytes.Equal(r.mem.Host[b3+HdrLen:b3+uint64(l)], f3) {
		t.Errorf("frame 3 not in its buffer")
	}
	if st := r.dev.Stats(); st.RxPackets != 3 || st.Doorbells == 0 {
		t.Errorf("stats %+v, want 3 rx packets and doorbells", st)
	}
}

func TestBacklogAndNotRunning(t *testing.T) {
	r := newRig(t, nil)
	f := ethFrame(guestMAC, peerMAC, 60, 0)
	if err := r.dev.Deliver(f); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Deliver before the driver runs = %v, want ErrNotRunning", err)
	}
	r.start()
	r.tx.Kick() // any notification marks the driver running
	for i := 0; i < QueueSize; i++ {
		if err := r.dev.Deliver(f); err != nil {
			t.Fatalf("Deliver #%d = %v", i, err)
		}
	}
	if err := r.dev.Deliver(f); !errors.Is(err, ErrBacklogFull) {
		t.Errorf("Deliver past the backlog = %v, want ErrBacklogFull", err)
	}
	r.peerPort.Send(f)
	if st := r.guest.Stats(); st.TxDrops != 1 {
		t.Errorf("switch port of the guest: %v, want 1 tx drop", st)
	}
	// A device reset empties the backlog.
	r.d.SetStatus(0)
	if err := r.dev.Deliver(f); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Deliver after reset = %v, want ErrNotRunning", err)
	}
	// Before the driver ran, over the backlog (twice: directly and from the switch), the
	// backlog emptied by the reset, after the reset.
	if st := r.dev.Stats(); st.RxDrops != QueueSize+4 {
		t.Errorf("rx drops %d, want %d", st.RxDrops, QueueSize+4)
	}
}

func TestMalformedCountedNotFatal(t *testing.T) {
	r := newRig(t, nil)
	r.start()
	good := ethFrame(peerMAC, guestMAC, 60, 0)
	gso := hdr()
	gso[1] = 1 // VIRTIO_NET_HDR_GSO_TCPV4
	csum := hdr()
	csum[0] = HdrFNeedsCsum
	cases := []struct {
		name string
		send func()
	}{
		{"oversized frame", func() { r.send(hdr(), ethFrame(peerMAC, guestMAC, 1515, 0)) }},
		{"runt frame", func() { r.send(hdr(), good[:10]) }},
		{"header only", func() { r.send(hdr()[:8], nil) }},
		{"GSO without negotiation", func() { r.send(gso, good) }},
		{"NEEDS_CSUM without negotiation", func() { r.send(csum, good) }},
		{"device-writable buffer in a transmit chain", func() {
			a := r.d.Alloc(HdrLen+60, 8)
			copy(r.mem.Host[a+HdrLen:], good)
			r.tx.Add(virtiotest.Seg{Addr: a, Len: HdrLen}, virtiotest.Seg{Addr: a + HdrLen, Len: 60, Write: true})
			r.tx.Kick()
		}},
	}
	for i, tc := range cases {
		tc.send()
		r.waitUsed(r.tx)
		if got := r.dev.Stats().Malformed; got != uint64(i+1) {
			t.Errorf("%s: malformed = %d, want %d", tc.name, got, i+1)
		}
		if n := len(r.peer.take()); n != 0 {
			t.Errorf("%s: %d frames reached the switch", tc.name, n)
		}
	}
	// Receive chains that cannot take a frame: too small, or read-only.
	small := r.postRx(HdrLen+59, true)
	r.peerPort.Send(ethFrame(guestMAC, peerMAC, 60, 0))
	if _, l := r.waitUsed(r.rx); l != 0 {
		t.Errorf("too-small receive buffer: used length %d, want 0", l)
	}
	_ = small
	a := r.d.Alloc(1526, 8)
	r.rx.Add(virtiotest.Seg{Addr: a, Len: 1526})
	r.rx.Kick()
	r.peerPort.Send(ethFrame(guestMAC, peerMAC, 60, 0))
	if _, l := r.waitUsed(r.rx); l != 0 {
		t.Errorf("read-only receive buffer: used length %d, want 0", l)
	}
	if st := r.dev.Stats(); st.Malformed != uint64(len(cases)+2) || st.RxDrops != 2 {
		t.Errorf("stats %+v, want %d malformed and 2 rx drops", st, len(cases)+2)
	}
	if err := r.tr.Broken(); err != nil {
		t.Fatalf("device broken by per-packet errors: %v", err)
	}
	// The device still works.
	r.send(hdr(), good)
	r.waitUsed(r.tx)
	if n := len(r.peer.take()); n != 1 {
		t.Errorf("after the bad input: %d frames sent, want 1", n)
	}
	// A broken ring (the available index far ahead) breaks the device, as for any virtio
	// device, and is counted; nothing hangs.
	binary.LittleEndian.PutUint16(r.mem.Host[r.tx.Avail+2:], r.tx.AvailIdx+1000)
	r.tx.Kick()
	if err := r.tr.Broken(); !errors.Is(err, virtio.ErrMalformed) {
		t.Errorf("Broken = %v, want ErrMalformed", err)
	}
	if r.d.Status()&virtio.StatusDeviceNeedsReset == 0 {
		t.Errorf("status %#x lacks DEVICE_NEEDS_RESET", r.d.Status())
	}
}

func TestLinkStatus(t *testing.T) {
	r := newRig(t, nil)
	r.start()
	r.tx.Kick()
	irqs := r.irqs.Load()
	r.dev.SetLinkUp(false)
	if st := r.d.Read(r.d.Device+CfgStatus, 2); st != 0 {
		t.Errorf("status with link down = %#x, want 0", st)
	}
	if r.irqs.Load() == irqs || r.d.Read(r.d.ISR, 1)&virtio.ISRConfig == 0 {
		t.Errorf("no configuration change interrupt for the link change")
	}
	if err := r.dev.Deliver(ethFrame(guestMAC, peerMAC, 60, 0)); !errors.Is(err, ErrLinkDown) {
		t.Errorf("Deliver with link down = %v, want ErrLinkDown", err)
	}
	r.send(hdr(), ethFrame(peerMAC, guestMAC, 60, 0))
	r.waitUsed(r.tx)
	if n := len(r.peer.take()); n != 0 {
		t.Errorf("frame sent with link down")
	}
	r.dev.SetLinkUp(true)
	if st := r.d.Read(r.d.Device+CfgStatus, 2); st != StatusLinkUp {
		t.Errorf("status = %#x after link up", st)
	}
}

func TestSaveRestore(t *testing.T) {
	r := newRig(t, nil)
	r.start()
	// Some traffic first so that the queue indexes are not zero.
	for i := 0; i < 3; i++ {
		r.send(hdr(), ethFrame(peerMAC, guestMAC, 60+i, byte(i)))
		r.waitUsed(r.tx)
		r.postRx(1526, true)
		r.peerPort.Send(ethFrame(guestMAC, peerMAC, 70+i, byte(i)))
		r.waitUsed(r.rx)
	}
	r.peer.take()
	r.dev.SetLinkUp(false)
	ts, ns := r.tr.Save(), r.dev.Save()

	// The destination: the same guest memory (as migration copies it), a new device.
	mem := &hv.Memory{Host: append([]byte(nil), r.mem.Host...)}
	r2 := newRig(t, mem)
	if err := r2.tr.Restore(ts); err != nil {
		t.Fatalf("transport Restore: %v", err)
	}
	if err := r2.dev.Restore(ns); err != nil {
		t.Fatalf("net Restore: %v", err)
	}
	if got := r2.dev.Save(); got != ns {
		t.Errorf("Save after Restore = %+v, want %+v", got, ns)
	}
	if got := r2.tr.Save(); len(got.Queues) != 2 || got.Queues[TxQueue] != ts.Queues[TxQueue] || got.Queues[RxQueue] != ts.Queues[RxQueue] {
		t.Errorf("queues after Restore = %+v, want %+v", got.Queues, ts.Queues)
	}
	// The guest's driver state moves with its memory: continue on the restored device.
	// A fresh driver view, allocating beyond what the source used; the queues are already
	// enabled on the restored device, so SetupQueue's programming is ignored and the views
	// are pointed at the rings the guest built before the move.
	r2.d = virtiotest.NewDriver(t, r2.b, r2.mem, slot, 0x200000)
	r2.d.Probe(barAddr)
	r2.rx, r2.tx = r2.d.SetupQueue(RxQueue, 64), r2.d.SetupQueue(TxQueue, 64)
	for _, p := range []struct{ to, from *virtiotest.VQ }{{r2.rx, r.rx}, {r2.tx, r.tx}} {
		p.to.Desc, p.to.Avail, p.to.Used, p.to.AvailIdx, p.to.LastUsed = p.from.Desc, p.from.Avail, p.from.Used, p.from.AvailIdx, p.from.LastUsed
	}
	r2.dev.SetLinkUp(true)
	f := ethFrame(peerMAC, guestMAC, 99, 9)
	r2.send(hdr(), f)
	r2.waitUsed(r2.tx)
	if got := r2.peer.take(); len(got) != 1 || !bytes.Equal(got[0], f) {
		t.Errorf("after restore: peer got %d frames", len(got))
	}
	b := r2.postRx(1526, true)
	f = ethFrame(guestMAC, peerMAC, 123, 4)
	r2.peerPort.Send(f)
	_, l := r2.waitUsed(r2.rx)
	if !bytes.Equal(r2.mem.Host[b+HdrLen:b+uint64(l)], f) {
		t.Errorf("after restore: received frame wrong")
	}
	if err := r2.dev.Restore(State{MAC: peerMAC}); !errors.Is(err, ErrState) {
		t.Errorf("Restore with another MAC = %v, want ErrState", err)
	}
}
