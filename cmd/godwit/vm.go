package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/godwit-hv/godwit/boot"
	"github.com/godwit-hv/godwit/hv"
)

// The `vm` and `modules` commands: guests from the modules the loader passed.

// vmManager holds the VMs of this host.
type vmManager struct {
	mu  sync.Mutex
	vms map[string]*hv.VM
	// newVM builds a VM from a module (bare metal: vm_bare.go); tests replace it.
	newVM func(spec vmSpec) (*hv.VM, error)
}

var vms = &vmManager{vms: map[string]*hv.VM{}}

// vmSpec is what `vm create` asked for.
type vmSpec struct {
	Name    string
	Kernel  moduleRef
	Initrd  *moduleRef
	Mem     uint64
	CPUs    int
	Disks   []string // host disk or region names, as `disk list` shows them
	NICs    []nicSpec
	Cmdline string
}

// nicSpec is a `nic=UPLINK[/MAC]` option: a guest NIC on the virtual switch of a vm uplink.
type nicSpec struct {
	Uplink string // "" for the first vm uplink
	MAC    [6]byte
}

// parseNIC reads UPLINK[/MAC]; without a MAC, a random locally administered one is chosen
// (IEEE 802-2014, 8.2.2: bit 1 of the first octet set, bit 0 clear for unicast).
func parseNIC(v string) (nicSpec, error) {
	up, macText, hasMAC := strings.Cut(v, "/")
	n := nicSpec{Uplink: up}
	if !hasMAC {
		if _, err := rand.Read(n.MAC[:]); err != nil {
			return n, err
		}
		n.MAC[0] = n.MAC[0]&^0x01 | 0x02
		return n, nil
	}
	hw, err := net.ParseMAC(macText)
	if err != nil || len(hw) != 6 {
		return n, fmt.Errorf("nic=%s: bad MAC address %q", v, macText)
	}
	if hw[0]&1 != 0 || bytes.Equal(hw, make([]byte, 6)) {
		return n, fmt.Errorf("nic=%s: %s is not a unicast address", v, macText)
	}
	copy(n.MAC[:], hw)
	return n, nil
}

// moduleRef is a boot module by name: the base name of its path; the words after the path are
// its command line. Multiboot loaders put "path args" in the module string.
type moduleRef struct {
	Name, Args string
	Start, End uint64
}

func modulesOf(in *boot.Info) []moduleRef {
	var out []moduleRef
	for i := 0; i < in.NMods; i++ {
		s := strings.TrimSpace(in.ModCmdline(i))
		p, args, _ := strings.Cut(s, " ")
		name := path.Base(p)
		if p == "" {
			name = fmt.Sprintf("module%d", i)
		}
		out = append(out, moduleRef{Name: name, Args: strings.TrimSpace(args), Start: in.Mods[i].Start, End: in.Mods[i].End})
	}
	return out
}

func findModule(in *boot.Info, name string) (moduleRef, error) {
	var names []string
	for _, m := range modulesOf(in) {
		if m.Name == name {
			return m, nil
		}
		names = append(names, m.Name)
	}
	if len(names) == 0 {
		return moduleRef{}, fmt.Errorf("no module %q: the loader passed no modules", name)
	}
	return moduleRef{}, fmt.Errorf("no module %q (have: %s)", name, strings.Join(names, ", "))
}

func init() {
	extraCommands = append(extraCommands, &command{"vm",
		"vm create NAME kernel=MODULE [initrd=MODULE] [mem=SIZE] [cpus=N] [disk=DISK]... [nic=UPLINK[/MAC]]... [cmdline=\"...\"] | vm start|stop|wait|delete|console|log|cpus NAME | vm log -t NAME | vm list",
		"create, run and inspect virtual machines", cmdVM})
}

