package loader

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/godwit-hv/godwit/hv"
)

// E820Type is the type of an e820 memory-map range. ACPI 6.5, 15.3 "Address Range Types"
// (the BIOS INT 15h E820h types Linux reads from boot_params).
type E820Type uint32

// e820 range types.
const (
	E820RAM      E820Type = 1 // AddressRangeMemory: usable RAM
	E820Reserved E820Type = 2 // AddressRangeReserved: MMIO, ROM, holes
	E820ACPI     E820Type = 3 // AddressRangeACPI: ACPI tables, reclaimable after boot
	E820NVS      E820Type = 4 // AddressRangeNVS: ACPI non-volatile storage
	E820Unusable E820Type = 5 // AddressRangeUnusable
)

// E820Entry is one range of the guest's memory map.
type E820Entry struct {
	Addr, Size uint64
	Type       E820Type
}

func (e E820Entry) end() uint64 { return e.Addr + e.Size }

// boot_params layout. Documentation/arch/x86/zero-page.rst.
const (
	bpSize             = 4096
	bpACPIRSDPAddr     = 0x070 // acpi_rsdp_addr, 8 bytes (protocol 2.14+)
	bpExtRamdiskImage  = 0x0C0 // ext_ramdisk_image: initrd address, high 32 bits
	bpExtRamdiskSize   = 0x0C4 // ext_ramdisk_size
	bpExtCmdLinePtr    = 0x0C8 // ext_cmd_line_ptr
	bpE820Entries      = 0x1E8 // e820_entries: number of e820_table entries
	bpE820Table        = 0x2D0 // e820_table: E820MaxEntries entries of e820EntrySize bytes
	e820EntrySize      = 20    // addr (8), size (8), type (4), packed
	E820MaxEntries     = 128   // E820_MAX_ENTRIES_ZEROPAGE
	linuxGDTEntries    = 6     // null, null, __BOOT_CS, __BOOT_DS, a 16-byte TSS descriptor
	linuxSelCode       = 0x10  // __BOOT_CS
	linuxSelData       = 0x18  // __BOOT_DS
	linuxSelTSS        = 0x20
	linuxDescCode64    = 0x00AF9B000000FFFF // base 0, limit 0xFFFFF, G, L, P, S, type 0xB (code, read, accessed)
	linuxAttrCode64    = 0xB | hv.SegS | hv.SegP | hv.SegL | hv.SegG
	linuxPageTablesEnd = linuxPDAddr + linuxPDs*pageSize
	pdePS              = 1 << 7 // page size: a 2 MiB page. Intel SDM Vol. 3A, 4.5.4, Table 4-17
	pteP               = 1 << 0 // present
	pteRW              = 1 << 1 // writable
	twoMiB             = 2 << 20
)

// LinuxConfig is what the platform tells the Linux loader.
type LinuxConfig struct {
	// E820 is the guest's memory map: the RAM ranges and the reserved ranges (the legacy hole
	// 0xA0000-0xFFFFF, the MMIO windows of the platform's devices, ACPI tables). Nil means
	// PCMemoryMap(mem.Size()). RAM ranges must lie in guest memory; the loader places
	// everything in RAM ranges.
	E820 []E820Entry
	// ACPIRSDP is the guest-physical address of the ACPI RSDP (boot_params.acpi_rsdp_addr),
	// 0 for none: the kernel then scans the BIOS areas for it.
	ACPIRSDP uint64
}

// PCMemoryMap returns the memory map of ramSize bytes of RAM at address 0 with the PC's legacy
// hole (640 KiB to 1 MiB) and the given reserved ranges (MMIO windows) cut out of the RAM and
// listed as E820Reserved, sorted by address.
func PCMemoryMap(ramSize uint64, reserved ...E820Entry) []E820Entry {
	holes := append([]E820Entry{{lowMemoryEnd, highMemory - lowMemoryEnd, E820Reserved}}, reserved...)
	ram := []E820Entry{{0, ramSize, E820RAM}}
	for _, h := range holes {
		var next []E820Entry
		for _, r := range ram {
			if h.end() <= r.Addr || h.Addr >= r.end() {
				next = append(next, r)
				continue
			}
			if h.Addr > r.Addr {
				next = append(next, E820Entry{r.Addr, h.Addr - r.Addr, E820RAM})
			}
			if h.end() < r.end() {
				next = append(next, E820Entry{h.end(), r.end() - h.end(), E820RAM})
			}
		}
		ram = next
	}
	m := append(ram, holes...)
	slices.SortFunc(m, func(a, b E820Entry) int { return cmp.Compare(a.Addr, b.Addr) })
	return m
}

