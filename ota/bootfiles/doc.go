// Package bootfiles puts the kernel and initramfs that a root image
// carries where its slot's boot entry loads them from.
//
// A release is one artifact, the root file system image, which TUF vouches
// for as a whole. The image build hard-links its kernel and initramfs at
// fixed names inside it ([KernelPath], [InitrdPath]). systemd-boot loads
// them from the ESP, which writing the slot does not touch, so once the
// slot is written and verified, and before the loader is armed, the
// updater copies them out of the slot to the files the slot's entry names
// ([Stager.Stage]), and points the entry's root arguments at the image:
// its dm-verity root hash, derived from the slot's own verified bytes
// (ota/verity). Until the loader is armed nothing boots those files:
// the slot being written is neither the default nor on trial, so a power
// cut anywhere in between leaves a device that boots its running slot and
// simply stages again.
package bootfiles
