package hv

import (
	"math/bits"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/godwit-hv/godwit/hv/dev/lapic"
)

// Each vCPU has a local APIC (hv/dev/lapic) reached through the xAPIC page at its APIC base and
// the x2APIC MSRs; the LAPICs of a VM form a group that routes IPIs among them, and the I/O
// APIC and MSIs deliver into them. The 8259's INTR reaches the bootstrap processor through its
// LINT0 in virtual-wire mode (or directly while its APIC is disabled).
//
// Multiprocessor start-up follows Intel SDM Vol. 3A, 9.4 "Multiple-Processor (MP)
// Initialization": application processors wait for a start-up IPI after INIT and begin in real
// mode at the page the SIPI vector names.

// cpuLink is what other goroutines (IPI senders, the I/O APIC, the timers) use to reach one
// vCPU: its LAPIC and its wake-up channel.
type cpuLink struct {
	id   int
	apic *lapic.LAPIC
	// wake interrupts the vCPU's wait in HLT or for a SIPI; 1-buffered, so no wake is lost.
	wake chan struct{}
	// waitSIPI is set while the vCPU is in the wait-for-SIPI state (APs from power-on, any
	// vCPU after INIT); sipi holds 0x100|vector of a start-up IPI received in that state.
	waitSIPI atomic.Bool
	sipi     atomic.Uint32
	initReq  atomic.Bool // INIT received while running: go back to wait-for-SIPI
	nmi      atomic.Bool // NMI pending
	// where is what the vCPU is doing (cpuRunning, ...), for `vm cpus`; exits counts its exits.
	where atomic.Int32
	exits atomic.Uint64
}

// What a vCPU is doing.
const (
	cpuRunning  = iota // in the guest or handling an exit
	cpuHalted          // HLT with interrupts enabled: waiting for one
	cpuParked          // HLT with interrupts disabled: waiting for NMI, INIT or the end
	cpuWaitSIPI        // waiting for a start-up IPI
	cpuStopped         // its loop has ended
)

var cpuWhere = [...]string{"running", "halted", "parked (HLT, IF=0)", "waiting for SIPI", "stopped"}

// CPUInfo describes one vCPU for `vm cpus`.
type CPUInfo struct {
	ID        int
	State     string
	Exits     uint64
	APICBase  uint64
	TPR       uint32
	IRR, ISR  int // highest vector pending / in service, -1 for none
	TimerLVT  uint32
	TimerIn   time.Duration // until the APIC timer expires; negative: overdue; 0 with !TimerArmed
	TimerArmd bool
}

func highestVector(r [8]uint32) int {
	for i := 7; i >= 0; i-- {
		if r[i] != 0 {
			return i*32 + 31 - bits.LeadingZeros32(r[i])
		}
	}
	return -1
}

// CPUs describes the VM's vCPUs.
func (vm *VM) CPUs() []CPUInfo {
	vm.mu.Lock()
	plat := vm.plat
	vm.mu.Unlock()
	var out []CPUInfo
	for _, l := range plat.cpus {
		st := l.apic.Save()
		out = append(out, CPUInfo{
			ID: l.id, State: cpuWhere[l.where.Load()], Exits: l.exits.Load(), APICBase: st.APICBase,
			TPR: st.TPR, IRR: highestVector(st.IRR), ISR: highestVector(st.ISR), TimerLVT: st.LVT[0],
			TimerIn: time.Duration(st.TimerRemaining), TimerArmd: st.TimerArmed,
		})
	}
	return out
}

func (l *cpuLink) kick() { signal(l.wake) }

// onSignal handles the LAPIC events that are not vectored interrupts.
func (l *cpuLink) onSignal(s lapic.Signal, vec uint8) {
	switch s {
	case lapic.SignalINIT:
		l.sipi.Store(0)
		l.waitSIPI.Store(true)
		l.initReq.Store(true)
	case lapic.SignalSIPI:
		// A SIPI outside the wait-for-SIPI state is ignored (SDM 9.4.4.1: the second SIPI of
		// the universal start-up algorithm finds the processor already started).
		if l.waitSIPI.Load() {
			l.sipi.Store(0x100 | uint32(vec))
		}
	case lapic.SignalNMI:
		l.nmi.Store(true)
	}
	l.kick()
}

