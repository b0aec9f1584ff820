package virtio_test

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/arch/pci"
	"github.com/godwit-hv/godwit/arch/pci/pcitest"
	"github.com/godwit-hv/godwit/arch/virtio"
)

// fakeCommon models the common configuration structure's side effects: feature windows
// selected by the select registers, reset on status 0, FEATURES_OK refused for unknown bits.
type fakeCommon struct {
	r       *pcitest.Region
	offered uint64
	driver  uint64
}

func newFakeCommon(offered uint64) *fakeCommon {
	f := &fakeCommon{r: pcitest.NewRegion(0x38), offered: offered}
	f.r.Mem[0x14] = 0x0F // stale status from before: reset must clear it
	f.r.OnWrite = f.onWrite
	return f
}

func (f *fakeCommon) onWrite(off uint64, size int) {
	m := f.r.Mem
	switch off {
	case 0x00: // device_feature_select
		sel := binary.LittleEndian.Uint32(m[0:])
		binary.LittleEndian.PutUint32(m[4:], uint32(f.offered>>(32*sel)))
	case 0x0C: // driver_feature
		sel := binary.LittleEndian.Uint32(m[8:])
		v := uint64(binary.LittleEndian.Uint32(m[0xC:]))
		f.driver = f.driver&^(0xFFFFFFFF<<(32*sel)) | v<<(32*sel)
	case 0x14: // device_status
		if m[0x14] == 0 {
			f.driver = 0
		}
		if m[0x14]&virtio.StatusFeaturesOK != 0 && f.driver&^f.offered != 0 {
			m[0x14] &^= virtio.StatusFeaturesOK
		}
	}
}

// virtioFunction builds a virtio-pci function whose structures all live in BAR4.
func virtioFunction(deviceID, subsys uint16) (*pcitest.Config, *pcitest.Function) {
	c := pcitest.NewConfig()
	f := c.Add(pci.Address{Device: 4}, pcitest.NewFunction(virtio.PCIVendor, deviceID, 1, 0, 0))
	f.Put16(pci.RegSubsystemID, subsys)
	f.AddBAR(4, pcitest.Mem64, 0xFE000000, 0x4000, true)
	add := func(typ uint8, off, n uint32, extra ...uint32) {
		body := make([]byte, 14+4*len(extra))
		body[0] = uint8(16 + 4*len(extra)) // cap_len
		body[1] = typ
		body[2] = 4 // bar
		binary.LittleEndian.PutUint32(body[6:], off)
		binary.LittleEndian.PutUint32(body[10:], n)
		for i, e := range extra {
			binary.LittleEndian.PutUint32(body[14+4*i:], e)
		}
		f.AddCap(pci.CapVendor, body)
	}
	add(1, 0x0000, 0x38)
	add(3, 0x1000, 0x4)
	add(4, 0x2000, 0x100)
	add(2, 0x3000, 0x1000, 4)
	return c, f
}

