package hv

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/godwit-hv/godwit/hv/bus"
	"github.com/godwit-hv/godwit/hv/emu"
)

// vcpu runs one virtual CPU: enter the guest, dispatch the exit, repeat. The loop lives on one
// goroutine locked to its OS thread. Host timer interrupts make the guest exit (ExitInterrupt),
// which is where the loop notices a stop request and where the host scheduler time-slices VMs.
type vcpu struct {
	vm      *VM
	id      int
	link    *cpuLink
	kvmTime uint64 // MSR_KVM_SYSTEM_TIME_NEW as written
	hw      BackendVCPU
	st      CPUState
	msrs    msrStore
	emu     emu.Emulator
	regs    emu.Regs
	fault   error // set by Fetch/Read/Write when an emulated access fails
}

// Exceptions the core injects. Intel SDM Vol. 3A, Table 6-1.
const (
	vecUD = 6
	vecGP = 13
)

// action is what an exit handler decided.
type action struct {
	stop   bool
	reason string
	failed bool
}

var cont = action{}

func stopWith(failed bool, format string, args ...any) action {
	return action{stop: true, failed: failed, reason: fmt.Sprintf(format, args...)}
}

// run runs the vCPU until the VM stops: an application processor (or any vCPU after INIT)
// first waits for a start-up IPI, then enters the guest in real mode at the page it names.
func (c *vcpu) run() (string, bool) {
	defer c.link.where.Store(cpuStopped)
	for {
		if c.link.waitSIPI.Load() {
			c.link.where.Store(cpuWaitSIPI)
			vec, stop := c.waitForSIPI()
			c.link.where.Store(cpuRunning)
			if stop {
				return "stopped by the host", false
			}
			if err := c.hw.SetState(sipiState(vec)); err != nil {
				return fmt.Sprintf("vcpu %d: start-up state: %v", c.id, err), true
			}
			c.vm.active.Add(1)
		}
		reason, failed, init := c.loop()
		if !init {
			return reason, failed
		}
		c.vm.active.Add(-1)
	}
}

// waitForSIPI parks the vCPU in the wait-for-SIPI state until a start-up IPI arrives or the VM
// stops.
func (c *vcpu) waitForSIPI() (vec uint8, stop bool) {
	l := c.link
	for {
		if c.vm.stopReq.Load() {
			return 0, true
		}
		if v := l.sipi.Swap(0); v != 0 && l.waitSIPI.Load() {
			l.waitSIPI.Store(false)
			l.initReq.Store(false)
			return uint8(v), false
		}
		<-l.wake
	}
}

// loop enters the guest and handles exits until the VM stops (reason, failed) or the vCPU
// receives INIT (init true).
func (c *vcpu) loop() (reason string, failed, init bool) {
	for {
		if c.vm.stopReq.Load() {
			return "stopped by the host", false, false
		}
		if c.link.initReq.Load() {
			if c.id == 0 {
				// INIT of the bootstrap processor: the machine starts over, as a PC would.
				c.vm.resetReq.Store(true)
				c.vm.requestStop()
				continue
			}
			return "", false, true
		}
		c.vm.plat.tick()
		if act := c.deliverInterrupt(); act.stop {
			return act.reason, act.failed, false
		}
		exit, err := c.hw.Run()
		if err != nil {
			return fmt.Sprintf("vcpu %d: %v", c.id, err), true, false
		}
		c.link.exits.Add(1)
		c.count(exit)
		act := c.handle(exit)
		if act.stop {
			return act.reason, act.failed, false
		}
	}
}

func (c *vcpu) count(e Exit) {
	if int(e.Kind) < len(c.vm.exits) {
		c.vm.exits[e.Kind].Add(1)
	}
	name := e.RawName
	if name == "" {
		name = e.Kind.String()
	}
	if v, ok := c.vm.rawExits.Load(name); ok {
		v.(*atomicCounter).Add(1)
		return
	}
	v, _ := c.vm.rawExits.LoadOrStore(name, new(atomicCounter))
	v.(*atomicCounter).Add(1)
}

