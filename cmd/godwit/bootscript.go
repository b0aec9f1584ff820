package main

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"github.com/godwit-hv/godwit/arch/ring0"
	"github.com/godwit-hv/godwit/boot"
)

// A boot module named godwit.rc is a script of shell commands run at boot before the prompt
// appears, one per line (blank lines and lines starting with # are skipped): how an operator
// has VMs created and started with the host, and how `make run` sets up its demo VM.

// bootScriptName is the module's base name.
const bootScriptName = "godwit.rc"

// maxBootScript bounds the script's size: it is a list of commands, not data.
const maxBootScript = 64 << 10

// bootScript returns the script's lines, or nil when there is no such module.
func bootScript(in *boot.Info) ([]string, error) {
	m, err := findModule(in, bootScriptName)
	if err != nil {
		return nil, nil // no script: nothing to run
	}
	if m.End < m.Start || m.End-m.Start > maxBootScript {
		return nil, fmt.Errorf("%s: %d bytes, at most %d", bootScriptName, m.End-m.Start, maxBootScript)
	}
	return scriptLines(ring0.PageBytes(m.Start, int(m.End-m.Start)))
}

// scriptLines splits a script into the commands to run.
func scriptLines(b []byte) ([]string, error) {
	if bytes.IndexByte(b, 0) >= 0 {
		return nil, fmt.Errorf("%s is not text (it holds NUL bytes)", bootScriptName)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return out, sc.Err()
}

// runBootScript runs the boot script's commands, echoing each one as if typed.
func (sh *shell) runBootScript(in *boot.Info) {
	lines, err := bootScript(in)
	if err != nil {
		fmt.Fprintf(sh.out, "godwit: boot script: %v\n", err)
		return
	}
	for _, l := range lines {
		fmt.Fprintf(sh.out, "%s%s\n", Prompt, l)
		sh.Exec(l)
	}
}
