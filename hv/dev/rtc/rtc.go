// Package rtc models the Motorola MC146818A real-time clock and CMOS RAM
// of the PC at ports 0x70 (index, with the NMI mask in bit 7) and 0x71
// (data).
//
// The clock's divider chain runs from an injectable monotonic nanosecond
// clock; the time of day starts from an injectable wall clock (read once,
// at New) and is kept in UTC. Time registers read in BCD or binary and in
// 12- or 24-hour form as register B selects at the moment of the read;
// the guest sets the time the usual way (SET in register B, write the
// registers, clear SET) or by writing a register directly, and the
// difference from the host's clock is kept as an offset. The century is
// the PC's CMOS byte 0x32 and is kept with the time.
//
// Interrupts: the periodic (register A rate), update-ended and alarm
// flags of register C drive IRQ 8 through a callback. Nothing runs in the
// background: the owner arms a host timer for NextDeadline and calls Tick
// (accesses also bring the flags up to date), and reads NextDeadline
// again after each access to these ports, since enabling an interrupt or
// reading register C moves it. Flags are set whether or not their
// interrupt is enabled, and reading register C clears them.
//
// Departures from the chip: the day of week is derived from the date
// (writes to it only hold while SET is 1); daylight saving (DSE) and the
// square-wave output are stored but do nothing; time bases other than
// 32.768 kHz behave as 32.768 kHz; the update completes exactly at the
// second boundary, with UIP high for the 2.228 ms before it.
//
// Hot path: port accesses, Tick and NextDeadline do not allocate. All
// methods are safe for concurrent use.
package rtc

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"time"
)

// Config wires the RTC to the host.
type Config struct {
	// Now returns a monotonic time in nanoseconds (the same clock the
	// owner uses for NextDeadline and Tick). Nil means time since New.
	Now func() int64
	// Wall returns the wall-clock time the RTC starts from. Nil means
	// time.Now.
	Wall func() time.Time
	// IRQ is called with the new level of the interrupt output. It is
	// called with the RTC locked and must not call back into it.
	IRQ func(level bool)
}

// RTC is one MC146818A with the PC's 128-byte CMOS.
type RTC struct {
	mu  sync.Mutex
	cfg Config

	index     uint8
	nmiMasked bool
	ram       [NumRegs]byte // user RAM, alarms, and the time while updates are halted
	a, b, c   uint8

	divOffset   int64 // divider chain (ns) = now + divOffset while running
	chainFrozen int64 // chain while held in reset
	secOffset   int64 // time of day (Unix s) = secOffset + chain/1e9 while updating
	lastChain   int64 // chain at the last flag evaluation
	line        bool
}

// New returns an RTC holding the wall clock's time, with registers as a
// PC BIOS leaves them.
func New(cfg Config) *RTC {
	if cfg.Now == nil {
		t0 := time.Now()
		cfg.Now = func() int64 { return int64(time.Since(t0)) }
	}
	if cfg.Wall == nil {
		cfg.Wall = time.Now
	}
	r := &RTC{cfg: cfg, a: DefaultA, b: DefaultB}
	now, wall := cfg.Now(), cfg.Wall()
	// Start the chain at 1 s plus the wall clock's fraction, so updates
	// fall on the wall clock's second boundaries.
	r.divOffset = 1e9 + int64(wall.Nanosecond()) - now
	r.secOffset = wall.Unix() - 1
	r.lastChain = r.chain(now)
	return r
}

func floorDiv(x, y int64) int64 {
	q := x / y
	if x%y != 0 && (x < 0) != (y < 0) {
		q--
	}
	return q
}

func (r *RTC) dividerRunning() bool { return r.a&ADVReset != ADVReset }
func (r *RTC) updating() bool       { return r.dividerRunning() && r.b&BSET == 0 }

func (r *RTC) chain(now int64) int64 {
	if !r.dividerRunning() {
		return r.chainFrozen
	}
	return now + r.divOffset
}

// ticks32k converts chain nanoseconds to 32.768 kHz time-base ticks.
func ticks32k(ns int64) int64 {
	if ns <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(ns), TimeBase)
	q, _ := bits.Div64(hi, lo, 1e9)
	return int64(q)
}

// nsOf32k returns the first chain nanosecond at or after tick t.
func nsOf32k(t int64) int64 {
	hi, lo := bits.Mul64(uint64(t), 1e9)
	if hi >= TimeBase {
		return 1<<63 - 1
	}
	q, rem := bits.Div64(hi, lo, TimeBase)
	if rem != 0 {
		q++
	}
	return int64(q)
}

// periodTicks is the periodic interrupt period in time-base ticks for
// rate select rs (1-15). MC146818A datasheet, Table 5 "Periodic
// Interrupt Rate and Square-Wave Output Frequency" (32.768 kHz column:
// rates 1 and 2 repeat 8 and 9).
func periodTicks(rs uint8) int64 {
	if rs <= 2 {
		rs += 7
	}
	return 1 << (rs - 1)
}

