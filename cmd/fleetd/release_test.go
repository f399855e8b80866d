package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/atriumroom/atrium/ota/delta"
	"github.com/atriumroom/atrium/ota/release"
)

// fleetd runs the command in process, as main would, and returns its
// standard output.
func fleetd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return out.String(), err
}

func mustFleetd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := fleetd(t, args...)
	if err != nil {
		t.Fatalf("fleetd %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func writeImage(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReleaseEndToEnd(t *testing.T) {
	dir := t.TempDir()
	repo, keys := filepath.Join(dir, "repo"), filepath.Join(dir, "keys")
	mustFleetd(t, "release", "init", "-repo", repo, "-keys", keys)
	for _, role := range []string{"root", "targets", "snapshot", "timestamp"} {
		fi, err := os.Stat(filepath.Join(keys, role+".key"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s.key: %v %v", role, fi, err)
		}
	}
	if _, err := fleetd(t, "release", "init", "-repo", repo, "-keys", keys); err == nil || !errors.Is(err, os.ErrExist) {
		t.Fatalf("second init: %v, want a refusal to overwrite", err)
	}
	fresh := filepath.Join(dir, "fresh-keys")
	if _, err := fleetd(t, "release", "init", "-repo", repo, "-keys", fresh); !errors.Is(err, os.ErrExist) || !strings.Contains(err.Error(), "-repo") {
		t.Fatalf("init over an existing repository: %v", err)
	}
	if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused init left keys behind: %v", err)
	}

	v1 := make([]byte, 3<<20)
	_, _ = rand.Read(v1)
	v2 := append(append(bytes.Clone(v1[:1<<20]), []byte("roomd 1.1.0 was rebuilt")...), v1[1<<20:]...)
	img1, img2 := filepath.Join(dir, "v1.img"), filepath.Join(dir, "v2.img")
	writeImage(t, img1, v1)
	writeImage(t, img2, v2)
	out := mustFleetd(t, "release", "add", "-repo", repo, "-keys", keys, "-image", img1, "-version", "1.0.0",
		"-security-version", "2", "-hardware", "qemu-x86-64,nuc13", "-build-time", "2026-01-02T03:04:05Z")
	if !strings.Contains(out, "published atrium-1.0.0.img") {
		t.Fatalf("add printed %q", out)
	}
	out = mustFleetd(t, "release", "add", "-repo", repo, "-keys", keys, "-image", img2, "-version", "1.1.0",
		"-security-version", "2", "-hardware", "qemu-x86-64", "-build-time", "2026-02-02T03:04:05Z", "-delta-from", img1)
	if !strings.Contains(out, "published atrium-1.1.0.img.delta-") {
		t.Fatalf("add -delta-from printed %q", out)
	}
	t.Log(out)

	// A duplicate name with other bytes is refused; the repository is unchanged.
	before := mustFleetd(t, "release", "list", "-repo", repo)
	_, err := fleetd(t, "release", "add", "-repo", repo, "-keys", keys, "-image", img2, "-version", "1.0.0",
		"-security-version", "2", "-hardware", "qemu-x86-64", "-build-time", "2026-02-02T03:04:05Z")
	if !errors.Is(err, release.ErrTargetExists) || !strings.Contains(err.Error(), "-image") {
		t.Fatalf("duplicate name: %v, want ErrTargetExists naming -image", err)
	}
	if after := mustFleetd(t, "release", "list", "-repo", repo); after != before {
		t.Fatalf("list changed after a refused add:\n%s\n%s", before, after)
	}
	var rows []string
	for _, line := range strings.Split(before, "\n") {
		rows = append(rows, strings.Join(strings.Fields(line), " "))
	}
	listed := strings.Join(rows, "\n")
	for _, want := range []string{"atrium-1.0.0.img image 1.0.0 2 3145728", "atrium-1.1.0.img image 1.1.0 2 3145751", "delta atrium-1.1.0.img -"} {
		if !strings.Contains(listed, want) {
			t.Errorf("list lacks %q:\n%s", want, before)
		}
	}

	// A device: the root from "release root", the repository over HTTP.
	root := mustFleetd(t, "release", "root", "-repo", repo)
	srv := httptest.NewServer(http.FileServer(http.Dir(repo)))
	defer srv.Close()
	c, err := release.NewClient(release.ClientOptions{
		TrustedRoot: []byte(root), MetadataDir: filepath.Join(dir, "device"), BaseURL: srv.URL,
		Hardware: "qemu-x86-64", HTTPClient: srv.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	tg, err := c.Target("atrium-1.0.0.img")
	if err != nil {
		t.Fatal(err)
	}
	sum1 := sha256.Sum256(v1)
	m := tg.Meta
	if tg.SHA256 != sum1 || tg.Length != int64(len(v1)) || m.Version != "1.0.0" || m.SecurityVersion != 2 ||
		strings.Join(m.Hardware, ",") != "qemu-x86-64,nuc13" || !m.BuildTime.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) ||
		m.Partitions["rootfs"].SHA256 != hex.EncodeToString(sum1[:]) || m.Partitions["rootfs"].Size != int64(len(v1)) {
		t.Fatalf("target as the device sees it: %+v", tg)
	}
	// The delta the device would fetch rebuilds v2 from v1.
	d, err := c.Delta("atrium-1.1.0.img", sum1)
	if err != nil {
		t.Fatal(err)
	}
	if d.Meta.BaseVersion != "1.0.0" || d.Length > 64<<10 {
		t.Fatalf("delta %+v", d)
	}
	res, err := srv.Client().Get(d.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil || sha256.Sum256(body) != d.SHA256 {
		t.Fatalf("delta download: %v", err)
	}
	var rebuilt bytes.Buffer
	if err := delta.Apply(context.Background(), bytes.NewReader(v1), bytes.NewReader(body), &rebuilt); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rebuilt.Bytes(), v2) {
		t.Fatal("the delta did not rebuild the new image")
	}

	// timestamp and rotate; the device follows the rotation.
	mustFleetd(t, "release", "timestamp", "-repo", repo, "-keys", keys)
	newKeys := filepath.Join(dir, "keys2")
	mustFleetd(t, "release", "rotate", "-repo", repo, "-keys", keys, "-new-keys", newKeys)
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatalf("refresh after rotation: %v", err)
	}
	if _, err := fleetd(t, "release", "timestamp", "-repo", repo, "-keys", keys); !errors.Is(err, release.ErrWrongKey) {
		t.Fatalf("old keys after rotation: %v, want ErrWrongKey", err)
	}
}

func TestReleaseRefusals(t *testing.T) {
	dir := t.TempDir()
	repo, keys := filepath.Join(dir, "repo"), filepath.Join(dir, "keys")
	mustFleetd(t, "release", "init", "-repo", repo, "-keys", keys)
	otherRepo, otherKeys := filepath.Join(dir, "repo2"), filepath.Join(dir, "keys2")
	mustFleetd(t, "release", "init", "-repo", otherRepo, "-keys", otherKeys)
	img := filepath.Join(dir, "a.img")
	writeImage(t, img, []byte("an image"))
	add := []string{"release", "add", "-repo", repo, "-image", img, "-version", "1.0.0", "-security-version", "1",
		"-hardware", "qemu-x86-64", "-build-time", "2026-01-02T03:04:05Z"}

	// Another repository's keys.
	_, err := fleetd(t, append(add, "-keys", otherKeys)...)
	if !errors.Is(err, release.ErrWrongKey) || !strings.Contains(err.Error(), "-keys "+otherKeys) {
		t.Fatalf("wrong key dir: %v", err)
	}
	// A key dir with only the timestamp key cannot publish.
	tsOnly := filepath.Join(dir, "ts")
	if err := os.MkdirAll(tsOnly, 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(keys, "timestamp.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tsOnly, "timestamp.key"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fleetd(t, append(add, "-keys", tsOnly)...); !errors.Is(err, release.ErrMissingKey) {
		t.Fatalf("timestamp key only: %v, want ErrMissingKey", err)
	}
	if _, err := fleetd(t, "release", "timestamp", "-repo", repo, "-keys", tsOnly); err != nil {
		t.Fatalf("timestamp with the timestamp key only: %v", err)
	}

	usage := map[string][]string{
		"no subcommand":       {"release"},
		"unknown subcommand":  {"release", "publish"},
		"missing -version":    {"release", "add", "-repo", repo, "-keys", keys, "-image", img, "-security-version", "1", "-hardware", "x"},
		"bad security":        append(append([]string{}, add...), "-keys", keys, "-security-version", "-1"),
		"bad build time":      append(append([]string{}, add...), "-keys", keys, "-build-time", "yesterday"),
		"future build time":   append(append([]string{}, add...), "-keys", keys, "-build-time", "2999-01-01T00:00:00Z"),
		"bad hardware":        append(append([]string{}, add...), "-keys", keys, "-hardware", "Bad HW"),
		"unknown flag":        {"release", "list", "-repo", repo, "-verbose"},
		"list without -repo":  {"release", "list"},
		"keys without update": {"serve", "-data", dir, "-timestamp-keys", keys},
	}
	for name, args := range usage {
		if _, err := fleetd(t, args...); !errors.Is(err, errUsage) {
			t.Errorf("%s: %v, want a usage error (exit 2)", name, err)
		}
	}
	if _, err := fleetd(t, append(add, "-keys", keys, "-image", filepath.Join(dir, "missing.img"))...); err == nil || !strings.Contains(err.Error(), "-image") || !strings.Contains(err.Error(), "missing.img") {
		t.Errorf("missing image: %v", err)
	}
	if _, err := fleetd(t, append(add, "-keys", keys, "-delta-from", filepath.Join(dir, "old.img"))...); err == nil || !strings.Contains(err.Error(), "-delta-from") {
		t.Errorf("missing -delta-from file: %v", err)
	}
	// A delta from an image that was never published is refused.
	other := filepath.Join(dir, "other.img")
	writeImage(t, other, []byte("never published"))
	if _, err := fleetd(t, append(add, "-keys", keys, "-delta-from", other)...); !errors.Is(err, release.ErrUnknownTarget) {
		t.Errorf("delta from an unpublished image: %v", err)
	}
	help := mustFleetd(t, "release", "-h")
	if !strings.Contains(help, "OFFLINE") || !strings.Contains(help, "ONLINE") {
		t.Errorf("release -h does not explain the key split:\n%s", help)
	}
}
