package vmx_test

import (
	"os"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/internal/rig"
)

// TestBochsDebugVMX boots the kernel under Bochs (corei7_skylake_x: VMX with EPT, unrestricted
// guest, VPID) and runs the admin shell's debug-vmx: VMXON, a VMCS, EPT over 2 MiB of guest RAM,
// a real-mode guest that does OUT, IN, OUT imm8, CPUID, takes an injected external interrupt
// once STI opens the window, spins (host timer interrupts exit it) and halts.
// GODWIT_VMX_IMAGE boots another kernel than the rig's default (for example a private build).
func TestBochsDebugVMX(t *testing.T) {
	m := rig.Bochs(t, rig.Options{Image: os.Getenv("GODWIT_VMX_IMAGE"), Name: "vmx"})
	m.Expect("godwit> ", 3*time.Minute)
	m.SendLine("debug-vmx caps")
	m.Expect("IA32_VMX_TRUE_ENTRY_CTLS", time.Minute)
	m.Expect("godwit> ", time.Minute)
	m.SendLine("debug-vmx")
	m.Expect("VMXON ok", time.Minute)
	for _, re := range []string{
		`exit io +raw 30 "I/O instruction" +port 0x3f8 size 1 out al=0x56 rip 0x1005 next 0x1006`,
		`exit io +raw 30 "I/O instruction" +port 0x3f8 size 1 in .* rip 0x1006 next 0x1007`,
		`exit io +raw 30 "I/O instruction" +port 0x80 size 1 out .* rip 0x1007 next 0x1009`,
		`exit cpuid +raw 10 "CPUID" +leaf 0x0 rip 0x100c next 0x100e`,
		`exit io +raw 30 "I/O instruction" +port 0x81 size 1 out al=0xaa rip 0x1102 next 0x1104`,
		`exit hlt +raw 12 "HLT" +rip 0x1018 next 0x1019`,
		`guest halted; \d+ host interrupts while it ran; ecx = 0\r\n`,
	} {
		m.ExpectRegexp(re, time.Minute)
	}
	m.Expect("godwit> ", time.Minute)

	// 32-bit protected mode without paging, and 64-bit mode with the guest's own page tables:
	// a port write, then a store beyond guest RAM (an EPT violation, reported as MMIO).
	for _, tc := range []struct{ mode, char, hlt string }{{"pm", "0x50", "0x100c"}, {"long", "0x4c", "0x100e"}} {
		m.SendLine("debug-vmx " + tc.mode)
		m.ExpectRegexp(`exit io +raw 30 "I/O instruction" +port 0x3f8 size 1 out al=`+tc.char+` rip 0x1006 next 0x1007`, time.Minute)
		m.ExpectRegexp(`exit mmio +raw 48 "EPT violation" +gpa 0x400000 write true fetch false rip 0x1007`, time.Minute)
		m.ExpectRegexp(`exit hlt +raw 12 "HLT" +rip `+tc.hlt, time.Minute)
		m.Expect("godwit> ", time.Minute)
	}

	// A failed VM entry is reported, and the host carries on.
	m.SendLine("debug-vmx bad")
	m.ExpectRegexp(`exit invalid-state +raw 33 "VM-entry failure due to invalid guest state"`, time.Minute)
	m.Expect("debug-vmx: unexpected exit invalid-state", time.Minute)
	m.SendLine("debug-vmx")
	m.Expect("guest halted", time.Minute)
}
