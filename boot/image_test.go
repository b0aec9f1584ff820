package boot_test

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/godwit-hv/godwit/boot"
)

// Multiboot v1 header fields, as QEMU (hw/i386/multiboot.c) and GRUB read them.
// Multiboot Specification 0.6.96, 3.1 "OS image format".
const (
	mbHdrMagic       = 0x1BADB002
	mbHdrSearch      = 8192 // the header must lie in the first 8 KiB, 32-bit aligned
	mbHdrPageAlign   = 1 << 0
	mbHdrMemInfo     = 1 << 1
	mbHdrVideoMode   = 1 << 2 // QEMU refuses images that ask for a video mode
	mbHdrAoutKludge  = 1 << 16
	mbHdrLen         = 32
	xenPhys32Entry   = 18 // XEN_ELFNOTE_PHYS32_ENTRY, Xen public/elfnote.h
	goBuildIDNoteTag = 4
)

// mbHeader is the multiboot header with the a.out-kludge address fields.
type mbHeader struct {
	Magic, Flags, Checksum                             uint32
	HeaderAddr, LoadAddr, LoadEndAddr, BSSEndAddr, Ent uint32
}

// findMultiboot scans img as a multiboot loader does: the first 4-aligned offset in the first
// 8 KiB holding the magic with a valid checksum.
func findMultiboot(img []byte) (int, mbHeader, bool) {
	for off := 0; off+mbHdrLen <= min(len(img), mbHdrSearch); off += 4 {
		var h mbHeader
		binary.Read(bytes.NewReader(img[off:off+mbHdrLen]), binary.LittleEndian, &h)
		if h.Magic == mbHdrMagic && h.Magic+h.Flags+h.Checksum == 0 {
			return off, h, true
		}
	}
	return 0, mbHeader{}, false
}

// extent is the load layout of an ELF, computed independently of the patcher.
type extent struct{ loadEnd, bssEnd, entry uint64 }

func extentOf(t *testing.T, img []byte) extent {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatalf("elf.NewFile: %v", err)
	}
	e := extent{entry: f.Entry}
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD {
			e.loadEnd = max(e.loadEnd, p.Vaddr+p.Filesz)
			e.bssEnd = max(e.bssEnd, p.Vaddr+p.Memsz)
		}
	}
	return e
}

// span is a byte range of the file.
type span struct{ lo, hi int }

func (s span) overlaps(o span) bool { return s.lo < o.hi && o.lo < s.hi }

// occupied lists what the first page holds besides padding: ELF header, program headers,
// section headers, and the file bytes of every section.
func occupied(t *testing.T, img []byte) []span {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatalf("elf.NewFile: %v", err)
	}
	shoff := int(binary.LittleEndian.Uint64(img[0x28:]))
	spans := []span{{0, ehdrSize}, {ehdrSize, ehdrSize + phdrSize*len(f.Progs)}, {shoff, shoff + shdrSize*len(f.Sections)}}
	for _, s := range f.Sections {
		if s.Type != elf.SHT_NULL && s.Type != elf.SHT_NOBITS {
			spans = append(spans, span{int(s.Offset), int(s.Offset + s.Size)})
		}
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_NOTE {
			spans = append(spans, span{int(p.Off), int(p.Off + p.Filesz)})
		}
	}
	return spans
}

// note is one ELF note.
type note struct {
	off        int
	name       string
	typ        uint32
	desc       []byte
	namesz     uint32
	descOffset int
}

// firstNote parses the first note of the PT_NOTE segment.
func firstNote(t *testing.T, img []byte) (note, bool) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatalf("elf.NewFile: %v", err)
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		o := int(p.Off)
		namesz := binary.LittleEndian.Uint32(img[o:])
		descsz := binary.LittleEndian.Uint32(img[o+4:])
		n := note{off: o, namesz: namesz, typ: binary.LittleEndian.Uint32(img[o+8:])}
		n.name = string(img[o+12 : o+12+int(namesz)])
		n.descOffset = o + 12 + (int(namesz)+3)&^3
		n.desc = img[n.descOffset : n.descOffset+int(descsz)]
		return n, true
	}
	return note{}, false
}

