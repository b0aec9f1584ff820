// Command godwit is the Godwit hypervisor kernel. Booted by a multiboot or PVH loader it runs
// the Go runtime in ring 0 (see arch/ring0) and serves the admin shell on COM1; run as a Linux
// program it answers -version and nothing else.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/godwit-hv/godwit/arch/ring0"
	"github.com/godwit-hv/godwit/arch/x86"
	"github.com/godwit-hv/godwit/boot"
)

// version is set by the Makefile with -ldflags -X.
var version = "dev"

func main() {
	if !ring0.BareMetal() {
		os.Exit(linuxMain(os.Args[1:]))
	}
	h := newBareHost()
	in := h.BootInfo()
	// There is no swap and no other process: keep the Go heap well inside physical memory, so
	// the collector works harder instead of the host running out of frames.
	limit := int64(h.Stats().FramesTotal*4096) * 2 / 3
	debug.SetMemoryLimit(limit)
	fmt.Printf("godwit %s: booted by %s, %d MiB usable, %s\n", version, boot.LoaderString(in.Loader),
		h.Stats().FramesTotal>>8, h.features.Vendor)
	opts, warnings := parseBootOptions(in.CmdlineString())
	for _, w := range warnings {
		fmt.Println("godwit:", w)
	}
	if opts.Selftest {
		ring0.SetExitPort(true) // a panic during the test ends QEMU with a failure status
		ok := runSelftest(os.Stdout, defaultSelftest(h))
		code := uint32(1)
		if ok {
			code = 0
		}
		// isa-debug-exit (QEMU rigs): QEMU exits with (code<<1)|1. Elsewhere the port is unused.
		ring0.FlushConsole()
		x86.Outl(ring0.DebugExitPort, code)
		if err := poweroff(); err != nil {
			fmt.Println("godwit:", err)
		}
		return
	}
	setupVMs(opts.Backend, h.features)
	for _, hook := range startupHooks {
		hook()
	}
	sh := newShell(os.Stdin, os.Stdout, h)
	sh.runBootScript(in)
	fmt.Println("godwit: admin shell on the console; type 'help'")
	if err := sh.Run(); err != nil {
		fmt.Println("godwit: console:", err)
	}
}

func linuxMain(args []string) int {
	fs := flag.NewFlagSet("godwit", flag.ContinueOnError)
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Printf("godwit %s %s/%s %s\n", version, runtime.GOOS, runtime.GOARCH, runtime.Version())
		return 0
	}
	fmt.Fprintln(os.Stderr, "godwit: this is the Godwit hypervisor kernel; boot it with a multiboot or PVH loader (see README). Flags: -version")
	return 2
}
