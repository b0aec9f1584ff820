package hv

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/godwit-hv/godwit/hv/bus"
	"github.com/godwit-hv/godwit/hv/dev/debugexit"
	"github.com/godwit-hv/godwit/hv/dev/uart"
)

// VM states. A VM is created stopped; Start runs it (loading the guest afresh); it stops when
// the guest exits, crashes, is stopped from the host, or fails; it can be started again.
//
//	created --Start--> running --(guest exit | crash | Stop | error)--> stopped --Start--> running
//	created|stopped --Delete--> deleted
type State int

// VM states.
const (
	StateCreated State = iota
	StateRunning
	StateStopped
	StateDeleted
)

func (s State) String() string {
	return [...]string{"created", "running", "stopped", "deleted"}[s]
}

// Boot loads the guest into fresh memory and returns the first vCPU's initial state.
type Boot func(mem *Memory) (*CPUState, error)

// Config describes a VM.
type Config struct {
	Name    string
	MemSize uint64 // bytes, a multiple of 2 MiB
	Backend Backend
	Boot    Boot
	// AllocMemory provides guest RAM (ring0.AllocPages on bare metal) and a function to free it.
	AllocMemory func(size uint64) (*Memory, func(), error)
	// TSC reads the host TSC (guest RDMSR TSC); HostCPUID executes CPUID on the host.
	TSC       func() uint64
	HostCPUID CPUIDFunc
	// Devices, when set, is called after the standard devices are on the bus, to add more.
	Devices func(b *bus.Bus) error
}

// Errors callers branch on.
var (
	ErrState = errors.New("VM is not in a state that allows this")
)

// VM is one virtual machine.
type VM struct {
	cfg     Config
	bus     *bus.Bus
	Console *Console
	uart    *uart.UART
	exitDev *debugexit.Device
	plat    *platform

	mu       sync.Mutex
	state    State
	reason   string // why it stopped
	exitCode int    // value written to the debug-exit port
	exited   bool   // the guest exited through the debug-exit port
	failed   bool   // stopped by an error or a guest crash
	mem      *Memory
	freeMem  func()
	done     chan struct{}
	started  time.Time
	stopReq  atomic.Bool
	resetReq atomic.Bool // the guest reset itself (8042)
	reboots  atomic.Uint64
	exits    [ExitUnhandled + 1]atomic.Uint64
	rawExits sync.Map // RawName -> *atomic.Uint64
}

// NewVM creates a VM in the created state. Devices: a 16550 at COM1 whose output goes to the
// VM's console, and the debug-exit device at port 0xf4.
func NewVM(cfg Config) (*VM, error) {
	if cfg.Name == "" || cfg.Backend == nil || cfg.Boot == nil || cfg.AllocMemory == nil {
		return nil, fmt.Errorf("vm %q: incomplete configuration", cfg.Name)
	}
	if cfg.MemSize == 0 || cfg.MemSize%(2<<20) != 0 {
		return nil, fmt.Errorf("vm %q: memory size %d is not a positive multiple of 2 MiB", cfg.Name, cfg.MemSize)
	}
	if cfg.HostCPUID == nil {
		cfg.HostCPUID = func(uint32, uint32) (uint32, uint32, uint32, uint32) { return 0, 0, 0, 0 }
	}
	if cfg.TSC == nil {
		start := time.Now()
		cfg.TSC = func() uint64 { return uint64(time.Since(start)) }
	}
	vm := &VM{cfg: cfg, Console: NewConsole(64 << 10)}
	if err := vm.buildMachine(); err != nil {
		return nil, err
	}
	return vm, nil
}

