package pci

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sync"

	"github.com/godwit-hv/godwit/hv/bus"
)

// BARSpec describes one Base Address Register a function implements.
type BARSpec struct {
	// Size is the size of the region in bytes: a power of two, at least 16
	// for memory and 4 (at most 256) for I/O. Zero: the BAR is not
	// implemented and reads as 0.
	Size uint64
	// IO selects I/O space; otherwise the BAR decodes memory.
	IO bool
	// Bit64 makes a 64-bit memory BAR, which also uses the next BAR
	// register (the upper half), so that one must be left empty.
	Bit64 bool
	// Prefetchable sets the memory BAR's prefetchable bit.
	Prefetchable bool
}

// Header is the identity and layout of a function's type 0 header.
type Header struct {
	VendorID, DeviceID             uint16
	RevisionID                     uint8
	Class, Subclass, ProgIF        uint8
	SubsystemVendorID, SubsystemID uint16
	InterruptPin                   uint8 // PinNone or PinINTA..PinINTD
	InterruptLine                  uint8 // initial value; firmware or the guest may rewrite it
	BARs                           [NumBARs]BARSpec
	_                              struct{}
}

// Mapping is where a BAR decodes: the address the guest programmed, and
// whether decoding is on (the Command register enables the BAR's space,
// the address is not 0, and the BAR is not holding the all-ones sizing
// pattern).
type Mapping struct {
	BAR     int
	Space   bus.Space // bus.PIO or bus.MMIO
	Addr    uint64
	Size    uint64
	Enabled bool
}

// Config wires a function to its owner.
type Config struct {
	Header Header
	// Remap is called, with the function locked, when a BAR's Mapping
	// changes, so the owner can move the region on the bus (see
	// BusMapper). An error is returned from the configuration write that
	// caused it. It must not call back into the Function. Nil: no
	// callback.
	Remap func(old, new Mapping) error
	// IRQ is called with the new level of the function's INTx line when
	// it changes (an assertion masked by Command.InterruptDisable reads as
	// deasserted). It is called with the function locked and must not
	// call back into it. Nil: no interrupt wiring.
	IRQ func(level bool)
}

// Errors callers branch on.
var (
	ErrBadConfig = errors.New("pci: invalid function configuration")
	ErrState     = errors.New("pci: invalid state")
	ErrSlot      = errors.New("pci: bad or occupied device slot")
)

type barInfo struct {
	size  uint64 // 0: unimplemented (or the upper half of a 64-bit BAR)
	flags uint32 // low bits read back
	upper bool   // this register is the upper half of the previous BAR
	io    bool
	b64   bool
}

// Function is the configuration space of one PCI function with a type 0
// header. The owner (a device model) creates it with NewFunction, adds
// capabilities, then attaches it to a Bridge. All methods are safe for
// concurrent use.
type Function struct {
	mu     sync.Mutex
	cfg    Config
	space  [ConfigSpaceSize]byte
	wmask  [ConfigSpaceSize]byte // bits the guest may write
	w1c    [ConfigSpaceSize]byte // bits a guest write of 1 clears
	bars   [NumBARs]barInfo
	maps   [NumBARs]Mapping
	capEnd int // first free byte for a capability
	capPrv int // offset of the pointer to patch for the next capability
	level  bool
	line   bool // level as seen by the IRQ callback (after INTx disable)
}

