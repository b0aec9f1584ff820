package hv

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Guest linear-to-physical translation through the guest's own page tables, for instruction
// fetch and emulated memory operands. Intel SDM Vol. 3A, 4.3 "32-Bit Paging", 4.4 "PAE
// Paging", 4.5 "4-Level Paging and 5-Level Paging"; AMD APM Vol. 2, 5.3 "Long-Mode Page
// Translation".

// Control-register bits.
const (
	CR0PE    = 1 << 0
	CR0ET    = 1 << 4
	CR0NE    = 1 << 5
	CR0PG    = 1 << 31
	CR4PSE   = 1 << 4
	CR4PAE   = 1 << 5
	EFERLME  = 1 << 8
	EFERLMA  = 1 << 10
	RFLAGSIF = 1 << 9
	RFLAGSVM = 1 << 17

	ptP   = 1 << 0
	ptPS  = 1 << 7
	ptAdr = 0x000F_FFFF_FFFF_F000
)

// ErrPageFault is returned when the guest's page tables do not map a linear address.
var ErrPageFault = errors.New("guest page tables do not map the address")

// Translate maps a guest linear address to a guest-physical address using s's paging mode.
func Translate(m *Memory, s *CPUState, linear uint64) (uint64, error) {
	if s.CR0&CR0PG == 0 {
		if s.EFER&EFERLMA == 0 {
			return linear & 0xFFFF_FFFF, nil
		}
		return linear, nil
	}
	read := func(gpa uint64) (uint64, error) {
		b, err := m.Slice(gpa, 8)
		if err != nil {
			return 0, fmt.Errorf("page-table entry at %#x: %w", gpa, err)
		}
		return binary.LittleEndian.Uint64(b), nil
	}
	switch {
	case s.EFER&EFERLMA != 0: // 4-level
		table := s.CR3 & ptAdr
		for level := 3; level >= 0; level-- {
			idx := (linear >> (12 + 9*uint(level))) & 511
			e, err := read(table + idx*8)
			if err != nil {
				return 0, err
			}
			if e&ptP == 0 {
				return 0, fmt.Errorf("%#x (level %d): %w", linear, level+1, ErrPageFault)
			}
			if level > 0 && level < 3 && e&ptPS != 0 {
				size := uint64(1) << (12 + 9*uint(level))
				return e&ptAdr&^(size-1) | linear&(size-1), nil
			}
			table = e & ptAdr
		}
		return table | linear&0xFFF, nil
	case s.CR4&CR4PAE != 0: // PAE: 4 PDPTEs, then 2-level with 64-bit entries
		linear &= 0xFFFF_FFFF
		pdpte, err := read(s.CR3&0xFFFF_FFE0 + (linear>>30)*8)
		if err != nil {
			return 0, err
		}
		if pdpte&ptP == 0 {
			return 0, fmt.Errorf("%#x (PDPTE): %w", linear, ErrPageFault)
		}
		pde, err := read(pdpte&ptAdr + (linear>>21&511)*8)
		if err != nil {
			return 0, err
		}
		if pde&ptP == 0 {
			return 0, fmt.Errorf("%#x (PDE): %w", linear, ErrPageFault)
		}
		if pde&ptPS != 0 {
			return pde&ptAdr&^(1<<21-1) | linear&(1<<21-1), nil
		}
		pte, err := read(pde&ptAdr + (linear>>12&511)*8)
		if err != nil {
			return 0, err
		}
		if pte&ptP == 0 {
			return 0, fmt.Errorf("%#x (PTE): %w", linear, ErrPageFault)
		}
		return pte&ptAdr | linear&0xFFF, nil
	default: // 32-bit paging
		linear &= 0xFFFF_FFFF
		b, err := m.Slice(s.CR3&0xFFFF_F000+(linear>>22)*4, 4)
		if err != nil {
			return 0, err
		}
		pde := uint64(binary.LittleEndian.Uint32(b))
		if pde&ptP == 0 {
			return 0, fmt.Errorf("%#x (PDE): %w", linear, ErrPageFault)
		}
		if pde&ptPS != 0 && s.CR4&CR4PSE != 0 {
			// 4 MiB page; bits 20:13 extend the address. Intel SDM Vol. 3A, Table 4-4.
			return pde&0xFFC0_0000 | (pde>>13&0xFF)<<32 | linear&0x3F_FFFF, nil
		}
		b, err = m.Slice(pde&0xFFFF_F000+(linear>>12&1023)*4, 4)
		if err != nil {
			return 0, err
		}
		pte := uint64(binary.LittleEndian.Uint32(b))
		if pte&ptP == 0 {
			return 0, fmt.Errorf("%#x (PTE): %w", linear, ErrPageFault)
		}
		return pte&0xFFFF_F000 | linear&0xFFF, nil
	}
}
