// Package rig boots the real Godwit image in the emulators the project tests on (see
// shared/design/RIGS.md) and connects a test to the guest's serial console: QEMU TCG for AMD-V,
// Bochs for VT-x (and AMD-V with NRIPS). Integration tests anywhere in the repository use it:
//
//	func TestVersion(t *testing.T) {
//		m := rig.QEMU(t, rig.Options{Cmdline: "rig.mark=1"})
//		m.Expect("godwit> ", time.Minute)
//		m.SendLine("version")
//		if line := m.Expect("command line", 10*time.Second); !strings.Contains(line, "rig.mark=1") {
//			t.Errorf("version: %q, want the command line", line)
//		}
//	}
//
// A guest that ends the run itself is waited for, and its status decoded:
//
//	status, err := m.Wait(5 * time.Minute)
//	if code, ok := rig.DebugExitCode(status); err != nil || !ok || code != want { ... }
//
// The same test runs under Bochs with rig.Bochs(t, rig.Options{...}); give
// CPU: "ryzen" to exercise SVM there.
//
// # Images
//
// Paths are relative to the repository root, found by walking up from the test's working
// directory to go.mod (RepoRoot). The rig does not build anything: a missing image fails the
// test with "run `make` first" (`make bin/godwit bin/godwit.iso` builds both), and an ISO
// older than bin/godwit earns a warning in the log. An .iso is copied into the test's
// temporary directory before booting, since emulators read it while the guest runs and
// someone's `make iso` may rewrite it meanwhile. Options.Image says what is booted: a
// multiboot kernel (QEMU -kernel, the default there), a GRUB ISO (the default under Bochs) or
// a 1.44 MB floppy image. Bochs cannot load a bare kernel: given a kernel, a command line or
// modules it boots an ISO that the rig makes with grub-mkrescue around the kernel (default
// bin/godwit), with the command line and modules in its grub.cfg. The loaders pass different
// strings: QEMU puts the file's host path first on the command line and on each module's
// ("/repo/bin/godwit rig.mark=1"), GRUB 2.06 only the arguments ("rig.mark=1"). Look for
// options by word.
//
// # QEMU
//
//	qemu-system-x86_64 -accel tcg -cpu max -m 1024 -display none -no-reboot -monitor none \
//	    -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel /repo/bin/godwit
//
// followed by -append, -initrd and Options.ExtraArgs. COM1 is QEMU's stdin and stdout (pipes),
// so the logged command runs as it stands in a terminal. QEMU's stderr is logged as the
// "emulator" stream. A guest that writes v to port 0xf4 makes QEMU exit with status (v<<1)|1;
// a triple fault exits 0 (-no-reboot). DebugExitCode decodes the status; treat !ok as failure.
//
// # Bochs
//
// The rig writes a bochsrc into t.TempDir() (logged in full; see bochsrc.go for each line:
// megs, cpu model/ips with reset_on_triple_fault=0, clock: sync=none, the Debian BIOS and VGA
// BIOS, the ISO on ata0-master, display_library: rfb with timeout=0, COM1 as socket-client,
// magic_break, log, panic: action=fatal) and runs
//
//	bochs -q -f $TMP/bochsrc -rc $TMP/debugger.rc
//
// debugger.rc holds "c" and "quit": Debian's Bochs has its debugger compiled in. Debian's
// build has no nogui display; rfb runs headless and takes the first free port from 5900 up by
// itself, so parallel Bochs machines do not collide (it listens on all interfaces). COM1 is a
// socket-client connected to a loopback port the rig listens on first, which gives both
// directions; Bochs connects while it starts, and a Bochs that does not connect fails the
// test. To rerun a logged command by hand, listen on the port in the com1 line first
// (`socat - TCP-LISTEN:PORT`), or change com1 to mode=file.
//
// Bochs has no exit code of the guest's own. Observed with Bochs 2.7 (Debian 2.7+dfsg-4):
//
//	status 1  "Shutdown" written to port 0x8900 (BochsShutdownPort), or a panic, which
//	          includes a triple fault; ExitMessage tells which
//	          ("[UNMAP ] Shutdown port: shutdown requested",
//	          "[CPU0  ] exception(): 3rd (13) exception with no resolution")
//	status 0  the magic breakpoint (xchg bx,bx) stopped the simulation and the debugger
//	          script quit
//
// So a guest should print a marker before it stops, and tests should Expect it. Port 0xf4
// means nothing to Bochs, nor 0x8900 to QEMU: a guest may write both.
//
// # Serial
//
// Every line the guest writes is logged through t.Logf as it arrives, prefixed with the
// machine's name and the time since it started ("[qemu +0.293s] godwit: ring 0 ready: ...");
// escape sequences and carriage returns are dropped from the log, and a line left unfinished
// (a prompt) is logged after 250 ms of silence. Transcript keeps the output byte for byte.
//
// Expect and ExpectRegexp wait with a deadline for a match, searching from just after the
// previous match (a regexp can anchor there with \A), and fail the test with the last 40 lines
// of serial output if it does not come or the emulator exits first. They match the raw output,
// whose lines end in "\r\n". Nothing in the rig sleeps in the hope that the guest is ready:
// every wait is for output or for the emulator to exit, with a deadline.
//
// Send writes bytes at once; Type and SendLine (which adds "\r") write one byte every
// Options.Pace (2 ms by default), so that a 16-byte receive FIFO keeps up however slowly the
// emulator runs the guest's interrupt handler. Bytes sent before the guest has programmed its
// UART are lost: Expect a prompt or banner first. Bytes the guest transmits just before it
// stops may be lost under Bochs, which stops at once: a guest should wait for LSR.TEMT before
// writing to the exit ports.
//
// Bochs 2.7's 16550 has a flaw a guest must work around: with a receive trigger level above
// one byte (FCR bits 7:6 not 0), its FIFO character timeout can set LSR.DR after the guest has
// emptied the FIFO, and reading RBR then returns a spurious 0x00 (measured: 4 to 10 per 3000
// bytes typed at the default pace, with or without host load; none in QEMU). Program the
// trigger level to 1 byte (FCR = 0x07), as the rig's own test guest does, or discard NULs.
//
// # Processes
//
// Each emulator runs in a process group of its own. The test's cleanup (and Kill) sends
// SIGKILL to the group and waits for it; and the kernel kills it if the test binary dies first
// (Pdeathsig), as it does when go test's -timeout fires. No emulator outlives its test.
//
// # Timings
//
// On the 2-core development machines, from starting the emulator to "godwit: ring 0 ready"
// (the +time the log shows at the match): QEMU -kernel 0.2-0.3 s; Bochs (BIOS, GRUB from the
// ISO, kernel) 1.8-1.9 s with ips=50000000, where the kernel measures a 50 MHz TSC. The
// package's own tests take about 9 s.
package rig
