package hv

import "sync"

// The MSR policy: the MSRs a guest may read and write, kept per vCPU. The architectural state
// the backend holds (EFER, PAT) goes through CPUState; the rest is stored here. An MSR not on
// the list gives the guest #GP, as hardware does for an MSR it lacks.

// MSR numbers. Intel SDM Vol. 4, Table 2-2 "IA-32 Architectural MSRs"; AMD APM Vol. 2,
// Appendix A "MSR Cross-Reference".
const (
	MSRTSC = 0x10
	// MSRBIOSSignID is IA32_BIOS_SIGN_ID, the loaded microcode's revision, which Linux clears
	// and reads back around CPUID. No microcode is loaded into a guest: it reads 0.
	MSRBIOSSignID   = 0x8B
	MSRAPICBase     = 0x1B
	MSRMTRRCap      = 0xFE
	MSRSysenterCS   = 0x174
	MSRSysenterESP  = 0x175
	MSRSysenterEIP  = 0x176
	MSRMiscEnable   = 0x1A0
	MSRPAT          = 0x277
	MSRMTRRDefType  = 0x2FF
	MSREFER         = 0xC0000080
	MSRSTAR         = 0xC0000081
	MSRLSTAR        = 0xC0000082
	MSRCSTAR        = 0xC0000083
	MSRSFMASK       = 0xC0000084
	MSRFSBase       = 0xC0000100
	MSRGSBase       = 0xC0000101
	MSRKernelGSBase = 0xC0000102
	MSRTSCAux       = 0xC0000103
	// MSRIntPendingMsg is AMD's Interrupt Pending Message register (BIOS and Kernel Developer's
	// Guide for AMD Family 0Fh, MSR C001_0055), which Linux reads on CPU families with
	// erratum 400 (C1E). The guest has no C1E: it reads as 0 and writes are ignored, as the
	// register is on processors where the BIOS left C1E off.
	MSRIntPendingMsg  = 0xC0010055
	miscEnableFastStr = 1 << 0
	eferSVME          = 1 << 12
	eferValid         = 1<<0 | 1<<8 | 1<<10 | 1<<11 // SCE, LME, LMA, NXE
)

// msrStore holds the guest's values of the MSRs the core virtualizes itself.
type msrStore struct {
	mu sync.Mutex
	v  map[uint32]uint64
}

func (m *msrStore) get(msr uint32) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.v[msr]
}

func (m *msrStore) set(msr uint32, val uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.v == nil {
		m.v = map[uint32]uint64{}
	}
	m.v[msr] = val
}

// readMSR returns the guest's value, or ok=false for #GP.
func readMSR(s *CPUState, st *msrStore, tsc func() uint64, msr uint32) (uint64, bool) {
	switch msr {
	case MSREFER:
		return s.EFER &^ eferSVME, true
	case MSRPAT:
		return s.PAT, true
	case MSRTSC:
		return tsc() + s.TSCOffset, true
	case MSRMTRRCap, MSRMTRRDefType, MSRIntPendingMsg, MSRBIOSSignID:
		return 0, true
	case MSRMiscEnable:
		return miscEnableFastStr, true
	case MSRFSBase:
		return s.FS.Base, true
	case MSRGSBase:
		return s.GS.Base, true
	case MSRSysenterCS, MSRSysenterESP, MSRSysenterEIP, MSRSTAR, MSRLSTAR, MSRCSTAR, MSRSFMASK,
		MSRKernelGSBase, MSRTSCAux:
		return st.get(msr), true
	}
	return 0, false
}

// writeMSR applies a guest write, or returns false for #GP.
func writeMSR(s *CPUState, st *msrStore, tsc func() uint64, msr uint32, v uint64) bool {
	switch msr {
	case MSREFER:
		if v&^eferValid != 0 {
			return false
		}
		s.EFER = v&^EFERLMA | s.EFER&EFERLMA // LMA is set by the CPU, not by WRMSR
		return true
	case MSRPAT:
		// Each byte must be a valid memory type (0, 1, 4, 5, 6, 7). Intel SDM Vol. 3A, 12.12.2.
		for i := 0; i < 8; i++ {
			if t := v >> (8 * i) & 0xFF; t == 2 || t == 3 || t > 7 {
				return false
			}
		}
		s.PAT = v
		return true
	case MSRTSC:
		s.TSCOffset = v - tsc() // the guest's TSC reads v now and counts on from there
		return true
	case MSRMTRRDefType, MSRMiscEnable, MSRIntPendingMsg, MSRBIOSSignID:
		return true // accepted and ignored: nothing in the guest's platform depends on them
	case MSRFSBase:
		s.FS.Base = v
		return true
	case MSRGSBase:
		s.GS.Base = v
		return true
	case MSRSysenterCS, MSRSysenterESP, MSRSysenterEIP, MSRSTAR, MSRLSTAR, MSRCSTAR, MSRSFMASK,
		MSRKernelGSBase, MSRTSCAux:
		st.set(msr, v)
		return true
	}
	return false
}

// hardwareMSR reports whether msr is one the backends switch in hardware with the guest's
// state, so a guest's value must reach the VMCB or VMCS (the core's copy is a fallback).
func hardwareMSR(msr uint32) bool {
	switch msr {
	case MSRSysenterCS, MSRSysenterESP, MSRSysenterEIP, MSRSTAR, MSRLSTAR, MSRCSTAR, MSRSFMASK,
		MSRKernelGSBase:
		return true
	}
	return false
}
