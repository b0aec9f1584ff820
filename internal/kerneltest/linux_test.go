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

// linuxShell boots Debian's stock kernel and initramfs as a Godwit guest with two vCPUs and
// the whole platform (LAPICs, I/O APIC, ACPI, PCI, kvmclock), reaches the initramfs BusyBox
// shell on the guest's COM1 and runs a command through `vm console`.
func linuxShell(t *testing.T, m *rig.Machine, kernel, initrd string, slow time.Duration) {
	m.Expect(Prompt, slow)
	m.SendLine("vm create lx kernel=" + filepath.Base(kernel) + " initrd=" + filepath.Base(initrd) +
		` mem=384M cpus=2 cmdline="console=ttyS0"`)
	m.Expect("vm lx: created", 30*time.Second)
	m.SendLine("vm start lx")
	m.Expect("vm lx: started", 30*time.Second)
	m.SendLine("vm console lx")
	m.Expect("connected to lx's console", 30*time.Second)
	m.Expect("Linux version", slow)
	m.Expect("Run /init as init process", slow)
	m.Expect("(initramfs)", slow)
	m.SendLine("echo godwit-$((6*7))")
	m.Expect("godwit-42", slow)
	// A reboot from inside the guest (the 8042 reset line) starts it afresh.
	m.SendLine("reboot -f")
	m.Expect("Linux version", slow)
	m.Expect("(initramfs)", slow)
	m.Send("\x1d")
	m.Expect("detached from lx (running)", 30*time.Second)
	m.SendLine("vm stop lx")
	m.Expect("vm lx: stopped: stopped by the host", 30*time.Second)
	m.SendLine("vm list")
	m.Expect("(rebooted 1 times)", 30*time.Second)
	m.SendLine("poweroff")
	if _, err := m.Wait(time.Minute); err != nil {
		t.Fatal(err)
	}
}

// TestLinuxShellSVMQEMU: on QEMU TCG's SVM (about 17 s to the shell here).
func TestLinuxShellSVMQEMU(t *testing.T) {
	t.Parallel()
	kernel, initrd := debianKernel(t)
	m := rig.QEMU(t, rig.Options{Name: "linux-svm", Modules: []string{kernel, initrd}})
	linuxShell(t, m, kernel, initrd, 5*time.Minute)
}

// TestLinuxShellVMXBochs: on Bochs's VMX (about 140 s to the shell here).
func TestLinuxShellVMXBochs(t *testing.T) {
	t.Parallel()
	kernel, initrd := debianKernel(t)
	m := rig.Bochs(t, rig.Options{Name: "linux-vmx", Modules: []string{kernel, initrd}})
	linuxShell(t, m, kernel, initrd, 12*time.Minute)
}
