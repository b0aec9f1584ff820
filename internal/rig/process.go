package rig

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// ErrTimeout is returned (wrapped) by Wait when the emulator is still running at the deadline.
var ErrTimeout = errors.New("timed out")

// Bounds on waits the rig does on its own behalf.
const (
	// killWait bounds the wait for a killed emulator to be reaped.
	killWait = 10 * time.Second
	// drainWait bounds the wait, once the emulator has exited, for the last of its serial
	// output and its own output to be read and logged.
	drainWait = 5 * time.Second
)

// process is a started emulator.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once reaped; state and err are then set
	state  *os.ProcessState
	err    error
}

// startProcess starts cmd in a process group of its own.
func startProcess(cmd *exec.Cmd) (*process, error) {
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		p.state = cmd.ProcessState
		close(p.exited)
	}()
	return p, nil
}

func (p *process) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL to the emulator's process group, unless it has already been reaped
// (its group id could then name someone else's group).
func (p *process) kill() error {
	if p.hasExited() {
		return nil
	}
	err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// status returns the exit status of an exited process: its exit code, or -1 and an error if a
// signal ended it.
func (p *process) status() (int, error) {
	if p.state == nil {
		return -1, p.err
	}
	if p.state.Exited() {
		return p.state.ExitCode(), nil
	}
	return -1, errors.New(p.state.String()) // "signal: killed"
}

// Wait waits up to timeout for the emulator to exit and returns its exit status. For QEMU
// decode it with DebugExitCode; Bochs exits 1 on a "Shutdown" written to port 0x8900 and on a
// fatal panic (a triple fault), and 0 when the debugger quits at a magic breakpoint: see
// ExitMessage for which. Wait returns an error wrapping ErrTimeout if the emulator is still
// running (it is left running), or an error if a signal killed it. Once it returns with the
// emulator gone, Transcript holds all of the guest's output.
func (m *Machine) Wait(timeout time.Duration) (exitCode int, err error) {
	m.t.Helper()
	if m.proc == nil {
		return -1, fmt.Errorf("rig: %s: no emulator", m.name)
	}
	select {
	case <-m.proc.exited:
	case <-time.After(timeout):
		return -1, fmt.Errorf("rig: %s still running after %v: %w", m.name, timeout, ErrTimeout)
	}
	m.drain()
	code, err := m.proc.status()
	if err != nil {
		return code, fmt.Errorf("rig: %s: %w", m.name, err)
	}
	m.t.Logf("%sexited with status %d", stamp(m.name, m.start), code)
	return code, nil
}

// Kill stops the emulator at once (SIGKILL to its process group) and waits for it to go. It
// is safe to call more than once and after the emulator has exited.
func (m *Machine) Kill() {
	m.t.Helper()
	if m.proc == nil {
		return
	}
	running := !m.proc.hasExited()
	if err := m.proc.kill(); err != nil {
		m.t.Logf("%skill: %v", stamp(m.name, m.start), err)
	}
	select {
	case <-m.proc.exited:
	case <-time.After(killWait):
		m.t.Logf("%skill: pid %d still there after %v", stamp(m.name, m.start), m.proc.cmd.Process.Pid, killWait)
		return
	}
	if running {
		m.t.Logf("%skilled", stamp(m.name, m.start))
	}
	m.drain()
}

// drain waits, bounded, for the readers to reach the end of the emulator's output and the
// loggers to log it.
func (m *Machine) drain() {
	pumped := make(chan struct{})
	go func() { m.pumps.Wait(); close(pumped) }()
	deadline := time.After(drainWait)
	select {
	case <-pumped:
	case <-deadline:
		return
	}
	for _, d := range m.logsDone {
		select {
		case <-d:
		case <-deadline:
			return
		}
	}
}

// cleanup runs at the end of the test: it kills the emulator, closes the serial connection
// and waits for the loggers, which must not log after the test has finished.
func (m *Machine) cleanup() {
	m.mu.Lock()
	if m.cleaned {
		m.mu.Unlock()
		return
	}
	m.cleaned = true
	attached := m.attached
	m.mu.Unlock()

	m.Kill()
	for _, c := range m.closers {
		c.Close()
	}
	if !attached {
		m.serial.close(nil)
	}
	if m.proc == nil {
		m.output.close(nil)
	}
	m.pumps.Wait()
	for _, d := range m.logsDone {
		<-d
	}
	if m.t.Failed() && m.logFile != "" {
		if b, err := os.ReadFile(m.logFile); err == nil {
			m.t.Logf("[%s] %s (last 30 lines):\n%s", m.name, m.logFile, tailLines(b, 30))
		}
	}
}

// awaitExit waits up to d for the emulator to exit.
func (m *Machine) awaitExit(d time.Duration) {
	if m.proc == nil {
		return
	}
	select {
	case <-m.proc.exited:
	case <-time.After(d):
	}
}

// state describes whether the emulator is still running, for failure messages.
func (m *Machine) state() string {
	if m.proc == nil {
		return "no emulator"
	}
	if !m.proc.hasExited() {
		return fmt.Sprintf("emulator running for %.1fs", time.Since(m.start).Seconds())
	}
	code, err := m.proc.status()
	if err != nil {
		return "emulator " + err.Error()
	}
	s := fmt.Sprintf("emulator exited with status %d", code)
	if msg := m.ExitMessage(); msg != "" {
		s += ": " + msg
	}
	return s
}

// bochsExitBanner opens the box in which Bochs says why it stops.
const bochsExitBanner = "Bochs is exiting with the following message:"

// ExitMessage returns what the emulator said about stopping, once it has: for Bochs the
// message in its "Bochs is exiting" box ("[UNMAP ] Shutdown port: shutdown requested",
// "[CPU0  ] exception(): 3rd (13) exception with no resolution"); otherwise the last line the
// emulator printed (QEMU's errors, such as a kernel it cannot load). Empty if none.
func (m *Machine) ExitMessage() string {
	b, _, _ := m.output.snapshot()
	return exitMessage(string(b))
}

func exitMessage(out string) string {
	lines := strings.Split(strings.ReplaceAll(out, "\r", ""), "\n")
	for i, l := range lines {
		if strings.Contains(l, bochsExitBanner) && i+1 < len(lines) {
			return strings.TrimSpace(lines[i+1])
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}
