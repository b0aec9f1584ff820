package virtio_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/godwit-hv/godwit/arch/virtio"
	"github.com/godwit-hv/godwit/arch/virtio/virtiotest"
)

type rig struct {
	mem     *virtiotest.Memory
	q       *virtio.Queue
	dev     *virtiotest.Ring
	notifes atomic.Int64
}

func newRig(t *testing.T, size int) *rig {
	t.Helper()
	r := &rig{mem: virtiotest.NewMemory()}
	q, err := virtio.NewQueue(0, size, r.mem, func() { r.notifes.Add(1) })
	if err != nil {
		t.Fatalf("NewQueue(%d): %v", size, err)
	}
	dev, err := virtiotest.NewRing(r.mem, size, q.DescAddr, q.AvailAddr, q.UsedAddr)
	if err != nil {
		t.Fatalf("NewRing: %v", err)
	}
	r.q, r.dev = q, dev
	return r
}

// buf allocates a DMA buffer holding data (or n zero bytes for a writable one).
func (r *rig) buf(t *testing.T, data []byte, n int, write bool) (virtio.Buf, []byte) {
	t.Helper()
	if data != nil {
		n = len(data)
	}
	b, pa, err := r.mem.Alloc(n)
	if err != nil {
		t.Fatal(err)
	}
	copy(b, data)
	return virtio.Buf{Addr: pa, Len: uint32(n), Write: write}, b
}

func TestQueueRoundTrip(t *testing.T) {
	r := newRig(t, 8)
	hdr, _ := r.buf(t, []byte("header"), 0, false)
	body, _ := r.buf(t, []byte("payload bytes"), 0, false)
	resp, respMem := r.buf(t, nil, 16, true)
	head, err := r.q.Add([]virtio.Buf{hdr, body, resp})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.q.NumFree(); got != 5 {
		t.Errorf("NumFree after a 3-chain = %d, want 5", got)
	}
	r.q.Kick()
	if r.notifes.Load() != 1 {
		t.Errorf("notifications = %d, want 1", r.notifes.Load())
	}
	dh, chain, ok, err := r.dev.Next()
	if !ok || err != nil || dh != head || len(chain) != 3 {
		t.Fatalf("device Next = head %d, %d descs, ok %v, err %v; want head %d, 3", dh, len(chain), ok, err, head)
	}
	if string(chain[0].Data) != "header" || string(chain[1].Data) != "payload bytes" || chain[1].Write || !chain[2].Write {
		t.Errorf("chain = %+v", chain)
	}
	copy(chain[2].Data, "done")
	if r.q.Pending() {
		t.Errorf("Pending before completion")
	}
	r.dev.Complete(dh, 4)
	if !r.q.Pending() {
		t.Errorf("not Pending after completion")
	}
	used, err := r.q.Collect(nil)
	if err != nil || len(used) != 1 || used[0].Head != head || used[0].Len != 4 || used[0].Err != nil {
		t.Fatalf("Collect = %+v, %v; want head %d len 4", used, err, head)
	}
	if !bytes.Equal(respMem[:4], []byte("done")) {
		t.Errorf("response = %q", respMem[:4])
	}
	if r.q.NumFree() != 8 {
		t.Errorf("NumFree after collect = %d, want 8", r.q.NumFree())
	}
	if _, _, ok, _ := r.dev.Next(); ok {
		t.Errorf("device sees a second chain")
	}
}

func TestQueueFullAndOutOfOrder(t *testing.T) {
	const size = 16
	r := newRig(t, size)
	b, _ := r.buf(t, nil, 512, true)
	heads := map[uint16]bool{}
	for i := 0; i < size; i++ {
		h, err := r.q.Add([]virtio.Buf{b})
		if err != nil {
			t.Fatalf("Add %d: %v", i, err)
		}
		heads[h] = true
	}
	if len(heads) != size {
		t.Fatalf("%d distinct heads, want %d", len(heads), size)
	}
	if _, err := r.q.Add([]virtio.Buf{b}); !errors.Is(err, virtio.ErrQueueFull) {
		t.Fatalf("Add on a full queue: %v, want ErrQueueFull", err)
	}
	var got []uint16
	for {
		h, _, ok, err := r.dev.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got = append(got, h)
	}
	// Complete in reverse order.
	for i := len(got) - 1; i >= 0; i-- {
		r.dev.Complete(got[i], 512)
	}
	used, err := r.q.Collect(nil)
	if err != nil || len(used) != size {
		t.Fatalf("Collect = %d entries, %v", len(used), err)
	}
	for i, u := range used {
		if u.Head != got[len(got)-1-i] {
			t.Errorf("used[%d].Head = %d, want %d", i, u.Head, got[len(got)-1-i])
		}
	}
	if r.q.NumFree() != size {
		t.Errorf("NumFree = %d, want %d", r.q.NumFree(), size)
	}
}

