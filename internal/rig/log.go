package rig

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// idleFlush is how long an unfinished line (a shell prompt, say) waits for its newline before
// it is logged as it stands.
const idleFlush = 250 * time.Millisecond

// logLines logs s line by line through logf until s ends, then closes done. Each line carries
// prefix and the time since start. A line still unfinished after idleFlush of silence is
// logged as it stands; its rest comes later on a line marked "...". Lines for which skip (if
// not nil) is true are not logged.
func logLines(logf func(format string, args ...any), prefix string, start time.Time, s *stream, skip func([]byte) bool, done chan<- struct{}) {
	defer close(done)
	logged := 0      // bytes of s already logged
	partial := false // the last line logged was unfinished
	held := false    // an unfinished line waits for more output before it is logged
	emit := func(line []byte) {
		if skip != nil && skip(line) {
			return
		}
		cont := ""
		if partial {
			cont = "..."
		}
		logf("%s%s", stamp(prefix, start), cont+cleanLine(line))
	}
	for {
		buf, closed, changed := s.snapshot()
		for {
			i := bytes.IndexByte(buf[logged:], '\n')
			if i < 0 {
				break
			}
			emit(buf[logged : logged+i])
			partial = false
			logged += i + 1
		}
		if closed {
			if logged < len(buf) {
				emit(buf[logged:])
			}
			return
		}
		var idle <-chan time.Time
		if logged < len(buf) && !held {
			idle = time.After(idleFlush)
		}
		select {
		case <-changed:
			held = false
		case <-idle:
			if cleanLine(buf[logged:]) == "" {
				// Only escape sequences so far: keep them for the line they start.
				held = true
				continue
			}
			emit(buf[logged:])
			partial = true
			logged = len(buf)
		}
	}
}

// stamp is the head of every log line of a machine: "[name +1.234s] ".
func stamp(name string, start time.Time) string {
	return fmt.Sprintf("[%s +%.3fs] ", name, time.Since(start).Seconds())
}

// shellQuote renders a command line that a POSIX shell runs as given.
func shellQuote(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = quoteArg(a)
	}
	return strings.Join(q, " ")
}

func quoteArg(a string) string {
	if a == "" {
		return "''"
	}
	safe := true
	for _, c := range a {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./=,:+@%", c)) {
			safe = false
			break
		}
	}
	if safe {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}
