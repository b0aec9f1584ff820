package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Memory is guest RAM as the device sees it; hv.Memory satisfies it.
// Slice returns n bytes at guest-physical address gpa, or an error if any
// of them lies outside RAM.
type Memory interface {
	Slice(gpa, n uint64) ([]byte, error)
}

// ErrMalformed reports a queue or request the driver built against the
// specification (a descriptor index out of range, a loop in a chain, a
// buffer outside guest RAM, ...). The transport answers it by setting
// DEVICE_NEEDS_RESET and stopping the device until the driver resets it.
var ErrMalformed = errors.New("virtio: malformed virtqueue")

// Buf is one buffer of a descriptor chain: guest memory the device reads
// (Write false) or fills (Write true).
type Buf struct {
	Data  []byte
	Write bool
}

// Chain is a descriptor chain popped from the available ring. Its Bufs
// slice is reused from one chain to the next.
type Chain struct {
	Head uint16
	Bufs []Buf
}

// Queue is one split virtqueue (Virtio v1.2, 2.7) in guest memory.
type Queue struct {
	mem     Memory
	maxSize uint16

	size                 uint16
	ready                bool
	desc, driver, device uint64
	lastAvail            uint16 // next available ring entry to consume
	usedIdx              uint16 // next used ring entry to fill
	signalled            uint16 // usedIdx when the driver was last notified
	eventIdx, indirect   bool   // negotiated features
	pending              bool   // used entries added since the last interrupt check
}

func newQueue(mem Memory, max uint16) *Queue {
	return &Queue{mem: mem, maxSize: max, size: max}
}

// Size returns the queue size the driver chose.
func (q *Queue) Size() uint16 { return q.size }

func (q *Queue) reset() {
	*q = Queue{mem: q.mem, maxSize: q.maxSize, size: q.maxSize}
}

func (q *Queue) le16(gpa uint64) (uint16, error) {
	b, err := q.mem.Slice(gpa, 2)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return binary.LittleEndian.Uint16(b), nil
}

func (q *Queue) put16(gpa uint64, v uint16) error {
	b, err := q.mem.Slice(gpa, 2)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	binary.LittleEndian.PutUint16(b, v)
	return nil
}

// enable checks the queue's layout (2.7 "Virtqueue Part Alignment",
// sizes a power of two up to the maximum, every part inside guest RAM)
// and makes it ready.
func (q *Queue) enable(features uint64) error {
	n := uint64(q.size)
	switch {
	case q.size == 0 || q.size > q.maxSize || q.size&(q.size-1) != 0:
		return fmt.Errorf("%w: queue size %d (max %d)", ErrMalformed, q.size, q.maxSize)
	case q.desc%descAlign != 0 || q.driver%availAlign != 0 || q.device%usedAlign != 0:
		return fmt.Errorf("%w: misaligned rings desc %#x avail %#x used %#x", ErrMalformed, q.desc, q.driver, q.device)
	}
	parts := [...]struct {
		name      string
		gpa, size uint64
	}{
		{"descriptor table", q.desc, descSize * n},
		{"available ring", q.driver, ringHeader + availElemSize*n + eventSize},
		{"used ring", q.device, ringHeader + usedElemSize*n + eventSize},
	}
	for _, p := range parts {
		if _, err := q.mem.Slice(p.gpa, p.size); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrMalformed, p.name, err)
		}
	}
	q.eventIdx = features&FeatureRingEventIdx != 0
	q.indirect = features&FeatureRingIndirectDesc != 0
	q.ready = true
	return nil
}

// Pop takes the next chain from the available ring into c. It returns
// false when the ring is empty. A malformed ring or chain is an error
// wrapping ErrMalformed. Pop does not allocate once c.Bufs has grown to
// the longest chain.
func (q *Queue) Pop(c *Chain) (bool, error) {
	if !q.ready {
		return false, nil
	}
	idx, err := q.le16(q.driver + 2)
	if err != nil {
		return false, err
	}
	if n := idx - q.lastAvail; n == 0 {
		return false, nil
	} else if n > q.size {
		return false, fmt.Errorf("%w: available index %d is %d entries ahead of %d (queue size %d)", ErrMalformed, idx, n, q.lastAvail, q.size)
	}
	head, err := q.le16(q.driver + ringHeader + availElemSize*uint64(q.lastAvail%q.size))
	if err != nil {
		return false, err
	}
	q.lastAvail++
	if q.eventIdx {
		// avail_event: notify us again only past this entry (2.7.10).
		if err := q.put16(q.device+ringHeader+usedElemSize*uint64(q.size), q.lastAvail); err != nil {
			return false, err
		}
	}
	if err := q.walk(head, c); err != nil {
		return false, err
	}
	return true, nil
}

// readDesc reads descriptor i of the table at table.
func (q *Queue) readDesc(table uint64, i uint16) (addr uint64, length uint32, flags, next uint16, err error) {
	b, err := q.mem.Slice(table+descSize*uint64(i), descSize)
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("%w: descriptor %d: %v", ErrMalformed, i, err)
	}
	le := binary.LittleEndian
	return le.Uint64(b[0:]), le.Uint32(b[8:]), le.Uint16(b[12:]), le.Uint16(b[14:]), nil
}

