package ept

// Geometry shared by both formats: 4 levels of 512 eight-byte entries, 4 KiB
// tables, 48-bit guest-physical addresses.
// Intel SDM Vol. 3C, 29.3.2 "EPT Translation Mechanism";
// AMD APM Vol. 2, 5.3 "Long-Mode Page Translation".
const (
	// Entries is the number of entries in one table.
	Entries = 512
	// PageSize4K is the size of a page mapped by a level-1 entry.
	PageSize4K = 1 << 12
	// PageSize2M is the size of a page mapped by a level-2 entry with PS set.
	PageSize2M = 1 << 21
	// PageSize1G is the size of the region one level-3 entry controls.
	PageSize1G = 1 << 30
	// Levels is the page-walk length used for both formats.
	Levels = 4
	// MaxGPA is the first guest-physical address a 4-level walk cannot map.
	MaxGPA = 1 << 48
	// maxPA is the architectural limit on physical addresses (bits 51:0).
	maxPA = 1 << 52

	// addrMask4K selects bits 51:12, the address of a 4 KiB page or table.
	addrMask4K = 0x000F_FFFF_FFFF_F000
	// addrMask2M selects bits 51:21, the address of a 2 MiB page.
	addrMask2M = 0x000F_FFFF_FFE0_0000
)

// NPT entries are ordinary long-mode paging entries.
// AMD APM Vol. 2, 5.4.1 "Field Definitions"; nested use in 15.25 "Nested
// Paging" (guest accesses are user accesses, so U/S must be set at every
// level; NX is honoured when the host's EFER.NXE is set).
const (
	nptP   = 1 << 0  // Present
	nptRW  = 1 << 1  // Read/Write
	nptUS  = 1 << 2  // User/Supervisor
	nptPWT = 1 << 3  // Page-level writethrough
	nptPCD = 1 << 4  // Page-level cache disable
	nptA   = 1 << 5  // Accessed
	nptD   = 1 << 6  // Dirty (leaf entries only)
	nptPS  = 1 << 7  // Page size: level-2 entry maps a 2 MiB page
	nptNX  = 1 << 63 // No execute

	// nptSWWritable is an AVL bit (11:9 are available to software): the
	// page is logically writable but write-protected for dirty logging.
	nptSWWritable = 1 << 11
)

// EPT entries.
// Intel SDM Vol. 3C, 29.3.2 "EPT Translation Mechanism" (tables "Format of
// an EPT Page-Table Entry that Maps a 4-KByte Page" and "...that Maps a
// 2-MByte Page"); 29.3.4 "Accessed and Dirty Flags for EPT"; 29.3.7 "EPT and
// Memory Typing".
const (
	eptR    = 1 << 0 // Read access
	eptW    = 1 << 1 // Write access
	eptX    = 1 << 2 // Execute access
	eptRWX  = eptR | eptW | eptX
	eptMT   = 7 << 3 // EPT memory type, bits 5:3 (leaf entries only)
	eptIPAT = 1 << 6 // Ignore PAT memory type (leaf entries only)
	eptPS   = 1 << 7 // Page size: level-2 entry maps a 2 MiB page
	eptA    = 1 << 8 // Accessed (when EPTP bit 6 enables A/D)
	eptD    = 1 << 9 // Dirty, leaf entries only (when EPTP bit 6 enables A/D)

	eptMTShift = 3

	// eptSWWritable is bit 11, ignored by the processor in every EPT entry:
	// the page is logically writable but write-protected for dirty logging.
	eptSWWritable = 1 << 11
)

// EPTP fields.
// Intel SDM Vol. 3C, 25.6.11 "Extended-Page-Table Pointer (EPTP)".
const (
	eptpMTWB        = 6      // bits 2:0: paging-structure memory type write-back
	eptpWalkLength4 = 3 << 3 // bits 5:3: page-walk length minus 1
	eptpEnableAD    = 1 << 6 // bit 6: enable accessed and dirty flags
)

// MemType is a memory type in the encoding of the EPT memory-type field and
// of the MTRRs. Intel SDM Vol. 3A, 13.3 "Methods of Caching Available"
// (table "Memory Types and Their Properties"); 29.3.7 "EPT and Memory Typing".
type MemType uint8

// Memory types.
const (
	UC MemType = 0 // uncacheable
	WC MemType = 1 // write combining
	WT MemType = 4 // write-through
	WP MemType = 5 // write-protected
	WB MemType = 6 // write-back
)

func (m MemType) String() string {
	switch m {
	case UC:
		return "UC"
	case WC:
		return "WC"
	case WT:
		return "WT"
	case WP:
		return "WP"
	case WB:
		return "WB"
	}
	return "MemType(?)"
}

// Perm is a set of access permissions for guest accesses to a mapping.
type Perm uint8

// Permissions.
const (
	Read Perm = 1 << iota
	Write
	Exec

	RW  = Read | Write
	RX  = Read | Exec
	RWX = Read | Write | Exec
)

func (p Perm) String() string {
	b := []byte("---")
	if p&Read != 0 {
		b[0] = 'r'
	}
	if p&Write != 0 {
		b[1] = 'w'
	}
	if p&Exec != 0 {
		b[2] = 'x'
	}
	return string(b)
}