// NewFunction returns a function in its reset state: decoding off, BARs
// 0, the interrupt deasserted.
func NewFunction(cfg Config) (*Function, error) {
	h := &cfg.Header
	if h.InterruptPin > PinINTD {
		return nil, fmt.Errorf("%w: interrupt pin %d", ErrBadConfig, h.InterruptPin)
	}
	if h.VendorID == 0xffff {
		return nil, fmt.Errorf("%w: vendor ID 0xffff means no device", ErrBadConfig)
	}
	f := &Function{cfg: cfg, capEnd: firstCapOffset, capPrv: CapabilitiesPtr}
	for i := 0; i < NumBARs; i++ {
		s := h.BARs[i]
		if s.Size == 0 {
			if s.IO || s.Bit64 || s.Prefetchable {
				return nil, fmt.Errorf("%w: BAR %d has flags but no size", ErrBadConfig, i)
			}
			continue
		}
		if f.bars[i].upper {
			return nil, fmt.Errorf("%w: BAR %d is the upper half of BAR %d", ErrBadConfig, i, i-1)
		}
		if bits.OnesCount64(s.Size) != 1 {
			return nil, fmt.Errorf("%w: BAR %d size %#x is not a power of two", ErrBadConfig, i, s.Size)
		}
		b := barInfo{size: s.Size, io: s.IO, b64: s.Bit64}
		switch {
		case s.IO:
			if s.Bit64 || s.Prefetchable || s.Size < minIOBARSize || s.Size > maxIOBARSize {
				return nil, fmt.Errorf("%w: I/O BAR %d: %+v", ErrBadConfig, i, s)
			}
			b.flags = BARSpaceIO
		default:
			if s.Size < minMemBARSize || !s.Bit64 && s.Size > 1<<31 {
				return nil, fmt.Errorf("%w: memory BAR %d size %#x", ErrBadConfig, i, s.Size)
			}
			if s.Bit64 {
				if i == NumBARs-1 {
					return nil, fmt.Errorf("%w: 64-bit BAR %d has no upper half", ErrBadConfig, i)
				}
				b.flags |= BARMem64
				f.bars[i+1].upper = true
			}
			if s.Prefetchable {
				b.flags |= BARPrefetchable
			}
		}
		f.bars[i] = b
		f.maps[i] = Mapping{BAR: i, Space: b.space(), Size: s.Size}
	}
	for i := 0; i < NumBARs; i++ {
		if f.bars[i].upper && h.BARs[i].Size != 0 {
			return nil, fmt.Errorf("%w: BAR %d is the upper half of BAR %d", ErrBadConfig, i, i-1)
		}
	}
	f.reset()
	return f, nil
}

func (b *barInfo) space() bus.Space {
	if b.io {
		return bus.PIO
	}
	return bus.MMIO
}

// reset fills the header from the configuration.
func (f *Function) reset() {
	h := &f.cfg.Header
	sp := f.space[:]
	le := binary.LittleEndian
	le.PutUint16(sp[VendorID:], h.VendorID)
	le.PutUint16(sp[DeviceID:], h.DeviceID)
	sp[RevisionID] = h.RevisionID
	sp[ClassProgIF], sp[ClassSub], sp[ClassBase] = h.ProgIF, h.Subclass, h.Class
	sp[HeaderType] = HeaderTypeNormal
	le.PutUint16(sp[SubsystemVendorID:], h.SubsystemVendorID)
	le.PutUint16(sp[SubsystemID:], h.SubsystemID)
	sp[InterruptLine] = h.InterruptLine
	sp[InterruptPin] = h.InterruptPin

	cmd := uint16(commandWritable)
	if h.InterruptPin == PinNone {
		cmd = commandWritableNoIRQ
	}
	le.PutUint16(f.wmask[Command:], cmd)
	le.PutUint16(f.w1c[Status:], statusWriteOneToClear)
	f.wmask[CacheLineSize] = 0xff
	f.wmask[LatencyTimer] = 0xff
	f.wmask[InterruptLine] = 0xff
	for i := range f.bars {
		if f.bars[i].size != 0 || f.bars[i].upper {
			le.PutUint32(f.wmask[BAR0+4*i:], 0xffffffff) // masked by fixBAR
			le.PutUint32(sp[BAR0+4*i:], f.bars[i].flags)
		}
	}
}

