// Package ata drives ATA disks on the legacy IDE channels (primary 1F0h/3F6h on IRQ 14,
// secondary 170h/376h on IRQ 15) with PIO transfers: IDENTIFY DEVICE, READ/WRITE SECTOR(S)
// EXT with 48-bit LBAs (28-bit commands on devices without the 48-bit feature set), FLUSH
// CACHE (EXT). ATAPI devices (CD-ROMs) are recognized by their signature and skipped. Every
// data block and command completion is awaited on the channel's interrupt through
// ring0.WaitIRQ, with a timeout that turns a silent device into an error. This is how a
// Bochs-hosted Godwit, which has no virtio, reaches a host disk.
//
// References: "AT Attachment with Packet Interface - 6" (ATA/ATAPI-6, T13/1410D revision 3b),
// cited as "ATA-6".
package ata

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/godwit-hv/godwit/arch/disk"
	"github.com/godwit-hv/godwit/arch/ring0"
)

// Command block registers, offsets from the channel's command base. ATA-6, 7.1 "I/O register
// descriptions", Table 2 "Command block registers".
const (
	regData     = 0
	regError    = 1 // read
	regFeatures = 1 // write
	regCount    = 2
	regLBALow   = 3
	regLBAMid   = 4
	regLBAHigh  = 5
	regDevice   = 6
	regStatus   = 7 // read
	regCommand  = 7 // write
)

// Error register: ABRT, command aborted. ATA-6, 7.11 "Error register".
const errABRT = 1 << 2

// Control block: Alternate Status (read) / Device Control (write). ATA-6, 7.9 and 7.2.
const (
	ctlNIEN = 1 << 1 // interrupts disabled
	ctlSRST = 1 << 2 // software reset
	ctlHOB  = 1 << 7 // read the high-order bytes of the 48-bit registers
)

// Status bits. ATA-6, 7.15 "Status register".
const (
	stERR  = 1 << 0
	stDRQ  = 1 << 3
	stDF   = 1 << 5
	stDRDY = 1 << 6
	stBSY  = 1 << 7
)

// Device register. ATA-6, 7.10: bit 6 LBA, bit 4 DEV (0 master, 1 slave); bits 7 and 5 are
// obsolete and set by convention.
const (
	devObsolete = 0xA0
	devLBA      = 1 << 6
	devSlave    = 1 << 4
)

// Commands. ATA-6, 8 "Command descriptions".
const (
	cmdReadSectors     = 0x20 // 8.27 READ SECTOR(S)
	cmdReadSectorsExt  = 0x24 // 8.28 READ SECTOR(S) EXT
	cmdWriteSectors    = 0x30 // 8.49 WRITE SECTOR(S)
	cmdWriteSectorsExt = 0x34 // 8.50 WRITE SECTOR(S) EXT
	cmdFlushCache      = 0xE7 // 8.13 FLUSH CACHE
	cmdFlushCacheExt   = 0xEA // 8.14 FLUSH CACHE EXT
	cmdIdentify        = 0xEC // 8.15 IDENTIFY DEVICE
)

// Signature of a PACKET (ATAPI) device in LBA Mid/High after a reset or an aborted IDENTIFY
// DEVICE. ATA-6, 9.12 "Signature and persistence".
const (
	sigPacketMid  = 0x14
	sigPacketHigh = 0xEB
)

// IDENTIFY DEVICE data words. ATA-6, 8.15.8, Table 27.
const (
	idGeneral        = 0  // bit 15: 0 for ATA devices
	idModel          = 27 // words 27-46: model number, two characters per word, high byte first
	idModelWords     = 20
	idLBA28Sectors   = 60  // words 60-61
	idCmdSet2        = 83  // bit 10: 48-bit Address feature set supported
	idCmdSet2Enabled = 86  // bit 10: enabled
	idLBA48Sectors   = 100 // words 100-103
	idSectorSize     = 106 // bit 14 set, 15 clear: valid; bit 12: logical sector longer than 256 words
	idWordsPerSector = 117 // words 117-118
	idFeat48         = 1 << 10
	idWords          = 256
	lba28Max         = 1 << 28
)

// Channels of the PC's compatibility-mode IDE controller: the fixed ports and ISA IRQs of PCI
// IDE Controller Specification 1.0, 2.1 "PCI IDE Controller Compatibility Mode".
var channels = [2]struct {
	cmd, ctl uint16
	irq      uint8
}{
	{0x1F0, 0x3F6, 14},
	{0x170, 0x376, 15},
}

