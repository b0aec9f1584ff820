# hello: the smallest useful guest. Prints a greeting, the multiboot command line and boot
# loader name it was given, and exits with status 42 through isa-debug-exit. If EAX does not
# hold the multiboot boot magic it prints a FAIL line and exits with 1 instead.

	.include "common.inc"
	MULTIBOOT_HEADER (MB_PAGE_ALIGN | MB_MEMORY_INFO)

	.code32
	.text
	.globl _start
_start:
	mov $stack_top, %esp
	mov %eax, %edi                  # the boot magic
	PUTS32 "hello: start\n"
	PUTS32 "hello from a godwit guest\n"
	cmp $MB_BOOT_MAGIC, %edi
	jne bad_magic

	# The command line, if the loader passed one (multiboot info flags bit 2).
	PUTS32 "hello: cmdline: "
	testl $MBI_FLAG_CMDLINE, MBI_FLAGS(%ebx)
	jz 1f
	mov MBI_CMDLINE(%ebx), %esi
	call puts
1:	PUTS32 "\n"

	# The boot loader's name (flags bit 9) and the upper memory size (flags bit 0).
	testl $MBI_FLAG_LOADER_NAME, MBI_FLAGS(%ebx)
	jz 1f
	PUTS32 "hello: loader: "
	mov MBI_BOOT_LOADER_NAME(%ebx), %esi
	call puts
	PUTS32 "\n"
1:	testl $MBI_FLAG_MEM, MBI_FLAGS(%ebx)
	jz 1f
	PUTS32 "hello: mem_upper KiB: "
	mov MBI_MEM_UPPER(%ebx), %eax
	call puthex32
	PUTS32 "\n"
1:
	mov $42, %eax
	out %eax, $DEBUG_EXIT_PORT
	jmp halt

bad_magic:
	PUTS32 "hello: FAIL bad multiboot magic in EAX: "
	mov %edi, %eax
	call puthex32
	PUTS32 "\n"
	mov $1, %eax
	jmp exit
