package rig

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestExpectAcrossChunks(t *testing.T) {
	g := newFakeGuest(t, 0)
	go g.emit("godwit: sta", "rting\r\ngodwit: ring 0 ", "re", "ady: 1019 MiB\r\n")
	var line string
	if f := g.tb.run(func() { line = g.m.Expect("ring 0 ready", 5*time.Second) }); f != "" {
		t.Fatalf("Expect failed: %s", f)
	}
	// The line may be cut where the output stood at the match, never before the marker.
	if !strings.HasPrefix(line, "godwit: ring 0 ready") || strings.Contains(line, "\r") {
		t.Errorf("Expect line = %q, want the line from its start, without \\r", line)
	}
}

func TestExpectCursor(t *testing.T) {
	g := newFakeGuest(t, 0)
	go g.emit("> one\r\n> two\r\n> ")
	var lines []string
	f := g.tb.run(func() {
		for range 3 {
			lines = append(lines, g.m.Expect("> ", 5*time.Second))
		}
	})
	if f != "" {
		t.Fatalf("Expect failed: %s", f)
	}
	// Each Expect searches after the previous match; the last finds the unfinished prompt.
	if want := []string{"> one", "> two", "> "}; !slices.Equal(lines, want) {
		t.Errorf("lines of three Expect(%q) = %q, want %q", "> ", lines, want)
	}
	// A fourth must wait for new output.
	f = g.tb.run(func() { g.m.Expect("> ", 50*time.Millisecond) })
	if !strings.Contains(f, "not seen within 50ms") {
		t.Errorf("fourth Expect: Fatalf %q, want a timeout", f)
	}
}

func TestExpectRegexp(t *testing.T) {
	g := newFakeGuest(t, 0)
	go g.emit("godwit: ring 0 ready: 10", "19 MiB, TSC 2602 MHz; entering\r\n")
	var sub []string
	if f := g.tb.run(func() { sub = g.m.ExpectRegexp(`ready: (\d+) MiB, TSC (\d+) MHz`, 5*time.Second) }); f != "" {
		t.Fatalf("ExpectRegexp failed: %s", f)
	}
	if want := []string{"ready: 1019 MiB, TSC 2602 MHz", "1019", "2602"}; !slices.Equal(sub, want) {
		t.Errorf("ExpectRegexp = %q, want %q", sub, want)
	}
	// \A anchors at the cursor: right after the previous match.
	if f := g.tb.run(func() { sub = g.m.ExpectRegexp(`\A; (\w+)`, time.Second) }); f != "" {
		t.Fatalf("anchored ExpectRegexp failed: %s", f)
	}
	if sub[1] != "entering" {
		t.Errorf("anchored ExpectRegexp = %q, want submatch %q", sub, "entering")
	}
	if f := g.tb.run(func() { g.m.ExpectRegexp(`(`, time.Second) }); !strings.Contains(f, "missing closing )") {
		t.Errorf("ExpectRegexp with a bad pattern: Fatalf %q, want the compile error", f)
	}
}

func TestExpectTimeoutShowsTail(t *testing.T) {
	g := newFakeGuest(t, 0)
	var out strings.Builder
	for i := range 100 {
		fmt.Fprintf(&out, "line %d\r\n", i)
	}
	g.emit(out.String())
	start := time.Now()
	f := g.tb.run(func() { g.m.Expect("never", 100*time.Millisecond) })
	if d := time.Since(start); d < 100*time.Millisecond || d > 5*time.Second {
		t.Errorf("Expect gave up after %v, want about 100ms", d)
	}
	for _, want := range []string{`expect "never": not seen within 100ms`, "last 40 lines", "[... 60 earlier lines]", "\tline 60\n", "\tline 99"} {
		if !strings.Contains(f, want) {
			t.Errorf("Fatalf message lacks %q:\n%s", want, f)
		}
	}
	if strings.Contains(f, "line 59\n") || strings.Contains(f, "\r") {
		t.Errorf("Fatalf message shows more than 40 lines or carriage returns:\n%s", f)
	}
}

func TestExpectEndsWithOutput(t *testing.T) {
	g := newFakeGuest(t, 0)
	g.emit("panic: boom\r\n")
	g.out.Close() // the emulator is gone
	start := time.Now()
	f := g.tb.run(func() { g.m.Expect("ready", time.Minute) })
	if time.Since(start) > 5*time.Second {
		t.Errorf("Expect waited %v after the output ended", time.Since(start))
	}
	if !strings.Contains(f, "not seen before the serial output ended") || !strings.Contains(f, "panic: boom") {
		t.Errorf("Fatalf = %q, want the end of output and the last lines", f)
	}
}

