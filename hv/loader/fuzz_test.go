package loader

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/godwit-hv/godwit/hv"
)

const fuzzRAM = 4 << 20

// FuzzMultiboot feeds arbitrary images and command lines to Multiboot. It must not panic;
// an error must wrap one of the sentinel errors and leave guest memory untouched; a success
// must return the multiboot entry state pointing into RAM.
func FuzzMultiboot(f *testing.F) {
	f.Add(simpleELF32(), "console=ttyS0", uint16(0))
	f.Add(aoutImage(0), "", uint16(1))
	f.Add(aoutImage(0x40), "x", uint16(100))
	f.Add(buildELF(elfClass64, 0x100010, []testSeg{
		{vaddr: 0x100000, paddr: 0x100000, offset: 0x1000, data: code(mbHeader(HeaderMemoryInfo), 0x100), memsz: 0x2000},
		{vaddr: 0x300000, paddr: 0x300000, offset: 0x1100, data: []byte("data")},
	}), "a b c", uint16(3000))
	f.Add(mbHeader(HeaderMemoryInfo|HeaderAOutKludge, 0x100000, 0x100000, 0, 0, 0x100000), "", uint16(0))
	f.Add(mbHeader(HeaderVideoMode), "", uint16(0))

	mem := &hv.Memory{Host: make([]byte, fuzzRAM)}
	zero := make([]byte, fuzzRAM)
	f.Fuzz(func(t *testing.T, kernel []byte, cmdline string, modSize uint16) {
		clear(mem.Host)
		var mods []Module
		if modSize > 0 {
			mods = []Module{{Data: bytes.Repeat([]byte{1}, int(modSize)), Cmdline: cmdline}}
		}
		s, err := Multiboot(mem, kernel, cmdline, mods)
		if err != nil {
			if s != nil {
				t.Errorf("Multiboot() = %+v, %v: state with an error", s, err)
			}
			known := false
			for _, e := range []error{ErrNotMultiboot, ErrBadChecksum, ErrUnsupported, ErrBadImage, ErrNoFit} {
				known = known || errors.Is(err, e)
			}
			if !known {
				t.Errorf("Multiboot() error %v wraps no sentinel error", err)
			}
			if !bytes.Equal(mem.Host, zero) { // bytes.Equal: not instrumented, unlike a loop
				t.Errorf("Multiboot() = %v, but guest memory was written", err)
			}
			return
		}
		if s.GPR[hv.RAX] != BootMagic || s.RIP >= fuzzRAM || s.GPR[hv.RBX]+infoSize > fuzzRAM {
			t.Errorf("Multiboot() state: EAX %#x RIP %#x EBX %#x", s.GPR[hv.RAX], s.RIP, s.GPR[hv.RBX])
		}
		if flags := binary.LittleEndian.Uint32(mem.Host[s.GPR[hv.RBX]:]); flags&InfoMemoryMap == 0 {
			t.Errorf("info flags %#x: no memory map", flags)
		}
	})
}
