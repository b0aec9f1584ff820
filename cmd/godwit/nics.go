package main

import (
	"fmt"
	"sync"

	"github.com/godwit-hv/godwit/arch/net/e1000"
	"github.com/godwit-hv/godwit/arch/net/virtionet"
	"github.com/godwit-hv/godwit/arch/pci"
	"github.com/godwit-hv/godwit/arch/ring0"
	"github.com/godwit-hv/godwit/hostnet/nic"
)

// The host's NICs: every Intel 8254x and virtio-net function, in PCI scan order, started and
// registered with hostnet/nic (which names them net0, net1, ...) once, at boot, before any
// other startup hook runs, so that the network stack's hook finds them all.

var nicProbe struct {
	sync.Once
	errs []error
}

func init() {
	// First among the startup hooks, whatever the order of the files' init functions: the hooks
	// registered before this one (files sorted before nics.go, such as net.go) come after it,
	// and later ones are appended behind it anyway.
	startupHooks = append([]func(){func() { probeNICs() }}, startupHooks...)
	extraCommands = append(extraCommands, &command{"nic", "nic",
		"host NIC drivers: device, interrupt mode, rings, driver counters, and NICs that failed to start",
		cmdNIC})
}

// cmdNIC lists the registered NICs as their drivers see them (the network view, with roles
// and addresses, is `net`).
func cmdNIC(sh *shell, args []string) error {
	if len(args) != 0 {
		return errUsage
	}
	errs := probeNICs()
	links := nic.Links()
	if len(links) == 0 {
		fmt.Fprintln(sh.out, "no NICs")
	}
	for _, r := range links {
		info := r.Link.Description()
		if i, ok := r.Link.(interface{ Info() string }); ok {
			info = i.Info()
		}
		fmt.Fprintf(sh.out, "%-5s %v  %s\n      %v\n", r.Name, r.Link.MAC(), info, r.Link.Stats())
	}
	for _, e := range errs {
		fmt.Fprintf(sh.out, "not started: %v\n", e)
	}
	return nil
}

// probeNICs starts the drivers of the host's NICs and registers them, once; later calls
// return at once with the errors of the first. It prints one line per NIC and one per
// function that failed to start (which is skipped).
func probeNICs() []error {
	nicProbe.Do(func() {
		if !ring0.BareMetal() {
			nicProbe.errs = []error{fmt.Errorf("host NICs: %w", ring0.ErrNotBareMetal)}
			return
		}
		devs, err := pci.Devices()
		if err != nil {
			err = fmt.Errorf("host NICs: PCI scan: %w", err)
			fmt.Println("godwit:", err)
			nicProbe.errs = append(nicProbe.errs, err)
		}
		for _, d := range devs {
			var l nic.Link
			var kind string
			var err error
			switch {
			case e1000.Match(d):
				kind = "e1000"
				var n *e1000.NIC
				if n, err = e1000.Open(d, nicLogf); err == nil {
					l = n
				}
			case virtionet.Match(d):
				kind = "virtio-net"
				var n *virtionet.NIC
				if n, err = virtionet.Open(d, nicLogf); err == nil {
					l = n
				}
			default:
				continue
			}
			if err != nil {
				err = fmt.Errorf("%s at %v: %w", kind, d.Addr, err)
				fmt.Printf("godwit: NIC %v, skipped\n", err)
				nicProbe.errs = append(nicProbe.errs, err)
				continue
			}
			name := nic.Register(l)
			fmt.Printf("godwit: %s: %s %v at %v, link %s\n", name, kind, l.MAC(), d.Addr, linkWord(l.Up()))
		}
	})
	return nicProbe.errs
}

func nicLogf(format string, args ...any) { fmt.Printf("godwit: "+format+"\n", args...) }

func linkWord(up bool) string {
	if up {
		return "up"
	}
	return "down"
}
