package otabench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/ota/delta"
)

// basePackages stand in for the image's Debian base: what the appliance
// runs on (C library, systemd, D-Bus, the kiosk's WebKitGTK and GStreamer,
// the codecs, ALSA and PipeWire, shell tools, time zones). Their files are
// copied from this machine, identical in both images, as in a release that
// brings no Debian update.
var basePackages = []string{
	"libc6", "libstdc++6", "libssl3", "systemd", "libsystemd0", "libudev1", "dbus", "util-linux", "coreutils", "bash",
	"tzdata", "libglib2.0-0", "libicu72", "libgtk-3-0", "libwebkit2gtk-4.1-0", "libjavascriptcoregtk-4.1-0",
	"libgstreamer1.0-0", "gstreamer1.0-plugins-base", "libx264-164", "libvpx7", "libopus0", "libasound2",
	"libpipewire-0.3-0", "pipewire",
}

// skipped are left out of an appliance image.
var skipped = []string{"/usr/share/doc/", "/usr/share/man/", "/usr/share/locale/", "/usr/share/lintian/", "/usr/share/info/"}

// release is one version of the image.
type release struct {
	version, commit string
	epoch           int64 // commit time: SOURCE_DATE_EPOCH for the build and the file systems
}

func run(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func resolveRelease(ctx context.Context, repo, commit, version string) (release, error) {
	out, err := run(ctx, repo, nil, "git", "log", "-1", "--format=%H %ct", commit)
	if err != nil {
		return release{}, err
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return release{}, fmt.Errorf("git log %s: %q", commit, out)
	}
	epoch, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return release{}, fmt.Errorf("git log %s: %w", commit, err)
	}
	return release{version: version, commit: f[0], epoch: epoch}, nil
}

// buildRelease extracts the commit's tree (git archive: the checkout is
// not touched) and builds roomd and roomctl as a release build would.
func buildRelease(ctx context.Context, repo, work string, r release) (src, bin string, err error) {
	src = filepath.Join(work, "src-"+r.version)
	bin = filepath.Join(work, "bin-"+r.version)
	for _, d := range []string{src, bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", "", err
		}
	}
	archive := filepath.Join(work, r.version+".tar")
	if _, err := run(ctx, repo, nil, "git", "archive", "-o", archive, r.commit); err != nil {
		return "", "", err
	}
	if _, err := run(ctx, src, nil, "tar", "-xf", archive); err != nil {
		return "", "", err
	}
	env := []string{"SOURCE_DATE_EPOCH=" + strconv.FormatInt(r.epoch, 10), "PKG_CONFIG_PATH=" + filepath.Join(src, "cmd", "roomkiosk", "pkgconfig")}
	if _, err := run(ctx, src, env, "go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -X main.version="+r.version, "-o", bin+"/", "./cmd/roomd", "./cmd/roomctl"); err != nil {
		return "", "", err
	}
	return src, bin, nil
}

// baseFiles lists the packages' files (regular files and symbolic links).
func baseFiles(ctx context.Context) ([]string, error) {
	out, err := run(ctx, "/", nil, "dpkg", append([]string{"-L"}, basePackages...)...)
	if err != nil {
		return nil, err
	}
	var files []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		p := sc.Text()
		if !strings.HasPrefix(p, "/") || seen[p] {
			continue
		}
		skip := false
		for _, s := range skipped {
			skip = skip || strings.HasPrefix(p, s)
		}
		fi, err := os.Lstat(p)
		if skip || err != nil || fi.IsDir() || !(fi.Mode().IsRegular() || fi.Mode()&os.ModeSymlink != 0) {
			continue
		}
		// Debian 12 merges /usr: /lib, /bin and /sbin are links into
		// /usr, and packages still list files under them.
		dir, err := filepath.EvalSymlinks(filepath.Dir(p))
		if err != nil {
			continue
		}
		p = filepath.Join(dir, filepath.Base(p))
		if seen[p] {
			continue
		}
		seen[p] = true
		files = append(files, p)
	}
	return files, sc.Err()
}

