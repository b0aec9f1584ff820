package cluster

import "fmt"

// Limits of the format.
const (
	MaxHostsLimit   = 2000 // as sanlock's default maximum of host ids per lockspace
	MaxVolumesLimit = 65536
	DefaultHosts    = 16 // Hyper-V 2008 R2 cluster size (CLUSTER.md)
	DefaultVolumes  = 64
	DefaultAUSize   = 1 << 20
	MinAUSize       = 4096
)

// Params are chosen at format time and recorded in the superblock.
type Params struct {
	SectorSize int   // 512 or 4096
	MaxHosts   int   // host ids are 1..MaxHosts
	MaxVolumes int   // directory slots
	AUSize     int64 // allocation unit in bytes: power of two, >= MinAUSize and >= sector size
}

// Layout is where everything lives, in sectors. All of it derives from
// Params and the device size (see the diagram in doc.go).
type Layout struct {
	Params
	TotalSectors     int64
	HostLeaseStart   int64 // host id i at HostLeaseStart+i-1
	DirLeaseStart    int64 // lease area of the directory
	LeaseAreaSectors int64 // 2 leader slots + 2 dblock slots per host
	DirStart         int64 // slot s at DirStart+s
	BitmapStart      int64
	BitmapSectors    int64
	VolLeaseStart    int64 // lease area of slot s at VolLeaseStart+s*LeaseAreaSectors
	DataStart        int64 // first sector of allocation unit 0, AU aligned
	DataUnits        int64
}

func (p Params) validate() error {
	if err := validSectorSize(p.SectorSize); err != nil {
		return err
	}
	if p.MaxHosts < 1 || p.MaxHosts > MaxHostsLimit {
		return fmt.Errorf("%w: max hosts %d outside [1,%d]", ErrInvalid, p.MaxHosts, MaxHostsLimit)
	}
	if p.MaxVolumes < 1 || p.MaxVolumes > MaxVolumesLimit {
		return fmt.Errorf("%w: max volumes %d outside [1,%d]", ErrInvalid, p.MaxVolumes, MaxVolumesLimit)
	}
	if p.AUSize < MinAUSize || p.AUSize&(p.AUSize-1) != 0 || p.AUSize < int64(p.SectorSize) {
		return fmt.Errorf("%w: allocation unit %d must be a power of two >= %d and >= the sector size", ErrInvalid, p.AUSize, MinAUSize)
	}
	return nil
}

// ComputeLayout places the areas on a device of totalSectors sectors.
func ComputeLayout(p Params, totalSectors int64) (Layout, error) {
	if err := p.validate(); err != nil {
		return Layout{}, err
	}
	l := Layout{Params: p, TotalSectors: totalSectors}
	ss := int64(p.SectorSize)
	l.HostLeaseStart = 1
	l.LeaseAreaSectors = 2 + 2*int64(p.MaxHosts)
	l.DirLeaseStart = l.HostLeaseStart + int64(p.MaxHosts)
	l.DirStart = l.DirLeaseStart + l.LeaseAreaSectors
	l.BitmapStart = l.DirStart + int64(p.MaxVolumes)
	// The bitmap is sized for every AU the device could hold, a slight
	// over-allocation that keeps the computation non-circular.
	maxUnits := totalSectors * ss / p.AUSize
	l.BitmapSectors = (maxUnits + bitsPerPage(p.SectorSize) - 1) / bitsPerPage(p.SectorSize)
	if l.BitmapSectors == 0 {
		l.BitmapSectors = 1
	}
	l.VolLeaseStart = l.BitmapStart + l.BitmapSectors
	metaEnd := l.VolLeaseStart + int64(p.MaxVolumes)*l.LeaseAreaSectors
	auSectors := p.AUSize / ss
	l.DataStart = (metaEnd + auSectors - 1) / auSectors * auSectors
	if l.DataStart >= totalSectors {
		return Layout{}, fmt.Errorf("%w: device of %d bytes too small for metadata of %d bytes", ErrNoSpace, totalSectors*ss, l.DataStart*ss)
	}
	l.DataUnits = (totalSectors - l.DataStart) / auSectors
	if l.DataUnits == 0 {
		return Layout{}, fmt.Errorf("%w: no room for a single %d-byte allocation unit after %d bytes of metadata", ErrNoSpace, p.AUSize, l.DataStart*ss)
	}
	return l, nil
}

func (l *Layout) hostLeaseLBA(id int) int64 { return l.HostLeaseStart + int64(id) - 1 }
func (l *Layout) direntLBA(slot int) int64  { return l.DirStart + int64(slot) }

// leaseArea returns the first sector of a resource's lease area.
func (l *Layout) leaseArea(r resource) int64 {
	if r == dirResource {
		return l.DirLeaseStart
	}
	return l.VolLeaseStart + int64(r.slot())*l.LeaseAreaSectors
}

// auLBA is the first sector of allocation unit u.
func (l *Layout) auLBA(u uint64) int64 { return l.DataStart + int64(u)*(l.AUSize/int64(l.SectorSize)) }

// resource identifies a lease area: the directory, or a volume slot.
// 0 is invalid.
type resource uint64

const dirResource resource = 1

func volResource(slot int) resource { return resource(slot) + 2 }
func (r resource) slot() int        { return int(r) - 2 }

func (r resource) String() string {
	if r == dirResource {
		return "directory lease"
	}
	return fmt.Sprintf("volume lease %d", r.slot())
}
