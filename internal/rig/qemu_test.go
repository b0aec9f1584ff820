package rig

import (
	"slices"
	"strings"
	"testing"
)

func TestQEMUArgs(t *testing.T) {
	base := []string{"-accel", "tcg", "-cpu", "max", "-m", "1024", "-display", "none", "-no-reboot",
		"-monitor", "none", "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"}
	tests := []struct {
		name string
		c    qemuConfig
		want []string // after base
	}{
		{
			name: "kernel",
			c:    qemuConfig{Image: "/r/bin/godwit", Media: mediaKernel},
			want: []string{"-kernel", "/r/bin/godwit"},
		},
		{
			name: "kernel cmdline modules extra",
			c: qemuConfig{Image: "/r/bin/godwit", Media: mediaKernel, Cmdline: "godwit.strace=1 x=y",
				Modules: []string{"/r/guest.elf console=ttyS0,115200", "/r/initrd"}, Extra: []string{"-smp", "2"}},
			want: []string{"-kernel", "/r/bin/godwit", "-append", "godwit.strace=1 x=y",
				"-initrd", "/r/guest.elf console=ttyS0,,115200,/r/initrd", "-smp", "2"},
		},
		{
			name: "cdrom",
			c:    qemuConfig{Image: "/r/bin/godwit.iso", Media: mediaCDROM},
			want: []string{"-cdrom", "/r/bin/godwit.iso", "-boot", "d"},
		},
		{
			name: "floppy",
			c:    qemuConfig{Image: "/t/a,b.img", Media: mediaFloppy},
			want: []string{"-drive", "file=/t/a,,b.img,format=raw,if=floppy", "-boot", "a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.CPU, tt.c.MemoryMiB = "max", 1024
			got, err := qemuArgs(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			if want := append(slices.Clone(base), tt.want...); !slices.Equal(got, want) {
				t.Errorf("qemuArgs() =\n%q\nwant\n%q", got, want)
			}
		})
	}
}

func TestQEMUArgsCmdlineNeedsKernel(t *testing.T) {
	_, err := qemuArgs(qemuConfig{Image: "/r/bin/godwit.iso", Media: mediaCDROM, Cmdline: "x", CPU: "max", MemoryMiB: 1})
	if err == nil || !strings.Contains(err.Error(), "multiboot kernel") {
		t.Errorf("qemuArgs with an ISO and a command line: err = %v, want one naming the kernel", err)
	}
}
