// Package pit models the Intel 8254 programmable interval timer of the PC
// at ports 0x40-0x43, and the timer side of port 0x61 (counter 2's gate
// and output, which Linux polls to calibrate the TSC).
//
// The three counters run from a 1.193182 MHz clock derived from an
// injectable nanosecond clock; nothing runs in the background. The
// counting element is computed from the tick it was loaded at, so reads
// are exact at any time. Counter 0's OUT drives IRQ 0 through a callback:
// the owner arms a host timer for NextDeadline and calls Tick when it
// fires (and may call it any time). Every rising edge of OUT 0 since the
// last Tick becomes one low-high pulse on the callback; edges missed
// between two Ticks are coalesced, as the PIC's single IRR bit would.
// A guest write can move the deadline: the owner reads NextDeadline again
// after each access to these ports as well as after each Tick.
//
// Modelled from the 82C54 datasheet: modes 0-5, binary and BCD counting,
// LSB/MSB/two-byte access, the counter latch and read-back commands, the
// status byte with OUT and NULL COUNT, gates (counters 0 and 1 are tied
// high on the PC; counter 2's is bit 0 of port 0x61). Mode 3 with an odd
// count uses the datasheet's high (N+1)/2, low (N-1)/2 split. Counts of 1
// in modes 2 and 3,
// illegal on the chip, produce no edges. A counter that is not counting
// reads back the value its CE held when it stopped. Counters power on as
// a BIOS leaves them programmed (mode 3, two-byte access, binary) but do
// not count until a count is written; OUT starts high.
//
// Hot path: port accesses, Tick and NextDeadline do not allocate (the IRQ
// callback may). All methods are safe for concurrent use.
package pit

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"time"

	"github.com/godwit-hv/godwit/hv/bus"
)

// Config wires the PIT to the host.
type Config struct {
	// Now returns the current time in nanoseconds on a monotonic clock.
	// Nil means time elapsed since New.
	Now func() int64
	// IRQ is called with the new level of counter 0's OUT (IRQ 0), and
	// by New with the initial level. It is called with the PIT locked and
	// must not call back into it.
	IRQ func(level bool)
}

// PIT is the 8254 with the PC's wiring.
type PIT struct {
	mu   sync.Mutex
	cfg  Config
	c    [3]counter
	nmi  uint8 // port 0x61 bits 3:0
	line bool  // level last reported on IRQ
	last int64 // tick of the last Tick or access
}

// New returns a PIT with its counters idle.
func New(cfg Config) *PIT {
	if cfg.Now == nil {
		t0 := time.Now()
		cfg.Now = func() int64 { return int64(time.Since(t0)) }
	}
	p := &PIT{cfg: cfg}
	for i := range p.c {
		// Programmed as a BIOS leaves them, but not counting.
		p.c[i].mode, p.c[i].rw = 3, RWBoth
		p.c[i].nullUntil = never
		p.c[i].n = 65536
	}
	p.c[0].gate, p.c[1].gate = true, true // tied high on the PC
	p.last = p.now()
	p.setLine(p.c[0].out(p.last)) // report the initial level
	return p
}

// TicksAt converts a time in nanoseconds to input clock ticks:
// floor(ns × 1193182 / 10⁹). Negative times are tick 0.
func TicksAt(ns int64) int64 {
	if ns <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(ns), Frequency)
	q, _ := bits.Div64(hi, lo, 1e9) // hi < 1e9 for any int64 ns
	return int64(q)
}

// TimeOfTick returns the first nanosecond at which TicksAt reaches t.
func TimeOfTick(t int64) int64 {
	if t <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(t), 1e9)
	if hi >= Frequency {
		return never
	}
	q, r := bits.Div64(hi, lo, Frequency)
	if r != 0 {
		q++
	}
	if q > never {
		return never
	}
	return int64(q)
}

// now returns the current tick, never earlier than one already seen.
func (p *PIT) now() int64 {
	t := TicksAt(p.cfg.Now())
	if t < p.last {
		t = p.last
	}
	return t
}

// advance delivers the edges of OUT 0 up to tick t.
func (p *PIT) advance(t int64) {
	c := &p.c[0]
	rise, ok := c.nextRise(p.last)
	edge := ok && rise <= t
	for i := range p.c {
		p.c[i].sync(t)
	}
	p.last = t
	if edge {
		if p.line {
			p.setLine(false)
		}
		p.setLine(true)
	}
	p.setLine(c.out(t))
}

