// Package clusterbench holds benchmarks of package cluster: lease
// acquire/release latency and throughput with 16 and 64 hosts on one LUN,
// and the data I/O overhead of the shared-volume layer against raw file
// I/O. Run them with
//
//	go test -run '^$' -bench . ./bench/cluster/
package clusterbench
