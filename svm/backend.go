package svm

import (
	"errors"
	"fmt"
	"sync"

	"github.com/godwit-hv/godwit/arch/ring0"
	"github.com/godwit-hv/godwit/arch/x86"
	"github.com/godwit-hv/godwit/ept"
	"github.com/godwit-hv/godwit/hv"
)

// MSRs the backend programs. AMD APM Vol. 2, 3.1.7 "Extended Feature Enable Register (EFER)";
// 15.30.4 "VM_HSAVE_PA MSR".
const (
	msrEFER      = 0xC000_0080
	msrVMHsavePA = 0xC001_0117
)

// CPUID leaves the backend reads besides x86.Probe's. AMD APM Vol. 3, Appendix E.
const (
	cpuidAddrSizes   = 0x8000_0008 // EAX[7:0]: physical-address width
	cpuidExtFeatures = 0x8000_0001 // EDX bit 29: long mode
	cpuidEDXLM       = 1 << 29
)

// Detect reports whether the CPU described by f can run SVM guests with nested paging:
// CPUID Fn8000_0001_ECX.SVM, Fn8000_000A_EDX.NP, and VM_CR.SVMDIS clear. NRIPS is optional
// (QEMU TCG lacks it). AMD APM Vol. 2, 15.4 "Enabling SVM".
func Detect(f x86.Features) error {
	switch {
	case !f.SVM:
		return fmt.Errorf("svm: %w: CPUID Fn8000_0001_ECX.SVM is 0", hv.ErrNoHardware)
	case f.SVMDisabled:
		return fmt.Errorf("svm: %w: SVM disabled by firmware (VM_CR.SVMDIS is 1)", hv.ErrNoHardware)
	case !f.NPT:
		return fmt.Errorf("svm: %w: no nested paging (CPUID Fn8000_000A_EDX.NP is 0)", hv.ErrNoHardware)
	}
	return nil
}

// Backend is the AMD-V backend on this host CPU. It implements hv.Backend.
type Backend struct {
	f   x86.Features
	lim checkLimits
	// hostSavePA is the page the host's VMSAVE state goes to around every VMRUN.
	hostSavePA uint64

	mu    sync.Mutex
	asids asidPool
}

var _ hv.Backend = (*Backend)(nil)

// host is the per-CPU state New sets up once: EFER.SVME, the VM_HSAVE_PA page and the host's
// VMSAVE page.
var host struct {
	once              sync.Once
	err               error
	hsavePA, vmsavePA uint64
}

// New detects SVM, enables it on the host CPU and returns the backend.
func New(f x86.Features) (*Backend, error) {
	if err := Detect(f); err != nil {
		return nil, err
	}
	if !ring0.BareMetal() {
		return nil, fmt.Errorf("svm: %w: %w", hv.ErrNoHardware, ring0.ErrNotBareMetal)
	}
	host.once.Do(enable)
	if host.err != nil {
		return nil, host.err
	}
	a, _, _, _ := x86.Cpuid(cpuidAddrSizes, 0)
	_, _, _, d := x86.Cpuid(cpuidExtFeatures, 0)
	b := &Backend{
		f:          f,
		lim:        checkLimits{maxPhysAddr: uint(a & 0xFF), longMode: d&cpuidEDXLM != 0},
		hostSavePA: host.vmsavePA,
	}
	if b.lim.maxPhysAddr == 0 {
		b.lim.maxPhysAddr = 36 // the architectural minimum when CPUID does not say
	}
	b.asids.init(f.NASID)
	return b, nil
}

// enable sets EFER.SVME and VM_HSAVE_PA. AMD APM Vol. 2, 15.4 "Enabling SVM" and 15.30.4.
func enable() {
	pa, err := ring0.AllocPages(2)
	if err != nil {
		host.err = fmt.Errorf("svm: host save areas: %w", err)
		return
	}
	host.hsavePA, host.vmsavePA = pa, pa+4096
	x86.Wrmsr(msrEFER, x86.Rdmsr(msrEFER)|eferSVME)
	x86.Wrmsr(msrVMHsavePA, host.hsavePA)
}

// Name implements hv.Backend.
func (b *Backend) Name() string { return "svm" }

// Features returns the CPU features the backend was created with.
func (b *Backend) Features() x86.Features { return b.f }

