package rig

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

const (
	// failTail is how many lines of serial output a failed Expect shows.
	failTail = 40
	// exitAfterEOF bounds the wait for the emulator to be reaped once its serial output has
	// ended, before a failure message describes how it ended.
	exitAfterEOF = 2 * time.Second
)

// Expect waits up to timeout for marker to appear in the guest's serial output, searching from
// just after the previous match of Expect or ExpectRegexp (from the start the first time). It
// returns the line holding the match, without its line end; if that line is not finished yet
// (a prompt) it returns the line as received so far. If the marker does not come in time, or
// the emulator exits first, it fails the test showing the last 40 lines of serial output.
func (m *Machine) Expect(marker string, timeout time.Duration) (line string) {
	m.t.Helper()
	loc, buf := m.expect(strconv.Quote(marker), substringMatcher(marker), timeout)
	return lineAround(buf, loc[0], loc[1])
}

// ExpectRegexp is Expect for a regular expression (package regexp syntax, matched against the
// raw output, so lines end in "\r\n"). It returns the match followed by its submatches, as
// regexp.FindStringSubmatch does. The output arrives a little at a time: end the pattern with
// what must follow a variable part, for `(\d+) MiB` rather than `(\d+)`.
func (m *Machine) ExpectRegexp(pattern string, timeout time.Duration) []string {
	m.t.Helper()
	re, err := regexp.Compile(pattern)
	if err != nil {
		m.t.Fatalf("[%s] ExpectRegexp: %v", m.name, err)
	}
	loc, buf := m.expect("/"+pattern+"/", regexpMatcher(re), timeout)
	sub := make([]string, len(loc)/2)
	for i := range sub {
		if loc[2*i] >= 0 {
			sub[i] = string(buf[loc[2*i]:loc[2*i+1]])
		}
	}
	return sub
}

func (m *Machine) expect(what string, match matcher, timeout time.Duration) (loc []int, buf []byte) {
	m.t.Helper()
	m.mu.Lock()
	from := m.cursor
	m.mu.Unlock()
	loc, buf, err := m.serial.wait(from, match, time.Now().Add(timeout))
	if err != nil {
		why := fmt.Sprintf("not seen within %v", timeout)
		if errors.Is(err, errWaitClosed) {
			why = "not seen before the serial output ended"
			m.awaitExit(exitAfterEOF) // so that the message can say how the emulator ended
		}
		m.t.Fatalf("[%s] expect %s: %s (%s)\nlast %d lines of serial output:\n%s%s",
			m.name, what, why, m.state(), failTail, tailLines(buf, failTail), m.outputTail())
	}
	m.mu.Lock()
	m.cursor = loc[1]
	m.mu.Unlock()
	m.t.Logf("%sexpect %s: matched", stamp(m.name, m.start), what)
	return loc, buf
}

// outputTail formats the end of the emulator's own output for a failure message.
func (m *Machine) outputTail() string {
	b, _, _ := m.output.snapshot()
	if len(strings.TrimSpace(string(b))) == 0 {
		return ""
	}
	return "\nemulator output (last 15 lines):\n" + tailLines(b, 15)
}

// Send writes s to the guest's serial input at once. A guest that polls its UART slowly, or
// has not set it up yet, may lose bytes: Expect its prompt first, and prefer Type or SendLine
// for anything long.
func (m *Machine) Send(s string) {
	m.t.Helper()
	m.t.Logf("%ssend %q", stamp(m.name, m.start), s)
	m.write(s)
}

// Type writes s to the guest's serial input one byte at a time, Options.Pace apart (2 ms by
// default), so that a guest whose receive FIFO is 16 bytes keeps up under a slow emulator.
func (m *Machine) Type(s string) {
	m.t.Helper()
	m.t.Logf("%stype %q", stamp(m.name, m.start), s)
	m.typeBytes(s)
}

// SendLine types s followed by a carriage return, as a terminal sends Enter.
func (m *Machine) SendLine(s string) {
	m.t.Helper()
	m.t.Logf("%ssend line %q", stamp(m.name, m.start), s)
	m.typeBytes(s + "\r")
}

func (m *Machine) typeBytes(s string) {
	m.t.Helper()
	if m.pace <= 0 {
		m.write(s)
		return
	}
	for i := 0; i < len(s); i++ {
		if i > 0 {
			time.Sleep(m.pace) // input pacing, not a wait for the guest
		}
		m.write(s[i : i+1])
	}
}

func (m *Machine) write(s string) {
	m.t.Helper()
	m.mu.Lock()
	in := m.in
	m.mu.Unlock()
	if in == nil {
		m.t.Fatalf("[%s] send: the serial port is not connected", m.name)
	}
	if _, err := in.Write([]byte(s)); err != nil {
		m.t.Fatalf("[%s] send %q: %v (%s)", m.name, s, err, m.state())
	}
}
