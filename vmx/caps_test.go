package vmx

import (
	"errors"
	"testing"

	"github.com/godwit-hv/godwit/hv"
)

// Capability MSRs recorded from Bochs 2.7, cpu: model=corei7_skylake_x, with debug-vmx caps.
var bochsSkylakeX = map[uint32]uint64{
	0x03A: 0x0000000000000005,
	0x480: 0x00d810000000002b,
	0x481: 0x0000007f00000016,
	0x482: 0xf7f9fffe0401e172,
	0x483: 0x007fffff00036dff,
	0x484: 0x0000ffff000011ff,
	0x485: 0x00000000600401e0,
	0x486: 0x0000000080000021,
	0x487: 0x00000000ffffffff,
	0x488: 0x0000000000002000,
	0x489: 0x00000000003727ff,
	0x48A: 0x0000000000000034,
	0x48B: 0x02177fff00000000,
	0x48C: 0x00000f0106334141,
	0x48D: 0x0000007f00000016,
	0x48E: 0xf7f9fffe04006172,
	0x48F: 0x007fffff00036dfb,
	0x490: 0x0000ffff000011fb,
}

// A Skylake-generation Intel server. IA32_FEATURE_CONTROL through IA32_VMX_VMCS_ENUM are as
// VirtualBox logged them on such hosts in public bug reports (myspaghetti/macos-virtualbox
// issues 224 and 357, Stichting-MINIX-Research-Foundation/minix issue 17); the secondary
// controls and EPT/VPID capabilities are typical values of that generation (every control
// Godwit asks for allowed, INVEPT/INVVPID single and all-context, EPT A/D).
var realServer = map[uint32]uint64{
	0x03A: 0x5,
	0x480: 0xda040000000004,
	0x481: 0x7f00000016,
	0x482: 0xfff9fffe0401e172,
	0x483: 0x1ffffff00036dff,
	0x484: 0x3ffff000011ff,
	0x485: 0x7004c1e7,
	0x486: 0x80000021,
	0x487: 0xffffffff,
	0x488: 0x2000,
	0x489: 0x1727ff,
	0x48A: 0x2e,
	0x48B: 0x5ffcff00000000,
	0x48C: 0xf0106734141,
	0x48D: 0x7f00000016,
	0x48E: 0xfff9fffe04006172,
	0x48F: 0x1ffffff00036dfb,
	0x490: 0x3ffff000011fb,
}

func reader(t *testing.T, m map[uint32]uint64) MSRReader {
	return func(msr uint32) uint64 {
		v, ok := m[msr]
		if !ok {
			t.Fatalf("read of MSR %#x, not in the recording", msr)
		}
		return v
	}
}

func TestControls(t *testing.T) {
	for _, tc := range []struct {
		name string
		msrs map[uint32]uint64
		want Controls
		rev  uint32
	}{
		// pin: the TRUE allowed-0 bits 1, 2, 4 plus external-interrupt exiting.
		// proc: TRUE allowed-0 0x04006172 (CR3 exiting may be 0) plus HLT, MWAIT, CR8 load/store,
		//   I/O bitmaps, MSR bitmaps, MONITOR, secondary.
		// pin: external-interrupt exiting, NMI exiting defaults, the preemption timer.
		// proc2: EPT, RDTSCP, VPID, unrestricted guest, INVPCID.
		// exit: allowed-0 0x36dfb plus save debug, 64-bit host, save/load PAT and EFER.
		// entry: allowed-0 0x11fb plus load debug, load PAT, load EFER; IA-32e mode per entry.
		{"bochs corei7_skylake_x", bochsSkylakeX,
			Controls{Pin: 0x57, Proc: 0xb61865fa, Proc2: 0x10aa, Exit: 0x3f6fff, Entry: 0xd1ff, VPID: true, PAT: true,
				PreemptionTimer: true, PreemptionShift: 0}, 0x2b},
		{"skylake server", realServer,
			Controls{Pin: 0x57, Proc: 0xb61865fa, Proc2: 0x10aa, Exit: 0x3f6fff, Entry: 0xd1ff, VPID: true, PAT: true,
				PreemptionTimer: true, PreemptionShift: 7}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ReadCaps(reader(t, tc.msrs))
			if err := c.Check(); err != nil {
				t.Fatalf("Check() = %v, want nil", err)
			}
			got, err := c.Controls()
			if err != nil {
				t.Fatalf("Controls() error %v", err)
			}
			if got != tc.want {
				t.Errorf("Controls() = %+#v, want %+#v", got, tc.want)
			}
			if c.Revision() != tc.rev || c.RegionSize() != 4096 && c.RegionSize() != 1024 {
				t.Errorf("Revision, RegionSize = %#x, %d", c.Revision(), c.RegionSize())
			}
			if !c.EPTAD() {
				t.Errorf("EPTAD() = false, want true")
			}
			// Every control word honours its capability MSR.
			for _, w := range []struct {
				name string
				v    uint32
				msr  uint64
			}{{"pin", got.Pin, c.Pinbased}, {"proc", got.Proc, c.Procbased}, {"proc2", got.Proc2, c.Procbased2},
				{"exit", got.Exit, c.Exit}, {"entry", got.Entry, c.Entry}} {
				if lo, hi := uint32(w.msr), uint32(w.msr>>32); w.v&lo != lo || w.v&^hi != 0 {
					t.Errorf("%s controls %#x violate capability %#x", w.name, w.v, w.msr)
				}
			}
		})
	}
}

