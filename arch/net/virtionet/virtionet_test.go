package virtionet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/arch/virtio"
	"github.com/godwit-hv/godwit/arch/virtio/virtiotest"
	"github.com/godwit-hv/godwit/hostnet/nic"
)

// fakeIRQ counts interrupts and wakes waiters.
type fakeIRQ struct {
	mu    sync.Mutex
	count uint64
	ch    chan struct{}
}

func newFakeIRQ() *fakeIRQ { return &fakeIRQ{ch: make(chan struct{})} }

func (q *fakeIRQ) raise() {
	q.mu.Lock()
	q.count++
	close(q.ch)
	q.ch = make(chan struct{})
	q.mu.Unlock()
}

func (q *fakeIRQ) Count() uint64 { q.mu.Lock(); defer q.mu.Unlock(); return q.count }

func (q *fakeIRQ) Wait(seen uint64, timeout time.Duration) (uint64, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		q.mu.Lock()
		n, ch := q.count, q.ch
		q.mu.Unlock()
		if n > seen {
			return n, nil
		}
		select {
		case <-ch:
		case <-t.C:
			return n, errors.New("timeout")
		}
	}
}

// fakeDev is the device side: both rings through virtiotest, the link state, and what was sent.
type fakeDev struct {
	t        *testing.T
	mem      *virtiotest.Memory
	mu       sync.Mutex
	rx, tx   *virtiotest.Ring
	irq      *fakeIRQ
	linkUp   atomic.Bool
	deadWhy  atomic.Pointer[string]
	consume  atomic.Bool // transmit chains are used as soon as the driver kicks
	sent     [][]byte
	badHdr   int
	rxKicks  atomic.Int64
	shutdown atomic.Bool

	ctrl      *virtiotest.Ring
	ctrlAck   byte        // what the device answers to control commands
	ctrlMute  atomic.Bool // the device never answers control commands
	promisc   atomic.Bool
	ctrlCalls atomic.Int64
}

// control serves the control queue: VIRTIO_NET_CTRL_RX_PROMISC sets promisc.
func (d *fakeDev) control() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctrlMute.Load() {
		return
	}
	for {
		head, chain, ok, err := d.ctrl.Next()
		if !ok {
			return
		}
		if err != nil || len(chain) != 3 || len(chain[0].Data) != 2 || chain[0].Write || chain[1].Write || !chain[2].Write || len(chain[2].Data) != 1 {
			d.t.Errorf("control chain %+v: %v", chain, err)
			return
		}
		d.ctrlCalls.Add(1)
		if chain[0].Data[0] == ctrlClassRX && chain[0].Data[1] == ctrlRXPromisc && d.ctrlAck == ctrlOK {
			d.promisc.Store(chain[1].Data[0] != 0)
		}
		chain[2].Data[0] = d.ctrlAck
		d.ctrl.Complete(head, 1)
	}
}

func (d *fakeDev) link() linkState {
	if p := d.deadWhy.Load(); p != nil {
		return linkState{dead: *p}
	}
	return linkState{up: d.linkUp.Load()}
}

// drainTX uses every transmit chain the driver made available.
func (d *fakeDev) drainTX() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		head, chain, ok, err := d.tx.Next()
		if !ok {
			return
		}
		if err != nil {
			d.t.Errorf("transmit chain: %v", err)
			return
		}
		var pkt []byte
		for _, c := range chain {
			if c.Write {
				d.t.Errorf("transmit chain has a device-writable buffer")
			}
			pkt = append(pkt, c.Data...)
		}
		if len(pkt) < hdrLen || !bytes.Equal(pkt[:hdrLen], make([]byte, hdrLen)) {
			d.badHdr++
		} else {
			d.sent = append(d.sent, pkt[hdrLen:])
		}
		d.tx.Complete(head, 0)
	}
}

var errNoBuf = errors.New("no receive buffer posted")

// receive writes hdr+frame into the next posted buffer, claiming claim bytes written (0: the
// real length), and interrupts.
func (d *fakeDev) receive(frame []byte, claim uint32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	head, chain, ok, err := d.rx.Next()
	if !ok {
		return errNoBuf
	}
	if err != nil {
		return err
	}
	if len(chain) != 1 || !chain[0].Write || len(chain[0].Data) < hdrLen+len(frame) {
		return fmt.Errorf("receive chain %+v cannot take %d bytes", chain, hdrLen+len(frame))
	}
	buf := chain[0].Data
	clear(buf[:hdrLen])
	binary.LittleEndian.PutUint16(buf[10:], 1) // num_buffers
	copy(buf[hdrLen:], frame)
	n := uint32(hdrLen + len(frame))
	if claim != 0 {
		n = claim
	}
	d.rx.Complete(head, n)
	d.irq.raise()
	return nil
}

