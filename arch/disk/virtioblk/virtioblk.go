// Package virtioblk drives the host's virtio-blk devices (virtio 1.1, 5.2 "Block Device") on
// the modern virtio-pci transport of arch/virtio: interrupt-driven completion (MSI-X, or INTx
// with the ISR), up to one request per three descriptors of the queue in flight, large reads
// and writes split into chunks that are pipelined, FLUSH when the device offers it, and every
// request bounded by a timeout so a device that stops answering gives an error, not a hang.
// Data goes through per-request bounce buffers in DMA memory, because the Go heap is not
// identity-mapped.
package virtioblk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/godwit-hv/godwit/arch/disk"
	"github.com/godwit-hv/godwit/arch/pci"
	"github.com/godwit-hv/godwit/arch/virtio"
)

// Feature bits. virtio 1.1, 5.2.3 "Feature bits".
const (
	featSizeMax = 1 // VIRTIO_BLK_F_SIZE_MAX
	featSegMax  = 2 // VIRTIO_BLK_F_SEG_MAX
	featRO      = 5 // VIRTIO_BLK_F_RO
	featBlkSize = 6 // VIRTIO_BLK_F_BLK_SIZE
	featFlush   = 9 // VIRTIO_BLK_F_FLUSH
)

// Device configuration layout. virtio 1.1, 5.2.4 "Device configuration layout".
const (
	cfgCapacity = 0  // le64, in 512-byte sectors
	cfgSizeMax  = 8  // le32: largest single segment
	cfgSegMax   = 12 // le32
	cfgBlkSize  = 20 // le32
)

// Requests. virtio 1.1, 5.2.6 "Device Operation": a header (le32 type, le32 reserved, le64
// sector in 512-byte units), the data, and a status byte the device writes.
const (
	reqIn       = 0 // VIRTIO_BLK_T_IN
	reqOut      = 1 // VIRTIO_BLK_T_OUT
	reqFlush    = 4 // VIRTIO_BLK_T_FLUSH
	hdrSize     = 16
	statusOK    = 0 // VIRTIO_BLK_S_OK
	statusIOErr = 1 // VIRTIO_BLK_S_IOERR
	statusUnsup = 2 // VIRTIO_BLK_S_UNSUPP
	sectorUnit  = 512
	statusOff   = hdrSize
	dataOff     = 4096
	maxChunk    = 128 << 10
	queueLen    = 128
	descPerReq  = 3
	maxSlots    = queueLen / descPerReq
	perCall     = 8 // chunks of one call in flight at once
)

// Timeouts.
var (
	// RequestTimeout bounds every request: past it the device is declared broken.
	RequestTimeout = 30 * time.Second
	// pollEvery bounds the completion loop's interrupt wait, so a lost interrupt costs a
	// delay (counted in Stats.Rescued) rather than a request.
	pollEvery = time.Second
)

// Errors.
var (
	ErrIO      = errors.New("virtio-blk: device reported an I/O error")
	ErrUnsupp  = errors.New("virtio-blk: device does not support the request")
	ErrTimeout = errors.New("virtio-blk: device stopped answering")
	ErrBroken  = errors.New("virtio-blk: device disabled after an earlier failure")
)

type slot struct {
	mem    []byte
	pa     uint64
	data   []byte
	done   chan byte
	status []byte
}

// transport is what the request path needs from the virtio device: the queue's interrupt
// (virtio.Device in the kernel, a fake in tests).
type transport interface {
	IRQCount(queue int) uint64
	WaitQueue(queue int, seen uint64, timeout time.Duration) (uint64, error)
}

// Driver is one virtio-blk device. It implements disk.Driver.
type Driver struct {
	dev      transport
	loc      string // PCI address
	irqDesc  string
	q        *virtio.Queue
	sectors  int64 // in units of blkSize
	blkSize  int
	readOnly bool
	flush    bool
	chunk    int
	features uint64

	free     chan *slot
	mu       sync.Mutex
	inflight map[uint16]*slot
	broken   atomic.Pointer[error]

	requests, errs, timeouts, rescued, badUsed atomic.Uint64
}

