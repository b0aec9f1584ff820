package ring0

// Threads, futexes, signals-related calls and time.

// clone flags (include/uapi/linux/sched.h).
const (
	cloneVM            = 0x00000100
	cloneThread        = 0x00010000
	cloneSettls        = 0x00080000
	cloneParentSettid  = 0x00100000
	cloneChildCleartid = 0x00200000
	cloneChildSettid   = 0x01000000

	futexWait       = 0
	futexWake       = 1
	futexWaitBitset = 9
	futexWakeBitset = 10
	futexCmdMask    = 0x7F // without FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME

	archSetFS = 0x1002
	archGetFS = 0x1003
)

// sysCloneImpl creates a thread sharing everything (the only kind the Go runtime makes). The
// child resumes after the SYSCALL with RAX=0, on the new stack, with the new TLS.
func sysCloneImpl(t *thread, flags, stack, ptid, ctid, tls uint64) uint64 {
	if flags&(cloneVM|cloneThread) != cloneVM|cloneThread {
		return errno(eINVAL) // no processes here
	}
	i := newThread()
	if i < 0 {
		return errno(eAGAIN)
	}
	c := &threads[i]
	c.regs = t.regs
	c.regs.AX = 0
	if stack != 0 {
		c.regs.SP = stack
	}
	c.fsbase = t.fsbase
	if flags&cloneSettls != 0 {
		c.fsbase = tls
	}
	c.sigmask = t.sigmask
	c.altstack = sigaltstack{flags: ssDisable}
	if flags&cloneChildCleartid != 0 {
		c.ctid = ctid
	}
	if flags&cloneParentSettid != 0 && userRange(ptid, 4, true) {
		*(*int32)(physPtr(ptid)) = c.tid
	}
	if flags&cloneChildSettid != 0 && userRange(ctid, 4, true) {
		*(*int32)(physPtr(ctid)) = c.tid
	}
	copyPhys(fxAddr(i), fxAddr(cur), fxSize)
	c.state = tRunnable
	return uint64(c.tid)
}

// sysExitImpl ends the calling thread. Its stack may already be gone: nothing touches it.
func sysExitImpl(t *thread, code uint64) {
	if t.ctid != 0 && userRange(t.ctid, 4, true) {
		*(*int32)(physPtr(t.ctid)) = 0
		futexWakeN(t.ctid, 1)
	}
	t.state = tFree
	nthreads--
	if nthreads == 0 {
		exitGroup(int(code))
	}
}

func sysFutexImpl(t *thread, addr uint64, op int, val uint32, timeout uint64) uint64 {
	switch op & futexCmdMask {
	case futexWait, futexWaitBitset:
		if addr&3 != 0 || !userRange(addr, 4, false) {
			return errno(eFAULT)
		}
		if *(*uint32)(physPtr(addr)) != val {
			return errno(eAGAIN)
		}
		var deadline int64
		if timeout != 0 {
			if !userRange(timeout, 16, false) {
				return errno(eFAULT)
			}
			ns := int64(*physU64(timeout))*1e9 + int64(*physU64(timeout + 8))
			if op&futexCmdMask == futexWaitBitset {
				deadline = ns - wallOffset(op) // absolute
			} else {
				deadline = nanotime() + ns
			}
			if deadline <= nanotime() {
				return errno(eTIMEDOUT)
			}
		}
		t.waitAddr = addr
		t.block(wFutex, deadline)
		return 0
	case futexWake, futexWakeBitset:
		return uint64(futexWakeN(addr, int(val)))
	}
	return errno(eNOSYS)
}

// wallOffset converts an absolute FUTEX_WAIT_BITSET time to the monotonic clock.
func wallOffset(op int) int64 {
	if op&256 != 0 { // FUTEX_CLOCK_REALTIME
		return wallBootNs
	}
	return 0
}

func futexWakeN(addr uint64, n int) int {
	woken := 0
	for i := 1; i < maxThread && woken < n; i++ {
		t := &threads[i]
		if t.state == tBlocked && t.wait == wFutex && t.waitAddr == addr {
			t.wake(0)
			woken++
		}
	}
	return woken
}

// Clocks (include/uapi/linux/time.h): REALTIME and its variants follow the RTC read at boot;
// every other clock is the monotonic TSC clock.
const (
	clockRealtime       = 0
	clockRealtimeCoarse = 5
	clockTAI            = 11
)