// handle dispatches one exit. It is a function of the exit and the VM's state, and is tested
// with made-up exits through a fake backend.
func (c *vcpu) handle(e Exit) action {
	switch e.Kind {
	case ExitInterrupt, ExitInterruptWindow:
		if e.Kind == ExitInterruptWindow {
			c.hw.SetInterruptWindow(false)
		}
		return cont
	case ExitIO:
		return c.withState(func() action { return c.io(e) })
	case ExitMMIO:
		return c.withState(func() action { return c.mmio(e) })
	case ExitCPUID:
		return c.withState(func() action {
			p := CPUIDPolicy{Host: c.vm.cfg.HostCPUID, APICID: uint32(c.id), TSCHz: c.vm.cfg.TSCHz,
				APICTimerHz: APICTimerHz}
			a, b, cx, d := p.Query(uint32(c.st.GPR[RAX]), uint32(c.st.GPR[RCX]))
			c.st.GPR[RAX], c.st.GPR[RBX], c.st.GPR[RCX], c.st.GPR[RDX] = uint64(a), uint64(b), uint64(cx), uint64(d)
			return c.advance(e)
		})
	case ExitRDMSR:
		return c.withState(func() action {
			msr := uint32(c.st.GPR[RCX])
			var v uint64
			handled, ok := c.apicMSR(msr, &v, false)
			if !handled {
				handled, ok = c.kvmMSR(msr, &v, false)
			}
			if !handled {
				v, ok = readMSR(&c.st, &c.msrs, c.vm.cfg.TSC, msr)
			}
			if ok && hardwareMSR(msr) {
				hv, held, err := c.hw.GuestMSR(msr)
				if err != nil {
					return stopWith(true, "reading guest MSR %#x: %v", msr, err)
				}
				if held {
					v = hv
				}
			}
			if !ok {
				return c.inject(Event{Kind: EventException, Vector: vecGP, HasErr: true})
			}
			c.st.GPR[RAX], c.st.GPR[RDX] = v&0xFFFF_FFFF, v>>32
			return c.advance(e)
		})
	case ExitWRMSR:
		return c.withState(func() action {
			v := c.st.GPR[RAX]&0xFFFF_FFFF | c.st.GPR[RDX]<<32
			msr := uint32(c.st.GPR[RCX])
			handled, ok := c.apicMSR(msr, &v, true)
			if !handled {
				handled, ok = c.kvmMSR(msr, &v, true)
			}
			if !handled {
				ok = writeMSR(&c.st, &c.msrs, c.vm.cfg.TSC, msr, v)
			}
			if !ok {
				return c.inject(Event{Kind: EventException, Vector: vecGP, HasErr: true})
			}
			if hardwareMSR(msr) {
				if _, err := c.hw.SetGuestMSR(msr, v); err != nil {
					return stopWith(true, "writing guest MSR %#x: %v", msr, err)
				}
			}
			return c.advance(e)
		})
	case ExitHLT:
		var ifOff bool
		act := c.withState(func() action {
			ifOff = c.st.RFLAGS&RFLAGSIF == 0
			return c.advance(e)
		})
		if act.stop {
			return act
		}
		if ifOff {
			return c.parkHalted()
		}
		c.halt()
		return cont
	case ExitShutdown:
		c.hw.State(&c.st)
		return stopWith(true, "triple fault (shutdown) at RIP %#x", c.st.RIP)
	case ExitHypercall, ExitException:
		if e.Kind == ExitException {
			return c.inject(Event{Kind: EventException, Vector: e.Vector, ErrCode: e.ErrCode, HasErr: e.HasErr})
		}
		return c.inject(Event{Kind: EventException, Vector: vecUD})
	case ExitInvalidState:
		return stopWith(true, "invalid guest state: %s", e.Detail)
	}
	return stopWith(true, "unhandled exit %s (%s %#x) %s", e.Kind, e.RawName, e.Raw, e.Detail)
}

// withState reads the guest state, runs f, and writes the state back if f continues the guest.
func (c *vcpu) withState(f func() action) action {
	if err := c.hw.State(&c.st); err != nil {
		return stopWith(true, "reading guest state: %v", err)
	}
	act := f()
	if act.stop {
		return act
	}
	if err := c.hw.SetState(&c.st); err != nil {
		return stopWith(true, "writing guest state: %v", err)
	}
	return act
}

func (c *vcpu) inject(ev Event) action {
	if err := c.hw.Inject(ev); err != nil {
		return stopWith(true, "injecting vector %d: %v", ev.Vector, err)
	}
	return cont
}

// mode returns the guest's execution mode.
func (c *vcpu) mode() emu.Mode {
	return emu.ModeOf(c.st.CR0&CR0PE != 0, c.st.EFER&EFERLMA != 0, c.st.RFLAGS&RFLAGSVM != 0,
		c.st.CS.Attr&SegL != 0, c.st.CS.Attr&SegDB != 0)
}

