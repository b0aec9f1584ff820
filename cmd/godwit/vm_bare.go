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
		boot = func(m *hv.Memory) (*hv.CPUState, error) { return bootLinux(m, kernel, initrd, cmdline, spec.CPUs) }
	} else if spec.CPUs > 1 {
		return nil, fmt.Errorf("cpus=%d: %s is a multiboot kernel, which starts one CPU", spec.CPUs, spec.Kernel.Name)
	}
	var nics []hv.NIC
	for i, n := range spec.NICs {
		sw, err := vmSwitch(n.Uplink)
		if err != nil {
			return nil, fmt.Errorf("nic %d: %w", i, err)
		}
		nics = append(nics, hv.NIC{MAC: n.MAC, Switch: sw})
	}
	disks, err := claimDisks(spec.Name, spec.Disks)
	if err != nil {
		return nil, err
	}
	vm, err := hv.NewVM(hv.Config{
		Name:        spec.Name,
		MemSize:     spec.Mem,
		CPUs:        spec.CPUs,
		Backend:     hostBackend,
		AllocMemory: guestMemory,
		Boot:        boot,
		TSC:         x86.Rdtsc,
		TSCHz:       ring0.TSCHz(),
		HostCPUID:   x86.Cpuid,
		Disks:       disks,
		NICs:        nics,
		Devices:     func(b *bus.Bus) error { return testdev.New().Register(b) },
	})
	if err != nil {
		releaseDisks(spec.Name)
		return nil, err
	}
	return vm, nil
}

// Guest ACPI tables live in the BIOS area, which the e820 map reserves. The PCI window for
// BARs runs from 3 GiB to the I/O APIC.
const (
	guestACPIBase      = 0xE0000
	guestPCIWindow     = 0xC0000000
	guestPCIWindowSize = hv.IOAPICBase - guestPCIWindow
)

// bootLinux loads a bzImage by the Linux boot protocol, with ACPI tables describing the
// platform hv builds (platform.go): its PM1 blocks and timer, I/O APIC and PCI wiring.
func bootLinux(m *hv.Memory, kernel, initrd []byte, cmdline string, cpus int) (*hv.CPUState, error) {
	rsdp, err := acpitab.Build(m, guestACPIBase, acpitab.Config{
		CPUs: cpus, PM1aEvent: hv.PM1aEventPort, PM1aControl: hv.PM1aControlPort, PMTimer: hv.PMTimerPort,
		Reset: acpitab.Reset8042, IOAPICID: hv.IOAPICID,
		PCI: &acpitab.PCIRootBridge{Buses: 1, MMIOBase: guestPCIWindow, MMIOSize: guestPCIWindowSize,
			GSI: func(slot, pin int) uint32 { return uint32(hv.PCIGSI(slot, pin)) }},
	})
	if err != nil {
		return nil, fmt.Errorf("ACPI tables: %w", err)
	}
	return loader.Linux(m, kernel, initrd, cmdline, loader.LinuxConfig{ACPIRSDP: rsdp})
}
