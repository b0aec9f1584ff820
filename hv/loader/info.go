package loader

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/godwit-hv/godwit/hv"
)

// The multiboot information structure. Multiboot Specification 0.6.96, 3.3 "Boot
// information format": offsets of the fields Godwit fills, and the flags saying which are
// valid.
const (
	infoFlags          = 0
	infoMemLower       = 4
	infoMemUpper       = 8
	infoCmdline        = 16
	infoModsCount      = 20
	infoModsAddr       = 24
	infoMmapLength     = 44
	infoMmapAddr       = 48
	infoBootLoaderName = 64
	infoSize           = 116 // through the framebuffer fields (flags bit 12)

	InfoMemory         = 1 << 0 // mem_lower, mem_upper
	InfoCmdline        = 1 << 2
	InfoModules        = 1 << 3
	InfoMemoryMap      = 1 << 6
	InfoBootLoaderName = 1 << 9

	modEntrySize  = 16 // mod_start, mod_end, string, reserved
	mmapEntrySize = 24 // size, base_addr (8), length (8), type
	mmapSizeField = 20 // the entry's size field counts the bytes after itself

	// Memory map entry types.
	MemoryAvailable = 1
	MemoryReserved  = 2

	// BootLoaderName is what boot_loader_name points to.
	BootLoaderName = "godwit"
)

// The PC's low-memory layout the memory map reports.
const (
	lowMemoryEnd = 640 << 10 // conventional memory ends; 640K-1M is the legacy hole
	highMemory   = 1 << 20
)

// The descriptor table the initial state's selectors refer to: it is placed in the boot
// information area so that the hidden segment state matches real descriptors (a kernel that
// reloads a segment register before loading its own GDT gets the same segment).
// Intel SDM Vol. 3A, 3.4.5 "Segment Descriptors" and 8.2.2 "TSS Descriptor".
const (
	selCode = 0x08
	selData = 0x10
	selTSS  = 0x18

	gdtEntries  = 4
	tssSize     = 104 // a 32-bit TSS. Intel SDM Vol. 3A, 8.2.1 "Task-State Segment (TSS)"
	tssIOMapOff = 102 // I/O map base address field; pointing past the limit: no I/O bitmap

	descCode = 0x00CF9B000000FFFF // base 0, limit 0xFFFFF, G, D/B, P, S, type 0xB (code, read, accessed)
	descData = 0x00CF93000000FFFF // base 0, limit 0xFFFFF, G, D/B, P, S, type 0x3 (data, write, accessed)

	attrCode = 0xB | hv.SegS | hv.SegP | hv.SegDB | hv.SegG
	attrData = 0x3 | hv.SegS | hv.SegP | hv.SegDB | hv.SegG
	attrTSS  = 0xB | hv.SegP // busy 32-bit TSS, system descriptor
	tssType  = 0xB
)

// Reset values. Intel SDM Vol. 3A, 10.1.1 "Processor State After Reset"; AMD APM Vol. 2,
// 14.1.3 "Processor Initialization State".
const (
	rflagsReserved = 1 << 1
	cr0PE          = 1 << 0
	cr0ET          = 1 << 4
	dr6Reset       = 0xFFFF0FF0
	dr7Reset       = 0x400
	patReset       = 0x0007040600070406
)

// info is the planned placement of modules and boot information.
type info struct {
	modAddr  []uint64 // where each module goes
	base     uint64   // the information area: structure, GDT, TSS, memory map, modules list, strings
	area     []byte   // its contents
	gdtAddr  uint64
	tssAddr  uint64
	infoAddr uint64
}

func alignUp(x, a uint64) uint64 { return (x + a - 1) &^ (a - 1) }

