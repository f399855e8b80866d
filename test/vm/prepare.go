package vm

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// Kernel is a prepared guest: Debian's kernel, its modules tree with the
// modules the harness builds installed, and a static busybox.
type Kernel struct {
	// Release is the kernel's release, what uname -r says in the guest
	// (e.g. "6.1.0-56-amd64").
	Release string
	// Version is the Debian package version (e.g. "6.1.192-2").
	Version string
	// Image is the kernel image (vmlinuz) to boot.
	Image string
	// Root holds lib/modules/<Release>, depmod'ed.
	Root string
	// Busybox is a statically linked busybox binary.
	Busybox string
}

// ModulesDir returns the directory lib/modules/<Release> of the tree.
func (k *Kernel) ModulesDir() string {
	return filepath.Join(k.Root, "lib", "modules", k.Release)
}

// PrepareOptions adjust Prepare.
type PrepareOptions struct {
	// CacheDir is where downloads and builds are kept; DefaultCacheDir
	// when empty.
	CacheDir string
	// Logger receives progress (downloads, builds); nil discards it.
	Logger *slog.Logger
}

// ErrToolMissing is returned (wrapped) when a host program the harness
// needs is not installed; the message names the Debian package.
var ErrToolMissing = errors.New("vm: host tool missing")

// DefaultCacheDir returns .cache/vm at the root of the module that contains
// the working directory, or $ATRIUM_VM_CACHE when set.
func DefaultCacheDir(ctx context.Context) (string, error) {
	if dir := os.Getenv("ATRIUM_VM_CACHE"); dir != "" {
		return filepath.Abs(dir)
	}
	root, err := RepoRoot(ctx)
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".cache", "vm"), nil
}

// RepoRoot returns the root directory of the Go module that contains the
// working directory.
func RepoRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("vm: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("vm: not inside a Go module")
	}
	return filepath.Dir(gomod), nil
}

