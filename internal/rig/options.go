package rig

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Options configures one emulator run. The zero value boots the default image with the
// defaults below.
type Options struct {
	// Name prefixes every log line of this machine; default "qemu" or "bochs". Give each
	// machine of a multi-host test its own name.
	Name string

	// Image is the boot image, absolute or relative to the repository root. Its extension says
	// how it is attached:
	//   .iso  a CD-ROM, booted from (QEMU -cdrom; Bochs ata0-master cdrom);
	//   .img  a raw 1.44 MB floppy image, booted from (QEMU if=floppy; Bochs floppya);
	//   other a multiboot kernel: QEMU loads it with -kernel; for Bochs the rig wraps it in a
	//         GRUB ISO of its own (grub-mkrescue) so that Cmdline and Modules reach it.
	// Default: bin/godwit under QEMU; under Bochs bin/godwit.iso, or bin/godwit when Cmdline
	// or Modules is set.
	Image string

	// Cmdline is the kernel command line (QEMU -append; Bochs: the multiboot line of the
	// generated grub.cfg). Needs a kernel Image, not an .iso or .img.
	Cmdline string

	// Modules are multiboot modules, each "path [args]" with path absolute or relative to the
	// repository root (QEMU -initrd; Bochs: module lines of the generated grub.cfg). The
	// module string the kernel sees differs between loaders (QEMU: "path args"; GRUB: "args").
	Modules []string

	// MemoryMiB is the guest RAM; default 1024.
	MemoryMiB int

	// CPU is the CPU model: QEMU -cpu (default "max": SVM with nested paging) or Bochs
	// cpu: model= (default "corei7_skylake_x": VMX with EPT; "ryzen" gives SVM with NRIPS).
	CPU string

	// ExtraArgs are appended to the emulator's command line: QEMU options such as
	// "-smp", "2", or "-netdev", "..."; for Bochs, bochsrc options (bochs accepts them after
	// its flags).
	ExtraArgs []string

	// BochsConfig are extra bochsrc lines appended after the generated ones (Bochs only), so
	// they override them.
	BochsConfig []string

	// IPS is Bochs's emulated instructions per second (cpu: ips=); default 50000000. With
	// clock: sync=none guest time follows instructions, so this sets the guest's clock speed.
	IPS int

	// Pace is the delay between bytes in Type and SendLine; default 2ms. Zero means the
	// default; a negative value turns pacing off.
	Pace time.Duration
}

// Defaults.
const (
	DefaultMemoryMiB = 1024
	DefaultQEMUCPU   = "max"
	DefaultBochsCPU  = "corei7_skylake_x"
	DefaultIPS       = 50_000_000
	DefaultPace      = 2 * time.Millisecond

	// Paths relative to the repository root, built by `make` and `make iso`.
	DefaultKernel = "bin/godwit"
	DefaultISO    = "bin/godwit.iso"
)

// Emulator binaries, looked up in $PATH.
const (
	qemuBinary  = "qemu-system-x86_64"
	bochsBinary = "bochs"
)

// Install hints for what the rig needs and does not find.
const (
	hintQEMU  = "run `make deps` or `apt-get install qemu-system-x86`"
	hintBochs = "run `make deps` or `apt-get install bochs bochsbios bochs-x seabios vgabios`"
	hintGRUB  = "run `make deps` or `apt-get install grub-pc-bin grub-common xorriso mtools`"
	hintMake  = "run `make` first (`make bin/godwit bin/godwit.iso` builds both images)"
)

// mediaKind says how an image is attached to the emulated machine.
type mediaKind int

const (
	mediaKernel mediaKind = iota // multiboot kernel
	mediaCDROM                   // .iso
	mediaFloppy                  // .img, raw 1.44 MB
)

func (k mediaKind) String() string {
	switch k {
	case mediaKernel:
		return "kernel"
	case mediaCDROM:
		return "cdrom"
	case mediaFloppy:
		return "floppy"
	}
	return fmt.Sprintf("mediaKind(%d)", int(k))
}

// mediaOf classifies an image by its extension.
func mediaOf(path string) mediaKind {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".iso":
		return mediaCDROM
	case ".img":
		return mediaFloppy
	}
	return mediaKernel
}

// ErrNoRepoRoot is returned by RepoRoot when no go.mod is found above the working directory.
var ErrNoRepoRoot = errors.New("rig: no go.mod above the working directory")

// RepoRoot returns the repository root: the nearest directory at or above the working
// directory that holds go.mod. `go test` runs tests in their package's directory, so this is
// the module root for every package of the repository.
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("rig: %w", err)
	}
	return findRoot(wd)
}

func findRoot(dir string) (string, error) {
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrNoRepoRoot
		}
		dir = parent
	}
}

// resolve makes p absolute, relative to root.
func resolve(root, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(root, p)
}

// splitModule splits a Modules entry into its path and arguments.
func splitModule(m string) (path, args string) {
	m = strings.TrimSpace(m)
	if i := strings.IndexAny(m, " \t"); i >= 0 {
		return m[:i], strings.TrimSpace(m[i+1:])
	}
	return m, ""
}

// checkImage reports a missing or stale image. A missing image is an error telling how to
// build it; an image older than a file it is built from only earns a warning (returned as
// stale), since the caller may have built it by other means.
func checkImage(root, path string) (stale string, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("rig: image %s is missing: %s", path, hintMake)
		}
		return "", fmt.Errorf("rig: image %s: %w", path, err)
	}
	if fi.IsDir() {
		return "", fmt.Errorf("rig: image %s is a directory", path)
	}
	// bin/godwit.iso is built from bin/godwit: say so if it lags behind.
	if filepath.Clean(path) == filepath.Join(root, DefaultISO) {
		if k, err := os.Stat(filepath.Join(root, DefaultKernel)); err == nil && k.ModTime().After(fi.ModTime()) {
			return fmt.Sprintf("%s is older than %s: run `make iso` to rebuild it", DefaultISO, DefaultKernel), nil
		}
	}
	return "", nil
}

// snapshotISO copies a CD-ROM image into dir and returns the copy's path. Emulators read a
// CD-ROM while the guest runs, and other people's `make iso` may rewrite bin/godwit.iso in
// place meanwhile; the copy keeps the run consistent. Other images are returned as they are:
// a kernel and its modules are read once, at start.
func snapshotISO(t TB, name, dir, image string) string {
	t.Helper()
	if mediaOf(image) != mediaCDROM {
		return image
	}
	snap := filepath.Join(dir, filepath.Base(image))
	if err := copyFile(snap, image); err != nil {
		t.Fatalf("%v", err)
	}
	t.Logf("[%s] booting %s, a copy of %s", name, snap, image)
	return snap
}
