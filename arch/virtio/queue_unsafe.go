package virtio

import (
	"sync/atomic"
	"unsafe"
)

// load32 and store32 access the 32-bit word at b[off:] (flags and idx of a ring, which share
// one aligned word) with single atomic operations: the device updates the used index
// concurrently, and the driver's index store must not move before its ring writes.
func load32(b []byte, off int) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&b[off : off+4][0])))
}

func store32(b []byte, off int, v uint32) {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&b[off : off+4][0])), v)
}