func (d *fakeDev) takeSent() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sent
	d.sent = nil
	return s
}

type handler struct {
	mu     sync.Mutex
	frames [][]byte
	links  []bool
}

func (h *handler) DeliverFrame(f []byte) {
	h.mu.Lock()
	h.frames = append(h.frames, append([]byte(nil), f...))
	h.mu.Unlock()
}

func (h *handler) LinkChanged(up bool) { h.mu.Lock(); h.links = append(h.links, up); h.mu.Unlock() }

func (h *handler) snapshot() ([][]byte, []bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]byte(nil), h.frames...), append([]bool(nil), h.links...)
}

type logger struct {
	mu    sync.Mutex
	lines []string
}

func (l *logger) logf(f string, a ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(f, a...))
	l.mu.Unlock()
}

func (l *logger) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

const (
	testQueue = 16
	testPoll  = 20 * time.Millisecond
)

var testMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0, 0, 2}

type rig struct {
	t   *testing.T
	dev *fakeDev
	nic *NIC
	h   *handler
	log *logger
}

func newRig(t *testing.T, txTimeout time.Duration, opts ...func(*env)) *rig {
	t.Helper()
	mem := virtiotest.NewMemory()
	d := &fakeDev{t: t, mem: mem, irq: newFakeIRQ()}
	d.linkUp.Store(true)
	d.consume.Store(true)
	rxq, err := virtio.NewQueue(rxQueue, testQueue, mem, func() { d.rxKicks.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	txq, err := virtio.NewQueue(txQueue, testQueue, mem, func() {
		if d.consume.Load() {
			d.drainTX()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.rx, err = virtiotest.NewRing(mem, testQueue, rxq.DescAddr, rxq.AvailAddr, rxq.UsedAddr); err != nil {
		t.Fatal(err)
	}
	if d.tx, err = virtiotest.NewRing(mem, testQueue, txq.DescAddr, txq.AvailAddr, txq.UsedAddr); err != nil {
		t.Fatal(err)
	}
	lg := &logger{}
	ctrlq, err := virtio.NewQueue(ctrlQueue, ctrlQueueLen, mem, d.control)
	if err != nil {
		t.Fatal(err)
	}
	if d.ctrl, err = virtiotest.NewRing(mem, ctrlQueueLen, ctrlq.DescAddr, ctrlq.AvailAddr, ctrlq.UsedAddr); err != nil {
		t.Fatal(err)
	}
	e := env{
		rxq: rxq, txq: txq, mem: mem, irq: d.irq, link: d.link, mac: testMAC, location: "00:04.0",
		poll: testPoll, txTimeout: txTimeout, logf: lg.logf, shutdown: func() { d.shutdown.Store(true) },
		sleep: func(time.Duration) {}, ctrlq: ctrlq, ctrlRX: true, ctrlTimeout: 50 * time.Millisecond,
	}
	for _, o := range opts {
		o(&e)
	}
	n, err := newNIC(e)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, dev: d, nic: n, h: &handler{}, log: lg}
	n.SetHandler(r.h)
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if !d.shutdown.Load() {
			t.Errorf("Close did not reset the device")
		}
		if mem.Allocs != mem.Frees {
			t.Errorf("DMA memory: %d allocations, %d frees", mem.Allocs, mem.Frees)
		}
	})
	return r
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func frame(n int, seed byte) []byte {
	f := make([]byte, n)
	for i := range f {
		f[i] = seed + byte(i*5)
	}
	return f
}

func TestStart(t *testing.T) {
	r := newRig(t, time.Second)
	if got := r.nic.MAC(); !bytes.Equal(got, testMAC) {
		t.Errorf("MAC() = %v, want %v", got, testMAC)
	}
	if !r.nic.Up() || r.nic.MTU() != 1500 || r.nic.Description() != "virtio-net at 00:04.0" {
		t.Errorf("Up %v MTU %d Description %q", r.nic.Up(), r.nic.MTU(), r.nic.Description())
	}
	if got := r.nic.e.rxq.NumFree(); got != 0 {
		t.Errorf("receive queue has %d free descriptors after start, want all %d posted", got, testQueue)
	}
	if r.dev.rxKicks.Load() == 0 {
		t.Errorf("the device was not told of the receive buffers")
	}
}

func TestReceive(t *testing.T) {
	tests := []struct {
		name      string
		frame     []byte
		claim     uint32
		noHandler bool
		deliver   bool
		want      nic.Stats
	}{
		{"minimum", frame(60, 1), 0, false, true, nic.Stats{RxPackets: 1, RxBytes: 60}},
		{"header only", frame(14, 2), 0, false, true, nic.Stats{RxPackets: 1, RxBytes: 14}},
		{"largest", frame(1514, 3), 0, false, true, nic.Stats{RxPackets: 1, RxBytes: 1514}},
		{"too long", frame(1515, 4), 0, false, false, nic.Stats{RxErrors: 1}},
		{"runt", frame(13, 5), 0, false, false, nic.Stats{RxErrors: 1}},
		{"shorter than the virtio header", nil, 5, false, false, nic.Stats{RxErrors: 1}},
		{"device claims more than the buffer", frame(100, 6), bufSize + 1, false, false, nic.Stats{RxErrors: 1}},
		{"no handler", frame(60, 7), 0, true, false, nic.Stats{RxDrops: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, time.Second)
			if tc.noHandler {
				r.nic.SetHandler(nil)
			}
			if err := r.dev.receive(tc.frame, tc.claim); err != nil {
				t.Fatal(err)
			}
			good := frame(70, 0xB0)
			if err := r.dev.receive(good, 0); err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if tc.noHandler {
				want.RxDrops++
			} else {
				want.RxPackets++
				want.RxBytes += uint64(len(good))
			}
			waitFor(t, "counters", func() bool { return r.nic.Stats() == want })
			var wantFrames [][]byte
			if tc.deliver {
				wantFrames = append(wantFrames, tc.frame)
			}
			if !tc.noHandler {
				wantFrames = append(wantFrames, good)
			}
			frames, _ := r.h.snapshot()
			if len(frames) != len(wantFrames) {
				t.Fatalf("delivered %d frames, want %d", len(frames), len(wantFrames))
			}
			for i := range frames {
				if !bytes.Equal(frames[i], wantFrames[i]) {
					t.Errorf("frame %d: %d bytes, want %d", i, len(frames[i]), len(wantFrames[i]))
				}
			}
			waitFor(t, "buffers posted again", func() bool { return r.nic.e.rxq.NumFree() == 0 })
			if tc.claim > bufSize && r.nic.DeviceStats().BadUsed == 0 {
				t.Errorf("BadUsed = 0 after an overlong used entry")
			}
		})
	}
}

// TestBadUsedHead: a used entry naming a descriptor that is not in flight is counted and
// skipped; the queue keeps working.
func TestBadUsedHead(t *testing.T) {
	r := newRig(t, time.Second)
	r.dev.mu.Lock()
	r.dev.rx.Complete(testQueue+3, 60)
	r.dev.mu.Unlock()
	r.dev.irq.raise()
	waitFor(t, "error counted", func() bool { return r.nic.Stats().RxErrors == 1 })
	if err := r.dev.receive(frame(60, 1), 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "next frame", func() bool { return r.nic.Stats().RxPackets == 1 })
	if r.nic.DeviceStats().BadUsed == 0 {
		t.Errorf("BadUsed = 0")
	}
}

func TestReceiveWrap(t *testing.T) {
	r := newRig(t, time.Second)
	const total = 10 * testQueue
	for i := 0; i < total; i++ {
		for {
			err := r.dev.receive(frame(60+i%1400, byte(i)), 0)
			if err == nil {
				break
			}
			if !errors.Is(err, errNoBuf) {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond) // the driver has not posted the buffers again yet
		}
	}
	waitFor(t, "all frames", func() bool { return r.nic.Stats().RxPackets == total })
	frames, _ := r.h.snapshot()
	for i, f := range frames {
		if !bytes.Equal(f, frame(60+i%1400, byte(i))) {
			t.Fatalf("frame %d damaged or out of order", i)
		}
	}
}

func TestTransmit(t *testing.T) {
	tests := []struct {
		name    string
		frame   []byte
		wantErr error
		wire    []byte
	}{
		{"header only, padded", frame(14, 1), nil, append(frame(14, 1), make([]byte, 46)...)},
		{"minimum", frame(60, 2), nil, frame(60, 2)},
		{"largest", frame(1514, 3), nil, frame(1514, 3)},
		{"too long", frame(1515, 4), nic.ErrFrameSize, nil},
		{"too short", frame(13, 5), nic.ErrFrameSize, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, time.Second)
			if tc.wantErr == nil {
				for i := 0; i < 2*testQueue; i++ { // dirty every buffer
					if err := r.nic.Transmit(bytes.Repeat([]byte{0xEE}, 200)); err != nil {
						t.Fatal(err)
					}
				}
				r.dev.takeSent()
			}
			err := r.nic.Transmit(tc.frame)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Transmit(%d bytes) = %v, want %v", len(tc.frame), err, tc.wantErr)
			}
			sent := r.dev.takeSent()
			if tc.wantErr != nil {
				if len(sent) != 0 || r.nic.Stats().TxErrors != 1 {
					t.Errorf("sent %d, TxErrors %d; want 0 and 1", len(sent), r.nic.Stats().TxErrors)
				}
				return
			}
			if len(sent) != 1 || !bytes.Equal(sent[0], tc.wire) {
				t.Fatalf("on the wire: %d frames, want 1 of %d bytes", len(sent), len(tc.wire))
			}
			if r.dev.badHdr != 0 {
				t.Errorf("%d frames with a non-zero virtio_net_hdr", r.dev.badHdr)
			}
		})
	}
}

