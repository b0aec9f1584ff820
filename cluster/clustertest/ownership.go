package clustertest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Event kinds recorded by stress tests.
const (
	EvWrite   = 'W' // a data write to Vol under lease version Lver, [Start,End]
	EvAcquire = 'A' // Vol acquired at version Lver, at End
	EvRelease = 'R' // release of Vol started at Start
	EvCrash   = 'C' // host crashed (or was frozen) at Start; Vol lists nothing
)

// Event is one line of the ownership log. Times are Unix nanoseconds from
// the wall clock, which all processes of one machine share.
type Event struct {
	Kind       byte
	Vol        string
	Host       int
	Gen, Lver  uint64
	Start, End int64
}

func (e Event) String() string {
	return fmt.Sprintf("%c %s %d %d %d %d %d", e.Kind, e.Vol, e.Host, e.Gen, e.Lver, e.Start, e.End)
}

// ParseEvent reads the String form.
func ParseEvent(s string) (Event, error) {
	f := strings.Fields(s)
	if len(f) != 7 || len(f[0]) != 1 {
		return Event{}, fmt.Errorf("bad event line %q", s)
	}
	e := Event{Kind: f[0][0], Vol: f[1]}
	var nums [5]uint64
	for i := range nums {
		n, err := strconv.ParseUint(f[2+i], 10, 64)
		if err != nil {
			return Event{}, fmt.Errorf("bad event line %q: %w", s, err)
		}
		nums[i] = n
	}
	e.Host, e.Gen, e.Lver, e.Start, e.End = int(nums[0]), nums[1], nums[2], int64(nums[3]), int64(nums[4])
	return e, nil
}

// Log collects events from many goroutines, optionally appending each to a
// file as it happens (so a killed process leaves its events behind).
type Log struct {
	mu     sync.Mutex
	events []Event
	w      io.Writer
}

// NewLog returns a Log; w may be nil.
func NewLog(w io.Writer) *Log { return &Log{w: w} }

// Add records e.
func (l *Log) Add(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
	if l.w != nil {
		fmt.Fprintln(l.w, e.String())
	}
}

// Events returns a copy of what was recorded.
func (l *Log) Events() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.events...)
}

// ReadLogFile parses a file written by a Log. A torn last line (the
// process was killed mid-write) is ignored.
func ReadLogFile(path string) ([]Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		e, err := ParseEvent(sc.Text())
		if err != nil {
			continue
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// CheckSingleOwnership proves from the write log that no volume was ever
// written by two owners in overlapping ownership: every lease version of a
// volume was used by exactly one (host, generation), and every write under
// version n ended before any write under a later version started.
func CheckSingleOwnership(events []Event) error {
	type epoch struct {
		host       int
		gen        uint64
		start, end int64
		n          int
	}
	vols := map[string]map[uint64]*epoch{}
	for _, e := range events {
		if e.Kind != EvWrite {
			continue
		}
		m := vols[e.Vol]
		if m == nil {
			m = map[uint64]*epoch{}
			vols[e.Vol] = m
		}
		ep := m[e.Lver]
		if ep == nil {
			m[e.Lver] = &epoch{host: e.Host, gen: e.Gen, start: e.Start, end: e.End, n: 1}
			continue
		}
		if ep.host != e.Host || ep.gen != e.Gen {
			return fmt.Errorf("volume %s lease version %d written by host %d gen %d and by host %d gen %d", e.Vol, e.Lver, ep.host, ep.gen, e.Host, e.Gen)
		}
		ep.start, ep.end, ep.n = min(ep.start, e.Start), max(ep.end, e.End), ep.n+1
	}
	for vol, m := range vols {
		lvers := make([]uint64, 0, len(m))
		for l := range m {
			lvers = append(lvers, l)
		}
		sort.Slice(lvers, func(i, j int) bool { return lvers[i] < lvers[j] })
		var lastEnd int64
		var lastL uint64
		for i, l := range lvers {
			ep := m[l]
			if i > 0 && ep.start <= lastEnd {
				prev := m[lastL]
				return fmt.Errorf("volume %s: host %d gen %d wrote under version %d until %s, overlapping host %d gen %d under version %d from %s",
					vol, prev.host, prev.gen, lastL, time.Unix(0, lastEnd).Format("15:04:05.000000"), ep.host, ep.gen, l, time.Unix(0, ep.start).Format("15:04:05.000000"))
			}
			if ep.end > lastEnd {
				lastEnd, lastL = ep.end, l
			}
		}
	}
	return nil
}

// Takeover is the measured recovery of one volume after a crash.
type Takeover struct {
	Vol     string
	From    int           // crashed host
	By      int           // host that acquired it next
	Latency time.Duration // crash to acquisition
}

// Takeovers pairs every crash event with the volumes the crashed host held
// at that moment (acquired, not released) and the first acquisition of
// each by another host after the crash. Volumes never taken over are
// returned in missing.
func Takeovers(events []Event) (got []Takeover, missing []string) {
	sorted := append([]Event(nil), events...)
	sort.SliceStable(sorted, func(i, j int) bool { return at(sorted[i]) < at(sorted[j]) })
	type key struct {
		host int
		gen  uint64
	}
	holds := map[key]map[string]bool{}
	type pending struct {
		from    int
		fromGen uint64
		t       int64
	}
	waiting := map[string]pending{}
	for _, e := range sorted {
		k := key{e.Host, e.Gen}
		switch e.Kind {
		case EvAcquire:
			if holds[k] == nil {
				holds[k] = map[string]bool{}
			}
			holds[k][e.Vol] = true
			if p, ok := waiting[e.Vol]; ok && (p.from != e.Host || p.fromGen != e.Gen) {
				got = append(got, Takeover{Vol: e.Vol, From: p.from, By: e.Host, Latency: time.Duration(e.End - p.t)})
				delete(waiting, e.Vol)
			}
		case EvRelease:
			delete(holds[k], e.Vol)
		case EvCrash:
			for v := range holds[k] {
				waiting[v] = pending{from: e.Host, fromGen: e.Gen, t: e.Start}
			}
			delete(holds, k)
		}
	}
	for v, p := range waiting {
		missing = append(missing, fmt.Sprintf("%s (host %d crashed at %s)", v, p.from, time.Unix(0, p.t).Format("15:04:05.000")))
	}
	sort.Strings(missing)
	return got, missing
}

func at(e Event) int64 {
	if e.Kind == EvAcquire {
		return e.End
	}
	return e.Start
}
