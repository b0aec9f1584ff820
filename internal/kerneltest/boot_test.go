package kerneltest

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/internal/rig"
)

// Prompt is the admin shell's prompt (cmd/godwit).
const Prompt = "godwit> "

// shellSession reaches the prompt, checks cpu, runs selftest and powers off.
func shellSession(t *testing.T, m *rig.Machine, promptWithin, selftestWithin time.Duration, wantCPU []string) {
	start := time.Now()
	m.Expect(Prompt, promptWithin)
	t.Logf("prompt after %v", time.Since(start).Round(time.Millisecond))

	m.SendLine("cpu")
	var cpu strings.Builder
	for _, want := range wantCPU {
		cpu.WriteString(m.Expect(want, 30*time.Second))
	}
	m.Expect(Prompt, 30*time.Second)

	m.SendLine("no-such-command")
	m.Expect(`unknown command "no-such-command"`, 30*time.Second)

	m.SendLine("selftest")
	t0 := time.Now()
	line := m.ExpectRegexp(`selftest: (PASS|FAIL)`, selftestWithin)
	t.Logf("selftest finished after %v", time.Since(t0).Round(time.Millisecond))
	if line[1] != "PASS" {
		t.Fatalf("selftest: %s, want PASS", line[1])
	}
	m.Expect(Prompt, 30*time.Second)

	m.SendLine("poweroff")
	m.Expect("powering off", 30*time.Second)
	if _, err := m.Wait(2 * time.Minute); err != nil {
		t.Fatalf("after poweroff: %v", err)
	}
}

// The QEMU self-tests are not parallel: the 120 s bound is for a QEMU that has a core to
// itself. Parallel tests (Bochs among them) start once they are done.
func TestBootQEMU(t *testing.T) {
	m := rig.QEMU(t, rig.Options{Name: "qemu"})
	shellSession(t, m, 10*time.Second, 120*time.Second, []string{"SVM", "NPT=yes"})
}

func TestBootBochs(t *testing.T) {
	t.Parallel()
	m := rig.Bochs(t, rig.Options{Name: "bochs"})
	shellSession(t, m, 5*time.Minute, 15*time.Minute,
		[]string{"VMX", "EPT=yes", "unrestricted-guest=yes", "VPID=yes", "EPT-A/D=yes"})
}

// TestPanicQEMU: a Go panic prints its message and a goroutine trace, then the machine halts
// with a clear last line.
func TestPanicQEMU(t *testing.T) {
	t.Parallel()
	m := rig.QEMU(t, rig.Options{Name: "panic"})
	m.Expect(Prompt, 30*time.Second)
	m.SendLine("debug panic")
	m.Expect("panic: debug panic requested from the admin shell", 30*time.Second)
	m.Expect("goroutine ", 30*time.Second)
	m.Expect("main.newShell", 30*time.Second)
	m.Expect("godwit: halted:", 30*time.Second)
}

// TestSelftestBootOption: godwit.selftest=1 runs the self-test at boot and reports PASS as the
// isa-debug-exit status.
func TestSelftestBootOption(t *testing.T) {
	m := rig.QEMU(t, rig.Options{Name: "selftest", Cmdline: "godwit.selftest=1 godwit.bogus=1"})
	m.Expect(`unknown boot option "godwit.bogus"`, 30*time.Second)
	m.Expect("selftest: PASS", 3*time.Minute)
	status, err := m.Wait(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, ok := rig.DebugExitCode(status); !ok || code != 0 {
		t.Fatalf("QEMU exit status %d: debug-exit code %d (ok %v), want code 0", status, code, ok)
	}
}

// TestPVHBoot boots an image with only the PVH note (no multiboot header), as a PVH loader
// would see it.
func TestPVHBoot(t *testing.T) {
	t.Parallel()
	root, err := rig.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "godwit-pvh")
	out, err := exec.Command(filepath.Join(root, "bin/godwit-mkimage"), "-multiboot=false",
		filepath.Join(root, "bin/godwit.elf"), img).CombinedOutput()
	if err != nil {
		t.Fatalf("godwit-mkimage: %v\n%s (run make first)", err, out)
	}
	m := rig.QEMU(t, rig.Options{Name: "pvh", Image: img})
	m.Expect("booted by pvh", 30*time.Second)
	m.Expect(Prompt, 30*time.Second)
	m.SendLine("poweroff")
	if _, err := m.Wait(time.Minute); err != nil {
		t.Fatal(err)
	}
}
