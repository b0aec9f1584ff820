package nic

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

type recHandler struct{ links []bool }

func (r *recHandler) DeliverFrame([]byte) {}
func (r *recHandler) LinkChanged(up bool) { r.links = append(r.links, up) }
func (r *recHandler) String() string      { return fmt.Sprint(r.links) }

func TestServiceLinkAndFailure(t *testing.T) {
	var logs []string
	s := &Service{Desc: "nicX", Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }}
	h := &recHandler{}
	s.SetHandler(h)
	s.InitLink(false)
	if s.SetLink(false) || !s.SetLink(true) || s.SetLink(true) || !s.Up() {
		t.Fatalf("SetLink did not report exactly the change to up")
	}
	// A transmit stall takes it out of service; the link goes down once.
	if !s.Fail("transmit stalled", true) || s.Fail("again", true) {
		t.Fatal("Fail did not report exactly the first failure")
	}
	if s.Up() || !s.Dead() || !s.Revivable() || !errors.Is(s.Err(), ErrDeviceDead) || !strings.Contains(s.Err().Error(), "transmit stalled") {
		t.Fatalf("after a stall: up %v dead %v revivable %v err %v", s.Up(), s.Dead(), s.Revivable(), s.Err())
	}
	if s.SetLink(true) || s.Up() {
		t.Error("a device out of service came up")
	}
	if !s.Revive("work completes again") || s.Dead() || !s.SetLink(true) {
		t.Fatal("Revive did not put the device back with its link")
	}
	// A permanent failure after a stall cannot be revived.
	s.Fail("stalled", true)
	s.Fail("registers read all ones", false)
	if s.Revivable() || s.Revive("x") {
		t.Error("a permanent failure was revived")
	}
	if got := fmt.Sprint(h.links); got != "[true false true false]" || s.LinkChanges.Load() != 4 {
		t.Errorf("handler saw %s and %d link changes were counted; want [true false true false], 4", got, s.LinkChanges.Load())
	}
	// The handler is gone after SetHandler(nil).
	s.SetHandler(nil)
	s.Revive("x")
	s.WithHandler(func(h Handler) {
		if h != nil {
			t.Error("WithHandler gave a handler after SetHandler(nil)")
		}
	})
	if len(logs) == 0 || !strings.Contains(strings.Join(logs, "\n"), "nicX: device not responding: transmit stalled; taken out of service") {
		t.Errorf("logs = %q", logs)
	}
}
