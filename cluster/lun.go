package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// LUN is a formatted shared volume as seen through one host's BlockDevice.
// It is safe for concurrent use; it holds no mutable state besides the device.
type LUN struct {
	dev  BlockDevice
	lay  Layout
	uuid [16]byte
	tag  uint64
}

// FormatOptions choose the layout; zero fields take defaults.
type FormatOptions struct {
	MaxHosts   int
	MaxVolumes int
	AUSize     int64
	Label      string
}

// Format writes a fresh, empty volume format to dev: superblock, free host
// leases, empty lease areas, free directory slots and an all-free bitmap.
// Every metadata sector is written, so nothing left on the device from
// before can be mistaken for a record.
func Format(dev BlockDevice, o FormatOptions) (*LUN, error) {
	p := Params{SectorSize: dev.SectorSize(), MaxHosts: o.MaxHosts, MaxVolumes: o.MaxVolumes, AUSize: o.AUSize}
	if p.MaxHosts == 0 {
		p.MaxHosts = DefaultHosts
	}
	if p.MaxVolumes == 0 {
		p.MaxVolumes = DefaultVolumes
	}
	if p.AUSize == 0 {
		p.AUSize = DefaultAUSize
	}
	lay, err := ComputeLayout(p, dev.Sectors())
	if err != nil {
		return nil, fmt.Errorf("format: %w", err)
	}
	l := &LUN{dev: dev, lay: lay}
	if _, err := rand.Read(l.uuid[:]); err != nil {
		return nil, fmt.Errorf("format: uuid: %w", err)
	}
	l.tag = le.Uint64(l.uuid[:8])
	if l.tag == 0 {
		l.uuid[0] = 1
		l.tag = le.Uint64(l.uuid[:8])
	}
	ss := lay.SectorSize
	// Write everything except the superblock first, so an interrupted
	// format is never mistaken for a valid LUN.
	buf := make([]byte, int(lay.VolLeaseStart+int64(lay.MaxVolumes)*lay.LeaseAreaSectors)*ss)
	sec := func(lba int64) []byte { return buf[int(lba)*ss : int(lba+1)*ss] }
	for id := 1; id <= lay.MaxHosts; id++ {
		encodeRecord(sec(lay.hostLeaseLBA(id)), &hostLeaseRec{header: newHeader(magicHostLease, uint32(id), l.tag)})
	}
	l.encodeEmptyLeaseArea(sec, dirResource)
	for s := 0; s < lay.MaxVolumes; s++ {
		encodeRecord(sec(lay.direntLBA(s)), &direntRec{header: newHeader(magicDirent, uint32(s), l.tag), State: direntFree})
		l.encodeEmptyLeaseArea(sec, volResource(s))
	}
	for pg := int64(0); pg < lay.BitmapSectors; pg++ {
		encodeBitmapPage(sec(lay.BitmapStart+pg), &lay, l.tag, pg, nil)
	}
	if err := dev.WriteSectors(1, buf[ss:]); err != nil {
		return nil, fmt.Errorf("format: metadata: %w", err)
	}
	if err := dev.Flush(); err != nil {
		return nil, fmt.Errorf("format: %w", err)
	}
	sb := superRec{
		header: newHeader(magicSuperblock, 0, l.tag), UUID: l.uuid,
		SectorSize: uint32(ss), MaxHosts: uint32(lay.MaxHosts), MaxVolumes: uint32(lay.MaxVolumes),
		AUSize: uint64(lay.AUSize), TotalSectors: uint64(lay.TotalSectors),
		HostLeaseStart: uint64(lay.HostLeaseStart), DirLeaseStart: uint64(lay.DirLeaseStart),
		DirStart: uint64(lay.DirStart), BitmapStart: uint64(lay.BitmapStart), BitmapSectors: uint64(lay.BitmapSectors),
		VolLeaseStart: uint64(lay.VolLeaseStart), LeaseAreaSectors: uint64(lay.LeaseAreaSectors),
		DataStart: uint64(lay.DataStart), DataUnits: uint64(lay.DataUnits), Created: uint64(time.Now().UnixNano()),
	}
	copy(sb.Label[:], o.Label)
	s0 := make([]byte, ss)
	encodeRecord(s0, &sb)
	if err := dev.WriteSectors(0, s0); err != nil {
		return nil, fmt.Errorf("format: superblock: %w", err)
	}
	if err := dev.Flush(); err != nil {
		return nil, fmt.Errorf("format: %w", err)
	}
	return l, nil
}

