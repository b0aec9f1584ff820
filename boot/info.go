// Package boot holds what Godwit knows about how it was booted: the boot-information formats of
// its loaders (multiboot v1 and Xen PVH), parsed into one fixed-size Info, and the image patcher
// that turns the Go linker's ELF into a bootable kernel (see image.go).
//
// The parsers run in the ring-0 layer before the Go runtime exists, so they allocate nothing:
// Info is a fixed-size value and memory is read through Mem, a bounds-checked window onto
// physical memory (identity-mapped on bare metal, a byte slice in tests).
package boot

// Loader magic values.
const (
	// MultibootMagic is in EAX when a multiboot v1 loader enters the kernel.
	// Multiboot Specification 0.6.96, 3.2 "Machine state".
	MultibootMagic = 0x2BADB002
	// PVHMagic starts struct hvm_start_info, whose address is in EBX on a PVH entry.
	// Xen public/arch-x86/hvm/start_info.h (XEN_HVM_START_MAGIC_VALUE).
	PVHMagic = 0x336EC578
)

// Memory types, as in the ACPI/E820 address-range types that both multiboot and PVH use.
// ACPI 6.4, 15.3 "UEFI Memory Types and Mapping to ACPI Address Range Types".
const (
	MemAvailable = 1
	MemReserved  = 2
	MemACPI      = 3
	MemNVS       = 4
	MemBad       = 5
)

// Limits of Info. Larger inputs are truncated and counted in Info.Dropped.
const (
	MaxMem        = 128
	MaxModules    = 32
	MaxCmdline    = 2048
	MaxModCmdline = 256
	MaxLoaderName = 64
)

// MemRange is one entry of the physical memory map.
type MemRange struct {
	Base, Length uint64
	Type         uint32
}

// End returns the first address after the range.
func (r MemRange) End() uint64 { return r.Base + r.Length }

// Module is a file the loader placed in memory for us (QEMU -initrd, GRUB module).
type Module struct {
	Start, End uint64 // physical, End exclusive
	Cmdline    [MaxModCmdline]byte
	CmdlineLen int
}

// Info is the boot information in loader-neutral form.
type Info struct {
	Loader     int // LoaderMultiboot or LoaderPVH
	Cmdline    [MaxCmdline]byte
	CmdlineLen int
	Mem        [MaxMem]MemRange
	NMem       int
	Mods       [MaxModules]Module
	NMods      int
	LoaderName [MaxLoaderName]byte
	NameLen    int
	RSDP       uint64 // from PVH; 0 when the loader did not say
	Dropped    int    // entries that did not fit
}

// Loaders.
const (
	LoaderNone = iota
	LoaderMultiboot
	LoaderPVH
)

// LoaderString names a loader.
func LoaderString(l int) string {
	switch l {
	case LoaderMultiboot:
		return "multiboot"
	case LoaderPVH:
		return "pvh"
	}
	return "none"
}

// CmdlineString returns the kernel command line.
func (in *Info) CmdlineString() string { return string(in.Cmdline[:in.CmdlineLen]) }

// Name returns the loader's name for itself, if it gave one.
func (in *Info) Name() string { return string(in.LoaderName[:in.NameLen]) }

// ModCmdline returns module i's command line (its path and arguments as the loader gave them).
func (in *Info) ModCmdline(i int) string { return string(in.Mods[i].Cmdline[:in.Mods[i].CmdlineLen]) }

// Multiboot v1 information structure offsets and flags.
// Multiboot Specification 0.6.96, 3.3 "Boot information format".
const (
	mbFlags       = 0
	mbMemLower    = 4
	mbMemUpper    = 8
	mbCmdline     = 16
	mbModsCount   = 20
	mbModsAddr    = 24
	mbMmapLength  = 44
	mbMmapAddr    = 48
	mbLoaderName  = 64
	mbInfoSize    = 88
	mbFlagMem     = 1 << 0
	mbFlagCmdline = 1 << 2
	mbFlagMods    = 1 << 3
	mbFlagMmap    = 1 << 6
	mbFlagName    = 1 << 9
	mbModSize     = 16 // mod_start, mod_end, string, reserved
)

// PVH start-info offsets. Xen public/arch-x86/hvm/start_info.h.
const (
	pvhVersion      = 4
	pvhNrModules    = 12
	pvhModlist      = 16
	pvhCmdline      = 24
	pvhRSDP         = 32
	pvhMemmap       = 40
	pvhMemmapCount  = 48
	pvhInfoSizeV0   = 40
	pvhInfoSizeV1   = 56
	pvhModEntrySize = 32 // paddr, size, cmdline_paddr, reserved
	pvhMemEntrySize = 24 // addr, size, type, reserved
)

