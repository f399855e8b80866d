package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/atriumroom/atrium/ota/bootfiles"
	"github.com/atriumroom/atrium/ota/verity"
	"github.com/atriumroom/atrium/rootfs/disk"
)

// Names of the files in the output directory (the contract with
// rootfs/disk).
const (
	RootfsFile   = "rootfs.squashfs"
	KernelFile   = "vmlinuz"
	InitrdFile   = "initrd.img"
	ManifestFile = "image.json"
)

// Manifest is OUT/image.json.
type Manifest struct {
	Version string `json:"version"`
	// BuildTime is RFC 3339, UTC.
	BuildTime string `json:"buildTime"`
	// RootfsSHA256 and RootfsSize are the whole file: the squashfs and
	// its dm-verity tree.
	RootfsSHA256 string `json:"rootfsSha256"`
	RootfsSize   int64  `json:"rootfsSize"`
	// VerityRootHash and VerityHashOffset are what a boot entry passes
	// the initramfs (ota/verity.RootArgs).
	VerityRootHash   string `json:"verityRootHash"`
	VerityHashOffset int64  `json:"verityHashOffset"`
	KernelRelease    string `json:"kernelRelease"`
}

// Options are one image build.
type Options struct {
	// Out is the output directory; image.json is written last, so its
	// presence means the rest is complete.
	Out string
	// Layer is what goes over the base (Source is the rootfs directory).
	Layer Layer
	// Packages, Suite, Sources: the base (see BaseOptions); Packages
	// defaults to Layer.Source/packages.txt.
	Packages string
	Suite    string
	Sources  string
	// CacheDir keeps base tarballs and the build's scratch tree.
	CacheDir string
	// Comp is mksquashfs's compressor: zstd (the default, for releases)
	// or lz4 (fast, for tests).
	Comp   string
	Runner Runner
	Logger *slog.Logger
}

