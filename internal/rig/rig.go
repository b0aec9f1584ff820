package rig

import (
	"io"
	"sync"
	"time"
)

// TB is the part of testing.TB the rig uses; *testing.T and *testing.B satisfy it.
type TB interface {
	Helper()
	Name() string
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
	Failed() bool
	Cleanup(func())
	TempDir() string
}

// Machine is one running emulator with the guest's COM1 attached to the test.
//
// Expect, ExpectRegexp, Send, Type and SendLine may fail the test with Fatalf, so call them
// (and Wait and Kill) from the test's goroutine. Transcript and ExitMessage may be called from
// any goroutine.
type Machine struct {
	t     TB
	name  string // log prefix
	start time.Time
	pace  time.Duration

	serial *stream // the guest's COM1 output, as received
	output *stream // the emulator's own stdout and stderr

	in      io.Writer // the guest's COM1 input
	closers []io.Closer

	proc *process // nil until started

	logsDone []chan struct{} // closed when a logger has drained its stream
	pumps    sync.WaitGroup  // readers copying into serial and output

	mu       sync.Mutex
	cursor   int    // Expect and ExpectRegexp search from here
	attached bool   // serial has a reader
	logFile  string // the emulator's log file, shown when the test fails
	cleaned  bool
}

// newMachine makes a Machine whose streams are logged through t; the emulator and the serial
// connection are attached afterwards. It registers the cleanup that kills the emulator, so a
// caller that wants files of t.TempDir to outlive the emulator must create them first.
// Lines of the emulator's own output for which quiet is true are kept but not logged.
func newMachine(t TB, name string, pace time.Duration, quiet func([]byte) bool) *Machine {
	m := &Machine{
		t:      t,
		name:   name,
		start:  time.Now(),
		pace:   pace,
		serial: newStream(),
		output: newStream(),
	}
	for _, s := range []struct {
		st     *stream
		prefix string
		skip   func([]byte) bool
	}{{m.serial, name, nil}, {m.output, name + " emulator", quiet}} {
		done := make(chan struct{})
		m.logsDone = append(m.logsDone, done)
		go logLines(t.Logf, s.prefix, m.start, s.st, s.skip, done)
	}
	t.Cleanup(m.cleanup)
	return m
}

// pump copies r into s until r ends, then closes s.
func (m *Machine) pump(r io.Reader, s *stream) {
	m.pumps.Add(1)
	go func() {
		defer m.pumps.Done()
		_, err := io.Copy(s, r)
		s.close(err)
	}()
}

// attachSerial connects the guest's COM1: out carries what the guest transmits, in what it
// receives.
func (m *Machine) attachSerial(out io.Reader, in io.Writer) {
	m.mu.Lock()
	m.attached = true
	m.in = in
	m.mu.Unlock()
	m.pump(out, m.serial)
}

// Name returns the machine's log prefix.
func (m *Machine) Name() string { return m.name }

// Transcript returns everything the guest has written to COM1 so far, byte for byte
// (the guest's "\r\n" line ends and escape sequences included).
func (m *Machine) Transcript() string { return m.serial.String() }
