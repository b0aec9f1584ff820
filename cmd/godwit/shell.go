package main

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/godwit-hv/godwit/arch/ring0"
	"github.com/godwit-hv/godwit/arch/x86"
	"github.com/godwit-hv/godwit/boot"
)

// host is what the admin shell needs from the machine. bareHost (host_bare.go) implements it
// on bare metal; the shell's tests use a fake.
type host interface {
	CPU() x86.Features
	TSCHz() uint64
	BootInfo() *boot.Info
	Stats() ring0.Stats
	Uptime() time.Duration
	Poweroff() error
	Reboot() error
	SetStrace(on bool)
}

// Prompt is the admin console's prompt: it begins with "godwit" and ends with "> ".
const Prompt = "godwit> "

type command struct {
	name, usage, help string
	run               func(sh *shell, args []string) error
}

// errUsage marks a bad invocation; the shell prints the command's usage.
var errUsage = errors.New("usage")

type shell struct {
	ed   *lineEditor
	out  io.Writer
	h    host
	cmds map[string]*command
	// panicFn is what `debug panic` runs (a goroutine that panics); tests replace it.
	panicFn func()
}

func newShell(in io.Reader, out io.Writer, h host) *shell {
	sh := &shell{ed: newLineEditor(in, out), out: out, h: h, cmds: map[string]*command{}}
	sh.panicFn = func() {
		go func() { panic("debug panic requested from the admin shell") }()
		time.Sleep(time.Second) // the panic ends the program before this returns
	}
	for _, c := range []*command{
		{"help", "help [COMMAND]", "list commands, or show one command's usage", cmdHelp},
		{"version", "version", "show the Godwit version and how it was booted", cmdVersion},
		{"cpu", "cpu", "show the CPU and its virtualization features", cmdCPU},
		{"mem", "mem", "show the physical memory map and memory use", cmdMem},
		{"uptime", "uptime", "show time since boot and scheduler counters", cmdUptime},
		{"date", "date", "show the wall-clock time (UTC) and Unix time", cmdDate},
		{"modules", "modules", "list the modules the loader passed", cmdModules},
		{"selftest", "selftest", "check that the Go runtime works in ring 0", cmdSelftest},
		{"poweroff", "poweroff", "turn the machine off", cmdPoweroff},
		{"reboot", "reboot", "reset the machine", cmdReboot},
		{"debug", "debug panic | debug strace on|off", "crash on purpose / trace system calls", cmdDebug},
	} {
		sh.cmds[c.name] = c
	}
	for _, c := range extraCommands {
		sh.cmds[c.name] = c
	}
	return sh
}

// extraCommands are commands that other files of the kernel register from init functions.
var extraCommands []*command

// Run serves commands until the input ends.
func (sh *shell) Run() error {
	for {
		line, err := sh.ed.ReadLine(Prompt)
		if errors.Is(err, errInterrupted) {
			continue
		}
		if err != nil {
			return err
		}
		sh.Exec(line)
	}
}

// Exec runs one command line, printing any error; the shell always goes on.
func (sh *shell) Exec(line string) {
	args, err := splitArgs(line)
	if err != nil {
		fmt.Fprintf(sh.out, "godwit: %v\n", err)
		return
	}
	if len(args) == 0 {
		return
	}
	c, ok := sh.cmds[args[0]]
	if !ok {
		fmt.Fprintf(sh.out, "godwit: unknown command %q; type 'help' for the list\n", args[0])
		return
	}
	defer func() {
		// A command that panics is a bug, not a reason to take the host down.
		if r := recover(); r != nil {
			fmt.Fprintf(sh.out, "%s: internal error: %v\n%s", c.name, r, debug.Stack())
		}
	}()
	if err := c.run(sh, args[1:]); err != nil {
		if errors.Is(err, errUsage) {
			fmt.Fprintf(sh.out, "usage: %s\n", c.usage)
		} else {
			fmt.Fprintf(sh.out, "%s: %v\n", c.name, err)
		}
	}
}

// splitArgs splits a command line into words; double quotes group words (cmdline="a b"), and
// a backslash escapes the next character.
func splitArgs(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		case c == '"':
			quoted = !quoted
			inWord = true
		case (c == ' ' || c == '\t') && !quoted:
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		return nil, errors.New("unterminated quote")
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

func noArgs(args []string) error {
	if len(args) != 0 {
		return errUsage
	}
	return nil
}

func cmdHelp(sh *shell, args []string) error {
	if len(args) > 1 {
		return errUsage
	}
	if len(args) == 1 {
		c, ok := sh.cmds[args[0]]
		if !ok {
			return fmt.Errorf("no command %q", args[0])
		}
		fmt.Fprintf(sh.out, "usage: %s\n  %s\n", c.usage, c.help)
		return nil
	}
	names := make([]string, 0, len(sh.cmds))
	for n := range sh.cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(sh.out, "  %-10s %s\n", n, sh.cmds[n].help)
	}
	return nil
}

