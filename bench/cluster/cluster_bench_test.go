package clusterbench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/cluster"
)

// benchTimeouts keep renewal traffic low while the benchmarks run; the
// lease operations themselves do not wait on any timeout.
var benchTimeouts = cluster.DeriveTimeouts(50 * time.Millisecond)

type rig struct {
	dev   *cluster.FileDevice
	lun   *cluster.LUN
	hosts []*cluster.Host
}

// newRig formats a file-backed LUN for maxHosts hosts with one volume per
// host and joins `join` of them, concurrently.
func newRig(b *testing.B, maxHosts, join int) *rig {
	b.Helper()
	path := filepath.Join(b.TempDir(), "lun.img")
	dev, err := cluster.CreateFile(path, 256<<20, 512)
	if err != nil {
		b.Fatal(err)
	}
	l, err := cluster.Format(dev, cluster.FormatOptions{MaxHosts: maxHosts, MaxVolumes: maxHosts, AUSize: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	r := &rig{dev: dev, lun: l, hosts: make([]*cluster.Host, join)}
	var wg sync.WaitGroup
	errs := make([]error, join)
	for i := range r.hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.hosts[i], errs[i] = l.Join(context.Background(), cluster.HostConfig{ID: i + 1, Timeouts: benchTimeouts})
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < maxHosts; i++ {
		if err := r.hosts[0].CreateVolume(context.Background(), fmt.Sprintf("vm%03d", i), 2<<20); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() {
		for _, h := range r.hosts {
			h.Abandon()
		}
		dev.Close()
	})
	return r
}

// BenchmarkLeaseAcquireRelease: latency of one uncontended acquire+release
// pair by one host. Each acquire reads the lease area (2+2H sectors), runs
// the two-phase ballot (2 dblock writes, 2 area reads) and writes the
// leader; release reads the area and writes the leader.
func BenchmarkLeaseAcquireRelease(b *testing.B) {
	for _, hosts := range []int{16, 64} {
		b.Run(fmt.Sprintf("hosts=%d", hosts), func(b *testing.B) {
			r := newRig(b, hosts, 1)
			h := r.hosts[0]
			var acq, rel time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				v, err := h.Acquire("vm000")
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if _, err := v.Release(); err != nil {
					b.Fatal(err)
				}
				acq += t1.Sub(t0)
				rel += time.Since(t1)
			}
			b.ReportMetric(float64(acq.Nanoseconds())/float64(b.N), "acquire-ns")
			b.ReportMetric(float64(rel.Nanoseconds())/float64(b.N), "release-ns")
		})
	}
}

// BenchmarkLeaseThroughput: all hosts of the LUN acquire and release at
// once. "own" gives every host its own volume (no contention: the
// throughput of lease I/O on one LUN); "shared" makes all hosts compete for
// 4 volumes (ballot aborts, lost ballots and ErrLeaseHeld count as
// operations that failed).
func BenchmarkLeaseThroughput(b *testing.B) {
	for _, hosts := range []int{16, 64} {
		for _, mode := range []string{"own", "shared"} {
			b.Run(fmt.Sprintf("hosts=%d/%s", hosts, mode), func(b *testing.B) {
				r := newRig(b, hosts, hosts)
				var ok, failed atomic.Int64
				var next atomic.Int64
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for i, h := range r.hosts {
					wg.Add(1)
					go func() {
						defer wg.Done()
						rnd := rand.New(rand.NewPCG(uint64(i), 1))
						for next.Add(1) <= int64(b.N) {
							name := fmt.Sprintf("vm%03d", i)
							if mode == "shared" {
								name = fmt.Sprintf("vm%03d", rnd.IntN(4))
							}
							v, err := h.Acquire(name)
							if err != nil {
								failed.Add(1)
								continue
							}
							if _, err := v.Release(); err != nil {
								failed.Add(1)
								continue
							}
							ok.Add(1)
						}
					}()
				}
				wg.Wait()
				el := time.Since(start).Seconds()
				b.ReportMetric(float64(ok.Load())/el, "acq+rel/s")
				b.ReportMetric(float64(failed.Load())/float64(b.N), "failed/op")
			})
		}
	}
}

// BenchmarkDataIO measures the layer's data path against raw I/O on the
// same file: each iteration does the same request once through
// FileDevice.WriteSectors/ReadSectors at the volume's physical offset and
// once through Volume.WriteAt/ReadAt, timing them separately, and reports
// both and their ratio side by side.
func BenchmarkDataIO(b *testing.B) {
	r := newRig(b, 16, 1)
	v, err := r.hosts[0].Acquire("vm000")
	if err != nil {
		b.Fatal(err)
	}
	vols, err := r.lun.List()
	if err != nil {
		b.Fatal(err)
	}
	lay := r.lun.Layout()
	physBase := lay.DataStart + int64(vols[0].Extents[0][0])*(lay.AUSize/512)
	for _, tc := range []struct {
		name  string
		size  int
		write bool
	}{
		{"write-4K", 4 << 10, true}, {"read-4K", 4 << 10, false},
		{"write-64K", 64 << 10, true}, {"read-64K", 64 << 10, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			buf := make([]byte, tc.size)
			rnd := rand.New(rand.NewPCG(1, 2))
			slots := int(v.Size()) / tc.size
			var raw, layer time.Duration
			b.SetBytes(int64(2 * tc.size))
			b.ResetTimer()
			doRaw := func(off int64) error {
				if tc.write {
					return r.dev.WriteSectors(physBase+off/512, buf)
				}
				return r.dev.ReadSectors(physBase+off/512, buf)
			}
			doLayer := func(off int64) error {
				var err error
				if tc.write {
					_, err = v.WriteAt(buf, off)
				} else {
					_, err = v.ReadAt(buf, off)
				}
				return err
			}
			for i := 0; i < b.N; i++ {
				off := int64(rnd.IntN(slots) * tc.size)
				// Alternate which goes first so neither gains from the
				// other's cache effects.
				first, second, fd, sd := doRaw, doLayer, &raw, &layer
				if i%2 == 1 {
					first, second, fd, sd = doLayer, doRaw, &layer, &raw
				}
				t0 := time.Now()
				err := first(off)
				t1 := time.Now()
				if err == nil {
					err = second(off)
				}
				t2 := time.Now()
				if err != nil {
					b.Fatal(err)
				}
				*fd += t1.Sub(t0)
				*sd += t2.Sub(t1)
			}
			b.ReportMetric(float64(raw.Nanoseconds())/float64(b.N), "raw-ns/op")
			b.ReportMetric(float64(layer.Nanoseconds())/float64(b.N), "layer-ns/op")
			b.ReportMetric(float64(layer)/float64(raw), "layer/raw")
		})
	}
}
