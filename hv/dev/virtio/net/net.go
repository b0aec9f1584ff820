// Package net is the guest's virtio network device (Virtio v1.1, 5.1 "Network Device"):
// one receive and one transmit queue, a MAC address in the configuration (VIRTIO_NET_F_MAC)
// and a link status (VIRTIO_NET_F_STATUS), no offloads. Its frames go to and come from a
// port of a virtual switch (package hv/vswitch).
//
// Transmit: the guest's notification of the transmit queue is processed synchronously, as
// the transport does for every device: each chain is one 12-byte virtio_net_hdr and one
// Ethernet frame, handed to the switch port (which copies it).
//
// Receive: the switch delivers frames from its own goroutines; the device copies them into a
// bounded backlog and rings its own doorbell (the receive queue's notification address,
// through the VM's bus, on a goroutine of its own) so the transport runs Process for the
// receive queue under its lock, as for a guest notification, and raises the interrupt the
// guest asked for. Frames wait in the backlog while the guest has posted no buffers, and
// are dropped (and counted) when it is full or the driver is not running.
//
// Bad input from the guest (a frame over the maximum or under a header, a GSO header
// without GSO negotiated, a chain with buffers in the wrong direction, receive buffers too
// small for a frame) is dropped and counted in Stats().Malformed; a broken ring
// (virtio.ErrMalformed from Pop) breaks the device as for every virtio device.
package net

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/godwit-hv/godwit/hv/bus"
	"github.com/godwit-hv/godwit/hv/dev/pci"
	"github.com/godwit-hv/godwit/hv/dev/virtio"
	"github.com/godwit-hv/godwit/hv/vswitch"
)

// Port is where transmitted frames go: a vswitch.Port. Send gets a frame valid only during
// the call.
type Port interface {
	Send(frame []byte) error
}

// Config describes a network device.
type Config struct {
	MAC [6]byte
	// MaxFrame is the largest frame without FCS either way; 0 means 1514 (an MTU of 1500).
	MaxFrame int
	// Backlog is how many received frames wait for guest buffers; 0 means QueueSize.
	Backlog int
	// LinkDown starts the device with its link down.
	LinkDown bool
}

// Errors Deliver returns (the switch counts them as drops on the port).
var (
	ErrNotRunning  = errors.New("virtio-net: driver not running")
	ErrBacklogFull = errors.New("virtio-net: receive backlog full")
	ErrLinkDown    = errors.New("virtio-net: link down")
	ErrFrameSize   = errors.New("virtio-net: bad frame size")
)

// Stats are the device's counters, from the guest's point of view: Rx is toward the guest.
type Stats struct {
	RxPackets, RxBytes, RxDrops uint64
	TxPackets, TxBytes, TxDrops uint64
	// Malformed counts guest errors: bad transmit chains or headers, receive chains with
	// read-only buffers or too small for the frame.
	Malformed uint64
	// Doorbells counts receive notifications the device gave itself; DoorbellMisses those it
	// could not give (BAR not mapped).
	Doorbells, DoorbellMisses uint64
}

type counters struct {
	rxPackets, rxBytes, rxDrops atomic.Uint64
	txPackets, txBytes, txDrops atomic.Uint64
	malformed                   atomic.Uint64
	doorbells, doorbellMisses   atomic.Uint64
}

// Net is the virtio-net backend; attach it with virtio.New and then Bind.
type Net struct {
	cfg Config

	// Only under the transport's lock (Process, Reset, ReadConfig, Save/Restore callers).
	chain virtio.Chain
	txBuf []byte

	linkUp atomic.Bool
	active atomic.Bool // the driver has notified a queue since the last reset
	port   atomic.Pointer[portBox]

	pmu     sync.Mutex
	pending [][]byte // received frames waiting for guest buffers
	free    [][]byte // spare frame buffers

	// The doorbell: set by Bind.
	tr        *virtio.Transport
	bus       *bus.Bus
	name      string
	barName   string
	notifyOff uint64 // of the receive queue, in the BAR
	kick      chan struct{}
	quit      chan struct{}
	done      chan struct{}

	c counters
}

type portBox struct{ p Port }

// New returns a network device.
func New(cfg Config) (*Net, error) {
	if cfg.MAC[0]&1 != 0 || cfg.MAC == [6]byte{} {
		return nil, fmt.Errorf("virtio-net: MAC %x is not an individual address", cfg.MAC)
	}
	if cfg.MaxFrame == 0 {
		cfg.MaxFrame = maxFrameDefault
	}
	if cfg.MaxFrame < minFrame+46 || cfg.MaxFrame > 65535 {
		return nil, fmt.Errorf("virtio-net: max frame %d", cfg.MaxFrame)
	}
	if cfg.Backlog == 0 {
		cfg.Backlog = QueueSize
	}
	n := &Net{cfg: cfg, txBuf: make([]byte, 0, cfg.MaxFrame), chain: virtio.Chain{Bufs: make([]virtio.Buf, 0, QueueSize)}}
	n.linkUp.Store(!cfg.LinkDown)
	return n, nil
}