// layoutInfo places the modules page-aligned after the kernel and the information area after
// them, and builds the area's contents.
func layoutInfo(ramSize, kernelEnd uint64, cmdline string, modules []Module) (*info, error) {
	limit := min(ramSize, fourGiB)
	inf := &info{}
	next := alignUp(kernelEnd, pageSize)
	for i, m := range modules {
		if strings.IndexByte(m.Cmdline, 0) >= 0 {
			return nil, fmt.Errorf("%w: module %d command line contains a NUL byte", ErrBadImage, i)
		}
		n := uint64(len(m.Data))
		if next > limit || n > limit-next {
			return nil, fmt.Errorf("%w: module %d (%d bytes) at %#x ends beyond guest RAM (%#x bytes)", ErrNoFit, i, n, next, limit)
		}
		inf.modAddr = append(inf.modAddr, next)
		next = alignUp(next+n, pageSize)
	}
	if strings.IndexByte(cmdline, 0) >= 0 {
		return nil, fmt.Errorf("%w: command line contains a NUL byte", ErrBadImage)
	}

	mmap := memoryMap(ramSize)
	var (
		offInfo = uint64(0)
		offGDT  = alignUp(offInfo+infoSize, 8)
		offTSS  = alignUp(offGDT+8*gdtEntries, 8)
		offMmap = alignUp(offTSS+tssSize, 8)
		offMods = offMmap + uint64(len(mmap))*mmapEntrySize
		offStr  = offMods + uint64(len(modules))*modEntrySize
	)
	size := offStr + uint64(len(BootLoaderName)+1+len(cmdline)+1)
	for _, m := range modules {
		size += uint64(len(m.Cmdline) + 1)
	}
	inf.base = next
	if inf.base > limit || size > limit-inf.base {
		return nil, fmt.Errorf("%w: boot information (%d bytes) at %#x ends beyond guest RAM (%#x bytes)", ErrNoFit, size, inf.base, limit)
	}
	inf.infoAddr, inf.gdtAddr, inf.tssAddr = inf.base+offInfo, inf.base+offGDT, inf.base+offTSS

	a := make([]byte, size)
	le := binary.LittleEndian
	strOff := offStr
	addString := func(s string) uint32 {
		addr := uint32(inf.base + strOff)
		copy(a[strOff:], s) // the NUL is already there
		strOff += uint64(len(s) + 1)
		return addr
	}

	// The information structure.
	flags := uint32(InfoMemory | InfoCmdline | InfoMemoryMap | InfoBootLoaderName)
	le.PutUint32(a[infoMemLower:], uint32(min(ramSize, lowMemoryEnd)>>10))
	var upper uint64
	if ramSize > highMemory {
		upper = min((ramSize-highMemory)>>10, 1<<32-1)
	}
	le.PutUint32(a[infoMemUpper:], uint32(upper))
	le.PutUint32(a[infoBootLoaderName:], addString(BootLoaderName))
	le.PutUint32(a[infoCmdline:], addString(cmdline))
	le.PutUint32(a[infoMmapLength:], uint32(len(mmap)*mmapEntrySize))
	le.PutUint32(a[infoMmapAddr:], uint32(inf.base+offMmap))
	for i, e := range mmap {
		b := a[offMmap+uint64(i)*mmapEntrySize:]
		le.PutUint32(b[0:], mmapSizeField)
		le.PutUint64(b[4:], e.base)
		le.PutUint64(b[12:], e.length)
		le.PutUint32(b[20:], e.typ)
	}
	if len(modules) > 0 {
		flags |= InfoModules
		le.PutUint32(a[infoModsCount:], uint32(len(modules)))
		le.PutUint32(a[infoModsAddr:], uint32(inf.base+offMods))
		for i, m := range modules {
			b := a[offMods+uint64(i)*modEntrySize:]
			le.PutUint32(b[0:], uint32(inf.modAddr[i]))
			le.PutUint32(b[4:], uint32(inf.modAddr[i]+uint64(len(m.Data)))) // end, exclusive
			le.PutUint32(b[8:], addString(m.Cmdline))
		}
	}
	le.PutUint32(a[infoFlags:], flags)

	// The GDT and the TSS.
	le.PutUint64(a[offGDT+selCode:], descCode)
	le.PutUint64(a[offGDT+selData:], descData)
	le.PutUint64(a[offGDT+selTSS:], systemDescriptor(uint32(inf.tssAddr), tssSize-1, tssType))
	le.PutUint16(a[offTSS+tssIOMapOff:], tssSize)

	inf.area = a
	return inf, nil
}

