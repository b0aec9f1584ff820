package vmx

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/godwit-hv/godwit/arch/ring0"
	"github.com/godwit-hv/godwit/arch/x86"
	"github.com/godwit-hv/godwit/hv"
)

// MSRs the VM-entry MSR-load and VM-exit MSR-store/-load areas switch: VMX leaves them alone,
// and the host's SYSCALL path depends on the first three. Intel SDM Vol. 3C, 25.7.2 "VM-Exit
// Controls for MSRs", 25.8.2 "VM-Entry Controls for MSRs"; Vol. 4, Table 2-2.
const (
	msrSTAR         = 0xC0000081
	msrLSTAR        = 0xC0000082
	msrFMASK        = 0xC0000084
	msrKernelGSBase = 0xC0000102
	msrFSBase       = 0xC0000100
	msrGSBase       = 0xC0000101
	msrEFER         = 0xC0000080
	msrPAT          = 0x277
	msrSysenterCS   = 0x174
	msrSysenterESP  = 0x175
	msrSysenterEIP  = 0x176
)

var switchedMSRs = [...]uint32{msrSTAR, msrLSTAR, msrFMASK, msrKernelGSBase}

// The pages of one vCPU, allocated together.
const (
	pageVMCS = iota
	pageMSRBitmap
	pageIOBitmapA
	pageIOBitmapB
	pageMSRAreas // guest area at 0 (entry load, exit store), host area at hostMSRArea (exit load)
	pageFX       // host FXSAVE area at 0, guest at guestFXOffset
	vcpuPages

	hostMSRArea   = 2048
	msrEntrySize  = 16 // Table 25-14 "Format of an MSR Entry"
	guestFXOffset = 512
)

// VCPU is the VT-x implementation of hv.BackendVCPU. Its methods are called from one goroutine
// locked to its OS thread (hv's contract). Run, Inject and SetInterruptWindow do not allocate
// on the common exits (I/O, CPUID, HLT, MMIO, MSR, interrupts).
type VCPU struct {
	vm     *VM
	id     int
	ctl    Controls
	vpid   uint16
	pages  uint64 // host-physical address of the vcpuPages pages
	vmcs   uint64
	regs   runRegs
	scr    [2]uint64 // SGDT/SIDT scratch
	procOn uint32    // primary controls as last written
	closed bool

	wantWindow bool // the core asked for an interrupt-window exit
	// An event whose delivery a VM exit interrupted (IDT-vectoring information), re-injected
	// first: Intel SDM Vol. 3C, 28.2.4 "Information for VM Exits During Event Delivery".
	reinject, reinjectErr, reinjectLen uint32
	pending                            [8]hv.Event
	npending                           int
}

var _ hv.BackendVCPU = (*VCPU)(nil)

// ErrClosed is returned by a closed vCPU.
var ErrClosed = errors.New("vmx: vCPU closed")

// NewVCPU creates a vCPU with its VMCS, bitmaps and MSR areas. Its state is the x86 reset
// state's shape but zero; the core calls SetState before Run.
func (vm *VM) NewVCPU(id int) (hv.BackendVCPU, error) { return vm.newVCPU(id) }

func (vm *VM) newVCPU(id int) (*VCPU, error) {
	pa, err := ring0.AllocPages(vcpuPages)
	if err != nil {
		return nil, fmt.Errorf("vmx: vcpu %d: %w", id, err)
	}
	v := &VCPU{vm: vm, id: id, ctl: vm.b.ctl, pages: pa, vmcs: pa}
	binary.LittleEndian.PutUint32(ring0.PageBytes(pa, 4), vm.b.caps.Revision())
	// Intercept every MSR and every I/O port: the core emulates them, and no guest write may
	// reach an MSR the host depends on. 25.6.4, 25.6.9.
	for _, p := range []int{pageMSRBitmap, pageIOBitmapA, pageIOBitmapB} {
		fill(ring0.PageBytes(v.page(p), 4096), 0xFF)
	}
	areas := ring0.PageBytes(v.page(pageMSRAreas), 4096)
	for i, m := range switchedMSRs {
		binary.LittleEndian.PutUint32(areas[i*msrEntrySize:], m)
		binary.LittleEndian.PutUint32(areas[hostMSRArea+i*msrEntrySize:], m)
		binary.LittleEndian.PutUint64(areas[hostMSRArea+i*msrEntrySize+8:], x86.Rdmsr(m))
	}
	fx := ring0.PageBytes(v.page(pageFX), 4096)
	// The guest's FPU starts in its power-up state: FCW 0x037F, MXCSR 0x1F80.
	// Intel SDM Vol. 1, 10.5.1 "FXSAVE Area"; Vol. 3A, 10.1.1 "Processor State After Reset".
	binary.LittleEndian.PutUint16(fx[guestFXOffset:], 0x037F)
	binary.LittleEndian.PutUint32(fx[guestFXOffset+24:], 0x1F80)
	v.regs.hostFX = v.page(pageFX)
	v.regs.guestFX = v.page(pageFX) + guestFXOffset
	if v.ctl.VPID {
		v.vpid = allocVPID()
		if v.vpid == 0 {
			v.ctl.VPID = false
			v.ctl.Proc2 &^= proc2EnableVPID
		}
	}
	if err := v.setup(); err != nil {
		v.release()
		return nil, fmt.Errorf("vmx: vcpu %d: %w", id, err)
	}
	vm.mu.Lock()
	vm.vcpus = append(vm.vcpus, v)
	vm.mu.Unlock()
	return v, nil
}

