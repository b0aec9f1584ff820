package loader

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/godwit-hv/godwit/hv"
)

const testRAM = 16 << 20

// newMem returns guest memory filled with 0xAA, so zeroing and untouched bytes show.
func newMem(size int) *hv.Memory {
	return &hv.Memory{Host: bytes.Repeat([]byte{0xAA}, size)}
}

func mustSlice(t *testing.T, mem *hv.Memory, gpa, n uint64) []byte {
	t.Helper()
	b, err := mem.Slice(gpa, n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMultibootELF32(t *testing.T) {
	mem := newMem(testRAM)
	kernel := simpleELF32()
	mods := []Module{
		{Data: []byte("first module"), Cmdline: "mod1 a=b"},
		{Data: bytes.Repeat([]byte{7}, 5000), Cmdline: ""},
		{Data: nil, Cmdline: "empty"},
	}
	s, err := Multiboot(mem, kernel, "console=ttyS0 x", mods)
	if err != nil {
		t.Fatalf("Multiboot() = %v", err)
	}

	// The segments, and the BSS zeroed.
	if got, want := mustSlice(t, mem, 0x100000, 0x800), kernel[0x1000:0x1800]; !bytes.Equal(got, want) {
		t.Errorf("text at 1 MiB differs from the file")
	}
	if got, want := mustSlice(t, mem, 0x104000, 256), kernel[0x2000:0x2100]; !bytes.Equal(got, want) {
		t.Errorf("data at 0x104000 differs from the file")
	}
	if bss := mustSlice(t, mem, 0x104100, 0x3000-0x100); !bytes.Equal(bss, make([]byte, len(bss))) {
		t.Errorf("BSS 0x104100-0x107000 not zeroed")
	}
	if got := mustSlice(t, mem, 0x100800, 1)[0]; got != 0xAA {
		t.Errorf("byte between the segments = %#x, want untouched 0xaa", got)
	}

	// Machine state.
	if s.GPR[hv.RAX] != BootMagic || s.RIP != 0x100010 {
		t.Errorf("EAX, RIP = %#x, %#x, want %#x, 0x100010", s.GPR[hv.RAX], s.RIP, BootMagic)
	}
	if s.CR0 != cr0PE|cr0ET || s.CR4 != 0 || s.EFER != 0 || s.RFLAGS != 2 {
		t.Errorf("CR0, CR4, EFER, RFLAGS = %#x, %#x, %#x, %#x, want 0x11, 0, 0, 2", s.CR0, s.CR4, s.EFER, s.RFLAGS)
	}
	wantCS := hv.Segment{Selector: 0x08, Attr: 0xB | hv.SegS | hv.SegP | hv.SegDB | hv.SegG, Limit: 0xFFFFFFFF}
	if s.CS != wantCS {
		t.Errorf("CS = %+v, want %+v", s.CS, wantCS)
	}
	for name, seg := range map[string]hv.Segment{"DS": s.DS, "ES": s.ES, "FS": s.FS, "GS": s.GS, "SS": s.SS} {
		want := hv.Segment{Selector: 0x10, Attr: 0x3 | hv.SegS | hv.SegP | hv.SegDB | hv.SegG, Limit: 0xFFFFFFFF}
		if seg != want {
			t.Errorf("%s = %+v, want %+v", name, seg, want)
		}
	}
	if s.TR.Attr&hv.SegType != 0xB || s.TR.Attr&hv.SegP == 0 || s.TR.Attr&hv.SegS != 0 || s.TR.Limit < 0x67 {
		t.Errorf("TR = %+v, want a present busy 32-bit TSS", s.TR)
	}
	if s.LDTR.Attr&hv.SegP != 0 || s.LDTR.Selector != 0 {
		t.Errorf("LDTR = %+v, want null and unusable", s.LDTR)
	}
	if s.PAT != 0x0007040600070406 || s.DR7 != 0x400 || s.DR6 != 0xFFFF0FF0 {
		t.Errorf("PAT, DR6, DR7 = %#x, %#x, %#x, want reset values", s.PAT, s.DR6, s.DR7)
	}
	checkGDT(t, mem, s)

	// The boot information.
	d := decodeInfo(t, mem, s.GPR[hv.RBX])
	wantFlags := uint32(InfoMemory | InfoCmdline | InfoModules | InfoMemoryMap | InfoBootLoaderName)
	if d.flags != wantFlags {
		t.Errorf("info flags = %#x, want %#x", d.flags, wantFlags)
	}
	if d.memLower != 640 || d.memUpper != (testRAM-1<<20)/1024 {
		t.Errorf("mem_lower, mem_upper = %d, %d, want 640, %d", d.memLower, d.memUpper, (testRAM-1<<20)/1024)
	}
	if d.cmdline != "console=ttyS0 x" || d.loader != "godwit" {
		t.Errorf("cmdline, loader = %q, %q, want %q, %q", d.cmdline, d.loader, "console=ttyS0 x", "godwit")
	}
	wantMap := []mmapEntry{{0, 640 << 10, MemoryAvailable}, {640 << 10, 384 << 10, MemoryReserved}, {1 << 20, testRAM - 1<<20, MemoryAvailable}}
	if !slices.Equal(d.mmap, wantMap) {
		t.Errorf("memory map = %+v, want %+v", d.mmap, wantMap)
	}
	if len(d.mods) != len(mods) {
		t.Fatalf("%d modules, want %d", len(d.mods), len(mods))
	}
	kernelEnd := uint32(0x107000)
	prevEnd := kernelEnd
	for i, m := range d.mods {
		if m.start%pageSize != 0 || m.start < prevEnd {
			t.Errorf("module %d at %#x: want page-aligned at or after %#x", i, m.start, prevEnd)
		}
		if m.end-m.start != uint32(len(mods[i].Data)) {
			t.Errorf("module %d: mod_end-mod_start = %d, want %d", i, m.end-m.start, len(mods[i].Data))
		}
		if got := mustSlice(t, mem, uint64(m.start), uint64(m.end-m.start)); !bytes.Equal(got, mods[i].Data) {
			t.Errorf("module %d contents differ", i)
		}
		if m.cmdline != mods[i].Cmdline {
			t.Errorf("module %d cmdline = %q, want %q", i, m.cmdline, mods[i].Cmdline)
		}
		prevEnd = m.end
	}
	if s.GPR[hv.RBX] < uint64(prevEnd) || s.GPR[hv.RBX] >= testRAM {
		t.Errorf("info at %#x, want after the last module (%#x) and in RAM", s.GPR[hv.RBX], prevEnd)
	}
}

// checkGDT checks the loader's GDT describes the same segments as the hidden state, and
// that TR's descriptor is a busy TSS at TR.Base.
func checkGDT(t *testing.T, mem *hv.Memory, s *hv.CPUState) {
	t.Helper()
	gdt := mustSlice(t, mem, s.GDTR.Base, uint64(s.GDTR.Limit)+1)
	for _, seg := range []hv.Segment{s.CS, s.DS, s.SS, s.TR} {
		if uint32(seg.Selector)+7 > s.GDTR.Limit {
			t.Errorf("selector %#x beyond the GDT limit %#x", seg.Selector, s.GDTR.Limit)
			continue
		}
		d := binary.LittleEndian.Uint64(gdt[seg.Selector:])
		base := d>>16&0xFFFFFF | d>>56<<24
		limit := uint32(d&0xFFFF | d>>48&0xF<<16)
		attr := uint16(d>>40&0xFF | d>>52&0xF<<8)
		if attr&hv.SegG != 0 {
			limit = limit<<12 | 0xFFF
		}
		if base != seg.Base || limit != seg.Limit || attr != seg.Attr {
			t.Errorf("GDT[%#x] = base %#x limit %#x attr %#x, state has %+v", seg.Selector, base, limit, attr, seg)
		}
	}
}

func TestMultibootELF64(t *testing.T) {
	// A 64-bit ELF linked high (vaddr) but loaded low (paddr): the entry is translated.
	const vbase = 0xFFFFFFFF80000000
	kernel := buildELF(elfClass64, vbase+0x20, []testSeg{
		{vaddr: vbase, paddr: 0x200000, offset: 0x1000, data: code(mbHeader(HeaderMemoryInfo), 0x400), memsz: 0x1000},
	})
	mem := newMem(testRAM)
	s, err := Multiboot(mem, kernel, "", nil)
	if err != nil {
		t.Fatalf("Multiboot() = %v", err)
	}
	if s.RIP != 0x200020 {
		t.Errorf("RIP = %#x, want 0x200020 (the entry's physical address)", s.RIP)
	}
	if got := mustSlice(t, mem, 0x200000, 0x400); !bytes.Equal(got, kernel[0x1000:0x1400]) {
		t.Errorf("segment at 2 MiB differs from the file")
	}
	d := decodeInfo(t, mem, s.GPR[hv.RBX])
	if d.flags&InfoModules != 0 || d.cmdline != "" {
		t.Errorf("flags %#x, cmdline %q: want no modules and an empty command line", d.flags, d.cmdline)
	}
}

func TestMultibootAOut(t *testing.T) {
	for _, hdrOff := range []int{0, 0x40 - 12, 0x100} {
		kernel := aoutImage(hdrOff)
		if hdrOff >= elf32EhdrSize {
			// An ELF header in front, whose program headers say something else: the kludge
			// wins over ELF.
			copy(kernel, simpleELF32()[:elf32EhdrSize])
		}
		mem := newMem(testRAM)
		s, err := Multiboot(mem, kernel, "k", nil)
		if err != nil {
			t.Fatalf("header at %#x: Multiboot() = %v", hdrOff, err)
		}
		if s.RIP != 0x200040 {
			t.Errorf("header at %#x: RIP = %#x, want 0x200040", hdrOff, s.RIP)
		}
		if got := mustSlice(t, mem, 0x200000, 0x600); !bytes.Equal(got, kernel) {
			t.Errorf("header at %#x: image at 2 MiB differs from the file", hdrOff)
		}
		if bss := mustSlice(t, mem, 0x200600, 0x1A00); !bytes.Equal(bss, make([]byte, len(bss))) {
			t.Errorf("header at %#x: BSS not zeroed", hdrOff)
		}
		if s.GPR[hv.RBX] < 0x202000 {
			t.Errorf("header at %#x: info at %#x overlaps the kernel's BSS", hdrOff, s.GPR[hv.RBX])
		}
	}
	// load_end_addr 0: the rest of the file; bss_end_addr 0: no BSS. The header sits 0x20
	// bytes into the file, and the file starts loading at its beginning.
	img := code(nil, 0x300)
	copy(img[0x20:], mbHeader(HeaderAOutKludge, 0x300020, 0x300000, 0, 0, 0x300100))
	mem := newMem(testRAM)
	s, err := Multiboot(mem, img, "", nil)
	if err != nil {
		t.Fatalf("Multiboot(load_end 0) = %v", err)
	}
	if got := mustSlice(t, mem, 0x300000, 0x301); !bytes.Equal(got[:0x300], img) || got[0x300] != 0xAA {
		t.Errorf("load_end_addr 0 did not load exactly the file")
	}
	if s.RIP != 0x300100 {
		t.Errorf("RIP = %#x, want 0x300100", s.RIP)
	}
}

func TestMultibootErrors(t *testing.T) {
	good := simpleELF32()
	patch := func(b []byte, off int, v uint32) []byte {
		b = slices.Clone(b)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	hdrAt := func(off int, hdr []byte, total int) []byte {
		b := make([]byte, total)
		copy(b[off:], hdr)
		return b
	}
	elfWith := func(segs ...testSeg) []byte { return buildELF(elfClass32, 0x100010, segs) }
	text := testSeg{vaddr: 0x100000, paddr: 0x100000, offset: 0x1000, data: code(mbHeader(HeaderMemoryInfo), 0x800)}
	const aoutFlags = HeaderMemoryInfo | HeaderAOutKludge

	tests := []struct {
		name    string
		kernel  []byte
		cmdline string
		mods    []Module
		ram     int
		want    error
		msg     string // a substring the error must contain
	}{
		{name: "empty", kernel: nil, want: ErrNotMultiboot},
		{name: "no header", kernel: bytes.Repeat([]byte{0x90}, 10000), want: ErrNotMultiboot},
		{name: "header beyond 8 KiB", kernel: hdrAt(8192, mbHeader(HeaderMemoryInfo), 9000), want: ErrNotMultiboot},
		{name: "header straddles 8 KiB", kernel: hdrAt(8188, mbHeader(HeaderMemoryInfo), 9000), want: ErrNotMultiboot},
		{name: "unaligned header", kernel: hdrAt(2, mbHeader(HeaderMemoryInfo), 100), want: ErrNotMultiboot},
		{name: "bad checksum", kernel: patch(good, 0x1008, 0), want: ErrBadChecksum, msg: "0x1000"},
		{name: "video mode", kernel: hdrAt(0, mbHeader(HeaderVideoMode), 100), want: ErrUnsupported, msg: "video"},
		{name: "unknown required flag", kernel: hdrAt(0, mbHeader(1<<5), 100), want: ErrUnsupported},
		{name: "truncated header", kernel: mbHeader(HeaderMemoryInfo)[:10], want: ErrNotMultiboot},
		{name: "truncated aout fields", kernel: mbHeader(aoutFlags, 0x100000), want: ErrBadImage, msg: "truncated"},
		{name: "not ELF, no kludge", kernel: hdrAt(0, mbHeader(HeaderMemoryInfo), 100), want: ErrBadImage, msg: "a.out kludge"},
		{name: "aout load_addr above header_addr", kernel: mbHeader(aoutFlags, 0x100000, 0x100010, 0, 0, 0x100000), want: ErrBadImage},
		{name: "aout header_addr before file", kernel: mbHeader(aoutFlags, 0x100010, 0x100000, 0, 0, 0x100000), want: ErrBadImage},
		{name: "aout load_end beyond file", kernel: mbHeader(aoutFlags, 0x100000, 0x100000, 0x100100, 0, 0x100000), want: ErrBadImage},
		{name: "aout load_end below load", kernel: mbHeader(aoutFlags, 0x100000, 0x100000, 0xFFFFF, 0, 0x100000), want: ErrBadImage},
		{name: "aout bss_end below load_end", kernel: mbHeader(aoutFlags, 0x100000, 0x100000, 0x100020, 0x100010, 0x100000), want: ErrBadImage},
		{name: "aout entry outside", kernel: mbHeader(aoutFlags, 0x100000, 0x100000, 0x100020, 0x101000, 0x100020), want: ErrBadImage, msg: "entry point 0x100020"},
		{name: "aout beyond RAM", kernel: mbHeader(aoutFlags, 0xFFFF00, 0xFFFF00, 0xFFFF20, 0x1000100, 0xFFFF00), want: ErrNoFit, msg: "0xffff00"},
		{name: "ELF class", kernel: func() []byte { b := slices.Clone(good); b[4] = 3; return b }(), want: ErrBadImage, msg: "class"},
		{name: "ELF big-endian", kernel: func() []byte { b := slices.Clone(good); b[5] = 2; return b }(), want: ErrBadImage},
		{name: "ELF machine", kernel: func() []byte { b := slices.Clone(good); b[18] = 62; return b }(), want: ErrBadImage, msg: "machine"},
		{name: "ELF type", kernel: func() []byte { b := slices.Clone(good); b[16] = 3; return b }(), want: ErrBadImage},
		{name: "ELF phdrs beyond file", kernel: patch(good, 28, 0xFFFFFF00), want: ErrBadImage},
		{name: "ELF truncated", kernel: good[:0x1100], want: ErrBadImage, msg: "beyond the end of the file"},
		{name: "ELF no loadable segments", kernel: elfWith(testSeg{typ: 4, offset: 0x1000, data: text.data}), want: ErrBadImage},
		{name: "ELF filesz above memsz", kernel: elfWith(testSeg{vaddr: 0x100000, paddr: 0x100000, offset: 0x1000, data: text.data, memsz: 0x10}), want: ErrBadImage},
		{name: "ELF overlapping segments", kernel: elfWith(text, testSeg{vaddr: 0x100400, paddr: 0x100400, offset: 0x2000, data: []byte("x")}), want: ErrBadImage, msg: "overlaps"},
		{name: "ELF entry outside", kernel: buildELF(elfClass32, 0x200000, []testSeg{text}), want: ErrBadImage, msg: "entry point 0x200000"},
		{name: "ELF entry in BSS", kernel: buildELF(elfClass32, 0x100900, []testSeg{{vaddr: 0x100000, paddr: 0x100000, offset: 0x1000, data: text.data, memsz: 0x1000}}), want: ErrBadImage},
		{name: "ELF beyond RAM", kernel: elfWith(text, testSeg{vaddr: 0x2000000, paddr: 0x2000000, offset: 0x2000, data: []byte("x")}), want: ErrNoFit, msg: "at 0x2000000"},
		{name: "ELF segment wraps", kernel: elfWith(text, testSeg{vaddr: 0xFFFFF000, paddr: 0xFFFFF000, offset: 0x2000, data: []byte("x"), memsz: 0x2000}), want: ErrNoFit},
		{name: "ELF64 wraps", kernel: buildELF(elfClass64, 0x100010, []testSeg{text, {vaddr: 0, paddr: ^uint64(0) - 8, offset: 0x2000, data: []byte("x"), memsz: 0x100}}), want: ErrBadImage, msg: "wraps"},
		{name: "module beyond RAM", kernel: good, mods: []Module{{Data: make([]byte, testRAM)}}, want: ErrNoFit, msg: "module 0"},
		{name: "info beyond RAM", kernel: good, ram: 0x107000, want: ErrNoFit, msg: "boot information"},
		{name: "NUL in cmdline", kernel: good, cmdline: "a\x00b", want: ErrBadImage},
		{name: "NUL in module cmdline", kernel: good, mods: []Module{{Cmdline: "\x00"}}, want: ErrBadImage},
		{name: "RAM below the kernel", kernel: good, ram: 1 << 20, want: ErrNoFit, msg: "segment 0 at 0x100000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ram := tt.ram
			if ram == 0 {
				ram = testRAM
			}
			mem := newMem(ram)
			s, err := Multiboot(mem, tt.kernel, tt.cmdline, tt.mods)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Multiboot() = %+v, %v, want %v", s, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Multiboot() error %q does not mention %q", err, tt.msg)
			}
			if !bytes.Equal(mem.Host, bytes.Repeat([]byte{0xAA}, ram)) {
				t.Errorf("a rejected kernel changed guest memory")
			}
		})
	}
}

