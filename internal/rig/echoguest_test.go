package rig_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/internal/rig"
)

// The echo guest is a 512-byte boot sector (testdata/echoguest.S) that proves the harness on
// both emulators without depending on the kernel: serial in both directions, pacing, and every
// way a run can end. Booted from a 1.44 MB floppy image, it prints echoReady, then echoes what
// it reads on COM1 ("\r" becomes "\r\n"), except:
//
//	'X' d  writes digit d to isa-debug-exit and "Shutdown" to port 0x8900;
//	'T'    triple-faults;
//	'M'    executes the magic breakpoint xchg bx,bx.
const echoReady = "rigtest: ready\r\n"

// echoCode is the code of the boot sector, loaded at 0x7c00 (16-bit real mode). Disassembly
// by objdump -m i8086; addresses in the comments.
var echoCode = []byte{
	0xfa,       // 7c00: cli
	0xfc,       // 7c01: cld
	0x31, 0xc0, // 7c02: xor %ax,%ax
	0x8e, 0xd8, // 7c04: mov %ax,%ds
	0x8e, 0xd0, // 7c06: mov %ax,%ss
	0xbc, 0x00, 0x7c, // 7c08: mov $0x7c00,%sp
	0xea, 0x10, 0x7c, 0x00, 0x00, // 7c0b: ljmp $0x0,$0x7c10
	0xba, 0xf9, 0x03, // 7c10: mov $0x3f9,%dx
	0x30, 0xc0, // 7c13: xor %al,%al
	0xee,             // 7c15: out %al,(%dx)
	0xba, 0xfb, 0x03, // 7c16: mov $0x3fb,%dx
	0xb0, 0x80, // 7c19: mov $0x80,%al
	0xee,             // 7c1b: out %al,(%dx)
	0xba, 0xf8, 0x03, // 7c1c: mov $0x3f8,%dx
	0xb0, 0x01, // 7c1f: mov $0x1,%al
	0xee,             // 7c21: out %al,(%dx)
	0xba, 0xf9, 0x03, // 7c22: mov $0x3f9,%dx
	0x30, 0xc0, // 7c25: xor %al,%al
	0xee,             // 7c27: out %al,(%dx)
	0xba, 0xfb, 0x03, // 7c28: mov $0x3fb,%dx
	0xb0, 0x03, // 7c2b: mov $0x3,%al
	0xee,             // 7c2d: out %al,(%dx)
	0xba, 0xfa, 0x03, // 7c2e: mov $0x3fa,%dx
	0xb0, 0x07, // 7c31: mov $0x7,%al
	0xee,             // 7c33: out %al,(%dx)
	0xba, 0xfc, 0x03, // 7c34: mov $0x3fc,%dx
	0xb0, 0x03, // 7c37: mov $0x3,%al
	0xee,             // 7c39: out %al,(%dx)
	0xbe, 0xc0, 0x7c, // 7c3a: mov $0x7cc0,%si
	0xe8, 0x6f, 0x00, // 7c3d: call 0x7caf
	0xe8, 0x50, 0x00, // 7c40: call 0x7c93
	0x3c, 0x58, // 7c43: cmp $0x58,%al
	0x74, 0x29, // 7c45: je 0x7c70
	0x3c, 0x54, // 7c47: cmp $0x54,%al
	0x74, 0x1f, // 7c49: je 0x7c6a
	0x3c, 0x4d, // 7c4b: cmp $0x4d,%al
	0x74, 0x11, // 7c4d: je 0x7c60
	0x3c, 0x0d, // 7c4f: cmp $0xd,%al
	0x75, 0x08, // 7c51: jne 0x7c5b
	0xbe, 0xd1, 0x7c, // 7c53: mov $0x7cd1,%si
	0xe8, 0x56, 0x00, // 7c56: call 0x7caf
	0xeb, 0xe5, // 7c59: jmp 0x7c40
	0xe8, 0x42, 0x00, // 7c5b: call 0x7ca0
	0xeb, 0xe0, // 7c5e: jmp 0x7c40
	0x87, 0xdb, // 7c60: xchg %bx,%bx
	0xbe, 0xd4, 0x7c, // 7c62: mov $0x7cd4,%si
	0xe8, 0x47, 0x00, // 7c65: call 0x7caf
	0xeb, 0xd6, // 7c68: jmp 0x7c40
	0x0f, 0x01, 0x1e, 0xba, 0x7c, // 7c6a: lidtw 0x7cba
	0xcc,             // 7c6f: int3
	0xe8, 0x20, 0x00, // 7c70: call 0x7c93
	0x2c, 0x30, // 7c73: sub $0x30,%al
	0x50,             // 7c75: push %ax
	0xba, 0xfd, 0x03, // 7c76: mov $0x3fd,%dx
	0xec,       // 7c79: in (%dx),%al
	0xa8, 0x40, // 7c7a: test $0x40,%al
	0x74, 0xfb, // 7c7c: je 0x7c79
	0x58,       // 7c7e: pop %ax
	0xe6, 0xf4, // 7c7f: out %al,$0xf4
	0xba, 0x00, 0x89, // 7c81: mov $0x8900,%dx
	0xbe, 0xe5, 0x7c, // 7c84: mov $0x7ce5,%si
	0xac,       // 7c87: lods %ds:(%si),%al
	0x84, 0xc0, // 7c88: test %al,%al
	0x74, 0x03, // 7c8a: je 0x7c8f
	0xee,       // 7c8c: out %al,(%dx)
	0xeb, 0xf8, // 7c8d: jmp 0x7c87
	0xfa,       // 7c8f: cli
	0xf4,       // 7c90: hlt
	0xeb, 0xfc, // 7c91: jmp 0x7c8f
	0xba, 0xfd, 0x03, // 7c93: mov $0x3fd,%dx
	0xec,       // 7c96: in (%dx),%al
	0xa8, 0x01, // 7c97: test $0x1,%al
	0x74, 0xfb, // 7c99: je 0x7c96
	0xba, 0xf8, 0x03, // 7c9b: mov $0x3f8,%dx
	0xec,             // 7c9e: in (%dx),%al
	0xc3,             // 7c9f: ret
	0x50,             // 7ca0: push %ax
	0xba, 0xfd, 0x03, // 7ca1: mov $0x3fd,%dx
	0xec,       // 7ca4: in (%dx),%al
	0xa8, 0x20, // 7ca5: test $0x20,%al
	0x74, 0xfb, // 7ca7: je 0x7ca4
	0x58,             // 7ca9: pop %ax
	0xba, 0xf8, 0x03, // 7caa: mov $0x3f8,%dx
	0xee,       // 7cad: out %al,(%dx)
	0xc3,       // 7cae: ret
	0xac,       // 7caf: lods %ds:(%si),%al
	0x84, 0xc0, // 7cb0: test %al,%al
	0x74, 0x05, // 7cb2: je 0x7cb9
	0xe8, 0xe9, 0xff, // 7cb4: call 0x7ca0
	0xeb, 0xf6, // 7cb7: jmp 0x7caf
	0xc3, // 7cb9: ret
}