// checkPatched verifies a patched image against the input as a loader would see it: QEMU's
// and GRUB's multiboot rules for the a.out kludge, and QEMU's reading of the PVH note.
func checkPatched(t *testing.T, in, out []byte, info boot.PatchInfo, opt boot.PatchOptions) {
	t.Helper()
	if len(out) != len(in) {
		t.Fatalf("len(Patch(img)) = %d, want %d", len(out), len(in))
	}
	want := extentOf(t, in)
	if info.Entry != uint32(want.entry) || info.LoadEnd != uint32(want.loadEnd) || info.BSSEnd != uint32(want.bssEnd) {
		t.Errorf("PatchInfo entry/load end/bss end = %#x/%#x/%#x, want %#x/%#x/%#x",
			info.Entry, info.LoadEnd, info.BSSEnd, want.entry, want.loadEnd, want.bssEnd)
	}
	var changed []span // what the patcher may write
	if opt.Multiboot {
		// QEMU's -kernel tries the Linux boot protocol first: "HdrS" at 0x202 would win.
		if len(out) >= 0x206 && string(out[0x202:0x206]) == "HdrS" {
			t.Errorf("bytes at 0x202 = \"HdrS\": QEMU would boot the image as a Linux bzImage")
		}
		off, h, ok := findMultiboot(out)
		switch {
		case !ok:
			t.Errorf("no multiboot header with a valid checksum in the first %d bytes", mbHdrSearch)
		case off != info.HeaderOffset:
			t.Errorf("multiboot header found at %#x, PatchInfo.HeaderOffset = %#x", off, info.HeaderOffset)
		default:
			changed = append(changed, span{off, off + mbHdrLen})
			if off%4 != 0 || off+mbHdrLen > mbHdrSearch {
				t.Errorf("multiboot header at %#x: want 4-aligned within the first %d bytes", off, mbHdrSearch)
			}
			if got := h.Magic + h.Flags + h.Checksum; got != 0 {
				t.Errorf("magic+flags+checksum = %#x, want 0 mod 2^32", got)
			}
			if h.Flags&mbHdrAoutKludge == 0 || h.Flags&mbHdrVideoMode != 0 ||
				h.Flags&(mbHdrPageAlign|mbHdrMemInfo) != mbHdrPageAlign|mbHdrMemInfo {
				t.Errorf("flags = %#x, want page-align, memory-info and a.out kludge (bit 16), no video mode", h.Flags)
			}
			wantH := mbHeader{h.Magic, h.Flags, h.Checksum, boot.LoadBase + uint32(off), boot.LoadBase,
				uint32(want.loadEnd), uint32(want.bssEnd), uint32(want.entry)}
			if h != wantH {
				t.Errorf("multiboot header = %+v, want %+v", h, wantH)
			}
			// QEMU hw/i386/multiboot.c: the load begins at file offset
			// off - (header_addr - load_addr) and copies load_end - load_addr bytes.
			textOff := off - int(h.HeaderAddr-h.LoadAddr)
			loadSize := int(h.LoadEndAddr - h.LoadAddr)
			if h.HeaderAddr < h.LoadAddr || textOff != 0 {
				t.Errorf("header_addr %#x, load_addr %#x at offset %#x: file offset of load_addr = %d, want 0",
					h.HeaderAddr, h.LoadAddr, off, textOff)
			}
			if h.LoadEndAddr < h.LoadAddr || loadSize > len(out) {
				t.Errorf("load_end_addr %#x: loads %d bytes of a %d-byte file", h.LoadEndAddr, loadSize, len(out))
			}
			if h.BSSEndAddr < h.LoadEndAddr {
				t.Errorf("bss_end_addr %#x < load_end_addr %#x", h.BSSEndAddr, h.LoadEndAddr)
			}
			if h.Ent < h.LoadAddr || h.Ent >= h.LoadEndAddr {
				t.Errorf("entry_addr %#x outside the loaded image [%#x, %#x)", h.Ent, h.LoadAddr, h.LoadEndAddr)
			}
			slot := span{off, off + mbHdrLen}
			for _, s := range occupied(t, in) {
				if slot.overlaps(s) {
					t.Errorf("multiboot header [%#x, %#x) overlaps ELF contents [%#x, %#x)", slot.lo, slot.hi, s.lo, s.hi)
				}
			}
		}
	}
	if opt.PVH {
		n, ok := firstNote(t, out)
		if !ok {
			t.Fatalf("patched image has no PT_NOTE")
		}
		if n.off != info.NoteOffset {
			t.Errorf("note at %#x, PatchInfo.NoteOffset = %#x", n.off, info.NoteOffset)
		}
		if n.typ != xenPhys32Entry || n.name != "Xen\x00" {
			t.Errorf("first note = type %d name %q, want type %d name %q", n.typ, n.name, xenPhys32Entry, "Xen\x00")
		}
		// QEMU's read_pvh_start_addr reads the descriptor as a 64-bit value.
		var d [8]byte
		copy(d[:], n.desc)
		if got := binary.LittleEndian.Uint64(d[:]); got != want.entry {
			t.Errorf("PVH entry = %#x, want %#x", got, want.entry)
		}
		if i := slices.IndexFunc(n.desc[4:], func(b byte) bool { return b != 0 }); i >= 0 {
			t.Errorf("PVH note descriptor byte %d = %#x, want 0 after the entry", 4+i, n.desc[4+i])
		}
		changed = append(changed, span{n.off + 8, n.descOffset + len(n.desc)})
	}
	for i := range out {
		if out[i] == in[i] {
			continue
		}
		if !slices.ContainsFunc(changed, func(s span) bool { return i >= s.lo && i < s.hi }) {
			t.Errorf("byte %#x changed from %#x to %#x outside the header and the note", i, in[i], out[i])
			break
		}
	}
	if f, err := elf.NewFile(bytes.NewReader(out)); err != nil {
		t.Errorf("patched image does not parse as ELF: %v", err)
	} else if g, w := progsOf(f), progsOf(mustELF(t, in)); !slices.Equal(g, w) {
		t.Errorf("program headers changed:\n got %v\nwant %v", g, w)
	}
}

