package initramfs_test

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godwit-hv/godwit/guest/initramfs"
	"github.com/godwit-hv/godwit/guest/initramfs/initramfstest"
)

// readArchive unpacks a gzip-compressed archive into its entries, by name.
func readArchive(t *testing.T, p string) (map[string]initramfs.Entry, []initramfs.Entry) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s is not gzip: %v", p, err)
	}
	list, err := initramfs.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	byName := map[string]initramfs.Entry{}
	for _, e := range list {
		byName[e.Name] = e
	}
	return byName, list
}

// TestBuild builds the initramfs from what is installed (Debian's kernel and busybox-static)
// and checks what is inside.
func TestBuild(t *testing.T) {
	archive, k, man := initramfstest.Build(t)
	entries, list := readArchive(t, archive)
	if man.Entries != len(list) {
		t.Errorf("Manifest.Entries = %d, the archive has %d", man.Entries, len(list))
	}

	// Every entry's parent directory comes before it: the kernel creates entries in order.
	seen := map[string]bool{}
	for _, e := range list {
		if d := path.Dir(e.Name); d != "." && !seen[d] {
			t.Errorf("%s comes before its directory %s", e.Name, d)
		}
		seen[e.Name] = true
		if e.UID != 0 || e.GID != 0 {
			t.Errorf("%s: owner %d:%d, want 0:0", e.Name, e.UID, e.GID)
		}
	}

	src, err := os.ReadFile("init")
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		kind string // dir, file, symlink, chardev
		perm os.FileMode
	}
	for name, w := range map[string]want{
		"init":                     {"file", 0o755},
		"etc/inittab":              {"file", 0o644},
		"etc/profile":              {"file", 0o644},
		initramfs.BusyboxPath:      {"file", 0o755},
		initramfs.ModuleListPath:   {"file", 0o644},
		initramfs.KernelPath:       {"file", 0o644},
		"dev/console":              {"chardev", 0o600},
		"dev/null":                 {"chardev", 0o666},
		"bin/sh":                   {"symlink", 0o777},
		"bin/cttyhack":             {"symlink", 0o777},
		"sbin/init":                {"symlink", 0o777},
		"sbin/insmod":              {"symlink", 0o777},
		"sbin/poweroff":            {"symlink", 0o777},
		"sbin/reboot":              {"symlink", 0o777},
		"sbin/mke2fs":              {"symlink", 0o777},
		"bin/mount":                {"symlink", 0o777},
		"bin/dd":                   {"symlink", 0o777},
		"usr/bin/nproc":            {"symlink", 0o777},
		"proc":                     {"dir", 0o755},
		"sys":                      {"dir", 0o755},
		"dev":                      {"dir", 0o755},
		"mnt":                      {"dir", 0o755},
		"tmp":                      {"dir", os.ModeSticky | 0o777},
		"lib/modules/" + k.Version: {"dir", 0o755},
	} {
		e, ok := entries[name]
		if !ok {
			t.Errorf("%s is not in the archive", name)
			continue
		}
		var kind string
		switch {
		case e.IsDir():
			kind = "dir"
		case e.IsRegular():
			kind = "file"
		case e.IsSymlink():
			kind = "symlink"
		case e.IsCharDev():
			kind = "chardev"
		}
		if kind != w.kind || e.Perm() != w.perm {
			t.Errorf("%s: %s %v, want %s %v", name, kind, e.Perm(), w.kind, w.perm)
		}
		if e.IsSymlink() && string(e.Data) != "/"+initramfs.BusyboxPath {
			t.Errorf("%s -> %s, want /%s", name, e.Data, initramfs.BusyboxPath)
		}
	}
	if e := entries["dev/console"]; e.RDevMajor != 5 || e.RDevMinor != 1 {
		t.Errorf("dev/console is char %d,%d, want 5,1", e.RDevMajor, e.RDevMinor)
	}
	if e := entries["init"]; !bytes.Equal(e.Data, src) {
		t.Errorf("/init differs from guest/initramfs/init")
	}
	if !bytes.HasPrefix(entries["init"].Data, []byte("#!/bin/sh\n")) {
		t.Errorf("/init does not start with #!/bin/sh")
	}
	if got := strings.TrimSpace(string(entries[initramfs.KernelPath].Data)); got != k.Version {
		t.Errorf("%s = %q, want %q", initramfs.KernelPath, got, k.Version)
	}

	// BusyBox is the installed static one.
	bb := entries[initramfs.BusyboxPath]
	f, err := elf.NewFile(bytes.NewReader(bb.Data))
	if err != nil {
		t.Fatalf("bin/busybox is not ELF: %v", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("bin/busybox has a PT_INTERP header: not static")
		}
	}
	if man.Applets < 100 {
		t.Errorf("%d applet links, want the whole BusyBox set (over 100)", man.Applets)
	}

	// The modules: each named one, each after everything modules.dep says it needs, and the
	// bytes of the installed file.
	list2 := strings.Fields(string(entries[initramfs.ModuleListPath].Data))
	if strings.Join(list2, " ") != strings.Join(man.Modules, " ") {
		t.Errorf("%s = %q, Manifest.Modules = %q", initramfs.ModuleListPath, list2, man.Modules)
	}
	depf, err := os.Open(filepath.Join(k.Modules, "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	defer depf.Close()
	deps, err := initramfs.ParseDep(depf)
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, m := range man.Modules {
		pos[initramfs.ModuleName(m)] = i
	}
	for _, name := range []string{
		"virtio", "virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
		"virtio_blk", "virtio_net", "failover", "net_failover",
		"ext4", "jbd2", "mbcache", "crc16", "crc32c_generic",
	} {
		i, ok := pos[name]
		if !ok {
			t.Errorf("module %s is not loaded", name)
			continue
		}
		file, _ := deps.File(name)
		for _, d := range deps.Deps(file) {
			if j, ok := pos[initramfs.ModuleName(d)]; !ok || j > i {
				t.Errorf("%s needs %s, loaded at %d (present %v), after %d", name, d, j, ok, i)
			}
		}
		e, ok := entries["lib/modules/"+k.Version+"/"+file]
		if !ok {
			t.Errorf("%s is not in the archive", file)
			continue
		}
		disk, err := os.ReadFile(filepath.Join(k.Modules, file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(e.Data, disk) || e.Perm() != 0o644 {
			t.Errorf("%s: %d bytes mode %v, want the installed %d bytes, 0644", file, len(e.Data), e.Perm(), len(disk))
		}
	}
	// crc32c_generic comes before jbd2 and ext4, which ask for "crypto-crc32c" (modules.softdep).
	if pos["crc32c_generic"] > pos["jbd2"] || pos["crc32c_generic"] > pos["ext4"] {
		t.Errorf("crc32c_generic is loaded after jbd2 or ext4: %q", man.Modules)
	}

	// The same inputs give the same bytes.
	again, _, _ := initramfstest.Build(t)
	a, _ := os.ReadFile(archive)
	b, _ := os.ReadFile(again)
	if !bytes.Equal(a, b) {
		t.Errorf("two builds differ (%d and %d bytes)", len(a), len(b))
	}
}

// TestBuildRefusesDynamicBusybox: a dynamically linked program in place of busybox-static is
// refused with the install hint, since the initramfs has no dynamic loader.
func TestBuildRefusesDynamicBusybox(t *testing.T) {
	dyn := "/bin/ls" // coreutils, dynamically linked on Debian
	f, err := elf.Open(dyn)
	if err != nil {
		t.Fatalf("%s: %v", dyn, err)
	}
	interp := false
	for _, p := range f.Progs {
		interp = interp || p.Type == elf.PT_INTERP
	}
	f.Close()
	if !interp {
		t.Fatalf("%s is static here; this test needs a dynamically linked program", dyn)
	}
	var out bytes.Buffer
	_, err = initramfs.Build(&out, initramfs.Config{Src: ".", Busybox: dyn})
	if !errors.Is(err, initramfs.ErrNotStatic) {
		t.Errorf("Build with %s = %v, want ErrNotStatic", dyn, err)
	}
}
