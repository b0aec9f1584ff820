package kerneltest

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/internal/rig"
)

// loopbackPort returns a TCP port on 127.0.0.1 that was free a moment ago, for QEMU's
// -netdev socket,listen= (QEMU binds it itself, so there is a small window for a clash).
func loopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free loopback port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestNICBootQEMU: the boot probe binds QEMU's e1000 (82540EM), virtio-net, e1000-82545em and
// e1000-82544gc in PCI order as net0..net3 with the MACs given on QEMU's command line, reports
// their link, and reports and skips a virtio-net function without the modern interface; `nic`
// shows each driver's model and interrupt mode. The e1000
// and the virtio-net are joined by a socket netdev pair (a cable between them).
func TestNICBootQEMU(t *testing.T) {
	t.Parallel()
	port := loopbackPort(t)
	m := rig.QEMU(t, rig.Options{Name: "nic-boot", ExtraArgs: []string{
		"-netdev", fmt.Sprintf("socket,id=n0,listen=127.0.0.1:%d", port),
		"-device", "e1000,netdev=n0,mac=52:54:00:00:00:01,addr=3",
		"-netdev", fmt.Sprintf("socket,id=n1,connect=127.0.0.1:%d", port),
		"-device", "virtio-net-pci,netdev=n1,mac=52:54:00:00:00:02,addr=4",
		"-netdev", "user,id=n2",
		"-device", "virtio-net-pci,netdev=n2,mac=52:54:00:00:00:03,addr=5,disable-modern=on,disable-legacy=off",
		"-netdev", "user,id=n3",
		"-device", "e1000-82545em,netdev=n3,mac=52:54:00:00:00:04,addr=6",
		"-netdev", "user,id=n4",
		"-device", "e1000-82544gc,netdev=n4,mac=52:54:00:00:00:05,addr=7",
	}})
	start := time.Now()
	for _, want := range []string{
		`godwit: net0: e1000 52:54:00:00:00:01 at 00:03\.0, link up`,
		`godwit: net1: virtio-net 52:54:00:00:00:02 at 00:04\.0, link up`,
		`godwit: NIC virtio-net at 00:05\.0: .*no modern .*skipped`,
		`godwit: net2: e1000 52:54:00:00:00:04 at 00:06\.0, link up`,
		`godwit: net3: e1000 52:54:00:00:00:05 at 00:07\.0, link up`,
	} {
		m.ExpectRegexp(want, time.Minute)
	}
	m.Expect(Prompt, time.Minute)
	t.Logf("prompt after %v", time.Since(start).Round(time.Millisecond))

	// The drivers' view: models, interrupt modes (the 8254x on INTx, virtio-net on MSI-X).
	m.SendLine("nic")
	for _, want := range []string{
		`net0\s+52:54:00:00:00:01\s+e1000 \(82540EM\) at 00:03\.0, link up 1000 Mb/s full duplex, INTx GSI \d+ level`,
		`net1\s+52:54:00:00:00:02\s+virtio-net at 00:04\.0, link up, MSI-X vectors`,
		`net2\s+52:54:00:00:00:04\s+e1000 \(82545EM\) at 00:06\.0, link up`,
		`net3\s+52:54:00:00:00:05\s+e1000 \(82544GC\) at 00:07\.0, link up`,
		`not started: virtio-net at 00:05\.0`,
	} {
		m.ExpectRegexp(want, 30*time.Second)
	}
	m.Expect(Prompt, 30*time.Second)
	m.SendLine("poweroff")
	m.Expect("powering off", 30*time.Second)
	if _, err := m.Wait(2 * time.Minute); err != nil {
		t.Fatalf("after poweroff: %v", err)
	}
}