// buildMachine makes the VM's devices afresh, as at power-on: the PC platform (platform.go),
// a 16550 at COM1 whose output goes to the VM's console, the debug-exit device at port 0xf4,
// and whatever Config.Devices adds.
func (vm *VM) buildMachine() error {
	b := bus.New()
	plat, err := newPlatform(b, func() {
		vm.resetReq.Store(true)
		vm.stopReq.Store(true)
	})
	if err != nil {
		return fmt.Errorf("vm %q: platform: %w", vm.cfg.Name, err)
	}
	u := uart.New(uart.Config{Out: vm.Console, IRQ: func(level bool) { plat.pic.SetIRQ(irqCOM1, level) }})
	exitDev := debugexit.New(func(int) { vm.stopReq.Store(true) })
	if err := b.Register(bus.PIO, uart.COM1Port, uart.NumRegs, "com1", u); err != nil {
		return err
	}
	if err := b.Register(bus.PIO, DebugExitPort, 4, "debug-exit", exitDev); err != nil {
		return err
	}
	if vm.cfg.Devices != nil {
		if err := vm.cfg.Devices(b); err != nil {
			return fmt.Errorf("vm %q: devices: %w", vm.cfg.Name, err)
		}
	}
	vm.bus, vm.plat, vm.uart, vm.exitDev = b, plat, u, exitDev
	return nil
}

// DebugExitPort is where the debug-exit device sits (QEMU's isa-debug-exit default).
const DebugExitPort = 0xF4

// Name returns the VM's name.
func (vm *VM) Name() string { return vm.cfg.Name }

// Start loads the guest into fresh memory and runs it.
func (vm *VM) Start() error {
	vm.mu.Lock()
	if vm.state != StateCreated && vm.state != StateStopped {
		vm.mu.Unlock()
		return fmt.Errorf("vm %s is %s: %w", vm.cfg.Name, vm.state, ErrState)
	}
	mem, free, err := vm.cfg.AllocMemory(vm.cfg.MemSize)
	if err != nil {
		vm.mu.Unlock()
		return fmt.Errorf("vm %s: guest memory: %w", vm.cfg.Name, err)
	}
	init, err := vm.cfg.Boot(mem)
	if err != nil {
		vm.mu.Unlock()
		free()
		return fmt.Errorf("vm %s: loading the guest: %w", vm.cfg.Name, err)
	}
	if vm.freeMem != nil {
		vm.freeMem()
	}
	if vm.started != (time.Time{}) {
		// A second start is a power cycle: fresh devices.
		if err := vm.buildMachine(); err != nil {
			vm.mu.Unlock()
			free()
			return err
		}
	}
	vm.mem, vm.freeMem = mem, free
	vm.state, vm.reason, vm.exited, vm.failed, vm.exitCode = StateRunning, "", false, false, 0
	vm.stopReq.Store(false)
	vm.resetReq.Store(false)
	vm.done = make(chan struct{})
	vm.started = time.Now()
	ready := make(chan error, 1)
	done := vm.done
	go vm.runVCPU(0, init, ready)
	vm.mu.Unlock()
	if err := <-ready; err != nil {
		<-done
		return err
	}
	return nil
}

// Stop asks the VM to stop and waits up to timeout for its vCPU to leave the guest.
func (vm *VM) Stop(timeout time.Duration) error {
	vm.mu.Lock()
	if vm.state != StateRunning {
		vm.mu.Unlock()
		return fmt.Errorf("vm %s is %s: %w", vm.cfg.Name, vm.state, ErrState)
	}
	done, plat := vm.done, vm.plat
	vm.mu.Unlock()
	vm.stopReq.Store(true)
	signal(plat.cpuWake) // a vCPU asleep in HLT notices at once
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("vm %s: vCPU did not stop within %v", vm.cfg.Name, timeout)
	}
}

// Wait blocks until the VM is not running (or timeout) and reports whether it stopped.
func (vm *VM) Wait(timeout time.Duration) bool {
	vm.mu.Lock()
	done := vm.done
	vm.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Delete frees a stopped VM's resources.
func (vm *VM) Delete() error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.state == StateRunning {
		return fmt.Errorf("vm %s is running; stop it first: %w", vm.cfg.Name, ErrState)
	}
	if vm.freeMem != nil {
		vm.freeMem()
		vm.freeMem, vm.mem = nil, nil
	}
	vm.state = StateDeleted
	return nil
}