// checkE820 validates a memory map against guest memory and returns it sorted.
func checkE820(m []E820Entry, memSize uint64) ([]E820Entry, error) {
	if len(m) == 0 || len(m) > E820MaxEntries {
		return nil, fmt.Errorf("%w: %d entries, want 1 to %d", ErrBadMemoryMap, len(m), E820MaxEntries)
	}
	m = slices.Clone(m)
	slices.SortFunc(m, func(a, b E820Entry) int { return cmp.Compare(a.Addr, b.Addr) })
	for i, e := range m {
		if e.Size == 0 || e.end() < e.Addr || e.Type == 0 {
			return nil, fmt.Errorf("%w: entry %#x+%#x type %d is empty, wraps or has no type", ErrBadMemoryMap, e.Addr, e.Size, e.Type)
		}
		if e.Type == E820RAM && e.end() > memSize {
			return nil, fmt.Errorf("%w: RAM %#x-%#x beyond guest memory (%#x bytes)", ErrBadMemoryMap, e.Addr, e.end(), memSize)
		}
		if i > 0 && e.Addr < m[i-1].end() {
			return nil, fmt.Errorf("%w: %#x-%#x overlaps %#x-%#x", ErrBadMemoryMap, e.Addr, e.end(), m[i-1].Addr, m[i-1].end())
		}
	}
	return m, nil
}

// inRAM reports whether [addr, addr+size) lies in one RAM range of m.
func inRAM(m []E820Entry, addr, size uint64) bool {
	for _, e := range m {
		if e.Type == E820RAM && addr >= e.Addr && addr <= e.end() && size <= e.end()-addr {
			return true
		}
	}
	return false
}

// linuxPlan is the checked placement of everything Linux writes.
type linuxPlan struct {
	hdr                    *setupHeader
	e820                   []E820Entry
	load, kernelEnd        uint64
	initrdAddr, initrdSize uint64
	cmdline                string
	rsdp                   uint64
}

// Linux loads bzImage, a Linux x86 kernel, with the initrd (nil for none) and the command line
// into mem, builds boot_params at LinuxBootParams, and returns the state to start the boot vCPU
// in at the kernel's 64-bit entry point. boot.rst, "64-bit Boot Protocol".
func Linux(mem *hv.Memory, bzImage, initrd []byte, cmdline string, cfg LinuxConfig) (*hv.CPUState, error) {
	if mem == nil {
		return nil, fmt.Errorf("%w: no guest memory", ErrNoFit)
	}
	p, err := planLinux(mem.Size(), bzImage, initrd, cmdline, cfg)
	if err != nil {
		return nil, err
	}
	// Everything is checked: write.
	if err := p.write(mem, initrd); err != nil {
		panic(fmt.Sprintf("loader: Linux layout checked but not in memory: %v", err))
	}
	return p.initialState(), nil
}

