package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultSuite is the Debian release the image is built from.
const DefaultSuite = "bookworm"

// DefaultSources is the apt sources file the base is downloaded from: the
// build machine's own, so a mirror or snapshot it uses is used here too.
const DefaultSources = "/etc/apt/sources.list.d/debian.sources"

// baseFormat changes when the way the base is built changes, so that an
// old cached base is not reused.
const baseFormat = "atrium-base-1"

// dpkgExcludes keep documentation, manual pages and translations out of
// the image (licences stay). C.UTF-8 is built into Debian's libc, so no
// locale is lost.
var dpkgExcludes = []string{
	"path-exclude=/usr/share/man/*",
	"path-exclude=/usr/share/info/*",
	"path-exclude=/usr/share/doc/*",
	"path-include=/usr/share/doc/*/copyright",
	"path-exclude=/usr/share/locale/*",
	"path-exclude=/usr/share/lintian/*",
}

// BaseOptions say which Debian base to build.
type BaseOptions struct {
	// Packages is the package list file (rootfs/packages.txt): one name a
	// line, "#" comments.
	Packages string
	// Suite defaults to DefaultSuite; Sources to DefaultSources.
	Suite   string
	Sources string
	// CacheDir holds the base tarballs (.cache/image).
	CacheDir string
	Runner   Runner
	Logger   *slog.Logger
}

// ReadPackages reads a package list: one name a line, blank lines and
// "#" comments ignored. Names are checked so that none reads as an option.
func ReadPackages(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read package list: %w", err)
	}
	var pkgs []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if !validPackage(line) {
			return nil, fmt.Errorf("package list %s:%d: %q is not a Debian package name", path, n, line)
		}
		pkgs = append(pkgs, line)
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("package list %s: no packages", path)
	}
	return pkgs, nil
}

// validPackage follows Debian policy 5.6.1: lower-case letters, digits,
// '+', '-', '.', at least two characters, starting alphanumeric.
func validPackage(s string) bool {
	if len(s) < 2 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case i > 0 && (r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return true
}

// baseArgs are mmdebstrap's arguments writing the base to out.
func baseArgs(suite, sources, out string, pkgs []string) []string {
	args := []string{"--variant=essential", "--include=" + strings.Join(pkgs, ","), "--quiet"}
	for _, d := range dpkgExcludes {
		args = append(args, "--dpkgopt="+d)
	}
	return append(args, suite, out, sources)
}

// baseKey names a base by everything that goes into it.
func baseKey(suite string, sourcesData []byte, pkgs []string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", baseFormat, suite)
	for _, a := range baseArgs(suite, "SOURCES", "OUT", pkgs) {
		fmt.Fprintf(h, "%s\n", a)
	}
	h.Write(sourcesData)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Base returns the path of the cached base tarball for o, building it
// with mmdebstrap first when the cache has none. The key covers the
// suite, the package list and the apt sources' content; a changed
// archive (a new point release) is not noticed until one of those changes
// or the cache is removed.
func Base(ctx context.Context, o BaseOptions) (string, error) {
	if o.Suite == "" {
		o.Suite = DefaultSuite
	}
	if o.Sources == "" {
		o.Sources = DefaultSources
	}
	pkgs, err := ReadPackages(o.Packages)
	if err != nil {
		return "", err
	}
	sources, err := os.ReadFile(o.Sources)
	if err != nil {
		return "", fmt.Errorf("read apt sources: %w", err)
	}
	tarball := filepath.Join(o.CacheDir, "base-"+o.Suite+"-"+baseKey(o.Suite, sources, pkgs)+".tar")
	if _, err := os.Stat(tarball); err == nil {
		o.Logger.Info("image: base from cache", "tarball", tarball)
		return tarball, nil
	}
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return "", fmt.Errorf("create image cache: %w", err)
	}
	// mmdebstrap picks the output format by the name's extension: keep
	// ".tar" last, and rename only a complete tarball into place.
	partial := strings.TrimSuffix(tarball, ".tar") + ".partial.tar"
	defer os.Remove(partial)
	start := time.Now()
	o.Logger.Info("image: building the Debian base with mmdebstrap", "suite", o.Suite, "packages", len(pkgs))
	if _, err := o.Runner.Run(ctx, Cmd{Name: "mmdebstrap", Args: baseArgs(o.Suite, o.Sources, partial, pkgs)}); err != nil {
		return "", fmt.Errorf("build base %s: %w", tarball, err)
	}
	if err := os.Rename(partial, tarball); err != nil {
		return "", fmt.Errorf("store base: %w", err)
	}
	o.Logger.Info("image: base built", "tarball", tarball, "seconds", time.Since(start).Seconds())
	return tarball, nil
}
