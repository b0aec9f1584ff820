package acpi

import (
	"bytes"
	"errors"
	"fmt"
)

// AML encodings needed to read a Name(_S5, Package(){...}) definition.
// ACPI 6.5, 20.2 "AML Grammar Definition": 20.2.2 "Name Objects Encoding", 20.2.3 "Data Objects
// Encoding", 20.2.4 "Package Length Encoding", 20.2.5.1 "Namespace Modifier Objects Encoding"
// (DefName) and 20.2.5.4 "Type 2 Opcodes Encoding" (DefPackage).
const (
	amlNameOp         = 0x08 // DefName := NameOp NameString DataRefObject
	amlPackageOp      = 0x12 // DefPackage := PackageOp PkgLength NumElements PackageElementList
	amlZeroOp         = 0x00 // ConstObj
	amlOneOp          = 0x01 // ConstObj
	amlOnesOp         = 0xFF // ConstObj: all ones
	amlBytePrefix     = 0x0A // ByteConst := BytePrefix ByteData
	amlWordPrefix     = 0x0B // WordConst := WordPrefix WordData
	amlDWordPrefix    = 0x0C // DWordConst := DWordPrefix DWordData
	amlQWordPrefix    = 0x0E // QWordConst := QWordPrefix QWordData
	amlRootChar       = '\\' // RootChar: NameString is absolute
	amlParentPrefix   = '^'  // ParentPrefixChar: NameString is relative to the parent scope
	amlPkgLenBytesSh  = 6    // PkgLeadByte bits 7-6: count of following ByteData (0-3)
	amlPkgLenOneMask  = 0x3F // one-byte encoding: bits 5-0 are the length
	amlPkgLenNibble   = 0x0F // multi-byte encoding: bits 3-0 are the least significant nibble
	amlPkgLenReserved = 0x30 // multi-byte encoding: bits 5-4 must be zero
	amlPkgLenMaxBytes = 4
)

// s5Name is the NameSeg of the soft-off sleep object. ACPI 6.5, 7.4.2 "\_Sx (System States)":
// \_S5 is a package whose first two integers are the SLP_TYPa and SLP_TYPb values to write
// to PM1a_CNT and PM1b_CNT (or the Sleep Control Register) to enter S5.
var s5Name = []byte("_S5_")

// slpTypMax is the largest value of the 3-bit SLP_TYPx field (ACPI 6.5, 4.8.3.2.1).
const slpTypMax = 7

// SleepType holds the SLP_TYPa/SLP_TYPb values of one \_Sx package.
type SleepType struct {
	A, B uint8
}

// FindS5 scans AML (a DSDT or SSDT body) for the definition Name(\_S5, Package(){a, b, ...})
// and returns a and b. It does not interpret AML; it recognises only the byte pattern
//
//	NameOp ['\' | '^'...] "_S5_" PackageOp PkgLength NumElements PackageElementList
//
// with integer elements (ZeroOp, OneOp, OnesOp, or Byte/Word/DWord/QWord-prefixed constants).
// This is how firmware in the field encodes \_S5; an \_S5 computed by a method, or whose
// elements are references, is reported as ErrUnsupported. A match whose package is malformed is
// skipped in favour of a later one; if none is usable the error says why.
func FindS5(aml []byte) (SleepType, error) {
	var errs []error
	for i := 0; ; {
		j := bytes.Index(aml[i:], s5Name)
		if j < 0 {
			break
		}
		at := i + j
		i = at + 1
		if !precededByNameOp(aml, at) {
			continue
		}
		st, err := parseS5Package(aml, at+len(s5Name))
		if err == nil {
			return st, nil
		}
		errs = append(errs, fmt.Errorf("Name(_S5) at AML offset %d: %w", at, err))
	}
	if len(errs) == 0 {
		return SleepType{}, fmt.Errorf("no Name(_S5, ...) definition: %w", ErrNotFound)
	}
	return SleepType{}, errors.Join(errs...)
}

// precededByNameOp reports whether the NameSeg at aml[at:] is the NameString of a DefName:
// NameOp, then any RootChar or ParentPrefixChar prefix, then the segment.
func precededByNameOp(aml []byte, at int) bool {
	k := at - 1
	if k >= 0 && aml[k] == amlRootChar {
		k--
	} else {
		for k >= 0 && aml[k] == amlParentPrefix {
			k--
		}
	}
	return k >= 0 && aml[k] == amlNameOp
}

