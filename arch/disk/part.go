package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

// Partition is one entry of a partition table, in bytes.
type Partition struct {
	Index int // 1-based: the MBR slot (logical partitions from 5) or the GPT entry number
	Start int64
	Size  int64
	Type  string // GPT partition type GUID, or the MBR type as "0x83"
	Label string // GPT partition name
}

// Partition schemes.
const (
	SchemeNone = ""
	SchemeMBR  = "mbr"
	SchemeGPT  = "gpt"
)

// ErrCorrupt marks a partition table that cannot be trusted.
var ErrCorrupt = errors.New("disk: corrupt partition table")

// Master Boot Record. UEFI 2.9, 5.2.1 "Legacy Master Boot Record (MBR)", Table 5-1/5-2: four
// 16-byte partition records at 446, signature 0xAA55 at 510; a record holds OSType at 4,
// StartingLBA at 8 and SizeInLBA at 12 (both le32).
const (
	mbrPartOffset   = 446
	mbrPartSize     = 16
	mbrSigOffset    = 510
	mbrSig0         = 0x55
	mbrSig1         = 0xAA
	mbrRecType      = 4
	mbrRecStart     = 8
	mbrRecSectors   = 12
	mbrTypeGPTProt  = 0xEE // UEFI 2.9, 5.2.3 "Protective MBR"
	mbrTypeExtCHS   = 0x05 // extended partition (CHS); containers of logical partitions
	mbrTypeExtLBA   = 0x0F
	mbrTypeExtLinux = 0x85
	mbrMinSector    = 512
	maxLogical      = 128 // bound on the EBR chain
	firstLogical    = 5
)

// GUID Partition Table. UEFI 2.9, 5.3.2 "GPT Header", Table 5-5, and 5.3.3 "GPT Partition
// Entry Array", Table 5-6.
const (
	gptSignature      = "EFI PART"
	gptHdrSize        = 12
	gptHdrCRC         = 16
	gptMyLBA          = 24
	gptAlternateLBA   = 32
	gptFirstUsable    = 40
	gptLastUsable     = 48
	gptEntryLBA       = 72
	gptNumEntries     = 80
	gptEntrySize      = 84
	gptEntriesCRC     = 88
	gptMinHeaderSize  = 92
	gptMinEntrySize   = 128
	gptMaxEntryBytes  = 4 << 20 // refuse absurd arrays before reading them
	gptEntType        = 0
	gptEntFirst       = 32
	gptEntLast        = 40
	gptEntName        = 56
	gptEntNameLen     = 72
	gptPrimaryLBA     = 1
	gptRevisionOffset = 8
)

// ReadPartitions reads the partition table of a disk of size bytes with sectorSize-byte
// logical blocks. A disk without an MBR signature has none (SchemeNone, no error). Entries
// that are bad are left out and reported in err, with the good ones still returned.
func ReadPartitions(r io.ReaderAt, size int64, sectorSize int) (string, []Partition, error) {
	if sectorSize < mbrMinSector || sectorSize&(sectorSize-1) != 0 {
		return SchemeNone, nil, fmt.Errorf("sector size %d: %w", sectorSize, ErrCorrupt)
	}
	ss := int64(sectorSize)
	if size < 2*ss {
		return SchemeNone, nil, nil
	}
	mbr := make([]byte, ss)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return SchemeNone, nil, fmt.Errorf("reading the MBR: %w", err)
	}
	if mbr[mbrSigOffset] != mbrSig0 || mbr[mbrSigOffset+1] != mbrSig1 {
		return SchemeNone, nil, nil
	}
	for i := 0; i < 4; i++ {
		if mbr[mbrPartOffset+i*mbrPartSize+mbrRecType] == mbrTypeGPTProt {
			parts, err := readGPT(r, size, ss)
			return SchemeGPT, parts, err
		}
	}
	parts, err := readMBR(r, mbr, size, ss)
	return SchemeMBR, parts, err
}

func isExtended(t byte) bool { return t == mbrTypeExtCHS || t == mbrTypeExtLBA || t == mbrTypeExtLinux }

func readMBR(r io.ReaderAt, mbr []byte, size, ss int64) ([]Partition, error) {
	sectors := size / ss
	var parts []Partition
	var errs []error
	for i := 0; i < 4; i++ {
		rec := mbr[mbrPartOffset+i*mbrPartSize:]
		typ := rec[mbrRecType]
		start := int64(binary.LittleEndian.Uint32(rec[mbrRecStart:]))
		n := int64(binary.LittleEndian.Uint32(rec[mbrRecSectors:]))
		if typ == 0 || n == 0 {
			continue
		}
		if start == 0 || start+n > sectors {
			errs = append(errs, fmt.Errorf("MBR partition %d: sectors %d+%d outside the disk's %d: %w", i+1, start, n, sectors, ErrCorrupt))
			continue
		}
		if isExtended(typ) {
			logical, err := readEBRs(r, start, n, ss)
			parts = append(parts, logical...)
			if err != nil {
				errs = append(errs, err)
			}
			continue
		}
		parts = append(parts, Partition{Index: i + 1, Start: start * ss, Size: n * ss, Type: fmt.Sprintf("%#02x", typ)})
	}
	return sortParts(parts), errors.Join(errs...)
}

