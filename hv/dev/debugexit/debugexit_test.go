package debugexit_test

import (
	"bytes"
	"testing"

	"github.com/godwit-hv/godwit/hv/bus"
	"github.com/godwit-hv/godwit/hv/dev/debugexit"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name       string
		data       []byte
		wantValue  uint32
		wantStatus int
	}{
		{"outb 0", []byte{0}, 0, 1},
		{"outb 1", []byte{1}, 1, 3},
		{"outb 0x10", []byte{0x10}, 0x10, 0x21},
		{"outw", []byte{0x34, 0x12}, 0x1234, 0x2469},
		{"outl", []byte{0x78, 0x56, 0x34, 0x12}, 0x12345678, 0x2468acf1},
		{"outl max", []byte{0xff, 0xff, 0xff, 0xff}, 0xffffffff, 0x1ffffffff},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stops []int
			d := debugexit.New(func(s int) { stops = append(stops, s) })
			b := bus.New()
			if err := b.Register(bus.PIO, debugexit.Port, debugexit.Size, "debug-exit", d); err != nil {
				t.Fatal(err)
			}
			if _, _, exited := d.Status(); exited {
				t.Fatalf("Status() before any write: exited")
			}
			if err := b.Write(bus.PIO, debugexit.Port, tt.data); err != nil {
				t.Fatalf("Write(%x) = %v", tt.data, err)
			}
			status, value, exited := d.Status()
			if !exited || status != tt.wantStatus || value != tt.wantValue {
				t.Errorf("Status() = %#x, %#x, %v, want %#x, %#x, true", status, value, exited, tt.wantStatus, tt.wantValue)
			}
			if err := b.Write(bus.PIO, debugexit.Port, []byte{0x55}); err != nil {
				t.Fatal(err)
			}
			if len(stops) != 1 || stops[0] != tt.wantStatus {
				t.Errorf("stop calls = %#x, want [%#x] (first write only)", stops, tt.wantStatus)
			}
			data := []byte{9, 9, 9, 9}
			if err := b.Read(bus.PIO, debugexit.Port, data); err != nil || !bytes.Equal(data, []byte{0, 0, 0, 0}) {
				t.Errorf("Read() = %x, %v, want 00000000, nil", data, err)
			}
		})
	}
}

func TestExitStatusModulo(t *testing.T) {
	// kvm-unit-tests reports success by writing 0 (status 1) and failure
	// as 1 (status 3); the shell sees statuses modulo 256.
	for _, tt := range []struct {
		v    uint32
		want int
	}{{0, 1}, {1, 3}, {0x7f, 0xff}, {0x80, 1}} {
		if got := debugexit.ExitStatus(tt.v) & 0xff; got != tt.want {
			t.Errorf("ExitStatus(%#x)&0xff = %#x, want %#x", tt.v, got, tt.want)
		}
	}
}

func TestBadWidth(t *testing.T) {
	d := debugexit.New(nil)
	if err := d.Write(0, make([]byte, 8)); err == nil {
		t.Errorf("Write(8 bytes) = nil, want error")
	}
	if _, _, exited := d.Status(); exited {
		t.Errorf("a rejected write exited the VM")
	}
}

func TestStateRoundTrip(t *testing.T) {
	d := debugexit.New(nil)
	if err := d.Write(0, []byte{0x21}); err != nil {
		t.Fatal(err)
	}
	called := false
	d2 := debugexit.New(func(int) { called = true })
	d2.Restore(d.Save())
	if got, want := d2.Save(), d.Save(); got != want {
		t.Errorf("Save() after Restore = %+v, want %+v", got, want)
	}
	if s, v, ok := d2.Status(); s != 0x43 || v != 0x21 || !ok {
		t.Errorf("Status() after Restore = %#x, %#x, %v, want 0x43, 0x21, true", s, v, ok)
	}
	if called {
		t.Errorf("Restore called the stop function")
	}
}
