package ring0

import "github.com/godwit-hv/godwit/arch/x86"

var (
	inTrap     bool
	trapCount  [257]uint64
	pageFaults uint64
	idleNs     int64
	idleSince  int64
	yieldNow   bool
)

// trap is called by trapCommon for every interrupt, exception and system call, with interrupts
// disabled, on the kernel stack. It saves the interrupted context into the current thread,
// handles the event, picks the thread to resume and leaves that thread's context in *tf.
func trap(tf *TrapFrame) {
	if inTrap {
		fatalFrame("fault inside the ring-0 layer", tf)
	}
	inTrap = true
	vec := tf.Vector
	if vec == vecNMI || vec == vecMachineCheck || vec == vecDoubleFault {
		fatalFrame("unrecoverable exception", tf)
	}
	t := &threads[cur]
	t.regs = *tf
	if vec <= vecSyscall {
		trapCount[vec]++
	}
	now := nanotime()
	if cur == 0 && idleSince != 0 {
		idleNs += now - idleSince
		idleSince = 0
	}
	resched := false
	switch {
	case vec == vecSyscall:
		doSyscall(t)
		now = nanotime()
	case vec == vecTimer:
		timerIRQs++
		lapicEOIWrite()
		resched = true
	case vec == vecCOM1:
		uartIRQ()
		lapicEOIWrite()
		wakeConsoleReaders()
	case vec >= vecDriverFirst && vec <= vecDriverLast && irqLines[vec].allocated:
		driverIRQ(int(vec)) // irq.go: counts, masks a level pin, EOI, wakes waiters
	case vec == vecSpurious || vec >= vecPICBase:
		// Spurious: no EOI. Intel SDM Vol. 3A, 11.9 "Spurious Interrupt".
	case vec < 32:
		exception(t, tf)
	default:
		lapicEOIWrite()
	}
	wakeExpired(now)

	next := cur
	if threads[cur].state != tRunnable || cur == 0 {
		next = pickNext()
	} else if (yieldNow || resched && now-sliceStart >= timeslice) && runnableOther() {
		next = pickNext()
	}
	yieldNow = false
	switchTo(next, now)
	n := &threads[cur]
	if n.pending&^n.sigmask != 0 && cur != 0 {
		deliverSignal(n)
	}
	*tf = n.regs
	curFX = fxAddr(cur)
	curFS = n.fsbase
	if cur == 0 {
		idleSince = now
	}
	// Next timer: the earliest timed wait, or the end of the slice if others are waiting to run.
	wake := nextDeadline()
	if cur != 0 && runnableOther() {
		if end := sliceStart + timeslice; wake == 0 || end < wake {
			wake = end
		}
	}
	if wake != 0 {
		armTimer(max(wake-now, 10_000))
	} else {
		armTimer(0)
	}
	inTrap = false
}

// Exception names. Intel SDM Vol. 3A, Table 6-1 "Protected-Mode Exceptions and Interrupts".
var excNames = [32]string{
	"#DE divide error", "#DB debug", "NMI", "#BP breakpoint", "#OF overflow", "#BR bound range",
	"#UD invalid opcode", "#NM device not available", "#DF double fault", "coprocessor overrun",
	"#TS invalid TSS", "#NP segment not present", "#SS stack fault", "#GP general protection",
	"#PF page fault", "reserved 15", "#MF x87 error", "#AC alignment check", "#MC machine check",
	"#XM SIMD exception", "#VE virtualization", "#CP control protection", "reserved 22",
	"reserved 23", "reserved 24", "reserved 25", "reserved 26", "reserved 27", "#HV", "#VC", "#SX",
	"reserved 31",
}

// Linux signal numbers and codes (include/uapi/asm-generic/signal.h, siginfo.h).
const (
	sigILL      = 4
	sigTRAP     = 5
	sigBUS      = 7
	sigFPE      = 8
	sigKILL     = 9
	sigSEGV     = 11
	sigURG      = 23
	segvMapErr  = 1
	segvAccErr  = 2
	fpeIntDiv   = 1
	illIllOpn   = 2
	trapBrkpt   = 1
	siKernel    = 0x80
	siTkill     = -6
	pfPresent   = 1 << 0 // page-fault error code bits: Intel SDM Vol. 3A, 4.7 "Page-Fault Exceptions"
	pfWrite     = 1 << 1
	pfFetch     = 1 << 4
	userSpaceHi = 0x0000_8000_0000_0000
)