// Probe starts a driver on every virtio-blk function in devs, in order. Functions that fail to
// start are reported in errs and skipped.
func Probe(devs []*pci.Device) (drivers []*Driver, errs []error) {
	for _, d := range devs {
		if t, ok := virtio.DeviceType(d); !ok || t != virtio.TypeBlock {
			continue
		}
		drv, err := New(d)
		if err != nil {
			errs = append(errs, fmt.Errorf("virtio-blk %v: %w", d.Addr, err))
			continue
		}
		drivers = append(drivers, drv)
	}
	return drivers, errs
}

// New initializes the virtio-blk function d.
func New(d *pci.Device) (*Driver, error) {
	v, err := virtio.Open(d, virtio.Options{})
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Driver, error) {
		v.Fail()
		return nil, err
	}
	feats, err := v.Negotiate(1<<featSizeMax | 1<<featSegMax | 1<<featRO | 1<<featBlkSize | 1<<featFlush)
	if err != nil {
		return nil, err
	}
	if err := v.SetupInterrupts(1); err != nil {
		return fail(err)
	}
	q, err := v.SetupQueue(0, queueLen)
	if err != nil {
		return fail(err)
	}
	cfg := v.DeviceConfig()
	if cfg == nil || cfg.Size() < cfgBlkSize+4 {
		return fail(fmt.Errorf("virtio-blk %v: device configuration missing or short", d.Addr))
	}
	var capacity uint64
	var sizeMax, blkSize uint32
	for try := 0; ; try++ {
		gen := v.ConfigGeneration()
		capacity = uint64(cfg.Read32(cfgCapacity)) | uint64(cfg.Read32(cfgCapacity+4))<<32
		sizeMax, blkSize = cfg.Read32(cfgSizeMax), cfg.Read32(cfgBlkSize)
		if v.ConfigGeneration() == gen {
			break
		}
		if try == 10 {
			return fail(fmt.Errorf("virtio-blk %v: configuration keeps changing while read", d.Addr))
		}
	}
	bs := sectorUnit
	if feats&(1<<featBlkSize) != 0 && blkSize >= sectorUnit && blkSize <= 4096 && blkSize&(blkSize-1) == 0 {
		bs = int(blkSize)
	}
	chunk := maxChunk
	if feats&(1<<featSizeMax) != 0 && sizeMax > 0 && int(sizeMax) < chunk {
		chunk = int(sizeMax) / bs * bs
		if chunk == 0 {
			return fail(fmt.Errorf("virtio-blk %v: size_max %d below the %d-byte block", d.Addr, sizeMax, bs))
		}
	}
	irq := fmt.Sprintf("MSI-X vector %#x", v.Vector(0))
	if intx, r := v.INTx(); intx {
		irq = fmt.Sprintf("INTx %v vector %#x", r, v.Vector(0))
	}
	irq += fmt.Sprintf(", registers at %#x", v.CommonConfigAddr())
	drv, err := newDriver(v, q, virtio.HostMemory{}, capacity, bs, chunk, feats, d.Addr.String(), irq)
	if err != nil {
		return fail(err)
	}
	v.Ready()
	go drv.complete()
	return drv, nil
}

// newDriver sets up the request slots of a driver over an initialized queue; capacity is in
// 512-byte sectors, bs the block size. The caller starts complete.
func newDriver(t transport, q *virtio.Queue, mem virtio.Memory, capacity uint64, bs, chunk int, feats uint64, loc, irq string) (*Driver, error) {
	drv := &Driver{
		dev: t, loc: loc, irqDesc: irq, q: q, sectors: int64(capacity * sectorUnit / uint64(bs)), blkSize: bs,
		readOnly: feats&(1<<featRO) != 0, flush: feats&(1<<featFlush) != 0, chunk: chunk, features: feats,
		inflight: map[uint16]*slot{},
	}
	nslots := min(maxSlots, q.Size()/descPerReq)
	if nslots == 0 {
		return nil, fmt.Errorf("virtio-blk %s: queue of %d entries holds no request", loc, q.Size())
	}
	drv.free = make(chan *slot, nslots)
	for i := 0; i < nslots; i++ {
		m, pa, err := mem.Alloc(dataOff + chunk)
		if err != nil {
			return nil, err
		}
		drv.free <- &slot{mem: m, pa: pa, data: m[dataOff:], status: m[statusOff : statusOff+1], done: make(chan byte, 1)}
	}
	return drv, nil
}

