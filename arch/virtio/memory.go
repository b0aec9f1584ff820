package virtio

import (
	"fmt"

	"github.com/godwit-hv/godwit/arch/ring0"
)

// Memory hands out memory the device can reach by DMA: bytes for the driver and the physical
// address the device uses for them.
type Memory interface {
	Alloc(size int) (buf []byte, phys uint64, err error)
	Free(buf []byte, phys uint64)
}

// HostMemory is physical memory from the ring-0 layer's frame allocator: whole zeroed pages
// outside the Go heap, identity-mapped (the physical address is the virtual one).
type HostMemory struct{}

const pageSize = 4096

// Alloc returns size bytes rounded up to whole pages.
func (HostMemory) Alloc(size int) ([]byte, uint64, error) {
	if size <= 0 {
		return nil, 0, fmt.Errorf("virtio: allocating %d bytes", size)
	}
	n := (size + pageSize - 1) / pageSize
	pa, err := ring0.AllocPages(n)
	if err != nil {
		return nil, 0, fmt.Errorf("virtio: DMA memory: %w", err)
	}
	return ring0.PageBytes(pa, n*pageSize)[:size], pa, nil
}

// Free returns memory from Alloc.
func (HostMemory) Free(buf []byte, phys uint64) {
	ring0.FreePages(phys, (cap(buf)+pageSize-1)/pageSize)
}