func copyFile(dst, src string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

func writeFile(dst, content string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, []byte(content), 0o644)
}

// makeTree lays out one release's root file system and returns its size.
func makeTree(tree string, files []string, src, bin string, r release) (int64, error) {
	for _, f := range files {
		fi, err := os.Lstat(f)
		if err != nil {
			return 0, err
		}
		dst := filepath.Join(tree, f)
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(f)
			if err != nil {
				return 0, err
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return 0, err
			}
			if err := os.Symlink(target, dst); err != nil {
				return 0, err
			}
			continue
		}
		if err := copyFile(dst, f, fi.Mode().Perm()); err != nil {
			return 0, err
		}
	}
	for link, target := range map[string]string{"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"} {
		// Usually among the packages' own entries already.
		if _, err := os.Lstat(filepath.Join(tree, link)); err == nil {
			continue
		}
		if err := os.Symlink(target, filepath.Join(tree, link)); err != nil {
			return 0, err
		}
	}
	for _, name := range []string{"roomd", "roomctl"} {
		if err := copyFile(filepath.Join(tree, "usr/bin", name), filepath.Join(bin, name), 0o755); err != nil {
			return 0, err
		}
	}
	extra := map[string]string{
		"daemon/config/default.toml":   "etc/atrium/roomd.toml",
		"rootfs/systemd/roomd.service": "usr/lib/systemd/system/roomd.service",
	}
	for from, to := range extra {
		if err := copyFile(filepath.Join(tree, to), filepath.Join(src, from), 0o644); err != nil {
			return 0, fmt.Errorf("%s: %w", from, err)
		}
	}
	osRelease := fmt.Sprintf("PRETTY_NAME=\"Atrium %s\"\nNAME=Atrium\nID=atrium\nID_LIKE=debian\nVERSION_ID=%s\nBUILD_ID=%s\n", r.version, r.version, r.commit[:12])
	if err := writeFile(filepath.Join(tree, "etc/os-release"), osRelease); err != nil {
		return 0, err
	}
	if err := writeFile(filepath.Join(tree, "etc/hostname"), "atrium\n"); err != nil {
		return 0, err
	}
	var size int64
	err := filepath.Walk(tree, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			size += fi.Size()
		}
		return err
	})
	return size, err
}

// Fixed identities, so that only content makes two images differ.
const (
	fsUUID   = "6f1b3c1e-7a0d-4c55-9a3e-0d7c2b1a9e42"
	hashSeed = "2d9f7e61-43b8-4f0a-8c6e-5b1d9a7c3e10"
)

func packSquashfs(ctx context.Context, tree, out string, r release) error {
	t := strconv.FormatInt(r.epoch, 10)
	// SOURCE_DATE_EPOCH sets the creation time and clamps every file's
	// (mksquashfs refuses it together with -all-time and -mkfs-time).
	_, err := run(ctx, "/", []string{"SOURCE_DATE_EPOCH=" + t}, "mksquashfs", tree, out, "-noappend", "-comp", "zstd",
		"-all-root", "-quiet", "-no-progress")
	return err
}

func packExt4(ctx context.Context, tree, out string, size int64, r release) error {
	// mkfs.ext4 -d takes file times from the tree: clamp them, as a
	// reproducible build does, to the release's SOURCE_DATE_EPOCH.
	t := time.Unix(r.epoch, 0)
	err := filepath.Walk(tree, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.Mode()&os.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, t, t)
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, nil, 0o644); err != nil {
		return err
	}
	if err := os.Truncate(out, size); err != nil {
		return err
	}
	epoch := strconv.FormatInt(r.epoch, 10)
	_, err = run(ctx, "/", []string{"E2FSPROGS_FAKE_TIME=" + epoch, "SOURCE_DATE_EPOCH=" + epoch}, "mkfs.ext4", "-q", "-F",
		"-b", "4096", "-O", "^has_journal", "-L", "atrium-root", "-U", fsUUID,
		"-E", "hash_seed="+hashSeed+",root_owner=0:0", "-d", tree, out)
	return err
}

