package image

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/ota/bootfiles"
)

func writeFile(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadPackages(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "packages.txt")
	writeFile(t, p, "# comment\nsystemd\n\n  dbus  # the bus\nlibstdc++6\n")
	got, err := ReadPackages(p)
	if err != nil || strings.Join(got, ",") != "systemd,dbus,libstdc++6" {
		t.Errorf("ReadPackages = %q, %v", got, err)
	}
	for _, bad := range []string{"--option\n", "Systemd\n", "a\n", "two words\n", "# only comments\n"} {
		writeFile(t, p, bad)
		if _, err := ReadPackages(p); err == nil {
			t.Errorf("ReadPackages accepted %q", bad)
		}
	}
	// The repository's list reads.
	if _, err := ReadPackages("../packages.txt"); err != nil {
		t.Error(err)
	}
}

func TestBaseCache(t *testing.T) {
	dir := t.TempDir()
	pkgs := filepath.Join(dir, "packages.txt")
	sources := filepath.Join(dir, "debian.sources")
	writeFile(t, pkgs, "systemd\ndbus\n")
	writeFile(t, sources, "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\n")
	cache := filepath.Join(dir, "cache")
	r := &fakeRunner{hook: func(c Cmd) ([]byte, error) {
		if c.Name != "mmdebstrap" {
			return nil, errors.New("unexpected " + c.Name)
		}
		// mmdebstrap's output is the second-to-last argument.
		return nil, os.WriteFile(c.Args[len(c.Args)-2], []byte("tar"), 0o644)
	}}
	o := BaseOptions{Packages: pkgs, Sources: sources, CacheDir: cache, Runner: r, Logger: discardLogger()}
	first, err := Base(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	partial := strings.TrimSuffix(first, ".tar") + ".partial.tar"
	want := "mmdebstrap --variant=essential --include=systemd,dbus --quiet" +
		" --dpkgopt=path-exclude=/usr/share/man/* --dpkgopt=path-exclude=/usr/share/info/*" +
		" --dpkgopt=path-exclude=/usr/share/doc/* --dpkgopt=path-include=/usr/share/doc/*/copyright" +
		" --dpkgopt=path-exclude=/usr/share/locale/* --dpkgopt=path-exclude=/usr/share/lintian/*" +
		" bookworm " + partial + " " + sources + "\n"
	if got := r.String(); got != want {
		t.Errorf("commands:\n%s\nwant:\n%s", got, want)
	}
	if _, err := os.Stat(first); err != nil {
		t.Errorf("no cached base: %v", err)
	}
	// Cached: no second mmdebstrap.
	again, err := Base(context.Background(), o)
	if err != nil || again != first || strings.Count(r.String(), "mmdebstrap") != 1 {
		t.Errorf("second Base = %s, %v; commands:\n%s", again, err, r)
	}
	// The key follows the package list and the sources.
	writeFile(t, pkgs, "systemd\ndbus\ncage\n")
	third, err := Base(context.Background(), o)
	if err != nil || third == first {
		t.Errorf("changed list gave %s (first %s), %v", third, first, err)
	}
	writeFile(t, sources, "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\nComponents: main\n")
	fourth, err := Base(context.Background(), o)
	if err != nil || fourth == third {
		t.Errorf("changed sources gave %s (before %s), %v", fourth, third, err)
	}
}

func TestBaseFailureLeavesNoCache(t *testing.T) {
	dir := t.TempDir()
	pkgs := filepath.Join(dir, "packages.txt")
	writeFile(t, pkgs, "systemd\n")
	writeFile(t, filepath.Join(dir, "s.sources"), "x")
	r := &fakeRunner{hook: func(c Cmd) ([]byte, error) {
		_ = os.WriteFile(c.Args[len(c.Args)-2], []byte("half"), 0o644)
		return nil, errors.New("mmdebstrap: exit status 1: E: download failed")
	}}
	cache := filepath.Join(dir, "cache")
	_, err := Base(context.Background(), BaseOptions{Packages: pkgs, Sources: filepath.Join(dir, "s.sources"), CacheDir: cache, Runner: r, Logger: discardLogger()})
	if err == nil || !strings.Contains(err.Error(), "download failed") {
		t.Fatalf("Base = %v, want mmdebstrap's error", err)
	}
	if left, _ := filepath.Glob(filepath.Join(cache, "*")); len(left) != 0 {
		t.Errorf("cache after a failure: %q", left)
	}
}

func TestSquashCommand(t *testing.T) {
	r := &fakeRunner{}
	out := filepath.Join(t.TempDir(), "rootfs.squashfs")
	if err := Squash(context.Background(), r, "/tree", out, "lz4", testBuildTime); err != nil {
		t.Fatal(err)
	}
	want := "mksquashfs /tree " + out + " -noappend -comp lz4 -all-time 1795262400 -mkfs-time 1795262400 -reproducible -no-progress -quiet\n"
	if got := r.String(); got != want {
		t.Errorf("commands:\n%s\nwant:\n%s", got, want)
	}
}

func TestExportKernel(t *testing.T) {
	tree, out := t.TempDir(), t.TempDir()
	if _, err := ExportKernel(tree, out); err == nil {
		t.Error("ExportKernel without a kernel succeeded")
	}
	writeFile(t, filepath.Join(tree, "boot/vmlinuz-6.1.0-37-amd64"), "kernel")
	writeFile(t, filepath.Join(tree, "boot/initrd.img-6.1.0-37-amd64"), "initrd")
	rel, err := ExportKernel(tree, out)
	if err != nil || rel != "6.1.0-37-amd64" {
		t.Fatalf("ExportKernel = %q, %v", rel, err)
	}
	for name, want := range map[string]string{KernelFile: "kernel", InitrdFile: "initrd"} {
		if got, err := os.ReadFile(filepath.Join(out, name)); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v", name, got, err)
		}
	}
	// The fixed names an update reads from the slot are the same files,
	// also when exported a second time.
	if _, err := ExportKernel(tree, out); err != nil {
		t.Fatalf("ExportKernel again: %v", err)
	}
	for link, file := range map[string]string{bootfiles.KernelPath: "boot/vmlinuz-6.1.0-37-amd64", bootfiles.InitrdPath: "boot/initrd.img-6.1.0-37-amd64"} {
		a, err := os.Stat(filepath.Join(tree, link))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.Stat(filepath.Join(tree, file))
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(a, b) {
			t.Errorf("%s is not a hard link to %s", link, file)
		}
	}
	writeFile(t, filepath.Join(tree, "boot/vmlinuz-6.1.0-38-amd64"), "kernel")
	if _, err := ExportKernel(tree, out); err == nil {
		t.Error("ExportKernel chose between two kernels")
	}
}

