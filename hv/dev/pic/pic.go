// Package pic models the two cascaded Intel 8259A programmable interrupt
// controllers of the PC: the master at ports 0x20-0x21 takes IRQ 0-7, the
// slave at 0xA0-0xA1 takes IRQ 8-15 and drives the master's IR2.
//
// Modelled from the 8259A datasheet: the ICW1-ICW4 initialization
// sequence, OCW1 (mask), OCW2 (specific and non-specific EOI, rotation,
// set priority), OCW3 (read IRR/ISR, poll, special mask mode), automatic
// EOI (with rotation), special fully nested mode, priority resolution
// and spurious IRQ 7/15 when a request goes away before the INTA cycle.
// Each input is edge- or level-triggered as selected by the PIIX-style
// edge/level control registers (ELCR, 0x4D0-0x4D1) or ICW1 LTIM.
//
// The vCPU plays the processor's side of the INTA cycle: the output
// callback reports the INT line, Pending tells which vector the pair would
// deliver, and Ack performs the acknowledge and returns it.
//
// Departures from the chip: the 8080/8085 call-address mode and buffered
// mode are accepted and stored but change nothing; the master's cascade
// input (IR2) follows the slave's INT output as a level, whatever ELCR
// says, so a request the slave keeps asserting across an INTA is not lost;
// SetIRQ on IRQ 2 is ignored (on the PC that input is the cascade).
//
// Hot path: port accesses, SetIRQ, Pending and Ack do not allocate. All
// methods are safe for concurrent use.
package pic

import (
	"errors"
	"fmt"
	"sync"

	"github.com/godwit-hv/godwit/hv/bus"
)

// Config wires the pair to the vCPU.
type Config struct {
	// INTR is called with the new level of the master's INT output
	// whenever it changes. It is called with the PIC locked and must not
	// call back into it. Nil means nobody listens.
	INTR func(level bool)
}

// chip is one 8259A.
type chip struct {
	irr, isr, imr uint8
	lines         uint8 // input levels as last driven
	elcr          uint8 // level-triggered inputs (from the ELCR)
	icw1          uint8
	base          uint8 // ICW2: vector of IR0
	icw3          uint8
	icw4          uint8
	initStep      uint8 // 0: ready; 2, 3, 4: expecting that ICW
	lowest        uint8 // level with the lowest priority (7 after ICW1)
	readISR       bool  // OCW3 RIS: a read of A0=0 returns ISR
	poll          bool  // OCW3 P: the next read is a poll
	smm           bool  // special mask mode
	rotateAEOI    bool  // rotate on automatic EOI
	master        bool
}

func (c *chip) levelMask() uint8 {
	m := c.elcr
	if c.icw1&ICW1LTIM != 0 {
		m = 0xff
	}
	if c.master {
		m |= 1 << CascadeIRQ
	}
	return m
}

// setLine drives input irq (0-7) of the chip.
func (c *chip) setLine(irq uint8, level bool) {
	bit := uint8(1) << irq
	old := c.lines&bit != 0
	if level {
		c.lines |= bit
	} else {
		c.lines &^= bit
	}
	if c.levelMask()&bit != 0 {
		// Level-sensitive: IRR follows the input (8259A datasheet,
		// "Edge and Level Triggered Modes").
		c.irr = c.irr&^bit | c.lines&bit
		return
	}
	if level && !old {
		c.irr |= bit // rising edge latched until acknowledged
	}
}

// resyncLevel makes IRR follow the inputs for the level-sensitive ones.
func (c *chip) resyncLevel() {
	m := c.levelMask()
	c.irr = c.irr&^m | c.lines&m
}

// best returns the highest-priority unmasked request the in-service
// levels do not block, or -1. 8259A datasheet, "Priority Resolver" and
// "Special Mask Mode", "Special Fully Nested Mode".
func (c *chip) best() int {
	req := c.irr &^ c.imr
	inService := c.isr
	if c.smm {
		inService &^= c.imr // masked levels in service inhibit nothing
	}
	for i := uint8(1); i <= 8; i++ {
		l := (c.lowest + i) & 7
		bit := uint8(1) << l
		if inService&bit != 0 {
			if c.master && c.icw4&ICW4SFNM != 0 && l == CascadeIRQ && req&bit != 0 {
				return int(l) // a higher request from the slave passes
			}
			return -1
		}
		if req&bit != 0 {
			return int(l)
		}
	}
	return -1
}

// highestISR returns the highest-priority level in service, or -1.
func (c *chip) highestISR() int {
	for i := uint8(1); i <= 8; i++ {
		l := (c.lowest + i) & 7
		if c.isr&(1<<l) != 0 {
			return int(l)
		}
	}
	return -1
}

