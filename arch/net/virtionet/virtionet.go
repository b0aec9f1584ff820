// Package virtionet drives the host's virtio-net devices (virtio 1.1, 5.1 "Network Device")
// as Godwit host NICs, on the modern virtio-pci transport of arch/virtio: one receive and one
// transmit queue, the station address from the device configuration (VIRTIO_NET_F_MAC), link
// state from its status field (VIRTIO_NET_F_STATUS), the 12-byte virtio_net_hdr in front of
// every frame (VIRTIO_F_VERSION_1), receive buffers in DMA memory refilled as they are used,
// transmit buffers reclaimed when the device has used them, MSI-X when the device offers it
// (INTx with the ISR otherwise), and promiscuous mode through the control queue
// (VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_CTRL_RX) for vm uplinks. A device that stops answering (its status reads all ones or
// asks for a reset, transmit buffers never come back) is taken out of service: counted, logged
// once, link reported down.
//
// The ring handling (newNIC over an env) runs under `go test` against the device side of
// arch/virtio/virtiotest; Open wires it to a real device.
//
// References are to "Virtual I/O Device (VIRTIO) Version 1.1", cited as "virtio 1.1".
package virtionet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/godwit-hv/godwit/arch/virtio"
	"github.com/godwit-hv/godwit/hostnet/nic"
)

// Feature bits. virtio 1.1, 5.1.3 "Feature bits".
const (
	featMAC    = 5  // VIRTIO_NET_F_MAC: the device has a station address in its configuration
	featStatus = 16 // VIRTIO_NET_F_STATUS: the configuration's status field is valid
)

// Device configuration layout. virtio 1.1, 5.1.4 "Device configuration layout": mac[6], le16
// status, le16 max_virtqueue_pairs, le16 mtu.
const (
	cfgMAC       = 0
	cfgStatus    = 6
	cfgMinLen    = 8
	statusLinkUp = 1 // VIRTIO_NET_S_LINK_UP
)

// virtio_net_hdr with VIRTIO_F_VERSION_1: flags (1), gso_type (1), hdr_len (2), gso_size (2),
// csum_start (2), csum_offset (2), num_buffers (2) — always 12 bytes (virtio 1.1, 5.1.6
// "Device Operation"). Without offloads the driver sends it all zero (gso_type
// VIRTIO_NET_HDR_GSO_NONE), and the device's flags and GSO fields are zero.
const (
	hdrLen = 12
)

// Queues. virtio 1.1, 5.1.2 "Virtqueues": receiveq1 is 0, transmitq1 is 1.
const (
	rxQueue = 0
	txQueue = 1
)

// Sizes and timing.
const (
	// bufSize holds the header and the largest frame (12 + 1514, and room for a VLAN tag):
	// without VIRTIO_NET_F_MRG_RXBUF every receive buffer must hold a whole packet (5.1.6.3.1).
	bufSize          = 2048
	DefaultQueue     = 256
	DefaultPoll      = time.Second
	DefaultTxTimeout = 5 * time.Second
)

// SharedIRQBackoff is how long the service goroutine steps aside after an interrupt on a
// shared INTx line that was another device's (see run).
var SharedIRQBackoff = time.Millisecond

// IRQ is an interrupt source: a count and a wait for it to pass a value.
type IRQ interface {
	Count() uint64
	Wait(seen uint64, timeout time.Duration) (uint64, error)
}

// linkState is what a look at the device tells.
type linkState struct {
	up   bool
	dead string // non-empty: the device stopped answering, and why
}

// env is everything the driver core needs from the device: the two queues, DMA memory, the
// receive queue's interrupt, and a way to read the link state.
type env struct {
	rxq, txq  *virtio.Queue
	mem       virtio.Memory
	irq       IRQ // the receive queue's interrupt
	cfgIRQ    IRQ // configuration changes (link); nil: found by polling
	link      func() linkState
	ready     func() // sets DRIVER_OK once the receive buffers are posted; nil in tests
	mac       net.HardwareAddr
	location  string
	irqDesc   string
	sharedIRQ bool // irq is an INTx line other devices may share
	poll      time.Duration
	txTimeout time.Duration
	logf      func(string, ...any)
	sleep     func(time.Duration)
	shutdown  func() // resets the device (Close), so that it stops using the buffers

	ctrlq       *virtio.Queue // the control queue; nil without VIRTIO_NET_F_CTRL_VQ
	ctrlRX      bool          // VIRTIO_NET_F_CTRL_RX negotiated
	ctrlTimeout time.Duration // 0: ctrlTimeoutDflt
}

