package svm

import (
	"errors"
	"strings"
	"testing"

	"github.com/godwit-hv/godwit/arch/x86"
	"github.com/godwit-hv/godwit/hv"
)

// newTestVCPU is a vCPU over Go memory, set up as NewVCPU does it, that never runs.
func newTestVCPU() *VCPU {
	b := &Backend{lim: testLimits}
	b.asids.init(16)
	vm := &VM{b: b, vcpus: map[int]*VCPU{}}
	v := &VCPU{vm: vm, vmcb: new(VMCB), run: new(runBlock), asid: 1}
	v.setup(0x7000, 0x10000, 0x20000, 0x30000)
	return v
}

func TestStateRoundTrip(t *testing.T) {
	v := newTestVCPU()
	in := longModeState()
	for i := range in.GPR {
		in.GPR[i] = uint64(i+1) * 0x1111
	}
	in.CR2 = 0xdead_b000
	in.DS = hv.Segment{Selector: 0x10, Attr: 0xC93, Limit: 0xFFFF_FFFF, Base: 0}
	in.FS = hv.Segment{Selector: 0, Attr: 0x93, Limit: 0xFFFF, Base: 0x7fff_1234_5000}
	in.GS = hv.Segment{Attr: 0x93, Base: 0xffff_8880_0000_0000}
	in.TR = hv.Segment{Selector: 0x28, Attr: 0x8B, Limit: 0x67, Base: 0xffff_fe00_0000_3000}
	in.LDTR = hv.Segment{Attr: 0x82}
	in.GDTR = hv.Table{Base: 0xffff_fe00_0000_1000, Limit: 0x7f}
	in.IDTR = hv.Table{Base: 0xffff_fe00_0000_0000, Limit: 0xfff}
	in.InterruptShadow = true
	if err := v.SetState(&in); err != nil {
		t.Fatal(err)
	}
	if v.vmcb.Save.EFER&eferSVME == 0 {
		t.Error("VMCB EFER lacks SVME")
	}
	if v.vmcb.Save.RAX != in.GPR[hv.RAX] || v.vmcb.Save.RSP != in.GPR[hv.RSP] {
		t.Error("RAX/RSP not in the VMCB")
	}
	var out hv.CPUState
	if err := v.State(&out); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Errorf("State after SetState:\n got %+v\nwant %+v", out, in)
	}
	if cpl(&v.vmcb.Save) != 0 {
		t.Errorf("CPL = %d, want 0", cpl(&v.vmcb.Save))
	}
}

func TestSegmentAttrib(t *testing.T) {
	for _, tc := range []struct {
		name string
		desc uint64
		want hv.Segment
	}{
		{"flat 32-bit code", 0x00CF_9B00_0000_FFFF, hv.Segment{Selector: 8, Attr: 0xC9B, Limit: 0xFFFF_FFFF}},
		{"flat data", 0x00CF_9300_0000_FFFF, hv.Segment{Selector: 8, Attr: 0xC93, Limit: 0xFFFF_FFFF}},
		{"64-bit code", 0x00AF_9B00_0000_FFFF, hv.Segment{Selector: 8, Attr: 0xA9B, Limit: 0xFFFF_FFFF}},
		{"ring-3 code", 0x00CF_FB00_0000_FFFF, hv.Segment{Selector: 8, Attr: 0xCFB, Limit: 0xFFFF_FFFF}},
		{"16-bit data with base", 0x0000_9212_3456_FFFF, hv.Segment{Selector: 8, Attr: 0x092, Limit: 0xFFFF, Base: 0x12_3456}},
		{"TSS", 0xFF00_8B34_5678_0067, hv.Segment{Selector: 8, Attr: 0x08B, Limit: 0x67, Base: 0xFF34_5678}},
	} {
		got := SegmentFromDescriptor(8, tc.desc)
		if got != tc.want {
			t.Errorf("%s: SegmentFromDescriptor(%#x) = %+v, want %+v", tc.name, tc.desc, got, tc.want)
		}
		if d := DescriptorFromSegment(got); d != tc.desc {
			t.Errorf("%s: DescriptorFromSegment(%+v) = %#x, want %#x", tc.name, got, d, tc.desc)
		}
		if back := segToHV(segFromHV(got)); back != got {
			t.Errorf("%s: VMCB round trip = %+v, want %+v", tc.name, back, got)
		}
		dpl := int(got.Attr>>hv.SegDPLShift) & 3
		if want := int(tc.desc>>45) & 3; dpl != want {
			t.Errorf("%s: DPL %d, want %d", tc.name, dpl, want)
		}
	}
	// Reserved attribute bits 15:12 never reach the VMCB.
	if s := segFromHV(hv.Segment{Attr: 0xF09B}); s.Attrib != 0x09B {
		t.Errorf("segFromHV kept reserved bits: %#x", s.Attrib)
	}
}

