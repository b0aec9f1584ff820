package virtiotest

import (
	"sync/atomic"
	"unsafe"
)

// load32 and store32 access a ring's flags+idx word atomically, as the driver does.
func load32(b []byte) uint32 {
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&b[:4][0])))
}

func store32(b []byte, v uint32) {
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&b[:4][0])), v)
}
