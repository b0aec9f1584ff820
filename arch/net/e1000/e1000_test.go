package e1000_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/arch/net/e1000"
	"github.com/godwit-hv/godwit/arch/net/e1000/e1000test"
	"github.com/godwit-hv/godwit/arch/virtio/virtiotest"
	"github.com/godwit-hv/godwit/hostnet/nic"
)

var testMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}

// handler records what the driver delivers.
type handler struct {
	mu     sync.Mutex
	frames [][]byte
	links  []bool
	block  chan struct{} // if set, DeliverFrame waits on it (to let the ring fill)
	got    chan struct{}
}

func newHandler() *handler { return &handler{got: make(chan struct{}, 1<<16)} }

func (h *handler) DeliverFrame(f []byte) {
	if h.block != nil {
		<-h.block
	}
	h.mu.Lock()
	h.frames = append(h.frames, append([]byte(nil), f...))
	h.mu.Unlock()
	h.got <- struct{}{}
}

func (h *handler) LinkChanged(up bool) {
	h.mu.Lock()
	h.links = append(h.links, up)
	h.mu.Unlock()
	h.got <- struct{}{}
}

func (h *handler) snapshot() ([][]byte, []bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]byte(nil), h.frames...), append([]bool(nil), h.links...)
}

// logger counts log lines.
type logger struct {
	mu    sync.Mutex
	lines []string
}

func (l *logger) logf(format string, args ...any) {
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
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

type rig struct {
	t   *testing.T
	mem *virtiotest.Memory
	dev *e1000test.Device
	nic *e1000.NIC
	h   *handler
	log *logger
}

const (
	testRing = 16
	testPoll = 20 * time.Millisecond
)

func newRig(t *testing.T, setup func(*e1000test.Device, *e1000.Config)) *rig {
	t.Helper()
	mem := virtiotest.NewMemory()
	dev := e1000test.New(mem, testMAC)
	lg := &logger{}
	cfg := e1000.Config{
		Regs: dev, DMA: mem, IRQ: dev.IRQ, Location: "00:03.0", Model: "82540EM", UseEERD: true,
		RxDescs: testRing, TxDescs: testRing, Poll: testPoll, TxTimeout: time.Second,
		Logf: lg.logf, Sleep: func(time.Duration) {},
	}
	if setup != nil {
		setup(dev, &cfg)
	}
	n, err := e1000.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	r := &rig{t: t, mem: mem, dev: dev, nic: n, h: newHandler(), log: lg}
	n.SetHandler(r.h)
	t.Cleanup(r.close)
	return r
}

// close stops the driver and checks that every DMA allocation was given back and that the
// device never saw a DMA address outside the driver's memory.
func (r *rig) close() {
	if err := r.nic.Close(); err != nil {
		r.t.Errorf("Close: %v", err)
	}
	if r.mem.Allocs != r.mem.Frees {
		r.t.Errorf("DMA memory: %d allocations, %d frees", r.mem.Allocs, r.mem.Frees)
	}
	for _, e := range r.dev.DMAErrors() {
		r.t.Errorf("device DMA: %v", e)
	}
}

// waitFor polls cond for up to 5 s.
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
		f[i] = seed + byte(i*7)
	}
	return f
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(*e1000test.Device, *e1000.Config)
		wantErr error
	}{
		{"mac from RAL/RAH", nil, nil},
		{"mac from EEPROM", func(d *e1000test.Device, c *e1000.Config) { d.NoAutoLoad = true }, nil},
		{"no RAH and no EERD", func(d *e1000test.Device, c *e1000.Config) { d.NoAutoLoad = true; c.UseEERD = false }, e1000.ErrNoMAC},
		{"EEPROM never done", func(d *e1000test.Device, c *e1000.Config) { d.NoAutoLoad = true; d.NoEERD = true }, e1000.ErrNoMAC},
		{"dead at start", func(d *e1000test.Device, c *e1000.Config) { d.Kill() }, e1000.ErrNoDevice},
		{"odd ring", func(d *e1000test.Device, c *e1000.Config) { c.RxDescs = 12 }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := virtiotest.NewMemory()
			dev := e1000test.New(mem, testMAC)
			cfg := e1000.Config{Regs: dev, DMA: mem, IRQ: dev.IRQ, Location: "00:03.0", UseEERD: true,
				Poll: testPoll, Sleep: func(time.Duration) {}, Logf: func(string, ...any) {}}
			if tc.setup != nil {
				tc.setup(dev, &cfg)
			}
			n, err := e1000.New(cfg)
			if tc.name == "odd ring" {
				if err == nil {
					n.Close()
					t.Fatalf("New with a ring of 12 descriptors: no error")
				}
				return
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("New = %v, want %v", err, tc.wantErr)
				}
				if mem.Allocs != mem.Frees {
					t.Errorf("failed New left %d allocations", mem.Allocs-mem.Frees)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer func() {
				if err := n.Close(); err != nil {
					t.Error(err)
				}
				if mem.Allocs != mem.Frees {
					t.Errorf("DMA memory: %d allocations, %d frees", mem.Allocs, mem.Frees)
				}
			}()
			if got := n.MAC(); !bytes.Equal(got, testMAC) {
				t.Errorf("MAC() = %v, want %v", got, testMAC)
			}
			if lo, hi := dev.Reg(e1000test.RAL0), dev.Reg(e1000test.RAH0); lo != 0x12005452 || hi != 0x80005634 {
				t.Errorf("RAL0/RAH0 = %#x/%#x, want 0x12005452/0x80005634", lo, hi)
			}
			if rctl := dev.Reg(e1000test.RCTL); rctl&(1<<1) == 0 || rctl&(1<<26) == 0 {
				t.Errorf("RCTL = %#x, want EN and SECRC", rctl)
			}
			if tctl := dev.Reg(e1000test.TCTL); tctl&(1<<1) == 0 {
				t.Errorf("TCTL = %#x, want EN", tctl)
			}
			if ims := dev.Reg(e1000test.IMS); ims&e1000test.ICRRXT0 == 0 || ims&e1000test.ICRLSC == 0 {
				t.Errorf("IMS = %#x, want RXT0 and LSC", ims)
			}
			if got, want := dev.RxFree(), e1000.DefaultRing-1; got != want {
				t.Errorf("receive descriptors given to the device = %d, want %d", got, want)
			}
			if !n.Up() || n.MTU() != 1500 || !strings.Contains(n.Description(), "00:03.0") {
				t.Errorf("Up %v MTU %d Description %q", n.Up(), n.MTU(), n.Description())
			}
		})
	}
}

