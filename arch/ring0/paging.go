package ring0

import "github.com/godwit-hv/godwit/boot"

// The kernel's page tables: physical memory identity-mapped with 2 MiB pages (the first 2 MiB
// with 4 KiB pages and page 0 absent, so nil dereferences fault), and the Go runtime's mmap
// regions above, backed with 4 KiB pages on demand. Tables come from the frame allocator.

// Page-table entry bits. Intel SDM Vol. 3A, 4.5 "4-Level Paging and 5-Level Paging",
// Table 4-15 .. 4-20.
const (
	ptePresent  = 1 << 0
	pteWritable = 1 << 1
	ptePWT      = 1 << 3
	ptePCD      = 1 << 4
	pteHuge     = 1 << 7 // PS: 2 MiB in a PD entry
	pteGlobal   = 1 << 8
	pteNX       = 1 << 63
	pteAddr     = 0x000F_FFFF_FFFF_F000

	hugeSize = 2 << 20
)

var (
	pml4       uint64 // physical address of the kernel PML4
	identEnd   uint64 // identity map covers [0, identEnd)
	nxEnabled  bool
	mappedPage uint64 // pages backed for the runtime's mmap regions
)

func ptIndex(va uint64, level uint) uint64 { return (va >> (12 + 9*level)) & 511 }

// buildKernelTables creates the identity map of [0, end) and returns false if out of frames.
func buildKernelTables(end uint64) bool {
	var ok bool
	if pml4, ok = frames.alloc(); !ok {
		return false
	}
	frames.ptFrames++
	pdpt, ok := frames.alloc()
	if !ok {
		return false
	}
	frames.ptFrames++
	physTable(pml4)[0] = pdpt | ptePresent | pteWritable
	end = (end + (1 << 30) - 1) &^ ((1 << 30) - 1)
	if end > 512<<30 {
		end = 512 << 30
	}
	identEnd = end
	for gib := uint64(0); gib < end>>30; gib++ {
		pd, ok := frames.alloc()
		if !ok {
			return false
		}
		frames.ptFrames++
		physTable(pdpt)[gib] = pd | ptePresent | pteWritable
		for i := uint64(0); i < 512; i++ {
			pa := gib<<30 | i<<21
			e := pa | ptePresent | pteWritable | pteHuge
			if pa >= 0xC000_0000 && pa < 1<<32 {
				// The PCI/APIC MMIO window: uncached. Intel SDM Vol. 3A, 12.12.3 "Selecting a
				// Memory Type from the PAT" (PCD|PWT select UC- with the default PAT).
				e |= ptePCD | ptePWT
			}
			physTable(pd)[i] = e
		}
	}
	// First 2 MiB with 4 KiB pages, page 0 left out.
	pt, ok := frames.alloc()
	if !ok {
		return false
	}
	frames.ptFrames++
	for i := uint64(1); i < 512; i++ {
		physTable(pt)[i] = i<<12 | ptePresent | pteWritable
	}
	pd0 := physTable(pdpt)[0] & pteAddr
	physTable(pd0)[0] = pt | ptePresent | pteWritable
	return true
}

// walk returns the address of the 4 KiB entry for va, creating tables when create is set.
// It returns 0 when a table is absent (and create is false), when frames run out, or when va
// lies in a 2 MiB mapping.
func walk(va uint64, create bool) uint64 {
	table := pml4
	for level := uint(3); level > 0; level-- {
		ep := table + ptIndex(va, level)*8
		e := *physU64(ep)
		if e&ptePresent == 0 {
			if !create {
				return 0
			}
			t, ok := frames.alloc()
			if !ok {
				return 0
			}
			frames.ptFrames++
			e = t | ptePresent | pteWritable
			*physU64(ep) = e
		} else if e&pteHuge != 0 {
			return 0
		}
		table = e & pteAddr
	}
	return table + ptIndex(va, 0)*8
}

// mapFresh backs the page at va with a zeroed frame.
func mapFresh(va uint64, writable bool) bool {
	ep := walk(va, true)
	if ep == 0 {
		return false
	}
	if *physU64(ep)&ptePresent != 0 {
		return true
	}
	pa, ok := frames.alloc()
	if !ok {
		return false
	}
	e := pa | ptePresent
	if writable {
		e |= pteWritable
	}
	*physU64(ep) = e
	mappedPage++
	return true
}

