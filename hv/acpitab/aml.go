package acpitab

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// A tiny AML encoder: just the terms a guest's DSDT needs. Each function returns the encoded
// bytes of one term; nesting is by passing encoded children. ACPI 6.4, 20.2 "AML Grammar
// Definition".

// AML opcodes and prefixes. ACPI 6.4, 20.2.3 "Data Objects Encoding", 20.2.5 "Term Objects
// Encoding".
const (
	amlZeroOp        = 0x00
	amlOneOp         = 0x01
	amlNameOp        = 0x08 // DefName := NameOp NameString DataRefObject
	amlBytePrefix    = 0x0A
	amlWordPrefix    = 0x0B
	amlDWordPrefix   = 0x0C
	amlStringPrefix  = 0x0D // String := StringPrefix AsciiCharList NullChar
	amlQWordPrefix   = 0x0E
	amlScopeOp       = 0x10 // DefScope := ScopeOp PkgLength NameString TermList
	amlBufferOp      = 0x11 // DefBuffer := BufferOp PkgLength BufferSize ByteList
	amlPackageOp     = 0x12 // DefPackage := PackageOp PkgLength NumElements PackageElementList
	amlDualNamePfx   = 0x2E // DualNamePath := DualNamePrefix NameSeg NameSeg
	amlMultiNamePfx  = 0x2F // MultiNamePath := MultiNamePrefix SegCount NameSeg(SegCount)
	amlExtOpPrefix   = 0x5B
	amlDeviceOp      = 0x82 // DefDevice := DeviceOp PkgLength NameString TermList (after ExtOpPrefix)
	amlOnesOp        = 0xFF
	amlRootChar      = '\\'
	amlNameSegLength = 4
)

// pkgLength encodes a PkgLength for contentLen bytes that follow it: the value counts the
// PkgLength bytes themselves. ACPI 6.4, 20.2.4 "Package Length Encoding": one byte holds up to
// 63 in bits 5-0; otherwise bits 7-6 of the lead byte count 1-3 following bytes, bits 3-0 are
// the low nibble and the following bytes the higher bits.
func pkgLength(contentLen int) []byte {
	if contentLen+1 <= 0x3F {
		return []byte{byte(contentLen + 1)}
	}
	for n := 2; n <= 4; n++ {
		v := contentLen + n
		if v >= 1<<(4+8*(n-1)) {
			continue
		}
		b := []byte{byte((n-1)<<6 | v&0xF)}
		for i := 1; i < n; i++ {
			b = append(b, byte(v>>(4+8*(i-1))))
		}
		return b
	}
	panic(fmt.Sprintf("acpitab: AML object of %d bytes exceeds PkgLength's 28 bits", contentLen))
}

// withPkgLength prefixes the opcode bytes and a PkgLength to content.
func withPkgLength(op []byte, content ...[]byte) []byte {
	var c []byte
	for _, b := range content {
		c = append(c, b...)
	}
	out := append([]byte{}, op...)
	out = append(out, pkgLength(len(c))...)
	return append(out, c...)
}

// nameSeg pads a name to its 4-character NameSeg. ACPI 6.4, 20.2.2 "Name Objects Encoding":
// LeadNameChar ('A'-'Z', '_') then NameChars ('A'-'Z', '0'-'9', '_').
func nameSeg(s string) []byte {
	if s == "" || len(s) > amlNameSegLength {
		panic(fmt.Sprintf("acpitab: AML NameSeg %q is not 1-4 characters", s))
	}
	for i, c := range []byte(s) {
		if !(c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			panic(fmt.Sprintf("acpitab: AML NameSeg %q: bad character %q", s, c))
		}
	}
	return []byte(s + strings.Repeat("_", amlNameSegLength-len(s)))
}

