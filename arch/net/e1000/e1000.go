// Package e1000 drives Intel 8254x gigabit Ethernet controllers (the 82540EM that is QEMU's
// default NIC, the 82545EM and the 82544GC) as Godwit host NICs: reset, the station address
// from RAL/RAH or the EEPROM, legacy receive and transmit descriptor rings with their buffers
// in DMA memory outside the Go heap, interrupt-driven receive (ICR/IMS over the INTx line),
// link state from STATUS.LU and the LSC interrupt, promiscuous mode for vm uplinks, and a
// watchdog that takes the device out of service when its registers read all ones (for good) or
// its transmit descriptors stop completing (until they complete again).
//
// The driver core (New) works on three small interfaces — the register window, a DMA
// allocator and an interrupt source — so the ring handling runs under `go test` against the
// fake 8254x of package e1000test; Open wires them to the real device (pci, ring0).
//
// References are to Intel's "PCI/PCI-X Family of Gigabit Ethernet Controllers Software
// Developer's Manual" (317453), cited as "8254x SDM".
package e1000

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/godwit-hv/godwit/hostnet/nic"
)

// Registers is the device's register window (BAR0): 32-bit loads and stores at byte offsets.
// pci.Region implements it.
type Registers interface {
	Read32(off uint64) uint32
	Write32(off uint64, v uint32)
}

// DMA hands out memory the device reaches by DMA: the bytes for the driver and the physical
// address for the device. virtio.HostMemory and virtiotest.Memory have this shape.
type DMA interface {
	Alloc(size int) (buf []byte, phys uint64, err error)
	Free(buf []byte, phys uint64)
}

// IRQ is the device's interrupt: a count of interrupts taken, and a wait for it to pass a
// value (ring0.WaitIRQ over the routed vector in the kernel).
type IRQ interface {
	Count() uint64
	// Wait blocks until the count exceeds seen or timeout passes; a timeout is not an error
	// the driver acts on (it polls).
	Wait(seen uint64, timeout time.Duration) (uint64, error)
}

// Config is what New needs.
type Config struct {
	Regs Registers
	DMA  DMA
	IRQ  IRQ
	// Location names the device for messages and Description ("00:03.0").
	Location string
	// Model names the controller ("82540EM").
	Model string
	// UseEERD: the controller has the EEPROM Read register of the 82540/82545/82546 (the
	// 82544 does not); used only when RAL/RAH hold no valid address after reset.
	UseEERD bool
	// RxDescs and TxDescs are the ring sizes, multiples of 8; 0 means DefaultRing.
	RxDescs, TxDescs int
	// Poll is the longest the service goroutine sleeps between looks at the device (link,
	// counters, the transmit watchdog) when no interrupt comes; 0 means DefaultPoll.
	Poll time.Duration
	// TxTimeout is how long transmit descriptors may stay pending with the link up before the
	// device is declared dead; 0 means DefaultTxTimeout.
	TxTimeout time.Duration
	// Logf reports events (link changes, the device dying); nil prints to standard output.
	Logf func(format string, args ...any)
	// Sleep is time.Sleep unless a test replaces it.
	Sleep func(time.Duration)
}

// Defaults.
const (
	DefaultRing      = 256
	DefaultPoll      = time.Second
	DefaultTxTimeout = 5 * time.Second
	maxRing          = 4096 // RDLEN/TDLEN are 20-bit byte counts; keep well inside
	resetWait        = time.Millisecond
	resetTimeout     = 100 * time.Millisecond
	eerdTimeout      = 10 * time.Millisecond
	// quiesceWait: 8254x SDM 14, "Software Reset" — let pending DMA finish (disable the
	// receiver and transmitter, then wait) before setting CTRL.RST.
	quiesceWait = 10 * time.Millisecond
)

// SharedIRQBackoff is how long the service goroutine steps aside after an interrupt that was
// another device's (see run).
var SharedIRQBackoff = time.Millisecond