func mustELF(t *testing.T, img []byte) *elf.File {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatalf("elf.NewFile: %v", err)
	}
	return f
}

func progsOf(f *elf.File) []elf.ProgHeader {
	var ps []elf.ProgHeader
	for _, p := range f.Progs {
		ps = append(ps, p.ProgHeader)
	}
	return ps
}

func put32(b []byte, off int, v uint32) []byte {
	binary.LittleEndian.PutUint32(b[off:], v)
	return b
}

func put64(b []byte, off int, v uint64) []byte {
	binary.LittleEndian.PutUint64(b[off:], v)
	return b
}

func TestPatch(t *testing.T) {
	all := boot.PatchOptions{Multiboot: true, PVH: true}
	tests := []struct {
		name string
		img  []byte
		opt  boot.PatchOptions
	}{
		{"default layout", elfSpec{}.build(), all},
		{"multiboot only", elfSpec{}.build(), boot.PatchOptions{Multiboot: true}},
		{"PVH only", elfSpec{}.build(), boot.PatchOptions{PVH: true}},
		{"nothing", elfSpec{}.build(), boot.PatchOptions{}},
		{"multiboot without a PT_NOTE", elfSpec{noNote: true}.build(), boot.PatchOptions{Multiboot: true}},
		{"smallest note that holds the entry", elfSpec{note: goNote("abcdefgh")}.build(), all},
		{"entry at the load base", elfSpec{entry: testLoadBase}.build(), all},
		{
			// Only 32 zero bytes are left, right before the note.
			"room for exactly one header",
			func() []byte {
				b := elfSpec{fill: 0xEE}.build()
				clear(b[0xF80-mbHdrLen : 0xF80])
				return b
			}(),
			all,
		},
		{
			"three loads, bss in the last",
			elfSpec{loads: []seg{
				{0, 0x100000, 0x100000, 0x2000, 0x2000},
				{0x2000, 0x102000, 0x102000, 0x1800, 0x1800},
				{0x4000, 0x104000, 0x104000, 0x800, 0x10000},
			}}.build(),
			all,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := bytes.Clone(tt.img)
			out, info, err := boot.Patch(tt.img, tt.opt)
			if err != nil {
				t.Fatalf("Patch(%+v) = %v, want no error", tt.opt, err)
			}
			if !bytes.Equal(tt.img, in) {
				t.Errorf("Patch modified its input")
			}
			checkPatched(t, in, out, info, tt.opt)
			if !tt.opt.Multiboot {
				if off, _, ok := findMultiboot(out); ok {
					t.Errorf("multiboot header at %#x, want none (Multiboot: false)", off)
				}
			}
			if !tt.opt.PVH {
				if n, ok := firstNote(t, out); ok && n.typ != goBuildIDNoteTag {
					t.Errorf("first note type = %d, want %d unchanged (PVH: false)", n.typ, goBuildIDNoteTag)
				}
			}
		})
	}
}

