// Package svm is Godwit's AMD-V backend: it implements hv.Backend, hv.BackendVM and
// hv.BackendVCPU with a VMCB per vCPU, nested paging (package ept with Kind NPT) for guest
// memory, an ASID per vCPU, and VMRUN in svm_amd64.s.
//
// Host set-up (New): the CPU must report SVM and nested paging and VM_CR.SVMDIS must be clear,
// else hv.ErrNoHardware is returned wrapped with the reason. New sets EFER.SVME and points
// VM_HSAVE_PA at a page of its own, once: Godwit drives one host CPU for now, and every
// vCPU's Run must happen on it.
//
// What the guest cannot do: every I/O port and every MSR is intercepted (IOPM and MSRPM all
// ones), as are INTR, NMI, SMI, INIT, SHUTDOWN, HLT, CPUID, INVD, XSETBV, VMMCALL and all SVM
// instructions (VMRUN, VMLOAD, VMSAVE, STGI, CLGI, SKINIT, INVLPGA), and the exceptions #DB,
// #AC and #MC. V_INTR_MASKING is set, so the host's RFLAGS.IF, not the guest's, gates host
// interrupts; one that arrives while the guest runs ends the run (VMEXIT_INTR) and is taken
// by arch/ring0's IDT right after STGI, and Run returns hv.ExitInterrupt.
//
// Entry checks: before each VMRUN the state is checked in Go against the list of AMD APM
// Vol. 2, 15.5.1 "Canonicalization and Consistency Checks" (check.go). A state that fails is
// not entered; Run returns an hv.ExitInvalidState exit whose Detail names the failed checks,
// as it does when the hardware itself answers VMEXIT_INVALID. A guest can end a run but never
// the host: Run returns exits or errors and does not panic.
//
// Instruction length: with NRIPS (Bochs `ryzen`) the VMCB's nRIP gives hv.Exit.NextRIP for
// instruction intercepts; without it (QEMU TCG) NextRIP is 0 except for I/O, whose EXITINFO2
// always holds the next RIP, and the core decodes the instruction. No decode assists are used.
//
// The hot path: Run does not allocate for the exits the core handles in a loop (I/O, MMIO,
// CPUID, MSR, HLT, interrupt, interrupt window, hypercall); Details of unhandled and invalid
// exits are formatted. vmrun is NOSPLIT assembly that runs with GIF clear.
//
// Manual references are to the AMD64 Architecture Programmer's Manual, Vol. 2 "System
// Programming" (chapter 15 "Secure Virtual Machine", Appendix B "Layout of VMCB", Appendix C
// "SVM Intercept Exit Codes"); section numbers are from revision 3.4x, titles are given so they
// can be found in any edition.
package svm
