package ring0

import "github.com/godwit-hv/godwit/arch/x86"

// COM1, the console. PC16550D datasheet, "Register Addressing"/Table II; the usual PC port
// and IRQ assignment.
const (
	com1     = 0x3F8
	com1IRQ  = 4
	uartRBR  = 0 // receive buffer (read, DLAB=0)
	uartTHR  = 0 // transmit holding (write, DLAB=0)
	uartIER  = 1 // interrupt enable (DLAB=0)
	uartDLL  = 0 // divisor latch low (DLAB=1)
	uartDLM  = 1 // divisor latch high (DLAB=1)
	uartFCR  = 2 // FIFO control (write)
	uartLCR  = 3 // line control
	uartMCR  = 4 // modem control
	uartLSR  = 5 // line status
	ierRDA   = 0x01
	lcr8N1   = 0x03
	lcrDLAB  = 0x80
	fcrOn    = 0x07 // enable, clear both FIFOs, 1-byte trigger (Bochs 2.7 reads stray NULs at higher triggers)
	mcrDTR   = 0x01
	mcrRTS   = 0x02
	mcrOUT2  = 0x08 // gates the IRQ line on PC boards
	lsrDR    = 0x01
	lsrTHRE  = 0x20
	lsrTEMT  = 0x40 // transmitter empty: holding and shift registers
	rxBufLen = 4096
)

// The receive ring, filled by the COM1 interrupt and drained by read(0).
var (
	rxBuf        [rxBufLen]byte
	rxHead       uint64 // next byte to read
	rxTail       uint64 // next free slot
	rxDropped    uint64
	uartPresent  bool
	consoleBytes uint64 // bytes written to the console
)

// uartInit sets COM1 to 115200 8N1 with FIFOs, interrupts off until irqInit enables them.
func uartInit() {
	x86.Outb(com1+uartIER, 0)
	x86.Outb(com1+uartLCR, lcrDLAB)
	x86.Outb(com1+uartDLL, 1) // 115200 baud: divisor 1 of the 1.8432 MHz / 16 clock
	x86.Outb(com1+uartDLM, 0)
	x86.Outb(com1+uartLCR, lcr8N1)
	x86.Outb(com1+uartFCR, fcrOn)
	x86.Outb(com1+uartMCR, mcrDTR|mcrRTS|mcrOUT2)
	// A missing UART reads as 0xFF everywhere.
	uartPresent = x86.Inb(com1+uartLSR) != 0xFF
}

// uartEnableRX turns on the received-data interrupt.
func uartEnableRX() { x86.Outb(com1+uartIER, ierRDA) }

func uartPutc(c byte) {
	if !uartPresent {
		return
	}
	for i := 0; i < 1_000_000 && x86.Inb(com1+uartLSR)&lsrTHRE == 0; i++ {
		x86.Pause()
	}
	x86.Outb(com1+uartTHR, c)
}

// uartFlush waits until the last byte has left the UART, so that a shutdown right after a
// message does not cut it off (Bochs stops at once).
func uartFlush() {
	for i := 0; uartPresent && i < 1_000_000 && x86.Inb(com1+uartLSR)&lsrTEMT == 0; i++ {
		x86.Pause()
	}
}

// consoleWrite writes p, turning "\n" into "\r\n" as a terminal's output processing would.
func consoleWrite(p []byte) {
	for _, c := range p {
		if c == '\n' {
			uartPutc('\r')
		}
		uartPutc(c)
	}
	consoleBytes += uint64(len(p))
}

// uartIRQ drains the receive FIFO into rxBuf.
func uartIRQ() {
	for i := 0; i < 64 && x86.Inb(com1+uartLSR)&lsrDR != 0; i++ {
		c := x86.Inb(com1 + uartRBR)
		if rxTail-rxHead >= rxBufLen {
			rxDropped++
			continue
		}
		rxBuf[rxTail%rxBufLen] = c
		rxTail++
	}
}

// kputs and friends print from the layer itself (boot messages, fatal reports).
func kputs(s string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			uartPutc('\r')
		}
		uartPutc(s[i])
	}
}

func kputhex(v uint64) {
	kputs("0x")
	started := false
	for sh := 60; sh >= 0; sh -= 4 {
		d := (v >> uint(sh)) & 0xF
		if d != 0 || started || sh == 0 {
			started = true
			uartPutc("0123456789abcdef"[d])
		}
	}
}

func kputdec(v uint64) {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		uartPutc(b[i])
	}
}
