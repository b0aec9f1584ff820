package svm

import (
	"os"
	"regexp"
	"strconv"
	"testing"
	"unsafe"

	"github.com/godwit-hv/godwit/hv"
)

// TestAsmLayout compares the #defines of svm_amd64.s with the Go structures they index.
func TestAsmLayout(t *testing.T) {
	src, err := os.ReadFile("svm_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	defs := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^#define (\w+) (.+)$`).FindAllStringSubmatch(string(src), -1) {
		defs[m[1]] = m[2]
	}
	eval := func(name string) int64 {
		t.Helper()
		v, ok := defs[name]
		if !ok {
			t.Fatalf("svm_amd64.s does not define %s", name)
		}
		if m := regexp.MustCompile(`^\((\w+)\+(\d+)\)$`).FindStringSubmatch(v); m != nil {
			base, ok := defs[m[1]]
			if !ok {
				t.Fatalf("%s refers to undefined %s", name, m[1])
			}
			b, err1 := strconv.ParseInt(base, 0, 64)
			o, err2 := strconv.ParseInt(m[2], 0, 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("cannot evaluate %s = %s", name, v)
			}
			return b + o
		}
		n, err := strconv.ParseInt(v, 0, 64)
		if err != nil {
			t.Fatalf("cannot evaluate %s = %s", name, v)
		}
		return n
	}
	var rb runBlock
	rbase := uintptr(unsafe.Pointer(&rb))
	gpr := func(i int) int64 { return runOffset + int64(uintptr(unsafe.Pointer(&rb.GPR[i]))-rbase) }
	for _, tc := range []struct {
		name string
		want int64
	}{
		{"RUN_GPR", runOffset + int64(unsafe.Offsetof(rb.GPR))},
		{"RUN_HOSTSAVE", runOffset + int64(unsafe.Offsetof(rb.HostSavePA))},
		{"RUN_GUESTFX", runOffset + int64(unsafe.Offsetof(rb.GuestFX))},
		{"RUN_HOSTFX", runOffset + int64(unsafe.Offsetof(rb.HostFX))},
		{"G_RCX", gpr(hv.RCX)}, {"G_RDX", gpr(hv.RDX)}, {"G_RBX", gpr(hv.RBX)},
		{"G_RBP", gpr(hv.RBP)}, {"G_RSI", gpr(hv.RSI)}, {"G_RDI", gpr(hv.RDI)},
		{"G_R8", gpr(hv.R8)}, {"G_R9", gpr(hv.R9)}, {"G_R10", gpr(hv.R10)}, {"G_R11", gpr(hv.R11)},
		{"G_R12", gpr(hv.R12)}, {"G_R13", gpr(hv.R13)}, {"G_R14", gpr(hv.R14)}, {"G_R15", gpr(hv.R15)},
	} {
		if got := eval(tc.name); got != tc.want {
			t.Errorf("svm_amd64.s %s = %d, want %d", tc.name, got, tc.want)
		}
	}
	for name, want := range map[string]int64{"RUN_GPR": runGPR, "RUN_HOSTSAVE": runHostSave,
		"RUN_GUESTFX": runGuestFX, "RUN_HOSTFX": runHostFX} {
		if got := eval(name); got != want {
			t.Errorf("svm_amd64.s %s = %d, run.go says %d", name, got, want)
		}
	}
	if unsafe.Sizeof(rb) != 4096 {
		t.Errorf("sizeof(runBlock) = %d, want 4096", unsafe.Sizeof(rb))
	}
	if runGuestFX%16 != 0 || runHostFX%16 != 0 {
		t.Errorf("FXSAVE areas at %#x and %#x are not 16-byte aligned", runGuestFX, runHostFX)
	}
}
