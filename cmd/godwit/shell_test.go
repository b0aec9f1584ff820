package main

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/arch/ring0"
	"github.com/godwit-hv/godwit/arch/x86"
	"github.com/godwit-hv/godwit/boot"
)

// fakeHost is the machine as the shell sees it, made up.
type fakeHost struct {
	cpu         x86.Features
	tscHz       uint64
	info        boot.Info
	stats       ring0.Stats
	statsPanic  bool
	uptime      time.Duration
	powerErr    error
	rebootErr   error
	poweroffs   int
	reboots     int
	straceCalls []bool
}

func (h *fakeHost) CPU() x86.Features     { return h.cpu }
func (h *fakeHost) TSCHz() uint64         { return h.tscHz }
func (h *fakeHost) BootInfo() *boot.Info  { return &h.info }
func (h *fakeHost) Uptime() time.Duration { return h.uptime }
func (h *fakeHost) SetStrace(on bool)     { h.straceCalls = append(h.straceCalls, on) }
func (h *fakeHost) Poweroff() error       { h.poweroffs++; return h.powerErr }
func (h *fakeHost) Reboot() error         { h.reboots++; return h.rebootErr }
func (h *fakeHost) Stats() ring0.Stats {
	if h.statsPanic {
		var s *ring0.Stats
		return *s // a nil dereference, as a broken host would
	}
	return h.stats
}

var (
	svmCPU = x86.Features{Vendor: "AuthenticAMD", Brand: "QEMU TCG CPU version 2.5+", Family: 15, Model: 107, Stepping: 1,
		NX: true, SVM: true, NPT: true, NASID: 16, Hypervisor: true}
	vmxCPU = x86.Features{Vendor: "GenuineIntel", Brand: "Intel(R) Xeon(R) Gold 6140 CPU @ 2.30GHz", Family: 6, Model: 0x55, Stepping: 4,
		NX: true, PDPE1GB: true, VMX: true, VMXLocked: true, VMXEnabled: true, EPT: true, UnrestrictedGuest: true, VPID: true, EPTAD: true}
)

func newFakeHost() *fakeHost {
	h := &fakeHost{
		cpu:    svmCPU,
		tscHz:  2_400_000_000,
		uptime: time.Hour + 2*time.Minute + 3*time.Second + 4*time.Millisecond + 500*time.Microsecond,
		stats: ring0.Stats{FramesTotal: 250_000, FramesUsed: 1000, PageTableFrames: 20, MappedPages: 900, VMAs: 12,
			Threads: 7, Switches: 12345, TimerIRQs: 6789, PageFaults: 4321, Signals: 17, Syscalls: 99999,
			UptimeNs: 4_000_000_000, IdleNs: 1_000_000_000},
	}
	in := &h.info
	in.Loader = boot.LoaderMultiboot
	in.CmdlineLen = copy(in.Cmdline[:], "/boot/godwit godwit.strace=0")
	in.NameLen = copy(in.LoaderName[:], "GRUB 2.12")
	mem := []boot.MemRange{
		{Base: 0, Length: 0x9FC00, Type: boot.MemAvailable},
		{Base: 0x9FC00, Length: 0x400, Type: boot.MemReserved},
		{Base: 0x100000, Length: 0x3FEE0000, Type: boot.MemAvailable},
		{Base: 0x3FFE0000, Length: 0x20000, Type: boot.MemACPI},
		{Base: 0xFFFC0000, Length: 0x40000, Type: boot.MemNVS},
	}
	in.NMem = copy(in.Mem[:], mem)
	return h
}

func withModules(h *fakeHost) *fakeHost {
	in := &h.info
	in.NMods = 2
	in.Mods[0] = boot.Module{Start: 0x200000, End: 0x201000}
	in.Mods[0].CmdlineLen = copy(in.Mods[0].Cmdline[:], "/initrd.cpio rdinit=/init")
	in.Mods[1] = boot.Module{Start: 0x300000, End: 0x300010}
	return h
}

