package initramfs

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakeDep is a made-up modules.dep in depmod's format, with dependencies listed out of order
// on purpose (e depends on d and b; d depends on c and b).
const fakeDep = `kernel/a.ko:
kernel/b.ko: kernel/a.ko
kernel/c.ko:
kernel/d.ko: kernel/b.ko kernel/c.ko kernel/a.ko
kernel/e-x.ko: kernel/d.ko kernel/b.ko kernel/c.ko kernel/a.ko
kernel/loop1.ko: kernel/loop2.ko
kernel/loop2.ko: kernel/loop1.ko
kernel/orphan.ko: kernel/missing.ko
`

func TestLoadOrder(t *testing.T) {
	deps, err := ParseDep(strings.NewReader(fakeDep))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		names   []string
		want    []string
		wantErr string
	}{
		{[]string{"a"}, []string{"kernel/a.ko"}, ""},
		{[]string{"e_x"}, []string{"kernel/a.ko", "kernel/b.ko", "kernel/c.ko", "kernel/d.ko", "kernel/e-x.ko"}, ""},
		{[]string{"e-x"}, []string{"kernel/a.ko", "kernel/b.ko", "kernel/c.ko", "kernel/d.ko", "kernel/e-x.ko"}, ""},
		{[]string{"c", "b", "c"}, []string{"kernel/c.ko", "kernel/a.ko", "kernel/b.ko"}, ""},
		{[]string{"nosuch"}, nil, `no module "nosuch"`},
		{[]string{"loop1"}, nil, "dependency loop"},
		{[]string{"orphan"}, nil, "kernel/missing.ko (needed by kernel/orphan.ko) is not listed"},
	}
	for _, tc := range tests {
		got, err := deps.LoadOrder(tc.names)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("LoadOrder(%q) error = %v, want one containing %q", tc.names, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("LoadOrder(%q) = %q, %v; want %q", tc.names, got, err, tc.want)
		}
	}
	sub := string(deps.Subset([]string{"kernel/b.ko", "kernel/a.ko"}))
	if want := "kernel/a.ko:\nkernel/b.ko: kernel/a.ko\n"; sub != want {
		t.Errorf("Subset = %q, want %q", sub, want)
	}
}

func TestParseDepRejects(t *testing.T) {
	for _, in := range []string{
		"kernel/a.ko.xz:\n",
		"kernel/a.ko\n",
		": kernel/a.ko\n",
		"kernel/a.ko:\nkernel/a.ko:\n",
	} {
		if _, err := ParseDep(strings.NewReader(in)); err == nil {
			t.Errorf("ParseDep(%q) = nil error", in)
		}
	}
}

func TestVersionLess(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"6.1.0-9-amd64", "6.1.0-56-amd64", true},
		{"6.1.0-56-amd64", "6.1.0-9-amd64", false},
		{"5.10.0-30-amd64", "6.1.0-1-amd64", true},
		{"6.1.0-56-amd64", "6.1.0-56-amd64", false},
		{"6.1.0-56-amd64", "6.1.0-56-cloud-amd64", true},
		{"6.10.0-1-amd64", "6.9.0-1-amd64", false},
	}
	for _, tc := range tests {
		if got := versionLess(tc.a, tc.b); got != tc.want {
			t.Errorf("versionLess(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestFindKernel(t *testing.T) {
	root := t.TempDir()
	mk := func(p string) {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := FindKernel(root); err != ErrNoKernel {
		t.Errorf("FindKernel(empty) error = %v, want ErrNoKernel", err)
	}
	mk("boot/vmlinuz-6.1.0-9-amd64")
	mk("lib/modules/6.1.0-9-amd64/modules.dep")
	mk("boot/vmlinuz-6.1.0-56-amd64")
	mk("lib/modules/6.1.0-56-amd64/modules.dep")
	mk("boot/vmlinuz-6.1.0-60-amd64") // no modules: not a candidate
	k, err := FindKernel(root)
	want := Kernel{
		Version: "6.1.0-56-amd64",
		Image:   filepath.Join(root, "boot/vmlinuz-6.1.0-56-amd64"),
		Modules: filepath.Join(root, "lib/modules/6.1.0-56-amd64"),
	}
	if err != nil || k != want {
		t.Errorf("FindKernel = %+v, %v; want %+v", k, err, want)
	}
}
