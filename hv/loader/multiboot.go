// Package loader puts guest kernels into guest memory and returns the vCPU state to start
// them with.
//
// Multiboot loads a Multiboot (version 1) kernel: an ELF32 or ELF64 image placed by its
// program headers' physical addresses, or any image placed by the header's a.out-kludge
// address fields. It builds the multiboot information structure (memory sizes and map,
// command line, modules, boot loader name) after the kernel and returns the machine state of
// Multiboot Specification 0.6.96, 3.2 "Machine state".
//
// The loader checks everything before it writes a byte of guest memory: a rejected image
// leaves memory as it was. Malformed input gives an error wrapping one of the sentinel errors
// below, never a panic (FuzzMultiboot).
package loader

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/godwit-hv/godwit/hv"
)

// Module is a multiboot boot module: its contents and the command line passed with it.
type Module struct {
	Data    []byte
	Cmdline string
}

// Errors callers branch on; the returned errors wrap them with the details.
var (
	// ErrNotMultiboot: no multiboot header magic in the first 8192 bytes.
	ErrNotMultiboot = errors.New("loader: not a multiboot kernel")
	// ErrBadChecksum: a header magic was found but no valid checksum with it.
	ErrBadChecksum = errors.New("loader: bad multiboot header checksum")
	// ErrUnsupported: the header asks for something Godwit does not provide (video mode,
	// an unknown required feature).
	ErrUnsupported = errors.New("loader: unsupported multiboot feature")
	// ErrBadImage: the header's addresses or the ELF image are inconsistent or truncated.
	ErrBadImage = errors.New("loader: bad kernel image")
	// ErrNoFit: the kernel, its modules or the boot information do not fit in guest RAM
	// (or lie above 4 GiB, which 32-bit protected mode cannot reach).
	ErrNoFit = errors.New("loader: does not fit in guest RAM")
)

// Multiboot Specification 0.6.96, 3.1.1 "The layout of Multiboot header": the header lies in
// the first HeaderSearch bytes of the image, 4-byte aligned.
const (
	HeaderMagic  = 0x1BADB002
	HeaderSearch = 8192

	headerBaseSize  = 12 // magic, flags, checksum
	headerAOutSize  = 32 // ... header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr
	headerFlagsMask = 0xFFFF
)

// Header flags. Multiboot Specification 0.6.96, 3.1.2 "The magic fields of Multiboot header".
// Bits 0-15 are requirements: a loader that does not understand one must refuse the kernel.
const (
	HeaderPageAlign  = 1 << 0  // modules page-aligned (Godwit always does)
	HeaderMemoryInfo = 1 << 1  // mem_* and the memory map (Godwit always passes them)
	HeaderVideoMode  = 1 << 2  // video mode table: not supported
	HeaderAOutKludge = 1 << 16 // the header's address fields are valid
	headerKnown      = HeaderPageAlign | HeaderMemoryInfo
)

// BootMagic is EAX at entry. Multiboot Specification 0.6.96, 3.2 "Machine state".
const BootMagic = 0x2BADB002

const pageSize = 4096

// fourGiB bounds everything the loader places: the kernel starts in 32-bit mode, and the
// information structure holds 32-bit addresses.
const fourGiB = 1 << 32

// header is a parsed multiboot header.
type header struct {
	offset int // in the image
	flags  uint32
	// a.out kludge fields
	headerAddr, loadAddr, loadEndAddr, bssEndAddr, entryAddr uint32
}

// segment is a piece of the image to place in guest memory: data at paddr, then zeros up to
// memsz bytes.
type segment struct {
	paddr uint64
	data  []byte
	memsz uint64
}

func (s segment) end() uint64 { return s.paddr + s.memsz }

// Multiboot loads kernel, a Multiboot v1 image, and modules into mem, builds the multiboot
// information structure with cmdline, and returns the state to start the boot vCPU with.
func Multiboot(mem *hv.Memory, kernel []byte, cmdline string, modules []Module) (*hv.CPUState, error) {
	if mem == nil {
		return nil, fmt.Errorf("%w: no guest memory", ErrNoFit)
	}
	h, err := findHeader(kernel)
	if err != nil {
		return nil, err
	}
	var (
		segs  []segment
		entry uint64
	)
	if h.flags&HeaderAOutKludge != 0 {
		segs, entry, err = aoutSegments(kernel, h)
	} else {
		segs, entry, err = elfSegments(kernel)
	}
	if err != nil {
		return nil, err
	}
	if err := checkSegments(segs, entry, mem.Size()); err != nil {
		return nil, err
	}
	var kernelEnd uint64
	for _, s := range segs {
		kernelEnd = max(kernelEnd, s.end())
	}
	info, err := layoutInfo(mem.Size(), kernelEnd, cmdline, modules)
	if err != nil {
		return nil, err
	}

	// Everything is checked: write.
	for _, s := range segs {
		b, err := mem.Slice(s.paddr, s.memsz)
		if err != nil { // checkSegments made this impossible
			panic(fmt.Sprintf("loader: segment checked but not in memory: %v", err))
		}
		clear(b[copy(b, s.data):])
	}
	if err := info.write(mem, modules); err != nil {
		panic(fmt.Sprintf("loader: boot information checked but not in memory: %v", err))
	}
	return info.initialState(entry), nil
}

