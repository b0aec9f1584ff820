package vmx

import (
	"encoding/binary"
	"fmt"

	"github.com/godwit-hv/godwit/hv"
)

const (
	eferLME  = 1 << 8
	eferLMA  = 1 << 10
	rflagsVM = 1 << 17
)

// SetState loads the whole architectural state. It first checks the state against the VM-entry
// guest-state checks Godwit can evaluate (check.go), so that a bad state is reported with the
// rule it breaks instead of a bare exit reason 33 at the next entry.
func (v *VCPU) SetState(s *hv.CPUState) error {
	if v.closed {
		return ErrClosed
	}
	st := *s
	// EFER.LMA follows LME and CR0.PG, as the processor would set it.
	st.EFER &^= eferLMA
	if st.EFER&eferLME != 0 && st.CR0&cr0PG != 0 {
		st.EFER |= eferLMA
	}
	caps := &v.vm.b.caps
	if err := checkGuest(&st, caps); err != nil {
		return fmt.Errorf("vmx: vcpu %d: guest state: %w", v.id, err)
	}
	var pdpte [4]uint64
	if st.CR0&cr0PG != 0 && st.CR4&cr4PAE != 0 && st.EFER&eferLMA == 0 {
		// PAE paging with EPT: VM entry loads the PDPTEs from the VMCS, not from guest memory.
		// Intel SDM Vol. 3C, 27.3.2.4 "Loading Page-Directory-Pointer-Table Entries".
		b, err := v.vm.mem.Slice(st.CR3&0xFFFFFFE0, 32)
		if err != nil {
			return fmt.Errorf("vmx: vcpu %d: PAE PDPTEs at CR3 %#x: %w", v.id, st.CR3, err)
		}
		for i := range pdpte {
			pdpte[i] = binary.LittleEndian.Uint64(b[i*8:])
		}
	}
	cr0, cr0Mask := caps.guestCR0(st.CR0)
	cr4, cr4Mask := caps.guestCR4(st.CR4)
	entry := v.ctl.Entry &^ entryIA32eModeGuest
	if st.EFER&eferLMA != 0 {
		entry |= entryIA32eModeGuest
	}
	var intr uint64
	if st.InterruptShadow {
		// Blocking by STI requires RFLAGS.IF = 1 (27.3.1.5); otherwise it was a MOV SS.
		if st.RFLAGS&(1<<9) != 0 {
			intr = interruptibilitySTI
		} else {
			intr = interruptibilityMOVS
		}
	}

	flags := cli()
	defer restoreFlags(flags)
	if err := v.load(); err != nil {
		return fmt.Errorf("vmx: vcpu %d: %w", v.id, err)
	}
	var b batch
	b.w(entryControls, uint64(entry))
	b.w(guestCR0, cr0)
	b.w(cr0GuestHostMask, cr0Mask)
	b.w(cr0ReadShadow, st.CR0)
	b.w(guestCR3, st.CR3)
	b.w(guestCR4, cr4)
	b.w(cr4GuestHostMask, cr4Mask)
	b.w(cr4ReadShadow, st.CR4)
	b.w(guestEFER, st.EFER)
	b.w(tscOffset, st.TSCOffset)
	if v.ctl.PAT {
		b.w(guestPAT, st.PAT)
	}
	b.w(guestDR7, st.DR7)
	b.w(guestRSP, st.GPR[hv.RSP])
	b.w(guestRIP, st.RIP)
	b.w(guestRFLAGS, st.RFLAGS)
	for _, sg := range []struct {
		f segFields
		s *hv.Segment
	}{{segES, &st.ES}, {segCS, &st.CS}, {segSS, &st.SS}, {segDS, &st.DS}, {segFS, &st.FS},
		{segGS, &st.GS}, {segLDTR, &st.LDTR}, {segTR, &st.TR}} {
		b.w(sg.f.sel, uint64(sg.s.Selector))
		b.w(sg.f.limit, uint64(sg.s.Limit))
		b.w(sg.f.ar, uint64(accessRights(sg.s.Attr, sg.f == segTR)))
		b.w(sg.f.base, sg.s.Base)
	}
	b.w(guestGDTRBase, st.GDTR.Base)
	b.w(guestGDTRLimit, uint64(st.GDTR.Limit))
	b.w(guestIDTRBase, st.IDTR.Base)
	b.w(guestIDTRLimit, uint64(st.IDTR.Limit))
	b.w(guestInterruptibility, intr)
	b.w(guestActivityState, 0) // active
	b.w(guestPendingDbg, 0)
	b.w(guestDebugCtl, 0)
	for i, f := range []field{guestPDPTE0, guestPDPTE1, guestPDPTE2, guestPDPTE3} {
		b.w(f, pdpte[i])
	}
	if b.err != nil {
		return fmt.Errorf("vmx: vcpu %d: %w", v.id, b.err)
	}
	v.ctl.Entry = entry
	v.regs.gpr = st.GPR
	v.regs.cr2 = st.CR2
	return nil
}