func (l *LUN) encodeEmptyLeaseArea(sec func(int64) []byte, r resource) {
	base := l.lay.leaseArea(r)
	for slot := 0; slot < 2; slot++ {
		encodeRecord(sec(base+int64(slot)), &leaderRec{header: newHeader(magicLeader, uint32(slot), l.tag), Resource: uint64(r)})
	}
	for id := 1; id <= l.lay.MaxHosts; id++ {
		for slot := 0; slot < 2; slot++ {
			encodeRecord(sec(base+dblockOff(id, slot)), &dblockRec{header: newHeader(magicDblock, dblockIndex(id, slot), l.tag), Resource: uint64(r)})
		}
	}
}

// Open reads and validates the superblock of a formatted LUN.
func Open(dev BlockDevice) (*LUN, error) {
	ss := dev.SectorSize()
	sec := make([]byte, ss)
	if err := dev.ReadSectors(0, sec); err != nil {
		return nil, fmt.Errorf("open LUN: superblock: %w", err)
	}
	at := loc{name: "superblock", lba: 0, ss: ss}
	var sb superRec
	if err := decodeRecord(sec, &sb, magicSuperblock, 0, 0, at); err != nil {
		return nil, fmt.Errorf("open LUN: %w", err)
	}
	if sb.IncompatFlags&^knownIncompatMask != 0 {
		return nil, fmt.Errorf("open LUN: superblock incompatible features %#x: %w", sb.IncompatFlags, ErrUnsupportedVersion)
	}
	tag := le.Uint64(sb.UUID[:8])
	if sb.LUN != tag || tag == 0 {
		return nil, fmt.Errorf("open LUN: %w", at.corrupt("LUN tag %#x does not match UUID", sb.LUN))
	}
	if int(sb.SectorSize) != ss {
		return nil, fmt.Errorf("open LUN: formatted with %d-byte sectors, device has %d: %w", sb.SectorSize, ss, ErrInvalid)
	}
	p := Params{SectorSize: ss, MaxHosts: int(sb.MaxHosts), MaxVolumes: int(sb.MaxVolumes), AUSize: int64(sb.AUSize)}
	lay, err := ComputeLayout(p, int64(sb.TotalSectors))
	if err != nil {
		return nil, fmt.Errorf("open LUN: %w", at.corrupt("parameters do not give a layout: %v", err))
	}
	got := [...]uint64{sb.HostLeaseStart, sb.DirLeaseStart, sb.DirStart, sb.BitmapStart, sb.BitmapSectors, sb.VolLeaseStart, sb.LeaseAreaSectors, sb.DataStart, sb.DataUnits}
	want := [...]int64{lay.HostLeaseStart, lay.DirLeaseStart, lay.DirStart, lay.BitmapStart, lay.BitmapSectors, lay.VolLeaseStart, lay.LeaseAreaSectors, lay.DataStart, lay.DataUnits}
	for i := range got {
		if got[i] != uint64(want[i]) {
			return nil, fmt.Errorf("open LUN: %w", at.corrupt("layout field %d is %d, parameters give %d", i, got[i], want[i]))
		}
	}
	if int64(sb.TotalSectors) > dev.Sectors() {
		return nil, fmt.Errorf("open LUN: formatted for %d sectors, device has only %d: %w", sb.TotalSectors, dev.Sectors(), ErrInvalid)
	}
	return &LUN{dev: dev, lay: lay, uuid: sb.UUID, tag: tag}, nil
}

// Layout returns where the areas of the LUN live.
func (l *LUN) Layout() Layout { return l.lay }

// UUID returns the LUN's identity as hex.
func (l *LUN) UUID() string { return hex.EncodeToString(l.uuid[:]) }

// Device returns the block device the LUN was opened on.
func (l *LUN) Device() BlockDevice { return l.dev }

func (l *LUN) ss() int { return l.lay.SectorSize }

// --- record I/O -----------------------------------------------------------

func (l *LUN) hostLeaseLoc(id int) loc {
	return loc{name: fmt.Sprintf("host lease %d", id), lba: l.lay.hostLeaseLBA(id), ss: l.ss()}
}