func fill(b []byte, v byte) {
	for i := range b {
		b[i] = v
	}
}

func (v *VCPU) page(i int) uint64 { return v.pages + uint64(i)*4096 }

// msrArea is the guest's MSR area (VM-entry load, VM-exit store).
func (v *VCPU) msrArea() []byte { return ring0.PageBytes(v.page(pageMSRAreas), hostMSRArea) }

// load makes v's VMCS current. Interrupts must be disabled.
func (v *VCPU) load() error {
	if current == v.vmcs {
		return nil
	}
	if st := vmptrld(v.vmcs); st != vmSucceed {
		current = 0
		n, _ := vmread(vmInstructionError)
		return fmt.Errorf("VMPTRLD %#x: %s", v.vmcs, statusText(st, n))
	}
	current = v.vmcs
	return nil
}

// batch runs VMREADs and VMWRITEs and keeps the first failure.
type batch struct{ err error }

func (b *batch) w(f field, val uint64) {
	if b.err == nil {
		if st := vmwrite(f, val); st != vmSucceed {
			b.err = fieldError("VMWRITE", f, st)
		}
	}
}

func (b *batch) r(f field) uint64 {
	if b.err != nil {
		return 0
	}
	val, st := vmread(f)
	if st != vmSucceed {
		b.err = fieldError("VMREAD", f, st)
	}
	return val
}

func fieldError(op string, f field, st uint8) error {
	var n uint64
	if st == vmFailValid {
		n, _ = vmread(vmInstructionError)
	}
	return fmt.Errorf("%s field %#06x: %s", op, uint32(f), statusText(st, n))
}

// setup clears the VMCS and writes the controls and the host state that never changes.
func (v *VCPU) setup() error {
	flags := cli()
	defer restoreFlags(flags)
	if current == v.vmcs {
		current = 0
	}
	if st := vmclear(v.vmcs); st != vmSucceed {
		n, _ := vmread(vmInstructionError)
		return fmt.Errorf("VMCLEAR: %s", statusText(st, n))
	}
	if err := v.load(); err != nil {
		return err
	}
	var b batch
	c := &v.ctl
	v.procOn = c.Proc
	b.w(pinBasedControls, uint64(c.Pin))
	b.w(procBasedControls, uint64(c.Proc))
	b.w(procBasedControls2, uint64(c.Proc2))
	b.w(exitControls, uint64(c.Exit))
	b.w(entryControls, uint64(c.Entry))
	b.w(exceptionBitmap, 0)
	b.w(pfErrorCodeMask, 0)
	b.w(pfErrorCodeMatch, 0)
	b.w(cr3TargetCount, 0)
	b.w(ioBitmapA, v.page(pageIOBitmapA))
	b.w(ioBitmapB, v.page(pageIOBitmapB))
	b.w(msrBitmap, v.page(pageMSRBitmap))
	n := uint64(len(switchedMSRs))
	b.w(exitMSRStoreAddr, v.page(pageMSRAreas))
	b.w(exitMSRStoreCount, n)
	b.w(entryMSRLoadAddr, v.page(pageMSRAreas))
	b.w(entryMSRLoadCount, n)
	b.w(exitMSRLoadAddr, v.page(pageMSRAreas)+hostMSRArea)
	b.w(exitMSRLoadCount, n)
	if c.VPID {
		b.w(vmcsVPID, uint64(v.vpid))
	}
	b.w(eptPointer, v.vm.eptp)
	b.w(vmcsLinkPointer, ^uint64(0)) // 25.4.2: all ones unless VMCS shadowing is used
	b.w(entryIntrInfo, 0)

	// Host state. Intel SDM Vol. 3C, 25.5 "Host-State Area"; the checks in 27.2.3 "Checks on
	// Host Control Registers, MSRs, and SSP" and 27.2.4 "Checks on Host Segment and
	// Descriptor-Table Registers". The GDT layout is arch/ring0's: code 0x08, data 0x10.
	b.w(hostCSSelector, 0x08)
	for _, f := range []field{hostSSSelector, hostDSSelector, hostESSelector, hostFSSelector, hostGSSelector} {
		b.w(f, 0x10)
	}
	b.w(hostSysenterCS, 0)
	b.w(hostSysenterESP, 0)
	b.w(hostSysenterEIP, 0)
	b.w(hostEFER, x86.Rdmsr(msrEFER))
	if c.PAT {
		b.w(hostPAT, x86.Rdmsr(msrPAT))
	}
	if b.err == nil {
		b.err = v.writeHostState()
	}
	if b.err != nil {
		return b.err
	}
	if c.VPID {
		// A VPID freed by an earlier vCPU may still tag translations.
		typ, desc := uint64(1), [2]uint64{uint64(v.vpid), 0}
		if v.vm.b.caps.EPTVPIDCap&vpidCapINVVPIDSingle == 0 {
			typ = 2
		}
		if st := invvpid(typ, &desc); st != vmSucceed {
			n, _ := vmread(vmInstructionError)
			return fmt.Errorf("INVVPID type %d: %s", typ, statusText(st, n))
		}
	}
	return nil
}

