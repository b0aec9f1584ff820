package hostnet

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// PingPayload is the echo data size, as ping(8)'s default (56 bytes + 8 of ICMP header).
const PingPayload = 56

// ErrPingTimeout: no echo reply came before the deadline.
var ErrPingTimeout = errors.New("no reply")

// Pinger sends ICMP echo requests and waits for the replies (RFC 792, "Echo or Echo Reply
// Message"), through a gVisor ICMP endpoint: the stack fills the identifier with the
// endpoint's own and hands back only the replies that carry it.
type Pinger struct {
	h  *Host
	ep tcpip.Endpoint
	wq waiter.Queue
}

// NewPinger opens an ICMP endpoint on the host stack.
func (h *Host) NewPinger() (*Pinger, error) {
	p := &Pinger{h: h}
	ep, err := h.stack.NewEndpoint(icmp.ProtocolNumber4, ipv4.ProtocolNumber, &p.wq)
	if err != nil {
		return nil, fmt.Errorf("ping: icmp endpoint: %s", err)
	}
	p.ep = ep
	return p, nil
}

// Close releases the endpoint.
func (p *Pinger) Close() { p.ep.Close() }

// Echo sends one echo request with sequence number seq to dst and waits for its reply until
// ctx ends. It returns the round-trip time.
func (p *Pinger) Echo(ctx context.Context, dst netip.Addr, seq uint16) (time.Duration, error) {
	if !dst.Is4() {
		return 0, fmt.Errorf("ping %s: only IPv4", dst)
	}
	// ICMPv4 echo: type 8, code 0, checksum, identifier, sequence; then the data.
	// The data carries the sequence again and a fixed pattern, checked in the reply.
	msg := make([]byte, header.ICMPv4MinimumSize+PingPayload)
	ic := header.ICMPv4(msg)
	ic.SetType(header.ICMPv4Echo)
	ic.SetSequence(seq)
	data := msg[header.ICMPv4MinimumSize:]
	binary.BigEndian.PutUint16(data, seq)
	for i := 2; i < len(data); i++ {
		data[i] = byte(i)
	}

	in, notify := waiter.NewChannelEntry(waiter.EventIn)
	p.wq.EventRegister(&in)
	defer p.wq.EventUnregister(&in)

	start := time.Now()
	var r bytes.Reader
	r.Reset(msg)
	to := tcpip.FullAddress{Addr: tcpip.AddrFrom4(dst.As4())}
	if _, err := p.ep.Write(&r, tcpip.WriteOptions{To: &to}); err != nil {
		return 0, fmt.Errorf("ping %s: send: %s", dst, err)
	}
	var buf bytes.Buffer
	for {
		buf.Reset()
		res, err := p.ep.Read(&buf, tcpip.ReadOptions{NeedRemoteAddr: true})
		if _, ok := err.(*tcpip.ErrWouldBlock); ok {
			select {
			case <-notify:
				continue
			case <-ctx.Done():
				return 0, fmt.Errorf("ping %s seq %d: %w", dst, seq, ErrPingTimeout)
			}
		}
		if err != nil {
			return 0, fmt.Errorf("ping %s: receive: %s", dst, err)
		}
		rtt := time.Since(start)
		reply := header.ICMPv4(buf.Bytes())
		if len(reply) < header.ICMPv4MinimumSize || reply.Type() != header.ICMPv4EchoReply ||
			res.RemoteAddr.Addr != to.Addr || reply.Sequence() != seq {
			continue // a late reply to an earlier request, or someone else's
		}
		if !bytes.Equal(reply[header.ICMPv4MinimumSize:], data) {
			return rtt, fmt.Errorf("ping %s seq %d: reply data differs from the request", dst, seq)
		}
		return rtt, nil
	}
}
