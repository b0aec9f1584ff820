package hv

import (
	"errors"
	"fmt"
)

// Memory is a VM's guest-physical RAM: one block of host memory, mapped at guest-physical
// address 0 by the second-level tables. Host is that memory seen from Godwit (on bare metal it
// is identity-mapped, so HostPhys is also its address); all guest-memory access in Godwit goes
// through Memory's bounds-checked methods.
type Memory struct {
	Host     []byte
	HostPhys uint64 // host-physical address of Host[0]; 0 in user-space tests
}

// ErrOutOfRange is returned for guest-physical accesses beyond RAM.
var ErrOutOfRange = errors.New("guest-physical address outside guest RAM")

// Size returns the RAM size in bytes.
func (m *Memory) Size() uint64 { return uint64(len(m.Host)) }

// Slice returns n bytes of guest memory at gpa.
func (m *Memory) Slice(gpa, n uint64) ([]byte, error) {
	if gpa > m.Size() || n > m.Size()-gpa {
		return nil, fmt.Errorf("%#x+%d: %w", gpa, n, ErrOutOfRange)
	}
	return m.Host[gpa : gpa+n : gpa+n], nil
}

// ReadAt and WriteAt copy to and from guest memory (io.ReaderAt / io.WriterAt semantics,
// except that a short access is an error, not a partial one).
func (m *Memory) ReadAt(p []byte, gpa int64) (int, error) {
	b, err := m.Slice(uint64(gpa), uint64(len(p)))
	if err != nil {
		return 0, err
	}
	return copy(p, b), nil
}

func (m *Memory) WriteAt(p []byte, gpa int64) (int, error) {
	b, err := m.Slice(uint64(gpa), uint64(len(p)))
	if err != nil {
		return 0, err
	}
	return copy(b, p), nil
}