func (r *RTC) enc(v int) uint8 {
	if r.b&BDM != 0 {
		return uint8(v)
	}
	return uint8(v/10%10<<4 | v%10)
}

func (r *RTC) dec(v uint8) int {
	if r.b&BDM != 0 {
		return int(v)
	}
	return int(v>>4)*10 + int(v&0xf)
}

func (r *RTC) encHour(h int) uint8 {
	if r.b&B24h != 0 {
		return r.enc(h)
	}
	h12 := h % 12
	if h12 == 0 {
		h12 = 12
	}
	v := r.enc(h12)
	if h >= 12 {
		v |= PMBit
	}
	return v
}

func (r *RTC) decHour(v uint8) int {
	if r.b&B24h != 0 {
		return r.dec(v)
	}
	h := r.dec(v&^PMBit) % 12
	if v&PMBit != 0 {
		h += 12
	}
	return h
}

// timeReg returns the value of time register reg for Unix time s.
func (r *RTC) timeReg(reg uint8, s int64) uint8 {
	t := time.Unix(s, 0).UTC()
	switch reg {
	case RegSeconds:
		return r.enc(t.Second())
	case RegMinutes:
		return r.enc(t.Minute())
	case RegHours:
		return r.encHour(t.Hour())
	case RegDayOfWeek:
		return r.enc(int(t.Weekday()) + 1)
	case RegDayOfMonth:
		return r.enc(t.Day())
	case RegMonth:
		return r.enc(int(t.Month()))
	case RegYear:
		return r.enc(t.Year() % 100)
	case RegCentury:
		return r.enc(t.Year() / 100 % 100)
	}
	return 0
}

func isTimeReg(reg uint8) bool {
	switch reg {
	case RegSeconds, RegMinutes, RegHours, RegDayOfWeek, RegDayOfMonth, RegMonth, RegYear, RegCentury:
		return true
	}
	return false
}

var timeRegs = [...]uint8{RegSeconds, RegMinutes, RegHours, RegDayOfWeek, RegDayOfMonth, RegMonth, RegYear, RegCentury}

// snapshot copies the running time into the time registers' RAM.
func (r *RTC) snapshot(now int64) {
	s := r.seconds(r.chain(now))
	for _, reg := range timeRegs {
		r.ram[reg] = r.timeReg(reg, s)
	}
}

// parse reads the time registers' RAM as a Unix time. Out-of-range
// fields roll over (time.Date's normalization), as nothing stops a guest
// from writing them.
func (r *RTC) parse() int64 {
	year := r.dec(r.ram[RegYear]) % 100
	if cent := r.dec(r.ram[RegCentury]); cent != 0 {
		year += cent * 100
	} else if year < 70 {
		year += 2000
	} else {
		year += 1900
	}
	return time.Date(year, time.Month(r.dec(r.ram[RegMonth])), r.dec(r.ram[RegDayOfMonth]),
		r.decHour(r.ram[RegHours]), r.dec(r.ram[RegMinutes]), r.dec(r.ram[RegSeconds]), 0, time.UTC).Unix()
}

func (r *RTC) seconds(chain int64) int64 { return r.secOffset + floorDiv(chain, 1e9) }

// resume restarts updates from the time registers' RAM.
func (r *RTC) resume(now int64) {
	r.secOffset = r.parse() - floorDiv(r.chain(now), 1e9)
}

func alarmMatch(alarm, v uint8) bool { return alarm&AlarmDontCare == AlarmDontCare || alarm == v }

// advance sets the flags for what happened up to now.
func (r *RTC) advance(now int64) {
	cb, ca := r.chain(now), r.lastChain
	if cb > ca && r.dividerRunning() {
		if rs := r.a & ARSMask; rs != 0 {
			p := periodTicks(rs)
			if ticks32k(cb)/p > ticks32k(ca)/p {
				r.c |= CPF
			}
		}
		if r.b&BSET == 0 {
			kA, kB := floorDiv(ca, 1e9), floorDiv(cb, 1e9)
			if kB > kA {
				r.c |= CUF
				// A day of updates covers every alarm pattern.
				for k := max(kA+1, kB-86399); k <= kB && r.c&CAF == 0; k++ {
					s := r.secOffset + k
					if alarmMatch(r.ram[RegSecondsAlarm], r.timeReg(RegSeconds, s)) &&
						alarmMatch(r.ram[RegMinutesAlarm], r.timeReg(RegMinutes, s)) &&
						alarmMatch(r.ram[RegHoursAlarm], r.timeReg(RegHours, s)) {
						r.c |= CAF
					}
				}
			}
		}
		r.lastChain = cb
	}
	r.updateIRQ()
}

