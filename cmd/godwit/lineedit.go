package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// lineEditor reads lines from a raw serial console with editing: backspace, left/right, home/end
// (Ctrl-A/Ctrl-E and the ESC [ H / ESC [ F keys), Ctrl-U to kill the line, Ctrl-C to abandon it,
// and history with up/down. It echoes and redraws with VT100 sequences, which every serial
// terminal emulator understands.
type lineEditor struct {
	in      *bufio.Reader
	out     io.Writer
	history []string
	maxHist int
	lastCR  bool // the previous line ended with CR: a following LF is part of it
}

// errInterrupted is returned for a line abandoned with Ctrl-C.
var errInterrupted = errors.New("interrupted")

// Control characters and escape sequences (ECMA-48 / VT100).
const (
	keyCtrlA     = 0x01
	keyCtrlC     = 0x03
	keyCtrlD     = 0x04
	keyCtrlE     = 0x05
	keyBackspace = 0x08
	keyCtrlU     = 0x15
	keyEsc       = 0x1B
	keyDelete    = 0x7F
)

func newLineEditor(in io.Reader, out io.Writer) *lineEditor {
	return &lineEditor{in: bufio.NewReader(in), out: out, maxHist: 100}
}

// ReadLine shows prompt and returns the line entered. io.EOF means the input ended.
func (e *lineEditor) ReadLine(prompt string) (string, error) {
	buf := []rune{}
	pos := 0
	hist := len(e.history) // index into history; len means the line being edited
	saved := ""
	fmt.Fprint(e.out, prompt)
	redraw := func() {
		fmt.Fprintf(e.out, "\r%s%s\x1b[K", prompt, string(buf))
		if back := len(buf) - pos; back > 0 {
			fmt.Fprintf(e.out, "\x1b[%dD", back)
		}
	}
	for {
		r, _, err := e.in.ReadRune()
		if r != '\n' && r != '\r' {
			e.lastCR = false
		}
		if err != nil {
			if err == io.EOF && len(buf) > 0 {
				fmt.Fprint(e.out, "\r\n")
				return e.accept(string(buf)), nil
			}
			return "", err
		}
		switch r {
		case '\r', '\n':
			if r == '\n' && e.lastCR {
				e.lastCR = false
				continue // the LF of a CRLF pair ending the previous line
			}
			e.lastCR = r == '\r'
			fmt.Fprint(e.out, "\r\n")
			return e.accept(string(buf)), nil
		case keyCtrlC:
			fmt.Fprint(e.out, "^C\r\n")
			return "", errInterrupted
		case keyCtrlD:
			if len(buf) == 0 {
				return "", io.EOF
			}
		case keyBackspace, keyDelete:
			if pos > 0 {
				buf = append(buf[:pos-1], buf[pos:]...)
				pos--
				redraw()
			}
		case keyCtrlA:
			pos = 0
			redraw()
		case keyCtrlE:
			pos = len(buf)
			redraw()
		case keyCtrlU:
			buf, pos = buf[:0], 0
			redraw()
		case keyEsc:
			seq := e.escape()
			switch seq {
			case "[D": // left
				if pos > 0 {
					pos--
					fmt.Fprint(e.out, "\x1b[D")
				}
			case "[C": // right
				if pos < len(buf) {
					pos++
					fmt.Fprint(e.out, "\x1b[C")
				}
			case "[H", "[1~", "OH":
				pos = 0
				redraw()
			case "[F", "[4~", "OF":
				pos = len(buf)
				redraw()
			case "[3~": // delete under the cursor
				if pos < len(buf) {
					buf = append(buf[:pos], buf[pos+1:]...)
					redraw()
				}
			case "[A", "[B": // history up / down
				if hist == len(e.history) {
					saved = string(buf)
				}
				if seq == "[A" && hist > 0 {
					hist--
				} else if seq == "[B" && hist < len(e.history) {
					hist++
				} else {
					continue
				}
				if hist == len(e.history) {
					buf = []rune(saved)
				} else {
					buf = []rune(e.history[hist])
				}
				pos = len(buf)
				redraw()
			}
		default:
			if r < 0x20 {
				continue // other control characters are ignored
			}
			buf = append(buf[:pos], append([]rune{r}, buf[pos:]...)...)
			pos++
			if pos == len(buf) {
				fmt.Fprint(e.out, string(r))
			} else {
				redraw()
			}
		}
	}
}

// escape reads the rest of an escape sequence: "[" or "O", parameters, and a final byte.
func (e *lineEditor) escape() string {
	b, err := e.in.ReadByte()
	if err != nil {
		return ""
	}
	if b != '[' && b != 'O' {
		e.in.UnreadByte() // a lone ESC: the next key is an ordinary one
		return ""
	}
	seq := []byte{b}
	for len(seq) < 8 {
		c, err := e.in.ReadByte()
		if err != nil {
			break
		}
		seq = append(seq, c)
		if c >= 0x40 && c <= 0x7E {
			break
		}
	}
	return string(seq)
}

func (e *lineEditor) accept(line string) string {
	if line != "" && (len(e.history) == 0 || e.history[len(e.history)-1] != line) {
		e.history = append(e.history, line)
		if len(e.history) > e.maxHist {
			e.history = e.history[1:]
		}
	}
	return line
}
