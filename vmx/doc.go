// Package vmx is Godwit's Intel VT-x backend: it implements hv.Backend with VMX operation,
// one VMCS per vCPU, EPT (package ept) and unrestricted guest, so guests start in real mode,
// protected mode without paging, or long mode.
//
// # Use
//
//	b, err := vmx.Enable()            // capability checks, IA32_FEATURE_CONTROL, CR4.VMXE, VMXON
//	vm, err := b.NewVM(mem)           // EPT: mem at guest-physical 0, RWX, write-back; INVEPT
//	cpu, err := vm.NewVCPU(0)         // VMCS, bitmaps, MSR areas, VPID
//	err = cpu.SetState(&state)        // checked in Go against the VM-entry guest-state rules
//	exit, err := cpu.Run()            // VMLAUNCH/VMRESUME until the next exit the core handles
//
// After changing the EPT tables (vm.(*VM).EPT()) in a way that reports flush, call
// (*VM).InvalidateEPT. MSRs that VMX switches for the guest (STAR, LSTAR, FMASK,
// KERNEL_GS_BASE through the MSR-load/-store areas; SYSENTER_*, FS/GS base in the VMCS) are
// read and written with (*VCPU).GuestMSR and SetGuestMSR: the core, which intercepts every
// RDMSR/WRMSR, routes them there.
//
// # Host protection
//
// Every I/O port and every MSR is intercepted (bitmaps all ones), and so are HLT, MWAIT,
// MONITOR and MOV to/from CR8 (without a TPR shadow a 64-bit guest would write the host's TPR).
// The host's SYSCALL MSRs are reloaded on every VM exit from the VM-exit MSR-load area, so a
// guest can never leave its LSTAR in place for the host. External interrupts cause VM exits
// without being acknowledged: the interrupt stays pending and the host takes it through its
// own IDT when Run re-enables interrupts (hv.ExitInterrupt). The guest's FPU/SSE state is
// swapped with the host's around every entry (FXSAVE64/FXRSTOR64; the host kernel does not
// enable XSAVE). A failed VM entry returns an error or hv.ExitInvalidState; nothing in the
// package panics on a guest's account.
//
// # Concurrency and hot paths
//
// Godwit's kernel runs on one CPU: VMX operation is per machine, and "the current VMCS" is a
// package variable. The ring-0 scheduler may switch threads at any interrupt, and another
// vCPU thread may then make its own VMCS current, so every batch of VMREAD/VMWRITE runs with
// interrupts disabled and first makes its VMCS current (VMPTRLD only when it is not). Run
// keeps interrupts disabled from the host-state writes through VMLAUNCH/VMRESUME to the reads
// of the exit information: the Go code in that window calls only NOSPLIT assembly and does not
// allocate on the common exits (I/O, CPUID, HLT, MSR, MMIO, interrupts). The entry/exit path
// itself (vmxRun, vmxExit in vmx_amd64.s) saves the host's BP, BX, R12-R15 (R14 is g), puts
// the current FS base (Go's TLS) into HOST_FS_BASE, restores the GDTR/IDTR limits VM exits
// truncate, and zeroes X15 for Go's ABI.
//
// # References
//
// Intel SDM Vol. 3C chapters 24-32 (VMX operation, the VMCS, VM entries, VM exits, EPT, the
// VMX instructions) and Vol. 3D appendices A (capability MSRs), B (field encodings) and C (exit
// reasons). Section numbers follow the 2023 and later editions, where the VMCS is chapter 25;
// titles are given so they can be found in older ones.
package vmx
