package virtiotest

import (
	"sync/atomic"
	"unsafe"
)

// load32 and store32 access a ring's flags+idx word atomically, as the driver does.
func load32(b []byte) uint32 {
	_ = b[3]
	return atomic.LoadUint32((*uint32)(unsafe.Pointer(&b[0])))
}

func store32(b []byte, v uint32) {
	_ = b[3]
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&b[0])), v)
}
