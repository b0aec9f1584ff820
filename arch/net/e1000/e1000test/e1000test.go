// Package e1000test is a fake Intel 8254x for testing the e1000 driver in user space: a
// register file with the side effects the driver relies on (reset, EEPROM reads, interrupt
// cause and mask registers, the descriptor ring registers) and the device's DMA into fake
// physical memory (virtiotest.Memory), plus faults: the link going down, transmit descriptors
// that never complete, registers that read all ones. Offsets and bits follow the 8254x SDM
// (Intel 317453), as the driver's do; they are repeated here on purpose, so that a wrong
// constant in the driver does not make the fake agree with it.
package e1000test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/godwit-hv/godwit/arch/virtio/virtiotest"
)

// Registers the fake implements (8254x SDM Table 13-2).
const (
	CTRL   = 0x0000
	STATUS = 0x0008
	EERD   = 0x0014
	ICR    = 0x00C0
	ICS    = 0x00C8
	IMS    = 0x00D0
	IMC    = 0x00D8
	RCTL   = 0x0100
	TCTL   = 0x0400
	RDBAL  = 0x2800
	RDBAH  = 0x2804
	RDLEN  = 0x2808
	RDH    = 0x2810
	RDT    = 0x2818
	TDBAL  = 0x3800
	TDBAH  = 0x3804
	TDLEN  = 0x3808
	TDH    = 0x3810
	TDT    = 0x3818
	MPC    = 0x4010
	RAL0   = 0x5400
	RAH0   = 0x5404
)

// Bits (8254x SDM 13.4 and 3.2.3/3.3.3).
const (
	ctrlRST    = 1 << 26
	statusLU   = 1 << 1
	statusFD   = 1 << 0
	speed1000  = 2 << 6
	eerdStart  = 1 << 0
	eerdDone   = 1 << 4
	ICRTXDW    = 1 << 0
	ICRLSC     = 1 << 2
	ICRRXO     = 1 << 6
	ICRRXT0    = 1 << 7
	rctlEN     = 1 << 1
	rctlSECRC  = 1 << 26
	tctlEN     = 1 << 1
	rahAV      = 1 << 31
	rxDD       = 1 << 0
	rxEOP      = 1 << 1
	txCmdEOP   = 1 << 0
	txCmdRS    = 1 << 3
	txDD       = 1 << 0
	RxErrCE    = 1 << 0
	bufSize    = 2048
	descSize   = 16
	allOnes    = 0xFFFFFFFF
	regsWindow = 128 << 10
)

// ErrNoBuffer: Receive found no descriptor the driver gave the device (counted in MPC).
var ErrNoBuffer = errors.New("e1000test: no receive descriptor available")

// ErrRxOff: Receive while the receiver is disabled.
var ErrRxOff = errors.New("e1000test: receiver disabled")

// IRQ is a fake interrupt line: a count and a wait, as ring0 gives them.
type IRQ struct {
	mu    sync.Mutex
	count uint64
	ch    chan struct{} // closed and replaced on each Raise
}

// NewIRQ returns an IRQ with no interrupts taken.
func NewIRQ() *IRQ { return &IRQ{ch: make(chan struct{})} }

// Raise counts an interrupt and wakes the waiters.
func (q *IRQ) Raise() {
	q.mu.Lock()
	q.count++
	close(q.ch)
	q.ch = make(chan struct{})
	q.mu.Unlock()
}

// Count implements e1000.IRQ.
func (q *IRQ) Count() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.count
}

// Wait implements e1000.IRQ.
func (q *IRQ) Wait(seen uint64, timeout time.Duration) (uint64, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		q.mu.Lock()
		n, ch := q.count, q.ch
		q.mu.Unlock()
		if n > seen {
			return n, nil
		}
		select {
		case <-ch:
		case <-t.C:
			return n, fmt.Errorf("e1000test: no interrupt within %v", timeout)
		}
	}
}