// Guest RAM above 4 GiB: segments must still end below 4 GiB. (Checked on the planner,
// without allocating that much memory.)
func TestSegmentsAbove4GiB(t *testing.T) {
	entry := uint64(0x100010)
	text := segment{paddr: 0x100000, data: make([]byte, 0x100), memsz: 0x100}
	for _, tt := range []struct {
		seg  segment
		want error
	}{
		{segment{paddr: 0xFFFFF000, memsz: 0x1000}, nil},
		{segment{paddr: 0xFFFFF000, memsz: 0x1001}, ErrNoFit},
		{segment{paddr: 1 << 32, memsz: 1}, ErrNoFit},
	} {
		err := checkSegments([]segment{text, tt.seg}, entry, 6<<30)
		if !errors.Is(err, tt.want) || err != nil && !strings.Contains(err.Error(), "4 GiB") {
			t.Errorf("checkSegments(segment at %#x+%#x, 6 GiB RAM) = %v, want %v mentioning 4 GiB", tt.seg.paddr, tt.seg.memsz, err, tt.want)
		}
	}
}

func TestMultibootFirstValidHeaderWins(t *testing.T) {
	// A magic with a bad checksum before a valid header is skipped.
	kernel := simpleELF32()
	bad := slices.Clone(kernel)
	copy(bad[0x800:], mbHeader(HeaderVideoMode)[:8]) // magic and flags, checksum 0
	if _, err := Multiboot(newMem(testRAM), bad, "", nil); err != nil {
		t.Errorf("Multiboot() with a stray magic before the header = %v", err)
	}
}

func TestMemoryMapSmallRAM(t *testing.T) {
	for _, tt := range []struct {
		ram  uint64
		want []mmapEntry
	}{
		{512 << 10, []mmapEntry{{0, 512 << 10, MemoryAvailable}}},
		{1 << 20, []mmapEntry{{0, 640 << 10, MemoryAvailable}, {640 << 10, 384 << 10, MemoryReserved}}},
		{6 << 30, []mmapEntry{{0, 640 << 10, MemoryAvailable}, {640 << 10, 384 << 10, MemoryReserved}, {1 << 20, 6<<30 - 1<<20, MemoryAvailable}}},
	} {
		if got := memoryMap(tt.ram); !slices.Equal(got, tt.want) {
			t.Errorf("memoryMap(%#x) = %+v, want %+v", tt.ram, got, tt.want)
		}
	}
}

func TestNilMemory(t *testing.T) {
	if _, err := Multiboot(nil, simpleELF32(), "", nil); !errors.Is(err, ErrNoFit) {
		t.Errorf("Multiboot(nil memory) = %v, want ErrNoFit", err)
	}
}
