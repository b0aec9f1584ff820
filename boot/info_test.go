package boot_test

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/boot"
)

// physMem is a synthetic physical memory for the parsers: addresses are offsets into b.
type physMem struct{ b []byte }

func newPhys(size int) *physMem { return &physMem{make([]byte, size)} }

func (p *physMem) u32(at uint64, v uint32) { binary.LittleEndian.PutUint32(p.b[at:], v) }
func (p *physMem) u64(at uint64, v uint64) { binary.LittleEndian.PutUint64(p.b[at:], v) }

// str writes s NUL-terminated at at.
func (p *physMem) str(at uint64, s string) { copy(p.b[at:], s+"\x00") }

// Multiboot v1 information structure, as a loader writes it.
// Multiboot Specification 0.6.96, 3.3 "Boot information format".
const (
	mbiFlags      = 0
	mbiMemLower   = 4
	mbiMemUpper   = 8
	mbiCmdline    = 16
	mbiModsCount  = 20
	mbiModsAddr   = 24
	mbiMmapLength = 44
	mbiMmapAddr   = 48
	mbiLoaderName = 64

	mbiFlagMem     = 1 << 0
	mbiFlagCmdline = 1 << 2
	mbiFlagMods    = 1 << 3
	mbiFlagMmap    = 1 << 6
	mbiFlagName    = 1 << 9
)

// mmapEntry is a multiboot memory-map entry; size is the value of its size field (20 for the
// standard entry; the next entry starts size+4 bytes further on).
type mmapEntry struct {
	size         uint32
	base, length uint64
	typ          uint32
}

// putMmap writes entries at at and returns the total length in bytes.
func (p *physMem) putMmap(at uint64, es []mmapEntry) uint32 {
	off := at
	for _, e := range es {
		p.u32(off, e.size)
		p.u64(off+4, e.base)
		p.u64(off+12, e.length)
		p.u32(off+20, e.typ)
		off += uint64(max(e.size, 20)) + 4
	}
	return uint32(off - at)
}

// putMbMods writes multiboot module entries (mod_start, mod_end, string, reserved).
func (p *physMem) putMbMods(at uint64, mods [][3]uint32) {
	for i, m := range mods {
		e := at + uint64(i)*16
		p.u32(e, m[0])
		p.u32(e+4, m[1])
		p.u32(e+8, m[2])
	}
}

// mod is a module as the test expects Info to describe it.
type mod struct {
	Start, End uint64
	Cmdline    string
}

// summary is the comparable part of an Info.
type summary struct {
	Ok         bool
	Loader     int
	Cmdline    string
	Name       string
	Mem        []boot.MemRange
	Mods       []mod
	RSDP       uint64
	Dropped    int
	NMem       int // only compared when Mem is nil and NMem is set (long lists)
	NMods      int
	compareLen bool
}

func summarize(ok bool, in *boot.Info) summary {
	s := summary{Ok: ok, Loader: in.Loader, Cmdline: in.CmdlineString(), Name: in.Name(), RSDP: in.RSDP,
		Dropped: in.Dropped, NMem: in.NMem, NMods: in.NMods}
	for i := 0; i < in.NMem; i++ {
		s.Mem = append(s.Mem, in.Mem[i])
	}
	for i := 0; i < in.NMods; i++ {
		s.Mods = append(s.Mods, mod{in.Mods[i].Start, in.Mods[i].End, in.ModCmdline(i)})
	}
	return s
}