// unmapRange frees the frames backing [start, end), skipping absent tables quickly.
func unmapRange(start, end uint64) {
	va := start &^ (pageSize - 1)
	for va < end {
		table := pml4
		skipped := false
		for level := uint(3); level > 0; level-- {
			e := physTable(table)[ptIndex(va, level)]
			if e&ptePresent == 0 || e&pteHuge != 0 {
				span := uint64(1) << (12 + 9*level)
				va = (va + span) &^ (span - 1)
				skipped = true
				break
			}
			table = e & pteAddr
		}
		if skipped {
			continue
		}
		ep := &physTable(table)[ptIndex(va, 0)]
		if *ep&ptePresent != 0 {
			frames.release(*ep & pteAddr)
			*ep = 0
			mappedPage--
			invlpg(uintptr(va))
		}
		va += pageSize
	}
}

// protectRange sets or clears write access on the present pages of [start, end).
func protectRange(start, end uint64, writable bool) {
	for va := start &^ (pageSize - 1); va < end; va += pageSize {
		ep := walk(va, false)
		if ep == 0 || *physU64(ep)&ptePresent == 0 {
			continue
		}
		if writable {
			*physU64(ep) |= pteWritable
		} else {
			*physU64(ep) &^= pteWritable
		}
		invlpg(uintptr(va))
	}
}

// present reports whether va is mapped, and writable.
func present(va uint64) (ok, writable bool) {
	if va < identEnd {
		return va >= pageSize, true
	}
	ep := walk(va, false)
	if ep == 0 {
		return false, false
	}
	e := *physU64(ep)
	return e&ptePresent != 0, e&pteWritable != 0
}

// protMMIO marks the address-space regions MapMMIO took above the identity map, so mmap never
// hands them out.
const protMMIO = protReserved | protRead | protWrite

// mmioWindowLo..mmioWindowHi is the part of the identity map that buildKernelTables made
// uncached.
const (
	mmioWindowLo = 0xC000_0000
	mmioWindowHi = 1 << 32
)

// pdEntry returns the address of the page-directory entry (2 MiB granularity) for va, creating
// the PDPT and PD when absent; 0 if frames ran out or a 1 GiB page covers va.
func pdEntry(va uint64) uint64 {
	table := pml4
	for level := uint(3); level > 1; level-- {
		ep := table + ptIndex(va, level)*8
		e := *physU64(ep)
		if e&ptePresent == 0 {
			t, ok := frames.alloc()
			if !ok {
				return 0
			}
			frames.ptFrames++
			e = t | ptePresent | pteWritable
			*physU64(ep) = e
		} else if e&pteHuge != 0 {
			return 0
		}
		table = e & pteAddr
	}
	return table + ptIndex(va, 1)*8
}

// ramOverlaps reports whether the loader's memory map has usable RAM in [start, end).
func ramOverlaps(start, end uint64) bool {
	for i := 0; i < bootInfo.NMem; i++ {
		r := bootInfo.Mem[i]
		if r.Type == boot.MemAvailable && r.Base < end && start < r.End() {
			return true
		}
	}
	return false
}

// mapMMIO makes [pa, pa+size) accessible uncached at VA = PA, in 2 MiB pages: parts in the
// uncached window are already; identity-mapped parts elsewhere are switched to uncached if no
// RAM shares their 2 MiB page; parts above the identity map get new uncached 2 MiB pages and an
// mmap reservation. Intel SDM Vol. 3A, 12.12.3 "Selecting a Memory Type from the PAT".
func mapMMIO(pa, size uint64) uint64 {
	end := pa + size
	if size == 0 || end < pa || end > userSpaceHi {
		return errno(eINVAL)
	}
	start := pa &^ (hugeSize - 1)
	end = (end + hugeSize - 1) &^ (hugeSize - 1)
	// Check everything before changing anything.
	for a := start; a < end; a += hugeSize {
		switch {
		case a >= mmioWindowLo && a < mmioWindowHi:
		case a < identEnd:
			if a < hugeSize || ramOverlaps(a, a+hugeSize) {
				return errno(eINVAL)
			}
		default:
			if v, ok := space.find(a); ok && v.prot == protMMIO {
				continue
			}
			if space.overlaps(a, a+hugeSize) {
				return errno(eEXIST)
			}
		}
	}
	flags := uint64(ptePresent | pteWritable | pteHuge | ptePCD | ptePWT)
	if nxEnabled {
		flags |= pteNX
	}
	for a := start; a < end; a += hugeSize {
		if a >= mmioWindowLo && a < mmioWindowHi {
			continue
		}
		ep := pdEntry(a)
		if ep == 0 {
			return errno(eNOMEM)
		}
		*physU64(ep) = a | flags
		invlpg(uintptr(a))
	}
	if end > identEnd && !space.set(max(start, identEnd), end, protMMIO) {
		return errno(eNOMEM)
	}
	return 0
}