// findHeader returns the first header with a valid checksum.
func findHeader(kernel []byte) (*header, error) {
	limit := min(len(kernel), HeaderSearch)
	badSum := -1
	for off := 0; off+headerBaseSize <= limit; off += 4 {
		if binary.LittleEndian.Uint32(kernel[off:]) != HeaderMagic {
			continue
		}
		flags := binary.LittleEndian.Uint32(kernel[off+4:])
		sum := binary.LittleEndian.Uint32(kernel[off+8:])
		if HeaderMagic+flags+sum != 0 {
			if badSum < 0 {
				badSum = off
			}
			continue
		}
		h := &header{offset: off, flags: flags}
		if flags&HeaderVideoMode != 0 {
			return nil, fmt.Errorf("%w: header at %#x asks for a video mode (flags %#x bit 2)", ErrUnsupported, off, flags)
		}
		if unknown := flags & headerFlagsMask &^ headerKnown; unknown != 0 {
			return nil, fmt.Errorf("%w: header at %#x requires unknown features (flags %#x)", ErrUnsupported, off, unknown)
		}
		if flags&HeaderAOutKludge != 0 {
			if off+headerAOutSize > len(kernel) {
				return nil, fmt.Errorf("%w: header at %#x: a.out kludge fields truncated (image is %d bytes)", ErrBadImage, off, len(kernel))
			}
			f := func(i int) uint32 { return binary.LittleEndian.Uint32(kernel[off+12+4*i:]) }
			h.headerAddr, h.loadAddr, h.loadEndAddr, h.bssEndAddr, h.entryAddr = f(0), f(1), f(2), f(3), f(4)
		}
		return h, nil
	}
	if badSum >= 0 {
		return nil, fmt.Errorf("%w: magic at %#x", ErrBadChecksum, badSum)
	}
	return nil, fmt.Errorf("%w: no header magic %#x in the first %d bytes", ErrNotMultiboot, HeaderMagic, limit)
}

// aoutSegments places the image by the header's address fields. Multiboot Specification
// 0.6.96, 3.1.3 "The address fields of Multiboot header".
func aoutSegments(kernel []byte, h *header) ([]segment, uint64, error) {
	if h.loadAddr > h.headerAddr {
		return nil, 0, fmt.Errorf("%w: load_addr %#x above header_addr %#x", ErrBadImage, h.loadAddr, h.headerAddr)
	}
	skip := uint64(h.headerAddr - h.loadAddr)
	if skip > uint64(h.offset) {
		return nil, 0, fmt.Errorf("%w: header_addr-load_addr = %#x, but the header is at file offset %#x", ErrBadImage, skip, h.offset)
	}
	off := uint64(h.offset) - skip
	var n uint64
	if h.loadEndAddr == 0 {
		n = uint64(len(kernel)) - off
	} else {
		if h.loadEndAddr < h.loadAddr {
			return nil, 0, fmt.Errorf("%w: load_end_addr %#x below load_addr %#x", ErrBadImage, h.loadEndAddr, h.loadAddr)
		}
		n = uint64(h.loadEndAddr - h.loadAddr)
		if n > uint64(len(kernel))-off {
			return nil, 0, fmt.Errorf("%w: load_addr..load_end_addr (%#x..%#x) needs %d bytes from file offset %#x, image is %d bytes",
				ErrBadImage, h.loadAddr, h.loadEndAddr, n, off, len(kernel))
		}
	}
	if n == 0 {
		return nil, 0, fmt.Errorf("%w: nothing to load (load_addr %#x, load_end_addr %#x)", ErrBadImage, h.loadAddr, h.loadEndAddr)
	}
	memsz := n
	if h.bssEndAddr != 0 {
		if uint64(h.bssEndAddr) < uint64(h.loadAddr)+n {
			return nil, 0, fmt.Errorf("%w: bss_end_addr %#x below the end of the loaded image %#x", ErrBadImage, h.bssEndAddr, uint64(h.loadAddr)+n)
		}
		memsz = uint64(h.bssEndAddr - h.loadAddr)
	}
	return []segment{{paddr: uint64(h.loadAddr), data: kernel[off : off+n], memsz: memsz}}, uint64(h.entryAddr), nil
}

// checkSegments checks the segments lie in RAM below 4 GiB without overlapping each other,
// and that the entry point is in loaded (not zero-filled) bytes of one of them.
func checkSegments(segs []segment, entry, ramSize uint64) error {
	if len(segs) == 0 {
		return fmt.Errorf("%w: nothing to load", ErrBadImage)
	}
	limit := min(ramSize, fourGiB)
	for i, s := range segs {
		if s.memsz > limit || s.paddr > limit-s.memsz {
			what := "guest RAM"
			if ramSize > fourGiB {
				what = "4 GiB"
			}
			return fmt.Errorf("%w: segment %d at %#x (%#x bytes, to %#x) is beyond %s (%#x bytes)",
				ErrNoFit, i, s.paddr, s.memsz, s.paddr+s.memsz, what, limit)
		}
	}
	order := make([]int, len(segs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(segs[a].paddr, segs[b].paddr) })
	for k := 1; k < len(order); k++ {
		i, j := order[k-1], order[k]
		if segs[j].paddr < segs[i].end() {
			return fmt.Errorf("%w: segment %d at %#x-%#x overlaps segment %d at %#x-%#x",
				ErrBadImage, j, segs[j].paddr, segs[j].end(), i, segs[i].paddr, segs[i].end())
		}
	}
	for _, s := range segs {
		if entry >= s.paddr && entry-s.paddr < uint64(len(s.data)) {
			return nil
		}
	}
	return fmt.Errorf("%w: entry point %#x is outside the loaded image", ErrBadImage, entry)
}
