// Package roomdguest holds only guest tests (roomd_vm_test.go, run inside
// the VM by test/vm): the real roomd and roomctl, built as for a device, run
// against the kernel's vivid cameras and snd-aloop/snd-dummy cards, so what
// an admin sees with `roomctl devices` is tested end to end on real ioctls.
package roomdguest
