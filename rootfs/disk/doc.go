// Package disk assembles Atrium's A/B disk image in a plain file: a GPT
// with four partitions, no loop devices and no root needed.
//
//	#  PARTLABEL  type                          content
//	1  esp        EF00 EFI System               FAT32: systemd-boot, loader.conf,
//	                                            one BLS entry and one kernel per slot
//	2  root-a     8304 Linux root (x86-64)      slot a's root file system (squashfs)
//	3  root-b     8304 Linux root (x86-64)      slot b's root file system
//	4  data       8300 Linux filesystem         ext4, label "data"
//
// Partitions start on 1 MiB boundaries. The ESP holds
//
//	EFI/BOOT/BOOTX64.EFI              systemd-boot (the removable-media path
//	EFI/systemd/systemd-bootx64.efi   firmware falls back to), twice
//	loader/loader.conf                "default atrium-a.conf", "timeout 0"
//	loader/entries/atrium-a.conf      linux /atrium/a/vmlinuz, initrd /atrium/a/initrd.img,
//	loader/entries/atrium-b.conf      options root=/dev/mapper/atrium-root atrium.verity=ROOTHASH,OFFSET
//	                                          ... atrium.slot=a ... panic=5
//	atrium/a/vmlinuz, atrium/a/initrd.img, atrium/b/vmlinuz, atrium/b/initrd.img
//
// (root=PARTLABEL=root-a instead of the first two for a slot whose image
// has no hash tree, Slot.Verity nil), which is the layout
// ota/bootctl.SystemdBoot expects: the entries carry no
// "version" or "sort-key" field, so systemd-boot orders them by file name
// alone, as bootctl's boot counting relies on. A factory disk holds one
// image in both slots; an update later replaces a slot's kernel and
// initramfs on the ESP with the ones its new image carries (ota/bootfiles),
// at the paths the slot's entry names.
//
// The same inputs give the same bytes: the disk and partition GUIDs and the
// FAT volume serial are derived from Options.Version, FAT file times and
// the ext4 times are Options.ModTime, the ext4 UUID and hash seed are
// derived from the version too (mkfs.ext4 reads E2FSPROGS_FAKE_TIME), and
// mkfs.vfat runs with --invariant (given before -i, which it would
// otherwise override with a constant serial). TestBuildDeterministic checks it.
//
// Every outside program (sgdisk, mkfs.vfat, mcopy, mkfs.ext4) runs
// through a [RunFunc]; [Exec] is the real one. Host packages: gdisk,
// dosfstools, mtools, e2fsprogs; systemd-boot-efi for the loader binary.
package disk
