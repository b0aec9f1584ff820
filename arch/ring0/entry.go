// Package ring0 is the layer that lets the stock Go runtime run in ring 0 on bare metal.
//
// The Godwit kernel is an ordinary static linux/amd64 Go binary. When a loader enters it in 32-bit
// mode (multiboot v1 or PVH), entry_amd64.s switches to long mode, builds a stack and jumps to the
// runtime's own entry, _rt0_amd64_linux, as Linux would after execve. Every thread then runs at
// CPL 0. The runtime's SYSCALL instructions land in syscallEntry through IA32_LSTAR and this
// package services the Linux system calls the runtime uses (threads via clone, futex, mmap with
// lazily backed memory, signals for asynchronous preemption and for turning faults into panics,
// epoll and eventfd for the netpoller, clocks from the TSC and the CMOS RTC), and interrupts
// (LAPIC timer, COM1) drive a preemptive scheduler of those threads.
//
// The layer's Go code runs on one kernel stack with interrupts disabled, under a fake g whose
// stack bounds are the kernel stack (entry.go), so its functions need not be nosplit. It must not
// allocate, must not store Go pointers into globals (no write barriers may run here), and calls
// only the layer itself, arch/x86 and boot. The trap and system-call paths are hot: they copy
// a TrapFrame in and out and do a bounded amount of work.
//
// Run as a Linux process (unit tests, `godwit -version`) none of this is active: BareMetal reports
// false and the package's pure parts (VMA list, frame bookkeeping) are tested in user space.
package ring0

// Layout constants shared with entry_amd64.s (checked by layout_test.go).
const (
	kstackSize = 65536 // KSTACK_SIZE
	frameSize  = 176   // FRAME_SIZE: sizeof(TrapFrame)
	vecSyscall = 256   // VEC_SYSCALL: pseudo-vector of the system-call path
)

// Segment selectors of the kernel GDT (gdt.go).
const (
	selKCode = 0x08
	selKData = 0x10
	selTSS   = 0x18
)

// TrapFrame is what the entry paths leave on the kernel stack: the general registers pushed by
// trapCommon, the vector and error code pushed by the stub, and the frame the CPU pushed.
// Intel SDM Vol. 3A, 6.14.2 "64-Bit Mode Stack Frame".
type TrapFrame struct {
	R15, R14, R13, R12, R11, R10, R9, R8 uint64
	BP, DI, SI, DX, CX, BX, AX           uint64
	Vector, Err                          uint64
	IP, CS, Flags, SP, SS                uint64
}

// Set by entry_amd64.s.
var (
	bareMetal   uint8  // 1 once start64 ran
	bootMagic   uint32 // EAX at the 32-bit entry
	bootInfoPtr uint32 // EBX at the 32-bit entry
	syscallSP   uint64 // caller's RSP, saved by syscallEntry
)

// The kernel stack, the stack for faults that must not share it (#DF, NMI, #MC), and the
// fake g the layer's Go code runs under: fakeG[0:2] are g.stack.lo/hi and fakeG[2] is
// g.stackguard0, the only fields a function prologue reads. ktls[0] holds &fakeG and FS points
// at ktls[1] while the layer runs, because ABI wrappers load g from -8(FS).
var (
	kstack     [kstackSize]byte
	faultStack [16384]byte
	fakeG      [8]uint64
	ktls       [2]uint64
)

// curFX is the address of the FXSAVE area of the running thread, curFS its FS base; the entry
// and return paths use them.
var (
	curFX uint64
	curFS uint64
)

// Implemented in entry_amd64.s.
func entry()
func start64()
func setKernelFS()
func syscallEntry()
func trapCommon()
func trapReturn()
func idleLoop()
func haltLoop()
func rdtsc() uint64
func loadIDT(p uintptr)
func loadGDT(p uintptr)
func invlpg(addr uintptr)

// Implemented in stubs_amd64.s.
func vectorAddr(v int) uintptr

// BareMetal reports whether Godwit is running as the kernel (true) or as a Linux process.
func BareMetal() bool { return bareMetal != 0 }

//go:generate go run gen_stubs.go

// More of entry_amd64.s.
func syscallEntryAddr() uintptr
func idleLoopAddr() uintptr
func imageEnd() uintptr
func tripleFault()
