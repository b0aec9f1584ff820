package ring0

import "github.com/godwit-hv/godwit/arch/x86"

// File descriptors: 0-2 are the console (COM1); the runtime's netpoller adds an epoll instance
// and an eventfd. Nothing else exists on this kernel.

const (
	maxFiles     = 64
	maxInterest  = 16
	fdFree       = 0
	fdConsole    = 1
	fdEpoll      = 2
	fdEventfd    = 3
	epollIn      = 0x001
	epollOut     = 0x004
	epollCtlAdd  = 1
	epollCtlDel  = 2
	epollCtlMod  = 3
	epollEvtSize = 12 // struct epoll_event is packed on x86-64: u32 events, u64 data
	fGetfd       = 1
	fSetfd       = 2
	fGetfl       = 3
	fSetfl       = 4
	oRDWR        = 2
)

type epollItem struct {
	fd     int32
	events uint32
	data   uint64
}

type file struct {
	kind     uint8
	counter  uint64 // eventfd
	interest [maxInterest]epollItem
	n        int
}

var files [maxFiles]file

func filesInit() {
	for i := 0; i < 3; i++ {
		files[i].kind = fdConsole
	}
}

func fdNew(kind uint8) uint64 {
	for i := 3; i < maxFiles; i++ {
		if files[i].kind == fdFree {
			files[i] = file{kind: kind}
			return uint64(i)
		}
	}
	return errno(24) // EMFILE
}

func fdGet(fd int32) *file {
	if fd < 0 || fd >= maxFiles || files[fd].kind == fdFree {
		return nil
	}
	return &files[fd]
}

func fdClose(fd int32) uint64 {
	f := fdGet(fd)
	if f == nil {
		return errno(eBADF)
	}
	if fd > 2 {
		*f = file{}
	}
	return 0
}

func sysFcntlImpl(fd int32, cmd int) uint64 {
	if fdGet(fd) == nil {
		return errno(eBADF)
	}
	switch cmd {
	case fGetfd, fSetfd, fSetfl:
		return 0
	case fGetfl:
		return oRDWR
	}
	return errno(eINVAL)
}

func sysWriteImpl(fd int32, buf, n uint64) uint64 {
	f := fdGet(fd)
	if f == nil {
		return errno(eBADF)
	}
	if !userRange(buf, n, false) {
		return errno(eFAULT)
	}
	switch f.kind {
	case fdConsole:
		consoleWrite(physBytes(buf, n))
		return n
	case fdEventfd:
		if n < 8 {
			return errno(eINVAL)
		}
		f.counter += *physU64(buf)
		wakeEpollWaiters()
		return 8
	}
	return errno(eINVAL)
}

func sysReadImpl(t *thread, fd int32, buf, n uint64) uint64 {
	f := fdGet(fd)
	if f == nil {
		return errno(eBADF)
	}
	if !userRange(buf, n, true) {
		return errno(eFAULT)
	}
	switch f.kind {
	case fdConsole:
		if n == 0 {
			return 0
		}
		if rxHead == rxTail {
			t.waitAddr, t.waitLen = buf, n
			t.block(wConsole, 0)
			return 0
		}
		return consoleRead(buf, n)
	case fdEventfd:
		if n < 8 {
			return errno(eINVAL)
		}
		if f.counter == 0 {
			return errno(eAGAIN)
		}
		*physU64(buf) = f.counter
		f.counter = 0
		return 8
	}
	return errno(eINVAL)
}

func consoleRead(buf, n uint64) uint64 {
	var k uint64
	for k < n && rxHead != rxTail {
		*(*byte)(physPtr(buf + k)) = rxBuf[rxHead%rxBufLen]
		rxHead++
		k++
	}
	return k
}

// wakeConsoleReaders completes a blocked read(0) once input arrived.
func wakeConsoleReaders() {
	for i := 1; i < maxThread && rxHead != rxTail; i++ {
		t := &threads[i]
		if t.state == tBlocked && t.wait == wConsole {
			t.wake(consoleRead(t.waitAddr, t.waitLen))
		}
	}
	if rxHead != rxTail {
		wakeEpollWaiters()
	}
}