// Timeouts and sizes.
const (
	sectorSize     = 512
	maxPerCommand  = 128 // sectors per command: 64 KiB
	identifyWait   = 2 * time.Second
	statusPollStep = 100 * time.Microsecond
)

// CommandTimeout bounds each wait for the device (an interrupt, BSY clearing, DRQ).
var CommandTimeout = 10 * time.Second

// Errors.
var (
	ErrTimeout = errors.New("ata: device stopped answering")
	ErrDevice  = errors.New("ata: device reported an error")
	ErrNoDRQ   = errors.New("ata: device did not request data")
)

// Ports is the I/O space the driver talks to (tests use a fake device).
type Ports interface {
	In8(port uint16) uint8
	Out8(port uint16, v uint8)
	InWords(port uint16, buf []byte)
	OutWords(port uint16, buf []byte)
}

// IRQ is a channel's interrupt: a count and a wait for it to pass seen.
type IRQ interface {
	Count() uint64
	Wait(seen uint64, timeout time.Duration) (uint64, error)
	String() string
}

// ringIRQ is an ISA IRQ routed by the ring-0 layer.
type ringIRQ struct {
	vec   uint8
	route ring0.Route
}

func (r ringIRQ) Count() uint64 { return ring0.IRQCount(r.vec) }
func (r ringIRQ) Wait(seen uint64, t time.Duration) (uint64, error) {
	return ring0.WaitIRQ(r.vec, seen, t)
}
func (r ringIRQ) String() string { return fmt.Sprintf("%v vector %#x", r.route, r.vec) }

// Channel is one IDE channel; its two devices share the registers, so commands are serialized.
type Channel struct {
	Index    int
	cmd, ctl uint16
	io       Ports
	irq      IRQ
	mu       sync.Mutex
	sleep    func(time.Duration)
}

// Drive is one ATA disk. It implements disk.Driver.
type Drive struct {
	ch      *Channel
	slave   bool
	sectors int64
	lba48   bool
	Model   string

	commands, errs, timeouts atomic.Uint64
}

// NewChannel wraps channel index (0 primary, 1 secondary) over io and irq.
func NewChannel(index int, io Ports, irq IRQ, sleep func(time.Duration)) *Channel {
	c := channels[index]
	if sleep == nil {
		sleep = time.Sleep
	}
	return &Channel{Index: index, cmd: c.cmd, ctl: c.ctl, io: io, irq: irq, sleep: sleep}
}

// Probe finds the ATA disks on both legacy channels, in the order primary master, primary
// slave, secondary master, secondary slave. Channels with no controller and empty positions
// are skipped silently; ATAPI devices are skipped with a note in errs only when something else
// goes wrong with them.
func Probe() (drives []*Drive, errs []error) {
	if !ring0.BareMetal() {
		return nil, []error{fmt.Errorf("ata: %w", ring0.ErrNotBareMetal)}
	}
	for i, c := range channels {
		if hostPorts.In8(hostPorts{}, c.cmd+regStatus) == 0xFF {
			continue // floating bus: no controller on this channel
		}
		route, err := ring0.ISARoute(c.irq)
		if err != nil {
			errs = append(errs, fmt.Errorf("ata%d: IRQ %d: %w", i, c.irq, err))
			continue
		}
		vec, err := ring0.SharedVector(route)
		if err != nil {
			errs = append(errs, fmt.Errorf("ata%d: IRQ %d: %w", i, c.irq, err))
			continue
		}
		ch := NewChannel(i, hostPorts{}, ringIRQ{vec, route}, nil)
		d, e := ch.Probe()
		drives = append(drives, d...)
		errs = append(errs, e...)
	}
	return drives, errs
}

// Probe identifies the channel's master and slave.
func (c *Channel) Probe() (drives []*Drive, errs []error) {
	c.io.Out8(c.ctl, 0) // interrupts on (nIEN clear)
	for _, slave := range []bool{false, true} {
		d, err := c.identify(slave)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if d != nil {
			drives = append(drives, d)
		}
	}
	return drives, errs
}

func (c *Channel) name(slave bool) string {
	if slave {
		return fmt.Sprintf("ata%d slave", c.Index)
	}
	return fmt.Sprintf("ata%d master", c.Index)
}