// nameString encodes a path such as "\_SB_.COM1" or "_HID": an optional root prefix, then one,
// two (DualNamePath) or more (MultiNamePath) NameSegs.
func nameString(path string) []byte {
	var b []byte
	if strings.HasPrefix(path, `\`) {
		b = append(b, amlRootChar)
		path = path[1:]
	}
	if path == "" { // the root itself: RootChar NullName
		return append(b, 0)
	}
	segs := strings.Split(path, ".")
	switch len(segs) {
	case 1:
	case 2:
		b = append(b, amlDualNamePfx)
	default:
		b = append(b, amlMultiNamePfx, byte(len(segs)))
	}
	for _, s := range segs {
		b = append(b, nameSeg(s)...)
	}
	return b
}

// integer encodes a constant in its shortest form. ACPI 6.4, 20.2.3 "Data Objects Encoding".
func integer(v uint64) []byte {
	le := binary.LittleEndian
	switch {
	case v == 0:
		return []byte{amlZeroOp}
	case v == 1:
		return []byte{amlOneOp}
	case v <= 0xFF:
		return []byte{amlBytePrefix, byte(v)}
	case v <= 0xFFFF:
		return le.AppendUint16([]byte{amlWordPrefix}, uint16(v))
	case v <= 0xFFFFFFFF:
		return le.AppendUint32([]byte{amlDWordPrefix}, uint32(v))
	}
	return le.AppendUint64([]byte{amlQWordPrefix}, v)
}

// str encodes an ASCII string constant.
func str(s string) []byte {
	return append(append([]byte{amlStringPrefix}, s...), 0)
}

// eisaID compresses a 7-character PNP ID such as "PNP0501" into the 32-bit EISA ID integer:
// three letters of 5 bits each, then four hex digits, stored big-endian in the little-endian
// dword. ACPI 6.4, 6.1.5 "_HID (Hardware ID)".
func eisaID(id string) uint32 {
	if len(id) != 7 {
		panic(fmt.Sprintf("acpitab: EISA ID %q is not 7 characters", id))
	}
	var v uint32
	for _, c := range []byte(id[:3]) {
		if c < 'A' || c > 'Z' {
			panic(fmt.Sprintf("acpitab: EISA ID %q: %q is not an upper-case letter", id, c))
		}
		v = v<<5 | uint32(c-'@')
	}
	for _, c := range []byte(id[3:]) {
		var d uint32
		switch {
		case c >= '0' && c <= '9':
			d = uint32(c - '0')
		case c >= 'A' && c <= 'F':
			d = uint32(c-'A') + 10
		default:
			panic(fmt.Sprintf("acpitab: EISA ID %q: %q is not a hex digit", id, c))
		}
		v = v<<4 | d
	}
	// v is the 32-bit ID in reading order; AML stores its bytes most significant first.
	return v>>24 | v>>8&0xFF00 | v<<8&0xFF0000 | v<<24
}

// name encodes Name(path, object).
func name(path string, object []byte) []byte {
	return append(append([]byte{amlNameOp}, nameString(path)...), object...)
}

// pkg encodes Package(){elements...}; NumElements is one byte.
func pkg(elements ...[]byte) []byte {
	if len(elements) > 0xFF {
		panic("acpitab: AML package of more than 255 elements")
	}
	return withPkgLength([]byte{amlPackageOp}, append([][]byte{{byte(len(elements))}}, elements...)...)
}

// buffer encodes Buffer(){data}.
func buffer(data []byte) []byte {
	return withPkgLength([]byte{amlBufferOp}, integer(uint64(len(data))), data)
}

// scope encodes Scope(path){terms}.
func scope(path string, terms ...[]byte) []byte {
	return withPkgLength([]byte{amlScopeOp}, append([][]byte{nameString(path)}, terms...)...)
}

// device encodes Device(name){terms}.
func device(path string, terms ...[]byte) []byte {
	return withPkgLength([]byte{amlExtOpPrefix, amlDeviceOp}, append([][]byte{nameString(path)}, terms...)...)
}

// Resource descriptors for _CRS buffers. ACPI 6.4, 6.4 "Resource Data Types for ACPI".
const (
	resIO          = 0x47 // small item 0x08, length 7: 6.4.2.5 "I/O Port Descriptor"
	resIODecode16  = 1 << 0
	resIRQNoFlags  = 0x22 // small item 0x04, length 2: 6.4.2.1 "IRQ Descriptor"
	resEndTag      = 0x79 // small item 0x0F, length 1: 6.4.2.9 "End Tag"
	resWordAddr    = 0x88 // large item 0x08: 6.4.3.5.3 "Word Address Space Descriptor"
	resDWordAddr   = 0x87 // large item 0x07: 6.4.3.5.2 "DWord Address Space Descriptor"
	resTypeMemory  = 0
	resTypeIO      = 1
	resTypeBus     = 2
	resGenFlags    = 0x0C   // general flags: MinFixed | MaxFixed, producer, positive decode
	resMemRW       = 1 << 0 // read-write; bits 2-1 zero: non-cacheable
	resIORangeBoth = 0x03   // ISA and non-ISA ranges
)

// ioPort is IO(Decode16, base, base, 1, length).
func ioPort(base uint16, length uint8) []byte {
	le := binary.LittleEndian
	b := []byte{resIO, resIODecode16}
	b = le.AppendUint16(b, base)
	b = le.AppendUint16(b, base)
	return append(b, 1, length)
}

// irqNoFlags is IRQNoFlags(){irq}: edge-triggered, active-high, exclusive.
func irqNoFlags(irq uint8) []byte {
	return binary.LittleEndian.AppendUint16([]byte{resIRQNoFlags}, 1<<irq)
}

// wordAddr is a WordBusNumber or WordIO producer range [min, min+length).
func wordAddr(typ, typeFlags uint8, lo uint16, length uint16) []byte {
	le := binary.LittleEndian
	b := le.AppendUint16([]byte{resWordAddr}, 13) // length of the rest
	b = append(b, typ, resGenFlags, typeFlags)
	b = le.AppendUint16(b, 0) // granularity
	b = le.AppendUint16(b, lo)
	b = le.AppendUint16(b, lo+length-1)
	b = le.AppendUint16(b, 0) // translation offset
	return le.AppendUint16(b, length)
}

// dwordMemory is a DWordMemory producer range [lo, lo+length).
func dwordMemory(lo, length uint32) []byte {
	le := binary.LittleEndian
	b := le.AppendUint16([]byte{resDWordAddr}, 23)
	b = append(b, resTypeMemory, resGenFlags, resMemRW)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint32(b, lo)
	b = le.AppendUint32(b, lo+length-1)
	b = le.AppendUint32(b, 0)
	return le.AppendUint32(b, length)
}

// resourceTemplate is ResourceTemplate(){descriptors}: a buffer ending with an End Tag whose
// checksum byte is 0 ("treated as if the checksum operation yielded zero").
func resourceTemplate(descriptors ...[]byte) []byte {
	var b []byte
	for _, d := range descriptors {
		b = append(b, d...)
	}
	return buffer(append(b, resEndTag, 0))
}
