// Package uart models a 16550A UART as a guest device: the serial console
// the guest sees at COM1.
//
// The model keeps the programming interface of the PC16550D (registers,
// divisor latch, 16-byte FIFOs, interrupt priorities, loopback) but not its
// timing: transmission completes at once (the byte goes to the sink during
// the THR write, so THRE and TEMT always read as 1), and "four character
// times" of line silence pass as soon as a burst of input has been
// delivered, so a character-timeout interrupt is pending whenever the
// receiver FIFO holds fewer bytes than the trigger level. The divisor and
// line settings are stored for the guest but change nothing.
//
// Hot path: Read and Write are port I/O exits; they do not allocate (the
// sink's Write may). All methods are safe for concurrent use: the vCPU
// goroutine accesses registers while a host goroutine feeds input.
package uart

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// Config wires the UART to the host.
type Config struct {
	// Out receives the bytes the guest transmits. It is called with the
	// UART locked and should not block for long. Nil discards output.
	Out io.Writer
	// IRQ is called with the new level whenever the interrupt output
	// changes. It is called with the UART locked and must not call back
	// into it. Nil means no interrupt line.
	IRQ func(level bool)
	// GateIRQWithOUT2 models the PC wiring where MCR OUT2 enables the
	// UART's interrupt line to the PIC; when false (as in QEMU) the line
	// follows the interrupt state alone.
	GateIRQWithOUT2 bool
	// ModemStatus is the initial state of the modem input lines (MSR bits
	// 7:4) outside loopback. Zero means DCD, DSR and CTS asserted.
	ModemStatus uint8
}

// UART is one 16550A.
type UART struct {
	mu  sync.Mutex
	cfg Config

	ier, lcr, mcr, fcr, scr, dll, dlm uint8
	lsrErr                            uint8 // latched LSR error bits
	msr                               uint8 // lines (7:4) and deltas (3:0)
	extModem                          uint8 // modem inputs from outside, bits 7:4
	thrIPending                       bool  // THR-empty interrupt latched

	rx     [FIFOSize]byte
	rxHead int
	rxLen  int

	line bool
	tx   [1]byte
}

// New returns a UART in its reset state.
func New(cfg Config) *UART {
	u := &UART{cfg: cfg}
	u.extModem = cfg.ModemStatus & msrLines
	if u.extModem == 0 {
		u.extModem = MSRDCD | MSRDSR | MSRCTS
	}
	u.msr = u.extModem
	return u
}

