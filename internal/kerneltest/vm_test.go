package kerneltest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/internal/rig"
)

// The AMD-V and VT-x issues' tests: the project's test guests (testdata/guests, built by make
// into bin/guests) run as VMs through the admin shell; hostile guests are contained with a
// clear message while the host and other VMs go on.

var guestNames = []string{"hello", "longmode", "realmode", "oob", "triple", "garbage", "spin", "irq"}

func guestModules() []string {
	var mods []string
	for _, g := range guestNames {
		mods = append(mods, "bin/guests/"+g+".elf")
	}
	return mods
}

// vmSession drives one host through every test guest.
func vmSession(t *testing.T, m *rig.Machine, boot time.Duration, backend string, hostile bool) {
	spin := hostile
	m.Expect("virtualization backend "+backend, boot)
	m.Expect(Prompt, 30*time.Second)
	run := func(name, kernel, extra string) {
		m.SendLine(fmt.Sprintf("vm create %s kernel=%s.elf mem=16M %s", name, kernel, extra))
		m.Expect("vm "+name+": created", 30*time.Second)
		m.SendLine("vm start " + name)
		m.Expect("vm "+name+": started", 30*time.Second)
	}
	wait := func(name, want string) {
		m.SendLine("vm wait " + name)
		line := m.ExpectRegexp(`vm `+name+`: (exited \d+|stopped: [^\r\n]*)\r?\n`, 3*time.Minute)
		if !strings.Contains(line[0], want) {
			t.Errorf("vm %s: %q, want %q", name, line[0], want)
		}
		m.Expect(Prompt, 30*time.Second)
	}
	logHas := func(name, want string) {
		m.SendLine("vm log " + name)
		m.Expect(want, 30*time.Second)
		m.Expect(Prompt, 30*time.Second)
	}

	// A guest spins forever from the start; everything else runs beside it.
	if spin {
		run("spin", "spin", "")
		logHas("spin", "spinning")
	}

	run("hello", "hello", `cmdline="from the test"`)
	wait("hello", "exited 42")
	logHas("hello", "hello: cmdline: from the test")

	// Two VMs at once, both finishing.
	run("lm", "longmode", "")
	run("rm", "realmode", "")
	wait("lm", "exited 0")
	wait("rm", "exited 0")
	logHas("lm", "longmode: PASS")
	logHas("rm", "realmode: PASS")

	// Timer interrupts from the emulated 8254 through the 8259 wake the guest from HLT.
	run("irq", "irq", "")
	wait("irq", "exited 0")
	logHas("irq", "irq: PASS")

	run("garbage", "garbage", "")
	wait("garbage", "exited 0")
	logHas("garbage", "garbage: PASS")

	run("oob", "oob", "")
	wait("oob", "outside its 16 MiB of RAM and not a device")
	if hostile {
		run("triple", "triple", "")
		wait("triple", "triple fault")
	}

	// The host is still fine, the spinning guest still runs, and stops on request.
	m.SendLine("uptime")
	m.Expect("threads", 30*time.Second)
	if spin {
		// Attach to the spinning guest's console and detach with Ctrl-].
		m.SendLine("vm console spin")
		m.Expect("connected to spin's console; Ctrl-] detaches", 30*time.Second)
		m.Send("\x1d")
		m.Expect("detached from spin (running)", 30*time.Second)
		m.SendLine("vm list")
		m.ExpectRegexp(`spin +running`, 30*time.Second)
		m.SendLine("vm stop spin")
		m.Expect("vm spin: stopped: stopped by the host", 30*time.Second)
	}
	m.SendLine("vm start hello")
	m.Expect("vm hello: started", 30*time.Second)
	wait("hello", "exited 42")
	m.SendLine("vm delete hello")
	m.Expect("vm hello: deleted", 30*time.Second)
	m.SendLine("vm start nosuch")
	m.Expect(`no VM "nosuch"`, 30*time.Second)
	for _, bad := range []struct{ cmd, want string }{
		{"vm create x kernel=nosuch.elf", `no module "nosuch.elf"`},
		{"vm create x kernel=hello.elf mem=3M", "must be a multiple of 2 MiB"},
		{"vm create x kernel=hello.elf mem=lots", `bad size "lots"`},
		{"vm create x kernel=hello.elf color=red", `unknown option "color"`},
		{"vm create bad/name kernel=hello.elf", `bad VM name "bad/name"`},
		{"vm create rm kernel=hello.elf", `a VM named "rm" exists`},
		{"vm frobnicate rm", "usage: vm create"},
	} {
		m.SendLine(bad.cmd)
		m.Expect(bad.want, 30*time.Second)
	}
	m.SendLine("poweroff")
	if _, err := m.Wait(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
}

func TestGuestsSVMQEMU(t *testing.T) {
	m := rig.QEMU(t, rig.Options{Name: "svm-qemu", Modules: guestModules()})
	vmSession(t, m, 30*time.Second, "svm", true)
}

func TestGuestsVMXBochs(t *testing.T) {
	t.Parallel()
	m := rig.Bochs(t, rig.Options{Name: "vmx-bochs", Modules: guestModules()})
	vmSession(t, m, 5*time.Minute, "vmx", true)
}

// TestGuestsSVMBochs runs the guests on Bochs's SVM (ryzen, with nRIP save), except the one
// spinning with interrupts disabled: Bochs 2.7 masks the host's interrupts by the guest's IF
// despite V_INTR_MASKING, so that guest never exits there (QEMU and the APM agree it should),
// and SVM has no preemption timer to bound it as VMX does. Nor the triple-faulting one: Bochs
// 2.7 does not turn a guest's triple fault into the SHUTDOWN intercept, it stops or resets
// the whole emulated machine (QEMU does intercept it: TestGuestsSVMQEMU).
func TestGuestsSVMBochs(t *testing.T) {
	t.Parallel()
	m := rig.Bochs(t, rig.Options{Name: "svm-bochs", CPU: "ryzen", Modules: guestModules()})
	vmSession(t, m, 5*time.Minute, "svm", false)
}

// TestForcedBackend: godwit.backend= forces a backend and says clearly when the CPU lacks it
// (QEMU TCG has no VMX); the shell still runs and refuses to create VMs.
func TestForcedBackend(t *testing.T) {
	t.Parallel()
	m := rig.QEMU(t, rig.Options{Name: "force-vmx", Cmdline: "godwit.backend=vmx", Modules: []string{"bin/guests/hello.elf"}})
	m.Expect("virtualization unavailable: no usable virtualization backend: vmx: hardware virtualization not available: CPUID.1:ECX.VMX is 0", 30*time.Second)
	m.Expect(Prompt, 30*time.Second)
	m.SendLine("vm create h kernel=hello.elf")
	m.Expect("no virtualization backend", 30*time.Second)
	m.SendLine("poweroff")
	if _, err := m.Wait(time.Minute); err != nil {
		t.Fatal(err)
	}
}
