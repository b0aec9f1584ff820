package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/godwit-hv/godwit/cluster"
)

const usage = `usage:
  godwit-lun format FILE [--hosts N] [--sector 512|4096] [--volumes N] [--au SIZE] [--size SIZE] [--label TEXT]
  godwit-lun ls     FILE
  godwit-lun create FILE NAME SIZE [--host-id N] [--io-timeout DURATION]
  godwit-lun rm     FILE NAME      [--host-id N] [--io-timeout DURATION]
  godwit-lun hosts  FILE [--watch DURATION]
  godwit-lun check  FILE
SIZE takes K, M, G, T suffixes (powers of 1024). create and rm join the
lockspace as host --host-id (default: the highest host id of the LUN) with
sanlock-style timeouts derived from --io-timeout (default 10s; joining takes
2x that, more if the id was left held by a crashed run).
`

// usageError marks bad command-line input (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// errNotClean is returned by check when it found problems.
var errNotClean = errors.New("LUN is not clean")

func run(stdin io.Reader, stdout, stderr io.Writer, args []string) error {
	if len(args) == 0 {
		return usagef("no command")
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		hosts     = fs.Int("hosts", cluster.DefaultHosts, "maximum number of hosts")
		sector    = fs.Int("sector", 512, "sector size: 512 or 4096")
		volumes   = fs.Int("volumes", cluster.DefaultVolumes, "directory slots")
		au        = fs.String("au", "1M", "allocation unit")
		size      = fs.String("size", "", "create FILE with this size")
		label     = fs.String("label", "", "label recorded in the superblock")
		hostID    = fs.Int("host-id", 0, "host id to join as (default: the highest)")
		ioTimeout = fs.Duration("io-timeout", cluster.DefaultIOTimeout, "lease I/O timeout")
		watch     = fs.Duration("watch", 0, "observe host leases for this long to judge liveness")
	)
	pos, err := parseArgs(fs, rest)
	if err != nil {
		return err
	}
	want := map[string]int{"format": 1, "ls": 1, "create": 3, "rm": 2, "hosts": 1, "check": 1}
	n, ok := want[cmd]
	if !ok {
		return usagef("unknown command %q", cmd)
	}
	if len(pos) != n {
		return usagef("%s takes %d argument(s), got %d", cmd, n, len(pos))
	}
	switch cmd {
	case "format":
		return cmdFormat(stdout, pos[0], *hosts, *sector, *volumes, *au, *size, *label)
	case "ls":
		return cmdLs(stdout, pos[0])
	case "create", "rm":
		return cmdChange(stdout, cmd, pos, *hostID, *ioTimeout)
	case "hosts":
		return cmdHosts(stdout, pos[0], *watch)
	case "check":
		return cmdCheck(stdout, pos[0])
	}
	return nil
}

// parseArgs lets flags and positional arguments come in any order.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) > 1 && a[0] == '-' && (a[1] == '-' || a[1] >= 'a' && a[1] <= 'z' || a[1] >= 'A' && a[1] <= 'Z') {
			flags = append(flags, a)
			if !strings.Contains(a, "=") {
				if i+1 >= len(args) {
					return nil, usagef("flag %s needs a value", a)
				}
				flags = append(flags, args[i+1])
				i++
			}
			continue
		}
		pos = append(pos, a)
	}
	if err := fs.Parse(flags); err != nil {
		return nil, usagef("%v", err)
	}
	return pos, nil
}

// parseSize reads 4096, 64K, 10M, 2G, 1T (powers of 1024, optional B/iB).
func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, usagef("bad size %q (want a positive number with optional K, M, G, T)", s)
	}
	return n * mult, nil
}

func cmdFormat(stdout io.Writer, path string, hosts, sector, volumes int, auS, sizeS, label string) error {
	au, err := parseSize(auS)
	if err != nil {
		return err
	}
	if hosts < 1 || volumes < 1 {
		return usagef("--hosts (%d) and --volumes (%d) must be at least 1", hosts, volumes)
	}
	if sector != cluster.SectorSize512 && sector != cluster.SectorSize4096 {
		return usagef("--sector must be 512 or 4096, not %d", sector)
	}
	var dev *cluster.FileDevice
	if sizeS != "" {
		size, err := parseSize(sizeS)
		if err != nil {
			return err
		}
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("%s exists; --size only creates new images", path)
		}
		dev, err = cluster.CreateFile(path, size, sector)
		if err != nil {
			return err
		}
	} else {
		if dev, err = cluster.OpenFile(path, sector, false); err != nil {
			return fmt.Errorf("%w (use --size to create a new image)", err)
		}
	}
	defer dev.Close()
	l, err := cluster.Format(dev, cluster.FormatOptions{MaxHosts: hosts, MaxVolumes: volumes, AUSize: au, Label: label})
	if err != nil {
		return err
	}
	lay := l.Layout()
	fmt.Fprintf(stdout, "formatted %s: uuid %s, %d-byte sectors, %d hosts, %d volume slots, %d units of %s free (metadata %s)\n",
		path, l.UUID(), lay.SectorSize, lay.MaxHosts, lay.MaxVolumes, lay.DataUnits, human(lay.AUSize), human(lay.DataStart*int64(lay.SectorSize)))
	return nil
}

