package hv

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/godwit-hv/godwit/hv/bus"
	"github.com/godwit-hv/godwit/hv/dev/debugexit"
	"github.com/godwit-hv/godwit/hv/dev/uart"
	"github.com/godwit-hv/godwit/hv/dev/virtio"
	"github.com/godwit-hv/godwit/hv/dev/virtio/blk"
	vnet "github.com/godwit-hv/godwit/hv/dev/virtio/net"
	"github.com/godwit-hv/godwit/hv/vswitch"
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
	// CPUs is the number of vCPUs (default 1). vCPU 0 starts at Boot's state; the others wait
	// for INIT and a start-up IPI, as application processors do.
	CPUs    int
	Backend Backend
	Boot    Boot
	// AllocMemory provides guest RAM (ring0.AllocPages on bare metal) and a function to free it.
	AllocMemory func(size uint64) (*Memory, func(), error)
	// TSC reads the host TSC (guest RDMSR TSC); HostCPUID executes CPUID on the host.
	TSC       func() uint64
	HostCPUID CPUIDFunc
	// TSCHz is the TSC frequency (the guest's is the host's), for the APIC's TSC-deadline
	// timer and the paravirtual clock. Zero: 1 GHz, for tests with a nanosecond TSC.
	TSCHz uint64
	// Disks are the VM's virtio-blk disks, on PCI slots 1, 2, ... in this order.
	Disks []Disk
	// NICs are the VM's virtio-net devices, each a port of a virtual switch, on the PCI
	// slots after the disks' (firstNICSlot, ...).
	NICs []NIC
	// Devices, when set, is called after the standard devices are on the bus, to add more.
	Devices func(b *bus.Bus) error
}

// Disk is a guest disk: a virtio-blk device backed by a host block device or region.
type Disk struct {
	ID       string // serial number the guest sees (at most 20 bytes)
	Backing  blk.Disk
	ReadOnly bool
}

// NIC is a guest network card: a virtio-net device with its MAC address, connected to a port
// of a virtual switch (named VM.netN) for as long as the VM's machine exists.
type NIC struct {
	MAC    [6]byte
	Switch *vswitch.Switch
}