func TestCPL(t *testing.T) {
	s := &SaveArea{CR0: cr0PE, SS: VMCBSegment{Attrib: 0xF3}} // DPL 3 data
	if got := cpl(s); got != 3 {
		t.Errorf("cpl(protected, SS.DPL 3) = %d", got)
	}
	s.CR0 = 0
	if got := cpl(s); got != 0 {
		t.Errorf("cpl(real mode) = %d", got)
	}
	s.CR0, s.SS.Attrib, s.RFLAGS = cr0PE, 0x93, rflagsVM
	if got := cpl(s); got != 3 {
		t.Errorf("cpl(v86) = %d", got)
	}
}

func TestPrepareAndFinish(t *testing.T) {
	v := newTestVCPU()
	c, s := &v.vmcb.Control, &v.vmcb.Save
	v.vm.b.f = x86.Features{NRIP: true, FlushByASID: true}
	// First entry flushes (NewVCPU asks for it); the test vCPU was set up by hand.
	v.flushReq.Store(true)
	if err := v.Inject(hv.Event{Kind: hv.EventExternal, Vector: 0x30}); err != nil {
		t.Fatal(err)
	}
	if err := v.Inject(hv.Event{Kind: hv.EventExternal, Vector: 0x31}); err == nil {
		t.Error("second Inject before an entry succeeded")
	}
	v.SetInterruptWindow(true)
	v.prepare(c, s)
	if c.EventInj != 0x8000_0030 || c.TLBControl != tlbControlFlushASID ||
		c.VIntr&(vIntrIRQ|vIntrIgnTPR|vIntrMasking) != vIntrIRQ|vIntrIgnTPR|vIntrMasking ||
		c.InterceptMsc1&intercept1VINTR == 0 {
		t.Errorf("prepare: eventinj %#x tlb %d vintr %#x misc1 %#x", c.EventInj, c.TLBControl, c.VIntr, c.InterceptMsc1)
	}
	// The exit interrupted the delivery of the event: it is re-injected at the next entry,
	// before anything queued meanwhile.
	c.ExitCode, c.ExitIntInfo, c.NRIP = ExitCodeIntr, 0x8000_0030, 0
	e := v.finish(c, nil)
	if e.Kind != hv.ExitInterrupt || c.EventInj != 0 || c.TLBControl != 0 {
		t.Errorf("finish: %+v eventinj %#x tlb %d", e, c.EventInj, c.TLBControl)
	}
	v.Inject(hv.Event{Kind: hv.EventExternal, Vector: 0x31})
	v.SetInterruptWindow(false)
	v.prepare(c, s)
	if c.EventInj != 0x8000_0030 || c.VIntr&vIntrIRQ != 0 || c.InterceptMsc1&intercept1VINTR != 0 || c.TLBControl != 0 {
		t.Errorf("prepare after interrupted delivery: eventinj %#x vintr %#x misc1 %#x tlb %d",
			c.EventInj, c.VIntr, c.InterceptMsc1, c.TLBControl)
	}
	c.ExitCode, c.ExitIntInfo, c.NRIP = ExitCodeHLT, 0, 0x2019
	if e := v.finish(c, nil); e.Kind != hv.ExitHLT || e.NextRIP != 0x2019 {
		t.Errorf("finish(HLT) = %+v", e)
	}
	v.prepare(c, s)
	if c.EventInj != 0x8000_0031 {
		t.Errorf("queued event not injected: %#x", c.EventInj)
	}
	// A change of paging state asks for a flush.
	st := longModeState()
	v.SetState(&st)
	v.prepare(c, s)
	if c.TLBControl != tlbControlFlushASID {
		t.Errorf("no flush after CR3 change: tlb %d", c.TLBControl)
	}
	v.prepare(c, s)
	if c.TLBControl != 0 {
		t.Errorf("flush repeated: tlb %d", c.TLBControl)
	}
	c.ExitCode = ExitCodeInvalid
	if e := v.finish(c, []string{"EFER.SVME is zero"}); e.Kind != hv.ExitInvalidState || !strings.Contains(e.Detail, "SVME") {
		t.Errorf("finish(INVALID) = %+v", e)
	}
}