// advance moves RIP past the exiting instruction: to NextRIP when the hardware gave it,
// otherwise by decoding the instruction (QEMU TCG's SVM has no next-RIP).
func (c *vcpu) advance(e Exit) action {
	if e.NextRIP != 0 {
		c.st.RIP = e.NextRIP
		return cont
	}
	c.loadRegs()
	c.fault = nil
	if _, err := c.emu.Skip(c.mode(), &c.regs); err != nil {
		return stopWith(true, "decoding the instruction at %#x: %v", c.st.RIP, errors.Join(err, c.fault))
	}
	c.st.RIP = c.regs.RIP
	return cont
}

func (c *vcpu) loadRegs() {
	c.regs.GPR = c.st.GPR
	c.regs.RIP = c.st.RIP
	c.regs.RFLAGS = c.st.RFLAGS
	c.regs.SegBase = [6]uint64{c.st.ES.Base, c.st.CS.Base, c.st.SS.Base, c.st.DS.Base, c.st.FS.Base, c.st.GS.Base}
}

// io completes IN/OUT against the port bus.
func (c *vcpu) io(e Exit) action {
	if e.Str {
		return stopWith(true, "string port I/O (INS/OUTS) to port %#x is not emulated yet", e.Port)
	}
	if e.Size != 1 && e.Size != 2 && e.Size != 4 {
		return stopWith(true, "port I/O of %d bytes", e.Size)
	}
	var buf [4]byte
	data := buf[:e.Size]
	if e.In {
		if err := c.vm.bus.Read(bus.PIO, uint64(e.Port), data); err != nil {
			return stopWith(true, "IN from port %#x: %v", e.Port, err)
		}
		v := uint64(binary.LittleEndian.Uint32(buf[:]))
		switch e.Size {
		case 1:
			c.st.GPR[RAX] = c.st.GPR[RAX]&^0xFF | v&0xFF
		case 2:
			c.st.GPR[RAX] = c.st.GPR[RAX]&^0xFFFF | v&0xFFFF
		case 4:
			c.st.GPR[RAX] = v & 0xFFFF_FFFF // a 32-bit result zero-extends
		}
	} else {
		binary.LittleEndian.PutUint32(buf[:], uint32(c.st.GPR[RAX]))
		if err := c.vm.bus.Write(bus.PIO, uint64(e.Port), data); err != nil {
			return stopWith(true, "OUT to port %#x: %v", e.Port, err)
		}
	}
	act := c.advance(e)
	if act.stop {
		return act
	}
	if c.vm.stopReq.Load() {
		// The debug-exit device asked to stop: finish here so the status is recorded now.
		c.hw.SetState(&c.st)
		return stopWith(false, "guest exit")
	}
	return cont
}

// mmio emulates the instruction that touched an address outside guest RAM, against the MMIO
// bus. A guest touching an address where no device is has a bug or is hostile: the VM stops.
func (c *vcpu) mmio(e Exit) action {
	if e.GPA < c.vm.mem.Size() {
		return stopWith(true, "nested page fault inside guest RAM at %#x (RIP %#x)", e.GPA, c.st.RIP)
	}
	// The vCPU's own xAPIC page is not on the bus; access() routes it to its LAPIC.
	_, isAPIC := c.apicMMIO(e.GPA)
	if _, _, _, onBus := c.vm.bus.Lookup(bus.MMIO, e.GPA); !isAPIC && !onBus {
		return stopWith(true, "guest touched guest-physical %#x, outside its %d MiB of RAM and not a device (RIP %#x)",
			e.GPA, c.vm.mem.Size()>>20, c.st.RIP)
	}
	if e.Fetch {
		return stopWith(true, "guest executes from device memory at %#x", e.GPA)
	}
	c.loadRegs()
	c.fault = nil
	res, err := c.emu.Step(c.mode(), &c.regs)
	if err != nil {
		return stopWith(true, "emulating the access to %#x at RIP %#x: %v", e.GPA, c.st.RIP, errors.Join(err, c.fault))
	}
	_ = res
	c.st.GPR, c.st.RIP, c.st.RFLAGS = c.regs.GPR, c.regs.RIP, c.regs.RFLAGS
	return cont
}