// MAC is the device's address.
func (n *Net) MAC() [6]byte { return n.cfg.MAC }

// SetPort connects the device to a switch port (nil disconnects: transmitted frames are
// dropped and counted).
func (n *Net) SetPort(p Port) {
	if p == nil {
		n.port.Store(nil)
		return
	}
	n.port.Store(&portBox{p})
}

// Bind gives the device its transport and the VM's bus so it can notify itself of received
// frames. name is the transport's Config.Name (the BAR's name on the bus). It starts the
// doorbell goroutine; Close stops it.
func (n *Net) Bind(t *virtio.Transport, b *bus.Bus, name string) error {
	off, err := rxNotifyOffset(t.Function())
	if err != nil {
		return fmt.Errorf("virtio-net %s: %w", name, err)
	}
	n.tr, n.bus, n.name, n.notifyOff = t, b, name, off
	n.barName = fmt.Sprintf("%s BAR%d", name, 0)
	n.kick, n.quit, n.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go n.doorbellLoop()
	return nil
}

// rxNotifyOffset finds the receive queue's notification address in the BAR the way a driver
// does: the notify capability (Virtio v1.1, 4.1.4.4: cap_vndr 0x09, cfg_type 2, bar, offset,
// notify_off_multiplier) plus queue_notify_off * multiplier; the receive queue is queue 0
// and the transport gives queue i notify_off i, so its address is the capability's offset.
func rxNotifyOffset(f *pci.Function) (uint64, error) {
	rd := func(off, size int) uint32 {
		var b [4]byte
		f.ReadConfig(off, b[:size])
		return binary.LittleEndian.Uint32(b[:])
	}
	p := int(rd(pci.CapabilitiesPtr, 1))
	for i := 0; p != 0 && i < 48; i++ {
		if rd(p, 1) == pci.CapIDVendor && rd(p+3, 1) == virtio.CapNotifyCfg {
			if bar := rd(p+4, 1); bar != 0 {
				return 0, fmt.Errorf("notify capability in BAR %d, want 0", bar)
			}
			return uint64(rd(p+8, 4)) + RxQueue*uint64(rd(p+16, 4)), nil
		}
		p = int(rd(p+1, 1))
	}
	return 0, errors.New("no virtio notify capability")
}

// Close stops the doorbell goroutine.
func (n *Net) Close() {
	if n.quit == nil {
		return
	}
	select {
	case <-n.quit:
	default:
		close(n.quit)
	}
	<-n.done
}

func (n *Net) doorbellLoop() {
	defer close(n.done)
	for {
		select {
		case <-n.kick:
			n.ring()
		case <-n.quit:
			return
		}
	}
}

// ring writes the receive queue's index to its notification address (4.1.5.2), through the
// bus device that holds the address, after checking it is this device's BAR.
func (n *Net) ring() {
	m := n.tr.Function().Mapping(0)
	if !m.Enabled {
		n.c.doorbellMisses.Add(1)
		return
	}
	// pci.BusMapper names the range "NAME BARi".
	d, off, name, ok := n.bus.Lookup(bus.MMIO, m.Addr+n.notifyOff)
	if !ok || name != n.barName {
		n.c.doorbellMisses.Add(1)
		return
	}
	var idx [2]byte
	binary.LittleEndian.PutUint16(idx[:], RxQueue)
	if err := d.Write(off, idx[:]); err != nil {
		n.c.doorbellMisses.Add(1)
		return
	}
	n.c.doorbells.Add(1)
}

// SetLinkUp changes the link status the guest sees and tells it (a configuration change
// interrupt, Virtio v1.1, 5.1.4.2). Call it without the transport's lock held.
func (n *Net) SetLinkUp(up bool) {
	if n.linkUp.Swap(up) != up && n.tr != nil {
		n.tr.ConfigChanged()
	}
}

// LinkUp reports the link status.
func (n *Net) LinkUp() bool { return n.linkUp.Load() }