// walk follows the chain at head, resolving indirect tables, into c.
// Loops are caught by bounding the number of descriptors visited by the
// size of the table being walked (2.7.5.2: a chain longer than the
// queue size is invalid).
func (q *Queue) walk(head uint16, c *Chain) error {
	c.Head = head
	c.Bufs = c.Bufs[:0]
	if head >= q.size {
		return fmt.Errorf("%w: head descriptor %d in a queue of %d", ErrMalformed, head, q.size)
	}
	table, tableLen := q.desc, uint32(q.size)
	i, seen, inIndirect := head, uint32(0), false
	for {
		if seen++; seen > tableLen {
			return fmt.Errorf("%w: chain at %d longer than its table of %d (a loop?)", ErrMalformed, head, tableLen)
		}
		addr, length, flags, next, err := q.readDesc(table, i)
		if err != nil {
			return err
		}
		if flags&DescFIndirect != 0 {
			switch {
			case !q.indirect:
				return fmt.Errorf("%w: indirect descriptor %d without VIRTIO_F_INDIRECT_DESC", ErrMalformed, i)
			case inIndirect:
				return fmt.Errorf("%w: indirect descriptor %d inside an indirect table", ErrMalformed, i)
			case flags&DescFNext != 0:
				return fmt.Errorf("%w: descriptor %d has both INDIRECT and NEXT", ErrMalformed, i)
			case length == 0 || length%descSize != 0 || length/descSize > MaxQueueSize:
				return fmt.Errorf("%w: indirect table of %d bytes", ErrMalformed, length)
			}
			if _, err := q.mem.Slice(addr, uint64(length)); err != nil {
				return fmt.Errorf("%w: indirect table: %v", ErrMalformed, err)
			}
			table, tableLen, i, seen, inIndirect = addr, length/descSize, 0, 0, true
			continue
		}
		data, err := q.mem.Slice(addr, uint64(length))
		if err != nil {
			return fmt.Errorf("%w: descriptor %d buffer: %v", ErrMalformed, i, err)
		}
		c.Bufs = append(c.Bufs, Buf{Data: data, Write: flags&DescFWrite != 0})
		if flags&DescFNext == 0 {
			return nil
		}
		if uint32(next) >= tableLen {
			return fmt.Errorf("%w: descriptor %d: next %d outside a table of %d", ErrMalformed, i, next, tableLen)
		}
		i = next
	}
}

// Push returns chain head to the driver through the used ring, with
// written the number of bytes the device wrote into its buffers.
func (q *Queue) Push(head uint16, written uint32) error {
	if !q.ready {
		return nil
	}
	b, err := q.mem.Slice(q.device+ringHeader+usedElemSize*uint64(q.usedIdx%q.size), usedElemSize)
	if err != nil {
		return fmt.Errorf("%w: used ring: %v", ErrMalformed, err)
	}
	binary.LittleEndian.PutUint32(b[0:], uint32(head))
	binary.LittleEndian.PutUint32(b[4:], written)
	// The element is stored before the index that publishes it (2.7.8);
	// on x86 stores are not reordered with other stores.
	q.usedIdx++
	q.pending = true
	return q.put16(q.device+2, q.usedIdx)
}

// needInterrupt reports whether the driver wants a used buffer
// notification for the entries pushed since the last one (2.7.7 and
// 2.7.10 "Used Buffer Notification Suppression"), and resets the count.
func (q *Queue) needInterrupt() (bool, error) {
	if !q.pending {
		return false, nil
	}
	q.pending = false
	if q.eventIdx {
		event, err := q.le16(q.driver + ringHeader + availElemSize*uint64(q.size))
		if err != nil {
			return false, err
		}
		old := q.signalled
		q.signalled = q.usedIdx
		// vring_need_event: the driver asked to hear once used_idx passes event.
		return q.usedIdx-event-1 < q.usedIdx-old, nil
	}
	flags, err := q.le16(q.driver)
	if err != nil {
		return false, err
	}
	return flags&AvailFNoInterrupt == 0, nil
}

// QueueState is the migratable state of a queue.
type QueueState struct {
	Size                 uint16
	Ready                bool
	Desc, Driver, Device uint64
	LastAvail, UsedIdx   uint16
	Signalled            uint16
}

func (q *Queue) save() QueueState {
	return QueueState{Size: q.size, Ready: q.ready, Desc: q.desc, Driver: q.driver, Device: q.device,
		LastAvail: q.lastAvail, UsedIdx: q.usedIdx, Signalled: q.signalled}
}

func (q *Queue) restore(s QueueState, features uint64) error {
	q.reset()
	q.size, q.desc, q.driver, q.device = s.Size, s.Desc, s.Driver, s.Device
	if s.Ready {
		if err := q.enable(features); err != nil {
			return err
		}
	} else if s.Size > q.maxSize {
		return fmt.Errorf("queue size %d over %d", s.Size, q.maxSize)
	}
	q.lastAvail, q.usedIdx, q.signalled = s.LastAvail, s.UsedIdx, s.Signalled
	return nil
}
