package loader

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/godwit-hv/godwit/arch/acpi"
	"github.com/godwit-hv/godwit/hv"
	"github.com/godwit-hv/godwit/hv/acpitab"
)

// bzOpts describes a synthetic bzImage: a boot sector and setup sectors holding a setup
// header, then a protected-mode kernel filled with a counting pattern.
type bzOpts struct {
	version         uint16
	setupSects      uint8
	kernelSize      int
	loadflags       uint8
	xloadflags      uint16
	initrdAddrMax   uint32
	kernelAlignment uint32
	relocatable     bool
	cmdlineSize     uint32
	prefAddress     uint64
	initSize        uint32
}

func defaultBz() bzOpts {
	return bzOpts{
		version:         0x020F,
		setupSects:      4,
		kernelSize:      0x3000,
		loadflags:       loadedHigh,
		xloadflags:      xlfKernel64,
		initrdAddrMax:   0x7FFFFFFF,
		kernelAlignment: 0x200000,
		relocatable:     true,
		cmdlineSize:     2047,
		prefAddress:     0x100000,
		initSize:        0x400000,
	}
}

func (o bzOpts) build() []byte {
	setup := (int(o.setupSects) + 1) * sectorSize
	if o.setupSects == 0 {
		setup = (defaultSetupSec + 1) * sectorSize
	}
	img := make([]byte, setup+o.kernelSize)
	le := binary.LittleEndian
	img[hdrSetupSects] = o.setupSects
	le.PutUint32(img[hdrSyssize:], uint32(o.kernelSize/16))
	le.PutUint16(img[hdrBootFlag:], bootFlagMagic)
	img[hdrJump], img[hdrJump+1] = 0xEB, 0x6A // jmp short to 0x26C: the 2.15 header's end
	le.PutUint32(img[hdrMagic:], hdrSMagic)
	le.PutUint16(img[hdrVersion:], o.version)
	img[hdrLoadflags] = o.loadflags
	le.PutUint32(img[hdrInitrdAddrMax:], o.initrdAddrMax)
	le.PutUint32(img[hdrKernelAlignment:], o.kernelAlignment)
	if o.relocatable {
		img[hdrRelocatable] = 1
	}
	le.PutUint16(img[hdrXloadflags:], o.xloadflags)
	le.PutUint32(img[hdrCmdlineSize:], o.cmdlineSize)
	le.PutUint64(img[hdrPrefAddress:], o.prefAddress)
	le.PutUint32(img[hdrInitSize:], o.initSize)
	for i := setup; i < len(img); i++ {
		img[i] = byte(i*7 + 3)
	}
	return img
}

// checkLinuxState checks the 64-bit boot state against the GDT and page tables in mem.
func checkLinuxState(t *testing.T, mem *hv.Memory, s *hv.CPUState, load uint64) {
	t.Helper()
	if s.RIP != load+0x200 || s.GPR[hv.RSI] != LinuxBootParams {
		t.Errorf("RIP, RSI = %#x, %#x, want %#x, %#x", s.RIP, s.GPR[hv.RSI], load+0x200, LinuxBootParams)
	}
	if s.CR0 != 0x80000031 || s.CR4 != 0x20 || s.EFER != 0x500 || s.RFLAGS != 2 {
		t.Errorf("CR0, CR4, EFER, RFLAGS = %#x, %#x, %#x, %#x, want 0x80000031, 0x20, 0x500, 2", s.CR0, s.CR4, s.EFER, s.RFLAGS)
	}
	if s.CS.Selector != 0x10 || s.DS.Selector != 0x18 || s.SS.Selector != 0x18 || s.ES.Selector != 0x18 {
		t.Errorf("CS, DS, SS, ES = %#x, %#x, %#x, %#x, want __BOOT_CS 0x10 and __BOOT_DS 0x18", s.CS.Selector, s.DS.Selector, s.SS.Selector, s.ES.Selector)
	}
	if s.CS.Attr&hv.SegL == 0 || s.CS.Attr&hv.SegDB != 0 {
		t.Errorf("CS attributes %#x: want L set and D clear (64-bit code)", s.CS.Attr)
	}
	if s.TR.Attr != 0xB|hv.SegP || s.TR.Limit != 0x67 || s.LDTR.Attr&hv.SegP != 0 {
		t.Errorf("TR = %+v, LDTR = %+v: want a busy 64-bit TSS and an unusable LDTR", s.TR, s.LDTR)
	}
	// Every segment register's hidden state is what its GDT descriptor says.
	gdt := mustSlice(t, mem, s.GDTR.Base, uint64(s.GDTR.Limit)+1)
	for name, seg := range map[string]hv.Segment{"CS": s.CS, "DS": s.DS, "ES": s.ES, "FS": s.FS, "GS": s.GS, "SS": s.SS, "TR": s.TR} {
		if int(seg.Selector)+8 > len(gdt) {
			t.Errorf("%s selector %#x beyond GDT limit %#x", name, seg.Selector, s.GDTR.Limit)
			continue
		}
		d := binary.LittleEndian.Uint64(gdt[seg.Selector:])
		base := d>>16&0xFFFFFF | d>>56<<24
		if seg.Attr&hv.SegS == 0 { // 16-byte system descriptor in long mode
			base |= binary.LittleEndian.Uint64(gdt[seg.Selector+8:]) << 32
		}
		limit := uint32(d&0xFFFF | d>>48&0xF<<16)
		attr := uint16(d>>40&0xFF | d>>52&0xF<<8)
		if attr&hv.SegG != 0 {
			limit = limit<<12 | 0xFFF
		}
		if name == "TR" {
			attr |= 0x2 // the descriptor says available (0x9) or busy (0xB); the CPU marks it busy
		} else {
			attr |= 1 // accessed
		}
		if got := (hv.Segment{Selector: seg.Selector, Attr: attr, Limit: limit, Base: base}); got != seg {
			t.Errorf("%s = %+v, GDT descriptor %#016x says %+v", name, seg, d, got)
		}
	}
	// The page tables identity-map the first 4 GiB.
	for _, a := range []uint64{0, LinuxBootParams, load + 0x200, 0x3FFFFFF, 0xFEC00000, 0xFFFFFFFF} {
		if got, err := hv.Translate(mem, s, a); err != nil || got != a {
			t.Errorf("Translate(%#x) = %#x, %v, want identity", a, got, err)
		}
	}
}