// TestQueueWrap runs many rounds of chains of varying length completed in random order, past
// the 16-bit index wrap, and checks every chain arrives intact.
func TestQueueWrap(t *testing.T) {
	const size = 8
	r := newRig(t, size)
	rng := rand.New(rand.NewPCG(1, 2))
	inflight := map[uint16]req{}
	var devPending []uint16
	adds := 0
	for round := 0; round < 70000; round++ {
		// Add while there is room.
		for r.q.NumFree() > 0 && rng.IntN(3) > 0 {
			n := 1 + rng.IntN(min(3, r.q.NumFree()))
			payload := []byte{byte(round), byte(round >> 8), byte(n)}
			var bufs []virtio.Buf
			var mems [][]byte
			in, inMem := r.buf(t, payload, 0, false)
			bufs, mems = append(bufs, in), append(mems, inMem)
			var out []byte
			for i := 1; i < n; i++ {
				b, m := r.buf(t, nil, 4, true)
				bufs, mems = append(bufs, b), append(mems, m)
				out = m
			}
			h, err := r.q.Add(bufs)
			if err != nil {
				t.Fatalf("round %d: Add: %v", round, err)
			}
			inflight[h] = req{payload, out, bufs, mems}
			adds++
		}
		r.q.Kick()
		for {
			h, chain, ok, err := r.dev.Next()
			if err != nil {
				t.Fatalf("round %d: device: %v", round, err)
			}
			if !ok {
				break
			}
			if want := inflight[h].payload; !bytes.Equal(chain[0].Data, want) || len(chain) != int(want[2]) {
				t.Fatalf("round %d: chain %d carries %x (%d descs), want %x", round, h, chain[0].Data, len(chain), want)
			}
			if len(chain) > 1 {
				copy(chain[len(chain)-1].Data, chain[0].Data)
			}
			devPending = append(devPending, h)
		}
		rng.Shuffle(len(devPending), func(i, j int) { devPending[i], devPending[j] = devPending[j], devPending[i] })
		k := rng.IntN(len(devPending) + 1)
		for _, h := range devPending[:k] {
			n := uint32(0)
			if len(inflight[h].payload) > 0 && inflight[h].payload[2] > 1 {
				n = 3
			}
			r.dev.Complete(h, n)
		}
		devPending = devPending[k:]
		used, err := r.q.Collect(nil)
		if err != nil {
			t.Fatalf("round %d: Collect: %v", round, err)
		}
		for _, u := range used {
			rq, ok := inflight[u.Head]
			if !ok {
				t.Fatalf("round %d: completion of %d not in flight", round, u.Head)
			}
			if rq.out != nil && !bytes.Equal(rq.out[:3], rq.payload) {
				t.Fatalf("round %d: response %x, want %x", round, rq.out[:3], rq.payload)
			}
			for i, b := range rq.bufs {
				r.mem.Free(rq.mems[i], b.Addr)
			}
			delete(inflight, u.Head)
		}
		if got, want := r.q.NumFree(), size-descsInFlight(inflight); got != want {
			t.Fatalf("round %d: NumFree = %d, want %d", round, got, want)
		}
	}
	if adds <= 1<<16 {
		t.Errorf("%d chains added: the 16-bit ring index never wrapped", adds)
	}
}

type req struct {
	payload []byte
	out     []byte
	bufs    []virtio.Buf
	mems    [][]byte
}

func descsInFlight(m map[uint16]req) int {
	n := 0
	for _, r := range m {
		n += int(r.payload[2])
	}
	return n
}

func TestQueueBadUsed(t *testing.T) {
	r := newRig(t, 4)
	b, _ := r.buf(t, nil, 8, true)
	h, _ := r.q.Add([]virtio.Buf{b})
	r.dev.Next()
	r.dev.Complete(3, 0)  // never made available
	r.dev.Complete(h, 99) // more than the 8 writable bytes
	used, err := r.q.Collect(nil)
	if !errors.Is(err, virtio.ErrBadUsed) {
		t.Errorf("Collect error = %v, want ErrBadUsed", err)
	}
	if len(used) != 1 || used[0].Head != h || used[0].Len != 8 || !errors.Is(used[0].Err, virtio.ErrBadUsed) {
		t.Errorf("Collect = %+v, want head %d clamped to 8 with ErrBadUsed", used, h)
	}
	if s := r.q.Stats(); s.BadUsed != 2 {
		t.Errorf("BadUsed = %d, want 2", s.BadUsed)
	}
	if r.q.NumFree() != 4 {
		t.Errorf("NumFree = %d, want 4", r.q.NumFree())
	}
}