func TestShellCommands(t *testing.T) {
	tests := []struct {
		name    string
		host    func() *fakeHost
		line    string
		want    []string // substrings of the output, in order
		notWant []string
		check   func(t *testing.T, h *fakeHost, panics int)
	}{
		{name: "help lists every command", line: "help",
			want: []string{"cpu", "debug", "help", "mem", "modules", "poweroff", "reboot", "selftest", "uptime", "version"}},
		{name: "help for one command", line: "help mem", want: []string{"usage: mem\n", "physical memory map"}},
		{name: "help for an unknown command", line: "help frob", want: []string{"help: no command \"frob\""}},
		{name: "help with too many arguments", line: "help a b", want: []string{"usage: help [COMMAND]"}},
		{name: "version", line: "version",
			want: []string{"godwit dev (go1.", "booted by multiboot (GRUB 2.12), command line \"/boot/godwit godwit.strace=0\""}},
		{name: "version without a loader name", line: "version",
			host: func() *fakeHost {
				h := newFakeHost()
				h.info.Loader, h.info.NameLen = boot.LoaderPVH, 0
				return h
			},
			want: []string{"booted by pvh, command line"}, notWant: []string{"pvh ("}},
		{name: "cpu on an SVM host", line: "cpu",
			want: []string{"vendor   AuthenticAMD", "model    QEMU TCG CPU version 2.5+", "family   0xf model 0x6b stepping 1, TSC 2400 MHz",
				"virt     SVM  NPT=yes", "ASIDs=16", "NX=yes", "under-hypervisor=yes"},
			notWant: []string{"VMX"}},
		{name: "cpu on a VMX host", line: "cpu",
			host: func() *fakeHost { h := newFakeHost(); h.cpu = vmxCPU; return h },
			want: []string{"vendor   GenuineIntel", "family   0x6 model 0x55 stepping 4", "virt     VMX  EPT=yes  unrestricted-guest=yes  VPID=yes  EPT-A/D=yes",
				"1G-pages=yes"},
			notWant: []string{"SVM"}},
		{name: "cpu without virtualization", line: "cpu",
			host: func() *fakeHost { h := newFakeHost(); h.cpu = x86.Features{Vendor: "GenuineIntel"}; return h },
			want: []string{"virt     no hardware virtualization"}, notWant: []string{"model    "}},
		{name: "mem", line: "mem",
			want: []string{
				"physical memory map (multiboot):",
				"  0x000000000000-0x00000009fbff        639 KiB  available\n",
				"  0x00000009fc00-0x00000009ffff          1 KiB  reserved\n",
				"  0x000000100000-0x00003ffdffff    1047424 KiB  available\n",
				"  0x00003ffe0000-0x00003fffffff        128 KiB  ACPI reclaimable\n",
				"  0x0000fffc0000-0x0000ffffffff        256 KiB  ACPI NVS\n",
				"usable RAM 1023 MiB; frames: 976 MiB managed, 4000 KiB in use (80 KiB page tables), 3600 KiB backing the Go runtime's mappings in 12 regions",
				"Go heap: ",
			}},
		{name: "uptime", line: "uptime",
			want: []string{"up 1h2m3.005s, idle 25%; 7 threads, 12345 context switches, 6789 timer interrupts, 4321 page faults, 17 signals, 99999 system calls"}},
		{name: "uptime before the first tick", line: "uptime",
			host: func() *fakeHost { h := newFakeHost(); h.stats.UptimeNs = 0; h.uptime = 0; return h },
			want: []string{"up 0s, idle 0%"}},
		{name: "no modules", line: "modules", want: []string{"no modules"}},
		{name: "modules", line: "modules", host: func() *fakeHost { return withModules(newFakeHost()) },
			want: []string{"0x0000200000-0x0000201000", "4096 bytes", "rdinit=/init\n",
				"0x0000300000-0x0000300010", "16 bytes"},
			notWant: []string{"no modules"}},
		{name: "poweroff that fails", line: "poweroff",
			host: func() *fakeHost { h := newFakeHost(); h.powerErr = errors.New("no \\_S5"); return h },
			want: []string{"godwit: powering off", "poweroff: no \\_S5"},
			check: func(t *testing.T, h *fakeHost, _ int) {
				if h.poweroffs != 1 {
					t.Errorf("Poweroff called %d times, want 1", h.poweroffs)
				}
			}},
		{name: "reboot that fails", line: "reboot",
			host: func() *fakeHost { h := newFakeHost(); h.rebootErr = errPowerFailed; return h },
			want: []string{"godwit: rebooting", "reboot: the machine is still running"},
			check: func(t *testing.T, h *fakeHost, _ int) {
				if h.reboots != 1 {
					t.Errorf("Reboot called %d times, want 1", h.reboots)
				}
			}},
		{name: "debug panic calls panicFn", line: "debug panic", want: []string{"godwit: panicking on purpose"},
			check: func(t *testing.T, _ *fakeHost, panics int) {
				if panics != 1 {
					t.Errorf("panicFn called %d times, want 1", panics)
				}
			}},
		{name: "debug strace on", line: "debug strace on", check: func(t *testing.T, h *fakeHost, _ int) {
			if len(h.straceCalls) != 1 || !h.straceCalls[0] {
				t.Errorf("SetStrace calls = %v, want [true]", h.straceCalls)
			}
		}},
		{name: "debug strace off", line: "  debug   strace   off  ", check: func(t *testing.T, h *fakeHost, _ int) {
			if len(h.straceCalls) != 1 || h.straceCalls[0] {
				t.Errorf("SetStrace calls = %v, want [false]", h.straceCalls)
			}
		}},
		{name: "debug with a bad argument", line: "debug strace maybe", want: []string{"usage: debug panic | debug strace on|off"},
			check: func(t *testing.T, h *fakeHost, panics int) {
				if len(h.straceCalls) != 0 || panics != 0 {
					t.Errorf("SetStrace calls %v, panics %d; want none", h.straceCalls, panics)
				}
			}},
		{name: "debug alone", line: "debug", want: []string{"usage: debug panic | debug strace on|off"}},
		{name: "unknown command", line: "frobnicate now", want: []string{"godwit: unknown command \"frobnicate\"; type 'help' for the list"}},
		{name: "extra arguments", line: "cpu now", want: []string{"usage: cpu\n"}, notWant: []string{"vendor"}},
		{name: "selftest takes no arguments", line: "selftest quick", want: []string{"usage: selftest\n"}, notWant: []string{"selftest:"}},
		{name: "poweroff takes no arguments", line: "poweroff now", want: []string{"usage: poweroff\n"},
			check: func(t *testing.T, h *fakeHost, _ int) {
				if h.poweroffs != 0 {
					t.Errorf("Poweroff called %d times, want 0", h.poweroffs)
				}
			}},
		{name: "empty line prints nothing", line: "   "},
		{name: "a command that panics is reported", line: "mem",
			host: func() *fakeHost { h := newFakeHost(); h.statsPanic = true; return h },
			want: []string{"physical memory map", "mem: internal error: runtime error: invalid memory address or nil pointer dereference", "goroutine "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost()
			if tt.host != nil {
				h = tt.host()
			}
			var out strings.Builder
			sh := newShell(strings.NewReader(""), &out, h)
			panics := 0
			sh.panicFn = func() { panics++ }
			sh.Exec(tt.line)
			got := out.String()
			rest := got
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("Exec(%q) output lacks %q (in order); output:\n%s", tt.line, w, got)
					break
				}
				rest = rest[i+len(w):]
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("Exec(%q) output contains %q; output:\n%s", tt.line, w, got)
				}
			}
			if tt.want == nil && tt.check == nil && got != "" {
				t.Errorf("Exec(%q) = %q, want no output", tt.line, got)
			}
			if tt.check != nil {
				tt.check(t, h, panics)
			}
		})
	}
}

