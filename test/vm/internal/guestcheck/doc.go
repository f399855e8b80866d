// Package guestcheck holds only guest tests (guestcheck_vm_test.go, built
// with the vmguest tag and run inside the VM by test/vm): they assert the
// guest environment that test/vm's package documentation promises — the
// environment variable, the mounts, the vivid, vicodec and vim2m device
// nodes and the sound cards, and that modules unload and load again with
// their boot options — so that a broken harness fails here, by name, rather
// than in every HAL package's guest tests.
package guestcheck
