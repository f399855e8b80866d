// Package vm runs Go test binaries as root inside a QEMU guest that boots
// Debian's own kernel with the kernel's test drivers loaded (vivid cameras,
// the vicodec and vim2m mem2mem devices, the snd-aloop and snd-dummy sound
// cards), so HAL code is tested with real ioctls on a machine that has no
// camera. This comment is the contract guest tests rely on; the package
// test/vm/internal/guestcheck asserts it in the guest.
//
// # Writing guest tests
//
// A guest test lives in a file named *_vm_test.go that starts with
//
//	//go:build vmguest
//
// It is compiled with CGO_ENABLED=0 go test -c -tags vmguest, so it and
// everything it imports must be pure Go (ioctls through golang.org/x/sys/unix;
// never hal/swcodec). It runs as root in the guest and must not skip: a
// missing device is a failure. The host test TestGuest (vm_test.go, part of
// make test) finds every package of the module with such files (go list
// -tags vmguest), builds one binary per package, boots ONE VM that runs them
// one after the other in import path order, and reports one subtest per
// package with that package's guest output. A package fails when its binary
// exits non-zero or never reports an exit (it hung, or the guest died);
// TestGuest also fails when the VM runs out of time or a module fails to
// load at boot.
//
// Environment variables of TestGuest:
//
//	ATRIUM_VM_PKGS          comma-separated go list patterns to run instead of
//	                        ./... ("./hal/v4l2,./hal/m2m"; "hal/v4l2" works too)
//	ATRIUM_VM_ARGS          extra arguments for every guest binary, split on spaces
//	                        ("-test.run=Encode -test.count=1")
//	ATRIUM_VM_TEST_TIMEOUT  each binary's -test.timeout (default 3m)
//	ATRIUM_VM_TIMEOUT       the whole VM's time limit (default 10m)
//	ATRIUM_VM_CACHE         the cache directory (default .cache/vm at the module root)
//	ATRIUM_ARTIFACTS        when set, the serial console goes to vm-console.log there
//
// While developing a package, for instance:
//
//	ATRIUM_VM_PKGS=./hal/v4l2 go test -count=1 -v -run TestGuest ./test/vm
//	ATRIUM_VM_PKGS=./hal/m2m ATRIUM_VM_ARGS=-test.run=Encode go test -count=1 -v -run TestGuest ./test/vm
//
// Measured on the 2-core CI machine with a warm cache: Prepare 0.7 s (one
// apt-cache call), building five guest binaries 4 to 5 s (go's build cache),
// writing the 25 MB initramfs 0.1 s, booting to the first test about 5 s,
// then the tests, slowed down by emulation (a 720p vicodec encode and decode
// loop takes about 25 s); TestGuest with five packages took 53 s in all.
// TestRunHarness boots a second, short VM (about 10 s) that checks the
// harness itself with shell scripts in place of test binaries.
//
// The same steps are available to other code: Prepare (the kernel),
// FindPackages and BuildTests (the binaries), Run (one boot, a Result per
// binary).
//
// Guest benchmarks: make bench runs
//
//	go test -count 1 -run '^TestGuest$' ./test/vm -args -vm.bench . -vm.benchout bench/results/hal.txt
//
// which runs every guest binary with -test.run '^$' -test.bench . -test.benchmem
// and appends the output of each package that has benchmark results to that
// file, under a header naming the package and the emulated machine. Times in
// the guest are those of QEMU's software emulation (TCG), not of the host's
// CPU: compare guest numbers with guest numbers.
//
// # The guest
//
// Kernel: Debian 12's kernel, the version the package linux-image-amd64
// depends on (6.1.0-NN-amd64), booted with qemu-system-x86_64 -accel tcg -cpu
// max -smp 2 -m 2048 -nographic -no-reboot -nic none and "console=ttyS0
// panic=-1 loglevel=5 mitigations=off tsc=reliable" (warnings and errors of
// the kernel reach the console, boot chatter does not; the clocksource is
// the TSC, which QEMU derives from one host clock for both CPUs, rather than
// the HPET, every read of which traps into QEMU). Clocks run at host speed
// but the CPUs are emulated and share 2 host cores with everything else on
// the machine: timing assertions need slack, tens of milliseconds of
// scheduling jitter are normal. The initramfs (uncompressed cpio)
// holds busybox (every applet linked in /bin, /sbin, /usr/bin, /usr/sbin,
// including modprobe, rmmod, timeout, sh), the modules listed below with
// modules.dep, and the test binaries. There is no udev, no systemd, no
// network, no disk.
//
// Mounts: proc on /proc, sysfs on /sys, devtmpfs on /dev (device nodes appear
// and vanish with the drivers, named as the kernel names them, owned by root),
// devpts on /dev/pts, tmpfs on /dev/shm, /tmp and /run. The root file system
// is the initramfs itself (writable, in RAM).
//
// Each test binary runs as root, with stdin /dev/null and stdout and stderr
// on the console, with the environment ATRIUM_VM=1,
// PATH=/sbin:/bin:/usr/sbin:/usr/bin, HOME=/root, TMPDIR=/tmp, in the
// working directory /atrium/<package path relative to the module root>
// (e.g. /atrium/hal/v4l2), which holds a copy of the package's testdata
// directory when it has one, with the arguments -test.v -test.timeout=3m0s
// (then ATRIUM_VM_ARGS), and is killed with SIGKILL 30 s after that timeout
// if it is still there (stuck in the kernel).
//
// Modules loaded at boot, in this order, with modprobe; their options are in
// /etc/modprobe.d/atrium.conf, so a plain "modprobe vivid" later gives the
// same devices again:
//
//	vivid n_devs=2 node_types=0x60101,0xa0001 num_inputs=1,1
//	vicodec
//	vim2m
//	snd-aloop index=0
//	snd-dummy index=1
//
// The initramfs holds these and their dependencies: cec mc rc-core snd
// snd-aloop snd-dummy snd-pcm snd-timer soundcore v4l2-dv-timings
// v4l2-mem2mem v4l2-tpg vicodec videobuf2-common videobuf2-dma-contig
// videobuf2-memops videobuf2-v4l2 videobuf2-vmalloc videodev vim2m vivid.
// Debian does not build v4l2-mem2mem, vicodec and vim2m: Prepare builds them
// from Debian's linux-source-6.1 against the matching linux-headers (vermagic
// checked); they are unsigned and out of tree, so the kernel is tainted
// (harmless; the console shows "loading out-of-tree module taints kernel").
//
// What vivid's options give:
//
//   - vivid instance 0 (node_types 0x60101): a video capture node
//     (sysfs name "vivid-000-vid-cap"), a video output node
//     ("vivid-000-vid-out"), a metadata capture node ("vivid-000-meta-cap")
//     and a metadata output node ("vivid-000-meta-out").
//   - vivid instance 1 (node_types 0xa0001): a video capture node
//     ("vivid-001-vid-cap"), a metadata capture node ("vivid-001-meta-cap")
//     and a touch capture node (/dev/v4l-touch0, "vivid-001-touch-cap").
//   - So exactly two cameras: VIDIOC_QUERYCAP driver "vivid", card "vivid",
//     bus_info "platform:vivid-000" and "platform:vivid-001"; both
//     single-planar (device caps 0x05200005: VIDEO_CAPTURE, VIDEO_OVERLAY,
//     EXT_PIX_FORMAT, READWRITE, STREAMING), with one input, the webcam
//     input: discrete frame sizes 320x180, 640x360 and 1280x720, each with
//     a list of discrete frame intervals (the larger the size, the lower the
//     highest rate: enumerate them rather than assume 30 fps), many
//     uncompressed pixel formats (YUYV, NV12, RGB...; no MJPEG or H.264). Controls: brightness, contrast,
//     saturation, hue, hflip, vflip, autogain, gain, alpha component, audio
//     volume and mute, and vivid's own test controls; there are no
//     camera-class controls (exposure, focus, zoom, pan, tilt), so test
//     those against a fake. vivid's error-injection controls are present,
//     among them the button "Disconnect", which makes the device behave as
//     if unplugged while it stays open.
//   - Every other node must be skipped by camera enumeration: the output
//     (caps 0x05220002), metadata capture (0x05a00000) and metadata output
//     (0x0d220000) nodes, the mem2mem nodes below (0x04208000), and the
//     touch node, which reports V4L2_CAP_VIDEO_CAPTURE together with
//     V4L2_CAP_TOUCH (0x15200001): only the TOUCH bit tells it from a
//     camera.
//   - Observed numbering (not a contract): video0-3 are vivid-000's
//     vid-cap, vid-out, meta-cap, meta-out; video4-5 vivid-001's vid-cap and
//     meta-cap; video6-8 vicodec's stateful-encoder, stateful-decoder,
//     stateless-decoder; video9 vim2m.
//
// The mem2mem devices: vicodec (driver and card "vicodec", bus_info
// "platform:vicodec") registers three single-planar M2M nodes whose sysfs
// names are "stateful-encoder", "stateful-decoder" and "stateless-decoder";
// vim2m (driver, card and sysfs name "vim2m", bus_info "platform:vim2m") is
// a scaler/format converter. Device numbers (/dev/videoN, /dev/mediaN)
// follow load order but are not part of the contract: find a node by its
// sysfs name (/sys/class/video4linux/<node>/name) or by VIDIOC_QUERYCAP.
//
// Sound: card 0 is snd-aloop (id "Loopback", 2 PCM devices with 8 substreams
// each: what is played to hw:0,0,N is captured on hw:0,1,N and the reverse);
// card 1 is snd-dummy (id "Dummy"). Nodes are in /dev/snd (controlC0,
// pcmC0D0p, pcmC0D0c, pcmC0D1p, pcmC0D1c, controlC1, pcmC1D0p, ..., timer);
// /proc/asound is there.
//
// Hotplug: a test may "rmmod vivid" (or "rmmod snd-aloop") and "modprobe
// vivid" again; the kernel sends uevents on NETLINK_KOBJECT_UEVENT (nobody
// else listens: there is no udev) and devtmpfs removes and recreates the
// nodes. Unload with rmmod, not modprobe -r: busybox's modprobe -r also tries
// to unload the module's dependencies and exits 1 when one of them is in use
// (videodev is, by vicodec), although the module itself is gone. A test that
// unloads a module must load it back before it ends (plain modprobe gives it
// its boot options again), because the packages after it expect the devices
// above; guestcheck's TestModprobeReload shows the pattern.
//
// # Result markers
//
// The guest's /init (a busybox sh script) writes, on the serial console, a
// line
//
//	@@ATRIUM-VM <nonce> BEGIN <package>
//
// before each binary and
//
//	@@ATRIUM-VM <nonce> END <package> exit=<code>
//
// after it, where nonce is random per boot so that test output cannot forge
// a marker; also "READY <kernel release>" once the modules are loaded,
// "SETUP <error>" for a module that failed to load, and "DONE" before
// poweroff -f. The host attributes every console line between BEGIN and END
// to the package (kernel messages printed meanwhile included). Run kills
// QEMU when its context ends.
//
// # Host side and the cache
//
// Prepare finds the kernel version with apt-cache (the host's apt lists must
// be current: apt-get update), downloads the packages with apt-get download
// (linux-image, linux-headers for the flavour and -common, linux-kbuild,
// linux-source, busybox-static; nothing is installed on the host), unpacks
// them with dpkg-deb, extracts only the needed sources from linux-source's
// tarball, builds the modules, runs depmod, prunes the modules tree to
// drivers/media, sound, usb, input, hid and their dependencies, and deletes
// the downloads. What stays in .cache/vm (about 100 MB): <release>/root (the
// kernel image and modules tree), <release>/ready (the stamp: layout, kernel
// and busybox versions), busybox-<version>/, and the lock file. A cold
// Prepare took 30 to 45 s here (2 s of downloads from a fast mirror, 20 s
// of unpacking, most of it xz-decompressing linux-source, 7 s of module
// build, depmod and pruning); a warm one about 1 s, most of it apt-cache. When apt-cache fails, a complete
// cache is used as it is. Prepare holds a flock on .cache/vm/lock while it
// works, so concurrent test processes prepare once; a new kernel in Debian's
// lists replaces the cached one. Wipe the cache with
//
//	rm -rf .cache/vm
//
// Host needs: qemu-system-x86 (qemu-system-x86_64), kmod (depmod), make,
// gcc-12 (Debian's kernel is built with it), xz-utils, dpkg and apt. Nothing
// needs root.
//
// # Booting a disk through UEFI
//
// BootUEFI (uefi.go) boots a whole GPT disk image with OVMF's firmware
// (its own copy of the variable store per disk) and whatever boot loader
// the ESP holds. TestUEFIBootCounting builds an A/B disk with rootfs/disk,
// whose slots boot a probe initramfs that prints the kernel command line,
// and proves boot counting on the real systemd-boot: a trial entry armed by
// ota/bootctl boots the trial slot, systemd-boot counts each try in the
// entry's name, and when the tries are used up it falls back. Each boot takes
// about 12 s here (8 s of firmware and loader). It needs ovmf, gdisk,
// mtools, dosfstools and systemd-boot-efi besides the above.
package vm
