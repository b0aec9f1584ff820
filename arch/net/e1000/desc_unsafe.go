package e1000

import (
	"sync/atomic"
	"unsafe"
)

// load32 and store32 access the aligned 32-bit word at b[off:] of a descriptor ring with
// single atomic operations: the device writes status bytes back concurrently, and the
// driver's reads of a descriptor must follow its check of DD.
func load32(b []byte, off int) uint32 {
	w := b[off : off+4 : off+4] // bounds check without a plain read of the bytes
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(unsafe.SliceData(w))))
}

func store32(b []byte, off int, v uint32) {
	w := b[off : off+4 : off+4]
	atomic.StoreUint32((*uint32)(unsafe.Pointer(unsafe.SliceData(w))), v)
}
