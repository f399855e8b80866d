// Package appliance is the test tier of the bootable appliance image
// (issue 8): it builds the image with rootfs/image and the factory disk
// with rootfs/disk, boots it in QEMU through OVMF and systemd-boot
// (test/vm.StartMachine), and drives a real fleetd on the host, which the
// guest reaches over QEMU's user network. It needs root for the image
// build; the Debian base is cached in .cache/image.
package appliance
