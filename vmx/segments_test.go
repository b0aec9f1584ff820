package vmx

import (
	"testing"

	"github.com/godwit-hv/godwit/hv"
)

func TestAccessRights(t *testing.T) {
	for _, tc := range []struct {
		name string
		attr uint16
		tr   bool
		ar   uint32
	}{
		{"real-mode code", 0x09B, false, 0x0009B},
		{"real-mode data", 0x093, false, 0x00093},
		{"64-bit code, G", hv.SegP | hv.SegS | 0xB | hv.SegL | hv.SegG, false, 0x0A09B},
		{"32-bit flat data", hv.SegP | hv.SegS | 0x3 | hv.SegDB | hv.SegG, false, 0x0C093},
		{"DPL 3 code", hv.SegP | hv.SegS | 3<<hv.SegDPLShift | 0xB | hv.SegL, false, 0x020FB},
		{"AVL", hv.SegP | hv.SegS | 0x3 | hv.SegAVL, false, 0x01093},
		{"busy TSS", hv.SegP | 0xB, true, 0x0008B},
		{"null selector", 0, false, arUnusable},
		{"not present data", hv.SegS | 0x3, false, arUnusable | 0x13},
		{"TR is never unusable", 0xB, true, 0x0000B},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ar := accessRights(tc.attr, tc.tr)
			if ar != tc.ar {
				t.Errorf("accessRights(%#x, %v) = %#x, want %#x", tc.attr, tc.tr, ar, tc.ar)
			}
			if back := segAttr(ar); back != tc.attr {
				t.Errorf("segAttr(%#x) = %#x, want %#x", ar, back, tc.attr)
			}
		})
	}
	// What a processor stores for an unusable segment keeps the other bits; P reads as 0.
	if got := segAttr(arUnusable | 0xC093); got != hv.SegS|0x3|hv.SegDB|hv.SegG {
		t.Errorf("segAttr(unusable|0xC093) = %#x", got)
	}
	if got := accessRights(0xFFF, false); got&arReserved != 0 {
		t.Errorf("accessRights(0xFFF) = %#x sets reserved bits", got)
	}
}

func TestTSSBase(t *testing.T) {
	// A 64-bit TSS descriptor as arch/ring0 builds it: base 0x1234_5678_9ABC_DEF0, limit 0x67.
	base := uint64(0x123456789ABCDEF0)
	lo := uint64(0x67) | (base&0xFFFFFF)<<16 | 0x89<<40 | (base>>24&0xFF)<<56
	d := make([]byte, 16)
	for i := 0; i < 8; i++ {
		d[i] = byte(lo >> (8 * i))
		d[8+i] = byte(base >> 32 >> (8 * i))
	}
	if got := tssBase(d); got != base {
		t.Errorf("tssBase = %#x, want %#x", got, base)
	}
}
