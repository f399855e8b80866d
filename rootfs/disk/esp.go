package disk

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/atriumroom/atrium/ota/verity"
)

// Slot is what one slot boots: its root file system image, written raw to
// its partition, and its kernel and initrd, copied to the ESP.
type Slot struct {
	Root, Kernel, Initrd string
	// Verity is the root image's dm-verity tree (ota/verity.Read of
	// Root); with it the entry has the initramfs check the root against
	// its root hash. Nil boots the partition unchecked.
	Verity *verity.Tree
}

// Slots of the A/B scheme, as ota/bootctl names them.
const (
	SlotA = "a"
	SlotB = "b"
)

// DefaultLoader is where Debian's systemd-boot-efi installs the loader.
const DefaultLoader = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"

// KernelCommandLine returns the kernel options of slot's boot entry: the
// root arguments (ota/verity.RootArgs: the checked root and its root hash
// when tree is set, else root=PARTLABEL=root-SLOT), ro rootfstype=squashfs
// atrium.slot=SLOT console=ttyS0 systemd.gpt_auto=0 panic=5, then extra.
// panic=5 reboots a room whose kernel or initramfs gives up (a root that
// fails its check, say) instead of leaving it at a prompt, so that boot
// counting can fall back to the other slot.
func KernelCommandLine(slot string, tree *verity.Tree, extra []string) string {
	opts := append(verity.RootArgs(slot, tree), "ro", "rootfstype=squashfs",
		"atrium.slot="+slot, "console=ttyS0", "systemd.gpt_auto=0", "panic=5")
	return strings.Join(append(opts, extra...), " ")
}

// Entry returns the Boot Loader Specification entry of slot. It has no
// "version" or "sort-key" line on purpose: systemd-boot would order by
// them before the entry id, and ota/bootctl's trial ordering relies on
// ids alone.
func Entry(title, slot string, tree *verity.Tree, extra []string) string {
	return fmt.Sprintf("title %s (%s)\nlinux /atrium/%s/vmlinuz\ninitrd /atrium/%s/initrd.img\noptions %s\n",
		title, slot, slot, slot, KernelCommandLine(slot, tree, extra))
}

// LoaderConf is loader/loader.conf as built: slot a is the default, no
// menu is shown, and the command line cannot be edited at the console.
const LoaderConf = "default atrium-a.conf\ntimeout 0\neditor no\n"

// StageESP writes the ESP's files into dir (created if needed): the loader
// twice, loader.conf, an entry and a kernel and initrd per slot, all with
// modification time mtime.
func StageESP(dir, loader, title string, a, b Slot, extra []string, mtime time.Time) error {
	type file struct {
		name, src, text string
	}
	files := []file{
		{name: "EFI/BOOT/BOOTX64.EFI", src: loader},
		{name: "EFI/systemd/systemd-bootx64.efi", src: loader},
		{name: "loader/loader.conf", text: LoaderConf},
	}
	for _, s := range []struct {
		name string
		slot Slot
	}{{SlotA, a}, {SlotB, b}} {
		files = append(files,
			file{name: "loader/entries/atrium-" + s.name + ".conf", text: Entry(title, s.name, s.slot.Verity, extra)},
			file{name: "atrium/" + s.name + "/vmlinuz", src: s.slot.Kernel},
			file{name: "atrium/" + s.name + "/initrd.img", src: s.slot.Initrd},
		)
	}
	for _, f := range files {
		dst := filepath.Join(dir, filepath.FromSlash(f.name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("stage ESP: %w", err)
		}
		data := []byte(f.text)
		if f.src != "" {
			var err error
			if data, err = os.ReadFile(f.src); err != nil {
				return fmt.Errorf("stage ESP %s: %w", f.name, err)
			}
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return fmt.Errorf("stage ESP: %w", err)
		}
	}
	return setTimes(dir, mtime)
}

// setTimes sets the modification time of everything under dir, deepest
// first, so that mcopy -m copies the same times every build.
func setTimes(dir string, mtime time.Time) error {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	})
	if err != nil {
		return fmt.Errorf("set times in %s: %w", dir, err)
	}
	slices.Reverse(paths)
	for _, p := range paths {
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			return fmt.Errorf("set times: %w", err)
		}
	}
	return nil
}