func cmdVersion(sh *shell, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	in := sh.h.BootInfo()
	fmt.Fprintf(sh.out, "godwit %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	loader := boot.LoaderString(in.Loader)
	if n := in.Name(); n != "" {
		loader += " (" + n + ")"
	}
	fmt.Fprintf(sh.out, "booted by %s, command line %q\n", loader, in.CmdlineString())
	return nil
}

func cmdCPU(sh *shell, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	f := sh.h.CPU()
	fmt.Fprintf(sh.out, "vendor   %s\n", f.Vendor)
	if f.Brand != "" {
		fmt.Fprintf(sh.out, "model    %s\n", f.Brand)
	}
	fmt.Fprintf(sh.out, "family   %#x model %#x stepping %d, TSC %d MHz\n", f.Family, f.Model, f.Stepping, sh.h.TSCHz()/1_000_000)
	for _, l := range f.Virtualization() {
		fmt.Fprintf(sh.out, "virt     %s\n", l)
	}
	fmt.Fprintf(sh.out, "features NX=%s 1G-pages=%s x2APIC=%s TSC-deadline=%s RDRAND=%s invariant-TSC=%s under-hypervisor=%s\n",
		yesno(f.NX), yesno(f.PDPE1GB), yesno(f.X2APIC), yesno(f.TSCDeadline), yesno(f.RDRAND), yesno(f.InvariantTSC), yesno(f.Hypervisor))
	return nil
}

func yesno(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func mib(b uint64) string { return fmt.Sprintf("%d MiB", b>>20) }

func cmdMem(sh *shell, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	in := sh.h.BootInfo()
	fmt.Fprintf(sh.out, "physical memory map (%s):\n", boot.LoaderString(in.Loader))
	var usable uint64
	for i := 0; i < in.NMem; i++ {
		r := in.Mem[i]
		fmt.Fprintf(sh.out, "  %#012x-%#012x %10d KiB  %s\n", r.Base, r.End()-1, r.Length>>10, boot.MemTypeString(r.Type))
		if r.Type == boot.MemAvailable {
			usable += r.Length
		}
	}
	s := sh.h.Stats()
	fmt.Fprintf(sh.out, "usable RAM %s; frames: %s managed, %d KiB in use (%d KiB page tables), %d KiB backing the Go runtime's mappings in %d regions\n",
		mib(usable), mib(s.FramesTotal*4096), s.FramesUsed*4, s.PageTableFrames*4, s.MappedPages*4, s.VMAs)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(sh.out, "Go heap: %s in use, %s obtained from the layer (total %s), %d GC cycles, %d goroutines\n",
		mib(ms.HeapAlloc), mib(ms.HeapSys), mib(ms.Sys), ms.NumGC, runtime.NumGoroutine())
	return nil
}

func cmdUptime(sh *shell, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	up := sh.h.Uptime()
	s := sh.h.Stats()
	idle := 0.0
	if s.UptimeNs > 0 {
		idle = 100 * float64(s.IdleNs) / float64(s.UptimeNs)
	}
	fmt.Fprintf(sh.out, "up %s, idle %.0f%%; %d threads, %d context switches, %d timer interrupts, %d page faults, %d signals, %d system calls\n",
		up.Round(time.Millisecond), idle, s.Threads, s.Switches, s.TimerIRQs, s.PageFaults, s.Signals, s.Syscalls)
	return nil
}

func cmdDate(sh *shell, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	now := time.Now()
	fmt.Fprintf(sh.out, "%s (unix %d.%06d)\n", now.UTC().Format("2006-01-02 15:04:05 MST"), now.Unix(), now.Nanosecond()/1000)
	return nil
}

func cmdModules(sh *shell, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	in := sh.h.BootInfo()
	if in.NMods == 0 {
		fmt.Fprintln(sh.out, "no modules")
	}
	for _, m := range modulesOf(in) {
		fmt.Fprintf(sh.out, "  %-16s %#010x-%#010x %8d bytes  %s\n", m.Name, m.Start, m.End, m.End-m.Start, m.Args)
	}
	return nil
}

func cmdSelftest(sh *shell, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	runSelftest(sh.out, defaultSelftest(sh.h))
	return nil
}

func cmdPoweroff(sh *shell, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	fmt.Fprintln(sh.out, "godwit: powering off")
	return sh.h.Poweroff()
}

func cmdReboot(sh *shell, args []string) error {
	if err := noArgs(args); err != nil {
		return err
	}
	fmt.Fprintln(sh.out, "godwit: rebooting")
	return sh.h.Reboot()
}

func cmdDebug(sh *shell, args []string) error {
	switch {
	case len(args) == 1 && args[0] == "panic":
		fmt.Fprintln(sh.out, "godwit: panicking on purpose")
		sh.panicFn()
		return nil
	case len(args) == 2 && args[0] == "strace" && (args[1] == "on" || args[1] == "off"):
		sh.h.SetStrace(args[1] == "on")
		return nil
	}
	return errUsage
}
