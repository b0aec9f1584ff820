// Package kerneltest holds the integration tests of the Godwit kernel image: they boot
// bin/godwit (and bin/godwit.iso) in the emulator rigs of internal/rig — QEMU TCG with SVM and
// Bochs with VMX — and drive the admin shell on COM1. Run `make` first (make test does).
package kerneltest