// mtoolsEnv keeps mtools from converting times through the host's zone
// and from refusing images whose geometry it does not recognise.
func mtoolsEnv() []string { return []string{"TZ=UTC", "MTOOLS_SKIP_CHECK=1"} }

// packESP formats a FAT32 file system of size bytes into the new file img
// and copies the tree at dir into it.
func packESP(ctx context.Context, run RunFunc, dir, img string, size int64, serial uint32) error {
	if err := createSized(img, size); err != nil {
		return fmt.Errorf("pack ESP: %w", err)
	}
	if _, err := run(ctx, mtoolsEnv(), "mkfs.vfat", "-F", "32", "-n", "ESP", "--invariant", "-i", fmt.Sprintf("%08X", serial), img); err != nil {
		return fmt.Errorf("pack ESP: format %s: %w", img, err)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("pack ESP: %w", err)
	}
	args := []string{"-i", img, "-s", "-m", "-Q"}
	for _, de := range des { // ReadDir sorts by name
		args = append(args, filepath.Join(dir, de.Name()))
	}
	if len(des) == 0 {
		return nil
	}
	if _, err := run(ctx, mtoolsEnv(), "mcopy", append(args, "::/")...); err != nil {
		return fmt.Errorf("pack ESP: copy %s into %s: %w", dir, img, err)
	}
	return nil
}

// ReadESP copies the files of the ESP (the partition labelled "esp") of
// the disk image at disk into the directory dir, which must not exist yet.
func ReadESP(ctx context.Context, run RunFunc, disk, dir string) error {
	if run == nil {
		run = Exec
	}
	t, err := ReadPartitions(disk)
	if err != nil {
		return fmt.Errorf("read ESP: %w", err)
	}
	p, err := t.Find("esp")
	if err != nil {
		return fmt.Errorf("read ESP of %s: %w", disk, err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("read ESP: %w", err)
	}
	img := fmt.Sprintf("%s@@%d", disk, p.Offset)
	if _, err := run(ctx, mtoolsEnv(), "mcopy", "-i", img, "-s", "-m", "-n", "-Q", "::/*", dir); err != nil {
		return fmt.Errorf("read ESP of %s: %w", disk, err)
	}
	return nil
}

// WriteESP replaces the ESP of the disk image at disk with a fresh FAT32
// file system holding the tree at dir, keeping the partition's volume
// serial. It is how a test edits the ESP offline, for instance after
// running ota/bootctl on a copy made by [ReadESP].
func WriteESP(ctx context.Context, run RunFunc, disk, dir string) error {
	if run == nil {
		run = Exec
	}
	t, err := ReadPartitions(disk)
	if err != nil {
		return fmt.Errorf("write ESP: %w", err)
	}
	p, err := t.Find("esp")
	if err != nil {
		return fmt.Errorf("write ESP of %s: %w", disk, err)
	}
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("write ESP: %w", err)
	}
	defer f.Close()
	// The FAT32 volume ID is at byte 67 of the boot sector.
	var id [4]byte
	if _, err := f.ReadAt(id[:], p.Offset+67); err != nil {
		return fmt.Errorf("write ESP: read serial of %s: %w", disk, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(disk), ".esp-")
	if err != nil {
		return fmt.Errorf("write ESP: %w", err)
	}
	defer os.RemoveAll(tmp)
	img := filepath.Join(tmp, "esp.img")
	if err := packESP(ctx, run, dir, img, p.Size, binary.LittleEndian.Uint32(id[:])); err != nil {
		return fmt.Errorf("write ESP of %s: %w", disk, err)
	}
	if err := copyInto(f, p.Offset, p.Size, img, false); err != nil {
		return fmt.Errorf("write ESP of %s: %w", disk, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write ESP: %w", err)
	}
	return f.Close()
}