func (p *PIT) setLine(l bool) {
	if l == p.line {
		return
	}
	p.line = l
	if p.cfg.IRQ != nil {
		p.cfg.IRQ(l)
	}
}

// Tick brings the PIT up to time now (ns) and reports counter 0's edges.
func (p *PIT) Tick(now int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := TicksAt(now)
	if t < p.last {
		t = p.last
	}
	p.advance(t)
}

// NextDeadline returns the time (ns) of counter 0's next rising edge, the
// next interrupt, if one is due.
func (p *PIT) NextDeadline() (ns int64, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.c[0].nextRise(p.last)
	if !ok {
		return 0, false
	}
	return TimeOfTick(t), true
}

// Out returns the OUT pin of counter i (0-2) now.
func (p *PIT) Out(i int) bool {
	if i < 0 || i > 2 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.now()
	p.advance(t)
	return p.c[i].out(t)
}

// ErrAccess reports an access outside the device's ports.
var ErrAccess = errors.New("pit: access outside the device")

// Read implements bus.Device for ports 0x40-0x43. Wider accesses are
// split into byte accesses to consecutive ports.
func (p *PIT) Read(offset uint64, data []byte) error {
	if offset >= NumPorts || uint64(len(data)) > NumPorts-offset {
		return fmt.Errorf("%w: read of %d bytes at offset %d", ErrAccess, len(data), offset)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.now()
	p.advance(t)
	for i := range data {
		r := int(offset) + i
		if r == ControlPort {
			data[i] = 0xff // write-only; nothing drives the bus
			continue
		}
		data[i] = p.c[r].readByte(t)
	}
	return nil
}

// Write implements bus.Device for ports 0x40-0x43.
func (p *PIT) Write(offset uint64, data []byte) error {
	if offset >= NumPorts || uint64(len(data)) > NumPorts-offset {
		return fmt.Errorf("%w: write of %d bytes at offset %d", ErrAccess, len(data), offset)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.now()
	p.advance(t)
	for i, v := range data {
		r := int(offset) + i
		if r != ControlPort {
			p.c[r].writeByte(t, v)
			continue
		}
		sc := v & CWSCMask >> CWSCShift
		switch {
		case sc == SCReadBack:
			for j := range p.c {
				if v&(RBCnt0<<j) == 0 {
					continue
				}
				if v&RBCount == 0 {
					p.c[j].latchCount(t)
				}
				if v&RBStatus == 0 {
					p.c[j].latchStatus(t)
				}
			}
		case v&CWRWMask == RWLatch<<CWRWShift:
			p.c[sc].latchCount(t)
		default:
			p.c[sc].program(t, v)
		}
	}
	p.setLine(p.c[0].out(t))
	return nil
}

// NMISC returns the bus device for port 0x61 (one byte).
func (p *PIT) NMISC() bus.Device { return nmisc{p} }

type nmisc struct{ p *PIT }

// Read implements bus.Device: bits 3:0 as written, the refresh toggle and
// counter 2's OUT; no NMI sources.
func (d nmisc) Read(offset uint64, data []byte) error {
	if offset != 0 || len(data) != 1 {
		return fmt.Errorf("%w: port 0x61 read of %d bytes at offset %d", ErrAccess, len(data), offset)
	}
	p := d.p
	p.mu.Lock()
	defer p.mu.Unlock()
	ns := p.cfg.Now()
	t := p.now()
	p.advance(t)
	v := p.nmi
	if ns/RefreshPeriodNs&1 != 0 {
		v |= NMISCRefresh
	}
	if p.c[2].out(t) {
		v |= NMISCOut2
	}
	data[0] = v
	return nil
}

// Write implements bus.Device: bit 0 is counter 2's gate.
func (d nmisc) Write(offset uint64, data []byte) error {
	if offset != 0 || len(data) != 1 {
		return fmt.Errorf("%w: port 0x61 write of %d bytes at offset %d", ErrAccess, len(data), offset)
	}
	p := d.p
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.now()
	p.advance(t)
	p.nmi = data[0] & nmiscWritable
	p.c[2].setGate(t, data[0]&NMISCGate2 != 0)
	return nil
}