// ParseMultiboot fills in from the multiboot v1 information structure at address at.
// It reports false when the structure itself is unreadable; truncated lists are counted in
// in.Dropped instead.
func ParseMultiboot(m Mem, at uint64, in *Info) bool {
	*in = Info{Loader: LoaderMultiboot}
	if !m.Ok(at, mbInfoSize) {
		return false
	}
	flags := m.U32(at + mbFlags)
	if flags&mbFlagCmdline != 0 {
		in.CmdlineLen = m.CString(uint64(m.U32(at+mbCmdline)), in.Cmdline[:])
	}
	if flags&mbFlagName != 0 {
		in.NameLen = m.CString(uint64(m.U32(at+mbLoaderName)), in.LoaderName[:])
	}
	if flags&mbFlagMmap != 0 {
		p := uint64(m.U32(at + mbMmapAddr))
		end := p + uint64(m.U32(at+mbMmapLength))
		for p+24 <= end && m.Ok(p, 24) {
			size := uint64(m.U32(p))
			in.addMem(m.U64(p+4), m.U64(p+12), m.U32(p+20))
			if size < 20 {
				break // a malformed entry would loop forever
			}
			p += size + 4
		}
	} else if flags&mbFlagMem != 0 {
		// Only mem_lower/mem_upper (KiB below 640 KiB and from 1 MiB): Multiboot 3.3.
		in.addMem(0, uint64(m.U32(at+mbMemLower))<<10, MemAvailable)
		in.addMem(1<<20, uint64(m.U32(at+mbMemUpper))<<10, MemAvailable)
	}
	if flags&mbFlagMods != 0 {
		n := uint64(m.U32(at + mbModsCount))
		p := uint64(m.U32(at + mbModsAddr))
		for i := uint64(0); i < n; i++ {
			e := p + i*mbModSize
			if !m.Ok(e, mbModSize) {
				in.Dropped += int(n - i) // the rest lie beyond too: do not spin on a bad count
				break
			}
			in.addModule(m, uint64(m.U32(e)), uint64(m.U32(e+4)), uint64(m.U32(e+8)))
		}
	}
	return true
}

// ParsePVH fills in from the PVH struct hvm_start_info at address at.
func ParsePVH(m Mem, at uint64, in *Info) bool {
	*in = Info{Loader: LoaderPVH}
	if !m.Ok(at, pvhInfoSizeV0) || m.U32(at) != PVHMagic {
		return false
	}
	if c := m.U64(at + pvhCmdline); c != 0 {
		in.CmdlineLen = m.CString(c, in.Cmdline[:])
	}
	in.RSDP = m.U64(at + pvhRSDP)
	n := uint64(m.U32(at + pvhNrModules))
	p := m.U64(at + pvhModlist)
	for i := uint64(0); i < n; i++ {
		e := p + i*pvhModEntrySize
		if e < p || !m.Ok(e, pvhModEntrySize) {
			in.Dropped += int(n - i) // out of range or wrapped past 2^64: so are the rest
			break
		}
		start, size := m.U64(e), m.U64(e+8)
		in.addModule(m, start, start+size, m.U64(e+16))
	}
	if m.U32(at+pvhVersion) >= 1 && m.Ok(at, pvhInfoSizeV1) {
		n := uint64(m.U32(at + pvhMemmapCount))
		p := m.U64(at + pvhMemmap)
		for i := uint64(0); i < n; i++ {
			e := p + i*pvhMemEntrySize
			if e < p || !m.Ok(e, pvhMemEntrySize) {
				in.Dropped += int(n - i) // out of range or wrapped past 2^64: so are the rest
				break
			}
			in.addMem(m.U64(e), m.U64(e+8), m.U32(e+16))
		}
	}
	return true
}

func (in *Info) addMem(base, length uint64, typ uint32) {
	if length == 0 {
		return
	}
	if in.NMem == MaxMem {
		in.Dropped++
		return
	}
	in.Mem[in.NMem] = MemRange{Base: base, Length: length, Type: typ}
	in.NMem++
}

func (in *Info) addModule(m Mem, start, end, cmdline uint64) {
	if in.NMods == MaxModules {
		in.Dropped++
		return
	}
	if end < start {
		end = start
	}
	mod := &in.Mods[in.NMods]
	mod.Start, mod.End = start, end
	if cmdline != 0 {
		mod.CmdlineLen = m.CString(cmdline, mod.Cmdline[:])
	}
	in.NMods++
}

// MemTypeString names an address-range type.
func MemTypeString(t uint32) string {
	switch t {
	case MemAvailable:
		return "available"
	case MemReserved:
		return "reserved"
	case MemACPI:
		return "ACPI reclaimable"
	case MemNVS:
		return "ACPI NVS"
	case MemBad:
		return "bad"
	}
	return "unknown"
}