// Errors callers branch on.
var (
	// ErrNoDevice: the registers read all ones at start: nothing answers at BAR0.
	ErrNoDevice = errors.New("e1000: device does not answer")
	// ErrNoMAC: neither RAL/RAH nor the EEPROM give a valid station address.
	ErrNoMAC = errors.New("e1000: no valid station address")
	// ErrResetTimeout: CTRL.RST did not clear.
	ErrResetTimeout = errors.New("e1000: reset did not complete")
)

// DeviceStats are the driver's counters beyond nic.Stats.
type DeviceStats struct {
	Interrupts   uint64 // interrupt wake-ups with a cause of this device
	LinkChanges  uint64
	RxOverruns   uint64 // ICR.RXO: the receive FIFO overflowed
	RxMissed     uint64 // MPC: frames missed for lack of descriptors (also in RxDrops)
	RxFragmented uint64 // frames spread over several descriptors (dropped: buffers hold a whole frame)
	TxRingFull   uint64
	TxTimeouts   uint64 // watchdog: descriptors pending past TxTimeout
	Revivals     uint64 // back in service after a transmit stall ended
	DeadReads    uint64 // register reads of all ones
	SharedWakes  uint64 // interrupts of another device on the shared INTx line
}

// NIC is one 8254x controller. It implements nic.Link.
type NIC struct {
	cfg     Config
	regs    Registers
	mac     net.HardwareAddr
	desc    string
	irqDesc string // how interrupts arrive, for Info

	rx rxRing
	tx txRing

	// Service holds the handler, the link state and whether the device is out of service
	// (dead only because transmit descriptors stopped completing is undone if they complete
	// after all).
	nic.Service

	rctlMu  sync.Mutex // read-modify-write of RCTL
	promisc atomic.Bool

	counters nic.Counters
	dev      struct {
		interrupts, rxOverruns, rxMissed, rxFragmented           atomic.Uint64
		txRingFull, txTimeouts, deadReads, revivals, sharedWakes atomic.Uint64
	}

	quit     atomic.Bool
	done     chan struct{}
	closeMu  sync.Mutex
	closed   bool
	lastPoll time.Time
}

