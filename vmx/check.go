package vmx

import (
	"fmt"

	"github.com/godwit-hv/godwit/hv"
)

// checkGuest evaluates the VM-entry checks on the guest-state area that can be decided from
// hv.CPUState (with unrestricted guest, EPT and no virtual-8086 support in Godwit), and returns
// the first one that fails, named as in the manual. Intel SDM Vol. 3C, 27.3.1 "Checks on the
// Guest State Area": 27.3.1.1 control registers and MSRs, 27.3.1.2 segment registers, 27.3.1.3
// descriptor-table registers, 27.3.1.4 RIP and RFLAGS, 27.3.1.5 non-register state.
// s.EFER.LMA must already be derived from LME and CR0.PG.
func checkGuest(s *hv.CPUState, c *Caps) error {
	// 27.3.1.1.
	cr0, _ := c.guestCR0(s.CR0)
	if s.CR0&cr0PG != 0 && s.CR0&cr0PE == 0 {
		return fmt.Errorf("CR0 %#x: PG set without PE (27.3.1.1)", s.CR0)
	}
	if s.CR0&cr0NW != 0 && s.CR0&cr0CD == 0 {
		return fmt.Errorf("CR0 %#x: NW set without CD", s.CR0)
	}
	if s.CR0>>32 != 0 {
		return fmt.Errorf("CR0 %#x: bits 63:32 set", s.CR0)
	}
	if want := s.CR0 | c.CR0Fixed0&^(cr0PE|cr0PG); cr0 != want {
		return fmt.Errorf("CR0 %#x: bits %#x must be 0 in VMX operation (IA32_VMX_CR0_FIXED1 %#x)", s.CR0, want&^cr0, c.CR0Fixed1)
	}
	cr4, _ := c.guestCR4(s.CR4)
	if want := s.CR4 | c.CR4Fixed0; cr4 != want {
		return fmt.Errorf("CR4 %#x: bits %#x must be 0 in VMX operation (IA32_VMX_CR4_FIXED1 %#x)", s.CR4, want&^cr4, c.CR4Fixed1)
	}
	ia32e := s.EFER&eferLMA != 0
	if ia32e && (s.CR0&cr0PG == 0 || s.CR4&cr4PAE == 0) {
		return fmt.Errorf("IA-32e mode guest needs CR0.PG and CR4.PAE (CR0 %#x CR4 %#x)", s.CR0, s.CR4)
	}
	if !ia32e && s.CR4&cr4PCID != 0 {
		return fmt.Errorf("CR4.PCIDE set outside IA-32e mode")
	}
	if s.CR3>>52 != 0 {
		return fmt.Errorf("CR3 %#x: bits beyond the physical-address width set", s.CR3)
	}
	if s.DR7>>32 != 0 {
		return fmt.Errorf("DR7 %#x: bits 63:32 set", s.DR7)
	}
	if s.EFER&^0xD01 != 0 { // SCE, LME, LMA, NXE: the bits a guest EFER may hold
		return fmt.Errorf("EFER %#x: reserved bits set", s.EFER)
	}
	for i := 0; i < 8; i++ {
		switch s.PAT >> (8 * i) & 0xFF {
		case 0, 1, 4, 5, 6, 7:
		default:
			return fmt.Errorf("PAT %#x: entry %d is not a memory type", s.PAT, i)
		}
	}

	// 27.3.1.4: RFLAGS and RIP.
	if s.RFLAGS&(1<<1) == 0 || s.RFLAGS&^0x3F7FD7 != 0 {
		return fmt.Errorf("RFLAGS %#x: reserved bits wrong (bit 1 must be 1; 3, 5, 15, 63:22 must be 0)", s.RFLAGS)
	}
	if s.RFLAGS&rflagsVM != 0 {
		return fmt.Errorf("RFLAGS.VM: virtual-8086 mode guests are not supported")
	}
	longCode := ia32e && s.CS.Attr&hv.SegL != 0
	if !longCode && s.RIP>>32 != 0 {
		return fmt.Errorf("RIP %#x: bits 63:32 set outside 64-bit code", s.RIP)
	}
	if longCode && !canonical(s.RIP) {
		return fmt.Errorf("RIP %#x not canonical", s.RIP)
	}

	// 27.3.1.2: segment registers.
	if s.TR.Selector&4 != 0 {
		return fmt.Errorf("TR selector %#x: TI flag set", s.TR.Selector)
	}
	usableLDTR := s.LDTR.Attr&hv.SegP != 0
	if usableLDTR && s.LDTR.Selector&4 != 0 {
		return fmt.Errorf("LDTR selector %#x: TI flag set", s.LDTR.Selector)
	}
	for _, sg := range []struct {
		name string
		s    *hv.Segment
	}{{"CS", &s.CS}, {"SS", &s.SS}, {"DS", &s.DS}, {"ES", &s.ES}, {"FS", &s.FS}, {"GS", &s.GS}, {"TR", &s.TR}, {"LDTR", &s.LDTR}} {
		if err := checkSegment(sg.name, sg.s, s, ia32e); err != nil {
			return err
		}
	}

	// 27.3.1.3: descriptor-table registers.
	if s.GDTR.Limit > 0xFFFF || s.IDTR.Limit > 0xFFFF {
		return fmt.Errorf("GDTR/IDTR limit above 0xFFFF (GDTR %#x, IDTR %#x)", s.GDTR.Limit, s.IDTR.Limit)
	}
	if !canonical(s.GDTR.Base) || !canonical(s.IDTR.Base) {
		return fmt.Errorf("GDTR/IDTR base not canonical")
	}

	// 27.3.1.5: interruptibility.
	if s.InterruptShadow && s.RFLAGS&(1<<9) == 0 && s.SS.Attr&hv.SegP == 0 {
		return fmt.Errorf("interrupt shadow with RFLAGS.IF = 0 and SS unusable")
	}
	return nil
}