// delay400ns reads Alternate Status four times: ATA-6, 9.2 asks hosts to wait 400 ns after
// writing the Device register before trusting the status.
func (c *Channel) delay400ns() {
	for i := 0; i < 4; i++ {
		c.io.In8(c.ctl)
	}
}

// waitNotBusy polls Alternate Status until BSY clears (no interrupt marks that), sleeping
// between polls.
func (c *Channel) waitNotBusy(timeout time.Duration) (uint8, error) {
	var st uint8
	for waited := time.Duration(0); ; waited += statusPollStep {
		for i := 0; i < 64; i++ { // the common case: clear at once
			if st = c.io.In8(c.ctl); st&stBSY == 0 {
				return st, nil
			}
		}
		if waited >= timeout {
			return st, fmt.Errorf("BSY for %v (status %#02x): %w", timeout, st, ErrTimeout)
		}
		c.sleep(statusPollStep)
	}
}

func (c *Channel) selectDrive(slave bool, extra uint8) {
	v := uint8(devObsolete) | extra
	if slave {
		v |= devSlave
	}
	c.io.Out8(c.cmd+regDevice, v)
	c.delay400ns()
}

// identify runs IDENTIFY DEVICE; nil, nil means nothing (or an ATAPI device) is there.
func (c *Channel) identify(slave bool) (*Drive, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	who := c.name(slave)
	c.selectDrive(slave, 0)
	if st := c.io.In8(c.cmd + regStatus); st == 0 || st == 0xFF {
		return nil, nil // no device at this position
	}
	if _, err := c.waitNotBusy(identifyWait); err != nil {
		return nil, fmt.Errorf("%s: before IDENTIFY: %w", who, err)
	}
	for _, r := range []uint16{regCount, regLBALow, regLBAMid, regLBAHigh} {
		c.io.Out8(c.cmd+r, 0)
	}
	seen := c.irq.Count()
	c.io.Out8(c.cmd+regCommand, cmdIdentify)
	if st := c.io.In8(c.ctl); st == 0 {
		return nil, nil
	}
	// An ATA device interrupts with the data ready; a PACKET device aborts with its signature
	// (and may interrupt too). Either way BSY clears.
	c.irq.Wait(seen, identifyWait)
	st, err := c.waitNotBusy(identifyWait)
	if err != nil {
		return nil, fmt.Errorf("%s: IDENTIFY: %w", who, err)
	}
	st = c.io.In8(c.cmd + regStatus) // acknowledges the interrupt
	if c.io.In8(c.cmd+regLBAMid) == sigPacketMid && c.io.In8(c.cmd+regLBAHigh) == sigPacketHigh {
		return nil, nil // ATAPI (a CD-ROM): not a disk for us
	}
	if st&(stERR|stDF) != 0 {
		e := c.io.In8(c.cmd + regError)
		if st&stDF == 0 && e == errABRT {
			// Every ATA device implements IDENTIFY DEVICE (ATA-6, 8.15): an abort means no ATA
			// disk here. QEMU answers so for an absent master beside a present slave.
			return nil, nil
		}
		return nil, fmt.Errorf("%s: IDENTIFY failed (status %#02x, error %#02x): %w", who, st, e, ErrDevice)
	}
	if st&stDRQ == 0 {
		return nil, fmt.Errorf("%s: IDENTIFY (status %#02x): %w", who, st, ErrNoDRQ)
	}
	id := make([]byte, 2*idWords)
	c.io.InWords(c.cmd+regData, id)
	d, err := parseIdentify(id)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", who, err)
	}
	d.ch, d.slave = c, slave
	return d, nil
}

func word(id []byte, w int) uint16 { return binary.LittleEndian.Uint16(id[2*w:]) }

