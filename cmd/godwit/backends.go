package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/godwit-hv/godwit/arch/x86"
	"github.com/godwit-hv/godwit/hv"
	"github.com/godwit-hv/godwit/svm"
	"github.com/godwit-hv/godwit/vmx"
)

// backendFactory is a hardware virtualization backend Godwit can use.
type backendFactory struct {
	name   string
	detect func(x86.Features) error
	new    func(x86.Features) (hv.Backend, error)
}

// backendFactories lists the backends in the order auto-selection tries them.
var backendFactories = []backendFactory{
	{"vmx", vmxDetect, func(x86.Features) (hv.Backend, error) { return vmx.Enable() }},
	{"svm", svm.Detect, func(f x86.Features) (hv.Backend, error) { return svm.New(f) }},
}

// vmxDetect checks what the VT-x backend needs before it touches any VMX MSR: VMX, enabled
// by the firmware, with EPT and unrestricted guest.
func vmxDetect(f x86.Features) error {
	switch {
	case !f.VMX:
		return fmt.Errorf("vmx: %w: CPUID.1:ECX.VMX is 0", hv.ErrNoHardware)
	case !f.VMXEnabled:
		return fmt.Errorf("vmx: %w: VMX disabled in IA32_FEATURE_CONTROL", hv.ErrNoHardware)
	case !f.EPT:
		return fmt.Errorf("vmx: %w: no EPT", hv.ErrNoHardware)
	case !f.UnrestrictedGuest:
		return fmt.Errorf("vmx: %w: no unrestricted guest", hv.ErrNoHardware)
	}
	return nil
}

// chooseBackend picks the backend: the one named by godwit.backend=, or the first the CPU
// supports. A forced backend the CPU lacks is an error that says why.
func chooseBackend(want string, f x86.Features) (hv.Backend, error) {
	var errs []error
	var names []string
	for _, b := range backendFactories {
		names = append(names, b.name)
		if want != "" && want != "auto" && want != b.name {
			continue
		}
		if err := b.detect(f); err != nil {
			errs = append(errs, err)
			continue
		}
		return b.new(f)
	}
	if want != "" && want != "auto" && len(errs) == 0 {
		return nil, fmt.Errorf("godwit.backend=%s: no such backend (have %s)", want, strings.Join(names, ", "))
	}
	return nil, fmt.Errorf("no usable virtualization backend: %w", errors.Join(errs...))
}