// New resets the controller behind cfg.Regs, sets up its rings and starts the service
// goroutine. On error nothing is left allocated and the device is left reset.
func New(cfg Config) (*NIC, error) {
	if cfg.Regs == nil || cfg.DMA == nil || cfg.IRQ == nil {
		return nil, fmt.Errorf("e1000 %s: registers, DMA memory and interrupt are all required", cfg.Location)
	}
	if cfg.RxDescs == 0 {
		cfg.RxDescs = DefaultRing
	}
	if cfg.TxDescs == 0 {
		cfg.TxDescs = DefaultRing
	}
	for _, n := range []int{cfg.RxDescs, cfg.TxDescs} {
		if n < descPerAlign || n%descPerAlign != 0 || n > maxRing {
			return nil, fmt.Errorf("e1000 %s: ring of %d descriptors: want a multiple of %d up to %d", cfg.Location, n, descPerAlign, maxRing)
		}
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.TxTimeout <= 0 {
		cfg.TxTimeout = DefaultTxTimeout
	}
	if cfg.Sleep == nil {
		cfg.Sleep = time.Sleep
	}
	if cfg.Model == "" {
		cfg.Model = "8254x"
	}
	if cfg.Logf == nil {
		cfg.Logf = func(format string, args ...any) { fmt.Fprintf(os.Stdout, format+"\n", args...) }
	}
	n := &NIC{cfg: cfg, regs: cfg.Regs, done: make(chan struct{})}
	n.Desc, n.Logf = fmt.Sprintf("e1000 (%s) at %s", cfg.Model, cfg.Location), cfg.Logf
	if err := n.reset(); err != nil {
		return nil, err
	}
	mac, err := n.readMAC()
	if err != nil {
		return nil, err
	}
	n.mac = mac
	if err := n.rx.alloc(cfg.DMA, cfg.RxDescs); err != nil {
		return nil, fmt.Errorf("e1000 %s: receive ring: %w", cfg.Location, err)
	}
	if err := n.tx.alloc(cfg.DMA, cfg.TxDescs); err != nil {
		n.rx.free(cfg.DMA)
		return nil, fmt.Errorf("e1000 %s: transmit ring: %w", cfg.Location, err)
	}
	n.start()
	go n.run()
	return n, nil
}

// reset quiesces and resets the controller and masks its interrupts. 8254x SDM 14, "Software
// Reset", and 14.3 "General Configuration".
func (n *NIC) reset() error {
	r := n.regs
	if r.Read32(regSTATUS) == allOnes {
		return fmt.Errorf("e1000 %s: STATUS reads %#x: %w", n.cfg.Location, uint32(allOnes), ErrNoDevice)
	}
	r.Write32(regIMC, imcAll)
	r.Write32(regRCTL, 0)
	r.Write32(regTCTL, 0)
	r.Read32(regSTATUS) // flush the posted writes
	n.cfg.Sleep(quiesceWait)
	r.Write32(regCTRL, r.Read32(regCTRL)|ctrlRST)
	for waited := time.Duration(0); ; waited += resetWait {
		n.cfg.Sleep(resetWait)
		c := r.Read32(regCTRL)
		if c == allOnes {
			return fmt.Errorf("e1000 %s: CTRL reads all ones after reset: %w", n.cfg.Location, ErrNoDevice)
		}
		if c&ctrlRST == 0 {
			break
		}
		if waited >= resetTimeout {
			return fmt.Errorf("e1000 %s: CTRL %#x after %v: %w", n.cfg.Location, c, resetTimeout, ErrResetTimeout)
		}
	}
	r.Write32(regIMC, imcAll) // 8254x SDM 14.3: mask interrupts again after the reset
	r.Read32(regICR)
	return nil
}

// readMAC returns the station address the EEPROM load left in RAL0/RAH0, or reads it from
// the EEPROM through EERD and programs RAL0/RAH0 with it.
func (n *NIC) readMAC() (net.HardwareAddr, error) {
	r := n.regs
	lo, hi := r.Read32(regRAL0), r.Read32(regRAH0)
	if hi&rahAV == 0 {
		if !n.cfg.UseEERD {
			return nil, fmt.Errorf("e1000 %s: RAH0 %#x not valid and no EERD on the %s: %w", n.cfg.Location, hi, n.cfg.Model, ErrNoMAC)
		}
		var w [3]uint16
		for i := range w {
			v, err := n.eepromRead(uint8(eepromMACWord + i))
			if err != nil {
				return nil, err
			}
			w[i] = v
		}
		lo = uint32(w[0]) | uint32(w[1])<<16
		hi = uint32(w[2]) | rahAV
	}
	mac := net.HardwareAddr{byte(lo), byte(lo >> 8), byte(lo >> 16), byte(lo >> 24), byte(hi), byte(hi >> 8)}
	if mac[0]&1 != 0 || string(mac) == "\x00\x00\x00\x00\x00\x00" {
		return nil, fmt.Errorf("e1000 %s: station address %v is multicast or zero: %w", n.cfg.Location, mac, ErrNoMAC)
	}
	r.Write32(regRAL0, lo)
	r.Write32(regRAH0, hi&0xFFFF|rahAV)
	return mac, nil
}

// eepromRead reads one 16-bit EEPROM word through EERD (8254x SDM 13.4.4).
func (n *NIC) eepromRead(word uint8) (uint16, error) {
	r := n.regs
	r.Write32(regEERD, uint32(word)<<eerdAddrShift|eerdStart)
	for waited := time.Duration(0); ; waited += resetWait / 10 {
		v := r.Read32(regEERD)
		if v != allOnes && v&eerdDone != 0 {
			return uint16(v >> eerdDataShift), nil
		}
		if waited >= eerdTimeout {
			return 0, fmt.Errorf("e1000 %s: EEPROM word %d: EERD %#x not done after %v: %w", n.cfg.Location, word, v, eerdTimeout, ErrNoMAC)
		}
		n.cfg.Sleep(resetWait / 10)
	}
}

// start programs the link, filters and rings and enables the receiver, transmitter and
// interrupts. 8254x SDM 14.3 "General Configuration", 14.4 "Receive Initialization", 14.5
// "Transmit Initialization".
func (n *NIC) start() {
	r := n.regs
	c := r.Read32(regCTRL)
	c &^= ctrlLRST | ctrlPHYRST | ctrlILOS | ctrlVME | ctrlFRCSPD | ctrlFRCDPLX
	r.Write32(regCTRL, c|ctrlSLU|ctrlASDE)
	// No flow control: 14.3 says to program these to 0 when it is not used.
	r.Write32(regFCAL, 0)
	r.Write32(regFCAH, 0)
	r.Write32(regFCT, 0)
	r.Write32(regFCTTV, 0)
	for i := uint64(0); i < mtaEntries; i++ {
		r.Write32(regMTA+4*i, 0)
	}
	r.Write32(regITR, 0)
	r.Write32(regRDTR, 0)
	r.Write32(regRADV, 0)
	r.Write32(regTIDV, 0)

	n.rx.program(r)
	r.Write32(regRCTL, rctlEN|rctlLBMNone|rctlRDMTSHalf|rctlMO0|rctlBAM|rctlBufSizeSet|rctlSECRC)
	n.tx.program(r)
	r.Write32(regTIPG, tipgIPGT|tipgIPGR1<<tipgIPGR1Shift|tipgIPGR2<<tipgIPGR2Shift)
	r.Write32(regTCTL, tctlEN|tctlPSP|tctlCT<<tctlCTShift|tctlCOLDFull<<tctlCOLDShift)

	n.InitLink(r.Read32(regSTATUS)&statusLU != 0)
	r.Write32(regIMS, icrRXT0|icrRXO|icrRXDMT0|icrRXSEQ|icrLSC)
	n.lastPoll = time.Now()
}

// run is the service goroutine: it acknowledges interrupt causes, takes received frames off
// the ring, reclaims transmit descriptors, follows the link and watches for a dead device.
func (n *NIC) run() {
	defer close(n.done)
	woke := false // the last wait ended with an interrupt (not a timeout)
	for !n.quit.Load() {
		if n.Dead() {
			if !n.tryRevive() {
				n.cfg.Sleep(n.cfg.Poll)
			}
			continue
		}
		seen := n.cfg.IRQ.Count()
		icr := n.regs.Read32(regICR) // acknowledges: the INTx line drops
		if icr == allOnes {
			n.dev.deadReads.Add(1)
			if n.regs.Read32(regSTATUS) == allOnes {
				n.die("registers read all ones (the device left the bus)", false)
				continue
			}
		}
		if icr != 0 {
			n.dev.interrupts.Add(1)
		}
		if icr&icrRXO != 0 {
			n.dev.rxOverruns.Add(1)
		}
		if icr&icrLSC != 0 || time.Since(n.lastPoll) >= n.cfg.Poll {
			n.poll()
		}
		worked := n.receive()
		n.reclaimTx()
		if worked {
			woke = false
			continue
		}
		if woke && icr == 0 {
			// Another device on the shared INTx line interrupted. Waiting again at once would
			// unmask the line while that device still asserts it, and take the interrupt again
			// and again before its driver has run to acknowledge it: give it the processor.
			n.dev.sharedWakes.Add(1)
			n.cfg.Sleep(SharedIRQBackoff)
		}
		// A timeout (no interrupt within Poll) just means another look at the device.
		got, _ := n.cfg.IRQ.Wait(seen, n.cfg.Poll)
		woke = got > seen
	}
}

// poll reads the link state and the missed-packet counter and runs the transmit watchdog.
func (n *NIC) poll() {
	n.lastPoll = time.Now()
	st := n.regs.Read32(regSTATUS)
	if st == allOnes {
		n.dev.deadReads.Add(1)
		n.die("STATUS reads all ones (the device left the bus)", false)
		return
	}
	if m := n.regs.Read32(regMPC); m != allOnes && m != 0 {
		n.dev.rxMissed.Add(uint64(m))
		n.counters.RxDrops.Add(uint64(m))
	}
	n.setLink(st&statusLU != 0)
	n.tx.mu.Lock()
	stalled, pending, since := n.tx.stalled(n.cfg.TxTimeout, n.LinkUp())
	n.tx.mu.Unlock()
	if stalled {
		n.dev.txTimeouts.Add(1)
		n.die(fmt.Sprintf("transmit stalled: %d descriptors pending for %v (TDH %d, TDT %d)",
			pending, since.Round(time.Millisecond), n.regs.Read32(regTDH), n.regs.Read32(regTDT)), true)
	}
}

// setLink records the link state; the transmit watchdog counts from the link coming up.
func (n *NIC) setLink(up bool) {
	if n.SetLink(up) && up {
		n.tx.mu.Lock()
		n.tx.lastProgress = time.Now()
		n.tx.mu.Unlock()
	}
}

// die takes the device out of service: counted, logged once per failure, link down, its
// interrupts masked (and the line released: a shared INTx line must not stay asserted while
// nobody serves this device). revivable says the failure was a transmit stall, which
// tryRevive undoes if the descriptors complete after all; a later permanent failure wins.
func (n *NIC) die(why string, revivable bool) {
	if n.Fail(why, revivable) {
		n.regs.Write32(regIMC, imcAll)
		n.regs.Read32(regICR)
	}
}

// tryRevive puts a device that was taken out of service for a transmit stall back in
// service once its transmit descriptors complete; it reports whether it did.
func (n *NIC) tryRevive() bool {
	if !n.Revivable() || n.regs.Read32(regSTATUS) == allOnes {
		return false
	}
	n.tx.mu.Lock()
	freed := n.tx.reclaim()
	n.tx.mu.Unlock()
	if freed == 0 || !n.Revive("transmit descriptors complete again") {
		return false
	}
	n.dev.revivals.Add(1)
	n.regs.Write32(regIMS, icrRXT0|icrRXO|icrRXDMT0|icrRXSEQ|icrLSC)
	n.poll() // reads the link and reports it up
	return true
}

// receive delivers the frames the device has written back and returns their descriptors.
func (n *NIC) receive() bool {
	var got int
	n.WithHandler(func(h nic.Handler) {
		got = n.rx.collect(n.regs, n.cfg.RxDescs, func(frame []byte, status, errs uint8) {
			switch {
			case errs&rxErrFrame != 0:
				n.counters.RxErrors.Add(1)
			case nic.CheckFrame(frame, nic.DefaultMTU) != nil:
				n.counters.RxErrors.Add(1)
			case h == nil:
				n.counters.RxDrops.Add(1)
			default:
				n.counters.Rx(len(frame))
				h.DeliverFrame(frame)
			}
		}, func() {
			n.dev.rxFragmented.Add(1)
			n.counters.RxErrors.Add(1)
		})
	})
	return got > 0
}

func (n *NIC) reclaimTx() {
	n.tx.mu.Lock()
	n.tx.reclaim()
	n.tx.mu.Unlock()
}

// MAC implements nic.Link.
func (n *NIC) MAC() net.HardwareAddr { return append(net.HardwareAddr(nil), n.mac...) }

// MTU implements nic.Link: standard Ethernet (long packets are not enabled).
func (n *NIC) MTU() int { return nic.DefaultMTU }

// Location is the device's PCI address as given in Config.
func (n *NIC) Location() string { return n.cfg.Location }

// Model names the controller.
func (n *NIC) Model() string { return n.cfg.Model }

// Stats implements nic.Link.
func (n *NIC) Stats() nic.Stats { return n.counters.Snapshot() }

// DeviceStats returns the driver's own counters.
func (n *NIC) DeviceStats() DeviceStats {
	d := &n.dev
	return DeviceStats{
		Interrupts: d.interrupts.Load(), LinkChanges: n.LinkChanges.Load(), RxOverruns: d.rxOverruns.Load(),
		RxMissed: d.rxMissed.Load(), RxFragmented: d.rxFragmented.Load(), TxRingFull: d.txRingFull.Load(),
		TxTimeouts: d.txTimeouts.Load(), Revivals: d.revivals.Load(), DeadReads: d.deadReads.Load(),
		SharedWakes: d.sharedWakes.Load(),
	}
}

// SetPromiscuous implements nic.Promiscuous: with on, the device receives frames for every
// unicast and multicast address (RCTL.UPE and RCTL.MPE), as a vm uplink needs.
func (n *NIC) SetPromiscuous(on bool) error {
	if n.Dead() {
		return n.Err()
	}
	n.rctlMu.Lock()
	defer n.rctlMu.Unlock()
	v := n.regs.Read32(regRCTL)
	if v == allOnes {
		return fmt.Errorf("%s: RCTL reads all ones: %w", n.Desc, nic.ErrDeviceDead)
	}
	if on {
		v |= rctlUPE | rctlMPE
	} else {
		v &^= rctlUPE | rctlMPE
	}
	n.regs.Write32(regRCTL, v)
	n.promisc.Store(on)
	return nil
}

// Transmit implements nic.Link: the frame is copied into the next transmit buffer (padded to
// the 60-byte minimum) and handed to the device.
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
	n.tx.mu.Lock()
	if n.tx.closed {
		n.tx.mu.Unlock()
		n.counters.TxErrors.Add(1)
		return fmt.Errorf("%s: closed: %w", n.Desc, nic.ErrDeviceDead)
	}
	ok := n.tx.put(n.regs, frame)
	n.tx.mu.Unlock()
	if !ok {
		n.dev.txRingFull.Add(1)
		n.counters.TxDrops.Add(1)
		return fmt.Errorf("%s: %d descriptors pending: %w", n.Desc, n.cfg.TxDescs-1, nic.ErrRingFull)
	}
	n.counters.Tx(len(frame))
	return nil
}

