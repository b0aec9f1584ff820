package rig

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// bochsInfo matches the info-level messages Bochs prints before its log file is open (plugin
// loading and the like): "00000000000i[PLUGIN] loaded plugin libbx_serial.so".
var bochsInfo = regexp.MustCompile(`^\d+i\[`)

// bochsInfoLine says whether line is such a message; they stay out of the test log.
func bochsInfoLine(line []byte) bool { return bochsInfo.Match(line) }

// bochsConnectWait bounds the wait for Bochs to connect COM1 to the rig; it does so while it
// sets up its devices, well under a second after starting.
const bochsConnectWait = 60 * time.Second

// Bochs boots opts.Image (default bin/godwit.iso) under Bochs and returns the running machine;
// the test's cleanup kills it. With Cmdline or Modules, or a kernel Image, the rig builds a
// GRUB ISO around the kernel (default bin/godwit) in the test's temporary directory first.
// It fails the test if Bochs, its firmware or the image is missing.
//
// The rig writes a bochsrc (logged in full) and a debugger script into t.TempDir(), listens on
// a loopback port for COM1 and runs
//
//	bochs -q -f $TMP/bochsrc -rc $TMP/debugger.rc
//
// Bochs has no exit code of the guest's: see Machine.Wait.
func Bochs(t TB, opts Options) *Machine {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("%v", err)
	}
	bin, err := exec.LookPath(bochsBinary)
	if err != nil {
		t.Fatalf("rig: %s not found: %s", bochsBinary, hintBochs)
	}
	for _, f := range []string{bochsBIOS, bochsVGABIOS} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("rig: Bochs firmware %s missing: %s", f, hintBochs)
		}
	}
	name := opts.Name
	if name == "" {
		name = "bochs"
	}
	dir := t.TempDir()

	wantISO := opts.Cmdline != "" || len(opts.Modules) > 0
	def := DefaultISO
	if wantISO {
		def = DefaultKernel
	}
	image := resolve(root, defaultString(opts.Image, def))
	if stale, err := checkImage(root, image); err != nil {
		t.Fatalf("%v", err)
	} else if stale != "" {
		t.Logf("[%s] warning: %s", name, stale)
	}
	image = snapshotISO(t, name, dir, image)
	media := mediaOf(image)
	if media == mediaKernel {
		mods := make([]isoModule, len(opts.Modules))
		for i, mod := range opts.Modules {
			p, args := splitModule(mod)
			mods[i] = isoModule{Src: resolve(root, p), Name: strconv.Itoa(i) + "-" + filepath.Base(p), Args: args}
		}
		iso, cfg, err := buildISO(dir, image, opts.Cmdline, mods)
		if err != nil {
			t.Fatalf("%v", err)
		}
		t.Logf("[%s] built %s around %s with grub.cfg:\n%s", name, iso, image, cfg)
		image, media = iso, mediaCDROM
	} else if wantISO {
		t.Fatalf("rig: a command line and modules need a multiboot kernel image, not the %s %s", media, image)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("rig: listening for COM1: %v", err)
	}
	defer ln.Close()
	rc, err := bochsrc(bochsConfig{
		MemoryMiB:  defaultInt(opts.MemoryMiB, DefaultMemoryMiB),
		CPU:        defaultString(opts.CPU, DefaultBochsCPU),
		IPS:        defaultInt(opts.IPS, DefaultIPS),
		Media:      media,
		Image:      image,
		SerialAddr: ln.Addr().String(),
		LogPath:    filepath.Join(dir, "bochs.log"),
		BIOS:       bochsBIOS,
		VGABIOS:    bochsVGABIOS,
		Extra:      opts.BochsConfig,
	})
	if err != nil {
		t.Fatalf("%v", err)
	}
	rcPath := filepath.Join(dir, "bochsrc")
	scriptPath := filepath.Join(dir, "debugger.rc")
	if err := os.WriteFile(rcPath, []byte(rc), 0o644); err != nil {
		t.Fatalf("rig: %v", err)
	}
	if err := os.WriteFile(scriptPath, []byte(bochsDebuggerScript), 0o644); err != nil {
		t.Fatalf("rig: %v", err)
	}
	args := append([]string{"-q", "-f", rcPath, "-rc", scriptPath}, opts.ExtraArgs...)

	m := newMachine(t, name, pace(opts.Pace), bochsInfoLine)
	m.logFile = filepath.Join(dir, "bochs.log")
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatalf("rig: %v", err)
	}
	m.closers = append(m.closers, outR)
	cmd := exec.Command(bin, args...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = outW, outW // stdin is /dev/null: the debugger reads only its script
	t.Logf("[%s] %s\n%s:\n%s%s: %s(COM1 connects to %s: to run this by hand, listen there first, e.g. `socat - TCP-LISTEN:%d`)",
		name, shellQuote(append([]string{bochsBinary}, args...)), rcPath, rc, scriptPath, bochsDebuggerScript,
		ln.Addr(), ln.Addr().(*net.TCPAddr).Port)
	p, err := startProcess(cmd)
	outW.Close()
	if err != nil {
		t.Fatalf("rig: starting %s: %v", bochsBinary, err)
	}
	m.proc = p
	m.pump(outR, m.output)

	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	select {
	case a := <-ch:
		if a.err != nil {
			t.Fatalf("[%s] accepting COM1: %v", name, a.err)
		}
		m.closers = append(m.closers, a.c)
		m.attachSerial(a.c, a.c)
	case <-p.exited:
		m.drain()
		t.Fatalf("[%s] Bochs exited before connecting COM1 (%s)%s", name, m.state(), m.outputTail())
	case <-time.After(bochsConnectWait):
		t.Fatalf("[%s] Bochs did not connect COM1 within %v%s", name, bochsConnectWait, m.outputTail())
	}
	return m
}
