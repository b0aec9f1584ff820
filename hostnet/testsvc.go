package hostnet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// The built-in test service. Every Godwit host serves it on TCP port TestPort of its
// management and migration addresses; `net test HOST [SIZE]` is its client.
//
// The client asks for SIZE bytes; the server streams that many pseudo-random bytes and then
// a CRC-32C of them; the client computes the CRC of what it received, compares, and reports
// the throughput of the data phase. All integers are little-endian.
//
//	request (client -> server), 24 bytes:
//	  0  magic    "GWNT"
//	  4  version  u16 = 1
//	  6  reserved u16 = 0
//	  8  size     u64, 1..MaxTestSize
//	 16  seed     u64, non-zero: the generator's start state
//	reply (server -> client), 8 bytes:
//	  0  magic    "GWNR"
//	  4  status   u32: 0 ok, 1 bad request, 2 size out of range, 3 busy
//	then, if status is 0: size data bytes, then 8 bytes:
//	  0  crc32c   u32 of the data (Castagnoli polynomial, RFC 3720 B.4)
//	  4  reserved u32 = 0
//
// The data is xorshift64* (S. Vigna, "An experimental exploration of Marsaglia's xorshift
// generators, scrambled", ACM TOMS 42(4), 2016) started at seed, each output word written
// little-endian. Compatibility window: version 1 only; a server answers any other version
// with status 1.
const (
	TestPort      = 7700
	testVersion   = 1
	testReqLen    = 24
	testReplyLen  = 8
	testTrailLen  = 8
	MaxTestSize   = 64 << 30 // 64 GiB: large enough for any run, small enough to catch garbage
	testMaxConns  = 4        // concurrent test clients a server serves
	testChunk     = 64 << 10
	testIOTimeout = 30 * time.Second // a peer that stops reading or writing this long is dropped
)

var (
	testReqMagic   = [4]byte{'G', 'W', 'N', 'T'}
	testReplyMagic = [4]byte{'G', 'W', 'N', 'R'}
	castagnoli     = crc32.MakeTable(crc32.Castagnoli)
)

// Test reply status codes.
const (
	testOK       = 0
	testBadReq   = 1
	testBadSize  = 2
	testBusy     = 3
	xorshiftMult = 0x2545F4914F6CDD1D // Vigna 2016, xorshift64*, M_32
)

// ErrChecksum: the data of a test transfer did not match its checksum.
var ErrChecksum = errors.New("checksum MISMATCH")

// testGen is the xorshift64* generator (shifts 12, 25, 27: Vigna 2016, table IV, A_1(12,25,27)).
type testGen struct{ x uint64 }

func (g *testGen) fill(b []byte) {
	for len(b) >= 8 {
		g.x ^= g.x >> 12
		g.x ^= g.x << 25
		g.x ^= g.x >> 27
		binary.LittleEndian.PutUint64(b, g.x*xorshiftMult)
		b = b[8:]
	}
	if len(b) > 0 {
		var tmp [8]byte
		g.fill(tmp[:])
		copy(b, tmp[:])
	}
}

// TestServer serves the test protocol on one listener.
type TestServer struct {
	l    net.Listener
	addr netip.Addr
	logf func(string, ...any)
	sem  chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	conn map[net.Conn]bool
	done bool
}

// ServeTest serves the test protocol on l until Close. logf (may be nil) gets per-client errors.
func ServeTest(l net.Listener, logf func(string, ...any)) *TestServer {
	s := &TestServer{l: l, logf: logf, sem: make(chan struct{}, testMaxConns), conn: map[net.Conn]bool{}}
	if ta, ok := l.Addr().(*net.TCPAddr); ok {
		s.addr, _ = netip.AddrFromSlice(ta.IP.To4())
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s
}

// Addr is the IPv4 address the server listens on.
func (s *TestServer) Addr() netip.Addr { return s.addr }

// Close stops accepting, cuts the clients being served and waits for their goroutines.
func (s *TestServer) Close() {
	s.mu.Lock()
	s.done = true
	for c := range s.conn {
		c.Close()
	}
	s.mu.Unlock()
	s.l.Close()
	s.wg.Wait()
}

func (s *TestServer) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.l.Accept()
		if err != nil {
			s.mu.Lock()
			done := s.done
			s.mu.Unlock()
			if !done && s.logf != nil {
				s.logf("hostnet: test service on %s: accept: %v", s.addr, err)
			}
			return
		}
		s.mu.Lock()
		if s.done {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conn[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			err := s.serve(c)
			s.mu.Lock()
			delete(s.conn, c)
			done := s.done
			s.mu.Unlock()
			if err != nil && !done && s.logf != nil {
				s.logf("hostnet: test service: client %s: %v", c.RemoteAddr(), err)
			}
		}()
	}
}

