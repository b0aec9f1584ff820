package vmx

import (
	"unsafe"

	"github.com/godwit-hv/godwit/arch/ring0"
	"github.com/godwit-hv/godwit/ept"
)

// pageAlloc gives the EPT code identity-mapped pages outside the Go heap, which the processor
// walks.
type pageAlloc struct{}

func (pageAlloc) Alloc() (uint64, *[ept.Entries]uint64, error) {
	pa, err := ring0.AllocPages(1)
	if err != nil {
		return 0, nil, err
	}
	return pa, table(pa), nil
}

func (pageAlloc) Table(pa uint64) *[ept.Entries]uint64 { return table(pa) }

func (pageAlloc) Free(pa uint64) { ring0.FreePages(pa, 1) }

func table(pa uint64) *[ept.Entries]uint64 {
	return (*[ept.Entries]uint64)(unsafe.Pointer(&ring0.PageBytes(pa, ept.PageSize4K)[0]))
}
