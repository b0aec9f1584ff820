package vmx

import "github.com/godwit-hv/godwit/hv"

// VMX segment access rights: the descriptor's type, S, DPL and P in bits 7:0, AVL, L, D/B and
// G in bits 15:12, and bit 16 "segment unusable". Intel SDM Vol. 3C, 25.4.1 "Guest Register
// State", Table 25-2 "Format of Access Rights". hv.Segment.Attr packs the same bits as AMD's
// VMCB does, with the high nibble at 11:8.
const (
	arUnusable = 1 << 16
	arP        = 1 << 7
	arS        = 1 << 4
	arL        = 1 << 13
	arDB       = 1 << 14
	arG        = 1 << 15
	arReserved = 0xFFFE0F00 // bits 11:8 and 31:17 are reserved (must be 0)
)

// accessRights converts a segment's attributes to VMX access rights. A segment that is not
// present is marked unusable, which is how VMX represents a null selector loaded in protected
// mode (25.4.1). tr is true for the task register, which VM entry requires to be usable.
func accessRights(attr uint16, tr bool) uint32 {
	ar := uint32(attr&0xFF) | uint32(attr&0xF00)<<4
	if attr&hv.SegP == 0 && !tr {
		ar |= arUnusable
	}
	return ar
}

// segAttr converts VMX access rights back. An unusable segment comes back with P clear (the
// processor leaves the other bits of an unusable segment's access rights as they were, and
// SS.DPL keeps the CPL, so they are kept).
func segAttr(ar uint32) uint16 {
	attr := uint16(ar&0xFF) | uint16(ar>>4&0xF00)
	if ar&arUnusable != 0 {
		attr &^= hv.SegP
	}
	return attr
}
