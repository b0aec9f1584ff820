package rig

import "testing"

func TestDebugExitCode(t *testing.T) {
	tests := []struct {
		status int
		code   int
		ok     bool
	}{
		{status: 0, ok: false},          // triple fault with -no-reboot, power-off, quit
		{status: 1, code: 0, ok: true},  // guest wrote 0 (or QEMU failed to start)
		{status: 3, code: 1, ok: true},  // guest wrote 1
		{status: 11, code: 5, ok: true}, // guest wrote 5
		{status: 255, code: 127, ok: true},
		{status: 2, ok: false},
		{status: -1, ok: false}, // killed by a signal
	}
	for _, tt := range tests {
		code, ok := DebugExitCode(tt.status)
		if code != tt.code || ok != tt.ok {
			t.Errorf("DebugExitCode(%d) = %d, %v, want %d, %v", tt.status, code, ok, tt.code, tt.ok)
		}
	}
}

func TestExitMessage(t *testing.T) {
	const bochsOut = `========================================================================
                        Bochs x86 Emulator 2.7
========================================================================
Next at t=0
(0) [0x0000fffffff0] f000:fff0 (unk. ctxt): jmpf 0xf000:e05b          ; ea5be000f0
========================================================================
Bochs is exiting with the following message:
[UNMAP ] Shutdown port: shutdown requested
========================================================================
(0).[154391135] [0x000000007c82] 0000:7c82 (unk. ctxt): out dx, al                ; ee
`
	tests := []struct{ out, want string }{
		{bochsOut, "[UNMAP ] Shutdown port: shutdown requested"},
		{"qemu-system-x86_64: could not load kernel 'x'\r\n\n", "qemu-system-x86_64: could not load kernel 'x'"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := exitMessage(tt.out); got != tt.want {
			t.Errorf("exitMessage(%q) = %q, want %q", tt.out, got, tt.want)
		}
	}
}
