package virtio

import (
	"encoding/binary"
	"fmt"
	"sync"
)

// Split virtqueue layout. virtio 1.1, 2.6 "Split Virtqueues": the descriptor table (16 bytes
// per entry, 16-byte aligned; 2.6.5), the driver ("available") ring (flags, idx, ring[size],
// used_event; 2-byte aligned; 2.6.6) and the device ("used") ring (flags, idx, {id, len}[size],
// avail_event; 4-byte aligned; 2.6.8). Queue sizes are powers of two up to 32768 (2.6).
const (
	descSize       = 16
	descAddr       = 0
	descLen        = 8
	descFlags      = 12
	descNext       = 14
	descFNext      = 1 // VIRTQ_DESC_F_NEXT
	descFWrite     = 2 // VIRTQ_DESC_F_WRITE: device writes (otherwise reads)
	availFlags     = 0
	availIdx       = 2
	availRing      = 4
	availFNoIntr   = 1 // VIRTQ_AVAIL_F_NO_INTERRUPT
	usedFlags      = 0
	usedIdx        = 2
	usedRing       = 4
	usedElemSize   = 8
	usedFNoNotify  = 1 // VIRTQ_USED_F_NO_NOTIFY
	usedAlign      = 64
	MaxQueueSize   = 32768
	descTableAlign = 16
)

// Buf is one buffer of a descriptor chain: its physical address and length, and whether the
// device writes it (device-readable buffers come first in a chain; 2.6.4.2).
type Buf struct {
	Addr  uint64
	Len   uint32
	Write bool
}

// Used is a completed chain: its head descriptor and the bytes the device wrote.
type Used struct {
	Head uint16
	Len  uint32
	// Err is ErrBadUsed when the device claimed more written bytes than the chain's writable
	// buffers hold (Len is then clamped to that).
	Err error
}

// Queue is the driver side of one split virtqueue. It is safe for concurrent use.
type Queue struct {
	// Index is the queue number on its device.
	Index int
	// DescAddr, AvailAddr and UsedAddr are the physical addresses to give the device.
	DescAddr, AvailAddr, UsedAddr uint64

	mu         sync.Mutex
	size       uint16
	mem        Memory
	buf        []byte
	phys       uint64
	desc       []byte
	avail      []byte
	used       []byte
	link       []uint16 // shadow of each descriptor's next: the free list and the chains
	chainLen   []uint16 // descriptors in the chain at each head; 0 when not in flight
	writeCap   []uint64 // writable bytes of the chain at each head
	freeHead   uint16
	numFree    uint16
	availIdx   uint16
	availFlag  uint16
	lastUsed   uint16
	notify     func()
	badUsed    uint64
	kicks      uint64
	suppressed uint64
}

// layout returns the offsets of the rings and the total size for a queue of n entries.
func layout(n int) (availOff, usedOff, total int) {
	availOff = n * descSize
	usedOff = (availOff + availRing + 2*n + 2 + usedAlign - 1) &^ (usedAlign - 1)
	total = usedOff + usedRing + usedElemSize*n + 2
	return
}

// NewQueue allocates the rings of a queue of size entries (a power of two) in mem. notify
// tells the device that the driver ring has new entries (the transport's queue notification).
func NewQueue(index, size int, mem Memory, notify func()) (*Queue, error) {
	if size <= 0 || size > MaxQueueSize || size&(size-1) != 0 {
		return nil, fmt.Errorf("virtio: queue %d: size %d is not a power of two up to %d", index, size, MaxQueueSize)
	}
	availOff, usedOff, total := layout(size)
	buf, phys, err := mem.Alloc(total)
	if err != nil {
		return nil, fmt.Errorf("virtio: queue %d rings: %w", index, err)
	}
	if phys%descTableAlign != 0 {
		mem.Free(buf, phys)
		return nil, fmt.Errorf("virtio: queue %d: ring memory at %#x not %d-byte aligned", index, phys, descTableAlign)
	}
	clear(buf)
	q := &Queue{
		Index: index, size: uint16(size), mem: mem, buf: buf, phys: phys, notify: notify,
		desc: buf[:availOff], avail: buf[availOff:usedOff], used: buf[usedOff:total],
		DescAddr: phys, AvailAddr: phys + uint64(availOff), UsedAddr: phys + uint64(usedOff),
		link: make([]uint16, size), chainLen: make([]uint16, size), writeCap: make([]uint64, size),
		numFree: uint16(size),
	}
	for i := range q.link {
		q.link[i] = uint16(i + 1)
	}
	return q, nil
}

// Size is the number of descriptors.
func (q *Queue) Size() int { return int(q.size) }

// Free releases the rings. The device must have been reset first.
func (q *Queue) Free() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.buf != nil {
		q.mem.Free(q.buf, q.phys)
		q.buf = nil
	}
}

// NumFree is the number of free descriptors.
func (q *Queue) NumFree() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return int(q.numFree)
}

