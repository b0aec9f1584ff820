// Package nic is the contract between Godwit's host NIC drivers (arch/...) and everything
// above them: the host network stack (hostnet) and the guests' virtual switches
// (hv/vswitch). It has no dependencies beyond the standard library so drivers can import it
// without pulling in the network stack.
//
// A driver implements Link and calls Register once per device, in PCI order; the devices are
// named net0, net1, ... in that order. The driver owns its goroutines, interrupts and DMA
// rings; the layer above owns nothing of the driver's memory.
//
// Frames are Ethernet II frames as on the wire: destination MAC, source MAC, EtherType,
// payload; no preamble and no frame check sequence (IEEE 802.3-2018, 3.1.1). The largest frame
// a Link must carry is MTU()+HeaderLen bytes.
package nic

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
)

// Ethernet framing sizes. IEEE 802.3-2018, 3.1.1 "Packet format" and 3.2.3-3.2.6.
const (
	HeaderLen    = 14   // destination (6) + source (6) + EtherType (2)
	MinFrameLen  = 60   // minFrameSize 64 less the 4-byte FCS; drivers pad short frames
	DefaultMTU   = 1500 // maxBasicFrameSize 1518 less header and FCS
	AddrLen      = 6    // a MAC address
	MaxFrameDflt = DefaultMTU + HeaderLen
)

// Errors a Link's Transmit returns; callers branch on them with errors.Is.
var (
	// ErrRingFull: the transmit ring has no free slot right now; the frame was not sent and
	// may be retried later (the stack counts it as a drop).
	ErrRingFull = errors.New("transmit ring full")
	// ErrLinkDown: the link is down; the frame was not sent.
	ErrLinkDown = errors.New("link down")
	// ErrDeviceDead: the device stopped answering (a reset timed out, DMA stalled...); it will
	// not send again until the driver recovers it. Drivers wrap it with what they saw.
	ErrDeviceDead = errors.New("device not responding")
	// ErrFrameSize: the frame is shorter than a header or longer than MTU()+HeaderLen.
	ErrFrameSize = errors.New("bad frame size")
)

// Link is one host NIC as its driver presents it.
//
// All methods may be called from any goroutine at any time after Register, concurrently;
// the driver serialises access to its rings itself.
type Link interface {
	// MAC is the station address (6 bytes). It does not change after Register.
	MAC() net.HardwareAddr
	// MTU is the largest payload of one frame, without the 14-byte header (1500 for
	// standard Ethernet). It does not change after Register.
	MTU() int
	// Up reports the current link state (carrier).
	Up() bool
	// Transmit sends one frame. The driver copies the frame (into its DMA buffer) before it
	// returns, so the caller may reuse it at once. It does not wait for the device to finish.
	// It returns ErrFrameSize, ErrLinkDown, ErrRingFull, or an error wrapping ErrDeviceDead,
	// and counts the frame in its Counters (TxPackets/TxBytes when queued, TxDrops or
	// TxErrors when not).
	Transmit(frame []byte) error
	// SetHandler attaches the receiver of this link's frames and link-state changes; nil
	// detaches it (the driver then drops received frames and counts them as RxDrops). The
	// driver calls the previous handler no more once SetHandler returns.
	SetHandler(h Handler)
	// Stats is a snapshot of the link's counters.
	Stats() Stats
	// Description names the driver and the device, e.g. "e1000 at 00:03.0", for `net`.
	Description() string
}

// Promiscuous is implemented by a Link that can be told to receive frames for every
// destination MAC address (for the e1000, RCTL.UPE and RCTL.MPE: Intel 8254x SDM 13.4.22).
// A vm uplink needs it: the virtual switch behind it forwards frames for the guests' MAC
// addresses, which are not the NIC's own. The switch calls SetPromiscuous(true) when it takes
// the link and SetPromiscuous(false) when it lets go. A Link without it receives only its own
// unicast, broadcast and multicast frames, and guests on its switch then see no unicast
// traffic from outside (the switch logs this).
type Promiscuous interface {
	SetPromiscuous(on bool) error
}

