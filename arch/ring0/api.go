package ring0

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"github.com/godwit-hv/godwit/arch/x86"
	"github.com/godwit-hv/godwit/boot"
)

// The rest of Godwit reaches the layer's state through Godwit's own system call (number
// sysGodwit), so that it runs with interrupts off and sees consistent state, never racing the
// trap paths.

const (
	opAllocPages = 1
	opFreePages  = 2
	opStats      = 3
	opReboot     = 4
	opExitPort   = 5
	opStrace     = 6
)

// Stats is a snapshot of the layer's counters.
type Stats struct {
	FramesTotal     uint64 // 4 KiB frames managed
	FramesUsed      uint64
	PageTableFrames uint64
	MappedPages     uint64 // pages backing the runtime's mmap regions
	VMAs            uint64
	Threads         uint64
	Switches        uint64
	TimerIRQs       uint64
	PageFaults      uint64
	Signals         uint64
	Syscalls        uint64
	UptimeNs        uint64
	IdleNs          uint64
	TSCHz           uint64
	LAPICHz         uint64
	ConsoleRXDrops  uint64
	BootToRuntimeNs uint64
}

// ErrNoMemory is returned when the frame allocator cannot satisfy a request.
var ErrNoMemory = errors.New("ring0: out of physical memory")

// ErrNotBareMetal is returned by calls that only make sense on bare metal.
var ErrNotBareMetal = errors.New("ring0: not running on bare metal")

func call(op, a, b uint64) uint64 {
	r, _, _ := syscall.RawSyscall(sysGodwit, uintptr(op), uintptr(a), uintptr(b))
	return uint64(r)
}

// godwitCall services sysGodwit inside the layer.
func godwitCall(t *thread, op, a, b uint64) uint64 {
	switch op {
	case opAllocPages:
		if a == 0 || a > 1<<18 {
			return errno(eINVAL)
		}
		pa, ok := frames.allocRun(a)
		if !ok {
			return errno(eNOMEM)
		}
		return pa
	case opFreePages:
		if b == 0 || a&(pageSize-1) != 0 {
			return errno(eINVAL)
		}
		frames.releaseRun(a, b)
		return 0
	case opStats:
		if !userRange(a, uint64(unsafe.Sizeof(Stats{})), true) {
			return errno(eFAULT)
		}
		s := (*Stats)(physPtr(a))
		var sys uint64
		for _, n := range syscallCount {
			sys += n
		}
		*s = Stats{
			FramesTotal: frames.total, FramesUsed: frames.used, PageTableFrames: frames.ptFrames,
			MappedPages: mappedPage, VMAs: uint64(space.n), Threads: uint64(nthreads),
			Switches: switches, TimerIRQs: timerIRQs, PageFaults: pageFaults, Signals: signalsOut,
			Syscalls: sys, UptimeNs: uint64(nanotime()), IdleNs: uint64(idleNs), TSCHz: tscHz,
			LAPICHz: lapicHz, ConsoleRXDrops: rxDropped, BootToRuntimeNs: uint64(kinitNs),
		}
		return 0
	case opReboot:
		tripleFault()
	case opExitPort:
		exitHook = uint8(a)
		return 0
	case opStrace:
		straceOn = a != 0
		return 0
	}
	if r, ok := irqCall(t, op, a, b); ok { // irq.go
		return r
	}
	return errno(eINVAL)
}

// AllocPages returns n physically contiguous, zeroed 4 KiB pages outside the Go heap, for page
// tables and hardware structures. The memory is identity-mapped: its physical address is also
// its virtual address.
func AllocPages(n int) (uint64, error) {
	if !BareMetal() {
		return 0, ErrNotBareMetal
	}
	r := call(opAllocPages, uint64(n), 0)
	if int64(r) < 0 {
		return 0, fmt.Errorf("allocating %d pages: %w", n, ErrNoMemory)
	}
	return r, nil
}

// FreePages returns pages from AllocPages.
func FreePages(pa uint64, n int) {
	if BareMetal() {
		call(opFreePages, pa, uint64(n))
	}
}

// PageBytes views n bytes of identity-mapped physical memory at pa (from AllocPages).
func PageBytes(pa uint64, n int) []byte { return physBytes(pa, uint64(n)) }

// ReadStats returns the layer's counters.
func ReadStats() Stats {
	var s Stats
	if BareMetal() {
		call(opStats, uint64(uintptr(unsafe.Pointer(&s))), 0)
	}
	return s
}

// BootInfo returns what the loader told us. Empty when not on bare metal.
func BootInfo() *boot.Info { return &bootInfo }

// Reboot resets the machine through a triple fault; callers try ACPI and the keyboard
// controller first.
func Reboot() {
	if BareMetal() {
		call(opReboot, 0, 0)
	}
}

// SetExitPort makes a runtime exit (a Go panic included) report its status through the
// debug-exit port 0xf4 before halting, for test runs (godwit.selftest=1).
func SetExitPort(on bool) {
	if BareMetal() {
		v := uint64(0)
		if on {
			v = 1
		}
		call(opExitPort, v, 0)
	}
}

// SetStrace turns the system-call trace on the console on or off.
func SetStrace(on bool) {
	if BareMetal() {
		v := uint64(0)
		if on {
			v = 1
		}
		call(opStrace, v, 0)
	}
}

// TSCHz returns the calibrated TSC frequency.
func TSCHz() uint64 { return tscHz }

// DebugExitPort is QEMU's isa-debug-exit device as the rigs configure it.
const DebugExitPort = 0xF4

func outDebugExit(code uint32) { x86.Outl(DebugExitPort, code) }

// LowPage returns a copy of physical page 0 (IVT and BIOS data area) taken at boot, before the
// page was unmapped to catch nil pointers.
func LowPage() []byte { return lowPage[:] }

// FlushConsole waits until everything written to the console has left the UART.
func FlushConsole() {
	if BareMetal() {
		uartFlush()
	}
}