// AddCapability appends a capability with the given ID and body (the
// bytes after the ID and next-pointer bytes) to the capability list and
// returns its offset in configuration space. Capabilities are read-only
// to the guest. It must be called before the function is attached.
func (f *Function) AddCapability(id uint8, body []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := capHeaderLen + len(body)
	off := f.capEnd
	if off+n > ConfigSpaceSize {
		return 0, fmt.Errorf("%w: capability %#x of %d bytes does not fit at %#x", ErrBadConfig, id, n, off)
	}
	f.space[off] = id
	f.space[off+1] = 0
	copy(f.space[off+capHeaderLen:], body)
	f.space[f.capPrv] = uint8(off)
	f.capPrv = off + 1
	f.capEnd = (off + n + capAlign - 1) &^ (capAlign - 1)
	st := binary.LittleEndian.Uint16(f.space[Status:]) | StatusCapabilities
	binary.LittleEndian.PutUint16(f.space[Status:], st)
	return off, nil
}

// ReadConfig reads len(data) bytes (1, 2 or 4, not crossing a dword) of
// configuration space at off. Offsets past the space read as 0.
func (f *Function) ReadConfig(off int, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range data {
		if o := off + i; o >= 0 && o < ConfigSpaceSize {
			data[i] = f.space[o]
		} else {
			data[i] = 0
		}
	}
}

// WriteConfig writes data to configuration space at off: only writable
// bits change, write-one-to-clear status bits clear, BARs keep their
// alignment and flags. An error comes from the Remap callback.
func (f *Function) WriteConfig(off int, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	touchedBAR, touchedCmd := false, false
	for i, v := range data {
		o := off + i
		if o < 0 || o >= ConfigSpaceSize {
			continue
		}
		old := f.space[o]
		f.space[o] = old&^f.wmask[o] | v&f.wmask[o]
		f.space[o] &^= v & f.w1c[o]
		switch {
		case o >= BAR0 && o < BAR0+4*NumBARs:
			touchedBAR = true
		case o == Command || o == Command+1:
			touchedCmd = true
		}
	}
	if touchedBAR {
		for i := range f.bars {
			f.fixBAR(i)
		}
	}
	if touchedCmd {
		f.updateLine()
	}
	if touchedBAR || touchedCmd {
		return f.remap()
	}
	return nil
}

// fixBAR applies BAR i's size mask and flags to its register.
func (f *Function) fixBAR(i int) {
	b := &f.bars[i]
	reg := f.space[BAR0+4*i:]
	v := binary.LittleEndian.Uint32(reg)
	switch {
	case b.upper:
		sz := f.bars[i-1].size
		v &= uint32(^(sz - 1) >> 32)
	case b.size == 0:
		v = 0
	case b.io:
		v = v&^uint32(b.size-1) | b.flags
	default:
		v = v&^uint32(b.size-1) | b.flags
	}
	binary.LittleEndian.PutUint32(reg, v)
}

// barAddr returns the address programmed in BAR i (not an upper half).
func (f *Function) barAddr(i int) uint64 {
	b := &f.bars[i]
	lo := uint64(binary.LittleEndian.Uint32(f.space[BAR0+4*i:]))
	if b.io {
		return lo &^ barIOFlagsMask
	}
	a := lo &^ barMemFlagsMask
	if b.b64 {
		a |= uint64(binary.LittleEndian.Uint32(f.space[BAR0+4*i+4:])) << 32
	}
	return a
}

// mapping computes BAR i's mapping from the registers.
func (f *Function) mapping(i int) Mapping {
	b := &f.bars[i]
	m := Mapping{BAR: i, Space: b.space(), Size: b.size, Addr: f.barAddr(i)}
	cmd := binary.LittleEndian.Uint16(f.space[Command:])
	var on bool
	var sizing uint64
	switch {
	case b.io:
		on = cmd&CommandIOSpace != 0 && m.Addr+m.Size <= ioBARAddressMask+1
		sizing = uint64(uint32(^(b.size - 1))) &^ barIOFlagsMask
	case b.b64:
		on = cmd&CommandMemorySpace != 0 && m.Addr+m.Size > m.Addr
		sizing = ^(b.size - 1)
	default:
		on = cmd&CommandMemorySpace != 0
		sizing = uint64(uint32(^(b.size - 1)))
	}
	m.Enabled = on && m.Addr != 0 && m.Addr != sizing
	return m
}