// ack performs this chip's part of an INTA cycle and returns the level
// acknowledged; with no request left it is 7 and spurious.
func (c *chip) ack() (level uint8, spurious bool) {
	l := c.best()
	if l < 0 {
		return 7, true // 8259A datasheet, "Interrupt Sequence": IR7 default
	}
	level = uint8(l)
	bit := uint8(1) << level
	if c.levelMask()&bit == 0 {
		c.irr &^= bit
	}
	if c.icw4&ICW4AEOI != 0 {
		if c.rotateAEOI {
			c.lowest = level
		}
	} else {
		c.isr |= bit
	}
	return level, false
}

// cascaded reports whether the master treats IR2 as the slave's INT: in
// cascade mode with IR2 marked in ICW3 (8259A datasheet, "ICW3").
func (c *chip) cascaded() bool {
	return c.master && c.icw1&ICW1SNGL == 0 && c.icw3&(1<<CascadeIRQ) != 0
}

func (c *chip) writeCmd(v uint8) {
	switch {
	case v&ICW1Select != 0:
		// ICW1 (8259A datasheet, "Initialization Command Words"): clear
		// IMR, IR7 lowest priority, special mask off, read IRR, and the
		// edge sense latches reset so an edge input must rise again.
		c.icw1 = v
		c.imr, c.isr, c.irr = 0, 0, 0
		c.lowest = 7
		c.smm, c.readISR, c.poll, c.rotateAEOI = false, false, false, false
		if v&ICW1IC4 == 0 {
			c.icw4 = 0
		}
		c.initStep = 2
		c.resyncLevel()
	case v&OCW3Select != 0:
		if v&OCW3ESMM != 0 {
			c.smm = v&OCW3SMM != 0
		}
		if v&OCW3RR != 0 {
			c.readISR = v&OCW3RIS != 0
		}
		c.poll = v&OCW3P != 0
	default:
		c.ocw2(v)
	}
}

func (c *chip) ocw2(v uint8) {
	l := v & OCW2LevelMask
	switch v & OCW2CmdMask {
	case OCW2RotateAEOIClear:
		c.rotateAEOI = false
	case OCW2RotateAEOISet:
		c.rotateAEOI = true
	case OCW2NonSpecificEOI, OCW2RotateNonSpec:
		h := c.highestISR()
		if h < 0 {
			return
		}
		c.isr &^= 1 << uint8(h)
		if v&OCW2CmdMask == OCW2RotateNonSpec {
			c.lowest = uint8(h)
		}
	case OCW2SpecificEOI:
		c.isr &^= 1 << l
	case OCW2RotateSpecific:
		c.isr &^= 1 << l
		c.lowest = l
	case OCW2SetPriority:
		c.lowest = l
	case OCW2NOP:
	}
}

func (c *chip) writeData(v uint8) {
	switch c.initStep {
	case 2:
		c.base = v & ICW2VectorMask
		switch {
		case c.icw1&ICW1SNGL == 0:
			c.initStep = 3
		case c.icw1&ICW1IC4 != 0:
			c.initStep = 4
		default:
			c.initStep = 0
		}
	case 3:
		c.icw3 = v
		if c.icw1&ICW1IC4 != 0 {
			c.initStep = 4
		} else {
			c.initStep = 0
		}
	case 4:
		c.icw4 = v & icw4Mask
		c.initStep = 0
	default:
		c.imr = v // OCW1
	}
}

func (c *chip) readCmd() uint8 {
	if c.poll {
		c.poll = false
		l, spurious := c.ack()
		if spurious {
			return 0
		}
		return PollInterrupt | l
	}
	if c.readISR {
		return c.isr
	}
	return c.irr
}

// PIC is the master/slave pair.
type PIC struct {
	mu            sync.Mutex
	cfg           Config
	master, slave chip
	out           bool
}

// New returns a pair in its power-on state: not initialized, all inputs
// edge-triggered and low, nothing masked.
func New(cfg Config) *PIC {
	p := &PIC{cfg: cfg}
	p.master.master = true
	p.master.lowest, p.slave.lowest = 7, 7
	return p
}

// update propagates the slave's output to the master and the master's to
// the INTR callback. Called with p.mu held.
func (p *PIC) update() {
	p.master.setLine(CascadeIRQ, p.slave.best() >= 0)
	out := p.master.best() >= 0
	if out != p.out {
		p.out = out
		if p.cfg.INTR != nil {
			p.cfg.INTR(out)
		}
	}
}

