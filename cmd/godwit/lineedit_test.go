package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Keys as a VT100 terminal sends them.
const (
	up    = "\x1b[A"
	down  = "\x1b[B"
	right = "\x1b[C"
	left  = "\x1b[D"
	home  = "\x1b[H"
	end   = "\x1b[F"
	del   = "\x1b[3~"
	bs    = "\x7f"
	ctrlA = "\x01"
	ctrlC = "\x03"
	ctrlD = "\x04"
	ctrlE = "\x05"
	ctrlU = "\x15"
)

// screen is a minimal VT100 for what the editor emits: printable characters overwrite, CR,
// LF, ESC [ n C/D move the cursor, ESC [ K erases to the end of the line.
type screen struct {
	rows     [][]rune
	row, col int
}

func (s *screen) write(out string) error {
	rs := []rune(out)
	if s.rows == nil {
		s.rows = [][]rune{nil}
	}
	for i := 0; i < len(rs); i++ {
		switch r := rs[i]; {
		case r == '\r':
			s.col = 0
		case r == '\n':
			s.row++
			if s.row == len(s.rows) {
				s.rows = append(s.rows, nil)
			}
		case r == 0x1b:
			if i+1 >= len(rs) || rs[i+1] != '[' {
				return fmt.Errorf("ESC not followed by [ at %d in %q", i, out)
			}
			j := i + 2
			for j < len(rs) && rs[j] >= '0' && rs[j] <= '9' {
				j++
			}
			if j == len(rs) {
				return fmt.Errorf("unterminated escape sequence in %q", out)
			}
			n := 1
			if j > i+2 {
				n, _ = strconv.Atoi(string(rs[i+2 : j]))
			}
			switch rs[j] {
			case 'C':
				s.col += n
			case 'D':
				s.col = max(0, s.col-n)
			case 'K':
				if s.col < len(s.rows[s.row]) {
					s.rows[s.row] = s.rows[s.row][:s.col]
				}
			default:
				return fmt.Errorf("unexpected escape sequence %q", string(rs[i:j+1]))
			}
			i = j
		case r < 0x20:
			return fmt.Errorf("control character %#x in the output %q", r, out)
		default:
			line := s.rows[s.row]
			for len(line) <= s.col {
				line = append(line, ' ')
			}
			line[s.col] = r
			s.rows[s.row] = line
			s.col++
		}
	}
	return nil
}

func (s *screen) lines() []string {
	var out []string
	for _, r := range s.rows {
		out = append(out, string(r))
	}
	return out
}

// readAll reads lines until an error other than errInterrupted, recording interruptions as
// "<^C>".
func readAll(e *lineEditor) ([]string, error) {
	var lines []string
	for {
		l, err := e.ReadLine("> ")
		if errors.Is(err, errInterrupted) {
			lines = append(lines, "<^C>")
			continue
		}
		if err != nil {
			return lines, err
		}
		lines = append(lines, l)
	}
}

