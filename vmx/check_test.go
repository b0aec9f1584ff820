package vmx

import (
	"strings"
	"testing"

	"github.com/godwit-hv/godwit/hv"
)

func realMode() hv.CPUState {
	code := hv.Segment{Limit: 0xFFFF, Attr: hv.SegP | hv.SegS | 0xB}
	data := hv.Segment{Limit: 0xFFFF, Attr: hv.SegP | hv.SegS | 0x3}
	return hv.CPUState{
		RIP: 0xFFF0, RFLAGS: 2, CR0: 0x10, DR7: 0x400, PAT: 0x0007040600070406,
		CS: code, DS: data, ES: data, FS: data, GS: data, SS: data,
		TR:   hv.Segment{Limit: 0xFFFF, Attr: hv.SegP | 0xB},
		GDTR: hv.Table{Limit: 0xFFFF}, IDTR: hv.Table{Limit: 0xFFFF},
	}
}

func longMode() hv.CPUState {
	s := realMode()
	s.CR0 = 0x80050033
	s.CR4 = cr4PAE
	s.EFER = eferLME | eferLMA | 1<<11
	s.RIP = 0xFFFFFFFF81000000
	s.CS = hv.Segment{Selector: 0x10, Limit: 0xFFFFFFFF, Attr: hv.SegP | hv.SegS | 0xB | hv.SegL | hv.SegG}
	flat := hv.Segment{Selector: 0x18, Limit: 0xFFFFFFFF, Attr: hv.SegP | hv.SegS | 0x3 | hv.SegDB | hv.SegG}
	s.DS, s.ES, s.SS = flat, flat, flat
	s.FS, s.GS = hv.Segment{}, hv.Segment{Base: 0xFFFF888000000000}
	s.TR = hv.Segment{Selector: 0x40, Limit: 0x67, Attr: hv.SegP | 0xB, Base: 0xFFFFFE0000003000}
	return s
}

func TestCheckGuest(t *testing.T) {
	c := ReadCaps(reader(t, bochsSkylakeX))
	for _, tc := range []struct {
		name string
		edit func(s *hv.CPUState)
		base func() hv.CPUState
		want string // "" for no error, else a substring
	}{
		{"real mode", func(s *hv.CPUState) {}, realMode, ""},
		{"long mode", func(s *hv.CPUState) {}, longMode, ""},
		{"protected mode flat", func(s *hv.CPUState) {
			s.CR0 = 0x11
			s.CS = hv.Segment{Selector: 8, Limit: 0xFFFFFFFF, Attr: hv.SegP | hv.SegS | 0xB | hv.SegDB | hv.SegG}
		}, realMode, ""},
		{"PG without PE", func(s *hv.CPUState) { s.CR0 = 0x80000010 }, realMode, "PG set without PE"},
		{"CR4 reserved", func(s *hv.CPUState) { s.CR4 = 1 << 30 }, realMode, "CR4"},
		{"RFLAGS bit 1", func(s *hv.CPUState) { s.RFLAGS = 0 }, realMode, "RFLAGS"},
		{"v8086", func(s *hv.CPUState) { s.RFLAGS = 2 | rflagsVM }, realMode, "virtual-8086"},
		{"RIP high bits outside 64-bit code", func(s *hv.CPUState) { s.RIP = 1 << 32 }, realMode, "RIP"},
		{"RIP not canonical", func(s *hv.CPUState) { s.RIP = 0x0000800000000000 }, longMode, "canonical"},
		{"CS data type DPL 3", func(s *hv.CPUState) { s.CS.Attr = hv.SegP | hv.SegS | 3<<hv.SegDPLShift | 0x3 }, realMode, "CS"},
		{"CS not accessed", func(s *hv.CPUState) { s.CS.Attr = hv.SegP | hv.SegS | 0xA }, realMode, "CS"},
		{"CS DPL != SS DPL", func(s *hv.CPUState) { s.CS.Attr |= 3 << hv.SegDPLShift }, longMode, "SS.DPL"},
		{"SS DPL in real mode", func(s *hv.CPUState) { s.SS.Attr |= 3 << hv.SegDPLShift }, realMode, "DPL"},
		{"DS not accessed", func(s *hv.CPUState) { s.DS.Attr = hv.SegP | hv.SegS | 0x2 }, realMode, "accessed"},
		{"G without low limit bits", func(s *hv.CPUState) { s.DS.Attr |= hv.SegG; s.DS.Limit = 0xFFFF0 }, realMode, "G set"},
		{"big limit without G", func(s *hv.CPUState) { s.ES.Limit = 0x100000 }, realMode, "needs G"},
		{"TR unusable", func(s *hv.CPUState) { s.TR.Attr = 0xB }, realMode, "TR must be usable"},
		{"TR 16-bit in long mode", func(s *hv.CPUState) { s.TR.Attr = hv.SegP | 0x3 }, longMode, "busy TSS"},
		{"LDTR wrong type", func(s *hv.CPUState) { s.LDTR.Attr = hv.SegP | 0x3 }, realMode, "LDT"},
		{"IA-32e without PAE", func(s *hv.CPUState) { s.CR4 = 0 }, longMode, "PAE"},
		{"L and D/B", func(s *hv.CPUState) { s.CS.Attr |= hv.SegDB }, longMode, "L and D/B"},
		{"GDTR limit", func(s *hv.CPUState) { s.GDTR.Limit = 0x10000 }, realMode, "GDTR"},
		{"PAT", func(s *hv.CPUState) { s.PAT = 2 }, realMode, "PAT"},
		{"GS base not canonical", func(s *hv.CPUState) { s.GS.Base = 1 << 60; s.GS.Attr = hv.SegP | hv.SegS | 3 }, longMode, "canonical"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.base()
			tc.edit(&s)
			err := checkGuest(&s, &c)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("checkGuest = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("checkGuest = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