// complete takes finished requests off the device ring and hands each its status.
func (d *Driver) complete() {
	var used []virtio.Used
	for {
		seen := d.dev.IRQCount(0)
		var err error
		d.mu.Lock()
		used, err = d.q.Collect(used[:0])
		for _, u := range used {
			s := d.inflight[u.Head]
			delete(d.inflight, u.Head)
			if s != nil {
				s.done <- s.status[0]
			}
		}
		d.mu.Unlock()
		if err != nil {
			d.badUsed.Add(1)
		}
		if len(used) > 0 {
			continue
		}
		_, err = d.dev.WaitQueue(0, seen, pollEvery)
		switch {
		case errors.Is(err, virtio.ErrDeviceReset):
			e := fmt.Errorf("%w: %w", ErrBroken, err)
			d.broken.Store(&e)
			return
		case err != nil:
			if d.q.Pending() {
				d.rescued.Add(1)
			}
		}
	}
}

func (d *Driver) brokenErr() error {
	if e := d.broken.Load(); e != nil {
		return *e
	}
	return nil
}

// submit starts one request on a free slot; data is copied in for writes.
func (d *Driver) submit(typ uint32, sector uint64, p []byte) (*slot, error) {
	if err := d.brokenErr(); err != nil {
		return nil, err
	}
	s := <-d.free
	binary.LittleEndian.PutUint32(s.mem[0:], typ)
	binary.LittleEndian.PutUint32(s.mem[4:], 0)
	binary.LittleEndian.PutUint64(s.mem[8:], sector)
	s.status[0] = 0xFF
	bufs := []virtio.Buf{{Addr: s.pa, Len: hdrSize}}
	if len(p) > 0 {
		if typ == reqOut {
			copy(s.data, p)
		}
		bufs = append(bufs, virtio.Buf{Addr: s.pa + dataOff, Len: uint32(len(p)), Write: typ == reqIn})
	}
	bufs = append(bufs, virtio.Buf{Addr: s.pa + statusOff, Len: 1, Write: true})
	d.mu.Lock()
	head, err := d.q.Add(bufs)
	if err == nil {
		d.inflight[head] = s
	}
	d.mu.Unlock()
	if err != nil {
		d.free <- s
		return nil, err
	}
	d.requests.Add(1)
	d.q.Kick()
	return s, nil
}

// wait finishes a request: copies read data to p and releases the slot.
func (d *Driver) wait(s *slot, p []byte, read bool, what string) error {
	t := time.NewTimer(RequestTimeout)
	defer t.Stop()
	select {
	case st := <-s.done:
		if read {
			copy(p, s.data[:len(p)])
		}
		d.free <- s
		switch st {
		case statusOK:
			return nil
		case statusIOErr:
			d.errs.Add(1)
			return fmt.Errorf("%s: %w", what, ErrIO)
		case statusUnsup:
			d.errs.Add(1)
			return fmt.Errorf("%s: %w", what, ErrUnsupp)
		}
		d.errs.Add(1)
		return fmt.Errorf("%s: status byte %#x: %w", what, st, ErrIO)
	case <-t.C:
		// The device may still write into the slot: it is never reused, and the device is
		// taken out of service.
		d.timeouts.Add(1)
		e := fmt.Errorf("%s after %v: %w", what, RequestTimeout, ErrTimeout)
		d.broken.CompareAndSwap(nil, &e)
		return e
	}
}