func TestLineEditor(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		want  []string
		err   error    // what ends the input
		shown []string // the terminal afterwards, when checked
	}{
		{name: "plain line", in: "help\r", want: []string{"help"}, err: io.EOF, shown: []string{"> help", "> "}},
		{name: "LF ends a line too", in: "a\nb\n", want: []string{"a", "b"}, err: io.EOF},
		{name: "CRLF is one line end", in: "a\r\nb\r\n", want: []string{"a", "b"}, err: io.EOF},
		{name: "CR CR is an empty line", in: "a\r\rb\r", want: []string{"a", "", "b"}, err: io.EOF},
		{name: "CRLF then LF is an empty line", in: "a\r\n\nb\r", want: []string{"a", "", "b"}, err: io.EOF},
		{name: "LF CR is two line ends", in: "a\n\rb\r", want: []string{"a", "", "b"}, err: io.EOF},
		{name: "DEL erases", in: "hellp" + bs + bs + "p\r", want: []string{"help"}, err: io.EOF, shown: []string{"> help", "> "}},
		{name: "backspace erases", in: "ab\x08c\r", want: []string{"ac"}, err: io.EOF},
		{name: "backspace at the start does nothing", in: bs + "\x08ab\r", want: []string{"ab"}, err: io.EOF},
		{name: "erase multibyte characters whole", in: "héé" + bs + "\r", want: []string{"hé"}, err: io.EOF},
		{name: "insert in the middle", in: "hlp" + left + left + "e\r", want: []string{"help"}, err: io.EOF,
			shown: []string{"> help", "> "}},
		{name: "left, insert, right, append", in: "hel" + left + "X" + right + "p\r", want: []string{"heXlp"}, err: io.EOF},
		{name: "left stops at the start", in: "b" + left + left + left + "a\r", want: []string{"ab"}, err: io.EOF},
		{name: "right stops at the end", in: "a" + right + right + "b\r", want: []string{"ab"}, err: io.EOF},
		{name: "backspace in the middle", in: "abXc" + left + bs + "\r", want: []string{"abc"}, err: io.EOF,
			shown: []string{"> abc", "> "}},
		{name: "delete under the cursor", in: "helpx" + left + del + "\r", want: []string{"help"}, err: io.EOF},
		{name: "delete at the end does nothing", in: "help" + del + "\r", want: []string{"help"}, err: io.EOF},
		{name: "Ctrl-A then insert", in: "elp" + ctrlA + "h\r", want: []string{"help"}, err: io.EOF, shown: []string{"> help", "> "}},
		{name: "Ctrl-A, Ctrl-E, append", in: "hel" + ctrlA + ctrlE + "p\r", want: []string{"help"}, err: io.EOF},
		{name: "Home and End keys", in: "b" + home + "a" + end + "c" + "\x1b[1~" + "<" + "\x1b[4~" + ">" + "\x1bOH" + "[" + "\x1bOF" + "]\r",
			want: []string{"[<abc>]"}, err: io.EOF},
		{name: "Ctrl-U kills the line", in: "garbage" + ctrlU + "help\r", want: []string{"help"}, err: io.EOF, shown: []string{"> help", "> "}},
		{name: "Ctrl-U in the middle kills everything", in: "abc" + left + ctrlU + "x\r", want: []string{"x"}, err: io.EOF},
		{name: "Ctrl-C abandons the line", in: "reboot" + ctrlC + "help\r", want: []string{"<^C>", "help"}, err: io.EOF,
			shown: []string{"> reboot^C", "> help", "> "}},
		{name: "Ctrl-D on an empty line ends the input", in: "a\r" + ctrlD + "b\r", want: []string{"a"}, err: io.EOF},
		{name: "Ctrl-D in a line is ignored", in: "ab" + ctrlD + "c\r", want: []string{"abc"}, err: io.EOF},
		{name: "other control characters are ignored", in: "a\x07\x02b\x1a\r", want: []string{"ab"}, err: io.EOF},
		{name: "unknown escape sequences are ignored", in: "a\x1b[Zb\x1b[2~c\r", want: []string{"abc"}, err: io.EOF},
		{name: "EOF after text returns the text", in: "uptime", want: []string{"uptime"}, err: io.EOF},
		{name: "EOF on an empty line", in: "", want: nil, err: io.EOF},
		{name: "EOF inside an escape sequence", in: "ab\x1b[", want: []string{"ab"}, err: io.EOF},
		{name: "history: up recalls the last line", in: "one\rtwo\r" + up + "\r", want: []string{"one", "two", "two"}, err: io.EOF,
			shown: []string{"> one", "> two", "> two", "> "}},
		{name: "history: up twice", in: "one\rtwo\r" + up + up + "\r", want: []string{"one", "two", "one"}, err: io.EOF},
		{name: "history: up stops at the oldest", in: "one\rtwo\r" + up + up + up + up + "\r", want: []string{"one", "two", "one"}, err: io.EOF},
		{name: "history: down after up", in: "one\rtwo\r" + up + up + down + "\r", want: []string{"one", "two", "two"}, err: io.EOF},
		{name: "history: down restores the line being edited", in: "one\r" + "draft" + up + down + "\r",
			want: []string{"one", "draft"}, err: io.EOF, shown: []string{"> one", "> draft", "> "}},
		{name: "history: down at the newest does nothing", in: "one\rdraft" + down + "\r", want: []string{"one", "draft"}, err: io.EOF},
		{name: "history: edit a recalled line", in: "one\r" + up + "!\r", want: []string{"one", "one!"}, err: io.EOF},
		{name: "history: up with empty history does nothing", in: "x" + up + "\r", want: []string{"x"}, err: io.EOF},
		{name: "history: repeated lines are kept once", in: "a\rb\rb\r" + up + up + "\r", want: []string{"a", "b", "b", "a"}, err: io.EOF},
		{name: "history: empty lines are not kept", in: "a\r\r" + up + "\r", want: []string{"a", "", "a"}, err: io.EOF},
		{name: "history: interrupted lines are not kept", in: "a\rb" + ctrlC + up + "\r", want: []string{"a", "<^C>", "a"}, err: io.EOF},
		{name: "history: a shorter recalled line erases the longer one", in: "ab\rlonger line" + up + "\r",
			want: []string{"ab", "ab"}, err: io.EOF, shown: []string{"> ab", "> ab", "> "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			e := newLineEditor(strings.NewReader(tt.in), &out)
			got, err := readAll(e)
			if !slices.Equal(got, tt.want) || !errors.Is(err, tt.err) {
				t.Errorf("ReadLine over %q = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
			}
			var s screen
			if err := s.write(out.String()); err != nil {
				t.Fatalf("output: %v", err)
			}
			if tt.shown != nil && !slices.Equal(s.lines(), tt.shown) {
				t.Errorf("terminal after %q shows %q, want %q (output %q)", tt.in, s.lines(), tt.shown, out.String())
			}
		})
	}
}

