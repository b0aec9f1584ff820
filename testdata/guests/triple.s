# triple: triple-faults on purpose. It loads an IDT with limit 0 and executes INT3: the #BP
# cannot be delivered (the gate lies beyond the limit: #GP), neither can the #GP (#DF) nor
# the #DF, so the processor shuts down. Intel SDM Vol. 3A, 6.15 "Exception and Interrupt
# Reference", Interrupt 8 (#DF); AMD APM Vol. 2, 8.2.9 "Double-Fault Exception".
# A hypervisor sees a shutdown exit (SVM SHUTDOWN, VMX basic exit reason 2).

	.include "common.inc"
	MULTIBOOT_HEADER (MB_PAGE_ALIGN | MB_MEMORY_INFO)

	.code32
	.text
	.globl _start
_start:
	mov $stack_top, %esp
	PUTS32 "triple: start\n"
	lidt empty_idt
	PUTS32 "triple: int3 with an empty IDT\n"
	int3
	# Not reached on a correct processor or hypervisor.
	PUTS32 "triple: FAIL survived int3\n"
	mov $1, %eax
	jmp exit

	.data
	.balign 8
empty_idt:
	.word 0                         # limit 0: not even one gate
	.long 0                         # base