// readEBRs follows the chain of extended boot records in the extended partition [ext,
// ext+extN) sectors. Each EBR's first record is a logical partition relative to that EBR, its
// second the next EBR relative to the extended partition's start.
func readEBRs(r io.ReaderAt, ext, extN, ss int64) ([]Partition, error) {
	var parts []Partition
	seen := map[int64]bool{}
	ebr := make([]byte, ss)
	at := ext
	for k := 0; ; k++ {
		if k == maxLogical || seen[at] {
			return parts, fmt.Errorf("extended partition: EBR chain loops or exceeds %d entries: %w", maxLogical, ErrCorrupt)
		}
		seen[at] = true
		if at < ext || at >= ext+extN {
			return parts, fmt.Errorf("extended partition: EBR at sector %d outside it: %w", at, ErrCorrupt)
		}
		if _, err := r.ReadAt(ebr, at*ss); err != nil {
			return parts, fmt.Errorf("reading the EBR at sector %d: %w", at, err)
		}
		if ebr[mbrSigOffset] != mbrSig0 || ebr[mbrSigOffset+1] != mbrSig1 {
			return parts, fmt.Errorf("EBR at sector %d has no signature: %w", at, ErrCorrupt)
		}
		rec := ebr[mbrPartOffset:]
		typ := rec[mbrRecType]
		start := at + int64(binary.LittleEndian.Uint32(rec[mbrRecStart:]))
		n := int64(binary.LittleEndian.Uint32(rec[mbrRecSectors:]))
		if typ != 0 && n != 0 {
			if start <= at || start+n > ext+extN {
				return parts, fmt.Errorf("logical partition %d: sectors %d+%d outside the extended partition: %w",
					firstLogical+len(parts), start, n, ErrCorrupt)
			}
			parts = append(parts, Partition{Index: firstLogical + len(parts), Start: start * ss, Size: n * ss, Type: fmt.Sprintf("%#02x", typ)})
		}
		next := rec[mbrPartSize:]
		if next[mbrRecType] == 0 || binary.LittleEndian.Uint32(next[mbrRecSectors:]) == 0 {
			return parts, nil
		}
		at = ext + int64(binary.LittleEndian.Uint32(next[mbrRecStart:]))
	}
}

func sortParts(p []Partition) []Partition {
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && p[j].Index < p[j-1].Index; j-- {
			p[j], p[j-1] = p[j-1], p[j]
		}
	}
	return p
}

type gptHeader struct {
	myLBA, altLBA, first, last, entryLBA uint64
	numEntries, entrySize, entriesCRC    uint32
}

// parseGPTHeader validates the header in sector lba.
func parseGPTHeader(b []byte, lba uint64) (gptHeader, error) {
	if string(b[:8]) != gptSignature {
		return gptHeader{}, fmt.Errorf("GPT header at LBA %d: no signature: %w", lba, ErrCorrupt)
	}
	hs := binary.LittleEndian.Uint32(b[gptHdrSize:])
	if hs < gptMinHeaderSize || int(hs) > len(b) {
		return gptHeader{}, fmt.Errorf("GPT header at LBA %d: HeaderSize %d: %w", lba, hs, ErrCorrupt)
	}
	h := make([]byte, hs)
	copy(h, b)
	want := binary.LittleEndian.Uint32(h[gptHdrCRC:])
	clear(h[gptHdrCRC : gptHdrCRC+4])
	if got := crc32.ChecksumIEEE(h); got != want {
		return gptHeader{}, fmt.Errorf("GPT header at LBA %d: CRC32 %#08x, header says %#08x: %w", lba, got, want, ErrCorrupt)
	}
	g := gptHeader{
		myLBA: binary.LittleEndian.Uint64(b[gptMyLBA:]), altLBA: binary.LittleEndian.Uint64(b[gptAlternateLBA:]),
		first: binary.LittleEndian.Uint64(b[gptFirstUsable:]), last: binary.LittleEndian.Uint64(b[gptLastUsable:]),
		entryLBA:   binary.LittleEndian.Uint64(b[gptEntryLBA:]),
		numEntries: binary.LittleEndian.Uint32(b[gptNumEntries:]), entrySize: binary.LittleEndian.Uint32(b[gptEntrySize:]),
		entriesCRC: binary.LittleEndian.Uint32(b[gptEntriesCRC:]),
	}
	if g.myLBA != lba {
		return g, fmt.Errorf("GPT header at LBA %d says MyLBA %d: %w", lba, g.myLBA, ErrCorrupt)
	}
	return g, nil
}

