package initramfs_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/guest/initramfs"
	"github.com/godwit-hv/godwit/guest/initramfs/initramfstest"
)

// bootSlow bounds each wait of the boot test: Debian's kernel reaches the shell in about 5 s
// under QEMU TCG on an idle machine; a loaded 2-core machine is several times slower.
const bootSlow = 3 * time.Minute

// TestBootDirectQEMU boots Debian's stock kernel with the initramfs directly under QEMU TCG
// (no Godwit) with 2 CPUs and a virtio-blk disk, and drives the shell: nproc, a file system made on the
// disk, a file written and read back, the disk's bytes read raw, and poweroff ending QEMU.
func TestBootDirectQEMU(t *testing.T) {
	archive, k, man := initramfstest.Build(t)
	const diskSize = 32 << 20
	disk := initramfstest.Disk(t, diskSize)
	const cpus = 2
	m := initramfstest.BootDirect(t, initramfstest.Direct{
		Name: "linux-direct", Kernel: k, Archive: archive, Disk: disk, CPUs: cpus, MemoryMiB: 512,
	})
	m.Expect("Linux version "+k.Version, bootSlow)
	m.Expect("Run /init as init process", bootSlow)
	initramfstest.WaitShell(m, man, bootSlow)

	// The shell owns the serial console as its controlling terminal (cttyhack): job control.
	// (The job ends by itself and the shell waits for it: an explicit marker, not the
	// prompt, says the line is done.)
	m.SendLine("tty; sleep 2 & jobs; wait; echo jobs-done-$((40+2))")
	m.Expect("/dev/ttyS0", bootSlow)
	m.ExpectRegexp(`\[1\]\+ +Running +sleep 2`, bootSlow)
	m.Expect("jobs-done-42", bootSlow)
	m.Expect(initramfs.Prompt, bootSlow)

	m.SendLine("echo cpus=$(nproc)=")
	if got := m.ExpectRegexp(`cpus=([0-9]+)=`, bootSlow)[1]; got != strconv.Itoa(cpus) {
		t.Errorf("nproc in the guest = %s, want %d (QEMU -smp %d)", got, cpus, cpus)
	}
	m.Expect(initramfs.Prompt, bootSlow)

	// The disk as the test made it: its first bytes are the pattern (i*7+1) of Disk.
	m.SendLine("dd if=/dev/vda bs=4 count=1 2>/dev/null | od -An -tx1 | tr -d ' '; echo =raw")
	m.Expect("01080f16", bootSlow)
	m.Expect("=raw", bootSlow)

	m.SendLine("mke2fs -q /dev/vda >/dev/null && mount -t ext2 /dev/vda /mnt && echo mounted-$((40+2))")
	m.Expect("mounted-42", bootSlow)
	m.SendLine("echo godwit-on-disk > /mnt/f && sync && umount /mnt && mount -t ext2 /dev/vda /mnt && cat /mnt/f | tr a-z A-Z")
	m.Expect("GODWIT-ON-DISK", bootSlow)
	m.SendLine("grep /dev/vda /proc/mounts")
	m.Expect("/dev/vda /mnt ext2", bootSlow)
	m.Expect(initramfs.Prompt, bootSlow)

	m.SendLine("poweroff")
	m.Expect("reboot: Power down", bootSlow)
	code, err := m.Wait(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// An ACPI power-off ends QEMU with status 0 (a triple fault under -no-reboot does too: the
	// kernel's "Power down" line above tells them apart).
	if code != 0 {
		t.Errorf("QEMU exited with status %d after poweroff, want 0", code)
	}
}

// TestRebootDirectQEMU: `reboot` in the guest's shell restarts the machine (with -no-reboot,
// QEMU exits instead of starting again).
func TestRebootDirectQEMU(t *testing.T) {
	archive, k, man := initramfstest.Build(t)
	m := initramfstest.BootDirect(t, initramfstest.Direct{Name: "linux-reboot", Kernel: k, Archive: archive})
	initramfstest.WaitShell(m, man, bootSlow)
	m.SendLine("reboot")
	m.Expect("reboot: Restarting system", bootSlow)
	if _, err := m.Wait(time.Minute); err != nil {
		t.Fatal(err)
	}
}
