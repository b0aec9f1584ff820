// Package linktest has fake host NICs (nic.Link) for user-space tests: a pair joined by a
// Go-channel "wire" with optional loss and corruption, whose ends can go down and up or stop
// answering like a dead device.
package linktest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"

	"github.com/godwit-hv/godwit/hostnet/nic"
)

// RingSize is the fake transmit ring: Transmit returns nic.ErrRingFull when this many
// frames wait for the wire.
const RingSize = 512

// Options shape a wire.
type Options struct {
	MTU     int     // 0: nic.DefaultMTU
	Loss    float64 // probability that a frame vanishes on the wire
	Corrupt float64 // probability that one byte of a frame is flipped on the wire
	Seed    uint64  // for loss and corruption
}

// Link is one end of a fake wire.
type Link struct {
	mac  net.HardwareAddr
	mtu  int
	desc string

	peer *Link
	ring chan []byte
	wire *wire

	up   atomic.Bool
	dead atomic.Bool

	hmu     sync.Mutex
	handler nic.Handler

	nic.Counters
}

type wire struct {
	opts Options
	mu   sync.Mutex
	rnd  *rand.Rand
	quit chan struct{}
	wg   sync.WaitGroup

	Lost, Corrupted atomic.Uint64
}

// MAC makes a locally administered unicast MAC address (IEEE 802-2014, 8.2.2: bit 1 of the
// first octet set, bit 0 clear) ending in n.
func MAC(n int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x00, 0x5e, byte(n >> 16), byte(n >> 8), byte(n)}
}

// Pair makes two links joined by a wire; both are up. Close stops the wire's goroutines.
func Pair(macA, macB net.HardwareAddr, o Options) (*Link, *Link) {
	if o.MTU == 0 {
		o.MTU = nic.DefaultMTU
	}
	w := &wire{opts: o, rnd: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)), quit: make(chan struct{})}
	a := &Link{mac: macA, mtu: o.MTU, ring: make(chan []byte, RingSize), wire: w, desc: "fake wire end A"}
	b := &Link{mac: macB, mtu: o.MTU, ring: make(chan []byte, RingSize), wire: w, desc: "fake wire end B"}
	a.peer, b.peer = b, a
	a.up.Store(true)
	b.up.Store(true)
	w.wg.Add(2)
	go w.carry(a)
	go w.carry(b)
	return a, b
}

// carry moves frames from src's ring to its peer, like the two halves of a full-duplex cable.
func (w *wire) carry(src *Link) {
	defer w.wg.Done()
	for {
		select {
		case f := <-src.ring:
			w.mu.Lock()
			lose := w.rnd.Float64() < w.opts.Loss
			corrupt := w.rnd.Float64() < w.opts.Corrupt
			pos := w.rnd.IntN(len(f))
			w.mu.Unlock()
			if lose {
				w.Lost.Add(1)
				continue
			}
			if corrupt {
				f[pos] ^= 0x5a
				w.Corrupted.Add(1)
			}
			src.peer.receive(f)
		case <-w.quit:
			return
		}
	}
}

func (l *Link) receive(f []byte) {
	if !l.up.Load() || l.dead.Load() {
		l.RxDrops.Add(1)
		return
	}
	if err := nic.CheckFrame(f, l.mtu); err != nil {
		l.RxErrors.Add(1)
		return
	}
	l.hmu.Lock()
	h := l.handler
	if h == nil {
		l.hmu.Unlock()
		l.RxDrops.Add(1)
		return
	}
	l.Rx(len(f))
	h.DeliverFrame(f)
	l.hmu.Unlock()
	// The buffer is "reused" by scribbling on it: a handler that kept it sees garbage.
	for i := range f {
		f[i] = 0xee
	}
}

// Close stops the wire of l (and of its peer).
func (l *Link) Close() {
	select {
	case <-l.wire.quit:
	default:
		close(l.wire.quit)
	}
	l.wire.wg.Wait()
}

// MAC implements nic.Link.
func (l *Link) MAC() net.HardwareAddr { return l.mac }

// MTU implements nic.Link.
func (l *Link) MTU() int { return l.mtu }

// Up implements nic.Link.
func (l *Link) Up() bool { return l.up.Load() }

// Description implements nic.Link.
func (l *Link) Description() string { return l.desc }

// Stats implements nic.Link.
func (l *Link) Stats() nic.Stats { return l.Snapshot() }

// Transmit implements nic.Link.
func (l *Link) Transmit(frame []byte) error {
	if err := nic.CheckFrame(frame, l.mtu); err != nil {
		l.TxErrors.Add(1)
		return err
	}
	if l.dead.Load() {
		l.TxErrors.Add(1)
		return fmt.Errorf("%s: %w (fake: Stall)", l.desc, nic.ErrDeviceDead)
	}
	if !l.up.Load() {
		l.TxDrops.Add(1)
		return nic.ErrLinkDown
	}
	f := append([]byte(nil), frame...)
	select {
	case l.ring <- f:
		l.Tx(len(frame))
		return nil
	default:
		l.TxDrops.Add(1)
		return nic.ErrRingFull
	}
}

// SetHandler implements nic.Link.
func (l *Link) SetHandler(h nic.Handler) {
	l.hmu.Lock()
	l.handler = h
	l.hmu.Unlock()
}

// SetUp changes the carrier of both ends, as pulling or plugging the cable does, and tells
// both handlers.
func (l *Link) SetUp(up bool) {
	for _, e := range []*Link{l, l.peer} {
		if e.up.Swap(up) != up {
			e.hmu.Lock()
			h := e.handler
			e.hmu.Unlock()
			if h != nil {
				h.LinkChanged(up)
			}
		}
	}
}

// Stall makes l behave like a device that stopped answering (true) or recovered (false):
// it neither sends nor receives, and Transmit returns an error wrapping nic.ErrDeviceDead.
func (l *Link) Stall(dead bool) { l.dead.Store(dead) }

// WireStats are the frames the wire lost and corrupted on purpose.
func (l *Link) WireStats() (lost, corrupted uint64) {
	return l.wire.Lost.Load(), l.wire.Corrupted.Load()
}