// TestShellRun feeds a session: several commands, an unknown one, a panicking one, Ctrl-C,
// then EOF, which ends Run.
func TestShellRun(t *testing.T) {
	h := newFakeHost()
	h.cpu = vmxCPU
	in := "version\r" + "bogus\r" + "half typed\x03" + "debug panic\r" + "mem\r" + "cpu\r" + "uptime\r"
	var out strings.Builder
	sh := newShell(strings.NewReader(in), &out, h)
	panics := 0
	sh.panicFn = func() {
		panics++
		h.statsPanic = true // from now on Stats panics, as if the host broke
	}
	done := make(chan error, 1)
	go func() { done <- sh.Run() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return at EOF")
	}
	if !errors.Is(err, io.EOF) {
		t.Errorf("Run() = %v, want io.EOF", err)
	}
	got := out.String()
	want := []string{
		Prompt + "version", "godwit dev",
		Prompt + "bogus", "unknown command \"bogus\"",
		Prompt + "half typed^C",
		Prompt + "debug panic", "panicking on purpose",
		Prompt + "mem", "mem: internal error",
		Prompt + "cpu", "VMX  EPT=yes",
		Prompt + "uptime", "uptime: internal error",
		Prompt,
	}
	rest := got
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("session output lacks %q (in order); output:\n%s", w, got)
		}
		rest = rest[i+len(w):]
	}
	if rest != "" {
		t.Errorf("after the last prompt: %q, want nothing", rest)
	}
	if panics != 1 {
		t.Errorf("panicFn called %d times, want 1", panics)
	}
}

