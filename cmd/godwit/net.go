package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/godwit-hv/godwit/hostnet"
	"github.com/godwit-hv/godwit/hostnet/nic"
	"github.com/godwit-hv/godwit/hv/vswitch"
)

// Host networking: the godwit.net boot option, the host stack started after the NIC drivers
// registered their devices, one virtual switch per vm uplink, and the shell's net and ping.

var netState struct {
	mu       sync.Mutex
	specs    []hostnet.Spec
	set      bool // godwit.net was given
	host     *hostnet.Host
	switches map[string]*vswitch.Switch // by uplink NIC name
}

// Defaults of the shell commands.
const (
	pingDefaultCount = 4
	pingMaxCount     = 10000
	pingInterval     = time.Second // ping(8)'s default
	pingTimeout      = time.Second
	netTestDefault   = 64 << 20
	// A net test gives up after netTestFixed plus the time the size takes at netTestSlowest
	// bytes per second, so a dead peer cannot hold the shell forever.
	netTestFixed   = 30 * time.Second
	netTestSlowest = 256 << 10
)

func init() {
	extraBootOptions["godwit.net"] = extraBootOption{
		usage: "godwit.net=NIC:ROLE[:CIDR|dhcp],... (NIC netN or a MAC; ROLE management|migration|vm)",
		set:   setNetOption,
	}
	startupHooks = append(startupHooks, startNetwork)
	extraCommands = append(extraCommands,
		&command{"net", "net | net test HOST [SIZE]",
			fmt.Sprintf("show host NICs (role, MAC, address, link, counters) / bulk transfer from HOST's test service (TCP %d), SIZE like 256M", hostnet.TestPort),
			cmdNet},
		&command{"ping", "ping HOST [COUNT]", "send ICMP echo requests to an IPv4 address and show round trips and loss", cmdPing},
	)
}

func setNetOption(val string) error {
	specs, err := hostnet.ParseSpecs(val)
	if err != nil {
		return err
	}
	netState.mu.Lock()
	netState.specs, netState.set = specs, true
	netState.mu.Unlock()
	return nil
}

// startNetwork runs after the NIC drivers' probe: it starts the host stack over the NICs
// godwit.net names and a virtual switch on each vm uplink, and says what it did.
func startNetwork() {
	netState.mu.Lock()
	specs, set := netState.specs, netState.set
	netState.switches = map[string]*vswitch.Switch{}
	netState.mu.Unlock()
	logf := func(format string, args ...any) { fmt.Printf("godwit: "+format+"\n", args...) }
	h := hostnet.Start(specs, hostnet.Options{Logf: logf, TestService: true}, func(ifc *hostnet.Interface) {
		if ifc.Role != hostnet.RoleVM {
			return
		}
		sw := vswitch.New(ifc.Name, vswitch.Options{Logf: logf})
		if _, err := sw.AttachUplink(ifc.Name, ifc.Link); err != nil {
			logf("net: %s: virtual switch: %v", ifc.Name, err)
			return
		}
		netState.mu.Lock()
		netState.switches[ifc.Name] = sw
		netState.mu.Unlock()
	})
	netState.mu.Lock()
	netState.host = h
	netState.mu.Unlock()
	for _, s := range h.Unmatched() {
		logf("godwit.net: no host NIC %s for %s (host NICs: %s)", s.NIC, s, nicNames())
	}
	if !set && len(nic.Links()) > 0 {
		logf("net: no godwit.net option: host NICs %s are unused (e.g. godwit.net=net0:management:dhcp)", nicNames())
	}
	for _, ifc := range h.Interfaces() {
		switch {
		case ifc.Role == hostnet.RoleVM:
			logf("net: %s: vm uplink, virtual switch %s", ifc.Name, ifc.Name)
		case ifc.Role != hostnet.RoleNone && ifc.Spec.DHCP:
			logf("net: %s: %s, address by DHCP", ifc.Name, ifc.Role)
		case ifc.Role != hostnet.RoleNone:
			logf("net: %s: %s %s, test service on TCP %d", ifc.Name, ifc.Role, ifc.Prefix(), hostnet.TestPort)
		}
	}
}

func nicNames() string {
	var n []string
	for _, r := range nic.Links() {
		n = append(n, r.Name)
	}
	if len(n) == 0 {
		return "none"
	}
	return strings.Join(n, ", ")
}

