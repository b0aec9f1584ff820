package pic

import (
	"errors"
	"fmt"
)

// ChipState is the migratable state of one 8259A.
type ChipState struct {
	IRR, ISR, IMR uint8
	Lines         uint8 // input levels
	ELCR          uint8
	ICW1          uint8
	VectorBase    uint8 // ICW2
	ICW3, ICW4    uint8
	InitStep      uint8 // 0 ready, or the ICW expected next (2, 3, 4)
	LowestLevel   uint8 // level with the lowest priority
	ReadISR       bool
	Poll          bool
	SpecialMask   bool
	RotateAEOI    bool
}

// State is the migratable state of the pair.
type State struct {
	Master, Slave ChipState
}

// ErrState reports a state Restore cannot load.
var ErrState = errors.New("pic: invalid state")

func (c *chip) save() ChipState {
	return ChipState{
		IRR: c.irr, ISR: c.isr, IMR: c.imr, Lines: c.lines, ELCR: c.elcr, ICW1: c.icw1,
		VectorBase: c.base, ICW3: c.icw3, ICW4: c.icw4, InitStep: c.initStep, LowestLevel: c.lowest,
		ReadISR: c.readISR, Poll: c.poll, SpecialMask: c.smm, RotateAEOI: c.rotateAEOI,
	}
}

func (c *chip) load(s ChipState) {
	c.irr, c.isr, c.imr, c.lines, c.elcr, c.icw1 = s.IRR, s.ISR, s.IMR, s.Lines, s.ELCR, s.ICW1
	c.base, c.icw3, c.icw4, c.initStep, c.lowest = s.VectorBase, s.ICW3, s.ICW4, s.InitStep, s.LowestLevel
	c.readISR, c.poll, c.smm, c.rotateAEOI = s.ReadISR, s.Poll, s.SpecialMask, s.RotateAEOI
}

func (s ChipState) check(name string, reserved uint8) error {
	switch {
	case s.InitStep != 0 && (s.InitStep < 2 || s.InitStep > 4):
		return fmt.Errorf("%w: %s init step %d", ErrState, name, s.InitStep)
	case s.LowestLevel > 7:
		return fmt.Errorf("%w: %s lowest priority level %d", ErrState, name, s.LowestLevel)
	case s.ELCR&reserved != 0:
		return fmt.Errorf("%w: %s ELCR %#x sets reserved bits", ErrState, name, s.ELCR)
	case s.ICW4&^icw4Mask != 0:
		return fmt.Errorf("%w: %s ICW4 %#x", ErrState, name, s.ICW4)
	case s.VectorBase&^ICW2VectorMask != 0:
		return fmt.Errorf("%w: %s vector base %#x", ErrState, name, s.VectorBase)
	}
	return nil
}

// Save returns the pair's state.
func (p *PIC) Save() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return State{Master: p.master.save(), Slave: p.slave.save()}
}

// Restore loads a state from Save and sets the INTR line to match it.
func (p *PIC) Restore(s State) error {
	if err := s.Master.check("master", ELCR1Reserved); err != nil {
		return err
	}
	if err := s.Slave.check("slave", ELCR2Reserved); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.master.load(s.Master)
	p.slave.load(s.Slave)
	p.update()
	return nil
}
