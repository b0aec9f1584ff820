// Command godwit is the Godwit hypervisor kernel. Booted by a multiboot or PVH loader it runs
// in ring 0 (see arch/ring0) and serves the admin shell on COM1; run as a Linux program it
// answers -version.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"

	"github.com/godwit-hv/godwit/arch/ring0"
)

// version is set by the Makefile with -ldflags -X.
var version = "dev"

func main() {
	if !ring0.BareMetal() {
		showVersion := flag.Bool("version", false, "print the version and exit")
		flag.Parse()
		if *showVersion {
			fmt.Printf("godwit %s %s/%s %s\n", version, runtime.GOOS, runtime.GOARCH, runtime.Version())
			return
		}
		fmt.Fprintln(os.Stderr, "godwit: this is the Godwit hypervisor kernel; boot it with a multiboot or PVH loader (see README). Flags: -version")
		os.Exit(2)
	}
	fmt.Println("godwit: hello from ring 0")
	select {}
}
