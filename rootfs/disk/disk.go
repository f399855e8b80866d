package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// MiB is a mebibyte; every size of a [Layout] is a multiple of it.
const MiB = 1 << 20

// Layout sizes the partitions, in bytes.
type Layout struct {
	ESP, Root, Data int64 // Root is the size of root-a and of root-b
}

// DefaultLayout is 256 MiB of ESP, 1 GiB per root slot and 256 MiB of
// data: 2562 MiB with the GPT's 1 MiB at each end. The data partition is
// meant to be grown on the device (systemd-repart, or resize2fs after
// sgdisk -e).
func DefaultLayout() Layout {
	return Layout{ESP: 256 * MiB, Root: 1024 * MiB, Data: 256 * MiB}
}

// Size returns the size of the whole disk image.
func (l Layout) Size() int64 { return MiB + l.ESP + 2*l.Root + l.Data + MiB }

func (l Layout) check() error {
	for _, s := range []struct {
		name string
		size int64
	}{{"ESP", l.ESP}, {"root", l.Root}, {"data", l.Data}} {
		if s.size <= 0 || s.size%MiB != 0 {
			return fmt.Errorf("layout: %s size %d is not a positive multiple of 1 MiB", s.name, s.size)
		}
	}
	if l.ESP < 64*MiB {
		return fmt.Errorf("layout: ESP of %d MiB is below the 64 MiB FAT32 needs here", l.ESP/MiB)
	}
	return nil
}

// part is one partition as Build lays it out.
type part struct {
	label, typeCode string
	size            int64
}

func (l Layout) parts() []part {
	return []part{
		{"esp", "EF00", l.ESP},
		{"root-a", "8304", l.Root},
		{"root-b", "8304", l.Root},
		{"data", "8300", l.Data},
	}
}

