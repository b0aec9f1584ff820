// Command godwit-mkimage turns the linked Godwit kernel ELF into the bootable image: it writes
// the multiboot v1 header and the PVH entry note (see boot.Patch).
//
//	godwit-mkimage [-multiboot=true] [-pvh=true] IN OUT
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/godwit-hv/godwit/boot"
)

func main() {
	if err := run(os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "godwit-mkimage:", err)
		os.Exit(1)
	}
}

func run(stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("godwit-mkimage", flag.ContinueOnError)
	mb := fs.Bool("multiboot", true, "write the multiboot v1 header")
	pvh := fs.Bool("pvh", true, "write the Xen PVH entry note")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("usage: godwit-mkimage [-multiboot=BOOL] [-pvh=BOOL] IN OUT")
	}
	in, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	out, info, err := boot.Patch(in, boot.PatchOptions{Multiboot: *mb, PVH: *pvh})
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	if err := os.WriteFile(fs.Arg(1), out, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: multiboot header at %#x, PVH note at %#x, entry %#x, load end %#x, bss end %#x\n",
		fs.Arg(1), info.HeaderOffset, info.NoteOffset, info.Entry, info.LoadEnd, info.BSSEnd)
	return nil
}
