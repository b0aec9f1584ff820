package ring0

import "unsafe"

// Threads and the scheduler. One CPU; the layer's code never blocks: a system call that must
// wait parks its thread (state tBlocked with a wait reason and an optional deadline) and trap
// resumes another thread instead. The waker completes the call by writing the parked thread's
// saved RAX. Thread 0 is the idle thread (idleLoop), resumed when nothing else can run.

const (
	maxThreads = 256
	timeslice  = 10_000_000 // ns
)

// Thread states.
const (
	tFree = iota
	tRunnable
	tBlocked
)

// Wait reasons.
const (
	wNone = iota
	wFutex
	wSleep
	wEpoll
	wConsole
)

type sigaltstack struct {
	sp, size uint64
	flags    uint32
}

type thread struct {
	regs      TrapFrame
	fsbase    uint64
	tid       int32
	state     uint8
	wait      uint8
	waitAddr  uint64 // futex word; buffer of an epoll or console wait
	waitLen   uint64
	waitFd    int32
	deadline  int64 // nanotime of a timed wait; 0 for none
	sigmask   uint64
	pending   uint64
	altstack  sigaltstack
	faultAddr uint64 // si_addr and si_code of a pending fault signal
	faultCode int32
	faultTrap uint64
	ctid      uint64 // CLONE_CHILD_CLEARTID address
	started   int64
}

var (
	threads     [maxThreads]thread
	cur         int   // index of the running thread
	nextTID     int32 = 1
	nthreads    int   // live threads, idle excluded
	maxThread   int   // highest index in use + 1
	sliceStart  int64
	switches    uint64
	fxBase      uint64 // 16-byte aligned base of the FXSAVE areas
	fxAreas     [maxThreads*fxSize + 64]byte
	fxInitImage [fxSize]byte // FPU state a new idle/main thread starts with
)

const fxSize = 512

func fxAddr(i int) uint64 { return fxBase + uint64(i)*fxSize }

func fxArea(i int) []byte { return physBytes(fxAddr(i), fxSize) }

func threadsInit() {
	fxBase = (uint64(uintptr(unsafe.Pointer(&fxAreas[0]))) + 63) &^ 63
	// Default FPU state: FCW 0x37F, MXCSR 0x1F80. Intel SDM Vol. 1, 10.5.1 "FXSAVE Area".
	fxInitImage[0], fxInitImage[1] = 0x7F, 0x03
	fxInitImage[24], fxInitImage[25] = 0x80, 0x1F
	fxInitImage[28], fxInitImage[29] = 0xFF, 0xFF // MXCSR_MASK
	fxInitImage[30] = 0x00
}

// newThread takes a free slot and returns its index, or -1.
func newThread() int {
	for i := 1; i < maxThreads; i++ {
		if threads[i].state == tFree {
			threads[i] = thread{}
			threads[i].tid = nextTID
			nextTID++
			threads[i].started = nanotime()
			nthreads++
			if i+1 > maxThread {
				maxThread = i + 1
			}
			return i
		}
	}
	return -1
}

func (t *thread) block(w uint8, deadline int64) {
	t.state = tBlocked
	t.wait = w
	t.deadline = deadline
}

func (t *thread) wake(ret uint64) {
	t.state = tRunnable
	t.wait = wNone
	t.deadline = 0
	t.regs.AX = ret
}

// runnableOther reports whether a thread other than cur can run.
func runnableOther() bool {
	for i := 1; i < maxThread; i++ {
		if i != cur && threads[i].state == tRunnable {
			return true
		}
	}
	return false
}

// pickNext chooses the next thread round-robin after cur, or idle.
func pickNext() int {
	for k := 1; k <= maxThread; k++ {
		i := (cur + k) % maxThread
		if i != 0 && threads[i].state == tRunnable {
			return i
		}
	}
	return 0
}

// wakeExpired completes timed waits whose deadline has passed.
func wakeExpired(now int64) {
	for i := 1; i < maxThread; i++ {
		t := &threads[i]
		if t.state != tBlocked || t.deadline == 0 || t.deadline > now {
			continue
		}
		switch t.wait {
		case wFutex:
			t.wake(errno(eTIMEDOUT))
		case wEpoll:
			t.wake(0)
		default:
			t.wake(0)
		}
	}
}

// nextDeadline returns the earliest deadline of a timed wait, or 0.
func nextDeadline() int64 {
	var d int64
	for i := 1; i < maxThread; i++ {
		t := &threads[i]
		if t.state == tBlocked && t.deadline != 0 && (d == 0 || t.deadline < d) {
			d = t.deadline
		}
	}
	return d
}

// findTID returns the index of the thread with id tid, or -1.
func findTID(tid int32) int {
	for i := 1; i < maxThread; i++ {
		if threads[i].state != tFree && threads[i].tid == tid {
			return i
		}
	}
	return -1
}

// switchTo makes thread i current.
func switchTo(i int, now int64) {
	if i != cur {
		switches++
		sliceStart = now
	}
	cur = i
}
