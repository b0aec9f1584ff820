package kerneltest

import (
	"path/filepath"
	"testing"
)

// debianKernel returns Debian's stock kernel (package linux-image-amd64). The Linux-guest tests
// (linuxguest_test.go, guestnet_test.go) boot it with the project's own initramfs.
func debianKernel(t *testing.T) string {
	t.Helper()
	ks, _ := filepath.Glob("/boot/vmlinuz-*-amd64")
	if len(ks) == 0 {
		t.Fatalf("Debian's kernel is not installed (/boot/vmlinuz-*-amd64): run `make deps` or `apt-get install linux-image-amd64`")
	}
	return ks[len(ks)-1]
}
