package svm

import (
	"strings"
	"testing"

	"github.com/godwit-hv/godwit/hv"
)

func TestDecodeIOIO(t *testing.T) {
	for _, tc := range []struct {
		name  string
		info1 uint64
		want  hv.Exit
	}{
		{"out dx,al to 0x3f8", 0x3F8<<16 | ioioSZ8 | 1<<7,
			hv.Exit{Kind: hv.ExitIO, Port: 0x3F8, Size: 1}},
		{"in ax,0x60", 0x60<<16 | ioioTypeIn | ioioSZ16 | 1<<8,
			hv.Exit{Kind: hv.ExitIO, Port: 0x60, Size: 2, In: true}},
		{"rep insd from 0x1f0", 0x1F0<<16 | ioioTypeIn | ioioStr | ioioRep | ioioSZ32 | 1<<9,
			hv.Exit{Kind: hv.ExitIO, Port: 0x1F0, Size: 4, In: true, Str: true, Rep: true}},
		{"outsb to 0xffff", 0xFFFF<<16 | ioioStr | ioioSZ8,
			hv.Exit{Kind: hv.ExitIO, Port: 0xFFFF, Size: 1, Str: true}},
	} {
		got := decodeExit(exitInfo{code: ExitCodeIOIO, info1: tc.info1, info2: 0x1234})
		tc.want.Raw, tc.want.RawName, tc.want.NextRIP = ExitCodeIOIO, "VMEXIT_IOIO", 0x1234
		if got != tc.want {
			t.Errorf("%s: decodeExit(info1 %#x) = %+v, want %+v", tc.name, tc.info1, got, tc.want)
		}
	}
}

func TestDecodeNPF(t *testing.T) {
	for _, tc := range []struct {
		info1        uint64
		write, fetch bool
		detail       string
	}{
		{npfUser | npfFinalGPA, false, false, ""},
		{npfUser | npfWrite | npfFinalGPA, true, false, ""},
		{npfUser | npfFetch | npfFinalGPA, false, true, ""},
		{npfPresent | npfUser | npfWrite | npfFinalGPA, true, false, ""},
		{npfUser | npfGuestTable, false, false, "guest page-table"},
		{npfPresent | npfReserved | npfUser | npfFinalGPA, false, false, "reserved bit"},
	} {
		e := decodeExit(exitInfo{code: ExitCodeNPF, info1: tc.info1, info2: 0xFEE0_0030, nrip: 99, nrips: true})
		if e.Kind != hv.ExitMMIO || e.GPA != 0xFEE0_0030 || e.Write != tc.write || e.Fetch != tc.fetch ||
			e.NextRIP != 0 || e.ErrCode != uint32(tc.info1) || !strings.Contains(e.Detail, tc.detail) {
			t.Errorf("decodeExit(NPF %#x) = %+v, want mmio gpa 0xfee00030 write=%v fetch=%v detail~%q",
				tc.info1, e, tc.write, tc.fetch, tc.detail)
		}
	}
	if got := NPFDetail(npfPresent | npfUser | npfWrite | npfFinalGPA); got != "npf protection,write,final-gpa (exitinfo1 0x100000007)" {
		t.Errorf("NPFDetail = %q", got)
	}
}

func TestDecodeOthers(t *testing.T) {
	for _, tc := range []struct {
		x    exitInfo
		want hv.Exit
	}{
		{exitInfo{code: ExitCodeCPUID, nrip: 0x1002, nrips: true}, hv.Exit{Kind: hv.ExitCPUID, NextRIP: 0x1002}},
		{exitInfo{code: ExitCodeCPUID, nrip: 0x1002}, hv.Exit{Kind: hv.ExitCPUID}}, // no NRIPS: 0
		{exitInfo{code: ExitCodeMSR, info1: 0, nrip: 7, nrips: true}, hv.Exit{Kind: hv.ExitRDMSR, NextRIP: 7}},
		{exitInfo{code: ExitCodeMSR, info1: 1, nrip: 7, nrips: true}, hv.Exit{Kind: hv.ExitWRMSR, NextRIP: 7}},
		{exitInfo{code: ExitCodeHLT, nrip: 5, nrips: true}, hv.Exit{Kind: hv.ExitHLT, NextRIP: 5}},
		{exitInfo{code: ExitCodeShutdown, nrip: 5, nrips: true}, hv.Exit{Kind: hv.ExitShutdown}},
		{exitInfo{code: ExitCodeIntr}, hv.Exit{Kind: hv.ExitInterrupt}},
		{exitInfo{code: ExitCodeNMI}, hv.Exit{Kind: hv.ExitInterrupt}},
		{exitInfo{code: ExitCodeVIntr}, hv.Exit{Kind: hv.ExitInterruptWindow}},
		{exitInfo{code: ExitCodeVMMCALL, nrip: 3, nrips: true}, hv.Exit{Kind: hv.ExitHypercall, NextRIP: 3}},
		{exitInfo{code: ExitCodeExcp0 + 17, info1: 0}, hv.Exit{Kind: hv.ExitException, Vector: 17, HasErr: true}},
		{exitInfo{code: ExitCodeExcp0 + 1}, hv.Exit{Kind: hv.ExitException, Vector: 1}},
		{exitInfo{code: ExitCodeExcp0 + 13, info1: 0x18}, hv.Exit{Kind: hv.ExitException, Vector: 13, HasErr: true, ErrCode: 0x18}},
		{exitInfo{code: ExitCodeInvalid}, hv.Exit{Kind: hv.ExitInvalidState}},
	} {
		got := decodeExit(tc.x)
		tc.want.Raw, tc.want.RawName = tc.x.code, ExitCodeName(tc.x.code)
		if got != tc.want {
			t.Errorf("decodeExit(%+v) = %+v, want %+v", tc.x, got, tc.want)
		}
	}
	e := decodeExit(exitInfo{code: ExitCodeVMRUN, info1: 1, info2: 2})
	if e.Kind != hv.ExitUnhandled || e.RawName != "VMEXIT_VMRUN" || e.Detail == "" {
		t.Errorf("decodeExit(VMRUN) = %+v, want unhandled with detail", e)
	}
}

