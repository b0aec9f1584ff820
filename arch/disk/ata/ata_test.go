package ata

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/arch/disk"
)

// fakeIRQ counts raised interrupts; Wait blocks on a condition variable.
type fakeIRQ struct {
	mu    sync.Mutex
	cond  *sync.Cond
	count uint64
}

func newFakeIRQ() *fakeIRQ {
	f := &fakeIRQ{}
	f.cond = sync.NewCond(&f.mu)
	return f
}

func (f *fakeIRQ) raise() {
	f.mu.Lock()
	f.count++
	f.mu.Unlock()
	f.cond.Broadcast()
}

func (f *fakeIRQ) Count() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count
}

func (f *fakeIRQ) Wait(seen uint64, timeout time.Duration) (uint64, error) {
	deadline := time.Now().Add(timeout)
	t := time.AfterFunc(timeout, f.cond.Broadcast)
	defer t.Stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.count <= seen {
		if !time.Now().Before(deadline) {
			return seen, errors.New("fake irq: timeout")
		}
		f.cond.Wait()
	}
	return f.count, nil
}

func (f *fakeIRQ) String() string { return "fake" }

// fakeDrive is one device position of the fake channel.
type fakeDrive struct {
	present, atapi, lba48 bool
	abortIdentify         bool // aborts IDENTIFY DEVICE without the PACKET signature
	disk                  []byte
}

// fakeChannel models an IDE channel's registers and the PIO protocols of ATA-6, 9.6 and 9.7
// for two devices.
type fakeChannel struct {
	mu        sync.Mutex
	irq       *fakeIRQ
	drives    [2]fakeDrive
	regs, hob [8]uint8
	dev       uint8
	status    uint8
	errReg    uint8
	buf       []byte // the sector being transferred
	lba       int64
	left      int
	writing   bool
	silent    bool // stops answering: no interrupts, BSY forever after a command
	commands  []string
}

const fakeBase = 0x170

func newFakeChannel() *fakeChannel { return &fakeChannel{irq: newFakeIRQ(), status: stDRDY} }

func (f *fakeChannel) cur() *fakeDrive { return &f.drives[f.dev>>4&1] }

func (f *fakeChannel) In8(port uint16) uint8 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.cur().present {
		return 0
	}
	switch port - fakeBase {
	case regStatus:
		return f.status
	case regError:
		return f.errReg
	case regCount, regLBALow, regLBAMid, regLBAHigh:
		return f.regs[port-fakeBase]
	}
	if port == 0x376 { // alternate status
		return f.status
	}
	return 0xFF
}

func (f *fakeChannel) Out8(port uint16, v uint8) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if port == 0x376 {
		return
	}
	r := port - fakeBase
	switch r {
	case regCount, regLBALow, regLBAMid, regLBAHigh:
		f.hob[r], f.regs[r] = f.regs[r], v
	case regDevice:
		f.dev = v
	case regCommand:
		f.command(v)
	}
}

func (f *fakeChannel) command(c uint8) {
	d := f.cur()
	count := int(f.regs[regCount])
	lba := int64(f.regs[regLBALow]) | int64(f.regs[regLBAMid])<<8 | int64(f.regs[regLBAHigh])<<16
	if c == cmdReadSectorsExt || c == cmdWriteSectorsExt {
		count |= int(f.hob[regCount]) << 8
		lba |= int64(f.hob[regLBALow])<<24 | int64(f.hob[regLBAMid])<<32 | int64(f.hob[regLBAHigh])<<40
		if count == 0 {
			count = 65536
		}
	} else if c == cmdReadSectors || c == cmdWriteSectors {
		lba |= int64(f.dev&0x0F) << 24
		if count == 0 {
			count = 256
		}
	}
	f.commands = append(f.commands, fmt.Sprintf("%#02x %d+%d", c, lba, count))
	if f.silent {
		f.status = stBSY
		return
	}
	f.errReg = 0
	switch c {
	case cmdIdentify:
		if d.abortIdentify {
			f.status, f.errReg = stDRDY|stERR, errABRT
			f.irq.raise()
			return
		}
		if d.atapi {
			f.regs[regLBAMid], f.regs[regLBAHigh] = sigPacketMid, sigPacketHigh
			f.status, f.errReg = stDRDY|stERR, 0x04
			f.irq.raise()
			return
		}
		f.buf = identifyData(d)
		f.left, f.writing = 1, false
		f.status = stDRDY | stDRQ
		f.irq.raise()
	case cmdReadSectors, cmdReadSectorsExt, cmdWriteSectors, cmdWriteSectorsExt:
		if lba+int64(count) > int64(len(d.disk)/512) {
			f.status, f.errReg = stDRDY|stERR, 0x10 // IDNF
			f.irq.raise()
			return
		}
		f.lba, f.left = lba, count
		f.writing = c == cmdWriteSectors || c == cmdWriteSectorsExt
		f.status = stDRDY | stDRQ
		if !f.writing {
			f.buf = append([]byte(nil), d.disk[lba*512:(lba+1)*512]...)
			f.irq.raise()
		}
	case cmdFlushCache, cmdFlushCacheExt:
		f.status = stDRDY
		f.irq.raise()
	default:
		f.status, f.errReg = stDRDY|stERR, 0x04 // ABRT
		f.irq.raise()
	}
}