// Prepare makes sure the cache holds a bootable kernel for the version
// Debian's linux-image-amd64 depends on, and returns it. The first call
// downloads the packages (apt-get download: nothing is installed on the
// host), unpacks them, builds the missing modules and runs depmod, which
// takes about half a minute; later calls find a stamp and return at once.
// Concurrent callers, in this process or others, serialize on a lock file
// in the cache.
func Prepare(ctx context.Context, opts PrepareOptions) (*Kernel, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cache := opts.CacheDir
	if cache == "" {
		var err error
		if cache, err = DefaultCacheDir(ctx); err != nil {
			return nil, err
		}
	}
	p := &preparer{cache: cache, log: log}
	release, err := p.query(ctx, "linux-image-amd64")
	if err != nil {
		// Without apt lists (a fresh container before apt-get update, or
		// no network), a complete cache still serves.
		if k := p.cached(); k != nil {
			log.Warn("vm: apt-cache failed; using the cached kernel", "release", k.Release, "err", err)
			return k, nil
		}
		return nil, fmt.Errorf("%w (run apt-get update first?)", err)
	}
	k := p.kernel(release)
	if p.ready(k) {
		return k, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, fmt.Errorf("vm: create cache: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(cache, "lock"), log)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Another process may have finished while this one waited.
	if p.ready(k) {
		return k, nil
	}
	start := time.Now()
	if err := p.prepare(ctx, k); err != nil {
		return nil, err
	}
	log.Info("vm: kernel prepared", "release", k.Release, "version", k.Version, "took", time.Since(start).Round(time.Millisecond))
	return k, nil
}

type preparer struct {
	cache string
	log   *slog.Logger
	// versions are the package versions query found.
	version, busyboxVersion string
}

// query finds the kernel release the metapackage depends on, and the
// package versions of that kernel and of busybox-static, from the host's
// apt lists: one apt-cache call, as each costs most of a second.
func (p *preparer) query(ctx context.Context, meta string) (string, error) {
	out, err := run(ctx, "", "apt-cache", "show", "--no-all-versions", meta, "busybox-static")
	if err != nil {
		return "", err
	}
	pkgs := parseAptShow(out)
	dep := pkgs[meta]["Depends"]
	image, version, err := exactDependency(dep, "linux-image-")
	if err != nil {
		return "", fmt.Errorf("vm: %s: %w", meta, err)
	}
	p.version = version
	if p.busyboxVersion = pkgs["busybox-static"]["Version"]; p.busyboxVersion == "" {
		return "", fmt.Errorf("vm: apt-cache show busybox-static: no Version in:\n%s", out)
	}
	return strings.TrimPrefix(image, "linux-image-"), nil
}

// parseAptShow reads apt-cache show output: package name → field → value
// (continuation lines are not kept).
func parseAptShow(out string) map[string]map[string]string {
	pkgs := map[string]map[string]string{}
	var cur map[string]string
	for line := range strings.Lines(out) {
		line = strings.TrimRight(line, "\n")
		k, v, ok := strings.Cut(line, ": ")
		if !ok || strings.HasPrefix(line, " ") {
			continue
		}
		if k == "Package" {
			cur = map[string]string{}
			pkgs[v] = cur
		}
		if cur != nil {
			cur[k] = v
		}
	}
	return pkgs
}

// exactDependency finds, in a Depends field, the package named prefix*
// with an exact version: "linux-image-6.1.0-56-amd64 (= 6.1.192-2)".
func exactDependency(depends, prefix string) (name, version string, err error) {
	for dep := range strings.SplitSeq(depends, ",") {
		dep = strings.TrimSpace(dep)
		name, rest, _ := strings.Cut(dep, " ")
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		version, ok := strings.CutPrefix(rest, "(= ")
		if !ok || !strings.HasSuffix(version, ")") {
			return "", "", fmt.Errorf("dependency %q has no exact version", dep)
		}
		return name, strings.TrimSuffix(version, ")"), nil
	}
	return "", "", fmt.Errorf("no dependency named %s* in %q", prefix, depends)
}

func (p *preparer) kernel(release string) *Kernel {
	dir := filepath.Join(p.cache, release)
	return &Kernel{
		Release: release,
		Version: p.version,
		Image:   filepath.Join(dir, "root", "boot", "vmlinuz-"+release),
		Root:    filepath.Join(dir, "root"),
		Busybox: filepath.Join(p.cache, "busybox-"+strings.ReplaceAll(p.busyboxVersion, ":", "_"), "bin", "busybox"),
	}
}

// stamp names the file whose content says a kernel directory is complete.
func (p *preparer) stamp(k *Kernel) string {
	return filepath.Join(p.cache, k.Release, "ready")
}

// cacheLayout changes whenever what prepare leaves in the cache does, so
// that caches from older code are redone.
const cacheLayout = 2

func (p *preparer) stampContent(k *Kernel) string {
	return fmt.Sprintf("layout %d kernel %s busybox %s modules %s\n", cacheLayout, k.Version, p.busyboxVersion, moduleNames())
}

func moduleNames() string {
	var names []string
	for _, m := range builtModules {
		names = append(names, m.name)
	}
	return strings.Join(names, ",")
}

// cached returns the one complete kernel in the cache, or nil.
func (p *preparer) cached() *Kernel {
	stamps, _ := filepath.Glob(filepath.Join(p.cache, "*", "ready"))
	var found *Kernel
	for _, st := range stamps {
		b, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		var layout int
		var version, busybox, modules string
		if _, err := fmt.Sscanf(string(b), "layout %d kernel %s busybox %s modules %s\n", &layout, &version, &busybox, &modules); err != nil {
			continue
		}
		q := &preparer{cache: p.cache, log: p.log, version: version, busyboxVersion: busybox}
		k := q.kernel(filepath.Base(filepath.Dir(st)))
		if !q.ready(k) {
			continue
		}
		if found != nil {
			return nil // ambiguous
		}
		found = k
	}
	return found
}

func (p *preparer) ready(k *Kernel) bool {
	b, err := os.ReadFile(p.stamp(k))
	return err == nil && string(b) == p.stampContent(k)
}

// prepare does the work under the lock. Each step writes into a temporary
// directory renamed into place at its end, so a step cut short is redone.
func (p *preparer) prepare(ctx context.Context, k *Kernel) error {
	for _, tool := range []struct{ cmd, pkg string }{
		{"apt-get", "apt"}, {"dpkg-deb", "dpkg"}, {"depmod", "kmod"},
		{"make", "make"}, {"gcc-12", "gcc-12"}, {"xz", "xz-utils"},
	} {
		if _, err := exec.LookPath(tool.cmd); err != nil {
			return fmt.Errorf("%w: %s (Debian package %s)", ErrToolMissing, tool.cmd, tool.pkg)
		}
	}
	dir := filepath.Join(p.cache, k.Release)
	// An old stamp (other versions) means the directory is stale.
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("vm: clear %s: %w", dir, err)
	}
	if err := p.pruneOthers(k); err != nil {
		return err
	}
	debs := filepath.Join(p.cache, "debs")
	abi, flavour, ok := splitRelease(k.Release)
	if !ok {
		return fmt.Errorf("vm: kernel release %q is not ABI-FLAVOUR", k.Release)
	}
	series := seriesOf(k.Release) // "6.1"
	image := "linux-image-" + k.Release
	source := "linux-source-" + series
	headers := []string{"linux-headers-" + k.Release, "linux-headers-" + abi + "-common", "linux-kbuild-" + series}
	want := map[string]string{image: k.Version, source: k.Version, "busybox-static": p.busyboxVersion}
	for _, h := range headers {
		want[h] = k.Version
	}
	files, err := p.download(ctx, debs, want)
	if err != nil {
		return err
	}

	// The four unpacking steps are independent; xz-decompressing
	// linux-source is the longest.
	build := filepath.Join(dir, "build")
	hdrRoot, src := filepath.Join(build, "root"), filepath.Join(build, "src")
	var kdir string
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return p.unpackBusybox(gctx, files["busybox-static"], filepath.Dir(filepath.Dir(k.Busybox)))
	})
	g.Go(func() error {
		p.log.Info("vm: unpacking kernel", "package", image)
		if err := unpackDeb(gctx, files[image], k.Root); err != nil {
			return err
		}
		if _, err := os.Stat(k.Image); err != nil {
			return fmt.Errorf("vm: kernel image missing from %s: %w", image, err)
		}
		return nil
	})
	g.Go(func() error {
		var err error
		kdir, err = unpackHeaders(gctx, files, headers, hdrRoot, k.Release, abi)
		return err
	})
	g.Go(func() error { return p.extractSources(gctx, files[source], series, src) })
	if err := g.Wait(); err != nil {
		return err
	}

	p.log.Info("vm: building modules out of tree", "modules", moduleNames(), "flavour", flavour)
	kos, err := buildModules(ctx, kdir, src)
	if err != nil {
		return err
	}
	kernelMagic, err := vermagicOf(filepath.Join(k.ModulesDir(), "kernel", "drivers", "media", "v4l2-core", "videodev.ko"))
	if err != nil {
		return err
	}
	extra := filepath.Join(k.ModulesDir(), "updates", "atrium")
	if err := os.MkdirAll(extra, 0o755); err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	for _, ko := range kos {
		got, err := vermagicOf(ko)
		if err != nil {
			return err
		}
		if got != kernelMagic {
			return fmt.Errorf("vm: %s has vermagic %q, the kernel's modules %q", filepath.Base(ko), got, kernelMagic)
		}
		if err := copyFile(ko, filepath.Join(extra, filepath.Base(ko)), 0o644); err != nil {
			return err
		}
	}
	if _, err := run(ctx, "", "depmod", "-b", k.Root, k.Release); err != nil {
		return err
	}
	if err := pruneModules(k); err != nil {
		return err
	}
	if _, err := run(ctx, "", "depmod", "-b", k.Root, k.Release); err != nil {
		return err
	}
	// The build tree and the packages are not needed any more: the cache
	// keeps the kernel, the pruned modules tree and busybox (about 80 MB).
	for _, d := range []string{build, debs, filepath.Join(k.Root, "usr")} {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("vm: %w", err)
		}
	}
	return writeFileAtomic(p.stamp(k), []byte(p.stampContent(k)))
}

