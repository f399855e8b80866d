// Package ota will install updates: TUF-verified root-filesystem images
// streamed into the inactive A/B slot, boot counting through the boot
// loader, a health gate that blesses or rolls back, and the persisted state
// machine that survives power loss at any step.
//
// Its parts so far are ota/release (the TUF repository and the device's
// client), ota/install (streaming an image into the inactive slot),
// ota/bootctl (trying, blessing and rejecting a slot through the boot
// loader) and ota/engine (the persisted state machine over them). The
// engine will run inside roomd and take its slot in daemon.System
// (issue 7).
package ota