// systemDescriptor encodes a present, DPL 0, byte-granular system-segment descriptor.
func systemDescriptor(base, limit uint32, typ uint8) uint64 {
	d := uint64(limit & 0xFFFF)
	d |= uint64(base&0xFFFFFF) << 16
	d |= uint64(typ|0x80) << 40 // type, S=0, DPL 0, P
	d |= uint64(limit>>16&0xF) << 48
	d |= uint64(base>>24) << 56
	return d
}

type mmapEntry struct {
	base, length uint64
	typ          uint32
}

// memoryMap describes guest RAM the PC way: conventional memory, the legacy hole from 640
// KiB to 1 MiB, and the rest above 1 MiB.
func memoryMap(ramSize uint64) []mmapEntry {
	m := []mmapEntry{{0, min(ramSize, lowMemoryEnd), MemoryAvailable}}
	if ramSize > lowMemoryEnd {
		m = append(m, mmapEntry{lowMemoryEnd, highMemory - lowMemoryEnd, MemoryReserved})
	}
	if ramSize > highMemory {
		m = append(m, mmapEntry{highMemory, ramSize - highMemory, MemoryAvailable})
	}
	return m
}

// write copies the modules and the information area into guest memory.
func (inf *info) write(mem *hv.Memory, modules []Module) error {
	for i, m := range modules {
		if _, err := mem.WriteAt(m.Data, int64(inf.modAddr[i])); err != nil {
			return err
		}
	}
	_, err := mem.WriteAt(inf.area, int64(inf.base))
	return err
}

// initialState is Multiboot Specification 0.6.96, 3.2 "Machine state": EAX the boot magic,
// EBX the information structure; CS a flat 4 GiB 32-bit read/execute code segment; DS, ES,
// FS, GS and SS flat 4 GiB read/write data segments; A20 enabled (guest memory has no A20
// gate); CR0 PE set and PG clear; EFLAGS VM and IF clear. The rest is what both hardware
// backends need of a valid 32-bit protected-mode state: TR a busy 32-bit TSS, LDTR unusable
// (attribute P clear; a VMX backend marks it unusable), the architectural reset values of
// DR6, DR7 and PAT.
func (inf *info) initialState(entry uint64) *hv.CPUState {
	flat := func(sel uint16, attr uint16) hv.Segment {
		return hv.Segment{Selector: sel, Attr: attr, Limit: 0xFFFFFFFF, Base: 0}
	}
	s := &hv.CPUState{
		RIP:    entry,
		RFLAGS: rflagsReserved,
		CR0:    cr0PE | cr0ET,
		CS:     flat(selCode, attrCode),
		DS:     flat(selData, attrData),
		ES:     flat(selData, attrData),
		FS:     flat(selData, attrData),
		GS:     flat(selData, attrData),
		SS:     flat(selData, attrData),
		TR:     hv.Segment{Selector: selTSS, Attr: attrTSS, Limit: tssSize - 1, Base: inf.tssAddr},
		LDTR:   hv.Segment{},
		GDTR:   hv.Table{Base: inf.gdtAddr, Limit: 8*gdtEntries - 1},
		IDTR:   hv.Table{},
		DR6:    dr6Reset,
		DR7:    dr7Reset,
		PAT:    patReset,
	}
	s.GPR[hv.RAX] = BootMagic
	s.GPR[hv.RBX] = inf.infoAddr
	return s
}