// MaxCPUs bounds Config.CPUs: xAPIC IDs are 8 bits and 0xFF is the broadcast ID.
const MaxCPUs = 254

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
	disks   []*virtio.Transport
	nics    []*vnet.Net
	ports   []*vswitch.Port
	clock   clockBase

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
	resetReq atomic.Bool  // the guest reset itself (8042)
	powerOff atomic.Bool  // the guest entered S5 (ACPI soft-off)
	panicked atomic.Value // string: the guest kernel's panic message, from its console
	active   atomic.Int32 // vCPUs that can still make progress (running, or halted with IF=1)
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
	if cfg.CPUs == 0 {
		cfg.CPUs = 1
	}
	if cfg.CPUs < 1 || cfg.CPUs > MaxCPUs {
		return nil, fmt.Errorf("vm %q: %d vCPUs, want 1 to %d", cfg.Name, cfg.CPUs, MaxCPUs)
	}
	if len(cfg.Disks) > maxDisks {
		return nil, fmt.Errorf("vm %q: %d disks, at most %d", cfg.Name, len(cfg.Disks), maxDisks)
	}
	if len(cfg.NICs) > maxNICs {
		return nil, fmt.Errorf("vm %q: %d NICs, at most %d", cfg.Name, len(cfg.NICs), maxNICs)
	}
	for i, n := range cfg.NICs {
		if n.Switch == nil {
			return nil, fmt.Errorf("vm %q: NIC %d has no switch", cfg.Name, i)
		}
	}
	if cfg.TSCHz == 0 {
		cfg.TSCHz = 1e9
	}
	if cfg.HostCPUID == nil {
		cfg.HostCPUID = func(uint32, uint32) (uint32, uint32, uint32, uint32) { return 0, 0, 0, 0 }
	}
	if cfg.TSC == nil {
		start := time.Now()
		cfg.TSC = func() uint64 { return uint64(time.Since(start)) }
	}
	vm := &VM{cfg: cfg, Console: NewConsole(64 << 10)}
	vm.Console.watchLines(vm.watchPanic)
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
	plat, err := newPlatform(b, platformConfig{
		cpus:  vm.cfg.CPUs,
		tsc:   vm.cfg.TSC, // every vCPU starts with TSC offset 0
		tscHz: vm.cfg.TSCHz,
		onReset: func() {
			vm.resetReq.Store(true)
			vm.requestStop()
		},
		onPowOff: func() {
			vm.powerOff.Store(true)
			vm.requestStop()
		},
	})
	if err != nil {
		return fmt.Errorf("vm %q: platform: %w", vm.cfg.Name, err)
	}
	var disks []*virtio.Transport
	for i, d := range vm.cfg.Disks {
		slot := firstDiskSlot + i
		be, err := blk.New(blk.Config{Disk: d.Backing, ReadOnly: d.ReadOnly, ID: d.ID})
		if err != nil {
			return fmt.Errorf("vm %q: disk %d: %w", vm.cfg.Name, i, err)
		}
		t, err := virtio.New(virtio.Config{
			Backend: be, Mem: vmMemory{vm}, Bus: b, Name: fmt.Sprintf("virtio-blk%d", i),
			Class: pciClassStorage, Subclass: pciSubclassOther,
			InterruptLine: uint8(PCIGSI(slot, 0)),
			IRQ:           func(level bool) { plat.pciIRQ(slot, 0, level) },
			OnError: func(err error) {
				vm.Console.Write([]byte(fmt.Sprintf("\r\ngodwit: vm %s: disk %d: %v\r\n", vm.cfg.Name, i, err)))
			},
		})
		if err != nil {
			return fmt.Errorf("vm %q: disk %d: %w", vm.cfg.Name, i, err)
		}
		if err := plat.pci.Attach(slot, t.Function()); err != nil {
			return fmt.Errorf("vm %q: disk %d: %w", vm.cfg.Name, i, err)
		}
		disks = append(disks, t)
	}
	vm.closeNICs() // the previous machine's, if this is a power cycle
	for i, n := range vm.cfg.NICs {
		if err := vm.addNIC(b, plat, i, n); err != nil {
			vm.closeNICs()
			return fmt.Errorf("vm %q: NIC %d: %w", vm.cfg.Name, i, err)
		}
	}
	u := uart.New(uart.Config{Out: vm.Console, IRQ: func(level bool) { plat.isaIRQ(irqCOM1, level) }})
	exitDev := debugexit.New(func(int) { vm.requestStop() })
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
	vm.bus, vm.plat, vm.uart, vm.exitDev, vm.disks = b, plat, u, exitDev, disks
	return nil
}

// PCI placement of the disks and NICs, and their class codes: mass storage "other" (what
// virtio-blk reports) and network "Ethernet". PCI Code and ID Assignment Specification 1.11,
// 1.2 and 1.3.
const (
	firstDiskSlot       = 1
	maxDisks            = 8
	firstNICSlot        = firstDiskSlot + maxDisks
	maxNICs             = 8
	pciClassStorage     = 0x01
	pciSubclassOther    = 0x80
	pciClassNetwork     = 0x02
	pciSubclassEthernet = 0x00
)

// addNIC builds NIC i on its PCI slot and connects it to its switch.
func (vm *VM) addNIC(b *bus.Bus, plat *platform, i int, n NIC) error {
	slot := firstNICSlot + i
	dev, err := vnet.New(vnet.Config{MAC: n.MAC})
	if err != nil {
		return err
	}
	name := fmt.Sprintf("virtio-net%d", i)
	t, err := virtio.New(virtio.Config{
		Backend: dev, Mem: vmMemory{vm}, Bus: b, Name: name,
		Class: pciClassNetwork, Subclass: pciSubclassEthernet,
		InterruptLine: uint8(PCIGSI(slot, 0)),
		IRQ:           func(level bool) { plat.pciIRQ(slot, 0, level) },
		OnError: func(err error) {
			vm.Console.Write([]byte(fmt.Sprintf("\r\ngodwit: vm %s: NIC %d: %v\r\n", vm.cfg.Name, i, err)))
		},
	})
	if err != nil {
		return err
	}
	if err := plat.pci.Attach(slot, t.Function()); err != nil {
		return err
	}
	if err := dev.Bind(t, b, name); err != nil {
		return err
	}
	vm.nics = append(vm.nics, dev)
	port, err := dev.Connect(n.Switch, fmt.Sprintf("%s.net%d", vm.cfg.Name, i))
	if err != nil {
		return err
	}
	vm.ports = append(vm.ports, port)
	return nil
}