// vmSwitch is the virtual switch of the vm uplink named name ("net2"), for the VM code that
// connects a guest's virtio-net device to it; "" picks the first vm uplink.
func vmSwitch(name string) (*vswitch.Switch, error) {
	netState.mu.Lock()
	defer netState.mu.Unlock()
	if name == "" {
		var names []string
		for n := range netState.switches {
			names = append(names, n)
		}
		if len(names) == 0 {
			return nil, errors.New("no vm uplink (give a NIC the vm role in godwit.net)")
		}
		sort.Strings(names)
		name = names[0]
	}
	sw, ok := netState.switches[name]
	if !ok {
		return nil, fmt.Errorf("%s is not a vm uplink (godwit.net gives a NIC the vm role with NIC:vm)", name)
	}
	return sw, nil
}

func currentNet() (*hostnet.Host, error) {
	netState.mu.Lock()
	defer netState.mu.Unlock()
	if netState.host == nil {
		return nil, errors.New("host networking is not started")
	}
	return netState.host, nil
}

func cmdNet(sh *shell, args []string) error {
	if len(args) > 0 && args[0] == "test" {
		return cmdNetTest(sh, args[1:])
	}
	if err := noArgs(args); err != nil {
		return err
	}
	h, err := currentNet()
	if err != nil {
		return err
	}
	ifaces := h.Interfaces()
	if len(ifaces) == 0 {
		fmt.Fprintln(sh.out, "no host NICs (no e1000 or virtio-net device was found)")
		return nil
	}
	for _, ifc := range ifaces {
		role := ifc.Role.String()
		if ifc.Role == hostnet.RoleNone {
			role = "unused"
		}
		addr := "-"
		switch {
		case ifc.Role == hostnet.RoleVM:
			addr = "(uplink)"
		case ifc.Prefix().IsValid():
			addr = ifc.Prefix().String()
		case ifc.Spec.DHCP:
			addr = "(dhcp)"
		}
		link := "down"
		if ifc.Link.Up() {
			link = "up"
		}
		fmt.Fprintf(sh.out, "%-5s %-10s %s  %-18s link %-4s %s\n", ifc.Name, role, ifc.Link.MAC(), addr, link, ifc.Link.Description())
		fmt.Fprintf(sh.out, "      %v\n", ifc.Link.Stats())
		var extra []string
		if gw := ifc.Gateway(); gw.IsValid() {
			extra = append(extra, "gateway "+gw.String())
		}
		if st := ifc.DHCPState(); st != "" {
			extra = append(extra, "dhcp: "+st)
		}
		if n := ifc.LinkChanges(); n > 0 {
			extra = append(extra, fmt.Sprintf("%d link changes", n))
		}
		if filtered, refused := ifc.StackCounters(); filtered+refused > 0 {
			extra = append(extra, fmt.Sprintf("stack: %d frames for others ignored, %d refused by the driver", filtered, refused))
		}
		if len(extra) > 0 {
			fmt.Fprintf(sh.out, "      %s\n", strings.Join(extra, "; "))
		}
		if ifc.Role == hostnet.RoleVM {
			if sw, err := vmSwitch(ifc.Name); err == nil {
				for _, p := range sw.Ports() {
					fmt.Fprintf(sh.out, "      switch port %-12s %v\n", p.Name(), p.Stats())
				}
				fmt.Fprintf(sh.out, "      switch: %d MACs learned\n", len(sw.FDB()))
			}
		}
	}
	for _, s := range h.Unmatched() {
		fmt.Fprintf(sh.out, "godwit.net entry %s: no such NIC\n", s)
	}
	fmt.Fprintf(sh.out, "host stack: %s\n", h.StackStats())
	return nil
}

