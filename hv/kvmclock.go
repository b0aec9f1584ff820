package hv

import (
	"encoding/binary"
	"math/bits"
	"time"
)

// Godwit offers Linux guests the KVM paravirtual clock ("kvmclock"), the way VirtualBox's KVM
// paravirtualization provider does: Linux names only the hypervisors it knows, and the KVM
// interface is the documented one (Linux Documentation/virt/kvm/x86/cpuid.rst and msr.rst) that
// gives a guest an exact TSC frequency and a stable clocksource without calibrating against
// emulated timers. Only what is implemented here is advertised: CLOCKSOURCE2 and the stable
// bit. Godwit's own leaves stay at 0x40000000; the KVM ones sit at 0x40000100, where Linux
// looks for them (it scans the hypervisor range in steps of 0x100).

// KVM CPUID leaves and feature bits. Linux Documentation/virt/kvm/x86/cpuid.rst.
const (
	kvmLeaf                = HypervisorLeaf + 0x100
	kvmSignature           = "KVMKVMKVM\x00\x00\x00"
	kvmFeatureClocksource2 = 1 << 3  // KVM_FEATURE_CLOCKSOURCE2: MSRs 0x4b564d00/01
	kvmFeatureStableBit    = 1 << 24 // KVM_FEATURE_CLOCKSOURCE_STABLE_BIT
)

// kvmclock MSRs. Linux Documentation/virt/kvm/x86/msr.rst.
const (
	MSRKVMWallClock  = 0x4b564d00 // MSR_KVM_WALL_CLOCK_NEW: guest address of pvclock_wall_clock
	MSRKVMSystemTime = 0x4b564d01 // MSR_KVM_SYSTEM_TIME_NEW: guest address of pvclock_vcpu_time_info | enable
	kvmSystemTimeEn  = 1 << 0
	pvclockStable    = 1 << 0 // PVCLOCK_TSC_STABLE_BIT
	pvclockTimeSize  = 32     // sizeof(struct pvclock_vcpu_time_info)
	pvclockWallSize  = 12     // sizeof(struct pvclock_wall_clock)
)

// clockBase is the VM's time origin: the guest TSC and the wall-clock time at which kvmclock's
// system time is 0.
type clockBase struct {
	tsc   uint64 // guest TSC at system time 0
	wall  time.Time
	tscHz uint64
}

// pvclockScale returns mul and shift such that ns = ((tsc delta) shifted by shift) * mul >> 32
// for a TSC running at hz, with mul in [2^31, 2^32) for precision.
func pvclockScale(hz uint64) (mul uint32, shift int8) {
	// ns per tick = 1e9/hz = mul/2^32 * 2^shift.
	for shift = -31; shift < 31; shift++ {
		// mul = 1e9 * 2^(32-shift) / hz
		e := 32 - int(shift)
		var hi, lo uint64
		if e >= 64 {
			hi, lo = uint64(1e9)<<(e-64), 0
		} else {
			hi, lo = bits.Mul64(uint64(1e9), 1<<uint(e))
		}
		if hi >= hz {
			continue // quotient overflows 64 bits: shift is too small
		}
		q, _ := bits.Div64(hi, lo, hz)
		if q < 1<<32 && q >= 1<<31 {
			return uint32(q), shift
		}
	}
	return 1 << 31, 1 // 2 ns per tick: only for absurd frequencies
}

// writeSystemTime fills a pvclock_vcpu_time_info at gpa. Layout (Linux
// arch/x86/include/asm/pvclock-abi.h): u32 version, u32 pad, u64 tsc_timestamp,
// u64 system_time, u32 tsc_to_system_mul, s8 tsc_shift, u8 flags, u8 pad[2]. The version is
// odd while the host updates and even when consistent.
func (b *clockBase) writeSystemTime(mem *Memory, gpa uint64) error {
	p, err := mem.Slice(gpa, pvclockTimeSize)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	ver := le.Uint32(p[0:])
	le.PutUint32(p[0:], ver|1)
	mul, shift := pvclockScale(b.tscHz)
	le.PutUint64(p[8:], b.tsc)
	le.PutUint64(p[16:], 0)
	le.PutUint32(p[24:], mul)
	p[28] = byte(shift)
	p[29] = pvclockStable
	le.PutUint32(p[0:], (ver|1)+1)
	return nil
}

// writeWallClock fills a pvclock_wall_clock at gpa: u32 version, u32 sec, u32 nsec, the wall
// time at which system time was 0.
func (b *clockBase) writeWallClock(mem *Memory, gpa uint64) error {
	p, err := mem.Slice(gpa, pvclockWallSize)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	ver := le.Uint32(p[0:])
	le.PutUint32(p[0:], ver|1)
	le.PutUint32(p[4:], uint32(b.wall.Unix()))
	le.PutUint32(p[8:], uint32(b.wall.Nanosecond()))
	le.PutUint32(p[0:], (ver|1)+1)
	return nil
}

// kvmMSR handles the kvmclock MSRs. handled is false for other MSRs; ok false means #GP.
func (c *vcpu) kvmMSR(msr uint32, v *uint64, write bool) (handled, ok bool) {
	switch msr {
	case MSRKVMWallClock, MSRKVMSystemTime:
	default:
		return false, false
	}
	if !write {
		if msr == MSRKVMSystemTime {
			*v = c.kvmTime
		} else {
			*v = 0
		}
		return true, true
	}
	cb := &c.vm.clock
	if msr == MSRKVMWallClock {
		return true, cb.writeWallClock(c.vm.mem, *v) == nil
	}
	c.kvmTime = *v
	if *v&kvmSystemTimeEn == 0 {
		return true, true
	}
	return true, cb.writeSystemTime(c.vm.mem, *v&^kvmSystemTimeEn) == nil
}
