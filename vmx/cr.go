package vmx

import (
	"errors"
	"fmt"

	"github.com/godwit-hv/godwit/hv"
)

// Guest writes to CR0 and CR4 exit when they change a bit the guest/host mask owns (CR0.NE and
// CR4.VMXE, which VMX operation fixes to 1 and the read shadows hide: caps.go). The write is
// emulated here, as the processor would do it outside VMX operation, so the guest never sees
// the exit: a real-mode guest (an application processor after its start-up IPI) switching to
// protected and long mode sets NE along the way. Intel SDM Vol. 3C, 26.1.3 "Instructions That
// Cause VM Exits Conditionally" (MOV to CR0/CR4, CLTS, LMSW) and Table 28-3 "Exit Qualification
// for Control-Register Accesses".

// CR access types in the exit qualification (bits 5:4).
const (
	crAccessMovTo   = 0
	crAccessMovFrom = 1
	crAccessCLTS    = 2
	crAccessLMSW    = 3
)

// CR0 bits the checks below name. Intel SDM Vol. 3A, 2.5 "Control Registers".
const (
	cr0TS       = 1 << 3
	cr0LMSWBits = 0xF // LMSW loads PE, MP, EM, TS
	cr0Reserved = 0xFFFFFFFF_1FFAFFC0
	cr4LA57     = 1 << 12
)

// errCRUnsupported: an access this file does not emulate (MOV from CR, CR3 or CR8); the core
// sees the exit.
var errCRUnsupported = errors.New("control-register access not emulated")

// errCRFault: the write is invalid and the guest gets #GP, as from the processor.
var errCRFault = errors.New("#GP")

// emulateCR performs a CR0/CR4 write (MOV, CLTS, LMSW) and moves RIP to next. Interrupts may be
// enabled: State and SetState take care of the VMCS.
func (v *VCPU) emulateCR(q crQual, next uint64) error {
	if q.access == crAccessMovFrom || (q.cr != 0 && q.cr != 4) || (q.access != crAccessMovTo && q.cr != 0) {
		return errCRUnsupported
	}
	var s hv.CPUState
	if err := v.State(&s); err != nil {
		return err
	}
	switch q.access {
	case crAccessMovTo:
		val := s.GPR[q.gpr]
		if q.cr == 0 {
			if err := v.checkCR0(&s, val); err != nil {
				return err
			}
			s.CR0 = val
		} else {
			if err := v.checkCR4(&s, val); err != nil {
				return err
			}
			s.CR4 = val
		}
	case crAccessCLTS:
		s.CR0 &^= cr0TS
	case crAccessLMSW:
		// LMSW sets PE but cannot clear it. Intel SDM Vol. 2A, "LMSW".
		s.CR0 = s.CR0&^(cr0LMSWBits&^cr0PE) | uint64(q.lmsw)&cr0LMSWBits
	}
	s.RIP = next
	s.InterruptShadow = false
	if err := v.SetState(&s); err != nil {
		return fmt.Errorf("%s: %w", q, err)
	}
	return nil
}

// checkCR0 applies the #GP conditions of MOV to CR0. Intel SDM Vol. 2B, "MOV—Move to/from
// Control Registers", Protected Mode Exceptions.
func (v *VCPU) checkCR0(s *hv.CPUState, val uint64) error {
	switch {
	case val&cr0Reserved != 0,
		val&cr0PG != 0 && val&cr0PE == 0,
		val&cr0NW != 0 && val&cr0CD == 0,
		// Enabling paging with EFER.LME set requires PAE. Vol. 3A, 10.8.5 "Initializing IA-32e Mode".
		val&cr0PG != 0 && s.CR0&cr0PG == 0 && s.EFER&eferLME != 0 && s.CR4&cr4PAE == 0,
		// Clearing PG while in 64-bit code. Vol. 3A, 10.8.5.4.
		val&cr0PG == 0 && s.EFER&eferLMA != 0 && s.CS.Attr&hv.SegL != 0:
		return errCRFault
	}
	return nil
}

// checkCR4 refuses reserved bits (those VMX operation would not allow, besides VMXE, which the
// guest does not see), and clearing PAE in long mode.
func (v *VCPU) checkCR4(s *hv.CPUState, val uint64) error {
	allowed := v.vm.b.caps.CR4Fixed1 &^ cr4VMXE
	switch {
	case val&^allowed != 0,
		val&cr4PAE == 0 && s.EFER&eferLMA != 0,
		val&cr4LA57 != s.CR4&cr4LA57 && s.EFER&eferLMA != 0:
		return errCRFault
	}
	return nil
}
