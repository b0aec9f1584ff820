package rig

// QEMU's isa-debug-exit device, as the rig configures it (-device
// isa-debug-exit,iobase=0xf4,iosize=0x04). A guest that writes value v to the port makes QEMU
// exit at once with status (v<<1)|1. QEMU source, hw/misc/debugexit.c, debug_exit_write.
const (
	ISADebugExitPort = 0xf4
	isaDebugExitSize = 0x04
)

// BochsShutdownPort is Bochs's shutdown port: writing the bytes of "Shutdown" to it one at a
// time stops the emulator (exit status 1). Bochs source, iodev/unmapped.cc,
// bx_unmapped_c::write, port 0x8900.
const BochsShutdownPort = 0x8900

// DebugExitCode decodes a QEMU exit status. An odd status s comes from isa-debug-exit and
// carries the value the guest wrote, s>>1; ok is then true. An even status did not come from
// the device: 0 is a triple fault (the rig runs QEMU with -no-reboot), a guest power-off or
// QEMU quitting; other even values are QEMU's own errors. Treat !ok as a failure.
//
// Status 1 is ambiguous: it is the guest writing 0, but also QEMU failing to start (it then
// prints why, see Machine.ExitMessage). Guests should signal success with a nonzero value.
func DebugExitCode(status int) (code int, ok bool) {
	if status < 0 || status&1 == 0 {
		return 0, false
	}
	return status >> 1, true
}
