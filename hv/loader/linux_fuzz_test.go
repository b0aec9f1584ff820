package loader

import (
	"bytes"
	"errors"
	"testing"

	"github.com/godwit-hv/godwit/hv"
)

// FuzzLinux feeds arbitrary images, initrd sizes and command lines to Linux. It must not
// panic; an error must wrap a sentinel error and leave guest memory untouched; a success must
// return a 64-bit entry state whose RIP and RSI lie in RAM.
func FuzzLinux(f *testing.F) {
	o := defaultBz()
	o.initSize = 0x100000 // fits fuzzRAM from 2 MiB
	f.Add(o.build(), uint16(100), "console=ttyS0")
	o = defaultBz()
	o.prefAddress = 0x200000
	o.relocatable = false
	f.Add(o.build(), uint16(0), "")
	o = defaultBz()
	o.initSize = 0
	o.setupSects = 0
	f.Add(o.build(), uint16(65535), "x")
	f.Add(simpleELF32(), uint16(1), "")

	mem := &hv.Memory{Host: make([]byte, fuzzRAM)}
	zero := make([]byte, fuzzRAM)
	f.Fuzz(func(t *testing.T, kernel []byte, initrdSize uint16, cmdline string) {
		clear(mem.Host)
		s, err := Linux(mem, kernel, bytes.Repeat([]byte{1}, int(initrdSize)), cmdline, LinuxConfig{})
		if err != nil {
			if s != nil {
				t.Errorf("Linux() = %+v, %v: state with an error", s, err)
			}
			known := false
			for _, e := range []error{ErrNotBzImage, ErrUnsupported, ErrBadImage, ErrNoFit, ErrCmdlineTooLong, ErrBadMemoryMap} {
				known = known || errors.Is(err, e)
			}
			if !known {
				t.Errorf("Linux() error %v wraps no sentinel error", err)
			}
			if !bytes.Equal(mem.Host, zero) {
				t.Errorf("Linux() = %v, but guest memory was written", err)
			}
			return
		}
		if s.RIP >= fuzzRAM || s.GPR[hv.RSI] != LinuxBootParams {
			t.Errorf("Linux() state: RIP %#x RSI %#x", s.RIP, s.GPR[hv.RSI])
		}
		if got, err := hv.Translate(mem, s, s.RIP); err != nil || got != s.RIP {
			t.Errorf("Translate(RIP %#x) = %#x, %v", s.RIP, got, err)
		}
	})
}