// DeviceStats are the driver's counters beyond nic.Stats.
type DeviceStats struct {
	Interrupts  uint64 // wake-ups by the receive interrupt
	LinkChanges uint64
	BadUsed     uint64 // malformed used entries from the device
	TxRingFull  uint64
	TxTimeouts  uint64
	Revivals    uint64 // back in service after a transmit stall ended
	SharedWakes uint64 // interrupts of another device on a shared INTx line
	Kicks       uint64 // receive and transmit notifications sent
}

// NIC is one virtio-net device. It implements nic.Link.
type NIC struct {
	e    env
	desc string

	rxBufs   []byte
	rxPA     uint64
	rxSlotOf []int // receive queue head -> buffer slot, -1 when not posted

	txMu          sync.Mutex
	txBufs        []byte
	txPA          uint64
	txFree        []int // free transmit buffer slots
	txSlotOf      []int // transmit queue head -> slot, -1 when not in flight
	txPending     int
	txProgress    time.Time
	txClosed      bool
	usedScratch   []virtio.Used
	txUsedScratch []virtio.Used
	slotScratch   []int

	// Service holds the handler, the link state and whether the device is out of service
	// (dead only because transmit buffers stopped coming back is undone if they come back
	// after all).
	nic.Service
	linkMu sync.Mutex

	ctrlMu  sync.Mutex
	ctrlBuf []byte // class+command, data, ack; nil once closed or lost to a timeout
	ctrlPA  uint64
	ctrlMem []byte // the allocation behind ctrlBuf, freed on Close
	promisc atomic.Bool

	counters nic.Counters
	dev      struct {
		interrupts, badUsed, txRingFull, txTimeouts, revivals, sharedWakes atomic.Uint64
	}

	quit     atomic.Bool
	done     chan struct{}
	cfgDone  chan struct{}
	closeMu  sync.Mutex
	closed   bool
	lastPoll time.Time
}

// newNIC allocates the buffers, posts every receive buffer and starts the service goroutine.
// The caller sets DRIVER_OK before (the device may use the buffers at once).
func newNIC(e env) (*NIC, error) {
	if e.poll <= 0 {
		e.poll = DefaultPoll
	}
	if e.txTimeout <= 0 {
		e.txTimeout = DefaultTxTimeout
	}
	if e.sleep == nil {
		e.sleep = time.Sleep
	}
	if e.logf == nil {
		e.logf = func(format string, args ...any) { fmt.Fprintf(os.Stdout, format+"\n", args...) }
	}
	n := &NIC{e: e, done: make(chan struct{}), cfgDone: make(chan struct{})}
	n.Desc, n.Logf = "virtio-net at "+e.location, e.logf
	nrx, ntx := e.rxq.Size(), e.txq.Size()
	var err error
	if n.rxBufs, n.rxPA, err = e.mem.Alloc(nrx * bufSize); err != nil {
		return nil, fmt.Errorf("%s: receive buffers: %w", n.Desc, err)
	}
	if n.txBufs, n.txPA, err = e.mem.Alloc(ntx * bufSize); err != nil {
		e.mem.Free(n.rxBufs, n.rxPA)
		return nil, fmt.Errorf("%s: transmit buffers: %w", n.Desc, err)
	}
	if e.ctrlq != nil {
		if n.ctrlMem, n.ctrlPA, err = e.mem.Alloc(ctrlBufSize); err != nil {
			n.freeBufs()
			return nil, fmt.Errorf("%s: control buffer: %w", n.Desc, err)
		}
		n.ctrlBuf = n.ctrlMem
		e.ctrlq.SetInterrupts(false) // completions are polled (ctrlCmd)
	}
	n.rxSlotOf = make([]int, nrx)
	for i := range n.rxSlotOf {
		n.rxSlotOf[i] = -1
	}
	for i := 0; i < nrx; i++ {
		if err := n.post(i); err != nil {
			n.freeBufs()
			return nil, fmt.Errorf("%s: posting receive buffer %d: %w", n.Desc, i, err)
		}
	}
	n.txSlotOf = make([]int, ntx)
	for i := range n.txSlotOf {
		n.txSlotOf[i] = -1
	}
	for i := ntx - 1; i >= 0; i-- {
		n.txFree = append(n.txFree, i)
	}
	// Transmit completions are collected when needed, not signalled (virtio 1.1, 2.6.7).
	e.txq.SetInterrupts(false)
	n.txProgress = time.Now()
	if e.ready != nil {
		e.ready()
	}
	st := e.link()
	n.InitLink(st.up && st.dead == "")
	n.lastPoll = time.Now()
	e.rxq.Kick()
	go n.run()
	if e.cfgIRQ != nil {
		go n.watchConfig()
	} else {
		close(n.cfgDone)
	}
	return n, nil
}