// TestPatchHeaderSlot checks where the header goes: after the section headers when they are
// in the first page, and before the first section that starts in that page.
func TestPatchHeaderSlot(t *testing.T) {
	tests := []struct {
		name string
		img  []byte
		want int
	}{
		// 64 + 4*56 bytes of ELF and program headers, then 6 section headers (NULL, note,
		// text, data, bss, shstrtab).
		{"after the section headers", elfSpec{}.build(), 64 + 4*56 + 6*64},
		{
			"skips non-zero bytes",
			func() []byte {
				b := elfSpec{}.build()
				b[64+4*56+6*64+20] = 1
				return b
			}(),
			64 + 4*56 + 6*64 + 24,
		},
		{
			"last slot before the note",
			func() []byte {
				b := elfSpec{fill: 0xEE}.build()
				clear(b[0xF80-mbHdrLen-3 : 0xF80])
				return b
			}(),
			0xF80 - mbHdrLen,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, info, err := boot.Patch(tt.img, boot.PatchOptions{Multiboot: true})
			if err != nil {
				t.Fatalf("Patch: %v", err)
			}
			if info.HeaderOffset != tt.want {
				t.Errorf("Patch: HeaderOffset = %#x, want %#x", info.HeaderOffset, tt.want)
			}
		})
	}
}

func TestPatchErrors(t *testing.T) {
	all := boot.PatchOptions{Multiboot: true, PVH: true}
	// Program header indexes in elfSpec{}.build(): 0 PHDR, 1 NOTE, 2 text, 3 data.
	const note, text, data = 1, 2, 3
	tests := []struct {
		name   string
		img    []byte
		opt    boot.PatchOptions
		layout bool   // want ErrLayout
		substr string // in the message
	}{
		{"not an ELF", []byte("MZ this is not an ELF file at all, just some bytes......"), all, false, "reading ELF"},
		{"empty", nil, all, false, "reading ELF"},
		{"32-bit ELF", elf32(), all, true, "ELFCLASS32"},
		{"shared object", elfSpec{typ: elf.ET_DYN}.build(), all, true, "ET_DYN"},
		{"relocatable", elfSpec{typ: elf.ET_REL}.build(), all, true, "ET_REL"},
		{"not x86-64", elfSpec{machine: elf.EM_AARCH64}.build(), all, true, "EM_AARCH64"},
		{"segment file offset not address minus load base",
			put64(elfSpec{}.build(), phdrOff(data)+phOffset, 0x3800), all, true, "not flat"},
		{"physical address differs from virtual",
			put64(elfSpec{}.build(), phdrOff(data)+phPaddr, 0x203000), all, true, "not flat"},
		{"segment below the load base",
			elfSpec{loads: []seg{{0, 0x100000, 0x100000, 0x2000, 0x2000}, {0x3000, 0xFF000, 0xFF000, 0x100, 0x100}}}.build(),
			all, true, "not flat"},
		{"linked at the default address",
			elfSpec{loads: []seg{{0, 0x400000, 0x400000, 0x3000, 0x3000}}, entry: 0x401000}.build(), all, true, "not flat"},
		{"first segment does not start the file",
			elfSpec{loads: []seg{{0x1000, 0x101000, 0x101000, 0x2000, 0x2000}}}.build(), all, true, "does not start the file"},
		{"no loadable segments",
			put32(put32(elfSpec{}.build(), phdrOff(text)+phType, uint32(elf.PT_NULL)), phdrOff(data)+phType, uint32(elf.PT_NULL)),
			all, true, "no loadable"},
		{"bss above 4 GiB",
			put64(elfSpec{}.build(), phdrOff(data)+phMemsz, 1<<32), all, true, "4 GiB"},
		{"entry above 4 GiB", elfSpec{entry: 1 << 32}.build(), all, true, "entry"},
		{"entry below the load base", elfSpec{entry: 0x1000}.build(), all, true, "entry"},
		{"no PT_NOTE for PVH", elfSpec{noNote: true}.build(), boot.PatchOptions{PVH: true}, true, "PT_NOTE"},
		{"note segment past the end of the file",
			put64(elfSpec{}.build(), phdrOff(note)+phFilesz, 1<<20), boot.PatchOptions{PVH: true}, true, "PT_NOTE"},
		{"note name too long", elfSpec{note: func() []byte {
			b := goNote(testBuildID)
			return put32(b, 0, 8)
		}()}.build(), boot.PatchOptions{PVH: true}, true, "namesz 8"},
		{"note descriptor too short", elfSpec{note: goNote("ab")}.build(), boot.PatchOptions{PVH: true}, true, "descsz 2"},
		{"note descriptor larger than the segment", elfSpec{note: func() []byte {
			return put32(goNote(testBuildID), 4, 0x1000)
		}()}.build(), boot.PatchOptions{PVH: true}, true, "descsz 4096"},
		{"note descriptor size that wraps 32 bits", elfSpec{note: func() []byte {
			return put32(goNote(testBuildID), 4, 0xFFFFFFF4)
		}()}.build(), boot.PatchOptions{PVH: true}, true, "descsz 4294967284"},
		{"no room for the multiboot header", elfSpec{fill: 0xEE}.build(), boot.PatchOptions{Multiboot: true}, true, "no room"},
		{"31 zero bytes only", func() []byte {
			b := elfSpec{fill: 0xEE}.build()
			clear(b[0xF80-31 : 0xF80])
			return b
		}(), boot.PatchOptions{Multiboot: true}, true, "no room"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("panic: %v", r)
						t.Errorf("Patch(%s) panicked: %v", tt.name, r)
					}
				}()
				var out []byte
				out, _, err = boot.Patch(tt.img, tt.opt)
				if err == nil {
					t.Errorf("Patch(%s) = %d bytes, nil error; want an error", tt.name, len(out))
				}
			}()
			if err == nil {
				return
			}
			if got := errors.Is(err, boot.ErrLayout); got != tt.layout {
				t.Errorf("Patch(%s) = %v; errors.Is(err, ErrLayout) = %v, want %v", tt.name, err, got, tt.layout)
			}
			if !strings.Contains(err.Error(), tt.substr) {
				t.Errorf("Patch(%s) = %q, want it to mention %q", tt.name, err, tt.substr)
			}
		})
	}
}

