// Package linuxbench compares Debian's stock kernel with the project's initramfs
// (guest/initramfs) booted directly by QEMU TCG against the same kernel and initramfs booted as
// a Godwit guest (bin/godwit under QEMU TCG, SVM), and measures virtio-blk read throughput in
// the directly booted guest. Run with
//
//	go test -run '^$' -bench . ./bench/linux/
//
// It needs bin/godwit (`make bin/godwit`), Debian's kernel and busybox-static (`make deps`).
// The whole run takes a few minutes.
package linuxbench
