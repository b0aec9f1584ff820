package loader

// Linux loads an x86 bzImage by the Linux boot protocol and starts it at its 64-bit entry
// point. The facts come from the kernel's Documentation/arch/x86/boot.rst ("The Linux/x86
// Boot Protocol"), cited below as "boot.rst" with its section title, and
// Documentation/arch/x86/zero-page.rst for the boot_params layout.
//
// Like Multiboot, Linux checks the image, the command line, the initrd and the memory map
// before it writes guest memory: a rejected image leaves memory as it was (FuzzLinux).

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors of the Linux loader; it also returns ErrBadImage, ErrUnsupported and ErrNoFit.
var (
	// ErrNotBzImage: no boot flag 0xAA55 or no "HdrS" setup-header magic.
	ErrNotBzImage = errors.New("loader: not a Linux bzImage")
	// ErrCmdlineTooLong: the command line exceeds the kernel's cmdline_size.
	ErrCmdlineTooLong = errors.New("loader: kernel command line too long")
	// ErrBadMemoryMap: LinuxConfig.E820 is unusable (overlapping or empty ranges, RAM beyond
	// guest memory, too many entries).
	ErrBadMemoryMap = errors.New("loader: bad e820 memory map")
)

// Setup-header fields, as offsets into the bzImage (the header sits at the same offsets in
// boot_params). boot.rst, "The Real-Mode Kernel Header".
const (
	hdrSetupSects      = 0x1F1 // setup_sects: 512-byte setup sectors after the boot sector; 0 means 4
	hdrSyssize         = 0x1F4 // syssize: protected-mode code size in 16-byte paragraphs (2.04+)
	hdrBootFlag        = 0x1FE // boot_flag: 0xAA55
	hdrJump            = 0x200 // jump: a short JMP; its displacement byte gives the header's end
	hdrMagic           = 0x202 // header: "HdrS"
	hdrVersion         = 0x206 // version: boot protocol version, major<<8 | minor
	hdrTypeOfLoader    = 0x210 // type_of_loader
	hdrLoadflags       = 0x211 // loadflags
	hdrCode32Start     = 0x214 // code32_start
	hdrRamdiskImage    = 0x218 // ramdisk_image: initrd address, low 32 bits
	hdrRamdiskSize     = 0x21C // ramdisk_size: initrd size, low 32 bits
	hdrCmdLinePtr      = 0x228 // cmd_line_ptr: command line address, low 32 bits (2.02+)
	hdrInitrdAddrMax   = 0x22C // initrd_addr_max: highest address the initrd may occupy (2.03+)
	hdrKernelAlignment = 0x230 // kernel_alignment: physical alignment the kernel needs (2.05+)
	hdrRelocatable     = 0x234 // relocatable_kernel: non-zero if the kernel can be moved (2.05+)
	hdrXloadflags      = 0x236 // xloadflags (2.12+)
	hdrCmdlineSize     = 0x238 // cmdline_size: maximum command line length, NUL excluded (2.06+)
	hdrPrefAddress     = 0x258 // pref_address: preferred load address (2.10+)
	hdrInitSize        = 0x260 // init_size: bytes the kernel needs from its load address to start (2.10+)

	bootFlagMagic   = 0xAA55
	hdrSMagic       = 0x53726448 // "HdrS" little-endian
	hdrEndMin       = 0x264
	maxPhysAddr     = 1 << 52 // Intel SDM Vol. 3A, 4.1.4: MAXPHYADDR is at most 52      // the 2.12 header ends after init_size
	sectorSize      = 512
	defaultSetupSec = 4 // boot.rst: "If this field is 0, the real value is 4."

	// MinLinuxVersion is the oldest boot protocol Linux accepts: 2.12 added xloadflags, which
	// says whether the kernel has a 64-bit entry point.
	MinLinuxVersion = 0x020C
	// linuxVersionRSDP is the protocol version that added boot_params.acpi_rsdp_addr.
	linuxVersionRSDP = 0x020E
)

// loadflags bits. boot.rst, "Details of Header Fields", loadflags.
const (
	loadedHigh = 1 << 0 // LOADED_HIGH: the protected-mode code is loaded at 0x100000
)

