package virtionet

import (
	"errors"
	"fmt"
	"time"

	"github.com/godwit-hv/godwit/arch/virtio"
	"github.com/godwit-hv/godwit/hostnet/nic"
)

// The control virtqueue. virtio 1.1, 5.1.6.5 "Control Virtqueue": a command is a chain of
// class (u8) and command (u8), the command's data, and an ack (u8) the device writes
// (VIRTIO_NET_OK 0, VIRTIO_NET_ERR 1). 5.1.6.5.1 "Packet Receive Filtering": class
// VIRTIO_NET_CTRL_RX 0, command VIRTIO_NET_CTRL_RX_PROMISC 0 with one byte, 0 off, 1 on.
const (
	featCtrlVQ      = 17 // VIRTIO_NET_F_CTRL_VQ
	featCtrlRX      = 18 // VIRTIO_NET_F_CTRL_RX
	ctrlQueue       = 2  // controlq: 2N with N = 1 queue pair (5.1.2)
	ctrlQueueLen    = 16
	ctrlClassRX     = 0
	ctrlRXPromisc   = 0
	ctrlOK          = 0
	ctrlBufSize     = 64
	ctrlHdrOff      = 0 // class, command
	ctrlDataOff     = 8
	ctrlAckOff      = 16
	ctrlAckPending  = 0xFF // written before the command: the device overwrites it
	ctrlPollEvery   = time.Millisecond
	ctrlTimeoutDflt = time.Second
)

// ErrNoCtrlRX: the device offers no control of its receive filter (VIRTIO_NET_F_CTRL_RX).
var ErrNoCtrlRX = errors.New("virtio-net: device has no receive-filter control (VIRTIO_NET_F_CTRL_RX)")

// ErrCtrl: the device refused or did not answer a control command.
var ErrCtrl = errors.New("virtio-net: control command failed")

// ctrlCmd sends one control command with data and waits for the device's ack. Control
// commands are rare: the queue's completions are polled, not signalled.
func (n *NIC) ctrlCmd(class, cmd uint8, data []byte) error {
	if n.e.ctrlq == nil {
		return fmt.Errorf("%s: %w", n.Desc, ErrNoCtrlRX)
	}
	n.ctrlMu.Lock()
	defer n.ctrlMu.Unlock()
	if n.ctrlBuf == nil {
		return fmt.Errorf("%s: closed: %w", n.Desc, nic.ErrDeviceDead)
	}
	b := n.ctrlBuf
	b[ctrlHdrOff], b[ctrlHdrOff+1] = class, cmd
	copy(b[ctrlDataOff:ctrlAckOff], data)
	b[ctrlAckOff] = ctrlAckPending
	head, err := n.e.ctrlq.Add([]virtio.Buf{
		{Addr: n.ctrlPA + ctrlHdrOff, Len: 2},
		{Addr: n.ctrlPA + ctrlDataOff, Len: uint32(len(data))},
		{Addr: n.ctrlPA + ctrlAckOff, Len: 1, Write: true},
	})
	if err != nil {
		return fmt.Errorf("%s: control command %d/%d: %w", n.Desc, class, cmd, err)
	}
	n.e.ctrlq.Kick()
	timeout := n.e.ctrlTimeout
	if timeout <= 0 {
		timeout = ctrlTimeoutDflt
	}
	for start := time.Now(); ; {
		used, err := n.e.ctrlq.Collect(nil)
		if err != nil {
			n.dev.badUsed.Add(1)
		}
		for _, u := range used {
			if u.Head != head {
				continue // an earlier command that timed out
			}
			if ack := b[ctrlAckOff]; ack != ctrlOK {
				return fmt.Errorf("%s: control command %d/%d: device answered %d: %w", n.Desc, class, cmd, ack, ErrCtrl)
			}
			return nil
		}
		if time.Since(start) > timeout {
			// The buffer stays the device's: no further command is sent on it.
			n.ctrlBuf = nil
			return fmt.Errorf("%s: control command %d/%d: no answer in %v: %w", n.Desc, class, cmd, timeout, ErrCtrl)
		}
		n.e.sleep(ctrlPollEvery)
	}
}

// SetPromiscuous implements nic.Promiscuous through the control queue
// (VIRTIO_NET_CTRL_RX_PROMISC), as a vm uplink needs.
func (n *NIC) SetPromiscuous(on bool) error {
	if n.Dead() {
		return n.Err()
	}
	if !n.e.ctrlRX {
		return fmt.Errorf("%s: %w", n.Desc, ErrNoCtrlRX)
	}
	v := byte(0)
	if on {
		v = 1
	}
	if err := n.ctrlCmd(ctrlClassRX, ctrlRXPromisc, []byte{v}); err != nil {
		return err
	}
	n.promisc.Store(on)
	return nil
}
