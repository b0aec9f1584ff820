package kerneltest

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/internal/rig"
)

// TestGuestNetworkQEMU is issue 7's must-show 3: two Godwit hosts in QEMU TCG, each with a
// virtio-net NIC in the vm role, joined by a socket netdev cable on loopback; each runs a Linux
// guest (Debian's kernel, the project's initramfs) with a NIC on its host's virtual switch.
// The guests ping each other through both switches and uplinks, and one fetches a file from
// the other over TCP (BusyBox httpd and wget), compared by checksum.
func TestGuestNetworkQEMU(t *testing.T) {
	t.Parallel()
	kernel := debianKernel(t)
	port := loopbackPort(t)
	const slow = 4 * time.Minute
	host := func(name string, n int, role string) *linuxGuest {
		m := rig.QEMU(t, rig.Options{
			Name:      name,
			MemoryMiB: 768,
			Modules:   []string{kernel, initramfsPath},
			Cmdline:   "godwit.net=net0:vm",
			ExtraArgs: []string{
				"-netdev", fmt.Sprintf("socket,id=up,%s=127.0.0.1:%d", role, port),
				"-device", fmt.Sprintf("virtio-net-pci,netdev=up,mac=52:54:00:00:0%d:01,addr=3", n),
			},
		})
		m.ExpectRegexp(fmt.Sprintf(`godwit: net0: virtio-net 52:54:00:00:0%d:01 at 00:03\.0, link up`, n), time.Minute)
		m.Expect(Prompt, time.Minute)
		return &linuxGuest{t: t, m: m, kernel: filepath.Base(kernel), slow: slow}
	}
	a := host("guestnet-a", 1, "listen") // listens: up before B connects
	b := host("guestnet-b", 2, "connect")
	for i, g := range []*linuxGuest{a, b} {
		g.shell(fmt.Sprintf(`vm create g kernel=%s initrd=%s mem=256M nic=net0/02:00:00:00:00:0%d cmdline="console=ttyS0"`,
			g.kernel, filepath.Base(initramfsPath), i+1), "vm g: created")
		g.shell("vm start g", "vm g: started")
		g.attach("g") // each host has its own console: both guests boot at once
	}
	for i, g := range []*linuxGuest{a, b} {
		g.guestReady()
		g.run(fmt.Sprintf("ip addr add 10.9.0.%d/24 dev eth0 && ip link set eth0 up && echo up-$((40+2))", i+1), "up-42", time.Minute)
	}
	// A serves a file of random bytes; B pings A and fetches it.
	sum := a.runRe("mkdir -p /www && dd if=/dev/urandom of=/www/blob bs=1k count=1024 2>/dev/null && httpd -p 8080 -h /www && md5sum /www/blob",
		`([0-9a-f]{32})  /www/blob`, time.Minute)[1]
	b.run("ping -c 3 10.9.0.1", "3 packets transmitted, 3 packets received", 2*time.Minute)
	b.run("wget -q -O /tmp/blob http://10.9.0.1:8080/blob && md5sum /tmp/blob", sum+"  /tmp/blob", 2*time.Minute)
	a.run("ping -c 3 10.9.0.2", "3 packets transmitted, 3 packets received", 2*time.Minute)
	// Each guest's port on its switch counted the traffic.
	for _, g := range []*linuxGuest{a, b} {
		g.detach("g")
		g.m.SendLine("vm list")
		got := g.m.ExpectRegexp(`g\.net0 02:00:00:00:00:0\d: rx (\d+) packets (\d+) bytes, tx (\d+) packets`, time.Minute)
		t.Logf("%s: guest port rx %s packets %s bytes, tx %s packets", g.m.Name(), got[1], got[2], got[3])
		g.m.Expect(Prompt, time.Minute)
		g.m.SendLine("poweroff")
		if _, err := g.m.Wait(2 * time.Minute); err != nil {
			t.Errorf("%s after poweroff: %v", g.m.Name(), err)
		}
	}
}