func TestReceive(t *testing.T) {
	tests := []struct {
		name      string
		frame     []byte
		errs      uint8
		noHandler bool
		deliver   bool
		want      nic.Stats
	}{
		{"minimum", frame(60, 1), 0, false, true, nic.Stats{RxPackets: 1, RxBytes: 60}},
		{"header only", frame(14, 2), 0, false, true, nic.Stats{RxPackets: 1, RxBytes: 14}},
		{"largest", frame(1514, 3), 0, false, true, nic.Stats{RxPackets: 1, RxBytes: 1514}},
		{"one byte too long", frame(1515, 4), 0, false, false, nic.Stats{RxErrors: 1}},
		{"runt", frame(10, 5), 0, false, false, nic.Stats{RxErrors: 1}},
		{"CRC error", frame(100, 6), e1000test.RxErrCE, false, false, nic.Stats{RxErrors: 1}},
		{"over two descriptors", frame(3000, 7), 0, false, false, nic.Stats{RxErrors: 1}},
		{"over three descriptors", frame(5000, 8), 0, false, false, nic.Stats{RxErrors: 1}},
		{"no handler", frame(60, 9), 0, true, false, nic.Stats{RxDrops: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			if tc.noHandler {
				r.nic.SetHandler(nil)
			}
			if err := r.dev.Receive(tc.frame, tc.errs); err != nil {
				t.Fatal(err)
			}
			// A good frame after it shows that the ring moved on past the bad one.
			good := frame(64, 0xA0)
			if err := r.dev.Receive(good, 0); err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if !tc.noHandler {
				want.RxPackets++
				want.RxBytes += uint64(len(good))
			} else {
				want.RxDrops++
			}
			waitFor(t, "counters", func() bool { return r.nic.Stats() == want })
			frames, _ := r.h.snapshot()
			var wantFrames [][]byte
			if tc.deliver {
				wantFrames = append(wantFrames, tc.frame)
			}
			if !tc.noHandler {
				wantFrames = append(wantFrames, good)
			}
			if len(frames) != len(wantFrames) {
				t.Fatalf("delivered %d frames, want %d", len(frames), len(wantFrames))
			}
			for i := range frames {
				if !bytes.Equal(frames[i], wantFrames[i]) {
					t.Errorf("frame %d: got %d bytes % x..., want %d bytes", i, len(frames[i]), frames[i][:min(8, len(frames[i]))], len(wantFrames[i]))
				}
			}
			waitFor(t, "descriptors back", func() bool { return r.dev.RxFree() == testRing-1 })
		})
	}
}

