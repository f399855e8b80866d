// Package ota will install updates: TUF-verified root-filesystem images
// streamed into the inactive A/B slot, boot counting through the boot
// loader, a health gate that blesses or rolls back, and the persisted state
// machine that survives power loss at any step.
//
// It is reserved by the walking skeleton so that the layout is the final
// one; issue 7 fills it. It runs inside roomd and takes its slot in
// daemon.System.
package ota
