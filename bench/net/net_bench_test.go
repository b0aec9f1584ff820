package netbench

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/guest/initramfs"
	"github.com/godwit-hv/godwit/guest/initramfs/initramfstest"
	"github.com/godwit-hv/godwit/hostnet/nic"
	"github.com/godwit-hv/godwit/internal/rig"
)

// What one transfer moves: the same number of bytes between the Godwit hosts (`net test HOST
// 64M`) and between the Linux VMs (dd bs=1M count=64 into nc). Under TCG on an idle 2-core
// machine the Godwit transfer takes about 10 s; the whole run stays within four minutes.
const (
	transferMiB   = 64
	transferBytes = transferMiB << 20
	transferArg   = "64M" // `net test`'s SIZE for transferBytes (cmd/godwit parseNetSize)
)

// Every machine gets the same emulated hardware: QEMU TCG's "max" CPU (rig's default), one CPU,
// vmMemMiB of memory, and virtio-net-pci NICs (modern virtio-pci) on -netdev socket cables on
// loopback.
const (
	vmMemMiB = 512
	vmCPUs   = "1" // QEMU -smp
)

// linkMTU is the IP MTU on the measured link: Godwit's NIC drivers fix it at nic.DefaultMTU
// (1500, the basic Ethernet frame of IEEE 802.3-2018, 3.2.7, less header and FCS), and the
// Linux VMs set eth0 to it and read it back.
const linkMTU = nic.DefaultMTU

// TCP ports of the Linux VMs' servers (any unprivileged ports would do): BusyBox httpd on A,
// nc -l on B.
const (
	httpPort = 8080
	ncPort   = 5001
)

// rxBytesFile is the count of bytes a Linux VM's eth0 has received
// (Documentation/ABI/testing/sysfs-class-net-statistics).
const rxBytesFile = "/sys/class/net/eth0/statistics/rx_bytes"

// slow bounds each wait on a machine; boots and transfers under a loaded 2-core machine take
// several times the idle figures.
const slow = 3 * time.Minute

// godwitPrompt is the admin shell's prompt (cmd/godwit).
const godwitPrompt = "godwit> "

// Every transfer is timed by the host's wall clock, between the lines the guest that runs it
// prints on its serial console just before and just after it (the rig sees serial output as
// QEMU writes it, and waits for it event-driven). The guests' own clocks are not the ruler:
// Godwit calibrates its TSC at boot, and under a loaded QEMU TCG that calibration can be far off
// (on 2026-11-22 one boot found "TSC 12069 MHz" where others found 2600 MHz; that host's clock
// then ran at 0.21 of real time: `net test` printed 4.06 s for 19.0 s of wall time and its
// `ping` sent a request every 4.6 s), so what `net test` prints is reported only as the ratio
// godwit-clock/wall. The Linux guest's clock (/proc/uptime) is checked against the host's for
// each transfer: it must not exceed the wall-clock interval by more than clockFast (plus
// clockSlack: the guest's clock has 10 ms steps, and the serial line adds its latency), nor
// fall below clockSlowFactor of it (less clockSlack); outside that window the host's
// timestamps would be as suspect as the guest's.
const (
	clockFast       = 0.05
	clockSlowFactor = 0.5
	clockSlack      = 500 * time.Millisecond
)

