// Package clustertest holds test helpers for package cluster: a
// fault-injecting BlockDevice, a manually advanced clock and a checker of
// single ownership.
package clustertest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/godwit-hv/godwit/cluster"
)

// ErrInjected is returned by injected failures; ErrCrashed by any I/O of a
// crashed device.
var (
	ErrInjected = errors.New("injected I/O failure")
	ErrCrashed  = errors.New("host crashed")
)

// FaultConfig sets fault probabilities (0..1) and the range of sectors
// subject to pauses of the whole host.
type FaultConfig struct {
	FailRead  float64       // a read fails without effect
	FailWrite float64       // a write fails without effect
	TornWrite float64       // a write fails after writing a prefix, cut inside a sector
	DelayProb float64       // an I/O is delayed ...
	MaxDelay  time.Duration // ... uniformly in [0, MaxDelay)
	// PauseBelow: Pause blocks only I/O that starts below this sector (the
	// metadata and lease area). 0 means every I/O.
	PauseBelow int64
	Seed       uint64
}

// FaultDevice wraps a BlockDevice for one simulated host.
type FaultDevice struct {
	inner cluster.BlockDevice
	cfg   FaultConfig

	mu      sync.Mutex
	rnd     *rand.Rand
	crashed atomic.Bool
	pauseMu sync.RWMutex // held for writing while the host is paused
	faulty  atomic.Bool

	Reads, Writes, Failed, Torn atomic.Int64
}

// NewFaultDevice wraps inner. Faults are off until SetFaulty(true).
func NewFaultDevice(inner cluster.BlockDevice, cfg FaultConfig) *FaultDevice {
	return &FaultDevice{inner: inner, cfg: cfg, rnd: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
}

// SetFaulty turns fault injection on or off.
func (d *FaultDevice) SetFaulty(on bool) { d.faulty.Store(on) }

// Crash makes every later I/O fail; an I/O in progress may be torn.
func (d *FaultDevice) Crash() { d.crashed.Store(true) }

// Pause blocks every I/O subject to pauses for dur (the host is frozen).
func (d *FaultDevice) Pause(dur time.Duration) {
	d.pauseMu.Lock()
	time.Sleep(dur)
	d.pauseMu.Unlock()
}

func (d *FaultDevice) float() float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rnd.Float64()
}

func (d *FaultDevice) intn(n int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rnd.IntN(n)
}

func (d *FaultDevice) enter(lba int64) error {
	if d.cfg.PauseBelow == 0 || lba < d.cfg.PauseBelow {
		// Wait out a pause in progress.
		d.pauseMu.RLock()
		d.pauseMu.RUnlock()
	}
	if d.crashed.Load() {
		return ErrCrashed
	}
	if d.faulty.Load() && d.cfg.MaxDelay > 0 && d.float() < d.cfg.DelayProb {
		time.Sleep(time.Duration(d.float() * float64(d.cfg.MaxDelay)))
	}
	return nil
}

func (d *FaultDevice) SectorSize() int { return d.inner.SectorSize() }
func (d *FaultDevice) Sectors() int64  { return d.inner.Sectors() }
func (d *FaultDevice) Flush() error {
	if d.crashed.Load() {
		return ErrCrashed
	}
	return d.inner.Flush()
}

func (d *FaultDevice) ReadSectors(lba int64, p []byte) error {
	if err := d.enter(lba); err != nil {
		return err
	}
	d.Reads.Add(1)
	if d.faulty.Load() && d.float() < d.cfg.FailRead {
		d.Failed.Add(1)
		return fmt.Errorf("read %d: %w", lba, ErrInjected)
	}
	return d.inner.ReadSectors(lba, p)
}

func (d *FaultDevice) WriteSectors(lba int64, p []byte) error {
	if err := d.enter(lba); err != nil {
		return err
	}
	d.Writes.Add(1)
	if d.crashed.Load() {
		// Crashed while this write was delayed: half the time it tears.
		if d.intn(2) == 0 {
			_ = d.tear(lba, p)
		}
		return ErrCrashed
	}
	if !d.faulty.Load() {
		return d.inner.WriteSectors(lba, p)
	}
	f := d.float()
	switch {
	case f < d.cfg.FailWrite:
		d.Failed.Add(1)
		return fmt.Errorf("write %d: %w", lba, ErrInjected)
	case f < d.cfg.FailWrite+d.cfg.TornWrite:
		d.Torn.Add(1)
		return d.tear(lba, p)
	}
	return d.inner.WriteSectors(lba, p)
}

// tear writes a prefix of p cut inside a sector: the cut sector holds the
// new bytes up to the cut and its old bytes after it.
func (d *FaultDevice) tear(lba int64, p []byte) error {
	ss := d.inner.SectorSize()
	cut := 1 + d.intn(len(p)-1)
	first := cut / ss
	if first > 0 {
		if err := d.inner.WriteSectors(lba, p[:first*ss]); err != nil {
			return err
		}
	}
	if cut%ss != 0 {
		old := make([]byte, ss)
		if err := d.inner.ReadSectors(lba+int64(first), old); err != nil {
			return err
		}
		copy(old, p[first*ss:cut])
		if err := d.inner.WriteSectors(lba+int64(first), old); err != nil {
			return err
		}
	}
	return fmt.Errorf("write %d: torn after %d bytes: %w", lba, cut, ErrInjected)
}
