package virtioblk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/arch/disk"
	"github.com/godwit-hv/godwit/arch/virtio"
	"github.com/godwit-hv/godwit/arch/virtio/virtiotest"
)

// fakeBlk is the device side of virtio-blk (virtio 1.1, 5.2.6) over virtiotest's ring, with
// an interrupt counter standing in for the queue's vector.
type fakeBlk struct {
	mu      sync.Mutex
	cond    *sync.Cond
	irqs    uint64
	disk    []byte
	ring    *virtiotest.Ring
	kick    chan struct{}
	status  byte // forced status for every request when non-zero
	silent  bool // takes requests and never completes them
	types   []uint32
	maxData int
}

func (f *fakeBlk) IRQCount(int) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.irqs
}

func (f *fakeBlk) WaitQueue(_ int, seen uint64, timeout time.Duration) (uint64, error) {
	t := time.AfterFunc(timeout, f.cond.Broadcast)
	defer t.Stop()
	deadline := time.Now().Add(timeout)
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.irqs <= seen {
		if !time.Now().Before(deadline) {
			return seen, errors.New("fake: timeout")
		}
		f.cond.Wait()
	}
	return f.irqs, nil
}

func (f *fakeBlk) run(t *testing.T, done chan struct{}) {
	for {
		select {
		case <-done:
			return
		case <-f.kick:
		}
		for {
			f.mu.Lock()
			head, chain, ok, err := f.ring.Next()
			if err != nil {
				f.mu.Unlock()
				t.Errorf("device: %v", err)
				return
			}
			if !ok {
				f.mu.Unlock()
				break
			}
			n, st := f.serve(t, chain)
			if f.silent {
				f.mu.Unlock()
				continue
			}
			chain[len(chain)-1].Data[0] = st
			f.ring.Complete(head, n)
			f.irqs++
			f.mu.Unlock()
			f.cond.Broadcast()
		}
	}
}

// serve executes one request and returns the bytes written and the status.
func (f *fakeBlk) serve(t *testing.T, chain []virtiotest.Desc) (uint32, byte) {
	if len(chain) < 2 || chain[0].Len != hdrSize || chain[0].Write || !chain[len(chain)-1].Write || chain[len(chain)-1].Len != 1 {
		t.Errorf("malformed request chain %+v", chain)
		return 0, statusIOErr
	}
	typ := binary.LittleEndian.Uint32(chain[0].Data)
	sector := binary.LittleEndian.Uint64(chain[0].Data[8:])
	f.types = append(f.types, typ)
	if f.status != 0 {
		return 1, f.status
	}
	switch typ {
	case reqIn, reqOut:
		if len(chain) != 3 || chain[1].Write != (typ == reqIn) {
			t.Errorf("data descriptor %+v for type %d", chain[1], typ)
			return 1, statusIOErr
		}
		if int(chain[1].Len) > f.maxData {
			f.maxData = int(chain[1].Len)
		}
		off := sector * sectorUnit
		if off+uint64(chain[1].Len) > uint64(len(f.disk)) {
			return 1, statusIOErr
		}
		if typ == reqIn {
			copy(chain[1].Data, f.disk[off:])
			return chain[1].Len + 1, statusOK
		}
		copy(f.disk[off:], chain[1].Data)
		return 1, statusOK
	case reqFlush:
		return 1, statusOK
	}
	return 1, statusUnsup
}