func fileSHA(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// deltaResult is one format's measurement.
type deltaResult struct {
	format             string
	baseSize, newSize  int64
	reproducible       int64 // bytes that differed between two packs of the same tree
	stats              delta.Stats
	makeTime, applyDur time.Duration
}

// measureDelta makes the delta from base to target into a file, applies it
// to a third file and checks the result is the target.
func measureDelta(ctx context.Context, work, format, base, target string) (deltaResult, error) {
	res := deltaResult{format: format}
	bf, err := os.Open(base)
	if err != nil {
		return res, err
	}
	defer func() { _ = bf.Close() }()
	fi, err := bf.Stat()
	if err != nil {
		return res, err
	}
	res.baseSize = fi.Size()
	tf, err := os.Open(target)
	if err != nil {
		return res, err
	}
	defer func() { _ = tf.Close() }()
	dpath := filepath.Join(work, format+".delta")
	df, err := os.Create(dpath)
	if err != nil {
		return res, err
	}
	defer func() { _ = df.Close() }()
	bw := bufio.NewWriterSize(df, 1<<20)
	start := time.Now()
	res.stats, err = delta.Make(bf, res.baseSize, bufio.NewReaderSize(tf, 1<<20), bw, delta.Options{})
	if err == nil {
		err = bw.Flush()
	}
	res.makeTime = time.Since(start)
	if err != nil {
		return res, err
	}
	res.newSize = res.stats.TargetSize
	if _, err := df.Seek(0, io.SeekStart); err != nil {
		return res, err
	}
	outPath := filepath.Join(work, format+".applied")
	out, err := os.Create(outPath)
	if err != nil {
		return res, err
	}
	defer func() { _ = out.Close() }()
	ow := bufio.NewWriterSize(out, 1<<20)
	start = time.Now()
	err = delta.Apply(ctx, bf, df, ow)
	if err == nil {
		err = ow.Flush()
	}
	if err == nil {
		err = out.Sync()
	}
	res.applyDur = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("apply: %w", err)
	}
	want, _, err := fileSHA(target)
	if err != nil {
		return res, err
	}
	got, _, err := fileSHA(outPath)
	if err != nil {
		return res, err
	}
	if got != want {
		return res, fmt.Errorf("applied delta gives sha256 %s, the target is %s", got, want)
	}
	return res, os.Remove(outPath)
}

// deltaRun is the whole delta part of the report.
type deltaRun struct {
	from, to  release
	files     int
	treeFrom  int64
	treeTo    int64
	changed   []string
	results   []deltaResult
	buildTime time.Duration
}

