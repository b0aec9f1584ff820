package main

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// selftestConfig sizes the self-test. The defaults are what the boot issue asks of a 1 GiB
// host; unit tests run the same code scaled down on Linux.
type selftestConfig struct {
	Goroutines int
	LiveMiB    int // live heap kept while churning
	ChurnMiB   int // total allocated on top
	TimerSpan  time.Duration
	Tolerance  float64 // allowed relative timer error
	MinThreads int
	// Clock measures elapsed time independently of the Go runtime's timers (the TSC on bare
	// metal).
	Clock func() time.Duration
	// Threads reports how many OS threads exist.
	Threads func() int
}

func defaultSelftest(h host) selftestConfig {
	hz := h.TSCHz()
	return selftestConfig{
		Goroutines: 100_000,
		LiveMiB:    256,
		ChurnMiB:   3072,
		TimerSpan:  2 * time.Second,
		Tolerance:  0.02,
		MinThreads: 4,
		Clock:      tscClock(hz),
		Threads:    func() int { return int(h.Stats().Threads) },
	}
}

type check struct {
	name string
	fn   func(cfg selftestConfig) (string, error)
}

// runSelftest prints one line per check and a last line "selftest: PASS" or "selftest: FAIL".
func runSelftest(out io.Writer, cfg selftestConfig) bool {
	checks := []check{
		{"goroutines", checkGoroutines},
		{"gc", checkGC},
		{"timers", checkTimers},
		{"preemption", checkPreemption},
		{"threads", checkThreads},
	}
	ok := true
	for _, c := range checks {
		start := time.Now()
		detail, err := c.fn(cfg)
		took := time.Since(start).Round(time.Millisecond)
		if err != nil {
			ok = false
			fmt.Fprintf(out, "selftest: %-10s FAIL %v (%s)\n", c.name, err, took)
		} else {
			fmt.Fprintf(out, "selftest: %-10s ok   %s (%s)\n", c.name, detail, took)
		}
	}
	if ok {
		fmt.Fprintln(out, "selftest: PASS")
	} else {
		fmt.Fprintln(out, "selftest: FAIL")
	}
	return ok
}

// checkGoroutines passes a token along a chain of goroutines, all alive at once.
func checkGoroutines(cfg selftestConfig) (string, error) {
	n := cfg.Goroutines
	first := make(chan int)
	in := first
	var alive sync.WaitGroup
	alive.Add(n)
	for i := 0; i < n; i++ {
		next := make(chan int)
		go func(in <-chan int, out chan<- int) {
			alive.Done()
			out <- 1 + <-in
		}(in, next)
		in = next
	}
	alive.Wait()
	peak := runtime.NumGoroutine()
	first <- 0
	select {
	case got := <-in:
		if got != n {
			return "", fmt.Errorf("token arrived as %d, want %d", got, n)
		}
	case <-time.After(5 * time.Minute):
		return "", fmt.Errorf("token did not arrive")
	}
	if peak < n {
		return "", fmt.Errorf("only %d goroutines alive at once, want %d", peak, n)
	}
	return fmt.Sprintf("%d goroutines alive at once passed a token along a channel chain", n), nil
}

type node struct {
	next *node
	val  uint64
}