// TestPatchKernel links the real kernel as the Makefile does and patches it: the Go linker's
// layout must keep satisfying the patcher, and the result must satisfy the loaders.
func TestPatchKernel(t *testing.T) {
	elfPath := filepath.Join(t.TempDir(), "godwit.elf")
	const pkg = "github.com/godwit-hv/godwit"
	cmd := exec.Command("go", "build", "-trimpath", "-o", elfPath,
		"-ldflags", "-E "+pkg+"/arch/ring0.entry -T 0x101000", "./cmd/godwit")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	in, err := os.ReadFile(elfPath)
	if err != nil {
		t.Fatal(err)
	}
	all := boot.PatchOptions{Multiboot: true, PVH: true}
	out, info, err := boot.Patch(in, all)
	if err != nil {
		t.Fatalf("Patch(godwit.elf) = %v", err)
	}
	t.Logf("multiboot header at %#x, PVH note at %#x, entry %#x, load end %#x, bss end %#x",
		info.HeaderOffset, info.NoteOffset, info.Entry, info.LoadEnd, info.BSSEnd)
	checkPatched(t, in, out, info, all)

	// The entry point is the mode-detecting assembly in arch/ring0/entry_amd64.s (the ABI0
	// symbol, not its ABIInternal wrapper), starting XOR ECX, ECX; ADD ECX/R9D, 1; TEST ECX, ECX.
	f := mustELF(t, out)
	syms, err := f.Symbols()
	if err != nil {
		t.Fatalf("Symbols: %v", err)
	}
	const entrySym = pkg + "/arch/ring0.entry.abi0"
	i := slices.IndexFunc(syms, func(s elf.Symbol) bool { return s.Name == entrySym })
	if i < 0 {
		t.Fatalf("no symbol %s", entrySym)
	}
	if syms[i].Value != f.Entry {
		t.Errorf("ELF entry = %#x, want %s at %#x", f.Entry, entrySym, syms[i].Value)
	}
	modeCheck := []byte{0x31, 0xC9, 0x41, 0x81, 0xC1, 1, 0, 0, 0, 0x85, 0xC9}
	if off := f.Entry - boot.LoadBase; off+uint64(len(modeCheck)) > uint64(len(out)) {
		t.Errorf("entry %#x lies beyond the file", f.Entry)
	} else if got := out[off : off+uint64(len(modeCheck))]; !bytes.Equal(got, modeCheck) {
		t.Errorf("bytes at the entry = % x, want % x", got, modeCheck)
	}
	if info.BSSEnd <= info.LoadEnd || info.LoadEnd <= boot.LoadBase || uint64(info.LoadEnd-boot.LoadBase) > uint64(len(out)) {
		t.Errorf("load end %#x, bss end %#x for a %d-byte file loaded at %#x: inconsistent",
			info.LoadEnd, info.BSSEnd, len(out), boot.LoadBase)
	}
	// QEMU's PVH loader looks for the note in the section or segment; debug/elf finds the
	// note section whose contents are now the Xen note.
	if s := f.Section(".note.go.buildid"); s == nil {
		t.Errorf("no .note.go.buildid section")
	} else if data, err := s.Data(); err != nil || !bytes.HasPrefix(data[12:], []byte("Xen\x00")) {
		t.Errorf(".note.go.buildid = %q (%v), want the Xen note", data, err)
	}
}
