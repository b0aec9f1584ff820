package svm

import "github.com/godwit-hv/godwit/hv"

// VMCB is the virtual machine control block: one 4 KiB page, the control area at 0x000 and
// the state save area at 0x400. Every field carries its offset from the start of the VMCB.
// AMD APM Vol. 2, 15.5 "VMRUN Instruction"; Appendix B "Layout of VMCB", Table B-1
// "VMCB Layout, Control Area" and Table B-2 "VMCB Layout, State Save Area".
// vmcb_test.go checks every offset against the table.
type VMCB struct {
	Control ControlArea // 0x000
	Save    SaveArea    // 0x400
}

// ControlArea is the VMCB control area. AMD APM Vol. 2, Appendix B, Table B-1.
type ControlArea struct {
	InterceptCR   uint32 // 0x000: bits 15:0 reads of CR0-15, bits 31:16 writes (15.9 "Instruction Intercepts")
	InterceptDR   uint32 // 0x004: bits 15:0 reads of DR0-15, bits 31:16 writes
	InterceptExc  uint32 // 0x008: exception vectors 0-31 (15.12 "Exception Intercepts")
	InterceptMsc1 uint32 // 0x00C: INTR ... SHUTDOWN, see intercept1*
	InterceptMsc2 uint32 // 0x010: VMRUN ... RDPRU, see intercept2*
	InterceptMsc3 uint32 // 0x014: INVLPGB, INVPCID, MCOMMIT, TLBSYNC

	_ [0x3C - 0x18]byte // 0x018-0x03B reserved

	PauseFilterThreshold uint16 // 0x03C (15.14.4 "Pause Intercept Filtering")
	PauseFilterCount     uint16 // 0x03E
	IOPMBasePA           uint64 // 0x040: IOPM_BASE_PA (15.10.1 "I/O Permissions Map")
	MSRPMBasePA          uint64 // 0x048: MSRPM_BASE_PA (15.11 "MSR Intercepts")
	TSCOffset            uint64 // 0x050: TSC_OFFSET (Table B-1)
	GuestASID            uint32 // 0x058: bits 31:0 guest ASID (15.16 "TLB Control")
	TLBControl           uint8  // 0x05C: bits 39:32 TLB_CONTROL
	_                    [3]byte
	VIntr                uint64 // 0x060: V_TPR, V_IRQ, V_INTR_PRIO, V_IGN_TPR, V_INTR_MASKING, V_INTR_VECTOR (15.21 "Interrupt and LDT Virtualization")
	IntShadow            uint64 // 0x068: bit 0 INTERRUPT_SHADOW, bit 1 GUEST_INTERRUPT_MASK (15.21 "Interrupt and LDT Virtualization")
	ExitCode             uint64 // 0x070: EXITCODE (Appendix C)
	ExitInfo1            uint64 // 0x078: EXITINFO1
	ExitInfo2            uint64 // 0x080: EXITINFO2
	ExitIntInfo          uint64 // 0x088: EXITINTINFO (15.7.2 "Intercepts During IDT Interrupt Delivery")
	NPControl            uint64 // 0x090: bit 0 NP_ENABLE, bit 1 SEV, bit 2 SEV-ES ... (15.25.3 "Enabling Nested Paging")
	AVICAPICBar          uint64 // 0x098: AVIC APIC_BAR (15.29 "AVIC")
	GHCBPA               uint64 // 0x0A0: guest physical address of the GHCB
	EventInj             uint64 // 0x0A8: EVENTINJ (15.20 "Event Injection")
	NCR3                 uint64 // 0x0B0: N_CR3, nested page table root (15.25.4 "Nested Paging and VMRUN")
	VirtExt              uint64 // 0x0B8: bit 0 LBR virtualization, bit 1 virtualized VMSAVE/VMLOAD
	CleanBits            uint32 // 0x0C0: VMCB clean bits (15.15 "VMCB State Caching")
	_                    uint32 // 0x0C4 reserved
	NRIP                 uint64 // 0x0C8: nRIP, next sequential instruction pointer (15.7.1 "State Saved on Exit")
	InsnLen              uint8  // 0x0D0: number of guest instruction bytes fetched ("Decode Assists" in 15.x; unused: no decode assists are assumed)
	InsnBytes            [15]byte
	AVICBackingPage      uint64 // 0x0E0: AVIC APIC backing page pointer
	_                    uint64 // 0x0E8 reserved
	AVICLogicalTable     uint64 // 0x0F0: AVIC logical table pointer
	AVICPhysicalTable    uint64 // 0x0F8: AVIC physical max index and table pointer
	_                    uint64 // 0x100 reserved
	VMSAPA               uint64 // 0x108: VMSA pointer (SEV-ES)

	_ [0x400 - 0x110]byte // reserved up to the state save area
}