// writeHostState writes the host state that could change between entries: control registers,
// the descriptor-table bases, the TSS base and the GS base. HOST_FS_BASE, HOST_RSP and HOST_RIP
// are written by vmxRun itself. Interrupts disabled, VMCS current.
func (v *VCPU) writeHostState() error {
	var b batch
	b.w(hostCR0, x86.ReadCR0())
	b.w(hostCR3, x86.ReadCR3())
	b.w(hostCR4, x86.ReadCR4())
	sidt(&v.scr)
	b.w(hostIDTRBase, v.scr[0]>>16|v.scr[1]<<48)
	sgdt(&v.scr)
	gdt := v.scr[0]>>16 | v.scr[1]<<48
	limit := v.scr[0] & 0xFFFF
	b.w(hostGDTRBase, gdt)
	tr := uint64(str())
	if tr == 0 || tr&7 != 0 || tr+15 > limit {
		return fmt.Errorf("host task register %#x unusable (GDT limit %#x)", tr, limit)
	}
	b.w(hostTRSelector, tr)
	b.w(hostTRBase, tssBase(ring0.PageBytes(gdt+tr, 16)))
	b.w(hostGSBase, x86.Rdmsr(msrGSBase))
	return b.err
}

// tssBase decodes the base of a 16-byte 64-bit TSS descriptor. Intel SDM Vol. 3A, 8.2.3 "TSS
// Descriptor in 64-bit mode" (7.2.3 in older editions).
func tssBase(d []byte) uint64 {
	lo := binary.LittleEndian.Uint64(d)
	hi := binary.LittleEndian.Uint64(d[8:])
	return lo>>16&0xFFFFFF | (lo>>56&0xFF)<<24 | hi&0xFFFFFFFF<<32
}

// release frees what newVCPU allocated.
func (v *VCPU) release() {
	if v.ctl.VPID {
		freeVPID(v.vpid)
	}
	ring0.FreePages(v.pages, vcpuPages)
}

// Close clears the VMCS and frees the vCPU's pages.
func (v *VCPU) Close() error {
	if v.closed {
		return nil
	}
	v.closed = true
	flags := cli()
	if current == v.vmcs {
		current = 0
	}
	st := vmclear(v.vmcs)
	var n uint64
	if st == vmFailValid {
		n, _ = vmread(vmInstructionError)
	}
	restoreFlags(flags)
	vm := v.vm
	vm.mu.Lock()
	for i, o := range vm.vcpus {
		if o == v {
			vm.vcpus = append(vm.vcpus[:i], vm.vcpus[i+1:]...)
			break
		}
	}
	vm.mu.Unlock()
	if st != vmSucceed {
		// The processor may still cache the VMCS: do not hand its page out again.
		return fmt.Errorf("vmx: vcpu %d: VMCLEAR: %s", v.id, statusText(st, n))
	}
	v.release()
	return nil
}