// Read implements bus.Device. Wider accesses are split into byte accesses
// to consecutive registers, as on the ISA bus.
func (u *UART) Read(offset uint64, data []byte) error {
	if offset+uint64(len(data)) > NumRegs {
		return fmt.Errorf("uart: read of %d bytes at offset %d", len(data), offset)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for i := range data {
		data[i] = u.readReg(int(offset) + i)
	}
	u.updateIRQ()
	return nil
}

// Write implements bus.Device. Wider accesses are split into byte
// accesses. An error from the output sink is returned after the access is
// complete (the byte counts as transmitted).
func (u *UART) Write(offset uint64, data []byte) error {
	if offset+uint64(len(data)) > NumRegs {
		return fmt.Errorf("uart: write of %d bytes at offset %d", len(data), offset)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	var err error
	for i, v := range data {
		if werr := u.writeReg(int(offset)+i, v); werr != nil && err == nil {
			err = werr
		}
	}
	u.updateIRQ()
	return err
}

func (u *UART) fifo() bool { return u.fcr&FCREnable != 0 }

func (u *UART) rxCap() int {
	if u.fifo() {
		return FIFOSize
	}
	return 1
}

func (u *UART) trigger() int {
	if !u.fifo() {
		return 1
	}
	return rxTrigger[(u.fcr&FCRTrigMask)>>FCRTrigShift]
}

func (u *UART) lsr() uint8 {
	v := u.lsrErr | LSRTHRE | LSRTEMT
	if u.rxLen > 0 {
		v |= LSRDataReady
	}
	return v
}

// pending returns the IIR interrupt identification (bits 3:0) of the
// highest-priority interrupt pending, or IIRNoInt.
func (u *UART) pending() uint8 {
	switch {
	case u.ier&IERLineStatus != 0 && u.lsrErr != 0:
		return IIRLineStatus
	case u.ier&IERRxData != 0 && u.rxLen > 0:
		if u.rxLen >= u.trigger() {
			return IIRRxData
		}
		return IIRTimeout
	case u.ier&IERTHRE != 0 && u.thrIPending:
		return IIRTHRE
	case u.ier&IERModem != 0 && u.msr&msrDeltas != 0:
		return IIRModem
	}
	return IIRNoInt
}

func (u *UART) updateIRQ() {
	level := u.pending() != IIRNoInt
	if u.cfg.GateIRQWithOUT2 && u.mcr&MCROUT2 == 0 {
		level = false
	}
	if level != u.line {
		u.line = level
		if u.cfg.IRQ != nil {
			u.cfg.IRQ(level)
		}
	}
}

func (u *UART) readReg(r int) uint8 {
	dlab := u.lcr&LCRDLAB != 0
	switch r {
	case RBR:
		if dlab {
			return u.dll
		}
		if u.rxLen == 0 {
			return 0
		}
		v := u.rx[u.rxHead]
		u.rxHead = (u.rxHead + 1) % FIFOSize
		u.rxLen--
		return v
	case IER:
		if dlab {
			return u.dlm
		}
		return u.ier
	case IIR:
		id := u.pending()
		if id == IIRTHRE {
			// Reading IIR while it reports THRE clears that source
			// (datasheet Table IV).
			u.thrIPending = false
		}
		if u.fifo() {
			id |= IIRFIFOs
		}
		return id
	case LCR:
		return u.lcr
	case MCR:
		return u.mcr
	case LSR:
		v := u.lsr()
		u.lsrErr = 0 // reading LSR clears the error bits
		return v
	case MSR:
		v := u.msr
		u.msr &^= msrDeltas // reading MSR clears the deltas
		return v
	case SCR:
		return u.scr
	}
	return 0xff
}

func (u *UART) writeReg(r int, v uint8) error {
	dlab := u.lcr&LCRDLAB != 0
	switch r {
	case THR:
		if dlab {
			u.dll = v
			return nil
		}
		return u.transmit(v)
	case IER:
		if dlab {
			u.dlm = v
			return nil
		}
		if v&IERTHRE != 0 && u.ier&IERTHRE == 0 {
			// Enabling the THRE interrupt while the holding register is
			// empty raises it at once, as on the 16550A.
			u.thrIPending = true
		}
		u.ier = v & ierMask
	case FCR:
		if (v^u.fcr)&FCREnable != 0 {
			u.rxHead, u.rxLen = 0, 0 // changing FCR0 clears both FIFOs
		}
		if v&FCREnable == 0 {
			u.fcr = 0 // other bits are only written together with FCR0
			return nil
		}
		if v&FCRRxReset != 0 {
			u.rxHead, u.rxLen = 0, 0
		}
		u.fcr = v & (FCREnable | FCRDMAMode | FCRTrigMask)
	case LCR:
		u.lcr = v
	case MCR:
		u.mcr = v & mcrMask
		u.setModemLines(u.modemInputs())
	case LSR, MSR:
		// Read-only on the 16550A (factory test registers); ignored.
	case SCR:
		u.scr = v
	}
	return nil
}

// transmit handles a THR write: the holding register empties at once.
func (u *UART) transmit(v uint8) error {
	// The write clears THRE; lower the line so an edge-triggered PIC sees
	// the next THRE interrupt as a new edge.
	u.thrIPending = false
	u.updateIRQ()
	var err error
	if u.mcr&MCRLoop != 0 {
		u.push(v)
	} else if u.cfg.Out != nil {
		u.tx[0] = v
		if _, werr := u.cfg.Out.Write(u.tx[:]); werr != nil {
			err = fmt.Errorf("uart: output: %w", werr)
		}
	}
	u.thrIPending = true
	return err
}

// push puts a byte in the receiver FIFO; a full FIFO is an overrun and the
// byte is lost (datasheet 8.4, OE).
func (u *UART) push(v uint8) bool {
	if u.rxLen >= u.rxCap() {
		u.lsrErr |= LSROverrun
		return false
	}
	u.rx[(u.rxHead+u.rxLen)%FIFOSize] = v
	u.rxLen++
	return true
}

// modemInputs returns the modem input lines: from MCR in loopback,
// else from outside.
func (u *UART) modemInputs() uint8 {
	if u.mcr&MCRLoop == 0 {
		return u.extModem
	}
	var in uint8
	if u.mcr&MCRRTS != 0 {
		in |= MSRCTS
	}
	if u.mcr&MCRDTR != 0 {
		in |= MSRDSR
	}
	if u.mcr&MCROUT1 != 0 {
		in |= MSRRI
	}
	if u.mcr&MCROUT2 != 0 {
		in |= MSRDCD
	}
	return in
}

// setModemLines updates MSR bits 7:4 and latches the deltas.
func (u *UART) setModemLines(in uint8) {
	old := u.msr & msrLines
	ch := old ^ in
	d := u.msr & msrDeltas
	if ch&MSRCTS != 0 {
		d |= MSRDeltaCTS
	}
	if ch&MSRDSR != 0 {
		d |= MSRDeltaDSR
	}
	if old&MSRRI != 0 && in&MSRRI == 0 {
		d |= MSRTERI
	}
	if ch&MSRDCD != 0 {
		d |= MSRDeltaDCD
	}
	u.msr = in | d
}

// Receive delivers bytes from the host to the receiver. It accepts as many
// as fit in the receiver (16 bytes with FIFOs on, 1 without) and returns
// how many; the caller keeps the rest and retries after the guest has read
// (RxSpace tells when). In loopback the receiver is disconnected from the
// line and nothing is accepted.
func (u *UART) Receive(p []byte) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.mcr&MCRLoop != 0 {
		return 0
	}
	n := 0
	for _, v := range p {
		if u.rxLen >= u.rxCap() {
			break
		}
		u.push(v)
		n++
	}
	u.updateIRQ()
	return n
}

// RxSpace returns how many bytes Receive would accept now.
func (u *UART) RxSpace() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.mcr&MCRLoop != 0 {
		return 0
	}
	return u.rxCap() - u.rxLen
}