func openLUN(path string, readOnly bool) (*cluster.FileDevice, *cluster.LUN, error) {
	dev, err := cluster.OpenFile(path, 0, readOnly)
	if err != nil {
		return nil, nil, err
	}
	l, err := cluster.Open(dev)
	if err != nil {
		dev.Close()
		return nil, nil, err
	}
	return dev, l, nil
}

func cmdLs(stdout io.Writer, path string) error {
	dev, l, err := openLUN(path, true)
	if err != nil {
		return err
	}
	defer dev.Close()
	vols, lerr := l.List()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE\tEXTENTS\tOWNER\tGEN\tLEASE-VERSION\tSTATE")
	for _, v := range vols {
		state, owner := "free", "-"
		if v.Owner != 0 {
			owner = strconv.Itoa(v.Owner)
		}
		if v.Held {
			state = "held"
		} else if v.Version > 0 {
			state = "released"
		}
		if v.LeaseErr != nil {
			state += " (lease records damaged)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%s\n", v.Name, human(v.Size), len(v.Extents), owner, v.OwnerGen, v.Version, state)
	}
	tw.Flush()
	if lerr != nil {
		return fmt.Errorf("some records are unreadable (run check): %w", lerr)
	}
	return nil
}

func cmdChange(stdout io.Writer, cmd string, pos []string, hostID int, ioTimeout time.Duration) error {
	var size int64
	if cmd == "create" {
		var err error
		if size, err = parseSize(pos[2]); err != nil {
			return err
		}
	}
	if err := cluster.ValidName(pos[1]); err != nil {
		return usagef("%v", err)
	}
	dev, l, err := openLUN(pos[0], false)
	if err != nil {
		return err
	}
	defer dev.Close()
	if hostID == 0 {
		hostID = l.Layout().MaxHosts
	}
	t := cluster.DeriveTimeouts(ioTimeout)
	if err := t.Validate(); err != nil {
		return usagef("--io-timeout: %v", err)
	}
	ctx := context.Background()
	h, err := l.Join(ctx, cluster.HostConfig{ID: hostID, Name: "godwit-lun", Timeouts: t})
	if err != nil {
		return err
	}
	if cmd == "create" {
		err = h.CreateVolume(ctx, pos[1], size)
	} else {
		err = h.DeleteVolume(ctx, pos[1])
	}
	if lerr := h.Leave(); lerr != nil {
		err = errors.Join(err, lerr)
	}
	if err != nil {
		return err
	}
	if cmd == "create" {
		fmt.Fprintf(stdout, "created %s (%s)\n", pos[1], human(size))
	} else {
		fmt.Fprintf(stdout, "removed %s\n", pos[1])
	}
	return nil
}

func cmdHosts(stdout io.Writer, path string, watch time.Duration) error {
	dev, l, err := openLUN(path, true)
	if err != nil {
		return err
	}
	defer dev.Close()
	first, err := l.Hosts()
	if first == nil {
		return err
	}
	var second []cluster.HostInfo
	if watch > 0 {
		time.Sleep(watch)
		if second, err = l.Hosts(); second == nil {
			return err
		}
	}
	nowNs := time.Now().UnixNano()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tGEN\tNAME\tLAST-RENEWAL\tHOST-DEAD\tSTATE")
	for i, hi := range first {
		if hi.Err != nil {
			fmt.Fprintf(tw, "%d\t-\t-\t-\t-\tunreadable: %v\n", hi.ID, hi.Err)
			continue
		}
		if hi.Owner == 0 {
			continue // never used
		}
		age, state := "-", "released"
		if hi.Timestamp != 0 {
			a := time.Duration(nowNs - int64(hi.Timestamp))
			age = a.Round(time.Millisecond).String() + " ago"
			switch {
			case second != nil && second[i].Err == nil && second[i].Timestamp != hi.Timestamp:
				state = "alive (renewed while watched)"
			case second != nil && watch >= hi.HostDead:
				state = "dead (not renewed while watched)"
			case second != nil:
				state = "not renewed while watched (watch >= HOST-DEAD to decide)"
			case a > hi.HostDead:
				state = "likely dead (by wall clock; use --watch)"
			default:
				state = "likely alive (by wall clock; use --watch)"
			}
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%v\t%s\n", hi.ID, hi.Generation, hi.Name, age, hi.HostDead, state)
	}
	tw.Flush()
	if err != nil {
		return fmt.Errorf("some host leases are unreadable (run check): %w", err)
	}
	return nil
}

func cmdCheck(stdout io.Writer, path string) error {
	dev, err := cluster.OpenFile(path, 0, true)
	if err != nil {
		return err
	}
	defer dev.Close()
	rep, err := cluster.Check(dev)
	if err != nil {
		return err
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(stdout, "PROBLEM %s: %v\n", p.Record, p.Err)
	}
	if !rep.Clean() {
		return fmt.Errorf("%w: %d problem(s)", errNotClean, len(rep.Problems))
	}
	lay := rep.Layout
	fmt.Fprintf(stdout, "clean: uuid %s, %d volume(s), %d of %d allocation units used, %d host lease(s) held\n",
		rep.UUID, rep.Volumes, rep.UsedUnits, lay.DataUnits, rep.HostsInUse)
	return nil
}

func human(n int64) string {
	for _, u := range []struct {
		s string
		v int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n >= u.v && n%u.v == 0 {
			return fmt.Sprintf("%d%s", n/u.v, u.s)
		}
	}
	return strconv.FormatInt(n, 10)
}