// Add places a chain of bufs in the driver ring and returns its head descriptor. Readable
// buffers must precede writable ones (virtio 1.1, 2.6.4.2). The device sees the chain at
// once; Kick tells it to look. ErrQueueFull says to collect completions first.
func (q *Queue) Add(bufs []Buf) (uint16, error) {
	if len(bufs) == 0 {
		return 0, fmt.Errorf("virtio: queue %d: empty chain", q.Index)
	}
	sawWrite := false
	var wcap uint64
	for i, b := range bufs {
		if b.Len == 0 {
			return 0, fmt.Errorf("virtio: queue %d: buffer %d has length 0", q.Index, i)
		}
		if !b.Write && sawWrite {
			return 0, fmt.Errorf("virtio: queue %d: readable buffer %d after a writable one", q.Index, i)
		}
		if b.Write {
			sawWrite = true
			wcap += uint64(b.Len)
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.buf == nil {
		return 0, fmt.Errorf("virtio: queue %d: freed", q.Index)
	}
	if len(bufs) > int(q.numFree) {
		return 0, fmt.Errorf("queue %d: chain of %d, %d free: %w", q.Index, len(bufs), q.numFree, ErrQueueFull)
	}
	head := q.freeHead
	d := head
	for i, b := range bufs {
		o := int(d) * descSize
		flags := uint16(0)
		if b.Write {
			flags |= descFWrite
		}
		next := q.link[d]
		if i < len(bufs)-1 {
			flags |= descFNext
		}
		binary.LittleEndian.PutUint64(q.desc[o+descAddr:], b.Addr)
		binary.LittleEndian.PutUint32(q.desc[o+descLen:], b.Len)
		binary.LittleEndian.PutUint16(q.desc[o+descFlags:], flags)
		binary.LittleEndian.PutUint16(q.desc[o+descNext:], next)
		if i < len(bufs)-1 {
			d = next
		} else {
			q.freeHead = next
		}
	}
	q.numFree -= uint16(len(bufs))
	q.chainLen[head] = uint16(len(bufs))
	q.writeCap[head] = wcap
	slot := int(q.availIdx&(q.size-1)) * 2
	binary.LittleEndian.PutUint16(q.avail[availRing+slot:], head)
	q.availIdx++
	// The ring entry and descriptors must be visible before the new index (2.6.13.3 "Updating
	// idx"): the index goes out with one atomic store, which on amd64 is also a full fence.
	store32(q.avail, availFlags, uint32(q.availFlag)|uint32(q.availIdx)<<16)
	return head, nil
}

// Kick notifies the device of new chains unless it asked not to be (VIRTQ_USED_F_NO_NOTIFY,
// 2.6.10 "Available Buffer Notification Suppression").
func (q *Queue) Kick() {
	q.mu.Lock()
	flags := load32(q.used, usedFlags) & 0xFFFF
	if flags&usedFNoNotify != 0 {
		q.suppressed++
		q.mu.Unlock()
		return
	}
	q.kicks++
	q.mu.Unlock()
	q.notify()
}

// Pending reports whether the device ring has entries Collect has not taken yet.
func (q *Queue) Pending() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.buf != nil && uint16(load32(q.used, usedFlags)>>16) != q.lastUsed
}

// Collect appends the chains the device has finished to out and frees their descriptors.
// An entry naming a descriptor that is not the head of a chain in flight is skipped and
// reported as ErrBadUsed (after the good entries are appended).
func (q *Queue) Collect(out []Used) ([]Used, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.buf == nil {
		return out, nil
	}
	var bad error
	idx := uint16(load32(q.used, usedFlags) >> 16)
	if n := idx - q.lastUsed; n > q.size {
		q.badUsed++
		return out, fmt.Errorf("queue %d: device index %d is %d ahead of %d, beyond the ring size %d: %w",
			q.Index, idx, n, q.lastUsed, q.size, ErrBadUsed)
	}
	for q.lastUsed != idx {
		e := usedRing + int(q.lastUsed&(q.size-1))*usedElemSize
		id := binary.LittleEndian.Uint32(q.used[e:])
		n := binary.LittleEndian.Uint32(q.used[e+4:])
		q.lastUsed++
		if id >= uint32(q.size) || q.chainLen[id] == 0 {
			q.badUsed++
			bad = fmt.Errorf("queue %d: used entry names descriptor %d, not a chain in flight: %w", q.Index, id, ErrBadUsed)
			continue
		}
		head := uint16(id)
		u := Used{Head: head, Len: n}
		if uint64(n) > q.writeCap[head] {
			q.badUsed++
			u.Len = uint32(q.writeCap[head])
			u.Err = fmt.Errorf("queue %d: device wrote %d bytes into a chain with room for %d: %w", q.Index, n, q.writeCap[head], ErrBadUsed)
		}
		// Return the chain to the free list: its last descriptor links to the old free head.
		last := head
		for i := uint16(1); i < q.chainLen[head]; i++ {
			last = q.link[last]
		}
		q.link[last] = q.freeHead
		q.freeHead = head
		q.numFree += q.chainLen[head]
		q.chainLen[head] = 0
		out = append(out, u)
	}
	return out, bad
}

// SetInterrupts asks the device to send (true) or not send (false) used-buffer notifications
// (VIRTQ_AVAIL_F_NO_INTERRUPT, 2.6.7 "Used Buffer Notification Suppression"; a hint only).
func (q *Queue) SetInterrupts(on bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if on {
		q.availFlag = 0
	} else {
		q.availFlag = availFNoIntr
	}
	if q.buf != nil {
		store32(q.avail, availFlags, uint32(q.availFlag)|uint32(q.availIdx)<<16)
	}
}

// QueueStats are a queue's counters.
type QueueStats struct {
	Size, Free        int
	Kicks             uint64 // notifications sent
	KicksSuppressed   uint64 // skipped because the device asked
	BadUsed           uint64 // malformed used entries
	AvailIdx, UsedIdx uint16
}

// Stats returns the queue's counters.
func (q *Queue) Stats() QueueStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return QueueStats{Size: int(q.size), Free: int(q.numFree), Kicks: q.kicks, KicksSuppressed: q.suppressed,
		BadUsed: q.badUsed, AvailIdx: q.availIdx, UsedIdx: q.lastUsed}
}
