// Package vswitch is Godwit's virtual switch: a learning Ethernet bridge (IEEE 802.1D-2004,
// 7 "Principles of bridge operation", without spanning tree) joining guests' NICs to each
// other and, optionally, to one host NIC with the vm role (the uplink).
//
// Frames go in through Port.Send and out through each port's deliver function (a guest NIC)
// or the uplink's Transmit. The switch learns which port each source MAC address lives
// behind, forgets it after the ageing time, forwards known unicast to its port only, and
// floods broadcast, multicast and unknown unicast to every port but the one it came from.
// Frames that are too short, too long, or come from a group (multicast) source address are
// dropped and counted on the ingress port.
//
// Counters are from the port's outside point of view of the switch: Rx is what the switch
// received from the port's endpoint, Tx what it sent to it.
package vswitch

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/godwit-hv/godwit/hostnet/nic"
)

// Defaults.
const (
	// DefaultAgeing is the recommended ageing time of IEEE 802.1D-2004, 7.9.2, Table 7-5.
	DefaultAgeing = 300 * time.Second
	// DefaultMaxFrame is the largest untagged frame without FCS (IEEE 802.3-2018, 3.2.7:
	// maxBasicFrameSize 1518 less the 4-byte FCS).
	DefaultMaxFrame = nic.DefaultMTU + nic.HeaderLen
	// DefaultMaxMACs bounds the forwarding database so a guest sending from random source
	// addresses cannot grow it without limit; when it is full, new addresses are not learned
	// (their frames are flooded, as unknown ones are).
	DefaultMaxMACs = 4096
)

// Errors.
var (
	ErrPortRemoved = errors.New("port removed")
	ErrDuplicate   = errors.New("port name in use")
)

// Options tune a switch.
type Options struct {
	Ageing   time.Duration        // 0: DefaultAgeing
	MaxFrame int                  // 0: DefaultMaxFrame
	MaxMACs  int                  // 0: DefaultMaxMACs
	Now      func() time.Time     // nil: time.Now (tests pass a fake clock)
	Logf     func(string, ...any) // nil: silent
}

// Switch is one virtual switch.
type Switch struct {
	name string
	opts Options

	mu    sync.RWMutex
	ports []*Port // sorted by name; replaced (copy on write) on add/remove
	fdb   map[[6]byte]fdbEntry

	// FDBFull counts source addresses not learned because the table was full.
	fdbFull atomic.Uint64
	sweepAt time.Time
}

type fdbEntry struct {
	port *Port
	seen time.Time
}

// Port is one port of a switch.
type Port struct {
	sw      *Switch
	name    string
	deliver func(frame []byte) error
	uplink  nic.Link

	mu      sync.RWMutex // held (read) while delivering to the port; RemovePort takes it
	removed bool

	c Counters
}

// Counters are a port's counters.
type Counters struct {
	RxPackets, RxBytes atomic.Uint64 // frames the switch took from the port
	RxDrops            atomic.Uint64 // frames from the port that were malformed or oversized
	TxPackets, TxBytes atomic.Uint64 // frames the switch handed to the port
	TxDrops            atomic.Uint64 // frames for the port that it refused (queue full, link down)
}

// Stats are a snapshot of a port's counters.
type Stats struct {
	RxPackets, RxBytes, RxDrops uint64
	TxPackets, TxBytes, TxDrops uint64
}

// New makes an empty switch.
func New(name string, o Options) *Switch {
	if o.Ageing == 0 {
		o.Ageing = DefaultAgeing
	}
	if o.MaxFrame == 0 {
		o.MaxFrame = DefaultMaxFrame
	}
	if o.MaxMACs == 0 {
		o.MaxMACs = DefaultMaxMACs
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Switch{name: name, opts: o, fdb: map[[6]byte]fdbEntry{}}
}

// Name is the switch's name (the uplink's NIC name for a vm uplink's switch).
func (s *Switch) Name() string { return s.name }

func (s *Switch) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}

// AddPort adds a port whose endpoint receives frames through deliver. deliver gets a frame
// valid only during the call (it copies what it keeps), must not block, and returns an
// error when it cannot take the frame (counted as TxDrops). It may be called from several
// goroutines at once (one per ingress port).
func (s *Switch) AddPort(name string, deliver func(frame []byte) error) (*Port, error) {
	if deliver == nil {
		return nil, fmt.Errorf("vswitch %s: port %s: no deliver function", s.name, name)
	}
	return s.addPort(&Port{sw: s, name: name, deliver: deliver})
}

