// Package netbench compares, in one run, the TCP throughput between two Godwit hosts (`net test`
// over their migration link) with the TCP throughput between two plain Linux VMs (Debian's
// kernel with the project's initramfs: BusyBox httpd and wget, and BusyBox nc) over the same
// kind of QEMU link: virtio-net-pci NICs joined by a -netdev socket cable on loopback, an MTU of
// 1500, one CPU and the same memory under QEMU TCG (issue 7, must-show 4). Every transfer is
// timed by the host's wall clock; see BenchmarkNetTest for what each figure covers. Run with
//
//	go test -run '^$' -bench . ./bench/net/
//
// It needs bin/godwit (`make bin/godwit`), QEMU, Debian's kernel and busybox-static
// (`make deps`). The whole run takes one to three minutes.
package netbench