func (s *TestServer) serve(c net.Conn) error {
	defer c.Close()
	var req [testReqLen]byte
	if err := c.SetReadDeadline(time.Now().Add(testIOTimeout)); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	if _, err := io.ReadFull(c, req[:]); err != nil {
		return fmt.Errorf("read request: %w", err)
	}
	size := binary.LittleEndian.Uint64(req[8:])
	seed := binary.LittleEndian.Uint64(req[16:])
	status := uint32(testOK)
	switch {
	case [4]byte(req[0:4]) != testReqMagic || binary.LittleEndian.Uint16(req[4:]) != testVersion || seed == 0:
		status = testBadReq
	case size == 0 || size > MaxTestSize:
		status = testBadSize
	}
	if status == testOK {
		select {
		case s.sem <- struct{}{}:
			defer func() { <-s.sem }()
		default:
			status = testBusy
		}
	}
	var reply [testReplyLen]byte
	copy(reply[:], testReplyMagic[:])
	binary.LittleEndian.PutUint32(reply[4:], status)
	if err := writeAll(c, reply[:]); err != nil {
		return fmt.Errorf("write reply: %w", err)
	}
	if status != testOK {
		return fmt.Errorf("refused request (status %d, size %d)", status, size)
	}
	g := testGen{x: seed}
	crc := uint32(0)
	buf := make([]byte, testChunk)
	for left := size; left > 0; {
		n := uint64(len(buf))
		if left < n {
			n = left
		}
		g.fill(buf[:n])
		crc = crc32.Update(crc, castagnoli, buf[:n])
		if err := writeAll(c, buf[:n]); err != nil {
			return fmt.Errorf("send data (%d of %d bytes left): %w", left, size, err)
		}
		left -= n
	}
	var trail [testTrailLen]byte
	binary.LittleEndian.PutUint32(trail[:], crc)
	if err := writeAll(c, trail[:]); err != nil {
		return fmt.Errorf("send checksum: %w", err)
	}
	return nil
}

func writeAll(c net.Conn, b []byte) error {
	if err := c.SetWriteDeadline(time.Now().Add(testIOTimeout)); err != nil {
		return err
	}
	_, err := c.Write(b)
	return err
}

// TestResult is what a test transfer measured.
type TestResult struct {
	Bytes      int64
	Elapsed    time.Duration // from the reply to the last data byte
	ChecksumOK bool
	Got, Want  uint32 // the CRC-32C the client computed, and the one the server sent
}

// MiBps is the data phase's throughput in MiB/s.
func (r TestResult) MiBps() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Bytes) / (1 << 20) / r.Elapsed.Seconds()
}

// RunTest asks the server at the other end of c for size bytes and checks them. A checksum
// mismatch returns the result and an error wrapping ErrChecksum.
func RunTest(ctx context.Context, c net.Conn, size int64, seed uint64) (TestResult, error) {
	if size <= 0 || size > MaxTestSize {
		return TestResult{}, fmt.Errorf("net test: size %d out of range 1..%d", size, int64(MaxTestSize))
	}
	if seed == 0 {
		seed = 1
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	var req [testReqLen]byte
	copy(req[:], testReqMagic[:])
	binary.LittleEndian.PutUint16(req[4:], testVersion)
	binary.LittleEndian.PutUint64(req[8:], uint64(size))
	binary.LittleEndian.PutUint64(req[16:], seed)
	if _, err := c.Write(req[:]); err != nil {
		return TestResult{}, fmt.Errorf("net test: send request: %w", err)
	}
	var reply [testReplyLen]byte
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		return TestResult{}, fmt.Errorf("net test: read reply: %w", err)
	}
	if [4]byte(reply[0:4]) != testReplyMagic {
		return TestResult{}, fmt.Errorf("net test: the peer is not a Godwit test service (reply % x)", reply[:4])
	}
	switch st := binary.LittleEndian.Uint32(reply[4:]); st {
	case testOK:
	case testBusy:
		return TestResult{}, fmt.Errorf("net test: server busy (%d transfers running)", testMaxConns)
	case testBadSize:
		return TestResult{}, fmt.Errorf("net test: server refused size %d", size)
	default:
		return TestResult{}, fmt.Errorf("net test: server refused the request (status %d)", st)
	}
	start := time.Now()
	res := TestResult{}
	buf := make([]byte, testChunk)
	crc := uint32(0)
	for res.Bytes < size {
		n := int64(len(buf))
		if size-res.Bytes < n {
			n = size - res.Bytes
		}
		m, err := c.Read(buf[:n])
		crc = crc32.Update(crc, castagnoli, buf[:m])
		res.Bytes += int64(m)
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return res, fmt.Errorf("net test: after %d of %d bytes: %w", res.Bytes, size, err)
		}
	}
	res.Elapsed = time.Since(start)
	var trail [testTrailLen]byte
	if _, err := io.ReadFull(c, trail[:]); err != nil {
		return res, fmt.Errorf("net test: read checksum: %w", err)
	}
	res.Got, res.Want = crc, binary.LittleEndian.Uint32(trail[:])
	res.ChecksumOK = res.Got == res.Want
	if !res.ChecksumOK {
		return res, fmt.Errorf("net test: %w: computed %08x, server sent %08x", ErrChecksum, res.Got, res.Want)
	}
	return res, nil
}

// serveTest starts the test service on ifc's address.
func (h *Host) serveTest(ifc *Interface, a netip.Addr) (*TestServer, error) {
	l, err := h.listenOn(ifc, a, TestPort)
	if err != nil {
		return nil, fmt.Errorf("hostnet: %s: test service: %w", ifc.Name, err)
	}
	return ServeTest(l, h.opts.Logf), nil
}

// RoleFor picks the NIC role to reach dst: the one whose subnet holds it, else management
// (which has the default route).
func (h *Host) RoleFor(dst netip.Addr) Role {
	for _, ifc := range h.Interfaces() {
		if (ifc.Role == RoleManagement || ifc.Role == RoleMigration) && ifc.Prefix().Masked().Contains(dst) {
			return ifc.Role
		}
	}
	return RoleManagement
}

// NetTest runs a test transfer of size bytes from the test service at host, through the NIC
// that reaches it.
func (h *Host) NetTest(ctx context.Context, host string, size int64) (TestResult, error) {
	ip, err := ParseIPv4(host)
	if err != nil {
		return TestResult{}, err
	}
	c, err := h.DialTCP(ctx, h.RoleFor(ip), netip.AddrPortFrom(ip, TestPort).String())
	if err != nil {
		return TestResult{}, fmt.Errorf("net test: %w", err)
	}
	defer c.Close()
	return RunTest(ctx, c, size, uint64(time.Now().UnixNano()))
}