// Close stops the service goroutine, resets the device (no more DMA) and frees the rings.
// The kernel never closes its NICs; tests do, to check that nothing leaks.
func (n *NIC) Close() error {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	n.quit.Store(true)
	select {
	case <-n.done:
	case <-time.After(4*n.cfg.Poll + time.Second):
		return fmt.Errorf("%s: service goroutine did not stop", n.Desc)
	}
	n.tx.mu.Lock()
	n.tx.closed = true
	n.tx.mu.Unlock()
	r := n.regs
	r.Write32(regIMC, imcAll)
	r.Write32(regRCTL, 0)
	r.Write32(regTCTL, 0)
	r.Write32(regCTRL, r.Read32(regCTRL)|ctrlRST)
	n.cfg.Sleep(resetWait)
	n.rx.free(n.cfg.DMA)
	n.tx.free(n.cfg.DMA)
	return nil
}

// Info is a one-line summary for the shell: link, speed, rings and the driver's counters.
func (n *NIC) Info() string {
	st := n.regs.Read32(regSTATUS)
	speed := "?"
	switch {
	case st == allOnes:
		speed = "no device"
	case st&statusSpeedMask == statusSpeed10:
		speed = "10 Mb/s"
	case st&statusSpeedMask == statusSpeed100:
		speed = "100 Mb/s"
	default:
		speed = "1000 Mb/s"
	}
	if st != allOnes {
		if st&statusFD != 0 {
			speed += " full duplex"
		} else {
			speed += " half duplex"
		}
	}
	d := n.DeviceStats()
	irq := n.irqDesc
	if irq == "" {
		irq = "interrupt"
	}
	s := fmt.Sprintf("%s, link %s %s, %s, rx ring %d, tx ring %d, %d interrupts (%d another device's), %d overruns, %d missed, %d tx ring full, %d tx timeouts",
		n.Desc, nic.UpDown(n.Up()), speed, irq, n.cfg.RxDescs, n.cfg.TxDescs, d.Interrupts, d.SharedWakes, d.RxOverruns, d.RxMissed, d.TxRingFull, d.TxTimeouts)
	if n.promisc.Load() {
		s += ", promiscuous"
	}
	if n.Dead() {
		s += ", DEAD: " + n.Err().Error()
	}
	return s
}