// parseIdentify reads what the driver needs from IDENTIFY DEVICE data.
func parseIdentify(id []byte) (*Drive, error) {
	if len(id) < 2*idWords {
		return nil, fmt.Errorf("IDENTIFY data of %d bytes: %w", len(id), ErrDevice)
	}
	if word(id, idGeneral)&(1<<15) != 0 {
		return nil, fmt.Errorf("IDENTIFY word 0 %#04x: not an ATA device: %w", word(id, idGeneral), ErrDevice)
	}
	if w := word(id, idSectorSize); w&(3<<14) == 1<<14 && w&(1<<12) != 0 {
		words := uint32(word(id, idWordsPerSector)) | uint32(word(id, idWordsPerSector+1))<<16
		if words != sectorSize/2 {
			return nil, fmt.Errorf("logical sectors of %d bytes: only 512 supported: %w", 2*words, ErrDevice)
		}
	}
	var model strings.Builder
	for w := idModel; w < idModel+idModelWords; w++ {
		v := word(id, w)
		model.WriteByte(byte(v >> 8))
		model.WriteByte(byte(v))
	}
	d := &Drive{Model: strings.TrimSpace(model.String())}
	if word(id, idCmdSet2)&idFeat48 != 0 && word(id, idCmdSet2Enabled)&idFeat48 != 0 {
		d.lba48 = true
		d.sectors = int64(binary.LittleEndian.Uint64(id[2*idLBA48Sectors:]) & (1<<48 - 1))
	}
	if d.sectors == 0 {
		d.lba48 = false
		d.sectors = int64(uint32(word(id, idLBA28Sectors)) | uint32(word(id, idLBA28Sectors+1))<<16)
	}
	if d.sectors == 0 {
		return nil, fmt.Errorf("IDENTIFY reports no addressable sectors: %w", ErrDevice)
	}
	return d, nil
}

// issue selects the drive, loads the LBA and count registers (the 48-bit form writes the
// high-order bytes first: ATA-6, 6.20 "48-bit Address feature set") and writes the command.
func (d *Drive) issue(cmd uint8, lba int64, count int) {
	c := d.ch
	io := c.io
	if d.lba48 {
		c.selectDrive(d.slave, devLBA)
		io.Out8(c.cmd+regCount, uint8(count>>8))
		io.Out8(c.cmd+regLBALow, uint8(lba>>24))
		io.Out8(c.cmd+regLBAMid, uint8(lba>>32))
		io.Out8(c.cmd+regLBAHigh, uint8(lba>>40))
		io.Out8(c.cmd+regCount, uint8(count))
		io.Out8(c.cmd+regLBALow, uint8(lba))
		io.Out8(c.cmd+regLBAMid, uint8(lba>>8))
		io.Out8(c.cmd+regLBAHigh, uint8(lba>>16))
	} else {
		c.selectDrive(d.slave, devLBA|uint8(lba>>24)&0x0F)
		io.Out8(c.cmd+regCount, uint8(count))
		io.Out8(c.cmd+regLBALow, uint8(lba))
		io.Out8(c.cmd+regLBAMid, uint8(lba>>8))
		io.Out8(c.cmd+regLBAHigh, uint8(lba>>16))
	}
	io.Out8(c.cmd+regCommand, cmd)
}

// waitIRQ waits for the device's interrupt, then reads Status (which acknowledges it: ATA-6,
// 5.2.10 "INTRQ") and returns it once BSY is clear.
func (d *Drive) waitIRQ(seen *uint64, what string) (uint8, error) {
	c := d.ch
	deadline := time.Now().Add(CommandTimeout)
	for {
		left := time.Until(deadline)
		n, err := c.irq.Wait(*seen, left)
		if err != nil {
			st := c.io.In8(c.ctl)
			d.timeouts.Add(1)
			return st, fmt.Errorf("%s: no interrupt within %v (status %#02x): %w", what, CommandTimeout, st, ErrTimeout)
		}
		*seen = n
		st := c.io.In8(c.cmd + regStatus)
		if st&stBSY == 0 {
			return st, nil
		}
		// Still busy: an interrupt of the other drive, or one ahead of the status. Wait on.
		if time.Now().After(deadline) {
			d.timeouts.Add(1)
			return st, fmt.Errorf("%s: BSY after the interrupt (status %#02x): %w", what, st, ErrTimeout)
		}
	}
}

func (d *Drive) fail(what string, st uint8) error {
	d.errs.Add(1)
	return fmt.Errorf("%s: status %#02x, error %#02x: %w", what, st, d.ch.io.In8(d.ch.cmd+regError), ErrDevice)
}

func (d *Drive) check(p []byte, lba int64) error {
	if len(p) == 0 || len(p)%sectorSize != 0 {
		return fmt.Errorf("ata: %d bytes: %w", len(p), disk.ErrUnaligned)
	}
	if lba < 0 || lba > d.sectors || int64(len(p)/sectorSize) > d.sectors-lba {
		return fmt.Errorf("ata: sectors %d+%d of %d: %w", lba, len(p)/sectorSize, d.sectors, disk.ErrOutOfRange)
	}
	return nil
}