func TestGuestMSR(t *testing.T) {
	v := newTestVCPU()
	for _, msr := range []uint32{MSRLSTAR, MSRSTAR, MSRCSTAR, MSRSFMASK, MSRKernelGSBase, MSRSysenterCS,
		MSRSysenterEIP, MSRSysenterESP, MSRFSBase, MSRGSBase, MSRPAT, MSRDebugCtl, MSREFER} {
		want := uint64(msr)<<4 | 1
		if msr == MSREFER {
			want = eferLME
		}
		if ok, err := v.SetGuestMSR(msr, want); !ok || err != nil {
			t.Fatal(err)
		}
		if got, ok, _ := v.GuestMSR(msr); !ok || got != want {
			t.Errorf("GuestMSR(%#x) = %#x, %v, want %#x", msr, got, ok, want)
		}
	}
	if v.vmcb.Save.EFER&eferSVME == 0 {
		t.Error("SetGuestMSR(EFER) dropped SVME")
	}
	if _, ok, _ := v.GuestMSR(0x10); ok {
		t.Error("GuestMSR(TSC) reported a VMCB field")
	}
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		f  x86.Features
		ok bool
	}{
		{x86.Features{SVM: true, NPT: true}, true},
		{x86.Features{SVM: true, NPT: true, NRIP: true}, true},
		{x86.Features{}, false},
		{x86.Features{SVM: true}, false},
		{x86.Features{SVM: true, NPT: true, SVMDisabled: true}, false},
	} {
		err := Detect(tc.f)
		if (err == nil) != tc.ok {
			t.Errorf("Detect(%+v) = %v", tc.f, err)
		}
		if err != nil && !errorsIs(err, hv.ErrNoHardware) {
			t.Errorf("Detect error %v does not wrap hv.ErrNoHardware", err)
		}
	}
}

func TestASIDPool(t *testing.T) {
	var p asidPool
	p.init(4) // ASIDs 1..3
	seen := map[uint32]bool{}
	for range 3 {
		a, ok := p.get()
		if !ok || a == 0 || a > 3 || seen[a] {
			t.Fatalf("get = %d, %v (seen %v)", a, ok, seen)
		}
		seen[a] = true
	}
	if a, ok := p.get(); ok {
		t.Errorf("get from a full pool = %d", a)
	}
	p.put(2)
	if a, ok := p.get(); !ok || a != 2 {
		t.Errorf("get after put(2) = %d, %v", a, ok)
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func TestExitCode(t *testing.T) {
	for raw, want := range map[uint64]uint64{
		0x7B: 0x7B, 0x400: 0x400, ^uint64(0): ExitCodeInvalid, 0xFFFF_FFFF: ExitCodeInvalid,
		0xFFFF_FFFE: ExitCodeBusy,
	} {
		if got := exitCode(raw); got != want {
			t.Errorf("exitCode(%#x) = %#x, want %#x", raw, got, want)
		}
	}
}

// Run returns before VMRUN when the window is already open or the state fails the checks, so
// these paths run in user space.
func TestRunWithoutEntry(t *testing.T) {
	v := newTestVCPU()
	st := longModeState()
	st.RFLAGS |= rflagsIF
	v.SetState(&st)
	v.SetInterruptWindow(true)
	if e, err := v.Run(); err != nil || e.Kind != hv.ExitInterruptWindow {
		t.Errorf("Run with the window open = %+v, %v, want interrupt-window", e, err)
	}
	v.SetInterruptWindow(false)
	st.CR4 &^= cr4PAE
	v.SetState(&st)
	v.Inject(hv.Event{Kind: hv.EventExternal, Vector: 0x40})
	e, err := v.Run()
	if err != nil || e.Kind != hv.ExitInvalidState || !strings.Contains(e.Detail, "CR4.PAE is zero") {
		t.Errorf("Run with a bad state = %+v, %v, want invalid-state naming CR4.PAE", e, err)
	}
	if v.pending != 0x8000_0040 || !v.flushReq.Load() {
		t.Errorf("refused entry lost the queued event (%#x) or the flush (%v)", v.pending, v.flushReq.Load())
	}
	v.Close()
	if _, err := v.Run(); !errorsIs(err, hv.ErrEntryFailed) {
		t.Errorf("Run after Close = %v, want ErrEntryFailed", err)
	}
}

// The per-entry work around VMRUN does not allocate for the exits the core loops on.
func TestEntryExitNoAlloc(t *testing.T) {
	v := newTestVCPU()
	st := longModeState()
	v.SetState(&st)
	c, s := &v.vmcb.Control, &v.vmcb.Save
	for _, code := range []uint64{ExitCodeIOIO, ExitCodeNPF, ExitCodeCPUID, ExitCodeMSR, ExitCodeHLT,
		ExitCodeIntr, ExitCodeVIntr, ExitCodeVMMCALL} {
		n := testing.AllocsPerRun(100, func() {
			v.prepare(c, s)
			bad := check(v.vmcb, v.vm.b.lim)
			c.ExitCode, c.ExitInfo1 = code, 0x3F8<<16|ioioSZ8
			v.finish(c, bad)
		})
		if n != 0 {
			t.Errorf("entry/exit work for %s allocates %v times", ExitCodeName(code), n)
		}
	}
}
