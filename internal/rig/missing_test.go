package rig

import (
	"strings"
	"testing"
)

// A missing emulator or image fails the test, saying how to get it; it is never skipped.
func TestMissingEmulator(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for _, tt := range []struct {
		name  string
		start func(TB, Options) *Machine
		want  []string
	}{
		{"qemu", QEMU, []string{"qemu-system-x86_64 not found", "make deps", "apt-get install qemu-system-x86"}},
		{"bochs", Bochs, []string{"bochs not found", "make deps", "apt-get install bochs bochsbios bochs-x seabios vgabios"}},
	} {
		tb := newFakeTB(t)
		f := tb.run(func() { tt.start(tb, Options{}) })
		tb.finish()
		for _, w := range tt.want {
			if !strings.Contains(f, w) {
				t.Errorf("%s with no emulator in $PATH: Fatalf %q, want it to hold %q", tt.name, f, w)
			}
		}
	}
}

func TestMissingImage(t *testing.T) {
	for _, tt := range []struct {
		name  string
		start func(TB, Options) *Machine
		image string
	}{
		{"qemu", QEMU, "bin/no-such-kernel"},
		{"bochs", Bochs, "bin/no-such.iso"},
	} {
		tb := newFakeTB(t)
		f := tb.run(func() { tt.start(tb, Options{Image: tt.image}) })
		tb.finish()
		if !strings.Contains(f, tt.image) || !strings.Contains(f, "run `make` first") {
			t.Errorf("%s with a missing image: Fatalf %q, want the path and \"run `make` first\"", tt.name, f)
		}
	}
}