// echoData follows the code at 0x7cba: the empty IDT descriptor that 'T' loads, then the
// strings whose addresses the code holds (0x7cc0, 0x7cd1, 0x7cd4, 0x7ce5).
const echoData = "\x00\x00\x00\x00\x00\x00" + // 7cba: IDTR limit 0, base 0
	"rigtest: ready\r\n\x00" + // 7cc0
	"\r\n\x00" + // 7cd1
	"rigtest: magic\r\n\x00" + // 7cd4
	"Shutdown\x00" // 7ce5

// echoFloppy writes the echo guest as a 1.44 MB floppy image into dir.
func echoFloppy(t *testing.T) string {
	t.Helper()
	const (
		codeEnd     = 0xba // echoData's offset in the sector
		sectorSize  = 512
		floppyBytes = 1474560 // 80 cylinders * 2 heads * 18 sectors * 512 bytes
	)
	if len(echoCode) != codeEnd {
		t.Fatalf("len(echoCode) = %#x, want %#x", len(echoCode), codeEnd)
	}
	img := make([]byte, floppyBytes)
	n := copy(img, echoCode)
	copy(img[n:], echoData)
	img[510], img[511] = 0x55, 0xaa // boot signature
	// The data must sit where the code points.
	for addr, s := range map[int]string{0x7cc0: echoReady, 0x7cd1: "\r\n", 0x7cd4: "rigtest: magic", 0x7ce5: "Shutdown"} {
		if !bytes.HasPrefix(img[addr-0x7c00:sectorSize], []byte(s)) {
			t.Fatalf("echo guest: %q is not at %#x", s, addr)
		}
	}
	path := filepath.Join(t.TempDir(), "echoguest.img")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// emulators are the two rigs, started the same way.
var emulators = []struct {
	name  string
	start func(rig.TB, rig.Options) *rig.Machine
}{
	{"qemu", rig.QEMU},
	{"bochs", rig.Bochs},
}

// bootEcho boots the echo guest and waits for its banner.
func bootEcho(t *testing.T, start func(rig.TB, rig.Options) *rig.Machine, opts rig.Options) *rig.Machine {
	t.Helper()
	opts.Image = echoFloppy(t)
	opts.MemoryMiB = 32
	m := start(t, opts)
	m.Expect(echoReady, 30*time.Second)
	return m
}

// TestEchoSerial types lines into the guest and reads them back, paced and at once.
func TestEchoSerial(t *testing.T) {
	long := strings.Repeat("the quick brown fox jumps over the lazy dog 0123456789 ", 5) // 275 bytes
	for _, e := range emulators {
		t.Run(e.name, func(t *testing.T) {
			m := bootEcho(t, e.start, rig.Options{})
			m.SendLine("hello rig")
			if got := m.Expect("hello rig", 10*time.Second); got != "hello rig" {
				t.Errorf("Expect(%q) line = %q, want %q", "hello rig", got, "hello rig")
			}
			m.SendLine(long)
			if got := m.Expect(long, 30*time.Second); got != long {
				t.Errorf("echo of a %d-byte line = %q, want it unchanged", len(long), got)
			}
			m.Send("unpaced\r")
			sub := m.ExpectRegexp(`\r\n(unpa(ced))\r\n`, 10*time.Second)
			if sub[1] != "unpaced" || sub[2] != "ced" {
				t.Errorf("ExpectRegexp submatches = %q, want [_ unpaced ced]", sub)
			}
			if !strings.HasPrefix(m.Transcript(), echoReady+"hello rig\r\n") {
				t.Errorf("Transcript() = %q, want it to start with the banner and the first echo", m.Transcript())
			}
			if _, err := m.Wait(100 * time.Millisecond); !errors.Is(err, rig.ErrTimeout) {
				t.Errorf("Wait on a running machine: err = %v, want ErrTimeout", err)
			}
		})
	}
}

// TestEchoExit checks how each way for the guest to stop shows in the exit status.
func TestEchoExit(t *testing.T) {
	tests := []struct {
		emu, name, send string
		status          int
		debugCode       int
		debugOK         bool
		message         string // in ExitMessage
	}{
		{emu: "qemu", name: "debug-exit", send: "X5", status: 11, debugCode: 5, debugOK: true},
		{emu: "qemu", name: "debug-exit-0", send: "X0", status: 1, debugCode: 0, debugOK: true},
		{emu: "qemu", name: "triple-fault", send: "T", status: 0},
		{emu: "bochs", name: "shutdown-port", send: "X5", status: 1, message: "Shutdown port: shutdown requested"},
		{emu: "bochs", name: "triple-fault", send: "T", status: 1, message: "3rd (13) exception with no resolution"},
		{emu: "bochs", name: "magic-break", send: "M", status: 0},
	}
	for _, tt := range tests {
		t.Run(tt.emu+"/"+tt.name, func(t *testing.T) {
			start := rig.QEMU
			if tt.emu == "bochs" {
				start = rig.Bochs
			}
			m := bootEcho(t, start, rig.Options{})
			m.Send(tt.send)
			status, err := m.Wait(30 * time.Second)
			if err != nil {
				t.Fatalf("Wait: %v", err)
			}
			if status != tt.status {
				t.Errorf("exit status = %d, want %d (%s)", status, tt.status, m.ExitMessage())
			}
			if tt.emu == "qemu" {
				code, ok := rig.DebugExitCode(status)
				if code != tt.debugCode || ok != tt.debugOK {
					t.Errorf("DebugExitCode(%d) = %d, %v, want %d, %v", status, code, ok, tt.debugCode, tt.debugOK)
				}
			}
			if msg := m.ExitMessage(); !strings.Contains(msg, tt.message) {
				t.Errorf("ExitMessage() = %q, want it to hold %q", msg, tt.message)
			}
			if got := m.Transcript(); got != echoReady {
				t.Errorf("Transcript() = %q, want just the banner", got)
			}
		})
	}
}
