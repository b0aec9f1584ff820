package acpi

import (
	"errors"
	"testing"

	"github.com/godwit-hv/godwit/arch/acpi/acpitest"
)

func TestFindS5(t *testing.T) {
	tests := []struct {
		name string
		aml  []byte
		want SleepType
	}{
		// Bochs/rombios-style DSDT: PkgLength covers only the two BytePrefix elements.
		{"BytePrefix, short PkgLength", []byte{0x08, 0x5F, 0x53, 0x35, 0x5F, 0x12, 0x06, 0x04, 0x0A, 0x05, 0x0A, 0x05, 0x00, 0x00}, SleepType{5, 5}},
		// iasl output for Name(\_S5, Package(0x04){0x07, 0x07, 0, 0}).
		{"root prefix", []byte{0x08, 0x5C, 0x5F, 0x53, 0x35, 0x5F, 0x12, 0x08, 0x04, 0x0A, 0x07, 0x0A, 0x07, 0x00, 0x00}, SleepType{7, 7}},
		// QEMU's Package(0x04){Zero, Zero, Zero, Zero}.
		{"ZeroOp", []byte{0x08, 0x5F, 0x53, 0x35, 0x5F, 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00}, SleepType{0, 0}},
		{"OneOp", []byte{0x08, 0x5F, 0x53, 0x35, 0x5F, 0x12, 0x06, 0x04, 0x01, 0x01, 0x00, 0x00}, SleepType{1, 1}},
		{"mixed BytePrefix and ZeroOp", []byte{0x08, 0x5C, 0x5F, 0x53, 0x35, 0x5F, 0x12, 0x07, 0x04, 0x0A, 0x07, 0x00, 0x00, 0x00}, SleepType{7, 0}},
		{"WordPrefix and DWordPrefix", []byte{0x08, 0x5F, 0x53, 0x35, 0x5F, 0x12, 0x0A, 0x02, 0x0B, 0x06, 0x00, 0x0C, 0x03, 0x00, 0x00, 0x00}, SleepType{6, 3}},
		{"QWordPrefix", []byte{0x08, 0x5F, 0x53, 0x35, 0x5F, 0x12, 0x0C, 0x02, 0x0E, 2, 0, 0, 0, 0, 0, 0, 0, 0x01}, SleepType{2, 1}},
		{"two-byte PkgLength", []byte{0x08, 0x5F, 0x53, 0x35, 0x5F, 0x12, 0x49, 0x00, 0x04, 0x0A, 0x05, 0x0A, 0x06, 0x00, 0x00}, SleepType{5, 6}},
		{"parent prefix", []byte{0x08, 0x5E, 0x5F, 0x53, 0x35, 0x5F, 0x12, 0x06, 0x04, 0x0A, 0x03, 0x0A, 0x04, 0x00, 0x00}, SleepType{3, 4}},
		{"builder", acpitest.S5(5, 7), SleepType{5, 7}},
		{"after a reference and a non-package name", append(append([]byte{
			0x10, 0x0A, '_', 'S', 'B', '_', // Scope(\_SB) header
			0x70, '_', 'S', '5', '_', 0x60, // Store(_S5_, Local0): a reference, not a definition
			0x08, '_', 'S', '5', '_', 0x0A, 0x05, // Name(_S5, 5): not a package
		}, acpitest.S5(6, 6)...), 0x5B, 0x80), SleepType{6, 6}},
		{"inside an If block", []byte{0xA0, 0x0F, 0x93, 0x0A, 0x01, 0x0A, 0x01,
			0x08, 0x5F, 0x53, 0x35, 0x5F, 0x12, 0x06, 0x04, 0x0A, 0x07, 0x0A, 0x00, 0x00, 0x00}, SleepType{7, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FindS5(tt.aml)
			if err != nil || got != tt.want {
				t.Errorf("FindS5(% x) = %+v, %v, want %+v", tt.aml, got, err, tt.want)
			}
		})
	}
}

