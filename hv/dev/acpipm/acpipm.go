// Package acpipm models the ACPI fixed hardware a full-ACPI PC guest uses: the PM1a event block
// (PM1 status and enable), the PM1a control block (SCI_EN, SLP_TYP, SLP_EN) and the ACPI power
// management timer. ACPI 6.4, 4.8.3 "PM1 Event Grouping", 4.8.3.2 "PM1 Control Registers" and
// 4.8.3.3 "Power Management Timer (PM_TMR)".
//
// The platform has no SMI command port, so it is always in ACPI mode: SCI_EN reads as set. A
// write of SLP_EN reports the sleep type to Config.Sleep (the VM powers off on the \_S5 type).
// The timer counts at 3.579545 MHz from an injectable clock; its 24-bit wrap sets TMR_STS. The
// power button (PowerButton) sets PWRBTN_STS, so a host can ask a guest to shut down cleanly.
// The SCI is level: it is asserted while a status bit is set whose enable bit is set.
//
// Accesses are rare (a shutdown, the timer while Linux calibrates); nothing is a hot path.
// Accesses of widths the registers do not have are handled as on hardware: the bytes a
// register covers are read or written, the rest read as 0 and are ignored.
package acpipm

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"sync"
)

// Register block sizes. ACPI 6.4, 5.2.9 table 5.9: PM1_EVT_LEN 4, PM1_CNT_LEN 2, PM_TMR_LEN 4.
const (
	EventLen   = 4
	ControlLen = 2
	TimerLen   = 4
)

// PM1 status and enable bits. ACPI 6.4, 4.8.3.1.1 table 4.13 and 4.8.3.1.2 table 4.14.
const (
	TmrSts    = 1 << 0
	BMSts     = 1 << 4
	GblSts    = 1 << 5
	PwrBtnSts = 1 << 8
	SlpBtnSts = 1 << 9
	RTCSts    = 1 << 10
	WakSts    = 1 << 15
	TmrEn     = 1 << 0
	GblEn     = 1 << 5
	PwrBtnEn  = 1 << 8
	SlpBtnEn  = 1 << 9
	RTCEn     = 1 << 10

	statusMask = TmrSts | BMSts | GblSts | PwrBtnSts | SlpBtnSts | RTCSts | WakSts
	enableMask = TmrEn | GblEn | PwrBtnEn | SlpBtnEn | RTCEn
)

// PM1 control bits. ACPI 6.4, 4.8.3.2.1 table 4.16.
const (
	SCIEn        = 1 << 0
	BMRLD        = 1 << 1
	GblRls       = 1 << 2
	SlpTypShift  = 10
	SlpTypMask   = 7 << SlpTypShift
	SlpEn        = 1 << 13
	controlStore = BMRLD | SlpTypMask // the bits that keep what is written
)

// TimerHz is the PM timer's frequency. ACPI 6.4, 4.8.3.3.
const TimerHz = 3579545

// timerBits is the width of the counter (the FADT does not set TMR_VAL_EXT).
const timerBits = 24

// Config wires the device to its machine.
type Config struct {
	// Clock returns nanoseconds on a monotonic clock. Required.
	Clock func() int64
	// SCI drives the SCI line (true = asserted). Nil leaves it unconnected.
	SCI func(level bool)
	// Sleep is called, without the device lock, when the guest writes SLP_EN with sleep type
	// typ. Nil ignores sleep requests.
	Sleep func(typ uint8)
}

// PM is the ACPI fixed hardware of one machine.
type PM struct {
	mu      sync.Mutex
	cfg     Config
	sts     uint16
	en      uint16
	cnt     uint16
	start   int64 // the clock when the timer read 0
	lastTmr uint64
	sci     bool
}

// New returns the device in its reset state, with the timer starting at 0.
func New(cfg Config) (*PM, error) {
	if cfg.Clock == nil {
		return nil, fmt.Errorf("acpipm: a clock is required")
	}
	return &PM{cfg: cfg, cnt: SCIEn, start: cfg.Clock()}, nil
}

// ticks returns the timer's count since it started (not wrapped).
func (p *PM) ticks() uint64 {
	ns := uint64(max(p.cfg.Clock()-p.start, 0))
	hi, lo := bits.Mul64(ns, TimerHz)
	t, _ := bits.Div64(hi, lo, 1e9)
	return t
}

// update latches TMR_STS when the counter's top bit has toggled since the last look, and
// recomputes the SCI. It reports whether the SCI level changed.
func (p *PM) update() (changed, level bool) {
	t := p.ticks()
	if t>>(timerBits-1) != p.lastTmr>>(timerBits-1) {
		p.sts |= TmrSts
	}
	p.lastTmr = t
	sci := p.sts&p.en != 0
	changed, p.sci = sci != p.sci, sci
	return changed, sci
}

func (p *PM) raise(changed, level bool) {
	if changed && p.cfg.SCI != nil {
		p.cfg.SCI(level)
	}
}

// PowerButton presses the power button: PWRBTN_STS is set and, if enabled, the SCI raised.
func (p *PM) PowerButton() {
	p.mu.Lock()
	p.sts |= PwrBtnSts
	c, l := p.update()
	p.mu.Unlock()
	p.raise(c, l)
}

// Event returns the bus device for the PM1 event block (EventLen ports: status, enable).
func (p *PM) Event() *EventBlock { return (*EventBlock)(p) }

// Control returns the bus device for the PM1 control block (ControlLen ports).
func (p *PM) Control() *ControlBlock { return (*ControlBlock)(p) }

// Timer returns the bus device for the PM timer (TimerLen ports).
func (p *PM) Timer() *TimerBlock { return (*TimerBlock)(p) }