// Stats snapshots the counters.
func (n *Net) Stats() Stats {
	c := &n.c
	return Stats{
		RxPackets: c.rxPackets.Load(), RxBytes: c.rxBytes.Load(), RxDrops: c.rxDrops.Load(),
		TxPackets: c.txPackets.Load(), TxBytes: c.txBytes.Load(), TxDrops: c.txDrops.Load(),
		Malformed: c.malformed.Load(), Doorbells: c.doorbells.Load(), DoorbellMisses: c.doorbellMisses.Load(),
	}
}

// Deliver is the switch port's deliver function: it copies frame into the receive backlog
// and rings the doorbell. It never blocks and never takes the transport's lock (a switch
// goroutine may hold another device's).
func (n *Net) Deliver(frame []byte) error {
	switch {
	case len(frame) < minFrame || len(frame) > n.cfg.MaxFrame:
		n.c.rxDrops.Add(1)
		return fmt.Errorf("%w: %d bytes", ErrFrameSize, len(frame))
	case !n.linkUp.Load():
		n.c.rxDrops.Add(1)
		return ErrLinkDown
	case !n.active.Load():
		n.c.rxDrops.Add(1)
		return ErrNotRunning
	}
	n.pmu.Lock()
	if len(n.pending) >= n.cfg.Backlog {
		n.pmu.Unlock()
		n.c.rxDrops.Add(1)
		return ErrBacklogFull
	}
	var b []byte
	if k := len(n.free); k > 0 {
		b, n.free = n.free[k-1][:0], n.free[:k-1]
	} else {
		b = make([]byte, 0, n.cfg.MaxFrame)
	}
	n.pending = append(n.pending, append(b, frame...))
	n.pmu.Unlock()
	if n.kick != nil {
		select {
		case n.kick <- struct{}{}:
		default: // a ring is already due
		}
	}
	return nil
}

// Type implements virtio.Backend.
func (n *Net) Type() uint16 { return virtio.DeviceNet }

// Features implements virtio.Backend.
func (n *Net) Features() uint64 { return FeatureMAC | FeatureStatus }

// QueueSizes implements virtio.Backend.
func (n *Net) QueueSizes() []uint16 { return []uint16{QueueSize, QueueSize} }

// ConfigSize implements virtio.Backend.
func (n *Net) ConfigSize() int { return configSize }

// ReadConfig implements virtio.Backend.
func (n *Net) ReadConfig(offset int, data []byte) {
	var img [configSize]byte
	copy(img[CfgMAC:], n.cfg.MAC[:])
	if n.linkUp.Load() {
		binary.LittleEndian.PutUint16(img[CfgStatus:], StatusLinkUp)
	}
	if offset >= 0 && offset+len(data) <= configSize {
		copy(data, img[offset:])
	}
}

// WriteConfig implements virtio.Backend: the configuration is read-only (5.1.4.1: the MAC
// is writable only for legacy drivers, which this device does not serve).
func (n *Net) WriteConfig(offset int, data []byte) {}

// Reset implements virtio.Backend: the backlog is dropped and frames are refused until the
// driver runs again.
func (n *Net) Reset() {
	n.active.Store(false)
	n.pmu.Lock()
	for _, b := range n.pending {
		n.free = append(n.free, b)
	}
	n.c.rxDrops.Add(uint64(len(n.pending)))
	n.pending = n.pending[:0]
	n.pmu.Unlock()
}

// Process implements virtio.Backend.
func (n *Net) Process(index int, q *virtio.Queue, features uint64) error {
	n.active.Store(true)
	switch index {
	case RxQueue:
		return n.receive(q)
	case TxQueue:
		return n.transmit(q)
	}
	return nil
}

// transmit sends every chain of the transmit queue.
func (n *Net) transmit(q *virtio.Queue) error {
	for {
		ok, err := q.Pop(&n.chain)
		if err != nil {
			n.c.malformed.Add(1)
			return err
		}
		if !ok {
			return nil
		}
		if frame, err := n.gather(&n.chain); err != nil {
			n.c.malformed.Add(1)
		} else if pb := n.port.Load(); pb == nil || !n.linkUp.Load() {
			n.c.txDrops.Add(1)
		} else {
			n.c.txPackets.Add(1)
			n.c.txBytes.Add(uint64(len(frame)))
			// A refusal by the switch is counted on its port.
			if pb.p.Send(frame) != nil {
				n.c.txDrops.Add(1)
			}
		}
		// 5.1.6.2.1: the device reads only; the used length is 0.
		if err := q.Push(n.chain.Head, 0); err != nil {
			return err
		}
	}
}

