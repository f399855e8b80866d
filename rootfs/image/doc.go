// Package image builds the appliance's read-only root file system: a
// Debian 12 base from mmdebstrap (cached under .cache/image, keyed by the
// package list, the suite and the apt sources), the Atrium layer laid over
// it (roomd, roomctl, roomkiosk, their units, users, PipeWire and polkit
// configuration, roomd.toml, os-release with the image's version, the build
// time and the update trust root), a fresh initramfs that mounts a squashfs
// root, and a reproducible squashfs of the result followed, in the same
// file, by its dm-verity hash tree ([AddTree]).
//
// The output directory is the contract with the disk builder
// (rootfs/disk):
//
//	OUT/rootfs.squashfs  the read-only root and its hash tree, for slot root-a or root-b
//	OUT/vmlinuz          the kernel, for the ESP
//	OUT/initrd.img       its initramfs, for the ESP
//	OUT/image.json       {"version","buildTime","rootfsSha256","rootfsSize",
//	                     "verityRootHash","verityHashOffset","kernelRelease"}
//
// The root is checked block by block as the room reads it. The boot
// entry carries the root hash (ota/verity.RootArgs); the initramfs script
// /etc/initramfs-tools/scripts/local-top/atrium-verity (VerityScript)
// opens the slot's partition with veritysetup as /dev/mapper/atrium-root,
// which the entry names as the root. A slot whose first block does not
// match stops the boot there with a message, and panic= on the command
// line reboots, so boot counting falls back to the other slot; a block
// that fails later reads as an I/O error. The tree's salt and UUID derive
// from the squashfs's SHA-256, so the file stays reproducible. Nothing
// here is signed for the firmware (no Secure Boot), so this guards the
// root against a damaged disk or a stray write, not against someone who
// can rewrite the ESP.
//
// Same inputs give the same rootfs.squashfs, byte for byte: every time
// stamp is the build time, files are written in sorted order, nothing of
// the build machine (host name, machine ID, logs) is left in the tree,
// and the hash tree's salt is derived.
//
// The root is read-only; what the device writes lives on the disk's data
// partition (GPT name "data", ext4). The initramfs (the overlay's
// /etc/initramfs-tools/scripts/local-bottom/atrium-data, DataScript) checks
// it with e2fsck, formats it when it holds no file system at all, and
// mounts it at /data (DataMount), where
//
//	/data/state    is bound to /var/lib/atrium, roomd's state directory
//	/data/os/etc   is the upper directory of an overlay on /etc, so that
//	               hostname1, timedate1, NetworkManager and systemd's
//	               machine-id-commit write through it and their settings
//	               outlive a reboot and an update of the image
//
// A factory reset empties roomd's state directory, which removes the
// marker state/.os-settings, and roomd exits with status 75, on which the
// image's roomd.service drop-in reboots; without the marker that boot
// drops os/, so /etc is the image's again and systemd makes a new machine
// ID. A missing partition, or one that e2fsck cannot repair, is replaced
// by a tmpfs for that boot: the room starts, forgets at the next boot, and
// the kernel log (console, journal) says why; /run/atrium-data.status
// holds the outcome.
//
// Building needs root (mmdebstrap, tar with owners, chroot). Every outside
// program runs through a Runner, so that tests can record the commands.
package image
