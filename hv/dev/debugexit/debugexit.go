// Package debugexit models QEMU's isa-debug-exit device: a guest write to
// its port ends the VM with an exit status derived from the value written.
// Test guests (kvm-unit-tests, Godwit's own rig payloads) use it to report
// PASS/FAIL the same way under Godwit as under QEMU.
//
// QEMU computes the process exit status as (value<<1)|1, so a guest can
// never produce status 0 this way; a rig treats 0 as failure. Reads return 0.
// Accesses are rare; nothing here is on a hot path.
package debugexit

import (
	"encoding/binary"
	"fmt"
	"sync"
)

// The I/O range QEMU rigs configure with
// `-device isa-debug-exit,iobase=0xf4,iosize=0x04`.
const (
	Port = 0xf4
	Size = 4
)

// Device is an isa-debug-exit device.
type Device struct {
	mu     sync.Mutex
	stop   func(status int)
	exited bool
	value  uint32
	status int
}

// New returns a device that calls stop (if not nil) with the exit status on
// the guest's first write. stop runs on the vCPU goroutine doing the write,
// with no device lock held; it should ask the VM to stop, not wait for it.
func New(stop func(status int)) *Device { return &Device{stop: stop} }

// Read implements bus.Device: the port reads as zero, as in QEMU.
func (d *Device) Read(offset uint64, data []byte) error {
	clear(data)
	return nil
}

// Write implements bus.Device. The value written (of the access's width,
// 1, 2 or 4 bytes, at any offset in the range) becomes the exit value.
// Writes after the first are ignored: QEMU has exited by then.
func (d *Device) Write(offset uint64, data []byte) error {
	var v uint32
	switch len(data) {
	case 1:
		v = uint32(data[0])
	case 2:
		v = uint32(binary.LittleEndian.Uint16(data))
	case 4:
		v = binary.LittleEndian.Uint32(data)
	default:
		return fmt.Errorf("debugexit: write of %d bytes", len(data))
	}
	d.mu.Lock()
	if d.exited {
		d.mu.Unlock()
		return nil
	}
	d.exited, d.value, d.status = true, v, ExitStatus(v)
	stop, status := d.stop, d.status
	d.mu.Unlock()
	if stop != nil {
		stop(status)
	}
	return nil
}

// ExitStatus is the status QEMU exits with after the guest writes value:
// (value<<1)|1. The host shell sees it modulo 256.
func ExitStatus(value uint32) int { return int(uint64(value)<<1 | 1) }

// Status returns the exit status and the value written, once the guest has
// written to the device.
func (d *Device) Status() (status int, value uint32, exited bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.status, d.value, d.exited
}

// State is the device's migratable state.
type State struct {
	Exited bool
	Value  uint32
}

// Save returns the device state.
func (d *Device) Save() State {
	d.mu.Lock()
	defer d.mu.Unlock()
	return State{Exited: d.exited, Value: d.value}
}

// Restore loads a state from Save. It does not call the stop function.
func (d *Device) Restore(s State) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.exited, d.value = s.Exited, s.Value
	d.status = 0
	if s.Exited {
		d.status = ExitStatus(s.Value)
	}
}