// xloadflags bits. boot.rst, "Details of Header Fields", xloadflags.
const (
	xlfKernel64 = 1 << 0 // XLF_KERNEL_64: the kernel has the legacy 64-bit entry point at 0x200
)

// Where things go. startup_64 lies 0x200 bytes into the protected-mode kernel (boot.rst,
// "64-bit Boot Protocol"); the boot loader's own structures live in conventional memory below
// 640 KiB, away from the kernel and the initrd.
const (
	// LinuxLoadAddr is where the protected-mode kernel goes unless pref_address is usable.
	LinuxLoadAddr  = 0x100000
	linuxEntry64   = 0x200
	typeLoaderNone = 0xFF // type_of_loader: "undefined" boot loader ID

	linuxGDTAddr      = 0x500  // the GDT (linuxGDTEntries descriptors), then the TSS
	linuxTSSAddr      = 0x580  // a 64-bit TSS, tssSize bytes
	linuxStackTop     = 0x8FF0 // an initial RSP; startup_64 sets up its own stack
	LinuxBootParams   = 0x7000 // boot_params, the "zero page"
	linuxPML4Addr     = 0x9000 // page-map level 4
	linuxPDPTAddr     = 0xA000 // page-directory-pointer table
	linuxPDAddr       = 0xB000 // linuxPDs page directories of 2 MiB pages, one per GiB
	linuxPDs          = 4      // identity map of the first 4 GiB
	linuxCmdlineAddr  = 0x20000
	linuxCmdlineLimit = 0x9F000 - linuxCmdlineAddr // up to the conventional EBDA
	linuxLowEnd       = linuxCmdlineAddr           // end of the fixed structures below the command line
)

// setupHeader is the parsed part of a bzImage's setup header that the loader acts on.
type setupHeader struct {
	version         uint16
	setupSects      int
	syssize         uint32
	loadflags       uint8
	initrdAddrMax   uint32
	kernelAlignment uint32
	relocatable     bool
	xloadflags      uint16
	cmdlineSize     uint32
	prefAddress     uint64
	initSize        uint32
	raw             []byte // image bytes hdrSetupSects..header end, copied into boot_params
	kernel          []byte // the protected-mode kernel
}

