// Package i8042 models the PC's 8042 keyboard controller just enough for
// a guest without a keyboard: the status register, the command byte
// (0x20/0x60), self test (0xAA answers 0x55), the output port with the A20
// gate (0xD0/0xD1) and the CPU reset line (0xFE, and the other pulse
// commands), which is how Linux's default reboot method resets the
// machine.
//
// No keyboard or auxiliary device is attached: a byte sent to the
// keyboard is answered with 0xFE and the status timeout bit, and the
// auxiliary interface test reports a stuck clock line, so a guest's
// probes fail at once instead of waiting for timeouts. Reading the data port with
// nothing new returns the last byte again, as the hardware latch does.
// Unknown commands are ignored.
//
// Hot path: port accesses do not allocate (callbacks may). All methods
// are safe for concurrent use.
package i8042

import (
	"errors"
	"fmt"
	"sync"

	"github.com/godwit-hv/godwit/hv/bus"
)

// Config wires the controller to the machine.
type Config struct {
	// Reset is called when the guest pulses the CPU reset line. It is
	// called after the access completes, with the controller unlocked.
	Reset func()
	// A20 is called with the new state of the A20 gate when the guest
	// changes it, after the access completes, unlocked.
	A20 func(enabled bool)
	// IRQ is called with the new level of IRQ 1 (output buffer full with
	// the keyboard interrupt enabled). It is called with the controller
	// locked and must not call back into it.
	IRQ func(level bool)
}

// Controller is one 8042.
type Controller struct {
	mu   sync.Mutex
	cfg  Config
	cmd  uint8 // command byte
	out  uint8 // output port
	data uint8 // output buffer (kept after it is read)
	obf  bool
	tmo  bool  // timeout status
	a2   bool  // last write went to the command port
	next uint8 // command waiting for its data byte (0x60, 0xD1), or 0
	line bool
}

// New returns a controller as a BIOS leaves it.
func New(cfg Config) *Controller {
	return &Controller{cfg: cfg, cmd: DefaultCommandByte, out: DefaultOutputPort}
}

// Data returns the bus device for port 0x60 (one byte).
func (c *Controller) Data() bus.Device { return port{c, false} }

// Command returns the bus device for port 0x64 (one byte).
func (c *Controller) Command() bus.Device { return port{c, true} }

// A20 reports whether the output port enables the A20 gate.
func (c *Controller) A20() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out&OutPortA20 != 0
}

func (c *Controller) status() uint8 {
	s := uint8(StatusINH)
	if c.obf {
		s |= StatusOBF
	}
	if c.cmd&CmdByteSYS != 0 {
		s |= StatusSYS
	}
	if c.a2 {
		s |= StatusA2
	}
	if c.tmo {
		s |= StatusTimeout
	}
	return s
}

func (c *Controller) updateIRQ() {
	l := c.obf && c.cmd&CmdByteKbdInt != 0
	if l != c.line {
		c.line = l
		if c.cfg.IRQ != nil {
			c.cfg.IRQ(l)
		}
	}
}

func (c *Controller) put(v uint8) { c.data, c.obf, c.tmo = v, true, false }

// effects are the callbacks an access leads to, made after unlocking.
type effects struct {
	reset     bool
	a20Change bool
	a20       bool
}

func (c *Controller) setOutputPort(v uint8, fx *effects) {
	old := c.out
	c.out = v &^ OutPortOBF
	if (old^c.out)&OutPortA20 != 0 {
		fx.a20Change, fx.a20 = true, c.out&OutPortA20 != 0
	}
	if c.out&OutPortReset == 0 {
		fx.reset = true
		c.out |= OutPortReset // the line is released once the CPU resets
	}
}

func (c *Controller) command(v uint8, fx *effects) {
	c.next = 0
	switch {
	case v == CmdReadCommandByte:
		c.put(c.cmd)
	case v == CmdWriteCommandByte, v == CmdWriteOutputPort:
		c.next = v
	case v == CmdDisableAux:
		c.cmd |= CmdByteAuxOff
	case v == CmdEnableAux:
		c.cmd &^= CmdByteAuxOff
	case v == CmdAuxInterfaceTest:
		c.put(AuxTestClockHigh)
	case v == CmdSelfTest:
		c.put(SelfTestOK)
	case v == CmdInterfaceTest:
		c.put(0)
	case v == CmdDisableKbd:
		c.cmd |= CmdByteKbdOff
	case v == CmdEnableKbd:
		c.cmd &^= CmdByteKbdOff
	case v == CmdReadOutputPort:
		p := c.out
		if c.obf {
			p |= OutPortOBF
		}
		c.put(p)
	case v >= CmdPulseOutputPort:
		if v&OutPortReset == 0 {
			fx.reset = true // bit 0 low pulses the reset line
		}
	}
}

