package svm

// vmrun enters the guest whose VMCB is at physical address vmcb (the run block follows it)
// and returns after the next #VMEXIT with the host state as it was: GIF is cleared around the
// switch, the host's FPU/SSE state is saved with FXSAVE64 and the guest's loaded, the host's
// FS/GS/TR/LDTR, KernelGSBase, STAR/LSTAR/CSTAR/SFMASK and SYSENTER MSRs are saved with
// VMSAVE to the host save page and the guest's loaded with VMLOAD from the VMCB, and the
// guest's general registers other than RAX and RSP are loaded from and stored to the run
// block. Host interrupts that arrived meanwhile are taken right after STGI, before vmrun
// returns. The caller checked the state first (a VMRUN #GP would fault with GIF clear).
// AMD APM Vol. 2, 15.5 "VMRUN Instruction", 15.6 "#VMEXIT", 15.17 "Global Interrupt Flag".
// Implemented in svm_amd64.s.
func vmrun(vmcb uint64)