// AttachUplink makes a host NIC a port of the switch: the switch becomes the link's handler
// and asks it to be promiscuous (nic.Promiscuous) so frames for the guests come in.
func (s *Switch) AttachUplink(name string, l nic.Link) (*Port, error) {
	p := &Port{sw: s, name: name, uplink: l, deliver: l.Transmit}
	if _, err := s.addPort(p); err != nil {
		return nil, err
	}
	if pl, ok := l.(nic.Promiscuous); ok {
		if err := pl.SetPromiscuous(true); err != nil {
			s.logf("vswitch %s: uplink %s: promiscuous mode: %v (guests will miss unicast from outside)", s.name, name, err)
		}
	} else {
		s.logf("vswitch %s: uplink %s cannot be made promiscuous; guests will miss unicast from outside", s.name, name)
	}
	l.SetHandler(uplinkHandler{p})
	return p, nil
}

type uplinkHandler struct{ p *Port }

func (u uplinkHandler) DeliverFrame(frame []byte) { u.p.Send(frame) }
func (u uplinkHandler) LinkChanged(up bool) {
	state := "down"
	if up {
		state = "up"
	}
	u.p.sw.logf("vswitch %s: uplink %s link %s", u.p.sw.name, u.p.name, state)
}

func (s *Switch) addPort(p *Port) (*Port, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range s.ports {
		if q.name == p.name {
			return nil, fmt.Errorf("vswitch %s: %w: %s", s.name, ErrDuplicate, p.name)
		}
	}
	ports := append(append([]*Port(nil), s.ports...), p)
	sort.Slice(ports, func(i, j int) bool { return ports[i].name < ports[j].name })
	s.ports = ports
	return p, nil
}

// RemovePort takes a port off the switch and forgets the addresses learned on it. Once it
// returns, the port's deliver function is not called again; Send on it returns
// ErrPortRemoved. An uplink's link gets its handler cleared and promiscuous mode off.
func (s *Switch) RemovePort(p *Port) {
	p.mu.Lock()
	if p.removed {
		p.mu.Unlock()
		return
	}
	p.removed = true
	p.mu.Unlock()
	s.mu.Lock()
	var ports []*Port
	for _, q := range s.ports {
		if q != p {
			ports = append(ports, q)
		}
	}
	s.ports = ports
	for mac, e := range s.fdb {
		if e.port == p {
			delete(s.fdb, mac)
		}
	}
	s.mu.Unlock()
	if p.uplink != nil {
		p.uplink.SetHandler(nil)
		if pl, ok := p.uplink.(nic.Promiscuous); ok {
			if err := pl.SetPromiscuous(false); err != nil {
				s.logf("vswitch %s: uplink %s: leaving promiscuous mode: %v", s.name, p.name, err)
			}
		}
	}
}

// Ports lists the ports by name.
func (s *Switch) Ports() []*Port {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]*Port(nil), s.ports...)
}

// Name is the port's name.
func (p *Port) Name() string { return p.name }

// Uplink is the host NIC behind the port, nil for a guest port.
func (p *Port) Uplink() nic.Link { return p.uplink }

// Stats snapshots the port's counters.
func (p *Port) Stats() Stats {
	return Stats{
		RxPackets: p.c.RxPackets.Load(), RxBytes: p.c.RxBytes.Load(), RxDrops: p.c.RxDrops.Load(),
		TxPackets: p.c.TxPackets.Load(), TxBytes: p.c.TxBytes.Load(), TxDrops: p.c.TxDrops.Load(),
	}
}

func (st Stats) String() string {
	return fmt.Sprintf("rx %d pkts %d bytes %d drops, tx %d pkts %d bytes %d drops",
		st.RxPackets, st.RxBytes, st.RxDrops, st.TxPackets, st.TxBytes, st.TxDrops)
}

// Frame errors, for Send's callers (who count them already through the port's RxDrops).
var (
	ErrRunt      = errors.New("frame shorter than an Ethernet header")
	ErrOversized = errors.New("frame longer than the switch's maximum")
	ErrBadSource = errors.New("frame from a group or zero source address")
)

