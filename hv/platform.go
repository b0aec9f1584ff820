package hv

import (
	"time"

	"github.com/godwit-hv/godwit/hv/bus"
	"github.com/godwit-hv/godwit/hv/dev/acpipm"
	"github.com/godwit-hv/godwit/hv/dev/i8042"
	"github.com/godwit-hv/godwit/hv/dev/ioapic"
	"github.com/godwit-hv/godwit/hv/dev/lapic"
	"github.com/godwit-hv/godwit/hv/dev/pci"
	"github.com/godwit-hv/godwit/hv/dev/pic"
	"github.com/godwit-hv/godwit/hv/dev/pit"
	"github.com/godwit-hv/godwit/hv/dev/rtc"
)

// The PC platform every VM gets: the 8259 pair, the 8254 PIT, the CMOS RTC and the 8042's
// reset line, wired to each other and to COM1 as on a PC (IRQ 0 timer, 1 keyboard, 4 COM1,
// 8 RTC, 9 SCI); one local APIC per vCPU and an I/O APIC receiving the same ISA interrupts
// (IRQ 0 on pin 2, the others on their own numbers, as the guest's MADT says) and the PCI
// interrupts on pins 16-23; the ACPI PM1 blocks and PM timer; a PCI host bridge. A per-VM
// timer goroutine drives the PIT, the RTC and the APIC timers from their deadlines; a vCPU
// takes interrupts before each entry and sleeps in HLT until one is pending.

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
	portPCI     = 0xCF8
	irqTimer    = 0
	irqCOM1     = 4
	irqRTC      = 8
	irqSCI      = 9
	gsiTimer    = 2 // ISA IRQ 0 on I/O APIC pin 2: the MADT's interrupt source override
)

// Guest-visible platform constants, which the guest's ACPI tables must state the same way.
const (
	// PM1aEventPort, PM1aControlPort and PMTimerPort are the ACPI fixed-hardware blocks
	// (the ports PIIX4-style chipsets use).
	PM1aEventPort   = 0x600
	PM1aControlPort = 0x604
	PMTimerPort     = 0x608
	// IOAPICID is the I/O APIC's ID register value; IOAPICBase its MMIO address.
	IOAPICID   = 0
	IOAPICBase = 0xFEC00000
	// APICTimerHz is the frequency of the LAPIC timer's input clock.
	APICTimerHz = 1_000_000_000
	// S5SleepType is the SLP_TYP value of the DSDT's \_S5 object: writing it with SLP_EN
	// powers the VM off.
	S5SleepType = 5
	// PCIFirstGSI is the I/O APIC pin of PCI slot 0's INTA#; slot s, pin p (0 = INTA#) is
	// wired to PCIFirstGSI + (s+p)%8, the swizzle a _PRT must describe.
	PCIFirstGSI = 16
)

// PCIGSI returns the I/O APIC pin that slot's interrupt pin (0 = INTA#) is wired to.
func PCIGSI(slot, pin int) int { return PCIFirstGSI + (slot+pin)%8 }

type platform struct {
	pic    *pic.PIC
	pit    *pit.PIT
	rtc    *rtc.RTC
	kbd    *i8042.Controller
	ioapic *ioapic.IOAPIC
	apics  lapic.Group
	cpus   []*cpuLink
	pm     *acpipm.PM
	pci    *pci.Bridge
	clock  func() int64
	// timerWake interrupts the timer goroutine's sleep (a guest reprogrammed a timer); it is
	// 1-buffered, so a wake is never lost.
	timerWake chan struct{}
}

// platformConfig is what the platform needs from its VM.
type platformConfig struct {
	cpus     int
	tsc      func() uint64 // the guest TSC of vCPU 0's offset (they are all the same)
	tscHz    uint64
	onReset  func() // the 8042 pulsed the reset line
	onPowOff func() // the guest entered S5
}

