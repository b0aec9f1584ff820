package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// HostConfig configures a host joining the lockspace of a LUN.
type HostConfig struct {
	ID       int      // 1..MaxHosts
	Name     string   // recorded in the host lease (32 bytes max), informational
	Timeouts Timeouts // zero value: DeriveTimeouts(DefaultIOTimeout)
	Clock    Clock    // nil: RealClock
	// OnFence is called once when the host fences itself: it could not renew
	// its host lease within RenewFail (or found its host id taken). From that
	// moment every write through this host is refused with ErrFenced; the
	// callback should pause the VMs using Volumes at once. It runs on its own
	// goroutine and must not block for long.
	OnFence func(FenceEvent)
}

// FenceEvent tells the owner of a fenced host what it must stop.
type FenceEvent struct {
	HostID     int
	Generation uint64
	Volumes    []string // volumes the host held
	Reason     error
}

// Host is one member of the lockspace: it holds delta lease ID on the LUN,
// renews it in the background, watches the other hosts' leases, and owns
// volume leases.
type Host struct {
	lun   *LUN
	id    int
	name  string
	t     Timeouts
	clock Clock
	epoch time.Time
	gen   uint64

	onFence   func(FenceEvent)
	deadline  atomic.Int64 // ns since epoch at which writes stop (fence point)
	fenced    atomic.Bool
	fenceOnce sync.Once
	fencedCh  chan struct{}

	mu        sync.Mutex
	lastSec   []byte // our host lease sector as last written
	lastOK    bool   // whether that write returned success
	lastTS    uint64
	peers     []peer // index by host id
	vols      map[resource]*Volume
	uncertain map[resource]uint64 // leases our value may have won, not held: lver
	resLocks  map[resource]*sync.Mutex
	left      bool

	rnd    *rand.Rand
	rndMu  sync.Mutex
	stop   chan struct{}
	wg     sync.WaitGroup
	stats  HostStats
	statMu sync.Mutex
}

// HostStats counts renewal outcomes, for tests and monitoring.
type HostStats struct {
	Renewals, RenewFailures int
}

// peer is what this host has observed of another host's lease.
type peer struct {
	seen       bool
	raw        uint32    // checksum of the raw sector: any change is a sign of life
	firstSeen  time.Time // local time the current content was first observed
	changed    bool      // content changed at least once while watched
	rec        hostLeaseRec
	valid      bool
	hostDeadMs uint32
}

// Liveness of a host as judged by an observer.
type Liveness int

const (
	LiveUnknown Liveness = iota + 1 // watched for less than its host-dead interval, no change seen yet
	LiveAlive                       // lease renewed within its host-dead interval
	LiveDead                        // lease unchanged for its host-dead interval
	LiveFree                        // lease released (timestamp 0) or never used
)

func (l Liveness) String() string {
	switch l {
	case LiveUnknown:
		return "unknown"
	case LiveAlive:
		return "alive"
	case LiveDead:
		return "dead"
	case LiveFree:
		return "free"
	}
	return fmt.Sprintf("Liveness(%d)", int(l))
}

// Join acquires delta lease cfg.ID, as Chockler and Malkhi's light-weight
// leases and sanlock's delta_lease_acquire do: if the lease is held, watch
// it for the holder's host-dead interval and fail if it changes; then write
// our record with the next generation, wait JoinDelay (so that a host
// joining concurrently with the same id has its write land), re-read, and
// own the id only if our record is still there. It then starts the renewal
// and watchdog goroutines.
func (l *LUN) Join(ctx context.Context, cfg HostConfig) (*Host, error) {
	if cfg.ID < 1 || cfg.ID > l.lay.MaxHosts {
		return nil, fmt.Errorf("join: %w: host id %d outside [1,%d]", ErrInvalid, cfg.ID, l.lay.MaxHosts)
	}
	if cfg.Timeouts == (Timeouts{}) {
		cfg.Timeouts = DeriveTimeouts(DefaultIOTimeout)
	}
	if err := cfg.Timeouts.Validate(); err != nil {
		return nil, fmt.Errorf("join host %d: %w", cfg.ID, err)
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock{}
	}
	h := &Host{
		lun: l, id: cfg.ID, name: cfg.Name, t: cfg.Timeouts, clock: cfg.Clock, onFence: cfg.OnFence,
		fencedCh: make(chan struct{}), peers: make([]peer, l.lay.MaxHosts+1),
		vols: make(map[resource]*Volume), uncertain: make(map[resource]uint64), resLocks: make(map[resource]*sync.Mutex), stop: make(chan struct{}),
		rnd: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(cfg.ID))),
	}
	h.epoch = h.clock.Now()
	if err := h.join(ctx); err != nil {
		return nil, fmt.Errorf("join host %d: %w", cfg.ID, err)
	}
	h.wg.Add(2)
	go h.renewLoop()
	go h.watchdog()
	return h, nil
}

