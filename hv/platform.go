package hv

import (
	"time"

	"github.com/godwit-hv/godwit/hv/bus"
	"github.com/godwit-hv/godwit/hv/dev/i8042"
	"github.com/godwit-hv/godwit/hv/dev/pic"
	"github.com/godwit-hv/godwit/hv/dev/pit"
	"github.com/godwit-hv/godwit/hv/dev/rtc"
)

// The legacy PC platform every VM gets: the 8259 pair, the 8254 PIT, the CMOS RTC and the
// 8042's reset line, wired to each other and to COM1 as on a PC (IRQ 0 timer, 1 keyboard,
// 4 COM1, 8 RTC). A per-VM timer goroutine drives the PIT and RTC from their deadlines; the
// vCPU takes interrupts from the PIC before each entry and sleeps in HLT until one is pending.

// Port ranges. IBM PC/AT Technical Reference, "System I/O Address Map".
const (
	portPIC1    = 0x20
	portPIT     = 0x40
	portKbdData = 0x60
	portNMISC   = 0x61
	portKbdCmd  = 0x64
	portRTC     = 0x70
	portPIC2    = 0xA0
	portELCR    = 0x4D0
	irqTimer    = 0
	irqCOM1     = 4
	irqRTC      = 8
)

type platform struct {
	pic   *pic.PIC
	pit   *pit.PIT
	rtc   *rtc.RTC
	kbd   *i8042.Controller
	clock func() int64
	// wake interrupts the timer goroutine's sleep (a guest reprogrammed a timer) and the
	// vCPU's HLT (an interrupt became pending); both are 1-buffered, so a wake is never lost.
	timerWake chan struct{}
	cpuWake   chan struct{}
}

func newPlatform(b *bus.Bus, onReset func()) (*platform, error) {
	start := time.Now()
	p := &platform{
		clock:     func() int64 { return int64(time.Since(start)) },
		timerWake: make(chan struct{}, 1),
		cpuWake:   make(chan struct{}, 1),
	}
	p.pic = pic.New(pic.Config{INTR: func(level bool) {
		if level {
			signal(p.cpuWake)
		}
	}})
	p.pit = pit.New(pit.Config{Now: p.clock, IRQ: func(level bool) { p.pic.SetIRQ(irqTimer, level) }})
	p.rtc = rtc.New(rtc.Config{Now: p.clock, IRQ: func(level bool) { p.pic.SetIRQ(irqRTC, level) }})
	p.kbd = i8042.New(i8042.Config{Reset: onReset, IRQ: func(level bool) { p.pic.SetIRQ(1, level) }})
	for _, r := range []struct {
		base, size uint64
		name       string
		dev        bus.Device
	}{
		{portPIC1, 2, "pic-master", p.pic.Master()},
		{portPIC2, 2, "pic-slave", p.pic.Slave()},
		{portELCR, 2, "elcr", p.pic.ELCR()},
		{portPIT, 4, "pit", timerPorts{p, p.pit}},
		{portNMISC, 1, "port-61", timerPorts{p, p.pit.NMISC()}},
		{portRTC, 2, "rtc", timerPorts{p, p.rtc}},
		{portKbdData, 1, "i8042-data", p.kbd.Data()},
		{portKbdCmd, 1, "i8042-cmd", p.kbd.Command()},
	} {
		if err := b.Register(bus.PIO, r.base, r.size, r.name, r.dev); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// timerPorts forwards to a timer device and wakes the timer goroutine after guest writes,
// which may move the next deadline.
type timerPorts struct {
	p   *platform
	dev bus.Device
}

func (t timerPorts) Read(off uint64, d []byte) error { return t.dev.Read(off, d) }

func (t timerPorts) Write(off uint64, d []byte) error {
	err := t.dev.Write(off, d)
	signal(t.p.timerWake)
	return err
}

// runTimers fires the PIT and RTC at their deadlines until stop is closed.
func (p *platform) runTimers(stop <-chan struct{}) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		now := p.clock()
		p.pit.Tick(now)
		p.rtc.Tick(now)
		next := int64(-1)
		if d, ok := p.pit.NextDeadline(); ok {
			next = d
		}
		if d, ok := p.rtc.NextDeadline(); ok && (next < 0 || d < next) {
			next = d
		}
		wait := time.Hour
		if next >= 0 {
			wait = time.Duration(max(next-now, 20_000))
		}
		t.Reset(wait)
		select {
		case <-stop:
			return
		case <-t.C:
		case <-p.timerWake:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		}
	}
}