func canonical(a uint64) bool { return uint64(int64(a<<16)>>16) == a }

// checkSegment applies 27.3.1.2 to one segment register (guest not in virtual-8086 mode;
// unrestricted guest).
func checkSegment(name string, sg *hv.Segment, s *hv.CPUState, ia32e bool) error {
	attr := sg.Attr
	typ := attr & hv.SegType
	usable := attr&hv.SegP != 0
	dpl := attr >> hv.SegDPLShift & 3
	fail := func(what string) error {
		return fmt.Errorf("%s (selector %#x attributes %#x limit %#x base %#x): %s (27.3.1.2)",
			name, sg.Selector, attr, sg.Limit, sg.Base, what)
	}
	switch name {
	case "TR":
		if !usable {
			return fail("TR must be usable (present)")
		}
		if ia32e && typ != 11 || !ia32e && typ != 3 && typ != 11 {
			return fail("type must be a busy TSS (11, or 3 outside IA-32e mode)")
		}
		if attr&hv.SegS != 0 {
			return fail("S must be 0 (system descriptor)")
		}
	case "LDTR":
		if !usable {
			return nil
		}
		if typ != 2 || attr&hv.SegS != 0 {
			return fail("type must be 2 (LDT) with S = 0")
		}
	case "CS":
		if !usable {
			return fail("CS must be usable (present)")
		}
		switch typ {
		case 9, 11, 13, 15:
		case 3:
			if dpl != 0 {
				return fail("a read/write data CS (unrestricted guest) needs DPL 0")
			}
		default:
			return fail("type must be accessed code (9, 11, 13, 15) or, with unrestricted guest, 3")
		}
		if attr&hv.SegS == 0 {
			return fail("S must be 1")
		}
		if typ == 9 || typ == 11 {
			if dpl != s.SS.Attr>>hv.SegDPLShift&3 {
				return fail("non-conforming code: DPL must equal SS.DPL")
			}
		} else if (typ == 13 || typ == 15) && dpl > s.SS.Attr>>hv.SegDPLShift&3 {
			return fail("conforming code: DPL must not exceed SS.DPL")
		}
		if ia32e && attr&hv.SegL != 0 && attr&hv.SegDB != 0 {
			return fail("L and D/B both set")
		}
	case "SS":
		if usable && typ != 3 && typ != 7 {
			return fail("type must be read/write data (3 or 7)")
		}
		if s.CR0&cr0PE == 0 && dpl != 0 {
			return fail("DPL must be 0 in real mode")
		}
		if s.CS.Attr&hv.SegType == 3 && dpl != 0 {
			return fail("DPL must be 0 when CS is a data segment")
		}
		if usable && attr&hv.SegS == 0 {
			return fail("S must be 1")
		}
	default: // DS, ES, FS, GS
		if !usable {
			return nil
		}
		if typ&1 == 0 {
			return fail("type must have the accessed bit")
		}
		if typ&8 != 0 && typ&2 == 0 {
			return fail("a code segment must be readable")
		}
		if attr&hv.SegS == 0 {
			return fail("S must be 1")
		}
	}
	if !usable {
		return nil
	}
	// Limit and granularity agree (all segments that are usable).
	if sg.Limit&0xFFF != 0xFFF && attr&hv.SegG != 0 {
		return fail("G set but limit bits 11:0 are not all 1")
	}
	if sg.Limit>>20 != 0 && attr&hv.SegG == 0 {
		return fail("limit above 1 MiB needs G = 1")
	}
	if attr&^0xFFF != 0 {
		return fail("attribute bits above 11 set")
	}
	if (name == "CS" || name == "SS" || name == "DS" || name == "ES") && sg.Base>>32 != 0 {
		return fail("base bits 63:32 must be 0")
	}
	if (name == "FS" || name == "GS" || name == "TR" || name == "LDTR") && !canonical(sg.Base) {
		return fail("base not canonical")
	}
	return nil
}