// e820 decodes boot_params' memory map.
func e820(t *testing.T, bp []byte) []E820Entry {
	t.Helper()
	var m []E820Entry
	for i := range int(bp[bpE820Entries]) {
		b := bp[bpE820Table+i*e820EntrySize:]
		m = append(m, E820Entry{binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:]), E820Type(binary.LittleEndian.Uint32(b[16:]))})
	}
	return m
}

func TestLinuxSynthetic(t *testing.T) {
	const ram = 64 << 20
	mem := newMem(ram)
	img := defaultBz().build()
	initrd := bytes.Repeat([]byte("initrd"), 20000)
	cmdline := "console=ttyS0 earlycon=uart8250,io,0x3f8"
	mmio := E820Entry{0x3000000, 0x100000, E820Reserved}
	cfg := LinuxConfig{E820: PCMemoryMap(ram, mmio), ACPIRSDP: 0xE0000}
	s, err := Linux(mem, img, initrd, cmdline, cfg)
	if err != nil {
		t.Fatalf("Linux() = %v", err)
	}
	if got := mustSlice(t, mem, LinuxLoadAddr, 0x3000); !bytes.Equal(got, img[0xA00:]) {
		t.Errorf("kernel at 1 MiB differs from the image's protected-mode part")
	}
	checkLinuxState(t, mem, s, LinuxLoadAddr)

	le := binary.LittleEndian
	bp := mustSlice(t, mem, LinuxBootParams, bpSize)
	hdrEnd := 0x202 + int(img[0x201])
	for off := hdrSetupSects; off < hdrEnd; off++ {
		switch {
		case off == hdrTypeOfLoader,
			off >= hdrCode32Start && off < hdrRamdiskSize+4,
			off >= hdrCmdLinePtr && off < hdrCmdLinePtr+4:
			continue
		}
		if bp[off] != img[off] {
			t.Errorf("boot_params[%#x] = %#x, want the image's setup header byte %#x", off, bp[off], img[off])
		}
	}
	if bp[hdrTypeOfLoader] != 0xFF {
		t.Errorf("type_of_loader = %#x, want 0xff", bp[hdrTypeOfLoader])
	}
	ptr := le.Uint32(bp[hdrCmdLinePtr:])
	if got := mustSlice(t, mem, uint64(ptr), uint64(len(cmdline))+1); string(got) != cmdline+"\x00" {
		t.Errorf("command line at %#x = %q, want %q NUL-terminated", ptr, got, cmdline)
	}
	ri, rs := le.Uint32(bp[hdrRamdiskImage:]), le.Uint32(bp[hdrRamdiskSize:])
	if rs != uint32(len(initrd)) || ri%pageSize != 0 || uint64(ri) < mmio.end() {
		t.Errorf("ramdisk_image, ramdisk_size = %#x, %#x: want %#x bytes page-aligned in the top RAM range, above the MMIO hole", ri, rs, len(initrd))
	}
	// Placed as high as possible: the top RAM range ends at 64 MiB, so within a page of it.
	if top := uint64(ri) + uint64(rs); top > ram || ram-top >= pageSize {
		t.Errorf("initrd ends at %#x, want within a page below %#x", top, ram)
	}
	if got := mustSlice(t, mem, uint64(ri), uint64(rs)); !bytes.Equal(got, initrd) {
		t.Errorf("initrd contents differ")
	}
	if got := le.Uint64(bp[bpACPIRSDPAddr:]); got != 0xE0000 {
		t.Errorf("acpi_rsdp_addr = %#x, want 0xe0000", got)
	}
	want := []E820Entry{
		{0, 0xA0000, E820RAM},
		{0xA0000, 0x60000, E820Reserved},
		{0x100000, 0x2F00000, E820RAM},
		{0x3000000, 0x100000, E820Reserved},
		{0x3100000, 0xF00000, E820RAM},
	}
	if got := e820(t, bp); !slices.Equal(got, want) {
		t.Errorf("e820 = %+v, want %+v", got, want)
	}
	// Bytes outside what the loader writes are untouched.
	for _, a := range []uint64{0x4FF, 0x6FFF, 0x8FFF, 0xF000, 0x1FFFF, LinuxLoadAddr - 1, LinuxLoadAddr + 0x3000} {
		if b := mustSlice(t, mem, a, 1)[0]; b != 0xAA {
			t.Errorf("byte at %#x = %#x, want untouched 0xaa", a, b)
		}
	}
}