func TestFindS5Errors(t *testing.T) {
	tests := []struct {
		name string
		aml  []byte
		want error
	}{
		{"absent", []byte{0x08, '_', 'S', '4', '_', 0x12, 0x06, 0x04, 0x0A, 0x06, 0x0A, 0x06}, ErrNotFound},
		{"empty", nil, ErrNotFound},
		{"only a reference", []byte{0x70, '_', 'S', '5', '_', 0x60}, ErrNotFound},
		{"truncated after name", []byte{0x08, '_', 'S', '5', '_'}, ErrLength},
		{"PkgLength past end", []byte{0x08, '_', 'S', '5', '_', 0x12, 0x20, 0x04, 0x0A, 0x05}, ErrLength},
		{"PkgLength truncated", []byte{0x08, '_', 'S', '5', '_', 0x12, 0xC0, 0x01}, ErrLength},
		{"PkgLength reserved bits", []byte{0x08, '_', 'S', '5', '_', 0x12, 0x70, 0x00, 0x04, 0x0A, 0x05, 0x0A, 0x05}, ErrLength},
		{"one element", []byte{0x08, '_', 'S', '5', '_', 0x12, 0x04, 0x01, 0x0A, 0x05}, ErrUnsupported},
		{"element truncated", []byte{0x08, '_', 'S', '5', '_', 0x12, 0x05, 0x02, 0x0A, 0x05, 0x0A}, ErrLength},
		{"element is a reference", []byte{0x08, '_', 'S', '5', '_', 0x12, 0x0A, 0x02, 'S', 'L', 'P', 'A', 'S', 'L', 'P', 'B'}, ErrUnsupported},
		{"SLP_TYP too wide", []byte{0x08, '_', 'S', '5', '_', 0x12, 0x06, 0x02, 0x0A, 0x08, 0x0A, 0x00}, ErrUnsupported},
		{"OnesOp too wide", []byte{0x08, '_', 'S', '5', '_', 0x12, 0x04, 0x02, 0xFF, 0x00}, ErrUnsupported},
		{"method, not a name", []byte{0x14, 0x07, '_', 'S', '5', '_', 0x00, 0xA4, 0x00}, ErrNotFound},
		// A MethodOp whose PkgLength byte happens to equal NameOp looks like a DefName; the
		// MethodFlags byte is then not PackageOp, so the candidate is rejected.
		{"method with PkgLength 8", []byte{0x14, 0x08, '_', 'S', '5', '_', 0x00, 0xA4, 0x00}, ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FindS5(tt.aml)
			if !errors.Is(err, tt.want) {
				t.Errorf("FindS5(% x) = %+v, %v, want error %v", tt.aml, got, err, tt.want)
			}
		})
	}
}

func TestParsePkgLength(t *testing.T) {
	tests := []struct {
		in         []byte
		len, bytes int
	}{
		{[]byte{0x00}, 0, 1},
		{[]byte{0x3F}, 63, 1},
		{[]byte{0x40, 0x04}, 0x40, 2},
		{[]byte{0x4F, 0xFF}, 0xFFF, 2},
		{[]byte{0x81, 0x23, 0x45}, 0x45231, 3},
		{[]byte{0xCF, 0xFF, 0xFF, 0xFF}, 0xFFFFFFF, 4},
	}
	for _, tt := range tests {
		n, size, err := parsePkgLength(tt.in)
		if err != nil || n != tt.len || size != tt.bytes {
			t.Errorf("parsePkgLength(% x) = %#x, %d, %v, want %#x, %d", tt.in, n, size, err, tt.len, tt.bytes)
		}
	}
}

func TestS5FromSSDT(t *testing.T) {
	m := newMachine()
	m.dsdt = acpitest.Table("DSDT", 1, []byte{0x10, 0x05, '_', 'S', 'B', '_'})
	m.ssdt = acpitest.Table("SSDT", 1, acpitest.S5(3, 3))
	m.remap()
	tabs, err := Load(m.mem, m.rsdp)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := tabs.S5(); err != nil || st != (SleepType{3, 3}) {
		t.Errorf("S5() = %+v, %v, want {3 3} from the SSDT", st, err)
	}

	m.ssdt = acpitest.Table("SSDT", 1, nil)
	m.remap()
	tabs, err = Load(m.mem, m.rsdp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tabs.S5(); !errors.Is(err, ErrNotFound) {
		t.Errorf("S5() without \\_S5 = %v, want ErrNotFound", err)
	}
}
