package rig

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFindRoot(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "internal", "rig", "testdata")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{root, deep} {
		if got, err := findRoot(dir); err != nil || got != root {
			t.Errorf("findRoot(%s) = %q, %v, want %q", dir, got, err, root)
		}
	}
	if _, err := findRoot("/"); !errors.Is(err, ErrNoRepoRoot) {
		t.Errorf("findRoot(/) error = %v, want ErrNoRepoRoot", err)
	}
	// The tests of this package run inside the repository.
	got, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(got, "internal", "rig", "options.go")); err != nil {
		t.Errorf("RepoRoot() = %s, which does not hold internal/rig: %v", got, err)
	}
}

func TestMediaOf(t *testing.T) {
	tests := []struct {
		path string
		want mediaKind
	}{
		{"bin/godwit", mediaKernel},
		{"bin/godwit.elf", mediaKernel},
		{"bin/godwit.iso", mediaCDROM},
		{"/t/BOOT.ISO", mediaCDROM},
		{"/t/echo.img", mediaFloppy},
	}
	for _, tt := range tests {
		if got := mediaOf(tt.path); got != tt.want {
			t.Errorf("mediaOf(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestSplitModule(t *testing.T) {
	tests := []struct{ in, path, args string }{
		{"guest.elf", "guest.elf", ""},
		{" guest.elf  console=ttyS0 quiet ", "guest.elf", "console=ttyS0 quiet"},
	}
	for _, tt := range tests {
		if p, a := splitModule(tt.in); p != tt.path || a != tt.args {
			t.Errorf("splitModule(%q) = %q, %q, want %q, %q", tt.in, p, a, tt.path, tt.args)
		}
	}
}

func TestCheckImage(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	kernel := filepath.Join(root, DefaultKernel)
	iso := filepath.Join(root, DefaultISO)

	_, err := checkImage(root, kernel)
	if err == nil || !strings.Contains(err.Error(), "run `make` first") {
		t.Errorf("checkImage(missing) = %v, want an error saying to run make", err)
	}
	for _, f := range []string{iso, kernel} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(iso, old, old); err != nil {
		t.Fatal(err)
	}
	if stale, err := checkImage(root, iso); err != nil || !strings.Contains(stale, "make iso") {
		t.Errorf("checkImage(ISO older than the kernel) = %q, %v, want a warning to run make iso", stale, err)
	}
	if stale, err := checkImage(root, kernel); err != nil || stale != "" {
		t.Errorf("checkImage(kernel) = %q, %v, want no warning", stale, err)
	}
}

func TestPace(t *testing.T) {
	tests := []struct{ in, want time.Duration }{
		{0, DefaultPace},
		{-1, 0},
		{10 * time.Millisecond, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := pace(tt.in); got != tt.want {
			t.Errorf("pace(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	got := shellQuote([]string{"bochs", "-q", "-f", "/tmp/a/bochsrc", "cpu: model=ryzen", "it's", ""})
	want := `bochs -q -f /tmp/a/bochsrc 'cpu: model=ryzen' 'it'\''s' ''`
	if got != want {
		t.Errorf("shellQuote() = %s, want %s", got, want)
	}
}
