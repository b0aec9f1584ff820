package initramfs

import (
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultModules are the modules the initramfs loads: virtio over PCI with its block and network
// drivers, and ext4 (which also serves ext2) so that the guest can make and mount a file system
// on a virtio disk. LoadOrder adds what each needs from modules.dep (crc16, mbcache and jbd2 for
// ext4, failover and net_failover for virtio_net, ...). crc32c_generic is named, before jbd2 and
// ext4, because they ask for it by an alias at run time rather than by symbol: Debian's
// modules.softdep says "softdep ext4 pre: crypto-crc32c" and "softdep jbd2 pre: crypto-crc32c".
var DefaultModules = []string{
	"virtio", "virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
	"virtio_blk", "failover", "net_failover", "virtio_net",
	"crc32c_generic", "crc16", "mbcache", "jbd2", "ext4",
}

// Source files of the initramfs, in Config.Src.
const (
	SrcInit    = "init"    // /init, the script the kernel runs as PID 1
	SrcInittab = "inittab" // /etc/inittab, for BusyBox init
	SrcProfile = "profile" // /etc/profile, read by the console's login shell
)

// Paths inside the archive that /init reads.
const (
	ModuleListPath = "etc/godwit-initramfs/modules" // module files in load order, one per line
	KernelPath     = "etc/godwit-initramfs/kernel"  // the kernel version the modules are for
	BusyboxPath    = "bin/busybox"
)

// Device numbers of the nodes the kernel needs before /init mounts devtmpfs: /dev/console for
// the first process's standard input and output (Documentation/admin-guide/devices.txt: char
// major 5 minor 1 "/dev/console System console"; major 1 minor 3 "/dev/null").
const (
	consoleMajor, consoleMinor = 5, 1
	nullMajor, nullMinor       = 1, 3
)

// Config says what Build puts in the archive. The zero value of each field means its default.
type Config struct {
	Root    string   // where /boot and /lib/modules are looked up; default "/"
	Busybox string   // a statically linked BusyBox; default /bin/busybox (Debian's busybox-static)
	Src     string   // the directory holding SrcInit, SrcInittab and SrcProfile; required
	Modules []string // module names; default DefaultModules
	MTime   uint32   // modification time of every entry (seconds since 1970); default 0
}

// Manifest describes a built archive.
type Manifest struct {
	Kernel  Kernel   // the kernel whose modules are inside
	Modules []string // module files (relative to Kernel.Modules) in load order
	Applets int      // BusyBox applet links
	Entries int      // archive entries, trailer excluded
}

// Build writes a gzip-compressed newc cpio archive to w: the initramfs for the newest installed
// Debian kernel (FindKernel). Nothing of it needs root rights: device nodes are archive
// entries, and the owner of every entry is root (uid and gid 0).
func Build(w io.Writer, c Config) (Manifest, error) {
	if c.Root == "" {
		c.Root = "/"
	}
	if c.Busybox == "" {
		c.Busybox = "/bin/busybox"
	}
	if c.Src == "" {
		return Manifest{}, fmt.Errorf("initramfs: Config.Src (the directory of %s, %s and %s) is not set", SrcInit, SrcInittab, SrcProfile)
	}
	if len(c.Modules) == 0 {
		c.Modules = DefaultModules
	}
	k, err := FindKernel(c.Root)
	if err != nil {
		return Manifest{}, fmt.Errorf("initramfs: %w", err)
	}
	depFile := filepath.Join(k.Modules, "modules.dep")
	f, err := os.Open(depFile)
	if err != nil {
		return Manifest{}, fmt.Errorf("initramfs: %w", err)
	}
	deps, err := ParseDep(f)
	f.Close()
	if err != nil {
		return Manifest{}, fmt.Errorf("initramfs: %s: %w", depFile, err)
	}
	order, err := deps.LoadOrder(c.Modules)
	if err != nil {
		return Manifest{}, fmt.Errorf("initramfs: kernel %s: %w", k.Version, err)
	}
	if err := checkStatic(c.Busybox); err != nil {
		return Manifest{}, fmt.Errorf("initramfs: %w", err)
	}
	apps, err := applets(c.Busybox)
	if err != nil {
		return Manifest{}, fmt.Errorf("initramfs: %w", err)
	}
	src := map[string][]byte{}
	for _, name := range []string{SrcInit, SrcInittab, SrcProfile} {
		b, err := os.ReadFile(filepath.Join(c.Src, name))
		if err != nil {
			return Manifest{}, fmt.Errorf("initramfs: %w", err)
		}
		src[name] = b
	}
	bb, err := os.ReadFile(c.Busybox)
	if err != nil {
		return Manifest{}, fmt.Errorf("initramfs: %w", err)
	}

	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return Manifest{}, fmt.Errorf("initramfs: %w", err)
	}
	a := &archive{cw: NewWriter(zw), dirs: map[string]bool{}}
	a.cw.MTime = c.MTime
	for _, d := range []string{"bin", "dev", "etc", "lib", "mnt", "proc", "root", "run", "sbin", "sys", "usr/bin", "usr/sbin", "var"} {
		a.dir(d)
	}
	a.dirs["tmp"] = true
	a.do(func() error { return a.cw.Dir("tmp", fs.ModeSticky|0o777) })
	a.do(func() error { return a.cw.CharDev("dev/console", 0o600, consoleMajor, consoleMinor) })
	a.do(func() error { return a.cw.CharDev("dev/null", 0o666, nullMajor, nullMinor) })
	a.file("init", 0o755, src[SrcInit])
	a.file("etc/inittab", 0o644, src[SrcInittab])
	a.file("etc/profile", 0o644, src[SrcProfile])
	a.file(BusyboxPath, 0o755, bb)
	links := 0
	for _, app := range apps {
		if app == BusyboxPath || a.has(app) {
			continue // never shadow a file of ours
		}
		a.dir(path.Dir(app))
		a.do(func() error { return a.cw.Symlink(app, "/"+BusyboxPath) })
		links++
	}
	modDir := path.Join("lib/modules", k.Version)
	for _, m := range order {
		b, err := os.ReadFile(filepath.Join(k.Modules, filepath.FromSlash(m)))
		if err != nil {
			return Manifest{}, fmt.Errorf("initramfs: module %s: %w", m, err)
		}
		a.file(path.Join(modDir, m), 0o644, b)
	}
	a.file(path.Join(modDir, "modules.dep"), 0o644, deps.Subset(order))
	a.file(ModuleListPath, 0o644, []byte(strings.Join(order, "\n")+"\n"))
	a.file(KernelPath, 0o644, []byte(k.Version+"\n"))
	if a.err == nil {
		a.err = a.cw.Close()
	}
	if a.err == nil {
		a.err = zw.Close()
	}
	if a.err != nil {
		return Manifest{}, fmt.Errorf("initramfs: %w", a.err)
	}
	return Manifest{Kernel: k, Modules: order, Applets: links, Entries: len(a.cw.names)}, nil
}

// archive adds entries to a Writer, creating parent directories first, and keeps the first
// error so that Build checks once.
type archive struct {
	cw   *Writer
	dirs map[string]bool
	err  error
}

func (a *archive) do(f func() error) {
	if a.err == nil {
		a.err = f()
	}
}

func (a *archive) has(name string) bool { return a.cw.names[name] }

// dir adds directory d (mode 0755) and its missing parents.
func (a *archive) dir(d string) {
	if d == "." || d == "" || a.dirs[d] {
		return
	}
	a.dir(path.Dir(d))
	a.dirs[d] = true
	a.do(func() error { return a.cw.Dir(d, 0o755) })
}

func (a *archive) file(name string, perm fs.FileMode, data []byte) {
	a.dir(path.Dir(name))
	a.do(func() error { return a.cw.File(name, perm, data) })
}

// SortedNames returns the names of entries, sorted; for listings and tests.
func SortedNames(entries []Entry) []string {
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name
	}
	sort.Strings(names)
	return names
}