// NewVM implements hv.Backend: nested page tables mapping mem at guest-physical 0, and the
// I/O and MSR permission maps with everything intercepted.
func (b *Backend) NewVM(mem *hv.Memory) (hv.BackendVM, error) {
	switch {
	case mem == nil || mem.Size() == 0:
		return nil, errors.New("svm: new vm: no guest memory")
	case mem.HostPhys == 0 || mem.HostPhys%ept.PageSize4K != 0 || mem.Size()%ept.PageSize4K != 0:
		return nil, fmt.Errorf("svm: new vm: guest memory at host-physical %#x size %#x is not page-aligned physical memory",
			mem.HostPhys, mem.Size())
	}
	vm := &VM{b: b, mem: mem, vcpus: map[int]*VCPU{}}
	npt, err := ept.New(ept.Config{Kind: ept.NPT, Alloc: pageAllocator{}})
	if err != nil {
		return nil, fmt.Errorf("svm: new vm: %w", err)
	}
	vm.npt = npt
	if _, err := npt.Map(0, mem.HostPhys, mem.Size(), ept.RWX); err != nil {
		vm.Close()
		return nil, fmt.Errorf("svm: new vm: mapping guest memory: %w", err)
	}
	if vm.iopmPA, err = ring0.AllocPages(IOPMPages); err != nil {
		vm.Close()
		return nil, fmt.Errorf("svm: new vm: IOPM: %w", err)
	}
	interceptAll(ring0.PageBytes(vm.iopmPA, IOPMSize))
	if vm.msrpmPA, err = ring0.AllocPages(MSRPMPages); err != nil {
		vm.Close()
		return nil, fmt.Errorf("svm: new vm: MSRPM: %w", err)
	}
	interceptAll(ring0.PageBytes(vm.msrpmPA, MSRPMSize))
	return vm, nil
}

// VM is one guest's SVM state. It implements hv.BackendVM.
type VM struct {
	b               *Backend
	mem             *hv.Memory
	npt             *ept.Tables
	iopmPA, msrpmPA uint64

	mu     sync.Mutex
	vcpus  map[int]*VCPU
	closed bool
}

var _ hv.BackendVM = (*VM)(nil)

// Tables returns the nested page tables, for dirty logging. After an operation that reports
// flush, call FlushTLB.
func (vm *VM) Tables() *ept.Tables { return vm.npt }

// IOPM and MSRPM return the permission maps; a cleared bit passes a port or an MSR through
// (see SetIOPM and SetMSRPM). Change them only while no vCPU runs.
func (vm *VM) IOPM() []byte  { return ring0.PageBytes(vm.iopmPA, IOPMSize) }
func (vm *VM) MSRPM() []byte { return ring0.PageBytes(vm.msrpmPA, MSRPMSize) }

// FlushTLB makes every vCPU flush its guest's TLB entries at its next entry (after the nested
// tables lost a mapping or a permission).
func (vm *VM) FlushTLB() {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	for _, v := range vm.vcpus {
		v.flushReq.Store(true)
	}
}

// Close implements hv.BackendVM: it closes the vCPUs left and frees the tables and maps.
func (vm *VM) Close() error {
	vm.mu.Lock()
	if vm.closed {
		vm.mu.Unlock()
		return nil
	}
	vm.closed = true
	vcpus := make([]*VCPU, 0, len(vm.vcpus))
	for _, v := range vm.vcpus {
		vcpus = append(vcpus, v)
	}
	vm.mu.Unlock()
	for _, v := range vcpus {
		v.Close()
	}
	if vm.npt != nil {
		vm.npt.Destroy()
	}
	if vm.iopmPA != 0 {
		ring0.FreePages(vm.iopmPA, IOPMPages)
	}
	if vm.msrpmPA != 0 {
		ring0.FreePages(vm.msrpmPA, MSRPMPages)
	}
	return nil
}

// asidPool hands out ASIDs 1..n-1 (ASID 0 is the host's). AMD APM Vol. 2, 15.16 "TLB Control";
// CPUID Fn8000_000A_EBX is the number of ASIDs.
type asidPool struct {
	n    uint32
	used map[uint32]bool
	next uint32
}

// maxASIDs bounds the pool whatever CPUID says.
const maxASIDs = 4096

func (p *asidPool) init(n uint32) {
	if n > maxASIDs {
		n = maxASIDs
	}
	p.n, p.used, p.next = n, map[uint32]bool{}, 1
}

func (p *asidPool) get() (uint32, bool) {
	for i := uint32(1); i < p.n; i++ {
		a := (p.next+i-1)%(p.n-1) + 1
		if !p.used[a] {
			p.used[a] = true
			p.next = a%(p.n-1) + 1
			return a, true
		}
	}
	return 0, false
}

func (p *asidPool) put(a uint32) { delete(p.used, a) }