func newTestDriver(t *testing.T, size int, feats uint64, chunk int) (*Driver, *fakeBlk) {
	t.Helper()
	mem := virtiotest.NewMemory()
	f := &fakeBlk{disk: make([]byte, size), kick: make(chan struct{}, 1)}
	f.cond = sync.NewCond(&f.mu)
	for i := range f.disk {
		f.disk[i] = byte(i>>9) ^ byte(i)
	}
	q, err := virtio.NewQueue(0, queueLen, mem, func() {
		select {
		case f.kick <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if f.ring, err = virtiotest.NewRing(mem, queueLen, q.DescAddr, q.AvailAddr, q.UsedAddr); err != nil {
		t.Fatal(err)
	}
	d, err := newDriver(f, q, mem, uint64(size/sectorUnit), sectorUnit, chunk, feats, "00:04.0", "fake")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go f.run(t, done)
	go d.complete()
	t.Cleanup(func() { close(done) })
	return d, f
}

func TestReadWrite(t *testing.T) {
	d, f := newTestDriver(t, 4<<20, 1<<featFlush, 64<<10)
	var _ disk.Driver = d
	want := append([]byte(nil), f.disk[3*512:3*512+1<<20]...)
	got := make([]byte, 1<<20)
	if err := d.ReadSectors(got, 3); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("read data differs")
	}
	if f.maxData != 64<<10 {
		t.Errorf("largest request %d bytes, want the 64 KiB chunk", f.maxData)
	}
	msg := bytes.Repeat([]byte("virtio-blk"), 3*1024)[:3*4096]
	if err := d.WriteSectors(msg, 100); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.disk[100*512:100*512+len(msg)], msg) {
		t.Errorf("write did not land")
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	if last := f.types[len(f.types)-1]; last != reqFlush {
		t.Errorf("flush sent type %d", last)
	}
	if err := d.ReadSectors(got[:512], 8192); !errors.Is(err, disk.ErrOutOfRange) {
		t.Errorf("read past the end: %v", err)
	}
	if err := d.ReadSectors(got[:100], 0); !errors.Is(err, disk.ErrUnaligned) {
		t.Errorf("partial block: %v", err)
	}
	// Concurrent readers of different ranges.
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			b := make([]byte, 200<<10)
			lba := int64(w * 1000)
			if err := d.ReadSectors(b, lba); err != nil {
				t.Error(err)
				return
			}
			f.mu.Lock()
			ok := bytes.Equal(b, f.disk[lba*512:lba*512+int64(len(b))])
			f.mu.Unlock()
			if !ok {
				t.Errorf("reader %d: data differs", w)
			}
		}(w)
	}
	wg.Wait()
	if s := d.Stats(); s.Errors != 0 || s.Timeouts != 0 || s.Queue.Free != queueLen {
		t.Errorf("stats after the run: %+v", s)
	}
}

func TestNoFlushFeature(t *testing.T) {
	d, f := newTestDriver(t, 1<<20, 0, 64<<10)
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(f.types) != 0 {
		t.Errorf("flush without VIRTIO_BLK_F_FLUSH sent %v", f.types)
	}
}

func TestReadOnly(t *testing.T) {
	d, _ := newTestDriver(t, 1<<20, 1<<featRO, 64<<10)
	if err := d.WriteSectors(make([]byte, 512), 0); !errors.Is(err, disk.ErrReadOnly) {
		t.Errorf("write to a read-only device: %v", err)
	}
}

func TestDeviceStatus(t *testing.T) {
	for _, tt := range []struct {
		status byte
		want   error
	}{{statusIOErr, ErrIO}, {statusUnsup, ErrUnsupp}, {0x7F, ErrIO}} {
		d, f := newTestDriver(t, 1<<20, 0, 64<<10)
		f.status = tt.status
		err := d.ReadSectors(make([]byte, 4096), 0)
		if !errors.Is(err, tt.want) {
			t.Errorf("status %#x: %v, want %v", tt.status, err, tt.want)
		}
		if d.Stats().Errors == 0 {
			t.Errorf("status %#x not counted", tt.status)
		}
	}
}

func TestTimeout(t *testing.T) {
	old := RequestTimeout
	RequestTimeout = 100 * time.Millisecond
	defer func() { RequestTimeout = old }()
	d, f := newTestDriver(t, 1<<20, 0, 64<<10)
	f.mu.Lock()
	f.silent = true
	f.mu.Unlock()
	if err := d.ReadSectors(make([]byte, 4096), 0); !errors.Is(err, ErrTimeout) {
		t.Fatalf("read from a silent device: %v, want ErrTimeout", err)
	}
	start := time.Now()
	if err := d.ReadSectors(make([]byte, 4096), 0); !errors.Is(err, ErrTimeout) {
		t.Errorf("next read: %v, want the device's ErrTimeout", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("a broken device took %v to refuse a request", el)
	}
	if d.Stats().Timeouts != 1 {
		t.Errorf("timeouts = %d, want 1", d.Stats().Timeouts)
	}
}