// gather checks a transmit chain's header and copies its frame into txBuf.
func (n *Net) gather(c *virtio.Chain) ([]byte, error) {
	var hdr [HdrLen]byte
	h := 0
	frame := n.txBuf[:0]
	for _, b := range c.Bufs {
		if b.Write {
			return nil, errors.New("device-writable buffer in a transmit chain")
		}
		d := b.Data
		if h < HdrLen {
			k := copy(hdr[h:], d)
			h += k
			d = d[k:]
		}
		if len(frame)+len(d) > n.cfg.MaxFrame {
			return nil, fmt.Errorf("frame over %d bytes", n.cfg.MaxFrame)
		}
		frame = append(frame, d...)
	}
	switch {
	case h < HdrLen:
		return nil, errors.New("chain shorter than the header")
	case hdr[hdrGSOType] != HdrGSONone:
		return nil, fmt.Errorf("gso_type %d without GSO negotiated", hdr[hdrGSOType])
	case hdr[hdrFlags]&HdrFNeedsCsum != 0:
		return nil, errors.New("NEEDS_CSUM without VIRTIO_NET_F_CSUM")
	case len(frame) < minFrame:
		return nil, fmt.Errorf("frame of %d bytes", len(frame))
	}
	n.txBuf = frame
	return frame, nil
}

// receive moves backlog frames into the guest's receive buffers.
func (n *Net) receive(q *virtio.Queue) error {
	for {
		n.pmu.Lock()
		if len(n.pending) == 0 {
			n.pmu.Unlock()
			return nil
		}
		frame := n.pending[0]
		n.pmu.Unlock()
		ok, err := q.Pop(&n.chain)
		if err != nil {
			n.c.malformed.Add(1)
			return err
		}
		if !ok {
			return nil // the frame waits for buffers
		}
		written, err := n.scatter(&n.chain, frame)
		if err != nil {
			n.c.malformed.Add(1)
			n.c.rxDrops.Add(1)
		} else {
			n.c.rxPackets.Add(1)
			n.c.rxBytes.Add(uint64(len(frame)))
		}
		n.pmu.Lock()
		n.pending = n.pending[1:]
		n.free = append(n.free, frame)
		n.pmu.Unlock()
		if err := q.Push(n.chain.Head, written); err != nil {
			return err
		}
	}
}

// scatter writes the header and frame into a receive chain. A chain that cannot hold them
// gets nothing (used length 0).
func (n *Net) scatter(c *virtio.Chain, frame []byte) (uint32, error) {
	room := 0
	for _, b := range c.Bufs {
		if !b.Write {
			return 0, errors.New("device-readable buffer in a receive chain")
		}
		room += len(b.Data)
	}
	if room < HdrLen+len(frame) {
		return 0, fmt.Errorf("receive buffers of %d bytes for a %d-byte frame", room, HdrLen+len(frame))
	}
	var hdr [HdrLen]byte
	// 5.1.6.4: flags 0, GSO_NONE; num_buffers is 1 without VIRTIO_NET_F_MRG_RXBUF.
	binary.LittleEndian.PutUint16(hdr[hdrNumBuffers:], 1)
	src := [2][]byte{hdr[:], frame}
	s, w := 0, uint32(0)
	for _, b := range c.Bufs {
		d := b.Data
		for len(d) > 0 && s < len(src) {
			k := copy(d, src[s])
			d, src[s], w = d[k:], src[s][k:], w+uint32(k)
			if len(src[s]) == 0 {
				s++
			}
		}
	}
	return w, nil
}

// State is the device's own migratable state (the transport's is virtio.State).
// Frames in the receive backlog are not saved: they are lost as on a real wire.
type State struct {
	MAC    [6]byte
	LinkUp bool
	Active bool
}

// ErrState reports a state Restore refuses.
var ErrState = errors.New("virtio-net: invalid state")

// Save returns the device's state.
func (n *Net) Save() State {
	return State{MAC: n.cfg.MAC, LinkUp: n.linkUp.Load(), Active: n.active.Load()}
}

// Restore loads a state from Save. The MAC must be the device's own: the VM's
// configuration travels separately and creates the device with it.
func (n *Net) Restore(s State) error {
	if s.MAC != n.cfg.MAC {
		return fmt.Errorf("%w: MAC %x, device has %x", ErrState, s.MAC, n.cfg.MAC)
	}
	n.linkUp.Store(s.LinkUp)
	n.active.Store(s.Active)
	return nil
}

// Connect adds the device to a virtual switch as port name and sends its frames there.
func (n *Net) Connect(sw *vswitch.Switch, name string) (*vswitch.Port, error) {
	p, err := sw.AddPort(name, n.Deliver)
	if err != nil {
		return nil, fmt.Errorf("virtio-net: %w", err)
	}
	n.SetPort(p)
	return p, nil
}
