package boot

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
)

// The image patcher. The Go linker, run with -T 0x101000, lays the ELF out flat: every
// loadable segment's file offset equals its address minus LoadBase, and the first page holds
// the ELF and program headers and, in Go's layout, the section headers. Patch writes into that
// page's zero padding:
//
//   - a multiboot v1 header with the a.out kludge (flags bit 16), so that multiboot loaders
//     (QEMU -kernel, GRUB, u-root kexec) load the file image at LoadBase without parsing ELF64.
//     Multiboot Specification 0.6.96, 3.1 "OS image format".
//   - a Xen PVH note: the Go build-ID note is rewritten in place into an XEN_ELFNOTE_PHYS32_ENTRY
//     note (type 18, name "Xen") holding the 32-bit entry point, so PVH loaders find an entry.
//     Xen public/elfnote.h.
//
// The entry point works for both 32-bit loaders and Linux execve (arch/ring0/entry_amd64.s).

// LoadBase is where the image's first byte lands: the ELF header page below -T 0x101000.
const LoadBase = 0x100000

// Multiboot v1 header constants. Multiboot Specification 0.6.96, 3.1.1-3.1.3.
const (
	MultibootHeaderMagic = 0x1BADB002
	mbHdrPageAlign       = 1 << 0
	mbHdrMemInfo         = 1 << 1
	mbHdrAoutKludge      = 1 << 16
	mbHdrSize            = 32
	mbSearchLimit        = 8192
)

// XenElfnotePhys32Entry is the PVH entry note type. Xen public/elfnote.h.
const XenElfnotePhys32Entry = 18

// PatchOptions selects what Patch writes.
type PatchOptions struct {
	Multiboot bool
	PVH       bool
}

// ErrLayout is returned when the ELF is not laid out as the patcher needs.
var ErrLayout = errors.New("image layout")

// PatchInfo describes a patched image.
type PatchInfo struct {
	HeaderOffset           int
	LoadEnd, BSSEnd, Entry uint32
	NoteOffset             int
}

// Patch returns a copy of the linked kernel ELF with the boot headers written into it.
func Patch(img []byte, opt PatchOptions) ([]byte, PatchInfo, error) {
	var info PatchInfo
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		return nil, info, fmt.Errorf("reading ELF: %w", err)
	}
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
		return nil, info, fmt.Errorf("%w: want a static x86-64 executable, have %v %v %v", ErrLayout, f.Class, f.Machine, f.Type)
	}
	var loadEnd, bssEnd uint64
	firstLoad := true
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		if p.Vaddr != p.Paddr || p.Vaddr < LoadBase || p.Off != p.Vaddr-LoadBase {
			return nil, info, fmt.Errorf("%w: segment at %#x (file offset %#x) is not flat from %#x; link with -T %#x",
				ErrLayout, p.Vaddr, p.Off, LoadBase, LoadBase+0x1000)
		}
		if firstLoad && p.Off != 0 {
			return nil, info, fmt.Errorf("%w: first segment does not start the file", ErrLayout)
		}
		firstLoad = false
		loadEnd = max(loadEnd, p.Vaddr+p.Filesz)
		bssEnd = max(bssEnd, p.Vaddr+p.Memsz)
	}
	if firstLoad {
		return nil, info, fmt.Errorf("%w: no loadable segments", ErrLayout)
	}
	if bssEnd >= 1<<32 || f.Entry >= 1<<32 || f.Entry < LoadBase {
		return nil, info, fmt.Errorf("%w: image or entry above 4 GiB", ErrLayout)
	}
	out := bytes.Clone(img)
	info.LoadEnd, info.BSSEnd, info.Entry = uint32(loadEnd), uint32(bssEnd), uint32(f.Entry)

	if opt.Multiboot {
		off, err := headerSlot(out, f)
		if err != nil {
			return nil, info, err
		}
		flags := uint32(mbHdrPageAlign | mbHdrMemInfo | mbHdrAoutKludge)
		h := []uint32{
			MultibootHeaderMagic, flags, -(MultibootHeaderMagic + flags),
			LoadBase + uint32(off), // header_addr
			LoadBase,               // load_addr
			uint32(loadEnd),        // load_end_addr
			uint32(bssEnd),         // bss_end_addr
			uint32(f.Entry),        // entry_addr
		}
		for i, v := range h {
			binary.LittleEndian.PutUint32(out[off+4*i:], v)
		}
		info.HeaderOffset = off
	}
	if opt.PVH {
		off, err := rewriteNote(out, f)
		if err != nil {
			return nil, info, err
		}
		info.NoteOffset = off
	}
	return out, info, nil
}

// headerSlot finds 32 zero bytes, 4-aligned, after every header in the first page and inside
// the multiboot search window.
func headerSlot(img []byte, f *elf.File) (int, error) {
	start := 64 + 56*len(f.Progs) // ELF header + program headers
	shoff := int(binary.LittleEndian.Uint64(img[0x28:]))
	if shoff < 4096 {
		start = max(start, shoff+64*len(f.Sections))
	}
	start = (start + 3) &^ 3
	limit := min(mbSearchLimit, len(img), 4096)
	for _, s := range f.Sections {
		if s.Type != elf.SHT_NULL && s.Offset >= uint64(start) && s.Offset < uint64(limit) && s.Size > 0 {
			limit = int(s.Offset)
		}
	}
	for off := start; off+mbHdrSize <= limit; off += 4 {
		if allZero(img[off : off+mbHdrSize]) {
			return off, nil
		}
	}
	return 0, fmt.Errorf("%w: no room for the multiboot header in the first page (%#x..%#x)", ErrLayout, start, limit)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// rewriteNote turns the first note of the PT_NOTE segment (the Go build ID) into the PVH note.
func rewriteNote(img []byte, f *elf.File) (int, error) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		off := int(p.Off)
		if p.Filesz < 20 || off+int(p.Filesz) > len(img) {
			break
		}
		namesz := binary.LittleEndian.Uint32(img[off:])
		descsz := binary.LittleEndian.Uint32(img[off+4:])
		if namesz != 4 || descsz < 4 || 16+uint64(descsz) > p.Filesz {
			return 0, fmt.Errorf("%w: first note (namesz %d, descsz %d) cannot hold the PVH entry", ErrLayout, namesz, descsz)
		}
		binary.LittleEndian.PutUint32(img[off+8:], XenElfnotePhys32Entry)
		copy(img[off+12:off+16], "Xen\x00")
		clear(img[off+16 : off+16+int(descsz)])
		binary.LittleEndian.PutUint32(img[off+16:], uint32(f.Entry))
		return off, nil
	}
	return 0, fmt.Errorf("%w: no PT_NOTE segment to carry the PVH note", ErrLayout)
}