func TestLinuxPrefAddress(t *testing.T) {
	o := defaultBz()
	o.prefAddress = 0x1000000
	img := o.build()
	for _, tc := range []struct {
		ram      uint64
		wantLoad uint64
	}{
		{64 << 20, 0x1000000},
	} {
		mem := newMem(int(tc.ram))
		s, err := Linux(mem, img, nil, "", LinuxConfig{})
		if err != nil {
			t.Fatalf("Linux(RAM %#x) = %v", tc.ram, err)
		}
		if got := mustSlice(t, mem, tc.wantLoad, 0x3000); !bytes.Equal(got, img[0xA00:]) {
			t.Errorf("RAM %#x: kernel not at pref_address %#x", tc.ram, tc.wantLoad)
		}
		checkLinuxState(t, mem, s, tc.wantLoad)
		bp := mustSlice(t, mem, LinuxBootParams, bpSize)
		if ri, rs := binary.LittleEndian.Uint32(bp[hdrRamdiskImage:]), binary.LittleEndian.Uint32(bp[hdrRamdiskSize:]); ri != 0 || rs != 0 {
			t.Errorf("no initrd: ramdisk_image, ramdisk_size = %#x, %#x, want 0, 0", ri, rs)
		}
		if got := binary.LittleEndian.Uint64(bp[bpACPIRSDPAddr:]); got != 0 {
			t.Errorf("acpi_rsdp_addr = %#x, want 0 when none is given", got)
		}
	}
}