func planLinux(memSize uint64, bzImage, initrd []byte, cmdline string, cfg LinuxConfig) (*linuxPlan, error) {
	h, err := parseSetupHeader(bzImage)
	if err != nil {
		return nil, err
	}
	m := cfg.E820
	if m == nil {
		m = PCMemoryMap(memSize)
	}
	if m, err = checkE820(m, memSize); err != nil {
		return nil, err
	}
	p := &linuxPlan{hdr: h, e820: m, cmdline: cmdline, rsdp: cfg.ACPIRSDP}
	if !inRAM(m, linuxGDTAddr, linuxPageTablesEnd-linuxGDTAddr) {
		return nil, fmt.Errorf("%w: boot structures at %#x-%#x are not in one RAM range of the memory map",
			ErrNoFit, linuxGDTAddr, linuxPageTablesEnd)
	}
	if uint64(len(cmdline)) > uint64(h.cmdlineSize) || len(cmdline) >= linuxCmdlineLimit {
		return nil, fmt.Errorf("%w: %d bytes, the kernel takes at most %d (cmdline_size)", ErrCmdlineTooLong, len(cmdline), min(h.cmdlineSize, linuxCmdlineLimit-1))
	}
	if !inRAM(m, linuxCmdlineAddr, uint64(len(cmdline))+1) {
		return nil, fmt.Errorf("%w: command line at %#x (%d bytes) is not in RAM", ErrNoFit, linuxCmdlineAddr, len(cmdline)+1)
	}
	if p.load, p.kernelEnd, err = h.loadAddress(func(a, n uint64) bool {
		return inRAM(m, a, n) && a+n <= fourGiB // in the identity map
	}); err != nil {
		return nil, err
	}
	if len(initrd) > 0 {
		if p.initrdAddr, err = placeInitrd(m, uint64(len(initrd)), uint64(h.initrdAddrMax), p.load, p.kernelEnd); err != nil {
			return nil, err
		}
		p.initrdSize = uint64(len(initrd))
	}
	return p, nil
}

// placeInitrd puts the initrd page-aligned as high as it goes in RAM, ending at or below
// initrd_addr_max (the address of its last byte: boot.rst, "Details of Header Fields"), above
// 1 MiB and clear of the kernel's [load, kernelEnd).
func placeInitrd(m []E820Entry, size, addrMax, load, kernelEnd uint64) (uint64, error) {
	for _, e := range slices.Backward(m) {
		if e.Type != E820RAM {
			continue
		}
		top := min(e.end(), addrMax+1)
		for range 2 { // above the kernel, then below it
			if top < size {
				break
			}
			a := (top - size) &^ (pageSize - 1)
			if a < max(e.Addr, highMemory) {
				break
			}
			if a < kernelEnd && a+size > load {
				top = load
				continue
			}
			return a, nil
		}
	}
	return 0, fmt.Errorf("%w: initrd of %#x bytes: no RAM below initrd_addr_max %#x clear of the kernel at %#x-%#x",
		ErrNoFit, size, addrMax, load, kernelEnd)
}

// write fills guest memory. Every range was checked by planLinux.
func (p *linuxPlan) write(mem *hv.Memory, initrd []byte) error {
	le := binary.LittleEndian
	k, err := mem.Slice(p.load, uint64(len(p.hdr.kernel)))
	if err != nil {
		return err
	}
	copy(k, p.hdr.kernel)
	if p.initrdSize > 0 {
		if _, err := mem.WriteAt(initrd, int64(p.initrdAddr)); err != nil {
			return err
		}
	}
	if _, err := mem.WriteAt(append([]byte(p.cmdline), 0), linuxCmdlineAddr); err != nil {
		return err
	}

	// boot_params: zeroed, the image's setup header, then what the boot loader fills in.
	// boot.rst, "Details of Header Fields" (the fields marked "write" for the boot loader).
	bp, err := mem.Slice(LinuxBootParams, bpSize)
	if err != nil {
		return err
	}
	clear(bp)
	copy(bp[hdrSetupSects:], p.hdr.raw)
	bp[hdrTypeOfLoader] = typeLoaderNone
	le.PutUint32(bp[hdrCode32Start:], uint32(p.load))
	le.PutUint32(bp[hdrCmdLinePtr:], linuxCmdlineAddr)
	le.PutUint32(bp[hdrRamdiskImage:], uint32(p.initrdAddr))
	le.PutUint32(bp[hdrRamdiskSize:], uint32(p.initrdSize))
	le.PutUint32(bp[bpExtRamdiskImage:], uint32(p.initrdAddr>>32))
	le.PutUint32(bp[bpExtRamdiskSize:], uint32(p.initrdSize>>32))
	if p.rsdp != 0 && p.hdr.version >= linuxVersionRSDP {
		le.PutUint64(bp[bpACPIRSDPAddr:], p.rsdp)
	}
	bp[bpE820Entries] = uint8(len(p.e820))
	for i, e := range p.e820 {
		b := bp[bpE820Table+i*e820EntrySize:]
		le.PutUint64(b[0:], e.Addr)
		le.PutUint64(b[8:], e.Size)
		le.PutUint32(b[16:], uint32(e.Type))
	}

	// The GDT and the TSS.
	gdt, err := mem.Slice(linuxGDTAddr, linuxTSSAddr+tssSize-linuxGDTAddr)
	if err != nil {
		return err
	}
	clear(gdt)
	le.PutUint64(gdt[linuxSelCode:], linuxDescCode64)
	le.PutUint64(gdt[linuxSelData:], descData)
	// A 16-byte long-mode TSS descriptor: the legacy 8 bytes, then base bits 63:32 (0 here).
	// Intel SDM Vol. 3A, 8.2.3 "TSS Descriptor in 64-bit mode".
	le.PutUint64(gdt[linuxSelTSS:], systemDescriptor(linuxTSSAddr, tssSize-1, tssType))
	le.PutUint16(gdt[linuxTSSAddr-linuxGDTAddr+tssIOMapOff:], tssSize)

	// Identity-mapped page tables for the first 4 GiB with 2 MiB pages. Intel SDM Vol. 3A,
	// 4.5 "4-Level Paging and 5-Level Paging".
	pt, err := mem.Slice(linuxPML4Addr, linuxPageTablesEnd-linuxPML4Addr)
	if err != nil {
		return err
	}
	clear(pt)
	le.PutUint64(pt[0:], linuxPDPTAddr|pteP|pteRW)
	for i := range uint64(linuxPDs) {
		le.PutUint64(pt[linuxPDPTAddr-linuxPML4Addr+8*i:], (linuxPDAddr+i*pageSize)|pteP|pteRW)
	}
	for i := range uint64(linuxPDs * 512) {
		le.PutUint64(pt[linuxPDAddr-linuxPML4Addr+8*i:], i*twoMiB|pteP|pteRW|pdePS)
	}
	return nil
}