// TestReceiveWrap: many times the ring's size, one frame at a time and in bursts that fill it.
func TestReceiveWrap(t *testing.T) {
	r := newRig(t, nil)
	const total = 10 * testRing
	sent := 0
	for sent < total {
		burst := 1 + sent%(testRing-1)
		for i := 0; i < burst && sent < total; i++ {
			waitFor(t, "a free descriptor", func() bool { return r.dev.RxFree() > 0 })
			if err := r.dev.Receive(frame(60+sent%1400, byte(sent)), 0); err != nil {
				t.Fatalf("frame %d: %v", sent, err)
			}
			sent++
		}
	}
	waitFor(t, "all frames", func() bool { return r.nic.Stats().RxPackets == total })
	frames, _ := r.h.snapshot()
	for i, f := range frames {
		if want := frame(60+i%1400, byte(i)); !bytes.Equal(f, want) {
			t.Fatalf("frame %d out of order or damaged: %d bytes, want %d", i, len(f), len(want))
		}
	}
	waitFor(t, "descriptors back", func() bool { return r.dev.RxFree() == testRing-1 })
}

// TestReceiveOverrun: with the handler stuck the ring fills; the device counts missed frames,
// which the driver reports as drops once it reads MPC.
func TestReceiveOverrun(t *testing.T) {
	r := newRig(t, nil)
	r.h.block = make(chan struct{})
	var missed int
	for i := 0; i < testRing+4; i++ {
		if err := r.dev.Receive(frame(60, byte(i)), 0); errors.Is(err, e1000test.ErrNoBuffer) {
			missed++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if missed < 4 {
		t.Fatalf("device missed %d frames, want at least 4", missed)
	}
	close(r.h.block)
	waitFor(t, "drops counted", func() bool { return r.nic.Stats().RxDrops == uint64(missed) })
	waitFor(t, "delivered", func() bool { return r.nic.Stats().RxPackets == uint64(testRing+4-missed) })
	if d := r.nic.DeviceStats(); d.RxMissed != uint64(missed) || d.RxOverruns == 0 {
		t.Errorf("DeviceStats = %+v, want RxMissed %d and RxOverruns > 0", d, missed)
	}
	// And it recovers.
	if err := r.dev.Receive(frame(80, 1), 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "one more", func() bool { return r.nic.Stats().RxPackets == uint64(testRing+5-missed) })
}

func TestTransmit(t *testing.T) {
	tests := []struct {
		name    string
		frame   []byte
		wantErr error
		wire    []byte
	}{
		{"header only, padded", frame(14, 1), nil, append(frame(14, 1), make([]byte, 46)...)},
		{"59 bytes, padded", frame(59, 2), nil, append(frame(59, 2), 0)},
		{"minimum", frame(60, 3), nil, frame(60, 3)},
		{"largest", frame(1514, 4), nil, frame(1514, 4)},
		{"too long", frame(1515, 5), nic.ErrFrameSize, nil},
		{"too short", frame(13, 6), nic.ErrFrameSize, nil},
		{"empty", nil, nic.ErrFrameSize, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			// Dirty the buffer first so that padding must be written, not found.
			if tc.wantErr == nil {
				for i := 0; i < testRing; i++ {
					if err := r.nic.Transmit(bytes.Repeat([]byte{0xEE}, 100)); err != nil {
						t.Fatal(err)
					}
				}
				r.dev.Sent()
			}
			err := r.nic.Transmit(tc.frame)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Transmit(%d bytes) = %v, want %v", len(tc.frame), err, tc.wantErr)
			}
			sent := r.dev.Sent()
			if tc.wantErr != nil {
				if len(sent) != 0 || r.nic.Stats().TxErrors != 1 {
					t.Errorf("sent %d frames, TxErrors %d; want none and 1", len(sent), r.nic.Stats().TxErrors)
				}
				return
			}
			if len(sent) != 1 || !bytes.Equal(sent[0], tc.wire) {
				t.Fatalf("on the wire: %d frames %x, want %x", len(sent), sent, tc.wire)
			}
			if s := r.nic.Stats(); s.TxPackets != testRing+1 || s.TxErrors != 0 || s.TxDrops != 0 {
				t.Errorf("Stats = %v", s)
			}
		})
	}
}