// SetModemStatus sets the modem input lines (MSR bits 7:4: CTS, DSR, RI,
// DCD) as driven from outside; changes set the MSR delta bits.
func (u *UART) SetModemStatus(lines uint8) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.extModem = lines & msrLines
	if u.mcr&MCRLoop == 0 {
		u.setModemLines(u.extModem)
	}
	u.updateIRQ()
}

// IRQLevel returns the current level of the interrupt output.
func (u *UART) IRQLevel() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.line
}

// State is the migratable state of a UART: all registers and the receiver
// FIFO's contents.
type State struct {
	IER, LCR, MCR, FCR, SCR, DLL, DLM uint8
	LSRErrors                         uint8 // latched OE/PE/FE/BI
	MSR                               uint8 // lines and latched deltas
	ExternalModem                     uint8 // modem inputs from outside
	THRInterrupt                      bool  // THR-empty interrupt latched
	RxFIFO                            []byte
}

// Save returns a copy of the UART's state.
func (u *UART) Save() State {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := State{
		IER: u.ier, LCR: u.lcr, MCR: u.mcr, FCR: u.fcr, SCR: u.scr, DLL: u.dll, DLM: u.dlm,
		LSRErrors: u.lsrErr, MSR: u.msr, ExternalModem: u.extModem, THRInterrupt: u.thrIPending,
		RxFIFO: make([]byte, u.rxLen),
	}
	for i := range s.RxFIFO {
		s.RxFIFO[i] = u.rx[(u.rxHead+i)%FIFOSize]
	}
	return s
}

// ErrState reports a state Restore cannot load.
var ErrState = errors.New("uart: invalid state")

// Restore loads a state from Save (possibly on another host) and sets the
// interrupt line to match it.
func (u *UART) Restore(s State) error {
	capacity := 1
	if s.FCR&FCREnable != 0 {
		capacity = FIFOSize
	}
	switch {
	case len(s.RxFIFO) > capacity:
		return fmt.Errorf("%w: %d bytes in a %d-byte receiver", ErrState, len(s.RxFIFO), capacity)
	case s.IER&^ierMask != 0, s.MCR&^mcrMask != 0, s.LSRErrors&^lsrErrors != 0,
		s.FCR&^(FCREnable|FCRDMAMode|FCRTrigMask) != 0, s.ExternalModem&^msrLines != 0:
		return fmt.Errorf("%w: reserved bits set: %+v", ErrState, s)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.ier, u.lcr, u.mcr, u.fcr, u.scr, u.dll, u.dlm = s.IER, s.LCR, s.MCR, s.FCR, s.SCR, s.DLL, s.DLM
	u.lsrErr, u.msr, u.extModem, u.thrIPending = s.LSRErrors, s.MSR, s.ExternalModem, s.THRInterrupt
	u.rxHead = 0
	u.rxLen = copy(u.rx[:], s.RxFIFO)
	u.updateIRQ()
	return nil
}