func TestTransmitRingFull(t *testing.T) {
	r := newRig(t, time.Minute)
	r.dev.consume.Store(false)
	for i := 0; i < testQueue; i++ {
		if err := r.nic.Transmit(frame(100, byte(i))); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if err := r.nic.Transmit(frame(100, 0)); !errors.Is(err, nic.ErrRingFull) {
		t.Fatalf("Transmit on a full queue = %v, want ErrRingFull", err)
	}
	if s := r.nic.Stats(); s.TxDrops != 1 || s.TxPackets != testQueue {
		t.Errorf("Stats = %v", s)
	}
	r.dev.drainTX()
	r.dev.consume.Store(true)
	if got := len(r.dev.takeSent()); got != testQueue {
		t.Fatalf("sent %d, want %d", got, testQueue)
	}
	for i := 0; i < 3*testQueue; i++ {
		if err := r.nic.Transmit(frame(100, byte(i))); err != nil {
			t.Fatalf("after draining, frame %d: %v", i, err)
		}
	}
	if got := len(r.dev.takeSent()); got != 3*testQueue {
		t.Errorf("sent %d, want %d", got, 3*testQueue)
	}
}

func TestLinkChange(t *testing.T) {
	r := newRig(t, time.Second)
	r.dev.linkUp.Store(false)
	waitFor(t, "link down", func() bool { _, l := r.h.snapshot(); return len(l) == 1 })
	if err := r.nic.Transmit(frame(60, 1)); !errors.Is(err, nic.ErrLinkDown) {
		t.Errorf("Transmit with link down = %v, want ErrLinkDown", err)
	}
	r.dev.linkUp.Store(true)
	waitFor(t, "link up", func() bool { _, l := r.h.snapshot(); return len(l) == 2 })
	if _, l := r.h.snapshot(); l[0] || !l[1] {
		t.Errorf("LinkChanged = %v, want [false true]", l)
	}
	if err := r.nic.Transmit(frame(60, 1)); err != nil {
		t.Errorf("Transmit after link up: %v", err)
	}
}

func TestDeadDevice(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(r *rig)
		why    string
		mend   func(r *rig) // nil: the failure is permanent
	}{
		{"status reads all ones", func(r *rig) {
			s := "device status reads all ones"
			r.dev.deadWhy.Store(&s)
		}, "all ones", nil},
		{"transmit never completes", func(r *rig) {
			r.dev.consume.Store(false)
			if err := r.nic.Transmit(frame(60, 1)); err != nil {
				r.t.Fatal(err)
			}
		}, "transmit stalled", func(r *rig) { r.dev.drainTX(); r.dev.consume.Store(true) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, 100*time.Millisecond)
			tc.break_(r)
			waitFor(t, "link down", func() bool { _, l := r.h.snapshot(); return len(l) == 1 })
			if r.nic.Up() || !r.nic.Dead() {
				t.Errorf("Up %v Dead %v", r.nic.Up(), r.nic.Dead())
			}
			err := r.nic.Transmit(frame(60, 2))
			if !errors.Is(err, nic.ErrDeviceDead) || !strings.Contains(err.Error(), tc.why) {
				t.Errorf("Transmit = %v, want ErrDeviceDead saying %q", err, tc.why)
			}
			time.Sleep(5 * testPoll)
			if n := r.log.count("not responding"); n != 1 {
				t.Errorf("logged %d times, want once", n)
			}
			if !strings.Contains(r.nic.Info(), "DEAD") {
				t.Errorf("Info() = %q, want DEAD", r.nic.Info())
			}
			if tc.mend == nil {
				return
			}
			// The stall ends: the device comes back into service with its link up.
			tc.mend(r)
			waitFor(t, "link up again", func() bool { _, l := r.h.snapshot(); return len(l) == 2 })
			if _, l := r.h.snapshot(); !l[1] || !r.nic.Up() || r.nic.Dead() {
				t.Errorf("after the stall: LinkChanged %v, Up %v, Dead %v", l, r.nic.Up(), r.nic.Dead())
			}
			if err := r.nic.Transmit(frame(60, 3)); err != nil {
				t.Errorf("Transmit after the stall: %v", err)
			}
			if got := r.nic.DeviceStats().Revivals; got != 1 {
				t.Errorf("Revivals = %d, want 1", got)
			}
			if strings.Contains(r.nic.Info(), "DEAD") {
				t.Errorf("Info() = %q", r.nic.Info())
			}
		})
	}
}