// Without the TRUE MSRs (IA32_VMX_BASIC bit 55 clear) the default1 controls stay 1: CR3-load
// and CR3-store exiting are then forced on, and save/load debug controls too.
func TestControlsWithoutTrueMSRs(t *testing.T) {
	m := map[uint32]uint64{}
	for k, v := range realServer {
		m[k] = v
	}
	m[0x480] &^= basicTrueControls
	c := ReadCaps(reader(t, m))
	got, err := c.Controls()
	if err != nil {
		t.Fatal(err)
	}
	if want := uint32(0xb619e5fa); got.Proc != want {
		t.Errorf("Proc = %#x, want %#x (CR3 load/store exiting forced)", got.Proc, want)
	}
	if got.Entry&entryLoadDebugControls == 0 || got.Exit&exitSaveDebugControls == 0 {
		t.Errorf("Entry, Exit = %#x, %#x: debug controls are default1", got.Entry, got.Exit)
	}
}

func TestCapsMissing(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(m map[uint32]uint64)
		want error
	}{
		{"VMX locked off", func(m map[uint32]uint64) { m[0x3A] = 1 }, hv.ErrNoHardware},
		{"no unrestricted guest", func(m map[uint32]uint64) { m[0x48B] &^= proc2UnrestrictedGuest << 32 }, hv.ErrNoHardware},
		{"no EPT", func(m map[uint32]uint64) { m[0x48B] &^= proc2EnableEPT << 32 }, hv.ErrNoHardware},
		{"no 4-level walk", func(m map[uint32]uint64) { m[0x48C] &^= eptCapWalk4 }, hv.ErrNoHardware},
		{"VMCS not write-back", func(m map[uint32]uint64) { m[0x480] &^= 0xF << basicMemTypeShift }, hv.ErrNoHardware},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := map[uint32]uint64{}
			for k, v := range bochsSkylakeX {
				m[k] = v
			}
			tc.edit(m)
			c := ReadCaps(reader(t, m))
			if err := c.Check(); !errors.Is(err, tc.want) {
				t.Errorf("Check() = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestAdjust(t *testing.T) {
	// allowed-0 0x16, allowed-1 0x7f: bits 1, 2, 4 forced, bits 7 and up impossible.
	const msr = 0x7f00000016
	if got, err := adjust("pin", msr, 1, 0x80); err != nil || got != 0x17 {
		t.Errorf("adjust(required 1, optional 0x80) = %#x, %v; want 0x17, nil", got, err)
	}
	if _, err := adjust("pin", msr, 0x80, 0); !errors.Is(err, ErrControl) {
		t.Errorf("adjust(required 0x80) error = %v, want ErrControl", err)
	}
	// Without VPID in the capabilities, the optional bit is dropped.
	m := map[uint32]uint64{}
	for k, v := range bochsSkylakeX {
		m[k] = v
	}
	m[0x48B] &^= proc2EnableVPID << 32
	c := ReadCaps(reader(t, m))
	k, err := c.Controls()
	if err != nil || k.VPID || k.Proc2&proc2EnableVPID != 0 {
		t.Errorf("Controls() without VPID = %+v, %v", k, err)
	}
}

func TestGuestCR(t *testing.T) {
	c := ReadCaps(reader(t, bochsSkylakeX))
	// Real mode: CR0 = ET. PE and PG may stay 0 (unrestricted guest); NE is forced and masked.
	cr0, mask := c.guestCR0(0x10)
	if cr0 != 0x30 || mask&cr0NE == 0 || mask&(cr0PE|cr0PG) != 0 {
		t.Errorf("guestCR0(0x10) = %#x mask %#x; want 0x30 with NE masked, PE/PG not", cr0, mask)
	}
	cr4, mask := c.guestCR4(0)
	if cr4 != cr4VMXE || mask&cr4VMXE == 0 {
		t.Errorf("guestCR4(0) = %#x mask %#x; want VMXE set and masked", cr4, mask)
	}
}
