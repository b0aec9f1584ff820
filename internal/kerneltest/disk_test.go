package kerneltest

import (
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/arch/disk"
	"github.com/godwit-hv/godwit/internal/rig"
)

// The test disk: a GPT with two named partitions over a pseudo-random pattern. Its size is a
// whole number of 16-head, 63-sector cylinders so that Bochs takes the flat image as is.
const (
	cylinderBytes = 16 * 63 * 512
	diskImageSize = 80 * cylinderBytes // 41287680 bytes
	part1Start    = 1 << 20
	part1Size     = 16 << 20
	part2Start    = 17 << 20
	part2Size     = 20 << 20
	benchSize     = 8 << 20
)

// makeDiskImage writes the image and returns its path and the CRC32 of the first benchSize
// bytes of partition 2.
func makeDiskImage(t *testing.T) (string, uint32) {
	t.Helper()
	img := make([]byte, diskImageSize)
	rng := rand.New(rand.NewPCG(0x60d, 0x717))
	for i := 0; i+8 <= len(img); i += 8 {
		v := rng.Uint64()
		for k := 0; k < 8; k++ {
			img[i+k] = byte(v >> (8 * k))
		}
	}
	parts := []disk.Partition{
		{Start: part1Start, Size: part1Size, Label: "godwit-alpha"},
		{Start: part2Start, Size: part2Size, Label: "godwit-bravo"},
	}
	if err := disk.FormatGPT(sliceWriter(img), diskImageSize, 512, parts); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, crc32.ChecksumIEEE(img[part2Start : part2Start+benchSize])
}

type sliceWriter []byte

func (w sliceWriter) WriteAt(p []byte, off int64) (int, error) { return copy(w[off:], p), nil }

// diskSession checks disk list and disk bench for the disk named dev.
func diskSession(t *testing.T, m *rig.Machine, dev string, crc uint32, promptWithin, benchWithin time.Duration, more func()) {
	start := time.Now()
	m.Expect(Prompt, promptWithin)
	t.Logf("prompt after %v", time.Since(start).Round(time.Millisecond))

	m.SendLine("disk list")
	m.ExpectRegexp(dev+`\s+\S+\s+`+fmt.Sprint(diskImageSize)+` bytes`, 2*time.Minute)
	m.ExpectRegexp(`GPT partition table, 2 partitions`, 30*time.Second)
	m.ExpectRegexp(regexp.QuoteMeta(dev+"1")+`\s+offset\s+`+fmt.Sprint(part1Start)+`\s+size\s+`+fmt.Sprint(part1Size)+`.*name "godwit-alpha"`, 30*time.Second)
	m.ExpectRegexp(regexp.QuoteMeta(dev+"2")+`\s+offset\s+`+fmt.Sprint(part2Start)+`\s+size\s+`+fmt.Sprint(part2Size)+`.*name "godwit-bravo"`, 30*time.Second)
	m.Expect(Prompt, 30*time.Second)

	m.SendLine("disk bench " + dev + "2 8M")
	t0 := time.Now()
	line := m.ExpectRegexp(`disk bench \S+: read (\d+) bytes in \S+ s: (\S+) MiB/s, crc32 ([0-9a-f]{8})`, benchWithin)
	t.Logf("bench: %s MiB/s after %v", line[2], time.Since(t0).Round(time.Millisecond))
	if want := fmt.Sprintf("%08x", crc); line[3] != want || line[1] != fmt.Sprint(benchSize) {
		t.Errorf("disk bench %s2 8M: %s bytes, crc32 %s; want %d bytes, crc32 %s", dev, line[1], line[3], benchSize, want)
	}
	m.Expect(Prompt, 30*time.Second)

	// Errors: an unknown disk, bad region syntax, a region past the end.
	m.SendLine("disk bench vdq")
	m.Expect("no such disk", 30*time.Second)
	m.SendLine("disk bench " + dev + ":1M")
	m.Expect("bad region syntax", 30*time.Second)
	m.SendLine("disk bench " + dev + ":39M+2M")
	m.Expect("out of range", 30*time.Second)
	m.SendLine("disk list")
	irqs := m.ExpectRegexp(dev+`\s.*irqs (\d+)`, 30*time.Second)
	if irqs[1] == "0" {
		t.Errorf("%s took no interrupts", dev)
	}
	m.Expect(Prompt, 30*time.Second)
	if more != nil {
		more()
	}

	m.SendLine("poweroff")
	m.Expect("powering off", 30*time.Second)
	if _, err := m.Wait(2 * time.Minute); err != nil {
		t.Fatalf("after poweroff: %v", err)
	}
}

