package loader

import (
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/internal/rig"
)

// TestGuestsUnderQEMU boots each test guest with QEMU's own multiboot loader, COM1 and
// isa-debug-exit, to check the guests themselves before a Godwit VM runs them. QEMU has no
// test device (MMIO 0xFEB00000, port 0xE0), and TCG's RDMSR(IA32_TSC) returns the last value
// written rather than the running TSC, with WRMSR(IA32_TSC) not moving RDTSC: longmode's pio,
// mmio and TSC checks fail here, and every other check must pass.
func TestGuestsUnderQEMU(t *testing.T) {
	dir := buildGuests(t)
	const boot = 2 * time.Minute // TCG on a loaded machine
	tests := []struct {
		name    string
		markers []string
		code    int  // isa-debug-exit value
		noExit  bool // status 0: a triple fault under -no-reboot
		spin    bool // never exits
	}{
		{name: "hello", markers: []string{"hello from a godwit guest", "hello: cmdline: ", "godwit.test=hello"}, code: 42},
		{name: "longmode", markers: []string{"longmode: in 64-bit mode", "longmode: cpuid vendor ", "longmode: mmio"}, code: 1},
		{name: "realmode", markers: []string{"realmode: in real mode", "realmode: PASS"}, code: 0},
		{name: "oob", markers: []string{"oob: write 0x100000000", "oob: done"}, code: 0},
		{name: "triple", markers: []string{"triple: int3 with an empty IDT"}, noExit: true},
		{name: "garbage", markers: []string{"garbage: PASS"}, code: 0},
		{name: "spin", markers: []string{"spinning"}, spin: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := rig.QEMU(t, rig.Options{
				Name:      tt.name,
				Image:     filepath.Join(dir, tt.name+".elf"),
				Cmdline:   "godwit.test=" + tt.name,
				MemoryMiB: 64,
			})
			m.Expect(tt.name+": start", boot)
			for _, mk := range tt.markers {
				m.Expect(mk, boot)
			}
			if tt.spin {
				if _, err := m.Wait(3 * time.Second); !errors.Is(err, rig.ErrTimeout) {
					t.Errorf("spin: Wait = %v, want it still running", err)
				}
				m.Kill()
				return
			}
			status, err := m.Wait(boot)
			if err != nil {
				t.Fatal(err)
			}
			code, ok := rig.DebugExitCode(status)
			switch {
			case tt.noExit && status != 0:
				t.Errorf("exit status %d, want 0 (triple fault)", status)
			case !tt.noExit && (!ok || code != tt.code):
				t.Errorf("exit status %d (debug-exit %d, %v), want debug-exit value %d", status, code, ok, tt.code)
			}
			out := m.Transcript()
			if tt.name == "longmode" {
				checkLongmodeUnderQEMU(t, out)
			} else if strings.Contains(out, "FAIL") {
				t.Errorf("output has a FAIL line")
			}
		})
	}
}

// checkLongmodeUnderQEMU checks only the checks QEMU cannot pass failed.
func checkLongmodeUnderQEMU(t *testing.T, out string) {
	t.Helper()
	fail := regexp.MustCompile(`longmode: FAIL (\S+)`)
	qemuCannot := regexp.MustCompile(`^(pio\.|mmio\.|tsc\.|wrmsr\.tsc\.|0x[0-9a-f]+$)`)
	n := 0
	for _, m := range fail.FindAllStringSubmatch(out, -1) {
		n++
		if !qemuCannot.MatchString(m[1]) {
			t.Errorf("longmode check %q failed under QEMU", m[1])
		}
	}
	if n < 10 {
		t.Errorf("only %d FAIL lines: the device checks cannot pass without the test device", n)
	}
}