func (r *RTC) updateIRQ() {
	irqf := r.c&CPF != 0 && r.b&BPIE != 0 || r.c&CAF != 0 && r.b&BAIE != 0 || r.c&CUF != 0 && r.b&BUIE != 0
	if irqf {
		r.c |= CIRQF
	} else {
		r.c &^= CIRQF
	}
	if irqf != r.line {
		r.line = irqf
		if r.cfg.IRQ != nil {
			r.cfg.IRQ(irqf)
		}
	}
}

// Tick brings the flags up to time now (ns on the Config.Now clock).
func (r *RTC) Tick(now int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.advance(now)
}

// NextDeadline returns when (ns on the Config.Now clock) the interrupt
// output may next rise: the next periodic or update event with its
// interrupt enabled. There is none while the output is already asserted
// (it stays so until register C is read) or nothing is enabled.
func (r *RTC) NextDeadline() (ns int64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.line || !r.dividerRunning() {
		return 0, false
	}
	c := r.lastChain
	best := int64(-1)
	if rs := r.a & ARSMask; rs != 0 && r.b&BPIE != 0 {
		p := periodTicks(rs)
		best = nsOf32k((ticks32k(c)/p + 1) * p)
	}
	if r.b&(BUIE|BAIE) != 0 && r.b&BSET == 0 {
		if u := (floorDiv(c, 1e9) + 1) * 1e9; best < 0 || u < best {
			best = u
		}
	}
	if best < 0 {
		return 0, false
	}
	return best - r.divOffset, true
}

// NMIMasked reports whether the guest last wrote the index port with the
// NMI-disable bit set.
func (r *RTC) NMIMasked() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nmiMasked
}

// ErrAccess reports an access outside the device's ports.
var ErrAccess = errors.New("rtc: access outside the device")

// Read implements bus.Device for ports 0x70-0x71. The index port is
// write-only and reads as 0xff.
func (r *RTC) Read(offset uint64, data []byte) error {
	if offset >= NumPorts || uint64(len(data)) > NumPorts-offset {
		return fmt.Errorf("%w: read of %d bytes at offset %d", ErrAccess, len(data), offset)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.cfg.Now()
	r.advance(now)
	for i := range data {
		if offset+uint64(i) == IndexPort {
			data[i] = 0xff
			continue
		}
		data[i] = r.readReg(now)
	}
	return nil
}

// Write implements bus.Device for ports 0x70-0x71.
func (r *RTC) Write(offset uint64, data []byte) error {
	if offset >= NumPorts || uint64(len(data)) > NumPorts-offset {
		return fmt.Errorf("%w: write of %d bytes at offset %d", ErrAccess, len(data), offset)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.cfg.Now()
	r.advance(now)
	for i, v := range data {
		if offset+uint64(i) == IndexPort {
			r.index, r.nmiMasked = v&IndexMask, v&IndexNMIMask != 0
			continue
		}
		r.writeReg(now, v)
	}
	r.updateIRQ()
	return nil
}

func (r *RTC) readReg(now int64) uint8 {
	switch reg := r.index; {
	case reg == RegA:
		v := r.a
		if r.updating() && r.chain(now)%1e9 >= 1e9-uipWindowNs {
			v |= AUIP
		}
		return v
	case reg == RegB:
		return r.b
	case reg == RegC:
		v := r.c
		r.c = 0
		r.updateIRQ()
		return v
	case reg == RegD:
		return DVRT
	case isTimeReg(reg) && r.updating():
		return r.timeReg(reg, r.seconds(r.chain(now)))
	default:
		return r.ram[reg]
	}
}

func (r *RTC) writeReg(now int64, v uint8) {
	switch reg := r.index; {
	case reg == RegA:
		r.setAB(now, v&aWritable, r.b)
	case reg == RegB:
		if v&BSET != 0 {
			v &^= BUIE // SET going high clears UIE (datasheet, "Register B")
		}
		r.setAB(now, r.a, v)
	case reg == RegC, reg == RegD:
		// Read only.
	case isTimeReg(reg) && r.updating():
		r.snapshot(now)
		r.ram[reg] = v
		r.resume(now)
	default:
		r.ram[reg] = v
	}
}

// setAB loads registers A and B, halting or restarting the divider chain
// and the updates as their DV and SET fields change.
func (r *RTC) setAB(now int64, a, b uint8) {
	wasRunning, wasUpdating := r.dividerRunning(), r.updating()
	if wasUpdating && (a&ADVReset == ADVReset || b&BSET != 0) {
		r.snapshot(now)
	}
	if wasRunning && a&ADVReset == ADVReset {
		r.chainFrozen = r.chain(now)
	}
	r.a, r.b = a, b
	if !wasRunning && r.dividerRunning() {
		// The first update comes 0.5 s after the reset is released
		// (datasheet, "Divider Control").
		c := (floorDiv(r.chainFrozen, 1e9)+1)*1e9 + resetReleasedNs
		r.divOffset, r.lastChain = c-now, c
	}
	if !wasUpdating && r.updating() {
		r.resume(now)
	}
}
