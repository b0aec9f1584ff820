package ring0

// Memory system calls over the VMA list (vma.go) and the page tables (paging.go).

const (
	mmapTop      = 0x7F00_0000_0000 // where mmap without a usable hint starts, top-down
	madvDontneed = 4
	madvFree     = 8
	madvRemove   = 9
)

var space vmaList

func pageRound(n uint64) uint64 { return (n + pageSize - 1) &^ (pageSize - 1) }

func sysMmapImpl(addr, length uint64, prot, flags uint32, fd int32, off uint64) uint64 {
	if flags&mapAnonymous == 0 || fd != -1 {
		return errno(eNOSYS) // no files to map on this kernel
	}
	if length == 0 || length > userSpaceHi || addr&(pageSize-1) != 0 && flags&(mapFixed|mapFixedNoReplace) != 0 {
		return errno(eINVAL)
	}
	length = pageRound(length)
	prot &= protRead | protWrite | protExec
	switch {
	case flags&mapFixedNoReplace != 0:
		if !usable(addr, length) || space.overlaps(addr, addr+length) {
			return errno(eEXIST)
		}
	case flags&mapFixed != 0:
		if !usable(addr, length) {
			return errno(eINVAL)
		}
		unmapRange(addr, addr+length) // MAP_FIXED replaces: fresh zero pages
	default:
		if addr == 0 || addr&(pageSize-1) != 0 || !usable(addr, length) || space.overlaps(addr, addr+length) {
			a, ok := space.gap(length, identEnd, mmapTop)
			if !ok {
				return errno(eNOMEM)
			}
			addr = a
		}
	}
	if !space.set(addr, addr+length, prot) {
		return errno(eNOMEM)
	}
	return addr
}

// usable reports whether [addr, addr+length) is in the part of the address space mmap manages.
func usable(addr, length uint64) bool {
	return addr >= identEnd && addr+length > addr && addr+length <= userSpaceHi
}

func sysMunmapImpl(addr, length uint64) uint64 {
	if addr&(pageSize-1) != 0 || length == 0 {
		return errno(eINVAL)
	}
	length = pageRound(length)
	if !usable(addr, length) {
		return errno(eINVAL)
	}
	if !space.remove(addr, addr+length) {
		return errno(eNOMEM)
	}
	unmapRange(addr, addr+length)
	return 0
}

func sysMprotectImpl(addr, length uint64, prot uint32) uint64 {
	if length == 0 && addr&(pageSize-1) == 0 {
		return 0 // Linux: nothing to change
	}
	length = pageRound(length)
	if addr&(pageSize-1) != 0 || !usable(addr, length) {
		return errno(eINVAL)
	}
	if !space.covered(addr, addr+length) {
		return errno(eNOMEM)
	}
	prot &= protRead | protWrite | protExec
	if !space.set(addr, addr+length, prot) {
		return errno(eNOMEM)
	}
	if prot == 0 {
		unmapRange(addr, addr+length) // contents are kept by Linux; the runtime never relies on it
	} else {
		protectRange(addr, addr+length, prot&protWrite != 0)
	}
	return 0
}

func sysMadviseImpl(addr, length uint64, advice int32) uint64 {
	length = pageRound(length)
	if addr&(pageSize-1) != 0 {
		return errno(eINVAL)
	}
	switch advice {
	case madvDontneed, madvFree, madvRemove:
		if usable(addr, length) {
			unmapRange(addr, addr+length) // the pages read as zero again, as Linux promises
		}
	}
	return 0
}
