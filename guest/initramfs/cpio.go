package initramfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
)

// The "new ASCII" (newc) cpio format, the one the Linux kernel unpacks into its rootfs
// (Documentation/driver-api/early-userspace/buffer-format.rst; cpio(5) of libarchive, "New
// ASCII Format"):
//
//	+--------+-------+------+-----+-----+-------+-------+----------+---------+---------+----------+----------+----------+-------+
//	| 070701 | ino   | mode | uid | gid | nlink | mtime | filesize | devmajor| devminor| rdevmajor| rdevminor| namesize | check |
//	+--------+-------+------+-----+-----+-------+-------+----------+---------+---------+----------+----------+----------+-------+
//	  6 bytes  then 13 fields of 8 ASCII hex digits each (110 bytes in all)
//
// followed by the name (namesize bytes, NUL included), padded with NULs so that the data starts
// on a multiple of 4 bytes from the start of the header, then filesize bytes of data (a
// symlink's data is its target), padded to a multiple of 4. The archive ends with an entry named
// "TRAILER!!!". check is 0 in "070701" archives (it is the byte sum only in "070702" ones).
const (
	newcMagic      = "070701"     // buffer-format.rst: c_magic, "070701" for newc
	newcHeaderSize = 110          // 6-byte magic + 13 fields * 8 hex digits
	newcFields     = 13           // c_ino .. c_check
	newcAlign      = 4            // name and data are padded to 4-byte boundaries
	newcTrailer    = "TRAILER!!!" // buffer-format.rst: the end-of-archive entry's name
)

// File type bits of c_mode, as in stat(2) / <linux/stat.h> (S_IFMT and friends).
const (
	modeTypeMask = 0o170000 // S_IFMT
	modeDir      = 0o040000 // S_IFDIR
	modeRegular  = 0o100000 // S_IFREG
	modeSymlink  = 0o120000 // S_IFLNK
	modeCharDev  = 0o020000 // S_IFCHR
)

// Entry is one member of an archive as Reader returns it.
type Entry struct {
	Name      string // without a leading "/"
	Mode      uint32 // c_mode: type and permission bits
	UID, GID  uint32
	NLink     uint32
	MTime     uint32
	RDevMajor uint32 // device number of a device node
	RDevMinor uint32
	Data      []byte // a regular file's contents; a symlink's target
}

// IsDir, IsRegular, IsSymlink and IsCharDev say what kind of entry e is.
func (e Entry) IsDir() bool     { return e.Mode&modeTypeMask == modeDir }
func (e Entry) IsRegular() bool { return e.Mode&modeTypeMask == modeRegular }
func (e Entry) IsSymlink() bool { return e.Mode&modeTypeMask == modeSymlink }
func (e Entry) IsCharDev() bool { return e.Mode&modeTypeMask == modeCharDev }

// Perm returns the permission bits of e, with fs.ModeSetuid, fs.ModeSetgid and fs.ModeSticky
// for the bits of c_mode that say so.
func (e Entry) Perm() fs.FileMode {
	m := fs.FileMode(e.Mode & 0o777)
	for _, b := range modeSpecial {
		if e.Mode&b.unix != 0 {
			m |= b.goMode
		}
	}
	return m
}

// modeSpecial maps the set-user-ID, set-group-ID and sticky bits of c_mode (stat(2): S_ISUID,
// S_ISGID, S_ISVTX) to Go's.
var modeSpecial = []struct {
	unix   uint32
	goMode fs.FileMode
}{{0o4000, fs.ModeSetuid}, {0o2000, fs.ModeSetgid}, {0o1000, fs.ModeSticky}}

// unixPerm turns Go's permission and special bits into those of c_mode.
func unixPerm(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	for _, b := range modeSpecial {
		if m&b.goMode != 0 {
			u |= b.unix
		}
	}
	return u
}

// Writer writes a newc cpio archive. Entries are written in the order they are added; a
// directory must come before what it holds, as the kernel creates each entry as it reads it.
// Every entry gets its own inode number and MTime as its modification time, so that the same
// inputs give the same archive byte for byte.
type Writer struct {
	w     io.Writer
	ino   uint32
	MTime uint32 // c_mtime of every entry; 0 by default
	names map[string]bool
	err   error
}

// NewWriter returns a Writer that writes the archive to w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, ino: 1, names: map[string]bool{}}
}

// Dir adds a directory.
func (cw *Writer) Dir(name string, perm fs.FileMode) error {
	return cw.add(name, modeDir|unixPerm(perm), 2, 0, 0, nil)
}

// File adds a regular file holding data.
func (cw *Writer) File(name string, perm fs.FileMode, data []byte) error {
	return cw.add(name, modeRegular|unixPerm(perm), 1, 0, 0, data)
}

// Symlink adds a symbolic link to target.
func (cw *Writer) Symlink(name, target string) error {
	if target == "" {
		return fmt.Errorf("cpio: symlink %s: empty target", name)
	}
	return cw.add(name, modeSymlink|0o777, 1, 0, 0, []byte(target))
}

// CharDev adds a character device node: the kernel's unpacker creates it with mknod, so the
// archive can hold device nodes without root rights where it is built.
func (cw *Writer) CharDev(name string, perm fs.FileMode, major, minor uint32) error {
	return cw.add(name, modeCharDev|unixPerm(perm), 1, major, minor, nil)
}