// exception handles a CPU exception raised by Go code (the layer's own faults never get here:
// trap reports them as fatal). Demand paging is resolved in place; everything else becomes the
// signal Linux would send, which the Go runtime turns into a panic or a crash report.
func exception(t *thread, tf *TrapFrame) {
	vec := tf.Vector
	switch vec {
	case vecPageFault:
		addr := x86.ReadCR2()
		pageFaults++
		if demandPage(addr, tf.Err) {
			return
		}
		code := int32(segvMapErr)
		if tf.Err&pfPresent != 0 {
			code = segvAccErr
		}
		raiseFault(t, tf, sigSEGV, code, addr)
	case vecDivide:
		raiseFault(t, tf, sigFPE, fpeIntDiv, tf.IP)
	case vecInvalidOp:
		raiseFault(t, tf, sigILL, illIllOpn, tf.IP)
	case vecBreakpoint, vecDebug:
		raiseFault(t, tf, sigTRAP, trapBrkpt, tf.IP)
	case vecX87, vecSIMD:
		raiseFault(t, tf, sigFPE, 0, tf.IP)
	case vecGP, 12: // #GP, #SS: Linux reports SIGSEGV, SI_KERNEL, address 0
		raiseFault(t, tf, sigSEGV, siKernel, 0)
	default:
		fatalFrame("unexpected exception", tf)
	}
}

// demandPage backs a page of an mmap region on first touch.
func demandPage(addr, errCode uint64) bool {
	if addr < identEnd || addr >= userSpaceHi {
		return false
	}
	v, ok := space.find(addr)
	if !ok || v.prot&(protRead|protWrite|protExec) == 0 || v.prot&protReserved != 0 {
		return false
	}
	if errCode&pfWrite != 0 && v.prot&protWrite == 0 {
		return false
	}
	if errCode&pfPresent != 0 {
		// Present but not writable while the region is: make it writable (after mprotect).
		if v.prot&protWrite != 0 {
			protectRange(addr, addr+1, true)
			return true
		}
		return false
	}
	if !mapFresh(addr&^(pageSize-1), v.prot&protWrite != 0) {
		fatalFrame("out of physical memory", nil)
	}
	return true
}

// raiseFault queues a synchronous signal for t; if t cannot take it (blocked, or the runtime
// installed no handler), Linux would kill the process: report and stop.
func raiseFault(t *thread, tf *TrapFrame, sig int, code int32, addr uint64) {
	h := &sigactions[sig]
	if h.handler <= 1 || t.sigmask&(1<<(sig-1)) != 0 {
		kputs("\ngodwit: fatal: ")
		kputs(excNames[tf.Vector&31])
		kputs(" with no handler to take signal ")
		kputdec(uint64(sig))
		kputs("\n")
		fatalFrame("unhandled fault", tf)
	}
	t.pending |= 1 << (sig - 1)
	t.faultAddr = addr
	t.faultCode = code
	t.faultTrap = tf.Vector
}

// fatalFrame prints a register dump and stops the machine.
func fatalFrame(why string, tf *TrapFrame) {
	kputs("\ngodwit: fatal: ")
	kputs(why)
	kputs("\n")
	if tf != nil {
		v := tf.Vector
		kputs("  vector ")
		kputdec(v)
		if v < 32 {
			kputs(" (")
			kputs(excNames[v])
			kputs(")")
		}
		kputs(" error ")
		kputhex(tf.Err)
		kputs(" cr2 ")
		kputhex(x86.ReadCR2())
		kputs(" thread ")
		kputdec(uint64(threads[cur].tid))
		kputs("\n  rip ")
		kputhex(tf.IP)
		kputs(" rsp ")
		kputhex(tf.SP)
		kputs(" rflags ")
		kputhex(tf.Flags)
		kputs("\n  rax ")
		kputhex(tf.AX)
		kputs(" rbx ")
		kputhex(tf.BX)
		kputs(" rcx ")
		kputhex(tf.CX)
		kputs(" rdx ")
		kputhex(tf.DX)
		kputs("\n  rsi ")
		kputhex(tf.SI)
		kputs(" rdi ")
		kputhex(tf.DI)
		kputs(" rbp ")
		kputhex(tf.BP)
		kputs(" r14 ")
		kputhex(tf.R14)
		kputs("\n")
	}
	halt("fatal error")
}

// halt prints the last line and stops the CPU for good.
func halt(why string) {
	kputs("godwit: halted: ")
	kputs(why)
	kputs("\n")
	uartFlush()
	haltLoop()
}
