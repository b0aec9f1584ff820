package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godwit-hv/godwit/boot"
)

// kernelELF returns a small ELF64 laid out as the Go linker does with -T 0x101000: one flat
// PT_LOAD from file offset 0 at 0x100000 and a PT_NOTE holding a Go build-ID note in the first
// page. (boot's tests have the full builder; test packages cannot share _test files.)
func kernelELF() []byte {
	const (
		base    = 0x100000
		noteOff = 0xF80
		entry   = 0x101000
	)
	var note bytes.Buffer
	binary.Write(&note, binary.LittleEndian, [3]uint32{4, 8, 4}) // namesz, descsz, NT_GO_BUILDID
	note.WriteString("Go\x00\x00buildid!")
	hdr := elf.Header64{
		Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Entry: entry, Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: 2, Shentsize: 64,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	progs := []elf.Prog64{
		{Type: uint32(elf.PT_NOTE), Flags: uint32(elf.PF_R), Off: noteOff, Vaddr: base + noteOff, Paddr: base + noteOff,
			Filesz: uint64(note.Len()), Memsz: uint64(note.Len()), Align: 4},
		{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Off: 0, Vaddr: base, Paddr: base,
			Filesz: 0x2000, Memsz: 0x3000, Align: 0x1000},
	}
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, hdr)
	binary.Write(&b, binary.LittleEndian, progs)
	img := make([]byte, 0x2000)
	copy(img, b.Bytes())
	copy(img[noteOff:], note.Bytes())
	for i := 0x1000; i < len(img); i++ {
		img[i] = 0xCC // text: INT3
	}
	return img
}

// multibootAt returns the offset of the first valid multiboot header in the first 8 KiB.
func multibootAt(img []byte) int {
	for off := 0; off+12 <= min(len(img), 8192); off += 4 {
		magic := binary.LittleEndian.Uint32(img[off:])
		flags := binary.LittleEndian.Uint32(img[off+4:])
		sum := binary.LittleEndian.Uint32(img[off+8:])
		if magic == boot.MultibootHeaderMagic && magic+flags+sum == 0 {
			return off
		}
	}
	return -1
}

func noteType(img []byte) uint32 { return binary.LittleEndian.Uint32(img[0xF80+8:]) }

func TestRun(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "godwit.elf")
	if err := os.WriteFile(kernel, kernelELF(), 0o644); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte("#!/bin/sh\necho not an ELF\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dyn := kernelELF()
	binary.LittleEndian.PutUint16(dyn[16:], uint16(elf.ET_DYN))
	pie := filepath.Join(dir, "pie.elf")
	if err := os.WriteFile(pie, dyn, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")

	tests := []struct {
		name    string
		args    []string
		errHas  string // "" for success
		errIs   error
		mb, pvh bool // expected in the output file on success
	}{
		{name: "no arguments", args: nil, errHas: "usage: godwit-mkimage"},
		{name: "one argument", args: []string{kernel}, errHas: "usage: godwit-mkimage"},
		{name: "three arguments", args: []string{kernel, out, out}, errHas: "usage: godwit-mkimage"},
		{name: "unknown flag", args: []string{"-frob", kernel, out}, errHas: "flag provided but not defined: -frob"},
		{name: "bad boolean", args: []string{"-pvh=maybe", kernel, out}, errHas: "invalid boolean value"},
		{name: "missing input", args: []string{filepath.Join(dir, "nope.elf"), out}, errIs: fs.ErrNotExist, errHas: "nope.elf"},
		{name: "not an ELF", args: []string{junk, out}, errHas: junk + ": reading ELF"},
		{name: "not an executable", args: []string{pie, out}, errIs: boot.ErrLayout, errHas: pie + ": image layout"},
		{name: "output directory missing", args: []string{kernel, filepath.Join(dir, "no", "such", "dir", "godwit")}, errIs: fs.ErrNotExist},
		{name: "both headers", args: []string{kernel, out}, mb: true, pvh: true},
		{name: "multiboot only", args: []string{"-pvh=false", kernel, out}, mb: true},
		{name: "PVH only", args: []string{"-multiboot=false", kernel, out}, pvh: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(out)
			var stdout bytes.Buffer
			err := run(&stdout, tt.args)
			if tt.errHas != "" || tt.errIs != nil {
				if err == nil {
					t.Fatalf("run(%q) = nil, want an error", tt.args)
				}
				if !strings.Contains(err.Error(), tt.errHas) {
					t.Errorf("run(%q) = %q, want it to contain %q", tt.args, err, tt.errHas)
				}
				if tt.errIs != nil && !errors.Is(err, tt.errIs) {
					t.Errorf("run(%q) = %v, want errors.Is(err, %v)", tt.args, err, tt.errIs)
				}
				if _, err := os.Stat(out); err == nil {
					t.Errorf("run(%q) failed but wrote %s", tt.args, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("run(%q) = %v, want nil", tt.args, err)
			}
			img, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(img) != len(kernelELF()) {
				t.Errorf("output is %d bytes, want %d", len(img), len(kernelELF()))
			}
			off := multibootAt(img)
			if got := off >= 0; got != tt.mb {
				t.Errorf("run(%q): multiboot header present = %v, want %v", tt.args, got, tt.mb)
			}
			wantNote := uint32(4) // the Go build ID, untouched
			if tt.pvh {
				wantNote = boot.XenElfnotePhys32Entry
			}
			if got := noteType(img); got != wantNote {
				t.Errorf("run(%q): note type = %d, want %d", tt.args, got, wantNote)
			}
			if fi, err := os.Stat(out); err != nil || fi.Mode().Perm()&0o111 == 0 {
				t.Errorf("output mode = %v, %v; want executable", fi.Mode(), err)
			}
			msg := stdout.String()
			for _, w := range []string{out + ": multiboot header at ", "PVH note at ", "entry 0x101000", "load end 0x102000", "bss end 0x103000"} {
				if !strings.Contains(msg, w) {
					t.Errorf("run(%q) printed %q, want it to contain %q", tt.args, msg, w)
				}
			}
			if tt.mb && !strings.Contains(msg, fmt.Sprintf("multiboot header at %#x,", off)) {
				t.Errorf("run(%q) printed %q, want the header offset %#x", tt.args, msg, off)
			}
		})
	}
	// The input is never modified.
	if in, _ := os.ReadFile(kernel); !bytes.Equal(in, kernelELF()) {
		t.Errorf("run modified its input file")
	}
}
