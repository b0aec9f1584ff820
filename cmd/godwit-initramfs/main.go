// Command godwit-initramfs writes Godwit's guest initramfs (package guest/initramfs): a
// gzip-compressed newc cpio archive holding Debian's busybox-static, the virtio and ext4
// modules of the newest installed Debian kernel in load order, and guest/initramfs/init.
//
//	godwit-initramfs [-o FILE] [-src DIR] [-busybox FILE] [-root DIR] [-modules a,b,...] [-mtime N]
//	godwit-initramfs -t FILE      list an archive (gzip-compressed or not)
//
// Exit status: 0 on success, 1 on failure, 2 on bad usage.
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/godwit-hv/godwit/guest/initramfs"
)

func main() {
	err := run(os.Stdout, os.Args[1:])
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "godwit-initramfs:", err)
	if errors.Is(err, flag.ErrHelp) || errors.As(err, new(usageError)) {
		os.Exit(2)
	}
	os.Exit(1)
}

// usageError is bad command-line use.
type usageError struct{ error }

func run(stdout io.Writer, args []string) error {
	fl := flag.NewFlagSet("godwit-initramfs", flag.ContinueOnError)
	out := fl.String("o", "bin/initramfs.cpio.gz", "the archive to write")
	src := fl.String("src", "guest/initramfs", "the directory of init, inittab and profile")
	busybox := fl.String("busybox", "/bin/busybox", "a statically linked BusyBox (Debian's busybox-static)")
	root := fl.String("root", "/", "where /boot/vmlinuz-* and /lib/modules are looked up")
	mods := fl.String("modules", strings.Join(initramfs.DefaultModules, ","), "modules to include (with what they depend on), comma-separated")
	mtime := fl.Uint("mtime", 0, "modification time of every entry, in seconds since 1970")
	list := fl.String("t", "", "list the entries of this archive instead of writing one")
	if err := fl.Parse(args); err != nil {
		return usageError{err}
	}
	if fl.NArg() != 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fl.Args())}
	}
	if *list != "" {
		return listArchive(stdout, *list)
	}
	if *mtime > 0xffffffff {
		return usageError{fmt.Errorf("-mtime %d does not fit 32 bits", *mtime)}
	}
	var names []string
	for _, m := range strings.Split(*mods, ",") {
		if m = strings.TrimSpace(m); m != "" {
			names = append(names, m)
		}
	}
	// Write next to the target and rename, so that a reader never sees half an archive.
	tmp, err := os.CreateTemp(filepath.Dir(*out), filepath.Base(*out)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriter(tmp)
	man, err := initramfs.Build(bw, initramfs.Config{
		Root: *root, Busybox: *busybox, Src: *src, Modules: names, MTime: uint32(*mtime),
	})
	if err == nil {
		err = bw.Flush()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: kernel %s, %d modules, %d applet links, %d entries\n",
		*out, man.Kernel.Version, len(man.Modules), man.Applets, man.Entries)
	return nil
}

// listArchive prints one line per entry: mode, size and name (and a symlink's target).
func listArchive(stdout io.Writer, name string) error {
	b, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	var r io.Reader = bytes.NewReader(b)
	if len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b { // gzip's ID1 ID2 (RFC 1952, 2.3.1)
		zr, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		r = zr
	}
	entries, err := initramfs.ReadAll(r)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	w := bufio.NewWriter(stdout)
	for _, e := range entries {
		fmt.Fprintf(w, "%07o %9d %s", e.Mode, len(e.Data), e.Name)
		if e.IsSymlink() {
			fmt.Fprintf(w, " -> %s", e.Data)
		}
		if e.IsCharDev() {
			fmt.Fprintf(w, " (char %d,%d)", e.RDevMajor, e.RDevMinor)
		}
		fmt.Fprintln(w)
	}
	return w.Flush()
}