func TestExitCodeName(t *testing.T) {
	for code, want := range map[uint64]string{
		0x000: "VMEXIT_CR0_READ", 0x013: "VMEXIT_CR3_WRITE", 0x027: "VMEXIT_DR7_READ",
		0x037: "VMEXIT_DR7_WRITE", 0x04E: "VMEXIT_EXCP14", 0x060: "VMEXIT_INTR",
		0x064: "VMEXIT_VINTR", 0x072: "VMEXIT_CPUID", 0x078: "VMEXIT_HLT", 0x07B: "VMEXIT_IOIO",
		0x07C: "VMEXIT_MSR", 0x07F: "VMEXIT_SHUTDOWN", 0x081: "VMEXIT_VMMCALL",
		0x400: "VMEXIT_NPF", ^uint64(0): "VMEXIT_INVALID", 0x999: "VMEXIT_0x999",
	} {
		if got := ExitCodeName(code); got != want {
			t.Errorf("ExitCodeName(%#x) = %q, want %q", code, got, want)
		}
	}
}

func TestEvents(t *testing.T) {
	for _, tc := range []struct {
		ev   hv.Event
		want uint64
	}{
		{hv.Event{Kind: hv.EventExternal, Vector: 0x20}, 0x8000_0020},
		{hv.Event{Kind: hv.EventNMI}, 0x8000_0202},
		{hv.Event{Kind: hv.EventException, Vector: 13, HasErr: true, ErrCode: 0x10}, 0x10_8000_0B0D},
		{hv.Event{Kind: hv.EventException, Vector: 6}, 0x8000_0306},
		{hv.Event{Kind: hv.EventSoftware, Vector: 0x80}, 0x8000_0480},
	} {
		got, err := eventToVMCB(tc.ev)
		if err != nil || got != tc.want {
			t.Errorf("eventToVMCB(%+v) = %#x, %v, want %#x", tc.ev, got, err, tc.want)
			continue
		}
		back, ok := eventFromVMCB(got)
		if tc.ev.Kind == hv.EventNMI {
			tc.ev.Vector = 2
		}
		if !ok || back != tc.ev {
			t.Errorf("eventFromVMCB(%#x) = %+v, %v, want %+v", got, back, ok, tc.ev)
		}
		if msg := checkEventInj(got); msg != "" {
			t.Errorf("checkEventInj(%#x) = %q, want legal", got, msg)
		}
	}
	for _, bad := range []hv.Event{
		{Kind: hv.EventExternal, Vector: 8},
		{Kind: hv.EventException, Vector: 2},
		{Kind: hv.EventException, Vector: 15},
		{Kind: hv.EventException, Vector: 40},
		{Kind: hv.EventExternal, Vector: 40, HasErr: true},
		{Kind: 9},
	} {
		if v, err := eventToVMCB(bad); err == nil {
			t.Errorf("eventToVMCB(%+v) = %#x, want an error", bad, v)
		}
	}
	if _, ok := eventFromVMCB(0x20); ok {
		t.Error("eventFromVMCB without V reported an event")
	}
}

func TestReinjectable(t *testing.T) {
	for info, want := range map[uint64]bool{
		0:                   false,
		0x8000_0020:         true,  // external interrupt
		0x8000_0202:         true,  // NMI
		0x8000_030E | 1<<11: true,  // #PF with error code
		0x8000_0303:         false, // #BP: INT3 runs again
		0x8000_0304:         false, // #OF: INTO runs again
		0x8000_0480:         false, // INT 0x80 runs again
	} {
		if got := reinjectable(info) != 0; got != want {
			t.Errorf("reinjectable(%#x) = %v, want %v", info, got, want)
		}
	}
}
