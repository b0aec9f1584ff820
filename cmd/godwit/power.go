package main

import (
	"errors"
	"fmt"

	"github.com/godwit-hv/godwit/arch/acpi"
	"github.com/godwit-hv/godwit/arch/ring0"
)

// hostMemory reads physical memory for the ACPI code: page 0 from the copy the ring-0 layer
// kept (it is unmapped so that nil pointers fault), everything else through the identity map.
type hostMemory struct{}

func (hostMemory) ReadPhys(addr uint64, p []byte) error {
	low := ring0.LowPage()
	if addr < uint64(len(low)) {
		if addr+uint64(len(p)) > uint64(len(low)) {
			return fmt.Errorf("read of %d bytes at %#x crosses the end of page 0", len(p), addr)
		}
		copy(p, low[addr:])
		return nil
	}
	return acpi.PhysMemory{}.ReadPhys(addr, p)
}

// acpiPower loads the firmware's ACPI tables once; poweroff and reboot try ACPI first and
// fall back to what the rigs and old PCs honor.
func acpiPower() (*acpi.Power, error) {
	var t *acpi.Tables
	var err error
	if rsdp := ring0.BootInfo().RSDP; rsdp != 0 {
		t, err = acpi.Load(hostMemory{}, rsdp)
	} else {
		t, err = acpi.Find(hostMemory{})
	}
	if err != nil {
		return nil, err
	}
	return acpi.NewPower(t)
}

// poweroff turns the machine off: ACPI S5, then Bochs's shutdown port. It returns only if the
// machine is still running.
func poweroff() error {
	ring0.FlushConsole()
	io := acpi.HostPortIO()
	var errs []error
	if p, err := acpiPower(); err != nil {
		errs = append(errs, fmt.Errorf("ACPI: %w", err))
	} else if err := p.Poweroff(io); err != nil {
		errs = append(errs, fmt.Errorf("ACPI S5: %w", err))
	}
	if err := acpi.BochsShutdown(io); err != nil {
		errs = append(errs, fmt.Errorf("Bochs shutdown port: %w", err))
	}
	return fmt.Errorf("%w: %w", errPowerFailed, errors.Join(errs...))
}

// reboot resets the machine: ACPI reset register, the 8042 keyboard controller, then a triple
// fault, which resets every x86 machine.
func reboot() error {
	ring0.FlushConsole()
	io := acpi.HostPortIO()
	if p, err := acpiPower(); err == nil {
		p.Reset(io, acpi.PhysMemory{})
	}
	acpi.KeyboardReset(io)
	ring0.Reboot()
	return errPowerFailed
}