// Device is the fake controller. Its methods are safe for concurrent use.
type Device struct {
	Mem *virtiotest.Memory
	IRQ *IRQ

	mu     sync.Mutex
	regs   map[uint64]uint32
	eeprom [64]uint16
	// NoAutoLoad leaves RAL0/RAH0 clear after a reset (the driver must read the EEPROM).
	NoAutoLoad bool
	// NoEERD makes EERD never report DONE.
	NoEERD bool
	link   bool
	dead   bool
	stall  bool
	sent   [][]byte
	bad    []error
	resets int
}

// New returns a fake with the given station address in its EEPROM, link up, as after power-on.
func New(mem *virtiotest.Memory, mac net.HardwareAddr) *Device {
	d := &Device{Mem: mem, IRQ: NewIRQ(), regs: map[uint64]uint32{}, link: true}
	for i := 0; i < 3; i++ {
		d.eeprom[i] = uint16(mac[2*i]) | uint16(mac[2*i+1])<<8
	}
	d.resetLocked()
	return d
}

func (d *Device) resetLocked() {
	d.regs = map[uint64]uint32{}
	if !d.NoAutoLoad {
		d.regs[RAL0] = uint32(d.eeprom[0]) | uint32(d.eeprom[1])<<16
		d.regs[RAH0] = uint32(d.eeprom[2]) | rahAV
	}
	d.resets++
}

// Resets counts device resets (power-on included).
func (d *Device) Resets() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.resets
}

// Size is the register window's size.
func (d *Device) Size() uint64 { return regsWindow }

// Read32 implements the driver's register access.
func (d *Device) Read32(off uint64) uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dead {
		return allOnes
	}
	switch off {
	case STATUS:
		v := uint32(statusFD | speed1000)
		if d.link {
			v |= statusLU
		}
		return v
	case ICR:
		v := d.regs[ICR]
		d.regs[ICR] = 0
		return v
	case MPC:
		v := d.regs[MPC]
		d.regs[MPC] = 0
		return v
	}
	return d.regs[off]
}

// Write32 implements the driver's register access.
func (d *Device) Write32(off uint64, v uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dead {
		return
	}
	switch off {
	case CTRL:
		if v&ctrlRST != 0 {
			d.resetLocked()
			return
		}
	case EERD:
		if v&eerdStart != 0 && !d.NoEERD {
			addr := (v >> 8) & 0xFF
			var data uint16
			if int(addr) < len(d.eeprom) {
				data = d.eeprom[addr]
			}
			d.regs[EERD] = uint32(data)<<16 | addr<<8 | eerdDone
		}
		return
	case IMS:
		d.regs[IMS] |= v
		d.raiseLocked(0)
		return
	case IMC:
		d.regs[IMS] &^= v
		return
	case ICS:
		d.raiseLocked(v)
		return
	case TDT:
		d.regs[TDT] = v
		d.transmitLocked()
		return
	}
	d.regs[off] = v
}

// raiseLocked sets interrupt causes and interrupts if an unmasked cause is pending.
func (d *Device) raiseLocked(causes uint32) {
	d.regs[ICR] |= causes
	if d.regs[ICR]&d.regs[IMS] != 0 {
		d.IRQ.Raise()
	}
}

func store32(b []byte, v uint32) { atomic.StoreUint32((*uint32)(unsafe.Pointer(&b[0])), v) }