func measureDeltas(ctx context.Context, b *testing.B, repo, work, fromCommit, toCommit string) deltaRun {
	var dr deltaRun
	for _, tool := range []string{"git", "go", "tar", "dpkg", "mksquashfs", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s is needed (apt-get install squashfs-tools e2fsprogs git tar): %v", tool, err)
		}
	}
	var err error
	if dr.from, err = resolveRelease(ctx, repo, fromCommit, "1.0.0"); err != nil {
		b.Fatal(err)
	}
	if dr.to, err = resolveRelease(ctx, repo, toCommit, "1.1.0"); err != nil {
		b.Fatal(err)
	}
	files, err := baseFiles(ctx)
	if err != nil {
		b.Fatal(err)
	}
	dr.files = len(files)
	start := time.Now()
	trees := [2]string{}
	for i, r := range []release{dr.from, dr.to} {
		src, bin, err := buildRelease(ctx, repo, work, r)
		if err != nil {
			b.Fatal(err)
		}
		tree := filepath.Join(work, "root-"+r.version)
		size, err := makeTree(tree, files, src, bin, r)
		if err != nil {
			b.Fatal(err)
		}
		trees[i] = tree
		if i == 0 {
			dr.treeFrom = size
		} else {
			dr.treeTo = size
		}
		if err := os.RemoveAll(src); err != nil {
			b.Fatal(err)
		}
	}
	dr.buildTime = time.Since(start)
	for _, rel := range []string{"usr/bin/roomd", "usr/bin/roomctl", "etc/atrium/roomd.toml", "usr/lib/systemd/system/roomd.service", "etc/os-release", "etc/hostname"} {
		a, _, err1 := fileSHA(filepath.Join(trees[0], rel))
		c, n, err2 := fileSHA(filepath.Join(trees[1], rel))
		if err1 != nil || err2 != nil {
			b.Fatalf("%s: %v %v", rel, err1, err2)
		}
		state := "same"
		if a != c {
			state = "changed"
		}
		dr.changed = append(dr.changed, fmt.Sprintf("/%s (%d bytes): %s", rel, n, state))
	}
	ext4Size := (max(dr.treeFrom, dr.treeTo)*5/4 + 64<<20) / (1 << 20) * (1 << 20)
	for _, format := range []string{"squashfs", "ext4"} {
		var paths [2]string
		var reproducible int64
		for i, r := range []release{dr.from, dr.to} {
			paths[i] = filepath.Join(work, r.version+"."+format)
			pack := func(out string) error {
				if format == "squashfs" {
					return packSquashfs(ctx, trees[i], out, r)
				}
				return packExt4(ctx, trees[i], out, ext4Size, r)
			}
			if err := pack(paths[i]); err != nil {
				b.Fatal(err)
			}
			if i == 0 {
				// Pack the base twice: the same tree must give the same bytes.
				again := paths[i] + ".again"
				if err := pack(again); err != nil {
					b.Fatal(err)
				}
				n, err := differingBytes(paths[i], again)
				if err != nil {
					b.Fatal(err)
				}
				reproducible = n
				_ = os.Remove(again)
			}
		}
		res, err := measureDelta(ctx, work, format, paths[0], paths[1])
		if err != nil {
			b.Fatalf("%s: %v", format, err)
		}
		res.reproducible = reproducible
		dr.results = append(dr.results, res)
		b.Logf("%s: %+v make %v apply %v", format, res.stats, res.makeTime, res.applyDur)
		for _, p := range paths {
			_ = os.Remove(p)
		}
	}
	return dr
}

// differingBytes counts the bytes at which two files differ (a length
// difference counts in full).
func differingBytes(a, b string) (int64, error) {
	fa, err := os.Open(a)
	if err != nil {
		return 0, err
	}
	defer func() { _ = fa.Close() }()
	fb, err := os.Open(b)
	if err != nil {
		return 0, err
	}
	defer func() { _ = fb.Close() }()
	ra, rb := bufio.NewReaderSize(fa, 1<<20), bufio.NewReaderSize(fb, 1<<20)
	bufA, bufB := make([]byte, 1<<20), make([]byte, 1<<20)
	var n int64
	for {
		na, errA := io.ReadFull(ra, bufA)
		nb, errB := io.ReadFull(rb, bufB)
		for i := range min(na, nb) {
			if bufA[i] != bufB[i] {
				n++
			}
		}
		n += int64(max(na, nb) - min(na, nb))
		doneA := errA == io.EOF || errA == io.ErrUnexpectedEOF
		doneB := errB == io.EOF || errB == io.ErrUnexpectedEOF
		if errA != nil && !doneA {
			return 0, errA
		}
		if errB != nil && !doneB {
			return 0, errB
		}
		if doneA && doneB {
			return n, nil
		}
		if doneA || doneB {
			// One ended: count the rest of the other.
			rest := ra
			if doneA {
				rest = rb
			}
			m, err := io.Copy(io.Discard, rest)
			return n + m, err
		}
	}
}
