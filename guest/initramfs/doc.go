// Package initramfs builds Godwit's guest initramfs for Debian's stock kernel
// (linux-image-amd64): Debian's statically linked BusyBox (busybox-static) with a link for each
// of its applets, the kernel's virtio-pci, virtio-blk, virtio-net and ext4 modules with what
// they need, loaded in the order the kernel's modules.dep gives, and a small /init.
//
// The archive is a gzip-compressed newc cpio (cpio.go), written without root rights and
// without a host cpio. The same inputs give the same bytes.
//
// Sources, in this directory:
//
//	init     /init, run by the kernel as PID 1: mounts proc, sysfs and devtmpfs, loads the
//	         modules, prints "godwit-initramfs: ..." markers ending in "godwit-initramfs: ready",
//	         then execs BusyBox init
//	inittab  /etc/inittab: the console shell through cttyhack (job control), respawned
//	profile  /etc/profile: PATH and the prompt "guest# "
//
// `poweroff`, `reboot` and `halt` typed in the shell signal BusyBox init, which runs the
// inittab's shutdown lines and then asks the kernel to power off or restart.
//
// Command godwit-initramfs (`make bin/initramfs.cpio.gz`) writes the archive. The tests boot it
// directly under QEMU TCG with Debian's kernel and a virtio disk; package bench/linux compares
// that boot with the same kernel and initramfs as a Godwit guest.
package initramfs