// TestLineEditorCursor checks that the cursor the terminal shows is where the editor inserts.
func TestLineEditorCursor(t *testing.T) {
	tests := []struct {
		in  string
		col int // after "> "
	}{
		{"abc", 3},
		{"abc" + left, 2},
		{"abc" + left + left + "X", 2},
		{"abc" + ctrlA, 0},
		{"abc" + ctrlA + ctrlE, 3},
		{"abcd" + left + left + bs, 1},
		{"abcd" + left + left + del, 2},
		{"abc" + ctrlU + "z" + left, 0},
		{"abcdef" + left + left + up, 1}, // history holds "x"
		{"abcdef" + left + left + up + down, 6},
	}
	for _, tt := range tests {
		var out strings.Builder
		e := newLineEditor(strings.NewReader(tt.in), &out)
		e.history = []string{"x"}
		if _, err := e.ReadLine("> "); err != nil { // returns the pending line at EOF
			t.Fatalf("ReadLine(%q) = %v", tt.in, err)
		}
		var s screen
		// Drop the final CR LF that EOF with a pending line prints.
		if err := s.write(strings.TrimSuffix(out.String(), "\r\n")); err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		if got := s.col - 2; got != tt.col {
			t.Errorf("cursor after %q at column %d, want %d (screen %q)", tt.in, got, tt.col, s.lines())
		}
	}
}

func TestLineEditorHistoryLimit(t *testing.T) {
	e := newLineEditor(strings.NewReader("a\rb\rc\r"+up+up+up+up+"\r"), io.Discard)
	e.maxHist = 2
	got, err := readAll(e)
	if want := []string{"a", "b", "c", "b"}; !slices.Equal(got, want) || err != io.EOF {
		t.Errorf("with maxHist 2: lines %q, %v; want %q, EOF", got, err, want)
	}
	// "b" entered again is newer than "c"; "a" fell off.
	if want := []string{"c", "b"}; !slices.Equal(e.history, want) {
		t.Errorf("history = %q, want %q", e.history, want)
	}
}

// errReader fails after its data.
type errReader struct {
	data string
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestLineEditorReadError(t *testing.T) {
	broken := errors.New("uart overrun")
	e := newLineEditor(&errReader{"ab\rcd", broken}, io.Discard)
	got, err := readAll(e)
	if want := []string{"ab"}; !slices.Equal(got, want) || !errors.Is(err, broken) {
		t.Errorf("lines %q, %v; want %q, %v (a read error is not EOF: the pending text is dropped)", got, err, want, broken)
	}
}
