package boot

import "unsafe"

// Mem is a bounds-checked, read-only window onto memory: addresses [0, Limit) map to
// Base+address. On bare metal Base is nil (physical memory is identity-mapped); tests point Base
// at a byte slice. It allocates nothing, so the ring-0 layer can use it before the Go runtime runs.
type Mem struct {
	Base  unsafe.Pointer
	Limit uint64
}

// MemOf returns a Mem over b, for tests and for parsing copies.
func MemOf(b []byte) Mem {
	if len(b) == 0 {
		return Mem{}
	}
	return Mem{Base: unsafe.Pointer(&b[0]), Limit: uint64(len(b))}
}

// Ok reports whether [at, at+n) lies inside the window.
func (m Mem) Ok(at, n uint64) bool { return at <= m.Limit && n <= m.Limit-at }

// U8 reads a byte; out-of-range reads return 0.
func (m Mem) U8(at uint64) uint8 {
	if !m.Ok(at, 1) {
		return 0
	}
	return *(*uint8)(unsafe.Add(m.Base, at))
}

// U32 reads a little-endian 32-bit value; out-of-range reads return 0.
func (m Mem) U32(at uint64) uint32 {
	if !m.Ok(at, 4) {
		return 0
	}
	p := unsafe.Add(m.Base, at)
	return uint32(*(*uint8)(p)) | uint32(*(*uint8)(unsafe.Add(p, 1)))<<8 |
		uint32(*(*uint8)(unsafe.Add(p, 2)))<<16 | uint32(*(*uint8)(unsafe.Add(p, 3)))<<24
}

// U64 reads a little-endian 64-bit value; out-of-range reads return 0.
func (m Mem) U64(at uint64) uint64 {
	if !m.Ok(at, 8) {
		return 0
	}
	return uint64(m.U32(at)) | uint64(m.U32(at+4))<<32
}

// CString copies the NUL-terminated string at at into dst and returns its length, truncated
// to len(dst).
func (m Mem) CString(at uint64, dst []byte) int {
	n := 0
	for n < len(dst) && m.Ok(at+uint64(n), 1) {
		c := m.U8(at + uint64(n))
		if c == 0 {
			break
		}
		dst[n] = c
		n++
	}
	return n
}