// initialState is boot.rst, "64-bit Boot Protocol": long mode with paging on and an identity
// map covering the kernel, boot_params, the command line and the initrd; a GDT with __BOOT_CS
// (0x10) a flat 64-bit code segment and __BOOT_DS (0x18) a flat data segment in DS, ES, SS;
// interrupts off; RSI the address of boot_params; RIP the load address + 0x200. TR is a busy
// 64-bit TSS and LDTR unusable, which VMX and SVM entry checks require.
func (p *linuxPlan) initialState() *hv.CPUState {
	flat := func(sel, attr uint16) hv.Segment { return hv.Segment{Selector: sel, Attr: attr, Limit: 0xFFFFFFFF} }
	s := &hv.CPUState{
		RIP:    p.load + linuxEntry64,
		RFLAGS: rflagsReserved,
		CR0:    hv.CR0PE | hv.CR0ET | hv.CR0NE | hv.CR0PG,
		CR3:    linuxPML4Addr,
		CR4:    hv.CR4PAE,
		EFER:   hv.EFERLME | hv.EFERLMA,
		CS:     flat(linuxSelCode, linuxAttrCode64),
		DS:     flat(linuxSelData, attrData),
		ES:     flat(linuxSelData, attrData),
		FS:     flat(linuxSelData, attrData),
		GS:     flat(linuxSelData, attrData),
		SS:     flat(linuxSelData, attrData),
		TR:     hv.Segment{Selector: linuxSelTSS, Attr: attrTSS, Limit: tssSize - 1, Base: linuxTSSAddr},
		LDTR:   hv.Segment{},
		GDTR:   hv.Table{Base: linuxGDTAddr, Limit: 8*linuxGDTEntries - 1},
		DR6:    dr6Reset,
		DR7:    dr7Reset,
		PAT:    patReset,
	}
	s.GPR[hv.RSI] = LinuxBootParams
	s.GPR[hv.RSP] = linuxStackTop
	return s
}

// IsBzImage reports whether image starts like a Linux bzImage: the boot sector's 0xAA55 flag
// and the setup header's "HdrS" magic (Linux boot protocol, "The Real-Mode Kernel Header").
func IsBzImage(image []byte) bool {
	return len(image) > 0x206 && image[0x1FE] == 0x55 && image[0x1FF] == 0xAA && string(image[0x202:0x206]) == "HdrS"
}
