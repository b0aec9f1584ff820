package initramfs

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os/exec"
	"path"
	"strings"
)

// ErrNotStatic says the BusyBox binary needs a dynamic loader, which the initramfs does not have.
var ErrNotStatic = fmt.Errorf("busybox is dynamically linked: install Debian's busybox-static (`make deps` or `apt-get install busybox-static`)")

// checkStatic fails unless the ELF file bin is a statically linked x86-64 executable: no
// PT_INTERP program header (ELF gABI, "Program Header": PT_INTERP names the program
// interpreter, the dynamic loader).
func checkStatic(bin string) error {
	f, err := elf.Open(bin)
	if err != nil {
		return fmt.Errorf("busybox %s: %w (install Debian's busybox-static: `make deps` or `apt-get install busybox-static`)", bin, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("busybox %s: built for %v, want %v", bin, f.Machine, elf.EM_X86_64)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s: %w", bin, ErrNotStatic)
		}
	}
	return nil
}

// applets asks the BusyBox binary for its applets and where each is installed
// (`busybox --list-full`: "bin/sh", "sbin/poweroff", "usr/bin/setsid", ...).
func applets(bin string) ([]string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, "--list-full")
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s --list-full: %w (%s)", bin, err, strings.TrimSpace(errb.String()))
	}
	var list []string
	for _, l := range strings.Fields(out.String()) {
		l = strings.TrimPrefix(l, "/")
		if l == "" || path.Clean(l) != l || strings.HasPrefix(l, "../") {
			return nil, fmt.Errorf("%s --list-full: bad applet path %q", bin, l)
		}
		list = append(list, l)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%s --list-full listed no applets", bin)
	}
	return list, nil
}
