package initramfs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Kernel is an installed Debian kernel: its image and its modules directory.
type Kernel struct {
	Version string // uname -r, e.g. "6.1.0-56-amd64"
	Image   string // /boot/vmlinuz-<Version>
	Modules string // /lib/modules/<Version>
}

// ErrNoKernel is returned by FindKernel when no kernel with its modules is installed.
var ErrNoKernel = errors.New("no Debian kernel with modules installed (/boot/vmlinuz-*-amd64 and /lib/modules/<version>/modules.dep): run `make deps` or `apt-get install linux-image-amd64`")

// FindKernel finds the newest kernel installed under root ("/" on a normal system) by Debian's
// linux-image-amd64 package: an image /boot/vmlinuz-<version>-amd64 whose modules directory
// /lib/modules/<version>-amd64 holds a modules.dep. The version is what is installed, never a
// fixed one.
func FindKernel(root string) (Kernel, error) {
	images, err := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*-amd64"))
	if err != nil {
		return Kernel{}, fmt.Errorf("finding the kernel: %w", err)
	}
	var found []Kernel
	for _, img := range images {
		ver := strings.TrimPrefix(filepath.Base(img), "vmlinuz-")
		mods := filepath.Join(root, "lib", "modules", ver)
		if _, err := os.Stat(filepath.Join(mods, "modules.dep")); err != nil {
			continue
		}
		found = append(found, Kernel{Version: ver, Image: img, Modules: mods})
	}
	if len(found) == 0 {
		return Kernel{}, ErrNoKernel
	}
	sort.Slice(found, func(i, j int) bool { return versionLess(found[i].Version, found[j].Version) })
	return found[len(found)-1], nil
}

// versionLess orders kernel versions such as "6.1.0-9-amd64" < "6.1.0-56-amd64": runs of
// digits compare as numbers, everything else byte by byte.
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		na, ra := leadingNumber(a)
		nb, rb := leadingNumber(b)
		switch {
		case na >= 0 && nb >= 0:
			if na != nb {
				return na < nb
			}
			a, b = ra, rb
		case a[0] != b[0]:
			return a[0] < b[0]
		default:
			a, b = a[1:], b[1:]
		}
	}
	return len(a) < len(b)
}

// leadingNumber returns the decimal number s starts with and the rest, or -1 and s.
func leadingNumber(s string) (int, string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return -1, s
	}
	n, err := strconv.Atoi(s[:i])
	if err != nil {
		return -1, s
	}
	return n, s[i:]
}

// ModuleName is the name the kernel gives the module in file p: the base name without ".ko",
// with '-' read as '_' (kmod does the same: crc32c-intel.ko is module crc32c_intel).
func ModuleName(p string) string {
	return strings.ReplaceAll(strings.TrimSuffix(path.Base(p), ".ko"), "-", "_")
}

// DepTable is a kernel's modules.dep: for each module, its file (relative to the modules
// directory) and the files of every module it needs, as depmod(8) writes them.
type DepTable struct {
	files map[string]string   // module name -> file
	deps  map[string][]string // file -> files it depends on
	order []string            // files in the order of modules.dep, for ParseDep's callers
}

// ParseDep reads modules.dep (modules.dep(5): "file: dep dep ...", one module per line, paths
// relative to /lib/modules/<version>). Compressed modules (.ko.xz, .ko.zst, .ko.gz) are refused:
// BusyBox's insmod in the initramfs loads plain .ko files.
func ParseDep(r io.Reader) (*DepTable, error) {
	t := &DepTable{files: map[string]string{}, deps: map[string][]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		file, rest, ok := strings.Cut(line, ":")
		if !ok || file == "" {
			return nil, fmt.Errorf("modules.dep line %d: %q has no \"file:\"", n, line)
		}
		if !strings.HasSuffix(file, ".ko") {
			return nil, fmt.Errorf("modules.dep line %d: %s is not a plain .ko file (compressed modules are not supported)", n, file)
		}
		if _, dup := t.deps[file]; dup {
			return nil, fmt.Errorf("modules.dep line %d: %s listed twice", n, file)
		}
		t.deps[file] = strings.Fields(rest)
		t.order = append(t.order, file)
		name := ModuleName(file)
		if _, dup := t.files[name]; !dup { // the first one wins, as in modprobe's search order
			t.files[name] = file
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading modules.dep: %w", err)
	}
	return t, nil
}

// File returns the file of the module named name ('-' and '_' alike).
func (t *DepTable) File(name string) (string, bool) {
	f, ok := t.files[strings.ReplaceAll(name, "-", "_")]
	return f, ok
}

// Deps returns the files module file depends on, as modules.dep lists them.
func (t *DepTable) Deps(file string) []string { return t.deps[file] }

// LoadOrder returns the files of the named modules and of every module they depend on, each
// once, every module after all of its dependencies: the order insmod must load them in. It
// follows modules.dep (which lists all dependencies, direct and indirect) and visits them
// depth first, so the result depends only on the table and the order of names.
func (t *DepTable) LoadOrder(names []string) ([]string, error) {
	var order []string
	const (
		unseen = iota
		visiting
		done
	)
	state := map[string]int{}
	var visit func(file string, from []string) error
	visit = func(file string, from []string) error {
		switch state[file] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("modules.dep: dependency loop: %s -> %s", strings.Join(from, " -> "), file)
		}
		deps, ok := t.deps[file]
		if !ok {
			return fmt.Errorf("modules.dep: %s (needed by %s) is not listed", file, strings.Join(from, " -> "))
		}
		state[file] = visiting
		for _, d := range deps {
			if err := visit(d, append(from, file)); err != nil {
				return err
			}
		}
		state[file] = done
		order = append(order, file)
		return nil
	}
	for _, n := range names {
		file, ok := t.File(n)
		if !ok {
			return nil, fmt.Errorf("modules.dep: no module %q", n)
		}
		if err := visit(file, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// Subset returns the lines of modules.dep for files alone, in the table's order, so that
// modprobe in the initramfs knows what it holds.
func (t *DepTable) Subset(files []string) []byte {
	in := map[string]bool{}
	for _, f := range files {
		in[f] = true
	}
	var b strings.Builder
	for _, f := range t.order {
		if !in[f] {
			continue
		}
		b.WriteString(f + ":")
		for _, d := range t.deps[f] {
			b.WriteString(" " + d)
		}
		b.WriteString("\n")
	}
	return []byte(b.String())
}
