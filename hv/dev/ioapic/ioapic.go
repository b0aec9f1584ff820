// Package ioapic models the Intel 82093AA I/O APIC ("82093AA I/O Advanced
// Programmable Interrupt Controller (IOAPIC)" datasheet) with 24 input
// pins: the indirect register window at 0xFEC00000 (IOREGSEL/IOWIN, as a
// bus.Device), the redirection table, and edge- and level-triggered pin
// semantics with remote IRR cleared by the local APICs' EOI broadcast.
//
// Interrupt messages leave through a Deliver callback; the package does
// not depend on the local APIC model. Delivery is instantaneous, so the
// delivery status bits always read 0 (idle).
//
// Hot path: Read, Write, SetIRQ and EOI do not allocate. All methods are
// safe for concurrent use (device threads raise pins while vCPUs access
// registers and end interrupts); Deliver is called with no lock held, so
// it may call back into the I/O APIC.
//
// A guest writing garbage cannot make the model panic: accesses that are
// not aligned 32-bit accesses to IOREGSEL or IOWIN are ignored (reads
// return 0), reserved and read-only bits are dropped, and registers that
// do not exist read as 0.
package ioapic

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// DeliverFunc sends an interrupt message to the local APICs: the 8-bit
// destination, its mode (logical or physical), the delivery mode (Fixed,
// LowestPriority, SMI, NMI, INIT, ExtINT), the vector and the trigger mode
// (level true). A level-triggered message must be answered, when the guest
// ends it, by EOI(vector).
type DeliverFunc func(dest uint8, logical bool, mode uint8, vector uint8, level bool)

// IOAPIC is one 82093AA.
type IOAPIC struct {
	mu      sync.Mutex
	deliver DeliverFunc

	id    uint32 // IOAPICID bits 27:24
	arb   uint32 // IOAPICARB bits 27:24
	sel   uint32 // IOREGSEL
	redir [NumPins]uint64
	pin   [NumPins]bool // input levels as driven (before polarity)
}

// New returns an I/O APIC with the given 4-bit ID in its reset state (all
// pins masked) that sends its interrupts to deliver (nil drops them).
func New(id uint8, deliver DeliverFunc) *IOAPIC {
	io := &IOAPIC{deliver: deliver}
	io.id = uint32(id) << IDShift & IDMask
	io.arb = io.id
	for i := range io.redir {
		io.redir[i] = redirReset
	}
	return io
}

// message is one interrupt to send after the lock is dropped.
type message struct {
	dest, mode, vector uint8
	logical, level     bool
}

// outbox holds the messages of one operation; at most one per pin.
type outbox struct {
	n   int
	msg [NumPins]message
}

func (io *IOAPIC) flush(o *outbox) {
	if io.deliver == nil {
		return
	}
	for _, m := range o.msg[:o.n] {
		io.deliver(m.dest, m.logical, m.mode, m.vector, m.level)
	}
}

// active reports whether pin's input is asserted, after polarity.
func (io *IOAPIC) active(pin int) bool {
	return io.pin[pin] != (io.redir[pin]&RedirPolarityLow != 0)
}

// levelTriggered reports whether the entry uses the remote IRR protocol:
// level trigger with fixed or lowest-priority delivery (82093AA 3.2.4: the
// other delivery modes are edge-only).
func levelTriggered(e uint64) bool {
	mode := e & RedirDeliveryMode >> redirDeliveryShift
	return e&RedirLevel != 0 && (mode == Fixed || mode == LowestPriority)
}

// send queues pin's interrupt message, setting remote IRR for a level
// entry.
func (io *IOAPIC) send(pin int, o *outbox) {
	e := io.redir[pin]
	lvl := levelTriggered(e)
	if lvl {
		io.redir[pin] |= RedirRemoteIRR
	}
	o.msg[o.n] = message{
		dest:    uint8(e >> RedirDestShift),
		logical: e&RedirLogical != 0,
		mode:    uint8(e & RedirDeliveryMode >> redirDeliveryShift),
		vector:  uint8(e & RedirVector),
		level:   lvl,
	}
	o.n++
}

// poll sends pin's level interrupt if it is asserted, unmasked and not
// awaiting an EOI.
func (io *IOAPIC) poll(pin int, o *outbox) {
	e := io.redir[pin]
	if levelTriggered(e) && e&(RedirMasked|RedirRemoteIRR) == 0 && io.active(pin) {
		io.send(pin, o)
	}
}

// SetIRQ drives input pin to level (true = high). An edge-triggered entry
// sends its interrupt on the transition to the active level (a masked edge
// is lost); a level-triggered entry sends it while the pin is active,
// once per EOI. Pins out of range are ignored.
func (io *IOAPIC) SetIRQ(pin int, level bool) {
	if pin < 0 || pin >= NumPins {
		return
	}
	var o outbox
	io.mu.Lock()
	was := io.active(pin)
	io.pin[pin] = level
	now := io.active(pin)
	e := io.redir[pin]
	if levelTriggered(e) {
		io.poll(pin, &o)
	} else if now && !was && e&RedirMasked == 0 {
		io.send(pin, &o)
	}
	io.mu.Unlock()
	io.flush(&o)
}