func (f *fakeChannel) InWords(port uint16, buf []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	copy(buf, f.buf)
	f.left--
	f.lba++
	if f.left > 0 {
		d := f.cur()
		f.buf = append([]byte(nil), d.disk[f.lba*512:(f.lba+1)*512]...)
		f.irq.raise()
		return
	}
	f.status = stDRDY
}

func (f *fakeChannel) OutWords(port uint16, buf []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.cur()
	copy(d.disk[f.lba*512:], buf)
	f.left--
	f.lba++
	if f.left == 0 {
		f.status = stDRDY
	}
	f.irq.raise()
}

func identifyData(d *fakeDrive) []byte {
	id := make([]byte, 512)
	put := func(w int, v uint16) { binary.LittleEndian.PutUint16(id[2*w:], v) }
	model := "FAKE DISK 42" + strings.Repeat(" ", 28)
	for i := 0; i < 20; i++ {
		put(idModel+i, uint16(model[2*i])<<8|uint16(model[2*i+1]))
	}
	n := uint32(len(d.disk) / 512)
	put(idLBA28Sectors, uint16(n))
	put(idLBA28Sectors+1, uint16(n>>16))
	if d.lba48 {
		put(idCmdSet2, idFeat48)
		put(idCmdSet2Enabled, idFeat48)
		binary.LittleEndian.PutUint64(id[2*idLBA48Sectors:], uint64(n))
	}
	return id
}

func testChannel(f *fakeChannel) *Channel {
	c := &Channel{Index: 1, cmd: fakeBase, ctl: 0x376, io: f, irq: f.irq, sleep: func(time.Duration) {}}
	return c
}

func TestProbe(t *testing.T) {
	f := newFakeChannel()
	f.drives[0] = fakeDrive{present: true, atapi: true}
	f.drives[1] = fakeDrive{present: true, lba48: true, disk: make([]byte, 4<<20)}
	drives, errs := testChannel(f).Probe()
	if len(errs) != 0 {
		t.Fatalf("Probe errors: %v", errs)
	}
	if len(drives) != 1 {
		t.Fatalf("Probe found %d drives, want 1 (the ATAPI master skipped)", len(drives))
	}
	d := drives[0]
	if d.Model != "FAKE DISK 42" || !d.lba48 || d.Sectors() != 8192 || d.Location() != "ata1 slave" {
		t.Errorf("drive = %q lba48 %v sectors %d at %s", d.Model, d.lba48, d.Sectors(), d.Location())
	}

	// A position that aborts IDENTIFY without the PACKET signature holds no ATA disk (QEMU's
	// absent master beside a slave); other failures are reported.
	abort := newFakeChannel()
	abort.drives[0] = fakeDrive{present: true, abortIdentify: true}
	abort.drives[1] = fakeDrive{present: true, disk: make([]byte, 1<<20)}
	if drives, errs := testChannel(abort).Probe(); len(drives) != 1 || len(errs) != 0 {
		t.Errorf("master aborting IDENTIFY: %d drives, %v; want the slave only, no error", len(drives), errs)
	}

	empty := newFakeChannel()
	if drives, errs := testChannel(empty).Probe(); len(drives) != 0 || len(errs) != 0 {
		t.Errorf("empty channel: %v, %v", drives, errs)
	}
}

func probeOne(t *testing.T, f *fakeChannel) *Drive {
	t.Helper()
	drives, errs := testChannel(f).Probe()
	if len(errs) != 0 || len(drives) != 1 {
		t.Fatalf("Probe = %v, %v", drives, errs)
	}
	return drives[0]
}

