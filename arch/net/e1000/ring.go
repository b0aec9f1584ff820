package e1000

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/godwit-hv/godwit/hostnet/nic"
)

// ring is descriptors and one rxBufSize buffer per descriptor, all in DMA memory: the
// descriptors in one allocation, the buffers in another.
type ring struct {
	n      int
	desc   []byte
	descPA uint64
	bufs   []byte
	bufsPA uint64
}

func (r *ring) alloc(dma DMA, n int) error {
	var err error
	r.n = n
	if r.desc, r.descPA, err = dma.Alloc(n * descSize); err != nil {
		return err
	}
	if r.descPA%ringBaseAlign != 0 {
		dma.Free(r.desc, r.descPA)
		r.desc = nil
		return fmt.Errorf("descriptor memory at %#x is not %d-byte aligned", r.descPA, ringBaseAlign)
	}
	if r.bufs, r.bufsPA, err = dma.Alloc(n * rxBufSize); err != nil {
		dma.Free(r.desc, r.descPA)
		r.desc = nil
		return err
	}
	clear(r.desc)
	return nil
}

func (r *ring) free(dma DMA) {
	if r.desc != nil {
		dma.Free(r.desc, r.descPA)
		r.desc = nil
	}
	if r.bufs != nil {
		dma.Free(r.bufs, r.bufsPA)
		r.bufs = nil
	}
}

func (r *ring) buf(i int) []byte        { return r.bufs[i*rxBufSize : (i+1)*rxBufSize] }
func (r *ring) bufPA(i int) uint64      { return r.bufsPA + uint64(i*rxBufSize) }
func (r *ring) d(i int) []byte          { return r.desc[i*descSize : (i+1)*descSize] }
func (r *ring) next(i int) int          { return (i + 1) % r.n }
func (r *ring) lenBytes() uint32        { return uint32(r.n * descSize) }
func (r *ring) baseLo() uint32          { return uint32(r.descPA) }
func (r *ring) baseHi() uint32          { return uint32(r.descPA >> 32) }
func (r *ring) statusWord(i int) uint32 { return load32(r.desc, i*descSize+rxdStatusW) }

// rxRing: the device owns descriptors RDH..RDT-1; the driver owns the rest, and next is the
// first one the device will write back. 8254x SDM 3.2.6 "Receive Descriptor Queue Structure".
type rxRing struct {
	ring
	next_      int
	inFragment bool // inside a frame spread over several descriptors, being dropped
}

// program fills every descriptor with its buffer and gives all but one to the device (head
// 0, tail n-1: a full ring would look empty, since head == tail means empty).
func (r *rxRing) program(regs Registers) {
	for i := 0; i < r.n; i++ {
		d := r.d(i)
		binary.LittleEndian.PutUint64(d[rxdAddr:], r.bufPA(i))
		store32(r.desc, i*descSize+rxdStatusW, 0)
	}
	r.next_, r.inFragment = 0, false
	regs.Write32(regRDBAL, r.baseLo())
	regs.Write32(regRDBAH, r.baseHi())
	regs.Write32(regRDLEN, r.lenBytes())
	regs.Write32(regRDH, 0)
	regs.Write32(regRDT, uint32(r.n-1))
}

// collect hands every written-back frame to deliver (status and errors as the device wrote
// them) and returns the descriptors to the device, at most budget of them. A frame spread over
// several descriptors (no EOP: longer than a buffer, which only a misbehaving device sends with
// long packets off) is dropped whole and reported through fragment once. It returns how many
// descriptors it took.
func (r *rxRing) collect(regs Registers, budget int, deliver func(frame []byte, status, errs uint8), fragment func()) int {
	took, last := 0, -1
	for took < budget {
		i := r.next_
		w := r.statusWord(i)
		status, errs := uint8(w), uint8(w>>8)
		if status&rxStatusDD == 0 {
			break
		}
		length := int(binary.LittleEndian.Uint16(r.d(i)[rxdLength:]))
		switch {
		case status&rxStatusEOP == 0:
			if !r.inFragment {
				fragment()
			}
			r.inFragment = true
		case r.inFragment:
			r.inFragment = false // the last piece of a dropped frame
		default:
			if length > rxBufSize {
				length = rxBufSize
				errs |= rxErrRXE
			}
			deliver(r.buf(i)[:length], status, errs)
		}
		store32(r.desc, i*descSize+rxdStatusW, 0)
		last = i
		r.next_ = r.next(i)
		took++
	}
	if last >= 0 {
		// Hand the descriptors back: the tail points one past the last one the device may use.
		regs.Write32(regRDT, uint32(last))
	}
	return took
}

// txRing: the driver fills descriptors at tail; the device consumes from head and writes DD
// back (RS is set on every descriptor); clean is the oldest descriptor not yet reclaimed.
// 8254x SDM 3.4 "Transmit Descriptor Ring Structure".
type txRing struct {
	ring
	mu           sync.Mutex
	tail, clean  int
	pending      int
	lastProgress time.Time
	closed       bool
}

func (t *txRing) program(regs Registers) {
	t.tail, t.clean, t.pending = 0, 0, 0
	regs.Write32(regTDBAL, t.baseLo())
	regs.Write32(regTDBAH, t.baseHi())
	regs.Write32(regTDLEN, t.lenBytes())
	regs.Write32(regTDH, 0)
	regs.Write32(regTDT, 0)
	t.lastProgress = time.Now()
}

// reclaim frees the descriptors the device has finished, oldest first. Caller holds mu.
func (t *txRing) reclaim() int {
	freed := 0
	for t.pending > 0 {
		if uint8(t.statusWord(t.clean))&txStaDD == 0 {
			break
		}
		store32(t.desc, t.clean*descSize+txdStatusW, 0)
		t.clean = t.next(t.clean)
		t.pending--
		freed++
	}
	if freed > 0 {
		t.lastProgress = time.Now()
	}
	return freed
}

// put copies frame into the tail buffer and hands it to the device; false means the ring is
// full (one descriptor always stays unused: TDH == TDT means empty). Caller holds mu.
func (t *txRing) put(regs Registers, frame []byte) bool {
	if t.pending >= t.n-1 {
		t.reclaim()
		if t.pending >= t.n-1 {
			return false
		}
	}
	i := t.tail
	b := t.buf(i)
	copy(b, frame)
	length := len(frame)
	if length < nic.MinFrameLen {
		clear(b[length:nic.MinFrameLen])
		length = nic.MinFrameLen
	}
	d := t.d(i)
	binary.LittleEndian.PutUint64(d[txdAddr:], t.bufPA(i))
	store32(t.desc, i*descSize+txdStatusW, 0)
	store32(t.desc, i*descSize+txdCmdWord, uint32(length)|uint32(txCmdEOP|txCmdIFCS|txCmdRS)<<txCmdShift)
	if t.pending == 0 {
		t.lastProgress = time.Now()
	}
	t.pending++
	t.tail = t.next(i)
	regs.Write32(regTDT, uint32(t.tail))
	return true
}

// stalled reports whether descriptors have been pending past timeout with the link up.
// Caller holds mu.
func (t *txRing) stalled(timeout time.Duration, up bool) (bool, int, time.Duration) {
	t.reclaim()
	since := time.Since(t.lastProgress)
	return up && t.pending > 0 && since > timeout, t.pending, since
}
