package nic

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// Service is the part of a NIC driver that is the same for every device: the handler frames
// and link changes go to, the link state, and whether the device is out of service — why, and
// whether only a transmit stall put it there, which the driver may undo once the device
// completes its work again. Drivers embed it; it implements Link's Up, SetHandler and
// Description.
//
// Link changes and failures are counted, logged through Logf and passed to the handler. The
// handler is called with the Service's handler lock held, so SetHandler waits for a call in
// progress and the old handler is never called after SetHandler returns.
type Service struct {
	// Desc names the device in logs and errors ("net0 e1000 at 00:03.0"); Logf logs (nil:
	// nothing is logged). Set both before the device runs.
	Desc string
	Logf func(format string, args ...any)
	// LinkChanges counts link state changes, a failure's link-down included.
	LinkChanges atomic.Uint64

	up        atomic.Bool
	dead      atomic.Bool
	deadWhy   atomic.Pointer[string]
	deadMu    sync.Mutex
	revivable bool

	hmu     sync.Mutex
	handler Handler
}

func (s *Service) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

// Description implements Link.
func (s *Service) Description() string { return s.Desc }

// Up implements Link: the link is up and the device in service.
func (s *Service) Up() bool { return s.up.Load() && !s.dead.Load() }

// LinkUp is the last link state the device reported, in service or not.
func (s *Service) LinkUp() bool { return s.up.Load() }

// Dead reports whether the device is out of service.
func (s *Service) Dead() bool { return s.dead.Load() }

// SetHandler implements Link.
func (s *Service) SetHandler(h Handler) {
	s.hmu.Lock()
	s.handler = h
	s.hmu.Unlock()
}

// WithHandler calls f with the current handler (nil when there is none); SetHandler waits
// until f returns. Receive paths deliver their frames inside it.
func (s *Service) WithHandler(f func(h Handler)) {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	f(s.handler)
}

// InitLink records the link state found when the device starts, telling nobody.
func (s *Service) InitLink(up bool) { s.up.Store(up) }

// SetLink records the link state the device reports and, if it changed, counts, logs and
// tells the handler; a device out of service stays down. It reports whether the state changed.
func (s *Service) SetLink(up bool) bool {
	if s.dead.Load() {
		up = false
	}
	if s.up.Swap(up) == up {
		return false
	}
	s.LinkChanges.Add(1)
	s.logf("%s: link %s", s.Desc, UpDown(up))
	s.notifyLink(up)
	return true
}

func (s *Service) notifyLink(up bool) {
	s.WithHandler(func(h Handler) {
		if h != nil {
			h.LinkChanged(up)
		}
	})
}

// UpDown spells a link state for logs and listings.
func UpDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// Fail takes the device out of service: logged, the link reported down. revivable says the
// failure is a transmit stall, which Revive undoes; a later failure that is not revivable
// makes it permanent. It reports whether this call took the device out of service (the first
// failure), so that the caller quiets the device once.
func (s *Service) Fail(why string, revivable bool) bool {
	s.deadMu.Lock()
	if s.dead.Load() {
		if !revivable {
			s.revivable = false
		}
		s.deadMu.Unlock()
		return false
	}
	s.deadWhy.Store(&why)
	s.revivable = revivable
	s.dead.Store(true)
	s.deadMu.Unlock()
	s.logf("%s: device not responding: %s; taken out of service", s.Desc, why)
	if s.up.Swap(false) {
		s.LinkChanges.Add(1)
		s.logf("%s: link down", s.Desc)
		s.notifyLink(false)
	}
	return true
}

// Revivable reports whether the device is out of service for a transmit stall only.
func (s *Service) Revivable() bool {
	s.deadMu.Lock()
	defer s.deadMu.Unlock()
	return s.dead.Load() && s.revivable
}

// Revive puts a device out of service for a transmit stall back in service (the caller has
// seen its work complete); it reports whether it did. The link stays down until the driver
// reports it with SetLink.
func (s *Service) Revive(what string) bool {
	s.deadMu.Lock()
	if !s.dead.Load() || !s.revivable {
		s.deadMu.Unlock()
		return false
	}
	s.dead.Store(false)
	s.deadWhy.Store(nil)
	s.deadMu.Unlock()
	s.logf("%s: %s; back in service", s.Desc, what)
	return true
}

// Err is the error Transmit returns while the device is out of service.
func (s *Service) Err() error {
	why := "stopped answering"
	if p := s.deadWhy.Load(); p != nil {
		why = *p
	}
	return fmt.Errorf("%s: %s: %w", s.Desc, why, ErrDeviceDead)
}