// BenchmarkNetTest reports, from one run:
//
//   - MiB/s-godwit-net-test: `net test 10.1.0.1 64M` run on Godwit host B against host A's
//     built-in test service over their migration NICs (net1). The time runs from the line
//     `net test: N bytes from ...` (printed before the connection is opened) to the result
//     line, so it includes the connection's setup, generating the pseudo-random data on A and
//     its CRC-32C on B (hostnet/testsvc.go); both ends move it in 64 KiB calls.
//   - MiB/s-linux-vms: two Linux VMs (Debian's kernel and the project's initramfs), B fetching
//     a 64 MiB file of zeros from A's BusyBox httpd with BusyBox wget -O /dev/null: httpd sends
//     it with sendfile(2) and wget reads in calls of 4 to 60 KiB (both seen with strace), so the
//     figure is the network's, not the tools'. Timed on B from before wget starts to after it exits, so it includes the
//     connection's setup and the HTTP request; no checksum.
//   - MiB/s-linux-vms-nc: the same VMs, A running `dd if=/dev/zero bs=1M count=64 | nc` to B's
//     `nc -l > /dev/null`. BusyBox's nc copies through a 1 KiB buffer with a select(2) per
//     copy (seen with strace: read(0, ..., 1024)), and under TCG those system calls, not the
//     network, bound it (the sender spent 13.2 s of 14.1 s in the kernel in a trial). Timed on
//     A from before dd starts to after nc exits, which BusyBox's nc does only once the
//     receiver has read everything and closed (it shuts down its sending half at the end of
//     its input and exits when the peer's side ends).
//   - godwit/linux: MiB/s-godwit-net-test over MiB/s-linux-vms.
//   - godwit-clock/wall: the transfer time `net test` itself printed (Godwit's clock) over the
//     host's wall-clock time for it; 1 for a Godwit whose clock keeps real time.
//
// The Godwit pair and the Linux pair run one after the other, never at the same time, so that
// they do not share the host's CPUs.
func BenchmarkNetTest(b *testing.B) {
	archive, k, man := initramfstest.Build(b)
	var godwitWall, godwitOwn, httpWall, ncWall time.Duration
	for i := 0; i < b.N; i++ {
		wall, own := godwitPair(b, i)
		godwitWall += wall
		godwitOwn += own
		h, n := linuxPair(b, i, k, archive, man)
		httpWall += h
		ncWall += n
	}
	mibps := func(d time.Duration) float64 { return float64(b.N*transferBytes) / d.Seconds() / (1 << 20) }
	b.ReportMetric(mibps(godwitWall), "MiB/s-godwit-net-test")
	b.ReportMetric(mibps(httpWall), "MiB/s-linux-vms")
	b.ReportMetric(mibps(ncWall), "MiB/s-linux-vms-nc")
	b.ReportMetric(mibps(godwitWall)/mibps(httpWall), "godwit/linux")
	b.ReportMetric(godwitOwn.Seconds()/godwitWall.Seconds(), "godwit-clock/wall")
}