func (l *LUN) decodeHostLease(sec []byte, id int) (hostLeaseRec, error) {
	var r hostLeaseRec
	err := decodeRecord(sec, &r, magicHostLease, uint32(id), l.tag, l.hostLeaseLoc(id))
	if err == nil && r.Owner != 0 && r.Owner != uint64(id) {
		err = l.hostLeaseLoc(id).corrupt("owner %d in the sector of host id %d", r.Owner, id)
	}
	return r, err
}

// readHostArea reads every host lease sector in one I/O.
func (l *LUN) readHostArea() ([]byte, error) {
	buf := make([]byte, l.lay.MaxHosts*l.ss())
	if err := l.dev.ReadSectors(l.lay.HostLeaseStart, buf); err != nil {
		return nil, fmt.Errorf("read host lease area: %w", err)
	}
	return buf, nil
}

func (l *LUN) writeHostLease(id int, r *hostLeaseRec) error {
	sec := make([]byte, l.ss())
	r.header = newHeader(magicHostLease, uint32(id), l.tag)
	encodeRecord(sec, r)
	if err := l.dev.WriteSectors(l.lay.hostLeaseLBA(id), sec); err != nil {
		return fmt.Errorf("write host lease %d: %w", id, err)
	}
	return nil
}

func (l *LUN) direntLoc(slot int) loc {
	return loc{name: fmt.Sprintf("directory entry %d", slot), lba: l.lay.direntLBA(slot), ss: l.ss()}
}

func (l *LUN) decodeDirent(sec []byte, slot int) (direntRec, error) {
	var d direntRec
	at := l.direntLoc(slot)
	if err := decodeRecord(sec, &d, magicDirent, uint32(slot), l.tag, at); err != nil {
		return d, err
	}
	return d, l.lay.validateDirent(&d, at)
}

func (l *LUN) writeDirent(slot int, d *direntRec) error {
	sec := make([]byte, l.ss())
	d.header = newHeader(magicDirent, uint32(slot), l.tag)
	encodeRecord(sec, d)
	if err := l.dev.WriteSectors(l.lay.direntLBA(slot), sec); err != nil {
		return fmt.Errorf("write directory entry %d: %w", slot, err)
	}
	return nil
}

// readDirectory reads every directory slot. A corrupt slot is returned as an
// error (the first one) together with the slots that did decode; callers
// that can live with a partial view (check, ls) use both.
func (l *LUN) readDirectory() ([]direntRec, []error, error) {
	buf := make([]byte, l.lay.MaxVolumes*l.ss())
	if err := l.dev.ReadSectors(l.lay.DirStart, buf); err != nil {
		return nil, nil, fmt.Errorf("read directory: %w", err)
	}
	ents := make([]direntRec, l.lay.MaxVolumes)
	errs := make([]error, l.lay.MaxVolumes)
	for s := range ents {
		ents[s], errs[s] = l.decodeDirent(buf[s*l.ss():(s+1)*l.ss()], s)
	}
	return ents, errs, nil
}

func firstErr(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// HostInfo is the on-disk state of one host lease.
type HostInfo struct {
	ID         int
	Owner      int // 0: never used
	Generation uint64
	Timestamp  uint64 // writer's wall clock in ns; 0: released
	Name       string
	IOTimeout  time.Duration
	HostDead   time.Duration
	Err        error // record unreadable
}

// Hosts reads every host lease once. A single read cannot tell a live host
// from a dead one (that takes watching for the host-dead interval, as a
// joined Host does); Timestamp is the holder's wall clock, comparable to
// the reader's only if clocks are synchronized.
func (l *LUN) Hosts() ([]HostInfo, error) {
	area, err := l.readHostArea()
	if err != nil {
		return nil, err
	}
	ss := l.ss()
	out := make([]HostInfo, l.lay.MaxHosts)
	var errs []error
	for id := 1; id <= l.lay.MaxHosts; id++ {
		rec, err := l.decodeHostLease(area[(id-1)*ss:id*ss], id)
		hi := HostInfo{ID: id, Err: err}
		if err == nil {
			hi.Owner, hi.Generation, hi.Timestamp, hi.Name = int(rec.Owner), rec.Generation, rec.Timestamp, cString(rec.Name[:])
			hi.IOTimeout = time.Duration(rec.IOTimeoutMs) * time.Millisecond
			hi.HostDead = time.Duration(rec.HostDeadMs) * time.Millisecond
		} else {
			errs = append(errs, err)
		}
		out[id-1] = hi
	}
	return out, errors.Join(errs...)
}
