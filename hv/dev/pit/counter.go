package pit

import "math"

// never is a tick that is never reached.
const never = math.MaxInt64

// counter is one 8254 counter. Time is in ticks of the 1.193182 MHz input
// clock; the counting element (CE) is not stored but computed from the
// tick at which it was last loaded.
type counter struct {
	mode uint8 // 0-5
	rw   uint8 // RWLSB, RWMSB, RWBoth
	bcd  bool

	cr   uint16 // count register as last written (BCD digits if bcd)
	crN  int64  // its value as a count: 1..65536 (1..10000 in BCD)
	n    int64  // count the CE was last loaded with
	gate bool

	armed   bool  // a count is loaded (and, for modes 1 and 5, triggered)
	held    int64 // CE while not counting (0..modulus-1)
	start   int64 // tick the CE was loaded with n
	paused  bool  // gate low stopped counting
	pausedE int64 // elapsed ticks when paused (modes 0 and 4)
	pending bool  // modes 2, 3: crN replaces n at tick pendAt
	pendAt  int64

	nullUntil int64 // the CR reaches the CE at this tick (never: waits for a trigger)

	wMSB   bool  // next count write is the MSB
	lsb    uint8 // first byte of a two-byte count
	rMSB   bool  // next count read is the MSB
	latchd bool  // count latched
	latch  uint16
	stLatd bool // status latched
	status uint8
}

func (c *counter) modulus() int64 {
	if c.bcd {
		return 10000
	}
	return 65536
}

// decode turns a written count into 1..modulus.
func (c *counter) decode(v uint16) int64 {
	x := int64(v)
	if c.bcd {
		x = int64(v>>12&0xf)*1000 + int64(v>>8&0xf)*100 + int64(v>>4&0xf)*10 + int64(v&0xf)
		x %= 10000 // digits above 9 are undefined on the chip
	}
	if x == 0 {
		x = c.modulus()
	}
	return x
}

// encode turns a CE value (0..modulus-1) into what a read returns.
func (c *counter) encode(x int64) uint16 {
	if !c.bcd {
		return uint16(x)
	}
	x %= 10000
	return uint16(x/1000<<12 | x/100%10<<8 | x/10%10<<4 | x%10)
}

func (c *counter) periodic() bool { return c.mode == 2 || c.mode == 3 }

// sync applies a count pending for the next period of mode 2 or 3.
func (c *counter) sync(t int64) {
	if c.pending && !c.paused && t >= c.pendAt {
		c.start, c.n, c.pending = c.pendAt, c.crN, false
	}
}

func (c *counter) elapsed(t int64) int64 {
	if c.paused {
		return c.pausedE
	}
	return t - c.start
}

// out returns the OUT pin at tick t (after sync(t)). 82C54 datasheet,
// "Mode Definitions" and Figures 12-17.
func (c *counter) out(t int64) bool {
	if !c.armed {
		return c.mode != 0 // mode 0 starts low, the others high
	}
	e := c.elapsed(t)
	switch c.mode {
	case 0: // interrupt on terminal count: high once the CE reaches 0
		return e >= c.n
	case 1: // one-shot: low from the clock after the trigger until 0
		return e < 0 || e >= c.n
	case 2: // rate generator: low for the one clock the CE is 1
		if c.paused || e < 0 || c.n < 2 {
			return true
		}
		return e%c.n != c.n-1
	case 3: // square wave: high for ceil(N/2), low for floor(N/2)
		if c.paused || e < 0 {
			return true
		}
		return e%c.n < (c.n+1)/2
	default: // 4, 5: strobe: low for the one clock the CE is 0
		return e != c.n
	}
}

// value returns the CE at tick t (after sync(t)) as the guest reads it.
func (c *counter) value(t int64) uint16 { return c.encode(c.ce(t)) }

// ce returns the CE at tick t (after sync(t)), 0..modulus-1.
func (c *counter) ce(t int64) int64 {
	m := c.modulus()
	if !c.armed {
		return c.held % m
	}
	e := c.elapsed(t)
	if e < 0 {
		e = 0
	}
	var x int64
	switch c.mode {
	case 2:
		x = c.n - e%c.n
	case 3:
		// Each half period loads N (N-1 when odd) and counts down by
		// two; an odd count stays high one clock past reaching 0
		// (82C54 datasheet, mode 3).
		k := e % c.n
		if half := (c.n + 1) / 2; k >= half {
			k -= half
		}
		x = c.n&^1 - 2*k
	default:
		x = ((c.n-e)%m + m) % m
	}
	return x % m
}

// nextRise returns the first tick after `after` at which OUT goes from
// low to high, if counting as programmed leads to one.
func (c *counter) nextRise(after int64) (int64, bool) {
	cc := *c
	cc.sync(after)
	if !cc.armed || cc.paused {
		return 0, false
	}
	var t int64
	switch cc.mode {
	case 0, 1:
		t = cc.start + cc.n
	case 4, 5:
		t = cc.start + cc.n + 1
	default:
		if cc.n < 2 {
			return 0, false // count 1 is illegal in modes 2 and 3
		}
		k := int64(1)
		if after >= cc.start {
			k = (after-cc.start)/cc.n + 1
		}
		t = cc.start + k*cc.n
		if cc.pending && t >= cc.pendAt {
			t = cc.pendAt
		}
	}
	if t <= after {
		return 0, false
	}
	return t, true
}

