package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunWritesAndLists(t *testing.T) {
	out := filepath.Join(t.TempDir(), "initramfs.cpio.gz")
	var stdout bytes.Buffer
	if err := run(&stdout, []string{"-o", out, "-src", "../../guest/initramfs"}); err != nil {
		t.Fatalf("run: %v", err)
	}
	if !strings.Contains(stdout.String(), "14 modules") {
		t.Errorf("run said %q, want the default 14 modules", stdout.String())
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("stat %s: %v, %v", out, fi, err)
	}
	stdout.Reset()
	if err := run(&stdout, []string{"-t", out}); err != nil {
		t.Fatalf("run -t: %v", err)
	}
	initLine := false
	for _, l := range strings.Split(stdout.String(), "\n") {
		initLine = initLine || strings.HasPrefix(l, "0100755 ") && strings.HasSuffix(l, " init")
	}
	if !initLine {
		t.Errorf("listing has no executable regular file init:\n%s", stdout.String())
	}
	for _, want := range []string{
		"bin/sh -> /bin/busybox\n",
		"dev/console (char 5,1)\n",
		"/kernel/fs/ext4/ext4.ko\n",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("listing has no %q", want)
		}
	}
	if matches, _ := filepath.Glob(out + ".*"); len(matches) != 0 {
		t.Errorf("temporary files left: %q", matches)
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args  []string
		usage bool
	}{
		{[]string{"-nosuchflag"}, true},
		{[]string{"extra"}, true},
		{[]string{"-mtime", "4294967296"}, true},
		{[]string{"-o", filepath.Join(dir, "x.gz"), "-src", dir}, false}, // no init there
		{[]string{"-o", filepath.Join(dir, "y.gz"), "-src", "../../guest/initramfs", "-modules", "nosuch"}, false}, // unknown module
		{[]string{"-t", filepath.Join(dir, "missing.gz")}, false},
	}
	for _, tc := range tests {
		err := run(&bytes.Buffer{}, tc.args)
		if err == nil {
			t.Errorf("run(%q) = nil error", tc.args)
			continue
		}
		if got := errors.As(err, new(usageError)); got != tc.usage {
			t.Errorf("run(%q) = %v: usage error %v, want %v", tc.args, err, got, tc.usage)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*")); len(m) != 0 {
		t.Errorf("failed runs left files: %q", m)
	}
}