// TestTransmitRingFull: a transmitter that does not consume fills the ring; the next frame is
// refused with ErrRingFull and counted; when it resumes the ring drains and frames flow again.
func TestTransmitRingFull(t *testing.T) {
	r := newRig(t, nil)
	r.dev.StallTX(true)
	for i := 0; i < testRing-1; i++ {
		if err := r.nic.Transmit(frame(100, byte(i))); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if err := r.nic.Transmit(frame(100, 0xFF)); !errors.Is(err, nic.ErrRingFull) {
		t.Fatalf("Transmit on a full ring = %v, want ErrRingFull", err)
	}
	if s := r.nic.Stats(); s.TxDrops != 1 || s.TxPackets != testRing-1 {
		t.Errorf("Stats = %v, want 1 drop and %d packets", s, testRing-1)
	}
	r.dev.StallTX(false)
	if got := len(r.dev.Sent()); got != testRing-1 {
		t.Fatalf("sent %d frames after the stall, want %d", got, testRing-1)
	}
	for i := 0; i < 3*testRing; i++ {
		if err := r.nic.Transmit(frame(100, byte(i))); err != nil {
			t.Fatalf("after the stall, frame %d: %v", i, err)
		}
	}
	if got := len(r.dev.Sent()); got != 3*testRing {
		t.Errorf("sent %d frames, want %d", got, 3*testRing)
	}
	if r.nic.Dead() {
		t.Errorf("a short stall killed the device")
	}
}

func TestLinkChange(t *testing.T) {
	r := newRig(t, nil)
	r.dev.SetLink(false)
	waitFor(t, "link down", func() bool { _, l := r.h.snapshot(); return len(l) == 1 })
	if r.nic.Up() {
		t.Errorf("Up() after link down = true")
	}
	if err := r.nic.Transmit(frame(60, 1)); !errors.Is(err, nic.ErrLinkDown) {
		t.Errorf("Transmit with link down = %v, want ErrLinkDown", err)
	}
	r.dev.SetLink(true)
	waitFor(t, "link up", func() bool { _, l := r.h.snapshot(); return len(l) == 2 })
	if _, l := r.h.snapshot(); l[0] != false || l[1] != true {
		t.Errorf("LinkChanged calls = %v, want [false true]", l)
	}
	if err := r.nic.Transmit(frame(60, 1)); err != nil {
		t.Errorf("Transmit after link up: %v", err)
	}
	if s := r.nic.Stats(); s.TxDrops != 1 || s.TxPackets != 1 {
		t.Errorf("Stats = %v, want 1 drop, 1 packet", s)
	}
	if got := r.nic.DeviceStats().LinkChanges; got != 2 {
		t.Errorf("LinkChanges = %d, want 2", got)
	}
}

func TestDeadDevice(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(r *rig)
		why    string
		mend   func(r *rig) // nil: the failure is permanent
	}{
		{"registers read all ones", func(r *rig) { r.dev.Kill() }, "all ones", nil},
		{"transmit never completes", func(r *rig) {
			r.dev.StallTX(true)
			if err := r.nic.Transmit(frame(60, 1)); err != nil {
				r.t.Fatal(err)
			}
		}, "transmit stalled", func(r *rig) { r.dev.StallTX(false) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, func(d *e1000test.Device, c *e1000.Config) { c.TxTimeout = 100 * time.Millisecond })
			tc.break_(r)
			waitFor(t, "link down", func() bool { _, l := r.h.snapshot(); return len(l) == 1 })
			if r.nic.Up() || !r.nic.Dead() {
				t.Errorf("Up %v Dead %v, want false true", r.nic.Up(), r.nic.Dead())
			}
			err := r.nic.Transmit(frame(60, 2))
			if !errors.Is(err, nic.ErrDeviceDead) || !strings.Contains(err.Error(), tc.why) {
				t.Errorf("Transmit = %v, want ErrDeviceDead saying %q", err, tc.why)
			}
			time.Sleep(5 * testPoll) // more polls must not log again
			if n := r.log.count("not responding"); n != 1 {
				t.Errorf("logged %d times, want once", n)
			}
			if _, l := r.h.snapshot(); len(l) != 1 || l[0] {
				t.Errorf("LinkChanged calls = %v, want [false]", l)
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
				t.Errorf("Info() = %q, want DEAD", r.nic.Info())
			}
		})
	}
}

