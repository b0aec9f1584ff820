package boot_test

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
)

// Synthetic kernel ELF files laid out as the Go linker does with -T 0x101000: the first
// PT_LOAD starts at file offset 0 and address 0x100000, so the first page holds the ELF header,
// the program headers, the section headers and the build-ID note, and every segment's file
// offset is its address minus 0x100000.

const (
	testLoadBase = 0x100000
	ehdrSize     = 64
	phdrSize     = 56
	shdrSize     = 64
)

// seg is a PT_LOAD segment.
type seg struct {
	off, vaddr, paddr, filesz, memsz uint64
}

// elfSpec describes a synthetic image; the zero value of each field means the default.
type elfSpec struct {
	typ     elf.Type    // ET_EXEC
	machine elf.Machine // EM_X86_64
	entry   uint64      // 0x101800
	loads   []seg       // text [0x100000, 0x103000) and data+bss [0x103000, 0x108000)
	noNote  bool        // no PT_NOTE segment and no note section
	noteOff uint64      // 0xF80
	note    []byte      // the PT_NOTE contents: a Go build-ID note
	// fill is written over the first page's padding between the section headers and the
	// note (0 leaves it zero, as the Go linker does).
	fill byte
}

// goNote returns a Go build-ID note: namesz 4 ("Go\0\0"), type 4, descsz len(id).
func goNote(id string) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, [3]uint32{4, uint32(len(id)), 4})
	b.WriteString("Go\x00\x00")
	b.WriteString(id)
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
	return b.Bytes()
}

const testBuildID = "UkOtODEM59gXtS-ckTaw/BTIS7_1SO8j75PDMvU9n/E-O26pCOK-xFtophXXRq/4iABriPniKaD8kdZZChi"

