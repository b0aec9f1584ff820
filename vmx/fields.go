package vmx

// VMCS field encodings. Intel SDM Vol. 3D, Appendix B "Field Encoding in VMCS"; the fields'
// meaning is in Vol. 3C, chapter 25 "Virtual Machine Control Structures" (section numbers as in
// the 2023 and later editions; older editions number the chapter 24). The encoding's bits 14:13
// give the width (0: 16-bit, 1: 64-bit, 2: 32-bit, 3: natural width) and bits 11:10 the type
// (0: control, 1: read-only data, 2: guest state, 3: host state): B.1 through B.4.
type field uint32

// 16-bit fields. B.1.
const (
	// 25.6.12 "Controls for Virtual-Processor Identifiers (VPIDs)".
	vmcsVPID field = 0x0000

	// 25.4.1 "Guest Register State": selectors.
	guestESSelector   field = 0x0800
	guestCSSelector   field = 0x0802
	guestSSSelector   field = 0x0804
	guestDSSelector   field = 0x0806
	guestFSSelector   field = 0x0808
	guestGSSelector   field = 0x080A
	guestLDTRSelector field = 0x080C
	guestTRSelector   field = 0x080E

	// 25.5 "Host-State Area": selectors.
	hostESSelector field = 0x0C00
	hostCSSelector field = 0x0C02
	hostSSSelector field = 0x0C04
	hostDSSelector field = 0x0C06
	hostFSSelector field = 0x0C08
	hostGSSelector field = 0x0C0A
	hostTRSelector field = 0x0C0C
)

// 64-bit fields (the full encodings; the high halves are encoding+1). B.2.
const (
	// 25.6.4 "I/O-Bitmap Addresses".
	ioBitmapA field = 0x2000
	ioBitmapB field = 0x2002
	// 25.6.9 "MSR-Bitmap Address".
	msrBitmap field = 0x2004
	// 25.7.2 "VM-Exit Controls for MSRs" and 25.8.2 "VM-Entry Controls for MSRs".
	exitMSRStoreAddr field = 0x2006
	exitMSRLoadAddr  field = 0x2008
	entryMSRLoadAddr field = 0x200A
	// 25.6.5 "Time-Stamp Counter Offset and Multiplier".
	tscOffset field = 0x2010
	// 25.6.11 "Extended-Page-Table Pointer (EPTP)".
	eptPointer field = 0x201A

	// 25.9.4 "Information for VM Exits Due to Instruction Execution" (read-only).
	guestPhysicalAddress field = 0x2400

	// 25.4.2 "Guest Non-Register State" and 25.4.1.
	vmcsLinkPointer  field = 0x2800
	guestDebugCtl    field = 0x2802
	guestPAT         field = 0x2804
	guestEFER        field = 0x2806
	guestPerfGlobal  field = 0x2808
	guestPDPTE0      field = 0x280A
	guestPDPTE1      field = 0x280C
	guestPDPTE2      field = 0x280E
	guestPDPTE3      field = 0x2810
	hostPAT          field = 0x2C00 // 25.5.1 "Host Register State"
	hostEFER         field = 0x2C02
	hostPerfGlobalCt field = 0x2C04
)