// SetIRQ drives interrupt input irq (0-15) to level. Inputs out of range
// and IRQ 2, the cascade, are ignored.
func (p *PIC) SetIRQ(irq int, level bool) {
	if irq < 0 || irq >= NumIRQs || irq == CascadeIRQ {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if irq < 8 {
		p.master.setLine(uint8(irq), level)
	} else {
		p.slave.setLine(uint8(irq-8), level)
	}
	p.update()
}

// Output returns the level of the master's INT output.
func (p *PIC) Output() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out
}

// Pending returns the vector an INTA cycle would deliver now, and whether
// the INT output is asserted at all. It changes nothing.
func (p *PIC) Pending() (vector uint8, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.master.best()
	if l < 0 {
		return 0, false
	}
	if l == CascadeIRQ && p.master.cascaded() {
		s := p.slave.best()
		if s < 0 {
			return p.slave.base | 7, true
		}
		return p.slave.base | uint8(s), true
	}
	return p.master.base | uint8(l), true
}

// Ack performs the INTA cycle and returns the vector delivered: it moves
// the winning request from IRR to ISR (unless in automatic EOI mode) on
// the master and, for the cascade input, on the slave. With no request
// left it returns the spurious vector of IR7 (IRQ 7, or IRQ 15 through
// the cascade) and sets no ISR bit on that chip.
func (p *PIC) Ack() uint8 {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.update()
	l, spurious := p.master.ack()
	if spurious || l != CascadeIRQ || !p.master.cascaded() {
		return p.master.base | l
	}
	s, _ := p.slave.ack()
	return p.slave.base | s
}

// portDev is the bus view of one chip's two ports.
type portDev struct {
	p *PIC
	c *chip
}

// Master returns the bus device for ports 0x20-0x21.
func (p *PIC) Master() bus.Device { return portDev{p, &p.master} }

// Slave returns the bus device for ports 0xA0-0xA1.
func (p *PIC) Slave() bus.Device { return portDev{p, &p.slave} }

// ELCR returns the bus device for the edge/level control registers at
// 0x4D0 (IRQ 0-7) and 0x4D1 (IRQ 8-15).
func (p *PIC) ELCR() bus.Device { return elcrDev{p} }

// ErrAccess reports an access outside a device's ports.
var ErrAccess = errors.New("pic: access outside the device")

func checkAccess(offset uint64, n int) error {
	if offset >= NumPorts || uint64(n) > NumPorts-offset {
		return fmt.Errorf("%w: %d bytes at offset %d", ErrAccess, n, offset)
	}
	return nil
}

// Read implements bus.Device; a 2-byte access reads both ports in turn.
func (d portDev) Read(offset uint64, data []byte) error {
	if err := checkAccess(offset, len(data)); err != nil {
		return err
	}
	d.p.mu.Lock()
	defer d.p.mu.Unlock()
	for i := range data {
		if offset+uint64(i) == 0 {
			data[i] = d.c.readCmd()
		} else if d.c.poll {
			data[i] = d.c.readCmd() // a poll answers either address
		} else {
			data[i] = d.c.imr
		}
	}
	d.p.update()
	return nil
}

// Write implements bus.Device.
func (d portDev) Write(offset uint64, data []byte) error {
	if err := checkAccess(offset, len(data)); err != nil {
		return err
	}
	d.p.mu.Lock()
	defer d.p.mu.Unlock()
	for i, v := range data {
		if offset+uint64(i) == 0 {
			d.c.writeCmd(v)
		} else {
			d.c.writeData(v)
		}
	}
	d.p.update()
	return nil
}

type elcrDev struct{ p *PIC }

// Read implements bus.Device.
func (d elcrDev) Read(offset uint64, data []byte) error {
	if err := checkAccess(offset, len(data)); err != nil {
		return err
	}
	d.p.mu.Lock()
	defer d.p.mu.Unlock()
	for i := range data {
		if offset+uint64(i) == 0 {
			data[i] = d.p.master.elcr
		} else {
			data[i] = d.p.slave.elcr
		}
	}
	return nil
}

// Write implements bus.Device. Reserved bits are kept 0.
func (d elcrDev) Write(offset uint64, data []byte) error {
	if err := checkAccess(offset, len(data)); err != nil {
		return err
	}
	d.p.mu.Lock()
	defer d.p.mu.Unlock()
	for i, v := range data {
		if offset+uint64(i) == 0 {
			d.p.master.elcr = v &^ ELCR1Reserved
			d.p.master.resyncLevel()
		} else {
			d.p.slave.elcr = v &^ ELCR2Reserved
			d.p.slave.resyncLevel()
		}
	}
	d.p.update()
	return nil
}
