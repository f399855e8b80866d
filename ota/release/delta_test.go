package release

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/atriumroom/atrium/internal/testclock"
)

func deltaMeta(f *fixture, newImage []byte) DeltaMeta {
	base := sha256.Sum256(f.image)
	target := sha256.Sum256(newImage)
	return DeltaMeta{
		Target: "atrium-1.1.0", TargetLength: int64(len(newImage)), TargetSHA256: hex.EncodeToString(target[:]),
		BaseVersion: "1.0.0", BaseLength: int64(len(f.image)), BaseSHA256: hex.EncodeToString(base[:]),
	}
}

func TestDeltaPublishedAndLookedUp(t *testing.T) {
	f := newFixture(t)
	newImage := append(bytes.Clone(f.image), "1.1.0"...)
	if err := f.repo.AddImage("atrium-1.1.0", bytes.NewReader(newImage), testMeta("1.1.0"), t0); err != nil {
		t.Fatal(err)
	}
	deltaBytes := []byte("a delta's bytes; release does not parse them")
	meta := deltaMeta(f, newImage)
	name, err := f.repo.AddDelta(bytes.NewReader(deltaBytes), meta, t0)
	if err != nil {
		t.Fatal(err)
	}
	base := sha256.Sum256(f.image)
	if name != DeltaName("atrium-1.1.0", base) {
		t.Fatalf("delta published as %q", name)
	}
	// Targets (what fleetd offers) lists images only.
	imgs, err := f.repo.Targets()
	if err != nil || len(imgs) != 2 {
		t.Fatalf("Targets = %v, %v; want the two images", imgs, err)
	}
	list, err := f.repo.List()
	if err != nil || len(list) != 3 || list[2].Name != name || list[2].Delta == nil || *list[2].Delta != meta {
		t.Fatalf("List = %+v, %v", list, err)
	}

	c := f.client(t, nil)
	mustRefresh(t, c)
	d, err := c.Delta("atrium-1.1.0", base)
	if err != nil {
		t.Fatal(err)
	}
	if d.Length != int64(len(deltaBytes)) || d.SHA256 != sha256.Sum256(deltaBytes) || d.Meta != meta ||
		d.Image.Name != "atrium-1.1.0" || d.Image.SHA256 != sha256.Sum256(newImage) {
		t.Fatalf("Delta = %+v", d)
	}
	res, err := f.srv.Client().Get(d.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, deltaBytes) {
		t.Fatalf("delta URL %s served %q", d.URL, got)
	}
	// Looked up by the version the device runs, as roomd does.
	byVersion, err := c.DeltaFrom("atrium-1.1.0", "1.0.0")
	if err != nil || byVersion.Name != d.Name || byVersion.Meta != meta || byVersion.URL != d.URL {
		t.Fatalf("DeltaFrom 1.0.0 = %+v, %v; want %s", byVersion, err, d.Name)
	}
	if _, err := c.DeltaFrom("atrium-1.1.0", "0.9.0"); !errors.Is(err, ErrNoDelta) {
		t.Fatalf("DeltaFrom another version: %v, want ErrNoDelta", err)
	}
	if _, err := c.DeltaFrom("atrium-1.0.0", "1.0.0"); !errors.Is(err, ErrNoDelta) {
		t.Fatalf("DeltaFrom to an image without deltas: %v, want ErrNoDelta", err)
	}
	// Another base: no delta, download the full image.
	if _, err := c.Delta("atrium-1.1.0", sha256.Sum256([]byte("other"))); !errors.Is(err, ErrNoDelta) {
		t.Fatalf("Delta for another base: %v, want ErrNoDelta", err)
	}
	// An image TUF does not list has no delta either.
	if _, err := c.Delta("atrium-9.9.9", base); !errors.Is(err, ErrUnknownTarget) {
		t.Fatalf("Delta for an unlisted image: %v, want ErrUnknownTarget", err)
	}
	// A delta is not an image.
	if _, err := c.Target(name); !errors.Is(err, ErrBadImageMeta) {
		t.Fatalf("Target(%s): %v, want ErrBadImageMeta", name, err)
	}
}