// Fetch implements emu.Fetcher: instruction bytes at a linear address, from guest RAM.
func (c *vcpu) Fetch(linear uint64, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		gpa, err := Translate(c.vm.mem, &c.st, linear+uint64(n))
		if err != nil {
			if n > 0 {
				return n, nil
			}
			c.fault = err
			return 0, err
		}
		b, err := c.vm.mem.Slice(gpa, 1)
		if err != nil {
			if n > 0 {
				return n, nil
			}
			c.fault = err
			return 0, err
		}
		buf[n] = b[0]
		n++
	}
	return n, nil
}

// Read and Write implement emu.Memory: data accesses go to RAM or to an MMIO device.
func (c *vcpu) Read(linear uint64, data []byte) error { return c.access(linear, data, false) }

func (c *vcpu) Write(linear uint64, data []byte) error { return c.access(linear, data, true) }

func (c *vcpu) access(linear uint64, data []byte, write bool) error {
	gpa, err := Translate(c.vm.mem, &c.st, linear)
	if err != nil {
		c.fault = err
		return err
	}
	if last, err2 := Translate(c.vm.mem, &c.st, linear+uint64(len(data))-1); err2 == nil && last != gpa+uint64(len(data))-1 {
		err = fmt.Errorf("access at %#x crosses into a discontiguous page", linear)
		c.fault = err
		return err
	}
	if off, ok := c.apicMMIO(gpa); ok {
		err = c.apicAccess(off, data, write)
	} else if gpa < c.vm.mem.Size() {
		if write {
			_, err = c.vm.mem.WriteAt(data, int64(gpa))
		} else {
			_, err = c.vm.mem.ReadAt(data, int64(gpa))
		}
	} else if write {
		err = c.vm.bus.Write(bus.MMIO, gpa, data)
	} else {
		err = c.vm.bus.Read(bus.MMIO, gpa, data)
	}
	if err != nil {
		c.fault = err
	}
	return err
}

// deliverInterrupt injects a pending NMI or interrupt (LAPIC, or the 8259 through ExtINT) when
// the guest can take it, or asks for an interrupt-window exit when it cannot yet.
func (c *vcpu) deliverInterrupt() action {
	if c.link.nmi.Load() && !c.hw.EventPending() {
		// NMIs are not blocked by IF; a second one while the first is being handled waits in
		// the hardware's NMI blocking, which the backends keep.
		c.link.nmi.Store(false)
		return c.inject(Event{Kind: EventNMI, Vector: 2})
	}
	if _, _, ok := c.pendingInterrupt(); !ok {
		return cont
	}
	if err := c.hw.State(&c.st); err != nil {
		return stopWith(true, "reading guest state: %v", err)
	}
	if c.st.RFLAGS&RFLAGSIF == 0 || c.st.InterruptShadow || c.hw.EventPending() {
		c.hw.SetInterruptWindow(true)
		return cont
	}
	c.hw.SetInterruptWindow(false)
	vec, fromPIC, ok := c.pendingInterrupt()
	if !ok {
		return cont
	}
	if fromPIC {
		vec = c.vm.plat.pic.Ack()
	} else {
		c.link.apic.Ack(vec)
	}
	return c.inject(Event{Kind: EventExternal, Vector: vec})
}

// halt parks the vCPU after HLT (with interrupts enabled) until an interrupt is pending or the
// VM is asked to stop. Interrupt sources and Stop signal the vCPU's wake channel, which holds one
// wake, so one sent between the checks and the wait is not lost.
func (c *vcpu) halt() {
	c.link.where.Store(cpuHalted)
	defer c.link.where.Store(cpuRunning)
	for !c.vm.stopReq.Load() && !c.link.initReq.Load() && !c.link.nmi.Load() {
		if _, _, ok := c.pendingInterrupt(); ok {
			return
		}
		<-c.link.wake
	}
}

// parkHalted handles HLT with interrupts disabled: only an NMI, INIT or a stop can wake the
// vCPU (Intel SDM Vol. 3A, 9.9 "HLT"). Other vCPUs may still run (Linux parks CPUs this way on
// reboot and panic), but when none can make progress any more the VM is over.
func (c *vcpu) parkHalted() action {
	if c.vm.active.Add(-1) <= 0 {
		c.vm.active.Add(1)
		return stopWith(false, "halted with interrupts disabled at %#x", c.st.RIP)
	}
	defer c.vm.active.Add(1)
	c.link.where.Store(cpuParked)
	defer c.link.where.Store(cpuRunning)
	for !c.vm.stopReq.Load() && !c.link.initReq.Load() && !c.link.nmi.Load() {
		<-c.link.wake
	}
	return cont
}