// VMCBSegment is a segment register in the state save area: the selector, the attributes in
// the packed 12-bit form (hv.Segment.Attr's layout), the limit and the base.
// AMD APM Vol. 2, 15.5.1 "Segment State in the VMCB"; Table B-2.
type VMCBSegment struct {
	Selector uint16 // +0
	Attrib   uint16 // +2
	Limit    uint32 // +4
	Base     uint64 // +8
}

// SaveArea is the VMCB state save area; offsets are from the start of the VMCB.
// AMD APM Vol. 2, Appendix B, Table B-2 (whose offsets are relative to 0x400).
type SaveArea struct {
	ES   VMCBSegment // 0x400
	CS   VMCBSegment // 0x410
	SS   VMCBSegment // 0x420
	DS   VMCBSegment // 0x430
	FS   VMCBSegment // 0x440
	GS   VMCBSegment // 0x450
	GDTR VMCBSegment // 0x460: only limit and base are used
	LDTR VMCBSegment // 0x470
	IDTR VMCBSegment // 0x480: only limit and base are used
	TR   VMCBSegment // 0x490

	_   [0x4CB - 0x4A0]byte // 0x4A0-0x4CA reserved
	CPL uint8               // 0x4CB: CPL (15.5.1: the guest's SS.DPL in protected mode)
	_   uint32              // 0x4CC reserved

	EFER uint64 // 0x4D0

	_ [0x548 - 0x4D8]byte // 0x4D8-0x547 reserved

	CR4    uint64 // 0x548
	CR3    uint64 // 0x550
	CR0    uint64 // 0x558
	DR7    uint64 // 0x560
	DR6    uint64 // 0x568
	RFLAGS uint64 // 0x570
	RIP    uint64 // 0x578

	_ [0x5D8 - 0x580]byte // 0x580-0x5D7 reserved

	RSP          uint64 // 0x5D8
	SCET         uint64 // 0x5E0: S_CET
	SSP          uint64 // 0x5E8
	ISSTAddr     uint64 // 0x5F0: ISST_ADDR
	RAX          uint64 // 0x5F8
	STAR         uint64 // 0x600
	LSTAR        uint64 // 0x608
	CSTAR        uint64 // 0x610
	SFMASK       uint64 // 0x618
	KernelGSBase uint64 // 0x620
	SysenterCS   uint64 // 0x628
	SysenterESP  uint64 // 0x630
	SysenterEIP  uint64 // 0x638
	CR2          uint64 // 0x640

	_ [0x668 - 0x648]byte // 0x648-0x667 reserved

	GPAT         uint64 // 0x668: G_PAT, the guest's PAT under nested paging (15.25.8 "Combining Guest and Host PAT")
	DBGCTL       uint64 // 0x670
	BRFrom       uint64 // 0x678
	BRTo         uint64 // 0x680
	LastExcpFrom uint64 // 0x688
	LastExcpTo   uint64 // 0x690

	_ [0x1000 - 0x698]byte // the rest of the page
}

// VMCBSize is the size of the VMCB: one page. AMD APM Vol. 2, 15.5 "VMRUN Instruction".
const VMCBSize = 4096

