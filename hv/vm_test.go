package hv

import (
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godwit-hv/godwit/hv/bus"
)

// fakeBackend drives the core with scripted exits: each step may check and change the state
// before the next exit is returned.
type fakeBackend struct {
	steps    []func(s *CPUState) Exit
	injected []Event
	mu       sync.Mutex
	state    CPUState
	failNew  error
	msrs     map[uint32]uint64
}

func (b *fakeBackend) Name() string { return "fake" }
func (b *fakeBackend) NewVM(mem *Memory) (BackendVM, error) {
	if b.failNew != nil {
		return nil, b.failNew
	}
	return &fakeVM{b: b}, nil
}

type fakeVM struct{ b *fakeBackend }

func (v *fakeVM) NewVCPU(int) (BackendVCPU, error) { return &fakeVCPU{b: v.b}, nil }
func (v *fakeVM) Close() error                     { return nil }

type fakeVCPU struct {
	b    *fakeBackend
	step int
}

func (c *fakeVCPU) SetState(s *CPUState) error {
	c.b.mu.Lock()
	c.b.state = *s
	c.b.mu.Unlock()
	return nil
}
func (c *fakeVCPU) State(s *CPUState) error {
	c.b.mu.Lock()
	*s = c.b.state
	c.b.mu.Unlock()
	return nil
}
func (c *fakeVCPU) EventPending() bool { return false }

func (c *fakeVCPU) Inject(ev Event) error {
	c.b.mu.Lock()
	c.b.injected = append(c.b.injected, ev)
	c.b.mu.Unlock()
	return nil
}
func (c *fakeVCPU) SetInterruptWindow(bool) {}
func (c *fakeVCPU) GuestMSR(msr uint32) (uint64, bool, error) {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	v, ok := c.b.msrs[msr]
	return v, ok, nil
}
func (c *fakeVCPU) SetGuestMSR(msr uint32, v uint64) (bool, error) {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	if msr != MSRLSTAR {
		return false, nil
	}
	if c.b.msrs == nil {
		c.b.msrs = map[uint32]uint64{}
	}
	c.b.msrs[msr] = v
	return true, nil
}
func (c *fakeVCPU) Close() error { return nil }
func (c *fakeVCPU) Run() (Exit, error) {
	if c.step >= len(c.b.steps) {
		time.Sleep(time.Millisecond) // a guest spinning: the host's timer makes it exit
		return Exit{Kind: ExitInterrupt, RawName: "INTR"}, nil
	}
	c.b.mu.Lock()
	e := c.b.steps[c.step](&c.b.state)
	c.b.mu.Unlock()
	c.step++
	return e, nil
}

// scratch is an MMIO device with one 64-bit register.
type scratch struct{ v uint64 }

func (d *scratch) Read(off uint64, p []byte) error {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], d.v)
	copy(p, b[off:])
	return nil
}

func (d *scratch) Write(off uint64, p []byte) error {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], d.v)
	copy(b[off:], p)
	d.v = binary.LittleEndian.Uint64(b[:])
	return nil
}

const scratchBase = 0xFEB00000

