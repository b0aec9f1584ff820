package rig

import "syscall"

// sysProcAttr puts the emulator in a process group of its own, so that Kill reaches all of
// it, and has the kernel SIGKILL it if the test binary dies first: go test's -timeout panic
// exits without running cleanups. (Pdeathsig follows the thread that started the emulator;
// the Go runtime does not end threads that a goroutine has not locked.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