// Info is a snapshot for `vm list`.
type Info struct {
	Name     string
	State    State
	Status   string // "running", "exited 42", "stopped: triple fault ..."
	MemSize  uint64
	Backend  string
	Exits    map[string]uint64 // per backend-neutral exit kind
	RawExits map[string]uint64 // per hardware exit reason
	Uptime   time.Duration
	Failed   bool
	ExitCode int
	Exited   bool
	Reboots  uint64 // resets by the guest, each followed by a fresh start
}

// Info returns the VM's current state.
func (vm *VM) Info() Info {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	in := Info{Name: vm.cfg.Name, State: vm.state, MemSize: vm.cfg.MemSize, Backend: vm.cfg.Backend.Name(),
		Exits: map[string]uint64{}, RawExits: map[string]uint64{}, Failed: vm.failed, ExitCode: vm.exitCode, Exited: vm.exited,
		Reboots: vm.reboots.Load()}
	for k := range vm.exits {
		if n := vm.exits[k].Load(); n > 0 {
			in.Exits[ExitKind(k).String()] = n
		}
	}
	vm.rawExits.Range(func(k, v any) bool {
		in.RawExits[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	switch {
	case vm.state == StateRunning:
		in.Status = "running"
		in.Uptime = time.Since(vm.started)
	case vm.exited:
		in.Status = fmt.Sprintf("exited %d", vm.exitCode)
	case vm.reason != "":
		in.Status = "stopped: " + vm.reason
	default:
		in.Status = vm.state.String()
	}
	return in
}

// finish records why the vCPU stopped.
func (vm *VM) finish(reason string, failed bool) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if _, v, ok := vm.exitDev.Status(); ok {
		vm.exited, vm.exitCode = true, int(v)
		reason = fmt.Sprintf("exited %d", v)
		failed = false
	}
	vm.state = StateStopped
	vm.reason = reason
	vm.failed = failed
	close(vm.done)
}

// runVCPU is the vCPU's goroutine: locked to one OS thread, it enters the guest and handles
// exits until the VM stops.
func (vm *VM) runVCPU(id int, init *CPUState, ready chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	fail := func(err error) {
		ready <- err
		vm.finish(err.Error(), true)
	}
	bvm, err := vm.cfg.Backend.NewVM(vm.mem)
	if err != nil {
		fail(fmt.Errorf("vm %s: %s: %w", vm.cfg.Name, vm.cfg.Backend.Name(), err))
		return
	}
	defer bvm.Close()
	bcpu, err := bvm.NewVCPU(id)
	if err != nil {
		fail(fmt.Errorf("vm %s: vcpu %d: %w", vm.cfg.Name, id, err))
		return
	}
	defer bcpu.Close()
	if err := bcpu.SetState(init); err != nil {
		fail(fmt.Errorf("vm %s: vcpu %d: initial state: %w", vm.cfg.Name, id, err))
		return
	}
	ready <- nil
	stopTimers := make(chan struct{})
	defer close(stopTimers)
	go vm.plat.runTimers(stopTimers)
	c := &vcpu{vm: vm, id: id, hw: bcpu}
	c.emu.Fetcher = c
	c.emu.Memory = c
	reason, failed := c.loop()
	vm.finish(reason, failed)
	if vm.resetReq.Load() && !failed {
		// The guest reset the machine (8042 pulse): power-cycle it, as a PC would reboot.
		vm.reboots.Add(1)
		go func() {
			if err := vm.Start(); err != nil {
				vm.mu.Lock()
				vm.reason, vm.failed = "reboot failed: "+err.Error(), true
				vm.mu.Unlock()
			}
		}()
	}
}

type atomicCounter = atomic.Uint64

// SendInput delivers console input to the guest's UART and returns how many bytes it took
// (the receive FIFO may be full).
func (vm *VM) SendInput(p []byte) int { return vm.uart.Receive(p) }

// Bus returns the VM's device bus (for tests and for wiring more devices).
func (vm *VM) Bus() *bus.Bus { return vm.bus }
