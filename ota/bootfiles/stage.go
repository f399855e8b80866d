package bootfiles

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/atriumroom/atrium/internal/atomicfile"
	"github.com/atriumroom/atrium/ota/bootctl"
	"github.com/atriumroom/atrium/ota/verity"
)

// Where the image build links the kernel and initramfs inside the root
// file system (rootfs/image).
const (
	KernelPath = "boot/vmlinuz"
	InitrdPath = "boot/initrd.img"
)

// Extractor copies one regular file out of a file system image without
// mounting it: roomd has no right to mount, and needs none.
type Extractor interface {
	Extract(ctx context.Context, image, name string, w io.Writer) error
}

// Unsquashfs is the Extractor for squashfs images: squashfs-tools'
// `unsquashfs -cat`. Path is the program ("unsquashfs" from PATH when
// empty). Its arguments are the configured slot and a constant name.
type Unsquashfs struct{ Path string }

// Extract implements Extractor.
func (u Unsquashfs) Extract(ctx context.Context, image, name string, w io.Writer) error {
	path := u.Path
	if path == "" {
		path = "unsquashfs"
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, "-cat", image, name)
	cmd.Stdout, cmd.Stderr = w, &stderr
	if err := cmd.Run(); err != nil {
		msg := bytes.TrimSpace(stderr.Bytes())
		if len(msg) > 512 {
			msg = msg[:512]
		}
		return fmt.Errorf("unsquashfs -cat %s %s: %w: %s", image, name, err, msg)
	}
	return nil
}

// Config configures a Stager. All but Logger are required.
type Config struct {
	Extractor Extractor
	// SlotImage is the slot's file system image: its block device.
	SlotImage func(bootctl.Slot) (string, error)
	// Destination is where the slot's boot entry loads its kernel and
	// initramfs from; (*bootctl.SystemdBoot).BootFiles.
	Destination func(context.Context, bootctl.Slot) (bootctl.BootFiles, error)
	// SetOptions edits the kernel options of the slot's boot entry;
	// (*bootctl.SystemdBoot).SetOptions.
	SetOptions func(ctx context.Context, s bootctl.Slot, edit func([]string) []string) error
	Logger     *slog.Logger
	// Now is the clock, for the log line's duration; time.Now when nil.
	Now func() time.Time
}

// Stager copies a slot's kernel and initramfs to the ESP.
type Stager struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
}

// New returns a Stager.
func New(cfg Config) (*Stager, error) {
	if cfg.Extractor == nil || cfg.SlotImage == nil || cfg.Destination == nil || cfg.SetOptions == nil {
		return nil, errors.New("new boot file stager: extractor, slot image, destination and options are required")
	}
	s := &Stager{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Stage copies the kernel and initramfs inside slot's image to the files
// its boot entry names, then points the entry's root arguments at the
// image: its dm-verity root hash when it carries a tree (ota/verity),
// its partition when not. Each file goes to NAME.new first, is synced and
// read back, and only then replaces NAME, so a file the entry names is
// never half written. It is idempotent.
func (s *Stager) Stage(ctx context.Context, slot bootctl.Slot) error {
	start := s.now()
	image, err := s.cfg.SlotImage(slot)
	if err != nil {
		return fmt.Errorf("stage boot files of slot %s: %w", slot, err)
	}
	dst, err := s.cfg.Destination(ctx, slot)
	if err != nil {
		return fmt.Errorf("stage boot files of slot %s: %w", slot, err)
	}
	s.log.Info("staging boot files", "slot", slot, "image", image)
	files := []struct{ name, dst string }{{KernelPath, dst.Kernel}, {InitrdPath, dst.Initrd}}
	// Both are written and checked before either replaces its file: a
	// failure leaves the slot's old pair as it was.
	var sizes [2]int64
	for i, f := range files {
		if sizes[i], err = s.copyOut(ctx, image, f.name, f.dst+".new"); err != nil {
			for _, f := range files[:i] {
				os.Remove(f.dst + ".new")
			}
			return fmt.Errorf("stage boot files of slot %s: %w", slot, err)
		}
	}
	tree, err := readTree(image)
	if err != nil {
		for _, f := range files {
			os.Remove(f.dst + ".new")
		}
		return fmt.Errorf("stage boot files of slot %s: %w", slot, err)
	}
	for _, f := range files {
		if err := os.Rename(f.dst+".new", f.dst); err != nil {
			return fmt.Errorf("stage boot files of slot %s: %w", slot, err)
		}
		if err := atomicfile.SyncDir(filepath.Dir(f.dst)); err != nil {
			return fmt.Errorf("stage boot files of slot %s: %w", slot, err)
		}
	}
	root := verity.RootArgs(string(slot), tree)
	if err := s.cfg.SetOptions(ctx, slot, func(old []string) []string { return verity.WithRootArgs(old, root) }); err != nil {
		return fmt.Errorf("stage boot files of slot %s: %w", slot, err)
	}
	s.log.Info("boot files staged", "slot", slot, "root", strings.Join(root, " "), "kernel", dst.Kernel, "kernel_bytes", sizes[0],
		"initrd", dst.Initrd, "initrd_bytes", sizes[1], "seconds", s.now().Sub(start).Seconds())
	return nil
}

// readTree reads the dm-verity tree after the image's file system; nil
// when it has none (an image built before roots were checked).
func readTree(image string) (*verity.Tree, error) {
	f, err := os.Open(image)
	if err != nil {
		return nil, fmt.Errorf("read hash tree: %w", err)
	}
	defer f.Close()
	t, err := verity.Read(f)
	if errors.Is(err, verity.ErrNoTree) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read hash tree of %s: %w", image, err)
	}
	return t, nil
}

// copyOut writes image's file name to tmp, synced and read back.
func (s *Stager) copyOut(ctx context.Context, image, name, tmp string) (n int64, err error) {
	if err := os.MkdirAll(filepath.Dir(tmp), 0o755); err != nil {
		return 0, fmt.Errorf("copy %s: %w", name, err)
	}
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, fmt.Errorf("copy %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(f, h)}
	if err := s.cfg.Extractor.Extract(ctx, image, name, cw); err != nil {
		return 0, fmt.Errorf("copy %s from %s: %w", name, image, err)
	}
	if cw.n == 0 {
		return 0, fmt.Errorf("copy %s from %s: the file is empty", name, image)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("copy %s: sync %s: %w", name, tmp, err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("copy %s: close %s: %w", name, tmp, err)
	}
	if err := sameContent(tmp, cw.n, h.Sum(nil)); err != nil {
		return 0, fmt.Errorf("copy %s: %w", name, err)
	}
	return cw.n, nil
}

// sameContent reads path back and compares it with what was written.
func sameContent(path string, size int64, sum []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("read back %s: %w", path, err)
	}
	if n != size || !bytes.Equal(h.Sum(nil), sum) {
		return fmt.Errorf("read back %s: %d bytes that differ from the %d written", path, n, size)
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
