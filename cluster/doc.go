// Package cluster implements Godwit's cluster shared volumes: one namespace
// of VM disks on a LUN that every host of the cluster can reach, host
// liveness by delta leases, per-disk ownership by Disk Paxos leases, and
// self-fencing, all over a small BlockDevice interface (see
// /work/shared/design/CLUSTER.md). It is plain Go with no OS specifics
// besides FileDevice, so the hypervisor kernel can run it over its
// virtio-blk host driver.
//
// # On-disk layout
//
// Sizes in sectors (S = 512 or 4096 bytes), H = max hosts, V = max volumes:
//
//	sector 0        +------------------------------+
//	                | superblock                   |  magic GWSB, UUID, parameters, layout
//	1               +------------------------------+
//	                | host leases  (H sectors)     |  delta lease of host i at 1+i-1
//	1+H             +------------------------------+
//	                | directory lease area         |  2 leader slots + 2 dblocks per host
//	                |   (2+2H sectors)             |
//	                +------------------------------+
//	                | directory    (V sectors)     |  one entry per volume slot
//	                +------------------------------+
//	                | bitmap       (B sectors)     |  1 bit per allocation unit
//	                +------------------------------+
//	                | volume lease areas           |  slot s at VolLeaseStart + s*(2+2H)
//	                |   (V * (2+2H) sectors)       |
//	DataStart       +------------------------------+  aligned to the allocation unit (AU)
//	                | data: AU 0, AU 1, ...        |  volumes are lists of AU extents
//	                +------------------------------+
//
// A lease area (directory or volume) is:
//
//	+0  leader slot 0 (even lease versions)   +1 leader slot 1 (odd)
//	+2+2(i-1)+s  dblock of host i, slot s     (two slots written alternately)
//
// Every record occupies one sector and starts with the same 24-byte header
// (magic, version, reserved, CRC32C of the whole sector, index, LUN tag);
// the body layouts are diagrammed beside their types in records.go.
// Integers are little-endian; 0 is invalid for magics, versions, states
// and resource ids. A record that fails validation is reported as a
// *CorruptError naming the record ("volume lease 3 dblock host 5 slot 1")
// and its sector, and never used: lease and dblock records have a second
// slot that keeps the last good state across a torn write; directory and
// bitmap records are written only under the directory lease and an
// unreadable one stops metadata changes until repaired.
//
// Compatibility window: this code writes version 1 and reads versions
// [FormatVersion-1, FormatVersion] (only 1 today); newer records and
// unknown incompatible superblock features are refused with
// ErrUnsupportedVersion.
//
// # Host liveness: delta leases
//
// Each host holds the host lease of its id (Chockler & Malkhi's
// light-weight leases, as sanlock's delta_lease): it joins by waiting out
// any current holder, writing its record, waiting JoinDelay and checking
// the record is still its own; it renews by rewriting the timestamp every
// RenewInterval. Another host is judged dead when its lease sector has not
// changed for its HostDead interval as measured on the observer's own clock.
// See Timeouts for the relation between renewal, failure and host-dead
// intervals and for TakeoverBound.
//
// # Ownership: Disk Paxos leases
//
// Each volume (and the directory) has a Disk Paxos lease; see paxos.go for
// the ballot. The lease has no renewal of its own: it is valid while the
// owner's host lease is (sanlock's design). Release keeps the lease
// version; AcquireVersion acquires only the version the source released,
// which is the handle transfer of a live migration. A lease whose owner is
// dead (or restarted with a new generation) may be taken over.
//
// # Fencing
//
// A host whose last successful renewal was issued at t stops all writes at
// t+RenewFail: the write gate refuses every volume and lease write with
// ErrFenced from then on, and HostConfig.OnFence tells the owner to pause
// its VMs. Other hosts may take over only at t+HostDead or later, and
// HostDead >= RenewFail + IO, so every write issued before the fence point
// has landed by then. What this layer cannot stop is a write that was
// issued before the fence point and stays queued in the device for longer
// than IO; in production the hardware watchdog (as sanlock's wdmd) resets
// such a host.
//
// # Hot paths
//
// Volume.ReadAt/WriteAt check the gate (two atomic loads and a clock read)
// and map the offset through at most MaxExtents extents; no lease I/O.
package cluster