// remap recomputes every BAR's mapping and reports changes.
func (f *Function) remap() error {
	var errs []error
	for i := range f.bars {
		if f.bars[i].size == 0 {
			continue
		}
		m := f.mapping(i)
		old := f.maps[i]
		if m == old {
			continue
		}
		f.maps[i] = m
		if f.cfg.Remap != nil {
			if err := f.cfg.Remap(old, m); err != nil {
				errs = append(errs, fmt.Errorf("pci %04x:%04x BAR %d: %w", f.cfg.Header.VendorID, f.cfg.Header.DeviceID, i, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Mapping returns where BAR i currently decodes.
func (f *Function) Mapping(i int) Mapping {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i < 0 || i >= NumBARs {
		return Mapping{BAR: i}
	}
	return f.maps[i]
}

// Command returns the Command register (the owner checks Bus Master
// before doing DMA, if it cares).
func (f *Function) Command() uint16 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return binary.LittleEndian.Uint16(f.space[Command:])
}

// SetIRQ sets the level of the function's INTx pin. The Interrupt Status
// bit follows it; the IRQ callback sees it unless Interrupt Disable is
// set in the Command register.
func (f *Function) SetIRQ(level bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.level = level
	f.updateLine()
}

func (f *Function) updateLine() {
	st := binary.LittleEndian.Uint16(f.space[Status:]) &^ StatusInterrupt
	if f.level {
		st |= StatusInterrupt
	}
	binary.LittleEndian.PutUint16(f.space[Status:], st)
	cmd := binary.LittleEndian.Uint16(f.space[Command:])
	line := f.level && cmd&CommandINTxDisable == 0 && f.cfg.Header.InterruptPin != PinNone
	if line != f.line {
		f.line = line
		if f.cfg.IRQ != nil {
			f.cfg.IRQ(line)
		}
	}
}

// BusMapper returns a Remap callback that moves the device handling each
// BAR on b: it unregisters the old range and registers the new one. devs
// holds the bus.Device for each BAR (nil for BARs with no handler).
func BusMapper(b *bus.Bus, name string, devs [NumBARs]bus.Device) func(old, new Mapping) error {
	return func(old, new Mapping) error {
		d := devs[new.BAR]
		if d == nil {
			return nil
		}
		if old.Enabled {
			if err := b.Unregister(old.Space, old.Addr); err != nil {
				return err
			}
		}
		if new.Enabled {
			return b.Register(new.Space, new.Addr, new.Size, fmt.Sprintf("%s BAR%d", name, new.BAR), d)
		}
		return nil
	}
}

// State is the migratable state of a function: its configuration space
// and the level of its interrupt pin.
type State struct {
	Space [ConfigSpaceSize]byte
	IRQ   bool
}

// Save returns the function's state.
func (f *Function) Save() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	return State{Space: f.space, IRQ: f.level}
}

// Restore loads a state from Save. The read-only bytes (identity, BAR
// flags, capabilities) must match this function's; the BAR mappings are
// reported through Remap and the interrupt line through IRQ.
func (f *Function) Restore(s State) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for o := range s.Space {
		ro := ^(f.wmask[o] | f.w1c[o])
		if o == Status {
			ro &^= StatusInterrupt
		}
		if s.Space[o]&ro != f.space[o]&ro {
			return fmt.Errorf("%w: read-only config byte %#x is %#x, want %#x", ErrState, o, s.Space[o]&ro, f.space[o]&ro)
		}
	}
	f.space = s.Space
	for i := range f.bars {
		f.fixBAR(i)
	}
	f.level = s.IRQ
	f.line = false // the new host's line starts low: report the level afresh
	f.updateLine()
	return f.remap()
}