// parseSize reads 64M, 1G, 2048K or a byte count.
func parseSize(s string) (uint64, error) {
	mult := uint64(1)
	switch {
	case strings.HasSuffix(s, "K"), strings.HasSuffix(s, "k"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mult, s = 1<<20, s[:len(s)-1]
	case strings.HasSuffix(s, "G"), strings.HasSuffix(s, "g"):
		mult, s = 1<<30, s[:len(s)-1]
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 || n > (64<<30)/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

const defaultGuestMem = 32 << 20

// maxGuestMem keeps guest RAM below the PCI window the guest's ACPI tables declare
// (guestPCIWindow in vm_bare.go), which runs up to the I/O APIC and local APIC pages.
const maxGuestMem = 3 << 30

func cmdVM(sh *shell, args []string) error {
	if len(args) == 0 {
		return errUsage
	}
	sub, rest := args[0], args[1:]
	if sub == "list" {
		if len(rest) != 0 {
			return errUsage
		}
		return vmList(sh)
	}
	if len(rest) < 1 {
		return errUsage
	}
	name := rest[0]
	if sub == "create" {
		return vmCreate(sh, name, rest[1:])
	}
	timed := false
	if sub == "log" && name == "-t" && len(rest) == 2 {
		timed, name, rest = true, rest[1], rest[1:]
	}
	if len(rest) != 1 {
		return errUsage
	}
	vms.mu.Lock()
	vm := vms.vms[name]
	vms.mu.Unlock()
	if vm == nil {
		return fmt.Errorf("no VM %q", name)
	}
	switch sub {
	case "start":
		if err := vm.Start(); err != nil {
			return err
		}
		fmt.Fprintf(sh.out, "vm %s: started\n", name)
	case "stop":
		if err := vm.Stop(10 * time.Second); err != nil {
			return err
		}
		fmt.Fprintf(sh.out, "vm %s: %s\n", name, vm.Info().Status)
	case "delete":
		if err := vm.Delete(); err != nil {
			return err
		}
		vms.mu.Lock()
		delete(vms.vms, name)
		vms.mu.Unlock()
		releaseDisks(name)
		fmt.Fprintf(sh.out, "vm %s: deleted\n", name)
	case "wait":
		if !vm.Wait(5 * time.Minute) {
			return fmt.Errorf("vm %s still running after 5 minutes", name)
		}
		fmt.Fprintf(sh.out, "vm %s: %s\n", name, vm.Info().Status)
	case "log":
		if timed {
			// Each line with the host's uptime when the guest finished printing it.
			now, up := time.Now(), sh.h.Uptime()
			for _, l := range vm.Console.Lines() {
				at := up - now.Sub(l.At)
				fmt.Fprintf(sh.out, "[%12.6f] %s\n", at.Seconds(), l.Text)
			}
			return nil
		}
		sh.out.Write(vm.Console.Log())
		fmt.Fprintln(sh.out)
	case "console":
		return vmConsole(sh, vm)
	case "cpus":
		for _, c := range vm.CPUs() {
			timer := "off"
			if c.TimerArmd {
				timer = "in " + c.TimerIn.String()
			}
			fmt.Fprintf(sh.out, "vcpu %d: %s, %d exits, APIC base %#x TPR %#x, highest IRR %d ISR %d, timer LVT %#x %s\n",
				c.ID, c.State, c.Exits, c.APICBase, c.TPR, c.IRR, c.ISR, c.TimerLVT, timer)
		}
	default:
		return errUsage
	}
	return nil
}

func vmCreate(sh *shell, name string, opts []string) error {
	if !validName(name) {
		return fmt.Errorf("bad VM name %q: use letters, digits, '-' and '_'", name)
	}
	var kernel, initrd, cmdline string
	var disks []string
	var nics []nicSpec
	mem := uint64(defaultGuestMem)
	cpus := 1
	for _, o := range opts {
		k, v, ok := strings.Cut(o, "=")
		if !ok {
			return fmt.Errorf("bad option %q: want key=value", o)
		}
		switch k {
		case "kernel":
			kernel = v
		case "initrd":
			initrd = v
		case "cmdline":
			cmdline = v
		case "mem":
			n, err := parseSize(v)
			if err != nil {
				return err
			}
			if n%(2<<20) != 0 {
				return fmt.Errorf("mem=%s: must be a multiple of 2 MiB", v)
			}
			if n > maxGuestMem {
				return fmt.Errorf("mem=%s: at most %d MiB (guest RAM ends below the PCI and APIC window)", v, maxGuestMem>>20)
			}
			mem = n
		case "cpus":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > hv.MaxCPUs {
				return fmt.Errorf("cpus=%s: want 1 to %d", v, hv.MaxCPUs)
			}
			cpus = n
		case "disk":
			if v == "" {
				return fmt.Errorf("disk=: name a host disk or region (see `disk list`)")
			}
			disks = append(disks, v)
		case "nic":
			n, err := parseNIC(v)
			if err != nil {
				return err
			}
			nics = append(nics, n)
		default:
			return fmt.Errorf("unknown option %q (kernel=, initrd=, mem=, cpus=, disk=, nic=, cmdline=)", k)
		}
	}
	if kernel == "" {
		return errUsage
	}
	mod, err := findModule(sh.h.BootInfo(), kernel)
	if err != nil {
		return err
	}
	spec := vmSpec{Name: name, Kernel: mod, Mem: mem, CPUs: cpus, Disks: disks, NICs: nics, Cmdline: cmdline}
	if initrd != "" {
		m, err := findModule(sh.h.BootInfo(), initrd)
		if err != nil {
			return err
		}
		spec.Initrd = &m
	}
	vms.mu.Lock()
	defer vms.mu.Unlock()
	if vms.vms[name] != nil {
		return fmt.Errorf("a VM named %q exists", name)
	}
	if vms.newVM == nil {
		return errors.New("no virtualization backend on this host")
	}
	vm, err := vms.newVM(spec)
	if err != nil {
		return err
	}
	vms.vms[name] = vm
	fmt.Fprintf(sh.out, "vm %s: created (%s, %d MiB, %d vCPUs, kernel %s)\n", name, vm.Info().Backend, mem>>20, cpus, kernel)
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

func vmList(sh *shell) error {
	vms.mu.Lock()
	names := make([]string, 0, len(vms.vms))
	for n := range vms.vms {
		names = append(names, n)
	}
	list := make([]*hv.VM, 0, len(names))
	sort.Strings(names)
	for _, n := range names {
		list = append(list, vms.vms[n])
	}
	vms.mu.Unlock()
	if len(list) == 0 {
		fmt.Fprintln(sh.out, "no VMs")
		return nil
	}
	fmt.Fprintf(sh.out, "%-12s %-8s %-6s %s\n", "NAME", "STATE", "MEM", "STATUS / EXITS")
	for _, vm := range list {
		in := vm.Info()
		status := in.Status
		if in.Reboots > 0 {
			status += fmt.Sprintf(" (rebooted %d times)", in.Reboots)
		}
		fmt.Fprintf(sh.out, "%-12s %-8s %-6s %s\n", in.Name, in.State, fmt.Sprintf("%dM", in.MemSize>>20), status)
		var kinds []string
		for k, n := range in.RawExits {
			kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
		}
		for _, n := range vm.NICs() {
			fmt.Fprintf(sh.out, "%-12s %s %s: rx %d packets %d bytes, tx %d packets %d bytes, %d dropped\n", "",
				n.Port, net.HardwareAddr(n.MAC[:]), n.Stats.RxPackets, n.Stats.RxBytes, n.Stats.TxPackets, n.Stats.TxBytes, n.Stats.RxDrops+n.Stats.TxDrops)
		}
		sort.Strings(kinds)
		if len(kinds) > 0 {
			fmt.Fprintf(sh.out, "%-12s exits (%s): %s\n", "", in.Backend, strings.Join(kinds, " "))
		}
	}
	return nil
}

// ctrlBracket detaches from a VM console, as in virsh console.
const ctrlBracket = 0x1D

// consoleInputPatience is how many milliseconds a typed byte waits for room in the guest's
// UART before it is dropped (a guest that stopped reading its console).
const consoleInputPatience = 2000

func vmConsole(sh *shell, vm *hv.VM) error {
	fmt.Fprintf(sh.out, "connected to %s's console; Ctrl-] detaches\n", vm.Name())
	vm.Console.Attach(sh.out)
	defer vm.Console.Attach(nil)
	// Say so when the VM stops while attached (a reboot says so and carries on).
	detached := make(chan struct{})
	defer close(detached)
	go func() {
		for {
			done := vm.Done()
			if done == nil {
				return
			}
			select {
			case <-detached:
				return
			case <-done:
			}
			if in := vm.Info(); in.State == hv.StateRunning {
				fmt.Fprintf(sh.out, "\r\ngodwit: vm %s: reset by the guest, started again\r\n", vm.Name())
			} else {
				fmt.Fprintf(sh.out, "\r\ngodwit: vm %s: %s\r\n", vm.Name(), in.Status)
			}
			// A guest reset starts the VM again at once; wait for that run, or for detach.
			for vm.Done() == done {
				select {
				case <-detached:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if st := vm.Info().State; st != hv.StateStopped && st != hv.StateRunning {
					return
				}
			}
		}
	}()
	for {
		b, err := sh.ed.in.ReadByte()
		if err != nil {
			return err
		}
		if b == ctrlBracket {
			fmt.Fprintf(sh.out, "\ndetached from %s (%s)\n", vm.Name(), vm.Info().Status)
			return nil
		}
		// The guest's UART holds 16 bytes: wait for room rather than drop what was typed
		// (a paste, or a test typing faster than the guest reads), unless the VM is gone.
		for tries := 0; vm.SendInput([]byte{b}) == 0; tries++ {
			if vm.Info().State != hv.StateRunning || tries == consoleInputPatience {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
}