// diff describes how got differs from want; counts-only wants (compareLen) compare NMem,
// NMods and the scalar fields and ignore the lists.
func diff(got, want summary) string {
	var d []string
	if got.Ok != want.Ok {
		d = append(d, fmt.Sprintf("ok = %v, want %v", got.Ok, want.Ok))
	}
	if got.Loader != want.Loader {
		d = append(d, fmt.Sprintf("Loader = %d, want %d", got.Loader, want.Loader))
	}
	if got.Cmdline != want.Cmdline {
		d = append(d, fmt.Sprintf("Cmdline = %q, want %q", got.Cmdline, want.Cmdline))
	}
	if got.Name != want.Name {
		d = append(d, fmt.Sprintf("Name = %q, want %q", got.Name, want.Name))
	}
	if got.RSDP != want.RSDP {
		d = append(d, fmt.Sprintf("RSDP = %#x, want %#x", got.RSDP, want.RSDP))
	}
	if got.Dropped != want.Dropped {
		d = append(d, fmt.Sprintf("Dropped = %d, want %d", got.Dropped, want.Dropped))
	}
	if want.compareLen {
		if got.NMem != want.NMem {
			d = append(d, fmt.Sprintf("NMem = %d, want %d", got.NMem, want.NMem))
		}
		if got.NMods != want.NMods {
			d = append(d, fmt.Sprintf("NMods = %d, want %d", got.NMods, want.NMods))
		}
	} else {
		if !reflect.DeepEqual(got.Mem, want.Mem) {
			d = append(d, fmt.Sprintf("Mem = %+v, want %+v", got.Mem, want.Mem))
		}
		if !reflect.DeepEqual(got.Mods, want.Mods) {
			d = append(d, fmt.Sprintf("Mods = %+v, want %+v", got.Mods, want.Mods))
		}
	}
	return strings.Join(d, "\n\t")
}

// within runs parse and fails the test if it does not return within a second: the parsers
// run before anything else at boot, and on malformed input must neither loop forever nor
// spin through billions of entries (a bad count of 2^32-1 takes seconds on a fast host and
// minutes under emulation).
func within(t *testing.T, parse func() (bool, *boot.Info)) (bool, *boot.Info) {
	t.Helper()
	type result struct {
		ok bool
		in *boot.Info
	}
	done := make(chan result, 1)
	go func() {
		ok, in := parse()
		done <- result{ok, in}
	}()
	select {
	case r := <-done:
		return r.ok, r.in
	case <-time.After(time.Second):
		t.Fatal("parser did not return within 1s")
		return false, nil
	}
}