func TestReadWrite(t *testing.T) {
	for _, lba48 := range []bool{true, false} {
		t.Run(fmt.Sprintf("lba48=%v", lba48), func(t *testing.T) {
			f := newFakeChannel()
			img := make([]byte, 1<<20)
			for i := range img {
				img[i] = byte(i*13 + i>>9)
			}
			f.drives[0] = fakeDrive{present: true, lba48: lba48, disk: img}
			d := probeOne(t, f)
			var _ disk.Driver = d

			// 300 sectors: more than one command's worth.
			got := make([]byte, 300*512)
			if err := d.ReadSectors(got, 700); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, img[700*512:1000*512]) {
				t.Errorf("read data differs")
			}
			wantCmd := "0x24 700+128"
			if !lba48 {
				wantCmd = "0x20 700+128"
			}
			if f.commands[1] != wantCmd || len(f.commands) != 4 {
				t.Errorf("commands = %v, want IDENTIFY then %q and two more", f.commands, wantCmd)
			}
			msg := bytes.Repeat([]byte("godwit!\x00"), 3*64)
			if err := d.WriteSectors(msg, 2000); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(img[2000*512:2003*512], msg) {
				t.Errorf("written data not on the disk")
			}
			if err := d.Flush(); err != nil {
				t.Fatal(err)
			}
			if last := f.commands[len(f.commands)-1]; !strings.HasPrefix(last, fmt.Sprintf("%#02x", map[bool]int{true: cmdFlushCacheExt, false: cmdFlushCache}[lba48])) {
				t.Errorf("flush sent %q", last)
			}
			if err := d.ReadSectors(make([]byte, 512), 1<<11); !errors.Is(err, disk.ErrOutOfRange) {
				t.Errorf("read past the end: %v, want ErrOutOfRange", err)
			}
			if err := d.ReadSectors(make([]byte, 100), 0); !errors.Is(err, disk.ErrUnaligned) {
				t.Errorf("partial sector: %v, want ErrUnaligned", err)
			}
		})
	}
}

func TestDeviceError(t *testing.T) {
	f := newFakeChannel()
	f.drives[0] = fakeDrive{present: true, lba48: true, disk: make([]byte, 1<<20)}
	d := probeOne(t, f)
	d.sectors = 1 << 20 // the driver believes the disk is larger than the device does
	err := d.ReadSectors(make([]byte, 512), 5000)
	if !errors.Is(err, ErrDevice) || !strings.Contains(err.Error(), "error 0x10") {
		t.Errorf("read beyond the device: %v, want ErrDevice with error 0x10", err)
	}
}

func TestTimeout(t *testing.T) {
	old := CommandTimeout
	CommandTimeout = 50 * time.Millisecond
	defer func() { CommandTimeout = old }()
	f := newFakeChannel()
	f.drives[0] = fakeDrive{present: true, lba48: true, disk: make([]byte, 1<<20)}
	d := probeOne(t, f)
	f.silent = true
	start := time.Now()
	err := d.ReadSectors(make([]byte, 512), 0)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("read from a silent device: %v, want ErrTimeout", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("timeout took %v", el)
	}
	// The next command finds the device still busy and times out too, without hanging.
	if err := d.Flush(); !errors.Is(err, ErrTimeout) {
		t.Errorf("flush on a busy device: %v, want ErrTimeout", err)
	}
}

func TestParseIdentify(t *testing.T) {
	d := &fakeDrive{lba48: true, disk: make([]byte, 512*100)}
	id := identifyData(d)
	binary.LittleEndian.PutUint16(id[0:], 0x8000) // not ATA
	if _, err := parseIdentify(id); err == nil {
		t.Errorf("word 0 bit 15 set: accepted")
	}
	id = identifyData(d)
	binary.LittleEndian.PutUint16(id[2*idSectorSize:], 1<<14|1<<12)
	binary.LittleEndian.PutUint32(id[2*idWordsPerSector:], 2048)
	if _, err := parseIdentify(id); err == nil || !strings.Contains(err.Error(), "4096") {
		t.Errorf("4096-byte sectors: %v", err)
	}
	if _, err := parseIdentify(make([]byte, 512)); err == nil {
		t.Errorf("zero sectors accepted")
	}
	if _, err := parseIdentify(id[:100]); err == nil {
		t.Errorf("short data accepted")
	}
}
