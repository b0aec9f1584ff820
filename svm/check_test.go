package svm

import (
	"strings"
	"testing"

	"github.com/godwit-hv/godwit/hv"
)

var testLimits = checkLimits{maxPhysAddr: 40, longMode: true}

// goodVMCB is a VMCB as NewVCPU leaves it, holding st.
func goodVMCB(st hv.CPUState) *VMCB {
	v := newTestVCPU()
	v.setState(&st)
	return v.vmcb
}

func longModeState() hv.CPUState {
	s := hv.CPUState{
		RIP: 0x10_0000, RFLAGS: rflagsReserved1, CR0: 0x8000_0011, CR3: 0x9000, CR4: cr4PAE,
		EFER: eferLME | eferLMA, PAT: patReset, DR6: 0xFFFF_0FF0, DR7: 0x400,
		CS: hv.Segment{Selector: 8, Attr: 0xA9B}, SS: hv.Segment{Selector: 0x10, Attr: 0xC93, Limit: 0xFFFF_FFFF},
	}
	return s
}

func TestCheckGood(t *testing.T) {
	for name, st := range map[string]hv.CPUState{
		"reset":     resetState(),
		"long mode": longModeState(),
	} {
		if bad := check(goodVMCB(st), testLimits); len(bad) != 0 {
			t.Errorf("check(%s) = %q, want no failures", name, bad)
		}
	}
}

func TestCheckBad(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(v *VMCB)
		want   string
	}{
		{"no SVME", func(v *VMCB) { v.Save.EFER &^= eferSVME }, "EFER.SVME is zero"},
		{"NW without CD", func(v *VMCB) { v.Save.CR0 = cr0NW | cr0PE }, "CR0.CD is zero and CR0.NW is set"},
		{"CR0 high", func(v *VMCB) { v.Save.CR0 |= 1 << 32 }, "CR0[63:32]"},
		{"CR3 MBZ", func(v *VMCB) { v.Save.CR3 |= 1 << 60 }, "MBZ bit of CR3"},
		{"CR4 MBZ", func(v *VMCB) { v.Save.CR4 |= 1 << 13 }, "MBZ bit of CR4"},
		{"DR6 high", func(v *VMCB) { v.Save.DR6 |= 1 << 40 }, "DR6[63:32]"},
		{"DR7 high", func(v *VMCB) { v.Save.DR7 |= 1 << 40 }, "DR7[63:32]"},
		{"EFER MBZ", func(v *VMCB) { v.Save.EFER |= 1 << 9 }, "MBZ bit of EFER"},
		{"LME without PAE", func(v *VMCB) { v.Save.CR4 &^= cr4PAE }, "CR4.PAE is zero"},
		{"PG without PE", func(v *VMCB) { v.Save.CR0 &^= cr0PE }, "CR0.PE is zero"},
		{"CS.L and CS.D", func(v *VMCB) { v.Save.CS.Attrib |= attrDB }, "CS.L and CS.D are all set"},
		{"no VMRUN intercept", func(v *VMCB) { v.Control.InterceptMsc2 &^= intercept2VMRUN }, "VMRUN intercept"},
		{"IOPM too high", func(v *VMCB) { v.Control.IOPMBasePA = 1<<40 - 4096 }, "IOIO intercept table"},
		{"MSRPM too high", func(v *VMCB) { v.Control.MSRPMBasePA = 1 << 41 }, "MSR intercept table"},
		{"inject NMI vector as exception", func(v *VMCB) { v.Control.EventInj = eventValid | eventTypeException<<eventTypeShift | 2 }, "illegal event injection"},
		{"inject reserved type", func(v *VMCB) { v.Control.EventInj = eventValid | 1<<eventTypeShift | 0x20 }, "reserved TYPE"},
		{"ASID 0", func(v *VMCB) { v.Control.GuestASID = 0 }, "ASID is zero"},
		{"bad G_PAT", func(v *VMCB) { v.Save.GPAT = 0x0007_0406_0007_0402 }, "G_PAT"},
	} {
		v := goodVMCB(longModeState())
		tc.modify(v)
		bad := check(v, testLimits)
		if len(bad) != 1 || !strings.Contains(bad[0], tc.want) {
			t.Errorf("%s: check = %q, want one failure containing %q", tc.name, bad, tc.want)
		}
	}
	v := goodVMCB(longModeState())
	if bad := check(v, checkLimits{maxPhysAddr: 40}); len(bad) != 1 || !strings.Contains(bad[0], "long mode") {
		t.Errorf("check without long mode = %q, want the long-mode failure", bad)
	}
	d := checkDetail([]string{"a", "b"})
	if !strings.Contains(d, "15.5.1") || !strings.Contains(d, "a; b") {
		t.Errorf("checkDetail = %q", d)
	}
}
