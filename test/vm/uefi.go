package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Firmware files of Debian's ovmf package: the code (read-only pflash)
// and the template of the variable store (a writable copy per disk).
const (
	DefaultOVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	DefaultOVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// UEFIOptions describe one boot of a disk image through OVMF, the way a
// device boots: firmware, then the loader on the disk's ESP.
type UEFIOptions struct {
	// Disk is a raw disk image, attached read-write as a virtio disk.
	Disk string
	// Vars is the machine's writable UEFI variable store, kept between
	// boots of the same disk; copied from DefaultOVMFVars when missing.
	Vars string
	// Code is the firmware; DefaultOVMFCode when empty.
	Code string
	// MemoryMiB and CPUs size the VM: 1024 and 1 when zero.
	MemoryMiB, CPUs int
	// Console receives everything the serial console (firmware, loader
	// and kernel) prints.
	Console io.Writer
	// Command makes the QEMU command; exec.CommandContext when nil.
	Command func(ctx context.Context, name string, args ...string) *exec.Cmd
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// BootUEFI boots opts.Disk once with QEMU and OVMF (TCG, -no-reboot, no
// network) and returns when QEMU exits: when the guest powers off or
// reboots, or when ctx ends, which kills it (give ctx a deadline).
func BootUEFI(ctx context.Context, opts UEFIOptions) error {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Code == "" {
		opts.Code = DefaultOVMFCode
	}
	if opts.MemoryMiB == 0 {
		opts.MemoryMiB = 1024
	}
	if opts.CPUs == 0 {
		opts.CPUs = 1
	}
	if opts.Command == nil {
		opts.Command = exec.CommandContext
	}
	if opts.Disk == "" || opts.Vars == "" {
		return errors.New("vm: boot UEFI: Disk and Vars are required")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return fmt.Errorf("%w: qemu-system-x86_64 (Debian package qemu-system-x86)", ErrToolMissing)
	}
	if _, err := os.Stat(opts.Code); err != nil {
		return fmt.Errorf("%w: OVMF firmware (Debian package ovmf): %w", ErrToolMissing, err)
	}
	if _, err := os.Stat(opts.Vars); errors.Is(err, os.ErrNotExist) {
		if err := copyFile(DefaultOVMFVars, opts.Vars, 0o644); err != nil {
			return fmt.Errorf("%w: OVMF variable store (Debian package ovmf): %w", ErrToolMissing, err)
		}
	}
	cmd := opts.Command(ctx, "qemu-system-x86_64", uefiArgs(opts)...)
	out := opts.Console
	if out == nil {
		out = io.Discard
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	log.Info("vm: UEFI boot ended", "disk", opts.Disk, "took", time.Since(start).Round(time.Millisecond))
	if ctx.Err() != nil {
		return fmt.Errorf("vm: boot UEFI %s: %w (after %s)", opts.Disk, ctx.Err(), time.Since(start).Round(time.Second))
	}
	if err != nil {
		return fmt.Errorf("vm: boot UEFI %s: qemu: %w", opts.Disk, err)
	}
	return nil
}

func uefiArgs(opts UEFIOptions) []string {
	return []string{
		"-accel", "tcg", "-cpu", "max",
		"-smp", fmt.Sprint(opts.CPUs), "-m", fmt.Sprint(opts.MemoryMiB),
		"-nographic", "-no-reboot", "-no-user-config", "-nic", "none",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + opts.Code,
		"-drive", "if=pflash,format=raw,unit=1,file=" + opts.Vars,
		"-drive", "if=virtio,format=raw,file=" + opts.Disk,
	}
}

// ProbeMarker starts the console lines of a probe initramfs.
const ProbeMarker = "@@ATRIUM-PROBE"

// WriteProbeInitramfs writes to out an initramfs holding only k's busybox
// and an /init that prints, on the console,
//
//	@@ATRIUM-PROBE cmdline <the kernel command line>
//
// then powers off. It stands in for a real system when what is tested is
// which kernel command line the loader chose.
func WriteProbeInitramfs(k *Kernel, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("vm: probe initramfs: %w", err)
	}
	defer f.Close()
	c := newCPIOWriter(f)
	for _, d := range []string{"dev", "proc", "sys", "bin"} {
		c.Dir(d, 0o755)
	}
	c.CharDev("dev/console", 0o600, 5, 1)
	if err := addFile(c, k.Busybox, "bin/busybox", 0o755); err != nil {
		return err
	}
	addBytes(c, "init", 0o755, probeInit)
	if err := c.Close(); err != nil {
		return fmt.Errorf("vm: probe initramfs: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("vm: probe initramfs: %w", err)
	}
	return nil
}

const probeInit = `#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
echo "` + ProbeMarker + ` cmdline $(/bin/busybox cat /proc/cmdline)"
/bin/busybox poweroff -f
`

// ProbeCmdline returns the kernel command line a probe initramfs printed
// on console, or false when it printed none.
func ProbeCmdline(console string) (string, bool) {
	for line := range strings.Lines(console) {
		line = strings.TrimRight(line, "\r\n")
		if i := strings.Index(line, ProbeMarker+" cmdline "); i >= 0 {
			return line[i+len(ProbeMarker+" cmdline "):], true
		}
	}
	return "", false
}