// program handles a control word for this counter at tick t. The CE
// keeps its value but stops until a count is written.
func (c *counter) program(t int64, v uint8) {
	if c.armed {
		c.held = c.ce(t)
	}
	c.mode = v & CWModeMask >> CWModShift
	if c.mode > 5 {
		c.mode -= 4 // 110 and 111 are modes 2 and 3
	}
	c.rw = v & CWRWMask >> CWRWShift
	c.bcd = v&CWBCD != 0
	c.armed, c.paused, c.pending = false, false, false
	c.wMSB, c.rMSB, c.latchd, c.stLatd = false, false, false, false
	c.nullUntil = never
}

// load handles a complete count written at tick t.
func (c *counter) load(t int64, v uint16) {
	c.cr = v
	c.crN = c.decode(v)
	switch c.mode {
	case 1, 5:
		c.nullUntil = never // loaded by the next gate trigger
		return
	case 2, 3:
		if c.armed && !c.paused {
			c.sync(t)
			// The new count takes effect at the end of the current
			// period (82C54 datasheet, modes 2 and 3).
			k := int64(1)
			if t >= c.start {
				k = (t-c.start)/c.n + 1
			}
			c.pending, c.pendAt = true, c.start+k*c.n
			c.nullUntil = c.pendAt
			return
		}
		if c.armed && c.paused {
			c.n, c.nullUntil = c.crN, never // reloaded when the gate rises
			return
		}
	}
	c.n, c.start, c.armed, c.pending = c.crN, t+1, true, false
	c.nullUntil = t + 1
	if !c.gate {
		if c.periodic() {
			c.paused = true
		} else {
			c.paused, c.pausedE = true, 0
		}
	} else {
		c.paused = false
	}
}

// setGate changes the gate input at tick t.
func (c *counter) setGate(t int64, g bool) {
	if g == c.gate {
		return
	}
	c.gate = g
	c.sync(t)
	if !g {
		if c.armed && !c.paused {
			switch c.mode {
			case 0, 4:
				c.pausedE, c.paused = c.elapsed(t), true
			case 2, 3:
				// Counting stops; the gate's rise reloads the CR.
				if c.pending {
					c.pending, c.nullUntil = false, never
				}
				c.paused = true
			}
		}
		return
	}
	switch c.mode {
	case 0, 4:
		if c.paused {
			c.start, c.paused = t-c.pausedE, false
		}
	case 2, 3:
		if c.armed {
			// A rising gate reloads the counter (82C54 datasheet,
			// Figure 16 "Gate Pin Operations Summary").
			c.n, c.start, c.paused, c.pending = c.crN, t+1, false, false
			c.nullUntil = t + 1
		}
	case 1, 5:
		if c.crN != 0 {
			c.n, c.start, c.armed = c.crN, t+1, true
			c.nullUntil = t + 1
		}
	}
}

func (c *counter) statusByte(t int64) uint8 {
	s := c.rw<<CWRWShift | c.mode<<CWModShift
	if c.bcd {
		s |= CWBCD
	}
	if c.out(t) {
		s |= StatusOutput
	}
	if t < c.nullUntil {
		s |= StatusNullCount
	}
	return s
}

func (c *counter) latchCount(t int64) {
	if !c.latchd {
		c.latch, c.latchd, c.rMSB = c.value(t), true, false
	}
}

func (c *counter) latchStatus(t int64) {
	if !c.stLatd {
		c.status, c.stLatd = c.statusByte(t), true
	}
}

func (c *counter) readByte(t int64) uint8 {
	if c.stLatd {
		c.stLatd = false
		return c.status
	}
	v := c.latch
	if !c.latchd {
		v = c.value(t)
	}
	var b uint8
	switch c.rw {
	case RWLSB:
		b, c.latchd = uint8(v), false
	case RWMSB:
		b, c.latchd = uint8(v>>8), false
	default:
		if !c.rMSB {
			b, c.rMSB = uint8(v), true
		} else {
			b, c.rMSB, c.latchd = uint8(v>>8), false, false
		}
	}
	return b
}

func (c *counter) writeByte(t int64, v uint8) {
	switch c.rw {
	case RWLSB:
		c.load(t, uint16(v))
	case RWMSB:
		c.load(t, uint16(v)<<8)
	case RWBoth:
		if !c.wMSB {
			c.lsb, c.wMSB = v, true
			if c.mode == 0 {
				// Writing the first byte stops the count and sets OUT
				// low (82C54 datasheet, mode 0).
				if c.armed {
					c.held = c.ce(t)
				}
				c.armed = false
			}
			return
		}
		c.wMSB = false
		c.load(t, uint16(c.lsb)|uint16(v)<<8)
	}
}
