// Package initramfstest builds the guest initramfs for tests and benchmarks and boots it with
// Debian's kernel directly under QEMU TCG through internal/rig.
package initramfstest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/godwit-hv/godwit/guest/initramfs"
	"github.com/godwit-hv/godwit/internal/rig"
)

// ArchiveName is the file name Build gives the archive; a Godwit `vm create ... initrd=` names
// the multiboot module by it.
const ArchiveName = "initramfs.cpio.gz"

// Build writes the initramfs (guest/initramfs of the repository, Debian's busybox-static, the
// newest installed Debian kernel's modules) into a temporary directory of t and returns its path
// and the kernel it is for. It fails the test, with an install hint, if the kernel or
// busybox-static is missing.
func Build(t rig.TB) (archive string, k initramfs.Kernel, man initramfs.Manifest) {
	t.Helper()
	root, err := rig.RepoRoot()
	if err != nil {
		t.Fatalf("%v", err)
	}
	archive = filepath.Join(t.TempDir(), ArchiveName)
	f, err := os.Create(archive)
	if err != nil {
		t.Fatalf("%v", err)
	}
	man, err = initramfs.Build(f, initramfs.Config{Src: filepath.Join(root, "guest", "initramfs")})
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("building the initramfs: %v", err)
	}
	t.Logf("initramfs %s: kernel %s, modules %v", archive, man.Kernel.Version, man.Modules)
	return archive, man.Kernel, man
}

// Disk makes a raw disk image of size bytes in a temporary directory of t, filled with a
// repeating non-zero pattern (so that reads of it are reads of data, not of a sparse hole).
func Disk(t rig.TB, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatalf("%v", err)
	}
	block := make([]byte, 1<<20)
	for i := range block {
		block[i] = byte(i*7 + 1)
	}
	for off := int64(0); off < size; off += int64(len(block)) {
		n := min(int64(len(block)), size-off)
		if _, err := f.Write(block[:n]); err != nil {
			f.Close()
			t.Fatalf("writing %s: %v", p, err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatalf("%v", err)
	}
	return p
}

// Direct describes a direct boot of Debian's kernel with the initramfs under QEMU TCG.
type Direct struct {
	Name      string           // the machine's log prefix
	Kernel    initramfs.Kernel // Kernel.Image is booted
	Archive   string           // the initramfs
	Disk      string           // a raw image attached as virtio-blk-pci, or ""
	CPUs      int              // QEMU -smp; default 1
	MemoryMiB int              // QEMU -m; default 512
}

// BootDirect starts QEMU TCG on d.Kernel with d.Archive as its initrd and the command line
// console=ttyS0, and returns the machine without waiting for anything:
//
//	qemu-system-x86_64 -accel tcg -cpu max -m 512 ... -kernel /boot/vmlinuz-VERSION \
//	    -append console=ttyS0 -initrd initramfs.cpio.gz -smp CPUS \
//	    -drive file=disk.img,if=none,id=vda,format=raw -device virtio-blk-pci,drive=vda
func BootDirect(t rig.TB, d Direct) *rig.Machine {
	t.Helper()
	extra := []string{"-smp", strconv.Itoa(max(d.CPUs, 1))}
	if d.Disk != "" {
		extra = append(extra,
			"-drive", "file="+d.Disk+",if=none,id=vda,format=raw",
			"-device", "virtio-blk-pci,drive=vda")
	}
	mem := d.MemoryMiB
	if mem == 0 {
		mem = 512
	}
	return rig.QEMU(t, rig.Options{
		Name:      d.Name,
		Image:     d.Kernel.Image,
		Cmdline:   "console=ttyS0",
		Modules:   []string{d.Archive},
		MemoryMiB: mem,
		ExtraArgs: extra,
	})
}

// WaitShell waits for /init's markers and the shell prompt on m, within slow for each: every
// module of man loaded, none failed.
func WaitShell(m *rig.Machine, man initramfs.Manifest, slow time.Duration) {
	m.Expect(initramfs.StartedMarker, slow)
	m.Expect(fmt.Sprintf("%s%d loaded, 0 failed", initramfs.ModulesMarker, len(man.Modules)), slow)
	m.Expect(initramfs.ReadyMarker, slow)
	m.Expect(initramfs.Prompt, slow)
}
