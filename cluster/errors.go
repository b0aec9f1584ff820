package cluster

import (
	"errors"
	"fmt"
)

// Sentinel errors callers branch on with errors.Is. Every error returned by
// this package wraps one of these (or an I/O error from the BlockDevice) with
// context naming the host, volume or record involved.
var (
	// ErrCorrupt: an on-disk record failed validation (checksum, magic,
	// version, index or LUN tag). The concrete error is a *CorruptError that
	// names the record and its location.
	ErrCorrupt = errors.New("corrupt on-disk record")
	// ErrUnsupportedVersion: a record's version is outside the compatibility
	// window, or the superblock announces incompatible features.
	ErrUnsupportedVersion = errors.New("unsupported on-disk version")
	// ErrNotOwner: the host does not (or no longer) hold the volume's lease.
	ErrNotOwner = errors.New("host does not own the volume lease")
	// ErrFenced: the host missed its host-lease renewal deadline; it must not
	// write to any shared volume until it rejoins with a new generation.
	ErrFenced = errors.New("host is fenced")
	// ErrLeaseHeld: the lease is owned by a host that is alive, or whose
	// liveness is not yet known; retry later.
	ErrLeaseHeld = errors.New("lease held by another host")
	// ErrVersionMismatch: acquire-with-version found a lease version other
	// than the expected one (someone acquired the lease in between).
	ErrVersionMismatch = errors.New("lease version mismatch")
	// ErrHostIDInUse: another host holds (or is joining with) the host id.
	ErrHostIDInUse = errors.New("host id in use")
	// ErrNotFound: no volume of that name.
	ErrNotFound = errors.New("volume not found")
	// ErrExists: a volume of that name already exists.
	ErrExists = errors.New("volume already exists")
	// ErrNoSpace: not enough free allocation units, extents or directory slots.
	ErrNoSpace = errors.New("no space on LUN")
	// ErrInvalid: a bad argument (name, size, alignment, host id).
	ErrInvalid = errors.New("invalid argument")
	// ErrBallotAborted: a Disk Paxos ballot saw a higher ballot or a newer
	// lease version and gave up; the operation may be retried.
	ErrBallotAborted = errors.New("paxos ballot aborted")
	// ErrClosed: the host has left the lockspace.
	ErrClosed = errors.New("host has left")
)

// CorruptError describes a record that failed validation. It matches
// ErrCorrupt with errors.Is.
type CorruptError struct {
	Record string // e.g. "superblock", "host lease 3", "volume lease 2 dblock host 5 slot 1"
	LBA    int64  // sector holding the record
	Offset int64  // byte offset of that sector on the LUN
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("corrupt %s at sector %d (byte offset %d): %s", e.Record, e.LBA, e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }
