//go:build unix && !linux

package rig

import "syscall"

// sysProcAttr puts the emulator in a process group of its own, so that Kill reaches all of it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
