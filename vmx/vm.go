package vmx

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/godwit-hv/godwit/arch/ring0"
	"github.com/godwit-hv/godwit/arch/x86"
	"github.com/godwit-hv/godwit/ept"
	"github.com/godwit-hv/godwit/hv"
)

// Godwit's kernel runs on one CPU (arch/ring0), so VMX operation, the VMXON region and "the
// current VMCS" are per machine here. current is only read and changed with interrupts
// disabled: the ring-0 scheduler may switch threads at any interrupt, and another vCPU's thread
// may make its own VMCS current meanwhile, so every batch of VMREAD/VMWRITE first makes sure
// its VMCS is current (vcpu.load).
var (
	global struct {
		sync.Mutex
		on      bool
		caps    Caps
		ctl     Controls
		vmxonPA uint64
		vpids   [1 << 16 / 64]uint64 // VPID allocation bitmap; VPID 0 is the host's
	}
	current uint64 // physical address of the current VMCS; 0 for none
)

// Backend is the VT-x implementation of hv.Backend.
type Backend struct {
	caps Caps
	ctl  Controls
}

var _ hv.Backend = (*Backend)(nil)

// Enable checks the CPU's VMX capabilities, enables VMX in IA32_FEATURE_CONTROL if the firmware
// left it unlocked, sets CR4.VMXE and executes VMXON, once; later calls return the same Backend.
// The error wraps hv.ErrNoHardware when the CPU cannot run Godwit's guests.
func Enable() (*Backend, error) {
	global.Lock()
	defer global.Unlock()
	if global.on {
		return &Backend{caps: global.caps, ctl: global.ctl}, nil
	}
	if !ring0.BareMetal() {
		return nil, fmt.Errorf("vmx: %w", ring0.ErrNotBareMetal)
	}
	if _, _, ecx, _ := x86.Cpuid(1, 0); ecx&(1<<5) == 0 { // CPUID.01H:ECX.VMX[bit 5]
		return nil, fmt.Errorf("vmx: %w: CPUID reports no VMX", hv.ErrNoHardware)
	}
	c := ReadCaps(x86.Rdmsr)
	if err := c.Check(); err != nil {
		return nil, fmt.Errorf("vmx: %w", err)
	}
	ctl, err := c.Controls()
	if err != nil {
		return nil, fmt.Errorf("vmx: %w: %w", hv.ErrNoHardware, err)
	}
	// Intel SDM Vol. 3C, 24.7 "Enabling and Entering VMX Operation".
	if c.FeatureControl&featureControlLocked == 0 {
		c.FeatureControl |= featureControlLocked | featureControlVMXOut
		x86.Wrmsr(msrFeatureControl, c.FeatureControl)
	}
	cr0 := x86.ReadCR0()
	if cr0&c.CR0Fixed0 != c.CR0Fixed0 || cr0&^c.CR0Fixed1 != 0 {
		return nil, fmt.Errorf("vmx: host CR0 %#x violates the VMX fixed bits (FIXED0 %#x, FIXED1 %#x)", cr0, c.CR0Fixed0, c.CR0Fixed1)
	}
	cr4 := x86.ReadCR4() | cr4VMXE
	if cr4&c.CR4Fixed0 != c.CR4Fixed0 || cr4&^c.CR4Fixed1 != 0 {
		return nil, fmt.Errorf("vmx: host CR4 %#x violates the VMX fixed bits (FIXED0 %#x, FIXED1 %#x)", cr4, c.CR4Fixed0, c.CR4Fixed1)
	}
	pa, err := newRegion(&c)
	if err != nil {
		return nil, fmt.Errorf("vmx: VMXON region: %w", err)
	}
	x86.WriteCR4(cr4)
	if st := vmxon(pa); st != vmSucceed {
		ring0.FreePages(pa, 1)
		// VMfailValid here means VMX was already on (error 15), which Godwit never leaves.
		return nil, fmt.Errorf("vmx: VMXON failed (%s)", statusText(st, 0))
	}
	global.on, global.caps, global.ctl, global.vmxonPA = true, c, ctl, pa
	global.vpids[0] |= 1
	return &Backend{caps: c, ctl: ctl}, nil
}

// newRegion allocates a VMXON region or VMCS: one zeroed page with the revision identifier in
// its first 31 bits. Intel SDM Vol. 3C, 25.2 "Format of the VMCS Region", 25.11.5 "VMXON Region".
func newRegion(c *Caps) (uint64, error) {
	pa, err := ring0.AllocPages(1)
	if err != nil {
		return 0, err
	}
	binary.LittleEndian.PutUint32(ring0.PageBytes(pa, 4), c.Revision())
	return pa, nil
}

