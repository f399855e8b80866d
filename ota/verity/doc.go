// Package verity reads the dm-verity hash tree that an Atrium root image
// carries after its squashfs, and says how a boot entry asks the
// initramfs to check the root against it.
//
// The image build (rootfs/image) runs `veritysetup format` on the squashfs
// with the tree in the same file, right after the file system: a
// superblock at the hash offset, then the tree, top level first. TUF's
// hash covers the whole file, so once a slot has been written and read
// back against it, the root hash derived here from the slot's own bytes is
// as trustworthy as the image; no separate metadata has to travel with a
// release. The root hash then goes on the slot's kernel command line
// ([RootArgs]), where the initramfs (rootfs/overlay, scripts/local-top/
// atrium-verity) gives it to `veritysetup open`; from then on the kernel
// checks every block the room reads against it.
//
// Only what our images use is accepted: format version 1, SHA-256, 4 KiB
// data and hash blocks. Anything else is an error that names the field.
package verity