func (n *NIC) freeBufs() {
	if n.rxBufs != nil {
		n.e.mem.Free(n.rxBufs, n.rxPA)
		n.rxBufs = nil
	}
	if n.txBufs != nil {
		n.e.mem.Free(n.txBufs, n.txPA)
		n.txBufs = nil
	}
	n.ctrlMu.Lock()
	if n.ctrlMem != nil {
		n.e.mem.Free(n.ctrlMem, n.ctrlPA)
		n.ctrlMem, n.ctrlBuf = nil, nil
	}
	n.ctrlMu.Unlock()
}

// post gives receive buffer slot to the device.
func (n *NIC) post(slot int) error {
	head, err := n.e.rxq.Add([]virtio.Buf{{Addr: n.rxPA + uint64(slot*bufSize), Len: bufSize, Write: true}})
	if err != nil {
		return err
	}
	n.rxSlotOf[head] = slot
	return nil
}

// run is the service goroutine: received frames, transmit reclaim, link and watchdog.
func (n *NIC) run() {
	defer close(n.done)
	woke := false // the last wait ended with an interrupt (not a timeout)
	for !n.quit.Load() {
		if n.Dead() {
			if !n.tryRevive() {
				// Waiting on the interrupt (not sleeping) keeps acknowledging it, so a shared
				// INTx line is not left asserted while nobody serves this device.
				n.e.irq.Wait(n.e.irq.Count(), n.e.poll)
			}
			continue
		}
		seen := n.e.irq.Count()
		worked := n.receive()
		n.txMu.Lock()
		n.reclaimLocked()
		n.txMu.Unlock()
		if time.Since(n.lastPoll) >= n.e.poll {
			n.poll()
		}
		if worked {
			woke = false
			continue
		}
		if woke && n.e.sharedIRQ {
			// The interrupt brought nothing: another device on the shared INTx line raised it.
			// Waiting again at once would unmask the line while that device still asserts it;
			// give its driver the processor to acknowledge it first.
			n.dev.sharedWakes.Add(1)
			n.e.sleep(SharedIRQBackoff)
		}
		got, err := n.e.irq.Wait(seen, n.e.poll)
		woke = got > seen
		if woke {
			n.dev.interrupts.Add(1)
		}
		if errors.Is(err, virtio.ErrDeviceReset) {
			n.Fail(err.Error(), false)
		}
	}
}

// watchConfig follows configuration-change interrupts (the link) when they have a vector of
// their own.
func (n *NIC) watchConfig() {
	defer close(n.cfgDone)
	for !n.quit.Load() {
		seen := n.e.cfgIRQ.Count()
		if got, _ := n.e.cfgIRQ.Wait(seen, n.e.poll); got > seen && !n.Dead() {
			n.checkLink()
		}
	}
}

// poll looks at the device: link, status, and the transmit watchdog.
func (n *NIC) poll() {
	n.lastPoll = time.Now()
	if n.checkLink() {
		return
	}
	n.txMu.Lock()
	n.reclaimLocked()
	pending, since := n.txPending, time.Since(n.txProgress)
	n.txMu.Unlock()
	if pending > 0 && n.LinkUp() && since > n.e.txTimeout {
		n.dev.txTimeouts.Add(1)
		n.Fail(fmt.Sprintf("transmit stalled: %d buffers pending for %v", pending, since.Round(time.Millisecond)), true)
	}
}

// checkLink reads the link state and reports a change; true if the device is dead.
func (n *NIC) checkLink() bool {
	n.linkMu.Lock()
	defer n.linkMu.Unlock()
	st := n.e.link()
	if st.dead != "" {
		n.Fail(st.dead, false)
		return true
	}
	if n.SetLink(st.up) && st.up {
		n.txMu.Lock()
		n.txProgress = time.Now() // the watchdog counts from the link coming up
		n.txMu.Unlock()
	}
	return n.Dead()
}