func (h *Host) join(ctx context.Context) error {
	l := h.lun
	sec := make([]byte, l.ss())
	lba := l.lay.hostLeaseLBA(h.id)
	if err := l.dev.ReadSectors(lba, sec); err != nil {
		return fmt.Errorf("read host lease: %w", err)
	}
	rec, derr := l.decodeHostLease(sec, h.id)
	held := derr != nil || (rec.Owner != 0 && rec.Timestamp != 0)
	if errors.Is(derr, ErrUnsupportedVersion) {
		return derr
	}
	if held {
		// Watch the lease for the holder's host-dead interval (ours if the
		// record is unreadable, whichever is longer).
		wait := h.t.HostDead
		if derr == nil && time.Duration(rec.HostDeadMs)*time.Millisecond > wait {
			wait = time.Duration(rec.HostDeadMs) * time.Millisecond
		}
		start := h.clock.Now()
		for h.clock.Now().Sub(start) < wait {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-h.clock.After(min(h.t.RenewInterval, wait-h.clock.Now().Sub(start))):
			}
			cur := make([]byte, l.ss())
			if err := l.dev.ReadSectors(lba, cur); err != nil {
				return fmt.Errorf("watch host lease: %w", err)
			}
			if !bytes.Equal(cur, sec) {
				return fmt.Errorf("%w: host lease %d was renewed while we waited (held by a live host)", ErrHostIDInUse, h.id)
			}
		}
	}
	if derr == nil {
		h.gen = rec.Generation + 1
	} else {
		// The old generation is unreadable: take one no earlier
		// generation can equal (generations are only compared for equality).
		h.gen = uint64(time.Now().UnixNano())
	}
	t0 := h.sinceEpoch()
	if err := h.writeOwn(); err != nil {
		return err
	}
	if !sleep(h.clock, h.t.JoinDelay, ctx.Done()) {
		return ctx.Err()
	}
	if err := l.dev.ReadSectors(lba, sec); err != nil {
		return fmt.Errorf("re-read host lease: %w", err)
	}
	if !bytes.Equal(sec, h.lastSec) {
		return fmt.Errorf("%w: host lease %d was overwritten during the join delay", ErrHostIDInUse, h.id)
	}
	h.deadline.Store(int64(t0 + h.t.RenewFail))
	area, err := l.readHostArea()
	if err != nil {
		return err
	}
	h.observe(area)
	return nil
}

// writeOwn writes our host lease with a fresh timestamp.
func (h *Host) writeOwn() error {
	h.mu.Lock()
	ts := uint64(h.clock.Now().UnixNano())
	if ts <= h.lastTS {
		ts = h.lastTS + 1
	}
	h.mu.Unlock()
	rec := hostLeaseRec{
		Owner: uint64(h.id), Generation: h.gen, Timestamp: ts,
		IOTimeoutMs: uint32(h.t.IO / time.Millisecond), RenewFailMs: uint32(h.t.RenewFail / time.Millisecond),
		HostDeadMs: uint32(h.t.HostDead / time.Millisecond),
	}
	copy(rec.Name[:], h.name)
	return h.writeHostRec(&rec)
}

func (h *Host) writeHostRec(rec *hostLeaseRec) error {
	sec := make([]byte, h.lun.ss())
	rec.header = newHeader(magicHostLease, uint32(h.id), h.lun.tag)
	encodeRecord(sec, rec)
	err := h.lun.dev.WriteSectors(h.lun.lay.hostLeaseLBA(h.id), sec)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastSec, h.lastOK = sec, err == nil
	if rec.Timestamp > h.lastTS {
		h.lastTS = rec.Timestamp
	}
	if err != nil {
		return fmt.Errorf("write host lease %d: %w", h.id, err)
	}
	return nil
}

func (h *Host) sinceEpoch() time.Duration { return h.clock.Now().Sub(h.epoch) }

// renewLoop renews the host lease every RenewInterval (sanlock: every
// id_renewal_seconds), reading the whole host-lease area each time to
// watch the other hosts, as sanlock's check_other_leases does.
func (h *Host) renewLoop() {
	defer h.wg.Done()
	next := h.sinceEpoch() + h.t.RenewInterval
	for {
		if !sleep(h.clock, next-h.sinceEpoch(), h.stop) {
			return
		}
		next += h.t.RenewInterval
		if now := h.sinceEpoch(); next < now {
			next = now + h.t.RenewInterval
		}
		if err := h.renewOnce(); err != nil {
			h.statMu.Lock()
			h.stats.RenewFailures++
			h.statMu.Unlock()
		}
		if h.fenced.Load() {
			return
		}
		h.resolveUncertain()
	}
}

