package loader

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/godwit-hv/godwit/hv"
)

// guestNames are the guests testdata/guests/Makefile builds.
var guestNames = []string{"hello", "longmode", "realmode", "oob", "triple", "garbage", "spin"}

// buildGuests builds the test guests into a temporary directory with their Makefile and
// returns the directory. It needs make and binutils (as, ld): without them it fails, with
// a hint, rather than skipping.
func buildGuests(t testing.TB) string {
	t.Helper()
	for _, tool := range []string{"make", "as", "ld"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: the test guests need make and GNU binutils (apt-get install make binutils)", tool)
		}
	}
	src, err := filepath.Abs("../../testdata/guests")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cmd := exec.Command("make", "-s", "-C", src, "OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd, err, b)
	}
	return out
}

// TestGuests loads each real guest and checks the result against the ELF file read with
// debug/elf: every PT_LOAD in place, the BSS zeroed, RIP at the entry, the command line in
// the boot information.
func TestGuests(t *testing.T) {
	dir := buildGuests(t)
	for _, name := range guestNames {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name+".elf")
			kernel, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			f, err := elf.NewFile(bytes.NewReader(kernel))
			if err != nil {
				t.Fatal(err)
			}
			if f.Class != elf.ELFCLASS32 || f.Machine != elf.EM_386 {
				t.Errorf("%s: class %v machine %v, want ELF32 i386 (QEMU's -kernel needs it)", name, f.Class, f.Machine)
			}
			h, err := findHeader(kernel)
			if err != nil {
				t.Fatalf("findHeader = %v", err)
			}
			if h.flags&HeaderMemoryInfo == 0 {
				t.Errorf("header flags %#x: want memory info (bit 1)", h.flags)
			}
			if wantAOut := name == "spin"; (h.flags&HeaderAOutKludge != 0) != wantAOut {
				t.Errorf("header flags %#x: a.out kludge %v, want %v", h.flags, !wantAOut, wantAOut)
			}

			mem := newMem(testRAM)
			s, err := Multiboot(mem, kernel, name+" godwit.test=1", []Module{{Data: []byte("mod"), Cmdline: "m"}})
			if err != nil {
				t.Fatalf("Multiboot(%s) = %v", name, err)
			}
			if s.RIP != f.Entry {
				t.Errorf("RIP = %#x, want the ELF entry %#x", s.RIP, f.Entry)
			}
			for _, p := range f.Progs {
				if p.Type != elf.PT_LOAD {
					continue
				}
				got := mustSlice(t, mem, p.Paddr, p.Memsz)
				want := make([]byte, p.Memsz)
				if _, err := p.ReadAt(want[:p.Filesz], 0); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("PT_LOAD at %#x (%#x/%#x bytes) differs from the file plus zeroed BSS", p.Paddr, p.Filesz, p.Memsz)
				}
			}
			d := decodeInfo(t, mem, s.GPR[hv.RBX])
			if d.cmdline != name+" godwit.test=1" || d.loader != BootLoaderName || len(d.mods) != 1 {
				t.Errorf("boot information: cmdline %q, loader %q, %d modules", d.cmdline, d.loader, len(d.mods))
			}
			checkGDT(t, mem, s)
		})
	}
}