func TestLinuxErrors(t *testing.T) {
	const ram = 32 << 20
	mod := func(f func(*bzOpts)) []byte {
		o := defaultBz()
		f(&o)
		return o.build()
	}
	patch := func(off int, b ...byte) []byte {
		img := defaultBz().build()
		copy(img[off:], b)
		return img
	}
	for _, tc := range []struct {
		name    string
		img     []byte
		initrd  int
		cmdline string
		cfg     LinuxConfig
		want    error
		text    string
	}{
		{name: "empty", img: nil, want: ErrNotBzImage},
		{name: "ELF", img: simpleELF32(), want: ErrNotBzImage, text: "boot_flag"},
		{name: "no HdrS", img: patch(hdrMagic, 'H', 'd', 'r', 'X'), want: ErrNotBzImage, text: "HdrS"},
		{name: "protocol 2.11", img: mod(func(o *bzOpts) { o.version = 0x020B }), want: ErrUnsupported, text: "2.11"},
		{name: "no 64-bit entry", img: mod(func(o *bzOpts) { o.xloadflags = 0 }), want: ErrUnsupported, text: "XLF_KERNEL_64"},
		{name: "zImage", img: mod(func(o *bzOpts) { o.loadflags = 0 }), want: ErrUnsupported, text: "LOADED_HIGH"},
		{name: "syssize beyond the file", img: patch(hdrSyssize, 0xFF, 0xFF), want: ErrBadImage, text: "syssize"},
		{name: "setup beyond the file", img: patch(hdrSetupSects, 200), want: ErrBadImage, text: "setup sectors"},
		{name: "short header", img: patch(hdrJump+1, 0x20), want: ErrBadImage, text: "header ends"},
		{name: "alignment", img: mod(func(o *bzOpts) { o.kernelAlignment = 0x3000 }), want: ErrBadImage, text: "power of two"},
		{name: "too big for RAM", img: mod(func(o *bzOpts) { o.initSize = 40 << 20 }), want: ErrNoFit, text: "init_size"},
		{name: "fixed kernel at pref_address", img: mod(func(o *bzOpts) { o.relocatable = false; o.prefAddress = 31 << 20 }), want: ErrNoFit, text: "0x1f00000"},
		{name: "initrd beyond initrd_addr_max", img: mod(func(o *bzOpts) { o.initrdAddrMax = 0x7FFFFF }), initrd: 4 << 20, want: ErrNoFit, text: "initrd_addr_max 0x7fffff"},
		{name: "initrd too big", img: defaultBz().build(), initrd: 30 << 20, want: ErrNoFit, text: "initrd"},
		{name: "cmdline too long", img: mod(func(o *bzOpts) { o.cmdlineSize = 10 }), cmdline: "console=ttyS0", want: ErrCmdlineTooLong, text: "at most 10"},
		{name: "e820 overlap", img: defaultBz().build(), cfg: LinuxConfig{E820: []E820Entry{{0, ram, E820RAM}, {0xA0000, 0x1000, E820Reserved}}}, want: ErrBadMemoryMap, text: "overlaps"},
		{name: "e820 beyond RAM", img: defaultBz().build(), cfg: LinuxConfig{E820: PCMemoryMap(ram * 2)}, want: ErrBadMemoryMap, text: "beyond guest memory"},
		{name: "no low RAM", img: defaultBz().build(), cfg: LinuxConfig{E820: []E820Entry{{highMemory, ram - highMemory, E820RAM}}}, want: ErrNoFit, text: "boot structures"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := newMem(ram)
			s, err := Linux(mem, tc.img, bytes.Repeat([]byte{1}, tc.initrd), tc.cmdline, tc.cfg)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("Linux() = %+v, %v, want an error wrapping %v and containing %q", s, err, tc.want, tc.text)
			}
			if s != nil {
				t.Errorf("Linux() returned a state with error %v", err)
			}
			if !bytes.Equal(mem.Host, bytes.Repeat([]byte{0xAA}, ram)) {
				t.Errorf("Linux() = %v, but guest memory was written", err)
			}
		})
	}
}

func TestLinuxInitrdBelowKernel(t *testing.T) {
	// The only RAM clear of the kernel is below it: pref_address near the top of RAM.
	o := defaultBz()
	o.relocatable = false
	o.prefAddress = 28 << 20
	mem := newMem(32 << 20)
	if _, err := Linux(mem, o.build(), make([]byte, 1<<20), "", LinuxConfig{}); err != nil {
		t.Fatalf("Linux() = %v", err)
	}
	bp := mustSlice(t, mem, LinuxBootParams, bpSize)
	ri := binary.LittleEndian.Uint32(bp[hdrRamdiskImage:])
	if ri != 27<<20 {
		t.Errorf("ramdisk_image = %#x, want %#x (just below the kernel)", ri, 27<<20)
	}
}

