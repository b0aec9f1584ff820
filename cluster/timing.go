package cluster

import (
	"fmt"
	"time"
)

// Timeouts of the lease protocols. They derive from one number, the I/O
// timeout, exactly as sanlock derives its defaults from io_timeout_seconds
// (10 s): renew every 2*io (20 s), fail after 8*io (80 s, i.e. four renewal
// periods in which every attempt may take up to one io timeout), and count a
// host dead after failure + watchdog time (60 s), i.e. 140 s. Godwit's
// fence margin plays the part of sanlock's watchdog_fire_timeout: the time
// between a host fencing itself and anyone else being allowed to take over.
//
// The relations, checked by Validate:
//
//	RenewInterval   >= IO                 a renewal attempt fits in one interval
//	RenewFail       >= 2*RenewInterval    one missed renewal is not fatal
//	HostDead        >= RenewFail + IO     in-flight writes issued before the fence
//	                                      point land before anyone can take over
//	JoinDelay       >= 2*IO               a concurrent joiner's write is seen (delta lease)
//
// Timeline for a host whose last successful renewal was issued at t:
//
//	t ............ t+RenewFail ............. t'+HostDead
//	renew issued   host fences itself:      observers that first saw that
//	               callback, writes refused  timestamp at t' >= t declare it dead
//
// so a crashed host's volumes are free for takeover at most
// TakeoverBound = HostDead + 2*RenewInterval + 8*IO after the crash (the
// last renewal, one observation period, the dead interval, one retry
// period and a ballot).
type Timeouts struct {
	IO            time.Duration // longest one lease I/O may take
	RenewInterval time.Duration // period of host-lease renewal
	RenewFail     time.Duration // renewal age at which the host fences itself
	HostDead      time.Duration // unchanged-lease age at which others call a host dead
	JoinDelay     time.Duration // wait between write and re-read when joining
}

// DefaultIOTimeout is sanlock's default io_timeout.
const DefaultIOTimeout = 10 * time.Second

// DeriveTimeouts gives sanlock's ratios for an I/O timeout.
func DeriveTimeouts(io time.Duration) Timeouts {
	return Timeouts{
		IO:            io,
		RenewInterval: 2 * io,
		RenewFail:     8 * io,
		HostDead:      14 * io, // RenewFail + 6*io, sanlock's 60 s watchdog margin at io=10s
		JoinDelay:     2 * io,
	}
}

// Validate checks the relations above.
func (t Timeouts) Validate() error {
	switch {
	case t.IO <= 0:
		return fmt.Errorf("%w: io timeout %v must be positive", ErrInvalid, t.IO)
	case t.RenewInterval < t.IO:
		return fmt.Errorf("%w: renew interval %v < io timeout %v", ErrInvalid, t.RenewInterval, t.IO)
	case t.RenewFail < 2*t.RenewInterval:
		return fmt.Errorf("%w: renew fail %v < 2 * renew interval %v", ErrInvalid, t.RenewFail, t.RenewInterval)
	case t.HostDead < t.RenewFail+t.IO:
		return fmt.Errorf("%w: host dead %v < renew fail %v + io timeout %v", ErrInvalid, t.HostDead, t.RenewFail, t.IO)
	case t.JoinDelay < 2*t.IO:
		return fmt.Errorf("%w: join delay %v < 2 * io timeout %v", ErrInvalid, t.JoinDelay, t.IO)
	case t.HostDead/time.Millisecond >= 1<<32:
		return fmt.Errorf("%w: host dead %v does not fit the lease record", ErrInvalid, t.HostDead)
	}
	return nil
}

// TakeoverBound is the documented bound between a host's crash and the
// moment a live host trying to take over one of its volumes holds it.
func (t Timeouts) TakeoverBound() time.Duration {
	return t.HostDead + 2*t.RenewInterval + 8*t.IO
}
