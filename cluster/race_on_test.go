//go:build race

package cluster_test

// raceEnabled: the race detector slows every goroutine several times, so
// the stress tests stretch their lease timeouts to keep the I/O-timeout
// assumption (every lease I/O completes within IO) true.
const raceEnabled = true
