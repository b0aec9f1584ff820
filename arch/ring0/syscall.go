package ring0

// Linux x86-64 system-call numbers (arch/x86/entry/syscalls/syscall_64.tbl) and errno values
// (include/uapi/asm-generic/errno-base.h, errno.h).
const (
	sysRead           = 0
	sysWrite          = 1
	sysClose          = 3
	sysFstat          = 5
	sysMmap           = 9
	sysMprotect       = 10
	sysMunmap         = 11
	sysBrk            = 12
	sysRtSigaction    = 13
	sysRtSigprocmask  = 14
	sysRtSigreturn    = 15
	sysIoctl          = 16
	sysSchedYield     = 24
	sysMincore        = 27
	sysMadvise        = 28
	sysNanosleep      = 35
	sysGetitimer      = 36
	sysSetitimer      = 38
	sysGetpid         = 39
	sysClone          = 56
	sysExit           = 60
	sysUname          = 63
	sysFcntl          = 72
	sysGettimeofday   = 96
	sysGetuid         = 102
	sysGetgid         = 104
	sysGeteuid        = 107
	sysGetegid        = 108
	sysGetppid        = 110
	sysSigaltstack    = 131
	sysPrctl          = 157
	sysArchPrctl      = 158
	sysGettid         = 186
	sysTkill          = 200
	sysTime           = 201
	sysFutex          = 202
	sysSchedGetaffin  = 204
	sysClockGettime   = 228
	sysClockGetres    = 229
	sysClockNanosleep = 230
	sysExitGroup      = 231
	sysEpollWait      = 232
	sysEpollCtl       = 233
	sysTgkill         = 234
	sysOpenat         = 257
	sysNewfstatat     = 262
	sysReadlinkat     = 267
	sysEpollPwait     = 281
	sysEventfd2       = 290
	sysEpollCreate1   = 291
	sysPipe2          = 293
	sysPrlimit64      = 302
	sysGetrandom      = 318
	sysClone3         = 435
	sysGodwit         = 0x6F64 // Godwit's own calls (api.go): "do"

	ePERM     = 1
	eNOENT    = 2
	eINTR     = 4
	eBADF     = 9
	eAGAIN    = 11
	eNOMEM    = 12
	eFAULT    = 14
	eEXIST    = 17
	eINVAL    = 22
	eNOTTY    = 25
	eNOSYS    = 38
	eTIMEDOUT = 110
)

func errno(e int) uint64 { return uint64(-int64(e)) }

var (
	syscallCount [512]uint64
	straceOn     bool
)

