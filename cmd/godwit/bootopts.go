package main

import (
	"fmt"
	"sort"
	"strings"
)

// bootOptions are the kernel command-line options, all spelled godwit.NAME=VALUE.
type bootOptions struct {
	Selftest bool   // godwit.selftest=1: run the self-test at boot, then power off
	Strace   bool   // godwit.strace=1: trace system calls on the console (read by arch/ring0)
	Backend  string // godwit.backend=vmx|svm|auto: force a virtualization backend
}

// extraBootOption is a boot option that another file of the kernel registers from an init
// function (extraBootOptions[name] = ...), with the setter that checks and keeps its value.
type extraBootOption struct {
	usage string // "godwit.net=SPEC", for the list of known options
	set   func(val string) error
}

// extraBootOptions are the registered options, by full name ("godwit.net").
var extraBootOptions = map[string]extraBootOption{}

// startupHooks run in registration order after the backends are set up and before the shell
// starts; each reports its own problems on the console and must not stop the boot.
var startupHooks []func()

// parseBootOptions reads the command line. The loader may put the kernel's path first (GRUB
// and QEMU do); other words that are not godwit options are reported, as are unknown godwit
// options and bad values. Nothing stops the boot.
func parseBootOptions(cmdline string) (bootOptions, []string) {
	var o bootOptions
	var warn []string
	for i, w := range strings.Fields(cmdline) {
		key, val, hasVal := strings.Cut(w, "=")
		if !strings.HasPrefix(key, "godwit.") {
			if i == 0 && !hasVal {
				continue // the image's path
			}
			warn = append(warn, fmt.Sprintf("ignoring %q: Godwit's options are godwit.NAME=VALUE", w))
			continue
		}
		if key == "godwit.backend" {
			switch val {
			case "vmx", "svm", "auto":
				o.Backend = val
			default:
				warn = append(warn, fmt.Sprintf("boot option godwit.backend: bad value %q, want vmx, svm or auto", val))
			}
			continue
		}
		if opt, ok := extraBootOptions[key]; ok {
			if err := opt.set(val); err != nil {
				warn = append(warn, fmt.Sprintf("boot option %s: %v", key, err))
			}
			continue
		}
		var dst *bool
		switch key {
		case "godwit.selftest":
			dst = &o.Selftest
		case "godwit.strace":
			dst = &o.Strace
		default:
			warn = append(warn, fmt.Sprintf("unknown boot option %q (known: %s)", key, knownBootOptions()))
			continue
		}
		switch val {
		case "1", "on", "yes", "true":
			*dst = true
		case "0", "off", "no", "false":
			*dst = false
		default:
			warn = append(warn, fmt.Sprintf("boot option %s: bad value %q, want 0 or 1", key, val))
		}
	}
	return o, warn
}

// knownBootOptions lists every boot option for error messages.
func knownBootOptions() string {
	known := []string{"godwit.selftest=0|1", "godwit.strace=0|1", "godwit.backend=vmx|svm|auto"}
	var extra []string
	for _, o := range extraBootOptions {
		extra = append(extra, o.usage)
	}
	sort.Strings(extra)
	return strings.Join(append(known, extra...), ", ")
}