// closeNICs disconnects the NICs from their switches and stops them.
func (vm *VM) closeNICs() {
	for i, p := range vm.ports {
		vm.cfg.NICs[i].Switch.RemovePort(p)
	}
	for _, n := range vm.nics {
		n.Close()
	}
	vm.nics, vm.ports = nil, nil
}

// NICInfo describes a guest NIC for `vm list`.
type NICInfo struct {
	MAC   [6]byte
	Port  string
	Stats vswitch.Stats
}

// NICs describes the VM's network cards.
func (vm *VM) NICs() []NICInfo {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	var out []NICInfo
	for i, p := range vm.ports {
		out = append(out, NICInfo{MAC: vm.cfg.NICs[i].MAC, Port: fmt.Sprintf("%s.net%d", vm.cfg.Name, i), Stats: p.Stats()})
	}
	return out
}

// vmMemory lets devices reach the guest RAM of the VM's current run (Start allocates it
// afresh; devices are never active while it changes).
type vmMemory struct{ vm *VM }

func (m vmMemory) Slice(gpa, n uint64) ([]byte, error) {
	mem := m.vm.mem
	if mem == nil {
		return nil, ErrOutOfRange
	}
	return mem.Slice(gpa, n)
}

// Linux ends a panic report with this line (kernel/panic.c), after the message and the stack
// trace; the guest is then dead, spinning or halted, and the VM is stopped as crashed.
const (
	linuxPanicEnd    = "---[ end Kernel panic - not syncing: "
	linuxPanicEndTag = " ]---"
)

// watchPanic recognizes the end of a Linux kernel panic report on the guest's console.
func (vm *VM) watchPanic(line string) {
	i := strings.Index(line, linuxPanicEnd)
	if i < 0 {
		return
	}
	msg := strings.TrimSuffix(line[i+len(linuxPanicEnd):], linuxPanicEndTag)
	if msg == "" {
		msg = "(no message)"
	}
	vm.panicked.Store(msg)
	vm.requestStop()
}