func TestDeltaRefused(t *testing.T) {
	f := newFixture(t)
	newImage := append(bytes.Clone(f.image), "1.1.0"...)
	meta := deltaMeta(f, newImage)
	if _, err := f.repo.AddDelta(bytes.NewReader([]byte("d")), meta, t0); !errors.Is(err, ErrUnknownTarget) {
		t.Fatalf("delta to an unpublished image: %v", err)
	}
	if err := f.repo.AddImage("atrium-1.1.0", bytes.NewReader(newImage), testMeta("1.1.0"), t0); err != nil {
		t.Fatal(err)
	}
	wrong := meta
	wrong.TargetLength++
	if _, err := f.repo.AddDelta(bytes.NewReader([]byte("d")), wrong, t0); !errors.Is(err, ErrMismatch) {
		t.Fatalf("delta with the wrong target length: %v", err)
	}
	bad := meta
	bad.BaseSHA256 = "XYZ"
	if _, err := f.repo.AddDelta(bytes.NewReader([]byte("d")), bad, t0); !errors.Is(err, ErrBadImageMeta) || !bytes.Contains([]byte(err.Error()), []byte("base_sha256")) {
		t.Fatalf("bad base hash: %v", err)
	}
	if _, err := f.repo.AddDelta(bytes.NewReader([]byte("d")), meta, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.AddDelta(bytes.NewReader([]byte("e")), meta, t0); !errors.Is(err, ErrTargetExists) {
		t.Fatalf("other bytes under the same delta name: %v", err)
	}
	// Strict decoding on the device: an unknown field in a delta's
	// metadata is refused, not ignored.
	if _, err := decodeDeltaMeta([]byte(`{"delta":{"target":"a","target_length":1,"target_sha256":"` + meta.TargetSHA256 + `","base_version":"1.0","base_length":1,"base_sha256":"` + meta.BaseSHA256 + `","extra":1}}`)); !errors.Is(err, ErrBadImageMeta) {
		t.Fatalf("unknown field: %v", err)
	}
}

func TestKeepTimestampFresh(t *testing.T) {
	f := newFixture(t)
	// The server holds only the timestamp key.
	tsDir := t.TempDir()
	der, err := x509.MarshalPKCS8PrivateKey(f.keys.priv[RoleTimestamp])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tsDir, "timestamp.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	tsKeys, err := LoadKeys(tsDir)
	if err != nil {
		t.Fatal(err)
	}
	srvRepo, err := Open(f.dir, tsKeys, testExpiry)
	if err != nil {
		t.Fatal(err)
	}
	clock := testclock.New(t0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- srvRepo.KeepTimestampFresh(ctx, clock.Now, time.Millisecond, slog.New(slog.DiscardHandler))
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("KeepTimestampFresh: %v", err)
		}
	}()
	expiresOnDisk := func() time.Time {
		r, err := Open(f.dir, nil, testExpiry)
		if err != nil {
			t.Fatal(err)
		}
		return r.TimestampExpires()
	}
	first := expiresOnDisk()
	// Less than half the lifetime (24 h) passed: nothing re-signed.
	clock.Advance(11 * time.Hour)
	time.Sleep(50 * time.Millisecond)
	if got := expiresOnDisk(); !got.Equal(first) {
		t.Fatalf("timestamp re-signed after 11 h: expires %v, was %v", got, first)
	}
	// Meanwhile the offline tool publishes a release: the next timestamp
	// must name its snapshot.
	if err := f.repo.AddImage("atrium-1.1.0", bytes.NewReader([]byte("new image")), testMeta("1.1.0"), t0.Add(11*time.Hour)); err != nil {
		t.Fatal(err)
	}
	published := expiresOnDisk()
	// 12 h after the release's own timestamp (signed at 11 h, 24 h
	// lifetime): half of it is gone.
	clock.Advance(12 * time.Hour)
	want := clock.Now().Add(testExpiry.Timestamp).Truncate(time.Second)
	for deadline := time.Now().Add(5 * time.Second); !expiresOnDisk().Equal(want); {
		if time.Now().After(deadline) {
			t.Fatalf("timestamp expires %v, want %v (published %v)", expiresOnDisk(), want, published)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A device sees the new release through the refreshed timestamp.
	f.clock.Set(clock.Now())
	c := f.client(t, nil)
	mustRefresh(t, c)
	if _, err := c.Target("atrium-1.1.0"); err != nil {
		t.Fatalf("release published offline not visible after the server's refresh: %v", err)
	}
}

func TestKeepTimestampFreshRefuses(t *testing.T) {
	f := newFixture(t)
	r, err := Open(f.dir, nil, testExpiry)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.KeepTimestampFresh(context.Background(), time.Now, time.Second, nil); !errors.Is(err, ErrMissingKey) {
		t.Fatalf("without the timestamp key: %v", err)
	}
	if err := f.repo.KeepTimestampFresh(context.Background(), time.Now, 0, nil); err == nil {
		t.Fatal("a zero check interval was accepted")
	}
}
