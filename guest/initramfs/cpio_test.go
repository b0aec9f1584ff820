package initramfs

import (
	"bytes"
	"errors"
	"io/fs"
	"testing"
)

func TestCpioRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.MTime = 1234
	steps := []struct {
		add  func() error
		want Entry
	}{
		{func() error { return w.Dir("bin", 0o755) }, Entry{Name: "bin", Mode: 0o040755, NLink: 2}},
		{func() error { return w.Dir("tmp", fs.ModeSticky|0o777) }, Entry{Name: "tmp", Mode: 0o041777, NLink: 2}},
		{func() error { return w.File("init", 0o755, []byte("#!/bin/sh\n")) }, Entry{Name: "init", Mode: 0o100755, NLink: 1, Data: []byte("#!/bin/sh\n")}},
		{func() error { return w.File("bin/empty", 0o644, nil) }, Entry{Name: "bin/empty", Mode: 0o100644, NLink: 1}},
		{func() error { return w.File("bin/odd", 0o600, []byte("abcde")) }, Entry{Name: "bin/odd", Mode: 0o100600, NLink: 1, Data: []byte("abcde")}},
		{func() error { return w.Symlink("bin/sh", "/bin/busybox") }, Entry{Name: "bin/sh", Mode: 0o120777, NLink: 1, Data: []byte("/bin/busybox")}},
		{func() error { return w.CharDev("dev/console", 0o600, 5, 1) }, Entry{Name: "dev/console", Mode: 0o020600, NLink: 1, RDevMajor: 5, RDevMinor: 1}},
	}
	for _, s := range steps {
		if err := s.add(); err != nil {
			t.Fatalf("adding %s: %v", s.want.Name, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%newcAlign != 0 {
		t.Errorf("archive length %d is not a multiple of %d", buf.Len(), newcAlign)
	}
	got, err := ReadAll(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if len(got) != len(steps) {
		t.Fatalf("ReadAll returned %d entries, want %d", len(got), len(steps))
	}
	for i, s := range steps {
		g, want := got[i], s.want
		want.MTime = 1234
		if g.Name != want.Name || g.Mode != want.Mode || g.NLink != want.NLink || g.MTime != want.MTime ||
			g.RDevMajor != want.RDevMajor || g.RDevMinor != want.RDevMinor || !bytes.Equal(g.Data, want.Data) || g.UID != 0 || g.GID != 0 {
			t.Errorf("entry %d = %+v, want %+v", i, g, want)
		}
	}
	if p := got[1].Perm(); p != fs.ModeSticky|0o777 {
		t.Errorf("tmp Perm() = %v, want %v", p, fs.ModeSticky|0o777)
	}
	for i, want := range []struct{ dir, reg, sym, chr bool }{
		{dir: true}, {dir: true}, {reg: true}, {reg: true}, {reg: true}, {sym: true}, {chr: true},
	} {
		e := got[i]
		if e.IsDir() != want.dir || e.IsRegular() != want.reg || e.IsSymlink() != want.sym || e.IsCharDev() != want.chr {
			t.Errorf("%s: kind dir/reg/sym/chr = %v/%v/%v/%v, want %+v", e.Name, e.IsDir(), e.IsRegular(), e.IsSymlink(), e.IsCharDev(), want)
		}
	}
}

func TestCpioWriterRejects(t *testing.T) {
	tests := []struct {
		name string
		add  func(w *Writer) error
	}{
		{"absolute name", func(w *Writer) error { return w.File("/init", 0o755, nil) }},
		{"empty name", func(w *Writer) error { return w.Dir("", 0o755) }},
		{"dot", func(w *Writer) error { return w.Dir(".", 0o755) }},
		{"dot-dot", func(w *Writer) error { return w.File("../x", 0o644, nil) }},
		{"unclean", func(w *Writer) error { return w.File("a//b", 0o644, nil) }},
		{"trailer name", func(w *Writer) error { return w.File(newcTrailer, 0o644, nil) }},
		{"empty symlink", func(w *Writer) error { return w.Symlink("bin/sh", "") }},
		{"twice", func(w *Writer) error {
			if err := w.Dir("bin", 0o755); err != nil {
				return nil // not the error under test; fails below as "no error"
			}
			return w.Dir("bin", 0o755)
		}},
		{"after close", func(w *Writer) error {
			if err := w.Close(); err != nil {
				return nil
			}
			return w.Dir("bin", 0o755)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWriter(&bytes.Buffer{})
			if err := tc.add(w); err == nil {
				t.Errorf("%s: no error", tc.name)
			}
		})
	}
}

func TestCpioReadAllRejects(t *testing.T) {
	var good bytes.Buffer
	w := NewWriter(&good)
	if err := w.File("init", 0o755, []byte("#!/bin/sh\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b := good.Bytes()
	corrupt := func(off int, s string) []byte {
		c := bytes.Clone(b)
		copy(c[off:], s)
		return c
	}
	tests := []struct {
		name    string
		archive []byte
		is      error // if set, errors.Is must hold
	}{
		{"empty", nil, ErrNoTrailer},
		{"cut in the first header", b[:50], ErrNoTrailer},
		{"no trailer", b[:newcHeaderSize+8+12], ErrNoTrailer},
		{"bad magic", corrupt(0, "070707"), nil},
		{"not hex", corrupt(6, "zzzzzzzz"), nil},
		{"zero name size", corrupt(6+8*11, "00000000"), nil},
		{"huge data size", corrupt(6+8*6, "7fffffff"), nil},
		{"name without NUL", corrupt(newcHeaderSize+4, "x"), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadAll(bytes.NewReader(tc.archive))
			if err == nil {
				t.Fatalf("ReadAll(%s) = nil error", tc.name)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("ReadAll(%s) = %v, want %v", tc.name, err, tc.is)
			}
		})
	}
	if _, err := ReadAll(bytes.NewReader(append(bytes.Clone(b), make([]byte, 512)...))); err != nil {
		t.Errorf("ReadAll with zero padding after the trailer: %v", err)
	}
}
