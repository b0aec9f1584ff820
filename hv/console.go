package hv

import (
	"io"
	"sync"
	"time"
)

// Console is a VM's serial output: a ring buffer of the last bytes (what `vm log` shows) and,
// while someone is attached (`vm console`), a copy to their writer.
type Console struct {
	mu       sync.Mutex
	buf      []byte
	start, n int
	attached io.Writer
	total    uint64
	line     []byte            // the current output line, up to maxLine bytes
	onLine   func(line string) // called for each complete line, with the console locked
	// lines are the last maxLines complete lines with the host time each one ended at (its
	// newline reached the UART): `vm log -t` shows when the guest printed what.
	lines     [maxLines]Line
	lineStart int
	nLines    int
}

// Line is one line of guest output and the host time at which it was complete.
type Line struct {
	At   time.Time
	Text string
}

// maxLine bounds a kept line; longer lines are cut there. maxLines is how many are kept.
const (
	maxLine  = 512
	maxLines = 1024
)

// NewConsole keeps the last size bytes.
func NewConsole(size int) *Console { return &Console{buf: make([]byte, size)} }

// Write implements io.Writer for the guest's UART.
func (c *Console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total += uint64(len(p))
	for _, b := range p {
		switch {
		case b == '\n':
			c.endLine()
		case b == '\r':
		case len(c.line) < maxLine:
			c.line = append(c.line, b)
		}
		if c.n < len(c.buf) {
			c.buf[(c.start+c.n)%len(c.buf)] = b
			c.n++
		} else {
			c.buf[c.start] = b
			c.start = (c.start + 1) % len(c.buf)
		}
	}
	if c.attached != nil {
		c.attached.Write(p) // a slow or broken viewer must not stop the guest
	}
	return len(p), nil
}

// Log returns the buffered output, oldest first.
func (c *Console) Log() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]byte, c.n)
	for i := 0; i < c.n; i++ {
		out[i] = c.buf[(c.start+i)%len(c.buf)]
	}
	return out
}

// Attach sends new output to w as well (nil detaches).
func (c *Console) Attach(w io.Writer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.attached = w
}

// Total returns the number of bytes the guest wrote.
func (c *Console) Total() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// watchLines calls f with every complete line of output from now on, without its line end. f
// runs with the console locked and must not write to it.
func (c *Console) watchLines(f func(line string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onLine = f
}

// endLine records the current line and hands it to the watcher.
func (c *Console) endLine() {
	text := string(c.line)
	c.line = c.line[:0]
	i := (c.lineStart + c.nLines) % maxLines
	if c.nLines == maxLines {
		c.lineStart = (c.lineStart + 1) % maxLines
	} else {
		c.nLines++
	}
	c.lines[i] = Line{At: time.Now(), Text: text}
	if c.onLine != nil {
		c.onLine(text)
	}
}

// Lines returns the kept lines, oldest first, with the time each one was complete.
func (c *Console) Lines() []Line {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Line, c.nLines)
	for i := range out {
		out[i] = c.lines[(c.lineStart+i)%maxLines]
	}
	return out
}
