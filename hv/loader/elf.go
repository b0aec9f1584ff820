package loader

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// The parts of ELF this loader reads. System V ABI, "ELF Header" and "Program Header"
// (gABI 4.1), with the x86 and x86-64 processor supplements.
const (
	elfMagic    = "\x7fELF"
	elfClass32  = 1 // e_ident[EI_CLASS]
	elfClass64  = 2
	elfData2LSB = 1 // e_ident[EI_DATA]
	etExec      = 2 // e_type
	emI386      = 3 // e_machine
	emX86_64    = 62
	ptLoad      = 1 // p_type

	elf32EhdrSize = 52
	elf64EhdrSize = 64
	elf32PhdrSize = 32
	elf64PhdrSize = 56
)

// elfSegments returns the PT_LOAD segments of an ELF32 or ELF64 image, by physical address,
// and the entry point, translated to a physical address when it lies in a segment whose
// virtual and physical addresses differ.
func elfSegments(kernel []byte) ([]segment, uint64, error) {
	if len(kernel) < 16 || !bytes.Equal(kernel[:4], []byte(elfMagic)) {
		return nil, 0, fmt.Errorf("%w: not an ELF file and the multiboot header has no a.out kludge (flags bit 16)", ErrBadImage)
	}
	class, data := kernel[4], kernel[5]
	if data != elfData2LSB {
		return nil, 0, fmt.Errorf("%w: ELF data encoding %d, want little-endian", ErrBadImage, data)
	}
	le := binary.LittleEndian
	var (
		machine, wantMachine  uint16
		entry, phoff          uint64
		phentsize, phnum      uint64
		ehdrSize, minPhdrSize uint64
	)
	switch class {
	case elfClass32:
		ehdrSize, minPhdrSize, wantMachine = elf32EhdrSize, elf32PhdrSize, emI386
	case elfClass64:
		ehdrSize, minPhdrSize, wantMachine = elf64EhdrSize, elf64PhdrSize, emX86_64
	default:
		return nil, 0, fmt.Errorf("%w: ELF class %d", ErrBadImage, class)
	}
	if uint64(len(kernel)) < ehdrSize {
		return nil, 0, fmt.Errorf("%w: ELF header truncated (%d bytes)", ErrBadImage, len(kernel))
	}
	if t := le.Uint16(kernel[16:]); t != etExec {
		return nil, 0, fmt.Errorf("%w: ELF type %d, want executable (%d)", ErrBadImage, t, etExec)
	}
	machine = le.Uint16(kernel[18:])
	if machine != wantMachine {
		return nil, 0, fmt.Errorf("%w: ELF class %d for machine %d, want machine %d", ErrBadImage, class, machine, wantMachine)
	}
	if class == elfClass32 {
		entry = uint64(le.Uint32(kernel[24:]))
		phoff = uint64(le.Uint32(kernel[28:]))
		phentsize = uint64(le.Uint16(kernel[42:]))
		phnum = uint64(le.Uint16(kernel[44:]))
	} else {
		entry = le.Uint64(kernel[24:])
		phoff = le.Uint64(kernel[32:])
		phentsize = uint64(le.Uint16(kernel[54:]))
		phnum = uint64(le.Uint16(kernel[56:]))
	}
	if phnum == 0 {
		return nil, 0, fmt.Errorf("%w: ELF file has no program headers", ErrBadImage)
	}
	if phentsize < minPhdrSize {
		return nil, 0, fmt.Errorf("%w: ELF program header size %d, want at least %d", ErrBadImage, phentsize, minPhdrSize)
	}
	size := uint64(len(kernel))
	if phoff > size || phnum*phentsize > size-phoff { // phnum, phentsize < 2^16: no overflow
		return nil, 0, fmt.Errorf("%w: ELF program headers (%d at %#x) beyond the end of the file (%d bytes)", ErrBadImage, phnum, phoff, size)
	}

	var segs []segment
	physEntry, translated := entry, false
	for i := uint64(0); i < phnum; i++ {
		ph := kernel[phoff+i*phentsize:]
		var typ uint32
		var off, vaddr, paddr, filesz, memsz uint64
		if class == elfClass32 {
			typ = le.Uint32(ph[0:])
			off = uint64(le.Uint32(ph[4:]))
			vaddr = uint64(le.Uint32(ph[8:]))
			paddr = uint64(le.Uint32(ph[12:]))
			filesz = uint64(le.Uint32(ph[16:]))
			memsz = uint64(le.Uint32(ph[20:]))
		} else {
			typ = le.Uint32(ph[0:])
			off = le.Uint64(ph[8:])
			vaddr = le.Uint64(ph[16:])
			paddr = le.Uint64(ph[24:])
			filesz = le.Uint64(ph[32:])
			memsz = le.Uint64(ph[40:])
		}
		if typ != ptLoad || memsz == 0 {
			continue
		}
		if filesz > memsz {
			return nil, 0, fmt.Errorf("%w: ELF segment %d: file size %#x above memory size %#x", ErrBadImage, i, filesz, memsz)
		}
		if off > size || filesz > size-off {
			return nil, 0, fmt.Errorf("%w: ELF segment %d (%#x bytes at file offset %#x) beyond the end of the file (%d bytes)",
				ErrBadImage, i, filesz, off, size)
		}
		if paddr+memsz < paddr || vaddr+memsz < vaddr {
			return nil, 0, fmt.Errorf("%w: ELF segment %d at %#x/%#x (%#x bytes) wraps around", ErrBadImage, i, paddr, vaddr, memsz)
		}
		if !translated && entry >= vaddr && entry-vaddr < memsz {
			physEntry, translated = paddr+(entry-vaddr), true
		}
		segs = append(segs, segment{paddr: paddr, data: kernel[off : off+filesz], memsz: memsz})
	}
	if len(segs) == 0 {
		return nil, 0, fmt.Errorf("%w: ELF file has no loadable segments", ErrBadImage)
	}
	return segs, physEntry, nil
}
