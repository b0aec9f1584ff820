package ept

import "fmt"

// Kind selects the entry format.
type Kind uint8

// Formats.
const (
	// NPT is AMD-V nested paging: long-mode entries, root in VMCB nCR3.
	NPT Kind = iota + 1
	// EPT is Intel VT-x extended page tables, root in the EPTP.
	EPT
)

func (k Kind) String() string {
	switch k {
	case NPT:
		return "NPT"
	case EPT:
		return "EPT"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// format holds the per-kind encoding. It is a small value (no interface)
// so entry encoding inlines on the walk paths.
type format struct {
	kind     Kind
	ad       bool // hardware accessed/dirty bits are maintained
	execOnly bool // EPT execute-only translations are supported
	ipat     bool // EPT leaves set ignore-PAT
}

func (f *format) present(e uint64) bool {
	if f.kind == EPT {
		// An EPT entry is not present when bits 2:0 are all 0.
		return e&eptRWX != 0
	}
	return e&nptP != 0
}

// leafAt reports whether present entry e at level maps a page.
func (f *format) leafAt(e uint64, level int) bool {
	if level == 1 {
		return true
	}
	if f.kind == EPT {
		return e&eptPS != 0
	}
	return e&nptPS != 0
}

// addr returns the address an entry holds (a page for leaves, else a table).
func (f *format) addr(e uint64, level int) uint64 {
	if level == 2 && f.leafAt(e, level) {
		return e & addrMask2M
	}
	return e & addrMask4K
}

// table encodes a non-leaf entry pointing at the table at pa. Non-leaf
// entries grant everything; leaves alone restrict access.
func (f *format) table(pa uint64) uint64 {
	if f.kind == EPT {
		return pa | eptRWX
	}
	return pa | nptP | nptRW | nptUS
}

func (f *format) checkPerm(p Perm) error {
	if p&^RWX != 0 || p == 0 {
		return fmt.Errorf("%w: %v", ErrPerm, p)
	}
	if p&Write != 0 && p&Read == 0 {
		// EPT: write without read is a misconfiguration (29.3.3.1);
		// NPT: a present entry is always readable.
		return fmt.Errorf("%w: %v (write without read)", ErrPerm, p)
	}
	if p&Read == 0 && (f.kind == NPT || !f.execOnly) {
		return fmt.Errorf("%w: %v (execute-only not supported)", ErrPerm, p)
	}
	return nil
}

func (f *format) checkMemType(m MemType) error {
	switch m {
	case UC, WT, WB:
		return nil
	case WC, WP:
		if f.kind == EPT {
			return nil
		}
	}
	return fmt.Errorf("%w: %v for %v", ErrMemType, m, f.kind)
}

// permBits encodes permissions into the leaf's access bits.
func (f *format) permBits(p Perm) uint64 {
	var e uint64
	if f.kind == EPT {
		if p&Read != 0 {
			e |= eptR
		}
		if p&Write != 0 {
			e |= eptW
		}
		if p&Exec != 0 {
			e |= eptX
		}
		return e
	}
	e = nptP | nptUS
	if p&Write != 0 {
		e |= nptRW
	}
	if p&Exec == 0 {
		e |= nptNX
	}
	return e
}

// permMask is every bit permBits may set.
func (f *format) permMask() uint64 {
	if f.kind == EPT {
		return eptRWX
	}
	return nptP | nptUS | nptRW | nptNX
}

// perm decodes a leaf's hardware permissions.
func (f *format) perm(e uint64) Perm {
	var p Perm
	if f.kind == EPT {
		if e&eptR != 0 {
			p |= Read
		}
		if e&eptW != 0 {
			p |= Write
		}
		if e&eptX != 0 {
			p |= Exec
		}
		return p
	}
	if e&nptP == 0 {
		return 0
	}
	p = Read
	if e&nptRW != 0 {
		p |= Write
	}
	if e&nptNX == 0 {
		p |= Exec
	}
	return p
}

// memTypeBits encodes the memory type of a leaf at level.
//
// EPT: the type goes in bits 5:3 (29.3.7 "EPT and Memory Typing").
// NPT: the type is selected through the host PAT with PWT/PCD (and PAT),
// assuming the host PAT holds its power-on value, where entry 0 is WB,
// entry 1 WT and entry 3 UC. AMD APM Vol. 2, 7.8.2 "PAT Indexing" and
// 15.25.8 "Combining Memory Types, MTRRs".
func (f *format) memTypeBits(m MemType) uint64 {
	if f.kind == EPT {
		e := uint64(m) << eptMTShift
		if f.ipat {
			e |= eptIPAT
		}
		return e
	}
	switch m {
	case WT:
		return nptPWT
	case UC:
		return nptPCD | nptPWT
	}
	return 0
}

func (f *format) memType(e uint64) MemType {
	if f.kind == EPT {
		return MemType((e & eptMT) >> eptMTShift)
	}
	switch e & (nptPCD | nptPWT) {
	case nptPWT:
		return WT
	case nptPCD | nptPWT, nptPCD:
		return UC
	}
	return WB
}

// leaf encodes a leaf mapping hpa at level (1: 4 KiB, 2: 2 MiB).
func (f *format) leaf(hpa uint64, level int, p Perm, m MemType) uint64 {
	e := hpa | f.permBits(p) | f.memTypeBits(m)
	if level == 2 {
		if f.kind == EPT {
			e |= eptPS
		} else {
			e |= nptPS
		}
	}
	return e
}

// split turns a 2 MiB leaf into the entry for its i'th 4 KiB page. Access
// bits, memory type and software bits carry over; the dirty bit too, so a
// 2 MiB page written before the split reads as 512 dirty 4 KiB pages.
func (f *format) split(e uint64, i int) uint64 {
	base := e&addrMask2M + uint64(i)*PageSize4K
	keep := e &^ addrMask4K // all flag bits, including 63:52
	if f.kind == EPT {
		keep &^= eptPS
	} else {
		keep &^= nptPS
		// The large-page PAT bit (12) is inside addrMask4K and so already
		// dropped; this code never sets it, so there is nothing to move.
	}
	return base | keep
}

func (f *format) writeBit() uint64 {
	if f.kind == EPT {
		return eptW
	}
	return nptRW
}

func (f *format) swWritable() uint64 {
	if f.kind == EPT {
		return eptSWWritable
	}
	return nptSWWritable
}

func (f *format) accessedBit() uint64 {
	if !f.ad {
		return 0
	}
	if f.kind == EPT {
		return eptA
	}
	return nptA
}

func (f *format) dirtyBit() uint64 {
	if !f.ad {
		return 0
	}
	if f.kind == EPT {
		return eptD
	}
	return nptD
}
