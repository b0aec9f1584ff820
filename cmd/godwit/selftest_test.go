package main

import (
	"strings"
	"testing"
	"time"
)

// smallSelftest is the boot self-test scaled down to run as a unit test on Linux.
func smallSelftest() selftestConfig {
	start := time.Now()
	return selftestConfig{
		Goroutines: 2000,
		LiveMiB:    16,
		ChurnMiB:   64,
		TimerSpan:  200 * time.Millisecond,
		Tolerance:  0.5,
		MinThreads: 1,
		Clock:      func() time.Duration { return time.Since(start) },
		Threads:    func() int { return 8 },
	}
}

var selftestChecks = []string{"goroutines", "gc", "timers", "preemption", "threads"}

// checkReport checks the report's shape: one line per check in order, then the verdict.
func checkReport(t *testing.T, out string, ok bool, fail map[string]bool) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(selftestChecks)+1 {
		t.Fatalf("report has %d lines, want %d:\n%s", len(lines), len(selftestChecks)+1, out)
	}
	for i, name := range selftestChecks {
		status := "ok  "
		if fail[name] {
			status = "FAIL"
		}
		prefix := "selftest: " + name + strings.Repeat(" ", 10-len(name)) + " " + status + " "
		if !strings.HasPrefix(lines[i], prefix) {
			t.Errorf("report line %d = %q, want prefix %q", i, lines[i], prefix)
		}
	}
	verdict := "selftest: PASS"
	if len(fail) > 0 {
		verdict = "selftest: FAIL"
	}
	if got := lines[len(lines)-1]; got != verdict {
		t.Errorf("last line = %q, want %q", got, verdict)
	}
	if ok != (len(fail) == 0) {
		t.Errorf("runSelftest() = %v, want %v", ok, len(fail) == 0)
	}
}

func TestSelftestPass(t *testing.T) {
	var out strings.Builder
	ok := runSelftest(&out, smallSelftest())
	t.Logf("\n%s", out.String())
	checkReport(t, out.String(), ok, nil)
	for _, detail := range []string{"2000 goroutines alive at once", "live data intact", "100 ticks", "a GC cycle completed", "8 OS threads before"} {
		if !strings.Contains(out.String(), detail) {
			t.Errorf("report lacks %q", detail)
		}
	}
}

func TestSelftestFail(t *testing.T) {
	tests := []struct {
		name   string
		adjust func(c *selftestConfig)
		fail   map[string]bool
		detail string
	}{
		{
			name: "too few OS threads",
			adjust: func(c *selftestConfig) {
				c.Threads = func() int { return 1 }
				c.MinThreads = 8
			},
			fail:   map[string]bool{"threads": true},
			detail: "1 OS threads with 4 goroutines locked to threads, want at least 8",
		},
		{
			// A clock running at a tenth of real time: the timers look 90% fast.
			name: "a clock that disagrees with the timers",
			adjust: func(c *selftestConfig) {
				clock := c.Clock
				c.Clock = func() time.Duration { return clock() / 10 }
			},
			fail:   map[string]bool{"timers": true},
			detail: "FAIL sleep off by -", // about -90%, depending on how late the sleep wakes
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := smallSelftest()
			tt.adjust(&cfg)
			var out strings.Builder
			ok := runSelftest(&out, cfg)
			t.Logf("\n%s", out.String())
			checkReport(t, out.String(), ok, tt.fail)
			if !strings.Contains(out.String(), tt.detail) {
				t.Errorf("report lacks %q", tt.detail)
			}
		})
	}
}
