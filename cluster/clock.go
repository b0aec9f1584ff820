package cluster

import "time"

// Clock is the time source of a host. Production uses RealClock, whose
// Now carries Go's monotonic reading so interval arithmetic (Sub, After) is
// immune to wall-clock steps; tests inject a fake to run with short or
// manually advanced time.
//
// Only intervals measured on one host's clock are ever compared: liveness of
// another host is judged by how long (locally) its lease stayed unchanged,
// never by comparing its timestamps with ours, as sanlock does. Clocks of
// different hosts are assumed to run at the same rate, not to agree.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has elapsed.
	After(d time.Duration) <-chan time.Time
}

// RealClock is the monotonic system clock.
type RealClock struct{}

func (RealClock) Now() time.Time                         { return time.Now() }
func (RealClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// sleep waits d on c, or returns early with false when stop is closed.
func sleep(c Clock, d time.Duration, stop <-chan struct{}) bool {
	if d <= 0 {
		return true
	}
	select {
	case <-c.After(d):
		return true
	case <-stop:
		return false
	}
}
