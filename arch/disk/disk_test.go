package disk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// memDriver is an in-memory Driver that insists on whole sectors, as real drivers do.
type memDriver struct {
	mu   sync.Mutex
	data []byte
	ss   int
	ops  int
}

func newMem(size, ss int) *memDriver { return &memDriver{data: make([]byte, size), ss: ss} }

func (m *memDriver) Kind() string     { return "mem" }
func (m *memDriver) Location() string { return "test" }
func (m *memDriver) Sectors() int64   { return int64(len(m.data) / m.ss) }
func (m *memDriver) SectorSize() int  { return m.ss }
func (m *memDriver) Flush() error     { return nil }
func (m *memDriver) IRQCount() uint64 { return 0 }
func (m *memDriver) Info() string     { return "" }
func (m *memDriver) check(p []byte, lba int64) error {
	if len(p)%m.ss != 0 || len(p) == 0 {
		return fmt.Errorf("memDriver: %d bytes: %w", len(p), ErrUnaligned)
	}
	if lba < 0 || lba*int64(m.ss)+int64(len(p)) > int64(len(m.data)) {
		return fmt.Errorf("memDriver: lba %d+%d: %w", lba, len(p), ErrOutOfRange)
	}
	return nil
}
func (m *memDriver) ReadSectors(p []byte, lba int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops++
	if err := m.check(p, lba); err != nil {
		return err
	}
	copy(p, m.data[lba*int64(m.ss):])
	return nil
}
func (m *memDriver) WriteSectors(p []byte, lba int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops++
	if err := m.check(p, lba); err != nil {
		return err
	}
	copy(m.data[lba*int64(m.ss):], p)
	return nil
}

// memWriter lets FormatGPT write into a byte slice.
type memWriter []byte

func (w memWriter) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(w)) {
		return 0, io.ErrShortWrite
	}
	return copy(w[off:], p), nil
}

