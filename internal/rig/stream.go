package rig

import (
	"bytes"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// stream is an append-only byte log that wakes waiters when it grows or ends. One goroutine
// appends (the reader of the emulator's serial port or output); any number wait and read.
// Bytes already appended never change, so a slice taken under the lock stays valid to read
// after unlocking.
type stream struct {
	mu      sync.Mutex
	buf     []byte
	closed  bool
	err     error         // why the stream ended, nil for plain EOF
	changed chan struct{} // closed and replaced on every append and on close
}

func newStream() *stream {
	return &stream{changed: make(chan struct{})}
}

// Write appends p. It never fails, so a stream is an io.Writer for io.Copy.
func (s *stream) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, p...)
	close(s.changed)
	s.changed = make(chan struct{})
	return len(p), nil
}

// close ends the stream; err says why (nil for EOF). Later calls are no-ops.
func (s *stream) close(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.err = err
	close(s.changed)
}

// snapshot returns the bytes so far, whether the stream has ended, and a channel closed on the
// next change.
func (s *stream) snapshot() (buf []byte, closed bool, changed <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf[:len(s.buf):len(s.buf)], s.closed, s.changed
}

func (s *stream) String() string {
	b, _, _ := s.snapshot()
	return string(b)
}

// A matcher finds a match in b and returns its location as regexp.FindSubmatchIndex does:
// nil for no match, else loc[0:2] bound the whole match and further pairs the submatches.
type matcher func(b []byte) []int

func substringMatcher(marker string) matcher {
	m := []byte(marker)
	return func(b []byte) []int {
		i := bytes.Index(b, m)
		if i < 0 {
			return nil
		}
		return []int{i, i + len(m)}
	}
}

func regexpMatcher(re *regexp.Regexp) matcher { return re.FindSubmatchIndex }

// Why a wait ends without a match.
var (
	errWaitTimeout = errors.New("timed out")
	errWaitClosed  = errors.New("stream ended")
)

// wait blocks until match finds something in the stream at or after byte from, the stream ends
// (errWaitClosed), or deadline passes (errWaitTimeout). loc is absolute (offsets into buf).
// A matcher that could match an empty string does so at once.
func (s *stream) wait(from int, match matcher, deadline time.Time) (loc []int, buf []byte, err error) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		buf, closed, changed := s.snapshot()
		if from > len(buf) {
			from = len(buf)
		}
		if l := match(buf[from:]); l != nil {
			for i := range l {
				if l[i] >= 0 {
					l[i] += from
				}
			}
			return l, buf, nil
		}
		if closed {
			return nil, buf, errWaitClosed
		}
		select {
		case <-changed:
		case <-timer.C:
			// One last look: the stream may have grown as the timer fired.
			buf, _, _ := s.snapshot()
			if l := match(buf[from:]); l != nil {
				for i := range l {
					if l[i] >= 0 {
						l[i] += from
					}
				}
				return l, buf, nil
			}
			return nil, buf, errWaitTimeout
		}
	}
}

// lineAround returns the line of buf holding the bytes [start, end): from the newline before
// start to the newline at or after end, or to the end of buf if that line is not finished.
// Carriage returns and terminal escape sequences are removed.
func lineAround(buf []byte, start, end int) string {
	i := bytes.LastIndexByte(buf[:start], '\n') + 1
	j := len(buf)
	if k := bytes.IndexByte(buf[end:], '\n'); k >= 0 {
		j = end + k
	}
	if k := bytes.IndexByte(buf[i:start], '\n'); k >= 0 { // match spans lines
		i += k + 1
	}
	return cleanLine(buf[i:j])
}

// tailLines returns the last n lines of buf, cleaned for display, one per line.
func tailLines(buf []byte, n int) string {
	text := strings.TrimRight(string(buf), "\r\n")
	if text == "" {
		return "(nothing)"
	}
	lines := strings.Split(text, "\n")
	var b strings.Builder
	if len(lines) > n {
		b.WriteString("\t[... " + strconv.Itoa(len(lines)-n) + " earlier lines]\n")
		lines = lines[len(lines)-n:]
	}
	for _, l := range lines {
		b.WriteString("\t")
		b.WriteString(cleanLine([]byte(l)))
		b.WriteString("\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

// csi matches ECMA-48 control sequences (ESC [ params final) and two-byte escapes, which GRUB
// and terminal-aware guests print.
var csi = regexp.MustCompile("\x1b(\\[[0-9;?]*[ -/]*[@-~]|[@-Z\\\\-_])")

// cleanLine makes one line of guest output fit for a log: escape sequences and carriage
// returns go, other control bytes except tab are shown as \xNN.
func cleanLine(b []byte) string {
	b = csi.ReplaceAll(b, nil)
	var s strings.Builder
	for _, c := range b {
		switch {
		case c == '\r':
		case c == '\t' || c >= 0x20 && c != 0x7f:
			s.WriteByte(c)
		default:
			const hex = "0123456789abcdef"
			s.WriteString(`\x`)
			s.WriteByte(hex[c>>4])
			s.WriteByte(hex[c&15])
		}
	}
	return s.String()
}