func sysEpollCtlImpl(epfd int32, op int, fd int32, ev uint64) uint64 {
	ep := fdGet(epfd)
	if ep == nil || ep.kind != fdEpoll || fdGet(fd) == nil {
		return errno(eBADF)
	}
	idx := -1
	for i := 0; i < ep.n; i++ {
		if ep.interest[i].fd == fd {
			idx = i
		}
	}
	var events uint32
	var data uint64
	if op != epollCtlDel {
		if !userRange(ev, epollEvtSize, false) {
			return errno(eFAULT)
		}
		events = *(*uint32)(physPtr(ev))
		data = *(*uint64)(physPtr(ev + 4))
	}
	switch op {
	case epollCtlAdd:
		if idx >= 0 {
			return errno(eEXIST)
		}
		if ep.n == maxInterest {
			return errno(eNOMEM)
		}
		ep.interest[ep.n] = epollItem{fd, events, data}
		ep.n++
	case epollCtlMod:
		if idx < 0 {
			return errno(eNOENT)
		}
		ep.interest[idx] = epollItem{fd, events, data}
	case epollCtlDel:
		if idx < 0 {
			return errno(eNOENT)
		}
		ep.interest[idx] = ep.interest[ep.n-1]
		ep.n--
	default:
		return errno(eINVAL)
	}
	return 0
}

// epollCollect writes up to max ready events of ep to buf and returns their count.
func epollCollect(ep *file, buf uint64, max int) int {
	n := 0
	for i := 0; i < ep.n && n < max; i++ {
		it := ep.interest[i]
		f := fdGet(it.fd)
		if f == nil {
			continue
		}
		var ready uint32
		switch f.kind {
		case fdEventfd:
			if f.counter > 0 {
				ready |= epollIn
			}
			ready |= epollOut
		case fdConsole:
			if rxHead != rxTail {
				ready |= epollIn
			}
			ready |= epollOut
		}
		ready &= it.events
		if ready == 0 {
			continue
		}
		e := buf + uint64(n)*epollEvtSize
		*(*uint32)(physPtr(e)) = ready
		*(*uint64)(physPtr(e + 4)) = it.data
		n++
	}
	return n
}

func sysEpollWaitImpl(t *thread, epfd int32, buf uint64, max, timeoutMs int) uint64 {
	ep := fdGet(epfd)
	if ep == nil || ep.kind != fdEpoll {
		return errno(eBADF)
	}
	if max <= 0 || max > 1024 {
		return errno(eINVAL)
	}
	if !userRange(buf, uint64(max)*epollEvtSize, true) {
		return errno(eFAULT)
	}
	if n := epollCollect(ep, buf, max); n > 0 || timeoutMs == 0 {
		return uint64(n)
	}
	var deadline int64
	if timeoutMs > 0 {
		deadline = nanotime() + int64(timeoutMs)*1e6
	}
	t.waitFd, t.waitAddr, t.waitLen = epfd, buf, uint64(max)
	t.block(wEpoll, deadline)
	return 0
}

// wakeEpollWaiters completes epoll waits that now have events.
func wakeEpollWaiters() {
	for i := 1; i < maxThread; i++ {
		t := &threads[i]
		if t.state != tBlocked || t.wait != wEpoll {
			continue
		}
		if ep := fdGet(t.waitFd); ep != nil {
			if n := epollCollect(ep, t.waitAddr, int(t.waitLen)); n > 0 {
				t.wake(uint64(n))
			}
		}
	}
}

var rngState uint64

// sysGetrandomImpl fills buf from RDRAND when the CPU has it, else from a TSC-seeded xorshift
// (good enough for hash seeds; not for keys, which is why RDRAND comes first).
func sysGetrandomImpl(buf, n uint64) uint64 {
	if n > 1<<20 {
		n = 1 << 20
	}
	if !userRange(buf, n, true) {
		return errno(eFAULT)
	}
	for i := uint64(0); i < n; i += 8 {
		v := randomU64()
		for j := uint64(0); j < 8 && i+j < n; j++ {
			*(*byte)(physPtr(buf + i + j)) = byte(v >> (8 * j))
		}
	}
	return n
}

func randomU64() uint64 {
	if hasRDRAND {
		if v, ok := x86.Rdrand(); ok {
			return v
		}
	}
	if rngState == 0 {
		rngState = rdtsc() | 1
	}
	rngState ^= rngState << 13
	rngState ^= rngState >> 7
	rngState ^= rngState << 17
	return rngState ^ rdtsc()
}

func sysUnameImpl(buf uint64) uint64 {
	const field = 65 // struct new_utsname: six fields of 65 bytes
	if !userRange(buf, 6*field, true) {
		return errno(eFAULT)
	}
	clear(physBytes(buf, 6*field))
	vals := [6]string{"Linux", "godwit", "6.1.0-godwit", "#1", "x86_64", "(none)"}
	for i, v := range vals {
		copy(physBytes(buf+uint64(i)*field, field-1), v)
	}
	return 0
}