// parseS5Package parses the DefPackage at aml[off:].
func parseS5Package(aml []byte, off int) (SleepType, error) {
	if off >= len(aml) {
		return SleepType{}, fmt.Errorf("truncated after name: %w", ErrLength)
	}
	if aml[off] != amlPackageOp {
		return SleepType{}, fmt.Errorf("object is opcode %#02x, not PackageOp: %w", aml[off], ErrUnsupported)
	}
	pkgStart := off + 1
	pkgLen, lenBytes, err := parsePkgLength(aml[pkgStart:])
	if err != nil {
		return SleepType{}, err
	}
	// PkgLength counts itself and everything after it in the package.
	end := pkgStart + pkgLen
	if pkgLen < lenBytes+1 || end > len(aml) {
		return SleepType{}, fmt.Errorf("PkgLength %d at offset %d runs past the AML (%d bytes) or omits NumElements: %w",
			pkgLen, pkgStart, len(aml), ErrLength)
	}
	p := pkgStart + lenBytes
	numElements := int(aml[p])
	p++
	// Only the first two elements (SLP_TYPa, SLP_TYPb) matter; the rest are reserved and may be
	// anything, so they are not decoded.
	var vals []uint64
	for len(vals) < min(numElements, 2) && p < end {
		v, n, err := parseInteger(aml[p:end])
		if err != nil {
			return SleepType{}, fmt.Errorf("element %d: %w", len(vals), err)
		}
		vals = append(vals, v)
		p += n
	}
	// The first two elements are SLP_TYPa and SLP_TYPb; ACPI 6.5, 7.4.2 "\_Sx (System States)".
	if len(vals) < 2 {
		return SleepType{}, fmt.Errorf("package has %d integer elements (NumElements %d), want at least 2: %w",
			len(vals), numElements, ErrUnsupported)
	}
	for k, v := range vals[:2] {
		if v > slpTypMax {
			return SleepType{}, fmt.Errorf("SLP_TYP%c = %#x does not fit the 3-bit field: %w", 'a'+k, v, ErrUnsupported)
		}
	}
	return SleepType{A: uint8(vals[0]), B: uint8(vals[1])}, nil
}

// parsePkgLength decodes a PkgLength at the start of b and returns its value and encoded size.
// ACPI 6.5, 20.2.4 "Package Length Encoding".
func parsePkgLength(b []byte) (length, size int, err error) {
	if len(b) == 0 {
		return 0, 0, fmt.Errorf("truncated PkgLength: %w", ErrLength)
	}
	lead := b[0]
	follow := int(lead >> amlPkgLenBytesSh)
	if follow == 0 {
		return int(lead & amlPkgLenOneMask), 1, nil
	}
	if lead&amlPkgLenReserved != 0 {
		return 0, 0, fmt.Errorf("PkgLength lead byte %#02x has reserved bits 5-4 set: %w", lead, ErrLength)
	}
	if len(b) < 1+follow {
		return 0, 0, fmt.Errorf("truncated %d-byte PkgLength: %w", 1+follow, ErrLength)
	}
	length = int(lead & amlPkgLenNibble)
	for i := 1; i <= follow; i++ {
		length |= int(b[i]) << (4 + 8*(i-1))
	}
	return length, 1 + follow, nil
}

// parseInteger decodes one integer-valued PackageElement: a ConstObj or a prefixed constant.
// ACPI 6.5, 20.2.3 "Data Objects Encoding".
func parseInteger(b []byte) (v uint64, size int, err error) {
	need := func(n int) error {
		if len(b) < n {
			return fmt.Errorf("truncated constant (opcode %#02x): %w", b[0], ErrLength)
		}
		return nil
	}
	switch b[0] {
	case amlZeroOp:
		return 0, 1, nil
	case amlOneOp:
		return 1, 1, nil
	case amlOnesOp:
		return ^uint64(0), 1, nil
	case amlBytePrefix:
		if err := need(2); err != nil {
			return 0, 0, err
		}
		return uint64(b[1]), 2, nil
	case amlWordPrefix:
		if err := need(3); err != nil {
			return 0, 0, err
		}
		return uint64(le16(b, 1)), 3, nil
	case amlDWordPrefix:
		if err := need(5); err != nil {
			return 0, 0, err
		}
		return uint64(le32(b, 1)), 5, nil
	case amlQWordPrefix:
		if err := need(9); err != nil {
			return 0, 0, err
		}
		return le64(b, 1), 9, nil
	}
	return 0, 0, fmt.Errorf("element opcode %#02x is not an integer constant: %w", b[0], ErrUnsupported)
}