func TestParseMultiboot(t *testing.T) {
	const at = 0x100 // where the info structure sits
	long := strings.Repeat("x", boot.MaxCmdline+10)
	tests := []struct {
		name  string
		size  int
		at    uint64
		build func(p *physMem)
		want  summary
	}{
		{
			name: "full: cmdline, loader name, memory map, modules",
			build: func(p *physMem) {
				p.u32(at+mbiFlags, mbiFlagCmdline|mbiFlagName|mbiFlagMmap|mbiFlagMods|mbiFlagMem)
				p.u32(at+mbiMemLower, 639) // ignored: the memory map wins
				p.u32(at+mbiMemUpper, 1<<20)
				p.u32(at+mbiCmdline, 0x200)
				p.str(0x200, "/boot/godwit godwit.selftest=1")
				p.u32(at+mbiLoaderName, 0x280)
				p.str(0x280, "GRUB 2.12")
				n := p.putMmap(0x300, []mmapEntry{
					{20, 0, 0x9FC00, boot.MemAvailable},
					{20, 0x9FC00, 0x400, boot.MemReserved},
					{20, 0xF0000, 0, boot.MemReserved},            // empty: skipped
					{28, 0x100000, 0x3FEE0000, boot.MemAvailable}, // larger entry: next is 32 bytes on
					{20, 0x3FFE0000, 0x20000, boot.MemACPI},
					{20, 0xFEC00000, 0x1000, boot.MemNVS},
				})
				p.u32(at+mbiMmapAddr, 0x300)
				p.u32(at+mbiMmapLength, n)
				p.putMbMods(0x500, [][3]uint32{
					{0x200000, 0x201000, 0x600},
					{0x300000, 0x300800, 0},         // no command line
					{0x400000, 0x3FF000, 0x640},     // end before start: empty module
					{0x500000, 0x500010, 0x6000000}, // command line out of range: empty
				})
				p.str(0x600, "/initrd.cpio rdinit=/init")
				p.str(0x640, "/empty")
				p.u32(at+mbiModsAddr, 0x500)
				p.u32(at+mbiModsCount, 4)
			},
			want: summary{
				Ok: true, Loader: boot.LoaderMultiboot,
				Cmdline: "/boot/godwit godwit.selftest=1", Name: "GRUB 2.12",
				Mem: []boot.MemRange{
					{0, 0x9FC00, boot.MemAvailable},
					{0x9FC00, 0x400, boot.MemReserved},
					{0x100000, 0x3FEE0000, boot.MemAvailable},
					{0x3FFE0000, 0x20000, boot.MemACPI},
					{0xFEC00000, 0x1000, boot.MemNVS},
				},
				Mods: []mod{
					{0x200000, 0x201000, "/initrd.cpio rdinit=/init"},
					{0x300000, 0x300800, ""},
					{0x400000, 0x400000, "/empty"},
					{0x500000, 0x500010, ""},
				},
			},
		},
		{
			name: "flags clear: fields are ignored",
			build: func(p *physMem) {
				p.u32(at+mbiCmdline, 0x200)
				p.str(0x200, "ignored")
				p.u32(at+mbiMemLower, 639)
				p.u32(at+mbiMemUpper, 1<<20)
			},
			want: summary{Ok: true, Loader: boot.LoaderMultiboot},
		},
		{
			name: "mem_lower/mem_upper fallback without a memory map",
			build: func(p *physMem) {
				p.u32(at+mbiFlags, mbiFlagMem)
				p.u32(at+mbiMemLower, 639)
				p.u32(at+mbiMemUpper, 1047552) // KiB from 1 MiB: 1 GiB - 1 MiB
			},
			want: summary{Ok: true, Loader: boot.LoaderMultiboot, Mem: []boot.MemRange{
				{0, 639 << 10, boot.MemAvailable},
				{1 << 20, 1047552 << 10, boot.MemAvailable},
			}},
		},
		{
			name: "malformed entry with size 0 ends the map",
			build: func(p *physMem) {
				p.u32(at+mbiFlags, mbiFlagMmap)
				p.putMmap(0x300, []mmapEntry{
					{20, 0, 0x9FC00, boot.MemAvailable},
					{0, 0x100000, 0x1000000, boot.MemAvailable},
					{20, 0x2000000, 0x1000, boot.MemReserved},
				})
				p.u32(at+mbiMmapAddr, 0x300)
				p.u32(at+mbiMmapLength, 3*24)
			},
			want: summary{Ok: true, Loader: boot.LoaderMultiboot, Mem: []boot.MemRange{
				{0, 0x9FC00, boot.MemAvailable},
				{0x100000, 0x1000000, boot.MemAvailable},
			}},
		},
		{
			name: "malformed entry with size 19 ends the map",
			build: func(p *physMem) {
				p.u32(at+mbiFlags, mbiFlagMmap)
				p.putMmap(0x300, []mmapEntry{{19, 0x100000, 0x1000, boot.MemAvailable}})
				p.u32(at+mbiMmapAddr, 0x300)
				p.u32(at+mbiMmapLength, 0xFFFF)
			},
			want: summary{Ok: true, Loader: boot.LoaderMultiboot, Mem: []boot.MemRange{
				{0x100000, 0x1000, boot.MemAvailable},
			}},
		},
		{
			name: "map length cuts the last entry short",
			build: func(p *physMem) {
				p.u32(at+mbiFlags, mbiFlagMmap)
				p.putMmap(0x300, []mmapEntry{
					{20, 0, 0x1000, boot.MemAvailable},
					{20, 0x1000, 0x1000, boot.MemReserved},
				})
				p.u32(at+mbiMmapAddr, 0x300)
				p.u32(at+mbiMmapLength, 24+23)
			},
			want: summary{Ok: true, Loader: boot.LoaderMultiboot, Mem: []boot.MemRange{{0, 0x1000, boot.MemAvailable}}},
		},
		{
			name: "memory map running off the end of memory",
			size: 0x300 + 24 + 10,
			build: func(p *physMem) {
				p.u32(at+mbiFlags, mbiFlagMmap)
				p.putMmap(0x300, []mmapEntry{{20, 0, 0x1000, boot.MemAvailable}})
				p.u32(0x300+24, 20) // the second entry's size field; the rest is past the end
				p.u32(at+mbiMmapAddr, 0x300)
				p.u32(at+mbiMmapLength, 0x1000)
			},
			want: summary{Ok: true, Loader: boot.LoaderMultiboot, Mem: []boot.MemRange{{0, 0x1000, boot.MemAvailable}}},
		},
		{
			name: "more memory-map entries than MaxMem",
			size: 0x10000,
			build: func(p *physMem) {
				var es []mmapEntry
				for i := 0; i < boot.MaxMem+5; i++ {
					es = append(es, mmapEntry{20, uint64(i) << 20, 1 << 20, boot.MemAvailable})
				}
				p.u32(at+mbiFlags, mbiFlagMmap)
				p.u32(at+mbiMmapAddr, 0x1000)
				p.u32(at+mbiMmapLength, p.putMmap(0x1000, es))
			},
			want: summary{Ok: true, Loader: boot.LoaderMultiboot, Dropped: 5, NMem: boot.MaxMem, compareLen: true},
		},
		{
			name: "more modules than MaxModules",
			size: 0x10000,
			build: func(p *physMem) {
				var ms [][3]uint32
				for i := 0; i < boot.MaxModules+3; i++ {
					ms = append(ms, [3]uint32{uint32(i) << 20, uint32(i)<<20 + 0x1000, 0})
				}
				p.putMbMods(0x1000, ms)
				p.u32(at+mbiFlags, mbiFlagMods)
				p.u32(at+mbiModsAddr, 0x1000)
				p.u32(at+mbiModsCount, boot.MaxModules+3)
			},
			want: summary{Ok: true, Loader: boot.LoaderMultiboot, Dropped: 3, NMods: boot.MaxModules, compareLen: true},
		},
		{
			name: "module table running off the end of memory",
			size: 0x1000,
			build: func(p *physMem) {
				p.putMbMods(0x1000-40, [][3]uint32{{0x200000, 0x201000, 0}, {0x300000, 0x301000, 0}})
				p.u32(at+mbiFlags, mbiFlagMods)
				p.u32(at+mbiModsAddr, 0x1000-40)
				p.u32(at+mbiModsCount, 4) // entries 2 and 3 are past the end
			},
			want: summary{Ok: true, Loader: boot.LoaderMultiboot, Dropped: 2,
				Mods: []mod{{0x200000, 0x201000, ""}, {0x300000, 0x301000, ""}}},
		},
		{
			name: "pointers out of range",
			build: func(p *physMem) {
				p.u32(at+mbiFlags, mbiFlagCmdline|mbiFlagName|mbiFlagMmap|mbiFlagMods)
				p.u32(at+mbiCmdline, 0xFFFFFFFF)
				p.u32(at+mbiLoaderName, 0x80000000)
				p.u32(at+mbiMmapAddr, 0xFFFFFFF0)
				p.u32(at+mbiMmapLength, 0xFFFFFFFF)
				p.u32(at+mbiModsAddr, 0xFFFFFFF8)
				p.u32(at+mbiModsCount, 3)
			},
			want: summary{Ok: true, Loader: boot.LoaderMultiboot, Dropped: 3},
		},
		{
			name: "huge module count with the table out of range",
			build: func(p *physMem) {
				p.u32(at+mbiFlags, mbiFlagMods)
				p.u32(at+mbiModsAddr, 0x10000)
				p.u32(at+mbiModsCount, 0xFFFFFFFF)
			},
			want: summary{Ok: true, Loader: boot.LoaderMultiboot, Dropped: 0xFFFFFFFF},
		},
		{
			name: "command line without a NUL at the end of memory",
			size: 0x208,
			build: func(p *physMem) {
				p.u32(at+mbiFlags, mbiFlagCmdline)
				p.u32(at+mbiCmdline, 0x200)
				copy(p.b[0x200:], "abcdefgh")
			},
			want: summary{Ok: true, Loader: boot.LoaderMultiboot, Cmdline: "abcdefgh"},
		},
		{
			name: "long strings are truncated",
			size: 0x4000,
			build: func(p *physMem) {
				p.u32(at+mbiFlags, mbiFlagCmdline|mbiFlagName|mbiFlagMods)
				p.u32(at+mbiCmdline, 0x1000)
				p.str(0x1000, long)
				p.u32(at+mbiLoaderName, 0x2000)
				p.str(0x2000, long)
				p.putMbMods(0x3000, [][3]uint32{{0x200000, 0x201000, 0x1000}})
				p.u32(at+mbiModsAddr, 0x3000)
				p.u32(at+mbiModsCount, 1)
			},
			want: summary{Ok: true, Loader: boot.LoaderMultiboot,
				Cmdline: long[:boot.MaxCmdline], Name: long[:boot.MaxLoaderName],
				Mods: []mod{{0x200000, 0x201000, long[:boot.MaxModCmdline]}}},
		},
		{
			name: "structure cut off by the end of memory",
			size: 0x100 + 87,
			want: summary{Ok: false, Loader: boot.LoaderMultiboot},
		},
		{
			name: "structure address far out of range",
			at:   0xFFFFFFFFFFFFFFF0,
			want: summary{Ok: false, Loader: boot.LoaderMultiboot},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := tt.size
			if size == 0 {
				size = 0x1000
			}
			p := newPhys(size)
			if tt.build != nil {
				tt.build(p)
			}
			where := tt.at
			if where == 0 {
				where = at
			}
			ok, in := within(t, func() (bool, *boot.Info) {
				in := new(boot.Info)
				in.Dropped = 99 // must be reset
				return boot.ParseMultiboot(boot.MemOf(p.b), where, in), in
			})
			if d := diff(summarize(ok, in), tt.want); d != "" {
				t.Errorf("ParseMultiboot(%#x):\n\t%s", where, d)
			}
		})
	}
}