// renewOnce performs one renewal. Exported to tests through RenewNow.
func (h *Host) renewOnce() error {
	if h.fenced.Load() {
		return ErrFenced
	}
	t0 := h.sinceEpoch()
	if t0 >= time.Duration(h.deadline.Load()) {
		h.fence(fmt.Errorf("renewal deadline passed before renewal could start"))
		return ErrFenced
	}
	area, err := h.lun.readHostArea()
	if err != nil {
		return fmt.Errorf("renew host %d: %w", h.id, err)
	}
	ss := h.lun.ss()
	own := area[(h.id-1)*ss : h.id*ss]
	h.mu.Lock()
	stolen := h.lastOK && !bytes.Equal(own, h.lastSec)
	h.mu.Unlock()
	if stolen {
		err := fmt.Errorf("%w: host lease %d changed under us", ErrHostIDInUse, h.id)
		h.fence(err)
		return err
	}
	h.observe(area)
	if err := h.writeOwn(); err != nil {
		return fmt.Errorf("renew host %d: %w", h.id, err)
	}
	// Extend the fence point only if the write completed before the old
	// one: past it, others may already count from our previous timestamp,
	// and we stay fenced for good (this generation is finished).
	if h.sinceEpoch() >= time.Duration(h.deadline.Load()) {
		h.fence(fmt.Errorf("renewal completed after the fence point"))
		return ErrFenced
	}
	h.deadline.Store(int64(t0 + h.t.RenewFail))
	h.statMu.Lock()
	h.stats.Renewals++
	h.statMu.Unlock()
	return nil
}

// watchdog fences the host at the fence point even if the renewal
// goroutine is stuck in I/O (the job wdmd and the hardware watchdog do for
// sanlock).
func (h *Host) watchdog() {
	defer h.wg.Done()
	for !h.fenced.Load() {
		left := time.Duration(h.deadline.Load()) - h.sinceEpoch()
		if left <= 0 {
			h.fence(fmt.Errorf("host lease not renewed within %v", h.t.RenewFail))
			return
		}
		if !sleep(h.clock, min(left, h.t.RenewInterval), h.stop) {
			return
		}
	}
}

// fence closes the write gate for good and notifies the owner.
func (h *Host) fence(reason error) {
	h.fenceOnce.Do(func() {
		h.fenced.Store(true)
		close(h.fencedCh)
		h.mu.Lock()
		var names []string
		for _, v := range h.vols {
			names = append(names, v.name)
		}
		h.mu.Unlock()
		if h.onFence != nil {
			ev := FenceEvent{HostID: h.id, Generation: h.gen, Volumes: names, Reason: reason}
			go h.onFence(ev)
		}
	})
}

// writeAllowed is the write gate: a write may be issued only before the
// fence point. Writes issued before it complete within IO, and HostDead >=
// RenewFail + IO, so they land before anyone may take over.
func (h *Host) writeAllowed() error {
	if h.fenced.Load() {
		return fmt.Errorf("host %d generation %d: %w", h.id, h.gen, ErrFenced)
	}
	if h.sinceEpoch() >= time.Duration(h.deadline.Load()) {
		h.fence(fmt.Errorf("host lease not renewed within %v", h.t.RenewFail))
		return fmt.Errorf("host %d generation %d: %w", h.id, h.gen, ErrFenced)
	}
	return nil
}

// observe updates what we know of every host from a read of the host area.
func (h *Host) observe(area []byte) {
	now := h.clock.Now()
	ss := h.lun.ss()
	h.mu.Lock()
	defer h.mu.Unlock()
	for id := 1; id <= h.lun.lay.MaxHosts; id++ {
		h.observeOne(id, area[(id-1)*ss:id*ss], now)
	}
}

func (h *Host) observeOne(id int, sec []byte, now time.Time) {
	p := &h.peers[id]
	raw := crc32.Checksum(sec, castagnoli)
	if p.seen && p.raw == raw {
		return
	}
	if p.seen {
		p.changed = true
	}
	p.seen, p.raw, p.firstSeen = true, raw, now
	rec, err := h.lun.decodeHostLease(sec, id)
	p.rec, p.valid = rec, err == nil
	p.hostDeadMs = uint32(h.t.HostDead / time.Millisecond)
	if p.valid && rec.HostDeadMs > p.hostDeadMs {
		p.hostDeadMs = rec.HostDeadMs
	}
}

