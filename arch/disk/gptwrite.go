package disk

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

// GPT layout constants for writing. UEFI 2.9, 5.3 "GUID Partition Table (GPT) Disk Layout".
const (
	gptDiskGUID        = 56 // DiskGUID in the header, Table 5-5
	gptEntUniqueGUID   = 16 // UniquePartitionGUID in an entry, Table 5-6
	gptRevision1       = 0x00010000
	gptDefaultCount    = 128
	gptWriteHdrSize    = 92
	mbrProtStatusOff   = 0
	guidVersion4       = 0x4000 // RFC 4122, 4.1.3: version 4 in the top nibble
	guidVariantRFC4122 = 0x80   // RFC 4122, 4.1.1: variant bits 10
)

// TypeLinuxData is the GPT type GUID of Linux filesystem data.
const TypeLinuxData = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"

// FormatGPT writes a protective MBR, primary and backup GPT headers and entry arrays
// describing parts (Start and Size in bytes, sector aligned; Type a GUID string, default
// TypeLinuxData; Label up to 36 UTF-16 units) on a disk of size bytes. Partition i of parts
// becomes entry i+1. It is how tests and tools make partitioned images.
func FormatGPT(w io.WriterAt, size int64, sectorSize int, parts []Partition) error {
	ss := int64(sectorSize)
	if sectorSize < mbrMinSector || sectorSize&(sectorSize-1) != 0 || size%ss != 0 {
		return fmt.Errorf("disk: FormatGPT: size %d, sector size %d", size, sectorSize)
	}
	sectors := uint64(size / ss)
	arrayBytes := uint64(gptDefaultCount * gptMinEntrySize)
	arraySectors := (arrayBytes + uint64(ss) - 1) / uint64(ss)
	first, last := 2+arraySectors, sectors-2-arraySectors
	if sectors < 2*arraySectors+4 || len(parts) > gptDefaultCount {
		return fmt.Errorf("disk: FormatGPT: %d sectors too small or %d partitions too many", sectors, len(parts))
	}
	arr := make([]byte, arrayBytes)
	for i, p := range parts {
		if p.Start%ss != 0 || p.Size%ss != 0 || p.Size <= 0 {
			return fmt.Errorf("disk: FormatGPT: partition %d not sector aligned", i+1)
		}
		s, e := uint64(p.Start/ss), uint64((p.Start+p.Size)/ss)-1
		if s < first || e > last {
			return fmt.Errorf("disk: FormatGPT: partition %d (LBAs %d-%d) outside usable %d-%d", i+1, s, e, first, last)
		}
		typ := p.Type
		if typ == "" {
			typ = TypeLinuxData
		}
		tg, err := parseGUID(typ)
		if err != nil {
			return err
		}
		name := utf16.Encode([]rune(p.Label))
		if len(name) > gptEntNameLen/2 {
			return fmt.Errorf("disk: FormatGPT: partition %d name %q longer than 36 UTF-16 units", i+1, p.Label)
		}
		e0 := arr[i*gptMinEntrySize:]
		copy(e0[gptEntType:], tg)
		// A GUID derived from the disk size, slot and label, so images are reproducible, with
		// the version-4 and RFC 4122 variant bits set (RFC 4122, 4.1.1 "Variant", 4.1.3
		// "Version"): time_hi_and_version is the little-endian word at byte 6, clock_seq_hi
		// the byte at 8.
		uniq := crc32.ChecksumIEEE([]byte(fmt.Sprintf("%d/%d/%s", size, i, p.Label)))
		u := e0[gptEntUniqueGUID:]
		binary.LittleEndian.PutUint32(u, uniq)
		binary.LittleEndian.PutUint16(u[6:], guidVersion4)
		u[8] = guidVariantRFC4122
		binary.LittleEndian.PutUint64(e0[gptEntFirst:], s)
		binary.LittleEndian.PutUint64(e0[gptEntLast:], e)
		for k, c := range name {
			binary.LittleEndian.PutUint16(e0[gptEntName+2*k:], c)
		}
	}
	arrCRC := crc32.ChecksumIEEE(arr)
	header := func(my, alt, entries uint64) []byte {
		h := make([]byte, ss)
		copy(h, gptSignature)
		binary.LittleEndian.PutUint32(h[gptRevisionOffset:], gptRevision1)
		binary.LittleEndian.PutUint32(h[gptHdrSize:], gptWriteHdrSize)
		binary.LittleEndian.PutUint64(h[gptMyLBA:], my)
		binary.LittleEndian.PutUint64(h[gptAlternateLBA:], alt)
		binary.LittleEndian.PutUint64(h[gptFirstUsable:], first)
		binary.LittleEndian.PutUint64(h[gptLastUsable:], last)
		binary.LittleEndian.PutUint32(h[gptDiskGUID:], crc32.ChecksumIEEE([]byte(fmt.Sprint(size))))
		binary.LittleEndian.PutUint64(h[gptEntryLBA:], entries)
		binary.LittleEndian.PutUint32(h[gptNumEntries:], gptDefaultCount)
		binary.LittleEndian.PutUint32(h[gptEntrySize:], gptMinEntrySize)
		binary.LittleEndian.PutUint32(h[gptEntriesCRC:], arrCRC)
		binary.LittleEndian.PutUint32(h[gptHdrCRC:], crc32.ChecksumIEEE(h[:gptWriteHdrSize]))
		return h
	}
	// Protective MBR: one record of type 0xEE covering the disk from LBA 1 (UEFI 2.9, 5.2.3).
	mbr := make([]byte, ss)
	rec := mbr[mbrPartOffset:]
	rec[mbrProtStatusOff] = 0
	// StartingCHS 0x000200 (LBA 1) and EndingCHS 0xFFFFFF ("not representable"): UEFI 2.9,
	// Table 5-4 "Protective MBR Partition Record".
	rec[1], rec[2], rec[3] = 0x00, 0x02, 0x00
	rec[mbrRecType] = mbrTypeGPTProt
	rec[5], rec[6], rec[7] = 0xFF, 0xFF, 0xFF
	binary.LittleEndian.PutUint32(rec[mbrRecStart:], 1)
	binary.LittleEndian.PutUint32(rec[mbrRecSectors:], uint32(min(sectors-1, 0xFFFFFFFF)))
	mbr[mbrSigOffset], mbr[mbrSigOffset+1] = mbrSig0, mbrSig1
	writes := []struct {
		at  uint64
		buf []byte
	}{
		{0, mbr},
		{1, header(1, sectors-1, 2)},
		{2, arr},
		{sectors - 1 - arraySectors, arr},
		{sectors - 1, header(sectors-1, 1, sectors-1-arraySectors)},
	}
	for _, w0 := range writes {
		if _, err := w.WriteAt(w0.buf, int64(w0.at)*ss); err != nil {
			return fmt.Errorf("disk: FormatGPT: writing LBA %d: %w", w0.at, err)
		}
	}
	return nil
}

// parseGUID turns the text form into the mixed-endian EFI layout.
func parseGUID(s string) ([]byte, error) {
	parts := strings.Split(s, "-")
	if len(parts) != 5 || len(parts[0]) != 8 || len(parts[1]) != 4 || len(parts[2]) != 4 || len(parts[3]) != 4 || len(parts[4]) != 12 {
		return nil, fmt.Errorf("disk: GUID %q: want 8-4-4-4-12 hex digits", s)
	}
	raw, err := hex.DecodeString(strings.Join(parts, ""))
	if err != nil {
		return nil, fmt.Errorf("disk: GUID %q: %w", s, err)
	}
	b := make([]byte, 16)
	binary.LittleEndian.PutUint32(b[0:], binary.BigEndian.Uint32(raw[0:]))
	binary.LittleEndian.PutUint16(b[4:], binary.BigEndian.Uint16(raw[4:]))
	binary.LittleEndian.PutUint16(b[6:], binary.BigEndian.Uint16(raw[6:]))
	copy(b[8:], raw[8:])
	return b, nil
}
