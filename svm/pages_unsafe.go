package svm

import (
	"unsafe"

	"github.com/godwit-hv/godwit/arch/ring0"
	"github.com/godwit-hv/godwit/ept"
)

// Pointer work on the identity-mapped pages from ring0.AllocPages: the VMCBs, run blocks and
// nested page tables, which live outside the Go heap at their physical addresses.

func physPtr(pa uint64) unsafe.Pointer { return unsafe.Add(unsafe.Pointer(nil), uintptr(pa)) }

func vmcbAt(pa uint64) *VMCB { return (*VMCB)(physPtr(pa)) }

func runBlockAt(pa uint64) *runBlock { return (*runBlock)(physPtr(pa)) }

// pageAllocator is the ept.Allocator over ring0.AllocPages.
type pageAllocator struct{}

var _ ept.Allocator = pageAllocator{}

func (pageAllocator) Alloc() (uint64, *[ept.Entries]uint64, error) {
	pa, err := ring0.AllocPages(1)
	if err != nil {
		return 0, nil, err
	}
	return pa, (*[ept.Entries]uint64)(physPtr(pa)), nil
}

func (pageAllocator) Table(pa uint64) *[ept.Entries]uint64 {
	return (*[ept.Entries]uint64)(physPtr(pa))
}

func (pageAllocator) Free(pa uint64) { ring0.FreePages(pa, 1) }