func TestDiskName(t *testing.T) {
	for n, want := range map[int]string{0: "vda", 1: "vdb", 25: "vdz", 26: "vdaa", 27: "vdab", 701: "vdzz", 702: "vdaaa"} {
		if got := diskName("vd", n); got != want {
			t.Errorf("diskName(vd, %d) = %q, want %q", n, got, want)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"512", 512, true}, {"64M", 64 << 20, true}, {"1G", 1 << 30, true}, {"4k", 4096, true},
		{"0x1000", 4096, true}, {"2T", 2 << 40, true}, {"", 0, false}, {"M", 0, false},
		{"-1", 0, false}, {"1.5G", 0, false}, {"99999999999T", 0, false}, {"12Q", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

const mib = 1 << 20

// gptImage returns a 40 MiB disk with two named partitions.
func gptImage(t *testing.T) []byte {
	t.Helper()
	img := make([]byte, 40*mib)
	err := FormatGPT(memWriter(img), int64(len(img)), 512, []Partition{
		{Start: 1 * mib, Size: 16 * mib, Label: "alpha"},
		{Start: 17 * mib, Size: 20 * mib, Label: "bravo ✓", Type: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestGPT(t *testing.T) {
	img := gptImage(t)
	scheme, parts, err := ReadPartitions(bytes.NewReader(img), int64(len(img)), 512)
	if err != nil || scheme != SchemeGPT {
		t.Fatalf("ReadPartitions = %q, %v", scheme, err)
	}
	want := []Partition{
		{Index: 1, Start: 1 * mib, Size: 16 * mib, Type: TypeLinuxData, Label: "alpha"},
		{Index: 2, Start: 17 * mib, Size: 20 * mib, Type: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", Label: "bravo ✓"},
	}
	if fmt.Sprint(parts) != fmt.Sprint(want) {
		t.Errorf("partitions = %+v\nwant %+v", parts, want)
	}
}

func TestGPTCorrupt(t *testing.T) {
	const last = 40*mib/512 - 1
	tests := []struct {
		name    string
		mangle  func(b []byte)
		wantErr string // "" = no error
		wantN   int
	}{
		{"primary header CRC", func(b []byte) { b[512+gptFirstUsable] ^= 1 }, "using the backup", 2},
		{"both headers", func(b []byte) { b[512+20] = 1; b[512+16]++; b[last*512+16]++ }, "backup", 0},
		{"entry array CRC, both", func(b []byte) {
			b[1024+gptEntName] ^= 0xFF
			b[(last-32)*512+gptEntName] ^= 0xFF
		}, "entry array CRC32", 0},
		{"signature gone", func(b []byte) { copy(b[512:], "NOT PART"); copy(b[last*512:], "NOT PART") }, "no signature", 0},
		{"header size huge", func(b []byte) { setHeader(b, 1, gptHdrSize, 4, 100000) }, "using the backup", 2},
		{"entry count absurd", func(b []byte) {
			setHeader(b, 1, gptNumEntries, 4, 1<<30)
			setHeader(b, last, gptNumEntries, 4, 1<<30)
		}, "entry array", 0},
		{"entry size odd", func(b []byte) {
			setHeader(b, 1, gptEntrySize, 4, 130)
			setHeader(b, last, gptEntrySize, 4, 100)
		}, "entry size", 0},
		{"partition past usable", func(b []byte) {
			setEntry(b, 2, 1, gptEntLast, 1<<40)
			setEntry(b, last-32, 1, gptEntLast, 1<<40)
		}, "outside the usable", 1},
		{"first > last", func(b []byte) { setEntry(b, 2, 0, gptEntFirst, 50000); setEntry(b, last-32, 0, gptEntFirst, 50000) }, "outside the usable", 1},
		{"entries past disk", func(b []byte) { setHeader(b, 1, gptEntryLBA, 8, 1<<50); setHeader(b, last, gptEntryLBA, 8, last) }, "outside the disk", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := gptImage(t)
			tt.mangle(img)
			_, parts, err := ReadPartitions(bytes.NewReader(img), int64(len(img)), 512)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
			if len(parts) != tt.wantN {
				t.Errorf("%d partitions, want %d", len(parts), tt.wantN)
			}
		})
	}
}

// setHeader sets a field of the GPT header at lba and fixes its CRC, so the change itself is
// what the parser sees.
func setHeader(b []byte, lba int, off, size int, v uint64) {
	h := b[lba*512:]
	if size == 4 {
		binary.LittleEndian.PutUint32(h[off:], uint32(v))
	} else {
		binary.LittleEndian.PutUint64(h[off:], v)
	}
	hs := int(binary.LittleEndian.Uint32(h[gptHdrSize:]))
	if hs > 512 || hs < gptMinHeaderSize {
		return
	}
	clear(h[gptHdrCRC : gptHdrCRC+4])
	binary.LittleEndian.PutUint32(h[gptHdrCRC:], crc32.ChecksumIEEE(h[:hs]))
}

// setEntry changes entry i of the array at arrLBA and fixes both CRCs of the header pointing at it.
func setEntry(b []byte, arrLBA, i, off int, v uint64) {
	e := b[arrLBA*512+i*128:]
	binary.LittleEndian.PutUint64(e[off:], v)
	arr := b[arrLBA*512 : arrLBA*512+128*128]
	hdr := 1
	if arrLBA != 2 {
		hdr = len(b)/512 - 1
	}
	setHeader(b, hdr, gptEntriesCRC, 4, uint64(crc32.ChecksumIEEE(arr)))
}

// TestPartitionFuzz: random damage to tables never panics.
func TestPartitionFuzz(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	base := gptImage(t)[:2*mib]
	mbr := mbrImage()
	for i := 0; i < 3000; i++ {
		var img []byte
		if i%2 == 0 {
			img = append([]byte(nil), base...)
		} else {
			img = append([]byte(nil), mbr...)
		}
		for k := 0; k < 1+rng.IntN(8); k++ {
			at := rng.IntN(34 * 512)
			if rng.IntN(2) == 0 {
				at = 446 + rng.IntN(66)
			}
			img[at] = byte(rng.Uint32())
		}
		ReadPartitions(bytes.NewReader(img), int64(len(img)), 512)
	}
}

// mbrImage: 2 MiB, primary 1 at 2048 (512 sectors), an extended partition holding two logical
// partitions.
func mbrImage() []byte {
	img := make([]byte, 2*mib)
	rec := func(b []byte, slot int, typ byte, start, n uint32) {
		r := b[mbrPartOffset+slot*mbrPartSize:]
		r[mbrRecType] = typ
		binary.LittleEndian.PutUint32(r[mbrRecStart:], start)
		binary.LittleEndian.PutUint32(r[mbrRecSectors:], n)
		b[510], b[511] = 0x55, 0xAA
	}
	rec(img, 0, 0x83, 2048, 512)
	rec(img, 1, 0x05, 2560, 1536) // extended: sectors 2560-4095
	// EBR 1 at 2560: logical at +64 for 256 sectors; next EBR at ext+512.
	ebr1 := img[2560*512:]
	rec(ebr1, 0, 0x83, 64, 256)
	rec(ebr1, 1, 0x05, 512, 600)
	ebr2 := img[(2560+512)*512:]
	rec(ebr2, 0, 0x82, 64, 300)
	return img
}

func TestMBR(t *testing.T) {
	img := mbrImage()
	scheme, parts, err := ReadPartitions(bytes.NewReader(img), int64(len(img)), 512)
	if err != nil || scheme != SchemeMBR {
		t.Fatalf("ReadPartitions = %q, %v", scheme, err)
	}
	want := []Partition{
		{Index: 1, Start: 2048 * 512, Size: 512 * 512, Type: "0x83"},
		{Index: 5, Start: (2560 + 64) * 512, Size: 256 * 512, Type: "0x83"},
		{Index: 6, Start: (2560 + 512 + 64) * 512, Size: 300 * 512, Type: "0x82"},
	}
	if fmt.Sprint(parts) != fmt.Sprint(want) {
		t.Errorf("partitions = %+v\nwant %+v", parts, want)
	}
	// A loop in the EBR chain and a primary past the end are errors; good entries survive.
	binary.LittleEndian.PutUint32(img[(2560+512)*512+mbrPartOffset+mbrPartSize+mbrRecType:], 0x05)
	binary.LittleEndian.PutUint32(img[(2560+512)*512+mbrPartOffset+mbrPartSize+mbrRecStart:], 0)
	binary.LittleEndian.PutUint32(img[(2560+512)*512+mbrPartOffset+mbrPartSize+mbrRecSectors:], 10)
	binary.LittleEndian.PutUint32(img[mbrPartOffset+2*mbrPartSize+mbrRecType:], 0x83)
	binary.LittleEndian.PutUint32(img[mbrPartOffset+2*mbrPartSize+mbrRecStart:], 4000)
	binary.LittleEndian.PutUint32(img[mbrPartOffset+2*mbrPartSize+mbrRecSectors:], 1<<20)
	_, parts, err = ReadPartitions(bytes.NewReader(img), int64(len(img)), 512)
	if err == nil || !strings.Contains(err.Error(), "loops") || !strings.Contains(err.Error(), "outside the disk") {
		t.Errorf("err = %v, want a loop and an out-of-range partition", err)
	}
	if len(parts) != 3 {
		t.Errorf("%d partitions kept, want 3", len(parts))
	}
	// No signature: no table, no error.
	img[510] = 0
	if s, p, err := ReadPartitions(bytes.NewReader(img), int64(len(img)), 512); s != SchemeNone || p != nil || err != nil {
		t.Errorf("unsigned MBR: %q %v %v", s, p, err)
	}
}

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	drv := newMem(40*mib, 512)
	copy(drv.data, gptImage(t))
	for i := 17 * mib; i < 37*mib; i++ {
		drv.data[i] = byte(i * 7)
	}
	vda := r.Add(PrefixVirtio, drv)
	r.Add(PrefixVirtio, newMem(mib, 512))
	r.Add(PrefixATA, newMem(mib, 4096))
	var names []string
	for _, d := range r.Disks() {
		names = append(names, d.Name())
	}
	if strings.Join(names, " ") != "vda vdb hda" {
		t.Errorf("disks = %v", names)
	}
	if vda.Scheme != SchemeGPT || len(vda.Partitions) != 2 || vda.Partitions[1].Label != "bravo ✓" || vda.PartErr != nil {
		t.Fatalf("vda: %s %v %v", vda.Scheme, vda.Partitions, vda.PartErr)
	}
	tests := []struct {
		name    string
		size    int64
		wantErr error
	}{
		{"vda", 40 * mib, nil},
		{"vda2", 20 * mib, nil},
		{"vda:1M+64K", 64 << 10, nil},
		{"vda2:4096+8192", 8192, nil},
		{"hda:4096+4096", 4096, nil},
		{"hda:512+4096", 0, ErrUnaligned},
		{"vda:39M+2M", 0, ErrOutOfRange},
		{"vda2:19M+2M", 0, ErrOutOfRange},
		{"vda:0+0", 0, ErrSyntax},
		{"vda:1M", 0, ErrSyntax},
		{"vda:xM+1M", 0, ErrSyntax},
		{"vdq", 0, ErrNotFound},
		{"vdq:0+1M", 0, ErrNotFound},
		{"vda3", 0, ErrNotFound},
	}
	for _, tt := range tests {
		d, err := r.Lookup(tt.name)
		if !errors.Is(err, tt.wantErr) || err == nil && d.Size() != tt.size {
			t.Errorf("Lookup(%q) = %v, %v; want size %d, %v", tt.name, d, err, tt.size, tt.wantErr)
		}
	}
	// Region I/O lands at the right place and cannot leave the region.
	p2, _ := r.Lookup("vda2")
	buf := make([]byte, 1000)
	at := 17*mib + 3
	if n, err := p2.ReadAt(buf, 3); n != 1000 || err != nil || buf[0] != byte(at*7) {
		t.Errorf("vda2 ReadAt(3) = %d, %v, first byte %d", n, err, buf[0])
	}
	if n, err := p2.ReadAt(buf, 20*mib-10); n != 10 || err != io.EOF {
		t.Errorf("read across the end of vda2 = %d, %v; want 10, EOF", n, err)
	}
	if _, err := p2.WriteAt(buf, 20*mib-10); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("write across the end of vda2: %v, want ErrOutOfRange", err)
	}
	if _, err := p2.ReadAt(buf, -1); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("read at -1: %v", err)
	}
	// Unaligned writes are read-modify-written and leave neighbors alone.
	msg := []byte("unaligned write spanning sectors")
	before := append([]byte(nil), drv.data[17*mib+500:17*mib+600]...)
	if n, err := p2.WriteAt(msg, 510); n != len(msg) || err != nil {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	copy(before[10:], msg)
	if !bytes.Equal(drv.data[17*mib+500:17*mib+600], before) {
		t.Errorf("unaligned write changed neighbors")
	}
}

func TestDeviceConcurrent(t *testing.T) {
	drv := newMem(mib, 512)
	d := NewDevice("vda", drv)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			b := bytes.Repeat([]byte{byte(w + 1)}, 100)
			for i := 0; i < 200; i++ {
				off := int64(w*100 + i%3) // neighbors share sectors
				if _, err := d.WriteAt(b[:97], off); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	for w := 0; w < 8; w++ {
		got := make([]byte, 97)
		d.ReadAt(got, int64(w*100+2))
		for _, c := range got[:95] {
			if c != byte(w+1) && c != byte(w+2) {
				t.Fatalf("writer %d's range holds %d: a read-modify-write lost an update", w, c)
			}
		}
	}
}