// loopbackPort returns a TCP port on 127.0.0.1 that was free a moment ago, for QEMU's
// -netdev socket,listen= (QEMU binds it itself, so there is a small window for a clash).
func loopbackPort(b *testing.B) int {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatalf("finding a free loopback port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// cable returns the -netdev options of the two ends of a socket cable on loopback port: end
// "listen" (the machine started first) and end "connect".
func cable(id string, port int) (listen, connect string) {
	return fmt.Sprintf("socket,id=%s,listen=127.0.0.1:%d", id, port),
		fmt.Sprintf("socket,id=%s,connect=127.0.0.1:%d", id, port)
}

// godwitPair boots Godwit hosts A (10.0.0.1 management, 10.1.0.1 migration; the listening ends
// of both cables) and B (10.0.0.2, 10.1.0.2), pings A's migration address from B, runs `net
// test` from B to A over the migration link and returns the transfer's time by the host's wall
// clock and the time `net test` printed (by Godwit's clock).
func godwitPair(b *testing.B, run int) (wall, own time.Duration) {
	mgmtL, mgmtC := cable("mgmt", loopbackPort(b))
	migrL, migrC := cable("migr", loopbackPort(b))
	host := func(n int, mgmt, migr string) *rig.Machine {
		return rig.QEMU(b, rig.Options{
			Name:      fmt.Sprintf("godwit-%c-%d", 'a'+n-1, run),
			MemoryMiB: vmMemMiB,
			Cmdline:   fmt.Sprintf("godwit.net=net0:management:10.0.0.%d/24,net1:migration:10.1.0.%d/24", n, n),
			ExtraArgs: []string{
				"-smp", vmCPUs,
				"-netdev", mgmt,
				"-device", fmt.Sprintf("virtio-net-pci,netdev=mgmt,mac=52:54:00:00:0%d:01,addr=3", n),
				"-netdev", migr,
				"-device", fmt.Sprintf("virtio-net-pci,netdev=migr,mac=52:54:00:00:0%d:02,addr=4", n),
			},
		})
	}
	boot := func(m *rig.Machine, n int) {
		m.ExpectRegexp(fmt.Sprintf(`godwit: net0: virtio-net 52:54:00:00:0%d:01 at 00:03\.0, link up`, n), slow)
		m.ExpectRegexp(fmt.Sprintf(`godwit: net1: virtio-net 52:54:00:00:0%d:02 at 00:04\.0, link up`, n), slow)
		m.ExpectRegexp(fmt.Sprintf(`godwit: net: net1: migration 10\.1\.0\.%d/24`, n), slow)
		m.Expect(godwitPrompt, slow)
	}
	// A holds the listening ends, so QEMU A must have bound them before QEMU B connects.
	a := host(1, mgmtL, migrL)
	boot(a, 1)
	hb := host(2, mgmtC, migrC)
	boot(hb, 2)

	hb.SendLine("ping 10.1.0.1 3")
	got := hb.ExpectRegexp(`--- 10\.1\.0\.1: 3 sent, (\d) received`, slow)
	if n, _ := strconv.Atoi(got[1]); n < 2 {
		b.Fatalf("[%s] ping 10.1.0.1: %s of 3 replies, want at least 2", hb.Name(), got[1])
	}
	hb.Expect(godwitPrompt, slow)

	hb.SendLine("net test 10.1.0.1 " + transferArg)
	hb.ExpectRegexp(fmt.Sprintf(`net test: %d bytes from 10\.1\.0\.1:\d+ via net1 \(migration\)`, transferBytes), slow)
	t0 := time.Now()
	got = hb.ExpectRegexp(`(?:(\d+) bytes in ([0-9.]+) s: \S+ MiB/s, checksum (ok|MISMATCH))|(net: [^\r\n]*)`, slow)
	wall = time.Since(t0)
	if got[4] != "" {
		b.Fatalf("[%s] net test 10.1.0.1 %s: %s", hb.Name(), transferArg, got[4])
	}
	if got[1] != strconv.Itoa(transferBytes) || got[3] != "ok" {
		b.Fatalf("[%s] net test: %s bytes, checksum %s; want %d bytes, checksum ok", hb.Name(), got[1], got[3], transferBytes)
	}
	secs, err := strconv.ParseFloat(got[2], 64)
	if err != nil {
		b.Fatalf("[%s] net test: time %q: %v", hb.Name(), got[2], err)
	}
	own = time.Duration(secs * float64(time.Second))
	b.Logf("godwit: %d bytes in %v by the host's wall clock (%.1f MiB/s); %v by Godwit's clock (%.1f MiB/s)",
		transferBytes, wall.Round(time.Millisecond), float64(transferBytes)/wall.Seconds()/(1<<20),
		own, float64(transferBytes)/secs/(1<<20))
	hb.Expect(godwitPrompt, slow)

	for _, m := range []*rig.Machine{hb, a} {
		m.SendLine("poweroff")
		m.Expect("powering off", slow)
		if _, err := m.Wait(2 * time.Minute); err != nil {
			b.Fatalf("[%s] after poweroff: %v", m.Name(), err)
		}
	}
	return wall, own
}

// linuxPair boots Linux VMs A (10.1.0.1, the listening end of the cable) and B (10.1.0.2)
// directly under QEMU TCG and moves transferBytes from A to B twice: with httpd and wget, then
// with dd and nc. It returns the two transfers' times by the host's wall clock, each once the
// guest's clock has agreed with it.
func linuxPair(b *testing.B, run int, k initramfs.Kernel, archive string, man initramfs.Manifest) (http, nc time.Duration) {
	migrL, migrC := cable("migr", loopbackPort(b))
	vm := func(n int, migr string) *rig.Machine {
		m := rig.QEMU(b, rig.Options{
			Name:      fmt.Sprintf("linux-%c-%d", 'a'+n-1, run),
			Image:     k.Image,
			Cmdline:   "console=ttyS0",
			Modules:   []string{archive},
			MemoryMiB: vmMemMiB,
			ExtraArgs: []string{
				"-smp", vmCPUs,
				"-netdev", migr,
				"-device", fmt.Sprintf("virtio-net-pci,netdev=migr,mac=52:54:00:00:1%d:02,addr=4", n),
			},
		})
		initramfstest.WaitShell(m, man, slow)
		// BusyBox applets the transfers need (Debian's busybox-static has them all).
		m.SendLine("for c in ip ping httpd wget nc dd netstat usleep cut; do command -v $c >/dev/null || echo missing-applet-$c; done; echo applets-$((40+2))")
		if got := m.ExpectRegexp(`missing-applet-([a-z]+)[\r\n]|applets-42`, slow); got[1] != "" {
			b.Fatalf("[%s] the initramfs has no %s: install Debian's busybox-static (`make deps`)", m.Name(), got[1])
		}
		m.Expect(initramfs.Prompt, slow)
		m.SendLine(fmt.Sprintf("ip addr add 10.1.0.%d/24 dev eth0 && ip link set eth0 mtu %d up && "+
			"echo eth0-up-mtu-$(cat /sys/class/net/eth0/mtu) || echo eth0-failed-$((40+2))", n, linkMTU))
		got := m.ExpectRegexp(`eth0-up-mtu-(\d+)[\r\n]|(eth0-failed-42)`, slow)
		if got[2] != "" || got[1] != strconv.Itoa(linkMTU) {
			b.Fatalf("[%s] eth0: configuring 10.1.0.%d/24 with MTU %d failed (MTU %q)", m.Name(), n, linkMTU, got[1])
		}
		m.Expect(initramfs.Prompt, slow)
		return m
	}
	// A holds the listening end, so QEMU A must have bound it before QEMU B connects.
	a := vm(1, migrL)
	vb := vm(2, migrC)

	a.SendLine("ping -c 3 10.1.0.2")
	got := a.ExpectRegexp(`(\d+) packets transmitted, (\d+) packets received`, slow)
	if n, _ := strconv.Atoi(got[2]); n < 2 {
		b.Fatalf("[%s] ping 10.1.0.2: %s of %s replies, want at least 2", a.Name(), got[2], got[1])
	}
	a.Expect(initramfs.Prompt, slow)

	// HTTP: A serves the file from its root file system (in RAM); httpd binds its port before
	// it puts itself in the background.
	a.SendLine(fmt.Sprintf("mkdir -p /srv && dd if=/dev/zero of=/srv/f bs=1M count=%d 2>/dev/null && httpd -p %d -h /srv && "+
		"echo httpd-up-$((40+2)) || echo httpd-failed-$((40+2))", transferMiB, httpPort))
	if got := a.ExpectRegexp(`httpd-(up|failed)-42`, slow); got[1] != "up" {
		b.Fatalf("[%s] creating /srv/f or starting httpd failed", a.Name())
	}
	a.Expect(initramfs.Prompt, slow)
	r0 := rxBytes(b, vb)
	http, status := timedTransfer(b, vb, "http", fmt.Sprintf("wget -q -O /dev/null http://10.1.0.1:%d/f", httpPort))
	if status != "0" {
		b.Fatalf("[%s] wget http://10.1.0.1:%d/f: status %s", vb.Name(), httpPort, status)
	}
	checkReceived(b, vb, r0)

	// nc: B listens in the foreground (its stdin is the idle console: nc would end the
	// transfer early on an input that ends) and says, from a background subshell, when the
	// port is open, and nc's status after it.
	r0 = rxBytes(b, vb)
	vb.SendLine(fmt.Sprintf("(until netstat -ltn | grep -q ':%[1]d '; do usleep 10000; done; echo nc-listening-$((40+2))) & "+
		"nc -l -p %[1]d >/dev/null; echo nc-rx-exit-$?", ncPort))
	vb.Expect("nc-listening-42", slow)
	nc, status = timedTransfer(b, a, "nc", fmt.Sprintf("dd if=/dev/zero bs=1M count=%d 2>/tmp/dd.err | nc 10.1.0.2 %d", transferMiB, ncPort))
	if status != "0" {
		b.Fatalf("[%s] dd | nc 10.1.0.2 %d: nc exited with status %s", a.Name(), ncPort, status)
	}
	a.SendLine("cat /tmp/dd.err")
	a.Expect(fmt.Sprintf("%d+0 records out", transferMiB), slow)
	a.Expect(initramfs.Prompt, slow)
	if got := vb.ExpectRegexp(`nc-rx-exit-(\d+)[\r\n]`, slow); got[1] != "0" {
		b.Fatalf("[%s] nc -l: status %s", vb.Name(), got[1])
	}
	vb.Expect(initramfs.Prompt, slow)
	checkReceived(b, vb, r0)

	for _, m := range []*rig.Machine{vb, a} {
		m.SendLine("poweroff")
		m.Expect("reboot: Power down", slow)
		if code, err := m.Wait(time.Minute); err != nil || code != 0 {
			b.Fatalf("[%s] QEMU after poweroff: status %d, %v", m.Name(), code, err)
		}
	}
	return http, nc
}

// timedTransfer runs the shell command cmd on the Linux VM m, at its prompt, between two lines
// it prints and two readings of its clock, and returns the host's wall-clock time between the
// two lines and cmd's exit status. The guest's reading must agree with the host's (clockAgrees).
func timedTransfer(b *testing.B, m *rig.Machine, tag, cmd string) (wall time.Duration, status string) {
	b.Helper()
	m.SendLine(fmt.Sprintf("echo %[1]s-start-$((40+2)); a=$(cut -d' ' -f1 /proc/uptime); %[2]s; s=$?; "+
		"z=$(cut -d' ' -f1 /proc/uptime); echo %[1]s-done-$s $a $z", tag, cmd))
	m.Expect(tag+"-start-42", slow)
	t0 := time.Now()
	// /proc/uptime has two decimals ("%lu.%02lu", fs/proc/uptime.c).
	got := m.ExpectRegexp(tag+`-done-(\d+) ([0-9]+\.[0-9]{2}) ([0-9]+\.[0-9]{2})`, slow)
	wall = time.Since(t0)
	start, err0 := strconv.ParseFloat(got[2], 64)
	end, err1 := strconv.ParseFloat(got[3], 64)
	if err := errors.Join(err0, err1); err != nil || end <= start {
		b.Fatalf("[%s] %s: timing %q..%q: not an interval (%v)", m.Name(), tag, got[2], got[3], err)
	}
	guest := time.Duration((end - start) * float64(time.Second))
	if err := clockAgrees(guest, wall); err != nil {
		b.Fatalf("[%s] %s: the guest's clock: %v", m.Name(), tag, err)
	}
	m.Expect(initramfs.Prompt, slow)
	b.Logf("linux %s: %d bytes in %v by the host's wall clock (%.1f MiB/s); %v by %s's clock (%.1f MiB/s)",
		tag, transferBytes, wall.Round(time.Millisecond), float64(transferBytes)/wall.Seconds()/(1<<20),
		guest, m.Name(), float64(transferBytes)/guest.Seconds()/(1<<20))
	return wall, got[1]
}

// rxBytes returns the bytes the Linux VM m's eth0 has received; m must be at its prompt. (A
// number at the end of a pattern is bounded by the line's end: serial output arrives in pieces,
// and a pattern matches as soon as it can.)
func rxBytes(b *testing.B, m *rig.Machine) int64 {
	b.Helper()
	m.SendLine("echo rx-bytes-$(cat " + rxBytesFile + ")")
	got := m.ExpectRegexp(`rx-bytes-(\d+)[\r\n]`, slow)
	m.Expect(initramfs.Prompt, slow)
	n, err := strconv.ParseInt(got[1], 10, 64)
	if err != nil {
		b.Fatalf("[%s] %s: %v", m.Name(), rxBytesFile, err)
	}
	return n
}

// checkReceived fails the benchmark unless the Linux VM m's eth0 has received at least
// transferBytes since it had received before bytes.
func checkReceived(b *testing.B, m *rig.Machine, before int64) {
	b.Helper()
	if got := rxBytes(b, m) - before; got < transferBytes {
		b.Fatalf("[%s] eth0 received %d bytes during the transfer, want at least %d", m.Name(), got, transferBytes)
	}
}

// clockAgrees checks a transfer time a guest measured with its own clock against wall, the
// host's wall-clock time between the guest's lines before and after the transfer (see
// clockFast, clockSlowFactor and clockSlack).
func clockAgrees(guest, wall time.Duration) error {
	switch {
	case guest <= 0:
		return fmt.Errorf("measured %v, not a duration", guest)
	case guest > wall+time.Duration(clockFast*float64(wall))+clockSlack:
		return fmt.Errorf("measured %v, more than the host's %v: the guest's clock runs fast", guest, wall)
	case guest < time.Duration(clockSlowFactor*float64(wall))-clockSlack:
		return fmt.Errorf("measured %v, under %.0f%% of the host's %v: the guest's clock runs slow", guest, 100*clockSlowFactor, wall)
	}
	return nil
}

// TestClockAgrees: the window clockAgrees accepts.
func TestClockAgrees(t *testing.T) {
	for _, c := range []struct {
		guest, wall time.Duration
		ok          bool
	}{
		{10 * time.Second, 10 * time.Second, true},
		{10 * time.Second, 10200 * time.Millisecond, true}, // serial latency
		{10 * time.Second, 9800 * time.Millisecond, true},  // a 10 ms clock step and latency
		{10*time.Second + 900*time.Millisecond, 10 * time.Second, true},
		{12 * time.Second, 10 * time.Second, false},       // fast
		{4600 * time.Millisecond, 10 * time.Second, true}, // setup and a loaded host
		{4 * time.Second, 20 * time.Second, false},        // slow
		{0, time.Second, false},
		{-time.Second, time.Second, false},
	} {
		if err := clockAgrees(c.guest, c.wall); (err == nil) != c.ok {
			t.Errorf("clockAgrees(%v, %v) = %v, want ok %v", c.guest, c.wall, err, c.ok)
		}
	}
}
