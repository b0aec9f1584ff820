package main

import (
	"bytes"
	"fmt"

	"github.com/godwit-hv/godwit/arch/ring0"
	"github.com/godwit-hv/godwit/arch/x86"
	"github.com/godwit-hv/godwit/hv"
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

func bareNewVM(name string, mod moduleRef, mem uint64, cmdline string) (*hv.VM, error) {
	if hostBackend == nil {
		return nil, fmt.Errorf("no virtualization backend: %w", backendErr)
	}
	// A private copy: the guest is reloaded from it at every start.
	kernel := bytes.Clone(ring0.PageBytes(mod.Start, int(mod.End-mod.Start)))
	if cmdline == "" {
		cmdline = mod.Args
	}
	return hv.NewVM(hv.Config{
		Name:        name,
		MemSize:     mem,
		Backend:     hostBackend,
		AllocMemory: guestMemory,
		Boot: func(m *hv.Memory) (*hv.CPUState, error) {
			return loader.Multiboot(m, kernel, cmdline, nil)
		},
		TSC:       x86.Rdtsc,
		HostCPUID: x86.Cpuid,
		Devices:   func(b *bus.Bus) error { return testdev.New().Register(b) },
	})
}
