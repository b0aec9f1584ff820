package rig_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/internal/rig"
)

// readyMarker is the line the ring-0 layer prints once it is about to enter the Go runtime
// (arch/ring0/kinit.go).
const readyMarker = "godwit: ring 0 ready"

// checkReadyLine checks the rest of the ready line, which must follow the marker at once
// (Expect searches on from its previous match; \A anchors there): the memory the kernel found
// must be close to what the rig gave the machine.
func checkReadyLine(t *testing.T, m *rig.Machine, memMiB int) {
	t.Helper()
	sub := m.ExpectRegexp(`\A: (\d+) MiB`, 5*time.Second)
	got, err := strconv.Atoi(sub[1])
	if err != nil {
		t.Fatalf("ready line %q: %v", sub[0], err)
	}
	if got > memMiB || got < memMiB-64 {
		t.Errorf("kernel found %d MiB, want about %d (the rig's -m)", got, memMiB)
	}
}

// TestBootQEMU boots bin/godwit with -kernel under QEMU TCG up to the ring-0 marker.
func TestBootQEMU(t *testing.T) {
	m := rig.QEMU(t, rig.Options{})
	start := time.Now()
	line := m.Expect(readyMarker, 60*time.Second)
	t.Logf("boot to %q: %v (line %q)", readyMarker, time.Since(start).Round(time.Millisecond), line)
	checkReadyLine(t, m, rig.DefaultMemoryMiB)
}

// TestBootBochs boots bin/godwit.iso (BIOS, GRUB, kernel) under Bochs up to the ring-0 marker,
// with the VMX model the rig uses by default and the SVM one.
func TestBootBochs(t *testing.T) {
	for _, cpu := range []string{rig.DefaultBochsCPU, "ryzen"} {
		t.Run(cpu, func(t *testing.T) {
			m := rig.Bochs(t, rig.Options{CPU: cpu, Name: "bochs-" + cpu})
			start := time.Now()
			line := m.Expect(readyMarker, 3*time.Minute)
			t.Logf("boot to %q: %v (line %q)", readyMarker, time.Since(start).Round(time.Millisecond), line)
			checkReadyLine(t, m, rig.DefaultMemoryMiB)
		})
	}
}

// TestBootCmdline boots the kernel with a command line: QEMU passes it with -append; for Bochs
// the rig wraps bin/godwit in a GRUB ISO of its own whose grub.cfg carries it.
func TestBootCmdline(t *testing.T) {
	for _, e := range []struct {
		name  string
		start func(rig.TB, rig.Options) *rig.Machine
	}{{"qemu", rig.QEMU}, {"bochs", rig.Bochs}} {
		t.Run(e.name, func(t *testing.T) {
			m := e.start(t, rig.Options{Cmdline: "rig.test=1", MemoryMiB: 512})
			m.Expect(readyMarker, 3*time.Minute)
			checkReadyLine(t, m, 512)
		})
	}
}