// EOI handles the EOI broadcast of a local APIC for vector: remote IRR
// clears in every level-triggered entry with that vector, and a pin still
// asserted sends its interrupt again. 82093AA datasheet, 3.2.4 (Remote
// IRR).
func (io *IOAPIC) EOI(vector uint8) {
	var o outbox
	io.mu.Lock()
	for pin := range io.redir {
		e := io.redir[pin]
		if e&RedirRemoteIRR != 0 && uint8(e&RedirVector) == vector {
			io.redir[pin] &^= RedirRemoteIRR
			io.poll(pin, &o)
		}
	}
	io.mu.Unlock()
	io.flush(&o)
}

// Read implements bus.Device. Only aligned 32-bit reads of IOREGSEL and
// IOWIN return data; other reads return 0.
func (io *IOAPIC) Read(offset uint64, data []byte) error {
	clear(data)
	if len(data) != 4 || offset != IOREGSEL && offset != IOWIN {
		return nil
	}
	io.mu.Lock()
	v := io.sel
	if offset == IOWIN {
		v = io.readReg(io.sel)
	}
	io.mu.Unlock()
	binary.LittleEndian.PutUint32(data, v)
	return nil
}

// Write implements bus.Device. Only aligned 32-bit writes to IOREGSEL and
// IOWIN take effect.
func (io *IOAPIC) Write(offset uint64, data []byte) error {
	if len(data) != 4 || offset != IOREGSEL && offset != IOWIN {
		return nil
	}
	v := binary.LittleEndian.Uint32(data)
	var o outbox
	io.mu.Lock()
	if offset == IOREGSEL {
		io.sel = v & 0xFF
	} else {
		io.writeReg(io.sel, v, &o)
	}
	io.mu.Unlock()
	io.flush(&o)
	return nil
}

func (io *IOAPIC) readReg(r uint32) uint32 {
	switch {
	case r == IOAPICID:
		return io.id
	case r == IOAPICVER:
		return Version | (NumPins-1)<<MaxRedirShift
	case r == IOAPICARB:
		return io.arb
	case r >= IOREDTBL && r < IOREDTBL+2*NumPins:
		e := io.redir[(r-IOREDTBL)/2]
		if r&1 == 0 {
			return uint32(e)
		}
		return uint32(e >> 32)
	}
	return 0
}

func (io *IOAPIC) writeReg(r, v uint32, o *outbox) {
	switch {
	case r == IOAPICID:
		io.id = v & IDMask
		io.arb = io.id
	case r >= IOREDTBL && r < IOREDTBL+2*NumPins:
		pin := int(r-IOREDTBL) / 2
		e := io.redir[pin]
		var nv uint64
		if r&1 == 0 {
			nv = e&^0xFFFFFFFF | uint64(v)
		} else {
			nv = e&0xFFFFFFFF | uint64(v)<<32
		}
		nv = nv&redirWritable | e&RedirRemoteIRR
		if nv&RedirLevel == 0 {
			nv &^= RedirRemoteIRR // an edge entry has no remote IRR
		}
		io.redir[pin] = nv
		// Unmasking (or switching to level) with the pin asserted sends
		// the interrupt.
		io.poll(pin, o)
	}
	// IOAPICVER, IOAPICARB and unknown registers are read-only.
}

// Entry returns redirection entry pin (0 for a pin out of range).
func (io *IOAPIC) Entry(pin int) uint64 {
	if pin < 0 || pin >= NumPins {
		return 0
	}
	io.mu.Lock()
	defer io.mu.Unlock()
	return io.redir[pin]
}

// State is the migratable state of an I/O APIC.
type State struct {
	ID       uint8 // 4-bit I/O APIC ID
	Arb      uint8 // 4-bit arbitration ID
	RegSel   uint8
	Redir    [NumPins]uint64
	PinLevel [NumPins]bool
}

// Save returns the I/O APIC's state.
func (io *IOAPIC) Save() State {
	io.mu.Lock()
	defer io.mu.Unlock()
	return State{
		ID: uint8(io.id >> IDShift), Arb: uint8(io.arb >> IDShift), RegSel: uint8(io.sel),
		Redir: io.redir, PinLevel: io.pin,
	}
}

// ErrState reports a state Restore cannot load.
var ErrState = errors.New("ioapic: invalid state")

// Restore loads a state from Save. It sends nothing: interrupts in flight
// at Save are in the local APICs' state.
func (io *IOAPIC) Restore(s State) error {
	if s.ID > 0xF || s.Arb > 0xF {
		return fmt.Errorf("%w: ID %#x, arbitration ID %#x", ErrState, s.ID, s.Arb)
	}
	for i, e := range s.Redir {
		if e&^(redirWritable|RedirRemoteIRR) != 0 {
			return fmt.Errorf("%w: redirection entry %d = %#x has reserved bits", ErrState, i, e)
		}
	}
	io.mu.Lock()
	defer io.mu.Unlock()
	io.id, io.arb, io.sel = uint32(s.ID)<<IDShift, uint32(s.Arb)<<IDShift, uint32(s.RegSel)
	io.redir, io.pin = s.Redir, s.PinLevel
	return nil
}