// PVH struct hvm_start_info and its tables. Xen public/arch-x86/hvm/start_info.h.
const (
	pvhMagicOff    = 0
	pvhVersionOff  = 4
	pvhNrModules   = 12
	pvhModlist     = 16
	pvhCmdline     = 24
	pvhRSDPOff     = 32
	pvhMemmap      = 40
	pvhMemmapCount = 48
)

func (p *physMem) putPVHMods(at uint64, mods [][3]uint64) {
	for i, m := range mods {
		e := at + uint64(i)*32
		p.u64(e, m[0])    // paddr
		p.u64(e+8, m[1])  // size
		p.u64(e+16, m[2]) // cmdline_paddr
	}
}

func (p *physMem) putPVHMemmap(at uint64, es []boot.MemRange) {
	for i, e := range es {
		o := at + uint64(i)*24
		p.u64(o, e.Base)
		p.u64(o+8, e.Length)
		p.u32(o+16, e.Type)
	}
}

func TestParsePVH(t *testing.T) {
	const at = 0x100
	memmap := []boot.MemRange{
		{0, 0x9FC00, boot.MemAvailable},
		{0x9FC00, 0x400, boot.MemReserved},
		{0x100000, 0x3FEE0000, boot.MemAvailable},
		{0xFFFC0000, 0x40000, boot.MemReserved},
	}
	header := func(p *physMem, version uint32) {
		p.u32(at+pvhMagicOff, boot.PVHMagic)
		p.u32(at+pvhVersionOff, version)
		p.u64(at+pvhCmdline, 0x200)
		p.str(0x200, "godwit.strace=1")
		p.u64(at+pvhRSDPOff, 0xF5A40)
		p.putPVHMods(0x300, [][3]uint64{{0x1000000, 0x2000, 0x380}, {0x2000000, 0x10, 0}})
		p.str(0x380, "initrd")
		p.u64(at+pvhModlist, 0x300)
		p.u32(at+pvhNrModules, 2)
		p.putPVHMemmap(0x400, memmap)
		p.u64(at+pvhMemmap, 0x400)
		p.u32(at+pvhMemmapCount, uint32(len(memmap)))
	}
	mods := []mod{{0x1000000, 0x1002000, "initrd"}, {0x2000000, 0x2000010, ""}}
	tests := []struct {
		name  string
		size  int
		build func(p *physMem)
		want  summary
	}{
		{
			name:  "version 1: command line, RSDP, modules, memory map",
			build: func(p *physMem) { header(p, 1) },
			want: summary{Ok: true, Loader: boot.LoaderPVH, Cmdline: "godwit.strace=1", RSDP: 0xF5A40,
				Mods: mods, Mem: memmap},
		},
		{
			name:  "version 0 has no memory map",
			build: func(p *physMem) { header(p, 0) },
			want: summary{Ok: true, Loader: boot.LoaderPVH, Cmdline: "godwit.strace=1", RSDP: 0xF5A40,
				Mods: mods},
		},
		{
			name: "version 1 structure cut off before the memory-map fields",
			size: at + 40,
			build: func(p *physMem) {
				p.u32(at+pvhMagicOff, boot.PVHMagic)
				p.u32(at+pvhVersionOff, 1)
			},
			want: summary{Ok: true, Loader: boot.LoaderPVH},
		},
		{
			name: "bad magic",
			build: func(p *physMem) {
				header(p, 1)
				p.u32(at+pvhMagicOff, boot.MultibootMagic)
			},
			want: summary{Ok: false, Loader: boot.LoaderPVH},
		},
		{
			name:  "structure cut off by the end of memory",
			size:  at + 39,
			build: func(p *physMem) { p.u32(at+pvhMagicOff, boot.PVHMagic) },
			want:  summary{Ok: false, Loader: boot.LoaderPVH},
		},
		{
			name: "no command line",
			build: func(p *physMem) {
				header(p, 1)
				p.u64(at+pvhCmdline, 0)
			},
			want: summary{Ok: true, Loader: boot.LoaderPVH, RSDP: 0xF5A40, Mods: mods, Mem: memmap},
		},
		{
			name: "more memory-map entries than MaxMem",
			size: 0x10000,
			build: func(p *physMem) {
				header(p, 1)
				var es []boot.MemRange
				for i := 0; i < boot.MaxMem+7; i++ {
					es = append(es, boot.MemRange{Base: uint64(i) << 20, Length: 1 << 20, Type: boot.MemAvailable})
				}
				p.putPVHMemmap(0x1000, es)
				p.u64(at+pvhMemmap, 0x1000)
				p.u32(at+pvhMemmapCount, uint32(len(es)))
			},
			want: summary{Ok: true, Loader: boot.LoaderPVH, Cmdline: "godwit.strace=1", RSDP: 0xF5A40,
				Dropped: 7, NMem: boot.MaxMem, NMods: 2, compareLen: true},
		},
		{
			name: "more modules than MaxModules",
			size: 0x10000,
			build: func(p *physMem) {
				header(p, 0)
				var ms [][3]uint64
				for i := 0; i < boot.MaxModules+1; i++ {
					ms = append(ms, [3]uint64{uint64(i) << 20, 0x1000, 0})
				}
				p.putPVHMods(0x1000, ms)
				p.u64(at+pvhModlist, 0x1000)
				p.u32(at+pvhNrModules, uint32(len(ms)))
			},
			want: summary{Ok: true, Loader: boot.LoaderPVH, Cmdline: "godwit.strace=1", RSDP: 0xF5A40,
				Dropped: 1, NMods: boot.MaxModules, compareLen: true},
		},
		{
			name: "pointers out of range",
			build: func(p *physMem) {
				header(p, 1)
				p.u64(at+pvhCmdline, 1<<40)
				p.u64(at+pvhModlist, 0xFFFFFFFFFFFFFF00)
				p.u64(at+pvhMemmap, 1<<63)
			},
			want: summary{Ok: true, Loader: boot.LoaderPVH, RSDP: 0xF5A40, Dropped: 2 + len(memmap)},
		},
		{
			name: "huge counts with the tables out of range",
			build: func(p *physMem) {
				header(p, 1)
				p.u64(at+pvhModlist, 0x10000)
				p.u32(at+pvhNrModules, 0xFFFFFFFF)
				p.u64(at+pvhMemmap, 0x10000)
				p.u32(at+pvhMemmapCount, 0xFFFFFFFF)
			},
			want: summary{Ok: true, Loader: boot.LoaderPVH, Cmdline: "godwit.strace=1", RSDP: 0xF5A40, Dropped: 2 * 0xFFFFFFFF},
		},
		{
			// A table pointer near the top of the address space must not wrap around to
			// the bottom of memory and read what is there as entries.
			name: "table pointers that wrap around",
			build: func(p *physMem) {
				header(p, 1)
				p.putPVHMemmap(0, []boot.MemRange{{0xDEAD0000, 0x1000, boot.MemAvailable}})
				p.u64(at+pvhMemmap, ^uint64(0)-23) // entry 1 would be at address 0
				p.u32(at+pvhMemmapCount, 2)
				p.u64(at+pvhModlist, ^uint64(0)-31)
				p.u32(at+pvhNrModules, 2)
			},
			want: summary{Ok: true, Loader: boot.LoaderPVH, Cmdline: "godwit.strace=1", RSDP: 0xF5A40, Dropped: 4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			size := tt.size
			if size == 0 {
				size = 0x1000
			}
			p := newPhys(size)
			tt.build(p)
			ok, in := within(t, func() (bool, *boot.Info) {
				in := &boot.Info{NMem: 3, Dropped: 5} // stale contents must be cleared
				return boot.ParsePVH(boot.MemOf(p.b), at, in), in
			})
			if d := diff(summarize(ok, in), tt.want); d != "" {
				t.Errorf("ParsePVH(%#x):\n\t%s", uint64(at), d)
			}
		})
	}
}

