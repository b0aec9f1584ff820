package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseBootOptions(t *testing.T) {
	tests := []struct {
		cmdline string
		want    bootOptions
		warn    []string // substrings, one per warning, in order
	}{
		{"", bootOptions{}, nil},
		{"   ", bootOptions{}, nil},
		{"/boot/godwit", bootOptions{}, nil}, // GRUB puts the image's path first
		{"/boot/godwit godwit.selftest=1", bootOptions{Selftest: true}, nil},
		{"godwit.selftest=1", bootOptions{Selftest: true}, nil}, // QEMU -append without a path
		{"godwit.strace=on godwit.selftest=yes", bootOptions{Selftest: true, Strace: true}, nil},
		{"godwit.strace=true", bootOptions{Strace: true}, nil},
		{"godwit.selftest=1 godwit.selftest=0", bootOptions{}, nil}, // the last one wins
		{"godwit.strace=1 godwit.strace=off", bootOptions{}, nil},
		{"godwit.selftest=no godwit.strace=false", bootOptions{}, nil},
		{"/boot/godwit godwit.selftest=2", bootOptions{}, []string{`boot option godwit.selftest: bad value "2", want 0 or 1`}},
		{"godwit.selftest", bootOptions{}, []string{`boot option godwit.selftest: bad value ""`}},
		{"godwit.selftest=", bootOptions{}, []string{`boot option godwit.selftest: bad value ""`}},
		{"godwit.strace=1 godwit.strace=maybe", bootOptions{Strace: true}, []string{`godwit.strace: bad value "maybe"`}},
		{"godwit.frob=1", bootOptions{}, []string{`unknown boot option "godwit.frob" (known: godwit.selftest=0|1, godwit.strace=0|1`}},
		{"godwit.backend=svm", bootOptions{Backend: "svm"}, nil},
		{"godwit.backend=vmx godwit.backend=auto", bootOptions{Backend: "auto"}, nil},
		{"godwit.backend=kvm", bootOptions{}, []string{`boot option godwit.backend: bad value "kvm", want vmx, svm or auto`}},
		{"godwit.backend=vmx godwit.backend=", bootOptions{Backend: "vmx"}, []string{`godwit.backend: bad value ""`}},
		{"/boot/godwit console=ttyS0 quiet godwit.selftest=1", bootOptions{Selftest: true},
			[]string{`ignoring "console=ttyS0": Godwit's options are godwit.NAME=VALUE`, `ignoring "quiet"`}},
		{"console=ttyS0", bootOptions{}, []string{`ignoring "console=ttyS0"`}}, // a first word with "=" is not a path
		{"quiet /boot/godwit", bootOptions{}, []string{`ignoring "/boot/godwit"`}},
		{"GODWIT.SELFTEST=1", bootOptions{}, []string{`ignoring "GODWIT.SELFTEST=1"`}},
		{"godwit.selftest=1\tgodwit.strace=1\n", bootOptions{Selftest: true, Strace: true}, nil},
	}
	for _, tt := range tests {
		got, warn := parseBootOptions(tt.cmdline)
		if got != tt.want {
			t.Errorf("parseBootOptions(%q) = %+v, want %+v", tt.cmdline, got, tt.want)
		}
		ok := len(warn) == len(tt.warn)
		for i := 0; ok && i < len(warn); i++ {
			ok = strings.Contains(warn[i], tt.warn[i])
		}
		if !ok {
			t.Errorf("parseBootOptions(%q) warnings = %q, want %q", tt.cmdline, warn, tt.warn)
		}
		if slices.Contains(warn, "") {
			t.Errorf("parseBootOptions(%q): an empty warning", tt.cmdline)
		}
	}
}