// State reads the whole architectural state back. CR0 and CR4 are what the guest sees: the bits
// VMX forces (CR0.NE, CR4.VMXE) read as the guest last wrote them.
func (v *VCPU) State(s *hv.CPUState) error {
	if v.closed {
		return ErrClosed
	}
	flags := cli()
	defer restoreFlags(flags)
	if err := v.load(); err != nil {
		return fmt.Errorf("vmx: vcpu %d: %w", v.id, err)
	}
	var b batch
	s.GPR = v.regs.gpr
	s.GPR[hv.RSP] = b.r(guestRSP)
	s.CR2 = v.regs.cr2
	s.RIP = b.r(guestRIP)
	s.RFLAGS = b.r(guestRFLAGS)
	s.TSCOffset = b.r(tscOffset)
	cr0Mask := b.r(cr0GuestHostMask)
	s.CR0 = b.r(guestCR0)&^cr0Mask | b.r(cr0ReadShadow)&cr0Mask
	cr4Mask := b.r(cr4GuestHostMask)
	s.CR4 = b.r(guestCR4)&^cr4Mask | b.r(cr4ReadShadow)&cr4Mask
	s.CR3 = b.r(guestCR3)
	s.EFER = b.r(guestEFER)
	if v.ctl.PAT {
		s.PAT = b.r(guestPAT)
	}
	s.DR7 = b.r(guestDR7)
	for _, sg := range []struct {
		f segFields
		s *hv.Segment
	}{{segES, &s.ES}, {segCS, &s.CS}, {segSS, &s.SS}, {segDS, &s.DS}, {segFS, &s.FS},
		{segGS, &s.GS}, {segLDTR, &s.LDTR}, {segTR, &s.TR}} {
		sg.s.Selector = uint16(b.r(sg.f.sel))
		sg.s.Limit = uint32(b.r(sg.f.limit))
		sg.s.Attr = segAttr(uint32(b.r(sg.f.ar)))
		sg.s.Base = b.r(sg.f.base)
	}
	s.GDTR = hv.Table{Base: b.r(guestGDTRBase), Limit: uint32(b.r(guestGDTRLimit))}
	s.IDTR = hv.Table{Base: b.r(guestIDTRBase), Limit: uint32(b.r(guestIDTRLimit))}
	s.InterruptShadow = b.r(guestInterruptibility)&(interruptibilitySTI|interruptibilityMOVS) != 0
	if b.err != nil {
		return fmt.Errorf("vmx: vcpu %d: %w", v.id, b.err)
	}
	return nil
}

// GuestMSR returns a guest MSR that VMX switches: the SYSCALL MSRs and KERNEL_GS_BASE (through
// the MSR areas), SYSENTER_CS/ESP/EIP and FS/GS base (guest-state fields). The core, which
// emulates RDMSR/WRMSR, routes these here; ok is false for any other MSR. EFER and PAT are in
// hv.CPUState.
func (v *VCPU) GuestMSR(msr uint32) (val uint64, ok bool, err error) {
	if i, ok := areaIndex(msr); ok {
		return binary.LittleEndian.Uint64(v.msrArea()[i*msrEntrySize+8:]), true, nil
	}
	f, ok := msrField(msr)
	if !ok {
		return 0, false, nil
	}
	flags := cli()
	defer restoreFlags(flags)
	if err := v.load(); err != nil {
		return 0, true, err
	}
	var b batch
	val = b.r(f)
	return val, true, b.err
}

// SetGuestMSR sets one of the MSRs GuestMSR reads. A non-canonical address is the caller's to
// refuse (#GP) before calling.
func (v *VCPU) SetGuestMSR(msr uint32, val uint64) (ok bool, err error) {
	if i, ok := areaIndex(msr); ok {
		binary.LittleEndian.PutUint64(v.msrArea()[i*msrEntrySize+8:], val)
		return true, nil
	}
	f, ok := msrField(msr)
	if !ok {
		return false, nil
	}
	flags := cli()
	defer restoreFlags(flags)
	if err := v.load(); err != nil {
		return true, err
	}
	var b batch
	b.w(f, val)
	return true, b.err
}

func areaIndex(msr uint32) (int, bool) {
	for i, m := range switchedMSRs {
		if m == msr {
			return i, true
		}
	}
	return 0, false
}

func msrField(msr uint32) (field, bool) {
	switch msr {
	case msrSysenterCS:
		return guestSysenterCS, true
	case msrSysenterESP:
		return guestSysenterESP, true
	case msrSysenterEIP:
		return guestSysenterEIP, true
	case msrFSBase:
		return guestFSBase, true
	case msrGSBase:
		return guestGSBase, true
	}
	return 0, false
}