// TestLinuxDebian loads Debian's stock kernel and initramfs.
func TestLinuxDebian(t *testing.T) {
	kernels, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(kernels) == 0 {
		t.Fatal("no /boot/vmlinuz-*: install Debian's kernel with `apt-get install -y linux-image-amd64`")
	}
	slices.Sort(kernels)
	path := kernels[len(kernels)-1]
	img, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	initrd, err := os.ReadFile(strings.Replace(path, "vmlinuz-", "initrd.img-", 1))
	if err != nil {
		t.Logf("no initramfs beside %s (%v); loading a synthetic one", path, err)
		initrd = bytes.Repeat([]byte("070701"), 1<<18)
	}
	const ram = 512 << 20
	mem := &hv.Memory{Host: make([]byte, ram)}
	lapic := E820Entry{0xFEE00000, 0x100000, E820Reserved}
	cfg := LinuxConfig{E820: append(PCMemoryMap(ram), E820Entry{0xFEC00000, 0x1000, E820Reserved}, lapic), ACPIRSDP: 0xE0000}
	s, err := Linux(mem, img, initrd, "console=ttyS0 panic=-1", cfg)
	if err != nil {
		t.Fatalf("Linux(%s) = %v", path, err)
	}
	h, err := parseSetupHeader(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: protocol %d.%02d, %#x bytes of protected-mode kernel, pref_address %#x, init_size %#x, initrd %d bytes",
		path, h.version>>8, h.version&0xFF, len(h.kernel), h.prefAddress, h.initSize, len(initrd))
	load := s.RIP - 0x200
	if h.prefAddress != 0 && load != h.prefAddress {
		t.Errorf("load address %#x, want pref_address %#x (it fits in %d MiB)", load, h.prefAddress, ram>>20)
	}
	if got := mustSlice(t, mem, load, uint64(len(h.kernel))); !bytes.Equal(got, h.kernel) {
		t.Errorf("kernel at %#x differs from the image", load)
	}
	checkLinuxState(t, mem, s, load)
	// RIP is startup_64 (arch/x86/boot/compressed/head_64.S), which starts with CLD; CLI.
	if got := mustSlice(t, mem, s.RIP, 2); !bytes.Equal(got, []byte{0xFC, 0xFA}) {
		t.Errorf("bytes at RIP %#x = % x, want fc fa (cld; cli: startup_64)", s.RIP, got)
	}
	bp := mustSlice(t, mem, LinuxBootParams, bpSize)
	if v := binary.LittleEndian.Uint16(bp[hdrVersion:]); v != h.version || bp[hdrTypeOfLoader] != 0xFF {
		t.Errorf("boot_params version %#x, type_of_loader %#x, want %#x, 0xff", v, bp[hdrTypeOfLoader], h.version)
	}
	ri, rs := uint64(binary.LittleEndian.Uint32(bp[hdrRamdiskImage:])), uint64(binary.LittleEndian.Uint32(bp[hdrRamdiskSize:]))
	if rs != uint64(len(initrd)) || ri < load+uint64(h.initSize) || ri+rs > uint64(h.initrdAddrMax)+1 || ri+rs > ram {
		t.Errorf("initrd at %#x (%#x bytes): want above the kernel's %#x+%#x, below initrd_addr_max %#x and RAM", ri, rs, load, h.initSize, h.initrdAddrMax)
	}
	if got := mustSlice(t, mem, ri, rs); !bytes.Equal(got, initrd) {
		t.Errorf("initrd contents differ")
	}
	if got := e820(t, bp); len(got) != 5 || got[4] != lapic {
		t.Errorf("e820 = %+v, want RAM, legacy hole, RAM, IOAPIC, LAPIC", got)
	}
}

// TestLinuxWithACPITables puts the ACPI tables in the legacy BIOS area, reserved in the e820
// map, and checks that boot_params leads the guest to them intact after the kernel is loaded.
func TestLinuxWithACPITables(t *testing.T) {
	const ram = 64 << 20
	mem := &hv.Memory{Host: make([]byte, ram)}
	rsdp, err := acpitab.Build(mem, 0xE0000, acpitab.Config{CPUs: 2, PM1aEvent: 0x600, PM1aControl: 0x604})
	if err != nil {
		t.Fatalf("acpitab.Build() = %v", err)
	}
	cfg := LinuxConfig{
		E820:     PCMemoryMap(ram, E820Entry{acpitab.IOAPICAddress, 0x1000, E820Reserved}, E820Entry{acpitab.LocalAPICAddress, 0x1000, E820Reserved}),
		ACPIRSDP: rsdp,
	}
	if _, err := Linux(mem, defaultBz().build(), []byte("initrd"), "console=ttyS0", cfg); err != nil {
		t.Fatalf("Linux() = %v", err)
	}
	bp := mustSlice(t, mem, LinuxBootParams, bpSize)
	addr := binary.LittleEndian.Uint64(bp[bpACPIRSDPAddr:])
	tabs, err := acpi.Load(physMem{mem}, addr)
	if err != nil {
		t.Fatalf("acpi.Load(acpi_rsdp_addr %#x) = %v", addr, err)
	}
	if err := tabs.Err(); err != nil {
		t.Errorf("tables damaged: %v", err)
	}
	if m, err := tabs.MADT(); err != nil || len(m.LocalAPICs) != 2 {
		t.Errorf("MADT() = %+v, %v, want 2 Local APICs", m, err)
	}
	for _, e := range e820(t, bp) {
		if e.Type == E820RAM && e.Addr <= addr && addr < e.end() {
			t.Errorf("RSDP at %#x lies in e820 RAM %+v", addr, e)
		}
	}
}

// physMem reads guest memory for arch/acpi.
type physMem struct{ m *hv.Memory }

func (p physMem) ReadPhys(addr uint64, b []byte) error {
	_, err := p.m.ReadAt(b, int64(addr))
	return err
}
