package loader

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/godwit-hv/godwit/hv"
)

// Test images, built in memory.

// mbHeader returns a multiboot header with a valid checksum, followed by the a.out kludge
// fields if any are given.
func mbHeader(flags uint32, aout ...uint32) []byte {
	h := binary.LittleEndian.AppendUint32(nil, HeaderMagic)
	h = binary.LittleEndian.AppendUint32(h, flags)
	h = binary.LittleEndian.AppendUint32(h, -(HeaderMagic + flags))
	for _, v := range aout {
		h = binary.LittleEndian.AppendUint32(h, v)
	}
	return h
}

// testSeg is a program header for buildELF: data is placed at offset in the file.
type testSeg struct {
	typ          uint32
	vaddr, paddr uint64
	offset       uint64
	data         []byte
	memsz        uint64 // 0: len(data)
}

// buildELF returns an ELF executable (class 1 or 2) with the given program headers, right
// after the ELF header; segment data goes at each segment's offset.
func buildELF(class int, entry uint64, segs []testSeg) []byte {
	le := binary.LittleEndian
	ehsize, phsize := elf32EhdrSize, elf32PhdrSize
	machine := uint16(emI386)
	if class == elfClass64 {
		ehsize, phsize, machine = elf64EhdrSize, elf64PhdrSize, emX86_64
	}
	size := ehsize + phsize*len(segs)
	for _, s := range segs {
		size = max(size, int(s.offset)+len(s.data))
	}
	f := make([]byte, size)
	copy(f, elfMagic)
	f[4], f[5], f[6] = byte(class), elfData2LSB, 1
	le.PutUint16(f[16:], etExec)
	le.PutUint16(f[18:], machine)
	le.PutUint32(f[20:], 1)
	if class == elfClass32 {
		le.PutUint32(f[24:], uint32(entry))
		le.PutUint32(f[28:], uint32(ehsize))
		le.PutUint16(f[40:], uint16(ehsize))
		le.PutUint16(f[42:], uint16(phsize))
		le.PutUint16(f[44:], uint16(len(segs)))
	} else {
		le.PutUint64(f[24:], entry)
		le.PutUint64(f[32:], uint64(ehsize))
		le.PutUint16(f[52:], uint16(ehsize))
		le.PutUint16(f[54:], uint16(phsize))
		le.PutUint16(f[56:], uint16(len(segs)))
	}
	for i, s := range segs {
		ph := f[ehsize+i*phsize:]
		memsz := s.memsz
		if memsz == 0 {
			memsz = uint64(len(s.data))
		}
		typ := s.typ
		if typ == 0 {
			typ = ptLoad
		}
		if class == elfClass32 {
			le.PutUint32(ph[0:], typ)
			le.PutUint32(ph[4:], uint32(s.offset))
			le.PutUint32(ph[8:], uint32(s.vaddr))
			le.PutUint32(ph[12:], uint32(s.paddr))
			le.PutUint32(ph[16:], uint32(len(s.data)))
			le.PutUint32(ph[20:], uint32(memsz))
		} else {
			le.PutUint32(ph[0:], typ)
			le.PutUint64(ph[8:], s.offset)
			le.PutUint64(ph[16:], s.vaddr)
			le.PutUint64(ph[24:], s.paddr)
			le.PutUint64(ph[32:], uint64(len(s.data)))
			le.PutUint64(ph[40:], memsz)
		}
		copy(f[s.offset:], s.data)
	}
	return f
}

// code returns n bytes of recognizable "code" starting with a multiboot header.
func code(hdr []byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(0x90 + i%7)
	}
	copy(b, hdr)
	return b
}

// simpleELF32 is a kernel of two segments: text (with the header) at 1 MiB, and data with
// a BSS at 1 MiB + 16 KiB. The entry is 16 bytes into the text.
func simpleELF32() []byte {
	return buildELF(elfClass32, 0x100010, []testSeg{
		{vaddr: 0x100000, paddr: 0x100000, offset: 0x1000, data: code(mbHeader(HeaderPageAlign|HeaderMemoryInfo), 0x800)},
		{vaddr: 0x104000, paddr: 0x104000, offset: 0x2000, data: []byte(strings.Repeat("data", 64)), memsz: 0x3000},
	})
}

// aoutImage is a flat image whose header (at file offset hdrOff) carries the a.out kludge:
// loaded at 2 MiB, header at load_addr+hdrOff, 0x600 bytes of file, BSS to 0x2000.
func aoutImage(hdrOff int) []byte {
	const loadAddr = 0x200000
	img := code(nil, 0x600)
	copy(img[hdrOff:], mbHeader(HeaderMemoryInfo|HeaderAOutKludge,
		uint32(loadAddr+hdrOff), loadAddr, loadAddr+0x600, loadAddr+0x2000, loadAddr+0x40))
	return img
}

// decoded is the multiboot information as a kernel sees it, decoded independently of the
// loader's builder.
type decoded struct {
	flags              uint32
	memLower, memUpper uint32
	cmdline, loader    string
	mmap               []mmapEntry
	mods               []decodedMod
}

type decodedMod struct {
	start, end uint32
	cmdline    string
}

func cstring(t *testing.T, mem *hv.Memory, addr uint32) string {
	t.Helper()
	var sb strings.Builder
	for a := uint64(addr); ; a++ {
		b, err := mem.Slice(a, 1)
		if err != nil {
			t.Fatalf("string at %#x runs off guest memory", addr)
		}
		if b[0] == 0 {
			return sb.String()
		}
		sb.WriteByte(b[0])
	}
}

func decodeInfo(t *testing.T, mem *hv.Memory, addr uint64) decoded {
	t.Helper()
	le := binary.LittleEndian
	b, err := mem.Slice(addr, infoSize)
	if err != nil {
		t.Fatalf("info structure at %#x: %v", addr, err)
	}
	d := decoded{flags: le.Uint32(b[0:]), memLower: le.Uint32(b[4:]), memUpper: le.Uint32(b[8:])}
	if d.flags&InfoCmdline != 0 {
		d.cmdline = cstring(t, mem, le.Uint32(b[16:]))
	}
	if d.flags&InfoBootLoaderName != 0 {
		d.loader = cstring(t, mem, le.Uint32(b[64:]))
	}
	if d.flags&InfoModules != 0 {
		n, at := le.Uint32(b[20:]), le.Uint32(b[24:])
		for i := uint32(0); i < n; i++ {
			m, err := mem.Slice(uint64(at+16*i), 16)
			if err != nil {
				t.Fatalf("module entry %d: %v", i, err)
			}
			d.mods = append(d.mods, decodedMod{le.Uint32(m[0:]), le.Uint32(m[4:]), cstring(t, mem, le.Uint32(m[8:]))})
		}
	}
	if d.flags&InfoMemoryMap != 0 {
		length, at := uint64(le.Uint32(b[44:])), uint64(le.Uint32(b[48:]))
		// Walk the map as the specification's example does: size counts the bytes after it.
		for p := at; p < at+length; {
			e, err := mem.Slice(p, 24)
			if err != nil {
				t.Fatalf("memory map entry at %#x: %v", p, err)
			}
			d.mmap = append(d.mmap, mmapEntry{le.Uint64(e[4:]), le.Uint64(e[12:]), le.Uint32(e[20:])})
			p += uint64(le.Uint32(e[0:])) + 4
		}
	}
	return d
}
