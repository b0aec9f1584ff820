package main

import (
	"errors"
	"math/bits"
	"time"

	"github.com/godwit-hv/godwit/arch/ring0"
	"github.com/godwit-hv/godwit/arch/x86"
	"github.com/godwit-hv/godwit/boot"
)

// bareHost is the machine Godwit runs on, seen from the admin shell.
type bareHost struct {
	features x86.Features
}

func newBareHost() *bareHost {
	return &bareHost{features: x86.Probe(x86.Cpuid, x86.Rdmsr)}
}

func (h *bareHost) CPU() x86.Features     { return h.features }
func (h *bareHost) TSCHz() uint64         { return ring0.TSCHz() }
func (h *bareHost) BootInfo() *boot.Info  { return ring0.BootInfo() }
func (h *bareHost) Stats() ring0.Stats    { return ring0.ReadStats() }
func (h *bareHost) Uptime() time.Duration { return time.Duration(ring0.ReadStats().UptimeNs) }
func (h *bareHost) SetStrace(on bool)     { ring0.SetStrace(on) }
func (h *bareHost) Reboot() error         { return reboot() }
func (h *bareHost) Poweroff() error       { return poweroff() }

// tscClock returns a clock reading the TSC directly, independent of the runtime's timers.
func tscClock(hz uint64) func() time.Duration {
	if hz == 0 {
		start := time.Now()
		return func() time.Duration { return time.Since(start) }
	}
	t0 := x86.Rdtsc()
	return func() time.Duration {
		hi, lo := bits.Mul64(x86.Rdtsc()-t0, 1_000_000_000)
		q, _ := bits.Div64(hi, lo, hz) // hi < hz for any uptime below centuries
		return time.Duration(q)
	}
}

var errPowerFailed = errors.New("the machine is still running")