// Handler receives what a Link delivers. The driver calls it from its own goroutine (its
// interrupt or polling goroutine), one call at a time per link.
type Handler interface {
	// DeliverFrame hands over one received frame. The frame is valid only during the call:
	// the driver reuses the buffer as soon as DeliverFrame returns, so the handler copies
	// what it keeps. The handler must not block (no waiting on locks held across I/O); a
	// handler that cannot take the frame drops and counts it itself. The driver has already
	// checked the length (HeaderLen <= len <= MTU()+HeaderLen); anything else it counts as
	// RxErrors and does not deliver.
	DeliverFrame(frame []byte)
	// LinkChanged reports a change of the link state (carrier up or down). The driver calls
	// it once per change, after Up() already returns the new state.
	LinkChanged(up bool)
}

// Stats are a link's counters since the driver started.
type Stats struct {
	RxPackets, RxBytes, RxDrops, RxErrors uint64
	TxPackets, TxBytes, TxDrops, TxErrors uint64
}

func (s Stats) String() string {
	return fmt.Sprintf("rx %d pkts %d bytes %d drops %d errors, tx %d pkts %d bytes %d drops %d errors",
		s.RxPackets, s.RxBytes, s.RxDrops, s.RxErrors, s.TxPackets, s.TxBytes, s.TxDrops, s.TxErrors)
}

// Counters are lock-free counters a driver can embed and update from its interrupt
// goroutine; Snapshot gives the Stats its Link.Stats returns.
type Counters struct {
	RxPackets, RxBytes, RxDrops, RxErrors atomic.Uint64
	TxPackets, TxBytes, TxDrops, TxErrors atomic.Uint64
}

// Rx counts one received frame of n bytes.
func (c *Counters) Rx(n int) { c.RxPackets.Add(1); c.RxBytes.Add(uint64(n)) }

// Tx counts one transmitted frame of n bytes.
func (c *Counters) Tx(n int) { c.TxPackets.Add(1); c.TxBytes.Add(uint64(n)) }

// Snapshot reads every counter.
func (c *Counters) Snapshot() Stats {
	return Stats{
		RxPackets: c.RxPackets.Load(), RxBytes: c.RxBytes.Load(), RxDrops: c.RxDrops.Load(), RxErrors: c.RxErrors.Load(),
		TxPackets: c.TxPackets.Load(), TxBytes: c.TxBytes.Load(), TxDrops: c.TxDrops.Load(), TxErrors: c.TxErrors.Load(),
	}
}

// CheckFrame reports whether frame has a length a link with the given MTU carries.
func CheckFrame(frame []byte, mtu int) error {
	if len(frame) < HeaderLen || len(frame) > mtu+HeaderLen {
		return fmt.Errorf("%w: %d bytes, want %d..%d", ErrFrameSize, len(frame), HeaderLen, mtu+HeaderLen)
	}
	return nil
}

// Registered is a Link with the name Register gave it.
type Registered struct {
	Name  string // "net0", "net1", ...
	Index int    // 0, 1, ...
	Link  Link
}

var registry struct {
	mu    sync.Mutex
	links []Registered
	subs  []func(Registered)
}

// Register adds a host NIC and names it net<N>, N counting from 0 in call order. Drivers call
// it in PCI order (bus, device, function), once per device, after the device can transmit
// and receive. Subscribers (the host stack's configuration) learn of it at once, on the
// caller's goroutine.
func Register(l Link) string {
	if l == nil {
		panic("nic.Register(nil)")
	}
	registry.mu.Lock()
	r := Registered{Name: fmt.Sprintf("net%d", len(registry.links)), Index: len(registry.links), Link: l}
	registry.links = append(registry.links, r)
	subs := append([]func(Registered){}, registry.subs...)
	registry.mu.Unlock()
	for _, f := range subs {
		f(r)
	}
	return r.Name
}

// Links lists the registered NICs in name order.
func Links() []Registered {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	return append([]Registered(nil), registry.links...)
}

// Subscribe calls f for every NIC registered so far and every one registered later.
func Subscribe(f func(Registered)) {
	registry.mu.Lock()
	have := append([]Registered(nil), registry.links...)
	registry.subs = append(registry.subs, f)
	registry.mu.Unlock()
	for _, r := range have {
		f(r)
	}
}

// Lookup finds a registered NIC by name ("net1") or by MAC address ("52:54:00:12:34:56").
func Lookup(nameOrMAC string) (Registered, bool) {
	mac, macErr := net.ParseMAC(nameOrMAC)
	registry.mu.Lock()
	defer registry.mu.Unlock()
	for _, r := range registry.links {
		if r.Name == nameOrMAC || (macErr == nil && string(r.Link.MAC()) == string(mac)) {
			return r, true
		}
	}
	return Registered{}, false
}