// tryRevive puts a device taken out of service for a transmit stall back in service once its
// transmit buffers come back; it reports whether it did.
func (n *NIC) tryRevive() bool {
	if !n.Revivable() {
		return false
	}
	n.txMu.Lock()
	before := n.txPending
	n.reclaimLocked()
	freed := before - n.txPending
	n.txMu.Unlock()
	if freed == 0 || !n.Revive("transmit buffers come back again") {
		return false
	}
	n.dev.revivals.Add(1)
	n.checkLink() // reports the link up
	return true
}

// receive delivers the frames the device has filled and posts their buffers again.
func (n *NIC) receive() bool {
	used, err := n.e.rxq.Collect(n.usedScratch[:0])
	n.usedScratch = used
	if err != nil {
		n.dev.badUsed.Add(1)
		n.counters.RxErrors.Add(1)
	}
	if len(used) == 0 {
		return err != nil
	}
	// Every used head is resolved to its buffer before any buffer is posted again: posting
	// reuses the descriptors Collect freed, which may be heads later in this batch.
	slots := n.slotScratch[:0]
	for _, u := range used {
		slot := n.rxSlotOf[u.Head]
		n.rxSlotOf[u.Head] = -1
		if slot < 0 {
			// Collect hands back only heads in flight, so this is a broken invariant.
			panic(fmt.Sprintf("virtio-net: receive head %d has no buffer", u.Head))
		}
		slots = append(slots, slot)
	}
	n.slotScratch = slots
	n.WithHandler(func(h nic.Handler) {
		for i, u := range used {
			slot := slots[i]
			buf := n.rxBufs[slot*bufSize : (slot+1)*bufSize]
			switch {
			case u.Err != nil:
				n.dev.badUsed.Add(1)
				n.counters.RxErrors.Add(1)
			case int(u.Len) < hdrLen || nic.CheckFrame(buf[hdrLen:u.Len], nic.DefaultMTU) != nil:
				n.counters.RxErrors.Add(1)
			case h == nil:
				n.counters.RxDrops.Add(1)
			default:
				f := buf[hdrLen:u.Len]
				n.counters.Rx(len(f))
				h.DeliverFrame(f)
			}
		}
		for _, slot := range slots {
			if err := n.post(slot); err != nil {
				// The slot's descriptor just came back, so there is room: a broken invariant.
				panic(fmt.Sprintf("virtio-net: reposting receive buffer %d: %v", slot, err))
			}
		}
	})
	n.e.rxq.Kick()
	return true
}

// reclaimLocked takes back the transmit buffers the device has used. Caller holds txMu.
func (n *NIC) reclaimLocked() {
	if n.txPending == 0 || n.txClosed {
		return
	}
	used, err := n.e.txq.Collect(n.txUsedScratch[:0])
	n.txUsedScratch = used
	if err != nil {
		n.dev.badUsed.Add(1)
		n.counters.TxErrors.Add(1)
	}
	for _, u := range used {
		slot := n.txSlotOf[u.Head]
		n.txSlotOf[u.Head] = -1
		if slot < 0 {
			panic(fmt.Sprintf("virtio-net: transmit head %d has no buffer", u.Head))
		}
		n.txFree = append(n.txFree, slot)
		n.txPending--
	}
	if len(used) > 0 {
		n.txProgress = time.Now()
	}
}

// Transmit implements nic.Link: header and frame are copied into a transmit buffer (short
// frames padded to 60 bytes) and handed to the device.
func (n *NIC) Transmit(frame []byte) error {
	if err := nic.CheckFrame(frame, nic.DefaultMTU); err != nil {
		n.counters.TxErrors.Add(1)
		return fmt.Errorf("%s: %w", n.Desc, err)
	}
	if n.Dead() {
		n.counters.TxErrors.Add(1)
		return n.Err()
	}
	if !n.LinkUp() {
		n.counters.TxDrops.Add(1)
		return fmt.Errorf("%s: %w", n.Desc, nic.ErrLinkDown)
	}
	n.txMu.Lock()
	if n.txClosed {
		n.txMu.Unlock()
		n.counters.TxErrors.Add(1)
		return fmt.Errorf("%s: closed: %w", n.Desc, nic.ErrDeviceDead)
	}
	if len(n.txFree) == 0 {
		n.reclaimLocked()
	}
	if len(n.txFree) == 0 {
		n.txMu.Unlock()
		n.dev.txRingFull.Add(1)
		n.counters.TxDrops.Add(1)
		return fmt.Errorf("%s: %d buffers pending: %w", n.Desc, n.txPending, nic.ErrRingFull)
	}
	slot := n.txFree[len(n.txFree)-1]
	buf := n.txBufs[slot*bufSize : (slot+1)*bufSize]
	clear(buf[:hdrLen])
	copy(buf[hdrLen:], frame)
	length := len(frame)
	if length < nic.MinFrameLen {
		clear(buf[hdrLen+length : hdrLen+nic.MinFrameLen])
		length = nic.MinFrameLen
	}
	head, err := n.e.txq.Add([]virtio.Buf{{Addr: n.txPA + uint64(slot*bufSize), Len: uint32(hdrLen + length)}})
	if err != nil {
		n.txMu.Unlock()
		n.counters.TxErrors.Add(1)
		return fmt.Errorf("%s: %w", n.Desc, err)
	}
	n.txFree = n.txFree[:len(n.txFree)-1]
	n.txSlotOf[head] = slot
	if n.txPending == 0 {
		n.txProgress = time.Now()
	}
	n.txPending++
	n.txMu.Unlock()
	n.e.txq.Kick()
	n.counters.Tx(len(frame))
	return nil
}

