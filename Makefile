# Godwit build. `make` builds the kernel image and the tools; `make run` boots it in QEMU;
# `make test` runs every test, installing the emulators it needs.

GO        ?= go
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
PKG       := github.com/godwit-hv/godwit
# The kernel links at 0x101000 so the ELF header page lands at 1 MiB and the file is flat
# (boot/image.go); the entry is the mode-detecting one in arch/ring0/entry_amd64.s.
KLDFLAGS  := -E $(PKG)/arch/ring0.entry -T 0x101000 -X main.version=$(VERSION)
TOOLS     := $(filter-out bin/godwit,$(patsubst cmd/%/main.go,bin/%,$(wildcard cmd/*/main.go)))
GOFILES   := $(shell find . -name '*.go' -o -name '*.s' | grep -v '^./bin/')

# Debian packages the emulator rigs need (RIGS.md), and what the Linux-guest tests read:
# Debian's stock kernel (/boot/vmlinuz-*) and iasl to check the guest ACPI tables.
APT_PKGS  := qemu-system-x86 bochs bochsbios bochs-x seabios vgabios grub-pc-bin grub-common xorriso mtools \
             linux-image-amd64 acpica-tools busybox-static
QEMU      := qemu-system-x86_64
QEMU_ARGS := -accel tcg -cpu max -m 1024 -display none -no-reboot \
             -device isa-debug-exit,iobase=0xf4,iosize=0x04

.PHONY: all iso run run-iso test unit integration bench vet deps clean guests

all: bin/godwit $(TOOLS) guests bin/initramfs.cpio.gz

# Test guests of the project's own (GNU as), multiboot kernels for the VM tests.
guests:
	$(MAKE) -C testdata/guests OUT=$(abspath bin/guests)

# The Linux guests' initramfs (guest/initramfs): Debian's busybox-static and the virtio and ext4
# modules of the installed Debian kernel, written by the project's own cpio tool (no root needed).
bin/initramfs.cpio.gz: bin/godwit-initramfs $(wildcard guest/initramfs/init guest/initramfs/inittab guest/initramfs/profile)
	@dpkg -s busybox-static linux-image-amd64 >/dev/null 2>&1 || $(MAKE) deps
	bin/godwit-initramfs -o $@ -src guest/initramfs

bin/godwit.elf: $(GOFILES) go.mod
	@mkdir -p bin
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(KLDFLAGS)' -o $@ ./cmd/godwit

bin/godwit: bin/godwit.elf bin/godwit-mkimage
	bin/godwit-mkimage bin/godwit.elf $@

bin/%: $(GOFILES) go.mod
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -o $@ ./cmd/$*

iso: bin/godwit.iso

bin/godwit.iso: bin/godwit boot/grub.cfg
	@command -v grub-mkrescue >/dev/null || $(MAKE) deps
	rm -rf build/iso && mkdir -p build/iso/boot/grub
	cp bin/godwit build/iso/boot/godwit
	cp boot/grub.cfg build/iso/boot/grub/grub.cfg
	grub-mkrescue -o $@ build/iso 2>build/grub-mkrescue.log || (cat build/grub-mkrescue.log; exit 1)

# deps installs the emulators and ISO tools from Debian's packages when one is missing.
deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# `make run` boots Godwit with a demo VM: Debian's stock kernel and the project's initramfs ride
# along as modules, with the test guests, and a boot script (godwit.rc, a module too) creates
# and starts the VM "demo" with two vCPUs and a virtio disk on a 64 MiB host disk image
# (bin/demo-disk.img, kept between runs). `vm console demo` reaches its shell; Ctrl-] detaches.
DEBIAN_KERNEL = $(lastword $(sort $(wildcard /boot/vmlinuz-*-amd64)))
RUN_MODULES ?= $(subst $(space),$(comma),$(DEBIAN_KERNEL) bin/initramfs.cpio.gz bin/godwit.rc \
               $(patsubst %,bin/guests/%.elf,hello longmode realmode spin))
space := $(subst ,, )
comma := ,

bin/godwit.rc: Makefile
	@mkdir -p bin
	@test -n "$(DEBIAN_KERNEL)" || (echo "Debian's kernel is missing: run make deps"; exit 1)
	printf '%s\n' '# Boot script of `make run` (Makefile): the demo VM.' \
		'vm create demo kernel=$(notdir $(DEBIAN_KERNEL)) initrd=initramfs.cpio.gz mem=256M cpus=2 disk=vda cmdline="console=ttyS0"' \
		'vm start demo' > $@

bin/demo-disk.img:
	@mkdir -p bin
	truncate -s 64M $@

run: deps all bin/godwit.rc bin/demo-disk.img
	$(QEMU) $(QEMU_ARGS) -serial mon:stdio -kernel bin/godwit -initrd '$(RUN_MODULES)' \
		-drive file=bin/demo-disk.img,if=none,id=demo,format=raw -device virtio-blk-pci,drive=demo \
		$(if $(CMDLINE),-append '$(CMDLINE)')

run-iso: deps bin/godwit.iso
	$(QEMU) $(QEMU_ARGS) -serial mon:stdio -cdrom bin/godwit.iso

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)

unit:
	$(GO) test ./...

test: deps all bin/godwit.iso vet
	$(GO) test -count=1 -timeout 40m ./...

bench: deps all bin/godwit.iso
	$(GO) test -run '^$$' -bench . ./bench/...

clean:
	rm -rf bin build