// transmitLocked sends every descriptor from TDH to TDT, as the device does when the tail moves.
func (d *Device) transmitLocked() {
	if d.stall || d.regs[TCTL]&tctlEN == 0 {
		return
	}
	n := d.regs[TDLEN] / descSize
	if n == 0 {
		return
	}
	base := uint64(d.regs[TDBAH])<<32 | uint64(d.regs[TDBAL])
	ring, err := d.Mem.Bytes(base, int(n*descSize))
	if err != nil {
		d.bad = append(d.bad, fmt.Errorf("transmit ring: %w", err))
		return
	}
	var frame []byte
	for d.regs[TDH] != d.regs[TDT] {
		h := d.regs[TDH]
		desc := ring[h*descSize : (h+1)*descSize]
		addr := binary.LittleEndian.Uint64(desc[0:])
		length := binary.LittleEndian.Uint16(desc[8:])
		cmd := desc[11]
		buf, err := d.Mem.Bytes(addr, int(length))
		if err != nil {
			d.bad = append(d.bad, fmt.Errorf("transmit descriptor %d: %w", h, err))
		} else {
			frame = append(frame, buf...)
		}
		if cmd&txCmdEOP != 0 {
			d.sent = append(d.sent, frame)
			frame = nil
		}
		if cmd&txCmdRS != 0 {
			store32(desc[12:], txDD)
		}
		d.regs[TDH] = (h + 1) % n
	}
	d.raiseLocked(ICRTXDW)
}

// Receive puts frame into the next receive descriptors (one per 2048 bytes, the last with
// EOP) with the given errors byte, as the device does when a frame arrives.
func (d *Device) Receive(frame []byte, errs uint8) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dead {
		return errors.New("e1000test: dead")
	}
	if d.regs[RCTL]&rctlEN == 0 {
		return ErrRxOff
	}
	n := d.regs[RDLEN] / descSize
	base := uint64(d.regs[RDBAH])<<32 | uint64(d.regs[RDBAL])
	ring, err := d.Mem.Bytes(base, int(n*descSize))
	if err != nil {
		return fmt.Errorf("receive ring: %w", err)
	}
	pieces := (len(frame) + bufSize - 1) / bufSize
	if pieces == 0 {
		pieces = 1
	}
	free := (d.regs[RDT] + n - d.regs[RDH]) % n
	if uint32(pieces) > free {
		d.regs[MPC]++
		d.raiseLocked(ICRRXO)
		return ErrNoBuffer
	}
	for p := 0; p < pieces; p++ {
		h := d.regs[RDH]
		desc := ring[h*descSize : (h+1)*descSize]
		chunk := frame[p*bufSize : min(len(frame), (p+1)*bufSize)]
		buf, err := d.Mem.Bytes(binary.LittleEndian.Uint64(desc[0:]), len(chunk))
		if err != nil {
			return fmt.Errorf("receive descriptor %d: %w", h, err)
		}
		copy(buf, chunk)
		binary.LittleEndian.PutUint16(desc[8:], uint16(len(chunk)))
		status := uint32(rxDD)
		if p == pieces-1 {
			status |= rxEOP
		}
		store32(desc[12:], status|uint32(errs)<<8)
		d.regs[RDH] = (h + 1) % n
	}
	d.raiseLocked(ICRRXT0)
	return nil
}

// SetLink changes STATUS.LU and raises LSC.
func (d *Device) SetLink(up bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.link = up
	d.raiseLocked(ICRLSC)
}

// Kill makes every register read all ones from now on, as a device that left the bus.
func (d *Device) Kill() {
	d.mu.Lock()
	d.dead = true
	d.mu.Unlock()
}

// StallTX makes the transmitter stop (or resume) consuming descriptors.
func (d *Device) StallTX(on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stall = on
	if !on {
		d.transmitLocked()
	}
}

// Sent returns the frames transmitted so far and forgets them.
func (d *Device) Sent() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.sent
	d.sent = nil
	return s
}

// DMAErrors returns DMA the driver set up outside its memory.
func (d *Device) DMAErrors() []error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]error(nil), d.bad...)
}

// Reg reads a register without side effects.
func (d *Device) Reg(off uint64) uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.regs[off]
}

// RxFree is how many receive descriptors the driver has given the device.
func (d *Device) RxFree() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.regs[RDLEN] / descSize
	if n == 0 {
		return 0
	}
	return int((d.regs[RDT] + n - d.regs[RDH]) % n)
}
