package kerneltest

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/internal/rig"
)

// debianKernel returns Debian's stock kernel and its initramfs (package linux-image-amd64).
func debianKernel(t *testing.T) (kernel, initrd string) {
	t.Helper()
	ks, _ := filepath.Glob("/boot/vmlinuz-*-amd64")
	is, _ := filepath.Glob("/boot/initrd.img-*-amd64")
	if len(ks) == 0 || len(is) == 0 {
		t.Fatalf("Debian's kernel is not installed (/boot/vmlinuz-*-amd64, /boot/initrd.img-*-amd64): run `make deps` or `apt-get install linux-image-amd64`")
	}
	return ks[len(ks)-1], is[len(is)-1]
}

// TestLinuxInitramfsShell boots Debian's stock kernel and initramfs as a Godwit guest on QEMU's
// SVM, reaches the initramfs BusyBox shell on the guest's COM1 and runs a command through
// `vm console`. It uses the legacy PC platform (8259, 8254, CMOS, 16550): the APIC, ACPI and
// virtio parts of the Linux-guest issue come later, hence noapic nolapic acpi=off here.
func TestLinuxInitramfsShell(t *testing.T) {
	t.Parallel()
	kernel, initrd := debianKernel(t)
	m := rig.QEMU(t, rig.Options{Name: "linux", Modules: []string{kernel, initrd}})
	m.Expect(Prompt, time.Minute)
	m.SendLine("vm create lx kernel=" + filepath.Base(kernel) + " initrd=" + filepath.Base(initrd) +
		` mem=384M cmdline="console=ttyS0 noapic nolapic acpi=off"`)
	m.Expect("vm lx: created", 30*time.Second)
	m.SendLine("vm start lx")
	m.Expect("vm lx: started", 30*time.Second)
	m.SendLine("vm console lx")
	m.Expect("connected to lx's console", 30*time.Second)
	m.Expect("Linux version", 2*time.Minute)
	m.Expect("Run /init as init process", 5*time.Minute)
	m.Expect("(initramfs)", 5*time.Minute)
	m.SendLine("echo godwit-$((6*7))")
	m.Expect("godwit-42", 2*time.Minute)
	m.Send("\x1d")
	m.Expect("detached from lx (running)", 30*time.Second)
	m.SendLine("vm stop lx")
	m.Expect("vm lx: stopped: stopped by the host", 30*time.Second)
	m.SendLine("poweroff")
	if _, err := m.Wait(time.Minute); err != nil {
		t.Fatal(err)
	}
}
