package virtionet

import (
	"crypto/rand"
	"fmt"
	"net"
	"time"

	"github.com/godwit-hv/godwit/arch/pci"
	"github.com/godwit-hv/godwit/arch/ring0"
	"github.com/godwit-hv/godwit/arch/virtio"
)

// Match reports whether d is a virtio network device.
func Match(d *pci.Device) bool {
	t, ok := virtio.DeviceType(d)
	return ok && t == virtio.TypeNet
}

// Open starts the driver on the virtio-net PCI function d (virtio 1.1, 3.1.1 "Driver
// Requirements: Device Initialization" and 5.1.5 "Device Initialization"). logf reports
// events (nil: standard output).
func Open(d *pci.Device, logf func(string, ...any)) (*NIC, error) {
	if !Match(d) {
		return nil, fmt.Errorf("virtio-net: %v is not a virtio network device", d)
	}
	v, err := virtio.Open(d, virtio.Options{})
	if err != nil {
		return nil, err
	}
	var queues []*virtio.Queue
	fail := func(err error) (*NIC, error) {
		v.Fail()
		v.Reset() // the device lets go of the queues before they are freed
		for _, q := range queues {
			q.Free()
		}
		return nil, fmt.Errorf("virtio-net %v: %w", d.Addr, err)
	}
	feats, err := v.Negotiate(1<<featMAC | 1<<featStatus | 1<<featCtrlVQ | 1<<featCtrlRX)
	if err != nil {
		return nil, err
	}
	hasCtrl := feats&(1<<featCtrlVQ) != 0
	nq := 2
	if hasCtrl {
		nq = 3
	}
	if err := v.SetupInterrupts(nq); err != nil {
		return fail(err)
	}
	for i := 0; i < nq; i++ {
		size := DefaultQueue
		if i == ctrlQueue {
			size = ctrlQueueLen
		}
		q, err := v.SetupQueue(i, size)
		if err != nil {
			return fail(err)
		}
		queues = append(queues, q)
	}
	var ctrlq *virtio.Queue
	if hasCtrl {
		ctrlq = queues[ctrlQueue]
	}
	cfg := v.DeviceConfig()
	if (feats&(1<<featMAC|1<<featStatus) != 0) && (cfg == nil || cfg.Size() < cfgMinLen) {
		return fail(fmt.Errorf("device configuration missing or shorter than %d bytes", cfgMinLen))
	}
	var mac net.HardwareAddr
	if feats&(1<<featMAC) != 0 {
		if mac, err = readMAC(cfg, v.ConfigGeneration); err != nil {
			return fail(err)
		}
	} else {
		// 5.1.5: without VIRTIO_NET_F_MAC the driver picks an address: a random locally
		// administered unicast one (IEEE 802-2014, 8.2.2: bit 1 of the first octet set, bit 0 clear).
		mac = make(net.HardwareAddr, 6)
		if _, err := rand.Read(mac); err != nil {
			return fail(fmt.Errorf("random MAC: %w", err))
		}
		mac[0] = mac[0]&^1 | 2
	}
	if mac[0]&1 != 0 || string(mac) == "\x00\x00\x00\x00\x00\x00" {
		return fail(fmt.Errorf("station address %v is multicast or zero", mac))
	}
	hasStatus := feats&(1<<featStatus) != 0
	link := func() linkState {
		s := v.Status()
		switch {
		case s == 0xFF:
			return linkState{dead: "device status reads all ones (the device left the bus)"}
		case s&virtio.StatusDeviceNeedsReset != 0:
			return linkState{dead: "device needs reset"}
		case s&virtio.StatusDriverOK == 0:
			return linkState{dead: fmt.Sprintf("device status %#x lost DRIVER_OK (the device was reset)", s)}
		case !hasStatus:
			return linkState{up: true} // 5.1.4.2: without VIRTIO_NET_F_STATUS the link is up
		}
		return linkState{up: le16(cfg, cfgStatus)&statusLinkUp != 0}
	}
	irqDesc := fmt.Sprintf("MSI-X vectors %#x/%#x", v.Vector(rxQueue), v.ConfigVector())
	var cfgIRQ IRQ
	intx, r := v.INTx()
	if intx {
		irqDesc = fmt.Sprintf("INTx %v vector %#x", r, v.Vector(rxQueue))
	} else {
		cfgIRQ = vecIRQ(v.ConfigVector())
	}
	// newNIC posts the receive buffers, then sets DRIVER_OK (ready), then notifies the device
	// (3.1.1: the queues are populated before DRIVER_OK, and no notification comes before it).
	n, err := newNIC(env{
		rxq: queues[0], txq: queues[1], mem: virtio.HostMemory{},
		irq: queueIRQ{v, rxQueue}, cfgIRQ: cfgIRQ,
		link: link, ready: v.Ready,
		ctrlq: ctrlq, ctrlRX: hasCtrl && feats&(1<<featCtrlRX) != 0,
		mac: mac, location: d.Addr.String(), irqDesc: irqDesc, sharedIRQ: intx, logf: logf,
		shutdown: func() { v.Reset() },
	})
	if err != nil {
		return fail(err)
	}
	return n, nil
}

// queueIRQ is a queue's interrupt through the virtio transport (which acknowledges INTx
// through the ISR and reports DEVICE_NEEDS_RESET).
type queueIRQ struct {
	v *virtio.Device
	q int
}

func (i queueIRQ) Count() uint64 { return i.v.IRQCount(i.q) }
func (i queueIRQ) Wait(seen uint64, timeout time.Duration) (uint64, error) {
	return i.v.WaitQueue(i.q, seen, timeout)
}

// vecIRQ is a ring-0 vector of its own (the MSI-X configuration-change vector).
type vecIRQ uint8

func (v vecIRQ) Count() uint64 { return ring0.IRQCount(uint8(v)) }
func (v vecIRQ) Wait(seen uint64, timeout time.Duration) (uint64, error) {
	return ring0.WaitIRQ(uint8(v), seen, timeout)
}