// checkGC keeps a live heap (chunks of data plus a pointer-linked list the collector must
// trace) while allocating much more, then verifies the live data.
func checkGC(cfg selftestConfig) (string, error) {
	// With one CPU the concurrent mark runs at a quarter of it, and everything allocated
	// during a mark survives that cycle; a tighter goal keeps the peak well inside RAM.
	defer debug.SetGCPercent(debug.SetGCPercent(25))
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	const chunk = 64 << 10
	chunks := make([][]byte, cfg.LiveMiB*(1<<20)/chunk)
	for i := range chunks {
		c := make([]byte, chunk)
		for j := 0; j < len(c); j += 4096 {
			c[j] = byte(i)
		}
		chunks[i] = c
		if i%512 == 511 {
			// Everything allocated during a mark survives that cycle: while the live heap is
			// being built, a long cycle would double it. Collect in steps instead.
			runtime.GC()
		}
	}
	var list *node
	nodes := cfg.LiveMiB * (1 << 20) / 256 / 16 // a list the collector must trace (a long list marks serially)
	for i := 0; i < nodes; i++ {
		list = &node{next: list, val: uint64(i)}
	}
	var peak uint64
	var sink []byte
	allocated := 0
	for size := 4096; allocated < cfg.ChurnMiB<<20; size = size*3%(64<<10) + 512 {
		sink = make([]byte, size)
		for j := 0; j < len(sink); j += 4096 {
			sink[j] = 1 // touch every page: the memory must really be backed
		}
		sink[len(sink)-1] = 1
		allocated += size
		if allocated%(64<<20) < size {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
	}
	_ = sink
	runtime.GC()
	for i, c := range chunks {
		for j := 0; j < len(c); j += 4096 {
			if c[j] != byte(i) {
				return "", fmt.Errorf("live chunk %d corrupted at %d", i, j)
			}
		}
	}
	count := 0
	for p := list; p != nil; p = p.next {
		if p.val != uint64(nodes-1-count) {
			return "", fmt.Errorf("live list corrupted at node %d", count)
		}
		count++
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	live := after.HeapAlloc
	cycles := after.NumGC - before.NumGC
	if live < uint64(cfg.LiveMiB)<<20*9/10 {
		return "", fmt.Errorf("live heap %d MiB, want at least %d MiB", live>>20, cfg.LiveMiB*9/10)
	}
	if cycles < 3 {
		return "", fmt.Errorf("only %d GC cycles while allocating %d MiB", cycles, allocated>>20)
	}
	runtime.KeepAlive(chunks)
	return fmt.Sprintf("%d MiB allocated over a %d MiB live heap (peak heap %d MiB, %d MiB from the system), %d GC cycles, live data intact",
		(after.TotalAlloc-before.TotalAlloc)>>20, live>>20, peak>>20, after.Sys>>20, cycles), nil
}

// checkTimers measures time.Sleep and a ticker against the independent clock.
func checkTimers(cfg selftestConfig) (string, error) {
	span := cfg.TimerSpan
	var sleepErr, tickErr float64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		t0 := cfg.Clock()
		time.Sleep(span)
		sleepErr = relErr(cfg.Clock()-t0, span)
	}()
	go func() {
		defer wg.Done()
		const ticks = 100
		tk := time.NewTicker(span / ticks)
		defer tk.Stop()
		t0 := cfg.Clock()
		for i := 0; i < ticks; i++ {
			<-tk.C
		}
		tickErr = relErr(cfg.Clock()-t0, span)
	}()
	wg.Wait()
	if math.Abs(sleepErr) > cfg.Tolerance || math.Abs(tickErr) > cfg.Tolerance {
		return "", fmt.Errorf("sleep off by %+.2f%%, ticker off by %+.2f%%, allowed %.0f%%", 100*sleepErr, 100*tickErr, 100*cfg.Tolerance)
	}
	return fmt.Sprintf("sleep %v off by %+.2f%%, 100 ticks off by %+.2f%% against the TSC", span, 100*sleepErr, 100*tickErr), nil
}

func relErr(got, want time.Duration) float64 { return float64(got-want) / float64(want) }

var spinSink atomic.Uint64

// checkPreemption starts a goroutine that spins without function calls and checks that timers,
// other goroutines and the collector still run.
func checkPreemption(cfg selftestConfig) (string, error) {
	runtime.GC()
	var stop atomic.Bool
	started := make(chan struct{})
	go func() {
		close(started)
		n := uint64(0)
		for !stop.Load() {
			n++
		}
		spinSink.Store(n)
	}()
	<-started
	defer stop.Store(true)
	t0 := cfg.Clock()
	time.Sleep(50 * time.Millisecond)
	slept := cfg.Clock() - t0
	if slept > 2*time.Second {
		return "", fmt.Errorf("a 50ms sleep took %v next to a spinning goroutine", slept)
	}
	// A collection started by allocation (not runtime.GC, which yields to the spinner after
	// every span it sweeps) must stop the world, and so preempt the spinner, to finish.
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.NumGC
	t1 := cfg.Clock()
	var sink []byte
	for i := 0; ; i++ {
		sink = make([]byte, 64<<10)
		sink[0] = byte(i)
		if i%256 == 0 {
			runtime.ReadMemStats(&ms)
			if ms.NumGC > before {
				break
			}
			if cfg.Clock()-t1 > time.Minute {
				return "", fmt.Errorf("no GC cycle completed in a minute next to a spinning goroutine")
			}
		}
	}
	_ = sink
	gc := cfg.Clock() - t1
	return fmt.Sprintf("with a goroutine spinning (GOMAXPROCS=%d): 50ms sleep took %v, a GC cycle completed in %v",
		runtime.GOMAXPROCS(0), slept.Round(time.Millisecond), gc.Round(time.Millisecond)), nil
}

// checkThreads holds several goroutines locked to their own OS threads at once.
func checkThreads(cfg selftestConfig) (string, error) {
	const locked = 4
	before := cfg.Threads()
	ready := make(chan int, locked)
	release := make(chan struct{})
	for i := 0; i < locked; i++ {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			ready <- 1
			<-release
		}()
	}
	for i := 0; i < locked; i++ {
		<-ready
	}
	during := cfg.Threads()
	close(release)
	if during < cfg.MinThreads || during < locked+1 {
		return "", fmt.Errorf("%d OS threads with %d goroutines locked to threads, want at least %d", during, locked, max(cfg.MinThreads, locked+1))
	}
	return fmt.Sprintf("%d OS threads before, %d with %d goroutines locked to threads", before, during, locked), nil
}