// build returns the ELF file and the offsets of its program headers, by index.
func (s elfSpec) build() []byte {
	if s.typ == 0 {
		s.typ = elf.ET_EXEC
	}
	if s.machine == 0 {
		s.machine = elf.EM_X86_64
	}
	if s.entry == 0 {
		s.entry = 0x101800
	}
	if s.loads == nil {
		s.loads = []seg{
			{off: 0, vaddr: 0x100000, paddr: 0x100000, filesz: 0x3000, memsz: 0x3000},
			{off: 0x3000, vaddr: 0x103000, paddr: 0x103000, filesz: 0x1000, memsz: 0x5000},
		}
	}
	if s.noteOff == 0 {
		s.noteOff = 0xF80
	}
	if s.note == nil && !s.noNote {
		s.note = goNote(testBuildID)
	}

	// Program headers: PHDR, NOTE, the loads (the Go linker's order).
	var progs []elf.Prog64
	progs = append(progs, elf.Prog64{}) // PHDR, filled below
	if !s.noNote {
		progs = append(progs, elf.Prog64{Type: uint32(elf.PT_NOTE), Flags: uint32(elf.PF_R),
			Off: s.noteOff, Vaddr: testLoadBase + s.noteOff, Paddr: testLoadBase + s.noteOff,
			Filesz: uint64(len(s.note)), Memsz: uint64(len(s.note)), Align: 4})
	}
	fileEnd := uint64(0)
	for _, l := range s.loads {
		progs = append(progs, elf.Prog64{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_W | elf.PF_X),
			Off: l.off, Vaddr: l.vaddr, Paddr: l.paddr, Filesz: l.filesz, Memsz: l.memsz, Align: 0x1000})
		fileEnd = max(fileEnd, l.off+l.filesz)
	}
	phnum := len(progs)
	progs[0] = elf.Prog64{Type: uint32(elf.PT_PHDR), Flags: uint32(elf.PF_R), Off: ehdrSize,
		Vaddr: testLoadBase + ehdrSize, Paddr: testLoadBase + ehdrSize,
		Filesz: uint64(phnum * phdrSize), Memsz: uint64(phnum * phdrSize), Align: 0x1000}

	// Sections: NULL, the note, one per load (text/data), .bss, .shstrtab at the end.
	var shstr bytes.Buffer
	shstr.WriteByte(0)
	name := func(n string) uint32 {
		off := uint32(shstr.Len())
		shstr.WriteString(n + "\x00")
		return off
	}
	secs := []elf.Section64{{}}
	if !s.noNote {
		secs = append(secs, elf.Section64{Name: name(".note.go.buildid"), Type: uint32(elf.SHT_NOTE),
			Flags: uint64(elf.SHF_ALLOC), Addr: testLoadBase + s.noteOff, Off: s.noteOff,
			Size: uint64(len(s.note)), Addralign: 4})
	}
	for i, l := range s.loads {
		off, addr, size := l.off, l.vaddr, l.filesz
		if i == 0 && off == 0 && size > 0x1000 { // the text section starts after the header page
			off, addr, size = 0x1000, l.vaddr+0x1000, l.filesz-0x1000
		}
		secs = append(secs, elf.Section64{Name: name([]string{".text", ".data", ".rodata"}[i%3]),
			Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Addr: addr, Off: off,
			Size: size, Addralign: 32})
		if l.memsz > l.filesz {
			secs = append(secs, elf.Section64{Name: name(".bss"), Type: uint32(elf.SHT_NOBITS),
				Flags: uint64(elf.SHF_ALLOC | elf.SHF_WRITE), Addr: l.vaddr + l.filesz, Off: l.off + l.filesz,
				Size: l.memsz - l.filesz, Addralign: 32})
		}
	}
	shstrndx := len(secs)
	secs = append(secs, elf.Section64{Name: name(".shstrtab"), Type: uint32(elf.SHT_STRTAB), Addralign: 1})
	secs[shstrndx].Off = max(fileEnd, 0x1000)
	secs[shstrndx].Size = uint64(shstr.Len())

	shoff := uint64(ehdrSize + phnum*phdrSize)
	size := secs[shstrndx].Off + secs[shstrndx].Size
	img := make([]byte, size)

	hdr := elf.Header64{
		Type: uint16(s.typ), Machine: uint16(s.machine), Version: uint32(elf.EV_CURRENT),
		Entry: s.entry, Phoff: ehdrSize, Shoff: shoff, Ehsize: ehdrSize,
		Phentsize: phdrSize, Phnum: uint16(phnum), Shentsize: shdrSize, Shnum: uint16(len(secs)),
		Shstrndx: uint16(shstrndx),
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, hdr)
	binary.Write(&b, binary.LittleEndian, progs)
	binary.Write(&b, binary.LittleEndian, secs)
	copy(img, b.Bytes())

	// Segment contents: non-zero, so that the patcher must not write over them.
	for i, l := range s.loads {
		from := max(l.off, 0x1000)
		for o := from; o < l.off+l.filesz && o < uint64(len(img)); o++ {
			img[o] = byte(0xC0 + i)
		}
	}
	if s.fill != 0 {
		for o := b.Len(); o < int(s.noteOff) && o < 0x1000; o++ {
			img[o] = s.fill
		}
	}
	copy(img[s.noteOff:], s.note)
	copy(img[secs[shstrndx].Off:], shstr.Bytes())
	return img
}

// phdrOff returns the file offset of program header i in an image built by elfSpec.build.
func phdrOff(i int) int { return ehdrSize + i*phdrSize }

// Prog64 field offsets.
const (
	phType   = 0
	phOffset = 8
	phVaddr  = 16
	phPaddr  = 24
	phFilesz = 32
	phMemsz  = 40
)

// elf32 returns a minimal 32-bit x86 executable with one flat PT_LOAD.
func elf32() []byte {
	hdr := elf.Header32{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_386), Version: uint32(elf.EV_CURRENT),
		Entry: 0x101000, Phoff: 52, Ehsize: 52, Phentsize: 32, Phnum: 1, Shentsize: 40,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS32)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	prog := elf.Prog32{Type: uint32(elf.PT_LOAD), Off: 0, Vaddr: 0x100000, Paddr: 0x100000,
		Filesz: 0x2000, Memsz: 0x2000, Flags: uint32(elf.PF_R | elf.PF_X), Align: 0x1000}
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, hdr)
	binary.Write(&b, binary.LittleEndian, prog)
	img := make([]byte, 0x2000)
	copy(img, b.Bytes())
	return img
}