// ReadSectors reads whole sectors by PIO data-in (ATA-6, 9.6), one interrupt per sector.
func (d *Drive) ReadSectors(p []byte, lba int64) error { return d.pio(p, lba, false) }

// WriteSectors writes whole sectors by PIO data-out (ATA-6, 9.7).
func (d *Drive) WriteSectors(p []byte, lba int64) error { return d.pio(p, lba, true) }

// pio transfers whole sectors, at most maxPerCommand per command. Data-in: the device
// interrupts when each sector is ready, then the host reads it. Data-out: the device asks for
// the first sector with DRQ and no interrupt (ATA-6, 9.7), then interrupts after each sector
// it took.
func (d *Drive) pio(p []byte, lba int64, write bool) error {
	if err := d.check(p, lba); err != nil {
		return err
	}
	c := d.ch
	c.mu.Lock()
	defer c.mu.Unlock()
	op, cmd, cmd48 := "read", uint8(cmdReadSectors), uint8(cmdReadSectorsExt)
	if write {
		op, cmd, cmd48 = "write", cmdWriteSectors, cmdWriteSectorsExt
	}
	if d.lba48 {
		cmd = cmd48
	}
	for len(p) > 0 {
		n := min(len(p)/sectorSize, maxPerCommand)
		what := fmt.Sprintf("ata %s: %s sectors %d+%d", c.name(d.slave), op, lba, n)
		if _, err := c.waitNotBusy(CommandTimeout); err != nil {
			d.timeouts.Add(1)
			return fmt.Errorf("%s: %w", what, err)
		}
		seen := c.irq.Count()
		d.commands.Add(1)
		d.issue(cmd, lba, n)
		var st uint8
		var err error
		if write {
			if st, err = c.waitNotBusy(CommandTimeout); err != nil {
				d.timeouts.Add(1)
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		for i := 0; i < n; i++ {
			if !write {
				if st, err = d.waitIRQ(&seen, what); err != nil {
					return err
				}
			}
			if st&(stERR|stDF) != 0 {
				return d.fail(what, st)
			}
			if st&stDRQ == 0 {
				d.errs.Add(1)
				return fmt.Errorf("%s: sector %d: status %#02x: %w", what, i, st, ErrNoDRQ)
			}
			sector := p[i*sectorSize : (i+1)*sectorSize]
			if !write {
				c.io.InWords(c.cmd+regData, sector)
				continue
			}
			c.io.OutWords(c.cmd+regData, sector)
			if st, err = d.waitIRQ(&seen, what); err != nil {
				return err
			}
		}
		if !write {
			st = c.io.In8(c.ctl) // alternate status: the command's end state
		}
		if st&(stERR|stDF) != 0 {
			return d.fail(what, st)
		}
		p, lba = p[n*sectorSize:], lba+int64(n)
	}
	return nil
}

// Flush runs FLUSH CACHE (EXT) and waits for its completion interrupt.
func (d *Drive) Flush() error {
	c := d.ch
	c.mu.Lock()
	defer c.mu.Unlock()
	what := fmt.Sprintf("ata %s: flush", c.name(d.slave))
	if _, err := c.waitNotBusy(CommandTimeout); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	cmd := uint8(cmdFlushCache)
	if d.lba48 {
		cmd = cmdFlushCacheExt
	}
	seen := c.irq.Count()
	d.commands.Add(1)
	d.issue(cmd, 0, 0)
	st, err := d.waitIRQ(&seen, what)
	if err != nil {
		return err
	}
	if st&(stERR|stDF) != 0 {
		return d.fail(what, st)
	}
	return nil
}

func (d *Drive) Kind() string     { return "ata" }
func (d *Drive) Location() string { return d.ch.name(d.slave) }
func (d *Drive) Sectors() int64   { return d.sectors }
func (d *Drive) SectorSize() int  { return sectorSize }
func (d *Drive) IRQCount() uint64 { return d.ch.irq.Count() }

// Info names the model, addressing and interrupt.
func (d *Drive) Info() string {
	addr := "LBA28"
	if d.lba48 {
		addr = "LBA48"
	}
	return fmt.Sprintf("%q, %s, PIO, IRQ %v, %d commands, %d errors, %d timeouts",
		d.Model, addr, d.ch.irq, d.commands.Load(), d.errs.Load(), d.timeouts.Load())
}
