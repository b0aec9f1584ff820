package vmx

import (
	"os"
	"regexp"
	"strconv"
	"testing"
	"unsafe"
)

// The offsets vmx_amd64.s uses (R_* there, off* here) match the struct.
func TestRunRegsLayout(t *testing.T) {
	var r runRegs
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"gpr", unsafe.Offsetof(r.gpr), offGPR},
		{"cr2", unsafe.Offsetof(r.cr2), offCR2},
		{"hostFX", unsafe.Offsetof(r.hostFX), offHostFX},
		{"guestFX", unsafe.Offsetof(r.guestFX), offGuestFX},
		{"launched", unsafe.Offsetof(r.launched), offLaunched},
		{"status", unsafe.Offsetof(r.status), offStatus},
		{"gdtr", unsafe.Offsetof(r.gdtr), offGDTR},
		{"idtr", unsafe.Offsetof(r.idtr), offIDTR},
	} {
		if tc.got != tc.want {
			t.Errorf("Offsetof(runRegs.%s) = %d, want %d (vmx_amd64.s)", tc.name, tc.got, tc.want)
		}
	}
}

// The #defines in vmx_amd64.s agree with the constants above.
func TestAsmDefines(t *testing.T) {
	src, err := os.ReadFile("vmx_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"R_CR2": offCR2, "R_HOSTFX": offHostFX, "R_GUESTFX": offGuestFX,
		"R_LAUNCHED": offLaunched, "R_STATUS": offStatus, "R_GDTR": offGDTR, "R_IDTR": offIDTR,
		"HOST_FS_BASE": int(hostFSBase), "HOST_RSP": int(hostRSP), "HOST_RIP": int(hostRIP)}
	seen := 0
	for _, m := range regexp.MustCompile(`(?m)^#define (\w+) (0x[0-9A-Fa-f]+|\d+)$`).FindAllStringSubmatch(string(src), -1) {
		w, ok := want[m[1]]
		if !ok {
			continue
		}
		seen++
		if v, err := strconv.ParseInt(m[2], 0, 64); err != nil || int(v) != w {
			t.Errorf("vmx_amd64.s: #define %s %s, want %#x", m[1], m[2], w)
		}
	}
	if seen != len(want) {
		t.Errorf("found %d of the %d #defines", seen, len(want))
	}
	// The GPR slots: vmxRun/vmxExit address them as 8*index.
	for i, reg := range []string{"AX", "CX", "DX", "BX", "", "BP", "SI", "DI", "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15"} {
		if reg == "" {
			continue
		}
		load := regexp.MustCompile(`MOVQ\s+` + strconv.Itoa(8*i) + `\(DI\), ` + reg + `\b`)
		if i == 0 {
			load = regexp.MustCompile(`MOVQ\s+0\(DI\), AX\b`)
		}
		if !load.Match(src) {
			t.Errorf("vmx_amd64.s does not load %s from %d(DI)", reg, 8*i)
		}
	}
}
