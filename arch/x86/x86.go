// Package x86 wraps the privileged and model-specific x86-64 instructions that Godwit's Go code
// executes directly, because on bare metal every Godwit thread runs at CPL 0.
//
// Each function is a few instructions of assembly in x86_amd64.s, NOSPLIT and allocation-free,
// so the ring-0 layer (arch/ring0) can call them from its trap and system-call paths as well as
// ordinary goroutines. Run as a Linux process (unit tests, `godwit -version`), everything except
// CPUID and RDTSC faults: callers check ring0.BareMetal() first.
package x86

// Cpuid executes CPUID with EAX=leaf and ECX=sub.
// Intel SDM Vol. 2A, "CPUID—CPU Identification".
func Cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)

// Rdtsc reads the time-stamp counter. Intel SDM Vol. 2B, "RDTSC".
func Rdtsc() uint64

// Rdmsr reads model-specific register msr. Intel SDM Vol. 2B, "RDMSR".
func Rdmsr(msr uint32) uint64

// Wrmsr writes model-specific register msr. Intel SDM Vol. 2B, "WRMSR".
func Wrmsr(msr uint32, val uint64)

// Inb, Inw and Inl read an I/O port. Intel SDM Vol. 2A, "IN—Input from Port".
func Inb(port uint16) uint8
func Inw(port uint16) uint16
func Inl(port uint16) uint32

// Outb, Outw and Outl write an I/O port. Intel SDM Vol. 2B, "OUT—Output to Port".
func Outb(port uint16, v uint8)
func Outw(port uint16, v uint16)
func Outl(port uint16, v uint32)

// ReadCR0, ReadCR2, ReadCR3 and ReadCR4 read control registers.
// Intel SDM Vol. 3A, 2.5 "Control Registers".
func ReadCR0() uint64
func ReadCR2() uint64
func ReadCR3() uint64
func ReadCR4() uint64

// WriteCR0, WriteCR3 and WriteCR4 write control registers.
func WriteCR0(v uint64)
func WriteCR3(v uint64)
func WriteCR4(v uint64)

// Invlpg invalidates the TLB entries for the page holding addr. Intel SDM Vol. 2A, "INVLPG".
func Invlpg(addr uintptr)

// Lgdt, Lidt load the descriptor-table registers from a 10-byte pseudo-descriptor at p;
// Ltr loads the task register. Intel SDM Vol. 3A, 2.4 "Memory-Management Registers".
func Lgdt(p uintptr)
func Lidt(p uintptr)
func Ltr(sel uint16)

// Halt executes HLT once with interrupts as they are. Intel SDM Vol. 2A, "HLT".
func Halt()

// HaltForever disables interrupts and halts; it never returns.
func HaltForever()

// Pause is the spin-loop hint. Intel SDM Vol. 2B, "PAUSE".
func Pause()

// Rdrand returns a hardware random number and whether the CPU delivered one.
// Intel SDM Vol. 2B, "RDRAND—Read Random Number".
func Rdrand() (uint64, bool)

// Flags returns RFLAGS.
func Flags() uint64