// EventBlock is PM1a_EVT_BLK: PM1_STS at offset 0, PM1_EN at offset 2.
type EventBlock PM

// ControlBlock is PM1a_CNT_BLK.
type ControlBlock PM

// TimerBlock is PM_TMR_BLK.
type TimerBlock PM

// readBytes copies the bytes of the little-endian register image img that data at offset off
// covers; bytes outside it read as 0.
func readBytes(img []byte, off uint64, data []byte) {
	for i := range data {
		if o := off + uint64(i); o < uint64(len(img)) {
			data[i] = img[o]
		} else {
			data[i] = 0
		}
	}
}

// writeBytes merges data at offset off into the image, returning which bytes it touched.
func writeBytes(img []byte, off uint64, data []byte) (touched []bool) {
	touched = make([]bool, len(img))
	for i, b := range data {
		if o := off + uint64(i); o < uint64(len(img)) {
			img[o] = b
			touched[o] = true
		}
	}
	return touched
}

// Read implements bus.Device.
func (e *EventBlock) Read(off uint64, data []byte) error {
	p := (*PM)(e)
	p.mu.Lock()
	c, l := p.update()
	var img [EventLen]byte
	binary.LittleEndian.PutUint16(img[0:], p.sts)
	binary.LittleEndian.PutUint16(img[2:], p.en)
	p.mu.Unlock()
	p.raise(c, l)
	readBytes(img[:], off, data)
	return nil
}

// Write implements bus.Device: status bits are cleared by writing 1 (write-1-to-clear), enable
// bits keep what is written.
func (e *EventBlock) Write(off uint64, data []byte) error {
	p := (*PM)(e)
	var img [EventLen]byte
	t := writeBytes(img[:], off, data)
	p.mu.Lock()
	p.update()
	clr := binary.LittleEndian.Uint16(img[0:]) & statusMask
	p.sts &^= clr
	if t[2] || t[3] {
		old := p.en
		v := binary.LittleEndian.Uint16(img[2:])
		if !t[2] {
			v = v&0xFF00 | old&0x00FF
		}
		if !t[3] {
			v = v&0x00FF | old&0xFF00
		}
		p.en = v & enableMask
	}
	c, l := p.update()
	p.mu.Unlock()
	p.raise(c, l)
	return nil
}

// Read implements bus.Device.
func (cb *ControlBlock) Read(off uint64, data []byte) error {
	p := (*PM)(cb)
	p.mu.Lock()
	var img [ControlLen]byte
	binary.LittleEndian.PutUint16(img[:], p.cnt)
	p.mu.Unlock()
	readBytes(img[:], off, data)
	return nil
}

// Write implements bus.Device. SLP_EN is write-only: writing it with a sleep type reports the
// type to Config.Sleep. SCI_EN stays set (no SMI command port to leave ACPI mode); GBL_RLS
// only matters with a firmware lock, which there is none of.
func (cb *ControlBlock) Write(off uint64, data []byte) error {
	p := (*PM)(cb)
	p.mu.Lock()
	var img [ControlLen]byte
	binary.LittleEndian.PutUint16(img[:], p.cnt)
	writeBytes(img[:], off, data)
	v := binary.LittleEndian.Uint16(img[:])
	p.cnt = v&controlStore | SCIEn
	sleep, typ := v&SlpEn != 0, uint8(v&SlpTypMask>>SlpTypShift)
	p.mu.Unlock()
	if sleep && p.cfg.Sleep != nil {
		p.cfg.Sleep(typ)
	}
	return nil
}

// Read implements bus.Device: the 24-bit count in bits 23:0, bits 31:24 read as 0.
func (tb *TimerBlock) Read(off uint64, data []byte) error {
	p := (*PM)(tb)
	p.mu.Lock()
	c, l := p.update()
	v := uint32(p.lastTmr & (1<<timerBits - 1))
	p.mu.Unlock()
	p.raise(c, l)
	var img [TimerLen]byte
	binary.LittleEndian.PutUint32(img[:], v)
	readBytes(img[:], off, data)
	return nil
}

// Write implements bus.Device: the timer is read-only.
func (tb *TimerBlock) Write(off uint64, data []byte) error { return nil }

// State is the device's state for save/restore. The timer is saved as its count, so it goes
// on counting from there on the destination's clock.
type State struct {
	Status, Enable, Control uint16
	TimerTicks              uint64
	SCI                     bool
}

// Save returns the current state.
func (p *PM) Save() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.update()
	return State{Status: p.sts, Enable: p.en, Control: p.cnt, TimerTicks: p.lastTmr, SCI: p.sci}
}

// Restore loads a saved state, checking it, and drives the SCI to the saved level.
func (p *PM) Restore(s State) error {
	if s.Status&^statusMask != 0 || s.Enable&^enableMask != 0 || s.Control&^(controlStore|SCIEn) != 0 {
		return fmt.Errorf("acpipm: restore: reserved bits set (status %#x, enable %#x, control %#x)", s.Status, s.Enable, s.Control)
	}
	if s.TimerTicks > (1<<63-1)/1_000_000_000 {
		return fmt.Errorf("acpipm: restore: timer count %d out of range", s.TimerTicks)
	}
	ns := int64(s.TimerTicks * 1e9 / TimerHz) // start such that ticks() == TimerTicks now
	p.mu.Lock()
	p.sts, p.en, p.cnt = s.Status, s.Enable, s.Control|SCIEn
	p.start = p.cfg.Clock() - ns
	p.lastTmr = s.TimerTicks
	p.sci = !s.SCI // force the line to be driven below
	c, l := p.update()
	p.mu.Unlock()
	p.raise(c, l)
	return nil
}
