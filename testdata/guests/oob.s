# oob: writes (and reads back) guest-physical addresses far outside a small guest's RAM where
# no device lives: 0xC0000000 (below 4 GiB, reachable with paging off) and 0x100000000 (above
# 4 GiB, reached through PAE paging: linear 0x40000000 maps it). The host must contain the
# accesses (on a PC they read as all ones and writes are dropped; a hypervisor may instead
# stop the VM). If the guest is still running afterwards it prints what it read, then
# "oob: done", and exits with status 0.

	.include "common.inc"
	MULTIBOOT_HEADER (MB_PAGE_ALIGN | MB_MEMORY_INFO)

.set OOB_LOW,      0xC0000000       # guest-physical, below 4 GiB
.set OOB_HIGH_LIN, 0x40000000       # linear address mapped to guest-physical 0x1_0000_0000
.set OOB_VALUE,    0xDEADBEEF
# Intel SDM Vol. 3A, 4.4 "PAE Paging": PDPTEs have only P (and PWT/PCD); a PDE with PS maps
# 2 MiB; bits 51:32 of the page address sit in the entry's high dword.
.set CR0_PG,       1 << 31
.set CR4_PAE,      1 << 5
.set PTE_P,        1 << 0
.set PTE_W,        1 << 1
.set PTE_PWT,      1 << 3
.set PTE_PCD,      1 << 4
.set PTE_PS,       1 << 7

	.code32
	.text
	.globl _start
_start:
	mov $stack_top, %esp
	PUTS32 "oob: start\n"

	PUTS32 "oob: write 0xc0000000\n"
	movl $OOB_VALUE, OOB_LOW
	mov OOB_LOW, %eax
	PUTS32 "oob: read 0xc0000000 = "
	call puthex32
	PUTS32 "\n"

	# PAE paging: PDPT[0] -> pd_low (identity 0-1 GiB, for this code and data),
	# PDPT[1] -> pd_high whose first entry maps linear 1 GiB to physical 4 GiB.
	mov $pd_low, %edi
	xor %ecx, %ecx
1:	mov %ecx, %eax
	shl $21, %eax
	or $(PTE_P + PTE_W + PTE_PS), %eax
	mov %eax, (%edi, %ecx, 8)
	movl $0, 4(%edi, %ecx, 8)
	inc %ecx
	cmp $512, %ecx
	jb 1b
	movl $(PTE_P + PTE_W + PTE_PS + PTE_PCD + PTE_PWT), pd_high
	movl $1, pd_high + 4            # page address bit 32: physical 0x1_0000_0000
	movl $(pd_low + PTE_P), pdpt
	movl $(pd_high + PTE_P), pdpt + 8
	mov %cr4, %eax
	or $CR4_PAE, %eax
	mov %eax, %cr4
	mov $pdpt, %eax
	mov %eax, %cr3
	mov %cr0, %eax
	or $CR0_PG, %eax
	mov %eax, %cr0

	PUTS32 "oob: write 0x100000000\n"
	movl $OOB_VALUE, OOB_HIGH_LIN
	mov OOB_HIGH_LIN, %eax
	PUTS32 "oob: read 0x100000000 = "
	call puthex32
	PUTS32 "\n"

	PUTS32 "oob: done\n"
	xor %eax, %eax
	jmp exit

	.bss
	.balign 4096
pd_low:
	.skip 4096
pd_high:
	.skip 4096
pdpt:                                   # 4 entries, 32-byte aligned
	.skip 32
