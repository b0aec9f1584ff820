package hostnet

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/godwit-hv/godwit/hostnet/nic"
)

// Transmit back-pressure: when a driver's ring is full, the endpoint yields and retries for
// up to txFullWait before it drops the frame; a full ring is a burst, not a failure, and a
// dropped TCP segment costs a retransmission timeout.
const (
	txFullSpins = 16                    // retries that only yield the processor
	txFullWait  = 2 * time.Millisecond  // total time to wait for a free slot
	txFullSleep = 50 * time.Microsecond // sleep between later retries
)

// endpoint adapts a nic.Link to gVisor's stack.LinkEndpoint: it adds and parses the Ethernet
// header itself (IEEE 802.3 Ethernet II, 14 bytes), requires ARP resolution, and offloads no
// checksums, so the stack computes and verifies every IPv4, TCP, UDP and ICMP checksum.
type endpoint struct {
	link nic.Link
	mac  tcpip.LinkAddress
	mtu  atomic.Uint32

	// dispatcher is read without a lock on every frame. The stack calls Attach(nil) with
	// its own lock held while a frame may be on its way in and waiting for that lock, so
	// Attach must not wait for the driver (SetHandler(nil) would): it only clears this, and
	// the host detaches the link's handler after the stack is closed.
	dispatcher atomic.Pointer[stack.NetworkDispatcher]
	attached   atomic.Bool // the link's handler is set

	mu      sync.Mutex
	onClose func()

	// Counters the stack side keeps beyond the driver's: frames not for this host
	// (another unicast MAC) and frames the driver refused.
	filtered  atomic.Uint64
	txRefused atomic.Uint64
	lastTxErr atomic.Value // error

	linkChange func(up bool) // set once before Attach
	txBuf      sync.Pool
}

var _ stack.LinkEndpoint = (*endpoint)(nil)
var _ nic.Handler = (*endpoint)(nil)

func newEndpoint(l nic.Link, linkChange func(up bool)) *endpoint {
	e := &endpoint{link: l, mac: tcpip.LinkAddress(l.MAC()), linkChange: linkChange}
	e.mtu.Store(uint32(l.MTU()))
	frameMax := l.MTU() + nic.HeaderLen
	e.txBuf.New = func() any { b := make([]byte, 0, frameMax); return &b }
	return e
}

// MTU implements stack.LinkEndpoint: the IP MTU, without the Ethernet header.
func (e *endpoint) MTU() uint32 { return e.mtu.Load() }

// SetMTU implements stack.LinkEndpoint. The MTU can only shrink below the link's.
func (e *endpoint) SetMTU(mtu uint32) {
	if mtu <= uint32(e.link.MTU()) {
		e.mtu.Store(mtu)
	}
}

// MaxHeaderLength implements stack.LinkEndpoint.
func (e *endpoint) MaxHeaderLength() uint16 { return header.EthernetMinimumSize }

// LinkAddress implements stack.LinkEndpoint.
func (e *endpoint) LinkAddress() tcpip.LinkAddress { return e.mac }

// SetLinkAddress implements stack.LinkEndpoint; the station address is the NIC's.
func (e *endpoint) SetLinkAddress(tcpip.LinkAddress) {}

// Capabilities implements stack.LinkEndpoint: ARP is needed; nothing is offloaded.
func (e *endpoint) Capabilities() stack.LinkEndpointCapabilities {
	return stack.CapabilityResolutionRequired
}

// Attach implements stack.LinkEndpoint: the first attach makes the endpoint the link's
// handler; a nil dispatcher makes it drop what arrives (see dispatcher).
func (e *endpoint) Attach(d stack.NetworkDispatcher) {
	if d == nil {
		e.dispatcher.Store(nil)
		return
	}
	e.dispatcher.Store(&d)
	if !e.attached.Swap(true) {
		e.link.SetHandler(e)
	}
}

// detach stops the link's deliveries; never with the stack's lock held.
func (e *endpoint) detach() {
	e.dispatcher.Store(nil)
	if e.attached.Swap(false) {
		e.link.SetHandler(nil)
	}
}

// IsAttached implements stack.LinkEndpoint.
func (e *endpoint) IsAttached() bool { return e.dispatcher.Load() != nil }

// Wait implements stack.LinkEndpoint; the endpoint owns no goroutines (the driver does).
func (e *endpoint) Wait() {}

