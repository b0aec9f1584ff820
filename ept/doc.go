// Package ept builds and edits the second-level address translation tables
// that map guest-physical addresses to host-physical addresses: Intel EPT
// (VMX) and AMD nested page tables (SVM NPT). Both formats share one 4-level
// table walker; only the entry encodings differ (see bits.go).
//
// Tables live in memory handed out by an Allocator. In the hypervisor kernel
// that is identity-mapped host-physical memory outside the Go heap, so the
// processor can walk it; in tests it is ordinary Go memory (package epttest).
// Nothing here touches hardware: every operation that makes cached
// translations stale reports it (a flush flag) and the caller issues
// INVEPT or an ASID/TLB flush.
//
// Concurrency and the hot path: a Tables is safe for use by several
// goroutines (one mutex). Entries are read and written with sync/atomic
// because the processor sets accessed and dirty bits in them concurrently
// while guests run; clearing a bit is an atomic AND so a dirty bit set by
// hardware between a load and a store is never lost. The calls made on
// exits, Translate and HandleWriteFault, do not allocate (a test checks).
// CollectDirty allocates a few small closures per call, not per page.
// Map, Protect, Unmap and StartDirtyLog take table memory from the
// Allocator, never from the Go heap in the kernel.
//
// Manual references. AMD: AMD64 Architecture Programmer's Manual Vol. 2,
// 15.25 "Nested Paging" and 5.4 "Page-Translation-Table Entry Fields".
// Intel: SDM Vol. 3C, chapter "VMX Support for Address Translation", 29.3
// "The Extended Page Table Mechanism (EPT)" (older editions number the
// chapter 28); section numbers below follow that layout and the titles are
// given so they can be found in any edition.
package ept
