package vmx

import (
	"strings"
	"testing"

	"github.com/godwit-hv/godwit/hv"
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name   string
		e      exitInfo
		want   hv.Exit
		detail string // substring of Detail
	}{
		{"out dx, al", exitInfo{reason: reasonIO, qual: 0x03F80000, rip: 0x1005, instrLen: 1},
			hv.Exit{Kind: hv.ExitIO, Raw: 30, RawName: "I/O instruction", NextRIP: 0x1006, Port: 0x3F8, Size: 1}, ""},
		{"in eax, dx", exitInfo{reason: reasonIO, qual: 0x0CFC000B, rip: 0x2000, instrLen: 1},
			hv.Exit{Kind: hv.ExitIO, Raw: 30, RawName: "I/O instruction", NextRIP: 0x2001, Port: 0xCFC, Size: 4, In: true}, ""},
		{"rep outsw", exitInfo{reason: reasonIO, qual: 0x01F00031, rip: 0x10, instrLen: 3},
			hv.Exit{Kind: hv.ExitIO, Raw: 30, RawName: "I/O instruction", NextRIP: 0x13, Port: 0x1F0, Size: 2, Str: true, Rep: true}, ""},
		{"out 0x80, al", exitInfo{reason: reasonIO, qual: 0x00800040, rip: 0x1007, instrLen: 2},
			hv.Exit{Kind: hv.ExitIO, Raw: 30, RawName: "I/O instruction", NextRIP: 0x1009, Port: 0x80, Size: 1}, ""},
		{"cpuid", exitInfo{reason: reasonCPUID, rip: 0xFFFFFFFF81000000, instrLen: 2},
			hv.Exit{Kind: hv.ExitCPUID, Raw: 10, RawName: "CPUID", NextRIP: 0xFFFFFFFF81000002}, ""},
		{"hlt", exitInfo{reason: reasonHLT, rip: 0x100e, instrLen: 1},
			hv.Exit{Kind: hv.ExitHLT, Raw: 12, RawName: "HLT", NextRIP: 0x100f}, ""},
		{"rdmsr", exitInfo{reason: reasonRDMSR, rip: 0x10, instrLen: 2},
			hv.Exit{Kind: hv.ExitRDMSR, Raw: 31, RawName: "RDMSR", NextRIP: 0x12}, ""},
		{"wrmsr", exitInfo{reason: reasonWRMSR, rip: 0x10, instrLen: 2},
			hv.Exit{Kind: hv.ExitWRMSR, Raw: 32, RawName: "WRMSR", NextRIP: 0x12}, ""},
		{"vmcall", exitInfo{reason: reasonVMCALL, rip: 0x10, instrLen: 3},
			hv.Exit{Kind: hv.ExitHypercall, Raw: 18, RawName: "VMCALL", NextRIP: 0x13}, ""},
		{"external interrupt", exitInfo{reason: reasonExternalInterrupt},
			hv.Exit{Kind: hv.ExitInterrupt, Raw: 1, RawName: "external interrupt"}, ""},
		{"interrupt window", exitInfo{reason: reasonInterruptWindow},
			hv.Exit{Kind: hv.ExitInterruptWindow, Raw: 7, RawName: "interrupt window"}, ""},
		{"triple fault", exitInfo{reason: reasonTripleFault},
			hv.Exit{Kind: hv.ExitShutdown, Raw: 2, RawName: "triple fault"}, ""},
		// EPT violation on a data write to an unmapped page (qualification bits: write, and
		// the guest-linear address valid), reported as MMIO.
		{"EPT violation write", exitInfo{reason: reasonEPTViolation, qual: 0x182, gpa: 0xFEE00300},
			hv.Exit{Kind: hv.ExitMMIO, Raw: 48, RawName: "EPT violation", GPA: 0xFEE00300, Write: true}, ""},
		{"EPT violation fetch", exitInfo{reason: reasonEPTViolation, qual: 0x84, gpa: 0xC0000000},
			hv.Exit{Kind: hv.ExitMMIO, Raw: 48, RawName: "EPT violation", GPA: 0xC0000000, Fetch: true}, ""},
		// #GP(0x18) intercepted: valid, hardware exception, error code valid, vector 13.
		{"#GP", exitInfo{reason: reasonExceptionNMI, intrInfo: intrValid | intrErrorCode | intrTypeHardwareExc<<8 | 13, intrErr: 0x18},
			hv.Exit{Kind: hv.ExitException, Raw: 0, RawName: "exception or NMI", Vector: 13, ErrCode: 0x18, HasErr: true}, ""},
		{"invalid guest state", exitInfo{reason: exitReasonEntryFailure | reasonInvalidGuestState},
			hv.Exit{Kind: hv.ExitInvalidState, Raw: 33, RawName: "VM-entry failure due to invalid guest state"}, "guest-state check failed"},
		{"invalid link pointer", exitInfo{reason: exitReasonEntryFailure | reasonInvalidGuestState, qual: 4},
			hv.Exit{Kind: hv.ExitInvalidState, Raw: 33, RawName: "VM-entry failure due to invalid guest state"}, "VMCS link pointer"},
		{"MSR loading", exitInfo{reason: exitReasonEntryFailure | reasonMSRLoading, qual: 3},
			hv.Exit{Kind: hv.ExitInvalidState, Raw: 34, RawName: "VM-entry failure due to MSR loading"}, "entry 3 of the VM-entry MSR-load area"},
		{"mov cr8, rax", exitInfo{reason: reasonCRAccess, qual: 0x08, rip: 0x40, instrLen: 4},
			hv.Exit{Kind: hv.ExitUnhandled, Raw: 28, RawName: "control-register access", NextRIP: 0x44}, "MOV CR8, RAX"},
		{"mov rbx, cr8", exitInfo{reason: reasonCRAccess, qual: 0x318, rip: 0x40, instrLen: 4},
			hv.Exit{Kind: hv.ExitUnhandled, Raw: 28, RawName: "control-register access", NextRIP: 0x44}, "MOV RBX, CR8"},
		{"xsetbv", exitInfo{reason: reasonXSETBV, rip: 0x40, instrLen: 3},
			hv.Exit{Kind: hv.ExitUnhandled, Raw: 55, RawName: "XSETBV", NextRIP: 0x43}, "XSETBV"},
		{"unknown reason", exitInfo{reason: 99},
			hv.Exit{Kind: hv.ExitUnhandled, Raw: 99, RawName: "exit reason 99"}, "exit reason 99"},
		// An EPT violation while delivering vector 0x20 through the guest IDT.
		{"during delivery", exitInfo{reason: reasonEPTViolation, qual: 0x2, gpa: 0x5000, idtInfo: intrValid | 0x20},
			hv.Exit{Kind: hv.ExitMMIO, Raw: 48, RawName: "EPT violation", GPA: 0x5000, Write: true}, "during delivery of vector 32 (type 0)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := decode(&tc.e)
			detail := got.Detail
			got.Detail = ""
			if got != tc.want {
				t.Errorf("decode(%+v) =\n  %+v, want\n  %+v", tc.e, got, tc.want)
			}
			if !strings.Contains(detail, tc.detail) {
				t.Errorf("decode(%+v).Detail = %q, want it to contain %q", tc.e, detail, tc.detail)
			}
		})
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{ReasonName(48), "EPT violation"},
		{ReasonName(33), "VM-entry failure due to invalid guest state"},
		{ReasonName(30), "I/O instruction"},
		{InstructionError(7), "VM-instruction error 7: VM entry with invalid control field(s)"},
		{InstructionError(8), "VM-instruction error 8: VM entry with invalid host-state field(s)"},
		{InstructionError(99), "VM-instruction error 99"},
		{statusText(vmFailValid, 5), "VMfailValid, VM-instruction error 5: VMRESUME with non-launched VMCS"},
		{statusText(vmFailInvalid, 0), "VMfailInvalid"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	for r := uint16(0); r <= reasonLOADIWKEY; r++ {
		if r == 35 || r == 38 || r == 42 {
			continue // not assigned
		}
		if _, ok := reasonNames[r]; !ok {
			t.Errorf("basic exit reason %d has no name", r)
		}
	}
}

func TestDecodeQualifications(t *testing.T) {
	if q := decodeEPTQual(0x1AB); !q.read || !q.write || q.fetch || q.perm != 5 || !q.linearValid {
		t.Errorf("decodeEPTQual(0x1AB) = %+v", q)
	}
	if q := decodeCRQual(0x20); q.cr != 0 || q.access != 2 || q.String() != "CLTS" {
		t.Errorf("decodeCRQual(0x20) = %+v", q)
	}
	if q := decodeCRQual(0x000F0030); q.access != 3 || q.lmsw != 0xF || q.String() != "LMSW 0xf" {
		t.Errorf("decodeCRQual(LMSW) = %+v %q", q, q.String())
	}
}