func (c *Controller) writeData(v uint8, fx *effects) {
	switch c.next {
	case CmdWriteCommandByte:
		c.cmd = v & cmdByteMask
	case CmdWriteOutputPort:
		c.setOutputPort(v, fx)
	default:
		// A byte for the keyboard: nobody is there.
		if c.cmd&CmdByteKbdOff == 0 {
			c.put(NoDevice)
			c.tmo = true
		}
	}
	c.next = 0
}

func (c *Controller) after(fx effects) {
	if fx.a20Change && c.cfg.A20 != nil {
		c.cfg.A20(fx.a20)
	}
	if fx.reset && c.cfg.Reset != nil {
		c.cfg.Reset()
	}
}

type port struct {
	c   *Controller
	cmd bool
}

// ErrAccess reports an access other than one byte at offset 0.
var ErrAccess = errors.New("i8042: access outside the port")

// Read implements bus.Device.
func (p port) Read(offset uint64, data []byte) error {
	if offset != 0 || len(data) != 1 {
		return fmt.Errorf("%w: read of %d bytes at offset %d", ErrAccess, len(data), offset)
	}
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.cmd {
		data[0] = c.status()
		return nil
	}
	data[0] = c.data
	c.obf, c.tmo = false, false
	c.updateIRQ()
	return nil
}

// Write implements bus.Device.
func (p port) Write(offset uint64, data []byte) error {
	if offset != 0 || len(data) != 1 {
		return fmt.Errorf("%w: write of %d bytes at offset %d", ErrAccess, len(data), offset)
	}
	c := p.c
	var fx effects
	c.mu.Lock()
	c.a2 = p.cmd
	if p.cmd {
		c.command(data[0], &fx)
	} else {
		c.writeData(data[0], &fx)
	}
	c.updateIRQ()
	c.mu.Unlock()
	c.after(fx)
	return nil
}

// State is the migratable state of the controller.
type State struct {
	CommandByte    uint8
	OutputPort     uint8
	OutputBuffer   uint8 // last byte placed for port 0x60
	OutputFull     bool
	Timeout        bool
	LastWasCommand bool
	PendingCommand uint8 // 0, or the command awaiting its data byte
	IRQLevel       bool
}

// ErrState reports a state Restore cannot load.
var ErrState = errors.New("i8042: invalid state")

// Save returns the controller's state.
func (c *Controller) Save() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return State{
		CommandByte: c.cmd, OutputPort: c.out, OutputBuffer: c.data, OutputFull: c.obf,
		Timeout: c.tmo, LastWasCommand: c.a2, PendingCommand: c.next, IRQLevel: c.line,
	}
}

// Restore loads a state from Save and sets IRQ 1 to match it. It does
// not call the A20 callback: the owner restores the memory map itself.
func (c *Controller) Restore(s State) error {
	switch {
	case s.CommandByte&^cmdByteMask != 0:
		return fmt.Errorf("%w: command byte %#x", ErrState, s.CommandByte)
	case s.OutputPort&(OutPortReset|OutPortOBF) != OutPortReset:
		return fmt.Errorf("%w: output port %#x", ErrState, s.OutputPort)
	case s.PendingCommand != 0 && s.PendingCommand != CmdWriteCommandByte && s.PendingCommand != CmdWriteOutputPort:
		return fmt.Errorf("%w: pending command %#x", ErrState, s.PendingCommand)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cmd, c.out, c.data, c.obf = s.CommandByte, s.OutputPort, s.OutputBuffer, s.OutputFull
	c.tmo, c.a2, c.next = s.Timeout, s.LastWasCommand, s.PendingCommand
	if c.line != s.IRQLevel {
		c.line = s.IRQLevel
		if c.cfg.IRQ != nil {
			c.cfg.IRQ(c.line)
		}
	}
	c.updateIRQ()
	return nil
}
