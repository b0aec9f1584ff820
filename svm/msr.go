package svm

import "fmt"

// Guest MSRs whose values live in the VMCB. hv.CPUState has no room for them, but a core that
// emulates RDMSR/WRMSR (every MSR is intercepted) must read and write the guest's real
// values: GuestMSR and SetGuestMSR give access. AMD APM Vol. 2, Table B-2; 15.5.2 "VMSAVE and
// VMLOAD Instructions" for the ones VMLOAD/VMSAVE move.
const (
	MSRSysenterCS   = 0x174
	MSRSysenterESP  = 0x175
	MSRSysenterEIP  = 0x176
	MSRDebugCtl     = 0x1D9
	MSRPAT          = 0x277
	MSREFER         = 0xC000_0080
	MSRSTAR         = 0xC000_0081
	MSRLSTAR        = 0xC000_0082
	MSRCSTAR        = 0xC000_0083
	MSRSFMASK       = 0xC000_0084
	MSRFSBase       = 0xC000_0100
	MSRGSBase       = 0xC000_0101
	MSRKernelGSBase = 0xC000_0102
)

func (v *VCPU) msrField(msr uint32) *uint64 {
	s := &v.vmcb.Save
	switch msr {
	case MSRSysenterCS:
		return &s.SysenterCS
	case MSRSysenterESP:
		return &s.SysenterESP
	case MSRSysenterEIP:
		return &s.SysenterEIP
	case MSRDebugCtl:
		return &s.DBGCTL
	case MSRPAT:
		return &s.GPAT
	case MSRSTAR:
		return &s.STAR
	case MSRLSTAR:
		return &s.LSTAR
	case MSRCSTAR:
		return &s.CSTAR
	case MSRSFMASK:
		return &s.SFMASK
	case MSRFSBase:
		return &s.FS.Base
	case MSRGSBase:
		return &s.GS.Base
	case MSRKernelGSBase:
		return &s.KernelGSBase
	}
	return nil
}

// GuestMSR returns the guest's value of an MSR kept in the VMCB (EFER without SVME), and false
// for other MSRs.
func (v *VCPU) GuestMSR(msr uint32) (val uint64, ok bool, err error) {
	if v.closed {
		return 0, false, fmt.Errorf("svm: msr %#x: vcpu closed", msr)
	}
	if msr == MSREFER {
		return v.vmcb.Save.EFER &^ eferSVME, true, nil
	}
	if p := v.msrField(msr); p != nil {
		return *p, true, nil
	}
	return 0, false, nil
}

// SetGuestMSR sets the guest's value of an MSR kept in the VMCB. The core validates the value
// as WRMSR would (reserved bits, canonical addresses) before calling it.
func (v *VCPU) SetGuestMSR(msr uint32, val uint64) (ok bool, err error) {
	if v.closed {
		return false, fmt.Errorf("svm: set msr %#x: vcpu closed", msr)
	}
	if msr == MSREFER {
		if v.vmcb.Save.EFER&^eferSVME != val {
			v.flushReq.Store(true)
		}
		v.vmcb.Save.EFER = val | eferSVME
		return true, nil
	}
	p := v.msrField(msr)
	if p == nil {
		return false, nil
	}
	*p = val
	return true, nil
}