// Build builds the image into o.Out and returns its manifest. It needs
// root.
func Build(ctx context.Context, o Options) (*Manifest, error) {
	if o.Logger == nil || o.Runner == nil {
		return nil, errors.New("image build: no logger or runner")
	}
	if o.Comp == "" {
		o.Comp = "zstd"
	}
	if o.Comp != "zstd" && o.Comp != "lz4" {
		return nil, fmt.Errorf("image build: compressor %q: use zstd or lz4", o.Comp)
	}
	if o.Packages == "" {
		o.Packages = filepath.Join(o.Layer.Source, "packages.txt")
	}
	if err := o.Layer.check(); err != nil {
		return nil, fmt.Errorf("image build: %w", err)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("image build: needs root (mmdebstrap, tar with owners, chroot)")
	}
	start := time.Now()
	unlock, err := lockCache(ctx, o.CacheDir, o.Logger)
	if err != nil {
		return nil, err
	}
	unlockCache := sync.OnceFunc(unlock)
	defer unlockCache()
	if err := removeStaleTrees(o.CacheDir, o.Logger); err != nil {
		return nil, err
	}
	tarball, err := Base(ctx, BaseOptions{Packages: o.Packages, Suite: o.Suite, Sources: o.Sources, CacheDir: o.CacheDir, Runner: o.Runner, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	if err := removeOldBases(o.CacheDir, tarball, o.Logger); err != nil {
		return nil, err
	}
	work, removeTree, err := newTree(o.CacheDir)
	if err != nil {
		return nil, err
	}
	defer removeTree()
	tree := filepath.Join(work, "root")
	if err := os.Mkdir(tree, 0o755); err != nil {
		return nil, fmt.Errorf("image build: %w", err)
	}
	if _, err := o.Runner.Run(ctx, Cmd{Name: "tar", Args: []string{"--extract", "--file", tarball, "--directory", tree, "--numeric-owner", "--same-permissions", "--xattrs", "--xattrs-include=*"}}); err != nil {
		return nil, fmt.Errorf("extract base %s: %w", tarball, err)
	}
	// The base is read: another build may now take the cache.
	unlockCache()
	o.Logger.Info("image: base extracted", "seconds", time.Since(start).Seconds())
	if err := o.Layer.Apply(tree); err != nil {
		return nil, fmt.Errorf("atrium layer: %w", err)
	}
	if err := Finish(ctx, o.Runner, tree, o.Layer.BuildTime); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	manifestPath := filepath.Join(o.Out, ManifestFile)
	if err := os.Remove(manifestPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("remove old manifest: %w", err)
	}
	release, err := ExportKernel(tree, o.Out)
	if err != nil {
		return nil, err
	}
	o.Logger.Info("image: layer applied, squashing", "kernel", release, "comp", o.Comp, "seconds", time.Since(start).Seconds())
	rootfs := filepath.Join(o.Out, RootfsFile)
	if err := Squash(ctx, o.Runner, tree, rootfs, o.Comp, o.Layer.BuildTime); err != nil {
		return nil, err
	}
	hashes, err := AddTree(ctx, o.Runner, rootfs)
	if err != nil {
		return nil, err
	}
	sum, size, err := hashFile(rootfs)
	if err != nil {
		return nil, err
	}
	m := &Manifest{
		Version:          o.Layer.Version,
		BuildTime:        o.Layer.BuildTime.UTC().Format(time.RFC3339),
		RootfsSHA256:     sum,
		RootfsSize:       size,
		VerityRootHash:   hashes.RootHash,
		VerityHashOffset: hashes.HashOffset,
		KernelRelease:    release,
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(manifestPath, append(data, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("write manifest: %w", err)
	}
	o.Logger.Info("image: built", "out", o.Out, "version", m.Version, "sha256", sum, "bytes", size, "seconds", time.Since(start).Seconds())
	return m, nil
}

// leftovers are files the programs run in the tree write that differ from
// build to build and that the appliance does not need: backups of the
// user database, caches with their own time stamps.
var leftovers = []string{
	"/etc/passwd-", "/etc/group-", "/etc/shadow-", "/etc/gshadow-",
	"/var/cache/ldconfig/aux-cache",
}

// Finish runs the programs that complete the tree, inside it: the
// system users (an /etc that is read-only on the device cannot get them at
// boot), then the ESP's line in /etc/fstab (it names the atrium group's
// number), and an initramfs that loads squashfs (the layer's
// /etc/initramfs-tools/modules). Time stamps they record are buildTime.
func Finish(ctx context.Context, r Runner, tree string, buildTime time.Time) error {
	env := []string{"SOURCE_DATE_EPOCH=" + strconv.FormatInt(buildTime.Unix(), 10)}
	if _, err := r.Run(ctx, Cmd{Name: "chroot", Args: []string{tree, "systemd-sysusers"}, Env: env}); err != nil {
		return fmt.Errorf("create system users in %s: %w", tree, err)
	}
	if err := addESPMount(tree); err != nil {
		return err
	}
	if _, err := r.Run(ctx, Cmd{Name: "chroot", Args: []string{tree, "update-initramfs", "-u", "-k", "all"}, Env: env}); err != nil {
		return fmt.Errorf("build initramfs in %s: %w", tree, err)
	}
	for _, p := range leftovers {
		if err := os.Remove(filepath.Join(tree, p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", p, err)
		}
	}
	return nil
}

// ExportKernel copies the tree's one kernel and its initramfs to out as
// vmlinuz and initrd.img, hard-links them in the tree at the fixed names
// an update copies them from (bootfiles.KernelPath and InitrdPath; a link
// costs nothing in the squashfs), and returns the kernel release.
func ExportKernel(tree, out string) (string, error) {
	kernels, err := filepath.Glob(filepath.Join(tree, "boot", "vmlinuz-*"))
	if err != nil {
		return "", err
	}
	if len(kernels) != 1 {
		return "", fmt.Errorf("export kernel: want one /boot/vmlinuz-* in the tree, found %d", len(kernels))
	}
	release := strings.TrimPrefix(filepath.Base(kernels[0]), "vmlinuz-")
	for _, f := range []struct{ src, dst, link string }{
		{kernels[0], KernelFile, bootfiles.KernelPath},
		{filepath.Join(tree, "boot", "initrd.img-"+release), InitrdFile, bootfiles.InitrdPath},
	} {
		if err := copyOut(f.src, filepath.Join(out, f.dst)); err != nil {
			return "", fmt.Errorf("export %s: %w", f.dst, err)
		}
		link := filepath.Join(tree, f.link)
		if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("link %s: %w", f.link, err)
		}
		if err := os.Link(f.src, link); err != nil {
			return "", fmt.Errorf("link %s: %w", f.link, err)
		}
	}
	return release, nil
}

func copyOut(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// SquashArgs are mksquashfs's arguments: every time stamp is buildTime,
// ownership and extended attributes as in the tree, directories sorted
// (mksquashfs always sorts them; -reproducible is its default in 4.5).
func SquashArgs(tree, out, comp string, buildTime time.Time) []string {
	epoch := strconv.FormatInt(buildTime.Unix(), 10)
	return []string{tree, out, "-noappend", "-comp", comp, "-all-time", epoch, "-mkfs-time", epoch, "-reproducible", "-no-progress", "-quiet"}
}

// Squash makes the squashfs image of tree at out.
func Squash(ctx context.Context, r Runner, tree, out, comp string, buildTime time.Time) error {
	if err := os.Remove(out); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove old %s: %w", out, err)
	}
	if _, err := r.Run(ctx, Cmd{Name: "mksquashfs", Args: SquashArgs(tree, out, comp, buildTime)}); err != nil {
		return fmt.Errorf("squash %s: %w", out, err)
	}
	return nil
}

// AddTree appends the dm-verity hash tree of the squashfs at img to the
// same file (veritysetup format, superblock at the squashfs's end) and
// returns it. Salt and UUID derive from the squashfs's SHA-256, so the
// same file system gives the same bytes; the root hash veritysetup prints
// is checked against the one ota/verity derives from the file, which is
// how devices and the disk build read it.
func AddTree(ctx context.Context, r Runner, img string) (*verity.Tree, error) {
	sum, size, err := hashFile(img)
	if err != nil {
		return nil, fmt.Errorf("add hash tree: %w", err)
	}
	if size == 0 || size%verity.BlockSize != 0 {
		return nil, fmt.Errorf("add hash tree to %s: %d bytes is not a whole number of %d-byte blocks (mksquashfs pads to them unless -nopad)", img, size, verity.BlockSize)
	}
	u := sum[:32]
	// A version 4 UUID's form; veritysetup only checks the form.
	uuid := u[:8] + "-" + u[8:12] + "-4" + u[13:16] + "-8" + u[17:20] + "-" + u[20:32]
	out, err := r.Run(ctx, Cmd{Name: "veritysetup", Args: []string{"format", img, img,
		"--hash-offset=" + strconv.FormatInt(size, 10), "--data-blocks=" + strconv.FormatInt(size/verity.BlockSize, 10),
		"--hash=sha256", "--data-block-size=4096", "--hash-block-size=4096", "--salt=" + sum, "--uuid=" + uuid}})
	if err != nil {
		return nil, fmt.Errorf("add hash tree to %s: %w", img, err)
	}
	f, err := os.Open(img)
	if err != nil {
		return nil, fmt.Errorf("add hash tree: %w", err)
	}
	defer f.Close()
	tree, err := verity.Read(f)
	if err != nil {
		return nil, fmt.Errorf("add hash tree to %s: read it back: %w", img, err)
	}
	printed := ""
	if m := rootHashLine.FindSubmatch(out); m != nil {
		printed = string(m[1])
	}
	if printed != tree.RootHash {
		return nil, fmt.Errorf("add hash tree to %s: veritysetup printed root hash %q, the file gives %s", img, printed, tree.RootHash)
	}
	return tree, nil
}

var rootHashLine = regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]{64})\s*$`)

func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", p, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// DiskSlot is the image built into out as a slot of a disk (rootfs/disk):
// its root file system, kernel and initramfs, and the root's hash tree,
// read from the file as a device reads it from its slot.
func DiskSlot(out string) (disk.Slot, error) {
	s := disk.Slot{Root: filepath.Join(out, RootfsFile), Kernel: filepath.Join(out, KernelFile), Initrd: filepath.Join(out, InitrdFile)}
	f, err := os.Open(s.Root)
	if err != nil {
		return s, fmt.Errorf("image as a disk slot: %w", err)
	}
	defer f.Close()
	if s.Verity, err = verity.Read(f); err != nil {
		return s, fmt.Errorf("image as a disk slot: %s: %w", s.Root, err)
	}
	return s, nil
}
