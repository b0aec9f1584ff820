package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/cluster/clustertest"
)

// Environment of a stress child process (the test binary re-executed).
const (
	envChild = "GODWIT_CLUSTER_STRESS_CHILD" // LUN image path
	envHosts = "GODWIT_CLUSTER_STRESS_HOSTS" // comma-separated host ids
	envLog   = "GODWIT_CLUSTER_STRESS_LOG"   // event log file, appended
	envUntil = "GODWIT_CLUSTER_STRESS_UNTIL" // unix ns at which to stop
	envSeed  = "GODWIT_CLUSTER_STRESS_SEED"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(envChild); path != "" {
		os.Exit(stressChild(path))
	}
	os.Exit(m.Run())
}

// stressChild runs some hosts of the process stress test until the deadline
// and exits. Ownership violations found on disk go to stderr as VIOLATION
// lines; the parent fails on them.
func stressChild(path string) int {
	var ids []int
	for _, f := range strings.Split(os.Getenv(envHosts), ",") {
		id, err := strconv.Atoi(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad host list:", err)
			return 2
		}
		ids = append(ids, id)
	}
	untilNs, _ := strconv.ParseInt(os.Getenv(envUntil), 10, 64)
	seed, _ := strconv.ParseUint(os.Getenv(envSeed), 10, 64)
	lf, err := os.OpenFile(os.Getenv(envLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer lf.Close()
	log := clustertest.NewLog(lf)
	ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, untilNs))
	defer cancel()
	var violations, writes, unexpected atomic.Int64
	var violMsg sync.Map
	names := make([]string, stressVolumes)
	for i := range names {
		names[i] = fmt.Sprintf("vm%02d", i)
	}
	hosts := make([]*simHost, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		hosts[i] = &simHost{id: id, path: path, log: log, rnd: rand.New(rand.NewPCG(seed, uint64(id))),
			violations: &violations, violMsg: &violMsg, writes: &writes, unexpected: &unexpected}
		wg.Add(1)
		go func(s *simHost) {
			defer wg.Done()
			if err := s.start(ctx, seed+uint64(s.id)); err != nil {
				if ctx.Err() == nil {
					fmt.Fprintf(os.Stderr, "VIOLATION host %d: join: %v\n", s.id, err)
				}
				return
			}
			s.run(ctx, names)
		}(hosts[i])
	}
	// Freezes and lease stalls inside this process; the parent kills it.
	quiet := stressTimeouts.TakeoverBound() + 2*stressTimeouts.HostDead
	errorf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, "VIOLATION "+f+"\n", a...) }
	chaosLoop(ctx, errorf, hosts, rand.New(rand.NewPCG(seed, 99)), time.Unix(0, untilNs).Add(-quiet), false, time.Second)
	wg.Wait()
	for _, s := range hosts {
		s.mu.Lock()
		if s.h != nil && !s.down {
			s.h.Leave() // best effort; leases time out anyway
			s.raw.Close()
		}
		s.mu.Unlock()
	}
	violMsg.Range(func(k, v any) bool {
		if v.(bool) {
			fmt.Fprintf(os.Stderr, "VIOLATION %s\n", k)
		}
		return true
	})
	return 0
}

type child struct {
	hosts  string
	log    string
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan error
}

func (c *child) start(t *testing.T, path string, until time.Time, seed int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+path, envHosts+"="+c.hosts, envLog+"="+c.log,
		envUntil+"="+strconv.FormatInt(until.UnixNano(), 10), envSeed+"="+strconv.Itoa(seed))
	c.stderr = new(bytes.Buffer)
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.cmd, c.done = cmd, make(chan error, 1)
	go func() { c.done <- cmd.Wait() }()
}

// lastGens returns the latest generation each host of the child joined with.
func (c *child) lastGens() map[int]uint64 {
	ev, _ := clustertest.ReadLogFile(c.log)
	gens := map[int]uint64{}
	for _, e := range ev {
		if e.Kind == 'J' {
			gens[e.Host] = e.Gen
		}
	}
	return gens
}

// TestStressProcesses runs the 16 hosts as 4 OS processes of 4 hosts each
// on one LUN image, with in-process faults, freezes and lease stalls, and
// kills whole processes with SIGKILL (restarting them), then checks the
// merged write logs.
func TestStressProcesses(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lun.img")
	setupStressLUN(t, path)
	start := time.Now()
	lag := startLagMonitor()
	until := start.Add(11 * time.Second)
	if raceEnabled {
		until = start.Add(16 * time.Second)
	}
	children := make([]*child, 4)
	for i := range children {
		ids := make([]string, 4)
		for j := range ids {
			ids[j] = strconv.Itoa(4*i + j + 1)
		}
		children[i] = &child{hosts: strings.Join(ids, ","), log: filepath.Join(dir, fmt.Sprintf("child%d.log", i))}
		children[i].start(t, path, until, i)
	}
	parentLog := clustertest.NewLog(nil)
	kill := func(c *child) {
		gens := c.lastGens()
		killAt := now()
		if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill child: %v", err)
		}
		<-c.done
		for host, gen := range gens {
			parentLog.Add(clustertest.Event{Kind: clustertest.EvCrash, Vol: "-", Host: host, Gen: gen, Start: killAt})
		}
		t.Logf("killed hosts %s at +%v", c.hosts, time.Since(start).Round(time.Millisecond))
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, at := range []time.Duration{1500 * time.Millisecond, 3500 * time.Millisecond} {
		time.Sleep(time.Until(start.Add(at)))
		c := children[rnd.IntN(len(children))]
		kill(c)
		time.Sleep(500 * time.Millisecond)
		c.start(t, path, until, 100+int(at/time.Millisecond))
	}
	var events []clustertest.Event
	for _, c := range children {
		select {
		case err := <-c.done:
			if err != nil {
				t.Errorf("child %s: %v\n%s", c.hosts, err, c.stderr)
			}
		case <-time.After(time.Until(until) + 20*time.Second):
			c.cmd.Process.Kill()
			t.Fatalf("child %s did not finish", c.hosts)
		}
		for _, line := range strings.Split(c.stderr.String(), "\n") {
			if strings.HasPrefix(line, "VIOLATION") {
				t.Errorf("child %s: %s", c.hosts, line)
			}
		}
		ev, err := clustertest.ReadLogFile(c.log)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, ev...)
	}
	events = append(events, parentLog.Events()...)
	verdict(t, events, 8, lag.Stop())
}