// 32-bit fields. B.3.
const (
	// 25.6.1 "Pin-Based VM-Execution Controls", 25.6.2 "Processor-Based VM-Execution Controls".
	pinBasedControls   field = 0x4000
	procBasedControls  field = 0x4002
	exceptionBitmap    field = 0x4004 // 25.6.3 "Exception Bitmap"
	pfErrorCodeMask    field = 0x4006
	pfErrorCodeMatch   field = 0x4008
	cr3TargetCount     field = 0x400A // 25.6.7 "CR3-Target Controls"
	exitControls       field = 0x400C // 25.7.1 "VM-Exit Controls"
	exitMSRStoreCount  field = 0x400E
	exitMSRLoadCount   field = 0x4010
	entryControls      field = 0x4012 // 25.8.1 "VM-Entry Controls"
	entryMSRLoadCount  field = 0x4014
	entryIntrInfo      field = 0x4016 // 25.8.3 "VM-Entry Controls for Event Injection"
	entryExceptionCode field = 0x4018
	entryInstrLen      field = 0x401A
	tprThreshold       field = 0x401C
	procBasedControls2 field = 0x401E

	// 25.9 "VM-Exit Information Fields" (read-only).
	vmInstructionError field = 0x4400 // 25.9.5
	exitReason         field = 0x4402 // 25.9.1 "Basic VM-Exit Information"
	exitIntrInfo       field = 0x4404 // 25.9.2 "Information for VM Exits Due to Vectored Events"
	exitIntrErrorCode  field = 0x4406
	idtVectoringInfo   field = 0x4408 // 25.9.3 "Information for VM Exits That Occur During Event Delivery"
	idtVectoringError  field = 0x440A
	exitInstrLen       field = 0x440C // 25.9.4
	exitInstrInfo      field = 0x440E

	// 25.4.1 "Guest Register State": limits and access rights; 25.4.2 non-register state.
	guestESLimit          field = 0x4800
	guestCSLimit          field = 0x4802
	guestSSLimit          field = 0x4804
	guestDSLimit          field = 0x4806
	guestFSLimit          field = 0x4808
	guestGSLimit          field = 0x480A
	guestLDTRLimit        field = 0x480C
	guestTRLimit          field = 0x480E
	guestGDTRLimit        field = 0x4810
	guestIDTRLimit        field = 0x4812
	guestESAccessRights   field = 0x4814
	guestCSAccessRights   field = 0x4816
	guestSSAccessRights   field = 0x4818
	guestDSAccessRights   field = 0x481A
	guestFSAccessRights   field = 0x481C
	guestGSAccessRights   field = 0x481E
	guestLDTRAccessRights field = 0x4820
	guestTRAccessRights   field = 0x4822
	guestInterruptibility field = 0x4824
	guestActivityState    field = 0x4826
	guestSysenterCS       field = 0x482A
	preemptionTimerValue  field = 0x482E // 25.4.2 "Guest Non-Register State"

	hostSysenterCS field = 0x4C00 // 25.5.1 "Host Register State"
)

// Natural-width fields. B.4.
const (
	// 25.6.6 "Guest/Host Masks and Read Shadows for CR0 and CR4".
	cr0GuestHostMask field = 0x6000
	cr4GuestHostMask field = 0x6002
	cr0ReadShadow    field = 0x6004
	cr4ReadShadow    field = 0x6006

	// 25.9.1 (read-only).
	exitQualification  field = 0x6400
	guestLinearAddress field = 0x640A

	// 25.4.1 "Guest Register State".
	guestCR0         field = 0x6800
	guestCR3         field = 0x6802
	guestCR4         field = 0x6804
	guestESBase      field = 0x6806
	guestCSBase      field = 0x6808
	guestSSBase      field = 0x680A
	guestDSBase      field = 0x680C
	guestFSBase      field = 0x680E
	guestGSBase      field = 0x6810
	guestLDTRBase    field = 0x6812
	guestTRBase      field = 0x6814
	guestGDTRBase    field = 0x6816
	guestIDTRBase    field = 0x6818
	guestDR7         field = 0x681A
	guestRSP         field = 0x681C
	guestRIP         field = 0x681E
	guestRFLAGS      field = 0x6820
	guestPendingDbg  field = 0x6822
	guestSysenterESP field = 0x6824
	guestSysenterEIP field = 0x6826

	// 25.5.1 "Host Register State".
	hostCR0         field = 0x6C00
	hostCR3         field = 0x6C02
	hostCR4         field = 0x6C04
	hostFSBase      field = 0x6C06
	hostGSBase      field = 0x6C08
	hostTRBase      field = 0x6C0A
	hostGDTRBase    field = 0x6C0C
	hostIDTRBase    field = 0x6C0E
	hostSysenterESP field = 0x6C10
	hostSysenterEIP field = 0x6C12
	hostRSP         field = 0x6C14
	hostRIP         field = 0x6C16
)

// segFields are one guest segment register's four fields.
type segFields struct{ sel, limit, ar, base field }

var (
	segES   = segFields{guestESSelector, guestESLimit, guestESAccessRights, guestESBase}
	segCS   = segFields{guestCSSelector, guestCSLimit, guestCSAccessRights, guestCSBase}
	segSS   = segFields{guestSSSelector, guestSSLimit, guestSSAccessRights, guestSSBase}
	segDS   = segFields{guestDSSelector, guestDSLimit, guestDSAccessRights, guestDSBase}
	segFS   = segFields{guestFSSelector, guestFSLimit, guestFSAccessRights, guestFSBase}
	segGS   = segFields{guestGSSelector, guestGSLimit, guestGSAccessRights, guestGSBase}
	segLDTR = segFields{guestLDTRSelector, guestLDTRLimit, guestLDTRAccessRights, guestLDTRBase}
	segTR   = segFields{guestTRSelector, guestTRLimit, guestTRAccessRights, guestTRBase}
)