// doSyscall services the system call in t's saved registers: number in RAX, arguments in RDI,
// RSI, RDX, R10, R8, R9, result in RAX. Linux x86-64 ABI, A.2.1 "Calling Conventions".
func doSyscall(t *thread) {
	r := &t.regs
	nr := r.AX
	if nr < uint64(len(syscallCount)) {
		syscallCount[nr]++
	}
	a0, a1, a2, a3, a4, a5 := r.DI, r.SI, r.DX, r.R10, r.R8, r.R9
	if straceOn {
		kputs("[sys ")
		kputdec(nr)
		kputs(" ")
		kputhex(a0)
		kputs(" ")
		kputhex(a1)
		kputs(" ")
		kputhex(a2)
		kputs("]\n")
	}
	var ret uint64
	switch nr {
	case sysRead:
		ret = sysReadImpl(t, int32(a0), a1, a2)
	case sysWrite:
		ret = sysWriteImpl(int32(a0), a1, a2)
	case sysClose:
		ret = fdClose(int32(a0))
	case sysMmap:
		ret = sysMmapImpl(a0, a1, uint32(a2), uint32(a3), int32(a4), a5)
	case sysMunmap:
		ret = sysMunmapImpl(a0, a1)
	case sysMprotect:
		ret = sysMprotectImpl(a0, a1, uint32(a2))
	case sysMadvise:
		ret = sysMadviseImpl(a0, a1, int32(a2))
	case sysBrk:
		ret = 0 // no heap break: the runtime does not need one
	case sysRtSigaction:
		ret = sysSigaction(int(a0), a1, a2, a3)
	case sysRtSigprocmask:
		ret = sysSigprocmask(t, int(a0), a1, a2, a3)
	case sysRtSigreturn:
		sigreturn(t)
		return
	case sysSigaltstack:
		ret = sysSigaltstackImpl(t, a0, a1)
	case sysSchedYield:
		ret = 0
		yieldNow = true
	case sysNanosleep:
		ret = sysNanosleepImpl(t, a0, false, 0)
		if t.state == tBlocked {
			return
		}
	case sysClockNanosleep:
		ret = sysNanosleepImpl(t, a2, a1&1 != 0, int(a0))
		if t.state == tBlocked {
			return
		}
	case sysClockGettime:
		ret = sysClockGettimeImpl(int(a0), a1)
	case sysClockGetres:
		if a1 != 0 && userRange(a1, 16, true) {
			*physU64(a1) = 0
			*physU64(a1 + 8) = 1
		}
	case sysGettimeofday:
		if a0 != 0 && userRange(a0, 16, true) {
			ns := wallBootNs + nanotime()
			*physU64(a0) = uint64(ns / 1e9)
			*physU64(a0 + 8) = uint64(ns % 1e9 / 1000)
		}
	case sysTime:
		ret = uint64((wallBootNs + nanotime()) / 1e9)
		if a0 != 0 && userRange(a0, 8, true) {
			*physU64(a0) = ret
		}
	case sysGetpid, sysGetppid:
		ret = 1
	case sysGettid:
		ret = uint64(t.tid)
	case sysGetuid, sysGetgid, sysGeteuid, sysGetegid:
		ret = 0
	case sysArchPrctl:
		ret = sysArchPrctlImpl(t, a0, a1)
	case sysPrctl:
		ret = errno(eINVAL)
	case sysClone:
		ret = sysCloneImpl(t, a0, a1, a2, a3, a4)
	case sysClone3:
		ret = errno(eNOSYS) // the runtime falls back to clone
	case sysExit:
		sysExitImpl(t, a0)
		return
	case sysExitGroup:
		exitGroup(int(a0))
	case sysFutex:
		ret = sysFutexImpl(t, a0, int(a1), uint32(a2), a3)
		if t.state == tBlocked {
			return
		}
	case sysSchedGetaffin:
		ret = errno(eFAULT)
		if a1 >= 8 && userRange(a2, 8, true) {
			*physU64(a2) = 1 // one CPU
			ret = 8
		}
	case sysTgkill:
		ret = sysKill(t, int32(a1), int(a2))
	case sysTkill:
		ret = sysKill(t, int32(a0), int(a1))
	case sysFcntl:
		ret = sysFcntlImpl(int32(a0), int(a1))
	case sysIoctl:
		ret = errno(eNOTTY)
	case sysOpenat, sysNewfstatat, sysReadlinkat:
		ret = errno(eNOENT)
	case sysFstat:
		ret = errno(eBADF)
	case sysEpollCreate1:
		ret = fdNew(fdEpoll)
	case sysEventfd2:
		ret = fdNew(fdEventfd)
		if int64(ret) >= 0 {
			files[ret].counter = a0
		}
	case sysEpollCtl:
		ret = sysEpollCtlImpl(int32(a0), int(a1), int32(a2), a3)
	case sysEpollPwait, sysEpollWait:
		ret = sysEpollWaitImpl(t, int32(a0), a1, int(a2), int(int32(a3)))
		if t.state == tBlocked {
			return
		}
	case sysGetrandom:
		ret = sysGetrandomImpl(a0, a1)
	case sysUname:
		ret = sysUnameImpl(a0)
	case sysSetitimer, sysGetitimer:
		ret = 0
	case sysMincore, sysPipe2, sysPrlimit64:
		ret = errno(eNOSYS)
	case sysGodwit:
		ret = godwitCall(t, a0, a1, a2)
	default:
		ret = errno(eNOSYS)
		if straceOn {
			kputs("[unimplemented system call ")
			kputdec(nr)
			kputs("]\n")
		}
	}
	r.AX = ret
}

// userRange checks that [addr, addr+n) is memory the runtime may pass to the kernel, backing
// lazily-mapped pages now so the layer never faults on them.
func userRange(addr, n uint64, write bool) bool {
	if n == 0 {
		return true
	}
	end := addr + n
	if end < addr || addr < pageSize || end > userSpaceHi {
		return false
	}
	if end <= identEnd {
		return true
	}
	for va := addr &^ (pageSize - 1); va < end; va += pageSize {
		if va < identEnd {
			continue
		}
		ok, w := present(va)
		if ok && (w || !write) {
			continue
		}
		errCode := uint64(0)
		if write {
			errCode = pfWrite
		}
		if ok {
			errCode |= pfPresent
		}
		if !demandPage(va, errCode) {
			return false
		}
	}
	return true
}

func exitGroup(code int) {
	kputs("\ngodwit: the Go runtime exited with status ")
	kputdec(uint64(code))
	kputs("\n")
	uartFlush()
	if exitHook != 0 {
		// godwit.selftest: report through the debug-exit port if there is one.
		outDebugExit(uint32(code))
	}
	halt("runtime exit")
}
