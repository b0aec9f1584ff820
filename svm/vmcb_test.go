package svm

import (
	"testing"
	"unsafe"
)

// The offsets of AMD APM Vol. 2, Appendix B, Table B-1 (control area) and Table B-2 (state
// save area, given there relative to 0x400 and here from the start of the VMCB).
func TestVMCBLayout(t *testing.T) {
	var v VMCB
	c, s := &v.Control, &v.Save
	base := uintptr(unsafe.Pointer(&v))
	off := func(p unsafe.Pointer) uintptr { return uintptr(p) - base }
	for _, tc := range []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"intercept CR", off(unsafe.Pointer(&c.InterceptCR)), 0x000},
		{"intercept DR", off(unsafe.Pointer(&c.InterceptDR)), 0x004},
		{"intercept exceptions", off(unsafe.Pointer(&c.InterceptExc)), 0x008},
		{"intercept misc 1", off(unsafe.Pointer(&c.InterceptMsc1)), 0x00C},
		{"intercept misc 2", off(unsafe.Pointer(&c.InterceptMsc2)), 0x010},
		{"intercept misc 3", off(unsafe.Pointer(&c.InterceptMsc3)), 0x014},
		{"PAUSE filter threshold", off(unsafe.Pointer(&c.PauseFilterThreshold)), 0x03C},
		{"PAUSE filter count", off(unsafe.Pointer(&c.PauseFilterCount)), 0x03E},
		{"IOPM_BASE_PA", off(unsafe.Pointer(&c.IOPMBasePA)), 0x040},
		{"MSRPM_BASE_PA", off(unsafe.Pointer(&c.MSRPMBasePA)), 0x048},
		{"TSC_OFFSET", off(unsafe.Pointer(&c.TSCOffset)), 0x050},
		{"guest ASID", off(unsafe.Pointer(&c.GuestASID)), 0x058},
		{"TLB_CONTROL", off(unsafe.Pointer(&c.TLBControl)), 0x05C},
		{"V_TPR etc.", off(unsafe.Pointer(&c.VIntr)), 0x060},
		{"INTERRUPT_SHADOW", off(unsafe.Pointer(&c.IntShadow)), 0x068},
		{"EXITCODE", off(unsafe.Pointer(&c.ExitCode)), 0x070},
		{"EXITINFO1", off(unsafe.Pointer(&c.ExitInfo1)), 0x078},
		{"EXITINFO2", off(unsafe.Pointer(&c.ExitInfo2)), 0x080},
		{"EXITINTINFO", off(unsafe.Pointer(&c.ExitIntInfo)), 0x088},
		{"NP_ENABLE", off(unsafe.Pointer(&c.NPControl)), 0x090},
		{"AVIC APIC_BAR", off(unsafe.Pointer(&c.AVICAPICBar)), 0x098},
		{"GHCB", off(unsafe.Pointer(&c.GHCBPA)), 0x0A0},
		{"EVENTINJ", off(unsafe.Pointer(&c.EventInj)), 0x0A8},
		{"N_CR3", off(unsafe.Pointer(&c.NCR3)), 0x0B0},
		{"LBR virtualization", off(unsafe.Pointer(&c.VirtExt)), 0x0B8},
		{"VMCB clean bits", off(unsafe.Pointer(&c.CleanBits)), 0x0C0},
		{"nRIP", off(unsafe.Pointer(&c.NRIP)), 0x0C8},
		{"bytes fetched", off(unsafe.Pointer(&c.InsnLen)), 0x0D0},
		{"guest instruction bytes", off(unsafe.Pointer(&c.InsnBytes)), 0x0D1},
		{"AVIC backing page", off(unsafe.Pointer(&c.AVICBackingPage)), 0x0E0},
		{"AVIC logical table", off(unsafe.Pointer(&c.AVICLogicalTable)), 0x0F0},
		{"AVIC physical table", off(unsafe.Pointer(&c.AVICPhysicalTable)), 0x0F8},
		{"VMSA pointer", off(unsafe.Pointer(&c.VMSAPA)), 0x108},

		{"ES", off(unsafe.Pointer(&s.ES)), 0x400},
		{"CS", off(unsafe.Pointer(&s.CS)), 0x410},
		{"SS", off(unsafe.Pointer(&s.SS)), 0x420},
		{"DS", off(unsafe.Pointer(&s.DS)), 0x430},
		{"FS", off(unsafe.Pointer(&s.FS)), 0x440},
		{"GS", off(unsafe.Pointer(&s.GS)), 0x450},
		{"GDTR", off(unsafe.Pointer(&s.GDTR)), 0x460},
		{"LDTR", off(unsafe.Pointer(&s.LDTR)), 0x470},
		{"IDTR", off(unsafe.Pointer(&s.IDTR)), 0x480},
		{"TR", off(unsafe.Pointer(&s.TR)), 0x490},
		{"CPL", off(unsafe.Pointer(&s.CPL)), 0x4CB},
		{"EFER", off(unsafe.Pointer(&s.EFER)), 0x4D0},
		{"CR4", off(unsafe.Pointer(&s.CR4)), 0x548},
		{"CR3", off(unsafe.Pointer(&s.CR3)), 0x550},
		{"CR0", off(unsafe.Pointer(&s.CR0)), 0x558},
		{"DR7", off(unsafe.Pointer(&s.DR7)), 0x560},
		{"DR6", off(unsafe.Pointer(&s.DR6)), 0x568},
		{"RFLAGS", off(unsafe.Pointer(&s.RFLAGS)), 0x570},
		{"RIP", off(unsafe.Pointer(&s.RIP)), 0x578},
		{"RSP", off(unsafe.Pointer(&s.RSP)), 0x5D8},
		{"S_CET", off(unsafe.Pointer(&s.SCET)), 0x5E0},
		{"SSP", off(unsafe.Pointer(&s.SSP)), 0x5E8},
		{"ISST_ADDR", off(unsafe.Pointer(&s.ISSTAddr)), 0x5F0},
		{"RAX", off(unsafe.Pointer(&s.RAX)), 0x5F8},
		{"STAR", off(unsafe.Pointer(&s.STAR)), 0x600},
		{"LSTAR", off(unsafe.Pointer(&s.LSTAR)), 0x608},
		{"CSTAR", off(unsafe.Pointer(&s.CSTAR)), 0x610},
		{"SFMASK", off(unsafe.Pointer(&s.SFMASK)), 0x618},
		{"KernelGsBase", off(unsafe.Pointer(&s.KernelGSBase)), 0x620},
		{"SYSENTER_CS", off(unsafe.Pointer(&s.SysenterCS)), 0x628},
		{"SYSENTER_ESP", off(unsafe.Pointer(&s.SysenterESP)), 0x630},
		{"SYSENTER_EIP", off(unsafe.Pointer(&s.SysenterEIP)), 0x638},
		{"CR2", off(unsafe.Pointer(&s.CR2)), 0x640},
		{"G_PAT", off(unsafe.Pointer(&s.GPAT)), 0x668},
		{"DBGCTL", off(unsafe.Pointer(&s.DBGCTL)), 0x670},
		{"BR_FROM", off(unsafe.Pointer(&s.BRFrom)), 0x678},
		{"BR_TO", off(unsafe.Pointer(&s.BRTo)), 0x680},
		{"LASTEXCPFROM", off(unsafe.Pointer(&s.LastExcpFrom)), 0x688},
		{"LASTEXCPTO", off(unsafe.Pointer(&s.LastExcpTo)), 0x690},
	} {
		if tc.got != tc.want {
			t.Errorf("offset of %s = %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
	if got := unsafe.Sizeof(v); got != VMCBSize {
		t.Errorf("sizeof(VMCB) = %#x, want %#x", got, VMCBSize)
	}
	if got := unsafe.Sizeof(VMCBSegment{}); got != 16 {
		t.Errorf("sizeof(VMCBSegment) = %d, want 16", got)
	}
	seg := VMCBSegment{}
	sb := uintptr(unsafe.Pointer(&seg))
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"selector", uintptr(unsafe.Pointer(&seg.Selector)) - sb, 0},
		{"attrib", uintptr(unsafe.Pointer(&seg.Attrib)) - sb, 2},
		{"limit", uintptr(unsafe.Pointer(&seg.Limit)) - sb, 4},
		{"base", uintptr(unsafe.Pointer(&seg.Base)) - sb, 8},
	} {
		if tc.got != tc.want {
			t.Errorf("segment %s at +%d, want +%d", tc.name, tc.got, tc.want)
		}
	}
}