func readGPT(r io.ReaderAt, size, ss int64) ([]Partition, error) {
	sectors := uint64(size / ss)
	b := make([]byte, ss)
	if _, err := r.ReadAt(b, gptPrimaryLBA*ss); err != nil {
		return nil, fmt.Errorf("reading the GPT header: %w", err)
	}
	h, perr := parseGPTHeader(b, gptPrimaryLBA)
	var parts []Partition
	if perr == nil {
		var err error
		if parts, err = readGPTEntries(r, h, sectors, ss); err == nil || parts != nil {
			return parts, err
		}
		perr = err
	}
	// The primary is unusable: try the backup header in the last sector (UEFI 2.9, 5.3.2).
	last := sectors - 1
	if _, err := r.ReadAt(b, int64(last)*ss); err != nil {
		return nil, fmt.Errorf("primary: %w; reading the backup GPT header: %w", perr, err)
	}
	bh, berr := parseGPTHeader(b, last)
	if berr != nil {
		return nil, fmt.Errorf("primary: %w; backup: %w", perr, berr)
	}
	parts, err := readGPTEntries(r, bh, sectors, ss)
	if err != nil && parts == nil {
		return nil, fmt.Errorf("primary: %w; backup: %w", perr, err)
	}
	return parts, errors.Join(fmt.Errorf("primary GPT unusable, using the backup: %w", perr), err)
}

// readGPTEntries reads and checks the partition entry array of h. A bad array (nil parts) is
// an error; bad single entries are left out and reported with the good ones returned.
func readGPTEntries(r io.ReaderAt, h gptHeader, sectors uint64, ss int64) ([]Partition, error) {
	if h.first > h.last || h.last >= sectors {
		return nil, fmt.Errorf("GPT usable LBAs %d-%d on a disk of %d sectors: %w", h.first, h.last, sectors, ErrCorrupt)
	}
	if h.entrySize < gptMinEntrySize || h.entrySize%8 != 0 {
		return nil, fmt.Errorf("GPT entry size %d: %w", h.entrySize, ErrCorrupt)
	}
	total := uint64(h.numEntries) * uint64(h.entrySize)
	if total == 0 || total > gptMaxEntryBytes {
		return nil, fmt.Errorf("GPT entry array of %d x %d bytes: %w", h.numEntries, h.entrySize, ErrCorrupt)
	}
	if h.entryLBA < 2 || h.entryLBA >= sectors || (total+uint64(ss)-1)/uint64(ss) > sectors-h.entryLBA {
		return nil, fmt.Errorf("GPT entry array at LBA %d (%d bytes) outside the disk: %w", h.entryLBA, total, ErrCorrupt)
	}
	arr := make([]byte, total)
	if _, err := r.ReadAt(arr, int64(h.entryLBA)*ss); err != nil {
		return nil, fmt.Errorf("reading the GPT entry array: %w", err)
	}
	if got := crc32.ChecksumIEEE(arr); got != h.entriesCRC {
		return nil, fmt.Errorf("GPT entry array CRC32 %#08x, header says %#08x: %w", got, h.entriesCRC, ErrCorrupt)
	}
	var parts []Partition
	var errs []error
	for i := uint32(0); i < h.numEntries; i++ {
		e := arr[uint64(i)*uint64(h.entrySize):]
		typ := e[gptEntType : gptEntType+16]
		if allZero(typ) {
			continue
		}
		first := binary.LittleEndian.Uint64(e[gptEntFirst:])
		last := binary.LittleEndian.Uint64(e[gptEntLast:])
		if first > last || first < h.first || last > h.last {
			errs = append(errs, fmt.Errorf("GPT partition %d: LBAs %d-%d outside the usable %d-%d: %w", i+1, first, last, h.first, h.last, ErrCorrupt))
			continue
		}
		parts = append(parts, Partition{
			Index: int(i) + 1, Start: int64(first) * ss, Size: int64(last-first+1) * ss,
			Type: guidString(typ), Label: utf16Name(e[gptEntName : gptEntName+gptEntNameLen]),
		})
	}
	if parts == nil {
		parts = []Partition{}
	}
	return parts, errors.Join(errs...)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// guidString formats a GUID stored in the mixed-endian EFI layout (UEFI 2.9, Appendix A
// "GUID and Time Formats").
func guidString(b []byte) string {
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X", binary.LittleEndian.Uint32(b[0:]), binary.LittleEndian.Uint16(b[4:]),
		binary.LittleEndian.Uint16(b[6:]), b[8:10], b[10:16])
}

// utf16Name decodes a NUL-terminated UTF-16LE name.
func utf16Name(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}