// Intercept bits in the control area. AMD APM Vol. 2, Table B-1 and 15.9 "Instruction Intercepts".
const (
	// Offset 0x00C.
	intercept1INTR     = 1 << 0  // physical INTR (15.21 "Interrupt and LDT Virtualization")
	intercept1NMI      = 1 << 1  // physical NMI
	intercept1SMI      = 1 << 2  // SMI
	intercept1INIT     = 1 << 3  // INIT
	intercept1VINTR    = 1 << 4  // virtual interrupt taken (15.21)
	intercept1CPUID    = 1 << 18 // CPUID
	intercept1INVD     = 1 << 22 // INVD: the guest must not discard the host's dirty cache lines
	intercept1HLT      = 1 << 24 // HLT
	intercept1INVLPGA  = 1 << 26 // INVLPGA
	intercept1IOIOProt = 1 << 27 // IN/OUT through the IOPM (15.10 "IOIO Intercepts")
	intercept1MSRProt  = 1 << 28 // RDMSR/WRMSR through the MSRPM (15.11 "MSR Intercepts")
	intercept1Shutdown = 1 << 31 // shutdown (a triple fault) (15.12 "Exception Intercepts")

	// Offset 0x010.
	intercept2VMRUN   = 1 << 0  // VMRUN (must be set: 15.5.1 consistency checks)
	intercept2VMMCALL = 1 << 1  // VMMCALL
	intercept2VMLOAD  = 1 << 2  // VMLOAD
	intercept2VMSAVE  = 1 << 3  // VMSAVE
	intercept2STGI    = 1 << 4  // STGI
	intercept2CLGI    = 1 << 5  // CLGI
	intercept2SKINIT  = 1 << 6  // SKINIT
	intercept2XSETBV  = 1 << 13 // XSETBV: XCR0 is not switched on VMRUN, so the guest must not write it
)

// Exception vectors the backend intercepts. #DB and #AC are intercepted because delivering
// them can loop inside the processor without ever letting the host in (a benign exception
// raised while delivering itself); the core reflects them back into the guest. #MC is a host
// matter. AMD APM Vol. 2, 8.2 "Vectors"; 15.12 "Exception Intercepts".
const (
	vectorDB = 1
	vectorAC = 17
	vectorMC = 18

	interceptedExceptions = 1<<vectorDB | 1<<vectorAC | 1<<vectorMC
)

// TLB_CONTROL values (byte at 0x05C). AMD APM Vol. 2, 15.16.1 "TLB Flush".
const (
	tlbControlNone      = 0x00 // do nothing
	tlbControlFlushAll  = 0x01 // flush the entire TLB, all ASIDs
	tlbControlFlushASID = 0x03 // flush this guest's ASID (CPUID Fn8000_000A_EDX FlushByAsid)
)

// Fields of VIntr (offset 0x060). AMD APM Vol. 2, Table B-1; 15.21 "Interrupt and LDT Virtualization".
const (
	vIntrTPRMask     = 0xFF    // bits 7:0 V_TPR
	vIntrIRQ         = 1 << 8  // V_IRQ: a virtual interrupt is pending
	vIntrPrioShift   = 16      // bits 19:16 V_INTR_PRIO
	vIntrIgnTPR      = 1 << 20 // V_IGN_TPR: the pending virtual interrupt ignores V_TPR
	vIntrMasking     = 1 << 24 // V_INTR_MASKING: guest RFLAGS.IF and TPR affect virtual interrupts only
	vIntrVectorShift = 32      // bits 39:32 V_INTR_VECTOR
	intShadowBit     = 1 << 0  // 0x068 bit 0 INTERRUPT_SHADOW
	npEnable         = 1 << 0  // 0x090 bit 0 NP_ENABLE (15.25.3 "Enabling Nested Paging")
)

// EVENTINJ and EXITINTINFO format. AMD APM Vol. 2, 15.20 "Event Injection" (Figure 15-6);
// 15.7.2 "Intercepts During IDT Interrupt Delivery".
const (
	eventVectorMask = 0xFF // bits 7:0 VECTOR
	eventTypeShift  = 8    // bits 10:8 TYPE
	eventTypeMask   = 7 << eventTypeShift
	eventEV         = 1 << 11 // error code valid
	eventValid      = 1 << 31 // V
	eventErrShift   = 32      // bits 63:32 ERRORCODE

	eventTypeINTR      = 0 // external or virtual interrupt
	eventTypeNMI       = 2 // NMI
	eventTypeException = 3 // exception (fault or trap)
	eventTypeSoftInt   = 4 // software interrupt (INTn)
)