// parseNetSize reads 4096, 64K, 256M, 1G (binary multiples), 1.5G.
func parseNetSize(s string) (int64, error) {
	mult := int64(1)
	num := strings.ToUpper(s)
	num = strings.TrimSuffix(num, "IB")
	num = strings.TrimSuffix(num, "B")
	if n := len(num); n > 0 {
		switch num[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			num = num[:n-1]
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	v := f * float64(mult)
	if err != nil || f <= 0 || math.IsInf(f, 0) || v < 1 || v > hostnet.MaxTestSize {
		return 0, fmt.Errorf("bad size %q: want 1..64G, like 4096, 64K, 256M or 1G", s)
	}
	return int64(v), nil
}

func cmdNetTest(sh *shell, args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return errUsage
	}
	ip, err := hostnet.ParseIPv4(args[0])
	if err != nil {
		return err
	}
	size := int64(netTestDefault)
	if len(args) == 2 {
		if size, err = parseNetSize(args[1]); err != nil {
			return err
		}
	}
	h, err := currentNet()
	if err != nil {
		return err
	}
	role := h.RoleFor(ip)
	ifc, err := h.ByRole(role)
	if err != nil {
		return fmt.Errorf("no NIC reaches %s: %w", ip, err)
	}
	timeout := netTestFixed + time.Duration(size/netTestSlowest)*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	fmt.Fprintf(sh.out, "net test: %d bytes from %s:%d via %s (%s)\n", size, ip, hostnet.TestPort, ifc.Name, role)
	res, err := h.NetTest(ctx, ip.String(), size)
	if errors.Is(err, hostnet.ErrChecksum) {
		fmt.Fprintf(sh.out, "%d bytes in %.2f s: %.1f MiB/s, checksum MISMATCH (computed %08x, server sent %08x)\n",
			res.Bytes, res.Elapsed.Seconds(), res.MiBps(), res.Got, res.Want)
		return err
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(sh.out, "%d bytes in %.2f s: %.1f MiB/s, checksum ok (crc32c %08x)\n", res.Bytes, res.Elapsed.Seconds(), res.MiBps(), res.Got)
	return nil
}

func cmdPing(sh *shell, args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return errUsage
	}
	ip, err := hostnet.ParseIPv4(args[0])
	if err != nil {
		return err
	}
	count := pingDefaultCount
	if len(args) == 2 {
		n, err := strconv.Atoi(args[1])
		if err != nil || n < 1 || n > pingMaxCount {
			return fmt.Errorf("bad count %q: want 1..%d", args[1], pingMaxCount)
		}
		count = n
	}
	h, err := currentNet()
	if err != nil {
		return err
	}
	if !hasHostNIC(h) {
		return errors.New("no management or migration NIC has an address (see 'net' and godwit.net)")
	}
	p, err := h.NewPinger()
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Fprintf(sh.out, "PING %s: %d data bytes\n", ip, hostnet.PingPayload)
	var rtts []time.Duration
	var lastErr error
	for seq := 1; seq <= count; seq++ {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
		rtt, err := p.Echo(ctx, ip, uint16(seq))
		cancel()
		switch {
		case err == nil:
			rtts = append(rtts, rtt)
			fmt.Fprintf(sh.out, "%d bytes from %s: seq=%d time=%.3f ms\n", hostnet.PingPayload+8, ip, seq, float64(rtt.Microseconds())/1000)
		case errors.Is(err, hostnet.ErrPingTimeout):
			fmt.Fprintf(sh.out, "no reply from %s: seq=%d\n", ip, seq)
			lastErr = err
		default:
			fmt.Fprintf(sh.out, "seq=%d: %v\n", seq, err)
			lastErr = err
		}
		if seq < count {
			time.Sleep(time.Until(start.Add(pingInterval)))
		}
	}
	loss := 100 * float64(count-len(rtts)) / float64(count)
	fmt.Fprintf(sh.out, "--- %s: %d sent, %d received, %.0f%% loss", ip, count, len(rtts), loss)
	if len(rtts) > 0 {
		lo, hi, sum := rtts[0], rtts[0], time.Duration(0)
		for _, r := range rtts {
			lo, hi, sum = min(lo, r), max(hi, r), sum+r
		}
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		fmt.Fprintf(sh.out, ", rtt min/avg/max %.3f/%.3f/%.3f ms", ms(lo), ms(sum/time.Duration(len(rtts))), ms(hi))
	}
	fmt.Fprintln(sh.out)
	if len(rtts) == 0 {
		return fmt.Errorf("no replies from %s (last: %v)", ip, lastErr)
	}
	return nil
}

func hasHostNIC(h *hostnet.Host) bool {
	for _, ifc := range h.Interfaces() {
		if (ifc.Role == hostnet.RoleManagement || ifc.Role == hostnet.RoleMigration) && ifc.Prefix().IsValid() {
			return true
		}
	}
	return false
}