// requestStop asks every vCPU to leave the guest.
func (vm *VM) requestStop() {
	vm.stopReq.Store(true)
	if vm.plat != nil {
		vm.plat.wakeAll()
	}
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
	// The last run's memory goes first: a guest the size of half the host's free memory can
	// still be power-cycled.
	if vm.freeMem != nil {
		vm.freeMem()
		vm.freeMem, vm.mem = nil, nil
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
	if vm.started != (time.Time{}) {
		// A second start is a power cycle: fresh devices.
		if err := vm.buildMachine(); err != nil {
			vm.mu.Unlock()
			free()
			return err
		}
	}
	bvm, err := vm.cfg.Backend.NewVM(mem)
	if err != nil {
		err = fmt.Errorf("vm %s: %s: %w", vm.cfg.Name, vm.cfg.Backend.Name(), err)
		vm.state, vm.reason, vm.failed = StateStopped, err.Error(), true
		vm.mu.Unlock()
		free()
		return err
	}
	vm.mem, vm.freeMem = mem, free
	vm.state, vm.reason, vm.exited, vm.failed, vm.exitCode = StateRunning, "", false, false, 0
	vm.stopReq.Store(false)
	vm.resetReq.Store(false)
	vm.powerOff.Store(false)
	vm.panicked.Store("")
	vm.active.Store(1) // vCPU 0; APs count themselves in when started
	vm.clock = clockBase{tsc: vm.cfg.TSC(), wall: time.Now(), tscHz: vm.cfg.TSCHz}
	vm.done = make(chan struct{})
	vm.started = time.Now()
	n := vm.cfg.CPUs
	ready := make(chan error, n)
	results := make(chan vcpuResult, n)
	done := vm.done
	for id := range n {
		go vm.runVCPU(bvm, id, init, ready, results)
	}
	go vm.collect(bvm, results)
	vm.mu.Unlock()
	var firstErr error
	for range n {
		if err := <-ready; err != nil && firstErr == nil {
			firstErr = err
			vm.requestStop()
		}
	}
	if firstErr != nil {
		<-done
		return firstErr
	}
	return nil
}

// vcpuResult is why one vCPU's loop ended.
type vcpuResult struct {
	reason string
	failed bool
}

// collect waits for every vCPU of a run, stops the others when the first one ends, and records
// the VM's outcome: the first failure, else the first reason given.
func (vm *VM) collect(bvm BackendVM, results <-chan vcpuResult) {
	var first *vcpuResult
	for range vm.cfg.CPUs {
		r := <-results
		vm.requestStop()
		if first == nil || r.failed && !first.failed {
			first = &r
		}
	}
	bvm.Close()
	reason, failed := first.reason, first.failed
	switch {
	case vm.powerOff.Load() && !failed:
		reason = "powered off by the guest"
	case vm.resetReq.Load() && !failed:
		reason = "reset by the guest"
	}
	if msg, _ := vm.panicked.Load().(string); msg != "" {
		reason, failed = "guest kernel panic: "+msg, true
	}
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

// Stop asks the VM to stop and waits up to timeout for its vCPU to leave the guest.
func (vm *VM) Stop(timeout time.Duration) error {
	vm.mu.Lock()
	if vm.state != StateRunning {
		vm.mu.Unlock()
		return fmt.Errorf("vm %s is %s: %w", vm.cfg.Name, vm.state, ErrState)
	}
	done := vm.done
	vm.mu.Unlock()
	vm.requestStop() // a vCPU asleep in HLT notices at once
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("vm %s: vCPU did not stop within %v", vm.cfg.Name, timeout)
	}
}

// Done returns a channel closed when the current run of the VM ends (nil if it never ran).
func (vm *VM) Done() <-chan struct{} {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.done
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
	vm.closeNICs()
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

// runVCPU is one vCPU's goroutine: locked to one OS thread, it enters the guest and handles
// exits until the VM stops. vCPU 0 starts at init; the others wait for a start-up IPI.
func (vm *VM) runVCPU(bvm BackendVM, id int, init *CPUState, ready chan<- error, results chan<- vcpuResult) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	fail := func(err error) {
		ready <- err
		results <- vcpuResult{err.Error(), true}
	}
	bcpu, err := bvm.NewVCPU(id)
	if err != nil {
		fail(fmt.Errorf("vm %s: vcpu %d: %w", vm.cfg.Name, id, err))
		return
	}
	defer bcpu.Close()
	if id == 0 {
		if err := bcpu.SetState(init); err != nil {
			fail(fmt.Errorf("vm %s: vcpu %d: initial state: %w", vm.cfg.Name, id, err))
			return
		}
	}
	ready <- nil
	var stopTimers chan struct{}
	if id == 0 {
		stopTimers = make(chan struct{})
		defer close(stopTimers)
		go vm.plat.runTimers(stopTimers)
	}
	c := &vcpu{vm: vm, id: id, hw: bcpu, link: vm.plat.cpus[id]}
	c.emu.Fetcher = c
	c.emu.Memory = c
	reason, failed := c.run()
	results <- vcpuResult{reason, failed}
}

type atomicCounter = atomic.Uint64

// SendInput delivers console input to the guest's UART and returns how many bytes it took
// (the receive FIFO may be full).
func (vm *VM) SendInput(p []byte) int { return vm.uart.Receive(p) }

// Bus returns the VM's device bus (for tests and for wiring more devices).
func (vm *VM) Bus() *bus.Bus { return vm.bus }