// MAC implements nic.Link.
func (n *NIC) MAC() net.HardwareAddr { return append(net.HardwareAddr(nil), n.e.mac...) }

// MTU implements nic.Link.
func (n *NIC) MTU() int { return nic.DefaultMTU }

// Location is the device's PCI address.
func (n *NIC) Location() string { return n.e.location }

// Stats implements nic.Link.
func (n *NIC) Stats() nic.Stats { return n.counters.Snapshot() }

// DeviceStats returns the driver's own counters.
func (n *NIC) DeviceStats() DeviceStats {
	rs, ts := n.e.rxq.Stats(), n.e.txq.Stats()
	return DeviceStats{
		Interrupts: n.dev.interrupts.Load(), LinkChanges: n.LinkChanges.Load(),
		BadUsed: n.dev.badUsed.Load(), TxRingFull: n.dev.txRingFull.Load(), TxTimeouts: n.dev.txTimeouts.Load(),
		Revivals: n.dev.revivals.Load(), SharedWakes: n.dev.sharedWakes.Load(),
		Kicks: rs.Kicks + ts.Kicks,
	}
}

// Info is a one-line summary for the shell.
func (n *NIC) Info() string {
	d := n.DeviceStats()
	s := fmt.Sprintf("%s, link %s, %s, rx queue %d, tx queue %d, %d interrupts, %d kicks, %d bad used, %d tx ring full, %d tx timeouts",
		n.Desc, nic.UpDown(n.Up()), n.e.irqDesc, n.e.rxq.Size(), n.e.txq.Size(), d.Interrupts, d.Kicks, d.BadUsed, d.TxRingFull, d.TxTimeouts)
	if n.promisc.Load() {
		s += ", promiscuous"
	}
	if n.Dead() {
		s += ", DEAD: " + n.Err().Error()
	}
	return s
}

// Close stops the goroutines, resets the device and frees the buffers and queues.
func (n *NIC) Close() error {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	n.quit.Store(true)
	for _, ch := range []chan struct{}{n.done, n.cfgDone} {
		select {
		case <-ch:
		case <-time.After(4*n.e.poll + time.Second):
			return fmt.Errorf("%s: service goroutine did not stop", n.Desc)
		}
	}
	n.txMu.Lock()
	n.txClosed = true
	n.txMu.Unlock()
	if n.e.shutdown != nil {
		n.e.shutdown()
	}
	n.e.rxq.Free()
	n.e.txq.Free()
	if n.e.ctrlq != nil {
		n.e.ctrlq.Free()
	}
	n.freeBufs()
	return nil
}

// readMAC reads the station address from the device configuration, retrying while the
// configuration generation moves (virtio 1.1, 4.1.4.3.1).
func readMAC(cfg interface{ Read8(uint64) uint8 }, gen func() uint8) (net.HardwareAddr, error) {
	for try := 0; try < 10; try++ {
		g := gen()
		mac := make(net.HardwareAddr, nic.AddrLen)
		for i := range mac {
			mac[i] = cfg.Read8(uint64(cfgMAC + i))
		}
		if gen() == g {
			return mac, nil
		}
	}
	return nil, errors.New("virtio-net: configuration keeps changing while the MAC is read")
}

// le16 reads a little-endian 16-bit field byte by byte (configuration fields may be read
// with any width the field allows; bytes work on every transport).
func le16(cfg interface{ Read8(uint64) uint8 }, off uint64) uint16 {
	return binary.LittleEndian.Uint16([]byte{cfg.Read8(off), cfg.Read8(off + 1)})
}
