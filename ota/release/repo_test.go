package release

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listDir names every file under dir with its content hash, to show that
// a refused operation left the repository as it was.
func listDir(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s := sum(data)
		b.WriteString(strings.TrimPrefix(p, dir) + " " + hex.EncodeToString(s[:4]) + "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestRepoLayout(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{"1.root.json", "root.json", "2.targets.json", "targets.json", "2.snapshot.json", "snapshot.json", "timestamp.json"} {
		if _, err := os.Stat(filepath.Join(f.dir, "metadata", name)); err != nil {
			t.Error(err)
		}
	}
	s := sum(f.image)
	p := filepath.Join(f.dir, "targets", hex.EncodeToString(s[:])+".atrium-1.0.0")
	if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, f.image) {
		t.Fatalf("hash-prefixed image %s: %v", p, err)
	}
	// Reopened, the repository lists what was published.
	r, err := Open(f.dir, f.keys, testExpiry)
	if err != nil {
		t.Fatal(err)
	}
	list, err := r.Targets()
	if err != nil || len(list) != 1 || list["atrium-1.0.0"].Version != "1.0.0" {
		t.Fatalf("Targets: %v, %v", list, err)
	}
	if _, err := Init(f.dir, f.keys, testExpiry, t0); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Init over an existing repository: %v, want ErrExist", err)
	}
}

func TestAddImageRefusals(t *testing.T) {
	f := newFixture(t)
	before := listDir(t, f.dir)
	bad := testMeta("1.0.0")
	bad.Partitions = map[string]PartitionMeta{"rootfs": {Size: 1, SHA256: "xyz"}}
	cases := map[string]struct {
		name string
		img  string
		meta ImageMeta
		want error
	}{
		"bad name":          {"../x", "a", testMeta("1.0.0"), ErrBadName},
		"bad version":       {"x", "a", testMeta("v1"), ErrBadImageMeta},
		"bad partition":     {"x", "a", bad, ErrBadImageMeta},
		"no hardware":       {"x", "a", ImageMeta{Version: "1.0.0"}, ErrBadImageMeta},
		"same name, others": {"atrium-1.0.0", "different bytes", testMeta("1.0.0"), ErrTargetExists},
	}
	for name, tc := range cases {
		err := f.repo.AddImage(tc.name, strings.NewReader(tc.img), tc.meta, t0)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	if after := listDir(t, f.dir); after != before {
		t.Fatalf("refused AddImage changed the repository:\nbefore\n%s\nafter\n%s", before, after)
	}
	// Offline keys: a timestamp host can refresh the timestamp only.
	tsOnly := &Keys{priv: map[string]ed25519.PrivateKey{}}
	tsOnly.priv[RoleTimestamp] = f.keys.priv[RoleTimestamp]
	r, err := Open(f.dir, tsOnly, testExpiry)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AddImage("atrium-2", strings.NewReader("x"), testMeta("2.0.0"), t0); !errors.Is(err, ErrMissingKey) {
		t.Fatalf("AddImage with only the timestamp key: %v, want ErrMissingKey", err)
	}
	if err := r.RefreshTimestamp(t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func TestServedBytesNotTrusted(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, nil)
	mustRefresh(t, c)
	s := sum(f.image)
	p := filepath.Join(f.dir, "targets", hex.EncodeToString(s[:])+".atrium-1.0.0")
	if err := os.WriteFile(p, []byte("swapped image"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Target reports what TUF signed, not what the server has: the
	// installer's hash check against it catches the swap.
	tg, err := c.Target("atrium-1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if tg.SHA256 != s || tg.SHA256 == sum([]byte("swapped image")) {
		t.Fatalf("Target hash %x follows the served bytes", tg.SHA256)
	}
}

func TestImageMetaStrict(t *testing.T) {
	good := `{"hardware":["qemu-x86-64"],"version":"1.2.3","security_version":1,"build_time":"2026-01-01T00:00:00Z","partitions":{"rootfs":{"size":10,"sha256":"` + strings.Repeat("ab", 32) + `"}}}`
	if _, err := decodeImageMeta([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string]string{
		"unknown field":     strings.Replace(good, `"version"`, `"min_bootloader":2,"version"`, 1),
		"trailing data":     good + `{}`,
		"negative security": strings.Replace(good, `"security_version":1`, `"security_version":-1`, 1),
		"bad version":       strings.Replace(good, `"1.2.3"`, `"1.2.x"`, 1),
		"upper-case sha":    strings.Replace(good, strings.Repeat("ab", 32), strings.Repeat("AB", 32), 1),
		"zero size":         strings.Replace(good, `"size":10`, `"size":0`, 1),
		"ancient build":     strings.Replace(good, "2026-01-01", "1970-01-01", 1),
		"empty":             ``,
		"string hardware":   strings.Replace(good, `["qemu-x86-64"]`, `"qemu-x86-64"`, 1),
	} {
		if _, err := decodeImageMeta([]byte(raw)); !errors.Is(err, ErrBadImageMeta) {
			t.Errorf("%s: %v, want ErrBadImageMeta", name, err)
		}
	}
}

func TestKeys(t *testing.T) {
	dir := t.TempDir()
	k, err := GenerateKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateKeys(dir); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("GenerateKeys over existing keys: %v, want ErrExist", err)
	}
	l, err := LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range roles {
		if !bytes.Equal(k.Public(r), l.Public(r)) {
			t.Errorf("%s key differs after reload", r)
		}
		fi, err := os.Stat(keyPath(dir, r))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s key file: %v %v", r, fi.Mode(), err)
		}
	}
	// Offline roles removed: only timestamp loads.
	for _, r := range []string{RoleRoot, RoleTargets, RoleSnapshot} {
		_ = os.Remove(keyPath(dir, r))
	}
	if l, err = LoadKeys(dir); err != nil || l.Has(RoleRoot) || !l.Has(RoleTimestamp) {
		t.Fatalf("LoadKeys timestamp only: %v", err)
	}
	if err := os.Chmod(keyPath(dir, RoleTimestamp), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeys(dir); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Fatalf("LoadKeys of a world-readable key: %v", err)
	}
	if _, err := LoadKeys(t.TempDir()); !errors.Is(err, ErrMissingKey) {
		t.Fatalf("LoadKeys of an empty dir: %v, want ErrMissingKey", err)
	}
}