// Send puts a frame from the port's endpoint into the switch. The frame is valid only
// during the call. It returns an error only for a frame the switch refused (and counted);
// frames that some destination ports refused are counted on those ports.
func (p *Port) Send(frame []byte) error {
	p.mu.RLock()
	removed := p.removed
	p.mu.RUnlock()
	if removed {
		return ErrPortRemoved
	}
	s := p.sw
	switch {
	case len(frame) < nic.HeaderLen:
		p.c.RxDrops.Add(1)
		return fmt.Errorf("vswitch %s: port %s: %w (%d bytes)", s.name, p.name, ErrRunt, len(frame))
	case len(frame) > s.opts.MaxFrame:
		p.c.RxDrops.Add(1)
		return fmt.Errorf("vswitch %s: port %s: %w (%d > %d bytes)", s.name, p.name, ErrOversized, len(frame), s.opts.MaxFrame)
	}
	var dst, src [6]byte
	copy(dst[:], frame[0:6])
	copy(src[:], frame[6:12])
	// IEEE 802-2014, 8.2: the I/G bit (bit 0 of the first octet) marks a group address,
	// which never names a sender.
	if src[0]&1 != 0 || src == [6]byte{} {
		p.c.RxDrops.Add(1)
		return fmt.Errorf("vswitch %s: port %s: %w %s", s.name, p.name, ErrBadSource, net.HardwareAddr(src[:]))
	}
	p.c.RxPackets.Add(1)
	p.c.RxBytes.Add(uint64(len(frame)))

	now := s.opts.Now()
	s.mu.Lock()
	s.learnLocked(src, p, now)
	var out *Port
	if dst[0]&1 == 0 { // individual address: look it up
		if e, ok := s.fdb[dst]; ok && now.Sub(e.seen) < s.opts.Ageing {
			out = e.port
		}
	}
	ports := s.ports
	s.mu.Unlock()

	if out != nil {
		if out != p { // a frame for the port it came from is filtered (802.1D 7.7.1)
			out.send(frame)
		}
		return nil
	}
	for _, q := range ports {
		if q != p {
			q.send(frame)
		}
	}
	return nil
}

func (s *Switch) learnLocked(src [6]byte, p *Port, now time.Time) {
	if e, ok := s.fdb[src]; ok {
		if e.port != p {
			s.logf("vswitch %s: %s moved from port %s to %s", s.name, net.HardwareAddr(src[:]), e.port.name, p.name)
		}
		s.fdb[src] = fdbEntry{port: p, seen: now}
		return
	}
	if len(s.fdb) >= s.opts.MaxMACs {
		s.sweepLocked(now)
		if len(s.fdb) >= s.opts.MaxMACs {
			s.fdbFull.Add(1)
			return
		}
	} else if now.After(s.sweepAt) {
		s.sweepLocked(now)
	}
	s.fdb[src] = fdbEntry{port: p, seen: now}
}

// sweepLocked drops aged entries; it runs at most once per ageing period unless the table
// is full.
func (s *Switch) sweepLocked(now time.Time) {
	for mac, e := range s.fdb {
		if now.Sub(e.seen) >= s.opts.Ageing {
			delete(s.fdb, mac)
		}
	}
	s.sweepAt = now.Add(s.opts.Ageing)
}

func (p *Port) send(frame []byte) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.removed {
		return
	}
	if err := p.deliver(frame); err != nil {
		p.c.TxDrops.Add(1)
		return
	}
	p.c.TxPackets.Add(1)
	p.c.TxBytes.Add(uint64(len(frame)))
}

// FDBEntry is one learned address.
type FDBEntry struct {
	MAC  net.HardwareAddr
	Port string
	Age  time.Duration
}

// FDB lists the live learned addresses, sorted by MAC.
func (s *Switch) FDB() []FDBEntry {
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
	var out []FDBEntry
	for mac, e := range s.fdb {
		out = append(out, FDBEntry{MAC: net.HardwareAddr(append([]byte(nil), mac[:]...)), Port: e.port.name, Age: now.Sub(e.seen)})
	}
	sort.Slice(out, func(i, j int) bool { return string(out[i].MAC) < string(out[j].MAC) })
	return out
}

// NotLearned counts source addresses not learned because the table was full.
func (s *Switch) NotLearned() uint64 { return s.fdbFull.Load() }