// newTestVM makes a VM over the fake backend with 2 MiB of RAM holding code at 0x1000, in
// 32-bit protected mode without paging.
func newTestVM(t *testing.T, b *fakeBackend, code []byte) (*VM, *scratch) {
	t.Helper()
	dev := &scratch{}
	vm, err := NewVM(Config{
		Name: "t", MemSize: 2 << 20, Backend: b,
		AllocMemory: func(size uint64) (*Memory, func(), error) {
			return &Memory{Host: make([]byte, size)}, func() {}, nil
		},
		Boot: func(m *Memory) (*CPUState, error) {
			m.WriteAt(code, 0x1000)
			return &CPUState{RIP: 0x1000, RFLAGS: 2, CR0: CR0PE,
				CS: Segment{Selector: 8, Attr: 0xB | SegS | SegP | SegDB | SegG, Limit: 0xFFFFFFFF}}, nil
		},
		HostCPUID: func(leaf, sub uint32) (uint32, uint32, uint32, uint32) {
			if leaf == 0 {
				return 0xD, 0x756e6547, 0x6c65746e, 0x49656e69
			}
			if leaf == 1 {
				return 0x306A9, 0x01000800, cpuid1ECXVMX | cpuid1ECXXSAVE | 1, 0x178BFBFF
			}
			return 0, 0, 0, 0
		},
		Devices: func(bb *bus.Bus) error { return bb.Register(bus.MMIO, scratchBase, 0x1000, "scratch", dev) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return vm, dev
}

func runToStop(t *testing.T, vm *VM) Info {
	t.Helper()
	if err := vm.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if !vm.Wait(5 * time.Second) {
		vm.Stop(time.Second)
		t.Fatalf("VM did not stop; status %q", vm.Info().Status)
	}
	return vm.Info()
}

func TestIOAndDebugExit(t *testing.T) {
	b := &fakeBackend{}
	b.steps = []func(*CPUState) Exit{
		func(s *CPUState) Exit {
			s.GPR[RAX] = 'h'
			return Exit{Kind: ExitIO, Port: 0x3F8, Size: 1, NextRIP: 0x1001}
		},
		func(s *CPUState) Exit {
			if s.RIP != 0x1001 {
				t.Errorf("RIP after OUT = %#x, want 0x1001", s.RIP)
			}
			s.GPR[RAX] = 0x12345678
			return Exit{Kind: ExitIO, Port: 0x80, Size: 1, In: true, NextRIP: 0x1002}
		},
		func(s *CPUState) Exit {
			if s.GPR[RAX] != 0x123456FF {
				t.Errorf("RAX after IN from an empty port = %#x, want 0x123456ff", s.GPR[RAX])
			}
			s.GPR[RAX] = 42
			return Exit{Kind: ExitIO, Port: DebugExitPort, Size: 4, NextRIP: 0x1003}
		},
	}
	vm, _ := newTestVM(t, b, nil)
	in := runToStop(t, vm)
	if in.Status != "exited 42" || in.Failed {
		t.Errorf("Info().Status = %q (failed %v), want \"exited 42\"", in.Status, in.Failed)
	}
	if got := string(vm.Console.Log()); got != "h" {
		t.Errorf("console = %q, want \"h\"", got)
	}
	if in.Exits["io"] != 3 {
		t.Errorf("io exits = %d, want 3", in.Exits["io"])
	}
}

func TestCPUIDDecodesRIPWithoutNextRIP(t *testing.T) {
	b := &fakeBackend{}
	b.steps = []func(*CPUState) Exit{
		func(s *CPUState) Exit { s.GPR[RAX] = 1; return Exit{Kind: ExitCPUID} },
		func(s *CPUState) Exit {
			if s.RIP != 0x1002 {
				t.Errorf("RIP after CPUID = %#x, want 0x1002 (0F A2 decoded)", s.RIP)
			}
			c := uint32(s.GPR[RCX])
			if c&cpuid1ECXHypervisor == 0 || c&cpuid1ECXVMX != 0 || c&cpuid1ECXXSAVE != 0 {
				t.Errorf("CPUID.1 ECX = %#x: want hypervisor set, VMX and XSAVE clear", c)
			}
			return Exit{Kind: ExitShutdown}
		},
	}
	vm, _ := newTestVM(t, b, []byte{0x0F, 0xA2, 0xF4})
	in := runToStop(t, vm)
	if !in.Failed || !strings.Contains(in.Status, "triple fault") {
		t.Errorf("status = %q (failed %v), want a triple fault", in.Status, in.Failed)
	}
}

func TestMSRPolicy(t *testing.T) {
	b := &fakeBackend{}
	b.steps = []func(*CPUState) Exit{
		func(s *CPUState) Exit { s.GPR[RCX] = 0xDEAD; return Exit{Kind: ExitRDMSR, NextRIP: 0x1002} },
		func(s *CPUState) Exit {
			if s.RIP != 0x1000 {
				t.Errorf("RIP after a #GP'd RDMSR = %#x, want unchanged 0x1000", s.RIP)
			}
			s.GPR[RCX], s.GPR[RAX], s.GPR[RDX] = MSREFER, EFERLME|1, 0
			return Exit{Kind: ExitWRMSR, NextRIP: 0x1002}
		},
		func(s *CPUState) Exit {
			if s.EFER != EFERLME|1 {
				t.Errorf("EFER after WRMSR = %#x, want %#x", s.EFER, EFERLME|1)
			}
			s.GPR[RCX] = MSRPAT
			s.GPR[RAX] = 0x02 // a reserved memory type
			return Exit{Kind: ExitWRMSR, NextRIP: 0x1004}
		},
		func(s *CPUState) Exit {
			s.GPR[RCX], s.GPR[RAX], s.GPR[RDX] = MSRLSTAR, 0x1234, 0xFFFFFFFF
			return Exit{Kind: ExitWRMSR, NextRIP: 0x1006}
		},
		func(s *CPUState) Exit {
			s.GPR[RCX] = MSRLSTAR
			return Exit{Kind: ExitRDMSR, NextRIP: 0x1008}
		},
		func(s *CPUState) Exit {
			if got := s.GPR[RDX]<<32 | s.GPR[RAX]; got != 0xFFFFFFFF00001234 {
				t.Errorf("RDMSR LSTAR = %#x, want 0xffffffff00001234", got)
			}
			return Exit{Kind: ExitHLT}
		},
	}
	vm, _ := newTestVM(t, b, nil)
	in := runToStop(t, vm)
	if b.msrs[MSRLSTAR] != 0xFFFFFFFF00001234 {
		t.Errorf("backend LSTAR = %#x, want the guest's write", b.msrs[MSRLSTAR])
	}
	if len(b.injected) != 2 || b.injected[0].Vector != vecGP || b.injected[1].Vector != vecGP {
		t.Errorf("injected = %+v, want two #GP", b.injected)
	}
	if !strings.Contains(in.Status, "halted with interrupts disabled") || in.Failed {
		t.Errorf("status = %q, want a halt", in.Status)
	}
}

func TestMMIO(t *testing.T) {
	b := &fakeBackend{}
	// mov [eax], ebx ; mov ecx, [eax]
	code := []byte{0x89, 0x18, 0x8B, 0x08}
	b.steps = []func(*CPUState) Exit{
		func(s *CPUState) Exit {
			s.GPR[RAX], s.GPR[RBX] = scratchBase, 0xCAFEF00D
			return Exit{Kind: ExitMMIO, GPA: scratchBase, Write: true}
		},
		func(s *CPUState) Exit { return Exit{Kind: ExitMMIO, GPA: scratchBase} },
		func(s *CPUState) Exit {
			if s.GPR[RCX] != 0xCAFEF00D || s.RIP != 0x1004 {
				t.Errorf("after MMIO: RCX %#x RIP %#x, want 0xcafef00d 0x1004", s.GPR[RCX], s.RIP)
			}
			return Exit{Kind: ExitMMIO, GPA: 0x100000000}
		},
	}
	vm, dev := newTestVM(t, b, code)
	in := runToStop(t, vm)
	if dev.v != 0xCAFEF00D {
		t.Errorf("device register = %#x, want 0xcafef00d", dev.v)
	}
	if !in.Failed || !strings.Contains(in.Status, "outside its 2 MiB of RAM") {
		t.Errorf("status = %q, want the out-of-RAM stop", in.Status)
	}
}

func TestStopSpinningGuest(t *testing.T) {
	b := &fakeBackend{}
	vm, _ := newTestVM(t, b, nil)
	if err := vm.Start(); err != nil {
		t.Fatal(err)
	}
	if err := vm.Start(); !errors.Is(err, ErrState) {
		t.Errorf("Start of a running VM = %v, want ErrState", err)
	}
	if err := vm.Delete(); !errors.Is(err, ErrState) {
		t.Errorf("Delete of a running VM = %v, want ErrState", err)
	}
	time.Sleep(20 * time.Millisecond)
	if err := vm.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	in := vm.Info()
	if in.State != StateStopped || in.Status != "stopped: stopped by the host" {
		t.Errorf("after Stop: %v %q", in.State, in.Status)
	}
	if in.Exits["interrupt"] == 0 {
		t.Errorf("no interrupt exits counted")
	}
	// It can run again, and be deleted once stopped.
	if err := vm.Start(); err != nil {
		t.Fatal(err)
	}
	vm.Stop(5 * time.Second)
	if err := vm.Delete(); err != nil {
		t.Fatal(err)
	}
}

func TestBackendFailure(t *testing.T) {
	b := &fakeBackend{failNew: ErrNoHardware}
	vm, _ := newTestVM(t, b, nil)
	err := vm.Start()
	if !errors.Is(err, ErrNoHardware) {
		t.Fatalf("Start = %v, want ErrNoHardware", err)
	}
	if in := vm.Info(); in.State != StateStopped || !in.Failed {
		t.Errorf("after a failed start: %v failed=%v", in.State, in.Failed)
	}
}

func TestTranslateLongMode(t *testing.T) {
	m := &Memory{Host: make([]byte, 4<<20)}
	put := func(gpa, v uint64) {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], v)
		m.WriteAt(b[:], int64(gpa))
	}
	// PML4 at 0x1000 -> PDPT 0x2000 -> PD 0x3000: 2 MiB page at 0 and a 4 KiB table for 2-4 MiB.
	put(0x1000, 0x2000|1)
	put(0x2000, 0x3000|1)
	put(0x3000, 0x0|1|ptPS)
	put(0x3008, 0x4000|1)
	put(0x4000+5*8, 0x123000|1)
	s := &CPUState{CR0: CR0PE | CR0PG, CR4: CR4PAE, EFER: EFERLME | EFERLMA, CR3: 0x1000}
	for _, tc := range []struct{ lin, want uint64 }{{0x1234, 0x1234}, {0x205678, 0x123678}} {
		if got, err := Translate(m, s, tc.lin); err != nil || got != tc.want {
			t.Errorf("Translate(%#x) = %#x, %v; want %#x", tc.lin, got, err, tc.want)
		}
	}
	if _, err := Translate(m, s, 0x206000); !errors.Is(err, ErrPageFault) {
		t.Errorf("Translate of an unmapped page = %v, want ErrPageFault", err)
	}
}

// TestStopHaltedGuest: a guest asleep in HLT with interrupts on (and no interrupt coming)
// stops at once when the host asks.
func TestStopHaltedGuest(t *testing.T) {
	b := &fakeBackend{}
	halted := make(chan struct{})
	b.steps = []func(*CPUState) Exit{
		func(s *CPUState) Exit {
			s.RFLAGS |= RFLAGSIF
			close(halted)
			return Exit{Kind: ExitHLT, NextRIP: 0x1001}
		},
	}
	vm, _ := newTestVM(t, b, nil)
	if err := vm.Start(); err != nil {
		t.Fatal(err)
	}
	<-halted
	time.Sleep(10 * time.Millisecond) // let the vCPU reach its wait
	start := time.Now()
	if err := vm.Stop(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("Stop of a halted guest took %v", took)
	}
	if in := vm.Info(); in.Status != "stopped: stopped by the host" {
		t.Errorf("status = %q", in.Status)
	}
}
