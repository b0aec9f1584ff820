package acpi

import "fmt"

// Bochs/QEMU-legacy shutdown port. Bochs's "unmapped" I/O device powers the emulator off when the
// eight characters "Shutdown" are written, one per OUTB, to port 0x8900 (Bochs user manual, the
// port E9/8900 hacks; older QEMU versions emulated it too).
const (
	bochsShutdownPort   = 0x8900
	bochsShutdownString = "Shutdown"
)

// 8042 keyboard controller. IBM Personal Computer AT Technical Reference, "Keyboard Controller":
// the status register's bit 1 is Input Buffer Full (the controller has not yet taken the last
// byte written to port 0x60/0x64); command 0xF0-0xFF pulses the output-port bits whose
// command bits are 0 for about 6 µs, and output-port bit 0 is the system reset line, so
// 0xFE pulses reset.
const (
	kbdStatusPort      = 0x64   // read: status register
	kbdCommandPort     = 0x64   // write: controller command
	kbdStatusInputFull = 1 << 1 // IBF: input buffer full
	kbdCmdPulseReset   = 0xFE   // pulse output port bit 0 (system reset)
)

// BochsShutdown asks the Bochs (or an old QEMU) emulator to power off through its shutdown port.
// It returns only if the machine is still running, with an error wrapping ErrStillRunning.
func BochsShutdown(io PortIO) error {
	for i := 0; i < len(bochsShutdownString); i++ {
		io.Outb(bochsShutdownPort, bochsShutdownString[i])
	}
	settle(io, DefaultPolls)
	return fmt.Errorf("acpi: wrote %q to Bochs shutdown port %#x: %w", bochsShutdownString, bochsShutdownPort, ErrStillRunning)
}

// KeyboardReset resets the machine by pulsing the reset line through the 8042 keyboard
// controller: it waits for the controller's input buffer to drain, then writes the pulse
// command. It returns only if the machine is still running (ErrStillRunning), or if the input
// buffer never drained (ErrTimeout; there may be no 8042 at all, see FADT.Has8042).
func KeyboardReset(io PortIO) error {
	drained := false
	for range DefaultPolls {
		if io.Inb(kbdStatusPort)&kbdStatusInputFull == 0 {
			drained = true
			break
		}
	}
	if !drained {
		return fmt.Errorf("acpi: 8042 status port %#x: input buffer stayed full: %w", kbdStatusPort, ErrTimeout)
	}
	io.Outb(kbdCommandPort, kbdCmdPulseReset)
	settle(io, DefaultPolls)
	return fmt.Errorf("acpi: wrote %#02x to 8042 command port %#x: %w", kbdCmdPulseReset, kbdCommandPort, ErrStillRunning)
}