// TestDiskVirtioQEMU: a virtio-blk disk on QEMU is vda, with its GPT partitions, served
// through MSI-X. A 2 GiB ivshmem BAR does not fit below 4 GiB, so SeaBIOS moves the 64-bit BARs,
// vda's virtio registers among them, above 4 GiB: outside the kernel's identity map, reached
// through ring0.MapMMIO. A second disk without MSI-X vectors (vdb) runs on its level-triggered
// INTx line.
func TestDiskVirtioQEMU(t *testing.T) {
	t.Parallel()
	img, crc := makeDiskImage(t)
	img2, crc2 := makeDiskImage(t)
	m := rig.QEMU(t, rig.Options{Name: "disk-qemu", ExtraArgs: []string{
		"-drive", "file=" + img + ",if=none,id=d0,format=raw",
		"-device", "virtio-blk-pci,drive=d0",
		"-drive", "file=" + img2 + ",if=none,id=d1,format=raw",
		"-device", "virtio-blk-pci,drive=d1,vectors=0",
		"-object", "memory-backend-ram,id=shm,size=2G",
		"-device", "ivshmem-plain,memdev=shm",
	}})
	diskSession(t, m, "vda", crc, 30*time.Second, time.Minute, func() {
		m.SendLine("disk list")
		if regs := m.ExpectRegexp(`MSI-X vector \S+, registers at 0x([0-9a-f]+)[^0-9a-f]`, 30*time.Second); len(regs[1]) <= 8 {
			t.Errorf("vda's registers at 0x%s: want them above 4 GiB (a 64-bit BAR moved up by SeaBIOS)", regs[1])
		}
		m.ExpectRegexp(`vdb\s+virtio-blk\s+`+fmt.Sprint(diskImageSize)+` bytes`, 30*time.Second)
		m.ExpectRegexp(`INTx GSI \d+ level/high`, 30*time.Second)
		m.Expect(Prompt, 30*time.Second)
		m.SendLine("disk bench vdb2 8M")
		line := m.ExpectRegexp(`disk bench vdb2: read (\d+) bytes in \S+ s: (\S+) MiB/s, crc32 ([0-9a-f]{8})`, time.Minute)
		t.Logf("INTx bench: %s MiB/s", line[2])
		if want := fmt.Sprintf("%08x", crc2); line[3] != want {
			t.Errorf("disk bench vdb2 8M: crc32 %s, want %s", line[3], want)
		}
		m.Expect(Prompt, 30*time.Second)
		m.SendLine("disk list")
		irqs := m.ExpectRegexp(`vdb\s.*irqs (\d+)`, 30*time.Second)
		if n, _ := strconv.Atoi(irqs[1]); n < 10 {
			t.Errorf("vdb took %d interrupts for an 8 MiB read, want at least 10", n)
		}
		m.Expect(Prompt, 30*time.Second)
	})
}

// TestDiskATABochs: the same image as the secondary channel's master disk under Bochs is hda
// (the boot CD-ROM on the primary master is skipped).
func TestDiskATABochs(t *testing.T) {
	t.Parallel()
	img, crc := makeDiskImage(t)
	m := rig.Bochs(t, rig.Options{Name: "disk-bochs", BochsConfig: []string{
		"ata1: enabled=1, ioaddr1=0x170, ioaddr2=0x370, irq=15",
		"ata1-master: type=disk, path=" + img + ", mode=flat",
	}})
	diskSession(t, m, "hda", crc, 5*time.Minute, 5*time.Minute, nil)
}

// TestDiskATAQEMU: QEMU's PIIX IDE with the image as the primary channel's slave (no master)
// and QEMU's default empty CD-ROM on the secondary master, which the ATA driver skips.
func TestDiskATAQEMU(t *testing.T) {
	t.Parallel()
	img, crc := makeDiskImage(t)
	m := rig.QEMU(t, rig.Options{Name: "disk-qemu-ata", ExtraArgs: []string{
		"-drive", "file=" + img + ",if=ide,index=1,format=raw",
	}})
	diskSession(t, m, "hda", crc, 30*time.Second, 2*time.Minute, func() {
		m.SendLine("disk list")
		m.ExpectRegexp(`hda\s+ata\s+.*ata0 slave`, 30*time.Second)
		m.Expect(Prompt, 30*time.Second)
	})
}
