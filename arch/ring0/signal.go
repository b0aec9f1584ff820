package ring0

// Linux signal delivery, enough for the Go runtime: asynchronous preemption (tgkill SIGURG) and
// faults turned into panics (SIGSEGV with the faulting address). The frame is Linux's x86-64
// rt_sigframe: the return address (sa_restorer), a ucontext with the interrupted registers, a
// siginfo, and the FXSAVE image. arch/x86/kernel/signal.c, uapi/asm/sigcontext.h, ucontext.h.

const (
	saSiginfo = 0x4
	saOnstack = 0x08000000
	saRestart = 0x10000000
	saNodefer = 0x40000000
	ssOnstack = 1
	ssDisable = 2
	sigMax    = 64

	// rt_sigframe layout.
	frRestorer  = 0
	frUcontext  = 8
	ucFlags     = 0
	ucLink      = 8
	ucStack     = 16  // stack_t: ss_sp, ss_flags (+pad), ss_size
	ucMcontext  = 40  // struct sigcontext
	ucSigmask   = 296 // after the 256-byte sigcontext
	ucSize      = 304
	frSiginfo   = frUcontext + ucSize
	siginfoSize = 128
	frSize      = frSiginfo + siginfoSize

	// struct sigcontext (64-bit) offsets.
	scR8      = 0
	scRDI     = 64
	scRSI     = 72
	scRBP     = 80
	scRBX     = 88
	scRDX     = 96
	scRAX     = 104
	scRCX     = 112
	scRSP     = 120
	scRIP     = 128
	scEFLAGS  = 136
	scCSGSFS  = 144
	scErr     = 152
	scTrapno  = 160
	scOldmask = 168
	scCR2     = 176
	scFpstate = 184

	// siginfo offsets.
	siSigno = 0
	siCode  = 8
	siAddr  = 16
	siPid   = 16
)

type sigaction struct {
	handler, flags, restorer, mask uint64
}

var (
	sigactions [sigMax + 1]sigaction
	signalsOut uint64
)

// deliverSignal builds a signal frame for the lowest pending unblocked signal of t and points
// t at its handler.
func deliverSignal(t *thread) {
	ready := t.pending &^ t.sigmask
	sig := 1
	for ready&1 == 0 {
		ready >>= 1
		sig++
	}
	t.pending &^= 1 << (sig - 1)
	h := sigactions[sig]
	if h.handler == 0 || h.handler == 1 {
		// SIG_DFL / SIG_IGN: SIGURG's default is to ignore; the runtime installs handlers for
		// everything else it expects.
		return
	}
	fault := t.faultTrap != 0 && (sig == sigSEGV || sig == sigBUS || sig == sigFPE || sig == sigILL || sig == sigTRAP)

	sp := t.regs.SP - 128 // the red zone
	onAlt := t.altstack.flags&ssDisable == 0 && t.altstack.size != 0 &&
		sp >= t.altstack.sp && sp < t.altstack.sp+t.altstack.size
	if h.flags&saOnstack != 0 && t.altstack.flags&ssDisable == 0 && t.altstack.size != 0 && !onAlt {
		sp = t.altstack.sp + t.altstack.size
	}
	sp = (sp - fxSize) &^ 63
	fx := sp
	sp = ((sp - frSize) &^ 15) - 8 // at handler entry, (RSP+8) is 16-byte aligned
	if !userRange(sp, fx+fxSize-sp, true) {
		kputs("\ngodwit: fatal: cannot write a signal frame for signal ")
		kputdec(uint64(sig))
		kputs("\n")
		fatalFrame("bad signal stack", &t.regs)
	}
	clear(physBytes(sp, frSize))
	copyPhys(fx, fxAddr(t.indexOf()), fxSize)
	put := func(off uint64, v uint64) { *physU64(sp + off) = v }
	put(frRestorer, h.restorer)
	uc := uint64(frUcontext)
	put(uc+ucStack, t.altstack.sp)
	put(uc+ucStack+8, uint64(t.altstack.flags))
	put(uc+ucStack+16, t.altstack.size)
	mc := uc + ucMcontext
	r := &t.regs
	regs := [16]uint64{r.R8, r.R9, r.R10, r.R11, r.R12, r.R13, r.R14, r.R15, r.DI, r.SI, r.BP, r.BX, r.DX, r.AX, r.CX, r.SP}
	for i, v := range regs {
		put(mc+scR8+uint64(i)*8, v)
	}
	put(mc+scRIP, r.IP)
	put(mc+scEFLAGS, r.Flags)
	put(mc+scCSGSFS, selKCode|selKData<<48)
	if fault {
		put(mc+scErr, r.Err)
		put(mc+scTrapno, t.faultTrap)
		put(mc+scCR2, t.faultAddr)
	}
	put(mc+scOldmask, t.sigmask)
	put(mc+scFpstate, fx)
	put(uc+ucSigmask, t.sigmask)
	info := uint64(frSiginfo)
	*(*int32)(physPtr(sp + info + siSigno)) = int32(sig)
	if fault {
		*(*int32)(physPtr(sp + info + siCode)) = t.faultCode
		put(info+siAddr, t.faultAddr)
		t.faultTrap = 0
	} else {
		*(*int32)(physPtr(sp + info + siCode)) = siTkill
		*(*int32)(physPtr(sp + info + siPid)) = 1
	}

	if h.flags&saNodefer == 0 {
		t.sigmask |= 1 << (sig - 1)
	}
	t.sigmask |= h.mask
	r.SP = sp
	r.IP = h.handler
	r.DI = uint64(sig)
	r.SI = sp + info
	r.DX = sp + uc
	r.AX = 0
	r.Flags &^= 1<<10 | 1<<8 // DF, TF
	signalsOut++
}

// sigreturn restores the context saved by deliverSignal; the ucontext is at the caller's RSP
// (the handler's RET consumed the return address).
func sigreturn(t *thread) {
	uc := t.regs.SP
	if !userRange(uc, ucSize, false) {
		fatalFrame("rt_sigreturn with a bad frame", &t.regs)
	}
	get := func(off uint64) uint64 { return *physU64(uc + off) }
	mc := uint64(ucMcontext)
	r := &t.regs
	dst := [16]*uint64{&r.R8, &r.R9, &r.R10, &r.R11, &r.R12, &r.R13, &r.R14, &r.R15, &r.DI, &r.SI, &r.BP, &r.BX, &r.DX, &r.AX, &r.CX, &r.SP}
	for i, p := range dst {
		*p = get(mc + scR8 + uint64(i)*8)
	}
	r.IP = get(mc + scRIP)
	// Keep IF set and the kernel segments: the handler cannot change privilege here.
	r.Flags = get(mc+scEFLAGS)&0xCD5 | 0x202
	r.CS, r.SS = selKCode, selKData
	t.sigmask = get(ucSigmask) &^ (1<<(sigKILL-1) | 1<<(19-1))
	if fx := get(mc + scFpstate); fx != 0 && userRange(fx, fxSize, false) {
		copyPhys(fxAddr(t.indexOf()), fx, fxSize)
		// Keep MXCSR sane: a reserved bit set would #GP on FXRSTOR.
		a := fxArea(t.indexOf())
		a[26], a[27] = 0, 0
	}
}

func (t *thread) indexOf() int {
	for i := range threads {
		if &threads[i] == t {
			return i
		}
	}
	return 0
}