// sipiState is the state a processor starts in after a SIPI with vector vec: real mode at
// vec<<12, as after INIT. Intel SDM Vol. 3A, 10.1.1 Table 10-1 "IA-32 and Intel 64 Processor
// States Following Power-up, Reset, or INIT" and 9.4.4.1.
func sipiState(vec uint8) *CPUState {
	const (
		attrCode = SegP | SegS | 0xB // present code segment, execute/read, accessed
		attrData = SegP | SegS | 0x3 // present data segment, read/write, accessed
		attrTSS  = SegP | 0xB        // busy TSS
		cr0ET    = 1 << 4            // extension type, hard-wired to 1
	)
	data := Segment{Attr: attrData, Limit: 0xFFFF}
	return &CPUState{
		RIP:    0,
		RFLAGS: 2, // bit 1 is reserved and reads as 1
		CR0:    cr0ET,
		CS:     Segment{Selector: uint16(vec) << 8, Base: uint64(vec) << 12, Limit: 0xFFFF, Attr: attrCode},
		DS:     data, ES: data, FS: data, GS: data, SS: data,
		TR:   Segment{Limit: 0xFFFF, Attr: attrTSS},
		LDTR: Segment{Limit: 0xFFFF}, // not present: unusable
		GDTR: Table{Limit: 0xFFFF},
		IDTR: Table{Limit: 0xFFFF},
		DR6:  0xFFFF0FF0,
		DR7:  0x400,
		PAT:  0x0007040600070406, // Intel SDM Vol. 3A, 12.12.4 "Programming the PAT": power-up value
	}
}

// apicMMIO reports whether gpa falls in this vCPU's xAPIC page, and the offset in it.
func (c *vcpu) apicMMIO(gpa uint64) (uint64, bool) {
	base := c.link.apic.APICBase()
	if base&lapic.APICBaseEnable == 0 || base&lapic.APICBaseEXTD != 0 {
		return 0, false
	}
	b := base & lapic.APICBaseAddr
	if gpa < b || gpa >= b+lapic.PageSize {
		return 0, false
	}
	return gpa - b, true
}

// apicAccess performs an access to the xAPIC page and lets the timer goroutine know when the
// guest moved the APIC timer.
func (c *vcpu) apicAccess(off uint64, data []byte, write bool) error {
	a := c.link.apic
	if !write {
		return a.Read(off, data)
	}
	before := timerOf(a)
	err := a.Write(off, data)
	c.afterAPICWrite(before, off == lapic.RegICRLow)
	return err
}

// timerState is a LAPIC timer's deadline and whether it is armed.
type timerState struct {
	ns    int64
	armed bool
}

func timerOf(a *lapic.LAPIC) timerState {
	ns, ok := a.NextDeadline()
	return timerState{ns, ok}
}

// afterAPICWrite tells the timer goroutine when the guest moved its APIC timer, and after an
// IPI gives the host CPU up so the target vCPU runs now: the sender is usually about to spin
// until the target answers (Linux's smp_call_function), and would otherwise hold the CPU until
// the Go scheduler preempts it.
func (c *vcpu) afterAPICWrite(before timerState, ipi bool) {
	if timerOf(c.link.apic) != before {
		signal(c.vm.plat.timerWake)
	}
	if ipi && c.vm.cfg.CPUs > 1 {
		runtime.Gosched()
	}
}

// apicMSR handles the MSRs the LAPIC owns: IA32_APIC_BASE, IA32_TSC_DEADLINE and the x2APIC
// range 0x800-0x8FF (Intel SDM Vol. 3A, 11.12.1.2). handled is false for other MSRs; ok is
// false when the guest must get #GP.
func (c *vcpu) apicMSR(msr uint32, v *uint64, write bool) (handled, ok bool) {
	a := c.link.apic
	switch {
	case msr == lapic.MSRAPICBase:
		if !write {
			*v = a.APICBase()
			return true, true
		}
		return true, a.SetAPICBase(*v) == nil
	case msr == lapic.MSRTSCDeadline, msr >= 0x800 && msr <= 0x8FF:
		if !write {
			r, err := a.ReadMSR(msr)
			*v = r
			return true, err == nil
		}
		before := timerOf(a)
		err := a.WriteMSR(msr, *v)
		c.afterAPICWrite(before, msr == lapic.MSRX2APICICR)
		return true, err == nil
	}
	return false, false
}

// pendingInterrupt returns the vector the vCPU should take next and whether it comes from the
// 8259 (through ExtINT) rather than the LAPIC. It does not acknowledge it.
func (c *vcpu) pendingInterrupt() (vec uint8, fromPIC, ok bool) {
	if v, ok := c.link.apic.PendingVector(); ok {
		return v, false, true
	}
	if c.id == 0 && c.link.apic.AcceptsExtINT() {
		if v, ok := c.vm.plat.pic.Pending(); ok {
			return v, true, true
		}
	}
	return 0, false, false
}