// TestSharedIRQ: interrupts raised by another device on the shared line are counted as such
// and do not disturb this device's frames. (An interrupt raised before the driver took its
// count is indistinguishable from none, so each is raised until the driver notices one.)
func TestSharedIRQ(t *testing.T) {
	r := newRig(t, nil)
	for i := 1; i <= 5; i++ {
		deadline := time.Now().Add(5 * time.Second)
		for r.nic.DeviceStats().SharedWakes < uint64(i) {
			if time.Now().After(deadline) {
				t.Fatalf("another device's interrupt %d not noticed: SharedWakes %d", i, r.nic.DeviceStats().SharedWakes)
			}
			r.dev.IRQ.Raise()
			time.Sleep(5 * time.Millisecond)
		}
	}
	if err := r.dev.Receive(frame(60, 1), 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "frame", func() bool { return r.nic.Stats().RxPackets == 1 })
	if d := r.nic.DeviceStats(); d.Interrupts != 1 {
		t.Errorf("Interrupts = %d, want 1 (the frame's)", d.Interrupts)
	}
}

func TestPromiscuous(t *testing.T) {
	r := newRig(t, nil)
	const upeMPE = 1<<3 | 1<<4 // RCTL.UPE, RCTL.MPE
	var _ nic.Promiscuous = r.nic
	for _, on := range []bool{true, false, true} {
		if err := r.nic.SetPromiscuous(on); err != nil {
			t.Fatalf("SetPromiscuous(%v): %v", on, err)
		}
		rctl := r.dev.Reg(e1000test.RCTL)
		if got := rctl&upeMPE == upeMPE; got != on || rctl&(1<<1) == 0 {
			t.Errorf("after SetPromiscuous(%v): RCTL = %#x", on, rctl)
		}
		if got := strings.Contains(r.nic.Info(), "promiscuous"); got != on {
			t.Errorf("after SetPromiscuous(%v): Info() = %q", on, r.nic.Info())
		}
	}
	r.dev.Kill()
	if err := r.nic.SetPromiscuous(false); !errors.Is(err, nic.ErrDeviceDead) {
		t.Errorf("SetPromiscuous on a dead device = %v, want ErrDeviceDead", err)
	}
}