// Architectural register bits the backend tests. AMD APM Vol. 2, 3.1 "System-Control Registers".
const (
	cr0PE  = 1 << 0
	cr0NW  = 1 << 29
	cr0CD  = 1 << 30
	cr0PG  = 1 << 31
	cr4PAE = 1 << 5

	eferLME  = 1 << 8
	eferLMA  = 1 << 10
	eferSVME = 1 << 12 // 3.1.7 "Extended Feature Enable Register (EFER)"

	rflagsVM = 1 << 17 // virtual-8086 mode
	rflagsIF = 1 << 9
	// rflagsReserved1 is bit 1, which reads as one.
	rflagsReserved1 = 1 << 1

	// patReset is the PAT's value after reset: WB, WT, UC-, UC in each half.
	// AMD APM Vol. 2, 7.8.1 "PAT Register".
	patReset = 0x0007_0406_0007_0406
)

// segFromHV converts an hv.Segment to the VMCB form. The attribute layouts are the same
// (hv.Segment.Attr is defined as the VMCB's); bits 15:12 of the VMCB field are reserved and
// are cleared.
func segFromHV(s hv.Segment) VMCBSegment {
	return VMCBSegment{Selector: s.Selector, Attrib: s.Attr & attribMask, Limit: s.Limit, Base: s.Base}
}

// segToHV converts a VMCB segment to an hv.Segment.
func segToHV(s VMCBSegment) hv.Segment {
	return hv.Segment{Selector: s.Selector, Attr: s.Attrib & attribMask, Limit: s.Limit, Base: s.Base}
}

// attribMask covers the 12 defined attribute bits. AMD APM Vol. 2, 15.5.1.
const attribMask = 0x0FFF

// AttribFromDescriptor packs the access rights of a legacy segment descriptor (the 8-byte
// GDT/LDT entry) into the VMCB attribute form: descriptor bits 47:40 (type, S, DPL, P) become
// attribute bits 7:0 and descriptor bits 55:52 (AVL, L, D/B, G) become bits 11:8.
// AMD APM Vol. 2, 4.7 "Legacy Segment Descriptors"; 15.5.1 "Segment State in the VMCB".
func AttribFromDescriptor(desc uint64) uint16 {
	return uint16(desc>>40&0xFF) | uint16(desc>>52&0xF)<<8
}

// DescriptorFromSegment builds the legacy descriptor for base, limit and attributes: the
// inverse of AttribFromDescriptor together with the base and limit encodings. The limit is
// the byte-granular limit as the VMCB holds it; with G set its low 12 bits must be 0xFFF.
func DescriptorFromSegment(s hv.Segment) uint64 {
	lim := uint64(s.Limit)
	if s.Attr&hv.SegG != 0 {
		lim >>= 12
	}
	b := s.Base & 0xFFFF_FFFF
	return lim&0xFFFF | (b&0xFF_FFFF)<<16 | uint64(s.Attr&0xFF)<<40 | (lim>>16&0xF)<<48 |
		uint64(s.Attr>>8&0xF)<<52 | (b>>24&0xFF)<<56
}

// SegmentFromDescriptor unpacks a legacy descriptor into an hv.Segment with selector sel.
func SegmentFromDescriptor(sel uint16, desc uint64) hv.Segment {
	attr := AttribFromDescriptor(desc)
	lim := uint32(desc&0xFFFF | desc>>48&0xF<<16)
	if attr&hv.SegG != 0 {
		lim = lim<<12 | 0xFFF
	}
	base := desc>>16&0xFF_FFFF | (desc>>56&0xFF)<<24
	return hv.Segment{Selector: sel, Attr: attr, Limit: lim, Base: base}
}