// parseSetupHeader checks a bzImage and returns its header.
func parseSetupHeader(img []byte) (*setupHeader, error) {
	le := binary.LittleEndian
	if len(img) < hdrEndMin {
		return nil, fmt.Errorf("%w: %d bytes, too short for a setup header (%#x bytes)", ErrNotBzImage, len(img), hdrEndMin)
	}
	if f := le.Uint16(img[hdrBootFlag:]); f != bootFlagMagic {
		return nil, fmt.Errorf("%w: boot_flag at %#x is %#04x, want %#04x", ErrNotBzImage, hdrBootFlag, f, bootFlagMagic)
	}
	if m := le.Uint32(img[hdrMagic:]); m != hdrSMagic {
		return nil, fmt.Errorf("%w: header magic at %#x is %#08x, want %#08x (\"HdrS\")", ErrNotBzImage, hdrMagic, m, hdrSMagic)
	}
	h := &setupHeader{
		version:         le.Uint16(img[hdrVersion:]),
		setupSects:      int(img[hdrSetupSects]),
		syssize:         le.Uint32(img[hdrSyssize:]),
		loadflags:       img[hdrLoadflags],
		initrdAddrMax:   le.Uint32(img[hdrInitrdAddrMax:]),
		kernelAlignment: le.Uint32(img[hdrKernelAlignment:]),
		relocatable:     img[hdrRelocatable] != 0,
		xloadflags:      le.Uint16(img[hdrXloadflags:]),
		cmdlineSize:     le.Uint32(img[hdrCmdlineSize:]),
		prefAddress:     le.Uint64(img[hdrPrefAddress:]),
		initSize:        le.Uint32(img[hdrInitSize:]),
	}
	if h.version < MinLinuxVersion {
		return nil, fmt.Errorf("%w: boot protocol %d.%02d, need %d.%02d or later", ErrUnsupported,
			h.version>>8, h.version&0xFF, MinLinuxVersion>>8, MinLinuxVersion&0xFF)
	}
	if h.loadflags&loadedHigh == 0 {
		return nil, fmt.Errorf("%w: loadflags %#02x: LOADED_HIGH clear (a zImage loaded at 0x10000)", ErrUnsupported, h.loadflags)
	}
	if h.xloadflags&xlfKernel64 == 0 {
		return nil, fmt.Errorf("%w: xloadflags %#04x: XLF_KERNEL_64 clear, no 64-bit entry point", ErrUnsupported, h.xloadflags)
	}
	if h.setupSects == 0 {
		h.setupSects = defaultSetupSec
	}
	// The header ends where the jump at 0x200 lands. boot.rst, "Details of Header Fields":
	// the boot loader copies the header up to 0x202 plus the jump's displacement byte.
	end := hdrMagic + int(img[hdrJump+1])
	if end < hdrEndMin {
		return nil, fmt.Errorf("%w: header ends at %#x (jump displacement %#x), before init_size at %#x",
			ErrBadImage, end, img[hdrJump+1], hdrInitSize)
	}
	setupSize := (h.setupSects + 1) * sectorSize
	if end > setupSize {
		return nil, fmt.Errorf("%w: header ends at %#x, beyond the %d setup sectors (%#x bytes)", ErrBadImage, end, h.setupSects, setupSize)
	}
	if setupSize >= len(img) {
		return nil, fmt.Errorf("%w: %d setup sectors (%#x bytes) leave no protected-mode kernel in a %#x-byte image",
			ErrBadImage, h.setupSects, setupSize, len(img))
	}
	h.kernel = img[setupSize:]
	if uint64(h.syssize)*16 > uint64(len(h.kernel)) {
		return nil, fmt.Errorf("%w: syssize %#x paragraphs (%#x bytes) but only %#x bytes follow the setup code at %#x",
			ErrBadImage, h.syssize, uint64(h.syssize)*16, len(h.kernel), setupSize)
	}
	if len(h.kernel) <= linuxEntry64 {
		return nil, fmt.Errorf("%w: protected-mode kernel of %#x bytes has no 64-bit entry at %#x", ErrBadImage, len(h.kernel), linuxEntry64)
	}
	if h.prefAddress >= maxPhysAddr {
		return nil, fmt.Errorf("%w: pref_address %#x beyond the physical address space", ErrBadImage, h.prefAddress)
	}
	if a := h.kernelAlignment; a != 0 && a&(a-1) != 0 {
		return nil, fmt.Errorf("%w: kernel_alignment %#x is not a power of two", ErrBadImage, a)
	}
	h.raw = img[hdrSetupSects:end]
	return h, nil
}

// loadAddress picks where the protected-mode kernel goes, and returns the end of the memory the
// kernel uses while it starts: init_size bytes from the address startup_64 runs at, which for a
// relocatable kernel is the load address rounded up to kernel_alignment and never below
// pref_address (boot.rst, "Details of Header Fields": pref_address, init_size).
func (h *setupHeader) loadAddress(fits func(addr, size uint64) bool) (load, end uint64, err error) {
	need := max(uint64(h.initSize), uint64(len(h.kernel)))
	footprint := func(load uint64) uint64 {
		run := load
		if a := uint64(h.kernelAlignment); h.relocatable && a > 1 {
			run = alignUp(load, a)
		}
		return max(run, h.prefAddress) + need
	}
	candidates := []uint64{LinuxLoadAddr}
	if h.prefAddress >= LinuxLoadAddr && h.prefAddress != LinuxLoadAddr {
		candidates = []uint64{h.prefAddress, LinuxLoadAddr}
	}
	if !h.relocatable && h.prefAddress > LinuxLoadAddr {
		candidates = candidates[:1] // a fixed kernel runs only at pref_address
	}
	for _, c := range candidates {
		e := footprint(c)
		if e > c && fits(c, e-c) {
			return c, e, nil
		}
	}
	c := candidates[0]
	return 0, 0, fmt.Errorf("%w: kernel at %#x needs %#x bytes (init_size %#x, pref_address %#x, kernel_alignment %#x) of RAM",
		ErrNoFit, c, footprint(c)-c, h.initSize, h.prefAddress, h.kernelAlignment)
}