func (h *Host) livenessLocked(id int, now time.Time) Liveness {
	p := &h.peers[id]
	switch {
	case !p.seen:
		return LiveUnknown
	case p.valid && (p.rec.Owner == 0 || p.rec.Timestamp == 0):
		return LiveFree
	case now.Sub(p.firstSeen) >= time.Duration(p.hostDeadMs)*time.Millisecond:
		return LiveDead
	case p.changed:
		return LiveAlive
	}
	return LiveUnknown
}

// Liveness reports what this host has observed of host id.
func (h *Host) Liveness(id int) Liveness {
	if id < 1 || id > h.lun.lay.MaxHosts {
		return LiveUnknown
	}
	now := h.clock.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.livenessLocked(id, now)
}

// ownerGone re-reads the owner's host lease and reports whether a lease held
// by (owner, gen) may be taken over: the owner's lease is free, has moved to
// another generation (the owner restarted, which it may only do after its
// old lease died), or has been unchanged for its host-dead interval.
func (h *Host) ownerGone(owner, gen uint64) (bool, Liveness, error) {
	if owner < 1 || owner > uint64(h.lun.lay.MaxHosts) {
		return false, LiveUnknown, fmt.Errorf("%w: lease owner %d outside host range", ErrCorrupt, owner)
	}
	id := int(owner)
	sec := make([]byte, h.lun.ss())
	if err := h.lun.dev.ReadSectors(h.lun.lay.hostLeaseLBA(id), sec); err != nil {
		return false, LiveUnknown, fmt.Errorf("read host lease %d: %w", id, err)
	}
	now := h.clock.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.observeOne(id, sec, now)
	p := &h.peers[id]
	if p.valid && p.rec.Generation != gen {
		return true, LiveFree, nil
	}
	lv := h.livenessLocked(id, now)
	return lv == LiveDead || lv == LiveFree, lv, nil
}

// ID returns the host id; Generation the generation of this join.
func (h *Host) ID() int            { return h.id }
func (h *Host) Generation() uint64 { return h.gen }

// LUN returns the LUN the host joined.
func (h *Host) LUN() *LUN { return h.lun }

// Timeouts returns the host's timeouts.
func (h *Host) Timeouts() Timeouts { return h.t }

// Fenced is closed when the host fences itself.
func (h *Host) Fenced() <-chan struct{} { return h.fencedCh }

// Stats returns renewal counters.
func (h *Host) Stats() HostStats {
	h.statMu.Lock()
	defer h.statMu.Unlock()
	return h.stats
}

// RenewNow runs one renewal synchronously (besides the background ones).
func (h *Host) RenewNow() error { return h.renewOnce() }

func (h *Host) jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	h.rndMu.Lock()
	defer h.rndMu.Unlock()
	return time.Duration(h.rnd.Int64N(int64(d)))
}

// Leave releases every volume the host holds, stops renewing and releases
// the host lease (timestamp 0), so other hosts need not wait for it to time
// out. A fenced host only stops: it must not write anything.
func (h *Host) Leave() error {
	h.mu.Lock()
	if h.left {
		h.mu.Unlock()
		return nil
	}
	h.left = true
	vols := make([]*Volume, 0, len(h.vols))
	for _, v := range h.vols {
		vols = append(vols, v)
	}
	h.mu.Unlock()
	var errs []error
	if !h.fenced.Load() {
		for _, v := range vols {
			if _, err := v.Release(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	close(h.stop)
	h.wg.Wait()
	if h.writeAllowed() == nil && len(errs) == 0 {
		rec := hostLeaseRec{Owner: uint64(h.id), Generation: h.gen, Timestamp: 0,
			IOTimeoutMs: uint32(h.t.IO / time.Millisecond), RenewFailMs: uint32(h.t.RenewFail / time.Millisecond),
			HostDeadMs: uint32(h.t.HostDead / time.Millisecond)}
		copy(rec.Name[:], h.name)
		if err := h.writeHostRec(&rec); err != nil {
			errs = append(errs, err)
		} else if err := h.lun.dev.Flush(); err != nil {
			errs = append(errs, err)
		}
	}
	// From here on the host must not write: close the gate.
	h.fenceOnce.Do(func() { h.fenced.Store(true); close(h.fencedCh) })
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("leave host %d: %w", h.id, err)
	}
	return nil
}

// Abandon stops the host's goroutines without touching the disk, as if the
// process had been killed: its leases stay on disk until they time out.
// For tests and for an orderly shutdown after fencing.
func (h *Host) Abandon() {
	h.mu.Lock()
	if h.left {
		h.mu.Unlock()
		return
	}
	h.left = true
	h.mu.Unlock()
	h.fenceOnce.Do(func() { h.fenced.Store(true); close(h.fencedCh) })
	close(h.stop)
	h.wg.Wait()
}
