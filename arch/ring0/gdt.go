package ring0

import "unsafe"

// Descriptor tables. Intel SDM Vol. 3A, 3.4.5 "Segment Descriptors", 7.2.3 "TSS Descriptor in
// 64-bit mode", 7.7 "Task Management in 64-bit Mode", 6.14.1 "64-Bit Mode IDT".

const (
	gdtCode64 = 0x00AF9A000000FFFF // present, DPL 0, execute/read, L=1
	gdtData   = 0x00CF92000000FFFF // present, DPL 0, read/write
	tssSize   = 104
	tssRSP0   = 4
	tssIST1   = 36 // IST n at 36 + 8*(n-1)
	tssIOMap  = 102
	tssType   = 0x89 // present, 64-bit available TSS
	gateIntr  = 0x8E // present, DPL 0, 64-bit interrupt gate

	istKernel = 1 // kernel stack: interrupts, exceptions
	istFault  = 2 // NMI, #DF, #MC
)

var (
	gdt    [5]uint64
	tss    [tssSize]byte
	idt    [512]uint64 // 256 gates of 16 bytes
	dtDesc [16]byte    // pseudo-descriptor scratch
)

func putU64(b []byte, v uint64) {
	for i := 0; i < 8; i++ {
		b[i] = byte(v >> (8 * i))
	}
}

func loadDesc(base uintptr, limit uint16) uintptr {
	dtDesc[0], dtDesc[1] = byte(limit), byte(limit>>8)
	putU64(dtDesc[2:10], uint64(base))
	return uintptr(unsafe.Pointer(&dtDesc[0]))
}

func gdtInit() {
	putU64(tss[tssIST1:], uint64(uintptr(unsafe.Pointer(&kstack[0])))+kstackSize)
	putU64(tss[tssIST1+8:], uint64(uintptr(unsafe.Pointer(&faultStack[0])))+uint64(len(faultStack)))
	tss[tssIOMap], tss[tssIOMap+1] = tssSize, 0 // no I/O permission bitmap
	base := uint64(uintptr(unsafe.Pointer(&tss[0])))
	limit := uint64(tssSize - 1)
	gdt[0] = 0
	gdt[1] = gdtCode64
	gdt[2] = gdtData
	gdt[3] = limit&0xFFFF | (base&0xFFFFFF)<<16 | tssType<<40 | (limit>>16&0xF)<<48 | (base>>24&0xFF)<<56
	gdt[4] = base >> 32
	loadGDT(loadDesc(uintptr(unsafe.Pointer(&gdt[0])), uint16(len(gdt)*8-1)))
}

func idtInit() {
	for v := 0; v < 256; v++ {
		h := uint64(vectorAddr(v))
		ist := uint64(istKernel)
		switch v {
		case vecNMI, vecDoubleFault, vecMachineCheck:
			ist = istFault
		}
		idt[2*v] = h&0xFFFF | selKCode<<16 | ist<<32 | gateIntr<<40 | (h>>16&0xFFFF)<<48
		idt[2*v+1] = h >> 32
	}
	loadIDT(loadDesc(uintptr(unsafe.Pointer(&idt[0])), uint16(len(idt)*8-1)))
}
