package rig

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTB records what the rig reports and ends the calling goroutine on Fatalf, as testing.T
// does. Run code that may call Fatalf through run.
type fakeTB struct {
	t *testing.T

	mu       sync.Mutex
	logs     []string
	logged   chan struct{} // closed and replaced on every Logf
	fatal    string
	failed   bool
	cleanups []func()
}

func newFakeTB(t *testing.T) *fakeTB { return &fakeTB{t: t, logged: make(chan struct{})} }

func (f *fakeTB) Helper()      {}
func (f *fakeTB) Name() string { return "fake" }
func (f *fakeTB) Logf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
	close(f.logged)
	f.logged = make(chan struct{})
}

// waitLog waits up to timeout for a log line holding s.
func (f *fakeTB) waitLog(s string, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		f.mu.Lock()
		text, logged := strings.Join(f.logs, "\n"), f.logged
		f.mu.Unlock()
		if strings.Contains(text, s) {
			return true
		}
		select {
		case <-logged:
		case <-deadline:
			return false
		}
	}
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.failed = true
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fakeTB) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}
func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}
func (f *fakeTB) TempDir() string { return f.t.TempDir() }

// run calls fn on a goroutine of its own and returns the Fatalf message, if any.
func (f *fakeTB) run(fn func()) (fatal string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	fatal, f.fatal = f.fatal, ""
	return fatal
}

// finish runs the registered cleanups, last first.
func (f *fakeTB) finish() {
	f.mu.Lock()
	c := f.cleanups
	f.cleanups = nil
	f.mu.Unlock()
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

func (f *fakeTB) logText() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.logs, "\n")
}

// fakeGuest is a Machine with no emulator: the test writes the guest's output to out and reads
// what the Machine sends from in.
type fakeGuest struct {
	m   *Machine
	tb  *fakeTB
	out *io.PipeWriter // guest output
	in  *inputRecorder // guest input
}

func newFakeGuest(t *testing.T, pace time.Duration) *fakeGuest {
	tb := newFakeTB(t)
	m := newMachine(tb, "fake", pace, nil)
	r, w := io.Pipe()
	in := &inputRecorder{}
	m.closers = append(m.closers, r)
	m.attachSerial(r, in)
	g := &fakeGuest{m: m, tb: tb, out: w, in: in}
	t.Cleanup(func() {
		w.Close()
		tb.finish()
	})
	return g
}

// emit writes guest output in the given pieces.
func (g *fakeGuest) emit(pieces ...string) {
	for _, p := range pieces {
		if _, err := g.out.Write([]byte(p)); err != nil {
			g.tb.t.Fatalf("guest output: %v", err)
		}
	}
}

// inputRecorder records each Write the Machine makes to the guest, with its time.
type inputRecorder struct {
	mu     sync.Mutex
	writes []string
	times  []time.Time
}

func (r *inputRecorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, string(p))
	r.times = append(r.times, time.Now())
	return len(p), nil
}