func TestQueueNotifySuppression(t *testing.T) {
	r := newRig(t, 4)
	b, _ := r.buf(t, nil, 8, true)
	r.dev.SetNoNotify(true)
	r.q.Add([]virtio.Buf{b})
	r.q.Kick()
	if r.notifes.Load() != 0 {
		t.Errorf("notified although the device set NO_NOTIFY")
	}
	r.dev.SetNoNotify(false)
	r.q.Kick()
	if r.notifes.Load() != 1 {
		t.Errorf("notifications = %d, want 1", r.notifes.Load())
	}
	r.q.SetInterrupts(false)
	if r.dev.InterruptsWanted() {
		t.Errorf("device sees interrupts wanted after SetInterrupts(false)")
	}
	r.q.SetInterrupts(true)
	if !r.dev.InterruptsWanted() {
		t.Errorf("device sees no interrupts wanted after SetInterrupts(true)")
	}
	if s := r.q.Stats(); s.Kicks != 1 || s.KicksSuppressed != 1 {
		t.Errorf("Stats = %+v, want 1 kick, 1 suppressed", s)
	}
}

func TestQueueInvalid(t *testing.T) {
	mem := virtiotest.NewMemory()
	for _, n := range []int{0, 3, 65536} {
		if _, err := virtio.NewQueue(0, n, mem, func() {}); err == nil {
			t.Errorf("NewQueue(size %d) succeeded", n)
		}
	}
	q, _ := virtio.NewQueue(0, 4, mem, func() {})
	tests := [][]virtio.Buf{
		nil,
		{{Addr: 1 << 30, Len: 0}},
		{{Addr: 1 << 30, Len: 4, Write: true}, {Addr: 1 << 30, Len: 4}},
	}
	for _, bufs := range tests {
		if _, err := q.Add(bufs); err == nil {
			t.Errorf("Add(%+v) succeeded", bufs)
		}
	}
	if q.NumFree() != 4 {
		t.Errorf("NumFree after refused adds = %d", q.NumFree())
	}
	q.Free()
	if mem.Frees != 1 {
		t.Errorf("Free released %d allocations, want 1", mem.Frees)
	}
}

// TestQueueConcurrent: submitters on several goroutines, a device goroutine, and a completion
// goroutine, as the drivers use the queue.
func TestQueueConcurrent(t *testing.T) {
	const size, workers, per = 16, 4, 300
	mem := virtiotest.NewMemory()
	kick := make(chan struct{}, 1)
	q, err := virtio.NewQueue(0, size, mem, func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	dev, _ := virtiotest.NewRing(mem, size, q.DescAddr, q.AvailAddr, q.UsedAddr)
	done := make(chan struct{})
	var devWG sync.WaitGroup
	devWG.Add(1)
	go func() { // device
		defer devWG.Done()
		for {
			select {
			case <-done:
				return
			case <-kick:
			}
			for {
				h, chain, ok, err := dev.Next()
				if err != nil {
					t.Errorf("device: %v", err)
					return
				}
				if !ok {
					break
				}
				chain[1].Data[0] = chain[0].Data[0] + 1
				dev.Complete(h, 1)
			}
		}
	}()
	// As in the drivers, one lock covers Add with its bookkeeping and Collect with the
	// dispatch: a head freed by Collect can be reused at once by Add.
	type waiter struct {
		ch  chan byte
		out []byte
	}
	var mu sync.Mutex
	waiters := map[uint16]waiter{}
	var subWG sync.WaitGroup
	for w := 0; w < workers; w++ {
		subWG.Add(1)
		go func(w int) {
			defer subWG.Done()
			for i := 0; i < per; i++ {
				in, inPA, _ := mem.Alloc(1)
				out, outPA, _ := mem.Alloc(1)
				in[0] = byte(w*31 + i)
				ch := make(chan byte, 1)
				for {
					mu.Lock()
					h, err := q.Add([]virtio.Buf{{Addr: inPA, Len: 1}, {Addr: outPA, Len: 1, Write: true}})
					if err == nil {
						waiters[h] = waiter{ch, out}
					}
					mu.Unlock()
					if err == nil {
						break
					}
					if !errors.Is(err, virtio.ErrQueueFull) {
						t.Errorf("Add: %v", err)
						return
					}
					q.Kick()
				}
				q.Kick()
				if got := <-ch; got != in[0]+1 {
					t.Errorf("worker %d request %d: response %d, want %d", w, i, got, in[0]+1)
				}
				mem.Free(in, inPA)
				mem.Free(out, outPA)
			}
		}(w)
	}
	stop := make(chan struct{})
	var colWG sync.WaitGroup
	colWG.Add(1)
	go func() { // completion side
		defer colWG.Done()
		var used []virtio.Used
		for {
			var err error
			mu.Lock()
			used, err = q.Collect(used[:0])
			for _, u := range used {
				wt := waiters[u.Head]
				delete(waiters, u.Head)
				wt.ch <- wt.out[0]
			}
			mu.Unlock()
			if err != nil {
				t.Errorf("Collect: %v", err)
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	}()
	subWG.Wait()
	close(stop)
	colWG.Wait()
	close(done)
	devWG.Wait()
	if q.NumFree() != size {
		t.Errorf("NumFree at the end = %d, want %d", q.NumFree(), size)
	}
}