func TestMemBounds(t *testing.T) {
	b := []byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 'h', 'i', 0, 'x', 'y', 'z'}
	m := boot.MemOf(b)
	const n = 16
	const top = ^uint64(0)
	okTests := []struct {
		at, n uint64
		want  bool
	}{
		{0, 0, true},
		{0, n, true},
		{0, n + 1, false},
		{n, 0, true},
		{n, 1, false},
		{n - 1, 1, true},
		{n + 1, 0, false},
		{1, top, false},
		{top, 2, false}, // at+n wraps to 1
		{top, 0, false},
	}
	for _, tt := range okTests {
		if got := m.Ok(tt.at, tt.n); got != tt.want {
			t.Errorf("Ok(%#x, %#x) = %v, want %v", tt.at, tt.n, got, tt.want)
		}
	}
	if got := (boot.Mem{}).Ok(0, 0); !got {
		t.Errorf("Mem{}.Ok(0, 0) = false, want true")
	}
	if got := boot.MemOf(nil).U32(0); got != 0 {
		t.Errorf("MemOf(nil).U32(0) = %#x, want 0", got)
	}

	u8Tests := []struct {
		at   uint64
		want uint8
	}{{0, 1}, {n - 1, 'z'}, {n, 0}, {top, 0}}
	for _, tt := range u8Tests {
		if got := m.U8(tt.at); got != tt.want {
			t.Errorf("U8(%#x) = %#x, want %#x", tt.at, got, tt.want)
		}
	}
	u32Tests := []struct {
		at   uint64
		want uint32
	}{{0, 0x04030201}, {1, 0x05040302}, {n - 4, 0x7A797800}, {n - 3, 0}, {n, 0}, {top - 1, 0}}
	for _, tt := range u32Tests {
		if got := m.U32(tt.at); got != tt.want {
			t.Errorf("U32(%#x) = %#x, want %#x", tt.at, got, tt.want)
		}
	}
	u64Tests := []struct {
		at   uint64
		want uint64
	}{{0, 0x0807060504030201}, {n - 8, 0x7A797800_69680A09}, {n - 7, 0}, {top - 3, 0}}
	for _, tt := range u64Tests {
		if got := m.U64(tt.at); got != tt.want {
			t.Errorf("U64(%#x) = %#x, want %#x", tt.at, got, tt.want)
		}
	}
	strTests := []struct {
		at   uint64
		dst  int
		want string
	}{
		{10, 8, "hi"},    // stops at the NUL
		{10, 1, "h"},     // truncated to dst
		{10, 0, ""},      // no room at all
		{13, 8, "xyz"},   // no NUL before the end of memory
		{n - 1, 8, "z"},  // last byte
		{n, 8, ""},       // just past the end
		{12, 8, ""},      // empty string
		{top, 8, ""},     // far out of range
		{top - 1, 8, ""}, // would wrap
	}
	for _, tt := range strTests {
		dst := make([]byte, tt.dst)
		k := m.CString(tt.at, dst)
		if got := string(dst[:k]); got != tt.want {
			t.Errorf("CString(%#x, [%d]byte) = %q, want %q", tt.at, tt.dst, got, tt.want)
		}
	}
}

func TestNames(t *testing.T) {
	loaders := map[int]string{boot.LoaderNone: "none", boot.LoaderMultiboot: "multiboot", boot.LoaderPVH: "pvh", 7: "none"}
	for l, want := range loaders {
		if got := boot.LoaderString(l); got != want {
			t.Errorf("LoaderString(%d) = %q, want %q", l, got, want)
		}
	}
	types := map[uint32]string{
		boot.MemAvailable: "available", boot.MemReserved: "reserved", boot.MemACPI: "ACPI reclaimable",
		boot.MemNVS: "ACPI NVS", boot.MemBad: "bad", 0: "unknown", 12: "unknown",
	}
	for ty, want := range types {
		if got := boot.MemTypeString(ty); got != want {
			t.Errorf("MemTypeString(%d) = %q, want %q", ty, got, want)
		}
	}
	r := boot.MemRange{Base: 0x100000, Length: 0x3000}
	if got := r.End(); got != 0x103000 {
		t.Errorf("MemRange{%#x, %#x}.End() = %#x, want %#x", r.Base, r.Length, got, 0x103000)
	}
}