// rw moves whole blocks in chunks, several in flight.
func (d *Driver) rw(p []byte, lba int64, typ uint32) error {
	bs := int64(d.blkSize)
	if len(p) == 0 || int64(len(p))%bs != 0 {
		return fmt.Errorf("virtio-blk: %d bytes: %w", len(p), disk.ErrUnaligned)
	}
	if lba < 0 || lba > d.sectors || int64(len(p))/bs > d.sectors-lba {
		return fmt.Errorf("virtio-blk: blocks %d+%d of %d: %w", lba, int64(len(p))/bs, d.sectors, disk.ErrOutOfRange)
	}
	type req struct {
		s   *slot
		p   []byte
		lba int64
	}
	var pend []req
	var firstErr error
	finish := func(r req) {
		what := fmt.Sprintf("virtio-blk %s: %s block %d", d.loc, map[uint32]string{reqIn: "read", reqOut: "write"}[typ], r.lba)
		if err := d.wait(r.s, r.p, typ == reqIn, what); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for off := 0; off < len(p) && firstErr == nil; off += d.chunk {
		n := min(d.chunk, len(p)-off)
		b := lba + int64(off)/bs
		s, err := d.submit(typ, uint64(b*bs/sectorUnit), p[off:off+n])
		if err != nil {
			firstErr = err
			break
		}
		pend = append(pend, req{s, p[off : off+n], b})
		if len(pend) == perCall {
			finish(pend[0])
			pend = pend[1:]
		}
	}
	for _, r := range pend {
		finish(r)
	}
	return firstErr
}

// ReadSectors reads len(p)/SectorSize blocks at lba.
func (d *Driver) ReadSectors(p []byte, lba int64) error { return d.rw(p, lba, reqIn) }

// WriteSectors writes len(p)/SectorSize blocks at lba.
func (d *Driver) WriteSectors(p []byte, lba int64) error {
	if d.readOnly {
		return fmt.Errorf("virtio-blk %s: %w", d.loc, disk.ErrReadOnly)
	}
	return d.rw(p, lba, reqOut)
}

// Flush asks the device to make written data durable (VIRTIO_BLK_T_FLUSH). Without
// VIRTIO_BLK_F_FLUSH the device has no volatile cache to flush (5.2.6.2).
func (d *Driver) Flush() error {
	if !d.flush {
		return nil
	}
	s, err := d.submit(reqFlush, 0, nil)
	if err != nil {
		return err
	}
	return d.wait(s, nil, false, fmt.Sprintf("virtio-blk %s: flush", d.loc))
}

func (d *Driver) Kind() string     { return "virtio-blk" }
func (d *Driver) Location() string { return "pci " + d.loc }
func (d *Driver) Sectors() int64   { return d.sectors }
func (d *Driver) SectorSize() int  { return d.blkSize }
func (d *Driver) IRQCount() uint64 { return d.dev.IRQCount(0) }

// Stats are the driver's counters.
type Stats struct {
	Requests, Errors, Timeouts uint64
	Rescued                    uint64 // completions found after an interrupt wait timed out
	BadUsed                    uint64
	Queue                      virtio.QueueStats
}

// Stats returns the driver's counters.
func (d *Driver) Stats() Stats {
	return Stats{Requests: d.requests.Load(), Errors: d.errs.Load(), Timeouts: d.timeouts.Load(),
		Rescued: d.rescued.Load(), BadUsed: d.badUsed.Load(), Queue: d.q.Stats()}
}

// Info describes the interrupt mode, queue and features.
func (d *Driver) Info() string {
	s := d.Stats()
	flags := ""
	if d.flush {
		flags += " flush"
	}
	if d.readOnly {
		flags += " ro"
	}
	return fmt.Sprintf("%s, queue %d, %d requests, %d errors, %d timeouts, %d rescued%s",
		d.irqDesc, s.Queue.Size, s.Requests, s.Errors, s.Timeouts, s.Rescued, flags)
}