func statusText(st uint8, errNum uint64) string {
	switch st {
	case vmFailInvalid:
		return "VMfailInvalid"
	case vmFailValid:
		return "VMfailValid, " + InstructionError(errNum)
	}
	return "VMsucceed"
}

// Caps returns the capabilities the backend was enabled with.
func (b *Backend) Caps() Caps { return b.caps }

// Controls returns the adjusted control words every vCPU starts with.
func (b *Backend) Controls() Controls { return b.ctl }

// Name implements hv.Backend.
func (b *Backend) Name() string { return "vmx" }

// VM is one guest's EPT tables and memory.
type VM struct {
	b     *Backend
	mem   *hv.Memory
	ept   *ept.Tables
	eptp  uint64
	mu    sync.Mutex
	vcpus []*VCPU
}

// NewVM maps mem at guest-physical 0 with read/write/execute, write-back EPT entries.
func (b *Backend) NewVM(mem *hv.Memory) (hv.BackendVM, error) {
	return b.newVM(mem)
}

func (b *Backend) newVM(mem *hv.Memory) (*VM, error) {
	size := mem.Size()
	if size == 0 || size%ept.PageSize4K != 0 || mem.HostPhys%ept.PageSize4K != 0 || mem.HostPhys == 0 {
		return nil, fmt.Errorf("vmx: guest memory at host-physical %#x size %#x: not page-aligned or not physical", mem.HostPhys, size)
	}
	t, err := ept.New(ept.Config{Kind: ept.EPT, Alloc: pageAlloc{}, AccessedDirty: b.caps.EPTAD(),
		ExecuteOnly: b.caps.EPTVPIDCap&eptCapExecOnly != 0})
	if err != nil {
		return nil, fmt.Errorf("vmx: %w", err)
	}
	if _, err := t.Map(0, mem.HostPhys, size, ept.RWX); err != nil {
		t.Destroy()
		return nil, fmt.Errorf("vmx: mapping guest memory: %w", err)
	}
	vm := &VM{b: b, mem: mem, ept: t, eptp: t.EPTP()}
	// The tables' root may have held another guest's tables before: drop what the TLBs cached.
	if err := vm.InvalidateEPT(); err != nil {
		t.Destroy()
		return nil, err
	}
	return vm, nil
}

// EPT returns the VM's second-level tables, for dirty logging and MMIO holes. After any call
// that reports flush, call InvalidateEPT.
func (vm *VM) EPT() *ept.Tables { return vm.ept }

// InvalidateEPT drops the translations cached from this VM's EPT tables: INVEPT single-context
// where supported, else all-context. Intel SDM Vol. 3C, 29.4.3.1 "Operations that Invalidate
// Cached Mappings" and 32.3 "INVEPT".
func (vm *VM) InvalidateEPT() error {
	typ, desc := uint64(1), [2]uint64{vm.eptp, 0}
	if vm.b.caps.EPTVPIDCap&eptCapINVEPTSingle == 0 {
		typ = 2
	}
	flags := cli()
	st := invept(typ, &desc)
	var n uint64
	if st == vmFailValid {
		n, _ = vmread(vmInstructionError)
	}
	restoreFlags(flags)
	if st != vmSucceed {
		return fmt.Errorf("vmx: INVEPT type %d: %s", typ, statusText(st, n))
	}
	return nil
}

// Close releases the EPT tables; the VM's vCPUs must be closed first.
func (vm *VM) Close() error {
	vm.mu.Lock()
	n := len(vm.vcpus)
	vm.mu.Unlock()
	if n != 0 {
		return fmt.Errorf("vmx: closing a VM with %d vCPUs open", n)
	}
	err := vm.InvalidateEPT()
	vm.ept.Destroy()
	return err
}

func allocVPID() uint16 {
	global.Lock()
	defer global.Unlock()
	for i, w := range global.vpids {
		if w != ^uint64(0) {
			for b := 0; b < 64; b++ {
				if w&(1<<b) == 0 {
					global.vpids[i] |= 1 << b
					return uint16(i*64 + b)
				}
			}
		}
	}
	return 0
}

func freeVPID(v uint16) {
	global.Lock()
	defer global.Unlock()
	if v != 0 {
		global.vpids[v/64] &^= 1 << (v % 64)
	}
}
