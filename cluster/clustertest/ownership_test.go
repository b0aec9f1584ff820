package clustertest

import (
	"strings"
	"testing"
	"time"
)

func TestCheckSingleOwnershipCatchesOverlap(t *testing.T) {
	w := func(vol string, host int, lver uint64, s, e int64) Event {
		return Event{Kind: EvWrite, Vol: vol, Host: host, Gen: 1, Lver: lver, Start: s, End: e}
	}
	for _, tc := range []struct {
		name   string
		events []Event
		want   string // substring of the error, "" for none
	}{
		{"disjoint", []Event{w("v", 1, 1, 10, 20), w("v", 1, 1, 30, 40), w("v", 2, 2, 50, 60), w("u", 2, 1, 15, 16)}, ""},
		{"overlap", []Event{w("v", 1, 1, 10, 20), w("v", 2, 2, 15, 25)}, "overlapping"},
		{"stale writer after new owner", []Event{w("v", 1, 1, 10, 20), w("v", 2, 2, 30, 40), w("v", 1, 1, 50, 51)}, "overlapping"},
		{"two owners of one version", []Event{w("v", 1, 3, 10, 20), w("v", 2, 3, 30, 40)}, "written by host 1"},
	} {
		err := CheckSingleOwnership(tc.events)
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: CheckSingleOwnership = %v, want error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestTakeovers(t *testing.T) {
	ev := []Event{
		{Kind: EvAcquire, Vol: "a", Host: 1, Gen: 1, Lver: 1, End: 10},
		{Kind: EvAcquire, Vol: "b", Host: 1, Gen: 1, Lver: 1, End: 11},
		{Kind: EvRelease, Vol: "b", Host: 1, Gen: 1, Start: 12},
		{Kind: EvAcquire, Vol: "c", Host: 1, Gen: 1, Lver: 1, End: 13},
		{Kind: EvCrash, Host: 1, Gen: 1, Start: 100},
		{Kind: EvAcquire, Vol: "a", Host: 2, Gen: 1, Lver: 2, End: 400},
		{Kind: EvAcquire, Vol: "b", Host: 3, Gen: 1, Lver: 2, End: 500},
	}
	got, missing := Takeovers(ev)
	if len(got) != 1 || got[0].Vol != "a" || got[0].By != 2 || got[0].Latency != 300*time.Nanosecond {
		t.Errorf("Takeovers = %+v, want a by 2 after 300ns", got)
	}
	if len(missing) != 1 || !strings.HasPrefix(missing[0], "c ") {
		t.Errorf("missing = %v, want [c ...]", missing)
	}
	line := ev[0].String()
	if back, err := ParseEvent(line); err != nil || back != ev[0] {
		t.Errorf("ParseEvent(%q) = %+v, %v", line, back, err)
	}
}