// pruneOthers removes the directories of other kernel releases and busybox
// versions, left by earlier versions of Debian's packages.
func (p *preparer) pruneOthers(k *Kernel) error {
	entries, err := os.ReadDir(p.cache)
	if err != nil {
		return fmt.Errorf("vm: %w", err)
	}
	keep := filepath.Base(filepath.Dir(filepath.Dir(k.Busybox)))
	for _, e := range entries {
		name := e.Name()
		stale := e.IsDir() && name != k.Release && name != keep &&
			(strings.HasPrefix(name, "busybox-") || releaseRE.MatchString(name))
		if stale {
			p.log.Info("vm: removing stale cache entry", "dir", name)
			if err := os.RemoveAll(filepath.Join(p.cache, name)); err != nil {
				return fmt.Errorf("vm: %w", err)
			}
		}
	}
	return nil
}

var releaseRE = regexp.MustCompile(`^\d+\.\d+\.\d+-\d+-[a-z0-9]+$`)

// splitRelease splits "6.1.0-56-amd64" into "6.1.0-56" and "amd64".
func splitRelease(release string) (abi, flavour string, ok bool) {
	if !releaseRE.MatchString(release) {
		return "", "", false
	}
	i := strings.LastIndexByte(release, '-')
	return release[:i], release[i+1:], true
}

