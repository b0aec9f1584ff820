package linuxbench

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/guest/initramfs"
	"github.com/godwit-hv/godwit/guest/initramfs/initramfstest"
	"github.com/godwit-hv/godwit/internal/rig"
)

// GodwitExtraCmdline follows "console=ttyS0" on the Godwit guest's command line in
// BenchmarkLinuxGuest; empty, both boots use plain console=ttyS0 and compare like for like. It
// began as "noapic nolapic acpi=off", to keep the guest on the legacy PC platform (8259, PIT, no
// ACPI) while the APIC, I/O APIC and ACPI models were being wired into every VM; that wiring is
// in (3fee3a0), and with those options today's Godwit guest stops after "Calibrating delay loop"
// (seen twice on 2026-11-22), so the benchmark measures the whole platform.
var GodwitExtraCmdline = ""

// Both boots give the guest the same memory and one CPU, so that the times compare.
const (
	guestMemMiB = 384
	guestCPUs   = 1
)

// slow bounds each wait on the guest; boots under a loaded 2-core machine take several times
// the idle figures (about 6 s direct, 20 s under Godwit).
const slow = 3 * time.Minute

// Disk throughput: the direct guest reads its whole virtio-blk disk of ddMiB, ddPasses times,
// with O_DIRECT (iflag=direct: no guest page cache; QEMU's default cache mode still serves the
// image from the host's page cache) in 1 MiB requests.
const (
	ddMiB    = 128
	ddPasses = 8
)

// godwitPrompt is the admin shell's prompt (cmd/godwit).
const godwitPrompt = "godwit> "

// BenchmarkLinuxGuest reports, from one run, the time from start to the guest's shell prompt
// for Debian's kernel and the initramfs booted (a) directly by QEMU TCG, from QEMU's start, and
// (b) as a Godwit guest, from `vm start` (Godwit itself already up); their ratio; and (c) the
// direct guest's virtio-blk read throughput.
//
// The Godwit guest's disk throughput is not measured: Godwit does not give this guest a
// virtio-blk disk yet.
func BenchmarkLinuxGuest(b *testing.B) {
	archive, k, man := initramfstest.Build(b)
	disk := initramfstest.Disk(b, ddMiB<<20)
	var direct, godwit time.Duration
	var ddBytes, ddSeconds float64
	for i := 0; i < b.N; i++ {
		d, bytes, secs := bootDirect(b, fmt.Sprintf("direct-%d", i), k, archive, disk, man)
		direct += d
		ddBytes += bytes
		ddSeconds += secs
		godwit += bootGodwit(b, fmt.Sprintf("godwit-%d", i), k, archive, man)
	}
	n := float64(b.N)
	b.ReportMetric(direct.Seconds()/n, "s-to-shell-direct")
	b.ReportMetric(godwit.Seconds()/n, "s-to-shell-godwit")
	b.ReportMetric(godwit.Seconds()/direct.Seconds(), "godwit/direct")
	b.ReportMetric(ddBytes/ddSeconds/(1<<20), "MiB/s-vda-read-direct")
}

// bootDirect boots the guest directly under QEMU TCG and returns the time from starting QEMU to
// the shell prompt, then the bytes and guest seconds of a raw read of the whole disk.
func bootDirect(b *testing.B, name string, k initramfs.Kernel, archive, disk string, man initramfs.Manifest) (toShell time.Duration, bytes, seconds float64) {
	start := time.Now()
	m := initramfstest.BootDirect(b, initramfstest.Direct{
		Name: name, Kernel: k, Archive: archive, Disk: disk, CPUs: guestCPUs, MemoryMiB: guestMemMiB,
	})
	initramfstest.WaitShell(m, man, slow)
	toShell = time.Since(start)

	bytes, seconds = guestRead(b, m, name)
	m.Expect(initramfs.Prompt, slow)
	m.SendLine("poweroff")
	m.Expect("reboot: Power down", slow)
	if code, err := m.Wait(time.Minute); err != nil || code != 0 {
		b.Fatalf("[%s] QEMU after poweroff: status %d, %v", name, code, err)
	}
	return toShell, bytes, seconds
}

// godwitWaitShell is initramfstest.WaitShell for the guest of a Godwit VM named lx on m: it
// stops at once, with Godwit's reason, if the VM stops before the initramfs starts.
func godwitWaitShell(b *testing.B, m *rig.Machine, name string, man initramfs.Manifest) {
	got := m.ExpectRegexp(`(`+regexp.QuoteMeta(initramfs.StartedMarker)+`)|vm lx: stopped: ([^\r\n]*)[\r\n]`, slow)
	if got[1] == "" {
		b.Fatalf("[%s] the Godwit guest stopped while booting: %s", name, got[2])
	}
	m.Expect(fmt.Sprintf("%s%d loaded, 0 failed", initramfs.ModulesMarker, len(man.Modules)), slow)
	m.Expect(initramfs.ReadyMarker, slow)
	m.Expect(initramfs.Prompt, slow)
}