// Close writes the trailer. It does not close the underlying writer.
func (cw *Writer) Close() error {
	if cw.err != nil {
		return cw.err
	}
	cw.err = cw.entry(newcTrailer, 0, 0, 1, 0, 0, nil)
	if cw.err != nil {
		return cw.err
	}
	cw.err = errors.New("cpio: archive closed")
	return nil
}

func (cw *Writer) add(name string, mode, nlink, rmajor, rminor uint32, data []byte) error {
	if cw.err != nil {
		return cw.err
	}
	if err := checkName(name); err != nil {
		return err
	}
	if cw.names[name] {
		return fmt.Errorf("cpio: %s: added twice", name)
	}
	cw.names[name] = true
	cw.ino++
	if err := cw.entry(name, cw.ino, mode, nlink, rmajor, rminor, data); err != nil {
		cw.err = err
		return err
	}
	return nil
}

// checkName accepts relative, clean, slash-separated names: what the kernel unpacks under "/".
func checkName(name string) error {
	if name == "" || name[0] == '/' || name == newcTrailer {
		return fmt.Errorf("cpio: bad entry name %q", name)
	}
	if !fs.ValidPath(name) || name == "." {
		return fmt.Errorf("cpio: entry name %q is not a clean relative path", name)
	}
	return nil
}

func (cw *Writer) entry(name string, ino, mode, nlink, rmajor, rminor uint32, data []byte) error {
	if uint64(len(data)) > 0xffffffff {
		return fmt.Errorf("cpio: %s: %d bytes do not fit c_filesize", name, len(data))
	}
	var hdr bytes.Buffer
	hdr.WriteString(newcMagic)
	for _, v := range [newcFields]uint32{
		ino, mode, 0, 0, nlink, cw.MTime, uint32(len(data)),
		0, 0, rmajor, rminor, uint32(len(name) + 1), 0,
	} {
		fmt.Fprintf(&hdr, "%08x", v)
	}
	hdr.WriteString(name)
	hdr.WriteByte(0)
	hdr.Write(make([]byte, pad(hdr.Len())))
	hdr.Write(data)
	hdr.Write(make([]byte, pad(len(data))))
	if _, err := cw.w.Write(hdr.Bytes()); err != nil {
		return fmt.Errorf("cpio: writing %s: %w", name, err)
	}
	return nil
}

// pad returns how many bytes bring n to a multiple of newcAlign.
func pad(n int) int { return (newcAlign - n%newcAlign) % newcAlign }

// ErrNoTrailer is returned by ReadAll for an archive that ends before its trailer entry.
var ErrNoTrailer = errors.New("cpio: archive ends without its trailer")

// maxEntrySize bounds one entry's data in ReadAll, so that a corrupt size field is an error
// rather than a huge allocation.
const maxEntrySize = 256 << 20

// ReadAll parses a whole newc archive (not compressed) and returns its entries, trailer
// excluded. Anything after the trailer is ignored (the kernel accepts zero padding there).
func ReadAll(r io.Reader) ([]Entry, error) {
	br := bufio.NewReader(r)
	var entries []Entry
	off := 0
	for {
		hdr := make([]byte, newcHeaderSize)
		if _, err := io.ReadFull(br, hdr); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return entries, fmt.Errorf("at byte %d: %w", off, ErrNoTrailer)
			}
			return entries, fmt.Errorf("cpio: at byte %d: %w", off, err)
		}
		if string(hdr[:len(newcMagic)]) != newcMagic {
			return entries, fmt.Errorf("cpio: at byte %d: bad magic %q, want %q", off, hdr[:len(newcMagic)], newcMagic)
		}
		var f [newcFields]uint32
		for i := range f {
			s := string(hdr[len(newcMagic)+8*i : len(newcMagic)+8*(i+1)])
			v, err := strconv.ParseUint(s, 16, 32)
			if err != nil {
				return entries, fmt.Errorf("cpio: at byte %d: field %d %q is not hex: %w", off, i, s, err)
			}
			f[i] = uint32(v)
		}
		size, namesize := f[6], f[11]
		if namesize == 0 || namesize > 4096 {
			return entries, fmt.Errorf("cpio: at byte %d: bad name size %d", off, namesize)
		}
		if size > maxEntrySize {
			return entries, fmt.Errorf("cpio: at byte %d: entry of %d bytes is over the %d-byte limit", off, size, maxEntrySize)
		}
		name := make([]byte, int(namesize)+pad(newcHeaderSize+int(namesize)))
		if _, err := io.ReadFull(br, name); err != nil {
			return entries, fmt.Errorf("cpio: at byte %d: name: %w", off, err)
		}
		if name[namesize-1] != 0 {
			return entries, fmt.Errorf("cpio: at byte %d: name is not NUL-terminated", off)
		}
		e := Entry{
			Name: string(name[:namesize-1]), Mode: f[1], UID: f[2], GID: f[3], NLink: f[4],
			MTime: f[5], RDevMajor: f[9], RDevMinor: f[10],
		}
		data := make([]byte, int(size)+pad(int(size)))
		if _, err := io.ReadFull(br, data); err != nil {
			return entries, fmt.Errorf("cpio: %s: data: %w", e.Name, err)
		}
		e.Data = data[:size]
		off += newcHeaderSize + len(name) + len(data)
		if e.Name == newcTrailer {
			return entries, nil
		}
		entries = append(entries, e)
	}
}