// TestSharedIRQ: on an INTx line, interrupts that bring this device nothing are counted as
// another device's, and this device's frames still arrive. (An interrupt raised before the
// driver took its count is indistinguishable from none, so each is raised until noticed.)
func TestSharedIRQ(t *testing.T) {
	r := newRig(t, time.Second, func(e *env) { e.sharedIRQ = true })
	for i := 1; i <= 5; i++ {
		deadline := time.Now().Add(5 * time.Second)
		for r.nic.DeviceStats().SharedWakes < uint64(i) {
			if time.Now().After(deadline) {
				t.Fatalf("another device's interrupt %d not noticed: SharedWakes %d", i, r.nic.DeviceStats().SharedWakes)
			}
			r.dev.irq.raise()
			time.Sleep(5 * time.Millisecond)
		}
	}
	if err := r.dev.receive(frame(60, 1), 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "frame", func() bool { return r.nic.Stats().RxPackets == 1 })
}

func TestPromiscuous(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(*rig)
		noCtrl  bool
		wantErr error
	}{
		{"on and off", nil, false, nil},
		{"device refuses", func(r *rig) { r.dev.ctrlAck = 1 }, false, ErrCtrl},
		{"device never answers", func(r *rig) { r.dev.ctrlMute.Store(true) }, false, ErrCtrl},
		{"no VIRTIO_NET_F_CTRL_RX", nil, true, ErrNoCtrlRX},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, time.Second, func(e *env) {
				if tc.noCtrl {
					e.ctrlRX = false
				}
			})
			if tc.setup != nil {
				tc.setup(r)
			}
			var _ nic.Promiscuous = r.nic
			for _, on := range []bool{true, false} {
				err := r.nic.SetPromiscuous(on)
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("SetPromiscuous(%v) = %v, want %v", on, err, tc.wantErr)
				}
				if tc.wantErr != nil {
					if r.dev.promisc.Load() || strings.Contains(r.nic.Info(), "promiscuous") {
						t.Errorf("a failed SetPromiscuous(%v) changed the mode", on)
					}
					return
				}
				if r.dev.promisc.Load() != on || strings.Contains(r.nic.Info(), "promiscuous") != on {
					t.Errorf("after SetPromiscuous(%v): device promisc %v, Info %q", on, r.dev.promisc.Load(), r.nic.Info())
				}
			}
			if got := r.dev.ctrlCalls.Load(); got != 2 {
				t.Errorf("control commands = %d, want 2", got)
			}
		})
	}
}
