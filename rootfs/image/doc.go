// Package image builds the appliance's read-only root file system: a
// Debian 12 base from mmdebstrap (cached under .cache/image, keyed by the
// package list, the suite and the apt sources), the Atrium layer laid over
// it (roomd, roomctl, roomkiosk, their units, users, PipeWire and polkit
// configuration, roomd.toml, os-release with the image's version, the build
// time and the update trust root), a fresh initramfs that mounts a squashfs
// root by PARTLABEL, and a reproducible squashfs of the result.
//
// The output directory is the contract with the disk builder
// (rootfs/disk):
//
//	OUT/rootfs.squashfs  the read-only root, for slot root-a or root-b
//	OUT/vmlinuz          the kernel, for the ESP
//	OUT/initrd.img       its initramfs, for the ESP
//	OUT/image.json       {"version","buildTime","rootfsSha256","rootfsSize","kernelRelease"}
//
// Same inputs give the same rootfs.squashfs, byte for byte: every time
// stamp is the build time, files are written in sorted order, and nothing
// of the build machine (host name, machine ID, logs) is left in the tree.
//
// Building needs root (mmdebstrap, tar with owners, chroot). Every outside
// program runs through a Runner, so that tests can record the commands.
package image
