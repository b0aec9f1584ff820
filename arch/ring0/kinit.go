package ring0

import (
	"unsafe"

	"github.com/godwit-hv/godwit/arch/x86"
	"github.com/godwit-hv/godwit/boot"
)

// MSRs and control bits used at start-up. Intel SDM Vol. 4, Table 2-2; Vol. 3A, 2.2.1
// "Extended Feature Enable Register".
const (
	msrEFER   = 0xC0000080
	msrSTAR   = 0xC0000081
	msrLSTAR  = 0xC0000082
	msrFMASK  = 0xC0000084
	eferSCE   = 1 << 0
	eferNXE   = 1 << 11
	rflagsIF  = 1 << 9
	rflagsDF  = 1 << 10
	rflagsTF  = 1 << 8
	rflagsAC  = 1 << 18
	mainStack = 512 << 10
	atNull    = 0 // ELF auxiliary vector types: include/uapi/linux/auxvec.h
	atPagesz  = 6
	atRandom  = 25
)

var (
	bootInfo   boot.Info
	hasRDRAND  bool
	hasNX      bool
	stackMain  [mainStack]byte
	stackIdle  [8192]byte
	exitHook   uint8
	lowPage    [pageSize]byte
	bootTSC    uint64
	kinitNs    int64
	imageStart uint64 = 0x100000
)

// kinit runs once, on the kernel stack, after start64. It brings up memory, descriptor tables,
// interrupts and clocks, and prepares the idle thread and the first thread, which will enter
// the Go runtime at rt0 as if Linux had just exec'd it.
func kinit(rt0 uintptr) {
	bootTSC = rdtsc()
	uartInit()
	kputs("godwit: starting\n")

	_, _, ecx, _ := x86.Cpuid(1, 0)
	hasRDRAND = ecx&(1<<30) != 0 // CPUID.01H:ECX.RDRAND[bit 30]
	if maxExt, _, _, _ := x86.Cpuid(0x80000000, 0); maxExt >= 0x80000001 {
		_, _, _, edx := x86.Cpuid(0x80000001, 0)
		hasNX = edx&(1<<20) != 0 // CPUID.80000001H:EDX.NX[bit 20]
	}

	mem := boot.Mem{Limit: 1 << 32}
	switch {
	case bootMagic == boot.MultibootMagic:
		boot.ParseMultiboot(mem, uint64(bootInfoPtr), &bootInfo)
	case mem.U32(uint64(bootInfoPtr)) == boot.PVHMagic:
		boot.ParsePVH(mem, uint64(bootInfoPtr), &bootInfo)
	default:
		kputs("godwit: no boot information from the loader\n")
	}
	parseEarlyCmdline()

	// Physical memory: what the loader says is available, above 1 MiB, minus the image and
	// the modules.
	var top uint64
	for i := 0; i < bootInfo.NMem; i++ {
		r := bootInfo.Mem[i]
		if r.Type != boot.MemAvailable {
			continue
		}
		frames.add(max(r.Base, 1<<20), r.End())
		top = max(top, r.End())
	}
	frames.reserve(imageStart, uint64(imageEnd()))
	for i := 0; i < bootInfo.NMods; i++ {
		frames.reserve(bootInfo.Mods[i].Start, bootInfo.Mods[i].End)
	}
	if frames.total < 16<<20/pageSize {
		kputs("godwit: fatal: less than 16 MiB of usable memory in the loader's map\n")
		halt("no memory")
	}
	// Page 0 (real-mode IVT, BIOS data area) is about to become unmapped so that nil pointers
	// fault; keep a copy for the firmware-table code (the EBDA pointer lives at 0x40E).
	for i := 0; i < pageSize; i += 8 {
		putU64(lowPage[i:], *physU64(uint64(i)))
	}
	if !buildKernelTables(max(top, 4<<30)) {
		halt("out of memory building page tables")
	}
	efer := x86.Rdmsr(msrEFER) | eferSCE
	if hasNX {
		efer |= eferNXE
		nxEnabled = true
	}
	x86.Wrmsr(msrEFER, efer)
	x86.WriteCR3(pml4)

	gdtInit()
	idtInit()
	// SYSCALL: CS from STAR[47:32], SS = CS+8; RIP from LSTAR; RFLAGS &^= FMASK.
	// Intel SDM Vol. 2B, "SYSCALL".
	x86.Wrmsr(msrSTAR, uint64(selKCode)<<32)
	x86.Wrmsr(msrLSTAR, uint64(syscallEntryAddr()))
	x86.Wrmsr(msrFMASK, rflagsIF|rflagsDF|rflagsTF|rflagsAC)

	picDisable()
	lapicInit()
	calibrate()
	wallBootNs = rtcRead()*1e9 - nanotime()
	ioapicRoute(com1IRQ, vecCOM1)
	uartEnableRX()

	threadsInit()
	filesInit()
	idle := &threads[0]
	idle.regs = TrapFrame{IP: uint64(idleLoopAddr()), CS: selKCode, SS: selKData, Flags: 0x202,
		SP: uint64(uintptr(unsafe.Pointer(&stackIdle[0]))) + uint64(len(stackIdle))}
	idle.state = tRunnable
	copyPhys(fxAddr(0), uint64(uintptr(unsafe.Pointer(&fxInitImage[0]))), fxSize)

	m := newThread()
	mt := &threads[m]
	mt.regs = TrapFrame{IP: uint64(rt0), CS: selKCode, SS: selKData, Flags: 0x202, SP: buildInitialStack()}
	mt.altstack.flags = ssDisable
	mt.state = tRunnable
	copyPhys(fxAddr(m), uint64(uintptr(unsafe.Pointer(&fxInitImage[0]))), fxSize)
	cur = m
	curFX = fxAddr(m)
	curFS = 0
	*(*TrapFrame)(unsafe.Pointer(&kstack[kstackSize-frameSize])) = mt.regs
	kinitNs = nanotime()
	kputs("godwit: ring 0 ready: ")
	kputdec(frames.total * pageSize >> 20)
	kputs(" MiB, TSC ")
	kputdec(tscHz / 1_000_000)
	kputs(" MHz; entering the Go runtime\n")
	armTimer(timeslice)
}

// buildInitialStack lays out argc, argv, envp and auxv as Linux does at process start.
// System V AMD64 ABI, 3.4.1 "Initial Stack and Register State".
func buildInitialStack() uint64 {
	top := uint64(uintptr(unsafe.Pointer(&stackMain[0]))) + mainStack
	p := top - 64
	name := p
	copy(physBytes(name, 7), "godwit\x00")
	rnd := p + 16
	for i := uint64(0); i < 16; i += 8 {
		*physU64(rnd + i) = randomU64()
	}
	words := [...]uint64{
		1, name, 0, // argc, argv[0], argv terminator
		0,                  // envp terminator
		atPagesz, pageSize, // auxv
		atRandom, rnd,
		atNull, 0,
	}
	sp := (p - uint64(len(words))*8) &^ 15
	for i, w := range words {
		*physU64(sp + uint64(i)*8) = w
	}
	return sp
}

// parseEarlyCmdline looks for the options the layer itself honors.
func parseEarlyCmdline() {
	c := bootInfo.Cmdline[:bootInfo.CmdlineLen]
	const opt = "godwit.strace=1"
	for i := 0; i+len(opt) <= len(c); i++ {
		if (i == 0 || c[i-1] == ' ') && string(c[i:i+len(opt)]) == opt &&
			(i+len(opt) == len(c) || c[i+len(opt)] == ' ') {
			straceOn = true
		}
	}
}
