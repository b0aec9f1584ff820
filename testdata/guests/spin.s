# spin: a guest that never exits. It prints "spinning" and loops forever with interrupts
# off, so only the host can stop it (a timeout, a pause, a kill).
#
# Its multiboot header uses the a.out kludge (flags bit 16), so loaders place it from the
# header's addresses rather than from the ELF program headers: the one real guest that
# exercises that path.

	.include "common.inc"
	MULTIBOOT_HEADER (MB_PAGE_ALIGN | MB_MEMORY_INFO | MB_AOUT_KLUDGE)

	.code32
	.text
	.globl _start
_start:
	mov $stack_top, %esp
	PUTS32 "spin: start\n"
	PUTS32 "spinning\n"
	cli
1:	jmp 1b