func TestBuildRefusesBadOptions(t *testing.T) {
	l := testLayer(t)
	base := Options{Out: t.TempDir(), Layer: l, CacheDir: t.TempDir(), Runner: &fakeRunner{}, Logger: discardLogger()}
	o := base
	o.Comp = "gzip"
	if _, err := Build(context.Background(), o); err == nil || !strings.Contains(err.Error(), "gzip") {
		t.Errorf("Build with gzip: %v", err)
	}
	o = base
	o.Layer.Version = ""
	if _, err := Build(context.Background(), o); err == nil {
		t.Error("Build without a version succeeded")
	}
}

func TestLockCache(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	unlock, err := lockCache(ctx, dir, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	// Held: a second taker waits until its context ends.
	short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	if _, err := lockCache(short, dir, discardLogger()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second lock while held: %v", err)
	}
	unlock()
	unlock2, err := lockCache(ctx, dir, discardLogger())
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	unlock2()

	// A killed build's tree goes; a running build's (its lock held) stays.
	writeFile(t, filepath.Join(dir, "tree-123", "root", "etc", "x"), "x")
	writeFile(t, filepath.Join(dir, "base-bookworm-0123.tar"), "tar")
	work, removeTree, err := newTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(work, "root", "etc", "x"), "x")
	if err := removeStaleTrees(dir, discardLogger()); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(left) != 3 || !slices.Contains(left, work) { // the lock file, the base, the running build's tree
		t.Errorf("after removeStaleTrees: %q", left)
	}
	removeTree()
	if _, err := os.Stat(work); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the build's tree is still there after it ended: %v", err)
	}

	keep := filepath.Join(dir, "base-bookworm-4567.tar")
	writeFile(t, keep, "tar")
	if err := removeOldBases(dir, keep, discardLogger()); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "base-*")); len(left) != 1 || left[0] != keep {
		t.Errorf("after removeOldBases: %q", left)
	}
}

// TestAddTree appends a tree to a real squashfs with the real veritysetup:
// the same file system gives the same bytes, veritysetup verifies the
// result with the recorded root hash, and unsquashfs still reads the file
// system in front of the tree.
func TestAddTree(t *testing.T) {
	for _, prog := range []string{"mksquashfs", "unsquashfs", "veritysetup"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Fatalf("%s is needed: apt-get install squashfs-tools cryptsetup-bin", prog)
		}
	}
	tree := t.TempDir()
	writeFile(t, filepath.Join(tree, "etc/os-release"), "ID=atrium\n")
	writeFile(t, filepath.Join(tree, "usr/bin/roomd"), strings.Repeat("roomd ", 200_000))
	ctx := context.Background()
	build := func() (string, []byte, string) {
		out := filepath.Join(t.TempDir(), RootfsFile)
		if err := Squash(ctx, ExecRunner{}, tree, out, "lz4", testBuildTime); err != nil {
			t.Fatal(err)
		}
		squashfs, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		v, err := AddTree(ctx, ExecRunner{}, out)
		if err != nil {
			t.Fatal(err)
		}
		if v.HashOffset != int64(len(squashfs)) {
			t.Errorf("hash offset %d, the squashfs has %d bytes", v.HashOffset, len(squashfs))
		}
		whole, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(whole[:len(squashfs)], squashfs) {
			t.Error("the tree changed the file system's bytes")
		}
		return out, whole, v.RootHash + "," + strconv.FormatInt(v.HashOffset, 10)
	}
	img, first, root := build()
	_, second, root2 := build()
	if !bytes.Equal(first, second) || root != root2 {
		t.Errorf("two trees of the same file system differ (%s, %s)", root, root2)
	}
	hash, offset, _ := strings.Cut(root, ",")
	if out, err := exec.Command("veritysetup", "verify", img, img, hash, "--hash-offset="+offset).CombinedOutput(); err != nil {
		t.Errorf("veritysetup verify: %v\n%s", err, out)
	}
	if got := run(t, "unsquashfs", "-cat", img, "etc/os-release"); string(got) != "ID=atrium\n" {
		t.Errorf("os-release read through the image with its tree: %q", got)
	}
	// A flipped byte in the file system is what the kernel will refuse.
	first[100] ^= 1
	if err := os.WriteFile(img, first, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("veritysetup", "verify", img, img, hash, "--hash-offset="+offset).CombinedOutput(); err == nil {
		t.Errorf("veritysetup verified a changed file system:\n%s", out)
	}

	odd := filepath.Join(t.TempDir(), "odd.img")
	writeFile(t, odd, "not whole blocks")
	if _, err := AddTree(ctx, ExecRunner{}, odd); err == nil || !strings.Contains(err.Error(), "whole number") {
		t.Errorf("AddTree on 16 bytes: %v", err)
	}
}