func newPlatform(b *bus.Bus, cfg platformConfig) (*platform, error) {
	start := time.Now()
	p := &platform{
		clock:     func() int64 { return int64(time.Since(start)) },
		timerWake: make(chan struct{}, 1),
	}
	for i := range cfg.cpus {
		l := &cpuLink{id: i, wake: make(chan struct{}, 1)}
		l.apic = lapic.New(lapic.Config{
			ID: uint32(i), BSP: i == 0, Clock: p.clock, TimerHz: APICTimerHz,
			TSCHz: cfg.tscHz, TSC: cfg.tsc, Router: &p.apics,
			EOI:    func(vec uint8) { p.ioapic.EOI(vec) },
			Signal: l.onSignal,
			Kick:   l.kick,
		})
		if i == 0 {
			l.apic.SetVirtualWire() // as PC firmware leaves the BSP
		} else {
			l.waitSIPI.Store(true) // APs wait for INIT-SIPI-SIPI from power-on
		}
		p.apics.Add(l.apic)
		p.cpus = append(p.cpus, l)
	}
	p.ioapic = ioapic.New(IOAPICID, func(dest uint8, logical bool, mode uint8, vector uint8, level bool) {
		p.apics.Route(nil, lapic.Message{Vector: vector, Mode: lapic.DeliveryMode(mode), Logical: logical,
			Dest: uint32(dest), Assert: true, Level: level})
	})
	// PCI interrupt lines are active-low with pull-ups: idle, they read high.
	for gsi := PCIFirstGSI; gsi < PCIFirstGSI+8; gsi++ {
		p.ioapic.SetIRQ(gsi, true)
	}
	p.pic = pic.New(pic.Config{INTR: func(level bool) {
		p.cpus[0].apic.SetLINT(0, level)
		if level {
			p.cpus[0].kick()
		}
	}})
	p.pit = pit.New(pit.Config{Now: p.clock, IRQ: func(level bool) { p.isaIRQ(irqTimer, level) }})
	p.rtc = rtc.New(rtc.Config{Now: p.clock, IRQ: func(level bool) { p.isaIRQ(irqRTC, level) }})
	p.kbd = i8042.New(i8042.Config{Reset: cfg.onReset, IRQ: func(level bool) { p.isaIRQ(1, level) }})
	pm, err := acpipm.New(acpipm.Config{
		Clock: p.clock,
		SCI:   func(level bool) { p.isaIRQ(irqSCI, level) },
		Sleep: func(typ uint8) {
			if typ == S5SleepType {
				cfg.onPowOff()
			}
		},
	})
	if err != nil {
		return nil, err
	}
	p.pm = pm
	if p.pci, err = pci.NewBridge(pci.BridgeConfig{}); err != nil {
		return nil, err
	}
	if err := b.Register(bus.MMIO, IOAPICBase, ioapic.Size, "ioapic", p.ioapic); err != nil {
		return nil, err
	}
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
		{PM1aEventPort, acpipm.EventLen, "pm1a-evt", p.pm.Event()},
		{PM1aControlPort, acpipm.ControlLen, "pm1a-cnt", p.pm.Control()},
		{PMTimerPort, acpipm.TimerLen, "pm-tmr", p.pm.Timer()},
		{portPCI, pci.PortRange, "pci", p.pci},
	} {
		if err := b.Register(bus.PIO, r.base, r.size, r.name, r.dev); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// isaIRQ drives an ISA interrupt line, which reaches both the 8259 and the I/O APIC.
func (p *platform) isaIRQ(irq int, level bool) {
	p.pic.SetIRQ(irq, level)
	gsi := irq
	if irq == irqTimer {
		gsi = gsiTimer
	}
	p.ioapic.SetIRQ(gsi, level)
}

// pciIRQ drives the INTx# line of a PCI slot; PCI interrupts are active-low and level-triggered
// (PCI Local Bus Specification 3.0, 2.2.6), so an asserted line is a low pin.
func (p *platform) pciIRQ(slot, pin int, asserted bool) {
	p.ioapic.SetIRQ(PCIGSI(slot, pin), !asserted)
}

// wakeAll wakes every vCPU (a stop request).
func (p *platform) wakeAll() {
	for _, l := range p.cpus {
		l.kick()
	}
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

// tick fires the timers whose deadlines have passed. The timer goroutine calls it when its
// host timer expires; each vCPU also calls it before entering the guest, because the timer
// goroutine only runs when a vCPU goroutine gives up the Go scheduler's processor, while every
// host interrupt makes the guest exit at once.
func (p *platform) tick() {
	now := p.clock()
	p.pit.Tick(now)
	p.rtc.Tick(now)
	for _, l := range p.cpus {
		l.apic.Tick(now)
	}
}

// runTimers fires the PIT, the RTC and the APIC timers at their deadlines until stop is
// closed.
func (p *platform) runTimers(stop <-chan struct{}) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		p.tick()
		now := p.clock()
		next := int64(-1)
		if d, ok := p.pit.NextDeadline(); ok {
			next = d
		}
		if d, ok := p.rtc.NextDeadline(); ok && (next < 0 || d < next) {
			next = d
		}
		for _, l := range p.cpus {
			if d, ok := l.apic.NextDeadline(); ok && (next < 0 || d < next) {
				next = d
			}
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
