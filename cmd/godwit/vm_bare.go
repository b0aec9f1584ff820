package main

import (
	"bytes"
	"fmt"

	"github.com/godwit-hv/godwit/arch/ring0"
	"github.com/godwit-hv/godwit/arch/x86"
	"github.com/godwit-hv/godwit/hv"
	"github.com/godwit-hv/godwit/hv/acpitab"
	"github.com/godwit-hv/godwit/hv/bus"
	"github.com/godwit-hv/godwit/hv/dev/testdev"
	"github.com/godwit-hv/godwit/hv/loader"
)

// hostBackend is the virtualization backend chosen at boot (nil, with backendErr, when the
// CPU has none).
var (
	hostBackend hv.Backend
	backendErr  error
)

// setupVMs picks the backend and lets the shell create VMs from boot modules.
func setupVMs(want string, f x86.Features) {
	hostBackend, backendErr = chooseBackend(want, f)
	if backendErr != nil {
		fmt.Printf("godwit: virtualization unavailable: %v\n", backendErr)
	} else {
		fmt.Printf("godwit: virtualization backend %s\n", hostBackend.Name())
	}
	vms.newVM = bareNewVM
}

// guestMemory takes guest RAM from the frame allocator: contiguous and identity-mapped.
func guestMemory(size uint64) (*hv.Memory, func(), error) {
	n := int(size / 4096)
	pa, err := ring0.AllocPages(n)
	if err != nil {
		return nil, nil, err
	}
	return &hv.Memory{Host: ring0.PageBytes(pa, int(size)), HostPhys: pa}, func() { ring0.FreePages(pa, n) }, nil
}

func bareNewVM(spec vmSpec) (*hv.VM, error) {
	if hostBackend == nil {
		return nil, fmt.Errorf("no virtualization backend: %w", backendErr)
	}
	// Private copies: the guest is reloaded from them at every start.
	kernel := bytes.Clone(ring0.PageBytes(spec.Kernel.Start, int(spec.Kernel.End-spec.Kernel.Start)))
	var initrd []byte
	if spec.Initrd != nil {
		initrd = bytes.Clone(ring0.PageBytes(spec.Initrd.Start, int(spec.Initrd.End-spec.Initrd.Start)))
	}
	cmdline := spec.Cmdline
	if cmdline == "" {
		cmdline = spec.Kernel.Args
	}
	boot := func(m *hv.Memory) (*hv.CPUState, error) {
		if initrd != nil {
			return nil, fmt.Errorf("initrd= is for Linux kernels; %s is a multiboot kernel", spec.Kernel.Name)
		}
		return loader.Multiboot(m, kernel, cmdline, nil)
	}
	if loader.IsBzImage(kernel) {
		boot = func(m *hv.Memory) (*hv.CPUState, error) { return bootLinux(m, kernel, initrd, cmdline) }
	}
	return hv.NewVM(hv.Config{
		Name:        spec.Name,
		MemSize:     spec.Mem,
		Backend:     hostBackend,
		AllocMemory: guestMemory,
		Boot:        boot,
		TSC:         x86.Rdtsc,
		HostCPUID:   x86.Cpuid,
		Devices:     func(b *bus.Bus) error { return testdev.New().Register(b) },
	})
}

// Guest ACPI tables live in the BIOS area, which the e820 map reserves; the PM1 blocks sit at
// the ports PIIX4-style chipsets use.
const (
	guestACPIBase = 0xE0000
	guestPM1aEvt  = 0x600
	guestPM1aCnt  = 0x604
)

// bootLinux loads a bzImage by the Linux boot protocol, with ACPI tables describing the
// platform.
func bootLinux(m *hv.Memory, kernel, initrd []byte, cmdline string) (*hv.CPUState, error) {
	rsdp, err := acpitab.Build(m, guestACPIBase, acpitab.Config{CPUs: 1, PM1aEvent: guestPM1aEvt,
		PM1aControl: guestPM1aCnt, Reset: acpitab.Reset8042})
	if err != nil {
		return nil, fmt.Errorf("ACPI tables: %w", err)
	}
	return loader.Linux(m, kernel, initrd, cmdline, loader.LinuxConfig{ACPIRSDP: rsdp})
}
