package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/godwit-hv/godwit/hostnet"
	"github.com/godwit-hv/godwit/hostnet/linktest"
	"github.com/godwit-hv/godwit/hostnet/nic"
	"github.com/godwit-hv/godwit/hv/vswitch"
)

func netTestHost(t *testing.T, spec string, links ...nic.Link) *hostnet.Host {
	t.Helper()
	specs, err := hostnet.ParseSpecs(spec)
	if err != nil {
		t.Fatal(err)
	}
	h := hostnet.NewHost(hostnet.Options{Logf: t.Logf, TestService: true})
	h.SetSpecs(specs)
	for i, l := range links {
		if _, err := h.Attach(nic.Registered{Name: "net" + string(rune('0'+i)), Index: i, Link: l}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(h.Close)
	return h
}

func setNetHost(t *testing.T, h *hostnet.Host, sw map[string]*vswitch.Switch) {
	netState.mu.Lock()
	netState.host, netState.switches = h, sw
	netState.mu.Unlock()
	t.Cleanup(func() {
		netState.mu.Lock()
		netState.host, netState.switches = nil, nil
		netState.mu.Unlock()
	})
}

func TestNetCommands(t *testing.T) {
	var out bytes.Buffer
	sh := newShell(strings.NewReader(""), &out, newFakeHost())
	run := func(line string) string {
		out.Reset()
		sh.Exec(line)
		return out.String()
	}
	if got := run("net"); !strings.Contains(got, "host networking is not started") {
		t.Errorf("net before start = %q", got)
	}

	a, b := linktest.Pair(linktest.MAC(1), linktest.MAC(2), linktest.Options{})
	defer a.Close()
	up, far := linktest.Pair(linktest.MAC(3), linktest.MAC(4), linktest.Options{})
	defer up.Close()
	ha := netTestHost(t, "net0:management:10.0.0.1/24,net1:vm", a, up)
	netTestHost(t, "net0:management:10.0.0.2/24", b)
	_ = far
	sw := vswitch.New("net1", vswitch.Options{})
	ifc, _ := ha.Interface("net1")
	if _, err := sw.AttachUplink("net1", ifc.Link); err != nil {
		t.Fatal(err)
	}
	setNetHost(t, ha, map[string]*vswitch.Switch{"net1": sw})

	for _, tc := range []struct {
		line string
		want []string
	}{
		{"net", []string{"net0  management 02:00:5e:00:00:01  10.0.0.1/24", "link up", "net1  vm", "(uplink)", "switch port net1", "0 MACs learned"}},
		{"ping 10.0.0.2 2", []string{"PING 10.0.0.2: 56 data bytes", "64 bytes from 10.0.0.2: seq=1", "seq=2", "2 sent, 2 received, 0% loss, rtt min/avg/max"}},
		{"ping 10.0.0.99 1", []string{"no reply from 10.0.0.99: seq=1", "1 sent, 0 received, 100% loss", "ping: no replies from 10.0.0.99"}},
		{"ping godwit-b", []string{`ping: unknown host "godwit-b"`}},
		{"ping 10.0.0.2 0", []string{`ping: bad count "0"`}},
		{"ping", []string{"usage: ping HOST [COUNT]"}},
		{"net test 10.0.0.2 8M", []string{"net test: 8388608 bytes from 10.0.0.2:7700 via net0 (management)", "MiB/s, checksum ok"}},
		{"net test 10.0.0.2 12Q", []string{`net: bad size "12Q"`}},
		{"net test 10.0.0.2 0", []string{`net: bad size "0"`}},
		{"net test", []string{"usage: net | net test HOST [SIZE]"}},
		{"net test 10.0.0.3 1K", []string{"net: net test: dial 10.0.0.3:7700"}},
		{"net bogus", []string{"usage: net"}},
	} {
		got := run(tc.line)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%q printed:\n%s\nwant it to contain %q", tc.line, got, w)
			}
		}
	}

	// A host with only a vm uplink: no host stack NIC to ping from.
	vmOnly := netTestHost(t, "net0:vm", far)
	setNetHost(t, vmOnly, nil)
	if got := run("ping 10.0.0.2 1"); !strings.Contains(got, "no management or migration NIC has an address") {
		t.Errorf("ping without a host NIC = %q", got)
	}
	if got := run("net test 10.0.0.2 1K"); !strings.Contains(got, "no NIC reaches 10.0.0.2") {
		t.Errorf("net test without a host NIC = %q", got)
	}
	setNetHost(t, netTestHost(t, "net0:vm"), nil)
	if got := run("net"); !strings.Contains(got, "no host NICs") {
		t.Errorf("net without NICs = %q", got)
	}
}

func TestNetBootOption(t *testing.T) {
	defer func() {
		netState.mu.Lock()
		netState.specs, netState.set = nil, false
		netState.mu.Unlock()
	}()
	_, warn := parseBootOptions("godwit.net=net0:management:10.0.0.1/24,net1:vm")
	if len(warn) != 0 {
		t.Errorf("good godwit.net: warnings %v", warn)
	}
	if len(netState.specs) != 2 || netState.specs[1].Role != hostnet.RoleVM {
		t.Errorf("specs = %v", netState.specs)
	}
	_, warn = parseBootOptions("godwit.net=net0:storage:10.0.0.1/24")
	if len(warn) != 1 || !strings.Contains(warn[0], "boot option godwit.net") || !strings.Contains(warn[0], "unknown NIC role") {
		t.Errorf("bad godwit.net: warnings %v", warn)
	}
}

func TestParseNetSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{{"4096", 4096}, {"64K", 64 << 10}, {"256M", 256 << 20}, {"256MiB", 256 << 20}, {"1G", 1 << 30}, {"1.5g", 3 << 29}, {"0", 0}, {"-1M", 0}, {"65G", 0}, {"x", 0}, {"", 0}} {
		got, err := parseNetSize(tc.in)
		if (err != nil) != (tc.want == 0) || got != tc.want {
			t.Errorf("parseNetSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}