// ARPHardwareType implements stack.LinkEndpoint.
func (e *endpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareEther }

// AddHeader implements stack.LinkEndpoint: the Ethernet II header.
func (e *endpoint) AddHeader(pkt *stack.PacketBuffer) {
	eth := header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize))
	src := pkt.EgressRoute.LocalLinkAddress
	if src == "" {
		src = e.mac
	}
	eth.Encode(&header.EthernetFields{SrcAddr: src, DstAddr: pkt.EgressRoute.RemoteLinkAddress, Type: pkt.NetworkProtocolNumber})
}

// ParseHeader implements stack.LinkEndpoint.
func (e *endpoint) ParseHeader(pkt *stack.PacketBuffer) bool {
	_, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	return ok
}

// Close implements stack.LinkEndpoint.
func (e *endpoint) Close() {
	e.mu.Lock()
	f := e.onClose
	e.onClose = nil
	e.mu.Unlock()
	if f != nil {
		f()
	}
}

// SetOnCloseAction implements stack.LinkEndpoint.
func (e *endpoint) SetOnCloseAction(f func()) {
	e.mu.Lock()
	e.onClose = f
	e.mu.Unlock()
}

// WritePackets implements stack.LinkWriter: each packet is flattened into one frame and
// handed to the driver, which copies it. A full ring is waited on briefly; any other
// refusal drops the frame and is reported to the stack.
func (e *endpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	bp := e.txBuf.Get().(*[]byte)
	defer e.txBuf.Put(bp)
	n := 0
	for _, pkt := range pkts.AsSlice() {
		frame := (*bp)[:0]
		for _, s := range pkt.AsSlices() {
			frame = append(frame, s...)
		}
		*bp = frame
		if err := e.transmit(frame); err != nil {
			e.txRefused.Add(1)
			e.lastTxErr.Store(err)
			if n == 0 {
				return 0, toTCPIPError(err)
			}
			return n, toTCPIPError(err)
		}
		n++
	}
	return n, nil
}

func (e *endpoint) transmit(frame []byte) error {
	deadline := time.Time{}
	for i := 0; ; i++ {
		err := e.link.Transmit(frame)
		if !errors.Is(err, nic.ErrRingFull) {
			return err
		}
		switch {
		case i < txFullSpins:
			runtime.Gosched()
		case deadline.IsZero():
			deadline = time.Now().Add(txFullWait)
			time.Sleep(txFullSleep)
		case time.Now().After(deadline):
			return err
		default:
			time.Sleep(txFullSleep)
		}
	}
}

func toTCPIPError(err error) tcpip.Error {
	switch {
	case errors.Is(err, nic.ErrRingFull):
		return &tcpip.ErrWouldBlock{}
	case errors.Is(err, nic.ErrLinkDown):
		return &tcpip.ErrNoNet{}
	case errors.Is(err, nic.ErrFrameSize):
		return &tcpip.ErrMessageTooLong{}
	default:
		return &tcpip.ErrClosedForSend{}
	}
}

// DeliverFrame implements nic.Handler. The frame is copied (the driver reuses its buffer).
// Unicast frames for another station are counted and dropped here: a NIC left promiscuous
// must not make the host answer for others.
func (e *endpoint) DeliverFrame(frame []byte) {
	if len(frame) < header.EthernetMinimumSize {
		return
	}
	dp := e.dispatcher.Load()
	if dp == nil {
		return
	}
	d := *dp
	eth := header.Ethernet(frame)
	dst := eth.DestinationAddress()
	var typ tcpip.PacketType
	switch {
	case dst == header.EthernetBroadcastAddress:
		typ = tcpip.PacketBroadcast
	case header.IsMulticastEthernetAddress(dst):
		typ = tcpip.PacketMulticast
	case dst == e.mac:
		typ = tcpip.PacketHost
	default:
		e.filtered.Add(1)
		return
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(frame)})
	defer pkt.DecRef()
	if !e.ParseHeader(pkt) {
		return
	}
	pkt.PktType = typ
	d.DeliverNetworkPacket(eth.Type(), pkt)
}

// LinkChanged implements nic.Handler.
func (e *endpoint) LinkChanged(up bool) {
	if e.linkChange != nil {
		e.linkChange(up)
	}
}