func TestOpenNegotiate(t *testing.T) {
	const blkSizeMax, blkFlush = 1, 9
	tests := []struct {
		name     string
		offered  uint64
		want     uint64
		wantNeg  uint64
		wantErr  error
		deviceID uint16
		subsys   uint16
	}{
		{"modern", 1<<32 | 1<<blkFlush | 1<<blkSizeMax, 1 << blkFlush, 1<<32 | 1<<blkFlush, nil, 0x1042, 0},
		{"transitional", 1<<32 | 1<<blkFlush, 1<<blkFlush | 1<<5, 1<<32 | 1<<blkFlush, nil, 0x1001, 2},
		{"legacy only", 1 << blkFlush, 1 << blkFlush, 0, virtio.ErrNoModern, 0x1042, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := virtioFunction(tt.deviceID, tt.subsys)
			devs, err := pci.Enumerate(c)
			if err != nil {
				t.Fatal(err)
			}
			if typ, ok := virtio.DeviceType(devs[0]); !ok || typ != virtio.TypeBlock {
				t.Fatalf("DeviceType = %d, %v; want block", typ, ok)
			}
			bar := pcitest.NewRegion(0x4000)
			common := newFakeCommon(tt.offered)
			mapped := 0
			v, err := virtio.Open(devs[0], virtio.Options{
				Memory: nil,
				MapBAR: func(b pci.BAR) (pci.Region, error) {
					mapped++
					if b.Index != 4 {
						t.Errorf("mapped BAR%d, want BAR4", b.Index)
					}
					return splitRegion{bar, common.r}, nil
				},
				Sleep: func(time.Duration) {},
			})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if mapped != 1 {
				t.Errorf("BAR4 mapped %d times, want once", mapped)
			}
			if got := v.Status(); got != virtio.StatusAcknowledge|virtio.StatusDriver {
				t.Errorf("status after Open = %#x, want ACKNOWLEDGE|DRIVER", got)
			}
			if cmd := devs[0].Command(); cmd&(pci.CmdMemorySpace|pci.CmdBusMaster) != pci.CmdMemorySpace|pci.CmdBusMaster {
				t.Errorf("command = %#x, want memory and bus master on", cmd)
			}
			got, err := v.Negotiate(tt.want)
			if !errors.Is(err, tt.wantErr) || got != tt.wantNeg {
				t.Fatalf("Negotiate(%#x) = %#x, %v; want %#x, %v", tt.want, got, err, tt.wantNeg, tt.wantErr)
			}
			if err == nil {
				if common.driver != tt.wantNeg || v.Status()&virtio.StatusFeaturesOK == 0 {
					t.Errorf("driver features %#x, status %#x", common.driver, v.Status())
				}
			} else if v.Status()&virtio.StatusFailed == 0 {
				t.Errorf("status %#x after a failed negotiation, want FAILED", v.Status())
			}
		})
	}
}

// splitRegion routes the first 0x38 bytes (the common structure at offset 0) to the fake
// common configuration and the rest to plain memory.
type splitRegion struct {
	bar, common *pcitest.Region
}

func (s splitRegion) pick(o uint64) (*pcitest.Region, uint64) {
	if o < 0x38 {
		return s.common, o
	}
	return s.bar, o
}
func (s splitRegion) Size() uint64           { return s.bar.Size() }
func (s splitRegion) Read8(o uint64) uint8   { r, o := s.pick(o); return r.Read8(o) }
func (s splitRegion) Read16(o uint64) uint16 { r, o := s.pick(o); return r.Read16(o) }
func (s splitRegion) Read32(o uint64) uint32 { r, o := s.pick(o); return r.Read32(o) }
func (s splitRegion) Write8(o uint64, v uint8) {
	r, o := s.pick(o)
	r.Write8(o, v)
}
func (s splitRegion) Write16(o uint64, v uint16) {
	r, o := s.pick(o)
	r.Write16(o, v)
}
func (s splitRegion) Write32(o uint64, v uint32) {
	r, o := s.pick(o)
	r.Write32(o, v)
}

func TestOpenMissingStructures(t *testing.T) {
	c := pcitest.NewConfig()
	f := c.Add(pci.Address{}, pcitest.NewFunction(virtio.PCIVendor, 0x1041, 2, 0, 0))
	f.AddBAR(4, pcitest.Mem64, 0xFE000000, 0x4000, true)
	devs, _ := pci.Enumerate(c)
	_, err := virtio.Open(devs[0], virtio.Options{MapBAR: func(pci.BAR) (pci.Region, error) { return pcitest.NewRegion(0x4000), nil }})
	if !errors.Is(err, virtio.ErrNoModern) {
		t.Errorf("Open without structures: %v, want ErrNoModern", err)
	}
	c2 := pcitest.NewConfig()
	c2.Add(pci.Address{}, pcitest.NewFunction(0x8086, 0x100E, 2, 0, 0))
	devs, _ = pci.Enumerate(c2)
	if _, err := virtio.Open(devs[0], virtio.Options{}); !errors.Is(err, virtio.ErrNotVirtio) {
		t.Errorf("Open of an e1000: %v, want ErrNotVirtio", err)
	}
}