// guestRead reads the whole virtio disk /dev/vda of the guest on m ddPasses times and returns
// the bytes read and the guest's seconds for them. It is timed in the guest by its clock
// (/proc/uptime, 10 ms steps), so that neither the emulator's start nor the serial line's echo
// is counted; ddPasses reads of the whole disk keep the clock's step small against the interval.
func guestRead(b *testing.B, m *rig.Machine, name string) (bytes, seconds float64) {
	m.SendLine(fmt.Sprintf("ok=1; a=$(cut -d' ' -f1 /proc/uptime); for p in $(seq %d); do "+
		"dd if=/dev/vda of=/dev/null bs=1M count=%d iflag=direct 2>/tmp/dd.err || { ok=0; break; }; done; "+
		"z=$(cut -d' ' -f1 /proc/uptime); [ $ok = 1 ] && echo dd-done $a $z || cat /tmp/dd.err", ddPasses, ddMiB))
	// /proc/uptime has two decimals ("%lu.%02lu", fs/proc/uptime.c), so the pattern needs nothing
	// after the second number (line ends differ between QEMU's serial and Godwit's console).
	got := m.ExpectRegexp(`dd-done ([0-9]+\.[0-9]{2}) ([0-9]+\.[0-9]{2})`, slow)
	t0, err0 := strconv.ParseFloat(got[1], 64)
	t1, err1 := strconv.ParseFloat(got[2], 64)
	if err0 != nil || err1 != nil || t1 <= t0 {
		b.Fatalf("[%s] dd timing %q..%q: not an interval (%v, %v)", name, got[1], got[2], err0, err1)
	}
	return float64(ddPasses * ddMiB << 20), t1 - t0
}

// bootGodwit boots bin/godwit under QEMU TCG (SVM) with the kernel and the initramfs as
// multiboot modules, creates a VM from them and returns the time from `vm start` to the guest's
// shell prompt on `vm console`.
func bootGodwit(b *testing.B, name string, k initramfs.Kernel, archive string, man initramfs.Manifest) time.Duration {
	m := rig.QEMU(b, rig.Options{Name: name, Modules: []string{k.Image, archive}})
	m.Expect(godwitPrompt, slow)
	cmdline := "console=ttyS0"
	if GodwitExtraCmdline != "" {
		cmdline += " " + GodwitExtraCmdline
	}
	m.SendLine(fmt.Sprintf(`vm create lx kernel=%s initrd=%s mem=%dM cpus=%d cmdline="%s"`,
		filepath.Base(k.Image), filepath.Base(archive), guestMemMiB, guestCPUs, cmdline))
	m.Expect("vm lx: created", slow)
	m.Expect(godwitPrompt, slow)
	start := time.Now()
	m.SendLine("vm start lx")
	m.Expect("vm lx: started", slow)
	m.SendLine("vm console lx")
	m.Expect("connected to lx's console", slow)
	godwitWaitShell(b, m, name, man)
	toShell := time.Since(start)

	// The guest is really there: it runs a command.
	m.SendLine("echo guest-$((6*7))")
	m.Expect("guest-42", slow)
	m.Kill()
	return toShell
}

// GodwitDiskCmdline is the Godwit guest's command line in BenchmarkGodwitGuestDisk: the guest
// finds its virtio-blk disk through ACPI and the I/O APIC, so nothing is turned off here.
const GodwitDiskCmdline = "console=ttyS0"

// BenchmarkGodwitGuestDisk reports, from one run, the read throughput of one disk (a QEMU
// virtio-blk disk of ddMiB that Godwit drives) read raw by Godwit's host driver (`disk bench`,
// 1 MiB reads) and read by the Linux guest to which Godwit gives it whole as its virtio-blk
// disk (the same dd as BenchmarkLinuxGuest's direct guest, whose figure it compares with), and
// their ratio.
func BenchmarkGodwitGuestDisk(b *testing.B) {
	archive, k, man := initramfstest.Build(b)
	disk := initramfstest.Disk(b, ddMiB<<20)
	var hostBytes, hostSeconds, guestBytes, guestSeconds float64
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("godwit-disk-%d", i)
		m := rig.QEMU(b, rig.Options{
			Name:    name,
			Modules: []string{k.Image, archive},
			ExtraArgs: []string{
				"-drive", "file=" + disk + ",if=none,id=hd0,format=raw",
				"-device", "virtio-blk-pci,drive=hd0",
			},
		})
		m.Expect(godwitPrompt, slow)
		for p := 0; p < ddPasses; p++ {
			m.SendLine(fmt.Sprintf("disk bench vda %dM", ddMiB))
			got := m.ExpectRegexp(`disk bench vda: read ([0-9]+) bytes in ([0-9.]+) s: `, slow)
			n, err0 := strconv.ParseFloat(got[1], 64)
			sec, err1 := strconv.ParseFloat(got[2], 64)
			if err0 != nil || err1 != nil || n != ddMiB<<20 || sec <= 0 {
				b.Fatalf("[%s] disk bench: %q bytes in %q s (%v, %v), want %d bytes", name, got[1], got[2], err0, err1, ddMiB<<20)
			}
			hostBytes += n
			hostSeconds += sec
			m.Expect(godwitPrompt, slow)
		}
		m.SendLine(fmt.Sprintf(`vm create lx kernel=%s initrd=%s mem=%dM cpus=%d disk=vda cmdline="%s"`,
			filepath.Base(k.Image), filepath.Base(archive), guestMemMiB, guestCPUs, GodwitDiskCmdline))
		m.Expect("vm lx: created", slow)
		m.SendLine("vm start lx")
		m.Expect("vm lx: started", slow)
		m.SendLine("vm console lx")
		m.Expect("connected to lx's console", slow)
		godwitWaitShell(b, m, name, man)
		n, sec := guestRead(b, m, name)
		guestBytes += n
		guestSeconds += sec
		m.Kill()
	}
	host := hostBytes / hostSeconds / (1 << 20)
	guest := guestBytes / guestSeconds / (1 << 20)
	b.ReportMetric(host, "MiB/s-vda-read-godwit-host")
	b.ReportMetric(guest, "MiB/s-vda-read-godwit-guest")
	b.ReportMetric(guest/host, "guest/host")
}