// Options describe a disk image for [Build].
type Options struct {
	// Output is the image file to write; it is replaced atomically.
	Output string
	// Version is the image version; it seeds the GUIDs and serials, so
	// the same version and inputs give the same bytes.
	Version string
	// Layout sizes the partitions; DefaultLayout when zero.
	Layout Layout
	// A is slot a's root image, kernel and initrd (all required). B is
	// slot b's; a zero B means A, so both slots of a factory image hold
	// the same release and either can boot.
	A, B Slot
	// Title prefixes the entries' titles ("Atrium" when empty).
	Title string
	// KernelArgs are appended to every entry's options.
	KernelArgs []string
	// Loader is systemd-boot's EFI binary; DefaultLoader when empty.
	Loader string
	// DataDir, when set, is copied into the data file system
	// (mkfs.ext4 -d), with its files' own times: give them fixed times
	// for a reproducible image. The image's initramfs binds its state/
	// to roomd's state directory (see rootfs/image).
	DataDir string
	// ModTime is the time stamped on files and file systems; 2020-01-01
	// UTC when zero.
	ModTime time.Time
	// TempDir holds the intermediate file systems (as large as their
	// partitions, but sparse); the directory of Output when empty. The
	// image itself is written next to Output, then renamed.
	TempDir string
	// Run starts the outside programs; Exec when nil.
	Run RunFunc
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// Build writes the disk image described by o: the GPT (sgdisk), the ESP
// (mkfs.vfat, mcopy: see [StageESP]), the slots' root images raw into
// root-a and root-b, and an empty ext4 labelled "data" (mkfs.ext4).
// Intermediate images are built as files and copied in at their
// partition's offset, skipping zero blocks, so the output stays sparse.
func Build(ctx context.Context, o Options) error {
	if err := o.defaults(); err != nil {
		return fmt.Errorf("build disk: %w", err)
	}
	start := time.Now()
	tmp, err := os.MkdirTemp(o.TempDir, ".atrium-disk-")
	if err != nil {
		return fmt.Errorf("build disk: %w", err)
	}
	defer os.RemoveAll(tmp)
	img := o.Output + ".partial"
	defer os.Remove(img)
	if err := o.build(ctx, tmp, img); err != nil {
		return fmt.Errorf("build disk %s: %w", o.Output, err)
	}
	if err := os.Rename(img, o.Output); err != nil {
		return fmt.Errorf("build disk: %w", err)
	}
	o.Logger.Info("disk: built", "output", o.Output, "bytes", o.Layout.Size(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

func (o *Options) defaults() error {
	if o.Output == "" || o.Version == "" {
		return errors.New("options need Output and Version")
	}
	if o.Layout == (Layout{}) {
		o.Layout = DefaultLayout()
	}
	if err := o.Layout.check(); err != nil {
		return err
	}
	if o.B == (Slot{}) {
		o.B = o.A
	}
	for _, c := range []struct {
		name string
		s    Slot
	}{{SlotA, o.A}, {SlotB, o.B}} {
		name, s := c.name, c.s
		if s.Root == "" || s.Kernel == "" || s.Initrd == "" {
			return fmt.Errorf("slot %s needs Root, Kernel and Initrd", name)
		}
		st, err := os.Stat(s.Root)
		if err != nil {
			return fmt.Errorf("slot %s: %w", name, err)
		}
		if st.Size() > o.Layout.Root {
			return fmt.Errorf("slot %s: root image %s is %d bytes, the partition %d", name, s.Root, st.Size(), o.Layout.Root)
		}
	}
	if o.Title == "" {
		o.Title = "Atrium"
	}
	if o.Loader == "" {
		o.Loader = DefaultLoader
	}
	if _, err := os.Stat(o.Loader); err != nil {
		return fmt.Errorf("%w: systemd-boot (Debian package systemd-boot-efi): %w", ErrToolMissing, err)
	}
	if o.ModTime.IsZero() {
		o.ModTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if o.TempDir == "" {
		o.TempDir = filepath.Dir(o.Output)
	}
	if o.Run == nil {
		o.Run = Exec
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// serial derives a 32-bit file system serial from the version.
func serial(version, name string) uint32 {
	sum := sha256.Sum256([]byte("atrium-disk\x00" + version + "\x00" + name))
	return binary.LittleEndian.Uint32(sum[:4])
}

func (o *Options) build(ctx context.Context, tmp, img string) error {
	if err := createSized(img, o.Layout.Size()); err != nil {
		return err
	}
	args := []string{"-U", DeriveGUID(o.Version, "disk").String()}
	first := int64(MiB / sectorSize)
	for i, p := range o.Layout.parts() {
		n := strconv.Itoa(i + 1)
		last := first + p.size/sectorSize - 1
		args = append(args,
			"-n", fmt.Sprintf("%s:%d:%d", n, first, last),
			"-t", n+":"+p.typeCode,
			"-c", n+":"+p.label,
			"-u", n+":"+DeriveGUID(o.Version, p.label).String())
		first = last + 1
	}
	if _, err := o.Run(ctx, nil, "sgdisk", append(args, img)...); err != nil {
		return fmt.Errorf("partition: %w", err)
	}
	table, err := ReadPartitions(img)
	if err != nil {
		return err
	}

	espDir := filepath.Join(tmp, "esp")
	if err := StageESP(espDir, o.Loader, o.Title, o.A, o.B, o.KernelArgs, o.ModTime); err != nil {
		return err
	}
	espImg := filepath.Join(tmp, "esp.img")
	if err := packESP(ctx, o.Run, espDir, espImg, o.Layout.ESP, serial(o.Version, "esp")); err != nil {
		return err
	}

	dataImg := filepath.Join(tmp, "data.img")
	if err := createSized(dataImg, o.Layout.Data); err != nil {
		return err
	}
	uuid := DeriveGUID(o.Version, "data-fs").String()
	mkfs := []string{"-q", "-F", "-L", "data", "-U", uuid, "-E", "hash_seed=" + uuid + ",root_owner=0:0"}
	if o.DataDir != "" {
		mkfs = append(mkfs, "-d", o.DataDir)
	}
	env := []string{"E2FSPROGS_FAKE_TIME=" + strconv.FormatInt(o.ModTime.Unix(), 10)}
	if _, err := o.Run(ctx, env, "mkfs.ext4", append(mkfs, dataImg)...); err != nil {
		return fmt.Errorf("format data: %w", err)
	}

	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, c := range []struct{ label, src string }{
		{"esp", espImg}, {"root-a", o.A.Root}, {"root-b", o.B.Root}, {"data", dataImg},
	} {
		p, err := table.Find(c.label)
		if err != nil {
			return err
		}
		if err := copyInto(f, p.Offset, p.Size, c.src, true); err != nil {
			return fmt.Errorf("write %s: %w", c.label, err)
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

// createSized creates (or truncates) the sparse file path of size bytes.
func createSized(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return fmt.Errorf("size %s: %w", path, err)
	}
	return f.Close()
}

// copyInto copies the file src into dst at offset off; src must fit in
// max bytes. When dstZero, dst is known to hold zeros there and all-zero
// blocks are skipped, which keeps a sparse dst sparse.
func copyInto(dst *os.File, off, max int64, src string, dstZero bool) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if st.Size() > max {
		return fmt.Errorf("%s is %d bytes, more than the partition's %d", src, st.Size(), max)
	}
	buf := make([]byte, MiB)
	zero := make([]byte, MiB)
	for pos := int64(0); ; {
		n, err := io.ReadFull(in, buf)
		if n > 0 && (!dstZero || !bytes.Equal(buf[:n], zero[:n])) {
			if _, werr := dst.WriteAt(buf[:n], off+pos); werr != nil {
				return fmt.Errorf("copy %s: %w", src, werr)
			}
		}
		pos += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
	}
}
