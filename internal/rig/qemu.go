package rig

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// qemuConfig is everything qemuArgs needs, with paths absolute.
type qemuConfig struct {
	Image     string
	Media     mediaKind
	Cmdline   string
	Modules   []string // "path [args]"
	MemoryMiB int
	CPU       string
	Extra     []string
}

// qemuArgs builds QEMU's arguments. The guest's COM1 is QEMU's stdin and stdout
// (-serial stdio; -monitor none keeps the monitor off them), so the logged command line can
// be run by hand in a terminal as it stands.
func qemuArgs(c qemuConfig) ([]string, error) {
	args := []string{
		"-accel", "tcg",
		"-cpu", c.CPU,
		"-m", strconv.Itoa(c.MemoryMiB),
		"-display", "none",
		"-no-reboot",
		"-monitor", "none",
		"-serial", "stdio",
		"-device", fmt.Sprintf("isa-debug-exit,iobase=%#x,iosize=%#02x", ISADebugExitPort, isaDebugExitSize),
	}
	if c.Media != mediaKernel && (c.Cmdline != "" || len(c.Modules) > 0) {
		return nil, fmt.Errorf("rig: a command line and modules need a multiboot kernel image, not the %s %s", c.Media, c.Image)
	}
	switch c.Media {
	case mediaKernel:
		args = append(args, "-kernel", c.Image)
		if c.Cmdline != "" {
			args = append(args, "-append", c.Cmdline)
		}
		if len(c.Modules) > 0 {
			// -initrd takes "file args,file args"; a comma inside is doubled.
			mods := make([]string, len(c.Modules))
			for i, m := range c.Modules {
				mods[i] = strings.ReplaceAll(m, ",", ",,")
			}
			args = append(args, "-initrd", strings.Join(mods, ","))
		}
	case mediaCDROM:
		args = append(args, "-cdrom", c.Image, "-boot", "d")
	case mediaFloppy:
		args = append(args, "-drive", "file="+strings.ReplaceAll(c.Image, ",", ",,")+",format=raw,if=floppy", "-boot", "a")
	}
	return append(args, c.Extra...), nil
}

// QEMU boots opts.Image (default bin/godwit, with -kernel) under QEMU TCG and returns the
// running machine; the test's cleanup kills it. It fails the test if QEMU or the image is
// missing. The command line is logged, and so is every line of serial output.
//
//	qemu-system-x86_64 -accel tcg -cpu max -m 1024 -display none -no-reboot -monitor none \
//	    -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel bin/godwit
func QEMU(t TB, opts Options) *Machine {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("%v", err)
	}
	bin, err := exec.LookPath(qemuBinary)
	if err != nil {
		t.Fatalf("rig: %s not found: %s", qemuBinary, hintQEMU)
	}
	name := opts.Name
	if name == "" {
		name = "qemu"
	}
	image := resolve(root, defaultString(opts.Image, DefaultKernel))
	if stale, err := checkImage(root, image); err != nil {
		t.Fatalf("%v", err)
	} else if stale != "" {
		t.Logf("[%s] warning: %s", name, stale)
	}
	if mediaOf(image) == mediaCDROM {
		image = snapshotISO(t, name, t.TempDir(), image)
	}
	mods := make([]string, len(opts.Modules))
	for i, mod := range opts.Modules {
		p, args := splitModule(mod)
		p = resolve(root, p)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("rig: module %s: %v", mod, err)
		}
		mods[i] = strings.TrimSpace(p + " " + args)
	}
	args, err := qemuArgs(qemuConfig{
		Image:     image,
		Media:     mediaOf(image),
		Cmdline:   opts.Cmdline,
		Modules:   mods,
		MemoryMiB: defaultInt(opts.MemoryMiB, DefaultMemoryMiB),
		CPU:       defaultString(opts.CPU, DefaultQEMUCPU),
		Extra:     opts.ExtraArgs,
	})
	if err != nil {
		t.Fatalf("%v", err)
	}

	m := newMachine(t, name, pace(opts.Pace), nil)
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatalf("rig: %v", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatalf("rig: %v", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatalf("rig: %v", err)
	}
	m.closers = append(m.closers, inW, outR, errR)
	cmd := exec.Command(bin, args...)
	cmd.Dir = root
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	t.Logf("[%s] (cd %s && %s)", name, root, shellQuote(append([]string{qemuBinary}, args...)))
	p, err := startProcess(cmd)
	// The child has its own copies of these ends; ours must go so that its exit ends our reads.
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		t.Fatalf("rig: starting %s: %v", qemuBinary, err)
	}
	m.proc = p
	m.pump(errR, m.output)
	m.attachSerial(outR, inW)
	return m
}

// pace turns Options.Pace into the delay between typed bytes.
func pace(p time.Duration) time.Duration {
	switch {
	case p == 0:
		return DefaultPace
	case p < 0:
		return 0
	}
	return p
}

func defaultString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func defaultInt(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}