func clockNow(clock int) int64 {
	switch clock {
	case clockRealtime, clockRealtimeCoarse, clockTAI:
		return wallBootNs + nanotime()
	}
	return nanotime()
}

func sysClockGettimeImpl(clock int, ts uint64) uint64 {
	if !userRange(ts, 16, true) {
		return errno(eFAULT)
	}
	ns := clockNow(clock)
	*physU64(ts) = uint64(ns / 1e9)
	*physU64(ts + 8) = uint64(ns % 1e9)
	return 0
}

func sysNanosleepImpl(t *thread, req uint64, abs bool, clock int) uint64 {
	if !userRange(req, 16, false) {
		return errno(eFAULT)
	}
	sec, nsec := int64(*physU64(req)), int64(*physU64(req + 8))
	if sec < 0 || nsec < 0 || nsec >= 1e9 {
		return errno(eINVAL)
	}
	ns := sec*1e9 + nsec
	now := nanotime()
	deadline := now + ns
	if abs {
		deadline = ns - (clockNow(clock) - now)
	}
	if deadline <= now {
		return 0
	}
	t.block(wSleep, deadline)
	return 0
}

func sysArchPrctlImpl(t *thread, code, addr uint64) uint64 {
	switch code {
	case archSetFS:
		t.fsbase = addr
		return 0
	case archGetFS:
		if !userRange(addr, 8, true) {
			return errno(eFAULT)
		}
		*physU64(addr) = t.fsbase
		return 0
	}
	return errno(eINVAL)
}

func sysSigaction(sig int, act, oact, size uint64) uint64 {
	if sig < 1 || sig > sigMax || size != 8 || sig == sigKILL || sig == 19 {
		return errno(eINVAL)
	}
	if oact != 0 {
		if !userRange(oact, 32, true) {
			return errno(eFAULT)
		}
		a := sigactions[sig]
		*physU64(oact) = a.handler
		*physU64(oact + 8) = a.flags
		*physU64(oact + 16) = a.restorer
		*physU64(oact + 24) = a.mask
	}
	if act != 0 {
		if !userRange(act, 32, false) {
			return errno(eFAULT)
		}
		sigactions[sig] = sigaction{*physU64(act), *physU64(act + 8), *physU64(act + 16), *physU64(act + 24)}
	}
	return 0
}

func sysSigprocmask(t *thread, how int, set, oset, size uint64) uint64 {
	if size != 8 {
		return errno(eINVAL)
	}
	if oset != 0 {
		if !userRange(oset, 8, true) {
			return errno(eFAULT)
		}
		*physU64(oset) = t.sigmask
	}
	if set != 0 {
		if !userRange(set, 8, false) {
			return errno(eFAULT)
		}
		s := *physU64(set)
		switch how {
		case 0: // SIG_BLOCK
			t.sigmask |= s
		case 1: // SIG_UNBLOCK
			t.sigmask &^= s
		case 2: // SIG_SETMASK
			t.sigmask = s
		default:
			return errno(eINVAL)
		}
		t.sigmask &^= 1<<(sigKILL-1) | 1<<(19-1)
	}
	return 0
}

func sysSigaltstackImpl(t *thread, ss, oss uint64) uint64 {
	if oss != 0 {
		if !userRange(oss, 24, true) {
			return errno(eFAULT)
		}
		*physU64(oss) = t.altstack.sp
		*physU64(oss + 8) = uint64(t.altstack.flags)
		*physU64(oss + 16) = t.altstack.size
	}
	if ss != 0 {
		if !userRange(ss, 24, false) {
			return errno(eFAULT)
		}
		flags := uint32(*physU64(ss + 8))
		if flags&ssDisable != 0 {
			t.altstack = sigaltstack{flags: ssDisable}
		} else {
			t.altstack = sigaltstack{sp: *physU64(ss), size: *physU64(ss + 16)}
		}
	}
	return 0
}

func sysKill(t *thread, tid int32, sig int) uint64 {
	if sig < 0 || sig > sigMax {
		return errno(eINVAL)
	}
	i := findTID(tid)
	if i < 0 {
		return errno(3) // ESRCH
	}
	if sig != 0 {
		threads[i].pending |= 1 << (sig - 1)
	}
	return 0
}
