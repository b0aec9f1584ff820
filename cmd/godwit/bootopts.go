package main

import (
	"fmt"
	"strings"
)

// bootOptions are the kernel command-line options, all spelled godwit.NAME=VALUE.
type bootOptions struct {
	Selftest bool   // godwit.selftest=1: run the self-test at boot, then power off
	Strace   bool   // godwit.strace=1: trace system calls on the console (read by arch/ring0)
	Backend  string // godwit.backend=vmx|svm|auto: force a virtualization backend
}

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
		var dst *bool
		switch key {
		case "godwit.selftest":
			dst = &o.Selftest
		case "godwit.strace":
			dst = &o.Strace
		default:
			warn = append(warn, fmt.Sprintf("unknown boot option %q (known: godwit.selftest=0|1, godwit.strace=0|1, godwit.backend=vmx|svm|auto)", key))
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