func TestSend(t *testing.T) {
	g := newFakeGuest(t, 0)
	if f := g.tb.run(func() { g.m.Send("help\r") }); f != "" {
		t.Fatal(f)
	}
	if want := []string{"help\r"}; !slices.Equal(g.in.writes, want) {
		t.Errorf("Send wrote %q, want %q", g.in.writes, want)
	}
}

func TestSendLinePaced(t *testing.T) {
	const pace = 5 * time.Millisecond
	g := newFakeGuest(t, pace)
	if f := g.tb.run(func() { g.m.SendLine("ls") }); f != "" {
		t.Fatal(f)
	}
	if want := []string{"l", "s", "\r"}; !slices.Equal(g.in.writes, want) {
		t.Fatalf("SendLine wrote %q, want %q, a byte at a time", g.in.writes, want)
	}
	for i := 1; i < len(g.in.times); i++ {
		if d := g.in.times[i].Sub(g.in.times[i-1]); d < pace {
			t.Errorf("byte %d came %v after the one before, want at least %v", i, d, pace)
		}
	}
}

func TestSendUnconnected(t *testing.T) {
	tb := newFakeTB(t)
	m := newMachine(tb, "fake", 0, nil)
	defer tb.finish()
	if f := tb.run(func() { m.Send("x") }); !strings.Contains(f, "not connected") {
		t.Errorf("Send before the serial port is connected: Fatalf %q", f)
	}
}

func TestSerialLogged(t *testing.T) {
	g := newFakeGuest(t, 0)
	g.emit("\x1b[2Jfirst line\r\n", "second ", "line\r\n", "prompt> ")
	g.out.Close()
	g.tb.finish() // waits for the loggers
	logs := g.tb.logText()
	for _, want := range []string{"] first line", "] second line", "] prompt> "} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "\x1b") || strings.Contains(logs, "\r") {
		t.Errorf("log holds escape sequences or carriage returns:\n%q", logs)
	}
	if got, want := g.m.Transcript(), "\x1b[2Jfirst line\r\nsecond line\r\nprompt> "; got != want {
		t.Errorf("Transcript() = %q, want %q byte for byte", got, want)
	}
}

func TestPartialLineFlushed(t *testing.T) {
	g := newFakeGuest(t, 0)
	g.emit("godwit> ")
	if !g.tb.waitLog("] godwit> ", 10*idleFlush) {
		t.Fatalf("an unfinished line was not logged within %v:\n%s", 10*idleFlush, g.tb.logText())
	}
	g.emit("help\r\n")
	g.out.Close()
	g.tb.finish()
	if logs := g.tb.logText(); !strings.Contains(logs, "] ...help") {
		t.Errorf("the rest of the line is not logged as a continuation:\n%s", logs)
	}
}

func TestLineAround(t *testing.T) {
	buf := []byte("a\r\nxx MARK yy\r\nb")
	i := strings.Index(string(buf), "MARK")
	tests := []struct {
		buf        []byte
		start, end int
		want       string
	}{
		{buf, i, i + 4, "xx MARK yy"},
		{buf[:i+6], i, i + 4, "xx MARK y"}, // line not finished yet
		{buf, 0, 1, "a"},
		{buf, len(buf) - 1, len(buf), "b"},
	}
	for _, tt := range tests {
		if got := lineAround(tt.buf, tt.start, tt.end); got != tt.want {
			t.Errorf("lineAround(%q, %d, %d) = %q, want %q", tt.buf, tt.start, tt.end, got, tt.want)
		}
	}
}

func TestCleanLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"\x1b[H\x1b[J\x1b[1;1H  Booting `Godwit'\r", "  Booting `Godwit'"},
		{"tab\there", "tab\there"},
		{"bell\a nul\x00", `bell\x07 nul\x00`},
		{"\x1b[?25lhidden", "hidden"},
	}
	for _, tt := range tests {
		if got := cleanLine([]byte(tt.in)); got != tt.want {
			t.Errorf("cleanLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestStreamWaitTimeoutRace(t *testing.T) {
	// A match that arrives as the deadline passes is still found.
	s := newStream()
	s.Write([]byte("abc"))
	loc, _, err := s.wait(0, substringMatcher("bc"), time.Now())
	if err != nil || loc[0] != 1 || loc[1] != 3 {
		t.Errorf("wait with a past deadline over present output = %v, %v; want [1 3], nil", loc, err)
	}
	_, _, err = s.wait(3, substringMatcher("bc"), time.Now().Add(time.Millisecond))
	if err != errWaitTimeout {
		t.Errorf("wait past all output: err = %v, want errWaitTimeout", err)
	}
}