func TestSplitArgs(t *testing.T) {
	tests := []struct {
		line string
		want []string
		err  bool
	}{
		{"", nil, false},
		{" \t ", nil, false},
		{"cpu", []string{"cpu"}, false},
		{"  debug \t strace  on ", []string{"debug", "strace", "on"}, false},
		{`vm create a cmdline="console=ttyS0 quiet"`, []string{"vm", "create", "a", "cmdline=console=ttyS0 quiet"}, false},
		{`a "b c" d`, []string{"a", "b c", "d"}, false},
		{`a ""`, []string{"a", ""}, false},
		{`a\ b c`, []string{"a b", "c"}, false},
		{`say \"hi\"`, []string{"say", `"hi"`}, false},
		{`a\`, []string{`a\`}, false}, // a trailing backslash is kept
		{`"a" "b`, nil, true},
	}
	for _, tt := range tests {
		got, err := splitArgs(tt.line)
		if (err != nil) != tt.err || !slices.Equal(got, tt.want) {
			t.Errorf("splitArgs(%q) = %q, %v; want %q, error %v", tt.line, got, err, tt.want, tt.err)
		}
	}
	var out strings.Builder
	sh := newShell(strings.NewReader(""), &out, newFakeHost())
	sh.Exec(`help "mem`)
	if got, want := out.String(), "godwit: unterminated quote\n"; got != want {
		t.Errorf("Exec(%q) printed %q, want %q", `help "mem`, got, want)
	}
}

func TestScriptLines(t *testing.T) {
	got, err := scriptLines([]byte("# demo\n\nvm create a kernel=k\r\n  vm start a  \n#x\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"vm create a kernel=k", "vm start a"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("scriptLines = %q, want %q", got, want)
	}
	if _, err := scriptLines([]byte("vm list\x00")); err == nil {
		t.Error("scriptLines accepted a NUL byte")
	}
}

func TestParseNIC(t *testing.T) {
	n, err := parseNIC("net2/02:00:00:00:00:07")
	if err != nil || n.Uplink != "net2" || n.MAC != [6]byte{2, 0, 0, 0, 0, 7} {
		t.Errorf("parseNIC(net2/02:00:00:00:00:07) = %+v, %v", n, err)
	}
	n, err = parseNIC("")
	if err != nil || n.Uplink != "" || n.MAC[0]&3 != 2 {
		t.Errorf("parseNIC(\"\") = %+v, %v: want a random locally administered unicast MAC", n, err)
	}
	for _, bad := range []string{"net2/xx", "net2/01:00:5e:00:00:01", "net2/00:00:00:00:00:00", "net2/02:00:00:00:00"} {
		if _, err := parseNIC(bad); err == nil {
			t.Errorf("parseNIC(%q) succeeded", bad)
		}
	}
}