// seriesOf returns "6.1" for "6.1.0-56-amd64".
func seriesOf(release string) string {
	parts := strings.SplitN(release, ".", 3)
	return parts[0] + "." + parts[1]
}

// download fetches the packages (name → version) that dir does not hold
// yet, in one apt-get download, and returns each one's .deb. apt-get writes
// into a temporary directory first so that a download cut short leaves
// nothing behind.
func (p *preparer) download(ctx context.Context, dir string, pkgs map[string]string) (map[string]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	find := func(dir, pkg string) string {
		// Debian's file names spell an epoch's colon %3a.
		pattern := filepath.Join(dir, pkg+"_"+strings.ReplaceAll(pkgs[pkg], ":", "%3a")+"_*.deb")
		if m, _ := filepath.Glob(pattern); len(m) == 1 {
			return m[0]
		}
		return ""
	}
	files := map[string]string{}
	var missing []string
	for _, pkg := range slices.Sorted(maps.Keys(pkgs)) {
		if f := find(dir, pkg); f != "" {
			files[pkg] = f
		} else {
			missing = append(missing, pkg+"="+pkgs[pkg])
		}
	}
	if len(missing) == 0 {
		return files, nil
	}
	tmp, err := os.MkdirTemp(dir, ".download-")
	if err != nil {
		return nil, fmt.Errorf("vm: %w", err)
	}
	defer os.RemoveAll(tmp)
	args := []string{"download", "-q"}
	if os.Geteuid() == 0 {
		// As root, apt downloads as the user _apt, which cannot write into
		// the cache; it would fall back with a warning.
		args = append(args, "-o", "APT::Sandbox::User=root")
	}
	p.log.Info("vm: downloading", "packages", missing)
	if _, err := run(ctx, tmp, "apt-get", append(args, missing...)...); err != nil {
		return nil, err
	}
	for _, m := range missing {
		pkg, _, _ := strings.Cut(m, "=")
		f := find(tmp, pkg)
		if f == "" {
			return nil, fmt.Errorf("vm: apt-get download %s left no .deb", m)
		}
		files[pkg] = filepath.Join(dir, filepath.Base(f))
		if err := os.Rename(f, files[pkg]); err != nil {
			return nil, fmt.Errorf("vm: %w", err)
		}
	}
	return files, nil
}

func (p *preparer) unpackBusybox(ctx context.Context, deb, dst string) error {
	if _, err := os.Stat(filepath.Join(dst, "bin", "busybox")); err == nil {
		return nil
	}
	if err := unpackDeb(ctx, deb, dst); err != nil {
		return err
	}
	bb := filepath.Join(dst, "bin", "busybox")
	f, err := elf.Open(bb)
	if err != nil {
		return fmt.Errorf("vm: busybox-static: %w", err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("vm: %s is dynamically linked", bb)
		}
	}
	return nil
}
